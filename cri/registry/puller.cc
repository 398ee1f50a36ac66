#include "cri/registry/puller.h"

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cri/registry/hosts.h"
#include "cri/reference.h"
#include "store/digest.h"
#include "store/limits.h"
#include "store/oci.h"
#include "store/resolver.h"

namespace imaged::cri {
namespace {

// Writes to the content store in pieces of this size.
constexpr size_t kWriteChunk = 1 << 20;
// How often and how long a blob whose ingest another client holds is waited for.
constexpr int kLockedRetries = 50;
constexpr absl::Duration kLockedWait = absl::Milliseconds(200);

std::string Human(int64_t bytes) {
  if (bytes >= (int64_t{1} << 30)) return absl::StrFormat("%.1f GiB", bytes / double(1 << 30));
  if (bytes >= (1 << 20)) return absl::StrFormat("%.1f MiB", bytes / double(1 << 20));
  if (bytes >= (1 << 10)) return absl::StrFormat("%.1f KiB", bytes / double(1 << 10));
  return absl::StrCat(bytes, " B");
}

// containerd's ingest refs for fetched content (remotes.MakeRefKey), so that
// `ctr content active` and `imagectl pull` show what is downloading.
std::string IngestRef(absl::string_view kind, absl::string_view digest) {
  return absl::StrCat(kind, "-", digest);
}

}  // namespace

// Everything one pull carries through its helpers.
struct Puller::Job {
  const PullRequest* req = nullptr;
  std::string blob_lease;  // what fetched blobs are written under
  std::string what;  // the reference, for messages
  std::unique_ptr<Authorizer> auth;
  std::unique_ptr<RegistryClient> registry;
  std::atomic<int64_t> bytes_fetched{0};
  std::atomic<int64_t> bytes_resumed{0};
  std::atomic<int64_t> bytes_total{0};
  std::atomic<int> blobs_fetched{0};
  // The ingest ref of the manifest whose blobs are being fetched, once known.
  std::string manifest_ref;

  void Progress(absl::string_view event, absl::string_view name, const store::Descriptor& desc,
                int64_t offset, absl::string_view parent = "") const {
    if (!req->progress) return;
    PullProgress p;
    p.event = std::string(event);
    p.name = std::string(name);
    p.parent = std::string(parent);
    p.offset = offset;
    p.desc = desc;
    req->progress(p);
  }
};

Puller::Puller(store::ContentStore* content, store::ImageStore* images,
               store::ImageCommitter* committer, store::LeaseStore* leases, HttpTransport* http,
               store::Platform platform, PullerOptions options)
    : content_(content),
      images_(images),
      committer_(committer),
      leases_(leases),
      http_(http),
      matcher_(platform),
      platform_name_(store::FormatPlatform(platform)),
      options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<store::ContentWriter>> Puller::OpenWriter(
    Job& job, const std::string& ref, const store::Descriptor& desc) {
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> w;
  for (int i = 0;; ++i) {
    w = content_->Writer(job.req->ns, ref, desc.size, desc.digest, job.blob_lease);
    // Another writer (a concurrent pull of a document, ctr, containerd
    // through the proxy) holds the ref: once it commits, this is AlreadyExists.
    if (!absl::IsUnavailable(w.status()) || i >= kLockedRetries) break;
    if (IsCancelled(job.req->cancel)) break;
    options_.clock->SleepFor(kLockedWait);
  }
  return w;
}

// A pull's documents: each from the content store if there, else fetched
// from the registry and committed (a config as a blob, with progress).
class Puller::RegistryDocuments : public store::DocumentSource {
 public:
  RegistryDocuments(Puller* puller, Job& job) : puller_(puller), job_(job) {}

  absl::StatusOr<std::string> Fetch(const store::Descriptor& desc, store::DocumentKind kind,
                                    int64_t max_bytes) override {
    if (kind == store::DocumentKind::kConfig) {
      if (absl::Status s = puller_->FetchAll(job_, {{desc, "config"}}); !s.ok()) return s;
    }
    return puller_->Document(job_, desc, store::DocumentKindName(kind), max_bytes);
  }

 private:
  Puller* const puller_;
  Job& job_;
};

absl::StatusOr<std::string> Puller::Document(Job& job, const store::Descriptor& desc,
                                             absl::string_view ref_kind, int64_t max_bytes) {
  // Opening the ingest with the expected digest either finds the document
  // (and puts it under the pull's lease, so no collection takes it before the
  // names are written) or starts the write of a fetched copy.
  const std::string ref = IngestRef(ref_kind, desc.digest);
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> w = OpenWriter(job, ref, desc);
  if (absl::IsAlreadyExists(w.status())) {
    job.Progress("already exists", ref, desc, desc.size);
    return store::ReadWholeBlob(*content_, job.req->ns, desc.digest, max_bytes);
  }
  if (!w.ok()) return w.status();
  job.Progress("downloading", ref, desc, 0);
  absl::StatusOr<std::string> bytes = job.registry->FetchManifest(desc);
  if (!bytes.ok()) {
    w->reset();
    content_->Abort(job.req->ns, ref).IgnoreError();
    return bytes.status();
  }
  absl::Status c =
      store::CommitWhole(*content_, job.req->ns, ref, *std::move(w), *bytes, desc.digest);
  if (!c.ok() && !absl::IsAlreadyExists(c)) return c;
  job.Progress("complete", ref, desc, desc.size);
  return bytes;
}

absl::Status Puller::EnsureBlob(Job& job, const store::Descriptor& desc,
                                absl::string_view ref_kind) {
  const std::string key = absl::StrCat(job.req->ns, "\n", desc.digest);
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = flights_.find(key);
    if (it == flights_.end()) {
      flight = std::make_shared<Flight>();
      flights_.emplace(key, flight);
      leader = true;
    } else {
      flight = it->second;
    }
  }
  if (!leader) {
    while (!flight->done.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
      if (IsCancelled(job.req->cancel)) {
        return absl::CancelledError(absl::StrCat(job.what, ": cancelled"));
      }
    }
    // Done: the blob is there, and opening it again puts it under this
    // pull's lease too. Failed: the failure may be the other pull's own (its
    // credentials, its cancellation), so this pull tries on its own account.
    return FetchBlob(job, desc, ref_kind);
  }
  absl::Status s = FetchBlob(job, desc, ref_kind);
  {
    absl::MutexLock lock(&mu_);
    flight->status = s;
    flights_.erase(key);
  }
  flight->done.Notify();
  return s;
}

absl::Status Puller::FetchBlob(Job& job, const store::Descriptor& desc,
                               absl::string_view ref_kind) {
  const std::string ref = IngestRef(ref_kind, desc.digest);
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> w = OpenWriter(job, ref, desc);
  if (absl::IsAlreadyExists(w.status())) {
    job.Progress("already exists", ref, desc, desc.size, job.manifest_ref);
    return absl::OkStatus();
  }
  if (!w.ok()) return w.status();
  absl::StatusOr<store::IngestStatus> st = (*w)->Status();
  if (!st.ok()) return st.status();
  int64_t offset = st->offset;
  if (desc.size > 0 && offset > desc.size) {
    if (absl::Status s = (*w)->Truncate(0); !s.ok()) return s;
    offset = 0;
  }
  job.bytes_resumed += offset;
  job.Progress("downloading", ref, desc, offset, job.manifest_ref);

  std::string pending;
  pending.reserve(kWriteChunk);
  auto sink = [&](const HttpResponse&, absl::string_view chunk) -> absl::Status {
    job.bytes_fetched += static_cast<int64_t>(chunk.size());
    pending.append(chunk.data(), chunk.size());
    if (pending.size() < kWriteChunk) return absl::OkStatus();
    absl::Status s = (*w)->Write(pending);
    offset += static_cast<int64_t>(pending.size());
    pending.clear();
    job.Progress("downloading", ref, desc, offset, job.manifest_ref);
    return s;
  };
  absl::Status fetched = job.registry->FetchBlob(desc, offset, sink);
  // What arrived before a failure is kept: the next pull resumes after it.
  if (!pending.empty()) {
    if (absl::Status s = (*w)->Write(pending); !s.ok() && fetched.ok()) fetched = s;
  }
  if (!fetched.ok()) {
    if (absl::IsDataLoss(fetched)) {
      (*w)->Truncate(0).IgnoreError();
    }
    return fetched;
  }
  absl::Status c = (*w)->Commit(desc.size, desc.digest, {});
  if (absl::IsAlreadyExists(c)) {
    job.Progress("already exists", ref, desc, desc.size, job.manifest_ref);
    return absl::OkStatus();
  }
  if (absl::IsFailedPrecondition(c)) {
    // The bytes do not match the digest the manifest gave: start the next
    // attempt from scratch, and say what happened.
    w->reset();
    content_->Abort(job.req->ns, ref).IgnoreError();
    return absl::DataLossError(absl::StrCat("blob ", desc.digest, " of ", job.registry->Name(),
                                            " failed verification: ", c.message()));
  }
  if (!c.ok()) return c;
  job.blobs_fetched++;
  job.Progress("complete", ref, desc, desc.size, job.manifest_ref);
  return absl::OkStatus();
}

absl::Status Puller::FetchAll(Job& job,
                              const std::vector<std::pair<store::Descriptor, std::string>>& blobs) {
  // Every blob goes through EnsureBlob: one already present is only put
  // under the pull's lease. Missing ones are what progress counts.
  std::vector<size_t> missing;
  for (size_t i = 0; i < blobs.size(); ++i) {
    if (!content_->Info(job.req->ns, blobs[i].first.digest).ok()) {
      missing.push_back(i);
      job.bytes_total += std::max<int64_t>(0, blobs[i].first.size);
    }
  }

  std::atomic<size_t> next{0};
  absl::Mutex mu;
  absl::Status first_error;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    while (!failed.load()) {
      size_t i = next.fetch_add(1);
      if (i >= blobs.size()) return;
      const auto& [desc, kind] = blobs[i];
      absl::Status s = EnsureBlob(job, desc, kind);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = s;
        failed = true;
      }
    }
  };
  int n = std::max(1, std::min<int>(options_.max_concurrent_downloads,
                                    static_cast<int>(std::max<size_t>(1, missing.size()))));
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);

  // Progress of a long pull goes to the log while the workers run.
  absl::Notification all_done;
  std::thread reporter;
  if (options_.log) {
    reporter = std::thread([&] {
      const absl::Time start = options_.clock->Now();
      while (!all_done.WaitForNotificationWithTimeout(options_.log_interval)) {
        double secs = absl::ToDoubleSeconds(options_.clock->Now() - start);
        int64_t done = job.bytes_fetched.load() + job.bytes_resumed.load();
        options_.log(absl::StrFormat("pulling %s: %s of %s, %d of %d blobs, %s/s", job.what,
                                     Human(done), Human(job.bytes_total.load()),
                                     job.blobs_fetched.load(), missing.size(),
                                     Human(static_cast<int64_t>(done / std::max(secs, 1e-3)))));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  all_done.Notify();
  if (reporter.joinable()) reporter.join();
  absl::MutexLock lock(&mu);
  return first_error;
}

std::vector<std::string> PullResult::Names() const {
  std::vector<std::string> names;
  for (const store::ImageCommitter::Written& w : written) names.push_back(w.image.name);
  if (names.empty()) names.push_back(image_id);
  return names;
}

absl::StatusOr<PullResult> Puller::Pull(const PullRequest& req) {
  const absl::Time start = options_.clock->Now();
  absl::StatusOr<PullResult> result = PullUnderLease(req);
  if (!options_.log) return result;
  if (!result.ok()) {
    options_.log(std::string(result.status().message()));
  } else if (result->blobs_fetched > 0) {
    options_.log(absl::StrFormat(
        "pulled %s (%s): %d blobs, %d bytes downloaded, %d bytes resumed in %s", result->reference,
        result->image_id, result->blobs_fetched, result->bytes_fetched, result->bytes_resumed,
        absl::FormatDuration(absl::Trunc(options_.clock->Now() - start, absl::Milliseconds(1)))));
  }
  return result;
}

absl::StatusOr<PullResult> Puller::PullUnderLease(const PullRequest& req) {
  if (absl::Status s = store::ValidateImageRef(req.image); !s.ok()) return s;
  if (!req.lease.empty() || leases_ == nullptr) return PullLeased(req, req.lease);
  absl::StatusOr<std::string> lease = store::CreateTemporaryLease(
      *leases_, req.ns, "imaged-pull", options_.clock->Now(), options_.lease_expiry);
  if (!lease.ok()) return lease.status();
  absl::StatusOr<PullResult> result = PullLeased(req, *lease);
  // The names (written outside the lease) now hold what the pull fetched;
  // after a failure, what it fetched is garbage unless something else holds it.
  if (absl::Status s = leases_->DeleteTemporary(req.ns, *lease); !s.ok() && result.ok()) {
    return s;
  }
  return result;
}

absl::StatusOr<PullResult> Puller::PullLeased(const PullRequest& req,
                                              absl::string_view blob_lease) {
  absl::StatusOr<Reference> ref = ParseNormalizedNamed(req.image);
  if (!ref.ok()) return ref.status();
  if (ref->domain.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ", store::Quote(req.image), ": the reference names no registry"));
  }
  if (ref->tag.empty() && ref->digest.empty()) ref->tag = "latest";
  // A reference with both keeps the digest (what is pulled) and the tag
  // (the name written), as containerd does.
  Job job;
  job.req = &req;
  job.blob_lease = std::string(blob_lease);
  job.what = ref->String();

  absl::StatusOr<std::vector<RegistryHost>> hosts =
      HostsFor(req.hosts_dir ? *req.hosts_dir : options_.hosts_dir, ref->domain);
  if (!hosts.ok()) return hosts.status();
  if (req.plain_http) {
    for (RegistryHost& host : *hosts) {
      if (host.host == ref->domain) host.scheme = "http";
    }
  }
  job.auth = std::make_unique<Authorizer>(http_, req.creds);
  job.registry = std::make_unique<RegistryClient>(http_, job.auth.get(), ref->domain, ref->path,
                                                  *std::move(hosts), options_.retry, req.cancel,
                                                  options_.clock);
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("pulling ", job.what, ": ", s.message()));
  };

  absl::StatusOr<store::Descriptor> top =
      job.registry->Resolve(ref->digest.empty() ? ref->tag : ref->digest);
  if (!top.ok()) return fail(top.status());

  // Down to the manifest for our platform, fetching each document; the
  // config only when an entry without a platform makes it the judge.
  RegistryDocuments documents(this, job);
  store::ResolvedImage walked;
  std::optional<store::PlatformMatcher> own_matcher;
  if (req.platform) own_matcher.emplace(*req.platform);
  if (absl::Status s = store::ResolveImage(
          documents, *top, own_matcher ? *own_matcher : matcher_,
          req.platform ? store::FormatPlatform(*req.platform) : platform_name_,
          store::ConfigRead::kWhenNeeded, &walked);
      !s.ok()) {
    return fail(s);
  }
  const store::Manifest& manifest = *walked.manifest;
  job.manifest_ref = IngestRef("manifest", walked.path.back().digest);
  // containerd's gc.ref labels: each index keeps the entry chosen, the
  // manifest its config and layers.
  std::vector<std::pair<std::string, store::Labels>> blob_labels;
  for (size_t i = 0; i + 1 < walked.path.size(); ++i) {
    blob_labels.push_back({walked.path[i].digest, store::ChildGcLabels({walked.path[i + 1]})});
  }
  std::vector<store::Descriptor> children{manifest.config};
  children.insert(children.end(), manifest.layers.begin(), manifest.layers.end());
  blob_labels.push_back({walked.path.back().digest, store::ChildGcLabels(children)});
  std::vector<std::pair<store::Descriptor, std::string>> blobs;
  if (!walked.config) blobs.push_back({manifest.config, "config"});
  for (const store::Descriptor& layer : manifest.layers) blobs.push_back({layer, "layer"});
  if (absl::Status s = FetchAll(job, blobs); !s.ok()) return fail(s);

  PullResult result;
  result.image_id = manifest.config.digest;
  result.reference = job.what;
  result.target = *top;
  result.target.annotations.clear();
  result.target.platform.reset();
  result.bytes_fetched = job.bytes_fetched.load();
  result.bytes_resumed = job.bytes_resumed.load();
  result.blobs_fetched = job.blobs_fetched.load();

  // The records: a Transfer's names and labels as given, replacing whole
  // records as containerd's Update does; or CRI's three managed names.
  store::ImageCommit commit;
  std::vector<std::string> names;
  store::Labels labels;
  if (!req.names.empty()) {
    names = req.names;
    labels = req.labels;
    commit.replace_labels = true;
  } else {
    Reference named = *ref;
    named.digest.clear();
    if (!ref->tag.empty()) names.push_back(named.String());  // repo:tag
    named.tag.clear();
    names.push_back(absl::StrCat(named.Name(), "@", top->digest));
    names.push_back(result.image_id);
    labels[store::kLabelManaged] = kManagedValue;

    // Present and unchanged: every name already there, on this target, managed.
    bool unchanged = true;
    for (const std::string& name : names) {
      absl::StatusOr<store::Image> have = images_->Get(req.ns, name);
      if (!have.ok() || have->target.digest != top->digest ||
          have->labels.find(store::kLabelManaged) == have->labels.end() ||
          have->labels.at(store::kLabelManaged) != kManagedValue) {
        unchanged = false;
        break;
      }
    }
    if (unchanged) return result;
  }

  for (const std::string& name : names) {
    store::Image image;
    image.name = name;
    image.target = result.target;
    image.labels = labels;
    commit.images.push_back(std::move(image));
  }
  commit.blob_labels = std::move(blob_labels);
  absl::StatusOr<std::vector<store::ImageCommitter::Written>> written =
      committer_->Commit(req.ns, commit, req.lease);
  if (!written.ok()) return fail(written.status());
  result.written = *std::move(written);
  return result;
}

}  // namespace imaged::cri
