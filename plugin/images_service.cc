#include "plugin/images_service.h"

#include <string>
#include <vector>

#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {

grpc::Status ImagesService::Get(grpc::ServerContext* ctx, const imagespb::GetImageRequest* req,
                                imagespb::GetImageResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  absl::StatusOr<store::Image> image = store_->Get(*ns, req->name());
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, resp->mutable_image());
  return grpc::Status::OK;
}

grpc::Status ImagesService::List(grpc::ServerContext* ctx, const imagespb::ListImagesRequest* req,
                                 imagespb::ListImagesResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  std::vector<std::string> filters(req->filters().begin(), req->filters().end());
  absl::StatusOr<std::vector<store::Image>> images = store_->List(*ns, filters);
  if (!images.ok()) return ToGrpcStatus(images.status());
  for (const store::Image& image : *images) ToProto(image, resp->add_images());
  return grpc::Status::OK;
}

grpc::Status ImagesService::Create(grpc::ServerContext* ctx,
                                   const imagespb::CreateImageRequest* req,
                                   imagespb::CreateImageResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  absl::StatusOr<store::Image> image = store_->Create(*ns, FromProto(req->image()), LeaseOf(*ctx));
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, resp->mutable_image());
  events_->PublishImageWritten(*ns, *image, /*existed=*/false);
  return grpc::Status::OK;
}

grpc::Status ImagesService::Update(grpc::ServerContext* ctx,
                                   const imagespb::UpdateImageRequest* req,
                                   imagespb::UpdateImageResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  std::vector<std::string> paths(req->update_mask().paths().begin(),
                                 req->update_mask().paths().end());
  absl::StatusOr<store::Image> image =
      store_->Update(*ns, FromProto(req->image()), paths, LeaseOf(*ctx));
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, resp->mutable_image());
  events_->PublishImageWritten(*ns, *image, /*existed=*/true);
  return grpc::Status::OK;
}

grpc::Status ImagesService::Delete(grpc::ServerContext* ctx,
                                   const imagespb::DeleteImageRequest* req,
                                   google::protobuf::Empty*) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  if (absl::Status s = store_->Delete(*ns, req->name()); !s.ok()) return ToGrpcStatus(s);
  events_->PublishImageDeleted(*ns, req->name());
  return ToGrpcStatus(AfterDelete(gc_, *ns, req->sync()));
}

}  // namespace imaged::plugin
