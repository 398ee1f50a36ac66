// The RocksDB instance that holds imaged's metadata, opened with every column
// family keys.h lists, and the schema version checked.
#ifndef IMAGED_STORE_METADATA_DB_H_
#define IMAGED_STORE_METADATA_DB_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "store/keys.h"

namespace imaged::store {

// Maps a failed RocksDB status to one whose message is "<what>: <rocksdb
// message>". Ok stays Ok. NotFound -> NotFound, Busy/TryAgain/TimedOut ->
// Unavailable, Corruption -> DataLoss, IOError with no space ->
// ResourceExhausted, else Internal.
absl::Status RocksError(const rocksdb::Status& s, absl::string_view what);

class MetadataDb {
 public:
  // Opens (creating if needed) the database in directory `path`. FailedPrecondition
  // when another process holds it or its schema is newer than this build's.
  static absl::StatusOr<std::unique_ptr<MetadataDb>> Open(const std::string& path);
  ~MetadataDb();

  rocksdb::DB* db() const { return db_.get(); }
  // The schema version the database had when opened: 0 when it was created
  // now (it then has kSchemaVersion), less than kSchemaVersion when an
  // older imaged wrote it and an upgrade step has yet to run (the version
  // is moved on by that step, not here).
  uint32_t opened_schema_version() const { return opened_schema_version_; }
  rocksdb::ColumnFamilyHandle* cf(Cf family) const { return handles_[static_cast<int>(family)]; }

  // Applies `batch` atomically and, by default, durably (WAL fsynced). Inside
  // GroupCommit on this thread a durable write does not wait for its fsync:
  // GroupCommit does, once the caller's locks are released.
  absl::Status Write(rocksdb::WriteBatch* batch, bool sync = true);

  // Group commit. Runs `f`, which takes its own locks and writes; its durable
  // writes reach the WAL without waiting for the fsync, and after `f` has
  // returned (its locks released) one fsync makes them durable together with
  // every write other threads made meanwhile, before GroupCommit returns. So
  // writers serialised by a lock of their own still share fsyncs, as RocksDB's
  // own write group does for writers that hold no lock. A write is visible to
  // readers from the memtable before its fsync, never to its own caller's
  // client; nothing written after it can become durable without it (the WAL is
  // replayed in order). `f` returns absl::Status or absl::StatusOr; a failed
  // fsync replaces its result. Nested calls join the outer one.
  template <typename F>
  auto GroupCommit(F&& f) -> decltype(f());
  // Group commit for a caller that must not block on the fsync (a thread
  // that answers many calls): runs `f` as GroupCommit does, then `done` with
  // its result once its writes are durable. `done` runs at once on this
  // thread when `f` wrote nothing durable, else on the WAL syncer's thread
  // (SyncWalThen). `f` returns absl::Status or absl::StatusOr.
  template <typename F, typename Done>
  void GroupCommitThen(F&& f, Done done);
  // Blocks until the WAL is fsynced at least to `ticket` (a sequence number
  // Write returned through a GroupCommit), sharing one fsync among waiters.
  absl::Status SyncWalTo(uint64_t ticket);
  // Runs `done` with the outcome once the WAL is fsynced at least to
  // `ticket`, on the WAL syncer's thread, which makes one fsync for every
  // ticket waiting when it starts and then runs their callbacks in order.
  // `done` must be short. Callbacks still waiting when the database closes
  // run then, after a last fsync.
  void SyncWalThen(uint64_t ticket, absl::AnyInvocable<void(absl::Status) &&> done);
  // WAL fsyncs GroupCommit has made (for tests).
  uint64_t group_syncs() const { return group_syncs_.load(std::memory_order_relaxed); }
  // Point read; NotFound when absent.
  // Point read, of the database as it is or as `at` saw it; NotFound when absent.
  absl::Status Get(Cf family, absl::string_view key, std::string* value,
                   const rocksdb::Snapshot* at = nullptr) const;

  // A view of the database as of its creation, for readers that must not
  // hold a lock while they read much (the collector's marking).
  class Snapshot {
   public:
    explicit Snapshot(const MetadataDb& db) : db_(db), snap_(db.db()->GetSnapshot()) {}
    ~Snapshot() { db_.db()->ReleaseSnapshot(snap_); }
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;
    const rocksdb::Snapshot* get() const { return snap_; }

   private:
    const MetadataDb& db_;
    const rocksdb::Snapshot* const snap_;
  };

  // Orders the garbage collector against writes that add a reference to a
  // blob (an image record, a content label, a blob committed or shared, a
  // lease resource). Each such write holds it shared from its first read to
  // its write, so what it read stays true, and notes what it references
  // (NoteReference). The collector holds it exclusively only for moments: to
  // take its snapshot and start the journal (a cut no write straddles), and
  // to sweep a chunk, sparing whatever the journal says was referenced since
  // (see store/gc.h). Always the outermost lock taken, never taken twice by one
  // thread (absl::Mutex is not reentrant).
  absl::Mutex& gc_lock() const { return gc_lock_; }

  // What a write referenced while a collection was marking: a blob, with
  // whatever its labels reference (an image record notes its target).
  struct Noted {
    enum Kind { kBlob };
    Kind kind;
    std::string ns;
    std::string id;
  };
  // Called by writes that add references, with gc_lock held shared; a no-op
  // unless a collection is marking or between the chunks of its sweep.
  void NoteReference(Noted::Kind kind, absl::string_view ns, absl::string_view id) const;
  // The collector, with gc_lock held exclusively: starts noting / stops and
  // returns what was noted (nullopt when more was noted than kMaxNoted: the
  // pass then sweeps no more of the namespace).
  void StartNoting() const;
  std::optional<std::vector<Noted>> StopNoting() const;
  static constexpr size_t kMaxNoted = 1 << 17;  // about 15 MiB at most

 private:
  MetadataDb() = default;
  uint32_t opened_schema_version_ = 0;

  // The open GroupCommit of this thread, if any: the last sequence number its
  // deferred writes reached (0: none yet).
  struct PendingSync {
    const MetadataDb* db;
    uint64_t ticket = 0;
  };
  static thread_local PendingSync* pending_;
  // Runs `f` as this thread's open group: its durable writes do not wait
  // for their fsync; `*ticket` is where the WAL must be synced to for them
  // (0: nothing to sync).
  template <typename F>
  auto RunDeferred(F&& f, uint64_t* ticket) -> decltype(f());

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  mutable absl::Mutex gc_lock_;
  mutable std::atomic<bool> noting_{false};
  mutable absl::Mutex noted_mu_;
  mutable std::vector<Noted> noted_ ABSL_GUARDED_BY(noted_mu_);
  mutable bool noted_overflow_ ABSL_GUARDED_BY(noted_mu_) = false;
  absl::Mutex sync_mu_;
  uint64_t synced_to_ ABSL_GUARDED_BY(sync_mu_) = 0;
  std::atomic<uint64_t> group_syncs_{0};

  // The WAL syncer (SyncWalThen): started at its first callback.
  struct WalWaiter {
    uint64_t ticket;
    absl::AnyInvocable<void(absl::Status) &&> done;
  };
  void SyncerLoop();
  void StopSyncer();
  absl::Mutex syncer_mu_;
  std::vector<WalWaiter> wal_waiting_ ABSL_GUARDED_BY(syncer_mu_);
  bool syncer_stop_ ABSL_GUARDED_BY(syncer_mu_) = false;
  std::thread syncer_ ABSL_GUARDED_BY(syncer_mu_);
};

template <typename F>
auto MetadataDb::RunDeferred(F&& f, uint64_t* ticket) -> decltype(f()) {
  PendingSync* outer = pending_;
  PendingSync mine{this};
  pending_ = &mine;
  auto result = f();
  pending_ = outer;
  *ticket = mine.ticket;
  return result;
}

template <typename F>
auto MetadataDb::GroupCommit(F&& f) -> decltype(f()) {
  if (pending_ != nullptr && pending_->db == this) return f();
  uint64_t ticket = 0;
  auto result = RunDeferred(std::forward<F>(f), &ticket);
  if (ticket != 0) {
    if (absl::Status s = SyncWalTo(ticket); !s.ok()) return s;
  }
  return result;
}

template <typename F, typename Done>
void MetadataDb::GroupCommitThen(F&& f, Done done) {
  uint64_t ticket = 0;
  auto result = RunDeferred(std::forward<F>(f), &ticket);
  if (ticket == 0) {
    std::move(done)(std::move(result));
    return;
  }
  SyncWalThen(ticket, [result = std::move(result), done = std::move(done)](
                          absl::Status synced) mutable {
    if (!synced.ok()) {
      std::move(done)(decltype(result)(std::move(synced)));
    } else {
      std::move(done)(std::move(result));
    }
  });
}

// A scan of the keys of one column family that start with a prefix, bounded
// so RocksDB stops at the prefix's end instead of reading on.
//   for (PrefixScan scan(db, Cf::kContent, prefix); scan.Valid(); scan.Next()) ...
//   if (!scan.status().ok()) ...
class PrefixScan {
 public:
  // Reads the database as it is, or as `at` saw it.
  PrefixScan(const MetadataDb& db, Cf family, absl::string_view prefix,
             const rocksdb::Snapshot* at = nullptr);
  PrefixScan(const PrefixScan&) = delete;
  PrefixScan& operator=(const PrefixScan&) = delete;

  bool Valid() const { return it_->Valid(); }
  void Next() { it_->Next(); }
  // Moves to the first key at or after `key` (still bounded by the prefix).
  void Seek(absl::string_view key) { it_->Seek(rocksdb::Slice(key.data(), key.size())); }
  absl::string_view key() const { return ToView(it_->key()); }
  // The key with the prefix removed.
  absl::string_view suffix() const { return key().substr(prefix_size_); }
  absl::string_view value() const { return ToView(it_->value()); }
  // Ok unless the scan stopped on an error.
  absl::Status status() const;

 private:
  static absl::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

  size_t prefix_size_;
  std::string upper_;
  rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_METADATA_DB_H_
