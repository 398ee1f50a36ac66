// grpc.health.v1 as imaged serves it: Check on the async calls' thread,
// Watch bounded, both ending cleanly at shutdown; and AsyncCalls' own
// start and shutdown, on a server of just this service.
#include "plugin/health_service.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "plugin/test_server.h"
#include "store/files.h"
#include "store/limits.h"

namespace imaged::plugin {
namespace {

using Serving = healthpb::HealthCheckResponse;

class HealthServiceTest : public ::testing::Test {
 protected:
  HealthServiceTest() : dir_(MakeShortTempDir()) {
    const std::string address = "unix:" + dir_ + "/health.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    health_.ServeAsync(&calls_);
    builder.RegisterService(&health_);
    calls_.AddTo(&builder);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    calls_.Start();
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = healthpb::Health::NewStub(channel_);
  }

  ~HealthServiceTest() override {
    Shutdown();
    store::RemoveAll(dir_).IgnoreError();
  }

  // As plugin::Server does it.
  void Shutdown() {
    if (server_ == nullptr) return;
    health_.Shutdown();
    server_->Shutdown();
    server_->Wait();
    calls_.Shutdown();
    server_.reset();
  }

  grpc::Status Check(const std::string& service, Serving* out) {
    healthpb::HealthCheckRequest req;
    req.set_service(service);
    grpc::ClientContext ctx;
    return stub_->Check(&ctx, req, out);
  }

  std::string dir_;
  AsyncCalls calls_;
  HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<healthpb::Health::Stub> stub_;
};

TEST_F(HealthServiceTest, CheckAnswersTheServerAndTheNamesSet) {
  Serving resp;
  ASSERT_TRUE(Check("", &resp).ok());
  EXPECT_EQ(resp.status(), Serving::SERVING);

  grpc::Status s = Check("imaged.mirror", &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("imaged.mirror"), std::string::npos);

  health_.SetServingStatus("imaged.mirror", false);
  ASSERT_TRUE(Check("imaged.mirror", &resp).ok());
  EXPECT_EQ(resp.status(), Serving::NOT_SERVING);
  health_.SetServingStatus("imaged.mirror", true);
  ASSERT_TRUE(Check("imaged.mirror", &resp).ok());
  EXPECT_EQ(resp.status(), Serving::SERVING);
}

TEST_F(HealthServiceTest, BadRequestsAreInvalidArgument) {
  Serving resp;
  grpc::Status s = Check(std::string(store::kMaxHealthServiceLength + 1, 'x'), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LT(s.error_message().size(), 200u);
  s = RawUnaryCall(channel_, "/grpc.health.v1.Health/Check", "\xff\xff");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(HealthServiceTest, WatchReportsChangesAndEndsAtShutdown) {
  healthpb::HealthCheckRequest req;
  req.set_service("imaged.mirror");
  grpc::ClientContext ctx;
  auto reader = stub_->Watch(&ctx, req);
  Serving got;
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.status(), Serving::SERVICE_UNKNOWN);
  health_.SetServingStatus("imaged.mirror", true);
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.status(), Serving::SERVING);
  health_.SetServingStatus("imaged.mirror", true);  // no change: nothing sent
  health_.SetServingStatus("imaged.mirror", false);
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.status(), Serving::NOT_SERVING);
  health_.SetServingStatus("imaged.mirror", true);
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.status(), Serving::SERVING);

  std::thread stopper([this] { Shutdown(); });
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(got.status(), Serving::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&got));
  reader->Finish().IgnoreError();
  stopper.join();
}

TEST_F(HealthServiceTest, WatchesAreBounded) {
  healthpb::HealthCheckRequest req;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<Serving>>> readers;
  for (int i = 0; i < store::kMaxHealthWatchers; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub_->Watch(contexts.back().get(), req));
    Serving got;
    ASSERT_TRUE(readers.back()->Read(&got)) << i;  // each is being served
  }
  grpc::ClientContext ctx;
  auto refused = stub_->Watch(&ctx, req);
  Serving got;
  EXPECT_FALSE(refused->Read(&got));
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // A watcher that goes away frees its place.
  contexts[0]->TryCancel();
  EXPECT_FALSE(readers[0]->Read(&got));
  readers[0]->Finish().IgnoreError();
  grpc::Status s;
  for (int attempt = 0; attempt < 50; ++attempt) {  // its handler notices within a second
    grpc::ClientContext again;
    auto reader = stub_->Watch(&again, req);
    if (reader->Read(&got)) {
      again.TryCancel();
      reader->Finish().IgnoreError();
      s = grpc::Status::OK;
      break;
    }
    s = reader->Finish();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(s.ok()) << s.error_message();
  for (size_t i = 1; i < readers.size(); ++i) contexts[i]->TryCancel();
  for (size_t i = 1; i < readers.size(); ++i) readers[i]->Finish().IgnoreError();
}

TEST_F(HealthServiceTest, AServerShutDownWithCallsRequestedEndsCleanly) {
  Serving resp;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Check("", &resp).ok());
  Shutdown();  // the requested calls come back failed and go; ASan sees the rest
  EXPECT_FALSE(Check("", &resp).ok());
}

}  // namespace
}  // namespace imaged::plugin
