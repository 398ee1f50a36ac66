#include "plugin/health_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "store/limits.h"

namespace imaged::plugin {

using Status = healthpb::HealthCheckResponse;

HealthService::HealthService() {
  absl::MutexLock lock(&mu_);
  serving_[""] = true;
}

void HealthService::ServeAsync(AsyncCalls* calls) {
  calls->AddRawUnary(this, &HealthService::RequestCheck, &HealthService::AnswerCheck);
}

void HealthService::SetServingStatus(const std::string& service, bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  serving_[service] = serving;
  ++version_;
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  ++version_;
}

Status::ServingStatus HealthService::StatusOf(const std::string& service) {
  auto it = serving_.find(service);
  if (it == serving_.end()) return Status::SERVICE_UNKNOWN;
  return it->second && !shut_down_ ? Status::SERVING : Status::NOT_SERVING;
}

void HealthService::AnswerCheck(const grpc::ByteBuffer& raw, RawReply reply) {
  healthpb::HealthCheckRequest req;
  if (!ParseRaw(raw, &req)) {
    reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed HealthCheckRequest"), {});
    return;
  }
  if (req.service().size() > store::kMaxHealthServiceLength) {
    reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("service name of ", req.service().size(),
                                    " bytes: at most ", store::kMaxHealthServiceLength, " are allowed")),
          {});
    return;
  }
  Status resp;
  {
    absl::MutexLock lock(&mu_);
    resp.set_status(StatusOf(req.service()));
  }
  if (resp.status() == Status::SERVICE_UNKNOWN) {
    reply(grpc::Status(grpc::StatusCode::NOT_FOUND,
                       absl::StrCat("unknown service ", store::Quote(req.service()))),
          {});
    return;
  }
  reply(grpc::Status::OK, Serialized(resp));
}

grpc::Status HealthService::Watch(grpc::ServerContext* ctx,
                                  const healthpb::HealthCheckRequest* req,
                                  grpc::ServerWriter<healthpb::HealthCheckResponse>* writer) {
  if (req->service().size() > store::kMaxHealthServiceLength) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("service name of ", req->service().size(),
                                     " bytes: at most ", store::kMaxHealthServiceLength, " are allowed"));
  }
  absl::MutexLock lock(&mu_);
  if (watchers_ >= store::kMaxHealthWatchers) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("too many health watches (", store::kMaxHealthWatchers, ")"));
  }
  ++watchers_;
  Status sent;
  bool first = true;
  for (uint64_t seen = version_ - 1;;) {
    if (version_ != seen) {
      seen = version_;
      Status now;
      now.set_status(StatusOf(req->service()));
      if (first || now.status() != sent.status()) {
        mu_.Unlock();
        const bool ok = writer->Write(now);
        mu_.Lock();
        if (!ok) break;
        sent = now;
        first = false;
      }
      continue;  // a change made during the write goes out before the watch may end
    }
    if (shut_down_ || ctx->IsCancelled()) break;
    // Woken by a change; a second's wait notices a caller that has gone.
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return version_ != seen;
    };
    mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Seconds(1));
  }
  --watchers_;
  return grpc::Status::OK;
}

}  // namespace imaged::plugin
