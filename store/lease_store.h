// containerd's leases (leases.Manager, namespace explicit): named holds that
// keep resources (content, ingests, snapshots) back from garbage collection
// while a client such as `ctr images import` works.
//
// Errors: NotFound (no such lease), AlreadyExists (Create of a taken ID),
// InvalidArgument (empty lease ID, bad label, malformed filter, malformed
// resource), Unimplemented (a resource type containerd does not know either).
//
// The interface only: the RocksDB implementation is rocksdb_lease_store.h,
// which cri/ never sees.
#ifndef IMAGED_STORE_LEASE_STORE_H_
#define IMAGED_STORE_LEASE_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "store/labels.h"

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

  // Create and Delete for a process's own short-lived lease (a pull's, a
  // mirror copy's): they return once the write is in the WAL, not on disk;
  // the next durable write makes it durable. A crash before that loses the
  // write, which for such a lease is harmless: a lost create only lets a
  // collector take what the lease held (nothing then refers to it), a lost
  // delete leaves a lease its expiry label ends. By default as Create and
  // Delete.
  virtual absl::StatusOr<Lease> CreateTemporary(absl::string_view ns, const Lease& lease) {
    return Create(ns, lease);
  }
  virtual absl::Status DeleteTemporary(absl::string_view ns, absl::string_view id) {
    return Delete(ns, id);
  }

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

// A lease for imaged's own short work (a pull, an import, a mirror copy):
// id "<prefix>-<unix nanos of `now`>-<serial>", containerd.io/gc.expire at
// `now` + `expiry` (so a crash leaves it to expire), made with
// CreateTemporary. Returns its id; end it with DeleteTemporary.
absl::StatusOr<std::string> CreateTemporaryLease(LeaseStore& leases, absl::string_view ns,
                                                 absl::string_view prefix, absl::Time now,
                                                 absl::Duration expiry);

}  // namespace imaged::store

#endif  // IMAGED_STORE_LEASE_STORE_H_
