#include "store/gc.h"

#include <deque>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "store/digest.h"
#include "store/keys.h"
#include "store/records.h"

namespace imaged::store {
namespace {

// True for containerd.io/gc.ref.content and containerd.io/gc.ref.content.<x>.
bool IsContentRef(absl::string_view label) {
  if (!absl::StartsWith(label, kGcRefContentLabel)) return false;
  absl::string_view rest = label.substr(sizeof(kGcRefContentLabel) - 1);
  return rest.empty() || rest.front() == '.';
}

// A lease whose containerd.io/gc.expire lies in the past. A value that does
// not parse keeps the lease (containerd logs it and keeps it too).
bool Expired(const Lease& lease, absl::Time now) {
  auto it = lease.labels.find(kLeaseExpireLabel);
  if (it == lease.labels.end()) return false;
  absl::Time at;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, it->second, &at, &err)) return false;
  return at < now;
}

// Calls `fn` with each distinct namespace of `family`, whose keys start with
// lp(namespace), jumping over each namespace's rows.
absl::Status ForEachNamespace(const MetadataDb& db, Cf family,
                              const std::function<void(absl::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(rocksdb::ReadOptions(), db.cf(family)));
  for (it->SeekToFirst(); it->Valid();) {
    absl::string_view key(it->key().data(), it->key().size());
    absl::string_view ns;
    if (!GetLengthPrefixed(&key, &ns)) return absl::DataLossError("malformed key in a namespaced family");
    std::string ns_copy(ns);
    fn(ns_copy);
    std::string next = PrefixUpperBound(NamespacePrefix(ns_copy));
    if (next.empty()) break;
    it->Seek(next);
  }
  return it->status().ok() ? absl::OkStatus() : absl::InternalError(it->status().ToString());
}

}  // namespace

struct Collector::Marked {
  absl::flat_hash_set<std::string> live;
};

absl::StatusOr<std::vector<std::string>> Collector::AllNamespaces() {
  absl::flat_hash_set<std::string> seen;
  std::vector<std::string> out;
  auto add = [&](absl::string_view ns) {
    if (!ns.empty() && seen.insert(std::string(ns)).second) out.push_back(std::string(ns));
  };
  for (Cf family : {Cf::kContent, Cf::kLeases}) {
    if (absl::Status s = ForEachNamespace(*db_, family, add); !s.ok()) return s;
  }
  return out;
}

absl::StatusOr<Collector::Marked> Collector::Mark(absl::string_view ns, bool expire,
                                                  int* leases_expired) {
  Marked m;
  std::deque<std::string> queue;
  auto mark = [&](absl::string_view digest) {
    if (ValidateDigest(digest).ok() && m.live.insert(std::string(digest)).second) {
      queue.emplace_back(digest);
    }
  };
  auto mark_image = [&](absl::string_view name) -> absl::Status {
    std::string value;
    absl::Status got = db_->Get(Cf::kImages, ImageKey(ns, name), &value);
    if (absl::IsNotFound(got)) return absl::OkStatus();
    if (!got.ok()) return got;
    absl::StatusOr<ImageRecord> rec = DecodeImageRecord(value);
    if (!rec.ok()) return rec.status();
    mark(rec->digest);
    return absl::OkStatus();
  };

  // Leases: expired ones go, the rest hold their resources.
  absl::StatusOr<std::vector<Lease>> leases = leases_->List(ns, {});
  if (!leases.ok()) return leases.status();
  const absl::Time now = clock_->Now();
  for (const Lease& lease : *leases) {
    if (expire && Expired(lease, now)) {
      if (absl::Status s = leases_->Delete(ns, lease.id); !s.ok() && !absl::IsNotFound(s)) return s;
      ++*leases_expired;
      continue;
    }
    absl::StatusOr<std::vector<LeaseResource>> held = leases_->ListResources(ns, lease.id);
    if (!held.ok()) return held.status();
    for (const LeaseResource& r : *held) {
      if (r.type == kLeaseContent) mark(r.id);
      if (r.type == "images") {
        if (absl::Status s = mark_image(r.id); !s.ok()) return s;
      }
    }
  }
  // Image records.
  {
    PrefixScan scan(*db_, Cf::kImages, NamespacePrefix(ns));
    for (; scan.Valid(); scan.Next()) {
      absl::StatusOr<ImageRecord> rec = DecodeImageRecord(scan.value());
      if (!rec.ok()) return rec.status();
      mark(rec->digest);
    }
    if (!scan.status().ok()) return scan.status();
  }
  // Roots by label. (The same scan could serve the sweep, but marking must
  // finish before anything is known to be garbage.)
  {
    PrefixScan scan(*db_, Cf::kContent, NamespacePrefix(ns));
    for (; scan.Valid(); scan.Next()) {
      absl::StatusOr<ContentRecord> rec = DecodeContentRecord(scan.value());
      if (!rec.ok()) return rec.status();
      if (rec->labels.count(kGcRootLabel)) mark(scan.suffix());
    }
    if (!scan.status().ok()) return scan.status();
  }
  // Follow gc.ref.content labels.
  while (!queue.empty()) {
    std::string digest = std::move(queue.front());
    queue.pop_front();
    std::string value;
    absl::Status got = db_->Get(Cf::kContent, ContentKey(ns, digest), &value);
    if (absl::IsNotFound(got)) continue;  // referenced but absent (not pulled yet)
    if (!got.ok()) return got;
    absl::StatusOr<ContentRecord> rec = DecodeContentRecord(value);
    if (!rec.ok()) return rec.status();
    for (const auto& [key, val] : rec->labels) {
      if (IsContentRef(key)) mark(val);
    }
  }
  return m;
}

absl::StatusOr<GcReport> Collector::Collect(absl::Span<const std::string> namespaces) {
  absl::MutexLock pass(&pass_mu_);
  const absl::Time start = absl::Now();
  GcReport report;
  std::vector<std::string> targets;
  if (namespaces.empty()) {
    absl::StatusOr<std::vector<std::string>> all = AllNamespaces();
    if (!all.ok()) return all.status();
    targets = *std::move(all);
  } else {
    for (const std::string& ns : namespaces) {
      if (!ns.empty()) targets.push_back(ns);
    }
  }
  for (const std::string& ns : targets) {
    absl::MutexLock gc(&db_->gc_lock());
    absl::StatusOr<Marked> marked = Mark(ns, /*expire=*/true, &report.leases_expired);
    if (!marked.ok()) return marked.status();
    std::vector<std::string> garbage;
    PrefixScan scan(*db_, Cf::kContent, NamespacePrefix(ns));
    for (; scan.Valid(); scan.Next()) {
      if (marked->live.contains(scan.suffix())) {
        ++report.blobs_kept;
        continue;
      }
      if (static_cast<int64_t>(garbage.size()) >= options_.max_removals_per_pass) {
        report.complete = false;
        break;
      }
      garbage.emplace_back(scan.suffix());
    }
    if (!scan.status().ok()) return scan.status();
    absl::StatusOr<RocksDbContentStore::Removed> removed = content_->RemoveBlobs(ns, garbage);
    if (!removed.ok()) return removed.status();
    report.blobs_removed += removed->rows;
    report.files_removed += removed->files;
    report.bytes_freed += removed->bytes;
    ++report.namespaces;
  }
  report.duration = absl::Now() - start;
  return report;
}

absl::StatusOr<std::vector<NamespaceUsage>> Collector::Usage() {
  absl::StatusOr<std::vector<std::string>> all = AllNamespaces();
  if (!all.ok()) return all.status();
  // The proxy namespace is shown (it uses space) but never counted as garbage.
  std::vector<std::string> targets = {""};
  for (std::string& ns : *all) targets.push_back(std::move(ns));
  std::vector<NamespaceUsage> out;
  for (const std::string& ns : targets) {
    NamespaceUsage u;
    u.ns = ns;
    Marked marked;
    if (!ns.empty()) {
      // Marking needs a stable view; it does not expire leases here.
      absl::ReaderMutexLock gc(&db_->gc_lock());
      int ignored = 0;
      absl::StatusOr<Marked> m = Mark(ns, /*expire=*/false, &ignored);
      if (!m.ok()) return m.status();
      marked = *std::move(m);
    }
    PrefixScan scan(*db_, Cf::kContent, NamespacePrefix(ns));
    for (; scan.Valid(); scan.Next()) {
      absl::StatusOr<ContentRecord> rec = DecodeContentRecord(scan.value());
      if (!rec.ok()) return rec.status();
      ++u.blobs;
      u.bytes += rec->size;
      bool shared = false;
      PrefixScan owners(*db_, Cf::kBlobOwners, BlobOwnerPrefix(scan.suffix()));
      for (; owners.Valid(); owners.Next()) {
        if (owners.suffix() != ns) {
          shared = true;
          break;
        }
      }
      if (!shared) u.exclusive_bytes += rec->size;
      if (!ns.empty() && !marked.live.contains(scan.suffix())) {
        ++u.garbage_blobs;
        if (!shared) u.reclaimable_bytes += rec->size;
      }
    }
    if (!scan.status().ok()) return scan.status();
    if (u.blobs > 0 || !ns.empty()) out.push_back(std::move(u));
  }
  return out;
}

}  // namespace imaged::store
