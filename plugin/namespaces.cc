#include "plugin/namespaces.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "store/limits.h"

namespace imaged::plugin {
namespace {

std::optional<std::string> Header(const grpc::ServerContextBase& ctx,
                                  const char* name = kNamespaceHeader) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(name);
  if (it == md.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

absl::Status ValidateNamespace(absl::string_view ns) {
  return store::ValidateIdentifier("namespace", ns);
}

absl::StatusOr<std::string> RequiredNamespace(const grpc::ServerContextBase& ctx) {
  std::optional<std::string> ns = Header(ctx);
  // Absent or empty: what containerd answers both with.
  if (!ns || ns->empty()) {
    return absl::FailedPreconditionError(
        "namespace is required: set the containerd-namespace header");
  }
  if (absl::Status s = ValidateNamespace(*ns); !s.ok()) return s;
  return *ns;
}

absl::StatusOr<std::string> ContentNamespace(const grpc::ServerContextBase& ctx) {
  std::optional<std::string> ns = Header(ctx);
  // Absent: containerd's content proxy, which sends none. Present but empty
  // is what containerd refuses.
  if (!ns) return std::string();
  if (ns->empty()) {
    return absl::FailedPreconditionError(
        "namespace is required: the containerd-namespace header is empty");
  }
  if (absl::Status s = ValidateNamespace(*ns); !s.ok()) return s;
  return *ns;
}

std::string LeaseOf(const grpc::ServerContextBase& ctx) {
  return Header(ctx, kLeaseHeader).value_or("");
}

}  // namespace imaged::plugin
