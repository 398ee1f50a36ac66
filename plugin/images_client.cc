#include "plugin/images_client.h"

#include "plugin/content_client.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {

RemoteImageStore::RemoteImageStore(std::shared_ptr<grpc::Channel> channel)
    : stub_(imagespb::Images::NewStub(std::move(channel))) {}

absl::StatusOr<store::Image> RemoteImageStore::Get(absl::string_view ns, absl::string_view name) {
  imagespb::GetImageRequest req;
  req.set_name(std::string(name));
  imagespb::GetImageResponse resp;
  auto ctx = NamespacedContext(ns);
  if (absl::Status s = FromGrpcStatus(stub_->Get(ctx.get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.image());
}

absl::StatusOr<std::vector<store::Image>> RemoteImageStore::List(
    absl::string_view ns, absl::Span<const std::string> filters) {
  imagespb::ListImagesRequest req;
  for (const std::string& f : filters) req.add_filters(f);
  imagespb::ListImagesResponse resp;
  auto ctx = NamespacedContext(ns);
  if (absl::Status s = FromGrpcStatus(stub_->List(ctx.get(), req, &resp)); !s.ok()) return s;
  std::vector<store::Image> out;
  for (const imagespb::Image& i : resp.images()) out.push_back(FromProto(i));
  return out;
}

absl::StatusOr<store::Image> RemoteImageStore::Create(absl::string_view ns,
                                                      const store::Image& image,
                                                      absl::string_view lease) {
  imagespb::CreateImageRequest req;
  ToProto(image, req.mutable_image());
  imagespb::CreateImageResponse resp;
  auto ctx = NamespacedContext(ns);
  if (!lease.empty()) ctx->AddMetadata(kLeaseHeader, std::string(lease));
  if (absl::Status s = FromGrpcStatus(stub_->Create(ctx.get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.image());
}

absl::StatusOr<store::Image> RemoteImageStore::Update(absl::string_view ns,
                                                      const store::Image& image,
                                                      absl::Span<const std::string> fieldpaths,
                                                      absl::string_view lease) {
  imagespb::UpdateImageRequest req;
  ToProto(image, req.mutable_image());
  for (const std::string& p : fieldpaths) req.mutable_update_mask()->add_paths(p);
  imagespb::UpdateImageResponse resp;
  auto ctx = NamespacedContext(ns);
  if (!lease.empty()) ctx->AddMetadata(kLeaseHeader, std::string(lease));
  if (absl::Status s = FromGrpcStatus(stub_->Update(ctx.get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.image());
}

absl::Status RemoteImageStore::Delete(absl::string_view ns, absl::string_view name) {
  imagespb::DeleteImageRequest req;
  req.set_name(std::string(name));
  google::protobuf::Empty resp;
  auto ctx = NamespacedContext(ns);
  return FromGrpcStatus(stub_->Delete(ctx.get(), req, &resp));
}

}  // namespace imaged::plugin
