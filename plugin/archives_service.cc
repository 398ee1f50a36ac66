#include "plugin/archives_service.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cri/archive/archive.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"
#include "store/limits.h"

namespace imaged::plugin {
namespace {

namespace pb = ::imaged::v1;

constexpr size_t kMaxPlatform = 256;  // "os/arch/variant"
constexpr size_t kMaxSource = 256;    // a path, as the client names the archive

absl::Status TooLarge(size_t size) {
  return absl::InvalidArgumentError(absl::StrCat("import: a message of ", size,
                                                 " data bytes; at most ",
                                                 ArchivesService::kMaxChunk));
}

// Cancels a call that has received nothing for `quiet`: a client that stops
// sending without closing holds a server thread only that long.
class QuietWatch {
 public:
  QuietWatch(grpc::ServerContext* ctx, absl::Duration quiet)
      : ctx_(ctx), quiet_(quiet), last_(absl::Now()), thread_([this] { Run(); }) {}
  ~QuietWatch() {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
  }
  void Progress() {
    absl::MutexLock lock(&mu_);
    last_ = absl::Now();
  }
  bool fired() {
    absl::MutexLock lock(&mu_);
    return fired_;
  }

 private:
  void Run() {
    absl::MutexLock lock(&mu_);
    while (!done_) {
      const absl::Time deadline = last_ + quiet_;
      if (absl::Now() >= deadline) {
        fired_ = true;
        ctx_->TryCancel();
        return;
      }
      mu_.AwaitWithDeadline(absl::Condition(&done_), deadline);
    }
  }

  grpc::ServerContext* const ctx_;
  const absl::Duration quiet_;
  absl::Mutex mu_;
  absl::Time last_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started when everything it reads is set
};

}  // namespace

grpc::Status ArchivesService::Import(grpc::ServerContext* ctx,
                                     grpc::ServerReader<pb::ImportRequest>* reader,
                                     pb::ImportResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  CallSlots::Slot slot = slots_->TryAcquire();
  if (!slot) {
    return ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "too many transfers and imports under way (", slots_->max(), "); try again")));
  }

  QuietWatch watch(ctx, kQuiet);
  pb::ImportRequest req;
  if (!reader->Read(&req)) {
    return ToGrpcStatus(absl::InvalidArgumentError("import: no request"));
  }
  watch.Progress();
  cri::ImportOptions options;
  options.base_name = req.options().base_name();
  options.digest_refs = req.options().digests();
  options.all_platforms = req.options().all_platforms();
  options.platform = platform_;
  if (!req.options().base_name().empty()) {
    if (absl::Status s = store::ValidateImageName(options.base_name); !s.ok()) {
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("import: base name: ", s.message())));
    }
  }
  std::string source = "(stream)";
  if (!req.options().source().empty()) {
    if (req.options().source().size() > kMaxSource) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("import: source ", store::Quote(req.options().source()))));
    }
    source = req.options().source();
  }
  if (!req.options().platform().empty()) {
    if (req.options().platform().size() > kMaxPlatform) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("import: platform ", store::Quote(req.options().platform()))));
    }
    absl::StatusOr<store::Platform> platform = store::ParsePlatform(req.options().platform());
    if (!platform.ok()) return ToGrpcStatus(platform.status());
    options.platform = *std::move(platform);
  }

  // The archive's bytes, pulled by the reader: the first message's, then
  // each following one's.
  std::string pending = std::move(*req.mutable_data());
  size_t pending_at = 0;
  bool eof = false;
  cri::ArchiveReadFn read = [&](char* buf, size_t len) -> absl::StatusOr<size_t> {
    while (pending_at == pending.size() && !eof) {
      pb::ImportRequest next;
      if (!reader->Read(&next)) {
        if (watch.fired()) {
          return absl::DeadlineExceededError(absl::StrCat(
              "import: the stream sent nothing for ", absl::FormatDuration(kQuiet)));
        }
        if (ctx->IsCancelled()) return absl::CancelledError("import: the call was cancelled");
        eof = true;
        break;
      }
      watch.Progress();
      if (next.has_options()) {
        return absl::InvalidArgumentError("import: options are for the first message only");
      }
      if (next.data().size() > kMaxChunk) return TooLarge(next.data().size());
      pending = std::move(*next.mutable_data());
      pending_at = 0;
    }
    size_t n = std::min(len, pending.size() - pending_at);
    std::memcpy(buf, pending.data() + pending_at, n);
    pending_at += n;
    return n;
  };
  if (pending.size() > kMaxChunk) return ToGrpcStatus(TooLarge(pending.size()));

  options.lease = LeaseOf(*ctx);
  absl::StatusOr<cri::ImportResult> result = cri::ImportUnderLease(
      content_, images_, leases_, *ns, read, source, "imaged-archive-import", options);
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const cri::ImportedImage& image : result->images) {
    if (events_ != nullptr) {
      if (auto record = images_->Get(*ns, image.name); record.ok()) {
        events_->PublishImageWritten(*ns, *record, image.existed);
      }
    }
    pb::ImportedImage* out = resp->add_images();
    out->set_name(image.name);
    out->set_target_digest(image.target.digest);
    out->set_target_media_type(image.target.media_type);
    out->set_target_size(image.target.size);
    out->set_image_id(image.image_id);
    out->set_existed(image.existed);
  }
  resp->set_blobs_written(result->blobs_written);
  resp->set_blobs_present(result->blobs_present);
  return grpc::Status::OK;
}

}  // namespace imaged::plugin
