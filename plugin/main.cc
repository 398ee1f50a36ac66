// imaged: containerd's Images and Content APIs and the CRI ImageService over
// RocksDB, on one unix socket. main only wires config to the server and waits
// for a signal; everything else lives in libraries with tests.
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "plugin/config.h"
#include "plugin/log_limit.h"
#include "plugin/server.h"
#include "plugin/startup_pages.h"
#include "plugin/version.h"

int main(int argc, char** argv) {
  // glibc gives threads up to 8 arenas per core, and each keeps what its
  // threads freed: gRPC's many short-lived threads grew the resident size by
  // tens of MiB under load (issue 6: under 64 MiB at 30,000 images). The
  // MALLOC_ARENA_MAX environment variable still decides when it is set.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) ::mallopt(M_ARENA_MAX, 2);
  // The ListImages answer (9 MB at 30,000 images) and its patched successors
  // are single large buffers. glibc raises its mmap threshold to the size of
  // the last mmapped block freed, so after the first answer later ones came
  // from the heap and stayed resident after they were freed; a fixed
  // threshold keeps every large buffer mmapped and gives it back on free.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // Debian's Abseil runs absl::Mutex's deadlock detector (a lock graph
  // updated on every acquisition, about 2% of a do-nothing call's CPU). The
  // tests keep it (and TSan checks lock order); the server does without.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  imaged::plugin::LimitProtobufLog();
  using imaged::plugin::Config;
  CLI::App app{"imaged: containerd image and content metadata service"};
  app.set_version_flag("--version", imaged::plugin::VersionLine("imaged"));
  std::string config_file, root, address, socket_mode, registry_config_path;
  std::string containerd_address, upstream_cri_address;
  std::vector<std::string> mirror_namespaces;
  app.add_option("--config", config_file, "TOML config file");
  app.add_option("--root", root, "state directory (RocksDB, blobs, ingests)");
  app.add_option("--address", address, "unix socket to serve on");
  app.add_option("--socket-mode", socket_mode, "socket file mode, octal (default 0660)");
  std::string metrics_address;
  app.add_option("--metrics-address", metrics_address,
                 "serve Prometheus metrics on this loopback HOST:PORT (e.g. 127.0.0.1:9464)");
  app.add_option("--registry-config-path", registry_config_path,
                 "directory of <host>/hosts.toml registry configs (containerd's format)");
  app.add_option("--containerd-address", containerd_address,
                 "mirror mode: the containerd socket whose images imaged keeps indexed");
  app.add_option("--mirror-namespace", mirror_namespaces,
                 "mirror mode: a containerd namespace to mirror (repeatable; default k8s.io)");
  app.add_option("--upstream-cri-address", upstream_cri_address,
                 "mirror mode: containerd's CRI socket that PullImage is forwarded to");
  bool content_proxy = false;
  app.add_flag("--content-proxy", content_proxy,
               "serve containerd as its content store: Content calls ignore namespace and "
               "lease headers (containerd's own)");
  CLI11_PARSE(app, argc, argv);

  Config config;
  if (!config_file.empty()) {
    auto loaded = imaged::plugin::LoadConfigFile(config_file);
    if (!loaded.ok()) {
      std::fprintf(stderr, "imaged: %s\n", std::string(loaded.status().message()).c_str());
      return 2;
    }
    config = *loaded;
  }
  if (!root.empty()) config.root = root;
  if (!address.empty()) config.address = address;
  if (!registry_config_path.empty()) config.registry_config_path = registry_config_path;
  if (!metrics_address.empty()) config.metrics_address = metrics_address;
  if (!containerd_address.empty()) config.containerd_address = containerd_address;
  if (!mirror_namespaces.empty()) config.mirror_namespaces = mirror_namespaces;
  if (!upstream_cri_address.empty()) config.upstream_cri_address = upstream_cri_address;
  if (content_proxy) config.content_proxy = true;
  if (!socket_mode.empty()) {
    auto mode = imaged::plugin::ParseMode(socket_mode);
    if (!mode.ok()) {
      std::fprintf(stderr, "imaged: --socket-mode: %s\n", std::string(mode.status().message()).c_str());
      return 2;
    }
    config.socket_mode = *mode;
  }

  // Signals are taken synchronously by this thread; every other thread,
  // started after this, inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = imaged::plugin::Server::Start(config);
  if (!server.ok()) {
    std::fprintf(stderr, "imaged: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "imaged: serving on unix:%s (root %s)\n", config.address.c_str(),
               config.root.c_str());
  // Start-up's code and read-only data go back to the kernel; what serving
  // uses is faulted in again (plugin/startup_pages.h).
  const int64_t resident = imaged::plugin::ResidentBytes();
  if (auto advised = imaged::plugin::PageOutFileMappings(); !advised.ok()) {
    std::fprintf(stderr, "imaged: start-up pages kept: %s\n",
                 std::string(advised.status().message()).c_str());
  } else {
    std::fprintf(stderr, "imaged: start-up pages given back: resident %.1f -> %.1f MiB\n",
                 resident / 1048576.0, imaged::plugin::ResidentBytes() / 1048576.0);
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "imaged: %s, shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  std::fprintf(stderr, "imaged: stopped\n");
  return 0;
}
