// containerd's leases (leases.Manager, namespace explicit): named holds that
// keep resources (content, ingests, snapshots) back from garbage collection
// while a client such as `ctr images import` works. Schema in keys.h: one
// [leases] row per lease and one [lease_resources] row per held resource.
//
// Errors: NotFound (no such lease), AlreadyExists (Create of a taken ID),
// InvalidArgument (empty lease ID, bad label, malformed filter, malformed
// resource), Unimplemented (a resource type containerd does not know either).
#ifndef IMAGED_STORE_LEASE_STORE_H_
#define IMAGED_STORE_LEASE_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rocksdb/write_batch.h"
#include "store/clock.h"
#include "store/labels.h"
#include "store/metadata_db.h"

namespace imaged::store {

// The label containerd's collector reads: an RFC 3339 time after which the
// lease may be collected. Stored and filtered like any other label.
inline constexpr char kLeaseExpireLabel[] = "containerd.io/gc.expire";

// Resource types containerd 1.6 accepts: "content" (id is a digest),
// "ingests" (id is an ingest ref) and "snapshots/<snapshotter>" (id is a
// snapshot key).
inline constexpr absl::string_view kLeaseContent = "content";
inline constexpr absl::string_view kLeaseIngests = "ingests";
inline constexpr absl::string_view kLeaseSnapshots = "snapshots";  // + "/<snapshotter>"
// Written by imaged itself, never through the API: an image record created
// under a lease (id is its name).
inline constexpr absl::string_view kLeaseImages = "images";

struct Lease {
  std::string id;
  absl::Time created_at;  // set by Create
  Labels labels;
};

struct LeaseResource {
  std::string id;
  std::string type;

  friend bool operator==(const LeaseResource& a, const LeaseResource& b) {
    return a.id == b.id && a.type == b.type;
  }
};

// Ok for a resource AddResource/DeleteResource accept; InvalidArgument for a
// known type with a malformed type suffix or id (an empty id included, and a
// "content" id that is not a sha256 digest); Unimplemented for any other type.
absl::Status ValidateLeaseResource(const LeaseResource& resource);

// Ok when `lease` is "" (no lease) or exists in `ns`; NotFound otherwise. For
// stores that put what is written under a lease into their own WriteBatch.
absl::Status CheckLeaseExists(const MetadataDb& db, absl::string_view ns, absl::string_view lease);

class LeaseStore {
 public:
  virtual ~LeaseStore() = default;

  // Creates the lease `lease.id` with `lease.labels`; created_at is the
  // store's clock, whatever the argument says. Labels with an empty value are
  // dropped (containerd does not store them). Returns the lease as stored.
  // InvalidArgument for an empty ID or a bad label (ValidateLabels);
  // AlreadyExists when the ID is taken in `ns`. Any other non-empty ID is
  // accepted, as containerd 1.6 accepts it: its clients generate IDs such as
  // "123456789-a_-Z" that identifier rules would reject.
  virtual absl::StatusOr<Lease> Create(absl::string_view ns, const Lease& lease) = 0;

  // The lease `id` of `ns`; NotFound when there is none.
  virtual absl::StatusOr<Lease> Get(absl::string_view ns, absl::string_view id) = 0;

  // Deletes the lease and every resource row it holds, in one write. NotFound
  // when there is no such lease. The resources themselves are untouched: a
  // lease only holds them back from a collector.
  virtual absl::Status Delete(absl::string_view ns, absl::string_view id) = 0;

  // Leases of `ns` matching any of `filters` (fields `id`, `labels.<key>`),
  // in ID byte order. InvalidArgument for a malformed filter.
  virtual absl::StatusOr<std::vector<Lease>> List(absl::string_view ns,
                                                  absl::Span<const std::string> filters) = 0;

  // Adds `resource` to the lease `lease`; adding one it already holds is Ok.
  // NotFound when the lease does not exist (checked first, as containerd
  // does), then the errors of ValidateLeaseResource.
  virtual absl::Status AddResource(absl::string_view ns, absl::string_view lease,
                                   const LeaseResource& resource) = 0;

  // Removes `resource` from the lease; Ok when the lease does not hold it.
  // NotFound when the lease does not exist, then ValidateLeaseResource's errors.
  virtual absl::Status DeleteResource(absl::string_view ns, absl::string_view lease,
                                      const LeaseResource& resource) = 0;

  // What the lease holds, ordered by type then id (containerd's order:
  // content, ingests, then snapshots by snapshotter). NotFound when the lease
  // does not exist.
  virtual absl::StatusOr<std::vector<LeaseResource>> ListResources(absl::string_view ns,
                                                                   absl::string_view lease) = 0;
};

class RocksDbLeaseStore final : public LeaseStore {
 public:
  // `db` and `clock` are not owned and must outlive the store.
  RocksDbLeaseStore(MetadataDb* db, const Clock* clock) : db_(db), clock_(clock) {}

  absl::StatusOr<Lease> Create(absl::string_view ns, const Lease& lease) override;
  absl::StatusOr<Lease> Get(absl::string_view ns, absl::string_view id) override;
  absl::Status Delete(absl::string_view ns, absl::string_view id) override;
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

#endif  // IMAGED_STORE_LEASE_STORE_H_
