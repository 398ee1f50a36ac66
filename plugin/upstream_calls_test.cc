#include "plugin/upstream_calls.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "gtest/gtest.h"

namespace imaged::plugin {
namespace {

namespace imagespb = ::containerd::services::images::v1;
namespace contentpb = ::containerd::services::content::v1;

// A peer that stops answering when told to (what a SIGSTOPped containerd
// looks like from a client: the connection stays, nothing comes back).
class HangingPeer final : public imagespb::Images::Service, public contentpb::Content::Service {
 public:
  std::atomic<bool> hang{false};
  absl::Notification release;  // ends every hang (so the test server can stop)

  grpc::Status Get(grpc::ServerContext* ctx, const imagespb::GetImageRequest*,
                   imagespb::GetImageResponse*) override {
    Wait(ctx);
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "image not found");
  }
  // One message, then silence.
  grpc::Status Read(grpc::ServerContext* ctx, const contentpb::ReadContentRequest*,
                    grpc::ServerWriter<contentpb::ReadContentResponse>* writer) override {
    contentpb::ReadContentResponse resp;
    resp.set_data("x");
    writer->Write(resp);
    Wait(ctx);
    return grpc::Status::OK;
  }

 private:
  void Wait(grpc::ServerContext* ctx) {
    while (hang && !ctx->IsCancelled() && !release.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
    }
  }
};

class UpstreamCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(static_cast<imagespb::Images::Service*>(&peer_));
    builder.RegisterService(static_cast<contentpb::Content::Service*>(&peer_));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    images_ = imagespb::Images::NewStub(channel_);
    content_ = contentpb::Content::NewStub(channel_);
  }
  void TearDown() override {
    peer_.release.Notify();
    server_->Shutdown();
  }

  absl::Status Get(UpstreamCalls& calls) {
    imagespb::GetImageRequest req;
    req.set_name("docker.io/library/busybox:1.36");
    imagespb::GetImageResponse resp;
    auto call = calls.Start("Images/Get", "k8s.io");
    return call->Finish(images_->Get(call->get(), req, &resp));
  }

  HangingPeer peer_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<imagespb::Images::Stub> images_;
  std::unique_ptr<contentpb::Content::Stub> content_;
};

UpstreamCalls::Options Timeout(absl::Duration d) {
  UpstreamCalls::Options o;
  o.timeout = d;
  o.list_timeout = d * 4;
  return o;
}

TEST_F(UpstreamCallsTest, PointCallToAHungPeerEndsAtItsDeadlineAndMarksItNotAnswering) {
  UpstreamCalls calls(Timeout(absl::Milliseconds(300)));
  std::vector<bool> changes;
  calls.OnHealthChange([&](bool answering) { changes.push_back(answering); });
  EXPECT_TRUE(absl::IsNotFound(Get(calls)));  // an answer, even NotFound, is answering
  EXPECT_TRUE(calls.health().answering);

  peer_.hang = true;
  const absl::Time start = absl::Now();
  absl::Status s = Get(calls);
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_NE(s.message().find("Images/Get"), std::string::npos) << s;
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Seconds(3));
  UpstreamCalls::Health h = calls.health();
  EXPECT_FALSE(h.answering);
  EXPECT_NE(h.last_failure.find("Images/Get"), std::string::npos) << h.last_failure;
  EXPECT_EQ(calls.Timeouts()["Images/Get"], 1);

  peer_.hang = false;
  EXPECT_TRUE(absl::IsNotFound(Get(calls)));
  EXPECT_TRUE(calls.health().answering);
  EXPECT_EQ(changes, (std::vector<bool>{false, true}));
}

TEST_F(UpstreamCallsTest, CancelAllEndsCallsInFlightAndEveryLaterCall) {
  UpstreamCalls calls(UpstreamCalls::Options{});  // no deadline at all
  peer_.hang = true;
  absl::Status in_flight;
  absl::Notification done;
  std::thread t([&] {
    in_flight = Get(calls);
    done.Notify();
  });
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(300)));
  calls.CancelAll();
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  t.join();
  EXPECT_TRUE(absl::IsCancelled(in_flight)) << in_flight;
  // Shutting down is not the peer's fault.
  EXPECT_TRUE(calls.health().answering);

  peer_.hang = false;
  const absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsCancelled(Get(calls)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(UpstreamCallsTest, StreamThatThePeerKeepsWaitingIsCancelledAsDeadlineExceeded) {
  UpstreamCalls calls(Timeout(absl::Milliseconds(300)));
  peer_.hang = true;
  contentpb::ReadContentRequest req;
  req.set_digest("sha256:0000000000000000000000000000000000000000000000000000000000000000");
  auto call = calls.Start("Content/Read", "k8s.io", UpstreamCalls::Kind::kStream);
  auto reader = content_->Read(call->get(), req);
  contentpb::ReadContentResponse resp;
  int messages = 0;
  const absl::Time start = absl::Now();
  while (reader->Read(&resp)) {
    call->Progress();
    ++messages;
  }
  absl::Status s = call->Finish(reader->Finish());
  EXPECT_EQ(messages, 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(calls.Timeouts()["Content/Read"], 1);
  EXPECT_FALSE(calls.health().answering);
}

TEST_F(UpstreamCallsTest, IdleStreamIsNotCancelledWhileItWaitsForUs) {
  UpstreamCalls calls(Timeout(absl::Milliseconds(200)));
  auto call = calls.Start("Content/Read", "k8s.io", UpstreamCalls::Kind::kStream);
  call->Idle();
  absl::SleepFor(absl::Milliseconds(600));
  // Not cancelled: a call made on the context now still goes through.
  contentpb::ReadContentRequest req;
  auto reader = content_->Read(call->get(), req);
  call->Progress();
  contentpb::ReadContentResponse resp;
  EXPECT_TRUE(reader->Read(&resp));
  while (reader->Read(&resp)) {
  }
  EXPECT_TRUE(call->Finish(reader->Finish()).ok());
}

// Tools' clients: no deadline of ours, nothing counted, health untouched
// even when a call runs out of a deadline its caller set.
TEST_F(UpstreamCallsTest, UnboundedRecordsNothing) {
  UpstreamCalls* calls = UpstreamCalls::Unbounded();
  EXPECT_TRUE(absl::IsNotFound(Get(*calls)));
  peer_.hang = true;
  imagespb::GetImageRequest req;
  imagespb::GetImageResponse resp;
  auto call = calls->Start("Images/Get", "k8s.io");
  call->get()->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(call->Finish(images_->Get(call->get(), req, &resp))));
  EXPECT_TRUE(calls->health().answering);
  EXPECT_TRUE(calls->Timeouts().empty());
}

}  // namespace
}  // namespace imaged::plugin
