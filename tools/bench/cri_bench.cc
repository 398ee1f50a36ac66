// CRI ImageService latency over imaged's unix socket, with the node's image
// count as the argument: ListImages (kubelet every 30 s) and ImageStatus by
// tag, by truncated ID and of a missing image (kubelet before every
// container start). Each image has the three names containerd's CRI writes.
//
//   bazel run //tools/bench:cri_bench -- --benchmark_min_time=1
#include <grpcpp/create_channel.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "benchmark/benchmark.h"
#include "plugin/content_client.h"
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
      if (i == images / 2) middle_id_ = ti->config.digest;
    }
  }

  ~Node() {
    cri_.reset();
    server_.reset();
    store::RemoveAll(dir_).IgnoreError();
  }

  cripb::ImageService::Stub& cri() { return *cri_; }
  const std::string& middle_id() const { return middle_id_; }

 private:
  std::string dir_;
  std::unique_ptr<plugin::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cripb::ImageService::Stub> cri_;
  std::string middle_id_;
};

// Built on first use, torn down (servers stopped, roots removed) after the run.
std::map<int, std::unique_ptr<Node>>* nodes = new std::map<int, std::unique_ptr<Node>>;

Node& GetNode(int images) {
  auto& node = (*nodes)[images];
  if (!node) node = std::make_unique<Node>(images);
  return *node;
}

void BM_ListImages(benchmark::State& state) {
  Node& node = GetNode(static_cast<int>(state.range(0)));
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

void BM_ImageStatusByTruncatedId(benchmark::State& state) { Status(state, "", true); }
BENCHMARK(BM_ImageStatusByTruncatedId)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_ImageStatusMissing(benchmark::State& state) {
  Status(state, "registry.example.com/team/absent:1.0", false);
}
BENCHMARK(BM_ImageStatusMissing)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace imaged::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  imaged::bench::nodes->clear();
  return 0;
}
