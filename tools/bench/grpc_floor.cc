// The server's CPU per unary call, measured from another process: what
// gRPC itself costs per call on this machine (the floor under imaged's
// ImageStatus, docs/benchmarks.md), and what a method of a running imaged
// costs.
//
//   grpc_floor serve --socket S --api sync|callback|async [--with-sync] [--with-callback]
//     serves grpc.health.v1.Health/Check (answering SERVING, nothing else)
//     through the given gRPC API; --with-sync and --with-callback also
//     register a service of the other kind (runtime.v1.ImageService, all
//     unimplemented), as a server of several services would.
//   grpc_floor call --socket S --pid P --method /pkg.Service/Method [--ref R] [--images N]
//     calls the method with one caller for --seconds and prints the calls
//     and process P's CPU per call. With --ref, the request is an
//     ImageStatusRequest for R; a "%06d" in R is replaced by a random image
//     number below --images for each call.
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "api/grpc/health/v1/health.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"

namespace {

namespace healthpb = ::grpc::health::v1;

class SyncHealth final : public healthpb::Health::Service {
  grpc::Status Check(grpc::ServerContext*, const healthpb::HealthCheckRequest*,
                     healthpb::HealthCheckResponse* resp) override {
    resp->set_status(healthpb::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

class CallbackHealth final : public healthpb::Health::CallbackService {
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx,
                                  const healthpb::HealthCheckRequest*,
                                  healthpb::HealthCheckResponse* resp) override {
    resp->set_status(healthpb::HealthCheckResponse::SERVING);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

using AsyncHealth = healthpb::Health::WithAsyncMethod_Check<healthpb::Health::Service>;

// One async Check: requested, answered, deleted.
class AsyncCheck {
 public:
  AsyncCheck(AsyncHealth* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), writer_(&ctx_) {
    service_->RequestCheck(&ctx_, &req_, &writer_, cq_, cq_, this);
  }
  void Proceed(bool ok) {
    if (answered_ || !ok) {
      delete this;
      return;
    }
    answered_ = true;
    new AsyncCheck(service_, cq_);
    resp_.set_status(healthpb::HealthCheckResponse::SERVING);
    writer_.Finish(resp_, grpc::Status::OK, this);
  }

 private:
  AsyncHealth* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  healthpb::HealthCheckRequest req_;
  healthpb::HealthCheckResponse resp_;
  grpc::ServerAsyncResponseWriter<healthpb::HealthCheckResponse> writer_;
  bool answered_ = false;
};

int Serve(const std::string& socket, const std::string& api, bool with_sync, bool with_callback) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  SyncHealth sync;
  CallbackHealth callback;
  AsyncHealth async;
  runtime::v1::ImageService::Service other_sync;
  runtime::v1::ImageService::CallbackService other_callback;
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  if (api == "sync") {
    builder.RegisterService(&sync);
  } else if (api == "callback") {
    builder.RegisterService(&callback);
  } else if (api == "async") {
    builder.RegisterService(&async);
    cq = builder.AddCompletionQueue();
  } else {
    std::fprintf(stderr, "--api takes sync, callback or async\n");
    return 2;
  }
  if (with_sync) builder.RegisterService(&other_sync);
  if (with_callback) builder.RegisterService(&other_callback);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return 1;
  if (cq != nullptr) {
    for (int i = 0; i < 4; ++i) new AsyncCheck(&async, cq.get());
    void* tag = nullptr;
    bool ok = false;
    while (cq->Next(&tag, &ok)) static_cast<AsyncCheck*>(tag)->Proceed(ok);
  }
  server->Wait();
  return 0;
}

double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stol(field);  // utime, stime
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string ImageStatusRequest(const std::string& ref) {
  runtime::v1::ImageStatusRequest req;
  req.mutable_image()->set_image(ref);
  return req.SerializeAsString();
}

int Call(const std::string& socket, int pid, const std::string& method, const std::string& ref,
         int images, double seconds) {
  grpc::GenericStub stub(grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  std::mt19937 rng(1);
  auto request = [&] {
    if (ref.empty()) return std::string();
    if (images <= 0) return ImageStatusRequest(ref);
    const int n = std::uniform_int_distribution<int>(0, images - 1)(rng);
    return ImageStatusRequest(absl::StrFormat(*absl::ParsedFormat<'d'>::New(ref), n));
  };
  auto call = [&](const std::string& bytes) {
    grpc::ClientContext ctx;
    grpc::Slice slice(bytes);
    grpc::ByteBuffer req(&slice, 1);
    grpc::ByteBuffer resp;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      status = std::move(s);
      done = true;
      cv.notify_one();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    return status;
  };
  if (images > 0 && absl::ParsedFormat<'d'>::New(ref) == nullptr) {
    std::fprintf(stderr, "--ref must hold one %%d (or %%06d) with --images\n");
    return 2;
  }
  grpc::Status first = call(request());
  if (!first.ok()) {
    std::fprintf(stderr, "%s: %s\n", method.c_str(), first.error_message().c_str());
    return 1;
  }
  for (int i = 0; i < 200; ++i) call(request());  // warm-up
  const double cpu0 = CpuSeconds(pid);
  const auto t0 = std::chrono::steady_clock::now();
  long calls = 0;
  double wall = 0;
  while (wall < seconds) {
    call(request());
    ++calls;
    wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double cpu = CpuSeconds(pid) - cpu0;
  std::printf("%s: %ld calls, %.0f us per call, server CPU %.1f us per call\n", method.c_str(),
              calls, wall / static_cast<double>(calls) * 1e6,
              cpu / static_cast<double>(calls) * 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"the server's CPU per unary call (docs/benchmarks.md, the floor)"};
  app.require_subcommand(1);
  std::string socket, api = "async", method = "/grpc.health.v1.Health/Check", ref;
  bool with_sync = false, with_callback = false;
  int pid = 0, images = 0;
  double seconds = 3;
  CLI::App* serve = app.add_subcommand("serve", "serve Health/Check through one gRPC API");
  serve->add_option("--socket", socket)->required();
  serve->add_option("--api", api, "sync, callback or async");
  serve->add_flag("--with-sync", with_sync, "also register a sync service");
  serve->add_flag("--with-callback", with_callback, "also register a callback service");
  CLI::App* call = app.add_subcommand("call", "call a unary method, measure the server's CPU");
  call->add_option("--socket", socket)->required();
  call->add_option("--pid", pid, "the server's process")->required();
  call->add_option("--method", method);
  call->add_option("--ref", ref, "send an ImageStatusRequest for this reference");
  call->add_option("--images", images, "replace %06d in --ref with a random number below this");
  call->add_option("--seconds", seconds);
  CLI11_PARSE(app, argc, argv);
  if (*serve) return Serve(socket, api, with_sync, with_callback);
  return Call(socket, pid, method, ref, images, seconds);
}
