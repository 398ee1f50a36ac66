#include "cri/reference.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "re2/re2.h"

namespace imaged::cri {
namespace {

constexpr absl::string_view kDefaultDomain = "docker.io";
constexpr absl::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr absl::string_view kOfficialRepoPrefix = "library/";
constexpr absl::string_view kDefaultTag = "latest";
constexpr absl::string_view kSha256Prefix = "sha256:";
constexpr size_t kNameTotalLengthMax = 255;
constexpr size_t kSha256HexLength = 64;

// The grammar in the header, written as RE2 patterns. Go's regexp and RE2
// share leftmost-first submatch semantics, so the optional domain group
// captures exactly what docker/distribution's captures.
struct Grammar {
  std::string alnum = "[a-z0-9]+";
  std::string separator = "(?:[._]|__|[-]*)";
  std::string component =
      absl::StrCat(alnum, "(?:(?:", separator, alnum, ")+)?");
  std::string domain_label =
      "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
  std::string domain =
      absl::StrCat(domain_label, "(?:(?:\\.", domain_label, ")+)?(?::[0-9]+)?");
  std::string path = absl::StrCat(component, "(?:(?:/", component, ")+)?");
  std::string name = absl::StrCat("(?:", domain, "/)?", path);
  std::string tag = "[\\w][\\w.-]{0,127}";
  std::string digest =
      "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
};

const Grammar& TheGrammar() {
  static const Grammar* const kGrammar = new Grammar();
  return *kGrammar;
}

// Patterns are ASCII; Latin-1 makes matching byte-wise, so stray non-ASCII
// bytes simply fail to match, as they do in Go.
const RE2& Compile(const std::string& pattern) {
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingLatin1);
  const RE2* re = new RE2(pattern, options);
  if (!re->ok()) {
    // A bug in the patterns above; every test would catch it.
    std::abort();
  }
  return *re;
}

// name, tag, digest.
const RE2& ReferenceRe() {
  static const RE2& re =
      Compile(absl::StrCat("(", TheGrammar().name, ")(?::(", TheGrammar().tag,
                           "))?(?:@(", TheGrammar().digest, "))?"));
  return re;
}

// domain, path.
const RE2& AnchoredNameRe() {
  static const RE2& re = Compile(absl::StrCat("(?:(", TheGrammar().domain,
                                              ")/)?(", TheGrammar().path, ")"));
  return re;
}

const RE2& TagRe() {
  static const RE2& re = Compile(TheGrammar().tag);
  return re;
}

const RE2& DigestSyntaxRe() {
  static const RE2& re = Compile(TheGrammar().digest);
  return re;
}

// go-digest's own digest syntax, used only to tell an unknown algorithm
// ("unsupported") from a malformed one ("format").
const RE2& GoDigestRe() {
  static const RE2& re =
      Compile("[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+");
  return re;
}

// Debian's Abseil has its own string_view, which RE2 does not take.
re2::StringPiece Piece(absl::string_view s) {
  return re2::StringPiece(s.data(), s.size());
}

bool IsLowerHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

bool IsBareIdentifier(absl::string_view s) {
  return s.size() == kSha256HexLength && IsLowerHex(s);
}

bool HasAsciiUpper(absl::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return absl::ascii_isupper(c); });
}

// go-digest's Digest.Validate, as an error reason ("" when valid).
std::string DigestProblem(absl::string_view d) {
  const size_t colon = d.find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == d.size()) {
    return "invalid checksum digest format";
  }
  const absl::string_view algorithm = d.substr(0, colon);
  const absl::string_view hex = d.substr(colon + 1);
  size_t want_length = 0;
  if (algorithm == "sha256") {
    want_length = 64;
  } else if (algorithm == "sha384") {
    want_length = 96;
  } else if (algorithm == "sha512") {
    want_length = 128;
  } else {
    if (!RE2::FullMatch(Piece(d), GoDigestRe())) {
      return "invalid checksum digest format";
    }
    return absl::StrCat("unsupported digest algorithm \"", algorithm, "\"");
  }
  if (hex.size() != want_length) {
    return absl::StrCat("invalid checksum digest length (", algorithm,
                        " wants ", want_length, " hex digits, got ", hex.size(),
                        ")");
  }
  if (!IsLowerHex(hex)) {
    return "invalid checksum digest format (hex must be lowercase)";
  }
  return "";
}

// Upstream says only "invalid reference format"; say which part is wrong
// when that is easy to tell. `s` is the input as given.
std::string FormatProblem(absl::string_view s) {
  const size_t at = s.find('@');
  if (at != absl::string_view::npos) {
    const absl::string_view digest = s.substr(at + 1);
    if (!RE2::FullMatch(Piece(digest), DigestSyntaxRe())) {
      return absl::StrCat("invalid reference format: invalid digest \"", digest,
                          "\"");
    }
    s = s.substr(0, at);
  }
  const size_t colon = s.rfind(':');
  const size_t slash = s.rfind('/');
  if (colon != absl::string_view::npos &&
      (slash == absl::string_view::npos || colon > slash)) {
    const absl::string_view tag = s.substr(colon + 1);
    if (!RE2::FullMatch(Piece(tag), TagRe())) {
      return absl::StrCat(
          "invalid reference format: invalid tag \"", tag,
          "\" (want [A-Za-z0-9_] then up to 127 of [A-Za-z0-9_.-])");
    }
  }
  return "invalid reference format: invalid repository name";
}

absl::Status Invalid(absl::string_view input, absl::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("reference \"", absl::CEscape(input), "\": ", reason));
}

// splitDockerDomain: where the registry ends and the repository begins,
// before the grammar has been checked.
std::pair<std::string, std::string> SplitDockerDomain(absl::string_view s) {
  std::string domain;
  std::string remainder;
  const size_t slash = s.find('/');
  const absl::string_view first =
      slash == absl::string_view::npos ? s : s.substr(0, slash);
  if (slash == absl::string_view::npos ||
      (first.find_first_of(".:") == absl::string_view::npos &&
       first != "localhost")) {
    domain = std::string(kDefaultDomain);
    remainder = std::string(s);
  } else {
    domain = std::string(first);
    remainder = std::string(s.substr(slash + 1));
  }
  if (domain == kLegacyDefaultDomain) domain = std::string(kDefaultDomain);
  if (domain == kDefaultDomain && remainder.find('/') == std::string::npos) {
    remainder = absl::StrCat(kOfficialRepoPrefix, remainder);
  }
  return {std::move(domain), std::move(remainder)};
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }

// Grammar().domain, whole.
bool IsDomain(absl::string_view s) {
  const size_t colon = s.find(':');
  if (colon != absl::string_view::npos) {
    const absl::string_view port = s.substr(colon + 1);
    if (port.empty() || !std::all_of(port.begin(), port.end(), IsDigit)) return false;
    s = s.substr(0, colon);
  }
  // Labels of [a-zA-Z0-9-], not starting or ending with '-', joined by '.'.
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    const absl::string_view label =
        s.substr(start, dot == absl::string_view::npos ? absl::string_view::npos : dot - start);
    if (label.empty() || !IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    if (dot == absl::string_view::npos) return true;
    start = dot + 1;
  }
}

// Grammar().path, whole: components of [a-z0-9]+ runs joined by ".", "_",
// "__" or any run of "-", joined by "/".
bool IsPath(absl::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (true) {  // one component
    if (i == n || !IsLowerAlnum(s[i])) return false;
    while (i < n && IsLowerAlnum(s[i])) ++i;
    while (i < n && s[i] != '/') {
      // A separator, then another alnum run.
      if (s[i] == '.') {
        ++i;
      } else if (s[i] == '_') {
        ++i;
        if (i < n && s[i] == '_') ++i;
      } else if (s[i] == '-') {
        while (i < n && s[i] == '-') ++i;
      } else {
        return false;
      }
      if (i == n || !IsLowerAlnum(s[i])) return false;
      while (i < n && IsLowerAlnum(s[i])) ++i;
    }
    if (i == n) return true;
    ++i;  // '/'
  }
}

// Grammar().tag, whole.
bool IsTag(absl::string_view s) {
  if (s.empty() || s.size() > 128 || !IsWord(s[0])) return false;
  return std::all_of(s.begin() + 1, s.end(), [](char c) { return IsWord(c) || c == '.' || c == '-'; });
}

// Grammar().digest, whole.
bool IsDigestSyntax(absl::string_view s) {
  const size_t colon = s.find(':');
  if (colon == absl::string_view::npos) return false;
  const absl::string_view algorithm = s.substr(0, colon), hex = s.substr(colon + 1);
  if (hex.size() < 32 || !std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit)) return false;
  // [A-Za-z][A-Za-z0-9]* runs joined by one of "-_+.".
  bool need_letter = true;
  for (char c : algorithm) {
    if (need_letter) {
      if (!absl::ascii_isalpha(c)) return false;
      need_letter = false;
    } else if (c == '-' || c == '_' || c == '+' || c == '.') {
      need_letter = true;
    } else if (!IsAlnum(c)) {
      return false;
    }
  }
  return !need_letter;
}

}  // namespace

namespace internal {

std::optional<ReferenceParts> SplitReferenceFast(absl::string_view full) {
  // The domain is the first segment when it is one: the grammar prefers a
  // domain, and a domain cannot hold '/'. Otherwise RE2 decides.
  const size_t slash = full.find('/');
  if (slash == absl::string_view::npos || !IsDomain(full.substr(0, slash))) return std::nullopt;
  ReferenceParts parts;
  parts.domain = full.substr(0, slash);
  absl::string_view rest = full.substr(slash + 1);
  // A path holds neither ':' nor '@', a tag no '@': the first of them ends it.
  const size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    parts.digest = rest.substr(at + 1);
    if (!IsDigestSyntax(parts.digest)) return std::nullopt;
    rest = rest.substr(0, at);
  }
  const size_t colon = rest.find(':');
  if (colon != absl::string_view::npos) {
    parts.tag = rest.substr(colon + 1);
    if (!IsTag(parts.tag)) return std::nullopt;
    rest = rest.substr(0, colon);
  }
  if (!IsPath(rest)) return std::nullopt;
  parts.path = rest;
  return parts;
}

std::optional<ReferenceParts> SplitReferenceRe2(absl::string_view full) {
  std::string name, tag, digest, domain, path;
  if (!RE2::FullMatch(Piece(full), ReferenceRe(), &name, &tag, &digest)) return std::nullopt;
  if (!RE2::FullMatch(name, AnchoredNameRe(), &domain, &path)) return std::nullopt;
  // Views into `full`: each capture is a substring of it at a known place.
  ReferenceParts parts;
  parts.domain = full.substr(0, domain.size());
  parts.path = full.substr(name.size() - path.size(), path.size());
  parts.tag = tag.empty() ? absl::string_view() : full.substr(name.size() + 1, tag.size());
  parts.digest = digest.empty() ? absl::string_view() : full.substr(full.size() - digest.size());
  return parts;
}

}  // namespace internal

std::string Reference::Name() const {
  if (domain.empty()) return path;
  return absl::StrCat(domain, "/", path);
}

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (!digest.empty()) absl::StrAppend(&out, "@", digest);
  return out;
}

std::string Reference::Familiar() const {
  Reference familiar = *this;
  if (familiar.domain == kDefaultDomain) {
    familiar.domain.clear();
    if (absl::StartsWith(familiar.path, kOfficialRepoPrefix) &&
        std::count(familiar.path.begin(), familiar.path.end(), '/') == 1) {
      familiar.path.erase(0, kOfficialRepoPrefix.size());
    }
  }
  return familiar.String();
}

absl::StatusOr<Reference> ParseNormalizedNamed(absl::string_view s) {
  if (s.empty()) return Invalid(s, "empty reference");
  if (IsBareIdentifier(s)) {
    return Invalid(s,
                   "invalid repository name: a 64-character hexadecimal "
                   "string is an image ID, not a name");
  }
  auto [domain, remainder] = SplitDockerDomain(s);
  const absl::string_view repository =
      absl::string_view(remainder).substr(0, remainder.find(':'));
  if (HasAsciiUpper(repository)) {
    return Invalid(s,
                   "invalid reference format: repository name must be "
                   "lowercase");
  }

  const std::string full = absl::StrCat(domain, "/", remainder);
  // The hand-written split takes the common, unambiguous references (RE2 was
  // a seventh of ImageStatus by name); RE2 the rest, and says what is wrong.
  std::optional<internal::ReferenceParts> parts = internal::SplitReferenceFast(full);
  if (!parts) parts = internal::SplitReferenceRe2(full);
  if (!parts) {
    if (RE2::FullMatch(absl::AsciiStrToLower(full), ReferenceRe())) {
      return Invalid(s, "repository name must be lowercase");
    }
    return Invalid(s, FormatProblem(s));
  }
  const size_t name_size =
      parts->domain.size() + (parts->domain.empty() ? 0 : 1) + parts->path.size();
  if (name_size > kNameTotalLengthMax) {
    return Invalid(
        s, absl::StrCat("normalised repository name is ", name_size,
                        " characters, more than ", kNameTotalLengthMax));
  }
  if (!parts->digest.empty()) {
    std::string problem = DigestProblem(parts->digest);
    if (!problem.empty()) return Invalid(s, problem);
  }
  Reference ref;
  ref.domain = std::string(parts->domain);
  ref.path = std::string(parts->path);
  ref.tag = std::string(parts->tag);
  ref.digest = std::string(parts->digest);
  return ref;
}

absl::StatusOr<std::string> NormalizeImageRef(absl::string_view s) {
  absl::StatusOr<Reference> ref = ParseNormalizedNamed(s);
  if (!ref.ok()) return ref.status();
  if (!ref->digest.empty()) {
    ref->tag.clear();
  } else if (ref->tag.empty()) {
    ref->tag = std::string(kDefaultTag);
  }
  return ref->String();
}

store::CriName ClassifyImageName(absl::string_view name) {
  if (IsBareIdentifier(name) || DigestProblem(name).empty()) return {};
  absl::StatusOr<Reference> ref = ParseNormalizedNamed(name);
  if (!ref.ok()) return {};
  if (!ref->digest.empty()) {
    return {ref->tag.empty() ? store::CriName::kDigest : store::CriName::kTaggedDigest,
            ref->String()};
  }
  if (!ref->tag.empty()) return {store::CriName::kTag, ref->String()};
  return {};
}

RepoRefs SplitImageNames(absl::Span<const std::string> names) {
  std::vector<store::CriName> refs;
  refs.reserve(names.size());
  for (const std::string& name : names) refs.push_back(ClassifyImageName(name));
  return RepoRefsOf(refs);
}

RepoRefs RepoRefsOf(absl::Span<const store::CriName> refs) {
  // Digest entries carry containerd's rank: with a tag before without.
  std::vector<std::pair<bool, std::string>> digests;
  RepoRefs out;
  for (const store::CriName& ref : refs) {
    switch (ref.kind) {
      case store::CriName::kTag:
        out.repo_tags.push_back(ref.ref);
        break;
      case store::CriName::kDigest:
      case store::CriName::kTaggedDigest:
        digests.emplace_back(ref.kind == store::CriName::kDigest, ref.ref);
        break;
      case store::CriName::kNone:
        break;
    }
  }
  std::sort(out.repo_tags.begin(), out.repo_tags.end());
  out.repo_tags.erase(std::unique(out.repo_tags.begin(), out.repo_tags.end()),
                      out.repo_tags.end());
  std::sort(digests.begin(), digests.end());
  digests.erase(std::unique(digests.begin(), digests.end()), digests.end());
  out.repo_digests.reserve(digests.size());
  for (auto& [untagged, digest] : digests) {
    out.repo_digests.push_back(std::move(digest));
  }
  return out;
}

bool IsImageId(absl::string_view s) {
  absl::ConsumePrefix(&s, kSha256Prefix);
  return IsBareIdentifier(s);
}

std::string FullImageId(absl::string_view id) {
  return absl::StartsWith(id, kSha256Prefix) ? std::string(id) : absl::StrCat(kSha256Prefix, id);
}

std::optional<std::string> ImageIdPrefix(absl::string_view s) {
  absl::ConsumePrefix(&s, kSha256Prefix);
  if (s.empty() || s.size() > kSha256HexLength || !IsLowerHex(s)) {
    return std::nullopt;
  }
  return absl::StrCat(kSha256Prefix, s);
}

}  // namespace imaged::cri
