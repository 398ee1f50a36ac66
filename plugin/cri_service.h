// runtime.v1.ImageService (what kubelet and crictl call) over cri::ImageService,
// in the configured containerd namespace.
#ifndef IMAGED_PLUGIN_CRI_SERVICE_H_
#define IMAGED_PLUGIN_CRI_SERVICE_H_

#include <memory>
#include <optional>
#include <string>

#include "api/runtime/v1/api.grpc.pb.h"
#include "cri/mirror/containerd_disk.h"
#include "cri/image_service.h"
#include "cri/mirror/mirror_misses.h"
#include "cri/registry/puller.h"
#include "plugin/async_calls.h"
#include "plugin/event_exchange.h"
#include "plugin/gc_scheduler.h"
#include "plugin/list_images_cache.h"
#include "plugin/status_answer_cache.h"
#include "plugin/mirror_runner.h"

namespace imaged::plugin {

namespace cripb = ::runtime::v1;

// ListImages and ImageStatus are served raw on the async calls' thread
// (async_calls.h), without a hand-off between gRPC's threads: an unfiltered
// list is the cached serialized answer (list_images_cache.h), a filtered one
// is built per call, and ImageStatus is a few point reads. Raw, so that a
// request that does not parse is InvalidArgument. ServeAsync registers them.
class CriService final
    : public cripb::ImageService::WithRawMethod_ListImages<
          cripb::ImageService::WithRawMethod_ImageStatus<cripb::ImageService::Service>> {
 public:
  // Images per StreamImages response message.
  static constexpr size_t kStreamBatch = 100;

  // `puller` may be null: PullImage is then Unimplemented.
  // RemoveImage returns after the collection of what the image held, when
  // `gc` is set.
  CriService(cri::ImageService* images, EventExchange* events, std::string ns,
             cri::Puller* puller = nullptr, GcScheduler* gc = nullptr)
      : images_(images), events_(events), ns_(std::move(ns)), puller_(puller), gc_(gc) {
    StartListCache();
  }

  // Registers ListImages and ImageStatus with `calls`, before the server is
  // built.
  void ServeAsync(AsyncCalls* calls);
  // The raw ListImages call: `request` need not parse.
  void AnswerListImages(const grpc::ByteBuffer& request, RawReply reply);
  // Starts building the unfiltered ListImages answer now, before anyone asks.
  void WarmUp();
  // The unfiltered answer's cache (hits, rebuilds, size), for metrics.
  ListImagesCache::Stats ListCacheStats() const { return list_cache_->stats(); }
  // The kept ImageStatus answers (hits, how many, their bytes), for metrics.
  StatusAnswerCache::Stats StatusCacheStats() { return status_answers_.stats(); }
  grpc::Status StreamImages(grpc::ServerContext* ctx, const cripb::StreamImagesRequest* req,
                            grpc::ServerWriter<cripb::StreamImagesResponse>* writer) override;
  // The raw ImageStatus call; a mirror-mode miss replies from another thread.
  void AnswerImageStatus(const grpc::ByteBuffer& request, RawReply reply);
  // ImageStatus from the index alone (no mirror lookup): fills `resp` and
  // sets `found` when the index has the image. The whole of the call but
  // gRPC's part; public for tools/bench/cri_bench.
  grpc::Status StatusFromIndex(const cripb::ImageStatusRequest& req,
                               cripb::ImageStatusResponse* resp, bool* found);
  grpc::Status PullImage(grpc::ServerContext* ctx, const cripb::PullImageRequest* req,
                         cripb::PullImageResponse* resp) override;
  grpc::Status RemoveImage(grpc::ServerContext* ctx, const cripb::RemoveImageRequest* req,
                           cripb::RemoveImageResponse* resp) override;
  grpc::Status ImageFsInfo(grpc::ServerContext* ctx, const cripb::ImageFsInfoRequest* req,
                           cripb::ImageFsInfoResponse* resp) override;

  struct MirrorOptions {
    // ImageStatus misses looked up in containerd (cri/mirror/mirror_misses.h).
    cri::MirrorMisses::Options misses;
    // A forwarded PullImage ends at the caller's deadline or after this.
    absl::Duration pull_timeout = absl::Minutes(30);
    // Without an upstream CRI, ImageFsInfo measures containerd's directories.
    cri::ContainerdDisk::Options disk;
  };
  // Mirror mode: answers come from the mirrored index; a name it misses is
  // looked up in containerd off gRPC's threads and within a budget, after
  // which the answer is "not present"; RemoveImage deletes through
  // containerd's Images API; PullImage goes to `upstream_cri` when set
  // (containerd's own CRI, which unpacks), else the puller (which then writes
  // into containerd), and answers once the mirror has the image. ImageFsInfo
  // describes containerd's image filesystem: its CRI's answer when there is
  // one (the last good answer while it does not answer), else a measurement
  // of its snapshotter and content directories. Not owned; set before
  // serving.
  void SetMirror(MirrorRunner* mirror, std::shared_ptr<grpc::Channel> upstream_cri,
                 const MirrorOptions& options);
  // Answers every ImageStatus still waiting on a lookup ("not present") and
  // stops the lookups (their calls to containerd are cancelled first).
  void StopMirror();
  // How mirror-mode misses were answered, for metrics.
  cri::MirrorMisses::Stats MissStats() const;

 private:
  void StartListCache();
  // The serialized ListImagesResponse of every image: `previous` patched
  // with the images changed since, or else one scan, with one reused Image
  // message either way.
  absl::StatusOr<ListImagesCache::Answer> BuildList(const ListImagesCache::Previous* previous);

  cri::ImageService* const images_;
  EventExchange* const events_;
  const std::string ns_;
  cri::Puller* const puller_;
  GcScheduler* const gc_;
  MirrorRunner* mirror_ = nullptr;
  std::unique_ptr<cripb::ImageService::Stub> upstream_cri_;
  MirrorOptions mirror_options_;
  std::unique_ptr<cri::MirrorMisses> misses_;
  StatusAnswerCache status_answers_;
  std::unique_ptr<cri::ContainerdDisk> disk_;  // mirror mode without an upstream CRI
  absl::Mutex fs_mu_;
  std::optional<cripb::ImageFsInfoResponse> last_fs_ ABSL_GUARDED_BY(fs_mu_);
  grpc::Status ForwardImageFsInfo(const cripb::ImageFsInfoRequest* req,
                                  cripb::ImageFsInfoResponse* resp);
  // A non-verbose ImageStatus answered from the ListImages answer built at
  // `generation` (ListImagesCache::FindEntry): the entry of the image the
  // reference resolves to (a full image ID needs no read, a name one point
  // read); or, for a reference that names nothing when no mirror is to be
  // asked, "not present". nullopt: the index answers (verbose, the answer
  // stale or without the image, an ID that may be a name, errors).
  std::optional<grpc::Slice> StatusFromListAnswer(const cripb::ImageStatusRequest& req,
                                                  uint64_t generation);
  // Fills `resp` for an image found in the index (with the verbose info).
  grpc::Status Answer(const store::CriImage& image, bool verbose, cripb::ImageStatusResponse* resp);

  grpc::Status ForwardPull(grpc::ServerContext* ctx, const cripb::PullImageRequest* req,
                           cripb::PullImageResponse* resp);
  grpc::Status RemoveFromContainerd(const cripb::RemoveImageRequest* req);
  std::unique_ptr<ListImagesCache> list_cache_;
};

// The CRI Image message for one image (repo tags and digests from its names,
// the User as uid or username, as containerd reports them).
void ToCriImage(const store::CriImage& image, cripb::Image* out);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_CRI_SERVICE_H_
