// The containerd-namespace request header, read in one place.
#ifndef IMAGED_PLUGIN_NAMESPACES_H_
#define IMAGED_PLUGIN_NAMESPACES_H_

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imaged::plugin {

inline constexpr char kNamespaceHeader[] = "containerd-namespace";
inline constexpr char kLeaseHeader[] = "containerd-lease";

// containerd's namespace rule: alphanumeric labels joined by '.', '_' or '-',
// at most 76 bytes. InvalidArgument naming the namespace otherwise.
absl::Status ValidateNamespace(absl::string_view ns);

// The namespace of a call that needs one (images, leases, events):
// missing is FailedPrecondition, malformed is InvalidArgument.
absl::StatusOr<std::string> RequiredNamespace(const grpc::ServerContextBase& ctx);

// The namespace of a content call: "" when the header is absent (containerd's
// content proxy sends none), InvalidArgument when malformed.
absl::StatusOr<std::string> ContentNamespace(const grpc::ServerContextBase& ctx);

// The containerd-lease header: the lease a write belongs to, "" for none.
std::string LeaseOf(const grpc::ServerContextBase& ctx);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_NAMESPACES_H_
