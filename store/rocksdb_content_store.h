// The ContentStore imaged serves: blob files in containerd's layout under a
// root directory, their metadata in RocksDB (schema in keys.h). Small blobs
// (manifests, indexes, configs: Options::inline_max_bytes) are rows of
// [blob_data] instead of files.
//
// Commit is crash-safe: the ingest's data is fsynced and its digest verified,
// then renamed to blobs/sha256/<hex>, the directory fsynced, and only then the
// metadata row written (one synced WriteBatch). A small blob is verified and
// then written with its metadata in that one WriteBatch: durable and visible
// at once, with no file at all (its ingest stays in memory until it outgrows
// the limit or its writer closes uncommitted). A crash at any point leaves
// whole, verified blobs and resumable ingests; Recover() removes leftovers.
//
// Blobs are shared by every namespace that holds the digest (containerd's
// "shared" policy): a namespace expecting a digest that another one holds gets
// its own row without a transfer. The file or [blob_data] row goes when the
// last namespace deletes.
#ifndef IMAGED_STORE_ROCKSDB_CONTENT_STORE_H_
#define IMAGED_STORE_ROCKSDB_CONTENT_STORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "store/clock.h"
#include "store/content_store.h"
#include "store/metadata_db.h"

namespace imaged::store {

struct RocksDbContentStoreOptions {
  // Blobs of at most this many bytes are kept in [blob_data]: their commit
  // is one WAL write, shared with concurrent commits, where a file costs a
  // create, an fsync, a rename and a directory fsync. 64 KiB holds nearly
  // every manifest, index and config; layers stay files. 0: no blob is kept
  // inline (every one is a file).
  int64_t inline_max_bytes = 64 << 10;
};

class RocksDbContentStore final : public ContentStore, public BlobBatchCommitter {
 public:
  using Options = RocksDbContentStoreOptions;

  // Uses `db` (not owned) for metadata and `root` for blobs/ and ingest/,
  // creating them if needed.
  static absl::StatusOr<std::unique_ptr<RocksDbContentStore>> Open(MetadataDb* db,
                                                                   const std::string& root,
                                                                   const Clock* clock,
                                                                   Options options = {});

  // Removes ingest files without a row, which a crash can leave behind, and
  // moves ingests of the old directory layout. Call once at startup, before
  // serving.
  absl::Status Recover();
  // Removes blob files no namespace holds, which a crash can also leave. Safe
  // while serving (a file being committed is left alone), so a server runs it
  // after it starts: listing 60,000 files took a fifth of a second.
  absl::Status RemoveUnheldBlobs();
  // Aborts ingests that no writer and no lease holds and that were not
  // updated for `max_age`.
  // Returns how many went.
  absl::StatusOr<int> ExpireIngests(absl::Duration max_age);

  // Called after a blob becomes visible in a namespace (committed or shared),
  // outside any store lock. Set once, before serving.
  using CommitObserver = std::function<void(absl::string_view ns, absl::string_view digest)>;
  void SetCommitObserver(CommitObserver observer) { observer_ = std::move(observer); }

  // Every removal of blobs (Delete, RemoveBlobs) runs as
  // guard(ns, digests, remove): the guard stages into a batch what else
  // the removal changes (the image index: RocksDbImageStore::RemoveDocuments),
  // under its own lock, and calls `remove`, which adds the removal to that
  // batch, writes it and removes the files, under this store's lock. So the
  // two change in one write, and the guard's lock is taken before this
  // store's, as image writes take them. Set once, before serving.
  using RemoveFn = std::function<absl::Status(rocksdb::WriteBatch*)>;
  using RemovalGuard = std::function<absl::Status(
      absl::string_view ns, absl::Span<const std::string> digests, const RemoveFn& remove)>;
  void SetRemovalGuard(RemovalGuard guard) { guard_ = std::move(guard); }

  // Bytes and files under blobs/ and in [blob_data], kept in the same writes
  // that add and remove them, so reading it costs one point lookup.
  absl::StatusOr<ContentUsage> Usage() const;

  // Where `digest` is or would be a file (a small blob is a row instead).
  std::string BlobPath(absl::string_view digest) const;
  // Whether a blob of `size` bytes is kept in [blob_data].
  bool KeptInline(int64_t size) const {
    return options_.inline_max_bytes > 0 && size <= options_.inline_max_bytes;
  }
  const std::string& root() const { return root_; }

  // Removes the rows of `digests` in `ns` (those still there) and the
  // [blob_data] rows no other namespace holds in one write, then the files
  // no other namespace holds: the collector's sweep. The caller must hold
  // db->gc_lock() exclusively.
  struct Removed {
    int64_t rows = 0;
    int64_t files = 0;  // blobs whose bytes went, files or [blob_data] rows
    int64_t bytes = 0;
  };
  absl::StatusOr<Removed> RemoveBlobs(absl::string_view ns, absl::Span<const std::string> digests);

  // Adds to `batch` the setting of `labels` on blobs of `ns` (merged: other
  // labels stay, an empty value removes one) and writes it, under the lock
  // that orders label updates, so another store's rows and these labels land
  // in one write. NotFound (nothing written) when a blob is missing. The
  // caller must hold db->gc_lock() shared.
  absl::Status WriteWithBlobLabels(absl::string_view ns,
                                   absl::Span<const std::pair<std::string, Labels>> labels,
                                   rocksdb::WriteBatch* batch);

  absl::StatusOr<ContentInfo> Info(absl::string_view ns, absl::string_view digest) override;
  absl::StatusOr<ContentInfo> Update(absl::string_view ns, const ContentInfo& info,
                                     absl::Span<const std::string> fieldpaths) override;
  absl::Status Walk(absl::string_view ns, absl::Span<const std::string> filters,
                    const WalkFn& fn) override;
  absl::Status Delete(absl::string_view ns, absl::string_view digest) override;
  absl::StatusOr<std::unique_ptr<ContentReader>> Reader(absl::string_view ns,
                                                        absl::string_view digest) override;
  absl::StatusOr<IngestStatus> Status(absl::string_view ns, absl::string_view ref) override;
  absl::StatusOr<std::vector<IngestStatus>> ListStatuses(
      absl::string_view ns, absl::Span<const std::string> filters) override;
  using ContentStore::Writer;
  absl::StatusOr<std::unique_ptr<ContentWriter>> Writer(absl::string_view ns,
                                                        absl::string_view ref, int64_t total,
                                                        absl::string_view expected,
                                                        absl::string_view lease) override;
  absl::Status Abort(absl::string_view ns, absl::string_view ref) override;

  // The blobs' files are written into ingest/, each one's writeback
  // started as it is written and the fsyncs made after, a group at a time;
  // then renamed into blobs/ with one directory fsync, and given their rows
  // in one WriteBatch (one WAL fsync, shared with concurrent commits), which
  // also holds the bytes of the blobs KeptInline (they get no file). A
  // crash leaves at most files without rows, which Recover and
  // RemoveUnheldBlobs remove.
  BatchResult CommitBlobs(absl::string_view ns, absl::Span<const Blob> blobs,
                          absl::string_view lease) override;

 private:
  friend class LocalWriter;

  RocksDbContentStore(MetadataDb* db, std::string root, const Clock* clock, Options options);

  std::string IngestPath(absl::string_view ns, absl::string_view ref) const;
  // Holds `key` for one writer; Unavailable when another has it.
  absl::Status LockRef(const std::string& key, absl::string_view ref);
  void UnlockRef(const std::string& key);
  // Moves a verified ingest into blobs/ and writes its metadata (see top);
  // with `data` (a blob KeptInline), writes it as a row with its metadata
  // instead, touching no file.
  absl::Status CommitBlob(absl::string_view ns, absl::string_view ref, const std::string& data_path,
                          const std::string& digest, int64_t size, const Labels& labels,
                          absl::string_view lease, std::optional<absl::string_view> data);
  // Adds to `batch` the rows a commit of `digest` into `ns` writes: its
  // [content] and owner rows, the ingest's removal, the lease's hold.
  void StageCommitRows(rocksdb::WriteBatch* batch, absl::string_view ns, absl::string_view ref,
                       absl::string_view digest, int64_t size, const Labels& labels,
                       absl::string_view lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds to `batch` the removal of the bytes of `digest`, which no namespace
  // holds any more: its [blob_data] row if it has one; and to `delta` what
  // that frees. Returns whether it is a file instead, which the caller
  // unlinks once the batch is written.
  absl::StatusOr<bool> StageBlobGone(rocksdb::WriteBatch* batch, absl::string_view digest,
                                     int64_t size, ContentUsage* delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bytes of `digest` when it is kept in [blob_data]; nullopt when not.
  absl::StatusOr<std::optional<std::string>> InlineBytes(absl::string_view digest) const;
  // The size of the blob `digest` as stored: its row, else its file.
  absl::StatusOr<int64_t> StoredSize(absl::string_view digest) const;
  // Gives `ns` a row for a blob file another namespace holds (of `total`
  // bytes, when > 0), or finds `ns` already holds it; either way `lease` gets
  // it. NotFound when no namespace holds such a file.
  absl::Status ShareBlob(absl::string_view ns, absl::string_view digest, int64_t total,
                         absl::string_view lease);

  // Waits until no commit of any of `digests` is between its rename and its
  // row (see CommitBlob).
  void AwaitNotCommitting(absl::Span<const std::string> digests) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fsyncs blobs/sha256 unless an fsync that began after rename number
  // `renamed` has already done so: concurrent commits share one.
  absl::Status SyncBlobDir(uint64_t renamed) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status RemoveIngest(absl::string_view ns, absl::string_view ref);
  // Runs `remove` through the guard, if any, else with a fresh batch.
  absl::Status Guarded(absl::string_view ns, absl::Span<const std::string> digests,
                       const RemoveFn& remove) ABSL_LOCKS_EXCLUDED(mu_);
  // Delete and RemoveBlobs, adding to `batch`.
  absl::Status DeleteInto(rocksdb::WriteBatch* batch, absl::string_view ns,
                          absl::string_view digest) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Removed> RemoveBlobsInto(rocksdb::WriteBatch* batch, absl::string_view ns,
                                          absl::Span<const std::string> digests)
      ABSL_LOCKS_EXCLUDED(mu_);
  // True when a namespace other than `except` holds `digest`.
  absl::StatusOr<bool> HeldByAnother(absl::string_view digest, absl::string_view except) const;
  // Adds to `batch` the usage counters moved by `delta`.
  absl::Status StageUsage(rocksdb::WriteBatch* batch, const ContentUsage& delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<IngestStatus> ToStatus(absl::string_view ns, absl::string_view ref,
                                        absl::string_view record);

  MetadataDb* const db_;
  const std::string root_;
  const std::string blob_dir_;
  const std::string ingest_root_;
  const Clock* const clock_;
  const Options options_;
  CommitObserver observer_;
  RemovalGuard guard_;

  // Serialises metadata read-modify-writes and the file moves that go with
  // them (commit, share, delete), so a delete never unlinks a file that a
  // concurrent commit has just given a row.
  // A commit does not hold it across its fsyncs: it renames under it, marks
  // the digest in `committing_`, syncs the directory and writes the row under
  // it again; other commits, deletes and sweeps of that digest wait for the
  // mark to go (a share finds no row yet and makes the writer transfer).
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> committing_ ABSL_GUARDED_BY(mu_);
  uint64_t renames_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex dir_sync_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t dir_synced_ ABSL_GUARDED_BY(dir_sync_mu_) = 0;
  std::atomic<uint64_t> batch_files_{0};  // names CommitBlobs' files in ingest/
  absl::Mutex locks_mu_;
  absl::flat_hash_set<std::string> locked_ ABSL_GUARDED_BY(locks_mu_);
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_ROCKSDB_CONTENT_STORE_H_
