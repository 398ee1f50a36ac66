#include "plugin/config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace imaged::plugin {
namespace {

std::string WriteFile(const std::string& text) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string path = std::string(base ? base : "/tmp") + "/imaged-config-XXXXXX";
  int fd = ::mkstemp(path.data());
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, ReadsEveryKey) {
  auto config = LoadConfigFile(WriteFile(R"(
root = "/srv/imaged"
address = "/run/x/imaged.sock"
socket_mode = "0600"
ingest_expiry = "2h"
shutdown_timeout = "3s"
platform = "linux/arm64"
cri_namespace = "kube"
index_check = "repair"
max_concurrent_downloads = 5
gc_interval = "0s"
gc_delay = "250ms"
containerd_address = "/run/containerd/containerd.sock"
mirror_namespaces = ["k8s.io", "moby"]
upstream_cri_address = "/run/containerd/cri.sock"
containerd_timeout = "3s"
containerd_list_timeout = "20s"
upstream_pull_timeout = "10m"
mirror_miss_budget = "500ms"
mirror_miss_queue = 16
containerd_root = "/srv/containerd"
containerd_snapshotter = "native"
[registry]
config_path = "/etc/imaged/certs.d"
)"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->root, "/srv/imaged");
  EXPECT_EQ(config->address, "/run/x/imaged.sock");
  EXPECT_EQ(config->socket_mode, 0600u);
  EXPECT_EQ(config->ingest_expiry, absl::Hours(2));
  EXPECT_EQ(config->shutdown_timeout, absl::Seconds(3));
  EXPECT_EQ(config->platform, "linux/arm64");
  EXPECT_EQ(config->cri_namespace, "kube");
  EXPECT_EQ(config->index_check, "repair");
  EXPECT_EQ(config->max_concurrent_downloads, 5);
  EXPECT_EQ(config->gc_interval, absl::ZeroDuration());
  EXPECT_EQ(config->gc_delay, absl::Milliseconds(250));
  EXPECT_EQ(config->containerd_address, "/run/containerd/containerd.sock");
  EXPECT_EQ(config->mirror_namespaces, (std::vector<std::string>{"k8s.io", "moby"}));
  EXPECT_EQ(config->upstream_cri_address, "/run/containerd/cri.sock");
  EXPECT_EQ(config->registry_config_path, "/etc/imaged/certs.d");
  EXPECT_EQ(config->containerd_timeout, absl::Seconds(3));
  EXPECT_EQ(config->containerd_list_timeout, absl::Seconds(20));
  EXPECT_EQ(config->upstream_pull_timeout, absl::Minutes(10));
  EXPECT_EQ(config->mirror_miss_budget, absl::Milliseconds(500));
  EXPECT_EQ(config->mirror_miss_queue, 16);
  EXPECT_EQ(config->containerd_root, "/srv/containerd");
  EXPECT_EQ(config->containerd_snapshotter, "native");
}

TEST(ConfigTest, EmptyFileKeepsDefaults) {
  auto config = LoadConfigFile(WriteFile(""));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->root, Config().root);
  EXPECT_EQ(config->socket_mode, 0660u);
}

TEST(ConfigTest, BadConfigsNameTheProblem) {
  struct Case {
    const char* text;
    const char* mentions;
  };
  const Case cases[] = {
      {"root = ", "config"},
      {"root = 5", "root"},
      {"root = \"\"", "root"},
      {"socket_mode = 660", "socket_mode"},
      {"socket_mode = \"0999\"", "socket_mode"},
      {"ingest_expiry = \"soon\"", "ingest_expiry"},
      {"shutdown_timeout = \"-1s\"", "shutdown_timeout"},
      {"colour = \"blue\"", "unknown key"},
      {"index_check = \"sometimes\"", "index_check"},
      {"platform = 3", "platform"},
      {"max_concurrent_downloads = 0", "max_concurrent_downloads"},
      {"gc_interval = \"-1s\"", "gc_interval"},
      {"gc_delay = 5", "gc_delay"},
      {"mirror_namespaces = []", "mirror_namespaces"},
      {"mirror_namespaces = \"k8s.io\"", "mirror_namespaces"},
      {"containerd_address = 1", "containerd_address"},
      {"max_concurrent_downloads = \"3\"", "max_concurrent_downloads"},
      // Floats are not integers (config_fuzzer: toml++'s value<int64_t>()
      // converted this one to int64, undefined behaviour).
      {"max_concurrent_downloads = 555555555555555555555555555555555556.9", "max_concurrent_downloads"},
      {"max_concurrent_downloads = 4.0", "max_concurrent_downloads"},
      {"mirror_miss_queue = 1e300", "mirror_miss_queue"},
      {"registry = \"x\"", "registry"},
      {"containerd_timeout = \"0s\"", "containerd_timeout"},
      {"containerd_list_timeout = \"inf\"", "containerd_list_timeout"},
      {"mirror_miss_budget = 2", "mirror_miss_budget"},
      {"mirror_miss_queue = 0", "mirror_miss_queue"},
      {"containerd_snapshotter = \"\"", "containerd_snapshotter"},
      {"[registry]\nconfig_path = 1", "registry.config_path"},
      {"[registry]\nmirrors = \"x\"", "registry.mirrors"},
  };
  for (const Case& c : cases) {
    auto config = LoadConfigFile(WriteFile(c.text));
    EXPECT_TRUE(absl::IsInvalidArgument(config.status())) << c.text << ": " << config.status();
    EXPECT_NE(config.status().message().find(c.mentions), absl::string_view::npos)
        << c.text << ": " << config.status();
  }
  EXPECT_TRUE(absl::IsNotFound(LoadConfigFile("/nonexistent/imaged.toml").status()));
}

}  // namespace
}  // namespace imaged::plugin
