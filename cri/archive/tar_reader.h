// One pass over a tar stream as an archive import reads it: plain or
// compressed (gzip, bzip2, xz, zstd, lz4, decoded in process by libarchive;
// never by running a program, as libarchive's filter_all would for lrzip or
// lzop), entry by entry, nothing extracted. It knows nothing of images or
// stores, so it can be fuzzed alone (tools/fuzz: archive_reader_fuzzer).
#ifndef IMAGED_CRI_ARCHIVE_TAR_READER_H_
#define IMAGED_CRI_ARCHIVE_TAR_READER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imaged::cri {

// Fills `buf` with up to `len` bytes of the archive; 0 at its end.
using ArchiveReadFn = std::function<absl::StatusOr<size_t>(char* buf, size_t len)>;

// Go's path.Clean, as containerd's importer cleans the names in a tar.
std::string CleanPath(absl::string_view path);

struct TarEntry {
  enum class Type {
    kFile,  // a regular file of `size` bytes: read it with TarReader::Read
    kLink,  // a hard link or symlink: `name` stands for `target`
  };
  Type type = Type::kFile;
  std::string name;    // CleanPath of the entry's name
  std::string target;  // kLink: the path in the archive it stands for, cleaned
  int64_t size = 0;    // kFile
};

class TarReader {
 public:
  // `read` is not owned and must outlive the reader; it is asked for
  // `buffer` bytes at a time.
  explicit TarReader(const ArchiveReadFn& read, size_t buffer = 1 << 20);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next file or link (directories, devices and the like are skipped);
  // nullopt after the last. Errors: InvalidArgument when the stream is not a
  // tar (at its first header), or an entry has no readable name or a
  // negative size; DataLoss when it is damaged or truncated ("after entry
  // <name>: ..."); whatever `read` returned, unchanged (read_failed() then
  // says so).
  absl::StatusOr<std::optional<TarEntry>> Next();
  // Up to `n` more bytes of the current file into `buf`; 0 at its end.
  // Never more than the entry's header said: DataLoss when the stream holds
  // more. Other errors as Next's (DataLoss without the entry's name).
  absl::StatusOr<size_t> Read(char* buf, size_t n);
  // Whether the last error was `read`'s own.
  bool read_failed() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_ARCHIVE_TAR_READER_H_
