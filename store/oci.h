// OCI and Docker image documents, read the way containerd 1.6 reads them, and
// what the CRI plugin derives from them.
//
// An image record's target is resolved like containerd's images.Manifest:
//
//   target (index / manifest list) --ParseIndex--> descriptors
//       --SelectManifest(matcher)--> manifest descriptor   (may repeat: nested index)
//   manifest --ParseManifest--> config descriptor + layers
//   config   --ParseImageConfig--> User, rootfs.diff_ids, os/architecture
//
// and then, as containerd's CRI image store (pkg/cri/store/image) does:
//   image ID = the config descriptor's digest
//   chain ID = ChainId(config.diff_ids)
//   size     = ImageSize(descriptors walked, manifest)
//   uid / username = ParseImageUser(config.user)
//
// Fetching blobs is the caller's business; everything here works on bytes
// and values already in hand, is pure, and never throws.
//
// Errors: every parser returns InvalidArgument for anything it cannot accept
// (bad JSON, wrong shape, wrong types, invalid digests), naming the document
// kind and the offending field. Callers that read the bytes from the content
// store under a descriptor's media type, and so know the stored content is
// corrupt rather than the request, may map that to DataLoss themselves; a
// parser cannot tell the two apart.
//
// How closely the JSON reading follows Go's encoding/json (which containerd
// uses): a null field is the same as an absent one; object keys match field
// names exactly or ASCII-case-insensitively ("OS" is read as "os"); a
// duplicated key's last value wins; numbers must be integers that fit the
// field. Stricter than Go: the document must be a JSON object (Go accepts a
// bare `null`), a leading byte-order mark and invalid UTF-8 are rejected (Go
// rejects the first and replaces the second). Apart from the fields returned,
// only `mediaType` and `schemaVersion` are type-checked; a mistyped field
// imaged does not read (urls, data, history, ...) passes here, while Go's
// decoder would refuse the document.

#ifndef IMAGED_STORE_OCI_H_
#define IMAGED_STORE_OCI_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "store/labels.h"
#include "store/platform.h"

namespace imaged::store {

// OCI image-spec media types.
inline constexpr absl::string_view kMediaTypeOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr absl::string_view kMediaTypeOciManifest =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr absl::string_view kMediaTypeOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr absl::string_view kMediaTypeOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr absl::string_view kMediaTypeOciLayerGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr absl::string_view kMediaTypeOciLayerZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr absl::string_view kMediaTypeOciLayerNonDistributable =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr absl::string_view kMediaTypeOciLayerNonDistributableGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr absl::string_view kMediaTypeOciLayerNonDistributableZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

// Docker image manifest v2 media types.
inline constexpr absl::string_view kMediaTypeDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr absl::string_view kMediaTypeDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr absl::string_view kMediaTypeDockerConfig =
    "application/vnd.docker.container.image.v1+json";
inline constexpr absl::string_view kMediaTypeDockerLayer =
    "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr absl::string_view kMediaTypeDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr absl::string_view kMediaTypeDockerLayerForeign =
    "application/vnd.docker.image.rootfs.foreign.diff.tar";
inline constexpr absl::string_view kMediaTypeDockerLayerForeignGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
// Docker schema 1: recognized only so it can be refused (containerd 1.6 does
// not resolve it either; a document with `fsLayers` is rejected).
inline constexpr absl::string_view kMediaTypeDockerSchema1Manifest =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

// The OCI index or the Docker manifest list.
bool IsIndexType(absl::string_view media_type);
// The OCI manifest or the Docker v2 schema 2 manifest.
bool IsManifestType(absl::string_view media_type);
// The OCI config or the Docker image config.
bool IsConfigType(absl::string_view media_type);
// As containerd's images.IsLayerType: anything under
// "application/vnd.oci.image.layer." and the four Docker layer types, with
// any "+suffix" on the Docker ones (e.g. "+encrypted").
bool IsLayerType(absl::string_view media_type);

// A content descriptor: an entry of an index, a manifest's config or layer.
// `platform` is set when the document had one (index entries usually do) and
// holds what was written, not normalized.
struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  Labels annotations;
  std::optional<Platform> platform;
};

bool operator==(const Descriptor& a, const Descriptor& b);
bool operator!=(const Descriptor& a, const Descriptor& b);

// The `manifests` of an OCI image index or a Docker manifest list, in document
// order. Each digest is checked with ValidateDigest; sizes are taken as
// written (containerd's decoder accepts negative ones; ImageSize skips them);
// entries' media types are not checked (see SelectManifest).
// An absent or null `manifests` gives an empty list, as in containerd.
//
// Errors (InvalidArgument): not JSON or not an object; the document is a
// manifest (it has `config` or `layers`, or its `mediaType` is a manifest
// type) or schema 1 (`fsLayers`), which containerd refuses the same way;
// `manifests` or an entry of the wrong type; an invalid digest.
absl::StatusOr<std::vector<Descriptor>> ParseIndex(absl::string_view json);

// An image manifest: the config descriptor and the layers, bottom first.
struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};

// Parses an OCI image manifest or a Docker v2 schema 2 manifest. The config
// is required (its digest must be valid); `layers` may be absent or empty.
//
// Errors (InvalidArgument): not JSON or not an object; the document is an
// index (it has `manifests`, or its `mediaType` is an index type) or schema 1
// (`fsLayers`); a field of the wrong type; an invalid or missing digest.
absl::StatusOr<Manifest> ParseManifest(absl::string_view json);

// What imaged needs from an image config (OCI or Docker; same JSON shape).
struct ImageConfig {
  // config.User, verbatim ("" when absent). See ParseImageUser.
  std::string user;
  // rootfs.diff_ids, bottom layer first, each a valid digest.
  std::vector<std::string> diff_ids;
  // os, architecture, variant, os.version and os.features as written.
  Platform platform;
};

// Parses an image config.
//
// Errors (InvalidArgument): not JSON or not an object; `config`, `rootfs` or
// a returned field of the wrong type; a diff ID that is not a valid digest.
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json);

// The chain ID of a layer stack (OCI image-spec identity.ChainID):
// chain[0] = diff_ids[0], chain[i] = sha256(chain[i-1] + " " + diff_ids[i]),
// written "sha256:<hex>"; the result is the last chain entry, "" for no
// layers. The CRI plugin reports it in verbose ImageStatus and names the
// image's top snapshot with it. `diff_ids` are used as given (ParseImageConfig
// has validated them).
std::string ChainId(absl::Span<const std::string> diff_ids);

// The image user as the CRI reports it in Image.uid / Image.username.
struct ImageUser {
  std::optional<int64_t> uid;
  std::string username;
};

// containerd CRI's getUserFromImage, exactly:
//   ""                       -> neither
//   take the part before the first ':' (the group, if any, is dropped)
//   that part, read as Go's strconv.ParseInt(part, 10, 64) - optional '+' or
//   '-', decimal digits, within int64, nothing else (no spaces) - is the uid;
//   anything else, that part verbatim, is the username.
// So "0" -> uid 0, "1000:1000" -> uid 1000, "root:root" -> username "root",
// "-1" -> uid -1, "  " -> username "  ", "99999999999999999999" (overflow) ->
// username, ":1000" -> username "" (so, in effect, neither).
ImageUser ParseImageUser(absl::string_view user);

// The entry of an index that containerd's images.Manifest would descend into
// for `matcher`, or nullopt when there is none:
//   - entries with a platform the matcher rejects are dropped; entries
//     without a platform are kept;
//   - the rest are stably ordered by matcher.Less, platform-less entries last;
//   - the first one wins (ties keep document order).
// So a platform-less entry is chosen only when no entry's platform matches.
// containerd then reads that manifest's config and accepts it only if
// ConfigMatchesPlatform holds, and otherwise reports no match - it does not
// try the next platform-less entry. Callers must do the same.
//
// Media types are not looked at, as in containerd: the winner may be a nested
// index (descend again) or a type containerd does not resolve (containerd
// then fails with "unexpected media type ...: not found"; so should callers).
// An attestation entry ("unknown/unknown") is never chosen by a real
// platform's matcher.
//
// When the image target is itself a manifest rather than an index, containerd
// does not check its platform at all; neither should callers.
std::optional<Descriptor> SelectManifest(absl::Span<const Descriptor> manifests,
                                         const PlatformMatcher& matcher);

// The platform check containerd applies to a manifest reached through an
// index entry without a platform: the matcher must accept the config's os and
// architecture, normalized. The config's variant is ignored, as containerd
// ignores it (so an arm config counts as arm/v7).
bool ConfigMatchesPlatform(const ImageConfig& config, const PlatformMatcher& matcher);

// The image size the CRI reports, as containerd 1.6 computes it
// (containerd.Image.Size: a walk from the target that keeps only the first
// manifest of each index and adds up the sizes the descriptors declare, not
// the blobs' sizes on disk): the sizes of `path` - the image target and each
// descriptor chosen below it, down to and including the manifest's own
// descriptor - plus the manifest's config and layers. So the index and
// manifest documents count, not only layers and config. Negative (unknown)
// sizes count as zero, as containerd's walk skips them; the sum saturates at
// INT64_MAX.
//
// Difference from containerd: its size walk orders an index's entries
// without dropping non-matching ones first, so for an index whose only
// acceptable entries lack a platform it counts the first entry with one
// instead. imaged counts the manifest it actually resolved (`path`).
int64_t ImageSize(absl::Span<const Descriptor> path, const Manifest& manifest);

}  // namespace imaged::store

#endif  // IMAGED_STORE_OCI_H_
