// A store::ContentStore that speaks containerd's Content API to a server:
// the same calls containerd's proxy content store makes. Used by the contract
// suite (so one set of cases covers the store and the wire), by tools and
// benchmarks.
#ifndef IMAGED_PLUGIN_CONTENT_CLIENT_H_
#define IMAGED_PLUGIN_CONTENT_CLIENT_H_

#include <grpcpp/channel.h>

#include <memory>

#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "plugin/upstream_calls.h"
#include "store/content_store.h"

namespace imaged::plugin {

class RemoteContentStore final : public store::ContentStore {
 public:
  // Calls get their deadlines from `calls` (not owned; null: none).
  explicit RemoteContentStore(std::shared_ptr<grpc::Channel> channel, UpstreamCalls* calls = nullptr);

  absl::StatusOr<store::ContentInfo> Info(absl::string_view ns, absl::string_view digest) override;
  absl::StatusOr<store::ContentInfo> Update(absl::string_view ns, const store::ContentInfo& info,
                                            absl::Span<const std::string> fieldpaths) override;
  absl::Status Walk(absl::string_view ns, absl::Span<const std::string> filters,
                    const WalkFn& fn) override;
  absl::Status Delete(absl::string_view ns, absl::string_view digest) override;
  absl::StatusOr<std::unique_ptr<store::ContentReader>> Reader(absl::string_view ns,
                                                               absl::string_view digest) override;
  absl::StatusOr<store::IngestStatus> Status(absl::string_view ns, absl::string_view ref) override;
  absl::StatusOr<std::vector<store::IngestStatus>> ListStatuses(
      absl::string_view ns, absl::Span<const std::string> filters) override;
  using store::ContentStore::Writer;
  // Sends `lease` in the containerd-lease header.
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> Writer(absl::string_view ns,
                                                               absl::string_view ref,
                                                               int64_t total,
                                                               absl::string_view expected,
                                                               absl::string_view lease) override;
  absl::Status Abort(absl::string_view ns, absl::string_view ref) override;

 private:
  std::unique_ptr<::containerd::services::content::v1::Content::Stub> stub_;
  UpstreamCalls* const calls_;
};

// A client context carrying `ns` in the containerd-namespace header ("" sends none).
std::unique_ptr<grpc::ClientContext> NamespacedContext(absl::string_view ns);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_CONTENT_CLIENT_H_
