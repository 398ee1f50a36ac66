#include "plugin/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "plugin/startup_pages.h"

namespace imaged::plugin {
namespace {

// One per RPC: times it from its start to the status it sends.
class TimingInterceptor final : public grpc::experimental::Interceptor {
 public:
  TimingInterceptor(RpcMetrics* metrics, const char* method)
      : metrics_(metrics), method_(method ? method : "unknown"),
        start_(std::chrono::steady_clock::now()) {}
  ~TimingInterceptor() override {
    // An RPC that ended without sending a status (the client went away).
    if (!recorded_) Record(static_cast<int>(grpc::StatusCode::CANCELLED));
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(static_cast<int>(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  void Record(int code) {
    recorded_ = true;
    metrics_->Record(method_, code,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

  RpcMetrics* const metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;
};

class TimingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit TimingFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new TimingInterceptor(metrics_, info->method());
  }

 private:
  RpcMetrics* const metrics_;
};

const char* CodeName(int code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  return code >= 0 && code < 17 ? kNames[code] : "UNKNOWN";
}

std::string FormatValue(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v)) && v < 1e15 && v > -1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  return absl::StrFormat("%.9g", v);
}

void SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void RpcMetrics::Record(const std::string& method, int code, double seconds) {
  absl::MutexLock lock(&mu_);
  Method& m = methods_[method];
  ++m.codes[code];
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  ++m.buckets[i];
  m.sum += seconds;
  ++m.count;
}

void RpcMetrics::Write(std::string* out) const {
  absl::MutexLock lock(&mu_);
  AppendHeader(out, "imaged_grpc_requests_total", "counter",
               "gRPC requests served, by method and status code.");
  for (const auto& [method, m] : methods_) {
    for (const auto& [code, n] : m.codes) {
      AppendSample(out, "imaged_grpc_requests_total",
                   absl::StrCat("method=\"", method, "\",code=\"", CodeName(code), "\""),
                   static_cast<double>(n));
    }
  }
  AppendHeader(out, "imaged_grpc_request_duration_seconds", "histogram",
               "Time from a gRPC request's start to its status, by method.");
  for (const auto& [method, m] : methods_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kBuckets.size(); ++i) {
      cumulative += m.buckets[i];
      std::string le = i < kBuckets.size() ? FormatValue(kBuckets[i]) : "+Inf";
      AppendSample(out, "imaged_grpc_request_duration_seconds_bucket",
                   absl::StrCat("method=\"", method, "\",le=\"", le, "\""),
                   static_cast<double>(cumulative));
    }
    AppendSample(out, "imaged_grpc_request_duration_seconds_sum",
                 absl::StrCat("method=\"", method, "\""), m.sum);
    AppendSample(out, "imaged_grpc_request_duration_seconds_count",
                 absl::StrCat("method=\"", method, "\""), static_cast<double>(m.count));
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::InterceptorFactory() {
  return std::make_unique<TimingFactory>(this);
}

void AppendHeader(std::string* out, const std::string& name, const std::string& type,
                  const std::string& help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void AppendSample(std::string* out, const std::string& name, const std::string& labels,
                  double value) {
  absl::StrAppend(out, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                  FormatValue(value), "\n");
}

void AppendProcessMetrics(std::string* out) {
  AppendHeader(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  AppendSample(out, "process_resident_memory_bytes", "",
               static_cast<double>(std::max<int64_t>(ResidentBytes(), 0)));
  std::ifstream stat("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  double cpu = 0;
  if (close != std::string::npos) {
    std::vector<std::string> f = absl::StrSplit(all.substr(close + 2), ' ');
    double utime = 0, stime = 0;
    if (f.size() > 12 && absl::SimpleAtod(f[11], &utime) && absl::SimpleAtod(f[12], &stime)) {
      cpu = (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
  }
  AppendHeader(out, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
  AppendSample(out, "process_cpu_seconds_total", "", cpu);
}

void AppendRocksDbMetrics(const store::MetadataDb& db, std::string* out) {
  const std::vector<std::string>& names = store::ColumnFamilyNames();
  struct PerFamily {
    const char* property;
    const char* name;
    const char* help;
  };
  for (const PerFamily& p : {
           PerFamily{"rocksdb.estimate-num-keys", "imaged_rocksdb_estimated_keys",
                     "Estimated keys per column family (the CRI index is cri_index)."},
           PerFamily{"rocksdb.num-files-at-level0", "imaged_rocksdb_l0_files",
                     "SST files at level 0 per column family: reads check each one."},
           PerFamily{"rocksdb.cur-size-all-mem-tables", "imaged_rocksdb_memtable_bytes",
                     "Memtable bytes per column family."},
           PerFamily{"rocksdb.live-sst-files-size", "imaged_rocksdb_sst_bytes",
                     "Bytes of live SST files per column family."},
           PerFamily{"rocksdb.estimate-pending-compaction-bytes",
                     "imaged_rocksdb_pending_compaction_bytes",
                     "Bytes compaction still has to rewrite, per column family."},
       }) {
    AppendHeader(out, p.name, "gauge", p.help);
    for (size_t i = 0; i < names.size(); ++i) {
      uint64_t v = 0;
      if (db.db()->GetIntProperty(db.cf(static_cast<store::Cf>(i)), p.property, &v)) {
        AppendSample(out, p.name, absl::StrCat("family=\"", names[i], "\""), static_cast<double>(v));
      }
    }
  }
  struct Whole {
    const char* property;
    const char* name;
    const char* type;
    const char* help;
  };
  for (const Whole& w : {
           Whole{"rocksdb.block-cache-usage", "imaged_rocksdb_block_cache_bytes", "gauge",
                 "Bytes in the block cache (shared by every column family)."},
           Whole{"rocksdb.estimate-table-readers-mem", "imaged_rocksdb_table_readers_bytes",
                 "gauge", "Memory of open SST readers outside the block cache."},
           Whole{"rocksdb.num-running-compactions", "imaged_rocksdb_running_compactions", "gauge",
                 "Compactions running now."},
           Whole{"rocksdb.num-running-flushes", "imaged_rocksdb_running_flushes", "gauge",
                 "Memtable flushes running now."},
           Whole{"rocksdb.background-errors", "imaged_rocksdb_background_errors_total", "counter",
                 "Background (flush, compaction) errors since start."},
       }) {
    uint64_t v = 0;
    if (db.db()->GetAggregatedIntProperty(w.property, &v)) {
      AppendHeader(out, w.name, w.type, w.help);
      AppendSample(out, w.name, "", static_cast<double>(v));
    }
  }
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                                    RenderFn render) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address \"", address, "\": want HOST:PORT"));
  }
  std::string host = address.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address \"", address, "\": bad port"));
  }
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
  if (host == "127.0.0.1" || host == "localhost") {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sockaddr_in);
  } else if (host == "[::1]") {
    family = AF_INET6;
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    in6->sin6_addr = in6addr_loopback;
    len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address \"", address, "\": the host must be 127.0.0.1, [::1] or localhost"));
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("metrics: socket failed");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 16) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", address));
  }
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&addr)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(fd, port, std::move(render)));
}

MetricsServer::MetricsServer(int fd, int port, RenderFn render)
    : fd_(fd), port_(port), render_(std::move(render)), thread_([this] { Serve(); }) {}

MetricsServer::~MetricsServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
}

void MetricsServer::Serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    timeval timeout{2, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string request;
    char buf[4096];
    while (!absl::StrContains(request, "\r\n\r\n") && request.size() < 65536) {
      ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string line = request.substr(0, request.find("\r\n"));
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    std::string status = "404 Not Found", type = "text/plain", body = "not found\n";
    if (parts.size() >= 2 && parts[0] == "GET" &&
        (parts[1] == "/metrics" || absl::StartsWith(parts[1], "/metrics?"))) {
      status = "200 OK";
      type = "text/plain; version=0.0.4; charset=utf-8";
      body = render_();
    }
    SendAll(conn, absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                               "\r\nContent-Length: ", body.size(),
                               "\r\nConnection: close\r\n\r\n", body));
    ::close(conn);
  }
}

}  // namespace imaged::plugin
