#include "plugin/events_service.h"

#include "absl/strings/str_cat.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

// How often a quiet subscription looks whether its client is still there.
constexpr absl::Duration kPollCancelled = absl::Milliseconds(200);

}  // namespace

grpc::Status EventsService::Publish(grpc::ServerContext* ctx, const eventspb::PublishRequest* req,
                                    google::protobuf::Empty*) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  if (absl::Status s = EventExchange::ValidateTopic(req->topic()); !s.ok()) return ToGrpcStatus(s);
  if (!req->has_event()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "publish: event is required");
  }
  eventspb::Envelope envelope;
  ToProto(absl::Now(), envelope.mutable_timestamp());
  envelope.set_namespace_(*ns);
  envelope.set_topic(req->topic());
  *envelope.mutable_event() = req->event();
  exchange_->PublishEnvelope(envelope);
  return grpc::Status::OK;
}

grpc::Status EventsService::Forward(grpc::ServerContext*, const eventspb::ForwardRequest* req,
                                    google::protobuf::Empty*) {
  const eventspb::Envelope& e = req->envelope();
  if (absl::Status s = ValidateNamespace(e.namespace_()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = EventExchange::ValidateTopic(e.topic()); !s.ok()) return ToGrpcStatus(s);
  if (!e.has_event()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "forward: event is required");
  }
  exchange_->PublishEnvelope(e);
  return grpc::Status::OK;
}

grpc::Status EventsService::Subscribe(grpc::ServerContext* ctx,
                                      const eventspb::SubscribeRequest* req,
                                      grpc::ServerWriter<eventspb::Envelope>* writer) {
  std::vector<std::string> filters(req->filters().begin(), req->filters().end());
  auto sub = exchange_->Subscribe(filters);
  if (!sub.ok()) return ToGrpcStatus(sub.status());
  // Headers now, so the client knows it is subscribed before any event.
  writer->SendInitialMetadata();
  eventspb::Envelope envelope;
  while (!ctx->IsCancelled() && !exchange_->closed()) {
    if (!(*sub)->Next(&envelope, kPollCancelled)) continue;
    if (!writer->Write(envelope)) break;
  }
  return grpc::Status::OK;
}

}  // namespace imaged::plugin
