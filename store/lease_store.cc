#include "store/lease_store.h"

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "store/digest.h"

namespace imaged::store {

absl::Status ValidateLeaseResource(const LeaseResource& r) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease resource ", r.type, " \"", r.id, "\": ", why));
  };
  absl::string_view type = r.type;
  absl::string_view kind = type.substr(0, type.find('/'));
  if (kind == kLeaseContent || kind == kLeaseIngests) {
    if (type != kind) return invalid("invalid resource type");
    if (r.id.empty()) return invalid("id must not be empty");
    if (kind == kLeaseContent) {
      if (absl::Status s = ValidateDigest(r.id); !s.ok()) return invalid(s.message());
    }
    return absl::OkStatus();
  }
  if (kind == kLeaseSnapshots) {
    absl::string_view snapshotter = type.substr(kind.size());
    if (!absl::ConsumePrefix(&snapshotter, "/") || snapshotter.empty() ||
        absl::StrContains(snapshotter, '/')) {
      return invalid("invalid resource type, want snapshots/<snapshotter>");
    }
    if (r.id.empty()) return invalid("id must not be empty");
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat("resource type \"", type, "\" not supported yet"));
}

absl::StatusOr<std::string> CreateTemporaryLease(LeaseStore& leases, absl::string_view ns,
                                                 absl::string_view prefix, absl::Time now,
                                                 absl::Duration expiry) {
  static std::atomic<uint64_t> serial{0};
  Lease lease;
  lease.id = absl::StrCat(prefix, "-", absl::ToUnixNanos(now), "-", serial++);
  lease.labels[kLeaseExpireLabel] =
      absl::FormatTime(absl::RFC3339_sec, now + expiry, absl::UTCTimeZone());
  absl::StatusOr<Lease> created = leases.CreateTemporary(ns, lease);
  if (!created.ok()) return created.status();
  return lease.id;
}

}  // namespace imaged::store
