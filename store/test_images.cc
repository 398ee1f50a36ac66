#include "store/test_images.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "store/digest.h"

namespace imaged::store {
namespace {

using nlohmann::json;

Descriptor Describe(absl::string_view media_type, const std::string& data) {
  return Descriptor{std::string(media_type), Sha256::Of(data), static_cast<int64_t>(data.size()),
                    {}, std::nullopt};
}

json ToJson(const Descriptor& d) {
  json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (d.platform) {
    j["platform"] = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) j["platform"]["variant"] = d.platform->variant;
  }
  return j;
}

}  // namespace

absl::Status WriteBlob(ContentStore& store, absl::string_view ns, absl::string_view data) {
  std::string digest = Sha256::Of(data);
  auto w = store.Writer(ns, absl::StrCat("test-", digest), static_cast<int64_t>(data.size()), digest);
  if (absl::IsAlreadyExists(w.status())) return absl::OkStatus();
  if (!w.ok()) return w.status();
  if (absl::Status s = (*w)->Write(data); !s.ok()) return s;
  absl::Status s = (*w)->Commit(static_cast<int64_t>(data.size()), digest, {});
  return absl::IsAlreadyExists(s) ? absl::OkStatus() : s;
}

absl::StatusOr<TestImage> MakeTestImage(ContentStore& store, absl::string_view ns,
                                        const TestImageSpec& spec, bool write) {
  TestImage image;
  json diff_ids = json::array();
  for (int i = 0; i < spec.layers; ++i) {
    // Uncompressed "layers": the diff ID is the layer digest.
    std::string layer = absl::StrCat("layer ", i, " of image ", spec.seed);
    while (layer.size() < spec.layer_size) absl::StrAppend(&layer, " ", layer.size());
    image.layers.push_back(Describe(kMediaTypeOciLayer, layer));
    image.diff_ids.push_back(Sha256::Of(layer));
    diff_ids.push_back(Sha256::Of(layer));
    image.blobs.emplace_back(Sha256::Of(layer), layer);
  }
  json config = {{"architecture", spec.architecture},
                 {"os", spec.os},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
                 {"config", {{"Env", {"PATH=/bin"}}}}};
  if (!spec.variant.empty()) config["variant"] = spec.variant;
  if (!spec.user.empty()) config["config"]["User"] = spec.user;
  std::string config_bytes = config.dump();
  image.config = Describe(kMediaTypeOciConfig, config_bytes);
  image.blobs.emplace_back(image.config.digest, config_bytes);

  json layers = json::array();
  for (const Descriptor& l : image.layers) layers.push_back(ToJson(l));
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kMediaTypeOciManifest},
                   {"config", ToJson(image.config)},
                   {"layers", layers}};
  std::string manifest_bytes = manifest.dump();
  image.manifest = Describe(kMediaTypeOciManifest, manifest_bytes);
  image.manifest.platform = Platform{spec.os, spec.architecture, spec.variant, "", {}};
  image.blobs.emplace_back(image.manifest.digest, manifest_bytes);

  if (write) {
    for (const auto& [digest, data] : image.blobs) {
      if (absl::Status s = WriteBlob(store, ns, data); !s.ok()) return s;
    }
  }
  return image;
}

absl::StatusOr<std::pair<Descriptor, std::string>> MakeTestIndex(
    ContentStore& store, absl::string_view ns, const std::vector<TestImage>& images, bool write) {
  json manifests = json::array();
  for (const TestImage& i : images) manifests.push_back(ToJson(i.manifest));
  json index = {{"schemaVersion", 2}, {"mediaType", kMediaTypeOciIndex}, {"manifests", manifests}};
  std::string bytes = index.dump();
  if (write) {
    if (absl::Status s = WriteBlob(store, ns, bytes); !s.ok()) return s;
  }
  return std::make_pair(Describe(kMediaTypeOciIndex, bytes), bytes);
}

}  // namespace imaged::store
