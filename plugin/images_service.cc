#include "plugin/images_service.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

// containerd 2.x's source_date_epoch: the time a write stamps on the record
// instead of now. Times are kept as nanoseconds since 1970 in an int64, so a
// timestamp outside that range (1677-2262) is refused rather than clamped.
absl::StatusOr<std::optional<absl::Time>> SourceDateEpoch(bool has,
                                                          const google::protobuf::Timestamp& ts) {
  if (!has) return std::nullopt;
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1000000000 - 1;
  if (ts.seconds() < -kMaxSeconds || ts.seconds() > kMaxSeconds || ts.nanos() < 0 ||
      ts.nanos() > 999999999) {
    return absl::InvalidArgumentError(absl::StrCat(
        "source_date_epoch {seconds: ", ts.seconds(), ", nanos: ", ts.nanos(),
        "} is not a time between 1677 and 2262"));
  }
  return FromProto(ts);
}

}  // namespace

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

void ImagesService::ServeAsync(AsyncCalls* calls) {
  calls->AddRawUnary(
      [this](grpc::ServerContext* ctx, grpc::ByteBuffer* req,
             grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* writer,
             grpc::ServerCompletionQueue* cq, void* tag) {
        RequestCreate(ctx, req, writer, cq, cq, tag);
      },
      [this](grpc::ServerContext* ctx, const grpc::ByteBuffer& req, RawReply reply) {
        AnswerCreate(ctx, req, std::move(reply));
      });
}

void ImagesService::AnswerCreate(grpc::ServerContext* ctx, const grpc::ByteBuffer& raw,
                                 RawReply reply) {
  imagespb::CreateImageRequest req;
  if (!ParseRaw(raw, &req)) {
    reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed CreateImageRequest"), {});
    return;
  }
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) {
    reply(ToGrpcStatus(ns.status()), {});
    return;
  }
  absl::StatusOr<std::optional<absl::Time>> at =
      SourceDateEpoch(req.has_source_date_epoch(), req.source_date_epoch());
  if (!at.ok()) {
    reply(ToGrpcStatus(at.status()), {});
    return;
  }
  store_->CreateThen(*ns, FromProto(req.image()), LeaseOf(*ctx), *at,
                     [this, ns = *ns, reply = std::move(reply)](
                         absl::StatusOr<store::Image> image) {
                       if (!image.ok()) {
                         reply(ToGrpcStatus(image.status()), {});
                         return;
                       }
                       imagespb::CreateImageResponse resp;
                       ToProto(*image, resp.mutable_image());
                       events_->PublishImageWritten(ns, *image, /*existed=*/false);
                       reply(grpc::Status::OK, Serialized(resp));
                     });
}

grpc::Status ImagesService::Update(grpc::ServerContext* ctx,
                                   const imagespb::UpdateImageRequest* req,
                                   imagespb::UpdateImageResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  std::vector<std::string> paths(req->update_mask().paths().begin(),
                                 req->update_mask().paths().end());
  absl::StatusOr<std::optional<absl::Time>> at =
      SourceDateEpoch(req->has_source_date_epoch(), req->source_date_epoch());
  if (!at.ok()) return ToGrpcStatus(at.status());
  absl::StatusOr<store::Image> image =
      store_->Update(*ns, FromProto(req->image()), paths, LeaseOf(*ctx), *at);
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
  // A target without a digest guards nothing (as containerd).
  const std::string& target = req->has_target() ? req->target().digest() : "";
  if (absl::Status s = store_->Delete(*ns, req->name(), target); !s.ok()) return ToGrpcStatus(s);
  events_->PublishImageDeleted(*ns, req->name());
  return ToGrpcStatus(AfterDelete(gc_, *ns, req->sync()));
}

}  // namespace imaged::plugin
