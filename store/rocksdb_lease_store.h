// RocksDbLeaseStore: the LeaseStore of lease_store.h over MetadataDb (schema
// in keys.h: one [leases] row per lease, one [lease_resources] row per held
// resource).
#ifndef IMAGED_STORE_ROCKSDB_LEASE_STORE_H_
#define IMAGED_STORE_ROCKSDB_LEASE_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "rocksdb/write_batch.h"
#include "store/clock.h"
#include "store/lease_store.h"
#include "store/metadata_db.h"

namespace imaged::store {

// Ok when `lease` is "" (no lease) or exists in `ns`; NotFound otherwise. For
// stores that put what is written under a lease into their own WriteBatch.
absl::Status CheckLeaseExists(const MetadataDb& db, absl::string_view ns, absl::string_view lease);

class RocksDbLeaseStore final : public LeaseStore {
 public:
  // `db` and `clock` are not owned and must outlive the store.
  RocksDbLeaseStore(MetadataDb* db, const Clock* clock) : db_(db), clock_(clock) {}

  absl::StatusOr<Lease> Create(absl::string_view ns, const Lease& lease) override {
    return CreateWith(ns, lease, /*sync=*/true);
  }
  absl::StatusOr<Lease> CreateTemporary(absl::string_view ns, const Lease& lease) override {
    return CreateWith(ns, lease, /*sync=*/false);
  }
  absl::StatusOr<Lease> Get(absl::string_view ns, absl::string_view id) override;
  absl::Status Delete(absl::string_view ns, absl::string_view id) override {
    return DeleteWith(ns, id, /*sync=*/true);
  }
  absl::Status DeleteTemporary(absl::string_view ns, absl::string_view id) override {
    return DeleteWith(ns, id, /*sync=*/false);
  }
  absl::StatusOr<std::vector<Lease>> List(absl::string_view ns,
                                          absl::Span<const std::string> filters) override;
  absl::Status AddResource(absl::string_view ns, absl::string_view lease,
                           const LeaseResource& resource) override;
  absl::Status DeleteResource(absl::string_view ns, absl::string_view lease,
                              const LeaseResource& resource) override;
  absl::StatusOr<std::vector<LeaseResource>> ListResources(absl::string_view ns,
                                                           absl::string_view lease) override;

  // Adds to a caller's `batch` the row saying that `lease` holds `resource`,
  // so another store can record "this blob belongs to lease L" in the same
  // write as the blob itself (the containerd-lease header of a content write).
  // Nothing is read and nothing is checked: the caller must already have
  // checked that the lease exists (Get) and that the resource is well formed
  // (ValidateLeaseResource), because a row staged for a missing lease is
  // invisible until a lease of that ID is created. A Delete racing with the
  // caller's write can leave such a row behind; Create clears any left-over
  // rows, so a new lease never inherits them.
  void StageAddResource(rocksdb::WriteBatch* batch, absl::string_view ns, absl::string_view lease,
                        const LeaseResource& resource) const;

 private:
  // Adds the removal of every [lease_resources] row of the lease to `batch`.
  absl::StatusOr<Lease> CreateWith(absl::string_view ns, const Lease& lease, bool sync);
  absl::Status DeleteWith(absl::string_view ns, absl::string_view id, bool sync);
  absl::Status StageDeleteResources(rocksdb::WriteBatch* batch, absl::string_view ns,
                                    absl::string_view lease) const;
  // NotFound naming the lease when it does not exist.
  absl::Status CheckExists(absl::string_view ns, absl::string_view lease) const;

  MetadataDb* const db_;
  const Clock* const clock_;
  // Serialises writes that read before they write (Create's existence check,
  // AddResource's lease check against a concurrent Delete).
  absl::Mutex write_mu_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_ROCKSDB_LEASE_STORE_H_
