#include "plugin/test_server.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <stdlib.h>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "store/files.h"

namespace imaged::plugin {

std::string MakeShortTempDir() {
  std::string tmpl = "/tmp/imaged-test-XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

ServerFixture::ServerFixture() : ServerFixture(MakeShortTempDir()) {}

ServerFixture::ServerFixture(std::string dir) : ServerFixture(std::move(dir), nullptr) {}

ServerFixture::ServerFixture(const std::function<void(Config*)>& configure)
    : ServerFixture(MakeShortTempDir(), configure) {}

ServerFixture::ServerFixture(std::string dir, const std::function<void(Config*)>& configure)
    : dir_(std::move(dir)) {
  // gRPC shuts itself down when its last object goes, and the next test's
  // first object then waits for that shutdown (up to the sync server's 10 s
  // poll period). One reference held for the whole test process keeps it up.
  static const bool kGrpcKeptUp = (grpc_init(), true);
  (void)kGrpcKeptUp;
  config_.root = dir_ + "/root";
  config_.address = dir_ + "/run/imaged.sock";
  config_.shutdown_timeout = absl::Seconds(2);
  if (configure) configure(&config_);
  auto server = Server::Start(config_);
  EXPECT_TRUE(server.ok()) << server.status();
  if (server.ok()) server_ = *std::move(server);
  channel_ = grpc::CreateChannel("unix:" + config_.address, grpc::InsecureChannelCredentials());
}

ServerFixture::~ServerFixture() {
  server_.reset();
  store::RemoveAll(dir_).IgnoreError();
}

grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request, std::string* response,
                          grpc::ClientContext* ctx) {
  grpc::ClientContext own;
  if (ctx == nullptr) ctx = &own;
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1);
  grpc::ByteBuffer resp;
  grpc::GenericStub generic(channel);
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
    absl::MutexLock lock(&mu);
    status = std::move(s);
    done = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  if (status.ok() && response != nullptr) {
    std::vector<grpc::Slice> slices;
    response->clear();
    if (resp.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return status;
}

}  // namespace imaged::plugin
