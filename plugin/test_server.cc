#include "plugin/test_server.h"

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
