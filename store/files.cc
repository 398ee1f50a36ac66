#include "store/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/errors.h"

namespace imaged::store {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return ErrnoError(ec.value(), absl::StrCat("create directory ", path));
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, absl::StrCat("open directory ", path));
  if (::fsync(fd.get()) != 0) return ErrnoError(errno, absl::StrCat("fsync directory ", path));
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, absl::StrCat("write ", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status PreadUpTo(int fd, int64_t offset, size_t n, std::string* out,
                       const std::string& path) {
  out->resize(n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out->data() + got, n - got, offset + static_cast<int64_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, absl::StrCat("read ", path));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  out->resize(got);
  return absl::OkStatus();
}

absl::Status RemoveAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return ErrnoError(ec.value(), absl::StrCat("remove ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return ErrnoError(errno, absl::StrCat("list directory ", path));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(dir);
  return names;
}

absl::StatusOr<int64_t> FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", path));
  return static_cast<int64_t>(st.st_size);
}

namespace {

struct Walk {
  dev_t dev;
  TreeUsage usage;
  std::set<std::pair<dev_t, ino_t>> linked;  // inodes with more than one name, seen

  void Count(const struct stat& st) {
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !linked.emplace(st.st_dev, st.st_ino).second) return;
    usage.bytes += static_cast<int64_t>(st.st_blocks) * 512;
    usage.inodes += 1;
  }

  // `dirfd` is open on a directory already counted. Each level holds one
  // descriptor: past kMaxDepth a tree is not entered further.
  static constexpr int kMaxDepth = 128;
  void Dir(int dirfd, int depth) {
    DIR* dir = ::fdopendir(dirfd);
    if (dir == nullptr) {
      ::close(dirfd);
      return;
    }
    while (dirent* e = ::readdir(dir)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      struct stat st;
      if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (st.st_dev != dev) continue;  // a mount inside the tree
      Count(st);
      if (!S_ISDIR(st.st_mode) || depth >= kMaxDepth) continue;
      int child = ::openat(::dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) Dir(child, depth + 1);
    }
    ::closedir(dir);
  }
};

}  // namespace

absl::StatusOr<TreeUsage> MeasureTree(const std::string& root) {
  struct stat st;
  if (::lstat(root.c_str(), &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", root));
  Walk walk{st.st_dev, {}, {}};
  walk.Count(st);
  if (S_ISDIR(st.st_mode)) {
    int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", root));
    walk.Dir(fd, 1);
  }
  return walk.usage;
}

}  // namespace imaged::store
