#include "plugin/test_server.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <stdlib.h>

#include "gtest/gtest.h"
#include "store/files.h"

namespace imaged::plugin {

std::string MakeShortTempDir() {
  std::string tmpl = "/tmp/imaged-test-XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

ServerFixture::ServerFixture() : dir_(MakeShortTempDir()) {
  // gRPC shuts itself down when its last object goes, and the next test's
  // first object then waits for that shutdown (up to the sync server's 10 s
  // poll period). One reference held for the whole test process keeps it up.
  static const bool kGrpcKeptUp = (grpc_init(), true);
  (void)kGrpcKeptUp;
  config_.root = dir_ + "/root";
  config_.address = dir_ + "/run/imaged.sock";
  config_.shutdown_timeout = absl::Seconds(2);
  auto server = Server::Start(config_);
  EXPECT_TRUE(server.ok()) << server.status();
  if (server.ok()) server_ = *std::move(server);
  channel_ = grpc::CreateChannel("unix:" + config_.address, grpc::InsecureChannelCredentials());
}

ServerFixture::~ServerFixture() {
  server_.reset();
  store::RemoveAll(dir_).IgnoreError();
}

}  // namespace imaged::plugin
