#include "cri/mirror/mirror.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

#include "absl/strings/str_cat.h"
#include "cri/reference.h"
#include "store/digest.h"
#include "store/limits.h"
#include "store/oci.h"
#include "store/resolver.h"

namespace imaged::cri {
namespace {


bool IsDerivedLabel(absl::string_view key) {
  for (const char* label : store::kDerivedLabels) {
    if (key == label) return true;
  }
  return false;
}

std::string Ref(absl::string_view digest) { return absl::StrCat("mirror-", digest); }

}  // namespace

// Runs fn(0..n-1) on up to kCopyThreads threads; the first error wins.
absl::Status ForEachParallel(size_t n, const std::function<absl::Status(size_t)>& fn) {
  constexpr size_t kCopyThreads = 8;
  std::atomic<size_t> next{0};
  absl::Mutex mu;
  absl::Status first;
  auto work = [&] {
    for (size_t k = next++; k < n; k = next++) {
      absl::Status s = fn(k);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        if (first.ok()) first = s;
        return;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min(n, kCopyThreads); ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  absl::MutexLock lock(&mu);
  return first;
}

bool SameRecord(const store::Image& upstream, const store::Image& local) {
  if (upstream.target.digest != local.target.digest ||
      upstream.target.media_type != local.target.media_type ||
      upstream.target.size != local.target.size) {
    return false;
  }
  for (const auto& [k, v] : upstream.labels) {
    auto it = local.labels.find(k);
    if (it == local.labels.end() || it->second != v) return false;
  }
  for (const auto& [k, v] : local.labels) {
    if (!upstream.labels.count(k) && !IsDerivedLabel(k)) return false;
  }
  return true;
}

Mirror::Mirror(MirrorSource source, MirrorTarget target, const store::Platform& platform,
               size_t batch, const store::Clock* clock)
    : source_(source),
      target_(target),
      matcher_(platform),
      platform_name_(store::FormatPlatform(platform)),
      batch_(batch == 0 ? 1 : batch),
      clock_(clock),
      batcher_(dynamic_cast<store::BlobBatchCommitter*>(target.content)) {}

absl::StatusOr<std::string> Mirror::OpenLease(absl::string_view ns) {
  if (target_.leases == nullptr) return std::string();
  return store::CreateTemporaryLease(*target_.leases, ns, "imaged-mirror", clock_->Now(),
                                     absl::Hours(1));
}

void Mirror::CloseLease(absl::string_view ns, const std::string& lease) {
  if (target_.leases != nullptr && !lease.empty()) {
    target_.leases->DeleteTemporary(ns, lease).IgnoreError();
  }
}

absl::Status Mirror::Share(absl::string_view ns, const store::Descriptor& desc,
                           absl::string_view lease) {
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> w =
      target_.content->Writer(ns, Ref(desc.digest), desc.size, desc.digest, lease);
  if (absl::IsAlreadyExists(w.status())) return absl::OkStatus();
  if (w.ok()) {
    // Gone meanwhile (collected): the record waits for the next sync.
    w->reset();
    target_.content->Abort(ns, Ref(desc.digest)).IgnoreError();
    return absl::OkStatus();
  }
  return absl::IsUnavailable(w.status()) ? absl::OkStatus() : w.status();
}

absl::Status Mirror::Put(absl::string_view ns, const store::Descriptor& desc,
                         const std::string& bytes, const store::Labels& labels,
                         absl::string_view lease) {
  // Already here (or held by another namespace, e.g. the content proxy's:
  // then it is shared, not copied). Either way it joins the lease.
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> w;
  for (int i = 0;; ++i) {
    w = target_.content->Writer(ns, Ref(desc.digest), desc.size, desc.digest, lease);
    // An event and a CRI call may mirror the same image at once: the other
    // copy is done in moments, and then this is AlreadyExists.
    if (!absl::IsUnavailable(w.status()) || i >= 100) break;
    clock_->SleepFor(absl::Milliseconds(50));
  }
  if (absl::IsAlreadyExists(w.status())) return Label(ns, desc.digest, labels);
  if (!w.ok()) return w.status();
  if (absl::Status s = (*w)->Write(bytes); !s.ok()) {
    w->reset();
    target_.content->Abort(ns, Ref(desc.digest)).IgnoreError();
    return s;
  }
  absl::Status c = (*w)->Commit(static_cast<int64_t>(bytes.size()), desc.digest, labels);
  if (absl::IsAlreadyExists(c)) return Label(ns, desc.digest, labels);
  return c;
}

// A record's documents as the walk reads them: imaged's copy when there is
// one, else containerd's, checked against its digest and kept in memory to
// be written once the walk knows every document's gc.ref labels. A document
// containerd lacks ends the walk (the record then waits for it); any other
// failure to read is remembered, since the walk's own errors (a document
// that does not parse, no manifest for the platform) only leave the record
// unresolved.
class Mirror::PendingDocuments : public store::DocumentSource {
 public:
  PendingDocuments(Mirror* mirror, absl::string_view ns) : mirror_(mirror), ns_(ns) {}

  absl::StatusOr<std::string> Fetch(const store::Descriptor& desc, store::DocumentKind kind,
                                    int64_t max_bytes) override {
    absl::StatusOr<std::string> here =
        store::ReadWholeBlob(*mirror_->target_.content, ns_, desc.digest, max_bytes);
    if (here.ok()) {
      present.push_back(desc);
      return here;
    }
    absl::StatusOr<std::string> bytes =
        store::ReadWholeBlob(*mirror_->source_.content, ns_, desc.digest, max_bytes);
    absl::Status s = bytes.status();
    if (s.ok() && store::Sha256::Of(*bytes) != desc.digest) {
      s = absl::FailedPreconditionError(
          absl::StrCat("content ", desc.digest, ": containerd's bytes do not match the digest"));
    }
    // NotFound (containerd lacks it) and FailedPrecondition (too large, or
    // not the bytes its digest names) are the document's own verdicts.
    if (!s.ok()) {
      if (!absl::IsNotFound(s) && !absl::IsFailedPrecondition(s) && copy_error.ok()) {
        copy_error = s;
      }
      return s;
    }
    fetched.push_back({desc, *bytes});
    return bytes;
  }

  absl::Status copy_error;
  std::vector<store::Descriptor> present;
  std::vector<std::pair<store::Descriptor, std::string>> fetched;

 private:
  Mirror* const mirror_;
  const std::string ns_;
};

absl::Status Mirror::Label(absl::string_view ns, absl::string_view digest,
                           const store::Labels& labels) {
  // Unless the copy already has them (a write saved).
  absl::StatusOr<store::ContentInfo> have = target_.content->Info(ns, digest);
  bool labelled = have.ok();
  for (const auto& [k, v] : labels) {
    labelled = labelled && have->labels.count(k) && have->labels.at(k) == v;
  }
  if (labelled) return absl::OkStatus();
  store::ContentInfo info;
  info.digest = std::string(digest);
  info.labels = labels;
  std::vector<std::string> paths;
  for (const auto& [k, v] : labels) paths.push_back(absl::StrCat("labels.", k));
  return target_.content->Update(ns, info, paths).status();
}

absl::Status Mirror::CopyDocuments(absl::string_view ns, const store::Descriptor& target,
                                   absl::string_view lease, FetchedDocuments* fetched) {
  PendingDocuments documents(this, ns);
  store::ResolvedImage walked;
  // Where the walk stops short, the image store says why when it resolves
  // the record; only a failure to copy is this call's.
  store::ResolveImage(documents, target, matcher_, platform_name_,
                      store::ConfigRead::kWhenNeeded, &walked)
      .IgnoreError();
  if (!documents.copy_error.ok()) return documents.copy_error;
  // As in the walk: a config containerd lacks, or one too large or not
  // what its digest names, leaves the record unresolved, not the sync failed.
  if (walked.manifest && !walked.config) {
    documents.Fetch(walked.manifest->config, store::DocumentKind::kConfig,
                    store::kMaxImageConfigBytes)
        .IgnoreError();
    if (!documents.copy_error.ok()) return documents.copy_error;
  }
  // gc.ref labels: each index keeps the entry it chose, the manifest its
  // config (layers are not mirrored).
  std::map<std::string, store::Labels> labels;
  for (size_t i = 0; i + 1 < walked.path.size(); ++i) {
    labels[walked.path[i].digest] = store::ChildGcLabels({walked.path[i + 1]});
  }
  if (walked.manifest) {
    labels[walked.path.back().digest] = store::ChildGcLabels({walked.manifest->config});
  }
  // What was here joins the lease (and gets its labels if it lacks them).
  for (const store::Descriptor& desc : documents.present) {
    if (absl::Status s = Share(ns, desc, lease); !s.ok()) return s;
    if (auto it = labels.find(desc.digest); it != labels.end()) {
      if (absl::Status s = Label(ns, desc.digest, it->second); !s.ok()) return s;
    }
  }
  if (fetched != nullptr) {
    std::vector<Fetched> full;  // taken when enough has gathered, committed here
    {
      absl::MutexLock lock(&fetched->mu);
      for (auto& [desc, bytes] : documents.fetched) {
        if (auto it = labels.find(desc.digest); it != labels.end()) {
          fetched->labels[desc.digest].insert(it->second.begin(), it->second.end());
        }
        fetched->pending_bytes += bytes.size();
        fetched->pending.push_back(Fetched{desc, std::move(bytes)});
      }
      if (fetched->pending_bytes > FetchedDocuments::kMaxPendingBytes) {
        full.swap(fetched->pending);
        fetched->pending_bytes = 0;
      }
    }
    return full.empty() ? absl::OkStatus() : CommitFetched(ns, full, lease);
  }
  // What was fetched is written with its labels, the documents side by
  // side: their fsyncs overlap, and their directory fsync and RocksDB write
  // are shared (the store's group commit).
  return ForEachParallel(documents.fetched.size(), [&](size_t k) {
    const auto& [desc, bytes] = documents.fetched[k];
    auto it = labels.find(desc.digest);
    return Put(ns, desc, bytes, it == labels.end() ? store::Labels{} : it->second, lease);
  });
}

absl::Status Mirror::CommitFetched(absl::string_view ns, const std::vector<Fetched>& fetched,
                                   absl::string_view lease) {
  // Batches within the store's bounds, a few committed side by side.
  std::vector<std::pair<size_t, size_t>> batches;  // [begin, end) of `fetched`
  for (size_t begin = 0, bytes = 0, i = 0; i <= fetched.size(); ++i) {
    if (i == fetched.size() || i - begin == store::kMaxBatchBlobs ||
        (i > begin && bytes + fetched[i].bytes.size() > store::kMaxBatchBytes)) {
      if (i > begin) batches.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    if (i < fetched.size()) bytes += fetched[i].bytes.size();
  }
  return ForEachParallel(batches.size(), [&](size_t k) {
    std::vector<store::BlobBatchCommitter::Blob> blobs;
    for (size_t i = batches[k].first; i < batches[k].second; ++i) {
      blobs.push_back({fetched[i].desc.digest, fetched[i].bytes});
    }
    return batcher_->CommitBlobs(ns, blobs, lease).status;
  });
}

absl::Status Mirror::Write(absl::string_view ns, std::vector<store::Image> images,
                           std::vector<std::string> deletes,
                           std::vector<std::pair<std::string, store::Labels>> blob_labels) {
  store::ImageCommit commit;
  commit.images = std::move(images);
  commit.deletes = std::move(deletes);
  commit.blob_labels = std::move(blob_labels);
  commit.replace_labels = true;
  return target_.committer->Commit(ns, commit, "").status();
}

absl::Status Mirror::Apply(absl::string_view ns, std::vector<store::Image> changed,
                           std::vector<std::string> gone, MirrorSyncReport* report) {
  // Names of one target side by side, so each batch copies a target once.
  std::stable_sort(changed.begin(), changed.end(), [](const store::Image& a, const store::Image& b) {
    return a.target.digest < b.target.digest;
  });

  for (size_t i = 0; i < changed.size() || (i == 0 && !gone.empty()); i += batch_) {
    absl::StatusOr<std::string> lease = OpenLease(ns);
    if (!lease.ok()) return lease.status();
    std::vector<store::Image> part;
    // Each distinct target once (a pulled image has three names on one
    // target), copied by a few threads: the copies are small and most of
    // their time is fsync, which overlaps.
    std::vector<const store::Descriptor*> targets;
    absl::flat_hash_set<std::string> seen;
    for (size_t j = i; j < changed.size() && j < i + batch_; ++j) {
      store::Image image = changed[j];
      image.target.platform.reset();
      part.push_back(std::move(image));
    }
    for (const store::Image& image : part) {
      if (seen.insert(image.target.digest).second) targets.push_back(&image.target);
    }
    // With a batching store the documents are read here and committed in
    // batches, their labels with the records.
    FetchedDocuments fetched;
    absl::Status copied = ForEachParallel(targets.size(), [&](size_t k) {
      absl::Status s =
          CopyDocuments(ns, *targets[k], *lease, batcher_ != nullptr ? &fetched : nullptr);
      if (!s.ok()) {
        return absl::Status(s.code(), absl::StrCat("mirroring ", targets[k]->digest, ": ", s.message()));
      }
      return s;
    });
    std::vector<Fetched> rest;
    std::map<std::string, store::Labels> labels;
    {
      absl::MutexLock lock(&fetched.mu);
      rest.swap(fetched.pending);
      labels.swap(fetched.labels);
    }
    if (copied.ok() && !rest.empty()) copied = CommitFetched(ns, rest, *lease);
    if (!copied.ok()) {
      CloseLease(ns, *lease);
      return copied;
    }
    std::vector<std::string> deletes;
    if (i == 0) deletes = gone;  // the first batch takes the deletes
    report->written += static_cast<int64_t>(part.size());
    report->deleted += static_cast<int64_t>(deletes.size());
    absl::Status s = Write(ns, std::move(part), std::move(deletes),
                           std::vector<std::pair<std::string, store::Labels>>(labels.begin(),
                                                                              labels.end()));
    CloseLease(ns, *lease);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<bool>> Mirror::SyncNames(absl::string_view ns,
                                                    absl::Span<const std::string> names) {
  // Each name is read once, however often it repeats (an image's create,
  // then its label update).
  absl::flat_hash_map<absl::string_view, bool> has;
  std::vector<store::Image> changed;
  std::vector<std::string> gone;
  for (const std::string& name : names) {
    auto [it, first] = has.try_emplace(name, false);
    if (!first) continue;
    absl::StatusOr<store::Image> up = source_.images->Get(ns, name);
    if (!up.ok() && !absl::IsNotFound(up.status())) return up.status();
    it->second = up.ok();
    absl::StatusOr<store::Image> here = target_.images->Get(ns, name);
    if (!here.ok() && !absl::IsNotFound(here.status())) return here.status();
    if (!up.ok()) {
      if (here.ok()) gone.push_back(name);
      continue;
    }
    if (here.ok() && SameRecord(*up, *here)) continue;
    changed.push_back(*std::move(up));
  }
  if (!changed.empty() || !gone.empty()) {
    MirrorSyncReport report;
    if (absl::Status s = Apply(ns, std::move(changed), std::move(gone), &report); !s.ok()) {
      return s;
    }
  }
  std::vector<bool> out;
  out.reserve(names.size());
  for (const std::string& name : names) out.push_back(has.at(name));
  return out;
}

absl::StatusOr<MirrorSyncReport> Mirror::Sync(absl::string_view ns) {
  const absl::Time start = clock_->Now();
  MirrorSyncReport report;
  absl::StatusOr<std::vector<store::Image>> upstream = source_.images->List(ns, {});
  if (!upstream.ok()) return upstream.status();
  absl::StatusOr<std::vector<store::Image>> local = target_.images->List(ns, {});
  if (!local.ok()) return local.status();
  std::map<std::string, const store::Image*> have;
  for (const store::Image& image : *local) have[image.name] = &image;
  report.upstream = static_cast<int64_t>(upstream->size());

  std::vector<store::Image> changed;
  for (const store::Image& image : *upstream) {
    auto it = have.find(image.name);
    if (it != have.end()) {
      bool same = SameRecord(image, *it->second);
      have.erase(it);
      if (same) {
        ++report.unchanged;
        continue;
      }
    }
    changed.push_back(image);
  }
  std::vector<std::string> gone;
  for (const auto& [name, image] : have) gone.push_back(name);
  if (absl::Status s = Apply(ns, std::move(changed), std::move(gone), &report); !s.ok()) return s;
  report.took = clock_->Now() - start;
  absl::MutexLock lock(&mu_);
  state_.last_sync = clock_->Now();
  state_.last_report = report;
  return report;
}

absl::Status Mirror::RemoveUpstream(absl::string_view ns, std::vector<std::string> names) {
  std::stable_partition(names.begin(), names.end(),
                        [](const std::string& n) { return !IsImageId(n); });
  for (size_t i = 0; i < names.size(); ++i) {
    const bool last = i + 1 == names.size();
    absl::Status s = last && source_.delete_sync ? source_.delete_sync(ns, names[i])
                                                 : source_.images->Delete(ns, names[i]);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Mirror::SyncReference(absl::string_view ns, absl::string_view ref) {
  std::vector<std::string> names = {std::string(ref)};
  absl::StatusOr<std::string> normalized = NormalizeImageRef(ref);
  if (normalized.ok() && *normalized != ref) names.push_back(*normalized);
  bool found = false;
  for (const std::string& name : names) {
    absl::StatusOr<bool> had = SyncName(ns, name);
    if (!had.ok()) return had.status();
    found = found || *had;
  }
  return found;
}

absl::StatusOr<bool> Mirror::SyncName(absl::string_view ns, absl::string_view name) {
  std::string one(name);
  absl::StatusOr<std::vector<bool>> has = SyncNames(ns, {&one, 1});
  if (!has.ok()) return has.status();
  return (*has)[0];
}

absl::Status Mirror::SyncImage(absl::string_view ns, absl::Span<const std::string> names) {
  std::vector<std::string> targets;
  for (const std::string& name : names) {
    absl::StatusOr<bool> had = SyncName(ns, name);
    if (!had.ok()) return had.status();
    if (!*had) continue;
    absl::StatusOr<store::Image> image = source_.images->Get(ns, name);
    if (image.ok()) targets.push_back(image->target.digest);
  }
  for (const std::string& digest : targets) {
    absl::StatusOr<std::vector<store::Image>> same =
        source_.images->List(ns, {absl::StrCat("target.digest==", digest)});
    if (!same.ok()) return same.status();
    for (const store::Image& image : *same) {
      if (absl::StatusOr<bool> s = SyncName(ns, image.name); !s.ok()) return s.status();
    }
  }
  return absl::OkStatus();
}

absl::Status Mirror::SyncPull(absl::string_view ns, absl::string_view reference,
                              absl::string_view image_id) {
  std::vector<std::string> names = {std::string(image_id)};
  if (absl::StatusOr<std::string> normalized = NormalizeImageRef(reference); normalized.ok()) {
    names.push_back(*normalized);
  }
  return SyncImage(ns, names);
}

void Mirror::SetConnected(bool connected, absl::string_view error) {
  absl::MutexLock lock(&mu_);
  state_.connected = connected;
  if (!error.empty()) state_.last_error = std::string(error);
}

void Mirror::SetAnswering(bool answering, absl::Time since, absl::string_view last_failure) {
  absl::MutexLock lock(&mu_);
  state_.answering = answering;
  state_.answering_since = since;
  state_.last_failure = std::string(last_failure);
}

void Mirror::EventApplied(absl::Duration lag) {
  absl::MutexLock lock(&mu_);
  ++state_.events_applied;
  state_.last_event_lag = lag;
  if (lags_.size() < kLagWindow) {
    lags_.push_back(lag);
  } else {
    lags_[next_lag_] = lag;
  }
  next_lag_ = (next_lag_ + 1) % kLagWindow;
}

MirrorState Mirror::State() {
  absl::MutexLock lock(&mu_);
  MirrorState out = state_;
  if (!lags_.empty()) {
    std::vector<absl::Duration> sorted = lags_;
    std::sort(sorted.begin(), sorted.end());
    out.lag_p50 = sorted[sorted.size() / 2];
    out.lag_p99 = sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)];
  }
  return out;
}

}  // namespace imaged::cri
