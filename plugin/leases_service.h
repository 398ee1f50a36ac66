// containerd.services.leases.v1.Leases over a store::LeaseStore: each RPC
// reads the required namespace, makes one store call and maps its status.
#ifndef IMAGED_PLUGIN_LEASES_SERVICE_H_
#define IMAGED_PLUGIN_LEASES_SERVICE_H_

#include <memory>
#include <string>

#include "api/containerd/services/leases/v1/leases.grpc.pb.h"
#include "plugin/gc_scheduler.h"
#include "store/lease_store.h"

namespace imaged::plugin {

namespace leasespb = ::containerd::services::leases::v1;

class LeasesService final : public leasespb::Leases::Service {
 public:
  // `store` is not owned and must outlive the service.
  // `gc` (may be null) is told of deletes; Delete with `sync` waits for it.
  explicit LeasesService(store::LeaseStore* store, GcScheduler* gc = nullptr)
      : store_(store), gc_(gc) {}
  // Owns `store`, for a server that needs the lease store nowhere else.
  explicit LeasesService(std::unique_ptr<store::LeaseStore> store)
      : owned_(std::move(store)), store_(owned_.get()), gc_(nullptr) {}

  // An empty ID gets a generated one, as containerd's service does.
  grpc::Status Create(grpc::ServerContext* ctx, const leasespb::CreateRequest* req,
                      leasespb::CreateResponse* resp) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const leasespb::DeleteRequest* req,
                      google::protobuf::Empty* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const leasespb::ListRequest* req,
                    leasespb::ListResponse* resp) override;
  grpc::Status AddResource(grpc::ServerContext* ctx, const leasespb::AddResourceRequest* req,
                           google::protobuf::Empty* resp) override;
  grpc::Status DeleteResource(grpc::ServerContext* ctx, const leasespb::DeleteResourceRequest* req,
                              google::protobuf::Empty* resp) override;
  grpc::Status ListResources(grpc::ServerContext* ctx, const leasespb::ListResourcesRequest* req,
                             leasespb::ListResourcesResponse* resp) override;

 private:
  const std::unique_ptr<store::LeaseStore> owned_;
  store::LeaseStore* const store_;
  GcScheduler* const gc_;
};

// A lease ID in the shape containerd's leases.WithRandomID makes:
// "<nanoseconds of the current second>-<4 URL-safe base64 characters>".
std::string RandomLeaseId();

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_LEASES_SERVICE_H_
