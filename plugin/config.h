// imaged's configuration: defaults, a TOML file, then flags on top.
#ifndef IMAGED_PLUGIN_CONFIG_H_
#define IMAGED_PLUGIN_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace imaged::plugin {

struct Config {
  // RocksDB (meta/), blobs/ and ingest/ live here.
  std::string root = "/var/lib/imaged";
  // The unix socket every service is served on.
  std::string address = "/run/imaged/imaged.sock";
  unsigned socket_mode = 0660;
  // Ingests untouched for this long are aborted.
  absl::Duration ingest_expiry = absl::Hours(24);
  // How long SIGTERM waits for in-flight calls before cancelling them.
  absl::Duration shutdown_timeout = absl::Seconds(10);
  // The platform whose manifest an index resolves to.
  std::string platform = "linux/amd64";
  // The containerd namespace the CRI ImageService works in.
  std::string cri_namespace = "k8s.io";
  // At start: "off", "report" (log differences between the image-ID index and
  // the records) or "repair" (and rebuild the index from the records).
  std::string index_check = "off";
  // containerd's hosts.toml directory (a <host>/hosts.toml per registry);
  // "" for the defaults (https; plain HTTP for loopback registries).
  std::string registry_config_path;
  // Blobs one CRI pull downloads at once.
  int max_concurrent_downloads = 3;
  // Prometheus metrics over HTTP on this loopback "HOST:PORT" (127.0.0.1,
  // [::1] or localhost); "" serves none.
  std::string metrics_address;
  // A garbage collection pass over every namespace runs this often (zero:
  // only after deletes and on request).
  absl::Duration gc_interval = absl::Hours(1);
  // A pass over the namespaces a delete touched runs this long after it
  // (deletes in the meantime share the pass).
  absl::Duration gc_delay = absl::Seconds(1);
  // Passes after deletes take at most this share of the time on average
  // (GcScheduler::Options::max_share; containerd's pause_threshold).
  double gc_max_share = 0.02;
  // Blobs a collection's sweep removes per write (0: store::GcOptions's
  // default). Not a config-file key: the fuzz harness makes it small, so
  // that its sweeps of a few blobs take several writes.
  int64_t gc_sweep_chunk = 0;
  // The first wait before a registry request is tried again, doubling
  // after each try (0: cri::RetryPolicy's default). Not a config-file key:
  // the fuzz harness makes it a millisecond, so that a pull its registry
  // answers with a broken header fails in milliseconds, not in 1.75 s.
  absl::Duration pull_initial_backoff = absl::ZeroDuration();
  // Mirror mode (on when set): the containerd socket whose images imaged
  // keeps in its index, the namespaces mirrored, and containerd's CRI
  // endpoint that PullImage is forwarded to ("" = pull into containerd
  // through its Content and Images APIs).
  std::string containerd_address;
  std::vector<std::string> mirror_namespaces = {"k8s.io"};
  std::string upstream_cri_address;
  // Mirror mode: deadlines of calls to containerd. A point call (Get, Info,
  // Create, Delete...) and a stream kept waiting for a message end after
  // `containerd_timeout`; a call that lists everything, or a delete that
  // waits for containerd's collector, after `containerd_list_timeout`; a
  // forwarded PullImage at the caller's deadline or `upstream_pull_timeout`.
  absl::Duration containerd_timeout = absl::Seconds(5);
  absl::Duration containerd_list_timeout = absl::Seconds(60);
  absl::Duration upstream_pull_timeout = absl::Minutes(30);
  // Mirror mode: an ImageStatus miss is looked up in containerd for at most
  // this long before the answer is "not present" (the lookup goes on), with
  // at most `mirror_miss_queue` distinct lookups waiting or running (more
  // are "not present" at once).
  absl::Duration mirror_miss_budget = absl::Seconds(2);
  int mirror_miss_queue = 64;
  // Mirror mode without an upstream CRI: ImageFsInfo reports the use of
  // containerd's snapshotter and content directories under its root.
  std::string containerd_root = "/var/lib/containerd";
  std::string containerd_snapshotter = "overlayfs";
  // imaged is containerd's content store ([proxy_plugins]): every Content
  // call is the content-proxy namespace's, whatever namespace and lease
  // headers it carries. containerd's in-process clients (its CRI plugin)
  // send their own namespace and lease through the proxy; they belong to
  // containerd's metadata, which keeps its references itself.
  bool content_proxy = false;
};

// Reads a TOML file over `base`. Keys (all optional):
//   root = "/var/lib/imaged"
//   address = "/run/imaged/imaged.sock"
//   socket_mode = "0660"          # octal, as a string
//   ingest_expiry = "24h"         # Go-style duration
//   shutdown_timeout = "10s"
//   platform = "linux/amd64"      # manifests chosen from an index
//   cri_namespace = "k8s.io"
//   index_check = "off"           # or "report", "repair"
//   metrics_address = "127.0.0.1:9464"  # Prometheus /metrics; "" (default) for none
//   max_concurrent_downloads = 3  # per pull
//   gc_interval = "1h"            # "0s": no scheduled pass
//   gc_delay = "1s"               # after a delete
//   gc_max_share = 0.02           # of the time, for passes after deletes
//   containerd_address = "/run/containerd/containerd.sock"   # mirror mode
//   mirror_namespaces = ["k8s.io"]
//   upstream_cri_address = "/run/containerd/containerd.sock" # PullImage forwarded there
//   containerd_timeout = "5s"         # mirror mode: point calls to containerd
//   containerd_list_timeout = "60s"   # whole lists, deletes that wait for its GC
//   upstream_pull_timeout = "30m"     # a forwarded PullImage at most
//   mirror_miss_budget = "2s"         # an ImageStatus miss asks containerd this long
//   mirror_miss_queue = 64            # distinct misses looked up at once, at most
//   containerd_root = "/var/lib/containerd"   # ImageFsInfo without an upstream CRI
//   containerd_snapshotter = "overlayfs"
//   content_proxy = false         # true: serve containerd as its content store
//   [registry]
//   config_path = "/etc/imaged/certs.d"   # containerd's hosts.toml layout
// InvalidArgument naming the file and key for a syntax error, an unknown key
// or a value of the wrong type; NotFound when the file is missing.
absl::StatusOr<Config> LoadConfigFile(const std::string& path, Config base = Config());

// Parses an octal file mode such as "0660"; InvalidArgument otherwise.
absl::StatusOr<unsigned> ParseMode(const std::string& text);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_CONFIG_H_
