// The one place absl::Status and grpc::Status meet. absl's codes are gRPC's
// codes by number, so the mapping is exact both ways; messages pass through.
#ifndef IMAGED_PLUGIN_GRPC_STATUS_H_
#define IMAGED_PLUGIN_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace imaged::plugin {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_GRPC_STATUS_H_
