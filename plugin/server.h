// The imaged server: opens the stores under the root, serves every service on
// one unix socket (plus grpc.health.v1 and server reflection), expires stale
// ingests in the background, and shuts down by draining in-flight calls.
#ifndef IMAGED_PLUGIN_SERVER_H_
#define IMAGED_PLUGIN_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <vector>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "plugin/call_slots.h"
#include "plugin/config.h"
#include "cri/registry/http_client.h"
#include "cri/image_service.h"
#include "cri/registry/puller.h"
#include "plugin/admin_service.h"
#include "plugin/content_service.h"
#include "plugin/cri_service.h"
#include "plugin/event_exchange.h"
#include "plugin/events_service.h"
#include "plugin/streaming_service.h"
#include "plugin/health_service.h"
#include "plugin/async_calls.h"
#include "plugin/images_service.h"
#include "plugin/metrics.h"
#include "plugin/gc_scheduler.h"
#include "plugin/images_client.h"
#include "plugin/mirror_runner.h"
#include "store/limits.h"
#include "store/gc.h"
#include "store/local_stores.h"
#include "store/rocksdb_lease_store.h"
#include "store/metadata_db.h"
#include "store/rocksdb_content_store.h"
#include "store/rocksdb_image_store.h"

namespace imaged::plugin {

// The health service name whose status says whether mirror mode is
// connected to containerd (imaged itself stays SERVING either way).
inline constexpr char kMirrorHealthService[] = "imaged.mirror";

class Server {
 public:
  // Opens everything and starts serving. FailedPrecondition when the socket
  // is in use by a live server or the root by another process;
  // PermissionDenied when the root is not writable.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config);
  // Shuts down if still running.
  ~Server();

  // Stops accepting, gives in-flight calls until the configured timeout, then
  // cancels them, closes RocksDB and removes the socket. Idempotent.
  void Shutdown();

  const Config& config() const { return config_; }
  store::RocksDbContentStore& content_store() { return *content_; }
  store::RocksDbImageStore& image_store() { return *images_; }
  store::RocksDbLeaseStore& lease_store() { return *leases_; }
  store::MetadataDb& metadata_db() { return *db_; }
  EventExchange& events() { return events_; }
  // The CRI ImageService (its ListImages cache statistics, for metrics and tests).
  CriService& cri_service();
  // The metrics endpoint's port (when metrics_address is set), else 0.
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  GcScheduler& gc() { return *gc_; }

 private:
  explicit Server(Config config) : config_(std::move(config)) {}
  // Start's steps, in order.
  // The stores on config_.root, recovered, retried and checked.
  absl::Status OpenStores(const store::Platform& platform);
  // The collector and its scheduler.
  void StartCollector();
  // The gRPC services, the CRI service with its puller (standalone) or its
  // mirror of containerd (mirror mode).
  absl::Status BuildServices(const store::Platform& platform);
  // Listens, starts the background threads, the metrics server and the mirror.
  absl::Status Serve();
  void ExpireLoop();
  // Every second, hands memory glibc holds free back to the kernel: gRPC's
  // per-call allocations otherwise keep the arenas at their peak.
  void TrimLoop();
  // The text /metrics serves.
  std::string RenderMetrics();
  void AppendMirrorMetrics(std::string* out);

  Config config_;
  std::unique_ptr<store::LocalStores> stores_;
  // stores_'s, typed.
  store::MetadataDb* db_ = nullptr;
  store::RocksDbContentStore* content_ = nullptr;
  store::RocksDbImageStore* images_ = nullptr;
  store::RocksDbLeaseStore* leases_ = nullptr;
  std::unique_ptr<store::Collector> collector_;
  std::unique_ptr<GcScheduler> gc_;
  std::unique_ptr<cri::ImageService> cri_;
  std::unique_ptr<cri::HttpClient> http_;
  std::unique_ptr<cri::Puller> puller_;
  std::unique_ptr<MirrorRunner> mirror_;
  std::unique_ptr<RemoteImageCommitter> mirror_committer_;
  EventExchange events_;
  StreamManager streams_;  // containerd 2.x Streaming calls (standalone mode)
  // Transfers and Archives imports running at once, together.
  CallSlots transfer_slots_{store::kMaxConcurrentTransfers};
  // ListImages, ImageStatus, Health/Check and Streaming: outlives grpc_.
  AsyncCalls async_calls_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  CriService* cri_service_ = nullptr;  // one of services_
  HealthService* health_ = nullptr;    // one of services_
  std::unique_ptr<grpc::Server> grpc_;
  absl::Notification stop_;
  std::thread expirer_;
  std::thread trimmer_;
  RpcMetrics rpc_metrics_;
  std::unique_ptr<MetricsServer> metrics_;
  bool shut_down_ = false;
};

// Makes the socket path usable: creates its directory, removes a stale socket.
// FailedPrecondition when a live server answers on it or it is not a socket.
absl::Status PrepareSocket(const std::string& path);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_SERVER_H_
