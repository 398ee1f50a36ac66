#include "plugin/admin_service.h"

#include "plugin/grpc_status.h"

namespace imaged::plugin {

grpc::Status AdminService::CheckIndex(grpc::ServerContext*, const adminpb::CheckIndexRequest* req,
                                      adminpb::CheckIndexResponse* resp) {
  auto report = images_->Check(req->repair());
  if (!report.ok()) return ToGrpcStatus(report.status());
  resp->set_records(report->records);
  resp->set_resolved(report->resolved);
  resp->set_unresolved(report->unresolved);
  for (const std::string& p : report->problems) resp->add_problems(p);
  resp->set_repaired(report->repaired);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListUnresolved(grpc::ServerContext*,
                                          const adminpb::ListUnresolvedRequest*,
                                          adminpb::ListUnresolvedResponse* resp) {
  auto list = images_->ListUnresolved();
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const store::UnresolvedImage& u : *list) {
    adminpb::UnresolvedImage* out = resp->add_images();
    out->set_namespace_(u.ns);
    out->set_name(u.name);
    out->set_waiting_for(u.waiting_for);
    out->set_reason(u.reason);
  }
  return grpc::Status::OK;
}

}  // namespace imaged::plugin
