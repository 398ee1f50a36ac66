// imaged.v1.Admin: index checks and unresolved records, for imagectl.
#ifndef IMAGED_PLUGIN_ADMIN_SERVICE_H_
#define IMAGED_PLUGIN_ADMIN_SERVICE_H_

#include "api/imaged/v1/admin.grpc.pb.h"
#include "cri/mirror/mirror.h"
#include "plugin/gc_scheduler.h"
#include "store/gc.h"
#include "store/rocksdb_content_store.h"
#include "store/rocksdb_image_store.h"

namespace imaged::plugin {

namespace adminpb = ::imaged::v1;

class AdminService final : public adminpb::Admin::Service {
 public:
  // GarbageCollect and DiskUsage answer FailedPrecondition without `gc` and
  // `collector`.
  // MirrorStatus says "not enabled" without `mirror`.
  explicit AdminService(store::RocksDbImageStore* images,
                        store::RocksDbContentStore* content = nullptr,
                        store::Collector* collector = nullptr, GcScheduler* gc = nullptr,
                        cri::Mirror* mirror = nullptr)
      : images_(images), content_(content), collector_(collector), gc_(gc), mirror_(mirror) {}

  grpc::Status CheckIndex(grpc::ServerContext* ctx, const adminpb::CheckIndexRequest* req,
                          adminpb::CheckIndexResponse* resp) override;
  grpc::Status ListUnresolved(grpc::ServerContext* ctx, const adminpb::ListUnresolvedRequest* req,
                              adminpb::ListUnresolvedResponse* resp) override;
  grpc::Status GarbageCollect(grpc::ServerContext* ctx, const adminpb::GarbageCollectRequest* req,
                              adminpb::GarbageCollectResponse* resp) override;
  grpc::Status DiskUsage(grpc::ServerContext* ctx, const adminpb::DiskUsageRequest* req,
                         adminpb::DiskUsageResponse* resp) override;
  grpc::Status MirrorStatus(grpc::ServerContext* ctx, const adminpb::MirrorStatusRequest* req,
                            adminpb::MirrorStatusResponse* resp) override;

 private:
  store::RocksDbImageStore* const images_;
  store::RocksDbContentStore* const content_;
  store::Collector* const collector_;
  GcScheduler* const gc_;
  cri::Mirror* const mirror_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_ADMIN_SERVICE_H_
