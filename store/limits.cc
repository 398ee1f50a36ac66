#include "store/limits.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace imaged::store {
namespace {

absl::Status Invalid(absl::string_view what, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, " ", Quote(value), ": ", why));
}

// Backs off to the start of a UTF-8 sequence.
size_t Boundary(absl::string_view s, size_t n) {
  if (n >= s.size()) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return n;
}

}  // namespace

std::string Quote(absl::string_view text) {
  if (text.size() <= kMaxQuoted) return absl::StrCat("\"", text, "\"");
  return absl::StrCat("\"", text.substr(0, Boundary(text, kMaxQuoted)), "...\" (", text.size(),
                      " bytes)");
}

absl::Status ValidateIdentifier(absl::string_view what, absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " must not be empty"));
  if (id.size() > kMaxIdentifierLength) {
    return Invalid(what, id, absl::StrCat("longer than ", kMaxIdentifierLength, " characters"));
  }
  bool after_separator = true;  // no leading separator
  for (char c : id) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      after_separator = false;
    } else if (c == '.' || c == '_' || c == '-') {
      if (after_separator) return Invalid(what, id, "separators must sit between alphanumerics");
      after_separator = true;
    } else {
      return Invalid(what, id, "only letters, digits, '.', '_' and '-' are allowed");
    }
  }
  if (after_separator) return Invalid(what, id, "separators must sit between alphanumerics");
  return absl::OkStatus();
}

absl::Status ValidateLeaseId(absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("lease id must be provided");
  if (id.size() > kMaxLeaseIdLength) {
    return Invalid("lease id", id, absl::StrCat("longer than ", kMaxLeaseIdLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateImageRef(absl::string_view ref) {
  if (ref.size() > kMaxImageNameLength) {
    return Invalid("image reference", ref, absl::StrCat("longer than ", kMaxImageNameLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateImageName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("image name must not be empty");
  if (name.size() > kMaxImageNameLength) {
    return Invalid("image name", name, absl::StrCat("longer than ", kMaxImageNameLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateIngestRef(absl::string_view ref) {
  if (ref.empty()) return absl::InvalidArgumentError("ingest ref must not be empty");
  if (ref.size() > kMaxRefLength) {
    return Invalid("ingest ref", ref, absl::StrCat("longer than ", kMaxRefLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateResourceSize(absl::string_view type, absl::string_view id) {
  if (type.size() > kMaxResourceTypeLength) {
    return Invalid("resource type", type, absl::StrCat("longer than ", kMaxResourceTypeLength, " bytes"));
  }
  if (id.size() > kMaxResourceIdLength) {
    return Invalid("resource id", id, absl::StrCat("longer than ", kMaxResourceIdLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateFilters(absl::Span<const std::string> filters) {
  if (filters.size() > kMaxFilters) {
    return absl::InvalidArgumentError(
        absl::StrCat(filters.size(), " filters: at most ", kMaxFilters, " are allowed"));
  }
  for (const std::string& f : filters) {
    if (f.size() > kMaxFilterLength) {
      return Invalid("filter", f, absl::StrCat("longer than ", kMaxFilterLength, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFieldPaths(absl::Span<const std::string> paths) {
  if (paths.size() > kMaxFieldPaths) {
    return absl::InvalidArgumentError(
        absl::StrCat(paths.size(), " field paths: at most ", kMaxFieldPaths, " are allowed"));
  }
  return absl::OkStatus();
}

std::string CutErrorMessage(absl::string_view message) {
  if (message.size() <= kMaxErrorMessage) return std::string(message);
  return absl::StrCat(message.substr(0, Boundary(message, kMaxErrorMessage - 32)), "... (",
                      message.size(), " bytes)");
}

}  // namespace imaged::store
