// CallerGone over a real sync call: false while the caller waits, however
// often it is asked, then true once the caller has cancelled, and from then
// on.
#include "plugin/grpc_status.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace imaged::plugin {
namespace {

namespace healthpb = ::grpc::health::v1;

// A Check that asks CallerGone in a tight loop (as curl's progress callback
// does while bytes arrive) until it answers true.
class AskUntilGone final : public healthpb::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext* ctx, const healthpb::HealthCheckRequest*,
                     healthpb::HealthCheckResponse*) override {
    auto gone = CallerGone(ctx);
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (!gone()) {
      if (++asked_ == 1) started_.Notify();
      if (absl::Now() > give_up) break;
    }
    saw_gone_ = absl::Now() <= give_up;
    still_gone_ = gone();
    ended_.Notify();
    return grpc::Status::OK;
  }

  std::atomic<long> asked_{0};
  absl::Notification started_;
  absl::Notification ended_;
  bool saw_gone_ = false;
  bool still_gone_ = false;
};

TEST(CallerGoneTest, FalseWhileTheCallerWaitsThenTrueOnceItCancels) {
  AskUntilGone service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = healthpb::Health::NewStub(server->InProcessChannel(grpc::ChannelArguments()));

  grpc::ClientContext ctx;
  grpc::Status status;
  std::thread caller([&] {
    healthpb::HealthCheckRequest req;
    healthpb::HealthCheckResponse resp;
    status = stub->Check(&ctx, req, &resp);
  });
  const bool started = service.started_.WaitForNotificationWithTimeout(absl::Seconds(10));
  EXPECT_TRUE(started);
  if (started) {
    // Asked many times over five intervals, the caller still there.
    absl::SleepFor(absl::FromChrono(kCallerGoneInterval) * 5);
    EXPECT_FALSE(service.ended_.HasBeenNotified());
    EXPECT_GT(service.asked_.load(), 100);
  }
  ctx.TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(service.ended_.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(service.saw_gone_);
  EXPECT_TRUE(service.still_gone_);
  server->Shutdown();
}

}  // namespace
}  // namespace imaged::plugin
