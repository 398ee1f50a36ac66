// CRI ImageService latency over imaged's unix socket, with the node's image
// count as the argument: ListImages (kubelet every 30 s) and ImageStatus by
// tag, by digest, by ID, by truncated ID and of a missing image (kubelet
// before every container start). Each image has the three names
// containerd's CRI writes. The floor is grpc.health.v1.Health/Check on the
// same server: a unary call that does nothing.
//
// Besides wall and client CPU time, each benchmark reports server_cpu_us:
// the CPU time per call of every thread but the benchmark's (the server's
// pollers and workers, and its background threads), i.e. the process's CPU
// time less the calling thread's.
//
//   bazel run //tools/bench:cri_bench -- --benchmark_min_time=1
#include <grpcpp/create_channel.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <time.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "benchmark/benchmark.h"
#include "plugin/content_client.h"
#include "plugin/cri_service.h"
#include "plugin/images_client.h"
#include "plugin/server.h"
#include "store/files.h"
#include "store/test_images.h"

namespace imaged::bench {
namespace {

namespace cripb = ::runtime::v1;

// One imaged per image count, filled once and kept for the process.
class Node {
 public:
  explicit Node(int images) {
    const char* base = std::getenv("IMAGED_BENCH_DIR");
    dir_ = absl::StrCat(base ? base : "/var/tmp", "/imaged-cri-bench-XXXXXX");
    if (::mkdtemp(dir_.data()) == nullptr) std::abort();
    plugin::Config config;
    config.root = dir_ + "/root";
    config.address = dir_ + "/imaged.sock";
    auto server = plugin::Server::Start(config);
    if (!server.ok()) std::abort();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("unix:" + config.address, grpc::InsecureChannelCredentials());
    cri_ = cripb::ImageService::NewStub(channel_);
    plugin::RemoteContentStore content(channel_);
    plugin::RemoteImageStore records(channel_);
    for (int i = 0; i < images; ++i) {
      store::TestImageSpec spec;
      spec.seed = absl::StrCat("bench-", i);
      spec.layers = 3;
      auto ti = store::MakeTestImage(content, "k8s.io", spec);
      if (!ti.ok()) std::abort();
      std::string repo = absl::StrCat("registry.example.com/team/app-", i);
      for (const std::string& name : {absl::StrCat(repo, ":1.0"),
                                      absl::StrCat(repo, "@", ti->manifest.digest),
                                      ti->config.digest}) {
        store::Image image;
        image.name = name;
        image.target = ti->manifest;
        image.target.platform.reset();
        image.labels = {{"io.cri-containerd.image", "managed"}};
        if (!records.Create("k8s.io", image).ok()) std::abort();
      }
      if (i == images / 2) {
        middle_id_ = ti->config.digest;
        middle_by_digest_ = absl::StrCat(repo, "@", ti->manifest.digest);
      }
    }
    // Restarted, as a node's imaged is mostly found: RocksDB flushes what
    // the load left in its memtables at open, so every run reads the rows
    // from table files, not from whatever memtable the load ended in.
    cri_.reset();
    channel_.reset();
    server_.reset();
    server = plugin::Server::Start(config);
    if (!server.ok()) std::abort();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("unix:" + config.address, grpc::InsecureChannelCredentials());
    cri_ = cripb::ImageService::NewStub(channel_);
  }

  ~Node() {
    cri_.reset();
    server_.reset();
    store::RemoveAll(dir_).IgnoreError();
  }

  cripb::ImageService::Stub& cri() { return *cri_; }
  plugin::CriService& service() { return server_->cri_service(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& middle_id() const { return middle_id_; }
  const std::string& middle_by_digest() const { return middle_by_digest_; }

 private:
  std::string dir_;
  std::unique_ptr<plugin::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cripb::ImageService::Stub> cri_;
  std::string middle_id_;
  std::string middle_by_digest_;
};

double CpuSeconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Sets server_cpu_us when the benchmark loop it spans ends: the process's
// CPU time less the calling thread's, per iteration.
class ServerCpu {
 public:
  explicit ServerCpu(benchmark::State& state)
      : state_(state),
        process_(CpuSeconds(CLOCK_PROCESS_CPUTIME_ID)),
        thread_(CpuSeconds(CLOCK_THREAD_CPUTIME_ID)) {}
  ~ServerCpu() {
    const double others = (CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - process_) -
                          (CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - thread_);
    state_.counters["server_cpu_us"] =
        benchmark::Counter(others * 1e6, benchmark::Counter::kAvgIterations);
  }

 private:
  benchmark::State& state_;
  const double process_;
  const double thread_;
};

// Built on first use, torn down (servers stopped, roots removed) after the run.
std::map<int, std::unique_ptr<Node>>* nodes = new std::map<int, std::unique_ptr<Node>>;

Node& GetNode(int images) {
  auto& node = (*nodes)[images];
  if (!node) node = std::make_unique<Node>(images);
  return *node;
}

// The floor: a unary call that does nothing, on the same server. (gRPC's
// internal blocking call with raw bytes: Debian ships no health stub.)
void BM_HealthCheck(benchmark::State& state) {
  Node& node = GetNode(static_cast<int>(state.range(0)));
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                         grpc::internal::RpcMethod::NORMAL_RPC, node.channel());
  grpc::Slice empty{std::string()};
  const grpc::ByteBuffer req(&empty, 1);  // HealthCheckRequest{}: the server as a whole
  ServerCpu cpu(state);
  for (auto _ : state) {
    grpc::ByteBuffer resp;
    grpc::ClientContext ctx;
    if (!grpc::internal::BlockingUnaryCall(node.channel().get(), method, &ctx, req, &resp).ok()) {
      state.SkipWithError("Health/Check failed");
    }
  }
}
BENCHMARK(BM_HealthCheck)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ListImages(benchmark::State& state) {
  Node& node = GetNode(static_cast<int>(state.range(0)));
  ServerCpu cpu(state);
  for (auto _ : state) {
    cripb::ListImagesRequest req;
    cripb::ListImagesResponse resp;
    grpc::ClientContext ctx;
    if (!node.cri().ListImages(&ctx, req, &resp).ok() || resp.images_size() != state.range(0)) {
      state.SkipWithError("ListImages failed");
    }
  }
}
BENCHMARK(BM_ListImages)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void Status(benchmark::State& state, const std::string& ref, bool want_image) {
  Node& node = GetNode(static_cast<int>(state.range(0)));
  ServerCpu cpu(state);
  for (auto _ : state) {
    cripb::ImageStatusRequest req;
    req.mutable_image()->set_image(ref.empty() ? node.middle_id().substr(7, 12) : ref);
    cripb::ImageStatusResponse resp;
    grpc::ClientContext ctx;
    if (!node.cri().ImageStatus(&ctx, req, &resp).ok() || resp.has_image() != want_image) {
      state.SkipWithError("ImageStatus failed");
    }
  }
}

void BM_ImageStatusByTag(benchmark::State& state) {
  Status(state, absl::StrCat("registry.example.com/team/app-", state.range(0) / 2, ":1.0"), true);
}
BENCHMARK(BM_ImageStatusByTag)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ImageStatusByDigest(benchmark::State& state) {
  Status(state, GetNode(static_cast<int>(state.range(0))).middle_by_digest(), true);
}
BENCHMARK(BM_ImageStatusByDigest)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ImageStatusById(benchmark::State& state) {
  Status(state, GetNode(static_cast<int>(state.range(0))).middle_id(), true);
}
BENCHMARK(BM_ImageStatusById)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ImageStatusByTruncatedId(benchmark::State& state) { Status(state, "", true); }
BENCHMARK(BM_ImageStatusByTruncatedId)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ImageStatusMissing(benchmark::State& state) {
  Status(state, "registry.example.com/team/absent:1.0", false);
}
BENCHMARK(BM_ImageStatusMissing)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

// imaged's own part of an ImageStatus, without gRPC: the request parsed from
// its bytes, answered from the index, the answer serialized; on the
// benchmark's thread, so its CPU time is the part's.
void OurPart(benchmark::State& state, const std::string& ref, bool want_image) {
  Node& node = GetNode(static_cast<int>(state.range(0)));
  cripb::ImageStatusRequest req;
  req.mutable_image()->set_image(ref.empty() ? node.middle_id().substr(7, 12) : ref);
  const std::string bytes = req.SerializeAsString();
  for (auto _ : state) {
    cripb::ImageStatusRequest parsed;
    cripb::ImageStatusResponse resp;
    bool found = false;
    if (!parsed.ParseFromString(bytes) ||
        !node.service().StatusFromIndex(parsed, &resp, &found).ok() || found != want_image) {
      state.SkipWithError("StatusFromIndex failed");
    }
    benchmark::DoNotOptimize(resp.SerializeAsString());
  }
}

void BM_OurPartByTag(benchmark::State& state) {
  OurPart(state, absl::StrCat("registry.example.com/team/app-", state.range(0) / 2, ":1.0"), true);
}
BENCHMARK(BM_OurPartByTag)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_OurPartByDigest(benchmark::State& state) {
  OurPart(state, GetNode(static_cast<int>(state.range(0))).middle_by_digest(), true);
}
BENCHMARK(BM_OurPartByDigest)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_OurPartById(benchmark::State& state) {
  OurPart(state, GetNode(static_cast<int>(state.range(0))).middle_id(), true);
}
BENCHMARK(BM_OurPartById)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_OurPartByTruncatedId(benchmark::State& state) { OurPart(state, "", true); }
BENCHMARK(BM_OurPartByTruncatedId)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_OurPartMissing(benchmark::State& state) {
  OurPart(state, "registry.example.com/team/absent:1.0", false);
}
BENCHMARK(BM_OurPartMissing)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace imaged::bench

int main(int argc, char** argv) {
  // As imaged's main does (plugin/main.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  imaged::bench::nodes->clear();
  return 0;
}
