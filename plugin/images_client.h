// A store::ImageStore over containerd's Images API: the image contract runs
// through it, and tools use it.
#ifndef IMAGED_PLUGIN_IMAGES_CLIENT_H_
#define IMAGED_PLUGIN_IMAGES_CLIENT_H_

#include <grpcpp/channel.h>

#include <memory>

#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "plugin/upstream_calls.h"
#include "store/content_store.h"
#include "store/image_store.h"

namespace imaged::plugin {

class RemoteImageStore final : public store::ImageStore {
 public:
  // Calls get their deadlines from `calls` (not owned; null: none).
  explicit RemoteImageStore(std::shared_ptr<grpc::Channel> channel, UpstreamCalls* calls = nullptr);

  absl::StatusOr<store::Image> Get(absl::string_view ns, absl::string_view name) override;
  absl::StatusOr<std::vector<store::Image>> List(absl::string_view ns,
                                                 absl::Span<const std::string> filters) override;
  using store::ImageStore::Create;
  using store::ImageStore::Delete;
  using store::ImageStore::Update;
  // `lease` goes in the containerd-lease header, `timestamp` in
  // source_date_epoch, `target_digest` in the Delete's target (containerd
  // 1.6 ignores both).
  absl::StatusOr<store::Image> Create(absl::string_view ns, const store::Image& image,
                                      absl::string_view lease,
                                      std::optional<absl::Time> timestamp) override;
  absl::StatusOr<store::Image> Update(absl::string_view ns, const store::Image& image,
                                      absl::Span<const std::string> fieldpaths,
                                      absl::string_view lease,
                                      std::optional<absl::Time> timestamp) override;
  absl::Status Delete(absl::string_view ns, absl::string_view name,
                      absl::string_view target_digest) override;
  // Delete with `sync`: containerd returns after its garbage collection.
  absl::Status DeleteSync(absl::string_view ns, absl::string_view name);

 private:
  std::unique_ptr<::containerd::services::images::v1::Images::Stub> stub_;
  UpstreamCalls* const calls_;
};

// store::ImageCommitter over the Content and Images APIs of a server that has
// no batch call (containerd): blob labels first, then each record created or
// updated, then the deletes. Not one write: a failure part-way leaves the
// earlier steps done, each of which is harmless alone (labels that protect
// blobs, records that resolve). Used to pull into containerd in mirror mode.
class RemoteImageCommitter final : public store::ImageCommitter {
 public:
  // Not owned.
  RemoteImageCommitter(store::ContentStore* content, store::ImageStore* images)
      : content_(content), images_(images) {}
  absl::StatusOr<std::vector<Written>> Commit(absl::string_view ns,
                                              const store::ImageCommit& commit,
                                              absl::string_view lease) override;

 private:
  store::ContentStore* const content_;
  store::ImageStore* const images_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_IMAGES_CLIENT_H_
