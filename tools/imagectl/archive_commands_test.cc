// imagectl import / export against two real imaged servers: an image leaves
// one through an archive and arrives in the other under the same image ID.
#include "tools/imagectl/archive_commands.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/test_server.h"
#include "store/files.h"
#include "store/test_images.h"
#include "tools/imagectl/commands.h"

namespace imaged::imagectl {
namespace {

using ::testing::HasSubstr;

class ArchiveCommandsTest : public ::testing::Test {
 protected:
  ArchiveCommandsTest()
      : from_channel_(Connect(from_.config().address)),
        to_channel_(Connect(to_.config().address)),
        dir_(plugin::MakeShortTempDir()) {}
  ~ArchiveCommandsTest() override { store::RemoveAll(dir_).IgnoreError(); }

  store::TestImage Add(const std::string& name, const std::string& seed) {
    plugin::RemoteContentStore content(from_.channel());
    plugin::RemoteImageStore images(from_.channel());
    store::TestImageSpec spec;
    spec.seed = seed;
    auto ti = store::MakeTestImage(content, "k8s.io", spec);
    EXPECT_TRUE(ti.ok());
    store::Image image;
    image.name = name;
    image.target = ti->manifest;
    image.target.platform.reset();
    EXPECT_TRUE(images.Create("k8s.io", image).ok());
    return *ti;
  }

  // Runs `imagectl ARGS...` (parsing included) against `ch`.
  absl::Status Run(const std::shared_ptr<grpc::Channel>& ch, std::vector<std::string> args,
                   std::string* out) {
    CLI::App app;
    ArchiveCommands commands(app);
    args.insert(args.begin(), "imagectl");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return absl::InvalidArgumentError(e.what());
    }
    std::ostringstream os;
    absl::Status s = commands.Run(ch, os);
    *out = os.str();
    return s;
  }

  plugin::ServerFixture from_;
  plugin::ServerFixture to_;
  std::shared_ptr<grpc::Channel> from_channel_;
  std::shared_ptr<grpc::Channel> to_channel_;
  std::string dir_;
};

TEST_F(ArchiveCommandsTest, ExportThenImportKeepsTheImageId) {
  store::TestImage a = Add("docker.io/library/alpha:1", "a");
  store::TestImage b = Add("quay.io/x/beta:2", "b");
  std::string file = dir_ + "/images.tar";
  std::string out;
  absl::Status s = Run(from_channel_, {"export", "alpha:1", "quay.io/x/beta:2", file}, &out);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out, HasSubstr("exported 2 image(s) to " + file));

  s = Run(to_channel_, {"import", file}, &out);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("docker.io/library/alpha:1\t", a.manifest.digest, "\t",
                                          a.config.digest, "\n")));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("quay.io/x/beta:2\t", b.manifest.digest, "\t",
                                          b.config.digest, "\n")));
  EXPECT_THAT(out, HasSubstr("imported 2 image(s) into namespace k8s.io"));

  std::ostringstream ids;
  ASSERT_TRUE(Images(to_channel_, "", false, true, ids).ok());
  std::vector<std::string> want = {a.config.digest, b.config.digest};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ids.str(), absl::StrCat(want[0], "\n", want[1], "\n"));
}

TEST_F(ArchiveCommandsTest, NamespaceFlagChoosesWhereImagesGo) {
  Add("docker.io/library/alpha:1", "a");
  std::string file = dir_ + "/a.tar";
  std::string out;
  ASSERT_TRUE(Run(from_channel_, {"export", "alpha:1", file}, &out).ok());
  ASSERT_TRUE(Run(to_channel_, {"import", "-n", "other", file}, &out).ok()) << out;
  plugin::RemoteImageStore images(to_.channel());
  EXPECT_TRUE(images.Get("other", "docker.io/library/alpha:1").ok());
  EXPECT_TRUE(absl::IsNotFound(images.Get("k8s.io", "docker.io/library/alpha:1").status()));
}

TEST_F(ArchiveCommandsTest, ExportErrorsLeaveNoFile) {
  std::string file = dir_ + "/none.tar";
  std::string out;
  absl::Status s = Run(from_channel_, {"export", "missing:1", file}, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_FALSE(store::FileSize(file).ok());
  // One argument is not IMAGE... FILE.
  EXPECT_TRUE(absl::IsInvalidArgument(Run(from_channel_, {"export", file}, &out)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      Run(from_channel_, {"export", "--platform", "a/b/c/d", "x:1", file}, &out)));
}

TEST_F(ArchiveCommandsTest, ImportOfAMissingFileIsNotFound) {
  std::string out;
  absl::Status s = Run(to_channel_, {"import", dir_ + "/nope.tar"}, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("nope.tar"));
}

}  // namespace
}  // namespace imaged::imagectl
