// Small, real OCI images written into a ContentStore, for tests: a config,
// layers, a manifest and optionally an index, each a proper JSON blob.
#ifndef IMAGED_STORE_TEST_IMAGES_H_
#define IMAGED_STORE_TEST_IMAGES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "store/content_store.h"
#include "store/oci.h"

namespace imaged::store {

struct TestImageSpec {
  std::string seed = "a";  // makes the layers, hence the image ID, distinct
  std::string user;        // config.User
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
  int layers = 2;
  size_t layer_size = 0;  // each layer padded to at least this many bytes
};

struct TestImage {
  Descriptor manifest;  // with platform set, for indexes
  Descriptor config;
  std::vector<Descriptor> layers;
  std::vector<std::string> diff_ids;
  // The blobs by digest, for tests that write some of them later.
  std::vector<std::pair<std::string, std::string>> blobs;  // digest, bytes
};

// Builds the image; writes its blobs into `store` under `ns` when `write`.
absl::StatusOr<TestImage> MakeTestImage(ContentStore& store, absl::string_view ns,
                                        const TestImageSpec& spec, bool write = true);
// An OCI index over `images`; written when `write`. Returns its descriptor and bytes.
absl::StatusOr<std::pair<Descriptor, std::string>> MakeTestIndex(
    ContentStore& store, absl::string_view ns, const std::vector<TestImage>& images,
    bool write = true);
// Writes one blob (AlreadyExists counts as success).
absl::Status WriteBlob(ContentStore& store, absl::string_view ns, absl::string_view data);

}  // namespace imaged::store

#endif  // IMAGED_STORE_TEST_IMAGES_H_
