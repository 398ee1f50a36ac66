#include "store/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "store/test_dirs.h"

namespace imaged::store {
namespace {

void Write(const std::string& path, size_t bytes) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(fd.valid()) << path;
  ASSERT_TRUE(WriteAll(fd.get(), std::string(bytes, 'x'), path).ok());
  ASSERT_EQ(::fsync(fd.get()), 0);  // allocated now, not at writeback
}

int64_t Allocated(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return static_cast<int64_t>(st.st_blocks) * 512;
}

TEST(MeasureTreeTest, CountsAllocatedBytesAndInodesOfTheWholeTree) {
  const std::string root = MakeTempDir("tree");
  ASSERT_TRUE(MakeDirs(root + "/a/b/c").ok());
  Write(root + "/one", 100000);
  Write(root + "/a/b/c/two", 300000);
  ASSERT_EQ(::symlink("/etc", (root + "/a/link").c_str()), 0);  // not followed
  absl::StatusOr<TreeUsage> u = MeasureTree(root);
  ASSERT_TRUE(u.ok()) << u.status();
  // root, a, b, c, one, two, link
  EXPECT_EQ(u->inodes, 7);
  int64_t expected = 0;
  for (const char* p : {"", "/a", "/a/b", "/a/b/c", "/one", "/a/b/c/two", "/a/link"}) {
    expected += Allocated(root + p);
  }
  EXPECT_EQ(u->bytes, expected);
  EXPECT_GE(u->bytes, 400000);
}

TEST(MeasureTreeTest, HardLinkedFileCountsOnce) {
  const std::string root = MakeTempDir("tree");
  Write(root + "/file", 200000);
  ASSERT_EQ(::link((root + "/file").c_str(), (root + "/again").c_str()), 0);
  absl::StatusOr<TreeUsage> u = MeasureTree(root);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->inodes, 2);  // the directory and the file
  EXPECT_EQ(u->bytes, Allocated(root) + Allocated(root + "/file"));
}

TEST(MeasureTreeTest, FollowsRemovalsAndMissingRootIsNotFound) {
  const std::string root = MakeTempDir("tree");
  Write(root + "/big", 1 << 20);
  absl::StatusOr<TreeUsage> before = MeasureTree(root);
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(::unlink((root + "/big").c_str()), 0);
  absl::StatusOr<TreeUsage> after = MeasureTree(root);
  ASSERT_TRUE(after.ok());
  EXPECT_LE(after->bytes, before->bytes - (1 << 20));
  EXPECT_TRUE(absl::IsNotFound(MeasureTree(root + "/nothing").status()));
}

}  // namespace
}  // namespace imaged::store
