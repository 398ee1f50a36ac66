// kubelet's image semantics (CRI runtime.v1.ImageService) over the store's
// image-ID index: every answer is a prefix scan or a point read of RocksDB,
// never a walk of all records and never a read of a blob.
#ifndef IMAGED_CRI_IMAGE_SERVICE_H_
#define IMAGED_CRI_IMAGE_SERVICE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/content_store.h"
#include "store/image_store.h"

namespace imaged::cri {

// What ImageFsInfo reports: the content store's use of its filesystem.
struct FsUsage {
  std::string mountpoint;
  int64_t used_bytes = 0;
  int64_t inodes_used = 0;
  absl::Time measured_at = absl::InfinitePast();  // past: now
};

class ImageService {
 public:
  // `usage` reports the content store's disk use (not owned).
  using UsageFn = std::function<absl::StatusOr<store::ContentUsage>()>;
  ImageService(store::CriImageIndex* index, std::string content_root, UsageFn usage)
      : index_(index), content_root_(std::move(content_root)), usage_(std::move(usage)) {}

  // Every image of `ns`, or only the one `filter_ref` names (none if it names
  // nothing).
  absl::StatusOr<std::vector<store::CriImage>> ListImages(absl::string_view ns,
                                                          absl::string_view filter_ref);
  // Calls `fn` with every image of `ns`, in image-ID order (one scan).
  absl::Status ForEachImage(absl::string_view ns, const store::CriImageIndex::ImageFn& fn) {
    return index_->ListImages(ns, fn);
  }
  // The index's generation: answers built from it stay right while it holds.
  uint64_t Generation() const { return index_->Generation(); }
  // See store::CriImageIndex::ChangedSince and GetImage.
  std::optional<std::vector<std::string>> ChangedSince(absl::string_view ns, uint64_t since) const {
    return index_->ChangedSince(ns, since);
  }
  absl::StatusOr<std::optional<store::CriImage>> GetImage(absl::string_view ns,
                                                          absl::string_view id) {
    return index_->GetImage(ns, id);
  }
  // Streams ListImages' answer from the same scan, in batches of `batch`.
  absl::Status StreamImages(absl::string_view ns,
                            const std::function<absl::Status(const std::vector<store::CriImage>&)>& fn,
                            size_t batch);
  // The image `ref` names, or nullopt (an OK "no such image" for kubelet).
  // InvalidArgument for an empty ref or an ambiguous truncated ID.
  absl::StatusOr<std::optional<store::CriImage>> ImageStatus(absl::string_view ns,
                                                             absl::string_view ref);
  // Removes every name of the image `ref` names, in one write, and returns
  // them. A missing image is OK (no names): removal is idempotent.
  absl::StatusOr<std::vector<std::string>> RemoveImage(absl::string_view ns,
                                                       absl::string_view ref);
  // The config JSON of image `id` (for verbose status).
  absl::StatusOr<std::string> ImageConfigJson(absl::string_view ns, absl::string_view id) {
    return index_->ImageConfigJson(ns, id);
  }
  absl::StatusOr<FsUsage> ImageFsInfo();

  // The image ID `ref` names, as containerd's CRI resolves it: a full image
  // ID; else a reference, normalised as Docker does; else a truncated ID.
  absl::StatusOr<std::optional<std::string>> Resolve(absl::string_view ns, absl::string_view ref);

 private:
  // Resolve, after a full image ID has been looked up and not found.
  absl::StatusOr<std::optional<std::string>> ResolveNotId(absl::string_view ns,
                                                          absl::string_view ref);

  store::CriImageIndex* const index_;
  const std::string content_root_;
  const UsageFn usage_;
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_IMAGE_SERVICE_H_
