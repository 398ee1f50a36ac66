#include "plugin/leases_service.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

void ToProto(const store::Lease& lease, leasespb::Lease* out) {
  out->set_id(lease.id);
  ::imaged::plugin::ToProto(lease.created_at, out->mutable_created_at());
  out->mutable_labels()->insert(lease.labels.begin(), lease.labels.end());
}

// A request's resource; an absent one is the empty resource, which the store
// rejects like any unknown type.
store::LeaseResource FromProto(const leasespb::Resource& r) {
  return store::LeaseResource{r.id(), r.type()};
}

}  // namespace

std::string RandomLeaseId() {
  std::random_device rd;
  const unsigned bits = rd();
  const char bytes[3] = {static_cast<char>(bits), static_cast<char>(bits >> 8),
                         static_cast<char>(bits >> 16)};
  const int64_t nanos = absl::ToUnixNanos(absl::Now()) % 1000000000;
  return absl::StrCat(nanos, "-", absl::WebSafeBase64Escape(absl::string_view(bytes, 3)));
}

grpc::Status LeasesService::Create(grpc::ServerContext* ctx, const leasespb::CreateRequest* req,
                                   leasespb::CreateResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  store::Lease lease;
  // containerd's clients pick IDs themselves; the server picks one for an empty ID.
  lease.id = req->id().empty() ? RandomLeaseId() : req->id();
  lease.labels.insert(req->labels().begin(), req->labels().end());
  absl::StatusOr<store::Lease> created = store_->Create(*ns, lease);
  if (!created.ok()) return ToGrpcStatus(created.status());
  ToProto(*created, resp->mutable_lease());
  return grpc::Status::OK;
}

grpc::Status LeasesService::Delete(grpc::ServerContext* ctx, const leasespb::DeleteRequest* req,
                                   google::protobuf::Empty*) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  if (absl::Status s = store_->Delete(*ns, req->id()); !s.ok()) return ToGrpcStatus(s);
  return ToGrpcStatus(AfterDelete(gc_, *ns, req->sync()));
}

grpc::Status LeasesService::List(grpc::ServerContext* ctx, const leasespb::ListRequest* req,
                                 leasespb::ListResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  std::vector<std::string> filters(req->filters().begin(), req->filters().end());
  absl::StatusOr<std::vector<store::Lease>> leases = store_->List(*ns, filters);
  if (!leases.ok()) return ToGrpcStatus(leases.status());
  for (const store::Lease& lease : *leases) ToProto(lease, resp->add_leases());
  return grpc::Status::OK;
}

grpc::Status LeasesService::AddResource(grpc::ServerContext* ctx,
                                        const leasespb::AddResourceRequest* req,
                                        google::protobuf::Empty*) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  return ToGrpcStatus(store_->AddResource(*ns, req->id(), FromProto(req->resource())));
}

grpc::Status LeasesService::DeleteResource(grpc::ServerContext* ctx,
                                           const leasespb::DeleteResourceRequest* req,
                                           google::protobuf::Empty*) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  return ToGrpcStatus(store_->DeleteResource(*ns, req->id(), FromProto(req->resource())));
}

grpc::Status LeasesService::ListResources(grpc::ServerContext* ctx,
                                          const leasespb::ListResourcesRequest* req,
                                          leasespb::ListResourcesResponse* resp) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  absl::StatusOr<std::vector<store::LeaseResource>> resources =
      store_->ListResources(*ns, req->id());
  if (!resources.ok()) return ToGrpcStatus(resources.status());
  for (const store::LeaseResource& r : *resources) {
    leasespb::Resource* out = resp->add_resources();
    out->set_id(r.id);
    out->set_type(r.type);
  }
  return grpc::Status::OK;
}

}  // namespace imaged::plugin
