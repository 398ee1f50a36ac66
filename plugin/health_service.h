// grpc.health.v1.Health, served by imaged itself rather than gRPC's default
// health service, which is a callback service (async_calls.h says what that
// costs every other call). Check is answered on the async calls' thread;
// Watch holds a sync thread per watcher, so watchers are bounded
// (store::kMaxHealthWatchers).
//
// "" (the server as a whole) is SERVING from the start; other names are
// set with SetServingStatus. Check of a name never set is NotFound; Watch
// of one reports SERVICE_UNKNOWN until it is set. Shutdown turns every name
// NOT_SERVING and ends the watches.
#ifndef IMAGED_PLUGIN_HEALTH_SERVICE_H_
#define IMAGED_PLUGIN_HEALTH_SERVICE_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "api/grpc/health/v1/health.grpc.pb.h"
#include "plugin/async_calls.h"

namespace imaged::plugin {

namespace healthpb = ::grpc::health::v1;

class HealthService final
    : public healthpb::Health::WithRawMethod_Check<healthpb::Health::Service> {
 public:
  HealthService();

  // Registers Check with `calls`, before the server is built.
  void ServeAsync(AsyncCalls* calls);
  void SetServingStatus(const std::string& service, bool serving);
  // Everything NOT_SERVING from now on; the watches end.
  void Shutdown();

  grpc::Status Watch(grpc::ServerContext* ctx, const healthpb::HealthCheckRequest* req,
                     grpc::ServerWriter<healthpb::HealthCheckResponse>* writer) override;

 private:
  void AnswerCheck(const grpc::ByteBuffer& raw, RawReply reply);
  healthpb::HealthCheckResponse::ServingStatus StatusOf(const std::string& service)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every change
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  int watchers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_HEALTH_SERVICE_H_
