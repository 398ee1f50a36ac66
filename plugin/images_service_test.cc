// The Images and Events services over a real imaged: the image contract
// through the wire, the namespace rules, and events after commit.
#include <grpcpp/create_channel.h>

#include "api/containerd/events/image.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/test_server.h"
#include "store/digest.h"
#include "store/image_store_contract.h"

namespace imaged::plugin {
namespace {

using store::ImageStoreContract;

class GrpcImageHarness final : public store::ImageHarness {
 public:
  GrpcImageHarness() : images_(fixture_.channel()), content_(fixture_.channel()) {}
  store::ImageStore& images() override { return images_; }
  store::ContentStore& content() override { return content_; }

 private:
  ServerFixture fixture_;
  RemoteImageStore images_;
  RemoteContentStore content_;
};

INSTANTIATE_TEST_SUITE_P(Grpc, ImageStoreContract,
                         ::testing::Values(store::ImageHarnessFactory(
                             [] { return std::make_unique<GrpcImageHarness>(); })));

imagespb::Image Proto(const std::string& name) {
  imagespb::Image image;
  image.set_name(name);
  image.mutable_target()->set_media_type("application/vnd.oci.image.manifest.v1+json");
  image.mutable_target()->set_digest(store::Sha256::Of(name));
  image.mutable_target()->set_size(10);
  return image;
}

TEST(ImagesServiceTest, NamespaceIsRequired) {
  ServerFixture f;
  auto stub = imagespb::Images::NewStub(f.channel());
  imagespb::ListImagesRequest req;
  imagespb::ListImagesResponse resp;
  grpc::ClientContext none;
  EXPECT_EQ(stub->List(&none, req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::ClientContext bad;
  bad.AddMetadata("containerd-namespace", "not/valid");
  EXPECT_EQ(stub->List(&bad, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(ImagesServiceTest, WritesPublishEventsAfterTheyCommit) {
  ServerFixture f;
  auto events = eventspb::Events::NewStub(f.channel());
  grpc::ClientContext sub_ctx;
  eventspb::SubscribeRequest sub_req;
  sub_req.add_filters("topic~=/images/");
  auto stream = events->Subscribe(&sub_ctx, sub_req);
  stream->WaitForInitialMetadata();

  auto images = imagespb::Images::NewStub(f.channel());
  {
    imagespb::CreateImageRequest req;
    *req.mutable_image() = Proto("docker.io/library/evented:1");
    imagespb::CreateImageResponse resp;
    auto ctx = NamespacedContext("k8s.io");
    ASSERT_TRUE(images->Create(ctx.get(), req, &resp).ok());
    // A failed write publishes nothing.
    auto again = NamespacedContext("k8s.io");
    EXPECT_EQ(images->Create(again.get(), req, &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  }
  {
    imagespb::DeleteImageRequest req;
    req.set_name("docker.io/library/evented:1");
    google::protobuf::Empty resp;
    auto ctx = NamespacedContext("k8s.io");
    ASSERT_TRUE(images->Delete(ctx.get(), req, &resp).ok());
  }
  eventspb::Envelope e;
  ASSERT_TRUE(stream->Read(&e));
  EXPECT_EQ(e.topic(), "/images/create");
  EXPECT_EQ(e.namespace_(), "k8s.io");
  EXPECT_EQ(e.event().type_url(), "containerd.services.images.v1.ImageCreate");
  imagespb::ImageCreate created;
  ASSERT_TRUE(created.ParseFromString(e.event().value()));
  EXPECT_EQ(created.name(), "docker.io/library/evented:1");
  ASSERT_TRUE(stream->Read(&e));
  EXPECT_EQ(e.topic(), "/images/delete");
  sub_ctx.TryCancel();
}

TEST(ImagesServiceTest, SubscribeFiltersOnEventFields) {
  ServerFixture f;
  auto events = eventspb::Events::NewStub(f.channel());
  grpc::ClientContext sub_ctx;
  eventspb::SubscribeRequest sub_req;
  sub_req.add_filters("event.name==wanted");
  auto stream = events->Subscribe(&sub_ctx, sub_req);
  stream->WaitForInitialMetadata();
  auto images = imagespb::Images::NewStub(f.channel());
  for (const char* name : {"unwanted", "wanted"}) {
    imagespb::CreateImageRequest req;
    *req.mutable_image() = Proto(name);
    imagespb::CreateImageResponse resp;
    auto ctx = NamespacedContext("default");
    ASSERT_TRUE(images->Create(ctx.get(), req, &resp).ok());
  }
  eventspb::Envelope e;
  ASSERT_TRUE(stream->Read(&e));
  imagespb::ImageCreate created;
  ASSERT_TRUE(created.ParseFromString(e.event().value()));
  EXPECT_EQ(created.name(), "wanted");
  sub_ctx.TryCancel();
}

TEST(EventsServiceTest, PublishValidatesTopicAndNamespace) {
  ServerFixture f;
  auto events = eventspb::Events::NewStub(f.channel());
  eventspb::PublishRequest req;
  req.set_topic("/custom/thing");
  req.mutable_event()->set_type_url("x");
  google::protobuf::Empty resp;
  auto ok = NamespacedContext("default");
  EXPECT_TRUE(events->Publish(ok.get(), req, &resp).ok());
  grpc::ClientContext none;
  EXPECT_EQ(events->Publish(&none, req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  for (const char* topic : {"", "noslash", "/", "/a//b", "/a b"}) {
    req.set_topic(topic);
    auto ctx = NamespacedContext("default");
    EXPECT_EQ(events->Publish(ctx.get(), req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << topic;
  }
  grpc::ClientContext sub_ctx;
  eventspb::SubscribeRequest bad;
  bad.add_filters("topic==");
  auto stream = events->Subscribe(&sub_ctx, bad);
  eventspb::Envelope e;
  EXPECT_FALSE(stream->Read(&e));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace imaged::plugin
