#include "plugin/config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <string>

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
gc_max_share = 0.5
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
content_proxy = true
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
  EXPECT_TRUE(config->content_proxy);
  EXPECT_EQ(config->gc_interval, absl::ZeroDuration());
  EXPECT_EQ(config->gc_delay, absl::Milliseconds(250));
  EXPECT_EQ(config->gc_max_share, 0.5);
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

// tools/package/config.toml, the packaged /etc/imaged/config.toml: every
// key, commented out, with its default. Uncommented and loaded over a
// configuration where every field differs, it must give the defaults back,
// and it must name every key.
TEST(ConfigTest, ThePackagedConfigShowsEveryKeyWithItsDefault) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  ASSERT_TRUE(srcdir != nullptr && workspace != nullptr) << "run under bazel test";
  std::ifstream in(std::string(srcdir) + "/" + workspace + "/tools/package/config.toml");
  ASSERT_TRUE(in) << "cannot read tools/package/config.toml";
  static const std::regex kSetting(R"(^# (([a-z_]+) = .*|\[([a-z]+)\])$)");
  std::string uncommented, table;
  std::set<std::string> keys;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, kSetting)) continue;
    uncommented += line.substr(2) + "\n";
    if (m[3].matched) {
      table = m[3].str() + ".";
    } else {
      keys.insert(table + m[2].str());
    }
  }
  const std::set<std::string> every_key = {
      "root", "address", "socket_mode", "ingest_expiry", "shutdown_timeout", "platform",
      "cri_namespace", "index_check", "max_concurrent_downloads", "metrics_address",
      "gc_interval", "gc_delay", "gc_max_share", "containerd_address", "mirror_namespaces",
      "upstream_cri_address", "containerd_timeout", "containerd_list_timeout",
      "upstream_pull_timeout", "mirror_miss_budget", "mirror_miss_queue", "containerd_root",
      "containerd_snapshotter", "content_proxy", "registry.config_path"};
  EXPECT_EQ(keys, every_key);

  Config changed;
  changed.root = "/x";
  changed.address = "/x.sock";
  changed.socket_mode = 0600;
  changed.ingest_expiry = changed.shutdown_timeout = absl::Seconds(1);
  changed.platform = "linux/arm64";
  changed.cri_namespace = changed.index_check = "x";
  changed.registry_config_path = changed.metrics_address = "x";
  changed.max_concurrent_downloads = 9;
  changed.gc_interval = changed.gc_delay = absl::Seconds(7);
  changed.gc_max_share = 0.7;
  changed.containerd_address = changed.upstream_cri_address = "x";
  changed.mirror_namespaces = {"x"};
  changed.containerd_timeout = changed.containerd_list_timeout = absl::Seconds(7);
  changed.upstream_pull_timeout = changed.mirror_miss_budget = absl::Seconds(7);
  changed.mirror_miss_queue = 9;
  changed.containerd_root = changed.containerd_snapshotter = "x";
  changed.content_proxy = true;
  absl::StatusOr<Config> loaded = LoadConfigFile(WriteFile(uncommented), changed);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Config d;
  EXPECT_EQ(loaded->root, d.root);
  EXPECT_EQ(loaded->address, d.address);
  EXPECT_EQ(loaded->socket_mode, d.socket_mode);
  EXPECT_EQ(loaded->ingest_expiry, d.ingest_expiry);
  EXPECT_EQ(loaded->shutdown_timeout, d.shutdown_timeout);
  EXPECT_EQ(loaded->platform, d.platform);
  EXPECT_EQ(loaded->cri_namespace, d.cri_namespace);
  EXPECT_EQ(loaded->index_check, d.index_check);
  EXPECT_EQ(loaded->registry_config_path, d.registry_config_path);
  EXPECT_EQ(loaded->max_concurrent_downloads, d.max_concurrent_downloads);
  EXPECT_EQ(loaded->metrics_address, d.metrics_address);
  EXPECT_EQ(loaded->gc_interval, d.gc_interval);
  EXPECT_EQ(loaded->gc_delay, d.gc_delay);
  EXPECT_EQ(loaded->gc_max_share, d.gc_max_share);
  EXPECT_EQ(loaded->containerd_address, d.containerd_address);
  EXPECT_EQ(loaded->mirror_namespaces, d.mirror_namespaces);
  EXPECT_EQ(loaded->upstream_cri_address, d.upstream_cri_address);
  EXPECT_EQ(loaded->containerd_timeout, d.containerd_timeout);
  EXPECT_EQ(loaded->containerd_list_timeout, d.containerd_list_timeout);
  EXPECT_EQ(loaded->upstream_pull_timeout, d.upstream_pull_timeout);
  EXPECT_EQ(loaded->mirror_miss_budget, d.mirror_miss_budget);
  EXPECT_EQ(loaded->mirror_miss_queue, d.mirror_miss_queue);
  EXPECT_EQ(loaded->containerd_root, d.containerd_root);
  EXPECT_EQ(loaded->containerd_snapshotter, d.containerd_snapshotter);
  EXPECT_EQ(loaded->content_proxy, d.content_proxy);
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
      {"content_proxy = \"yes\"", "content_proxy"},
      {"gc_interval = \"-1s\"", "gc_interval"},
      {"gc_delay = 5", "gc_delay"},
      {"gc_max_share = 0", "gc_max_share"},
      {"gc_max_share = 1.5", "gc_max_share"},
      {"gc_max_share = nan", "gc_max_share"},
      {"gc_max_share = \"2%\"", "gc_max_share"},
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
