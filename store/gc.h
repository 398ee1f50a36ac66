// Garbage collection of content: mark and sweep over RocksDB, per namespace,
// with containerd's reference rules.
//
// Roots of a namespace (containerd's gc scheduler and metadata/gc.go):
//   - every image record: its target;
//   - a blob labelled containerd.io/gc.root;
//   - every resource of a lease that has not expired (containerd.io/gc.expire,
//     RFC 3339, in the past: the lease itself is deleted by the pass);
//     "content" resources are blobs, "images" resources name records.
// References: a blob's labels containerd.io/gc.ref.content and
// containerd.io/gc.ref.content.<anything> name other blobs of the namespace.
// Everything else in [content] of the namespace is garbage.
//
// Ingests are not collected here: an open ingest is kept until it expires
// (RocksDbContentStore::ExpireIngests). The content-proxy namespace "" is
// never collected: what containerd writes through the proxy belongs to
// containerd, whose own collector decides and calls Delete.
//
// Ownership: sweeping removes the namespace's row; a blob file goes only when
// no namespace holds it any more. Metadata is removed first, a write per
// chunk of the sweep, then that chunk's files; a crash in between leaves only
// files no row names, which RocksDbContentStore::Recover removes at the next
// start.
//
// Concurrency: marking reads a RocksDB snapshot and holds no lock, so writes
// go on while a pass marks. The pass takes MetadataDb::gc_lock exclusively
// for bounded moments: to take the snapshot and start noting (no write is
// half done then, so every write is either in the snapshot or noted), and to
// sweep, sweep_chunk blobs at a time: whatever writes referenced since the
// snapshot or the last chunk (an image's target, a blob committed, labelled
// or added to a lease) is spared with everything its current labels reach,
// and the next chunk of the unreferenced blobs goes in one write. Between
// chunks the lock is let go and noting goes on. The moments are bounded by
// the writes made meanwhile and by sweep_chunk, not by the store's size; so
// is the memory a chunk's write stages (removing documents re-indexes every
// name that read them: 20,000 configs read by 60,000 names, in one write,
// took 330-360 MiB).
//
// A pass stops between steps (every 1024 rows while it marks, between
// chunks while it sweeps) when its caller's Interrupt says so (a cancelled
// or expired RPC), or once Shutdown was called; then the chunks written are
// removed and nothing else of that namespace.
#ifndef IMAGED_STORE_GC_H_
#define IMAGED_STORE_GC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "store/clock.h"
#include "store/rocksdb_lease_store.h"
#include "store/metadata_db.h"
#include "store/rocksdb_content_store.h"

namespace imaged::store {

struct GcOptions {
  // Blobs removed per namespace per pass at most; a pass that stops there
  // says so (complete = false) and the next pass goes on.
  int64_t max_removals_per_pass = 20000;
  // Blobs removed per write (and per hold of gc_lock) at most.
  int64_t sweep_chunk = 256;
  // Tests: called after a namespace is marked, before its sweep, with no
  // lock held.
  std::function<void(absl::string_view ns)> after_mark;
  // Tests: called between a sweep's chunks, with no lock held.
  std::function<void(absl::string_view ns)> between_chunks;
};

// Asked between a pass's steps: non-OK (Cancelled, DeadlineExceeded) stops it.
using GcInterrupt = std::function<absl::Status()>;

struct GcReport {
  int namespaces = 0;
  int64_t blobs_kept = 0;      // referenced
  int64_t blobs_removed = 0;   // rows removed (a blob per namespace)
  int64_t files_removed = 0;   // blobs no namespace holds now: their file or
                               // [blob_data] row went
  int64_t bytes_freed = 0;     // of those blobs
  int leases_expired = 0;
  bool complete = true;        // false when the removal budget cut the sweep short
  absl::Duration duration;
};

// What `imagectl du` shows for one namespace.
struct NamespaceUsage {
  std::string ns;
  int64_t blobs = 0;
  int64_t bytes = 0;             // sizes of the namespace's blobs
  int64_t exclusive_bytes = 0;   // of blobs no other namespace holds
  int64_t garbage_blobs = 0;     // unreferenced: a pass would remove the row
  int64_t reclaimable_bytes = 0; // of unreferenced blobs no other namespace holds
};

class Collector {
 public:
  // None owned; all must outlive the collector.
  Collector(MetadataDb* db, RocksDbContentStore* content, RocksDbLeaseStore* leases,
            const Clock* clock, GcOptions options = {})
      : db_(db), content_(content), leases_(leases), clock_(clock), options_(options) {}

  // One pass over `namespaces` (none: every namespace that holds content or
  // leases, except the content-proxy namespace, which is skipped if named;
  // each once however often named). Passes are serialised. `interrupt` may
  // stop it (its status is returned).
  absl::StatusOr<GcReport> Collect(absl::Span<const std::string> namespaces,
                                   const GcInterrupt& interrupt = nullptr);
  // Stops the pass under way at its next check and refuses later ones
  // (Cancelled): imaged is shutting down.
  void Shutdown() { shut_down_ = true; }

  // Space per namespace and what a pass would free, without removing anything.
  absl::StatusOr<std::vector<NamespaceUsage>> Usage();

 private:
  struct Marked;
  // Deletes the leases of `ns` whose gc.expire has passed.
  absl::Status ExpireLeases(absl::string_view ns, int* leases_expired);
  // The blobs of `ns` as `at` saw them, and which of them something
  // references.
  absl::StatusOr<Marked> Mark(absl::string_view ns, const rocksdb::Snapshot* at,
                              const GcInterrupt& interrupt);
  // Of `noted` (writes since the snapshot), the blobs of `ns` they reference
  // now, with everything their labels reach. Requires gc_lock exclusively.
  absl::StatusOr<absl::flat_hash_set<std::string>> Spare(
      absl::string_view ns, const std::vector<MetadataDb::Noted>& noted);
  absl::Status Check(const GcInterrupt& interrupt) const;
  absl::StatusOr<std::vector<std::string>> AllNamespaces();

  MetadataDb* const db_;
  RocksDbContentStore* const content_;
  RocksDbLeaseStore* const leases_;
  const Clock* const clock_;
  const GcOptions options_;
  std::atomic<bool> shut_down_{false};
  absl::Mutex pass_mu_;  // one pass at a time
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_GC_H_
