// imaged.v1.Admin: index checks and unresolved records, for imagectl.
#ifndef IMAGED_PLUGIN_ADMIN_SERVICE_H_
#define IMAGED_PLUGIN_ADMIN_SERVICE_H_

#include "api/imaged/v1/admin.grpc.pb.h"
#include "store/rocksdb_image_store.h"

namespace imaged::plugin {

namespace adminpb = ::imaged::v1;

class AdminService final : public adminpb::Admin::Service {
 public:
  explicit AdminService(store::RocksDbImageStore* images) : images_(images) {}

  grpc::Status CheckIndex(grpc::ServerContext* ctx, const adminpb::CheckIndexRequest* req,
                          adminpb::CheckIndexResponse* resp) override;
  grpc::Status ListUnresolved(grpc::ServerContext* ctx, const adminpb::ListUnresolvedRequest* req,
                              adminpb::ListUnresolvedResponse* resp) override;

 private:
  store::RocksDbImageStore* const images_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_ADMIN_SERVICE_H_
