#include "plugin/grpc_status.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "store/limits.h"

namespace imaged::plugin {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  int code = static_cast<int>(status.code());
  // absl reserves no codes beyond gRPC's 0..16; anything else is a bug below us.
  if (code < 0 || code > 16) code = static_cast<int>(grpc::StatusCode::UNKNOWN);
  // A message that quotes a request field must not carry the whole field
  // back in the grpc-message trailer.
  return grpc::Status(static_cast<grpc::StatusCode>(code), store::CutErrorMessage(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::function<bool()> CallerGone(grpc::ServerContext* ctx) {
  using Clock = std::chrono::steady_clock;
  struct State {
    std::atomic<bool> asking{false};
    std::atomic<bool> gone{false};
    std::atomic<Clock::rep> next{0};  // not before then
  };
  auto state = std::make_shared<State>();
  return [ctx, state] {
    if (state->gone.load()) return true;
    const Clock::rep now = Clock::now().time_since_epoch().count();
    if (now < state->next.load(std::memory_order_relaxed)) return false;
    if (!state->asking.exchange(true)) {
      state->next.store(now + Clock::duration(kCallerGoneInterval).count(),
                        std::memory_order_relaxed);
      if (ctx->IsCancelled()) state->gone = true;
      state->asking = false;
    }
    return state->gone.load();
  };
}

}  // namespace imaged::plugin
