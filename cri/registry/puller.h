// CRI PullImage: fetch an image from its registry into the content store and
// name it as containerd's CRI plugin does.
//
//   reference --Resolve (HEAD)--> top descriptor (index or manifest)
//   --store::ResolveImage(platform)--> manifest --> config + layers
//
// Documents already in the content store are read from it; missing blobs are
// fetched (up to `max_concurrent_downloads` at once) through the content
// store's ingest and commit path, so each is verified (size and digest) and
// durable before it is visible, and an interrupted one resumes from its
// ingest's offset on the next pull. Then one write (ImageCommitter) adds the
// three names containerd's CRI writes, labelled io.cri-containerd.image=managed:
//   <repo>:<tag>              (when the reference has a tag, "latest" if none)
//   <repo>@<top digest>
//   sha256:<config digest>    (the image ID, what PullImage returns)
// and containerd's gc.ref labels on the parents: the index gets
// containerd.io/gc.ref.content.m.0 for the manifest it resolved to, the
// manifest .config and .l.<i> for its blobs.
//
// Concurrent pulls share downloads: a blob being fetched for one pull is
// waited for by the others, not fetched twice. An image that is present and
// unchanged costs one request (the HEAD that resolves the tag).
//
// Only the manifest for the configured platform is fetched (containerd's CRI
// fetches every manifest its platform matcher accepts; for the platforms
// containerd 1.6 matches that is the same manifest the index resolves to).
#ifndef IMAGED_CRI_REGISTRY_PULLER_H_
#define IMAGED_CRI_REGISTRY_PULLER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cri/registry/http_client.h"
#include "cri/registry/registry_auth.h"
#include "cri/registry/registry_client.h"
#include "store/clock.h"
#include "store/content_store.h"
#include "store/image_store.h"
#include "store/lease_store.h"
#include "store/platform.h"

namespace imaged::cri {

inline constexpr char kManagedValue[] = "managed";

// What a pull reports of each blob as it goes, in the words containerd's
// transfer service uses (a Transfer's progress stream carries them).
struct PullProgress {
  // "already exists", "downloading" (offset so far), or "complete".
  std::string event;
  // The blob's ingest ref, containerd's name for it: "layer-sha256:...".
  std::string name;
  std::string parent;  // the ingest ref of the manifest a layer or config belongs to
  int64_t offset = 0;
  store::Descriptor desc;
};

struct PullerOptions {
  // containerd's hosts.toml directory ("" = defaults: https, and plain HTTP
  // for loopback registries).
  std::string hosts_dir;
  int max_concurrent_downloads = 3;
  RetryPolicy retry;
  // A pull running longer than this logs its progress this often.
  absl::Duration log_interval = absl::Seconds(10);
  // Where progress lines go, and one line per pull that failed or fetched
  // anything (none: not logged).
  std::function<void(const std::string&)> log;
  // Lease expiry, backoff and waits go by this clock (not owned).
  const store::Clock* clock = store::SystemClock::Get();
  // How long the temporary lease of a pull outlives a crashed imaged.
  absl::Duration lease_expiry = absl::Hours(24);
};

struct PullRequest {
  std::string ns;
  std::string image;  // as kubelet sends it: "busybox", "quay.io/a/b:1", "x@sha256:..."
  Credentials creds;
  std::string lease;  // containerd lease the blobs and records join ("" for a temporary one)
  // Stops the pull (Cancelled), e.g. when its caller has gone away.
  CancelCheck cancel;

  // A Transfer pull (containerd 2.x's ImageStore): these record names
  // instead of CRI's three, each with `labels` and no managed label, written
  // (created or replaced) even when present and unchanged. Empty: CRI's.
  std::vector<std::string> names;
  store::Labels labels;
  // The platform to pull instead of the puller's.
  std::optional<store::Platform> platform;
  // hosts.toml directories instead of the puller's (a Transfer's host_dir).
  std::optional<std::string> hosts_dir;
  // A Transfer's default_scheme "http" (ctr --plain-http): the registry's
  // own endpoint is plain HTTP.
  bool plain_http = false;
  // Called, from the pull's threads, as each blob is found or fetched.
  std::function<void(const PullProgress&)> progress;
};

struct PullResult {
  std::string image_id;  // "sha256:<config digest>"
  std::string reference;  // normalised, e.g. "docker.io/library/busybox:latest"
  store::Descriptor target;
  // The records written (empty when the image was present and unchanged).
  std::vector<store::ImageCommitter::Written> written;
  int64_t bytes_fetched = 0;  // downloaded by this pull
  int64_t bytes_resumed = 0;  // kept from interrupted earlier pulls
  int blobs_fetched = 0;

  // The names written, or the image ID when nothing was (present and
  // unchanged): what a mirror must have before the pull is answered.
  std::vector<std::string> Names() const;
};

class Puller {
 public:
  // None of the pointers is owned; all must outlive the Puller. With
  // `leases` (may be null), a pull that names no lease of its own runs under
  // a temporary one, so a collector never takes blobs fetched before the
  // names that reference them are written; it carries containerd.io/gc.expire
  // (`lease_expiry` on) in case imaged dies mid-pull.
  Puller(store::ContentStore* content, store::ImageStore* images,
         store::ImageCommitter* committer, store::LeaseStore* leases, HttpTransport* http,
         store::Platform platform, PullerOptions options);

  // Pulls `req.image`. Errors name the reference and the registry:
  // InvalidArgument (a reference that does not parse, bad credentials
  // encoding), NotFound (no such repository, tag, or manifest for the
  // platform), Unauthenticated / PermissionDenied (credentials refused),
  // Unavailable (the registry could not be reached or kept failing; a retry
  // resumes), DataLoss (content that does not match its digest: nothing is
  // stored and no name is created), Cancelled.
  absl::StatusOr<PullResult> Pull(const PullRequest& req);

 private:
  // Pull without its log line: under req.lease, or a temporary lease.
  absl::StatusOr<PullResult> PullUnderLease(const PullRequest& req);
  // Blobs are written under `blob_lease`, records under req.lease.
  absl::StatusOr<PullResult> PullLeased(const PullRequest& req, absl::string_view blob_lease);
  struct Flight {
    absl::Notification done;
    absl::Status status;
  };
  struct Job;
  class RegistryDocuments;

  // Opens the ingest `ref` for `desc` under the pull's lease, waiting while
  // another writer holds the ref. AlreadyExists when the blob is there.
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> OpenWriter(
      Job& job, const std::string& ref, const store::Descriptor& desc);
  // The bytes of document `desc` (at most `max_bytes`): from the content
  // store, or fetched and committed to it.
  absl::StatusOr<std::string> Document(Job& job, const store::Descriptor& desc,
                                       absl::string_view ref_kind, int64_t max_bytes);
  // Makes blob `desc` present in the job's namespace, sharing a download
  // already under way for the same blob.
  absl::Status EnsureBlob(Job& job, const store::Descriptor& desc, absl::string_view ref_kind);
  absl::Status FetchBlob(Job& job, const store::Descriptor& desc, absl::string_view ref_kind);
  // Fetches the blobs in parallel; logs progress of long pulls.
  absl::Status FetchAll(Job& job, const std::vector<std::pair<store::Descriptor, std::string>>& blobs);

  store::ContentStore* const content_;
  store::ImageStore* const images_;
  store::ImageCommitter* const committer_;
  store::LeaseStore* const leases_;
  HttpTransport* const http_;
  const store::PlatformMatcher matcher_;
  const std::string platform_name_;
  const PullerOptions options_;

  absl::Mutex mu_;
  // ns + "\n" + digest -> the download under way.
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_REGISTRY_PULLER_H_
