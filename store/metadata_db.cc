#include "store/metadata_db.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/write_buffer_manager.h"
#include "absl/strings/str_cat.h"

namespace imaged::store {

absl::Status RocksError(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return absl::UnavailableError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

absl::StatusOr<std::unique_ptr<MetadataDb>> MetadataDb::Open(const std::string& path) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.keep_log_file_num = 4;
  // Flush memtables once the WAL holds this much, so churn (records and
  // blobs written and deleted again, as image garbage collection makes)
  // reaches compaction, which drops the tombstones: the directory stays
  // flat instead of growing until a 64 MiB memtable fills.
  options.max_total_wal_size = 4 << 20;
  options.max_manifest_file_size = 64 << 20;

  // Memory (issue 6: imaged under 64 MiB RSS with 30k images x 3 names):
  // by default every column family gets its own 32 MiB block cache and 64
  // MiB memtables, and every SST file stays open. Here all families share
  // one 2 MiB block cache, memtables are
  // capped at 16 MiB in all (charged to no one: they are flushed early by
  // max_total_wal_size anyway), and at most 128 files stay open. Bloom
  // filters let a point read (ImageStatus) skip the SST files that do not
  // hold its key instead of searching each one's index.
  options.max_open_files = 128;
  options.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(16 << 20);
  rocksdb::BlockBasedTableOptions table;
  // 2 MiB: at 8 the resident size under ImageStatus load at 30,000 images
  // was 67 MiB, and under the mixed load it peaked at 48 MiB (median) at 4
  // against 44.5 at 2. A data block missed here is read from the page
  // cache. ImageStatus reads no `cri_status` block once the ListImages
  // answer is built (it answers from that), and repeated requests read
  // nothing; random names over 30,000 images cost the same at 2 as at 4
  // (docs/benchmarks.md).
  table.block_cache = rocksdb::NewLRUCache(2 << 20);
  // Index and filter blocks stay with their open table (at most 128 files):
  // charged to the block cache they were evicted by data blocks at 30k
  // images and every point read paid for reading them again.
  table.cache_index_and_filter_blocks = false;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions family_options;
  family_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  family_options.write_buffer_size = 4 << 20;
  family_options.max_write_buffer_number = 2;
  // A memtable takes arena blocks of write_buffer_size / 8 (512 KiB) at its
  // first write: 11 families made 5.5 MiB for a few rows each.
  family_options.arena_block_size = 64 << 10;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : ColumnFamilyNames()) {
    families.emplace_back(name, family_options);
  }
  std::unique_ptr<MetadataDb> out(new MetadataDb);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, families, &out->handles_, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && absl::StrContains(s.ToString(), "lock")) {
      return absl::FailedPreconditionError(
          absl::StrCat("metadata database ", path, " is in use by another process: ", s.ToString()));
    }
    return RocksError(s, absl::StrCat("open metadata database ", path));
  }
  out->db_.reset(raw);

  std::string version;
  absl::Status got = out->Get(Cf::kDefault, kSchemaVersionKey, &version);
  if (absl::IsNotFound(got)) {
    std::string v;
    PutU32(&v, kSchemaVersion);
    rocksdb::WriteBatch batch;
    batch.Put(out->cf(Cf::kDefault), rocksdb::Slice(kSchemaVersionKey.data(), kSchemaVersionKey.size()), v);
    if (absl::Status w = out->Write(&batch); !w.ok()) return w;
  } else if (!got.ok()) {
    return got;
  } else {
    absl::string_view in = version;
    uint32_t v = 0;
    if (!GetU32(&in, &v)) return absl::DataLossError("malformed schema version");
    if (v > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat("metadata schema version ", v,
                                                        " is newer than this imaged supports (",
                                                        kSchemaVersion, ")"));
    }
    out->opened_schema_version_ = v;
  }
  return out;
}

MetadataDb::~MetadataDb() {
  StopSyncer();
  if (!db_) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
}

thread_local MetadataDb::PendingSync* MetadataDb::pending_ = nullptr;

absl::Status MetadataDb::Write(rocksdb::WriteBatch* batch, bool sync) {
  const bool defer = sync && pending_ != nullptr && pending_->db == this;
  rocksdb::WriteOptions options;
  options.sync = sync && !defer;
  absl::Status s = RocksError(db_->Write(options, batch), "metadata write");
  // Even a failed write may have reached the WAL: sync whatever is there.
  if (defer) pending_->ticket = db_->GetLatestSequenceNumber();
  return s;
}

absl::Status MetadataDb::SyncWalTo(uint64_t ticket) {
  absl::MutexLock lock(&sync_mu_);
  // Whoever held the lock before may have synced past this ticket already.
  if (synced_to_ >= ticket) return absl::OkStatus();
  const uint64_t upto = db_->GetLatestSequenceNumber();
  if (absl::Status s = RocksError(db_->SyncWAL(), "metadata WAL sync"); !s.ok()) return s;
  synced_to_ = upto;
  group_syncs_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void MetadataDb::SyncWalThen(uint64_t ticket, absl::AnyInvocable<void(absl::Status) &&> done) {
  {
    absl::MutexLock lock(&syncer_mu_);
    if (!syncer_stop_) {
      wal_waiting_.push_back(WalWaiter{ticket, std::move(done)});
      if (!syncer_.joinable()) syncer_ = std::thread([this] { SyncerLoop(); });
      return;
    }
  }
  std::move(done)(SyncWalTo(ticket));  // closing: no syncer to hand it to
}

void MetadataDb::SyncerLoop() {
  std::vector<WalWaiter> batch;
  for (;;) {
    {
      absl::MutexLock lock(&syncer_mu_);
      syncer_mu_.Await(absl::Condition(
          +[](MetadataDb* db) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db->syncer_mu_) {
            return db->syncer_stop_ || !db->wal_waiting_.empty();
          },
          this));
      if (wal_waiting_.empty()) return;  // stopping, nothing left
      batch.swap(wal_waiting_);
    }
    uint64_t upto = 0;
    for (const WalWaiter& w : batch) upto = std::max(upto, w.ticket);
    const absl::Status synced = SyncWalTo(upto);
    for (WalWaiter& w : batch) std::move(w.done)(synced);
    batch.clear();
  }
}

void MetadataDb::StopSyncer() {
  std::thread syncer;
  {
    absl::MutexLock lock(&syncer_mu_);
    syncer_stop_ = true;
    syncer.swap(syncer_);
  }
  if (syncer.joinable()) syncer.join();
}

absl::Status MetadataDb::Get(Cf family, absl::string_view key, std::string* value,
                             const rocksdb::Snapshot* at) const {
  rocksdb::ReadOptions options;
  options.snapshot = at;
  // A blob's bytes (documents a resolution reads, a Read call) would evict
  // the index's blocks from the 2 MiB cache; a missed block is read from
  // the page cache, as a blob file is.
  options.fill_cache = family != Cf::kBlobData;
  rocksdb::Status s =
      db_->Get(options, cf(family), rocksdb::Slice(key.data(), key.size()), value);
  if (s.IsNotFound()) return absl::NotFoundError("not found");
  return RocksError(s, "metadata read");
}

PrefixScan::PrefixScan(const MetadataDb& db, Cf family, absl::string_view prefix,
                       const rocksdb::Snapshot* at)
    : prefix_size_(prefix.size()), upper_(PrefixUpperBound(prefix)), upper_slice_(upper_) {
  rocksdb::ReadOptions options;
  options.snapshot = at;
  if (!upper_.empty()) options.iterate_upper_bound = &upper_slice_;
  it_.reset(db.db()->NewIterator(options, db.cf(family)));
  it_->Seek(rocksdb::Slice(prefix.data(), prefix.size()));
}

void MetadataDb::NoteReference(Noted::Kind kind, absl::string_view ns, absl::string_view id) const {
  if (!noting_.load(std::memory_order_acquire)) return;
  absl::MutexLock lock(&noted_mu_);
  if (noted_.size() >= kMaxNoted) {
    noted_overflow_ = true;
    return;
  }
  noted_.push_back(Noted{kind, std::string(ns), std::string(id)});
}

void MetadataDb::StartNoting() const {
  absl::MutexLock lock(&noted_mu_);
  noted_.clear();
  noted_overflow_ = false;
  noting_.store(true, std::memory_order_release);
}

std::optional<std::vector<MetadataDb::Noted>> MetadataDb::StopNoting() const {
  absl::MutexLock lock(&noted_mu_);
  noting_.store(false, std::memory_order_release);
  std::vector<Noted> out = std::move(noted_);
  noted_.clear();
  if (noted_overflow_) return std::nullopt;
  return out;
}

absl::Status PrefixScan::status() const { return RocksError(it_->status(), "metadata scan"); }

}  // namespace imaged::store
