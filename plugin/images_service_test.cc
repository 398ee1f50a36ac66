// The Images and Events services over a real imaged: the image contract
// through the wire, the namespace rules, and events after commit.
#include <grpcpp/create_channel.h>

#include <atomic>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/containerd/events/image.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

// What the store contract cannot say: the fields as containerd 2.x clients
// send them, and what a 1.6 client (which sends neither) gets.
TEST(ImagesServiceTest, ContainerdTwoFieldsOverTheWire) {
  ServerFixture f;
  auto images = imagespb::Images::NewStub(f.channel());
  auto create = [&](const std::string& name, std::optional<std::pair<int64_t, int32_t>> epoch) {
    imagespb::CreateImageRequest req;
    *req.mutable_image() = Proto(name);
    if (epoch) {
      req.mutable_source_date_epoch()->set_seconds(epoch->first);
      req.mutable_source_date_epoch()->set_nanos(epoch->second);
    }
    imagespb::CreateImageResponse resp;
    auto ctx = NamespacedContext("default");
    grpc::Status s = images->Create(ctx.get(), req, &resp);
    return std::make_pair(s, resp);
  };
  auto [ok, created] = create("epoch", std::make_pair(int64_t{1700000000}, 0));
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(created.image().created_at().seconds(), 1700000000);
  EXPECT_EQ(created.image().updated_at().seconds(), 1700000000);
  // Times outside what the index keeps are refused, and nothing is stored.
  for (auto bad : {std::make_pair(int64_t{253402300800}, 0), std::make_pair(int64_t{0}, -1),
                   std::make_pair(int64_t{0}, 1000000000)}) {
    auto [s, unused] = create("bad-epoch", bad);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.first;
  }
  imagespb::GetImageRequest get;
  get.set_name("bad-epoch");
  imagespb::GetImageResponse got;
  auto get_ctx = NamespacedContext("default");
  EXPECT_EQ(images->Get(get_ctx.get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);

  auto remove = [&](const std::string& name, const char* target) {
    imagespb::DeleteImageRequest req;
    req.set_name(name);
    if (target != nullptr) req.mutable_target()->set_digest(target);
    google::protobuf::Empty resp;
    auto ctx = NamespacedContext("default");
    return images->Delete(ctx.get(), req, &resp).error_code();
  };
  // A target naming another digest: NotFound, the record stays.
  const std::string other = store::Sha256::Of("other");
  EXPECT_EQ(remove("epoch", other.c_str()), grpc::StatusCode::NOT_FOUND);
  auto again = NamespacedContext("default");
  EXPECT_TRUE(images->Get(again.get(), [] {
    imagespb::GetImageRequest r;
    r.set_name("epoch");
    return r;
  }(), &got).ok());
  // A target without a digest guards nothing; no target is a 1.6 delete.
  EXPECT_EQ(remove("epoch", ""), grpc::StatusCode::OK);
  ASSERT_TRUE(create("plain", std::nullopt).first.ok());
  EXPECT_EQ(remove("plain", nullptr), grpc::StatusCode::OK);
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

// Creates are answered from the image store's threads, not a handler's: a
// shutdown with calls in flight still answers each (OK only once durable),
// and every acknowledged image is there after a restart.
TEST(ImagesServiceTest, ShutdownAnswersCreatesInFlightAndKeepsTheAcknowledged) {
  ServerFixture f;
  const Config config = f.config();
  auto stub = imagespb::Images::NewStub(f.channel());
  constexpr int kThreads = 8;
  absl::Mutex mu;
  std::vector<std::string> acknowledged;
  std::set<grpc::StatusCode> failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        const std::string name = absl::StrCat("docker.io/library/app:", t, "-", i);
        imagespb::CreateImageRequest req;
        *req.mutable_image() = Proto(name);
        imagespb::CreateImageResponse resp;
        grpc::ClientContext ctx;
        ctx.AddMetadata("containerd-namespace", "default");
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        grpc::Status st = stub->Create(&ctx, req, &resp);
        absl::MutexLock lock(&mu);
        if (!st.ok()) {  // the server is going: this thread is done
          failures.insert(st.error_code());
          return;
        }
        acknowledged.push_back(name);
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(absl::Condition(
                            +[](std::vector<std::string>* a) { return a->size() >= 200; },
                            &acknowledged),
                        absl::Seconds(30));
  }
  f.server()->Shutdown();
  for (std::thread& t : threads) t.join();
  EXPECT_GE(acknowledged.size(), 200u);
  for (grpc::StatusCode code : failures) {
    EXPECT_TRUE(code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::CANCELLED)
        << code;
  }

  auto restarted = Server::Start(config);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  RemoteImageStore again(
      grpc::CreateChannel("unix:" + config.address, grpc::InsecureChannelCredentials()));
  for (const std::string& name : acknowledged) {
    EXPECT_TRUE(again.Get("default", name).ok()) << name;
  }
}

}  // namespace
}  // namespace imaged::plugin
