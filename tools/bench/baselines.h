// The two designs the CRI scale benchmark compares imaged with, each served
// as runtime.v1.ImageService (ListImages and ImageStatus) from its own
// process, so the benchmark measures it with the same client, CPU and RSS
// accounting as imaged and containerd. For comparison only.
//
//   MemoryIndexService  an in-memory index like containerd 1.6's CRI image
//                       store (pkg/cri/store/image): every image with its
//                       parsed config and references, a ref -> ID map, an ID
//                       set for truncated IDs, under one RW lock; ListImages
//                       copies every image out and converts each, parsing
//                       its references, as containerd's toCRIImage does.
//   Pr7061Service       containerd PR #7061's approach: no index; each call
//                       lists image records through the Images API (here,
//                       imaged's) and groups them by the
//                       io.cri-containerd.image-config-digest label.
#ifndef IMAGED_TOOLS_BENCH_BASELINES_H_
#define IMAGED_TOOLS_BENCH_BASELINES_H_

#include <grpcpp/channel.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "tools/bench/dataset.h"

namespace imaged::bench {

namespace cripb = ::runtime::v1;

class MemoryIndexService final : public cripb::ImageService::Service {
 public:
  // Indexes every image of `dataset` (the work containerd's CRI does at
  // start from the records and blobs, done here from memory).
  explicit MemoryIndexService(const Dataset& dataset);

  grpc::Status ListImages(grpc::ServerContext* ctx, const cripb::ListImagesRequest* req,
                          cripb::ListImagesResponse* resp) override;
  grpc::Status ImageStatus(grpc::ServerContext* ctx, const cripb::ImageStatusRequest* req,
                           cripb::ImageStatusResponse* resp) override;

 private:
  struct Image {
    std::string id;
    std::vector<std::string> references;
    std::string chain_id;
    int64_t size = 0;
    nlohmann::json spec;  // the parsed config, as containerd keeps it
    bool pinned = false;
  };
  // "" when `ref` names no image.
  std::string Resolve(const std::string& ref) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  static void ToCri(const Image& image, cripb::Image* out);

  absl::Mutex mu_;
  std::map<std::string, Image> images_ ABSL_GUARDED_BY(mu_);  // by ID (sorted: prefix search)
  absl::flat_hash_map<std::string, std::string> ref_cache_ ABSL_GUARDED_BY(mu_);
};

class Pr7061Service final : public cripb::ImageService::Service {
 public:
  // `images` reaches a server of containerd's Images API whose records carry
  // PR #7061's labels (imaged); `ns` is the CRI namespace.
  Pr7061Service(std::shared_ptr<grpc::Channel> images, std::string ns, int partitions);

  grpc::Status ListImages(grpc::ServerContext* ctx, const cripb::ListImagesRequest* req,
                          cripb::ListImagesResponse* resp) override;
  grpc::Status ImageStatus(grpc::ServerContext* ctx, const cripb::ImageStatusRequest* req,
                           cripb::ImageStatusResponse* resp) override;

 private:
  using Record = ::containerd::services::images::v1::Image;
  grpc::Status ListRecords(const std::vector<std::string>& filters, std::vector<Record>* out);
  // Groups records by image ID into CRI images.
  static void Group(std::vector<Record>& records, google::protobuf::RepeatedPtrField<cripb::Image>* out);

  std::unique_ptr<::containerd::services::images::v1::Images::Stub> stub_;
  const std::string ns_;
  // Unfiltered List answers over 16 MiB fail (containerd's limit and
  // imaged's): the list is asked for in this many label-filtered parts.
  const int partitions_;
};

}  // namespace imaged::bench

#endif  // IMAGED_TOOLS_BENCH_BASELINES_H_
