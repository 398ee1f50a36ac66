// Image archives: import an OCI archive or a `docker save` archive into the
// stores, and export images as an OCI archive, the way `ctr images import` and
// `ctr images export` (containerd 1.6) do, so images move between imaged and
// containerd (or skopeo, or docker load) with the same image IDs.
//
// Everything here works on the store interfaces only, so imagectl runs it
// client-side over gRPC (plugin::RemoteContentStore / RemoteImageStore) and
// tests run it against the RocksDB stores.
//
// Import, one pass over the tar (libarchive; gzip/zstd/xz-compressed tars are
// read too), nothing extracted to disk:
//
//   blobs/sha256/<hex>     streamed through ContentStore::Writer, hashed on
//                          the way and committed only if the hash matches the
//                          name (a blob the namespace holds already is hashed
//                          and skipped)
//   oci-layout, index.json,
//   manifest.json          kept in memory (at most 20 MiB each, as containerd)
//   any other file         kept in memory when small (docker-save configs,
//                          json, VERSION), else streamed into the store
//                          (docker-save `<id>/layer.tar`)
//
// then, with the whole archive seen (containerd writes oci-layout last):
//   - an oci-layout ("imageLayoutVersion": "1.0.0") makes it an OCI archive:
//     index.json's entries are the images;
//   - otherwise manifest.json makes it a docker-save archive: each entry's
//     Config and Layers (paths in the tar; symlinks followed) become a Docker
//     schema 2 manifest, byte for byte the one containerd's importer writes,
//     which is written as a blob and is the image's target; layers get
//     `application/vnd.docker.image.rootfs.diff.tar`(`.gzip` when compressed);
//   - each entry is walked as containerd's importer walks it: index entries
//     for the platform (entries without a platform included) or, with
//     `all_platforms`, all of them; manifests to their config and layers.
//     Every blob of the manifest the platform resolves to must be in the
//     archive or already in the store; blobs of other platforms may be
//     missing (`ctr images export` writes one platform). Walked parents get
//     containerd's GC labels (containerd.io/gc.ref.content.*) as ctr sets them;
//   - only when all of that succeeded are image records written, one per
//     named entry: created, or, when the name exists, its target replaced
//     (as ctr does). No other labels are added.
//
// Names, as `ctr images import`: an entry's `io.containerd.image.name`
// annotation is used as is; otherwise its `org.opencontainers.image.ref.name`:
// a full reference (it has '/', ':' or '@') as is, a bare tag joined to the
// base name ("base:tag"). With `base_name` set, full references outside that
// repository are skipped (ctr's --base-name filter); without it the base is
// "import-<yyyy-mm-dd>". docker-save RepoTags are normalised as Docker does
// (`busybox` -> `docker.io/library/busybox:latest`). Unnamed entries create
// no image unless `digest_refs` (ctr --digests) names them "<base>@<digest>".
//
// Export writes an OCI archive (pax tar): oci-layout, index.json (one entry
// per image: its target descriptor with `io.containerd.image.name` = the
// record's name and `org.opencontainers.image.ref.name` = the reference's
// tag or "@digest" part, as ctr writes them), a Docker-compatible
// manifest.json (as ctr: config and layer paths and familiar RepoTags of
// the manifest each image resolves to for the platform), then
// `blobs/sha256/<hex>` for the targets and everything below them: indexes,
// the manifests for the platform (every manifest with `all_platforms`),
// configs and layers. Blobs are read in 1 MiB chunks and their digests
// checked while they are copied. Without `all_platforms`, manifests for the
// platform other than the one it resolves to (amd64 also matches 386) are
// written only if all their blobs are present.
//
// Errors name the archive and the entry or digest:
//   InvalidArgument     not a tar; neither oci-layout nor manifest.json;
//                       unsupported OCI layout version; bad JSON; a RepoTag
//                       that does not parse; an image that is not an index
//                       or a manifest (export)
//   DataLoss            a blob whose bytes do not match its name or its
//                       descriptor's size; a truncated or damaged tar; a
//                       store blob that does not match its digest (export)
//   FailedPrecondition  an OCI archive without index.json; a blob an image
//                       needs that is neither in the archive nor the store
//                       (import) or not in the store (export)
//   NotFound            an exported image that does not exist
// and statuses of the stores and of the read/write callbacks pass through.
#ifndef IMAGED_CRI_ARCHIVE_ARCHIVE_H_
#define IMAGED_CRI_ARCHIVE_ARCHIVE_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "store/content_store.h"
#include "store/image_store.h"
#include "store/lease_store.h"
#include "store/oci.h"
#include "cri/archive/tar_reader.h"
#include "store/platform.h"

namespace imaged::cri {

struct ImportOptions {
  // ctr --base-name: the repository bare-tag names join, and the only one
  // full ref.name references may name. Empty: "import-<date of `now`>".
  std::string base_name;
  // ctr --digests: also name each entry "<base>@<its digest>".
  bool digest_refs = false;
  // The platform whose blobs must be complete (imaged's `platform` setting).
  store::Platform platform = store::DefaultPlatform();
  // Walk and require every platform of an index (ctr --all-platforms).
  bool all_platforms = false;
  // For the default base name, in local time.
  absl::Time now = absl::Now();
  // containerd lease the blobs and records are written under, so a
  // collector leaves a half-done import alone ("" for none).
  std::string lease;

  // containerd 2.x's Transfer import names (an ImageStore with one prefix
  // reference): `base_name` is used as given, full references outside it
  // are kept only with `allow_foreign` (the reference's allow_overwrite),
  // and an io.containerd.image.name is dropped when that translation would
  // change it.
  bool transfer_naming = false;
  bool allow_foreign = false;
  // With digest_refs: no digest name for an entry that has a name.
  bool skip_digest_for_named = false;
  // Labels set on every record written, replacing its labels (ctr 2.x
  // --label). Empty: a record's labels are left as they are.
  store::Labels labels;
};

struct ImportedImage {
  std::string name;
  store::Descriptor target;
  // The config digest the target resolves to for the platform ("" when it
  // does not resolve: an entry for another platform only).
  std::string image_id;
  bool existed = false;  // the name was there before (its target replaced)
};

struct ImportResult {
  std::vector<ImportedImage> images;  // in index order
  int64_t blobs_written = 0;          // new blobs committed
  int64_t blobs_present = 0;          // blobs the store held already
};

// Writes all of `data`.
using ArchiveWriteFn = std::function<absl::Status(absl::string_view data)>;

// Imports the archive `read` yields into namespace `ns`; `source` names it
// in errors.
absl::StatusOr<ImportResult> Import(store::ContentStore* content, store::ImageStore* images,
                                    absl::string_view ns, const ArchiveReadFn& read,
                                    absl::string_view source, const ImportOptions& options);
// Import under `options.lease`, or, when that is empty and `leases` is
// given, under a temporary lease ("<lease_prefix>-...", expiring by itself
// after a day should the caller die) deleted when the import is done, so a
// collector leaves what the import wrote alone until the records hold it.
// The import's error comes first; a lease that cannot be deleted fails an
// import that succeeded.
absl::StatusOr<ImportResult> ImportUnderLease(store::ContentStore* content,
                                              store::ImageStore* images,
                                              store::LeaseStore* leases, absl::string_view ns,
                                              const ArchiveReadFn& read, absl::string_view source,
                                              absl::string_view lease_prefix,
                                              ImportOptions options);
// Imports the archive at `path` ("-" reads stdin); with `leases`, as
// ImportUnderLease does.
absl::StatusOr<ImportResult> ImportFile(store::ContentStore* content, store::ImageStore* images,
                                        absl::string_view ns, const std::string& path,
                                        const ImportOptions& options,
                                        store::LeaseStore* leases = nullptr,
                                        absl::string_view lease_prefix = "");

struct ExportOptions {
  store::Platform platform = store::DefaultPlatform();
  bool all_platforms = false;
  // ctr --skip-manifest-json: no Docker manifest.json.
  bool skip_docker_manifest = false;
};

// Writes the images `names` of `ns` as an OCI archive to `write`. Each name
// is looked up as given, then normalised (`busybox` ->
// `docker.io/library/busybox:latest`). Nothing is written before every image
// and blob has been found, so a missing blob fails before the first byte;
// a blob that turns out corrupt while it is copied fails mid-stream.
absl::Status Export(store::ContentStore* content, store::ImageStore* images, absl::string_view ns,
                    const std::vector<std::string>& names, const ArchiveWriteFn& write,
                    const ExportOptions& options);
// Exports to `path` ("-" writes stdout) through a temporary file in the same
// directory that is fsynced and renamed over `path` only on success, so a
// failed export leaves no partial file.
absl::Status ExportFile(store::ContentStore* content, store::ImageStore* images,
                        absl::string_view ns, const std::vector<std::string>& names,
                        const std::string& path, const ExportOptions& options);

// containerd's ociReferenceName: the tag of a full reference ("1.36" of
// "docker.io/library/busybox:1.36"), "@<digest>" for a digest reference,
// "tag@digest" for both, "" for a name with neither, and the whole name when
// it has no host part that parses.
std::string OciReferenceName(absl::string_view name);

}  // namespace imaged::cri

#endif  // IMAGED_CRI_ARCHIVE_ARCHIVE_H_
