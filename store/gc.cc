#include "store/gc.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "store/digest.h"
#include "store/keys.h"
#include "store/labels.h"
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

// A digest as its 32 bytes. A mark holds one for every live blob (60,000 at
// 30,000 images): as strings, with their own heap blocks, they took about
// four times the memory.
using DigestKey = std::array<uint8_t, 32>;

std::optional<DigestKey> KeyOf(absl::string_view digest) {
  if (!ValidateDigest(digest).ok()) return std::nullopt;
  absl::string_view hex = DigestHex(digest);  // 64 lowercase hex digits
  auto nibble = [](char c) { return static_cast<uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); };
  DigestKey key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]);
  return key;
}

std::string DigestOf(const DigestKey& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string digest(kSha256Prefix);
  for (uint8_t b : key) {
    digest.push_back(kHex[b >> 4]);
    digest.push_back(kHex[b & 15]);
  }
  return digest;
}

}  // namespace

// The namespace's blob rows as a snapshot saw them, and which of them a
// mark reached. The rows are the snapshot's [content] keys, so they come in
// digest order and a digest is found by binary search; a deque grows
// without copying. At 30,000 images (60,004 rows) this is 1.9 MiB where a
// hash set of the reached digests took 4.2 MiB, and the sweep's candidates
// are indexes into it.
struct Collector::Marked {
  std::deque<DigestKey> rows;
  std::vector<bool> live;  // by row
  // Rows whose name is no sha256 digest (none is written so): never reached.
  std::vector<std::string> odd;

  std::optional<size_t> Find(const DigestKey& key) const {
    auto it = std::lower_bound(rows.begin(), rows.end(), key);
    if (it == rows.end() || *it != key) return std::nullopt;
    return static_cast<size_t>(it - rows.begin());
  }
  std::optional<size_t> Find(absl::string_view digest) const {
    std::optional<DigestKey> key = KeyOf(digest);
    return key ? Find(*key) : std::nullopt;
  }
  bool Contains(absl::string_view digest) const {
    std::optional<size_t> i = Find(digest);
    return i && live[*i];
  }
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

absl::Status Collector::Check(const GcInterrupt& interrupt) const {
  if (shut_down_.load()) return absl::CancelledError("garbage collection: imaged is shutting down");
  return interrupt ? interrupt() : absl::OkStatus();
}

absl::Status Collector::ExpireLeases(absl::string_view ns, int* leases_expired) {
  absl::StatusOr<std::vector<Lease>> leases = leases_->List(ns, {});
  if (!leases.ok()) return leases.status();
  const absl::Time now = clock_->Now();
  for (const Lease& lease : *leases) {
    if (!Expired(lease, now)) continue;
    if (absl::Status s = leases_->Delete(ns, lease.id); !s.ok() && !absl::IsNotFound(s)) return s;
    ++*leases_expired;
  }
  return absl::OkStatus();
}

absl::StatusOr<Collector::Marked> Collector::Mark(absl::string_view ns, const rocksdb::Snapshot* at,
                                                  const GcInterrupt& interrupt) {
  Marked m;
  std::vector<size_t> queue;  // rows reached whose labels are still to follow
  int64_t rows = 0;
  // Every 1024 rows: may the pass go on?
  auto step = [&]() -> absl::Status {
    return ++rows % 1024 == 0 ? Check(interrupt) : absl::OkStatus();
  };
  // A digest that is no row of the namespace (referenced, not pulled yet)
  // has nothing to keep and no labels to follow.
  auto mark_row = [&](std::optional<size_t> i) {
    if (i && !m.live[*i]) {
      m.live[*i] = true;
      queue.push_back(*i);
    }
  };
  auto mark = [&](absl::string_view digest) { mark_row(m.Find(digest)); };
  auto mark_image = [&](absl::string_view name) -> absl::Status {
    std::string value;
    absl::Status got = db_->Get(Cf::kImages, ImageKey(ns, name), &value, at);
    if (absl::IsNotFound(got)) return absl::OkStatus();
    if (!got.ok()) return got;
    absl::StatusOr<ImageRecord> rec = DecodeImageRecord(value);
    if (!rec.ok()) return rec.status();
    mark(rec->digest);
    return absl::OkStatus();
  };

  // The rows, and the roots by label among them.
  std::vector<DigestKey> labelled_roots;
  {
    PrefixScan scan(*db_, Cf::kContent, NamespacePrefix(ns), at);
    for (; scan.Valid(); scan.Next()) {
      if (absl::Status s = step(); !s.ok()) return s;
      std::optional<DigestKey> key = KeyOf(scan.suffix());
      if (!key) {
        m.odd.emplace_back(scan.suffix());
        continue;
      }
      m.rows.push_back(*key);
      absl::StatusOr<ContentRecord> rec = DecodeContentRecord(scan.value());
      if (!rec.ok()) return rec.status();
      if (rec->labels.count(kGcRootLabel)) labelled_roots.push_back(*key);
    }
    if (!scan.status().ok()) return scan.status();
  }
  // Keys in digest order are the 32 bytes in order; only odd rows interleave.
  if (!std::is_sorted(m.rows.begin(), m.rows.end())) std::sort(m.rows.begin(), m.rows.end());
  m.live.assign(m.rows.size(), false);
  for (const DigestKey& key : labelled_roots) mark_row(m.Find(key));
  labelled_roots = {};
  // Leases hold their resources (expired ones were deleted before the snapshot).
  {
    PrefixScan leases(*db_, Cf::kLeases, NamespacePrefix(ns), at);
    for (; leases.Valid(); leases.Next()) {
      if (absl::Status s = step(); !s.ok()) return s;
      PrefixScan held(*db_, Cf::kLeaseResources, LeaseResourcePrefix(ns, leases.suffix()), at);
      for (; held.Valid(); held.Next()) {
        if (absl::Status s = step(); !s.ok()) return s;
        std::optional<LeaseResourceSuffix> r = ParseLeaseResourceSuffix(held.suffix());
        if (!r) return absl::DataLossError("malformed lease resource key");
        if (r->type == kLeaseContent) mark(r->id);
        if (r->type == kLeaseImages) {
          if (absl::Status s = mark_image(r->id); !s.ok()) return s;
        }
      }
      if (!held.status().ok()) return held.status();
    }
    if (!leases.status().ok()) return leases.status();
  }
  // Image records.
  {
    PrefixScan scan(*db_, Cf::kImages, NamespacePrefix(ns), at);
    for (; scan.Valid(); scan.Next()) {
      if (absl::Status s = step(); !s.ok()) return s;
      absl::StatusOr<ImageRecord> rec = DecodeImageRecord(scan.value());
      if (!rec.ok()) return rec.status();
      mark(rec->digest);
    }
    if (!scan.status().ok()) return scan.status();
  }
  // Follow gc.ref.content labels.
  while (!queue.empty()) {
    if (absl::Status s = step(); !s.ok()) return s;
    const std::string digest = DigestOf(m.rows[queue.back()]);
    queue.pop_back();
    std::string value;
    absl::Status got = db_->Get(Cf::kContent, ContentKey(ns, digest), &value, at);
    if (!got.ok()) return got;  // a row of this snapshot
    absl::StatusOr<ContentRecord> rec = DecodeContentRecord(value);
    if (!rec.ok()) return rec.status();
    for (const auto& [key, val] : rec->labels) {
      if (IsContentRef(key)) mark(val);
    }
  }
  return m;
}

absl::StatusOr<absl::flat_hash_set<std::string>> Collector::Spare(
    absl::string_view ns, const std::vector<MetadataDb::Noted>& noted) {
  absl::flat_hash_set<std::string> spared;
  std::deque<std::string> queue;
  for (const MetadataDb::Noted& n : noted) {
    if (n.ns == ns && ValidateDigest(n.id).ok() && spared.insert(n.id).second) queue.push_back(n.id);
  }
  // What they reference now (the lock is held: nothing changes meanwhile).
  while (!queue.empty()) {
    std::string digest = std::move(queue.front());
    queue.pop_front();
    std::string value;
    absl::Status got = db_->Get(Cf::kContent, ContentKey(ns, digest), &value);
    if (absl::IsNotFound(got)) continue;
    if (!got.ok()) return got;
    absl::StatusOr<ContentRecord> rec = DecodeContentRecord(value);
    if (!rec.ok()) return rec.status();
    for (const auto& [key, val] : rec->labels) {
      if (IsContentRef(key) && ValidateDigest(val).ok() && spared.insert(val).second) {
        queue.push_back(val);
      }
    }
  }
  return spared;
}

absl::StatusOr<GcReport> Collector::Collect(absl::Span<const std::string> namespaces,
                                            const GcInterrupt& interrupt) {
  absl::MutexLock pass(&pass_mu_);
  const absl::Time start = absl::Now();
  GcReport report;
  std::vector<std::string> targets;
  if (namespaces.empty()) {
    absl::StatusOr<std::vector<std::string>> all = AllNamespaces();
    if (!all.ok()) return all.status();
    targets = *std::move(all);
  } else {
    absl::flat_hash_set<absl::string_view> seen;
    for (const std::string& ns : namespaces) {
      if (!ns.empty() && seen.insert(ns).second) targets.push_back(ns);
    }
  }
  for (const std::string& ns : targets) {
    if (absl::Status s = Check(interrupt); !s.ok()) return s;
    if (absl::Status s = ExpireLeases(ns, &report.leases_expired); !s.ok()) return s;
    // The cut: with the lock held no write is half done, so each one is in
    // the snapshot or noted.
    std::optional<MetadataDb::Snapshot> snapshot;
    {
      absl::MutexLock gc(&db_->gc_lock());
      db_->StartNoting();
      snapshot.emplace(*db_);
    }
    struct StopNoting {
      MetadataDb* db;
      bool armed = true;
      ~StopNoting() {
        if (!armed) return;
        absl::MutexLock gc(&db->gc_lock());
        db->StopNoting();
      }
    } stop_noting{db_};
    absl::StatusOr<Marked> marked = Mark(ns, snapshot->get(), interrupt);
    if (!marked.ok()) return marked.status();
    // The candidates: the odd rows, then the rows the mark did not reach,
    // as many as the pass may remove.
    const size_t budget = static_cast<size_t>(std::max<int64_t>(0, options_.max_removals_per_pass));
    std::vector<std::string> odd;
    std::vector<size_t> candidates;
    size_t unreached = 0;
    for (std::string& digest : marked->odd) {
      if (++unreached <= budget) odd.push_back(std::move(digest));
    }
    for (size_t i = 0; i < marked->rows.size(); ++i) {
      if (marked->live[i]) {
        ++report.blobs_kept;
      } else if (++unreached <= budget) {
        candidates.push_back(i);
      }
    }
    if (unreached > budget) report.complete = false;
    snapshot.reset();
    if (options_.after_mark) options_.after_mark(ns);

    // The sweep, sweep_chunk blobs a write, the lock let go between writes
    // (noting goes on meanwhile): a removal stages the re-indexing of every
    // name that read a removed document in memory, and writers wait for one
    // chunk at most. Each round spares what was written since the last one
    // (a spared row counts as live from then on).
    const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, options_.sweep_chunk));
    size_t next = 0;  // of odd, then candidates: those before it are removed or spared
    const size_t total = odd.size() + candidates.size();
    bool swept = false;
    for (bool first = true; !swept; first = false) {
      if (!first && options_.between_chunks) options_.between_chunks(ns);
      if (absl::Status s = Check(interrupt); !s.ok()) return s;
      absl::MutexLock gc(&db_->gc_lock());
      stop_noting.armed = false;
      std::optional<std::vector<MetadataDb::Noted>> noted = db_->StopNoting();
      if (!noted) {
        // More was written meanwhile than is worth sparing one by one: the
        // next pass sweeps the rest of this namespace.
        report.complete = false;
        break;
      }
      absl::StatusOr<absl::flat_hash_set<std::string>> spared = Spare(ns, *noted);
      if (!spared.ok()) return spared.status();
      for (const std::string& digest : *spared) {
        if (std::optional<size_t> i = marked->Find(digest)) marked->live[*i] = true;
      }
      std::vector<std::string> batch;
      for (; next < total && batch.size() < chunk; ++next) {
        if (next < odd.size()) {  // no digest, so no write can reference it
          batch.push_back(std::move(odd[next]));
          continue;
        }
        const size_t row = candidates[next - odd.size()];
        if (marked->live[row]) {
          ++report.blobs_kept;
        } else {
          batch.push_back(DigestOf(marked->rows[row]));
        }
      }
      absl::StatusOr<RocksDbContentStore::Removed> removed = content_->RemoveBlobs(ns, batch);
      if (!removed.ok()) return removed.status();
      report.blobs_removed += removed->rows;
      report.files_removed += removed->files;
      report.bytes_freed += removed->bytes;
      swept = next == total;
      if (!swept) {
        db_->StartNoting();
        stop_noting.armed = true;
      }
    }
    if (swept) ++report.namespaces;
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
    // One view, not a lock, for the marking and the count (no lease expires here).
    MetadataDb::Snapshot snapshot(*db_);
    if (!ns.empty()) {
      absl::StatusOr<Marked> m = Mark(ns, snapshot.get(), nullptr);
      if (!m.ok()) return m.status();
      marked = *std::move(m);
    }
    PrefixScan scan(*db_, Cf::kContent, NamespacePrefix(ns), snapshot.get());
    for (; scan.Valid(); scan.Next()) {
      absl::StatusOr<ContentRecord> rec = DecodeContentRecord(scan.value());
      if (!rec.ok()) return rec.status();
      ++u.blobs;
      u.bytes += rec->size;
      bool shared = false;
      PrefixScan owners(*db_, Cf::kBlobOwners, BlobOwnerPrefix(scan.suffix()), snapshot.get());
      for (; owners.Valid(); owners.Next()) {
        if (owners.suffix() != ns) {
          shared = true;
          break;
        }
      }
      if (!shared) u.exclusive_bytes += rec->size;
      if (!ns.empty() && !marked.Contains(scan.suffix())) {
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
