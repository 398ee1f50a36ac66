// imaged's stores on one local root, wired together in one place:
//
//   <root>/meta           MetadataDb (RocksDB, every column family)
//   <root>/blobs, ingest  RocksDbContentStore
//   RocksDbImageStore     told of every committed blob (the commit observer),
//                         so records waiting for that blob resolve; every
//                         removal of blobs goes through it (the removal
//                         guard), so records resolved through them leave
//                         the index in the same write
//   RocksDbLeaseStore
//
// The server and every test that needs real stores open them here, so none
// can forget the observer or the guard (a forgotten one leaves records
// unresolved, or indexed without their documents, with no error anywhere).
#ifndef IMAGED_STORE_LOCAL_STORES_H_
#define IMAGED_STORE_LOCAL_STORES_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/clock.h"
#include "store/image_store.h"
#include "store/metadata_db.h"
#include "store/platform.h"
#include "store/rocksdb_content_store.h"
#include "store/rocksdb_image_store.h"
#include "store/rocksdb_lease_store.h"

namespace imaged::store {

struct LocalStoresOptions {
  const Clock* clock = SystemClock::Get();  // not owned
  Platform platform = DefaultPlatform();
  CriNameFn classify;  // none: every name is CriName::kNone
  // Told when resolving the records that waited for a committed blob fails
  // (they stay unresolved; RetryUnresolved tries again). None: ignored.
  std::function<void(absl::string_view digest, const absl::Status&)> on_resolve_error;
  RocksDbContentStore::Options content;
};

class LocalStores {
 public:
  // Opens (creating) the stores under `root`. Recovery and checks
  // (RocksDbContentStore::Recover, RetryUnresolved, Check) are the caller's.
  static absl::StatusOr<std::unique_ptr<LocalStores>> Open(const std::string& root,
                                                           LocalStoresOptions options = {});
  ~LocalStores();
  LocalStores(const LocalStores&) = delete;
  LocalStores& operator=(const LocalStores&) = delete;

  const std::string& root() const { return root_; }
  MetadataDb* db() const { return db_.get(); }
  RocksDbContentStore* content() const { return content_.get(); }
  RocksDbImageStore* images() const { return images_.get(); }
  RocksDbLeaseStore* leases() const { return leases_.get(); }

 private:
  explicit LocalStores(std::string root) : root_(std::move(root)) {}

  const std::string root_;
  // Declared in the order they are built; destroyed in reverse.
  std::unique_ptr<MetadataDb> db_;
  std::unique_ptr<RocksDbContentStore> content_;
  std::unique_ptr<RocksDbImageStore> images_;
  std::unique_ptr<RocksDbLeaseStore> leases_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_LOCAL_STORES_H_
