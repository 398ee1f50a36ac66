#include "plugin/upstream_calls.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

bool MeansNotAnswering(grpc::StatusCode code) {
  return code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::UNAVAILABLE;
}

std::chrono::system_clock::time_point After(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

}  // namespace

UpstreamCalls::Call::Call(UpstreamCalls* owner, std::string method, Kind kind,
                          std::unique_ptr<grpc::ClientContext> ctx)
    : owner_(owner), method_(std::move(method)), kind_(kind), ctx_(std::move(ctx)) {
  waiting_since_ns_ = absl::GetCurrentTimeNanos();
}

UpstreamCalls::Call::~Call() { owner_->Unregister(this); }

void UpstreamCalls::Call::Progress() { waiting_since_ns_ = absl::GetCurrentTimeNanos(); }

void UpstreamCalls::Call::Idle() { waiting_since_ns_ = 0; }

absl::Status UpstreamCalls::Call::Finish(const grpc::Status& status) {
  const bool idle = idle_cancelled_.load();
  owner_->Note(method_, kind_, status, idle);
  if (idle && status.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::DeadlineExceededError(
        absl::StrCat(method_, ": no answer for ", absl::FormatDuration(owner_->options_.timeout)));
  }
  if (status.error_code() == grpc::StatusCode::CANCELLED && owner_->cancelled()) {
    return absl::CancelledError(absl::StrCat(method_, ": cancelled: imaged is shutting down"));
  }
  absl::Status s = FromGrpcStatus(status);
  if (MeansNotAnswering(status.error_code())) {
    return absl::Status(s.code(), absl::StrCat(method_, ": ", s.message()));
  }
  return s;
}

UpstreamCalls::UpstreamCalls(Options options) : options_(options) {
  if (options_.timeout != absl::InfiniteDuration()) watchdog_ = std::thread([this] { Watchdog(); });
}

UpstreamCalls::~UpstreamCalls() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (watchdog_.joinable()) watchdog_.join();
}

UpstreamCalls* UpstreamCalls::Unbounded() {
  static UpstreamCalls* calls = new UpstreamCalls(Options());
  return calls;
}

std::unique_ptr<UpstreamCalls::Call> UpstreamCalls::Start(absl::string_view method,
                                                          absl::string_view ns, Kind kind) {
  std::unique_ptr<Call> call(
      new Call(this, std::string(method), kind, std::make_unique<grpc::ClientContext>()));
  if (!ns.empty()) call->ctx_->AddMetadata(kNamespaceHeader, std::string(ns));
  absl::Duration deadline = absl::InfiniteDuration();
  switch (kind) {
    case Kind::kPoint: deadline = options_.timeout; break;
    case Kind::kList: deadline = options_.list_timeout; break;
    case Kind::kStream: deadline = options_.stream_cap; break;
    case Kind::kSubscription:
    case Kind::kForwarded: break;
  }
  if (deadline != absl::InfiniteDuration()) call->ctx_->set_deadline(After(deadline));
  Register(call.get());
  return call;
}

std::unique_ptr<UpstreamCalls::Call> UpstreamCalls::StartForwarded(
    absl::string_view method, const grpc::ServerContextBase& parent, absl::Duration cap) {
  // Propagation carries the parent's deadline (gRPC takes the earlier of the
  // two) and its cancellation.
  std::unique_ptr<Call> call(new Call(this, std::string(method), Kind::kForwarded,
                                      grpc::ClientContext::FromServerContext(parent)));
  if (cap != absl::InfiniteDuration()) call->ctx_->set_deadline(After(cap));
  Register(call.get());
  return call;
}

void UpstreamCalls::Register(Call* call) {
  absl::MutexLock lock(&mu_);
  // gRPC keeps a cancel that comes before the call starts and applies it then.
  if (cancelled_) call->ctx_->TryCancel();
  active_.insert(call);
}

void UpstreamCalls::Unregister(Call* call) {
  absl::MutexLock lock(&mu_);
  active_.erase(call);
}

void UpstreamCalls::CancelAll() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (Call* call : active_) call->ctx_->TryCancel();
}

bool UpstreamCalls::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void UpstreamCalls::Note(const std::string& method, Kind kind, const grpc::Status& status,
                         bool idle_cancelled) {
  if (this == Unbounded()) return;
  std::function<void(bool)> notify;
  bool answering = true;
  {
    absl::MutexLock lock(&mu_);
    if (status.error_code() == grpc::StatusCode::CANCELLED && !idle_cancelled) return;
    const bool timed_out =
        idle_cancelled || status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (timed_out) ++timeouts_[method];
    // A forwarded call that ran out of its caller's time (a long pull) is
    // counted, but says nothing of whether containerd answers.
    if (kind == Kind::kForwarded && status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return;
    answering = !timed_out && !MeansNotAnswering(status.error_code());
    if (!answering) {
      // Only the first 200 bytes of what the peer said.
      health_.last_failure = absl::StrCat(
          method, ": ", idle_cancelled ? "no answer" : status.error_message().substr(0, 200));
    }
    if (answering == health_.answering && health_.since != absl::InfinitePast()) return;
    const bool changed = answering != health_.answering;
    health_.answering = answering;
    health_.since = absl::Now();
    if (changed) notify = on_health_;
  }
  if (notify) notify(answering);
}

UpstreamCalls::Health UpstreamCalls::health() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

std::map<std::string, int64_t> UpstreamCalls::Timeouts() const {
  absl::MutexLock lock(&mu_);
  return timeouts_;
}

void UpstreamCalls::OnHealthChange(std::function<void(bool)> fn) {
  absl::MutexLock lock(&mu_);
  on_health_ = std::move(fn);
}

void UpstreamCalls::Watchdog() {
  const absl::Duration period =
      std::clamp(options_.timeout / 10, absl::Milliseconds(20), absl::Seconds(1));
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), period)) {
    const int64_t idle_since = absl::GetCurrentTimeNanos() - absl::ToInt64Nanoseconds(options_.timeout);
    for (Call* call : active_) {
      if (call->kind_ != Kind::kStream || call->idle_cancelled_) continue;
      const int64_t waiting_since = call->waiting_since_ns_.load();
      if (waiting_since != 0 && waiting_since < idle_since) {
        call->idle_cancelled_ = true;
        call->ctx_->TryCancel();
      }
    }
  }
}

}  // namespace imaged::plugin
