// A store::ImageStore over containerd's Images API: the image contract runs
// through it, and tools use it.
#ifndef IMAGED_PLUGIN_IMAGES_CLIENT_H_
#define IMAGED_PLUGIN_IMAGES_CLIENT_H_

#include <grpcpp/channel.h>

#include <memory>

#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "store/image_store.h"

namespace imaged::plugin {

class RemoteImageStore final : public store::ImageStore {
 public:
  explicit RemoteImageStore(std::shared_ptr<grpc::Channel> channel);

  absl::StatusOr<store::Image> Get(absl::string_view ns, absl::string_view name) override;
  absl::StatusOr<std::vector<store::Image>> List(absl::string_view ns,
                                                 absl::Span<const std::string> filters) override;
  using store::ImageStore::Create;
  using store::ImageStore::Update;
  // `lease` goes in the containerd-lease header.
  absl::StatusOr<store::Image> Create(absl::string_view ns, const store::Image& image,
                                      absl::string_view lease) override;
  absl::StatusOr<store::Image> Update(absl::string_view ns, const store::Image& image,
                                      absl::Span<const std::string> fieldpaths,
                                      absl::string_view lease) override;
  absl::Status Delete(absl::string_view ns, absl::string_view name) override;

 private:
  std::unique_ptr<::containerd::services::images::v1::Images::Stub> stub_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_IMAGES_CLIENT_H_
