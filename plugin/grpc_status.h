// The one place absl::Status and grpc::Status meet. absl's codes are gRPC's
// codes by number, so the mapping is exact both ways; messages pass through.
#ifndef IMAGED_PLUGIN_GRPC_STATUS_H_
#define IMAGED_PLUGIN_GRPC_STATUS_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <functional>

#include "absl/status/status.h"

namespace imaged::plugin {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A long call's cancel check (cri::CancelCheck): whether the caller of
// `ctx` has gone (or the server's drain ran out). Pullers ask from every
// download thread, often (curl's progress callback, many times a
// millisecond while bytes arrive); a sync call's IsCancelled plucks the
// call's completion queue (an epoll_wait), which takes few pluckers at
// once. So one thread asks at a time, at most once per
// kCallerGoneInterval, and the others take the last answer. Once gone,
// always gone.
inline constexpr std::chrono::milliseconds kCallerGoneInterval{20};
std::function<bool()> CallerGone(grpc::ServerContext* ctx);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_GRPC_STATUS_H_
