#include "plugin/startup_pages.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace imaged::plugin {
namespace {

TEST(StartupPages, OnlyReadOnlyPrivateFileMappingsAreChosen) {
  const char* maps =
      "55d0c0a00000-55d0c0a20000 r--p 00000000 fe:00 1001 /usr/bin/imaged\n"
      "55d0c0a20000-55d0c0b00000 r-xp 00020000 fe:00 1001 /usr/bin/imaged\n"
      "55d0c0b00000-55d0c0b10000 rw-p 00100000 fe:00 1001 /usr/bin/imaged\n"
      "55d0c1000000-55d0c2000000 rw-p 00000000 00:00 0          [heap]\n"
      "7f0000000000-7f0000001000 ---p 00000000 fe:00 2002 /usr/lib/librocksdb.so.7\n"
      "7f0000001000-7f0000002000 r--s 00000000 fe:00 3003 /dev/shm/shared\n"
      "7f0000002000-7f0000003000 r-xp 00000000 00:00 0          [vdso]\n"
      "7f0000003000-7f0000004000 r--p 00000000 00:00 0\n"
      "7f0000004000-7f0000005000 r--p 00000000 fe:00 4004 /path with spaces/lib.so\n"
      "not a mapping line\n"
      "7f0000006000-7f0000005000 r--p 00000000 fe:00 5005 /backwards\n";
  std::vector<MappedRange> ranges = ReadOnlyFileMappings(maps);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0].begin, 0x55d0c0a00000u);
  EXPECT_EQ(ranges[0].end, 0x55d0c0a20000u);
  EXPECT_EQ(ranges[1].begin, 0x55d0c0a20000u);
  EXPECT_EQ(ranges[2].begin, 0x7f0000004000u);
}

// A read-only private mapping of a file on disk, its pages touched, is
// reclaimed: its pages leave the page cache (nothing else maps them).
TEST(StartupPages, TouchedFilePagesAreReclaimed) {
  const char* dir = std::getenv("TEST_TMPDIR");
  ASSERT_NE(dir, nullptr);
  struct statfs fs;
  ASSERT_EQ(::statfs(dir, &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs pages are not reclaimed without swap";
  const std::string path = std::string(dir) + "/pages";
  constexpr size_t kSize = 4 << 20;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, 'x');
  for (size_t i = 0; i < kSize; i += chunk.size()) {
    ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
  }
  ASSERT_EQ(::fsync(fd), 0);  // clean pages: reclaim need not write them
  void* map = ::mmap(nullptr, kSize, PROT_READ, MAP_PRIVATE, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  const long page = ::sysconf(_SC_PAGESIZE);
  volatile char sum = 0;
  for (size_t i = 0; i < kSize; i += page) sum += static_cast<const char*>(map)[i];
  auto resident = [&] {
    std::vector<unsigned char> in_core(kSize / page);
    EXPECT_EQ(::mincore(map, kSize, in_core.data()), 0);
    size_t n = 0;
    for (unsigned char c : in_core) n += c & 1;
    return n;
  };
  const size_t before = resident();
  EXPECT_EQ(before, kSize / page);

  absl::StatusOr<int64_t> advised = PageOutFileMappings();
  if (!advised.ok() && advised.status().code() == absl::StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << advised.status();
  }
  ASSERT_TRUE(advised.ok()) << advised.status();
  EXPECT_GE(*advised, static_cast<int64_t>(kSize));
  // Reclaim may skip the odd page still on its way to an LRU list.
  EXPECT_LT(resident(), before / 2);
  // The mapping still reads the file.
  EXPECT_EQ(static_cast<const char*>(map)[kSize - 1], 'x');
  EXPECT_GT(ResidentBytes(), 0);
  ::munmap(map, kSize);
  ::close(fd);
}

}  // namespace
}  // namespace imaged::plugin
