// Small POSIX file helpers for the durable write path: every failure comes
// back as a status naming the path.
#ifndef IMAGED_STORE_FILES_H_
#define IMAGED_STORE_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imaged::store {

// mkdir -p with mode 0755.
absl::Status MakeDirs(const std::string& path);
// fsync of a directory, so that renames and creations in it survive a crash.
absl::Status SyncDir(const std::string& path);
// Writes all of `data` to `fd`, retrying short writes and EINTR.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path);
// Reads up to `n` bytes at `offset`; fewer only at end of file.
absl::Status PreadUpTo(int fd, int64_t offset, size_t n, std::string* out, const std::string& path);
// rm -rf; a missing path is not an error.
absl::Status RemoveAll(const std::string& path);
// The names in a directory, without "." and ".."; NotFound when it is missing.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path);
// Size of a file; NotFound when it is missing.
absl::StatusOr<int64_t> FileSize(const std::string& path);

// What a directory tree takes on disk, as du counts it: allocated bytes
// (st_blocks) and inodes, each hard-linked inode once, symlinks not
// followed, other filesystems mounted inside not entered. Files that vanish
// during the walk are skipped; a missing root is NotFound.
struct TreeUsage {
  int64_t bytes = 0;
  int64_t inodes = 0;
};
absl::StatusOr<TreeUsage> MeasureTree(const std::string& root);

// A file descriptor closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_FILES_H_
