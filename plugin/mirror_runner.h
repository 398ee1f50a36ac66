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
// Every call to containerd goes through one UpstreamCalls (deadlines, and
// cancelled all at once by Stop). A heartbeat (an Images Get every second,
// with the point-call deadline) keeps its health current while nothing else
// calls: a containerd that stops answering is reported within one deadline
// and a second, and one that answers again as soon as it does.
//
// While disconnected or not answering imaged keeps answering from RocksDB;
// State() and the health service ("imaged.mirror") say so.
#ifndef IMAGED_PLUGIN_MIRROR_RUNNER_H_
#define IMAGED_PLUGIN_MIRROR_RUNNER_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cri/mirror/mirror.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/leases_client.h"
#include "plugin/upstream_calls.h"

namespace imaged::plugin {

class MirrorRunner {
 public:
  struct Options {
    std::string containerd_address;        // unix socket path
    std::vector<std::string> namespaces;   // mirrored namespaces
    absl::Duration max_backoff = absl::Seconds(30);
    // Deadlines of the calls to containerd.
    UpstreamCalls::Options calls;
    absl::Duration heartbeat = absl::Seconds(1);
    // Told whenever "connected and containerd answering" changes (e.g. the
    // health service).
    std::function<void(bool serving)> on_serving;
  };

  // `target` holds imaged's own stores (not owned).
  MirrorRunner(Options options, cri::MirrorTarget target, const store::Platform& platform);
  ~MirrorRunner();

  void Start();
  // Cancels every call to containerd in flight (and fails later ones at
  // once), then stops the threads; idempotent.
  void Stop();
  // Only the cancelling part of Stop (shutdown's drain ran out).
  void CancelCalls() { calls_->CancelAll(); }

  cri::Mirror& mirror() { return *mirror_; }
  // containerd's APIs, for CRI writes that act on containerd.
  RemoteImageStore& upstream_images() { return *images_; }
  RemoteContentStore& upstream_content() { return *content_; }
  RemoteLeaseStore& upstream_leases() { return *leases_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // Deadlines, timeouts per method, containerd's health.
  UpstreamCalls& calls() { return *calls_; }

 private:
  void Loop();
  // One connection: subscribe, probe, sync, follow. Returns why it ended.
  absl::Status RunOnce();
  void Heartbeat();
  void SetConnected(bool connected, absl::string_view error = "");
  void UpstreamHealthChanged();

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<UpstreamCalls> calls_;
  std::unique_ptr<RemoteImageStore> images_;
  std::unique_ptr<RemoteContentStore> content_;
  std::unique_ptr<RemoteLeaseStore> leases_;
  std::unique_ptr<cri::Mirror> mirror_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  std::thread heartbeat_;
  // Serializes health reports so they arrive in order.
  absl::Mutex health_mu_;
  bool connected_ ABSL_GUARDED_BY(health_mu_) = false;
  std::optional<bool> serving_ ABSL_GUARDED_BY(health_mu_);
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_MIRROR_RUNNER_H_
