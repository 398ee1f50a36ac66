// The CRI scale benchmark's dataset (issue 6): N images as a node that pulled
// them through containerd's CRI holds them, each with the three names CRI
// writes (`repo:tag`, `repo@sha256:<manifest>`, `sha256:<image id>`), a
// config of its own (so N distinct image IDs) and two of a few tiny shared
// layers. Generated deterministically from N, so every process of a run (the
// benchmark, its baseline servers) sees the same images without a file.
//
// The same images are written as OCI archives for `ctr images import`, and
// loaded into imaged through its Content and Images APIs (LoadThroughApi).
#ifndef IMAGED_TOOLS_BENCH_DATASET_H_
#define IMAGED_TOOLS_BENCH_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/content_store.h"
#include "store/image_store.h"

namespace imaged::bench {

struct Blob {
  std::string media_type;
  std::string digest;
  std::string bytes;
};

struct DatasetImage {
  int index = 0;
  std::string repo;         // "registry.example.com/bench/app-000042"
  std::string tag_name;     // repo + ":v1"
  std::string digest_name;  // repo + "@" + manifest digest
  std::string id;           // config digest, also the third name
  Blob config;
  Blob manifest;
  std::vector<int> layers;  // indexes into Dataset::layers
  std::string user;         // config User ("" for none)
};

struct DatasetOptions {
  int images = 30000;
  int shared_layers = 4;
  int layers_per_image = 2;
  // Names of images made after the dataset (mixed load) start after this.
  int first_index = 0;
};

class Dataset {
 public:
  static Dataset Make(const DatasetOptions& options);
  // One image, as Make makes image `index` (also for indexes past the end,
  // which the mixed load creates while it runs).
  static DatasetImage MakeImage(int index, const std::vector<Blob>& layers, int layers_per_image);
  static std::vector<Blob> MakeLayers(int count);

  const std::vector<Blob>& layers() const { return layers_; }
  const std::vector<DatasetImage>& images() const { return images_; }
  const DatasetOptions& options() const { return options_; }

  // Writes the images [begin, end) as an OCI archive that
  // `ctr -n k8s.io images import --no-unpack` takes: index.json holds an
  // entry per image for its tag and one for its digest reference
  // (io.containerd.image.name); containerd's CRI adds the "sha256:<id>" name
  // when it takes the image in, as it does for every image it did not pull.
  absl::Status WriteOciArchive(const std::string& path, int begin, int end) const;

 private:
  DatasetOptions options_;
  std::vector<Blob> layers_;
  std::vector<DatasetImage> images_;
};

// containerd refuses an index.json over 20 MiB; this many images keep an
// archive's index.json well under it.
inline constexpr int kImagesPerArchive = 10000;

// Writes one blob unless the namespace holds it (AlreadyExists is success),
// committed with `labels`.
absl::Status WriteBlob(store::ContentStore& content, absl::string_view ns, const Blob& blob,
                       const store::Labels& labels = {});

// The gc.ref labels containerd's import and pull put on a manifest for its
// config and layers. Without them a collection takes both, in imaged as in
// containerd (the loader's blobs carried none until 2026-12-06: a
// collection after the mixed load's deletes emptied such a root).
absl::StatusOr<store::Labels> ManifestGcLabels(const Blob& manifest);

// An image's config, then its manifest with ManifestGcLabels (its layers are
// the dataset's shared ones, written first); without them if `!gc_labels`.
absl::Status WriteImageBlobs(store::ContentStore& content, absl::string_view ns,
                             const DatasetImage& image, bool gc_labels = true);
// Creates image `image`'s three records (AlreadyExists is success).
absl::Status WriteRecords(store::ImageStore& images, absl::string_view ns,
                          const DatasetImage& image);
// Writes image `image`'s config and manifest, then its three records.
absl::Status LoadImage(store::ContentStore& content, store::ImageStore& images,
                       absl::string_view ns, const DatasetImage& image);

struct LoadStats {
  double seconds = 0;
  double blob_seconds = 0;  // of which writing the blobs
  int64_t blobs = 0;
  int64_t records = 0;
};
// Loads the dataset through the Content and Images APIs with `concurrency`
// workers sharing the two stores (one gRPC connection): every blob, then
// every record. `gc_labels = false` loads a root as the loader wrote them
// before 2026-12-06, whose configs and layers a collection takes (to measure
// such a sweep).
absl::StatusOr<LoadStats> LoadThroughApi(const Dataset& dataset, store::ContentStore& content,
                                         store::ImageStore& images, absl::string_view ns,
                                         int concurrency, bool gc_labels = true);

}  // namespace imaged::bench

#endif  // IMAGED_TOOLS_BENCH_DATASET_H_
