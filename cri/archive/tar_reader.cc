#include "cri/archive/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "store/limits.h"

namespace imaged::cri {
std::string CleanPath(absl::string_view path) {
  bool rooted = absl::StartsWith(path, "/");
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!rooted) {
        out.emplace_back("..");
      }
      continue;
    }
    out.emplace_back(part);
  }
  std::string joined = absl::StrJoin(out, "/");
  if (rooted) return absl::StrCat("/", joined);
  return joined.empty() ? "." : joined;
}

struct TarReader::State {
  const ArchiveReadFn* read = nullptr;
  // Not zeroed: libarchive sees only what the read function filled.
  std::unique_ptr<char[]> buf;
  size_t buf_size = 0;
  absl::Status read_status;  // the read function's error, once it failed
  struct archive* a = nullptr;
  bool opened = false;
  bool first = true;
  std::string last_entry = "(start)";
  int64_t remaining = 0;  // of the current file, by its header

  static la_ssize_t Callback(struct archive* a, void* data, const void** out) {
    auto* s = static_cast<State*>(data);
    absl::StatusOr<size_t> n = (*s->read)(s->buf.get(), s->buf_size);
    if (!n.ok()) {
      s->read_status = n.status();
      archive_set_error(a, EIO, "%s", std::string(n.status().message()).c_str());
      return -1;
    }
    *out = s->buf.get();
    return static_cast<la_ssize_t>(*n);
  }

  // The read function's error, else libarchive's as DataLoss.
  absl::Status Damaged(absl::string_view where) const {
    if (!read_status.ok()) return read_status;
    const char* msg = archive_error_string(a);
    return absl::DataLossError(absl::StrCat(where, "damaged or truncated tar: ",
                                            msg != nullptr ? msg : "unknown error"));
  }
};

TarReader::TarReader(const ArchiveReadFn& read, size_t buffer)
    : state_(std::make_unique<State>()) {
  state_->read = &read;
  state_->buf.reset(new char[buffer]);
  state_->buf_size = buffer;
  state_->a = archive_read_new();
  archive_read_support_filter_gzip(state_->a);
  archive_read_support_filter_bzip2(state_->a);
  archive_read_support_filter_xz(state_->a);
  archive_read_support_filter_zstd(state_->a);
  archive_read_support_filter_lz4(state_->a);
  archive_read_support_format_tar(state_->a);
}

TarReader::~TarReader() { archive_read_free(state_->a); }

bool TarReader::read_failed() const { return !state_->read_status.ok(); }

absl::StatusOr<std::optional<TarEntry>> TarReader::Next() {
  State& s = *state_;
  s.remaining = 0;  // what was left of the last file is skipped
  if (!s.opened) {
    s.opened = true;
    if (archive_read_open(s.a, &s, nullptr, State::Callback, nullptr) != ARCHIVE_OK) {
      if (!s.read_status.ok()) return s.read_status;
      const char* msg = archive_error_string(s.a);
      return absl::InvalidArgumentError(
          absl::StrCat("not a tar archive: ", msg != nullptr ? msg : "unknown error"));
    }
  }
  for (;;) {
    struct archive_entry* entry = nullptr;
    int r = archive_read_next_header(s.a, &entry);
    if (r == ARCHIVE_EOF) return std::nullopt;
    if (r == ARCHIVE_RETRY) continue;
    if (r < ARCHIVE_WARN) {
      if (s.first && s.read_status.ok()) {
        const char* msg = archive_error_string(s.a);
        return absl::InvalidArgumentError(
            absl::StrCat("not a tar archive: ", msg != nullptr ? msg : "unknown error"));
      }
      return s.Damaged(absl::StrCat("after entry ", store::Quote(s.last_entry), ": "));
    }
    s.first = false;
    const char* raw = archive_entry_pathname(entry);
    if (raw == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("an entry after ", store::Quote(s.last_entry), " has no readable name"));
    }
    s.last_entry = raw;
    TarEntry out;
    out.name = CleanPath(raw);
    if (const char* hard = archive_entry_hardlink(entry)) {
      out.type = TarEntry::Type::kLink;
      out.target = CleanPath(hard);
      return out;
    }
    mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      size_t slash = out.name.rfind('/');
      std::string dir = slash == std::string::npos ? "." : out.name.substr(0, slash);
      out.type = TarEntry::Type::kLink;
      out.target = CleanPath(absl::StrCat(dir, "/", target != nullptr ? target : ""));
      return out;
    }
    if (type != AE_IFREG) continue;
    out.size = archive_entry_size(entry);
    // GNU base-256 and pax sizes can be negative; a reader that trusted one
    // reserved ~2^64 bytes (archive_reader_fuzzer's first find).
    if (out.size < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", store::Quote(out.name), " has a negative size (", out.size, ")"));
    }
    s.remaining = out.size;
    return out;
  }
}

absl::StatusOr<size_t> TarReader::Read(char* buf, size_t n) {
  State& s = *state_;
  la_ssize_t got = archive_read_data(s.a, buf, n);
  if (got < 0) return s.Damaged("");
  // libarchive can yield more than the header said (a GNU sparse map on an
  // ordinary entry; archive_reader_fuzzer's second find): callers size
  // their buffers and limits by the header, so more is damage.
  if (got > s.remaining) {
    return absl::DataLossError(absl::StrCat("damaged tar: more data than the header of entry ",
                                            store::Quote(s.last_entry), " says"));
  }
  s.remaining -= got;
  return static_cast<size_t>(got);
}

}  // namespace imaged::cri
