// Image records in RocksDB and the image-ID index CRI reads, kept in the same
// WriteBatch as the record, so a CRI call right after an Images API call sees
// the change (schema in keys.h).
//
// Resolution: when a record is written, its target is followed through the
// content store (index or manifest list -> the manifest for the configured
// platform -> config). A resolved record gets PR #7061's labels and a name row
// under its image ID; a record whose blobs are not all there yet is kept in
// [unresolved] with an [awaiting] row for the missing digest, and resolved when
// that blob is committed (OnBlobArrived). The documents each record's walk
// read are kept in [cri_docs]; removing one of them resolves the record
// again in the same batch (RemoveDocuments), which takes an indexed name
// out of the index.
#ifndef IMAGED_STORE_ROCKSDB_IMAGE_STORE_H_
#define IMAGED_STORE_ROCKSDB_IMAGE_STORE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/types/span.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/write_batch.h"
#include "store/clock.h"
#include "store/content_store.h"
#include "store/rocksdb_content_store.h"
#include "store/image_store.h"
#include "store/metadata_db.h"
#include "store/platform.h"
#include "store/records.h"

namespace imaged::store {

class RocksDbImageStore final : public ImageStore, public CriImageIndex, public ImageCommitter {
 public:
  // `db`, `content` and `clock` are not owned. `content` is the RocksDB
  // store on the same `db`, not the interface: a Commit puts its blob labels
  // into the same WriteBatch as the records (WriteWithBlobLabels), so one
  // operation stays one RocksDB write. Manifests are chosen for
  // `platform`; `classify` says how CRI reports each name (none: every name
  // is CriName::kNone, for tests that do not look at repo tags).
  RocksDbImageStore(MetadataDb* db, RocksDbContentStore* content, const Clock* clock,
                    const Platform& platform, CriNameFn classify = nullptr);
  // Finishes the CreateThen calls still waiting.
  ~RocksDbImageStore() override;

  absl::StatusOr<Image> Get(absl::string_view ns, absl::string_view name) override;
  absl::StatusOr<std::vector<Image>> List(absl::string_view ns,
                                          absl::Span<const std::string> filters) override;
  using ImageStore::Create;
  using ImageStore::Delete;
  using ImageStore::Update;
  absl::StatusOr<Image> Create(absl::string_view ns, const Image& image, absl::string_view lease,
                               std::optional<absl::Time> timestamp) override;
  // Never blocks: the call is queued. The store's resolver thread checks it
  // and reads its documents (Preresolve), its creator thread makes the
  // writes one after another (so they never contend with each other for
  // write_mu_), and each one's fsync is left to the WAL syncer, where `done`
  // runs once it is durable. ResourceExhausted at once when
  // kMaxCreatesWaiting calls or kMaxCreateBytesWaiting bytes of images
  // (store/limits.h) are waiting already.
  void CreateThen(absl::string_view ns, const Image& image, absl::string_view lease,
                  std::optional<absl::Time> timestamp, CreateDone done) override;
  absl::StatusOr<Image> Update(absl::string_view ns, const Image& image,
                               absl::Span<const std::string> fieldpaths, absl::string_view lease,
                               std::optional<absl::Time> timestamp) override;
  absl::Status Delete(absl::string_view ns, absl::string_view name,
                      absl::string_view target_digest) override;

  // The records and the blob labels in one batch (written by the content
  // store, which orders label updates).
  absl::StatusOr<std::vector<Written>> Commit(absl::string_view ns, const ImageCommit& commit,
                                              absl::string_view lease) override;

  absl::Status ListImages(absl::string_view ns, const ImageFn& fn) override;
  absl::StatusOr<std::optional<CriImage>> GetImage(absl::string_view ns,
                                                   absl::string_view id) override;
  absl::StatusOr<std::string> ImageConfigJson(absl::string_view ns, absl::string_view id) override;
  absl::StatusOr<std::optional<std::string>> ImageIdOfName(absl::string_view ns,
                                                           absl::string_view name) override;
  absl::StatusOr<std::vector<std::string>> ImageIdsWithPrefix(absl::string_view ns,
                                                              absl::string_view id_prefix,
                                                              size_t limit) override;
  absl::StatusOr<std::vector<std::string>> RemoveImage(absl::string_view ns,
                                                       absl::string_view id) override;
  uint64_t Generation() const override { return generation_.load(std::memory_order_acquire); }
  std::optional<std::vector<std::string>> ChangedSince(absl::string_view ns,
                                                       uint64_t since) const override;

  // Retries the records waiting for `digest`; call after it is committed.
  absl::Status OnBlobArrived(absl::string_view digest);
  // Retries every unresolved record (at startup: a crash may have come
  // between a blob's commit and its OnBlobArrived).
  absl::Status RetryUnresolved();
  // Every record the index could not take in, in every namespace.
  absl::StatusOr<std::vector<UnresolvedImage>> ListUnresolved();

  struct CheckReport {
    int records = 0;
    int resolved = 0;
    int unresolved = 0;
    std::vector<std::string> problems;  // differences between index and records
    bool repaired = false;
  };
  // Builds [cri_names] and [cri_status] from [cri_index] and moves the
  // schema version to 2: for a database an imaged of schema version 1 wrote
  // (LocalStores::Open calls it before serving). Idempotent.
  absl::Status UpgradeFromSchema1();
  // Builds [cri_docs] for every record and moves the schema version to 3
  // (after UpgradeFromSchema1, for a database older than 3). Idempotent.
  absl::Status UpgradeFromSchema2();

  // The content store's removals of blobs come through here (LocalStores
  // wires it): `remove` adds the removal of `digests` from `ns` to the
  // batch it is given, writes it and removes the files. In the same batch,
  // every record whose walk read one of them and that does not resolve
  // without it is resolved again: an indexed name leaves the index
  // (unresolved, waiting for the first document its walk misses), so the
  // index never lists an image whose index, manifest or config is gone,
  // and an unresolved one waits for what its walk now misses first; the
  // blob's return resolves it again. Under write_mu_, which is taken
  // before the content store's lock.
  absl::Status RemoveDocuments(absl::string_view ns, absl::Span<const std::string> digests,
                               const std::function<absl::Status(rocksdb::WriteBatch*)>& remove)
      ABSL_LOCKS_EXCLUDED(write_mu_);

  // Recomputes the index from the records and compares; with `repair`,
  // replaces the index with the recomputed one in one write.
  absl::StatusOr<CheckReport> Check(bool repair);

 private:
  struct Resolution;
  // Follows `rec`'s target through the content store. Successful
  // resolutions are remembered (a target's blobs never change), so the
  // several names of one image read and parse its blobs once.
  Resolution Resolve(absl::string_view ns, const ImageRecord& rec);
  // Resolves `images`' targets before the caller takes write_mu_, so the
  // blob reads and parsing happen outside it.
  void Preresolve(absl::string_view ns, absl::Span<const Image> images);
  // Blobs a removal is taking away: resolutions under way treat them as gone.
  struct RemovedDocs {
    std::string ns;
    absl::flat_hash_set<std::string> digests;
  };
  Resolution ResolveUncached(absl::string_view ns, const ImageRecord& rec,
                             const RemovedDocs* removed = nullptr);
  static std::string ResolutionKey(absl::string_view ns, const ImageRecord& rec);
  // Adds to `batch` everything that writing `rec` (replacing `old`, if any)
  // under `name` implies: index rows, unresolved/awaiting rows, derived
  // labels (set on `rec`), and the record itself.
  // `rewritten` names the other records the same batch rewrites (their old
  // index rows do not keep an image ID alive).
  absl::Status StageRecord(rocksdb::WriteBatch* batch, absl::string_view ns,
                           absl::string_view name, const ImageRecord* old, ImageRecord* rec,
                           const absl::flat_hash_set<std::string>* rewritten = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Adds to `batch` the removal of `name`'s index, unresolved and awaiting rows.
  absl::Status StageUnindex(rocksdb::WriteBatch* batch, absl::string_view ns,
                            absl::string_view name, const ImageRecord& old,
                            const absl::flat_hash_set<std::string>* rewritten = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Adds to `batch` the rows of `name` left unresolved by `res`
  // ([unresolved], [awaiting], [cri_docs]).
  void StageUnresolved(rocksdb::WriteBatch* batch, absl::string_view ns, absl::string_view name,
                       const Resolution& res) const;
  // Adds to `batch` the [cri_docs] rows of `name` resolved through `docs`.
  void StageDocs(rocksdb::WriteBatch* batch, absl::string_view ns, absl::string_view name,
                 const std::vector<std::string>& docs) const;
  // Adds to `batch` the removal of `name`'s [cri_docs] rows, if any.
  absl::Status StageDropDocs(rocksdb::WriteBatch* batch, absl::string_view ns,
                             absl::string_view name);
  // Adds to `batch` the removal of `name`'s unresolved and awaiting rows, if any.
  absl::Status StageDropUnresolved(rocksdb::WriteBatch* batch, absl::string_view ns,
                                   absl::string_view name);
  absl::StatusOr<std::optional<ImageRecord>> ReadRecord(absl::string_view ns,
                                                        absl::string_view name);
  // A CreateThen call on its way: validated and resolved on the resolver
  // thread, then written on the creator thread.
  struct QueuedCreate {
    std::string ns;
    Image image;
    std::string lease;
    std::optional<absl::Time> timestamp;
    CreateDone done;  // counts the call out of creates_waiting_
  };
  // The next call of `queue` (guarded by creates_mu_), waiting for one
  // while `*closed` is false; nullopt once it is closed and empty.
  std::optional<QueuedCreate> NextCreate(std::deque<QueuedCreate>* queue, const bool* closed);
  void ResolverLoop();
  void CreatorLoop();
  // Create's checks (the image, its lease) and its resolution, before any
  // lock is taken.
  absl::Status PrepareNew(absl::string_view ns, const Image& image, absl::string_view lease);
  // Create's write, once PrepareNew has passed: under the locks, in the
  // caller's group commit.
  absl::StatusOr<Image> WriteNew(absl::string_view ns, const Image& image, absl::string_view lease,
                                 std::optional<absl::Time> timestamp);
  absl::Status Retry(absl::string_view ns, absl::string_view name);
  // Adds to `batch` that image `name` belongs to `lease` (if any).
  void StageImageLease(rocksdb::WriteBatch* batch, absl::string_view ns, absl::string_view lease,
                       absl::string_view name);
  // Writes `batch` (durably) and publishes it: every write of index rows
  // goes through here, or stages its derived rows and publishes itself
  // (Commit).
  absl::Status WriteIndex(rocksdb::WriteBatch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Adds to `batch` the [cri_names] and [cri_status] rows of every image ID
  // whose [cri_index] rows it puts or deletes: the rows as they will be once
  // `batch` is written. Under write_mu_, so no other index write comes
  // between the reads here and the write.
  absl::Status StageDerivedRows(rocksdb::WriteBatch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Logs the image IDs whose [cri_index] rows `batch` writes under the next
  // generation, then moves the generation on.
  void Publish(const rocksdb::WriteBatch& batch);
  // The name row of `name` for a record with `labels`.
  NameRecord NameRowFor(absl::string_view name, const Labels& labels) const;

  MetadataDb* const db_;
  RocksDbContentStore* const content_;
  const Clock* const clock_;
  const PlatformMatcher platform_;
  const std::string platform_name_;
  const CriNameFn classify_;
  // Serialises image writes: each reads the index, decides, and writes one batch.
  absl::Mutex write_mu_;
  // CreateThen's calls, counted from their queueing to their `done`, and
  // the resolver and creator threads, started at the first.
  absl::Mutex creates_mu_;
  std::deque<QueuedCreate> to_resolve_ ABSL_GUARDED_BY(creates_mu_);
  std::deque<QueuedCreate> to_write_ ABSL_GUARDED_BY(creates_mu_);
  size_t creates_waiting_ ABSL_GUARDED_BY(creates_mu_) = 0;
  size_t create_bytes_waiting_ ABSL_GUARDED_BY(creates_mu_) = 0;
  bool creates_stop_ ABSL_GUARDED_BY(creates_mu_) = false;
  bool resolver_done_ ABSL_GUARDED_BY(creates_mu_) = false;
  std::thread resolver_ ABSL_GUARDED_BY(creates_mu_);
  std::thread creator_ ABSL_GUARDED_BY(creates_mu_);
  // Recent successful resolutions by namespace and target; cleared when full.
  static constexpr size_t kMaxResolved = 256;
  absl::Mutex resolved_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Resolution>> resolved_
      ABSL_GUARDED_BY(resolved_mu_);
  std::atomic<uint64_t> generation_{1};
  // The image IDs recent generations touched, oldest first, bounded; every
  // change after generation `changes_complete_after_` is in it.
  struct Change {
    uint64_t generation;
    std::string ns;
    std::string image_id;
  };
  static constexpr size_t kMaxChanges = 8192;
  mutable absl::Mutex changes_mu_;
  std::deque<Change> changes_ ABSL_GUARDED_BY(changes_mu_);
  uint64_t changes_complete_after_ ABSL_GUARDED_BY(changes_mu_) = 1;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_ROCKSDB_IMAGE_STORE_H_
