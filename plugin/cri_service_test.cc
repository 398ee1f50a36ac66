// runtime.v1.ImageService over a real imaged: what kubelet and crictl see,
// right after writes through containerd's Images API.
#include <grpcpp/create_channel.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "api/containerd/events/image.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/test_server.h"
#include "store/test_images.h"

namespace imaged::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace cripb = ::runtime::v1;

class CriServiceTest : public ::testing::Test {
 protected:
  CriServiceTest()
      : content_(fixture_.channel()),
        images_(fixture_.channel()),
        cri_(cripb::ImageService::NewStub(fixture_.channel())) {}

  store::TestImage Make(const std::string& seed, const std::string& user = "") {
    store::TestImageSpec spec;
    spec.seed = seed;
    spec.user = user;
    auto ti = store::MakeTestImage(content_, "k8s.io", spec);
    EXPECT_TRUE(ti.ok()) << ti.status();
    return *ti;
  }
  void Name(const std::string& name, const store::TestImage& ti, store::Labels labels = {}) {
    store::Image image;
    image.name = name;
    image.target = ti.manifest;
    image.target.platform.reset();
    image.labels = std::move(labels);
    auto created = images_.Create("k8s.io", image);
    ASSERT_TRUE(created.ok()) << created.status();
  }
  cripb::ImageStatusResponse Status(const std::string& ref, bool verbose = false) {
    cripb::ImageStatusRequest req;
    req.mutable_image()->set_image(ref);
    req.set_verbose(verbose);
    cripb::ImageStatusResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = cri_->ImageStatus(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  std::vector<cripb::Image> List(const std::string& filter = "") {
    cripb::ListImagesRequest req;
    if (!filter.empty()) req.mutable_filter()->mutable_image()->set_image(filter);
    cripb::ListImagesResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(cri_->ListImages(&ctx, req, &resp).ok());
    return {resp.images().begin(), resp.images().end()};
  }

  ServerFixture fixture_;
  RemoteContentStore content_;
  RemoteImageStore images_;
  std::unique_ptr<cripb::ImageService::Stub> cri_;
};

TEST_F(CriServiceTest, ImagesApiWritesAreVisibleToTheNextCriCall) {
  store::TestImage ti = Make("a", "1000:1000");
  Name("docker.io/library/app:1", ti);
  Name(absl::StrCat("docker.io/library/app@", ti.manifest.digest), ti);
  Name(ti.config.digest, ti);
  std::vector<cripb::Image> list = List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id(), ti.config.digest);
  EXPECT_THAT(list[0].repo_tags(), ElementsAre("docker.io/library/app:1"));
  EXPECT_THAT(list[0].repo_digests(),
              ElementsAre(absl::StrCat("docker.io/library/app@", ti.manifest.digest)));
  EXPECT_EQ(list[0].uid().value(), 1000);
  EXPECT_EQ(list[0].username(), "");
  EXPECT_EQ(list[0].spec().image(), ti.config.digest);
  EXPECT_GT(list[0].size(), 0u);

  ASSERT_TRUE(images_.Delete("k8s.io", "docker.io/library/app:1").ok());
  EXPECT_THAT(List()[0].repo_tags(), IsEmpty());
}

// ImageStatus answers are kept per request until the index changes
// (status_answer_cache.h): the same request, repeated after each kind of
// write, must get what the index says now.
TEST_F(CriServiceTest, RepeatedImageStatusFollowsEveryKindOfWrite) {
  const std::string tag = "docker.io/library/w:1";
  auto id_of = [&](const std::string& ref) {
    cripb::ImageStatusResponse resp = Status(ref);
    return resp.has_image() ? resp.image().id() : std::string("(none)");
  };
  EXPECT_EQ(id_of(tag), "(none)");
  EXPECT_EQ(id_of(tag), "(none)");

  store::TestImage a = Make("wa");
  store::TestImage b = Make("wb");
  Name(tag, a);  // created
  Name(a.config.digest, a);
  EXPECT_EQ(id_of(tag), a.config.digest);
  EXPECT_EQ(id_of(tag), a.config.digest);
  EXPECT_FALSE(Status(a.config.digest).image().pinned());
  EXPECT_EQ(Status(a.config.digest).image().repo_tags_size(), 1);

  store::Image moved;  // the tag moved to another image
  moved.name = tag;
  moved.target = b.manifest;
  moved.target.platform.reset();
  ASSERT_TRUE(images_.Update("k8s.io", moved, {}, "", std::nullopt).ok());
  EXPECT_EQ(id_of(tag), b.config.digest);
  EXPECT_EQ(Status(a.config.digest).image().repo_tags_size(), 0);

  moved.labels = {{"io.cri-containerd.pinned", "pinned"}};  // labels only
  ASSERT_TRUE(images_.Update("k8s.io", moved, {"labels"}, "", std::nullopt).ok());
  EXPECT_TRUE(Status(tag).image().pinned());

  EXPECT_NE(Status(tag, /*verbose=*/true).info().count("info"), 0u);
  EXPECT_EQ(Status(tag).info().count("info"), 0u);  // not the verbose answer

  ASSERT_TRUE(images_.Delete("k8s.io", tag, "").ok());  // deleted
  EXPECT_EQ(id_of(tag), "(none)");
  Name(tag, a);  // and back
  EXPECT_EQ(id_of(tag), a.config.digest);

  // Its config removed through the Content API: no image (and none listed)
  // until the config is back.
  ASSERT_TRUE(content_.Delete("k8s.io", a.config.digest).ok());
  EXPECT_EQ(id_of(tag), "(none)");
  EXPECT_EQ(id_of(a.config.digest), "(none)");
  EXPECT_THAT(List(), IsEmpty());
  for (const auto& [digest, bytes] : a.blobs) {
    if (digest == a.config.digest) ASSERT_TRUE(store::WriteBlob(content_, "k8s.io", bytes).ok());
  }
  EXPECT_EQ(id_of(tag), a.config.digest);
  EXPECT_EQ(List().size(), 1u);

  // Removed through the CRI (last: its collection takes the test images'
  // blobs, which carry no gc.ref labels).
  cripb::RemoveImageRequest remove;
  remove.mutable_image()->set_image(tag);
  cripb::RemoveImageResponse removed;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cri_->RemoveImage(&ctx, remove, &removed).ok());
  EXPECT_EQ(id_of(tag), "(none)");
  EXPECT_EQ(id_of(a.config.digest), "(none)");
}

TEST_F(CriServiceTest, ImageStatusOfMissingImageIsEmptyOk) {
  cripb::ImageStatusResponse resp = Status("docker.io/library/nope:1");
  EXPECT_FALSE(resp.has_image());
}

TEST_F(CriServiceTest, VerboseStatusCarriesChainIdAndImageSpec) {
  store::TestImage ti = Make("v", "nobody");
  Name("docker.io/library/v:1", ti);
  cripb::ImageStatusResponse resp = Status("v:1", /*verbose=*/true);
  ASSERT_TRUE(resp.has_image());
  EXPECT_EQ(resp.image().username(), "nobody");
  EXPECT_FALSE(resp.image().has_uid());
  ASSERT_EQ(resp.info().count("info"), 1u);
  nlohmann::json info = nlohmann::json::parse(resp.info().at("info"));
  EXPECT_EQ(info["chainID"], store::ChainId(ti.diff_ids));
  EXPECT_EQ(info["imageSpec"]["config"]["User"], "nobody");
  EXPECT_EQ(info["imageSpec"]["rootfs"]["diff_ids"].size(), ti.diff_ids.size());
}

TEST_F(CriServiceTest, RemoveImageIsIdempotent) {
  store::TestImage ti = Make("r");
  Name("docker.io/library/r:1", ti);
  Name(ti.config.digest, ti);
  for (int i = 0; i < 2; ++i) {
    cripb::RemoveImageRequest req;
    req.mutable_image()->set_image("r:1");
    cripb::RemoveImageResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(cri_->RemoveImage(&ctx, req, &resp).ok());
  }
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_THAT(*images_.List("k8s.io", {}), IsEmpty());
}

TEST_F(CriServiceTest, RemoveImagePublishesADeleteEventPerName) {
  store::TestImage ti = Make("ev");
  Name("docker.io/library/ev:1", ti);
  Name(ti.config.digest, ti);
  auto events = ::containerd::services::events::v1::Events::NewStub(fixture_.channel());
  grpc::ClientContext sub_ctx;
  ::containerd::services::events::v1::SubscribeRequest sub;
  sub.add_filters("topic==\"/images/delete\"");
  auto stream = events->Subscribe(&sub_ctx, sub);
  stream->WaitForInitialMetadata();
  cripb::RemoveImageRequest req;
  req.mutable_image()->set_image("ev:1");
  cripb::RemoveImageResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cri_->RemoveImage(&ctx, req, &resp).ok());
  std::vector<std::string> names;
  ::containerd::services::events::v1::Envelope e;
  for (int i = 0; i < 2 && stream->Read(&e); ++i) {
    ::containerd::services::images::v1::ImageDelete deleted;
    ASSERT_TRUE(deleted.ParseFromString(e.event().value()));
    EXPECT_EQ(e.namespace_(), "k8s.io");
    names.push_back(deleted.name());
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("docker.io/library/ev:1", ti.config.digest));
  sub_ctx.TryCancel();
}

TEST_F(CriServiceTest, ListImagesFilterAndStreamImages) {
  Name("docker.io/library/a:1", Make("a"));
  Name("docker.io/library/b:1", Make("b"));
  EXPECT_EQ(List().size(), 2u);
  ASSERT_EQ(List("b:1").size(), 1u);
  EXPECT_THAT(List("b:1")[0].repo_tags(), ElementsAre("docker.io/library/b:1"));

  cripb::StreamImagesRequest req;
  grpc::ClientContext ctx;
  auto reader = cri_->StreamImages(&ctx, req);
  cripb::StreamImagesResponse resp;
  int images = 0;
  while (reader->Read(&resp)) images += resp.images_size();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(images, 2);
}

// Pulls from real registries are tested end to end (testdata/pull_test.sh);
// these are the answers that need no registry.
TEST_F(CriServiceTest, PullImageRefusesBadRequestsWithInvalidArgument) {
  struct Case {
    const char* image;
    const char* auth;
  };
  for (const Case& c : {Case{"", ""}, Case{"Not/Valid:Ref!", ""}, Case{"127.0.0.1:1/app:1", "!!"}}) {
    cripb::PullImageRequest req;
    req.mutable_image()->set_image(c.image);
    req.mutable_auth()->set_auth(c.auth);
    cripb::PullImageResponse resp;
    grpc::ClientContext ctx;
    EXPECT_EQ(cri_->PullImage(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.image;
  }
}

TEST_F(CriServiceTest, PullImageFromAnUnreachableRegistryIsUnavailableNamingIt) {
  cripb::PullImageRequest req;
  req.mutable_image()->set_image("127.0.0.1:1/app:1");  // nothing listens on port 1
  cripb::PullImageResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = cri_->PullImage(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("127.0.0.1:1/app:1"));
  EXPECT_TRUE(List("").empty());
}

TEST_F(CriServiceTest, ImageFsInfoReportsTheContentRoot) {
  store::TestImageSpec spec;
  spec.seed = "fs";
  spec.layer_size = 100000;  // files; the config and manifest are rows
  ASSERT_TRUE(store::MakeTestImage(content_, "k8s.io", spec).ok());
  cripb::ImageFsInfoRequest req;
  cripb::ImageFsInfoResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cri_->ImageFsInfo(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.image_filesystems_size(), 1u);
  const auto& fs = resp.image_filesystems(0);
  EXPECT_EQ(fs.fs_id().mountpoint(), fixture_.config().root);
  EXPECT_GT(fs.used_bytes().value(), 0u);
  EXPECT_GT(fs.used_bytes().value(), 200000u);
  EXPECT_EQ(fs.inodes_used().value(), 2u);  // the two layers
  EXPECT_GT(fs.timestamp(), 1600000000LL * 1000000000LL);
}

}  // namespace
}  // namespace imaged::plugin
