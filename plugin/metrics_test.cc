// The metrics endpoint, scraped over 127.0.0.1 as Prometheus would.
#include "plugin/metrics.h"

#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "gtest/gtest.h"
#include "plugin/config.h"
#include "plugin/server.h"
#include "plugin/test_server.h"
#include "store/files.h"

namespace imaged::plugin {
namespace {

namespace cripb = ::runtime::v1;

// GET `path` from 127.0.0.1:`port`; the whole HTTP response.
std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    ADD_FAILURE() << "connect to 127.0.0.1:" << port;
    return "";
  }
  std::string req = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[8192];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  MetricsEndpointTest() : dir_(MakeShortTempDir()) {
    config_.root = dir_ + "/root";
    config_.address = dir_ + "/imaged.sock";
    config_.metrics_address = "127.0.0.1:0";
    config_.shutdown_timeout = absl::Seconds(2);
    auto server = Server::Start(config_);
    EXPECT_TRUE(server.ok()) << server.status();
    if (server.ok()) server_ = *std::move(server);
    channel_ = grpc::CreateChannel("unix:" + config_.address, grpc::InsecureChannelCredentials());
    cri_ = cripb::ImageService::NewStub(channel_);
  }
  const std::shared_ptr<grpc::Channel>& fixture_channel() const { return channel_; }
  ~MetricsEndpointTest() override {
    cri_.reset();
    server_.reset();
    store::RemoveAll(dir_).IgnoreError();
  }

  std::string dir_;
  Config config_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cripb::ImageService::Stub> cri_;
};

TEST_F(MetricsEndpointTest, CountsAndTimesEveryRpcAndReportsTheIndexAndRocksDb) {
  ASSERT_NE(server_, nullptr);
  ASSERT_GT(server_->metrics_port(), 0);
  for (int i = 0; i < 3; ++i) {
    cripb::ListImagesResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(cri_->ListImages(&ctx, cripb::ListImagesRequest(), &resp).ok());
  }
  // The same ImageStatus twice: the second is the kept answer.
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    cripb::ImageStatusRequest req;
    req.mutable_image()->set_image("docker.io/library/absent:1");
    cripb::ImageStatusResponse resp;
    ASSERT_TRUE(cri_->ImageStatus(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.has_image());
  }
  // A request that does not parse: InvalidArgument.
  EXPECT_EQ(RawUnaryCall(fixture_channel(), "/runtime.v1.ImageService/ImageStatus", "\xff\xff\xff")
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  std::string got = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 200 OK\r\n")) << got;
  EXPECT_TRUE(absl::StrContains(got, "Content-Type: text/plain; version=0.0.4"));
  const std::string list = "method=\"/runtime.v1.ImageService/ListImages\"";
  EXPECT_TRUE(absl::StrContains(got, absl::StrCat("imaged_grpc_requests_total{", list, ",code=\"OK\"} 3\n")))
      << got;
  EXPECT_TRUE(absl::StrContains(
      got, "imaged_grpc_requests_total{method=\"/runtime.v1.ImageService/ImageStatus\","
           "code=\"INVALID_ARGUMENT\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(got, "# TYPE imaged_grpc_request_duration_seconds histogram"));
  EXPECT_TRUE(absl::StrContains(
      got, absl::StrCat("imaged_grpc_request_duration_seconds_bucket{", list, ",le=\"+Inf\"} 3\n")));
  EXPECT_TRUE(absl::StrContains(got, absl::StrCat("imaged_grpc_request_duration_seconds_count{", list, "} 3\n")));
  // The server built the answer as it started; the three lists were served from it.
  EXPECT_TRUE(absl::StrContains(got, "imaged_cri_list_cache_builds_total 1\n")) << got;
  EXPECT_TRUE(absl::StrContains(got, "imaged_cri_list_cache_hits_total 3\n"));
  EXPECT_TRUE(absl::StrContains(got, "imaged_cri_images 0\n"));
  EXPECT_TRUE(absl::StrContains(got, "imaged_cri_status_cache_hits_total 1\n")) << got;
  EXPECT_TRUE(absl::StrContains(got, "imaged_cri_status_cache_answers 1\n"));
  EXPECT_TRUE(absl::StrContains(got, "imaged_cri_status_from_list_total 0\n"));  // no images
  EXPECT_TRUE(absl::StrContains(got, "imaged_rocksdb_estimated_keys{family=\"cri_index\"}"));
  EXPECT_TRUE(absl::StrContains(got, "imaged_rocksdb_block_cache_bytes "));
  EXPECT_TRUE(absl::StrContains(got, "process_resident_memory_bytes "));
}

TEST_F(MetricsEndpointTest, OtherPathsAreNotFound) {
  ASSERT_NE(server_, nullptr);
  EXPECT_TRUE(absl::StartsWith(HttpGet(server_->metrics_port(), "/"), "HTTP/1.1 404"));
}

TEST(MetricsServerTest, RefusesAnAddressThatIsNotLoopback) {
  for (const char* address : {"0.0.0.0:0", "10.0.0.1:9464", ":9464", "127.0.0.1", "127.0.0.1:x"}) {
    auto server = MetricsServer::Start(address, [] { return std::string(); });
    EXPECT_TRUE(absl::IsInvalidArgument(server.status())) << address << ": " << server.status();
  }
}

TEST(MetricsServerTest, IsOffByDefaultAndSetByTheConfigKey) {
  EXPECT_EQ(Config().metrics_address, "");
  std::string dir = MakeShortTempDir();
  std::string path = dir + "/imaged.toml";
  std::ofstream(path) << "metrics_address = \"127.0.0.1:9464\"\n";
  auto config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->metrics_address, "127.0.0.1:9464");
  store::RemoveAll(dir).IgnoreError();
}

}  // namespace
}  // namespace imaged::plugin
