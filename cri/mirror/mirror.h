// Mirror mode: imaged keeps the image records of a running containerd in its
// own RocksDB index, so kubelet's ListImages and ImageStatus are answered
// from a persistent index instead of containerd's CRI cache.
//
//   containerd Images API --List / Get--> names, targets, labels
//   containerd Content API --Read--> index, platform manifest, config (small)
//        --> imaged's content store (namespace as in containerd; shared, not
//            copied, when containerd uses imaged as its content proxy)
//   --> store::ImageCommitter: the records and their index rows, in batches
//
// Layers are never copied: the index needs only the documents. The copies
// carry gc.ref labels (index -> manifest -> config) and are written under a
// lease, so imaged's collector keeps exactly what the mirrored records need.
//
// Sync compares containerd's list with imaged's records (name, target,
// labels; imaged's derived labels aside) and writes only the differences, so
// a restart resolves only what changed while imaged was down. SyncName does
// the same for one name: what an event (/images/create, /images/update,
// /images/delete) or a missed ImageStatus triggers. Both read containerd's
// current state, so events may arrive late, twice or out of order.
#ifndef IMAGED_CRI_MIRROR_MIRROR_H_
#define IMAGED_CRI_MIRROR_MIRROR_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "store/clock.h"
#include "store/content_store.h"
#include "store/image_store.h"
#include "store/lease_store.h"
#include "store/platform.h"

namespace imaged::cri {

// containerd, as store interfaces (plugin/ provides them over gRPC).
struct MirrorSource {
  store::ImageStore* images = nullptr;
  store::ContentStore* content = nullptr;
  // containerd's Images.Delete with `sync` (it returns after its garbage
  // collection); none: images->Delete.
  std::function<absl::Status(absl::string_view ns, absl::string_view name)> delete_sync;
};

// imaged's own stores.
struct MirrorTarget {
  store::ContentStore* content = nullptr;
  store::ImageStore* images = nullptr;
  store::ImageCommitter* committer = nullptr;
  store::LeaseStore* leases = nullptr;
};

struct MirrorSyncReport {
  int64_t upstream = 0;   // records containerd has
  int64_t unchanged = 0;  // already mirrored as they are
  int64_t written = 0;    // created or changed here (their documents resolved)
  int64_t deleted = 0;    // gone from containerd, removed here
  absl::Duration took;
};

// What `imagectl mirror` and the health service report.
struct MirrorState {
  bool connected = false;
  absl::Time last_sync = absl::InfinitePast();
  MirrorSyncReport last_report;
  int64_t events_applied = 0;
  absl::Duration last_event_lag;  // event time to applied
  // Over the last kLagWindow events applied (zero when there were none).
  absl::Duration lag_p50;
  absl::Duration lag_p99;
  std::string last_error;
  // Whether containerd answers calls (a hung containerd keeps its socket
  // open, so a connection can be up while nothing comes back), since when,
  // and the last call that found it not answering.
  bool answering = true;
  absl::Time answering_since = absl::InfinitePast();
  std::string last_failure;
};

class Mirror {
 public:
  // Records are written in batches of `batch` (one RocksDB write each).
  // Lease expiry, waits and sync times go by `clock` (not owned).
  Mirror(MirrorSource source, MirrorTarget target, const store::Platform& platform,
         size_t batch = 500, const store::Clock* clock = store::SystemClock::Get());

  // Makes `ns` match containerd.
  absl::StatusOr<MirrorSyncReport> Sync(absl::string_view ns);
  // Makes record `name` of `ns` match containerd's (written, changed or
  // deleted). Returns whether containerd has it.
  absl::StatusOr<bool> SyncName(absl::string_view ns, absl::string_view name);
  // SyncName for several names at once (an event burst drained from a
  // queue): what changed is copied and written as Sync writes, one lease
  // and one RocksDB write per batch, each target copied once. Per name,
  // whether containerd has it; a name may repeat.
  absl::StatusOr<std::vector<bool>> SyncNames(absl::string_view ns,
                                              absl::Span<const std::string> names);
  // What a CRI miss in mirror mode looks up: SyncName for `ref` as given
  // and, when it differs, its Docker-normalised form (`busybox` ->
  // `docker.io/library/busybox:latest`). Returns whether containerd has
  // either.
  absl::StatusOr<bool> SyncReference(absl::string_view ns, absl::string_view ref);
  // SyncName for each of `names` and for every other record of containerd's
  // with the same target (a pull writes repo:tag, repo@digest and the ID).
  absl::Status SyncImage(absl::string_view ns, absl::Span<const std::string> names);
  // After containerd's own CRI pulled `reference` as image `image_id`:
  // SyncImage of the ID and of the reference as given and normalised, so
  // that the pull is answered once the mirror has what containerd wrote.
  absl::Status SyncPull(absl::string_view ns, absl::string_view reference,
                        absl::string_view image_id);
  // CRI RemoveImage in mirror mode: deletes `names` (one image's) in
  // containerd as its CRI does: the ID record ("sha256:<id>") last, and
  // with `sync`, so containerd's collector has freed the space when this
  // returns. A name already gone is not an error.
  absl::Status RemoveUpstream(absl::string_view ns, std::vector<std::string> names);

  // Bookkeeping for the connection that feeds events (plugin/mirror_runner).
  void SetConnected(bool connected, absl::string_view error = "");
  void SetAnswering(bool answering, absl::Time since, absl::string_view last_failure);
  void EventApplied(absl::Duration lag);
  MirrorState State();

 private:
  struct Pending;
  // Writes `changed` (documents copied first) and deletes `gone`, in
  // batches of batch_ under a lease each; counts go to `report`.
  absl::Status Apply(absl::string_view ns, std::vector<store::Image> changed,
                     std::vector<std::string> gone, MirrorSyncReport* report);
  // A document read from containerd, to be committed.
  struct Fetched {
    store::Descriptor desc;
    std::string bytes;
  };
  // What a batch's copies read from containerd, gathered for batched
  // commits: committed whenever kMaxPendingBytes have gathered, the rest
  // after the last copy. The gc.ref labels wait for the records' write.
  struct FetchedDocuments {
    static constexpr size_t kMaxPendingBytes = 32 << 20;
    absl::Mutex mu;
    std::vector<Fetched> pending ABSL_GUARDED_BY(mu);
    size_t pending_bytes ABSL_GUARDED_BY(mu) = 0;
    std::map<std::string, store::Labels> labels ABSL_GUARDED_BY(mu);
  };
  // Copies the documents `target` resolves through (for the platform) into
  // imaged's store under `lease`, with gc.ref labels. A document containerd
  // lacks is left out: the record then waits, unresolved, for it. With
  // `fetched`, the documents read from containerd go there (see above)
  // instead of being written one by one.
  absl::Status CopyDocuments(absl::string_view ns, const store::Descriptor& target,
                             absl::string_view lease, FetchedDocuments* fetched);
  // Commits `fetched` in batches (store::BlobBatchCommitter) under `lease`.
  absl::Status CommitFetched(absl::string_view ns, const std::vector<Fetched>& fetched,
                             absl::string_view lease);
  class PendingDocuments;
  // Writes document `desc` (its `bytes`, read from containerd and checked)
  // under `lease` with `labels`; one already here is shared and labelled.
  absl::Status Put(absl::string_view ns, const store::Descriptor& desc, const std::string& bytes,
                   const store::Labels& labels, absl::string_view lease);
  // Puts document `desc`, which is here, under `lease`.
  absl::Status Share(absl::string_view ns, const store::Descriptor& desc, absl::string_view lease);
  // Sets `labels` on blob `digest` unless it has them.
  absl::Status Label(absl::string_view ns, absl::string_view digest, const store::Labels& labels);
  absl::Status Write(absl::string_view ns, std::vector<store::Image> images,
                     std::vector<std::string> deletes,
                     std::vector<std::pair<std::string, store::Labels>> blob_labels);
  absl::StatusOr<std::string> OpenLease(absl::string_view ns);
  void CloseLease(absl::string_view ns, const std::string& lease);

  const MirrorSource source_;
  const MirrorTarget target_;
  const store::PlatformMatcher matcher_;
  const std::string platform_name_;
  const size_t batch_;
  const store::Clock* const clock_;
  // Set when imaged's content store commits batches (its own RocksDB store).
  store::BlobBatchCommitter* const batcher_;
  static constexpr size_t kLagWindow = 4096;
  absl::Mutex mu_;
  MirrorState state_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> lags_ ABSL_GUARDED_BY(mu_);  // ring of the last kLagWindow
  size_t next_lag_ ABSL_GUARDED_BY(mu_) = 0;
};

// Whether a local record already mirrors `upstream`: same target digest and
// media type, and the same labels apart from the ones imaged derives.
bool SameRecord(const store::Image& upstream, const store::Image& local);

}  // namespace imaged::cri

#endif  // IMAGED_CRI_MIRROR_MIRROR_H_
