#include "store/rocksdb_content_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "store/digest.h"
#include "store/errors.h"
#include "store/files.h"
#include "store/filter.h"
#include "store/keys.h"
#include "store/rocksdb_lease_store.h"
#include "store/limits.h"
#include "store/records.h"

namespace imaged::store {
namespace {

constexpr size_t kRehashChunk = 1 << 20;
// CommitBlobs starts each file's writeback when it is written and fsyncs
// them this many at a time.
constexpr size_t kSyncGroup = 32;
// Written bytes are handed to writeback in runs of this size, so the disk
// works while the client sends the rest and the fsync at commit is short.
constexpr int64_t kWritebackRun = 8 << 20;

absl::Status ContentNotFound(absl::string_view digest) {
  return absl::NotFoundError(absl::StrCat("content ", digest, ": not found"));
}

absl::Status IngestNotFound(absl::string_view ref) {
  return absl::NotFoundError(absl::StrCat("ingest \"", absl::CHexEscape(ref), "\": not found"));
}

absl::Status ValidateRef(absl::string_view ref) {
  if (ref.empty()) return absl::InvalidArgumentError("ingest ref must not be empty");
  return absl::OkStatus();
}

ContentInfo ToInfo(absl::string_view digest, const ContentRecord& r) {
  return ContentInfo{std::string(digest), r.size, r.created_at, r.updated_at, r.labels};
}

// containerd's content field paths: digest, size, labels.<key>.
class ContentAdaptor final : public FieldAdaptor {
 public:
  ContentAdaptor(absl::string_view digest, const ContentRecord& r)
      : digest_(digest), size_(absl::StrCat(r.size)), record_(r) {}
  std::optional<absl::string_view> Field(absl::Span<const std::string> path) const override {
    if (path.empty()) return std::nullopt;
    if (path[0] == "digest") return digest_;
    if (path[0] == "size") return absl::string_view(size_);
    if (path[0] == "labels") return MapField(path.subspan(1), record_.labels);
    return std::nullopt;
  }

 private:
  absl::string_view digest_;
  std::string size_;
  const ContentRecord& record_;
};

class RefAdaptor final : public FieldAdaptor {
 public:
  explicit RefAdaptor(absl::string_view ref) : ref_(ref) {}
  std::optional<absl::string_view> Field(absl::Span<const std::string> path) const override {
    if (path.size() == 1 && path[0] == "ref") return ref_;
    return std::nullopt;
  }

 private:
  absl::string_view ref_;
};

class FileReader final : public ContentReader {
 public:
  FileReader(Fd fd, int64_t size, std::string path)
      : fd_(std::move(fd)), size_(size), path_(std::move(path)) {}
  int64_t Size() const override { return size_; }
  absl::Status ReadAt(int64_t offset, size_t n, std::string* out) override {
    if (offset < 0) return absl::InvalidArgumentError("negative read offset");
    if (offset > size_) {
      return absl::OutOfRangeError(
          absl::StrCat("read at ", offset, " past the end of a ", size_, "-byte blob"));
    }
    n = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(n), size_ - offset));
    return PreadUpTo(fd_.get(), offset, n, out, path_);
  }

 private:
  Fd fd_;
  int64_t size_;
  std::string path_;
};

// A blob kept in [blob_data], read into memory whole (at most
// Options::inline_max_bytes).
class InlineReader final : public ContentReader {
 public:
  explicit InlineReader(std::string data) : data_(std::move(data)) {}
  int64_t Size() const override { return static_cast<int64_t>(data_.size()); }
  absl::Status ReadAt(int64_t offset, size_t n, std::string* out) override {
    if (offset < 0) return absl::InvalidArgumentError("negative read offset");
    if (offset > Size()) {
      return absl::OutOfRangeError(
          absl::StrCat("read at ", offset, " past the end of a ", Size(), "-byte blob"));
    }
    out->assign(data_, static_cast<size_t>(offset), n);
    return absl::OkStatus();
  }

 private:
  std::string data_;
};

}  // namespace

// An open ingest. Its bytes are held in memory while they would make a blob
// kept inline, else in its data file, whose size is then the offset; the
// running hash covers exactly those bytes. A writer that closes uncommitted
// writes what it holds to the file, so the ingest can be resumed.
class LocalWriter final : public ContentWriter {
 public:
  LocalWriter(RocksDbContentStore* store, std::string ns, std::string ref, std::string lease,
              std::string key, std::string data_path, IngestRecord record)
      : store_(store),
        ns_(std::move(ns)),
        ref_(std::move(ref)),
        lease_(std::move(lease)),
        key_(std::move(key)),
        data_path_(std::move(data_path)),
        record_(std::move(record)) {}

  ~LocalWriter() override {
    if (!done_ && !fd_.valid() && !buffer_.empty()) Spill().IgnoreError();
    if (!done_ && dirty_) {
      // Keep updated_at for expiry; losing it in a crash only makes the ingest
      // look older, so this write need not be synced.
      rocksdb::WriteBatch batch;
      batch.Put(store_->db_->cf(Cf::kIngests), key_, EncodeIngestRecord(record_));
      store_->db_->Write(&batch, /*sync=*/false).IgnoreError();
    }
    store_->UnlockRef(key_);
  }

  // Opens the data file, if the ingest has one, and brings the hash up to
  // its current end.
  absl::Status Open() {
    fd_ = Fd(::open(data_path_.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd_.valid()) {
      if (errno == ENOENT) return absl::OkStatus();  // new: held in buffer_ for now
      return ErrnoError(errno, absl::StrCat("open ", data_path_));
    }
    struct stat st;
    if (::fstat(fd_.get(), &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", data_path_));
    if (st.st_size == 0) return absl::OkStatus();  // a new ingest: nothing to hash again
    std::string buf;
    while (true) {
      if (absl::Status s = PreadUpTo(fd_.get(), offset_, kRehashChunk, &buf, data_path_); !s.ok()) {
        return s;
      }
      if (buf.empty()) break;
      hash_.Update(buf);
      offset_ += static_cast<int64_t>(buf.size());
    }
    if (::lseek(fd_.get(), offset_, SEEK_SET) < 0) {
      return ErrnoError(errno, absl::StrCat("seek ", data_path_));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<IngestStatus> Status() override {
    return IngestStatus{ref_,          offset_, record_.total, record_.expected, record_.started_at,
                        record_.updated_at};
  }

  std::string Digest() override { return hash_.Digest(); }

  absl::Status Write(absl::string_view data) override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    if (!fd_.valid() && !store_->KeptInline(offset_ + static_cast<int64_t>(data.size()))) {
      if (absl::Status s = Spill(); !s.ok()) return s;
    }
    if (!fd_.valid()) {
      buffer_.append(data.data(), data.size());
    } else if (absl::Status s = WriteAll(fd_.get(), data, data_path_); !s.ok()) {
      return s;
    }
    hash_.Update(data);
    offset_ += static_cast<int64_t>(data.size());
    if (fd_.valid() && offset_ - written_back_ >= kWritebackRun) {
      // Only a hint: the fsync at commit is what makes the bytes durable.
      ::sync_file_range(fd_.get(), written_back_, offset_ - written_back_, SYNC_FILE_RANGE_WRITE);
      written_back_ = offset_;
    }
    Touch();
    return absl::OkStatus();
  }

  absl::Status Truncate(int64_t size) override {
    if (size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("ingest \"", absl::CHexEscape(ref_), "\": can only truncate to 0"));
    }
    if (absl::Status s = Usable(); !s.ok()) return s;
    if (!fd_.valid()) {
      buffer_.clear();
    } else if (::ftruncate(fd_.get(), 0) != 0 || ::lseek(fd_.get(), 0, SEEK_SET) < 0) {
      return ErrnoError(errno, absl::StrCat("truncate ", data_path_));
    }
    hash_.Reset();
    offset_ = 0;
    written_back_ = 0;
    Touch();
    return absl::OkStatus();
  }

  absl::Status Commit(int64_t size, absl::string_view expected, const Labels& labels) override {
    if (absl::Status s = Usable(); !s.ok()) return s;
    if (absl::Status s = ValidateLabels(labels); !s.ok()) return s;
    if (!expected.empty()) {
      if (absl::Status s = ValidateDigest(expected); !s.ok()) return s;
    }
    if (size > 0 && size != offset_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ingest \"", absl::CHexEscape(ref_), "\": unexpected commit size ", offset_,
          ", expected ", size));
    }
    std::string digest = hash_.Digest();
    if (!expected.empty() && expected != digest) {
      return absl::FailedPreconditionError(absl::StrCat("ingest \"", absl::CHexEscape(ref_),
                                                        "\": unexpected commit digest ", digest,
                                                        ", expected ", expected));
    }
    std::optional<absl::string_view> data;  // set: kept inline
    std::string resumed;
    const bool had_file = fd_.valid();
    if (store_->KeptInline(offset_)) {
      if (had_file) {  // a resumed ingest: its bytes are in its file (hashed at Open)
        if (absl::Status s = PreadUpTo(fd_.get(), 0, static_cast<size_t>(offset_), &resumed,
                                       data_path_);
            !s.ok()) {
          return s;
        }
        if (static_cast<int64_t>(resumed.size()) != offset_) {
          return absl::DataLossError(absl::StrCat("ingest \"", absl::CHexEscape(ref_),
                                                  "\": its file is shorter than written"));
        }
        data = resumed;
      } else {
        data = buffer_;
      }
    } else {
      if (!fd_.valid()) {
        if (absl::Status s = Spill(); !s.ok()) return s;
      }
      if (::fsync(fd_.get()) != 0) return ErrnoError(errno, absl::StrCat("fsync ", data_path_));
    }
    // A commit that fails from here leaves the ingest to a new writer: this
    // one no longer has its file.
    if (had_file) file_closed_ = true;
    fd_ = Fd();
    // The row and the records it resolves become durable with one WAL fsync,
    // shared with concurrent commits.
    absl::Status committed = store_->db_->GroupCommit([&] {
      absl::Status s =
          store_->CommitBlob(ns_, ref_, data_path_, digest, offset_, labels, lease_, data);
      // Committed, or the digest was already held and the ingest is gone: either way done.
      if (s.ok() || absl::IsAlreadyExists(s)) done_ = true;
      if (s.ok() && store_->observer_) store_->observer_(ns_, digest);
      return s;
    });
    if (committed.ok() && data.has_value() && had_file) {
      // The blob is durable without it; if this fails, Recover() removes it
      // (no ingest row names it any more).
      RemoveAll(data_path_).IgnoreError();
    }
    return committed;
  }

 private:
  void Touch() {
    record_.updated_at = store_->clock_->Now();
    dirty_ = true;
  }

  // The bytes are in buffer_ exactly while there is no data file, so a
  // writer whose file a failed commit closed takes nothing more.
  absl::Status Usable() const {
    if (done_) return absl::FailedPreconditionError("writer already committed");
    if (file_closed_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ingest \"", absl::CHexEscape(ref_), "\": its commit failed; open it again to resume"));
    }
    return absl::OkStatus();
  }

  // Moves what buffer_ holds into a new data file, which the writer goes on
  // with. On failure nothing moved, and a later call tries again.
  absl::Status Spill() {
    Fd fd(::open(data_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoError(errno, absl::StrCat("create ", data_path_));
    if (absl::Status s = WriteAll(fd.get(), buffer_, data_path_); !s.ok()) return s;
    fd_ = std::move(fd);
    std::string().swap(buffer_);
    return absl::OkStatus();
  }

  RocksDbContentStore* const store_;
  const std::string ns_;
  const std::string ref_;
  const std::string lease_;
  const std::string key_;
  const std::string data_path_;
  IngestRecord record_;
  Fd fd_;              // the data file, once there is one
  std::string buffer_;  // the bytes while there is none
  Sha256 hash_;
  int64_t offset_ = 0;
  int64_t written_back_ = 0;
  bool dirty_ = false;
  bool done_ = false;
  bool file_closed_ = false;
};

RocksDbContentStore::RocksDbContentStore(MetadataDb* db, std::string root, const Clock* clock,
                                         Options options)
    : db_(db),
      root_(std::move(root)),
      blob_dir_(root_ + "/blobs/sha256"),
      ingest_root_(root_ + "/ingest"),
      clock_(clock),
      options_(options) {}

absl::StatusOr<std::unique_ptr<RocksDbContentStore>> RocksDbContentStore::Open(
    MetadataDb* db, const std::string& root, const Clock* clock, Options options) {
  std::unique_ptr<RocksDbContentStore> store(new RocksDbContentStore(db, root, clock, options));
  for (const std::string& dir : {store->blob_dir_, store->ingest_root_}) {
    if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  }
  return store;
}

std::string RocksDbContentStore::BlobPath(absl::string_view digest) const {
  return absl::StrCat(blob_dir_, "/", DigestHex(digest));
}

std::string RocksDbContentStore::IngestPath(absl::string_view ns, absl::string_view ref) const {
  return absl::StrCat(ingest_root_, "/", IngestFileName(ns, ref));
}

absl::Status RocksDbContentStore::LockRef(const std::string& key, absl::string_view ref) {
  absl::MutexLock lock(&locks_mu_);
  if (!locked_.insert(key).second) {
    return absl::UnavailableError(absl::StrCat("ref \"", absl::CHexEscape(ref), "\" locked"));
  }
  return absl::OkStatus();
}

void RocksDbContentStore::UnlockRef(const std::string& key) {
  absl::MutexLock lock(&locks_mu_);
  locked_.erase(key);
}

absl::StatusOr<ContentInfo> RocksDbContentStore::Info(absl::string_view ns,
                                                      absl::string_view digest) {
  if (absl::Status s = ValidateDigest(digest); !s.ok()) return s;
  std::string value;
  absl::Status s = db_->Get(Cf::kContent, ContentKey(ns, digest), &value);
  if (absl::IsNotFound(s)) return ContentNotFound(digest);
  if (!s.ok()) return s;
  absl::StatusOr<ContentRecord> r = DecodeContentRecord(value);
  if (!r.ok()) return r.status();
  return ToInfo(digest, *r);
}

absl::StatusOr<ContentInfo> RocksDbContentStore::Update(absl::string_view ns,
                                                        const ContentInfo& info,
                                                        absl::Span<const std::string> fieldpaths) {
  if (absl::Status s = ValidateDigest(info.digest); !s.ok()) return s;
  if (absl::Status s = ValidateFieldPaths(fieldpaths); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(info.labels); !s.ok()) return s;
  absl::ReaderMutexLock gc(&db_->gc_lock());  // adds a reference: see MetadataDb::gc_lock
  db_->NoteReference(MetadataDb::Noted::kBlob, ns, info.digest);
  absl::MutexLock lock(&mu_);
  std::string key = ContentKey(ns, info.digest);
  std::string value;
  absl::Status got = db_->Get(Cf::kContent, key, &value);
  if (absl::IsNotFound(got)) return ContentNotFound(info.digest);
  if (!got.ok()) return got;
  absl::StatusOr<ContentRecord> r = DecodeContentRecord(value);
  if (!r.ok()) return r.status();

  if (fieldpaths.empty()) {
    r->labels = info.labels;
  }
  for (const std::string& path : fieldpaths) {
    if (path == "labels") {
      r->labels = info.labels;
    } else if (absl::StartsWith(path, "labels.") && path.size() > 7) {
      std::string label = path.substr(7);
      auto it = info.labels.find(label);
      if (it == info.labels.end() || it->second.empty()) {
        r->labels.erase(label);
      } else {
        r->labels[label] = it->second;
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("cannot update \"", path,
                                                     "\" field on content info \"", info.digest,
                                                     "\""));
    }
  }
  // An empty value removes a label whichever way it was set.
  for (auto it = r->labels.begin(); it != r->labels.end();) {
    it = it->second.empty() ? r->labels.erase(it) : std::next(it);
  }
  if (absl::Status s = ValidateLabels(r->labels); !s.ok()) return s;
  r->updated_at = clock_->Now();

  rocksdb::WriteBatch batch;
  batch.Put(db_->cf(Cf::kContent), key, EncodeContentRecord(*r));
  if (absl::Status s = db_->Write(&batch); !s.ok()) return s;
  return ToInfo(info.digest, *r);
}

absl::Status RocksDbContentStore::WriteWithBlobLabels(
    absl::string_view ns, absl::Span<const std::pair<std::string, Labels>> labels,
    rocksdb::WriteBatch* batch) {
  // The caller holds db_->gc_lock() shared (it is writing references too).
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (const auto& [digest, set] : labels) {
    if (absl::Status s = ValidateDigest(digest); !s.ok()) return s;
    db_->NoteReference(MetadataDb::Noted::kBlob, ns, digest);  // for a marking collector
    std::string key = ContentKey(ns, digest);
    std::string value;
    absl::Status got = db_->Get(Cf::kContent, key, &value);
    if (absl::IsNotFound(got)) return ContentNotFound(digest);
    if (!got.ok()) return got;
    absl::StatusOr<ContentRecord> r = DecodeContentRecord(value);
    if (!r.ok()) return r.status();
    for (const auto& [k, v] : set) {
      if (v.empty()) {
        r->labels.erase(k);
      } else {
        r->labels[k] = v;
      }
    }
    if (absl::Status s = ValidateLabels(r->labels); !s.ok()) return s;
    r->updated_at = now;
    batch->Put(db_->cf(Cf::kContent), key, EncodeContentRecord(*r));
  }
  return db_->Write(batch);
}

absl::Status RocksDbContentStore::Walk(absl::string_view ns, absl::Span<const std::string> filters,
                                       const WalkFn& fn) {
  absl::StatusOr<Filter> filter = Filter::ParseAll(filters);
  if (!filter.ok()) return filter.status();
  PrefixScan scan(*db_, Cf::kContent, NamespacePrefix(ns));
  for (; scan.Valid(); scan.Next()) {
    absl::string_view digest = scan.suffix();
    absl::StatusOr<ContentRecord> r = DecodeContentRecord(scan.value());
    if (!r.ok()) return r.status();
    if (!filter->MatchesAll() && !filter->Match(ContentAdaptor(digest, *r))) continue;
    if (absl::Status s = fn(ToInfo(digest, *r)); !s.ok()) return s;
  }
  return scan.status();
}

absl::Status RocksDbContentStore::Guarded(absl::string_view ns,
                                          absl::Span<const std::string> digests,
                                          const RemoveFn& remove) {
  if (guard_) return guard_(ns, digests, remove);
  rocksdb::WriteBatch batch;
  return remove(&batch);
}

absl::Status RocksDbContentStore::Delete(absl::string_view ns, absl::string_view digest) {
  if (absl::Status s = ValidateDigest(digest); !s.ok()) return s;
  const std::string d(digest);
  return Guarded(ns, {&d, 1}, [&](rocksdb::WriteBatch* batch) { return DeleteInto(batch, ns, d); });
}

absl::Status RocksDbContentStore::DeleteInto(rocksdb::WriteBatch* batch, absl::string_view ns,
                                             absl::string_view digest) {
  absl::MutexLock lock(&mu_);
  const std::string d(digest);
  AwaitNotCommitting({&d, 1});
  std::string key = ContentKey(ns, digest);
  std::string value;
  absl::Status got = db_->Get(Cf::kContent, key, &value);
  if (absl::IsNotFound(got)) return ContentNotFound(digest);
  if (!got.ok()) return got;
  absl::StatusOr<ContentRecord> r = DecodeContentRecord(value);
  if (!r.ok()) return r.status();
  absl::StatusOr<bool> shared = HeldByAnother(digest, ns);
  if (!shared.ok()) return shared.status();

  // Metadata first, then the file: a crash in between leaves an unheld file,
  // which RemoveUnheldBlobs() removes, never a row without its file.
  batch->Delete(db_->cf(Cf::kContent), key);
  batch->Delete(db_->cf(Cf::kBlobOwners), BlobOwnerKey(digest, ns));
  bool file = false;
  if (!*shared) {
    ContentUsage gone;
    absl::StatusOr<bool> is_file = StageBlobGone(batch, digest, r->size, &gone);
    if (!is_file.ok()) return is_file.status();
    file = *is_file;
    if (absl::Status s = StageUsage(batch, gone); !s.ok()) return s;
  }
  if (absl::Status s = db_->Write(batch); !s.ok()) return s;
  if (!file) return absl::OkStatus();
  std::string path = BlobPath(digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, absl::StrCat("remove ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<RocksDbContentStore::Removed> RocksDbContentStore::RemoveBlobs(
    absl::string_view ns, absl::Span<const std::string> digests) {
  Removed out;
  absl::Status s = Guarded(ns, digests, [&](rocksdb::WriteBatch* batch) -> absl::Status {
    absl::StatusOr<Removed> removed = RemoveBlobsInto(batch, ns, digests);
    if (!removed.ok()) return removed.status();
    out = *removed;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<RocksDbContentStore::Removed> RocksDbContentStore::RemoveBlobsInto(
    rocksdb::WriteBatch* batch, absl::string_view ns, absl::Span<const std::string> digests) {
  absl::MutexLock lock(&mu_);
  AwaitNotCommitting(digests);
  Removed out;
  std::vector<std::string> unheld_files;
  ContentUsage gone;
  for (const std::string& digest : digests) {
    std::string key = ContentKey(ns, digest);
    std::string value;
    absl::Status got = db_->Get(Cf::kContent, key, &value);
    if (absl::IsNotFound(got)) continue;
    if (!got.ok()) return got;
    absl::StatusOr<ContentRecord> r = DecodeContentRecord(value);
    if (!r.ok()) return r.status();
    absl::StatusOr<bool> shared = HeldByAnother(digest, ns);
    if (!shared.ok()) return shared.status();
    batch->Delete(db_->cf(Cf::kContent), key);
    batch->Delete(db_->cf(Cf::kBlobOwners), BlobOwnerKey(digest, ns));
    ++out.rows;
    if (!*shared) {
      absl::StatusOr<bool> file = StageBlobGone(batch, digest, r->size, &gone);
      if (!file.ok()) return file.status();
      if (*file) unheld_files.push_back(digest);
      ++out.files;
      out.bytes += r->size;
    }
  }
  if (out.rows == 0) return out;
  if (out.files > 0) {
    if (absl::Status s = StageUsage(batch, gone); !s.ok()) return s;
  }
  // Metadata first, then the files (see Delete).
  if (absl::Status s = db_->Write(batch); !s.ok()) return s;
  for (const std::string& digest : unheld_files) {
    std::string path = BlobPath(digest);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError(errno, absl::StrCat("remove ", path));
    }
  }
  return out;
}

absl::StatusOr<bool> RocksDbContentStore::HeldByAnother(absl::string_view digest,
                                                        absl::string_view except) const {
  PrefixScan owners(*db_, Cf::kBlobOwners, BlobOwnerPrefix(digest));
  for (; owners.Valid(); owners.Next()) {
    if (owners.suffix() != except) return true;
  }
  if (!owners.status().ok()) return owners.status();
  return false;
}

absl::StatusOr<ContentUsage> RocksDbContentStore::Usage() const {
  std::string value;
  absl::Status got = db_->Get(Cf::kDefault, kContentUsageKey, &value);
  if (absl::IsNotFound(got)) return ContentUsage{};
  if (!got.ok()) return got;
  absl::string_view in = value;
  uint64_t bytes, files, inline_bytes = 0, inline_blobs = 0;
  if (!GetU64(&in, &bytes) || !GetU64(&in, &files)) {
    return absl::DataLossError("malformed content usage");
  }
  // Schema 3 wrote the files' two only.
  if (!in.empty() && (!GetU64(&in, &inline_bytes) || !GetU64(&in, &inline_blobs))) {
    return absl::DataLossError("malformed content usage");
  }
  return ContentUsage{static_cast<int64_t>(bytes), static_cast<int64_t>(files),
                      static_cast<int64_t>(inline_bytes), static_cast<int64_t>(inline_blobs)};
}

absl::Status RocksDbContentStore::StageUsage(rocksdb::WriteBatch* batch,
                                             const ContentUsage& delta) {
  absl::StatusOr<ContentUsage> usage = Usage();
  if (!usage.ok()) return usage.status();
  std::string value;
  for (int64_t v : {usage->bytes + delta.bytes, usage->files + delta.files,
                    usage->inline_bytes + delta.inline_bytes,
                    usage->inline_blobs + delta.inline_blobs}) {
    PutU64(&value, static_cast<uint64_t>(std::max<int64_t>(0, v)));
  }
  batch->Put(db_->cf(Cf::kDefault), std::string(kContentUsageKey), value);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> RocksDbContentStore::InlineBytes(
    absl::string_view digest) const {
  std::string data;
  absl::Status got = db_->Get(Cf::kBlobData, BlobDataKey(digest), &data);
  if (absl::IsNotFound(got)) return std::nullopt;
  if (!got.ok()) return got;
  return data;
}

absl::StatusOr<bool> RocksDbContentStore::StageBlobGone(rocksdb::WriteBatch* batch,
                                                        absl::string_view digest, int64_t size,
                                                        ContentUsage* delta) {
  absl::StatusOr<std::optional<std::string>> row = InlineBytes(digest);
  if (!row.ok()) return row.status();
  if (!row->has_value()) {
    delta->bytes -= size;
    --delta->files;
    return true;
  }
  batch->Delete(db_->cf(Cf::kBlobData), BlobDataKey(digest));
  delta->inline_bytes -= size;
  --delta->inline_blobs;
  return false;
}

absl::StatusOr<int64_t> RocksDbContentStore::StoredSize(absl::string_view digest) const {
  absl::StatusOr<std::optional<std::string>> row = InlineBytes(digest);
  if (!row.ok()) return row.status();
  if (row->has_value()) return static_cast<int64_t>((*row)->size());
  return FileSize(BlobPath(digest));
}

absl::StatusOr<std::unique_ptr<ContentReader>> RocksDbContentStore::Reader(
    absl::string_view ns, absl::string_view digest) {
  absl::StatusOr<ContentInfo> info = Info(ns, digest);
  if (!info.ok()) return info.status();
  absl::StatusOr<std::optional<std::string>> row = InlineBytes(digest);
  if (!row.ok()) return row.status();
  if (row->has_value()) {
    if (static_cast<int64_t>((*row)->size()) != info->size) {
      return absl::DataLossError(absl::StrCat("content ", digest, ": ", (*row)->size(),
                                              " bytes stored, ", info->size, " recorded"));
    }
    return std::make_unique<InlineReader>(**std::move(row));
  }
  std::string path = BlobPath(digest);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("content ", digest, ": blob file missing"));
    }
    return ErrnoError(errno, absl::StrCat("open ", path));
  }
  return std::make_unique<FileReader>(std::move(fd), info->size, std::move(path));
}

absl::StatusOr<IngestStatus> RocksDbContentStore::ToStatus(absl::string_view ns,
                                                           absl::string_view ref,
                                                           absl::string_view record) {
  absl::StatusOr<IngestRecord> r = DecodeIngestRecord(record);
  if (!r.ok()) return r.status();
  IngestStatus st{std::string(ref), 0, r->total, r->expected, r->started_at, r->updated_at};
  absl::StatusOr<int64_t> size = FileSize(IngestPath(ns, ref));
  if (size.ok()) {
    st.offset = *size;
  } else if (!absl::IsNotFound(size.status())) {
    return size.status();
  }
  return st;
}

absl::StatusOr<IngestStatus> RocksDbContentStore::Status(absl::string_view ns,
                                                         absl::string_view ref) {
  if (absl::Status s = ValidateRef(ref); !s.ok()) return s;
  std::string value;
  absl::Status got = db_->Get(Cf::kIngests, IngestKey(ns, ref), &value);
  if (absl::IsNotFound(got)) return IngestNotFound(ref);
  if (!got.ok()) return got;
  return ToStatus(ns, ref, value);
}

absl::StatusOr<std::vector<IngestStatus>> RocksDbContentStore::ListStatuses(
    absl::string_view ns, absl::Span<const std::string> filters) {
  absl::StatusOr<Filter> filter = Filter::ParseAll(filters);
  if (!filter.ok()) return filter.status();
  std::vector<IngestStatus> out;
  PrefixScan scan(*db_, Cf::kIngests, NamespacePrefix(ns));
  for (; scan.Valid(); scan.Next()) {
    absl::string_view ref = scan.suffix();
    if (!filter->MatchesAll() && !filter->Match(RefAdaptor(ref))) continue;
    absl::StatusOr<IngestStatus> st = ToStatus(ns, ref, scan.value());
    if (!st.ok()) return st.status();
    out.push_back(*std::move(st));
  }
  if (!scan.status().ok()) return scan.status();
  return out;
}

absl::Status RocksDbContentStore::ShareBlob(absl::string_view ns, absl::string_view digest,
                                            int64_t total, absl::string_view lease) {
  absl::ReaderMutexLock gc(&db_->gc_lock());  // adds a reference: see MetadataDb::gc_lock
  db_->NoteReference(MetadataDb::Noted::kBlob, ns, digest);
  absl::MutexLock lock(&mu_);
  std::string key = ContentKey(ns, digest);
  std::string value;
  rocksdb::WriteBatch batch;
  if (!lease.empty()) {
    batch.Put(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseContent, digest),
              rocksdb::Slice());
  }
  absl::Status got = db_->Get(Cf::kContent, key, &value);
  if (got.ok()) return batch.Count() > 0 ? db_->Write(&batch) : absl::OkStatus();
  if (!absl::IsNotFound(got)) return got;
  // Only a file some namespace holds is known to be whole and verified;
  // an unheld one may be a crash leftover awaiting Recover().
  absl::StatusOr<bool> held = HeldByAnother(digest, ns);
  if (!held.ok()) return held.status();
  if (!*held) return ContentNotFound(digest);
  absl::StatusOr<int64_t> size = StoredSize(digest);
  if (!size.ok()) return size.status();
  // A different declared size is a different claim: let the writer prove it.
  if (total > 0 && total != *size) return ContentNotFound(digest);

  absl::Time now = clock_->Now();
  batch.Put(db_->cf(Cf::kContent), key, EncodeContentRecord(ContentRecord{*size, now, now, {}}));
  batch.Put(db_->cf(Cf::kBlobOwners), BlobOwnerKey(digest, ns), rocksdb::Slice());
  return db_->Write(&batch);
}

absl::StatusOr<std::unique_ptr<ContentWriter>> RocksDbContentStore::Writer(
    absl::string_view ns, absl::string_view ref, int64_t total, absl::string_view expected,
    absl::string_view lease) {
  if (absl::Status s = ValidateIngestRef(ref); !s.ok()) return s;
  if (total < 0) return absl::InvalidArgumentError("negative total");
  if (absl::Status s = CheckLeaseExists(*db_, ns, lease); !s.ok()) return s;
  if (!expected.empty()) {
    if (absl::Status s = ValidateDigest(expected); !s.ok()) return s;
    absl::Status shared = ShareBlob(ns, expected, total, lease);
    if (shared.ok()) {
      if (observer_) observer_(ns, expected);
      return absl::AlreadyExistsError(absl::StrCat("content ", expected, ": already exists"));
    }
    if (!absl::IsNotFound(shared)) return shared;
  }

  std::string key = IngestKey(ns, ref);
  if (absl::Status s = LockRef(key, ref); !s.ok()) return s;
  // From here the writer owns the lock; on failure it must be released.
  struct Unlock {
    RocksDbContentStore* store;
    const std::string* key;
    bool armed = true;
    ~Unlock() {
      if (armed) store->UnlockRef(*key);
    }
  } unlock{this, &key};

  std::string path = IngestPath(ns, ref);
  std::string value;
  IngestRecord record;
  bool restart = false;
  absl::Status got = db_->Get(Cf::kIngests, key, &value);
  if (got.ok()) {
    absl::StatusOr<IngestRecord> r = DecodeIngestRecord(value);
    if (!r.ok()) return r.status();
    record = *std::move(r);
    // A different declared size or digest is a different blob: start over.
    if ((total > 0 && record.total > 0 && total != record.total) ||
        (!expected.empty() && !record.expected.empty() && expected != record.expected)) {
      restart = true;
    }
  } else if (absl::IsNotFound(got)) {
    record.started_at = record.updated_at = clock_->Now();
  } else {
    return got;
  }
  if (restart) {
    if (absl::Status s = RemoveAll(path); !s.ok()) return s;
    record.started_at = clock_->Now();
  }
  if (total > 0) record.total = total;
  if (!expected.empty()) record.expected = std::string(expected);
  record.updated_at = clock_->Now();

  rocksdb::WriteBatch batch;
  batch.Put(db_->cf(Cf::kIngests), key, EncodeIngestRecord(record));
  if (!lease.empty()) {
    batch.Put(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseIngests, ref),
              rocksdb::Slice());
  }
  if (absl::Status s = db_->Write(&batch, /*sync=*/false); !s.ok()) return s;

  unlock.armed = false;
  auto writer = std::make_unique<LocalWriter>(this, std::string(ns), std::string(ref),
                                              std::string(lease), key, path, std::move(record));
  if (absl::Status s = writer->Open(); !s.ok()) return s;
  return writer;
}

void RocksDbContentStore::StageCommitRows(rocksdb::WriteBatch* batch, absl::string_view ns,
                                          absl::string_view ref, absl::string_view digest,
                                          int64_t size, const Labels& labels,
                                          absl::string_view lease) {
  const absl::Time now = clock_->Now();
  batch->Put(db_->cf(Cf::kContent), ContentKey(ns, digest),
             EncodeContentRecord(ContentRecord{size, now, now, labels}));
  batch->Put(db_->cf(Cf::kBlobOwners), BlobOwnerKey(digest, ns), rocksdb::Slice());
  batch->Delete(db_->cf(Cf::kIngests), IngestKey(ns, ref));
  if (!lease.empty()) {
    batch->Put(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseContent, digest),
               rocksdb::Slice());
    batch->Delete(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseIngests, ref));
  }
}

absl::Status RocksDbContentStore::CommitBlob(absl::string_view ns, absl::string_view ref,
                                             const std::string& data_path,
                                             const std::string& digest, int64_t size,
                                             const Labels& labels, absl::string_view lease,
                                             std::optional<absl::string_view> data) {
  absl::ReaderMutexLock gc(&db_->gc_lock());  // adds a reference: see MetadataDb::gc_lock
  db_->NoteReference(MetadataDb::Noted::kBlob, ns, digest);
  std::string key = ContentKey(ns, digest);
  bool held = false;
  uint64_t renamed = 0;
  {
    absl::MutexLock lock(&mu_);
    AwaitNotCommitting({&digest, 1});
    std::string value;
    absl::Status got = db_->Get(Cf::kContent, key, &value);
    if (got.ok()) {
      // Already held: the ingest goes and the lease, if any, gets the blob.
      rocksdb::WriteBatch batch;
      batch.Delete(db_->cf(Cf::kIngests), IngestKey(ns, ref));
      if (!lease.empty()) {
        batch.Put(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseContent, digest),
                  rocksdb::Slice());
        batch.Delete(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseIngests, ref));
      }
      if (absl::Status s = db_->Write(&batch); !s.ok()) return s;
      if (absl::Status s = RemoveAll(IngestPath(ns, ref)); !s.ok()) return s;
      return absl::AlreadyExistsError(absl::StrCat("content ", digest, ": already exists"));
    }
    if (!absl::IsNotFound(got)) return got;

    absl::StatusOr<bool> other = HeldByAnother(digest, ns);
    if (!other.ok()) return other.status();
    held = *other;
    if (data.has_value()) {
      // One write makes the bytes durable and visible: nothing to guard
      // between two steps. (A resumed ingest's file is the writer's to
      // remove once this is durable.)
      rocksdb::WriteBatch batch;
      StageCommitRows(&batch, ns, ref, digest, size, labels, lease);
      if (!held) {
        batch.Put(db_->cf(Cf::kBlobData), BlobDataKey(digest),
                  rocksdb::Slice(data->data(), data->size()));
        ContentUsage added;
        added.inline_bytes = size;
        added.inline_blobs = 1;
        if (absl::Status s = StageUsage(&batch, added); !s.ok()) return s;
      }
      return db_->Write(&batch);
    }
    // Replacing a file of the same digest swaps identical bytes; readers
    // that have it open keep their inode.
    std::string blob = BlobPath(digest);
    if (::rename(data_path.c_str(), blob.c_str()) != 0) {
      return ErrnoError(errno, absl::StrCat("rename ", data_path, " to ", blob));
    }
    // Until its row is written, no other commit, share or delete of this
    // digest may act on what it read above.
    committing_.insert(digest);
    renamed = ++renames_;
  }
  struct Done {
    RocksDbContentStore* store;
    const std::string& digest;
    ~Done() {
      absl::MutexLock lock(&store->mu_);
      store->committing_.erase(digest);
    }
  } done{this, digest};

  // The rename is durable before the row that makes the blob visible.
  if (absl::Status s = SyncBlobDir(renamed); !s.ok()) return s;

  absl::MutexLock lock(&mu_);
  rocksdb::WriteBatch batch;
  StageCommitRows(&batch, ns, ref, digest, size, labels, lease);
  if (!held) {
    ContentUsage added;
    added.bytes = size;
    added.files = 1;
    if (absl::Status s = StageUsage(&batch, added); !s.ok()) return s;
  }
  // The ingest's file is the blob now: nothing is left to remove.
  return db_->Write(&batch);
}

BlobBatchCommitter::BatchResult RocksDbContentStore::CommitBlobs(absl::string_view ns,
                                                                 absl::Span<const Blob> blobs,
                                                                 absl::string_view lease) {
  BatchResult out;
  out.written.assign(blobs.size(), false);
  auto fail = [&out](size_t i, absl::Status s) {
    out.status = std::move(s);
    out.failed = i;
    return out;
  };
  size_t bytes = 0;
  for (const Blob& b : blobs) bytes += b.data.size();
  if (blobs.size() > kMaxBatchBlobs || bytes > kMaxBatchBytes) {
    return fail(0, absl::InvalidArgumentError(absl::StrCat(
                       "a batch of ", blobs.size(), " blobs, ", bytes, " bytes: over the limit of ",
                       kMaxBatchBlobs, " blobs, ", kMaxBatchBytes, " bytes")));
  }
  if (absl::Status s = CheckLeaseExists(*db_, ns, lease); !s.ok()) return fail(0, s);

  // Verified first, then shared where a namespace holds the digest already
  // (as Writer does); the rest get files, or rows when KeptInline.
  struct File {
    size_t index;
    std::string digest;
    bool kept_inline;
    std::string temp;
    bool fresh = true;  // false: committed by another writer meanwhile
    bool held = false;  // its bytes are another namespace's too
    Fd fd;              // open until its fsync
  };
  std::vector<File> files;
  absl::flat_hash_set<absl::string_view> seen;
  for (size_t i = 0; i < blobs.size(); ++i) {
    const Blob& b = blobs[i];
    if (absl::Status s = ValidateDigest(b.digest); !s.ok()) return fail(i, s);
    if (std::string actual = Sha256::Of(b.data); actual != b.digest) {
      return fail(i, absl::FailedPreconditionError(absl::StrCat(
                         "content ", b.digest, ": unexpected commit digest ", actual)));
    }
    if (!seen.insert(b.digest).second) continue;  // committed with its first
    absl::Status shared = ShareBlob(ns, b.digest, static_cast<int64_t>(b.data.size()), lease);
    if (shared.ok()) {
      if (observer_) observer_(ns, b.digest);
      continue;
    }
    if (!absl::IsNotFound(shared)) return fail(i, shared);
    files.push_back(
        File{i, std::string(b.digest), KeptInline(static_cast<int64_t>(b.data.size())), ""});
  }
  if (files.empty()) return out;

  // Whatever is not renamed into blobs/ by the end goes.
  struct Cleanup {
    std::vector<File>* files;
    ~Cleanup() {
      for (const File& f : *files) {
        if (!f.temp.empty()) ::unlink(f.temp.c_str());
      }
    }
  } cleanup{&files};
  // Each file's writeback starts as soon as it is written; the fsyncs, in
  // groups of kSyncGroup (the descriptors held at once), then mostly wait
  // for writes already under way: half the time of an fsync after each
  // write, and only ever for these files (a syncfs would be faster on an
  // idle disk but waits for everything dirty on the filesystem, containerd's
  // layers included).
  std::vector<File*> unsynced;
  auto sync_group = [&]() -> absl::Status {
    for (File* f : unsynced) {
      if (::fsync(f->fd.get()) != 0) return ErrnoError(errno, absl::StrCat("fsync ", f->temp));
      f->fd = Fd();
    }
    unsynced.clear();
    return absl::OkStatus();
  };
  // ingest/ files of ingests are named by a hex digest: these never clash.
  for (File& f : files) {
    if (f.kept_inline) continue;
    f.temp = absl::StrCat(ingest_root_, "/batch-", ++batch_files_);
    f.fd = Fd(::open(f.temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!f.fd.valid()) {
      absl::Status s = ErrnoError(errno, absl::StrCat("create ", f.temp));
      f.temp.clear();
      return fail(f.index, s);
    }
    if (absl::Status s = WriteAll(f.fd.get(), blobs[f.index].data, f.temp); !s.ok()) {
      return fail(f.index, s);
    }
    ::sync_file_range(f.fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);  // a hint; fsync decides
    unsynced.push_back(&f);
    if (unsynced.size() == kSyncGroup) {
      if (absl::Status s = sync_group(); !s.ok()) return fail(f.index, s);
    }
  }
  if (absl::Status s = sync_group(); !s.ok()) return fail(files.back().index, s);

  absl::ReaderMutexLock gc(&db_->gc_lock());  // adds references: see MetadataDb::gc_lock
  std::vector<std::string> digests, inline_digests;
  for (const File& f : files) {
    db_->NoteReference(MetadataDb::Noted::kBlob, ns, f.digest);
    (f.kept_inline ? inline_digests : digests).push_back(f.digest);
  }
  uint64_t renamed = 0;
  std::vector<std::string> marked;
  struct Unmark {
    RocksDbContentStore* store;
    const std::vector<std::string>& marked;
    ~Unmark() {
      absl::MutexLock lock(&store->mu_);
      for (const std::string& d : marked) store->committing_.erase(d);
    }
  } unmark{this, marked};
  // Under mu_: whether a concurrent writer committed `f` into `ns` meanwhile
  // (then it is not fresh), else whether another namespace holds its bytes.
  auto check = [&](File& f) -> absl::Status {
    std::string value;
    absl::Status got = db_->Get(Cf::kContent, ContentKey(ns, f.digest), &value);
    if (got.ok()) {
      f.fresh = false;
      return absl::OkStatus();
    }
    if (!absl::IsNotFound(got)) return got;
    absl::StatusOr<bool> other = HeldByAnother(f.digest, ns);
    if (!other.ok()) return other.status();
    f.held = *other;
    return absl::OkStatus();
  };
  {
    absl::MutexLock lock(&mu_);
    AwaitNotCommitting(digests);
    for (File& f : files) {
      if (f.kept_inline) continue;  // checked and written at once, below
      if (absl::Status s = check(f); !s.ok()) return fail(f.index, s);
      if (!f.fresh) continue;  // its temp file goes
      std::string blob = BlobPath(f.digest);
      if (::rename(f.temp.c_str(), blob.c_str()) != 0) {
        return fail(f.index, ErrnoError(errno, absl::StrCat("rename ", f.temp, " to ", blob)));
      }
      f.temp.clear();
      committing_.insert(f.digest);
      marked.push_back(f.digest);
      renamed = ++renames_;
    }
  }
  // The renames are durable before the rows that make the blobs visible.
  if (renamed > 0) {
    if (absl::Status s = SyncBlobDir(renamed); !s.ok()) return fail(files[0].index, s);
  }

  absl::Status written = db_->GroupCommit([&] {
    absl::MutexLock lock(&mu_);
    AwaitNotCommitting(inline_digests);
    const absl::Time now = clock_->Now();
    rocksdb::WriteBatch batch;
    ContentUsage added;
    for (File& f : files) {
      if (f.kept_inline) {
        if (absl::Status s = check(f); !s.ok()) return s;
      }
      if (f.fresh) {
        const absl::string_view data = blobs[f.index].data;
        const int64_t size = static_cast<int64_t>(data.size());
        batch.Put(db_->cf(Cf::kContent), ContentKey(ns, f.digest),
                  EncodeContentRecord(ContentRecord{size, now, now, {}}));
        batch.Put(db_->cf(Cf::kBlobOwners), BlobOwnerKey(f.digest, ns), rocksdb::Slice());
        if (!f.held && f.kept_inline) {
          batch.Put(db_->cf(Cf::kBlobData), BlobDataKey(f.digest),
                    rocksdb::Slice(data.data(), data.size()));
          added.inline_bytes += size;
          ++added.inline_blobs;
        } else if (!f.held) {
          added.bytes += size;
          ++added.files;
        }
      }
      if (!lease.empty()) {
        batch.Put(db_->cf(Cf::kLeaseResources), LeaseResourceKey(ns, lease, kLeaseContent, f.digest),
                  rocksdb::Slice());
      }
    }
    if (added.files > 0 || added.inline_blobs > 0) {
      if (absl::Status s = StageUsage(&batch, added); !s.ok()) return s;
    }
    return db_->Write(&batch);
  });
  if (!written.ok()) return fail(files[0].index, written);
  for (const File& f : files) {
    out.written[f.index] = f.fresh;
    if (observer_) observer_(ns, f.digest);
  }
  return out;
}

void RocksDbContentStore::AwaitNotCommitting(absl::Span<const std::string> digests) {
  struct Args {
    const absl::flat_hash_set<std::string>* committing;
    absl::Span<const std::string> digests;
  } args{&committing_, digests};
  mu_.Await(absl::Condition(
      +[](Args* a) {
        for (const std::string& d : a->digests) {
          if (a->committing->contains(d)) return false;
        }
        return true;
      },
      &args));
}

absl::Status RocksDbContentStore::SyncBlobDir(uint64_t renamed) {
  absl::MutexLock lock(&dir_sync_mu_);
  // One fsync covers every rename made before it started.
  if (dir_synced_ >= renamed) return absl::OkStatus();
  uint64_t upto;
  {
    absl::MutexLock l(&mu_);
    upto = renames_;
  }
  if (absl::Status s = SyncDir(blob_dir_); !s.ok()) return s;
  dir_synced_ = upto;
  return absl::OkStatus();
}

absl::Status RocksDbContentStore::RemoveIngest(absl::string_view ns, absl::string_view ref) {
  rocksdb::WriteBatch batch;
  batch.Delete(db_->cf(Cf::kIngests), IngestKey(ns, ref));
  if (absl::Status s = db_->Write(&batch); !s.ok()) return s;
  return RemoveAll(IngestPath(ns, ref));
}

absl::Status RocksDbContentStore::Abort(absl::string_view ns, absl::string_view ref) {
  if (absl::Status s = ValidateRef(ref); !s.ok()) return s;
  std::string key = IngestKey(ns, ref);
  if (absl::Status s = LockRef(key, ref); !s.ok()) return s;
  std::string value;
  absl::Status got = db_->Get(Cf::kIngests, key, &value);
  absl::Status result = absl::IsNotFound(got) ? IngestNotFound(ref)
                        : got.ok()            ? RemoveIngest(ns, ref)
                                              : got;
  UnlockRef(key);
  return result;
}

absl::Status RocksDbContentStore::Recover() {
  // Ingest files whose row is gone (or was never written).
  absl::flat_hash_set<std::string> live;
  {
    PrefixScan scan(*db_, Cf::kIngests, "");
    for (; scan.Valid(); scan.Next()) {
      std::optional<NamespacedKey> k = ParseNamespacedKey(scan.key());
      if (k) live.insert(IngestFileName(k->ns, k->name));
    }
    if (!scan.status().ok()) return scan.status();
  }
  absl::StatusOr<std::vector<std::string>> names = ListDir(ingest_root_);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    std::string path = absl::StrCat(ingest_root_, "/", name);
    if (!live.contains(name)) {
      if (absl::Status s = RemoveAll(path); !s.ok()) return s;
      continue;
    }
    // Before 2026-11-30 an ingest was a directory holding `data`: keep its
    // bytes as the file the ingest now is.
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::string moved = path + ".data";
      if (::rename((path + "/data").c_str(), moved.c_str()) != 0 && errno != ENOENT) {
        return ErrnoError(errno, absl::StrCat("rename ", path, "/data"));
      }
      if (absl::Status s = RemoveAll(path); !s.ok()) return s;
      if (::rename(moved.c_str(), path.c_str()) != 0 && errno != ENOENT) {
        return ErrnoError(errno, absl::StrCat("rename ", moved));
      }
    }
  }

  return absl::OkStatus();
}

absl::Status RocksDbContentStore::RemoveUnheldBlobs() {
  // Blob files no namespace holds: a crash between rename and metadata write,
  // or between a delete's metadata write and its unlink. One scan of
  // blob_owners gives the held digests, sorted (their keys are), instead of
  // a seek per file: at 60,000 blobs that was most of the start-up.
  using Hex = std::array<char, 64>;
  std::vector<Hex> held;
  {
    PrefixScan scan(*db_, Cf::kBlobOwners, "");
    for (; scan.Valid(); scan.Next()) {
      absl::string_view key = scan.key(), digest;
      if (!GetLengthPrefixed(&key, &digest) || !absl::ConsumePrefix(&digest, kSha256Prefix) ||
          digest.size() != 64) {
        continue;
      }
      Hex hex;
      std::memcpy(hex.data(), digest.data(), hex.size());
      if (held.empty() || held.back() != hex) held.push_back(hex);
    }
    if (!scan.status().ok()) return scan.status();
  }
  absl::StatusOr<std::vector<std::string>> blobs = ListDir(blob_dir_);
  if (!blobs.ok()) return blobs.status();
  int removed = 0;
  for (const std::string& name : *blobs) {
    bool is_held = false;
    if (name.size() == 64 && ValidateDigest(absl::StrCat(kSha256Prefix, name)).ok()) {
      Hex hex;
      std::memcpy(hex.data(), name.data(), hex.size());
      is_held = std::binary_search(held.begin(), held.end(), hex);
    }
    if (is_held) continue;
    // This may run while serving: a commit may have renamed the file in after
    // the scan. Under mu_, a file being committed is marked and a committed
    // one has its owner row.
    const std::string digest = absl::StrCat(kSha256Prefix, name);
    absl::MutexLock lock(&mu_);
    AwaitNotCommitting({&digest, 1});
    PrefixScan owners(*db_, Cf::kBlobOwners, BlobOwnerPrefix(digest));
    if (!owners.status().ok()) return owners.status();
    if (owners.Valid()) continue;
    std::string path = absl::StrCat(blob_dir_, "/", name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError(errno, absl::StrCat("remove ", path));
    }
    ++removed;
  }
  return removed > 0 ? SyncDir(blob_dir_) : absl::OkStatus();
}

absl::StatusOr<int> RocksDbContentStore::ExpireIngests(absl::Duration max_age) {
  absl::Time cutoff = clock_->Now() - max_age;
  // A lease holds its ingests until the lease goes, as in containerd.
  absl::flat_hash_set<std::string> leased;
  {
    PrefixScan scan(*db_, Cf::kLeaseResources, "");
    for (; scan.Valid(); scan.Next()) {
      std::optional<NamespacedKey> k = ParseNamespacedKey(scan.key());
      absl::string_view rest = k ? k->name : absl::string_view();
      absl::string_view lease;
      if (!k || !GetLengthPrefixed(&rest, &lease)) continue;
      std::optional<LeaseResourceSuffix> r = ParseLeaseResourceSuffix(rest);
      if (r && r->type == kLeaseIngests) leased.insert(IngestKey(k->ns, r->id));
    }
    if (!scan.status().ok()) return scan.status();
  }
  std::vector<std::pair<std::string, std::string>> stale;  // ns, ref
  {
    PrefixScan scan(*db_, Cf::kIngests, "");
    for (; scan.Valid(); scan.Next()) {
      std::optional<NamespacedKey> k = ParseNamespacedKey(scan.key());
      absl::StatusOr<IngestRecord> r = DecodeIngestRecord(scan.value());
      if (!k || !r.ok()) continue;
      if (r->updated_at < cutoff && !leased.contains(scan.key())) {
        stale.emplace_back(std::string(k->ns), std::string(k->name));
      }
    }
    if (!scan.status().ok()) return scan.status();
  }
  int removed = 0;
  for (const auto& [ns, ref] : stale) {
    absl::Status s = Abort(ns, ref);
    if (s.ok()) {
      ++removed;
    } else if (!absl::IsUnavailable(s) && !absl::IsNotFound(s)) {
      return s;  // Unavailable: a writer came back to it; NotFound: aborted meanwhile.
    }
  }
  return removed;
}

}  // namespace imaged::store
