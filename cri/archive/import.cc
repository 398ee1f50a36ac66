// Import: ctr images import's reading of OCI and docker-save archives (see
// archive.h).
#include "cri/archive/archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "cri/archive/archive_internal.h"
#include "cri/reference.h"
#include "store/digest.h"
#include "store/errors.h"
#include "store/files.h"
#include "store/limits.h"
#include "store/resolver.h"

namespace imaged::cri {
namespace {

using archive_internal::ChildPlan;
using archive_internal::DescriptorJson;
using archive_internal::DockerEntry;
using archive_internal::Dump;
using archive_internal::kAnnotationImageName;
using archive_internal::kAnnotationRefName;
using archive_internal::kChunk;
using archive_internal::kJsonLimit;
using archive_internal::kOciLayoutFile;
using archive_internal::kOciLayoutVersion;
using archive_internal::LooksCompressed;
using archive_internal::Member;
using archive_internal::ParseDockerManifest;
using archive_internal::PlanChildren;
using archive_internal::RandomToken;
using store::ContentStore;
using store::Descriptor;
using store::ImageStore;

// Files outside blobs/ up to this size are kept in memory until manifest.json
// says whether they are an image's config or layer; larger ones are streamed
// into the store at once (docker-save layers).
constexpr int64_t kSmallFile = 1 << 20;
constexpr int64_t kMaxBuffered = 64 << 20;
// Small JSON blobs (manifests, indexes, configs) pass 1 read whole are kept
// for the walk and the image IDs, which would otherwise read them back from
// the store one by one: at most this many bytes of them.
constexpr int64_t kKeptDocument = 256 << 10;
constexpr int64_t kMaxKeptDocuments = 32 << 20;

// Runs f(0) ... f(n - 1) on up to `threads` threads (this one included).
template <typename F>
void ParallelFor(size_t n, size_t threads, const F& f) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) f(i);
  };
  std::vector<std::thread> pool;
  for (size_t i = 1; i < std::min(threads, n); ++i) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

// ---------------------------------------------------------------------------
// Import

struct ArchiveBlob {
  std::string digest;
  int64_t size = 0;
  std::string head;  // first bytes, for LooksCompressed
};

// Commits small blobs on a few threads while the tar is read on, so that
// their fsyncs (file, blobs/ directory, WAL) overlap and are shared by the
// store's group commit instead of being paid one blob at a time. A worker
// takes up to `batch_jobs` queued blobs (and `batch_bytes`, unless one blob
// is more) at once: one, unless the store commits batches
// (BlobBatchCommitter). Bounded: kWorkers batches run, and at most
// kMaxQueuedBytes (or batch_jobs x kWorkers blobs) wait; Submit blocks
// beyond that.
class CommitPool {
 public:
  static constexpr int kWorkers = 8;
  static constexpr int64_t kMaxQueuedBytes = 8 << 20;
  struct Job {
    std::string entry;
    std::string data;
    std::string digest;
  };
  // What committing a batch came to: the first failure and the job it is
  // about, and how many blobs were written or found present before it.
  struct BatchOutcome {
    absl::Status status;
    size_t failed = 0;
    int64_t written = 0;
    int64_t present = 0;
  };
  using CommitFn = std::function<BatchOutcome(absl::Span<const Job> jobs)>;

  CommitPool(CommitFn commit, size_t batch_jobs, int64_t batch_bytes)
      : commit_(std::move(commit)), batch_jobs_(batch_jobs), batch_bytes_(batch_bytes) {}
  ~CommitPool() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      Discard();  // an import that failed elsewhere: what has not started never will
    }
    for (std::thread& t : threads_) t.join();
  }

  // Queues `data` (which hashes to `digest`) for the store; `entry` names it
  // in an error. After a failure nothing more is committed.
  void Submit(std::string entry, std::string data, std::string digest) {
    absl::MutexLock lock(&mu_);
    const int64_t size = static_cast<int64_t>(data.size());
    auto room = [this, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return queue_.empty() || !error_.ok() ||
             (queue_.size() < batch_jobs_ * kWorkers && queued_bytes_ + size <= kMaxQueuedBytes);
    };
    mu_.Await(absl::Condition(&room));
    if (!error_.ok()) return;
    queue_.push_back(Job{std::move(entry), std::move(data), std::move(digest)});
    queued_bytes_ += size;
    ++pending_;
    if (threads_.size() < static_cast<size_t>(kWorkers) && threads_.size() < pending_) {
      threads_.emplace_back([this] { Work(); });
    }
  }

  // Waits until every queued blob is committed (or given up after a
  // failure); the first failure, naming its entry.
  struct Outcome {
    absl::Status status;
    std::string entry;  // of the failure
    int64_t written = 0;
    int64_t present = 0;
  };
  Outcome Drain() {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_ == 0; };
    mu_.Await(absl::Condition(&idle));
    Outcome out{error_, error_entry_, written_, present_};
    written_ = present_ = 0;
    return out;
  }

 private:
  void Work() {
    absl::MutexLock lock(&mu_);
    std::vector<Job> jobs;
    for (;;) {
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping
      jobs.clear();
      int64_t bytes = 0;
      while (!queue_.empty() && jobs.size() < batch_jobs_ &&
             (jobs.empty() || bytes + static_cast<int64_t>(queue_.front().data.size()) <=
                                  batch_bytes_)) {
        bytes += static_cast<int64_t>(queue_.front().data.size());
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_bytes_ -= bytes;
      mu_.Unlock();
      BatchOutcome done = commit_(jobs);
      mu_.Lock();
      written_ += done.written;
      present_ += done.present;
      if (!done.status.ok() && error_.ok()) {
        error_ = done.status;
        error_entry_ = jobs[std::min(done.failed, jobs.size() - 1)].entry;
        Discard();
      }
      pending_ -= jobs.size();
    }
  }

  // Drops the jobs not started.
  void Discard() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    pending_ -= queue_.size();
    queue_.clear();
    queued_bytes_ = 0;
  }

  const CommitFn commit_;
  const size_t batch_jobs_;
  const int64_t batch_bytes_;
  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;  // queued or being committed
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::string error_entry_ ABSL_GUARDED_BY(mu_);
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t present_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // touched by Submit's and the destructor's thread only
};

class Importer {
 public:
  Importer(ContentStore* content, ImageStore* images, absl::string_view ns,
           absl::string_view source, const ImportOptions& options)
      : content_(content),
        images_(images),
        ns_(ns),
        source_(source),
        options_(options),
        matcher_(options.platform),
        token_(RandomToken()),
        buf_(new char[kChunk]) {}

  absl::StatusOr<ImportResult> Run(const ArchiveReadFn& read) {
    if (absl::Status s = ReadArchive(read); !s.ok()) return s;
    std::vector<Descriptor> roots;
    if (oci_layout_ && !oci_version_.empty()) {
      if (oci_version_ != kOciLayoutVersion) {
        return Error(absl::StatusCode::kInvalidArgument, kOciLayoutFile,
                     absl::StrCat("unsupported OCI layout version \"", oci_version_, "\"; want ",
                                  kOciLayoutVersion));
      }
      if (!index_json_) {
        return Error(absl::StatusCode::kFailedPrecondition, "", "OCI layout without index.json");
      }
      auto index = store::ParseIndex(*index_json_);
      if (!index.ok()) {
        return Error(absl::StatusCode::kInvalidArgument, "index.json", index.status().message());
      }
      roots = *std::move(index);
    } else if (manifest_json_) {
      auto docker = DockerRoots();
      if (!docker.ok()) return docker.status();
      roots = *std::move(docker);
    } else {
      return Error(absl::StatusCode::kInvalidArgument, "",
                   "unrecognized image format: neither an OCI layout (oci-layout, index.json) "
                   "nor a docker-save archive (manifest.json)");
    }

    // Names first (as ctr does), then the walk, then the records.
    std::vector<std::pair<std::string, Descriptor>> named;
    for (const Descriptor& root : roots) {
      std::string name = ImageName(root.annotations);
      if (!name.empty()) named.emplace_back(name, root);
      if (options_.digest_refs && !(options_.skip_digest_for_named && !name.empty()))
        named.emplace_back(absl::StrCat(BaseName(), "@", root.digest), root);
    }
    for (size_t i = 0; i < roots.size(); ++i) {
      const Descriptor& root = roots[i];
      if (!options_.all_platforms && root.platform && !matcher_.Match(*root.platform)) continue;
      std::string what = ImageName(root.annotations);
      if (what.empty()) what = absl::StrCat("index entry ", i, " (", root.digest, ")");
      auto walked = Walk(root, /*required=*/true, what);
      if (!walked.ok()) return walked.status();
    }
    if (absl::Status s = WriteLabels(); !s.ok()) return s;

    ImportResult result;
    result.blobs_written = written_;
    result.blobs_present = present_;
    // Every name checked before any is written (they are written at once):
    // a name the store would refuse fails the import with no record made.
    for (const auto& [name, target] : named) {
      if (absl::Status s = store::ValidateImageName(name); !s.ok()) {
        return Error(s.code(), "", s.message());
      }
    }
    std::vector<absl::StatusOr<bool>> existed = PutImages(named);
    for (size_t i = 0; i < named.size(); ++i) {
      if (!existed[i].ok()) return existed[i].status();
      store::Descriptor target = named[i].second;
      target.platform.reset();
      result.images.push_back({named[i].first, target, ImageId(named[i].second), *existed[i]});
    }
    return result;
  }

 private:
  absl::Status Error(absl::StatusCode code, absl::string_view entry, absl::string_view msg) const {
    return absl::Status(code, absl::StrCat("archive ", source_, ": ",
                                           entry.empty() ? "" : absl::StrCat(entry, ": "), msg));
  }

  absl::Status TooDeep(absl::string_view image) const {
    return Error(absl::StatusCode::kFailedPrecondition, image,
                 absl::StrCat("indexes nested more than ", store::kMaxIndexNesting, " deep"));
  }

  // --- pass 1: the tar stream ---------------------------------------------

  // An error of the tar reader, named after `entry` unless it is the
  // caller's own read error, which passes through unchanged.
  absl::Status TarError(const absl::Status& s, absl::string_view entry) const {
    if (reader_->read_failed()) return s;
    return Error(s.code(), entry, s.message());
  }

  // Pass 1, then the wait for the blobs it queued: on failure too, so that
  // the blobs that arrived whole stay committed (a retry finds them).
  absl::Status ReadArchive(const ArchiveReadFn& read) {
    absl::Status read_status = ReadEntries(read);
    CommitPool::Outcome committed = pool_.Drain();
    written_ += committed.written;
    present_ += committed.present;
    if (!read_status.ok()) return read_status;
    if (!committed.status.ok()) {
      return Error(committed.status.code(), committed.entry, committed.status.message());
    }
    return absl::OkStatus();
  }

  absl::Status ReadEntries(const ArchiveReadFn& read) {
    TarReader reader(read);
    reader_ = &reader;
    for (;;) {
      absl::StatusOr<std::optional<TarEntry>> entry = reader.Next();
      if (!entry.ok()) return TarError(entry.status(), "");
      if (!entry->has_value()) break;
      const TarEntry& e = **entry;
      if (e.type == TarEntry::Type::kLink) {
        aliases_[e.name] = e.target;
        continue;
      }
      if (absl::Status s = OnFile(e.name, e.size); !s.ok()) return s;
    }
    reader_ = nullptr;
    return absl::OkStatus();
  }

  // Reads the rest of the current entry into `out` (at most `limit` bytes).
  absl::Status ReadAll(const std::string& name, int64_t size, int64_t limit, std::string* out) {
    if (size > limit) {
      return Error(absl::StatusCode::kInvalidArgument, name,
                   absl::StrCat(size, " bytes, over the ", limit, "-byte limit"));
    }
    out->clear();
    out->reserve(size);
    for (;;) {
      absl::StatusOr<size_t> n = reader_->Read(buf_.get(), kChunk);
      if (!n.ok()) return TarError(n.status(), name);
      if (*n == 0) break;
      out->append(buf_.get(), *n);
    }
    if (static_cast<int64_t>(out->size()) != size) {
      return Error(absl::StatusCode::kDataLoss, name,
                   absl::StrCat("read ", out->size(), " of ", size, " bytes"));
    }
    return absl::OkStatus();
  }

  absl::Status OnFile(const std::string& name, int64_t size) {
    if (name == kOciLayoutFile || name == "index.json" || name == "manifest.json") {
      std::string data;
      if (absl::Status s = ReadAll(name, size, kJsonLimit, &data); !s.ok()) return s;
      if (name == kOciLayoutFile) {
        nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
        const nlohmann::json* v = j.is_object() ? Member(j, "imageLayoutVersion") : nullptr;
        if (j.is_discarded() || !j.is_object() || (v && !v->is_string())) {
          return Error(absl::StatusCode::kInvalidArgument, name, "not a valid OCI layout file");
        }
        oci_layout_ = true;
        oci_version_ = v ? v->get<std::string>() : "";
      } else if (name == "index.json") {
        index_json_ = std::move(data);
      } else {
        manifest_json_ = std::move(data);
      }
      return absl::OkStatus();
    }
    std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
    if (parts.size() == 3 && parts[0] == "blobs" && parts[1] == "sha256") {
      std::string digest = absl::StrCat(store::kSha256Prefix, parts[2]);
      if (!store::ValidateDigest(digest).ok()) {
        return Error(absl::StatusCode::kInvalidArgument, name, "not a valid sha256 blob name");
      }
      return StreamFile(name, size, digest);
    }
    if (size <= kSmallFile && buffered_ + size <= kMaxBuffered) {
      std::string data;
      if (absl::Status s = ReadAll(name, size, kSmallFile, &data); !s.ok()) return s;
      buffered_ += size;
      small_[name] = std::move(data);
      files_.erase(name);
      return absl::OkStatus();
    }
    return StreamFile(name, size, "");
  }

  // Streams the current entry into the content store; with `expected` set
  // the bytes must hash to it.
  absl::Status StreamFile(const std::string& name, int64_t size, const std::string& expected) {
    if (!expected.empty() && size <= kSmallFile) return QueueFile(name, size, expected);
    std::string ref = absl::StrCat("import-", token_, "-", ++ingests_);
    std::unique_ptr<store::ContentWriter> writer;
    bool present = false;
    store::Sha256 hash;
    std::string head;
    int64_t total = 0;
    auto abort = [&](absl::Status s) {
      if (writer) {
        writer.reset();
        content_->Abort(ns_, ref).IgnoreError();
      }
      return s;
    };
    for (bool opened = false;;) {
      absl::StatusOr<size_t> got = reader_->Read(buf_.get(), kChunk);
      if (!got.ok()) return abort(TarError(got.status(), name));
      const size_t n = *got;
      absl::string_view chunk(buf_.get(), n);
      if (head.size() < 10) absl::StrAppend(&head, chunk.substr(0, 10 - head.size()));
      if (!opened) {
        // Opened after the first read, so that an empty or unreadable entry
        // leaves no ingest behind.
        opened = true;
        auto w = content_->Writer(ns_, ref, size, expected, options_.lease);
        if (absl::IsAlreadyExists(w.status())) {
          present = true;  // still hashed below: the archive must be sound
        } else if (!w.ok()) {
          return Error(w.status().code(), name, w.status().message());
        } else {
          writer = *std::move(w);
        }
      }
      if (n == 0) break;
      hash.Update(chunk);
      total += static_cast<int64_t>(n);
      if (writer) {
        if (absl::Status s = writer->Write(chunk); !s.ok()) {
          return abort(Error(s.code(), name, s.message()));
        }
      }
    }
    if (total != size) {
      return abort(Error(absl::StatusCode::kDataLoss, name,
                         absl::StrCat("read ", total, " of ", size, " bytes")));
    }
    std::string digest = hash.Digest();
    if (!expected.empty() && digest != expected) {
      return abort(Error(absl::StatusCode::kDataLoss, name,
                         absl::StrCat("content does not match its name: it hashes to ", digest)));
    }
    if (writer) {
      absl::Status s = writer->Commit(size, digest, {});
      writer.reset();
      if (absl::IsAlreadyExists(s)) {
        present = true;
      } else if (!s.ok()) {
        content_->Abort(ns_, ref).IgnoreError();
        return Error(s.code(), name, s.message());
      }
    }
    ++(present ? present_ : written_);
    files_[name] = ArchiveBlob{digest, size, head};
    archive_digests_[digest] = size;
    small_.erase(name);
    return absl::OkStatus();
  }

  // Reads the current entry, a small blob, checks it against its name and
  // hands it to the commit pool (the first copy of a digest only).
  absl::Status QueueFile(const std::string& name, int64_t size, const std::string& expected) {
    std::string data;
    if (absl::Status s = ReadAll(name, size, kSmallFile, &data); !s.ok()) return s;
    std::string digest = store::Sha256::Of(data);
    if (digest != expected) {
      return Error(absl::StatusCode::kDataLoss, name,
                   absl::StrCat("content does not match its name: it hashes to ", digest));
    }
    files_[name] = ArchiveBlob{digest, size, data.substr(0, 10)};
    small_.erase(name);
    const size_t first = data.find_first_not_of(" \t\r\n");
    if (size <= kKeptDocument && kept_bytes_ + size <= kMaxKeptDocuments &&
        first != std::string::npos && data[first] == '{' && !kept_.count(digest)) {
      kept_bytes_ += size;
      kept_[digest] = data;
    }
    if (!archive_digests_.emplace(digest, size).second) {
      ++present_;  // a second copy in this archive
      return absl::OkStatus();
    }
    pool_.Submit(name, std::move(data), std::move(digest));
    return absl::OkStatus();
  }

  // --- docker-save ---------------------------------------------------------

  // The blob a path of manifest.json names: followed through symlinks, and
  // written to the store now when it was kept in memory.
  absl::StatusOr<ArchiveBlob> DockerFile(const std::string& path, absl::string_view what) {
    std::string p = CleanPath(path);
    for (int hops = 0; hops < 16; ++hops) {
      if (auto it = files_.find(p); it != files_.end()) return it->second;
      if (auto it = small_.find(p); it != small_.end()) {
        ArchiveBlob blob{store::Sha256::Of(it->second), static_cast<int64_t>(it->second.size()),
                         it->second.substr(0, 10)};
        if (absl::Status s = WriteBytes(it->second, blob.digest); !s.ok()) {
          return Error(s.code(), p, s.message());
        }
        files_[p] = blob;
        archive_digests_[blob.digest] = blob.size;
        return blob;
      }
      auto alias = aliases_.find(p);
      if (alias == aliases_.end()) break;
      p = alias->second;
    }
    return Error(absl::StatusCode::kFailedPrecondition, "manifest.json",
                 absl::StrCat(what, " \"", path, "\" is not in the archive"));
  }

  absl::Status WriteBytes(absl::string_view data, const std::string& digest) {
    absl::StatusOr<bool> written = CommitBytes(data, digest);
    if (!written.ok()) return written.status();
    ++(*written ? written_ : present_);
    return absl::OkStatus();
  }

  // Commits a batch of the pool's: as one with a BlobBatchCommitter, else
  // one by one. Called on the pool's threads.
  CommitPool::BatchOutcome CommitJobs(absl::Span<const CommitPool::Job> jobs) {
    CommitPool::BatchOutcome out;
    if (batcher_ != nullptr) {
      std::vector<store::BlobBatchCommitter::Blob> blobs;
      blobs.reserve(jobs.size());
      for (const CommitPool::Job& job : jobs) blobs.push_back({job.digest, job.data});
      store::BlobBatchCommitter::BatchResult r = batcher_->CommitBlobs(ns_, blobs, options_.lease);
      out.status = r.status;
      out.failed = r.failed;
      if (r.status.ok()) {
        for (bool w : r.written) ++(w ? out.written : out.present);
      }
      return out;
    }
    for (size_t i = 0; i < jobs.size(); ++i) {
      absl::StatusOr<bool> written = CommitBytes(jobs[i].data, jobs[i].digest);
      if (!written.ok()) {
        out.status = written.status();
        out.failed = i;
        return out;
      }
      ++(*written ? out.written : out.present);
    }
    return out;
  }

  // Writes `data` into the store: true when written, false when it was
  // there already. Called from the commit pool's threads too.
  absl::StatusOr<bool> CommitBytes(absl::string_view data, const std::string& digest) {
    std::string ref = absl::StrCat("import-", token_, "-", ++ingests_);
    auto w = content_->Writer(ns_, ref, data.size(), digest, options_.lease);
    absl::Status s = w.status();
    if (w.ok()) s = store::CommitWhole(*content_, ns_, ref, *std::move(w), data, digest);
    if (absl::IsAlreadyExists(s)) return false;
    if (!s.ok()) return s;
    return true;
  }

  // containerd's importer for Docker archives: a schema 2 manifest per entry
  // of manifest.json, an index entry per RepoTag (or one unnamed).
  absl::StatusOr<std::vector<Descriptor>> DockerRoots() {
    auto entries = ParseDockerManifest(*manifest_json_);
    if (!entries.ok()) return Error(entries.status().code(), "", entries.status().message());
    std::vector<Descriptor> roots;
    for (const DockerEntry& e : *entries) {
      auto config = DockerFile(e.config, "image config");
      if (!config.ok()) return config.status();
      nlohmann::ordered_json manifest;
      manifest["schemaVersion"] = 2;
      manifest["mediaType"] = store::kMediaTypeDockerManifest;
      Descriptor config_desc{std::string(store::kMediaTypeDockerConfig), config->digest,
                             config->size};
      manifest["config"] = DescriptorJson(config_desc);
      manifest["layers"] = nlohmann::ordered_json::array();
      for (const std::string& path : e.layers) {
        auto layer = DockerFile(path, "layer");
        if (!layer.ok()) return layer.status();
        Descriptor d{std::string(LooksCompressed(layer->head) ? store::kMediaTypeDockerLayerGzip
                                                              : store::kMediaTypeDockerLayer),
                     layer->digest, layer->size};
        manifest["layers"].push_back(DescriptorJson(d));
      }
      std::string bytes = Dump(manifest);
      Descriptor desc{std::string(store::kMediaTypeDockerManifest), store::Sha256::Of(bytes),
                      static_cast<int64_t>(bytes.size())};
      if (absl::Status s = WriteBytes(bytes, desc.digest); !s.ok()) {
        return Error(s.code(), "manifest.json", s.message());
      }
      archive_digests_[desc.digest] = desc.size;
      // containerd puts the config's platform on the entry (os and
      // architecture, normalised).
      auto config_json = 
          ReadDocument(config->digest, store::kMaxImageConfigBytes);
      if (!config_json.ok())
        return Error(config_json.status().code(), e.config, config_json.status().message());
      auto cfg = store::ParseImageConfig(*config_json);
      if (!cfg.ok())
        return Error(absl::StatusCode::kInvalidArgument, e.config, cfg.status().message());
      store::Platform platform;
      platform.os = cfg->platform.os;
      platform.architecture = cfg->platform.architecture;
      platform = store::NormalizePlatform(platform);
      platform.variant.clear();  // containerd 1.6 normalises {OS, Architecture} only
      desc.platform = platform;
      if (e.repo_tags.empty()) {
        roots.push_back(desc);
        continue;
      }
      for (const std::string& tag : e.repo_tags) {
        auto normalized = NormalizeImageRef(tag);
        if (!normalized.ok()) {
          return Error(absl::StatusCode::kInvalidArgument, "manifest.json",
                       absl::StrCat("RepoTag: ", normalized.status().message()));
        }
        Descriptor named = desc;
        named.annotations[kAnnotationImageName] = *normalized;
        named.annotations[kAnnotationRefName] = OciReferenceName(*normalized);
        roots.push_back(std::move(named));
      }
    }
    return roots;
  }

  // --- names ---------------------------------------------------------------

  std::string BaseName() const {
    if (!options_.base_name.empty()) return options_.base_name;
    return absl::StrCat("import-",
                        absl::FormatTime("%Y-%m-%d", options_.now, absl::LocalTimeZone()));
  }

  // ctr's imageName with its ref translators (archive.AddRefPrefix without
  // --base-name, archive.FilterRefPrefix with it).
  std::string ImageName(const store::Labels& annotations) const {
    if (auto it = annotations.find(kAnnotationImageName);
        it != annotations.end() && !it->second.empty()) {
      if (options_.transfer_naming && Translate(it->second) != it->second) return "";
      return it->second;
    }
    auto it = annotations.find(kAnnotationRefName);
    if (it == annotations.end() || it->second.empty()) return "";
    return Translate(it->second);
  }

  // A ref.name as a record name: a bare tag joins the base name; a full
  // reference outside the base is dropped when the base filters.
  std::string Translate(const std::string& ref) const {
    std::string base = BaseName();
    if (ref.find_first_of("/:@") == std::string::npos) return absl::StrCat(base, ":", ref);
    if (options_.transfer_naming ? !options_.allow_foreign : !options_.base_name.empty()) {
      // Only references inside the base repository.
      if (!absl::StartsWith(ref, base)) return "";
      if (ref.size() > base.size() &&
          absl::string_view("/:@").find(ref[base.size()]) == absl::string_view::npos)
        return "";
    }
    return ref;
  }

  // A document's bytes: kept from pass 1, else read from the store.
  absl::StatusOr<std::string> ReadDocument(const std::string& digest, int64_t max_bytes) {
    if (auto it = kept_.find(digest);
        it != kept_.end() && static_cast<int64_t>(it->second.size()) <= max_bytes) {
      return it->second;
    }
    return store::ReadWholeBlob(*content_, ns_, digest, max_bytes);
  }

  // The resolver's documents, kept ones first.
  class KeptDocuments : public store::DocumentSource {
   public:
    explicit KeptDocuments(Importer* importer)
        : importer_(importer), store_(importer->content_, importer->ns_) {}
    absl::StatusOr<std::string> Fetch(const Descriptor& desc, store::DocumentKind kind,
                                      int64_t max_bytes) override {
      if (auto it = importer_->kept_.find(desc.digest);
          it != importer_->kept_.end() && static_cast<int64_t>(it->second.size()) <= max_bytes) {
        return it->second;
      }
      return store_.Fetch(desc, kind, max_bytes);
    }

   private:
    Importer* const importer_;
    store::ContentDocuments store_;
  };

  // --- pass 2: the walk ----------------------------------------------------

  // Whether blob `d` is in the archive or the store, with the size its
  // descriptor says. NotFound when it is in neither.
  absl::Status Have(const Descriptor& d, const std::string& image) {
    int64_t size;
    if (auto it = archive_digests_.find(d.digest); it != archive_digests_.end()) {
      size = it->second;
    } else if (auto it = store_sizes_.find(d.digest); it != store_sizes_.end()) {
      size = it->second;
    } else {
      if (absl::Status v = store::ValidateDigest(d.digest); !v.ok()) {
        return Error(absl::StatusCode::kInvalidArgument, image, v.message());
      }
      auto info = content_->Info(ns_, d.digest);
      if (absl::IsNotFound(info.status())) {
        return absl::NotFoundError(absl::StrCat("blob ", d.digest, " (", d.media_type,
                                                ") is neither in the archive nor in namespace ",
                                                ns_));
      }
      if (!info.ok()) return info.status();
      size = store_sizes_[d.digest] = info->size;
    }
    if (d.size >= 0 && d.size != size) {
      return Error(
          absl::StatusCode::kDataLoss, image,
          absl::StrCat("blob ", d.digest, " is ", size, " bytes but its descriptor says ", d.size));
    }
    return absl::OkStatus();
  }

  // Walks `d` and below; true when the subtree is complete, false when a
  // blob of it is missing and `required` is false. Parents get GC labels for
  // the children walked.
  absl::StatusOr<bool> Walk(const Descriptor& d, bool required, const std::string& image,
                            int depth = 0) {
    if (complete_.count(d.digest)) return true;
    absl::Status have = Have(d, image);
    if (absl::IsNotFound(have)) {
      if (!required) return false;
      return Error(absl::StatusCode::kFailedPrecondition, image,
                   absl::StrCat("needs ", have.message()));
    }
    if (!have.ok()) return have;
    std::vector<ChildPlan> plan;
    if (store::IsIndexType(d.media_type)) {
      if (depth >= store::kMaxIndexNesting) return TooDeep(image);
      auto bytes = 
          ReadDocument(d.digest, store::kMaxImageDocumentBytes);
      if (!bytes.ok()) return Error(bytes.status().code(), image, bytes.status().message());
      auto children = store::ParseIndex(*bytes);
      if (!children.ok())
        return Error(absl::StatusCode::kInvalidArgument, image, children.status().message());
      plan = PlanChildren(*children, required, matcher_, options_.all_platforms);
      indexes_[d.digest] = *std::move(children);
    } else if (store::IsManifestType(d.media_type)) {
      auto bytes = 
          ReadDocument(d.digest, store::kMaxImageDocumentBytes);
      if (!bytes.ok()) return Error(bytes.status().code(), image, bytes.status().message());
      auto manifest = store::ParseManifest(*bytes);
      if (!manifest.ok())
        return Error(absl::StatusCode::kInvalidArgument, image, manifest.status().message());
      plan.push_back({manifest->config, required});
      for (const Descriptor& layer : manifest->layers) plan.push_back({layer, required});
      manifests_[d.digest] = *std::move(manifest);
    }
    std::vector<Descriptor> walked;
    bool complete = true;
    for (const ChildPlan& child : plan) {
      auto ok = Walk(child.desc, child.required, image, depth + 1);
      if (!ok.ok()) return ok.status();
      if (*ok) {
        walked.push_back(child.desc);
      } else if (store::IsManifestType(d.media_type)) {
        complete = false;  // a manifest of another platform, partly missing
      }
    }
    if (!complete) return false;
    if (!walked.empty()) {
      store::ContentInfo info;
      info.digest = d.digest;
      info.labels = store::ChildGcLabels(walked);
      std::vector<std::string> paths;
      for (const auto& [key, value] : info.labels) paths.push_back(absl::StrCat("labels.", key));
      labels_.push_back(LabelUpdate{std::move(info), std::move(paths), image});
    }
    complete_.insert(d.digest);
    return true;
  }

  // The image ID `target` resolves to ("" when it does not).
  std::string ImageId(const Descriptor& target) {
    KeptDocuments documents(this);
    store::ResolvedImage walked;
    // A walk that read the manifest can still fail (a platform-less entry
    // whose config is of another platform): only a whole one names an ID.
    if (!store::ResolveImage(documents, target, matcher_, store::FormatPlatform(options_.platform),
                             store::ConfigRead::kWhenNeeded, &walked)
             .ok()) {
      return "";
    }
    return walked.image_id();
  }

  // The GC labels the walk decided, on up to CommitPool::kWorkers threads
  // (each a durable write: together they share fsyncs); the first failure.
  absl::Status WriteLabels() {
    if (committer_ != nullptr) {
      // The server's own store: a write per kCommitChunk blobs.
      for (size_t at = 0; at < labels_.size(); at += kCommitChunk) {
        store::ImageCommit commit;
        for (size_t i = at; i < std::min(labels_.size(), at + kCommitChunk); ++i) {
          commit.blob_labels.emplace_back(labels_[i].info.digest, labels_[i].info.labels);
        }
        auto written = committer_->Commit(ns_, commit, options_.lease);
        if (!written.ok()) {
          return Error(written.status().code(), labels_[at].image, written.status().message());
        }
      }
      return absl::OkStatus();
    }
    std::vector<absl::Status> status(labels_.size());
    ParallelFor(labels_.size(), CommitPool::kWorkers, [&](size_t i) {
      status[i] = content_->Update(ns_, labels_[i].info, labels_[i].paths).status();
    });
    for (size_t i = 0; i < labels_.size(); ++i) {
      if (!status[i].ok()) return Error(status[i].code(), labels_[i].image, status[i].message());
    }
    return absl::OkStatus();
  }

  // PutImage of every name, on up to CommitPool::kWorkers threads so that
  // the records' WAL fsyncs are shared (the store's group commit); a name
  // given more than once is written in order by one thread, so the last
  // target wins as when written one by one. Whether each existed, in order.
  std::vector<absl::StatusOr<bool>> PutImages(
      const std::vector<std::pair<std::string, Descriptor>>& named) {
    if (committer_ != nullptr) return CommitImages(named);
    std::vector<absl::StatusOr<bool>> out(named.size(), false);
    std::map<std::string, std::vector<size_t>> by_name;
    for (size_t i = 0; i < named.size(); ++i) by_name[named[i].first].push_back(i);
    std::vector<const std::vector<size_t>*> tasks;
    for (const auto& [name, indices] : by_name) tasks.push_back(&indices);
    ParallelFor(tasks.size(), CommitPool::kWorkers, [&](size_t t) {
      for (size_t i : *tasks[t]) {
        store::Image image;
        image.name = named[i].first;
        image.target = named[i].second;
        image.target.platform.reset();  // image records keep no platform
        image.labels = options_.labels;
        out[i] = PutImage(image);
      }
    });
    return out;
  }

  // PutImages into the server's own store: a write per kCommitChunk names,
  // each record created or given its target (and the import's labels) as
  // PutImage does. A name given more than once is written once, with its
  // last target; its later occurrences count as existing.
  std::vector<absl::StatusOr<bool>> CommitImages(
      const std::vector<std::pair<std::string, Descriptor>>& named) {
    std::vector<absl::StatusOr<bool>> out(named.size(), false);
    std::map<absl::string_view, size_t> first, last;
    for (size_t i = 0; i < named.size(); ++i) {
      first.emplace(named[i].first, i);
      last[named[i].first] = i;
    }
    std::vector<size_t> order;  // the last occurrence of each name, in index order
    for (size_t i = 0; i < named.size(); ++i) {
      if (last[named[i].first] == i) order.push_back(i);
    }
    std::map<absl::string_view, bool> existed;
    for (size_t at = 0; at < order.size(); at += kCommitChunk) {
      const size_t end = std::min(order.size(), at + kCommitChunk);
      store::ImageCommit commit;
      commit.replace_labels = !options_.labels.empty();
      for (size_t k = at; k < end; ++k) {
        store::Image image;
        image.name = named[order[k]].first;
        image.target = named[order[k]].second;
        image.target.platform.reset();  // image records keep no platform
        image.labels = options_.labels;
        commit.images.push_back(std::move(image));
      }
      auto written = committer_->Commit(ns_, commit, options_.lease);
      if (!written.ok()) {
        absl::Status s = Error(written.status().code(), named[order[at]].first,
                               written.status().message());
        for (size_t i = 0; i < named.size(); ++i) {
          if (last[named[i].first] >= order[at]) out[i] = s;  // this chunk's and later ones
        }
        return out;
      }
      for (size_t k = at; k < end; ++k) existed[named[order[k]].first] = (*written)[k - at].existed;
    }
    for (size_t i = 0; i < named.size(); ++i) {
      out[i] = first[named[i].first] == i ? existed[named[i].first] : true;
    }
    return out;
  }

  // ctr: update the target (and given labels) of an existing image, else
  // create it. Whether it existed.
  absl::StatusOr<bool> PutImage(const store::Image& image) {
    std::vector<std::string> paths{"target"};
    if (!options_.labels.empty()) paths.push_back("labels");
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto updated = images_->Update(ns_, image, paths, options_.lease);
      if (updated.ok()) return true;
      if (!absl::IsNotFound(updated.status())) {
        return Error(updated.status().code(), image.name, updated.status().message());
      }
      auto created = images_->Create(ns_, image, options_.lease);
      if (created.ok()) return false;
      if (!absl::IsAlreadyExists(created.status())) {
        return Error(created.status().code(), image.name, created.status().message());
      }
    }
    return Error(absl::StatusCode::kAborted, image.name, "created and deleted concurrently");
  }

  ContentStore* content_;
  ImageStore* images_;
  std::string ns_;
  std::string source_;
  ImportOptions options_;
  store::PlatformMatcher matcher_;
  std::string token_;
  std::unique_ptr<char[]> buf_;  // kChunk bytes, not zeroed

  TarReader* reader_ = nullptr;  // during pass 1
  std::atomic<int64_t> ingests_{0};  // also counted by the commit pool's threads
  int64_t written_ = 0;
  int64_t present_ = 0;

  bool oci_layout_ = false;
  std::string oci_version_;
  std::optional<std::string> index_json_;
  std::optional<std::string> manifest_json_;
  std::map<std::string, ArchiveBlob> files_;  // path -> blob in the store
  std::map<std::string, std::string> small_;  // path -> bytes kept in memory
  int64_t buffered_ = 0;
  std::map<std::string, std::string> aliases_;      // symlink or hard link -> target path
  std::map<std::string, int64_t> archive_digests_;  // digests the archive brought

  std::map<std::string, int64_t> store_sizes_;
  std::set<std::string> complete_;
  std::map<std::string, std::vector<Descriptor>> indexes_;
  std::map<std::string, store::Manifest> manifests_;
  std::map<std::string, std::string> kept_;  // digest -> a small JSON blob's bytes
  int64_t kept_bytes_ = 0;
  struct LabelUpdate {
    store::ContentInfo info;
    std::vector<std::string> paths;
    std::string image;  // names it in an error
  };
  std::vector<LabelUpdate> labels_;  // the walk's, written after it

  // Set when the stores write batches (the server's own): GC labels and
  // records then go kCommitChunk to a write.
  static constexpr size_t kCommitChunk = 1000;
  store::ImageCommitter* const committer_ = dynamic_cast<store::ImageCommitter*>(images_);
  // Set when the content store commits batches (the server's own).
  store::BlobBatchCommitter* const batcher_ = dynamic_cast<store::BlobBatchCommitter*>(content_);
  // Last: stopped (its threads joined) before anything it uses goes.
  CommitPool pool_{[this](absl::Span<const CommitPool::Job> jobs) { return CommitJobs(jobs); },
                   batcher_ != nullptr ? store::kMaxBatchBlobs : 1, kSmallFile};
};

}  // namespace

absl::StatusOr<ImportResult> Import(ContentStore* content, ImageStore* images, absl::string_view ns,
                                    const ArchiveReadFn& read, absl::string_view source,
                                    const ImportOptions& options) {
  Importer importer(content, images, ns, source, options);
  return importer.Run(read);
}

absl::StatusOr<ImportResult> ImportUnderLease(store::ContentStore* content,
                                              store::ImageStore* images,
                                              store::LeaseStore* leases, absl::string_view ns,
                                              const ArchiveReadFn& read, absl::string_view source,
                                              absl::string_view lease_prefix,
                                              ImportOptions options) {
  if (!options.lease.empty() || leases == nullptr) {
    return Import(content, images, ns, read, source, options);
  }
  absl::StatusOr<std::string> lease =
      store::CreateTemporaryLease(*leases, ns, lease_prefix, absl::Now(), absl::Hours(24));
  if (!lease.ok()) return lease.status();
  options.lease = *lease;
  absl::StatusOr<ImportResult> result = Import(content, images, ns, read, source, options);
  absl::Status released = leases->DeleteTemporary(ns, *lease);
  if (result.ok() && !released.ok()) return released;
  return result;
}

absl::StatusOr<ImportResult> ImportFile(ContentStore* content, ImageStore* images,
                                        absl::string_view ns, const std::string& path,
                                        const ImportOptions& options, store::LeaseStore* leases,
                                        absl::string_view lease_prefix) {
  int fd = 0;
  if (path != "-") {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return store::ErrnoError(errno, absl::StrCat("open ", path));
  }
  ArchiveReadFn read = [fd, &path](char* buf, size_t len) -> absl::StatusOr<size_t> {
    for (;;) {
      ssize_t n = ::read(fd, buf, len);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return store::ErrnoError(errno, absl::StrCat("read ", path));
    }
  };
  auto result = ImportUnderLease(content, images, leases, ns, read,
                                 path == "-" ? "(stdin)" : path, lease_prefix, options);
  if (fd != 0) ::close(fd);
  return result;
}

}  // namespace imaged::cri
