// runtime.v1.ImageService (what kubelet and crictl call) over cri::ImageService,
// in the configured containerd namespace.
#ifndef IMAGED_PLUGIN_CRI_SERVICE_H_
#define IMAGED_PLUGIN_CRI_SERVICE_H_

#include <string>

#include "api/runtime/v1/api.grpc.pb.h"
#include "cri/image_service.h"
#include "cri/puller.h"
#include "plugin/event_exchange.h"
#include "plugin/gc_scheduler.h"

namespace imaged::plugin {

namespace cripb = ::runtime::v1;

class CriService final : public cripb::ImageService::Service {
 public:
  // Images per StreamImages response message.
  static constexpr size_t kStreamBatch = 100;

  // `puller` may be null: PullImage is then Unimplemented.
  // RemoveImage returns after the collection of what the image held, when
  // `gc` is set.
  CriService(cri::ImageService* images, EventExchange* events, std::string ns,
             cri::Puller* puller = nullptr, GcScheduler* gc = nullptr)
      : images_(images), events_(events), ns_(std::move(ns)), puller_(puller), gc_(gc) {}

  grpc::Status ListImages(grpc::ServerContext* ctx, const cripb::ListImagesRequest* req,
                          cripb::ListImagesResponse* resp) override;
  grpc::Status StreamImages(grpc::ServerContext* ctx, const cripb::StreamImagesRequest* req,
                            grpc::ServerWriter<cripb::StreamImagesResponse>* writer) override;
  grpc::Status ImageStatus(grpc::ServerContext* ctx, const cripb::ImageStatusRequest* req,
                           cripb::ImageStatusResponse* resp) override;
  grpc::Status PullImage(grpc::ServerContext* ctx, const cripb::PullImageRequest* req,
                         cripb::PullImageResponse* resp) override;
  grpc::Status RemoveImage(grpc::ServerContext* ctx, const cripb::RemoveImageRequest* req,
                           cripb::RemoveImageResponse* resp) override;
  grpc::Status ImageFsInfo(grpc::ServerContext* ctx, const cripb::ImageFsInfoRequest* req,
                           cripb::ImageFsInfoResponse* resp) override;

 private:
  cri::ImageService* const images_;
  EventExchange* const events_;
  const std::string ns_;
  cri::Puller* const puller_;
  GcScheduler* const gc_;
};

// The CRI Image message for one image (repo tags and digests from its names,
// the User as uid or username, as containerd reports them).
void ToCriImage(const store::CriImage& image, cripb::Image* out);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_CRI_SERVICE_H_
