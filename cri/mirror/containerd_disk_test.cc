#include "cri/mirror/containerd_disk.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "store/files.h"
#include "store/test_dirs.h"

namespace imaged::cri {
namespace {

void Write(const std::string& path, size_t bytes) {
  store::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid()) << path;
  ASSERT_TRUE(store::WriteAll(fd.get(), std::string(bytes, 'x'), path).ok());
  ASSERT_EQ(::fsync(fd.get()), 0);
}

ContainerdDisk::Options At(const std::string& root) {
  ContainerdDisk::Options o;
  o.root = root;
  o.snapshotter = "native";
  o.interval = absl::Hours(1);  // only the first measurement and refreshes
  return o;
}

TEST(ContainerdDiskTest, ReportsTheSnapshotterDirectoryAndFollowsRefreshes) {
  const std::string root = store::MakeTempDir("containerd");
  const std::string snapshots = root + "/io.containerd.snapshotter.v1.native";
  const std::string blobs = root + "/io.containerd.content.v1.content/blobs/sha256";
  ASSERT_TRUE(store::MakeDirs(snapshots + "/snapshots/1/fs").ok());
  ASSERT_TRUE(store::MakeDirs(blobs).ok());
  Write(snapshots + "/snapshots/1/fs/layer", 1 << 20);
  Write(blobs + "/aaaa", 512 << 10);

  ContainerdDisk disk(At(root));
  EXPECT_EQ(disk.mountpoint(), snapshots);
  absl::StatusOr<FsUsage> first = disk.Last(absl::Seconds(10));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->mountpoint, snapshots);
  EXPECT_GE(first->used_bytes, (1 << 20) + (512 << 10));  // snapshots and content
  EXPECT_GE(first->inodes_used, 8);

  // A pull: more bytes once refreshed.
  Write(snapshots + "/snapshots/1/fs/more", 2 << 20);
  disk.Refresh();
  int64_t used = first->used_bytes;
  for (int i = 0; i < 100 && used < first->used_bytes + (2 << 20); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    used = disk.Last(absl::Seconds(1))->used_bytes;
  }
  EXPECT_GE(used, first->used_bytes + (2 << 20));

  // A removal: fewer.
  ASSERT_TRUE(store::RemoveAll(snapshots + "/snapshots/1").ok());
  disk.Refresh();
  for (int i = 0; i < 100 && used > first->used_bytes - (1 << 20); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    used = disk.Last(absl::Seconds(1))->used_bytes;
  }
  EXPECT_LE(used, first->used_bytes - (1 << 20));
}

TEST(ContainerdDiskTest, MissingDirectoriesCountAsEmpty) {
  const std::string root = store::MakeTempDir("containerd");
  ContainerdDisk disk(At(root + "/not-yet"));
  absl::StatusOr<FsUsage> u = disk.Last(absl::Seconds(10));
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->used_bytes, 0);
  EXPECT_EQ(u->mountpoint, root + "/not-yet/io.containerd.snapshotter.v1.native");
}

}  // namespace
}  // namespace imaged::cri
