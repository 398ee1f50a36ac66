// containerd.services.images.v1.Images over a store::ImageStore. Writes
// publish /images/create, /images/update, /images/delete after they commit.
#ifndef IMAGED_PLUGIN_IMAGES_SERVICE_H_
#define IMAGED_PLUGIN_IMAGES_SERVICE_H_

#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "plugin/convert.h"
#include "plugin/event_exchange.h"
#include "plugin/gc_scheduler.h"
#include "store/image_store.h"

namespace imaged::plugin {

class ImagesService final : public imagespb::Images::Service {
 public:
  // `gc` (may be null) is told of deletes; Delete with `sync` waits for it.
  ImagesService(store::ImageStore* store, EventExchange* events, GcScheduler* gc = nullptr)
      : store_(store), events_(events), gc_(gc) {}

  grpc::Status Get(grpc::ServerContext* ctx, const imagespb::GetImageRequest* req,
                   imagespb::GetImageResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const imagespb::ListImagesRequest* req,
                    imagespb::ListImagesResponse* resp) override;
  grpc::Status Create(grpc::ServerContext* ctx, const imagespb::CreateImageRequest* req,
                      imagespb::CreateImageResponse* resp) override;
  grpc::Status Update(grpc::ServerContext* ctx, const imagespb::UpdateImageRequest* req,
                      imagespb::UpdateImageResponse* resp) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const imagespb::DeleteImageRequest* req,
                      google::protobuf::Empty* resp) override;

 private:
  store::ImageStore* const store_;
  EventExchange* const events_;
  GcScheduler* const gc_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_IMAGES_SERVICE_H_
