// A store::LeaseStore that speaks containerd's Leases API to a server (imaged
// or containerd): what a client that writes content and images over the
// wire holds its work with, so a collector leaves a half-done import alone.
#ifndef IMAGED_PLUGIN_LEASES_CLIENT_H_
#define IMAGED_PLUGIN_LEASES_CLIENT_H_

#include <grpcpp/channel.h>

#include <memory>

#include "api/containerd/services/leases/v1/leases.grpc.pb.h"
#include "plugin/upstream_calls.h"
#include "store/lease_store.h"

namespace imaged::plugin {

class RemoteLeaseStore final : public store::LeaseStore {
 public:
  // Calls get their deadlines from `calls` (not owned; null: none).
  explicit RemoteLeaseStore(std::shared_ptr<grpc::Channel> channel, UpstreamCalls* calls = nullptr);

  absl::StatusOr<store::Lease> Create(absl::string_view ns, const store::Lease& lease) override;
  absl::StatusOr<store::Lease> Get(absl::string_view ns, absl::string_view id) override;
  absl::Status Delete(absl::string_view ns, absl::string_view id) override;
  // Delete with `sync`: the server returns after the collection it triggers.
  absl::Status DeleteSync(absl::string_view ns, absl::string_view id);
  absl::StatusOr<std::vector<store::Lease>> List(absl::string_view ns,
                                                 absl::Span<const std::string> filters) override;
  absl::Status AddResource(absl::string_view ns, absl::string_view lease,
                           const store::LeaseResource& resource) override;
  absl::Status DeleteResource(absl::string_view ns, absl::string_view lease,
                              const store::LeaseResource& resource) override;
  absl::StatusOr<std::vector<store::LeaseResource>> ListResources(absl::string_view ns,
                                                                  absl::string_view lease) override;

 private:
  std::unique_ptr<::containerd::services::leases::v1::Leases::Stub> stub_;
  UpstreamCalls* const calls_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_LEASES_CLIENT_H_
