#include "plugin/leases_client.h"

#include "absl/strings/str_cat.h"
#include "plugin/content_client.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

namespace leasespb = ::containerd::services::leases::v1;

store::Lease FromProto(const leasespb::Lease& l) {
  store::Lease out;
  out.id = l.id();
  out.created_at = plugin::FromProto(l.created_at());
  out.labels.insert(l.labels().begin(), l.labels().end());
  return out;
}

}  // namespace

RemoteLeaseStore::RemoteLeaseStore(std::shared_ptr<grpc::Channel> channel, UpstreamCalls* calls)
    : stub_(leasespb::Leases::NewStub(std::move(channel))),
      calls_(calls != nullptr ? calls : UpstreamCalls::Unbounded()) {}

absl::StatusOr<store::Lease> RemoteLeaseStore::Create(absl::string_view ns,
                                                      const store::Lease& lease) {
  leasespb::CreateRequest req;
  req.set_id(lease.id);
  req.mutable_labels()->insert(lease.labels.begin(), lease.labels.end());
  leasespb::CreateResponse resp;
  auto call = calls_->Start("Leases/Create", ns);
  if (absl::Status s = call->Finish(stub_->Create(call->get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.lease());
}

absl::StatusOr<store::Lease> RemoteLeaseStore::Get(absl::string_view ns, absl::string_view id) {
  absl::StatusOr<std::vector<store::Lease>> all =
      List(ns, {absl::StrCat("id==\"", std::string(id), "\"")});
  if (!all.ok()) return all.status();
  for (store::Lease& l : *all) {
    if (l.id == id) return std::move(l);
  }
  return absl::NotFoundError(absl::StrCat("lease \"", id, "\": not found"));
}

absl::Status RemoteLeaseStore::Delete(absl::string_view ns, absl::string_view id) {
  leasespb::DeleteRequest req;
  req.set_id(std::string(id));
  google::protobuf::Empty resp;
  auto call = calls_->Start("Leases/Delete", ns);
  return call->Finish(stub_->Delete(call->get(), req, &resp));
}

absl::Status RemoteLeaseStore::DeleteSync(absl::string_view ns, absl::string_view id) {
  leasespb::DeleteRequest req;
  req.set_id(std::string(id));
  req.set_sync(true);
  google::protobuf::Empty resp;
  auto call = calls_->Start("Leases/Delete", ns, UpstreamCalls::Kind::kList);
  return call->Finish(stub_->Delete(call->get(), req, &resp));
}

absl::StatusOr<std::vector<store::Lease>> RemoteLeaseStore::List(
    absl::string_view ns, absl::Span<const std::string> filters) {
  leasespb::ListRequest req;
  for (const std::string& f : filters) req.add_filters(f);
  leasespb::ListResponse resp;
  auto call = calls_->Start("Leases/List", ns, UpstreamCalls::Kind::kList);
  if (absl::Status s = call->Finish(stub_->List(call->get(), req, &resp)); !s.ok()) return s;
  std::vector<store::Lease> out;
  for (const leasespb::Lease& l : resp.leases()) out.push_back(FromProto(l));
  return out;
}

absl::Status RemoteLeaseStore::AddResource(absl::string_view ns, absl::string_view lease,
                                           const store::LeaseResource& resource) {
  leasespb::AddResourceRequest req;
  req.set_id(std::string(lease));
  req.mutable_resource()->set_id(resource.id);
  req.mutable_resource()->set_type(resource.type);
  google::protobuf::Empty resp;
  auto call = calls_->Start("Leases/AddResource", ns);
  return call->Finish(stub_->AddResource(call->get(), req, &resp));
}

absl::Status RemoteLeaseStore::DeleteResource(absl::string_view ns, absl::string_view lease,
                                              const store::LeaseResource& resource) {
  leasespb::DeleteResourceRequest req;
  req.set_id(std::string(lease));
  req.mutable_resource()->set_id(resource.id);
  req.mutable_resource()->set_type(resource.type);
  google::protobuf::Empty resp;
  auto call = calls_->Start("Leases/DeleteResource", ns);
  return call->Finish(stub_->DeleteResource(call->get(), req, &resp));
}

absl::StatusOr<std::vector<store::LeaseResource>> RemoteLeaseStore::ListResources(
    absl::string_view ns, absl::string_view lease) {
  leasespb::ListResourcesRequest req;
  req.set_id(std::string(lease));
  leasespb::ListResourcesResponse resp;
  auto call = calls_->Start("Leases/ListResources", ns, UpstreamCalls::Kind::kList);
  if (absl::Status s = call->Finish(stub_->ListResources(call->get(), req, &resp)); !s.ok()) {
    return s;
  }
  std::vector<store::LeaseResource> out;
  for (const auto& r : resp.resources()) out.push_back({r.id(), r.type()});
  return out;
}

}  // namespace imaged::plugin
