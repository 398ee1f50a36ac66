#include "plugin/startup_pages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

namespace imaged::plugin {
namespace {

// The whole of a /proc file (its size is 0 to stat); "" when unreadable.
std::string ReadProcFile(const char* path) {
  std::string text;
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buf[16384];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace

std::vector<MappedRange> ReadOnlyFileMappings(absl::string_view maps) {
  // "begin-end perms offset dev inode [path]", e.g.
  // "7f1c2a000000-7f1c2a1c4000 r-xp 00028000 fe:00 1835 /usr/lib/x86_64-linux-gnu/libc.so.6"
  std::vector<MappedRange> ranges;
  for (absl::string_view line : absl::StrSplit(maps, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 6) continue;  // no path: anonymous
    std::vector<absl::string_view> bounds = absl::StrSplit(fields[0], '-');
    absl::string_view perms = fields[1];
    uint64_t inode = 0;
    MappedRange range;
    if (bounds.size() != 2 || perms.size() != 4 ||
        !absl::SimpleHexAtoi(bounds[0], &range.begin) ||
        !absl::SimpleHexAtoi(bounds[1], &range.end) || range.end <= range.begin ||
        !absl::SimpleAtoi(fields[4], &inode)) {
      continue;
    }
    // Readable, not writable, private, and a file's ([vdso] and the like have
    // inode 0).
    if (inode == 0 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p') continue;
    ranges.push_back(range);
  }
  return ranges;
}

absl::StatusOr<int64_t> PageOutFileMappings() {
  int64_t advised = 0;
  bool unsupported = false;
  for (const MappedRange& r : ReadOnlyFileMappings(ReadProcFile("/proc/self/maps"))) {
    if (::madvise(reinterpret_cast<void*>(r.begin), r.end - r.begin, MADV_PAGEOUT) == 0) {
      advised += static_cast<int64_t>(r.end - r.begin);
    } else if (errno == EINVAL) {
      unsupported = true;
    }
    // ENOMEM: unmapped since /proc/self/maps was read; nothing to give back.
  }
  if (advised == 0 && unsupported) {
    return absl::FailedPreconditionError("the kernel has no MADV_PAGEOUT (Linux 5.4 and later)");
  }
  return advised;
}

int64_t ResidentBytes() {
  std::string statm = ReadProcFile("/proc/self/statm");
  std::vector<absl::string_view> fields = absl::StrSplit(statm, ' ');
  int64_t pages = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &pages)) return -1;
  return pages * ::sysconf(_SC_PAGESIZE);
}

}  // namespace imaged::plugin
