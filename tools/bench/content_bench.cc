// Content API throughput over imaged's unix socket: Write (STAT, WRITE in
// 1 MiB chunks as containerd's content.Copy sends them, COMMIT with the
// expected digest) and Read (one streamed Read of the whole blob) of a
// 256 MiB blob; and the Read calls of containerd 1.6's content proxy, which
// turns each ReadAt of its unpacker into one Read call of a 32 KiB window,
// on a blob stored as a file and on one stored as a row. The server runs in
// this process on a temporary root, so the figures include gRPC framing,
// the socket, fsync, SHA-256 and RocksDB, and both sides' CPU.
//
//   bazel run -c opt //tools/bench:content_bench -- --benchmark_min_time=1
//   IMAGED_BENCH_DIR=/some/disk to put the root elsewhere than /var/tmp.
#include <grpcpp/create_channel.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "benchmark/benchmark.h"
#include "plugin/content_client.h"
#include "plugin/server.h"
#include "store/digest.h"
#include "store/files.h"

namespace imaged::bench {
namespace {

namespace contentpb = ::containerd::services::content::v1;

constexpr size_t kBlobSize = 256 << 20;
constexpr size_t kChunk = 1 << 20;

class Env {
 public:
  Env() {
    const char* base = std::getenv("IMAGED_BENCH_DIR");
    dir_ = absl::StrCat(base ? base : "/var/tmp", "/imaged-bench-XXXXXX");
    if (::mkdtemp(dir_.data()) == nullptr) std::abort();
    plugin::Config config;
    config.root = dir_ + "/root";
    config.address = dir_ + "/imaged.sock";
    auto server = plugin::Server::Start(config);
    if (!server.ok()) {
      std::fprintf(stderr, "start imaged: %s\n", server.status().ToString().c_str());
      std::abort();
    }
    server_ = *std::move(server);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    channel_ = grpc::CreateCustomChannel("unix:" + config.address,
                                         grpc::InsecureChannelCredentials(), args);
    client_ = std::make_unique<plugin::RemoteContentStore>(channel_);
  }
  ~Env() {
    server_.reset();
    store::RemoveAll(dir_).IgnoreError();
  }

  plugin::RemoteContentStore& client() { return *client_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

  // A blob of `size` bytes that differs per `seed`, so every write is new.
  static std::string Blob(int seed, size_t size = kBlobSize) {
    std::string data(size, '\0');
    uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(seed + 1);
    for (size_t i = 0; i + 8 <= data.size(); i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(&data[i], &x, 8);
    }
    return data;
  }

  absl::Status Write(const std::string& data, absl::string_view ref) {
    std::string digest = store::Sha256::Of(data);
    auto w = client_->Writer("bench", ref, static_cast<int64_t>(data.size()), digest);
    if (!w.ok()) return w.status();
    for (size_t off = 0; off < data.size(); off += kChunk) {
      if (absl::Status s = (*w)->Write(absl::string_view(data).substr(off, kChunk)); !s.ok()) {
        return s;
      }
    }
    return (*w)->Commit(static_cast<int64_t>(data.size()), digest, {});
  }

 private:
  std::string dir_;
  std::unique_ptr<plugin::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<plugin::RemoteContentStore> client_;
};

// Built on first use, torn down (server stopped, root removed) after the run.
std::unique_ptr<Env> env;

Env& GetEnv() {
  if (!env) env = std::make_unique<Env>();
  return *env;
}

void BM_Write256MiB(benchmark::State& state) {
  Env& env = GetEnv();
  int seed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::string data = Env::Blob(seed);
    std::string digest = store::Sha256::Of(data);
    state.ResumeTiming();
    absl::Status s = env.Write(data, absl::StrCat("write-", seed));
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    state.PauseTiming();
    env.client().Delete("bench", digest).IgnoreError();
    ++seed;
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kBlobSize);
}
BENCHMARK(BM_Write256MiB)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Read256MiB(benchmark::State& state) {
  Env& env = GetEnv();
  static const std::string digest = [&] {
    std::string data = Env::Blob(1000);
    env.Write(data, "read-fixture").IgnoreError();
    return store::Sha256::Of(data);
  }();
  auto stub = contentpb::Content::NewStub(env.channel());
  for (auto _ : state) {
    contentpb::ReadContentRequest req;
    req.set_digest(digest);
    auto ctx = plugin::NamespacedContext("bench");
    auto reader = stub->Read(ctx.get(), req);
    contentpb::ReadContentResponse resp;
    size_t total = 0;
    while (reader->Read(&resp)) total += resp.data().size();
    grpc::Status s = reader->Finish();
    if (!s.ok() || total != kBlobSize) state.SkipWithError("short or failed read");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kBlobSize);
}
BENCHMARK(BM_Read256MiB)->Unit(benchmark::kMillisecond)->UseRealTime();

// One Read call per 32 KiB window, at successive offsets, as containerd
// 1.6's proxy ReaderAt sends them while it unpacks a layer. The argument is
// the blob's size: 40 MiB is a file, 48 KiB a row of the metadata database.
void BM_ReadWindow32KiB(benchmark::State& state) {
  constexpr int64_t kWindow = 32 << 10;
  Env& env = GetEnv();
  const size_t blob_size = static_cast<size_t>(state.range(0));
  std::string data = Env::Blob(2000 + static_cast<int>(blob_size >> 10), blob_size);
  const std::string digest = store::Sha256::Of(data);
  // Google Benchmark calls this more than once; the blob stays.
  if (absl::Status s = env.Write(data, absl::StrCat("window-", blob_size));
      !s.ok() && !absl::IsAlreadyExists(s)) {
    state.SkipWithError(std::string(s.message()).c_str());
    return;
  }
  auto stub = contentpb::Content::NewStub(env.channel());
  int64_t offset = 0;
  for (auto _ : state) {
    contentpb::ReadContentRequest req;
    req.set_digest(digest);
    req.set_offset(offset);
    req.set_size(kWindow);
    auto ctx = plugin::NamespacedContext("bench");
    auto reader = stub->Read(ctx.get(), req);
    contentpb::ReadContentResponse resp;
    int64_t got = 0;
    while (reader->Read(&resp)) got += static_cast<int64_t>(resp.data().size());
    grpc::Status s = reader->Finish();
    if (!s.ok() || got != std::min<int64_t>(kWindow, static_cast<int64_t>(blob_size) - offset)) {
      state.SkipWithError("short or failed read");
      break;
    }
    offset += got;
    if (offset >= static_cast<int64_t>(blob_size)) offset = 0;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kWindow);
}
BENCHMARK(BM_ReadWindow32KiB)
    ->Arg(40 << 20)
    ->Arg(48 << 10)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

}  // namespace
}  // namespace imaged::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  imaged::bench::env.reset();
  return 0;
}
