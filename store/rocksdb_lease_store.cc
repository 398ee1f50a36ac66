#include "store/rocksdb_lease_store.h"

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "store/digest.h"
#include "store/filter.h"
#include "store/keys.h"
#include "store/limits.h"

namespace imaged::store {
namespace {

// [leases] value, private to this file:
//   u8 format (1) | u64 created_at (Unix nanos) | u32 label count |
//   per label, sorted by key: lp(key) lp(value)
constexpr char kLeaseFormat = 1;

struct LeaseRecord {
  absl::Time created_at;
  Labels labels;
};

std::string EncodeLeaseRecord(const LeaseRecord& r) {
  std::string out(1, kLeaseFormat);
  PutU64(&out, static_cast<uint64_t>(absl::ToUnixNanos(r.created_at)));
  PutU32(&out, static_cast<uint32_t>(r.labels.size()));
  for (const auto& [k, v] : r.labels) {
    PutLengthPrefixed(&out, k);
    PutLengthPrefixed(&out, v);
  }
  return out;
}

absl::StatusOr<LeaseRecord> DecodeLeaseRecord(absl::string_view id, absl::string_view in) {
  auto malformed = [&] {
    return absl::DataLossError(absl::StrCat("lease \"", id, "\": malformed record"));
  };
  if (in.empty() || in[0] != kLeaseFormat) return malformed();
  in.remove_prefix(1);
  LeaseRecord r;
  uint64_t nanos;
  uint32_t n;
  if (!GetU64(&in, &nanos) || !GetU32(&in, &n)) return malformed();
  r.created_at = absl::FromUnixNanos(static_cast<int64_t>(nanos));
  for (uint32_t i = 0; i < n; ++i) {
    absl::string_view k, v;
    if (!GetLengthPrefixed(&in, &k) || !GetLengthPrefixed(&in, &v)) return malformed();
    r.labels.emplace(std::string(k), std::string(v));
  }
  if (!in.empty()) return malformed();
  return r;
}

absl::Status LeaseNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("lease \"", id, "\": not found"));
}

Lease ToLease(absl::string_view id, LeaseRecord r) {
  return Lease{std::string(id), r.created_at, std::move(r.labels)};
}

class LeaseAdaptor final : public FieldAdaptor {
 public:
  explicit LeaseAdaptor(const Lease& lease) : lease_(lease) {}
  std::optional<absl::string_view> Field(absl::Span<const std::string> path) const override {
    if (path.empty()) return std::nullopt;
    if (path[0] == "id") return absl::string_view(lease_.id);
    if (path[0] == "labels") return MapField(path.subspan(1), lease_.labels);
    return std::nullopt;
  }

 private:
  const Lease& lease_;
};

}  // namespace

absl::StatusOr<Lease> RocksDbLeaseStore::CreateWith(absl::string_view ns, const Lease& lease,
                                                    bool sync) {
  if (absl::Status s = ValidateLeaseId(lease.id); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(lease.labels); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("lease \"", lease.id, "\": ", s.message()));
  }
  LeaseRecord rec{clock_->Now(), {}};
  for (const auto& [k, v] : lease.labels) {
    if (!v.empty()) rec.labels.emplace(k, v);
  }

  absl::MutexLock lock(&write_mu_);
  const std::string key = LeaseKey(ns, lease.id);
  std::string old;
  absl::Status got = db_->Get(Cf::kLeases, key, &old);
  if (got.ok()) {
    return absl::AlreadyExistsError(absl::StrCat("lease \"", lease.id, "\": already exists"));
  }
  if (!absl::IsNotFound(got)) return got;
  rocksdb::WriteBatch batch;
  // Rows a StageAddResource raced past a Delete would otherwise come back.
  if (absl::Status s = StageDeleteResources(&batch, ns, lease.id); !s.ok()) return s;
  batch.Put(db_->cf(Cf::kLeases), key, EncodeLeaseRecord(rec));
  if (absl::Status s = db_->Write(&batch, sync); !s.ok()) return s;
  return ToLease(lease.id, std::move(rec));
}

absl::StatusOr<Lease> RocksDbLeaseStore::Get(absl::string_view ns, absl::string_view id) {
  std::string value;
  absl::Status s = db_->Get(Cf::kLeases, LeaseKey(ns, id), &value);
  if (absl::IsNotFound(s)) return LeaseNotFound(id);
  if (!s.ok()) return s;
  absl::StatusOr<LeaseRecord> rec = DecodeLeaseRecord(id, value);
  if (!rec.ok()) return rec.status();
  return ToLease(id, *std::move(rec));
}

absl::Status RocksDbLeaseStore::DeleteWith(absl::string_view ns, absl::string_view id,
                                          bool sync) {
  absl::MutexLock lock(&write_mu_);
  if (absl::Status s = CheckExists(ns, id); !s.ok()) return s;
  rocksdb::WriteBatch batch;
  if (absl::Status s = StageDeleteResources(&batch, ns, id); !s.ok()) return s;
  batch.Delete(db_->cf(Cf::kLeases), LeaseKey(ns, id));
  return db_->Write(&batch, sync);
}

absl::StatusOr<std::vector<Lease>> RocksDbLeaseStore::List(absl::string_view ns,
                                                           absl::Span<const std::string> filters) {
  absl::StatusOr<Filter> filter = Filter::ParseAll(filters);
  if (!filter.ok()) return filter.status();
  std::vector<Lease> out;
  PrefixScan scan(*db_, Cf::kLeases, NamespacePrefix(ns));
  for (; scan.Valid(); scan.Next()) {
    absl::StatusOr<LeaseRecord> rec = DecodeLeaseRecord(scan.suffix(), scan.value());
    if (!rec.ok()) return rec.status();
    Lease lease = ToLease(scan.suffix(), *std::move(rec));
    if (filter->MatchesAll() || filter->Match(LeaseAdaptor(lease))) out.push_back(std::move(lease));
  }
  if (absl::Status s = scan.status(); !s.ok()) return s;
  return out;
}

absl::Status RocksDbLeaseStore::AddResource(absl::string_view ns, absl::string_view lease,
                                            const LeaseResource& resource) {
  if (absl::Status s = ValidateResourceSize(resource.type, resource.id); !s.ok()) return s;
  absl::ReaderMutexLock gc(&db_->gc_lock());  // adds a reference: see MetadataDb::gc_lock
  absl::MutexLock lock(&write_mu_);
  // The lease before the resource, as containerd checks them.
  if (absl::Status s = CheckExists(ns, lease); !s.ok()) return s;
  if (absl::Status s = ValidateLeaseResource(resource); !s.ok()) return s;
  if (resource.type == kLeaseContent) db_->NoteReference(MetadataDb::Noted::kBlob, ns, resource.id);
  rocksdb::WriteBatch batch;
  StageAddResource(&batch, ns, lease, resource);
  return db_->Write(&batch);
}

absl::Status RocksDbLeaseStore::DeleteResource(absl::string_view ns, absl::string_view lease,
                                               const LeaseResource& resource) {
  absl::MutexLock lock(&write_mu_);
  if (absl::Status s = CheckExists(ns, lease); !s.ok()) return s;
  if (absl::Status s = ValidateLeaseResource(resource); !s.ok()) return s;
  rocksdb::WriteBatch batch;
  batch.Delete(db_->cf(Cf::kLeaseResources),
               LeaseResourceKey(ns, lease, resource.type, resource.id));
  return db_->Write(&batch);
}

absl::StatusOr<std::vector<LeaseResource>> RocksDbLeaseStore::ListResources(
    absl::string_view ns, absl::string_view lease) {
  if (absl::Status s = CheckExists(ns, lease); !s.ok()) return s;
  std::vector<LeaseResource> out;
  PrefixScan scan(*db_, Cf::kLeaseResources, LeaseResourcePrefix(ns, lease));
  for (; scan.Valid(); scan.Next()) {
    std::optional<LeaseResourceSuffix> parsed = ParseLeaseResourceSuffix(scan.suffix());
    if (!parsed) {
      return absl::DataLossError(absl::StrCat("lease \"", lease, "\": malformed resource key"));
    }
    out.push_back(LeaseResource{std::string(parsed->id), std::string(parsed->type)});
  }
  if (absl::Status s = scan.status(); !s.ok()) return s;
  // Keys order types by length first; containerd lists by type name.
  std::sort(out.begin(), out.end(), [](const LeaseResource& a, const LeaseResource& b) {
    return std::tie(a.type, a.id) < std::tie(b.type, b.id);
  });
  return out;
}

void RocksDbLeaseStore::StageAddResource(rocksdb::WriteBatch* batch, absl::string_view ns,
                                         absl::string_view lease,
                                         const LeaseResource& resource) const {
  batch->Put(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, resource.type, resource.id),
             "");
}

absl::Status RocksDbLeaseStore::StageDeleteResources(rocksdb::WriteBatch* batch,
                                                     absl::string_view ns,
                                                     absl::string_view lease) const {
  PrefixScan scan(*db_, Cf::kLeaseResources, LeaseResourcePrefix(ns, lease));
  for (; scan.Valid(); scan.Next()) {
    batch->Delete(db_->cf(Cf::kLeaseResources),
                  rocksdb::Slice(scan.key().data(), scan.key().size()));
  }
  return scan.status();
}

absl::Status RocksDbLeaseStore::CheckExists(absl::string_view ns, absl::string_view lease) const {
  std::string value;
  absl::Status s = db_->Get(Cf::kLeases, LeaseKey(ns, lease), &value);
  if (absl::IsNotFound(s)) return LeaseNotFound(lease);
  return s;
}

absl::Status CheckLeaseExists(const MetadataDb& db, absl::string_view ns, absl::string_view lease) {
  if (lease.empty()) return absl::OkStatus();
  std::string value;
  absl::Status s = db.Get(Cf::kLeases, LeaseKey(ns, lease), &value);
  if (absl::IsNotFound(s)) return LeaseNotFound(lease);
  return s;
}

}  // namespace imaged::store
