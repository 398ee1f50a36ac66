// What import.cc and export.cc share: the archive format's constants, the
// JSON as Go reads and writes it (containerd's importer and exporter are Go),
// and the walk plan. For cri/archive only (Bazel keeps it so).
#ifndef IMAGED_CRI_ARCHIVE_ARCHIVE_INTERNAL_H_
#define IMAGED_CRI_ARCHIVE_ARCHIVE_INTERNAL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "store/content_store.h"
#include "store/oci.h"
#include "store/platform.h"

namespace imaged::cri::archive_internal {

// Blobs are read and copied in pieces of this size.
inline constexpr size_t kChunk = 1 << 20;
// containerd's limit on the JSON files of an archive (oci-layout, index.json,
// manifest.json); the blobs inside are image documents (store/limits.h).
inline constexpr int64_t kJsonLimit = 20 << 20;

inline constexpr char kAnnotationImageName[] = "io.containerd.image.name";
inline constexpr char kAnnotationRefName[] = "org.opencontainers.image.ref.name";
inline constexpr char kOciLayoutFile[] = "oci-layout";
inline constexpr char kOciLayoutVersion[] = "1.0.0";

// Ingest refs unique to one import, so two imports of the same archive never
// wait on each other's ref lock; an ingest left by a crash is expired by the
// store. Also names an export's temporary file.
std::string RandomToken();

// A member of a JSON object matched as Go's encoding/json matches field
// names: exactly, else ASCII-case-insensitively; null counts as absent.
const nlohmann::json* Member(const nlohmann::json& obj, absl::string_view key);

// One entry of a docker-save manifest.json.
struct DockerEntry {
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};
absl::StatusOr<std::vector<DockerEntry>> ParseDockerManifest(absl::string_view json);

// Go's json.Marshal of an ocispec.Descriptor (fields in struct order, map
// keys sorted), so generated documents hash as containerd's do.
nlohmann::ordered_json DescriptorJson(const store::Descriptor& d);
// Compact, as Go writes it; invalid UTF-8 replaced.
std::string Dump(const nlohmann::ordered_json& j);

// The first bytes of a layer say whether it is compressed, as containerd's
// compression.DetectCompression reads them (gzip or zstd; both are given the
// gzip media type, as containerd 1.6 does).
bool LooksCompressed(absl::string_view head);

// Which index entries a walk descends into, and which must be complete:
// containerd's FilterPlatforms keeps entries without a platform and those the
// matcher accepts (all of them with all_platforms); of those, the one the
// platform resolves to (SelectManifest) must be there, the others may be
// missing, as `ctr images export` writes one platform.
struct ChildPlan {
  store::Descriptor desc;
  bool required;
};
std::vector<ChildPlan> PlanChildren(const std::vector<store::Descriptor>& children,
                                    bool parent_required, const store::PlatformMatcher& matcher,
                                    bool all_platforms);

}  // namespace imaged::cri::archive_internal

#endif  // IMAGED_CRI_ARCHIVE_ARCHIVE_INTERNAL_H_
