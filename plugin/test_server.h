// A running imaged on a fresh root in a temp dir, and a channel to it, for tests.
#ifndef IMAGED_PLUGIN_TEST_SERVER_H_
#define IMAGED_PLUGIN_TEST_SERVER_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <functional>
#include <memory>
#include <string>

#include "plugin/server.h"

namespace imaged::plugin {

// A temp directory under /tmp (socket paths must stay under 108 bytes).
std::string MakeShortTempDir();

class ServerFixture {
 public:
  ServerFixture();
  // On `dir` (made with MakeShortTempDir, removed by the destructor): the
  // socket is <dir>/run/imaged.sock, known before the server starts.
  explicit ServerFixture(std::string dir);
  // With `configure` applied to the config before the server starts.
  explicit ServerFixture(const std::function<void(Config*)>& configure);
  ~ServerFixture();

  const Config& config() const { return config_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  Server* server() { return server_.get(); }

 private:
  ServerFixture(std::string dir, const std::function<void(Config*)>& configure);

  std::string dir_;
  Config config_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

// One unary call of `method` ("/pkg.Service/Method") with `request` as the
// raw request bytes (which need not parse); the response bytes go to
// `response` when given. `ctx` may carry metadata; a fresh one otherwise.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request, std::string* response = nullptr,
                          grpc::ClientContext* ctx = nullptr);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_TEST_SERVER_H_
