// The containerd side of mirror mode: one channel to containerd's socket,
// its Images, Content, Leases and Events APIs as store interfaces, and a
// thread that keeps cri::Mirror fed:
//
//   subscribe to /images/* events of the mirrored namespaces
//   -> publish a probe event and wait for it (the subscription is live, so
//      nothing that happens after the list below can be missed)
//   -> Sync every namespace (only differences are written)
//   -> apply each event (SyncName) until the stream breaks
//   -> mark disconnected, back off (0.5 s doubling to 30 s), start over.
//
// While disconnected imaged keeps answering from RocksDB; State() and the
// health service ("imaged.mirror") say so.
#ifndef IMAGED_PLUGIN_MIRROR_RUNNER_H_
#define IMAGED_PLUGIN_MIRROR_RUNNER_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cri/mirror.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/leases_client.h"

namespace imaged::plugin {

class MirrorRunner {
 public:
  struct Options {
    std::string containerd_address;        // unix socket path
    std::vector<std::string> namespaces;   // mirrored namespaces
    absl::Duration max_backoff = absl::Seconds(30);
    // Told of every connect and disconnect (e.g. the health service).
    std::function<void(bool connected)> on_connected;
  };

  // `target` holds imaged's own stores (not owned).
  MirrorRunner(Options options, cri::MirrorTarget target, const store::Platform& platform);
  ~MirrorRunner();

  void Start();
  // Stops the thread (cancels the subscription); idempotent.
  void Stop();

  cri::Mirror& mirror() { return *mirror_; }
  // containerd's APIs, for CRI writes that act on containerd.
  RemoteImageStore& upstream_images() { return *images_; }
  RemoteContentStore& upstream_content() { return *content_; }
  RemoteLeaseStore& upstream_leases() { return *leases_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  void Loop();
  // One connection: subscribe, probe, sync, follow. Returns why it ended.
  absl::Status RunOnce();

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<RemoteImageStore> images_;
  std::unique_ptr<RemoteContentStore> content_;
  std::unique_ptr<RemoteLeaseStore> leases_;
  std::unique_ptr<cri::Mirror> mirror_;
  absl::Mutex mu_;
  grpc::ClientContext* active_ ABSL_GUARDED_BY(mu_) = nullptr;  // to cancel on Stop
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Where a record `name` is looked up first when CRI misses it in mirror
// mode: the name itself, and the Docker-normalised form of a reference.
std::vector<std::string> MirrorCandidates(absl::string_view ref);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_MIRROR_RUNNER_H_
