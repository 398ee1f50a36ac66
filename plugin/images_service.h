// containerd.services.images.v1.Images over a store::ImageStore. Writes
// publish /images/create, /images/update, /images/delete after they commit.
// Create is served on the async calls' thread (ServeAsync registers it): the
// request is read there and handed to store::ImageStore::CreateThen, whose
// callback answers once the write is durable, so no gRPC thread waits for a
// lock or the disk on a Create.
#ifndef IMAGED_PLUGIN_IMAGES_SERVICE_H_
#define IMAGED_PLUGIN_IMAGES_SERVICE_H_

#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "plugin/async_calls.h"
#include "plugin/convert.h"
#include "plugin/event_exchange.h"
#include "plugin/gc_scheduler.h"
#include "store/image_store.h"

namespace imaged::plugin {

class ImagesService final
    : public imagespb::Images::WithRawMethod_Create<imagespb::Images::Service> {
 public:
  // `gc` (may be null) is told of deletes; Delete with `sync` waits for it.
  ImagesService(store::ImageStore* store, EventExchange* events, GcScheduler* gc = nullptr)
      : store_(store), events_(events), gc_(gc) {}

  grpc::Status Get(grpc::ServerContext* ctx, const imagespb::GetImageRequest* req,
                   imagespb::GetImageResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const imagespb::ListImagesRequest* req,
                    imagespb::ListImagesResponse* resp) override;
  // Registers Create with `calls` (before the server is built).
  void ServeAsync(AsyncCalls* calls);
  grpc::Status Update(grpc::ServerContext* ctx, const imagespb::UpdateImageRequest* req,
                      imagespb::UpdateImageResponse* resp) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const imagespb::DeleteImageRequest* req,
                      google::protobuf::Empty* resp) override;

 private:
  void AnswerCreate(grpc::ServerContext* ctx, const grpc::ByteBuffer& raw, RawReply reply);

  store::ImageStore* const store_;
  EventExchange* const events_;
  GcScheduler* const gc_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_IMAGES_SERVICE_H_
