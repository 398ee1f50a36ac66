#include "plugin/admin_service.h"

#include <chrono>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"
#include "store/limits.h"

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

grpc::Status AdminService::GarbageCollect(grpc::ServerContext* ctx,
                                          const adminpb::GarbageCollectRequest* req,
                                          adminpb::GarbageCollectResponse* resp) {
  if (gc_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "garbage collection is not set up");
  }
  // Each namespace once: a request naming one a thousand times is one pass.
  std::vector<std::string> namespaces;
  absl::flat_hash_set<absl::string_view> seen;
  for (const std::string& ns : req->namespaces()) {
    // The content-proxy namespace "" is containerd's to collect: skipped.
    if (ns.empty() || !seen.insert(ns).second) continue;
    if (absl::Status s = ValidateNamespace(ns); !s.ok()) return ToGrpcStatus(s);
    namespaces.push_back(ns);
    if (namespaces.size() > store::kMaxGcNamespaces) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("more than ", store::kMaxGcNamespaces, " namespaces"));
    }
  }
  // A caller that gives up (or runs out of time) ends the pass.
  absl::StatusOr<store::GcReport> r = gc_->CollectNow(namespaces, [ctx]() -> absl::Status {
    if (ctx->IsCancelled()) return absl::CancelledError("garbage collection: the caller went away");
    if (std::chrono::system_clock::now() > ctx->deadline()) {
      return absl::DeadlineExceededError("garbage collection: the caller's deadline passed");
    }
    return absl::OkStatus();
  });
  if (!r.ok()) return ToGrpcStatus(r.status());
  resp->set_namespaces(r->namespaces);
  resp->set_blobs_kept(r->blobs_kept);
  resp->set_blobs_removed(r->blobs_removed);
  resp->set_files_removed(r->files_removed);
  resp->set_bytes_freed(r->bytes_freed);
  resp->set_leases_expired(r->leases_expired);
  resp->set_complete(r->complete);
  resp->set_duration_micros(absl::ToInt64Microseconds(r->duration));
  return grpc::Status::OK;
}

grpc::Status AdminService::DiskUsage(grpc::ServerContext*, const adminpb::DiskUsageRequest*,
                                     adminpb::DiskUsageResponse* resp) {
  if (collector_ == nullptr || content_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "garbage collection is not set up");
  }
  absl::StatusOr<std::vector<store::NamespaceUsage>> usage = collector_->Usage();
  if (!usage.ok()) return ToGrpcStatus(usage.status());
  for (const store::NamespaceUsage& u : *usage) {
    adminpb::NamespaceUsage* out = resp->add_namespaces();
    out->set_namespace_(u.ns);
    out->set_blobs(u.blobs);
    out->set_bytes(u.bytes);
    out->set_exclusive_bytes(u.exclusive_bytes);
    out->set_garbage_blobs(u.garbage_blobs);
    out->set_reclaimable_bytes(u.reclaimable_bytes);
  }
  absl::StatusOr<store::ContentUsage> total = content_->Usage();
  if (!total.ok()) return ToGrpcStatus(total.status());
  resp->set_files(total->files);
  resp->set_bytes(total->bytes);
  resp->set_inline_blobs(total->inline_blobs);
  resp->set_inline_bytes(total->inline_bytes);
  return grpc::Status::OK;
}

grpc::Status AdminService::MirrorStatus(grpc::ServerContext*, const adminpb::MirrorStatusRequest*,
                                        adminpb::MirrorStatusResponse* resp) {
  if (mirror_ == nullptr) return grpc::Status::OK;
  cri::MirrorState st = mirror_->State();
  resp->set_enabled(true);
  resp->set_connected(st.connected);
  if (st.last_sync != absl::InfinitePast()) resp->set_last_sync_unix(absl::ToUnixSeconds(st.last_sync));
  resp->set_last_sync_upstream(st.last_report.upstream);
  resp->set_last_sync_unchanged(st.last_report.unchanged);
  resp->set_last_sync_written(st.last_report.written);
  resp->set_last_sync_deleted(st.last_report.deleted);
  resp->set_last_sync_micros(absl::ToInt64Microseconds(st.last_report.took));
  resp->set_events_applied(st.events_applied);
  resp->set_last_event_lag_micros(absl::ToInt64Microseconds(st.last_event_lag));
  resp->set_last_error(st.last_error);
  resp->set_lag_p50_micros(absl::ToInt64Microseconds(st.lag_p50));
  resp->set_lag_p99_micros(absl::ToInt64Microseconds(st.lag_p99));
  resp->set_containerd_answering(st.answering);
  if (st.answering_since != absl::InfinitePast()) {
    resp->set_answering_since_unix(absl::ToUnixSeconds(st.answering_since));
  }
  resp->set_last_failure(st.last_failure);
  return grpc::Status::OK;
}

}  // namespace imaged::plugin
