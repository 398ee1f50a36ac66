// imaged's metrics in Prometheus' text format (version 0.0.4), served over
// HTTP on a loopback TCP port when `metrics_address` is set (off by default):
//
//   imaged_grpc_requests_total{method,code}            counter, every RPC
//   imaged_grpc_request_duration_seconds{method}       histogram, every RPC
//   imaged_cri_images, imaged_cri_index_generation,
//   imaged_cri_list_cache_{hits,builds}_total,
//   imaged_cri_list_cache_bytes,
//   imaged_cri_list_build_seconds                      the CRI index
//   imaged_rocksdb_*                                   RocksDB properties worth
//                                                      watching (keys per
//                                                      family, memtables,
//                                                      block cache, SST
//                                                      bytes, L0 files,
//                                                      pending compaction,
//                                                      background errors)
//   process_resident_memory_bytes, process_cpu_seconds_total
//
// RPCs are counted by a gRPC server interceptor (RpcMetrics), so no handler
// knows about metrics. The HTTP server answers GET /metrics (anything else
// is 404) one connection at a time: it is for a scraper, not for load.
#ifndef IMAGED_PLUGIN_METRICS_H_
#define IMAGED_PLUGIN_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "store/metadata_db.h"

namespace imaged::plugin {

// Request counts and latency histograms per gRPC method.
class RpcMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf is implied).
  static constexpr std::array<double, 16> kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};

  void Record(const std::string& method, int code, double seconds);
  // Appends both families in text format.
  void Write(std::string* out) const;
  // A factory for grpc::ServerBuilder::experimental().SetInterceptorCreators
  // that records every RPC here (this object must outlive the server).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  struct Method {
    std::map<int, uint64_t> codes;
    std::array<uint64_t, kBuckets.size() + 1> buckets{};
    double sum = 0;
    uint64_t count = 0;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Method> methods_ ABSL_GUARDED_BY(mu_);
};

// Text-format helpers: a `# HELP`/`# TYPE` header, and a sample line
// (`labels` is the inside of the braces, e.g. `family="images"`, or empty).
void AppendHeader(std::string* out, const std::string& name, const std::string& type,
                  const std::string& help);
void AppendSample(std::string* out, const std::string& name, const std::string& labels,
                  double value);
// process_resident_memory_bytes and process_cpu_seconds_total of this process.
void AppendProcessMetrics(std::string* out);
// The RocksDB properties worth watching, per column family where they are.
void AppendRocksDbMetrics(const store::MetadataDb& db, std::string* out);

class MetricsServer {
 public:
  using RenderFn = std::function<std::string()>;
  // Listens on `address`, "HOST:PORT" with HOST 127.0.0.1, ::1 (as [::1])
  // or localhost; port 0 picks a free one. InvalidArgument for any other
  // host (metrics are not for the network) or a malformed address.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                             RenderFn render);
  ~MetricsServer();
  int port() const { return port_; }

 private:
  MetricsServer(int fd, int port, RenderFn render);
  void Serve();

  const int fd_;
  const int port_;
  const RenderFn render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_METRICS_H_
