#include "store/rocksdb_image_store.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "store/digest.h"
#include "store/filter.h"
#include "store/keys.h"
#include "store/rocksdb_lease_store.h"
#include "store/limits.h"
#include "store/resolver.h"

namespace imaged::store {
namespace {

constexpr size_t kImageIdLength = 71;  // "sha256:" + 64 hex

absl::Status ImageNotFound(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat("image \"", name, "\": not found"));
}

absl::Status ValidateImage(const Image& image) {
  if (absl::Status s = ValidateImageName(image.name); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(image.labels); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("image \"", image.name, "\": ", s.message()));
  }
  const Descriptor& t = image.target;
  if (absl::Status s = ValidateDigest(t.digest); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image \"", image.name, "\": target digest: ", s.message()));
  }
  if (t.size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("image \"", image.name, "\": target size must be greater than zero"));
  }
  if (t.media_type.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image \"", image.name, "\": target media type must be set"));
  }
  return absl::OkStatus();
}

ImageRecord ToRecord(const Image& image) {
  return ImageRecord{image.labels,          image.target.media_type, image.target.digest,
                     image.target.size,     image.target.annotations, image.created_at,
                     image.updated_at};
}

Image ToImage(absl::string_view name, const ImageRecord& r) {
  Image out;
  out.name = std::string(name);
  out.labels = r.labels;
  out.target.media_type = r.media_type;
  out.target.digest = r.digest;
  out.target.size = r.size;
  out.target.annotations = r.annotations;
  out.created_at = r.created_at;
  out.updated_at = r.updated_at;
  return out;
}

void DropEmptyLabels(Labels* labels) {
  for (auto it = labels->begin(); it != labels->end();) {
    it = it->second.empty() ? labels->erase(it) : std::next(it);
  }
}

std::string EncodeUnresolved(absl::string_view waiting_for, absl::string_view reason) {
  std::string out;
  PutLengthPrefixed(&out, waiting_for);
  out.append(reason.data(), reason.size());
  return out;
}

bool DecodeUnresolved(absl::string_view in, std::string* waiting_for, std::string* reason) {
  absl::string_view w;
  if (!GetLengthPrefixed(&in, &w)) return false;
  *waiting_for = std::string(w);
  *reason = std::string(in);
  return true;
}

class ImageAdaptor final : public FieldAdaptor {
 public:
  ImageAdaptor(absl::string_view name, const ImageRecord& r) : name_(name), r_(r) {}
  std::optional<absl::string_view> Field(absl::Span<const std::string> path) const override {
    if (path.empty()) return std::nullopt;
    if (path[0] == "name") return name_;
    if (path[0] == "target" && path.size() == 2) {
      if (path[1] == "digest") return absl::string_view(r_.digest);
      if (path[1] == "mediatype") return absl::string_view(r_.media_type);
      return std::nullopt;
    }
    if (path[0] == "labels") return MapField(path.subspan(1), r_.labels);
    if (path[0] == "annotations") return MapField(path.subspan(1), r_.annotations);
    return std::nullopt;
  }

 private:
  absl::string_view name_;
  const ImageRecord& r_;
};

CriImage FromMeta(absl::string_view id, CriMetaRecord meta) {
  return CriImage{std::string(id), {}, {}, meta.size, std::move(meta.chain_id),
                  meta.has_uid ? std::optional<int64_t>(meta.uid) : std::nullopt,
                  std::move(meta.username), false};
}

}  // namespace

void RocksDbImageStore::StageImageLease(rocksdb::WriteBatch* batch, absl::string_view ns,
                                        absl::string_view lease, absl::string_view name) {
  if (lease.empty()) return;
  batch->Put(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseImages, name),
             rocksdb::Slice());
}

struct RocksDbImageStore::Resolution {
  bool ok = false;
  std::string image_id;
  std::string user;  // the config's User, verbatim
  CriMetaRecord meta;
  std::string config;  // JSON
  std::vector<std::string> blobs;  // every digest read, in order
  std::string waiting_for;
  std::string reason;
};

RocksDbImageStore::RocksDbImageStore(MetadataDb* db, RocksDbContentStore* content, const Clock* clock,
                                     const Platform& platform, CriNameFn classify)
    : db_(db),
      content_(content),
      clock_(clock),
      platform_(platform),
      platform_name_(FormatPlatform(platform)),
      classify_(std::move(classify)) {}

namespace {

// The [cri_status] value of one image ID from its [cri_index] rows (suffix ->
// value, "" the meta row), or nullopt when it has no meta row (not indexed).
std::optional<std::string> StatusRowOf(const std::map<std::string, std::string>& rows) {
  auto meta = rows.find("");
  if (meta == rows.end()) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> names(std::next(meta), rows.end());
  return EncodeCriStatusRecord(meta->second, names);
}

// The [cri_docs] rows of `name` resolved in `ns` through `docs` (key, value).
std::vector<std::pair<std::string, std::string>> DocsRows(absl::string_view ns,
                                                          absl::string_view name,
                                                          std::vector<std::string> docs) {
  std::sort(docs.begin(), docs.end());
  docs.erase(std::unique(docs.begin(), docs.end()), docs.end());
  std::vector<std::pair<std::string, std::string>> rows;
  rows.reserve(docs.size() + 1);
  for (const std::string& d : docs) rows.emplace_back(CriDocUserKey(d, ns, name), "");
  rows.emplace_back(CriDocsOfKey(ns, name), EncodeDigestList(docs));
  return rows;
}

CriImage FromStatusRow(absl::string_view id, CriStatusRecord rec) {
  CriImage out = FromMeta(id, std::move(rec.meta));
  out.names.reserve(rec.names.size());
  out.refs.reserve(rec.names.size());
  for (auto& [name, row] : rec.names) {
    out.names.push_back(std::move(name));
    out.refs.push_back(CriName{static_cast<CriName::Kind>(row.kind), std::move(row.ref)});
    out.pinned = out.pinned || row.pinned;
  }
  return out;
}

}  // namespace

absl::Status RocksDbImageStore::StageDerivedRows(rocksdb::WriteBatch* batch) {
  // The batch's [cri_index] operations, per image ID: suffix -> the value it
  // leaves (nullopt: deleted). The last operation on a key wins, as in RocksDB.
  struct Ops : rocksdb::WriteBatch::Handler {
    uint32_t family = 0;
    bool unreadable = false;
    std::map<std::pair<std::string, std::string>, std::map<std::string, std::optional<std::string>>>
        ids;
    void Note(uint32_t cf, const rocksdb::Slice& key, std::optional<std::string> value) {
      if (cf != family) return;
      std::optional<CriIndexKey> k = ParseCriIndexKey(absl::string_view(key.data(), key.size()));
      if (!k) return;  // a malformed row a repair deletes: it derives nothing
      ids[{std::string(k->ns), std::string(k->image_id)}][std::string(k->name)] = std::move(value);
    }
    rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      Note(cf, key, value.ToString());
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      Note(cf, key, std::nullopt);
      return rocksdb::Status::OK();
    }
    rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      Note(cf, key, std::nullopt);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice&, const rocksdb::Slice&) override {
      if (cf == family) unreadable = true;
      return rocksdb::Status::OK();
    }
  } ops;
  ops.family = db_->cf(Cf::kCriIndex)->GetID();
  if (!batch->Iterate(&ops).ok() || ops.unreadable) {
    return absl::InternalError("an index write the derived rows cannot follow");
  }
  // A name is indexed under one image ID at most (a record has one target),
  // so a name the batch removes from one ID and does not add to another is
  // no longer indexed.
  std::set<std::pair<std::string, std::string>> added, removed;  // ns, name
  for (const auto& [ns_id, overlay] : ops.ids) {
    const auto& [ns, id] = ns_id;
    const std::string prefix = CriIdPrefix(ns, id);
    std::map<std::string, std::string> rows;
    {
      PrefixScan scan(*db_, Cf::kCriIndex, prefix);
      for (; scan.Valid(); scan.Next()) rows.emplace(scan.suffix(), scan.value());
      if (!scan.status().ok()) return scan.status();
    }
    for (const auto& [suffix, value] : overlay) {
      if (value) {
        rows[suffix] = *value;
      } else {
        rows.erase(suffix);
      }
      if (suffix.empty()) continue;
      if (value) {
        added.emplace(ns, suffix);
        batch->Put(db_->cf(Cf::kCriNames), CriNameToIdKey(ns, suffix), id);
      } else {
        removed.emplace(ns, suffix);
      }
    }
    std::optional<std::string> status = StatusRowOf(rows);
    if (status) {
      batch->Put(db_->cf(Cf::kCriStatus), prefix, *status);
    } else {
      batch->Delete(db_->cf(Cf::kCriStatus), prefix);
    }
  }
  for (const auto& key : removed) {
    if (added.count(key) == 0) batch->Delete(db_->cf(Cf::kCriNames), CriNameToIdKey(key.first, key.second));
  }
  return absl::OkStatus();
}

absl::Status RocksDbImageStore::UpgradeFromSchema1() {
  absl::MutexLock lock(&write_mu_);
  // One ID's rows at a time, written in batches of about 1,000 images; the
  // version moves on with the last batch, so a crash part way through
  // starts over (the rows are recomputed, not accumulated).
  constexpr int kPerBatch = 1000;
  rocksdb::WriteBatch batch;
  int in_batch = 0;
  std::string ns, id;
  std::map<std::string, std::string> rows;
  auto flush_id = [&] {
    if (rows.empty()) return;
    if (std::optional<std::string> status = StatusRowOf(rows)) {
      batch.Put(db_->cf(Cf::kCriStatus), CriIdPrefix(ns, id), *status);
      for (const auto& [suffix, value] : rows) {
        if (!suffix.empty()) batch.Put(db_->cf(Cf::kCriNames), CriNameToIdKey(ns, suffix), id);
      }
    }
    rows.clear();
    ++in_batch;
  };
  PrefixScan scan(*db_, Cf::kCriIndex, "");
  for (; scan.Valid(); scan.Next()) {
    std::optional<CriIndexKey> key = ParseCriIndexKey(scan.key());
    if (!key) continue;  // not imaged's to start over: Check reports and repairs it
    if (key->ns != ns || key->image_id != id) {
      flush_id();
      if (in_batch >= kPerBatch) {
        if (absl::Status s = db_->Write(&batch); !s.ok()) return s;
        batch.Clear();
        in_batch = 0;
      }
      ns = std::string(key->ns);
      id = std::string(key->image_id);
    }
    rows.emplace(key->name, scan.value());
  }
  if (!scan.status().ok()) return scan.status();
  flush_id();
  std::string version;
  PutU32(&version, 2);
  batch.Put(db_->cf(Cf::kDefault), rocksdb::Slice(kSchemaVersionKey.data(), kSchemaVersionKey.size()),
            version);
  return db_->Write(&batch);
}

absl::Status RocksDbImageStore::WriteIndex(rocksdb::WriteBatch* batch) {
  if (absl::Status s = StageDerivedRows(batch); !s.ok()) return s;
  absl::Status s = db_->Write(batch);
  // Even a failed write may have reached the memtable; a spare generation
  // only costs a rebuilt answer.
  Publish(*batch);
  return s;
}

void RocksDbImageStore::Publish(const rocksdb::WriteBatch& batch) {
  // Every [cri_index] key the batch puts or deletes names its image ID.
  struct Keys : rocksdb::WriteBatch::Handler {
    uint32_t family = 0;
    std::vector<std::pair<std::string, std::string>> touched;  // ns, image id
    void Note(uint32_t cf, const rocksdb::Slice& key) {
      if (cf != family) return;
      std::optional<CriIndexKey> k = ParseCriIndexKey(absl::string_view(key.data(), key.size()));
      if (k) touched.emplace_back(std::string(k->ns), std::string(k->image_id));
    }
    rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice&) override {
      Note(cf, key);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      Note(cf, key);
      return rocksdb::Status::OK();
    }
    rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      Note(cf, key);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice&, const rocksdb::Slice&) override {
      if (cf == family) range = true;
      return rocksdb::Status::OK();
    }
    bool range = false;
  } keys;
  keys.family = db_->cf(Cf::kCriIndex)->GetID();
  const bool parsed = batch.Iterate(&keys).ok() && !keys.range;
  absl::MutexLock lock(&changes_mu_);
  const uint64_t generation = generation_.load(std::memory_order_relaxed) + 1;
  if (!parsed) {
    changes_.clear();
    changes_complete_after_ = generation;
  }
  for (auto& [ns, id] : keys.touched) {
    changes_.push_back(Change{generation, std::move(ns), std::move(id)});
  }
  while (changes_.size() > kMaxChanges) {
    changes_complete_after_ = changes_.front().generation;
    changes_.pop_front();
  }
  generation_.store(generation, std::memory_order_release);
}

std::optional<std::vector<std::string>> RocksDbImageStore::ChangedSince(absl::string_view ns,
                                                                        uint64_t since) const {
  absl::MutexLock lock(&changes_mu_);
  if (since < changes_complete_after_) return std::nullopt;
  std::vector<std::string> out;
  for (auto it = changes_.rbegin(); it != changes_.rend() && it->generation > since; ++it) {
    if (it->ns == ns) out.push_back(it->image_id);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

NameRecord RocksDbImageStore::NameRowFor(absl::string_view name, const Labels& labels) const {
  auto pinned = labels.find(kLabelPinned);
  NameRecord row;
  row.pinned = pinned != labels.end() && pinned->second == kPinnedValue;
  if (classify_) {
    CriName cri = classify_(name);
    row.kind = cri.kind;
    row.ref = std::move(cri.ref);
  }
  return row;
}

RocksDbImageStore::Resolution RocksDbImageStore::Resolve(absl::string_view ns,
                                                         const ImageRecord& rec) {
  std::string cache_key = ResolutionKey(ns, rec);
  std::shared_ptr<const Resolution> hit;
  {
    absl::MutexLock lock(&resolved_mu_);
    auto it = resolved_.find(cache_key);
    if (it != resolved_.end()) hit = it->second;
  }
  // Still there? (A cheap row read instead of reading and parsing the blobs.)
  if (hit != nullptr &&
      std::all_of(hit->blobs.begin(), hit->blobs.end(), [&](const std::string& digest) {
        return content_->Info(ns, digest).ok() || (!ns.empty() && content_->Info("", digest).ok());
      })) {
    return *hit;
  }
  Resolution res = ResolveUncached(ns, rec);
  if (res.ok) {
    auto shared = std::make_shared<const Resolution>(res);
    absl::MutexLock lock(&resolved_mu_);
    if (resolved_.size() >= kMaxResolved) resolved_.clear();
    // Replaces one whose blobs have gone and come back.
    resolved_.insert_or_assign(std::move(cache_key), std::move(shared));
  }
  return res;
}

void RocksDbImageStore::Preresolve(absl::string_view ns, absl::Span<const Image> images) {
  for (const Image& image : images) {
    const ImageRecord rec = ToRecord(image);
    {
      // Remembered already: StageRecord checks its blobs under the lock.
      absl::MutexLock lock(&resolved_mu_);
      if (resolved_.contains(ResolutionKey(ns, rec))) continue;
    }
    Resolve(ns, rec);
  }
}

std::string RocksDbImageStore::ResolutionKey(absl::string_view ns, const ImageRecord& rec) {
  return absl::StrCat(ns, "\n", rec.media_type, "\n", rec.digest);
}

RocksDbImageStore::Resolution RocksDbImageStore::ResolveUncached(
    absl::string_view ns, const ImageRecord& rec, const RemovedDocs* removed) {
  // From the record's namespace or else the content proxy's.
  ContentDocuments docs(content_, ns,
                        ns.empty() ? std::nullopt : std::optional<std::string>(""));
  if (removed != nullptr) docs.Exclude(removed->ns, removed->digests);
  ResolvedImage walked;
  absl::Status s = ResolveImage(docs, Descriptor{rec.media_type, rec.digest, rec.size, {}, {}},
                                platform_, platform_name_, ConfigRead::kAlways, &walked);
  Resolution res;
  res.blobs = docs.take_asked();
  if (!s.ok()) {
    if (absl::IsNotFound(s) && !docs.missing().empty()) {
      res.waiting_for = docs.missing();
      res.reason = absl::StrCat("waiting for ", DocumentKindName(docs.missing_kind()), " ",
                                docs.missing());
    } else {
      res.reason = std::string(s.message());
    }
    return res;
  }
  ImageUser user = ParseImageUser(walked.config->user);
  res.ok = true;
  res.image_id = walked.image_id();
  res.user = walked.config->user;
  res.meta.size = ImageSize(walked.path, *walked.manifest);
  res.meta.chain_id = ChainId(walked.config->diff_ids);
  res.meta.has_uid = user.uid.has_value();
  res.meta.uid = user.uid.value_or(0);
  res.meta.username = user.username;
  res.config = std::move(walked.config_bytes);
  return res;
}

absl::Status RocksDbImageStore::StageDropDocs(rocksdb::WriteBatch* batch, absl::string_view ns,
                                              absl::string_view name) {
  const std::string key = CriDocsOfKey(ns, name);
  std::string value;
  absl::Status got = db_->Get(Cf::kCriDocs, key, &value);
  if (absl::IsNotFound(got)) return absl::OkStatus();
  if (!got.ok()) return got;
  // A malformed row loses only itself here; Check reports the users' rows.
  if (absl::StatusOr<std::vector<std::string>> docs = DecodeDigestList(value); docs.ok()) {
    for (const std::string& d : *docs) batch->Delete(db_->cf(Cf::kCriDocs), CriDocUserKey(d, ns, name));
  }
  batch->Delete(db_->cf(Cf::kCriDocs), key);
  return absl::OkStatus();
}

void RocksDbImageStore::StageUnresolved(rocksdb::WriteBatch* batch, absl::string_view ns,
                                        absl::string_view name, const Resolution& res) const {
  batch->Put(db_->cf(Cf::kUnresolved), ImageKey(ns, name),
             EncodeUnresolved(res.waiting_for, res.reason));
  if (!res.waiting_for.empty()) {
    batch->Put(db_->cf(Cf::kAwaiting), AwaitingKey(res.waiting_for, ns, name), rocksdb::Slice());
  }
  // What the walk read up to where it stopped: a removal of one of them
  // changes where that is (RemoveDocuments).
  StageDocs(batch, ns, name, res.blobs);
}

void RocksDbImageStore::StageDocs(rocksdb::WriteBatch* batch, absl::string_view ns,
                                  absl::string_view name, const std::vector<std::string>& docs) const {
  for (const auto& [key, value] : DocsRows(ns, name, docs)) {
    batch->Put(db_->cf(Cf::kCriDocs), key, value);
  }
}

absl::Status RocksDbImageStore::StageUnindex(rocksdb::WriteBatch* batch, absl::string_view ns,
                                             absl::string_view name, const ImageRecord& old,
                                             const absl::flat_hash_set<std::string>* rewritten) {
  if (absl::Status s = StageDropDocs(batch, ns, name); !s.ok()) return s;
  auto id = old.labels.find(kLabelImageId);
  if (id != old.labels.end()) {
    std::string name_key = CriNameKey(ns, id->second, name);
    std::string ignored;
    absl::Status got = db_->Get(Cf::kCriIndex, name_key, &ignored);
    if (got.ok()) {
      batch->Delete(db_->cf(Cf::kCriIndex), name_key);
      std::optional<std::string> other;  // the first name that keeps the ID
      PrefixScan scan(*db_, Cf::kCriIndex, CriIdPrefix(ns, id->second));
      for (; scan.Valid(); scan.Next()) {
        if (!scan.suffix().empty() && scan.suffix() != name &&
            (rewritten == nullptr || !rewritten->contains(scan.suffix()))) {
          other = std::string(scan.suffix());
          break;
        }
      }
      if (!scan.status().ok()) return scan.status();
      if (!other) {
        batch->Delete(db_->cf(Cf::kCriIndex), CriIdPrefix(ns, id->second));
        batch->Delete(db_->cf(Cf::kCriConfigs), CriIdPrefix(ns, id->second));
      } else {
        // The meta row is the last resolved name's, and names of one ID
        // may differ in it (one targets an index, another its manifest:
        // the size counts the index or not). This name may have written
        // it: the name that stays writes it again.
        absl::StatusOr<std::optional<ImageRecord>> kept = ReadRecord(ns, *other);
        if (!kept.ok()) return kept.status();
        if (kept->has_value()) {
          Resolution res = Resolve(ns, **kept);
          if (res.ok && res.image_id == id->second) {
            batch->Put(db_->cf(Cf::kCriIndex), CriIdPrefix(ns, id->second),
                       EncodeCriMetaRecord(res.meta));
          }
        }
      }
    } else if (!absl::IsNotFound(got)) {
      return got;
    }
  }
  return StageDropUnresolved(batch, ns, name);
}

absl::Status RocksDbImageStore::StageDropUnresolved(rocksdb::WriteBatch* batch,
                                                    absl::string_view ns, absl::string_view name) {
  std::string key = ImageKey(ns, name);
  std::string value;
  absl::Status got = db_->Get(Cf::kUnresolved, key, &value);
  if (absl::IsNotFound(got)) return absl::OkStatus();
  if (!got.ok()) return got;
  std::string waiting_for, reason;
  if (DecodeUnresolved(value, &waiting_for, &reason) && !waiting_for.empty()) {
    batch->Delete(db_->cf(Cf::kAwaiting), AwaitingKey(waiting_for, ns, name));
  }
  batch->Delete(db_->cf(Cf::kUnresolved), key);
  return absl::OkStatus();
}

absl::Status RocksDbImageStore::StageRecord(rocksdb::WriteBatch* batch, absl::string_view ns,
                                            absl::string_view name, const ImageRecord* old,
                                            ImageRecord* rec,
                                            const absl::flat_hash_set<std::string>* rewritten) {
  db_->NoteReference(MetadataDb::Noted::kBlob, ns, rec->digest);  // for a marking collector
  if (old != nullptr) {
    if (absl::Status s = StageUnindex(batch, ns, name, *old, rewritten); !s.ok()) return s;
    // Labels derived from an old target do not describe a new one, unless this
    // write set them itself.
    if (old->digest != rec->digest) {
      for (const char* label : kDerivedLabels) {
        auto o = old->labels.find(label);
        auto n = rec->labels.find(label);
        if (o != old->labels.end() && n != rec->labels.end() && o->second == n->second) {
          rec->labels.erase(n);
        }
      }
    }
  }

  Resolution res = Resolve(ns, *rec);
  if (res.ok) {
    auto claimed = rec->labels.find(kLabelImageId);
    if (claimed != rec->labels.end() && claimed->second != res.image_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image \"", name, "\": label ", kLabelImageId, "=", claimed->second,
          " contradicts the content, whose config is ", res.image_id));
    }
    rec->labels[kLabelImageId] = res.image_id;
    rec->labels[kLabelImageSize] = absl::StrCat(res.meta.size);
    if (res.meta.chain_id.empty()) {
      rec->labels.erase(kLabelChainId);
    } else {
      rec->labels[kLabelChainId] = res.meta.chain_id;
    }
    // containerd drops empty label values: no User, no label.
    if (res.user.empty()) {
      rec->labels.erase(kLabelSpecUser);
    } else {
      rec->labels[kLabelSpecUser] = res.user;
    }
    NameRecord name_rec = NameRowFor(name, rec->labels);
    batch->Put(db_->cf(Cf::kCriIndex), CriIdPrefix(ns, res.image_id),
               EncodeCriMetaRecord(res.meta));
    batch->Put(db_->cf(Cf::kCriConfigs), CriIdPrefix(ns, res.image_id), res.config);
    batch->Put(db_->cf(Cf::kCriIndex), CriNameKey(ns, res.image_id, name),
               EncodeNameRecord(name_rec));
    StageDocs(batch, ns, name, res.blobs);
  } else {
    StageUnresolved(batch, ns, name, res);
  }
  if (absl::Status s = ValidateLabels(rec->labels); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("image \"", name, "\": ", s.message()));
  }
  batch->Put(db_->cf(Cf::kImages), ImageKey(ns, name), EncodeImageRecord(*rec));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ImageRecord>> RocksDbImageStore::ReadRecord(absl::string_view ns,
                                                                         absl::string_view name) {
  std::string value;
  absl::Status got = db_->Get(Cf::kImages, ImageKey(ns, name), &value);
  if (absl::IsNotFound(got)) return std::optional<ImageRecord>();
  if (!got.ok()) return got;
  absl::StatusOr<ImageRecord> r = DecodeImageRecord(value);
  if (!r.ok()) return r.status();
  return std::optional<ImageRecord>(*std::move(r));
}

absl::StatusOr<Image> RocksDbImageStore::Get(absl::string_view ns, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("image name must not be empty");
  absl::StatusOr<std::optional<ImageRecord>> r = ReadRecord(ns, name);
  if (!r.ok()) return r.status();
  if (!r->has_value()) return ImageNotFound(name);
  return ToImage(name, **r);
}

absl::StatusOr<std::vector<Image>> RocksDbImageStore::List(absl::string_view ns,
                                                           absl::Span<const std::string> filters) {
  absl::StatusOr<Filter> filter = Filter::ParseAll(filters);
  if (!filter.ok()) return filter.status();
  std::vector<Image> out;
  PrefixScan scan(*db_, Cf::kImages, NamespacePrefix(ns));
  for (; scan.Valid(); scan.Next()) {
    absl::StatusOr<ImageRecord> r = DecodeImageRecord(scan.value());
    if (!r.ok()) return r.status();
    if (!filter->MatchesAll() && !filter->Match(ImageAdaptor(scan.suffix(), *r))) continue;
    out.push_back(ToImage(scan.suffix(), *r));
  }
  if (!scan.status().ok()) return scan.status();
  return out;
}

absl::StatusOr<Image> RocksDbImageStore::Create(absl::string_view ns, const Image& image,
                                                absl::string_view lease,
                                                std::optional<absl::Time> timestamp) {
  if (absl::Status s = PrepareNew(ns, image, lease); !s.ok()) return s;
  return db_->GroupCommit([&] { return WriteNew(ns, image, lease, timestamp); });
}

absl::Status RocksDbImageStore::PrepareNew(absl::string_view ns, const Image& image,
                                           absl::string_view lease) {
  if (absl::Status s = ValidateImage(image); !s.ok()) return s;
  if (absl::Status s = CheckLeaseExists(*db_, ns, lease); !s.ok()) return s;
  Preresolve(ns, absl::MakeConstSpan(&image, 1));
  return absl::OkStatus();
}

void RocksDbImageStore::CreateThen(absl::string_view ns, const Image& image,
                                   absl::string_view lease, std::optional<absl::Time> timestamp,
                                   CreateDone done) {
  size_t bytes = image.name.size() + image.target.digest.size() + image.target.media_type.size();
  for (const Labels* m : {&image.labels, &image.target.annotations}) {
    for (const auto& [k, v] : *m) bytes += k.size() + v.size();
  }
  absl::ReleasableMutexLock lock(&creates_mu_);
  absl::Status refused;
  if (creates_stop_) {
    refused = absl::UnavailableError("image store is closing");
  } else if (creates_waiting_ >= kMaxCreatesWaiting ||
             create_bytes_waiting_ + bytes > kMaxCreateBytesWaiting) {
    refused = absl::ResourceExhaustedError(
        absl::StrCat(creates_waiting_, " image creations (", create_bytes_waiting_,
                     " bytes) are waiting for the disk already: retry later"));
  }
  if (!refused.ok()) {
    lock.Release();  // `done` may call in again
    std::move(done)(refused);
    return;
  }
  ++creates_waiting_;
  create_bytes_waiting_ += bytes;
  // Counted as waiting until `done` has run, wherever that is.
  CreateDone counted = [this, bytes, caller = std::move(done)](
                           absl::StatusOr<Image> result) mutable {
    std::move(caller)(std::move(result));
    absl::MutexLock lock(&creates_mu_);
    --creates_waiting_;
    create_bytes_waiting_ -= bytes;
  };
  to_resolve_.push_back(QueuedCreate{std::string(ns), image, std::string(lease), timestamp,
                                     std::move(counted)});
  if (!resolver_.joinable()) {
    resolver_ = std::thread([this] { ResolverLoop(); });
    creator_ = std::thread([this] { CreatorLoop(); });
  }
}

std::optional<RocksDbImageStore::QueuedCreate> RocksDbImageStore::NextCreate(
    std::deque<QueuedCreate>* queue, const bool* closed) {
  struct Args {
    std::deque<QueuedCreate>* queue;
    const bool* closed;
  } args{queue, closed};
  absl::MutexLock lock(&creates_mu_);
  creates_mu_.Await(absl::Condition(
      +[](Args* a) { return *a->closed || !a->queue->empty(); }, &args));
  if (queue->empty()) return std::nullopt;
  QueuedCreate c = std::move(queue->front());
  queue->pop_front();
  return c;
}

void RocksDbImageStore::ResolverLoop() {
  while (std::optional<QueuedCreate> c = NextCreate(&to_resolve_, &creates_stop_)) {
    if (absl::Status s = PrepareNew(c->ns, c->image, c->lease); !s.ok()) {
      std::move(c->done)(s);
      continue;
    }
    absl::MutexLock lock(&creates_mu_);
    to_write_.push_back(*std::move(c));
  }
  absl::MutexLock lock(&creates_mu_);
  resolver_done_ = true;  // the creator drains what is left, then ends
}

void RocksDbImageStore::CreatorLoop() {
  while (std::optional<QueuedCreate> c = NextCreate(&to_write_, &resolver_done_)) {
    db_->GroupCommitThen([&] { return WriteNew(c->ns, c->image, c->lease, c->timestamp); },
                         std::move(c->done));
  }
}

RocksDbImageStore::~RocksDbImageStore() {
  std::thread resolver, creator;
  {
    absl::MutexLock lock(&creates_mu_);
    creates_stop_ = true;
    resolver.swap(resolver_);
    creator.swap(creator_);
  }
  if (resolver.joinable()) resolver.join();
  if (creator.joinable()) creator.join();
  // The last ones' `done` may still be waiting on the WAL syncer.
  absl::MutexLock lock(&creates_mu_);
  creates_mu_.Await(absl::Condition(
      +[](RocksDbImageStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->creates_mu_) {
        return s->creates_waiting_ == 0;
      },
      this));
}

absl::StatusOr<Image> RocksDbImageStore::WriteNew(absl::string_view ns, const Image& image,
                                                  absl::string_view lease,
                                                  std::optional<absl::Time> timestamp) {
  absl::ReaderMutexLock gc(&db_->gc_lock());  // adds references: see MetadataDb::gc_lock
  absl::MutexLock lock(&write_mu_);
  absl::StatusOr<std::optional<ImageRecord>> existing = ReadRecord(ns, image.name);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::AlreadyExistsError(absl::StrCat("image \"", image.name, "\": already exists"));
  }
  ImageRecord rec = ToRecord(image);
  DropEmptyLabels(&rec.labels);
  rec.created_at = rec.updated_at = timestamp.value_or(clock_->Now());
  rocksdb::WriteBatch batch;
  if (absl::Status s = StageRecord(&batch, ns, image.name, nullptr, &rec); !s.ok()) return s;
  StageImageLease(&batch, ns, lease, image.name);
  if (absl::Status s = WriteIndex(&batch); !s.ok()) return s;
  return ToImage(image.name, rec);
}

absl::StatusOr<std::vector<ImageCommitter::Written>> RocksDbImageStore::Commit(
    absl::string_view ns, const ImageCommit& commit, absl::string_view lease) {
  absl::flat_hash_set<std::string> names;
  for (const Image& image : commit.images) {
    if (absl::Status s = ValidateImage(image); !s.ok()) return s;
    if (!names.insert(image.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("image \"", image.name, "\": named twice in one commit"));
    }
  }
  for (const std::string& name : commit.deletes) {
    if (name.empty() || !names.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("image \"", name, "\": empty or named twice in one commit"));
    }
  }
  if (absl::Status s = CheckLeaseExists(*db_, ns, lease); !s.ok()) return s;
  Preresolve(ns, commit.images);
  return db_->GroupCommit([&]() -> absl::StatusOr<std::vector<Written>> {
    absl::ReaderMutexLock gc(&db_->gc_lock());  // adds references: see MetadataDb::gc_lock
    absl::MutexLock lock(&write_mu_);
    const absl::Time now = clock_->Now();
    rocksdb::WriteBatch batch;
    std::vector<Written> out;
    // Deletes first: a record the batch rewrites stages its index rows after
    // them, so an image ID a deleted name shared stays indexed.
    for (const std::string& name : commit.deletes) {
      absl::StatusOr<std::optional<ImageRecord>> existing = ReadRecord(ns, name);
      if (!existing.ok()) return existing.status();
      if (!existing->has_value()) continue;
      if (absl::Status s = StageUnindex(&batch, ns, name, **existing, &names); !s.ok()) return s;
      batch.Delete(db_->cf(Cf::kImages), ImageKey(ns, name));
    }
    for (const Image& image : commit.images) {
      absl::StatusOr<std::optional<ImageRecord>> existing = ReadRecord(ns, image.name);
      if (!existing.ok()) return existing.status();
      ImageRecord rec;
      if (existing->has_value()) {
        rec = **existing;
        ImageRecord fresh = ToRecord(image);
        rec.media_type = fresh.media_type;
        rec.digest = fresh.digest;
        rec.size = fresh.size;
        rec.annotations = fresh.annotations;
        if (commit.replace_labels) rec.labels.clear();
        for (const auto& [k, v] : image.labels) rec.labels[k] = v;
      } else {
        rec = ToRecord(image);
        rec.created_at = now;
      }
      DropEmptyLabels(&rec.labels);
      rec.updated_at = now;
      const ImageRecord* old = existing->has_value() ? &**existing : nullptr;
      if (absl::Status s = StageRecord(&batch, ns, image.name, old, &rec, &names); !s.ok()) {
        return s;
      }
      StageImageLease(&batch, ns, lease, image.name);
      out.push_back(Written{ToImage(image.name, rec), existing->has_value()});
    }
    if (absl::Status s = StageDerivedRows(&batch); !s.ok()) return s;
    absl::Status written = content_->WriteWithBlobLabels(ns, commit.blob_labels, &batch);
    Publish(batch);
    if (!written.ok()) return written;
    return out;
  });
}

absl::StatusOr<Image> RocksDbImageStore::Update(absl::string_view ns, const Image& image,
                                                absl::Span<const std::string> fieldpaths,
                                                absl::string_view lease,
                                                std::optional<absl::Time> timestamp) {
  if (image.name.empty()) return absl::InvalidArgumentError("image name is required for update");
  if (absl::Status s = ValidateImageName(image.name); !s.ok()) return s;
  if (absl::Status s = ValidateFieldPaths(fieldpaths); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(image.labels); !s.ok()) return s;
  if (absl::Status s = CheckLeaseExists(*db_, ns, lease); !s.ok()) return s;
  return db_->GroupCommit([&]() -> absl::StatusOr<Image> {
    absl::ReaderMutexLock gc(&db_->gc_lock());  // adds references: see MetadataDb::gc_lock
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::optional<ImageRecord>> existing = ReadRecord(ns, image.name);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value()) return ImageNotFound(image.name);
    const ImageRecord& old = **existing;

    ImageRecord rec = old;
    if (fieldpaths.empty()) {
      rec = ToRecord(image);
    }
    for (const std::string& path : fieldpaths) {
      if (absl::StartsWith(path, "labels.")) {
        std::string key = path.substr(7);
        auto it = image.labels.find(key);
        rec.labels[key] = it == image.labels.end() ? "" : it->second;
      } else if (absl::StartsWith(path, "annotations.")) {
        std::string key = path.substr(12);
        auto it = image.target.annotations.find(key);
        rec.annotations[key] = it == image.target.annotations.end() ? "" : it->second;
      } else if (path == "labels") {
        rec.labels = image.labels;
      } else if (path == "target") {
        rec.media_type = image.target.media_type;
        rec.digest = image.target.digest;
        rec.size = image.target.size;
        rec.annotations = image.target.annotations;
      } else if (path == "annotations") {
        rec.annotations = image.target.annotations;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot update \"", path, "\" field on image \"", image.name, "\""));
      }
    }
    DropEmptyLabels(&rec.labels);
    DropEmptyLabels(&rec.annotations);
    if (absl::Status s = ValidateImage(ToImage(image.name, rec)); !s.ok()) return s;
    rec.created_at = old.created_at;
    rec.updated_at = timestamp.value_or(clock_->Now());

    rocksdb::WriteBatch batch;
    if (absl::Status s = StageRecord(&batch, ns, image.name, &old, &rec); !s.ok()) return s;
    StageImageLease(&batch, ns, lease, image.name);
    if (absl::Status s = WriteIndex(&batch); !s.ok()) return s;
    return ToImage(image.name, rec);
  });
}

absl::Status RocksDbImageStore::Delete(absl::string_view ns, absl::string_view name,
                                       absl::string_view target_digest) {
  if (name.empty()) return absl::InvalidArgumentError("image name must not be empty");
  return db_->GroupCommit([&]() -> absl::Status {
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::optional<ImageRecord>> existing = ReadRecord(ns, name);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value()) return ImageNotFound(name);
    if (!target_digest.empty() && (*existing)->digest != target_digest) {
      return absl::NotFoundError(absl::StrCat("image ", Quote(name), " has target ",
                                              (*existing)->digest, ", not ",
                                              Quote(target_digest)));
    }
    rocksdb::WriteBatch batch;
    if (absl::Status s = StageUnindex(&batch, ns, name, **existing); !s.ok()) return s;
    batch.Delete(db_->cf(Cf::kImages), ImageKey(ns, name));
    return WriteIndex(&batch);
  });
}

absl::Status RocksDbImageStore::ListImages(absl::string_view ns, const ImageFn& fn) {
  PrefixScan scan(*db_, Cf::kCriStatus, NamespacePrefix(ns));
  for (; scan.Valid(); scan.Next()) {
    std::optional<CriIndexKey> key = ParseCriIndexKey(scan.key());
    if (!key || !key->name.empty()) return absl::DataLossError("malformed cri status key");
    absl::StatusOr<CriStatusRecord> rec = DecodeCriStatusRecord(scan.value());
    if (!rec.ok()) return rec.status();
    if (absl::Status s = fn(FromStatusRow(key->image_id, *std::move(rec))); !s.ok()) return s;
  }
  return scan.status();
}

absl::StatusOr<std::optional<CriImage>> RocksDbImageStore::GetImage(absl::string_view ns,
                                                                   absl::string_view id) {
  std::string value;
  absl::Status got = db_->Get(Cf::kCriStatus, CriIdPrefix(ns, id), &value);
  if (absl::IsNotFound(got)) return std::optional<CriImage>();
  if (!got.ok()) return got;
  absl::StatusOr<CriStatusRecord> rec = DecodeCriStatusRecord(value);
  if (!rec.ok()) return rec.status();
  return std::optional<CriImage>(FromStatusRow(id, *std::move(rec)));
}

absl::StatusOr<std::string> RocksDbImageStore::ImageConfigJson(absl::string_view ns,
                                                          absl::string_view id) {
  std::string config;
  absl::Status got = db_->Get(Cf::kCriConfigs, CriIdPrefix(ns, id), &config);
  if (absl::IsNotFound(got)) {
    return absl::NotFoundError(absl::StrCat("image ", id, ": not found"));
  }
  if (!got.ok()) return got;
  return config;
}

absl::StatusOr<std::optional<std::string>> RocksDbImageStore::ImageIdOfName(
    absl::string_view ns, absl::string_view name) {
  std::string id;
  absl::Status got = db_->Get(Cf::kCriNames, CriNameToIdKey(ns, name), &id);
  if (absl::IsNotFound(got)) return std::optional<std::string>();
  if (!got.ok()) return got;
  return std::optional<std::string>(std::move(id));
}

absl::StatusOr<std::vector<std::string>> RocksDbImageStore::ImageIdsWithPrefix(
    absl::string_view ns, absl::string_view id_prefix, size_t limit) {
  std::vector<std::string> out;
  if (id_prefix.size() > kImageIdLength || limit == 0) return out;
  // Every ID has the same length, so its length prefix is fixed and a
  // truncated ID is a plain key prefix; [cri_status] has one row per ID.
  std::string prefix = NamespacePrefix(ns);
  PutU32(&prefix, kImageIdLength);
  prefix.append(id_prefix.data(), id_prefix.size());
  PrefixScan scan(*db_, Cf::kCriStatus, prefix);
  for (; scan.Valid() && out.size() < limit; scan.Next()) {
    std::optional<CriIndexKey> key = ParseCriIndexKey(scan.key());
    if (!key || !key->name.empty()) return absl::DataLossError("malformed cri status key");
    out.emplace_back(key->image_id);
  }
  if (!scan.status().ok()) return scan.status();
  return out;
}

absl::StatusOr<std::vector<std::string>> RocksDbImageStore::RemoveImage(absl::string_view ns,
                                                                        absl::string_view id) {
  return db_->GroupCommit([&]() -> absl::StatusOr<std::vector<std::string>> {
    absl::MutexLock lock(&write_mu_);
    rocksdb::WriteBatch batch;
    std::vector<std::string> names;
    {
      PrefixScan scan(*db_, Cf::kCriIndex, CriIdPrefix(ns, id));
      for (; scan.Valid(); scan.Next()) {
        batch.Delete(db_->cf(Cf::kCriIndex), std::string(scan.key()));
        if (!scan.suffix().empty()) names.emplace_back(scan.suffix());
      }
      if (!scan.status().ok()) return scan.status();
    }
    batch.Delete(db_->cf(Cf::kCriConfigs), CriIdPrefix(ns, id));
    // The record named by the ID itself goes too, resolved or not, so no orphan
    // "sha256:<id>" record survives its image.
    if (std::find(names.begin(), names.end(), id) == names.end()) names.emplace_back(id);
    std::vector<std::string> removed;
    for (const std::string& name : names) {
      absl::StatusOr<std::optional<ImageRecord>> r = ReadRecord(ns, name);
      if (!r.ok()) return r.status();
      if (!r->has_value()) continue;
      removed.push_back(name);
      // Index rows are already staged for deletion; clear unresolved ones too.
      if (absl::Status s = StageDropUnresolved(&batch, ns, name); !s.ok()) return s;
      if (absl::Status s = StageDropDocs(&batch, ns, name); !s.ok()) return s;
      batch.Delete(db_->cf(Cf::kImages), ImageKey(ns, name));
    }
    if (!removed.empty()) {
      if (absl::Status s = WriteIndex(&batch); !s.ok()) return s;
    }
    return removed;
  });
}

absl::Status RocksDbImageStore::Retry(absl::string_view ns, absl::string_view name) {
  return db_->GroupCommit([&]() -> absl::Status {
    absl::MutexLock lock(&write_mu_);
    absl::StatusOr<std::optional<ImageRecord>> existing = ReadRecord(ns, name);
    if (!existing.ok()) return existing.status();
    rocksdb::WriteBatch batch;
    if (!existing->has_value()) {
      // A leftover row of a record that is gone.
      if (absl::Status s = StageDropUnresolved(&batch, ns, name); !s.ok()) return s;
      return batch.Count() > 0 ? WriteIndex(&batch) : absl::OkStatus();
    }
    ImageRecord rec = **existing;
    absl::Status staged = StageRecord(&batch, ns, name, &**existing, &rec);
    if (absl::IsInvalidArgument(staged)) {
      // The content now contradicts a label the client set: keep the record
      // unresolved and say why, rather than fail the blob's commit.
      batch.Clear();
      if (absl::Status s = StageUnindex(&batch, ns, name, **existing); !s.ok()) return s;
      batch.Put(db_->cf(Cf::kUnresolved), ImageKey(ns, name),
                EncodeUnresolved("", staged.message()));
      return WriteIndex(&batch);
    }
    if (!staged.ok()) return staged;
    return WriteIndex(&batch);
  });
}

absl::Status RocksDbImageStore::OnBlobArrived(absl::string_view digest) {
  std::vector<std::pair<std::string, std::string>> waiting;
  {
    PrefixScan scan(*db_, Cf::kAwaiting, AwaitingPrefix(digest));
    for (; scan.Valid(); scan.Next()) {
      std::optional<NamespacedKey> k = ParseAwaitingSuffix(scan.suffix());
      if (k) waiting.emplace_back(std::string(k->ns), std::string(k->name));
    }
    if (!scan.status().ok()) return scan.status();
  }
  for (const auto& [ns, name] : waiting) {
    if (absl::Status s = Retry(ns, name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RocksDbImageStore::RemoveDocuments(
    absl::string_view ns, absl::Span<const std::string> digests,
    const std::function<absl::Status(rocksdb::WriteBatch*)>& remove) {
  absl::MutexLock lock(&write_mu_);
  rocksdb::WriteBatch batch;
  // The names that resolved through a removed blob: in `ns`, or in any
  // namespace when `ns` is the content proxy's (every namespace's fallback).
  std::map<std::string, absl::flat_hash_set<std::string>> users;  // ns -> names
  for (const std::string& digest : digests) {
    PrefixScan scan(*db_, Cf::kCriDocs, CriDocUsersPrefix(digest));
    for (; scan.Valid(); scan.Next()) {
      std::optional<NamespacedKey> k = ParseCriDocUserSuffix(scan.suffix());
      if (k && (ns.empty() || k->ns == ns)) users[std::string(k->ns)].emplace(k->name);
    }
    if (!scan.status().ok()) return scan.status();
  }
  if (users.empty()) return remove(&batch);
  const RemovedDocs removed{std::string(ns),
                            absl::flat_hash_set<std::string>(digests.begin(), digests.end())};
  // What each resolves to without them: the same when the other namespace
  // holds them too, else unresolved, waiting for the first one its walk misses.
  struct Leaving {
    std::string name;
    ImageRecord old;
    Resolution res;
  };
  bool staged = false;
  for (const auto& [user_ns, names] : users) {
    std::vector<Leaving> leaving;
    absl::flat_hash_set<std::string> rewritten;  // no meta row is kept alive by these
    // Names of one image share its target: each target is walked once.
    absl::flat_hash_map<std::string, Resolution> walked;  // by target
    for (const std::string& name : names) {
      absl::StatusOr<std::optional<ImageRecord>> old = ReadRecord(user_ns, name);
      if (!old.ok()) return old.status();
      if (!old->has_value()) continue;  // a stale row: Check reports it
      std::string key = absl::StrCat(ResolutionKey(user_ns, **old), "\n", (*old)->size);
      auto it = walked.find(key);
      if (it == walked.end()) {
        it = walked.emplace(std::move(key), ResolveUncached(user_ns, **old, &removed)).first;
      }
      Resolution res = it->second;
      if (res.ok) continue;  // the same documents, from the other namespace
      rewritten.insert(name);
      leaving.push_back(Leaving{name, **std::move(old), std::move(res)});
    }
    // Only the index changes: the record stays as it is (even one an older
    // version stored beyond today's limits).
    for (const Leaving& l : leaving) {
      if (absl::Status s = StageUnindex(&batch, user_ns, l.name, l.old, &rewritten); !s.ok()) {
        return s;
      }
      StageUnresolved(&batch, user_ns, l.name, l.res);
      staged = true;
    }
  }
  if (!staged) return remove(&batch);
  if (absl::Status s = StageDerivedRows(&batch); !s.ok()) return s;
  absl::Status s = remove(&batch);
  Publish(batch);  // as WriteIndex: a spare generation costs one rebuilt answer
  return s;
}

absl::Status RocksDbImageStore::UpgradeFromSchema2() {
  absl::MutexLock lock(&write_mu_);
  // Each resolved record's [cri_docs] rows, in batches of about 1,000
  // records; the version moves on with the last batch (a crash part way
  // through starts over: the rows are put, not accumulated).
  constexpr int kPerBatch = 1000;
  rocksdb::WriteBatch batch;
  int in_batch = 0;
  {
    PrefixScan scan(*db_, Cf::kImages, "");
    for (; scan.Valid(); scan.Next()) {
      std::optional<NamespacedKey> k = ParseNamespacedKey(scan.key());
      absl::StatusOr<ImageRecord> rec = DecodeImageRecord(scan.value());
      if (!k || !rec.ok()) continue;  // Check reports it
      StageDocs(&batch, k->ns, k->name, Resolve(k->ns, *rec).blobs);
      if (++in_batch >= kPerBatch) {
        if (absl::Status s = db_->Write(&batch); !s.ok()) return s;
        batch.Clear();
        in_batch = 0;
      }
    }
    if (!scan.status().ok()) return scan.status();
  }
  std::string version;
  PutU32(&version, 3);
  batch.Put(db_->cf(Cf::kDefault), rocksdb::Slice(kSchemaVersionKey.data(), kSchemaVersionKey.size()),
            version);
  return db_->Write(&batch);
}

absl::StatusOr<std::vector<UnresolvedImage>> RocksDbImageStore::ListUnresolved() {
  std::vector<UnresolvedImage> out;
  PrefixScan scan(*db_, Cf::kUnresolved, "");
  for (; scan.Valid(); scan.Next()) {
    std::optional<NamespacedKey> k = ParseNamespacedKey(scan.key());
    UnresolvedImage u;
    if (!k || !DecodeUnresolved(scan.value(), &u.waiting_for, &u.reason)) {
      return absl::DataLossError("malformed unresolved row");
    }
    u.ns = std::string(k->ns);
    u.name = std::string(k->name);
    out.push_back(std::move(u));
  }
  if (!scan.status().ok()) return scan.status();
  return out;
}

absl::Status RocksDbImageStore::RetryUnresolved() {
  absl::StatusOr<std::vector<UnresolvedImage>> list = ListUnresolved();
  if (!list.ok()) return list.status();
  for (const UnresolvedImage& u : *list) {
    if (absl::Status s = Retry(u.ns, u.name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<RocksDbImageStore::CheckReport> RocksDbImageStore::Check(bool repair) {
  absl::MutexLock lock(&write_mu_);
  CheckReport report;
  // What the index would be if rebuilt from the records now.
  std::map<std::pair<Cf, std::string>, std::string> want;
  // Per image ID, the meta rows its names give: one of them is right (the
  // last one written; see StageUnindex).
  std::map<std::string, std::set<std::string>> metas;
  {
    PrefixScan scan(*db_, Cf::kImages, "");
    for (; scan.Valid(); scan.Next()) {
      std::optional<NamespacedKey> k = ParseNamespacedKey(scan.key());
      absl::StatusOr<ImageRecord> rec = DecodeImageRecord(scan.value());
      if (!k || !rec.ok()) {
        report.problems.push_back(absl::StrCat("malformed image record at key ", scan.key().size(), " bytes"));
        continue;
      }
      ++report.records;
      Resolution res = Resolve(k->ns, *rec);
      for (auto& [key, value] : DocsRows(k->ns, k->name, res.blobs)) {
        want[{Cf::kCriDocs, std::move(key)}] = std::move(value);
      }
      if (res.ok) {
        ++report.resolved;
        NameRecord name_rec = NameRowFor(k->name, rec->labels);
        want[{Cf::kCriIndex, CriIdPrefix(k->ns, res.image_id)}] = EncodeCriMetaRecord(res.meta);
        metas[CriIdPrefix(k->ns, res.image_id)].insert(EncodeCriMetaRecord(res.meta));
        want[{Cf::kCriConfigs, CriIdPrefix(k->ns, res.image_id)}] = res.config;
        want[{Cf::kCriIndex, CriNameKey(k->ns, res.image_id, k->name)}] = EncodeNameRecord(name_rec);
        auto label = rec->labels.find(kLabelImageId);
        if (label == rec->labels.end() || label->second != res.image_id) {
          report.problems.push_back(absl::StrCat("image \"", k->name, "\" in namespace \"", k->ns,
                                                 "\": label ", kLabelImageId, " is not ", res.image_id));
        }
      } else {
        ++report.unresolved;
        want[{Cf::kUnresolved, ImageKey(k->ns, k->name)}] = EncodeUnresolved(res.waiting_for, res.reason);
        if (!res.waiting_for.empty()) {
          want[{Cf::kAwaiting, AwaitingKey(res.waiting_for, k->ns, k->name)}] = "";
        }
      }
    }
    if (!scan.status().ok()) return scan.status();
  }
  for (const auto& [key, candidates] : metas) {
    if (candidates.size() < 2) continue;
    std::string actual;
    if (db_->Get(Cf::kCriIndex, key, &actual).ok() && candidates.count(actual) > 0) {
      want[{Cf::kCriIndex, key}] = actual;
    }
  }
  // The derived rows, from the [cri_index] rows wanted.
  {
    std::map<std::pair<Cf, std::string>, std::string> derived;
    std::optional<CriIndexKey> at;
    std::map<std::string, std::string> rows;
    auto flush = [&] {
      if (!at) return;
      if (std::optional<std::string> status = StatusRowOf(rows)) {
        derived[{Cf::kCriStatus, CriIdPrefix(at->ns, at->image_id)}] = *status;
        for (const auto& [suffix, value] : rows) {
          if (!suffix.empty()) {
            derived[{Cf::kCriNames, CriNameToIdKey(at->ns, suffix)}] = std::string(at->image_id);
          }
        }
      }
      rows.clear();
    };
    for (auto it = want.lower_bound({Cf::kCriIndex, ""});
         it != want.end() && it->first.first == Cf::kCriIndex; ++it) {
      std::optional<CriIndexKey> key = ParseCriIndexKey(it->first.second);
      if (!key) continue;  // built above from well-formed parts
      if (!at || at->ns != key->ns || at->image_id != key->image_id) {
        flush();
        at = key;
      }
      rows.emplace(key->name, it->second);
    }
    flush();
    want.merge(derived);
  }
  // What it is.
  rocksdb::WriteBatch batch;
  for (Cf cf : {Cf::kCriIndex, Cf::kCriConfigs, Cf::kUnresolved, Cf::kAwaiting, Cf::kCriNames,
                Cf::kCriStatus, Cf::kCriDocs}) {
    PrefixScan scan(*db_, cf, "");
    for (; scan.Valid(); scan.Next()) {
      auto it = want.find({cf, std::string(scan.key())});
      if (it == want.end()) {
        report.problems.push_back(absl::StrCat(ColumnFamilyNames()[static_cast<int>(cf)],
                                               ": stale row of ", scan.key().size(), " bytes: ", absl::CHexEscape(scan.key().substr(0, 120))));
        batch.Delete(db_->cf(cf), std::string(scan.key()));
        continue;
      }
      // Unresolved reasons may change wording as content arrives; compare the rest exactly.
      if (it->second != scan.value() && cf != Cf::kUnresolved) {
        report.problems.push_back(absl::StrCat(ColumnFamilyNames()[static_cast<int>(cf)],
                                               ": row differs from its record"));
        batch.Put(db_->cf(cf), it->first.second, it->second);
      }
      want.erase(it);
    }
    if (!scan.status().ok()) return scan.status();
  }
  for (const auto& [key, value] : want) {
    report.problems.push_back(absl::StrCat(ColumnFamilyNames()[static_cast<int>(key.first)],
                                           ": missing row"));
    batch.Put(db_->cf(key.first), key.second, value);
  }
  if (repair && batch.Count() > 0) {
    if (absl::Status s = WriteIndex(&batch); !s.ok()) return s;
    report.repaired = true;
  }
  return report;
}

}  // namespace imaged::store
