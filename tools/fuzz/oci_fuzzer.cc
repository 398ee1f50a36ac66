// OCI and Docker index, manifest and config JSON as registries, archives and
// clients hand them over: parsing never crashes, and choosing a manifest for
// a platform and checking a config's platform work on whatever parsed.
#include <cstdint>
#include <string>

#include "store/oci.h"
#include "store/platform.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  static const imaged::store::PlatformMatcher* const matcher =
      new imaged::store::PlatformMatcher(imaged::store::DefaultPlatform());
  auto index = imaged::store::ParseIndex(in);
  if (index.ok()) (void)imaged::store::SelectManifest(*index, *matcher);
  auto manifest = imaged::store::ParseManifest(in);
  (void)manifest;
  auto config = imaged::store::ParseImageConfig(in);
  if (config.ok()) {
    (void)imaged::store::ConfigMatchesPlatform(*config, *matcher);
    (void)imaged::store::ChainId(config->diff_ids);
  }
  return 0;
}
