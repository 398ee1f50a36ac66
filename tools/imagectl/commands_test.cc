// imagectl's commands against a real imaged.
#include "tools/imagectl/commands.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/test_server.h"
#include "store/test_images.h"

namespace imaged::imagectl {
namespace {

using ::testing::HasSubstr;

class ImagectlTest : public ::testing::Test {
 protected:
  ImagectlTest() : content_(fixture_.channel()), images_(fixture_.channel()) {
    channel_ = Connect(fixture_.config().address);
  }
  store::TestImage Add(const std::string& name, const std::string& seed) {
    store::TestImageSpec spec;
    spec.seed = seed;
    auto ti = store::MakeTestImage(content_, "k8s.io", spec);
    EXPECT_TRUE(ti.ok());
    store::Image image;
    image.name = name;
    image.target = ti->manifest;
    image.target.platform.reset();
    EXPECT_TRUE(images_.Create("k8s.io", image).ok());
    return *ti;
  }

  plugin::ServerFixture fixture_;
  plugin::RemoteContentStore content_;
  plugin::RemoteImageStore images_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST(HumanSizeTest, LikeCrictl) {
  EXPECT_EQ(HumanSize(0), "0B");
  EXPECT_EQ(HumanSize(999), "999B");
  EXPECT_EQ(HumanSize(1500), "1.5kB");
  EXPECT_EQ(HumanSize(2220000), "2.22MB");
  EXPECT_EQ(HumanSize(123456789), "123MB");
}

TEST_F(ImagectlTest, ImagesListsTagsWithShortIds) {
  store::TestImage ti = Add("docker.io/library/busybox:1.36", "a");
  std::ostringstream out;
  ASSERT_TRUE(Images(channel_, "", false, false, out).ok());
  EXPECT_THAT(out.str(), HasSubstr("IMAGE"));
  EXPECT_THAT(out.str(), HasSubstr("docker.io/library/busybox"));
  EXPECT_THAT(out.str(), HasSubstr("1.36"));
  EXPECT_THAT(out.str(), HasSubstr(ti.config.digest.substr(7, 13)));
  std::ostringstream quiet;
  ASSERT_TRUE(Images(channel_, "", false, true, quiet).ok());
  EXPECT_EQ(quiet.str(), ti.config.digest + "\n");
}

TEST_F(ImagectlTest, InspectiAndRmi) {
  Add("docker.io/library/app:1", "b");
  std::ostringstream out;
  ASSERT_TRUE(InspectImage(channel_, "app:1", out).ok());
  EXPECT_THAT(out.str(), HasSubstr("\"chainID\""));
  EXPECT_THAT(out.str(), HasSubstr("docker.io/library/app:1"));
  std::ostringstream rm;
  ASSERT_TRUE(RemoveImages(channel_, {"app:1"}, rm).ok());
  EXPECT_THAT(rm.str(), HasSubstr("Deleted: app:1"));
  std::ostringstream missing;
  EXPECT_TRUE(absl::IsNotFound(InspectImage(channel_, "app:1", missing)));
}

TEST_F(ImagectlTest, LsAndCheckReportUnresolvedRecords) {
  Add("docker.io/library/ok:1", "c");
  store::Image dangling;
  dangling.name = "docker.io/library/dangling:1";
  dangling.target = store::Descriptor{"application/vnd.oci.image.manifest.v1+json",
                                      "sha256:" + std::string(64, 'e'), 10, {}, std::nullopt};
  ASSERT_TRUE(images_.Create("k8s.io", dangling).ok());
  std::ostringstream ls;
  ASSERT_TRUE(ListRecords(channel_, "k8s.io", {}, ls).ok());
  EXPECT_THAT(ls.str(), HasSubstr("<unresolved>"));
  std::ostringstream check;
  ASSERT_TRUE(Check(channel_, false, check).ok()) << check.str();
  EXPECT_THAT(check.str(), HasSubstr("records: 2, resolved: 1, unresolved: 1"));
  EXPECT_THAT(check.str(), HasSubstr("unresolved: k8s.io/docker.io/library/dangling:1: waiting for manifest"));
}

TEST_F(ImagectlTest, ImageFsInfoIsJson) {
  Add("docker.io/library/fs:1", "d");
  std::ostringstream out;
  ASSERT_TRUE(ImageFsInfo(channel_, out).ok());
  EXPECT_THAT(out.str(), HasSubstr("\"mountpoint\": \"" + fixture_.config().root + "\""));
  EXPECT_THAT(out.str(), HasSubstr("\"inodesUsed\""));
}

}  // namespace
}  // namespace imaged::imagectl
