#include "cri/image_service.h"

#include "absl/strings/str_cat.h"
#include "cri/reference.h"
#include "store/limits.h"

namespace imaged::cri {

absl::StatusOr<std::optional<std::string>> ImageService::Resolve(absl::string_view ns,
                                                                  absl::string_view ref) {
  if (absl::Status s = store::ValidateImageRef(ref); !s.ok()) return s;
  if (ref.empty()) return std::optional<std::string>();  // names nothing
  if (IsImageId(ref)) {
    const std::string id = FullImageId(ref);
    absl::StatusOr<std::optional<store::CriImage>> image = index_->GetImage(ns, id);
    if (!image.ok()) return image.status();
    if (image->has_value()) return std::optional<std::string>(id);
  }
  return ResolveNotId(ns, ref);
}

absl::StatusOr<std::optional<std::string>> ImageService::ResolveNotId(absl::string_view ns,
                                                                       absl::string_view ref) {
  if (absl::StatusOr<std::string> normalized = NormalizeImageRef(ref); normalized.ok()) {
    absl::StatusOr<std::optional<std::string>> id = index_->ImageIdOfName(ns, *normalized);
    if (!id.ok() || id->has_value()) return id;
  }
  std::optional<std::string> prefix = ImageIdPrefix(ref);
  if (!prefix) return std::optional<std::string>();
  absl::StatusOr<std::vector<std::string>> ids = index_->ImageIdsWithPrefix(ns, *prefix, 2);
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return std::optional<std::string>();
  if (ids->size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ID prefix \"", ref, "\" is ambiguous: it matches more than one image"));
  }
  return std::optional<std::string>(ids->front());
}

absl::StatusOr<std::vector<store::CriImage>> ImageService::ListImages(absl::string_view ns,
                                                                      absl::string_view filter_ref) {
  std::vector<store::CriImage> out;
  if (!filter_ref.empty()) {
    absl::StatusOr<std::optional<store::CriImage>> image = ImageStatus(ns, filter_ref);
    if (!image.ok()) return image.status();
    if (image->has_value()) out.push_back(**std::move(image));
    return out;
  }
  absl::Status s = index_->ListImages(ns, [&](const store::CriImage& image) {
    out.push_back(image);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status ImageService::StreamImages(
    absl::string_view ns,
    const std::function<absl::Status(const std::vector<store::CriImage>&)>& fn, size_t batch) {
  std::vector<store::CriImage> pending;
  absl::Status s = index_->ListImages(ns, [&](const store::CriImage& image) {
    pending.push_back(image);
    if (pending.size() < batch) return absl::OkStatus();
    absl::Status sent = fn(pending);
    pending.clear();
    return sent;
  });
  if (!s.ok()) return s;
  if (!pending.empty()) return fn(pending);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<store::CriImage>> ImageService::ImageStatus(absl::string_view ns,
                                                                         absl::string_view ref) {
  if (absl::Status s = store::ValidateImageRef(ref); !s.ok()) return s;
  // containerd's CRI: an empty reference names no image (OK, not present).
  if (ref.empty()) return std::optional<store::CriImage>();
  // By full ID (kubelet's most common call, with the image_ref of a pull):
  // the scan that finds it is the answer.
  if (IsImageId(ref)) {
    const std::string id = FullImageId(ref);
    absl::StatusOr<std::optional<store::CriImage>> image = index_->GetImage(ns, id);
    if (!image.ok() || image->has_value()) return image;
  }
  absl::StatusOr<std::optional<std::string>> id = ResolveNotId(ns, ref);
  if (!id.ok()) return id.status();
  if (!id->has_value()) return std::optional<store::CriImage>();
  return index_->GetImage(ns, **id);
}

absl::StatusOr<std::vector<std::string>> ImageService::RemoveImage(absl::string_view ns,
                                                                   absl::string_view ref) {
  absl::StatusOr<std::optional<std::string>> id = Resolve(ns, ref);
  if (!id.ok()) return id.status();
  if (!id->has_value()) return std::vector<std::string>();
  return index_->RemoveImage(ns, **id);
}

absl::StatusOr<FsUsage> ImageService::ImageFsInfo() {
  absl::StatusOr<store::ContentUsage> usage = usage_();
  if (!usage.ok()) return usage.status();
  return FsUsage{content_root_, usage->total_bytes(), usage->files};
}

}  // namespace imaged::cri
