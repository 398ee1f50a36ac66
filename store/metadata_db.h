// The RocksDB instance that holds imaged's metadata, opened with every column
// family keys.h lists, and the schema version checked.
#ifndef IMAGED_STORE_METADATA_DB_H_
#define IMAGED_STORE_METADATA_DB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "store/keys.h"

namespace imaged::store {

class MetadataDb {
 public:
  // Opens (creating if needed) the database in directory `path`. FailedPrecondition
  // when another process holds it or its schema is newer than this build's.
  static absl::StatusOr<std::unique_ptr<MetadataDb>> Open(const std::string& path);
  ~MetadataDb();

  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(Cf family) const { return handles_[static_cast<int>(family)]; }

  // Applies `batch` atomically and, by default, durably (WAL fsynced).
  absl::Status Write(rocksdb::WriteBatch* batch, bool sync = true);
  // Point read; NotFound when absent.
  absl::Status Get(Cf family, absl::string_view key, std::string* value) const;

  // Orders the garbage collector against writes that add a reference to a
  // blob (an image record, a content label, a blob committed or shared, a
  // lease resource). Each such write holds it shared from its first read to
  // its write, so what it read stays true; the collector holds it exclusively
  // while it marks and removes metadata, so it never removes a blob that a
  // write in flight is about to reference. Always the outermost lock taken,
  // never taken twice by one thread (absl::Mutex is not reentrant).
  absl::Mutex& gc_lock() const { return gc_lock_; }

 private:
  MetadataDb() = default;

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  mutable absl::Mutex gc_lock_;
};

// A scan of the keys of one column family that start with a prefix, bounded
// so RocksDB stops at the prefix's end instead of reading on.
//   for (PrefixScan scan(db, Cf::kContent, prefix); scan.Valid(); scan.Next()) ...
//   if (!scan.status().ok()) ...
class PrefixScan {
 public:
  PrefixScan(const MetadataDb& db, Cf family, absl::string_view prefix);
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
