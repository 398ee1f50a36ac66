// containerd.services.events.v1.Events over an EventExchange.
#ifndef IMAGED_PLUGIN_EVENTS_SERVICE_H_
#define IMAGED_PLUGIN_EVENTS_SERVICE_H_

#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "plugin/event_exchange.h"

namespace imaged::plugin {

class EventsService final : public eventspb::Events::Service {
 public:
  explicit EventsService(EventExchange* exchange) : exchange_(exchange) {}

  grpc::Status Publish(grpc::ServerContext* ctx, const eventspb::PublishRequest* req,
                       google::protobuf::Empty* resp) override;
  grpc::Status Forward(grpc::ServerContext* ctx, const eventspb::ForwardRequest* req,
                       google::protobuf::Empty* resp) override;
  // Streams until the client goes away or the server shuts down.
  grpc::Status Subscribe(grpc::ServerContext* ctx, const eventspb::SubscribeRequest* req,
                         grpc::ServerWriter<eventspb::Envelope>* writer) override;

 private:
  EventExchange* const exchange_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_EVENTS_SERVICE_H_
