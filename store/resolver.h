// The one walk from an image's target to the manifest and config its
// platform resolves to, as containerd's images.Manifest walks it:
//
//   target (index / manifest list) --ParseIndex + SelectManifest--> entry
//       (repeated for nested indexes, at most kMaxIndexNesting deep)
//   manifest --ParseManifest--> config descriptor + layers
//   config   --ParseImageConfig--> user, diff IDs, os/architecture
//
// with containerd's platform rules: an index entry with a platform must
// match it; a manifest reached through an entry without one must prove its
// platform through its config (ConfigMatchesPlatform), and no other entry
// is tried when it does not; a target that is itself a manifest is not
// checked at all.
//
// Where the documents come from is the caller's: the image store reads its
// content store, the puller fetches from a registry, the mirror copies from
// containerd, archive import reads what it wrote. Each passes a
// DocumentSource; the walk, its limits and its errors are the same for all.
#ifndef IMAGED_STORE_RESOLVER_H_
#define IMAGED_STORE_RESOLVER_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "store/content_store.h"
#include "store/labels.h"
#include "store/oci.h"
#include "store/platform.h"

namespace imaged::store {

enum class DocumentKind { kIndex, kManifest, kConfig };

// "index", "manifest", "config": for messages and ingest refs.
absl::string_view DocumentKindName(DocumentKind kind);

// Where a walk reads its documents.
class DocumentSource {
 public:
  virtual ~DocumentSource() = default;
  // The bytes of `desc`, at most `max_bytes` of them: FailedPrecondition
  // (or any other error) when it is larger, NotFound when the source does
  // not have it. What the source does besides (copying, labelling, leasing)
  // is its own business.
  virtual absl::StatusOr<std::string> Fetch(const Descriptor& desc, DocumentKind kind,
                                            int64_t max_bytes) = 0;
};

// Documents read from a content store: from namespace `ns`, or else from
// `fallback_ns` when one is given (the image store's records may name blobs
// that containerd's content proxy wrote under ""). Notes every blob asked
// for and the one that was not there.
class ContentDocuments : public DocumentSource {
 public:
  ContentDocuments(ContentStore* content, absl::string_view ns,
                   std::optional<std::string> fallback_ns = std::nullopt);

  absl::StatusOr<std::string> Fetch(const Descriptor& desc, DocumentKind kind,
                                    int64_t max_bytes) override;

  // Reads as if `digests` (not owned; outlives this) were gone from
  // namespace `ns`: how a walk will go once a removal is written.
  void Exclude(absl::string_view ns, const absl::flat_hash_set<std::string>& digests) {
    excluded_ns_ = std::string(ns);
    excluded_ = &digests;
  }

  const std::vector<std::string>& asked() const { return asked_; }
  std::vector<std::string> take_asked() { return std::move(asked_); }
  // The document neither namespace had ("" when none), and its kind.
  const std::string& missing() const { return missing_; }
  DocumentKind missing_kind() const { return missing_kind_; }

 private:
  ContentStore* const content_;
  const std::string ns_;
  const std::optional<std::string> fallback_ns_;
  std::string excluded_ns_;
  const absl::flat_hash_set<std::string>* excluded_ = nullptr;
  std::vector<std::string> asked_;
  std::string missing_;
  DocumentKind missing_kind_ = DocumentKind::kIndex;
};

enum class ConfigRead {
  kAlways,      // the caller wants the config (user, diff IDs)
  kWhenNeeded,  // only where the platform rule needs it
};

// How far a walk got. Filled as it goes, so a caller whose walk stopped (a
// document not there yet) still knows what it read.
struct ResolvedImage {
  // The target, then each index entry chosen; the last one is the
  // manifest's descriptor once the walk reached it.
  std::vector<Descriptor> path;
  // Set once the manifest has been read.
  std::optional<Manifest> manifest;
  // Set once the config has been read (always with ConfigRead::kAlways).
  std::optional<ImageConfig> config;
  std::string config_bytes;
  // Whether the manifest was reached through an entry without a platform.
  bool via_platformless_entry = false;

  // The config's digest once the manifest was read ("" before). Only an OK
  // walk makes it the image ID: one that failed on the config's platform
  // has read the manifest too.
  std::string image_id() const { return manifest ? manifest->config.digest : std::string(); }
};

// Walks `target` for `matcher` through `source`, filling `out` as it goes.
//
// Errors, each naming the document ("index sha256:...: ..."):
//   - the source's own (NotFound: it lacks that document);
//   - InvalidArgument: a document that does not parse (store/oci.h);
//   - NotFound: an index has no entry for the platform, or the entry without
//     a platform that was chosen has a config of another platform
//     (containerd: "no match for platform in manifest: not found");
//   - NotFound: the target or a chosen entry is neither an index nor a
//     manifest (containerd: "unexpected media type ...: not found");
//   - FailedPrecondition: indexes nested deeper than kMaxIndexNesting, or a
//     document larger than its limit (kMaxImageDocumentBytes,
//     kMaxImageConfigBytes).
// `platform_name` is only for messages ("linux/amd64").
absl::Status ResolveImage(DocumentSource& source, const Descriptor& target,
                          const PlatformMatcher& matcher, absl::string_view platform_name,
                          ConfigRead config_read, ResolvedImage* out);

// The gc.ref labels containerd puts on a parent for the children it keeps
// alive (containerd's ChildGCLabels): "containerd.io/gc.ref.content." plus
// "config" for a config, "m.<i>" for a manifest, "l.<i>" for a layer and
// "<i>" for anything else (a nested index), numbered per kind in order.
Labels ChildGcLabels(absl::Span<const Descriptor> children);

}  // namespace imaged::store

#endif  // IMAGED_STORE_RESOLVER_H_
