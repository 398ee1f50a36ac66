// Image records (containerd's images.Store, namespace explicit) and the CRI
// view of them: the image-ID index kubelet's ImageService reads.
//
// Errors: NotFound (no such image), AlreadyExists (Create of a taken name),
// InvalidArgument (empty name, bad target, label too large, unknown field
// path, malformed filter, a CRI label that contradicts the content).
#ifndef IMAGED_STORE_IMAGE_STORE_H_
#define IMAGED_STORE_IMAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "store/labels.h"
#include "store/oci.h"

namespace imaged::store {

// Labels of containerd PR #7061 that imaged keeps on every resolved record.
inline constexpr char kLabelImageId[] = "io.cri-containerd.image-config-digest";
inline constexpr char kLabelChainId[] = "io.cri-containerd.image-chain-id";
inline constexpr char kLabelImageSize[] = "io.cri-containerd.image-size";
inline constexpr char kLabelSpecUser[] = "io.cri-containerd.image-spec-user";
// The four above: labels imaged derives from the content, not the client's.
inline constexpr const char* kDerivedLabels[] = {kLabelImageId, kLabelChainId, kLabelImageSize,
                                                 kLabelSpecUser};
// containerd's CRI labels.
inline constexpr char kLabelPinned[] = "io.cri-containerd.pinned";
inline constexpr char kPinnedValue[] = "pinned";
inline constexpr char kLabelManaged[] = "io.cri-containerd.image";

struct Image {
  std::string name;
  Labels labels;
  Descriptor target;  // platform unused
  absl::Time created_at;
  absl::Time updated_at;
};

class ImageStore {
 public:
  virtual ~ImageStore() = default;
  virtual absl::StatusOr<Image> Get(absl::string_view ns, absl::string_view name) = 0;
  // Images of `ns` matching any of `filters` (name, target.digest,
  // target.mediatype, labels.<key>, annotations.<key>), in name order.
  virtual absl::StatusOr<std::vector<Image>> List(absl::string_view ns,
                                                  absl::Span<const std::string> filters) = 0;
  // Under a `lease` (containerd's, "" for none) the image becomes a resource
  // of that lease ("images", name) in the same write; NotFound when the lease
  // does not exist. created_at and updated_at are `timestamp` when given
  // (containerd 2.x's source_date_epoch), else now.
  virtual absl::StatusOr<Image> Create(absl::string_view ns, const Image& image,
                                       absl::string_view lease,
                                       std::optional<absl::Time> timestamp) = 0;
  absl::StatusOr<Image> Create(absl::string_view ns, const Image& image,
                               absl::string_view lease = "") {
    return Create(ns, image, lease, std::nullopt);
  }
  // Create for a caller that must not block on the disk: `done` gets the
  // result once it is durable, on this thread or later on another (a store
  // that shares its syncs). By default it is Create, on this thread.
  using CreateDone = absl::AnyInvocable<void(absl::StatusOr<Image>) &&>;
  virtual void CreateThen(absl::string_view ns, const Image& image, absl::string_view lease,
                          std::optional<absl::Time> timestamp, CreateDone done) {
    std::move(done)(Create(ns, image, lease, timestamp));
  }
  // Updates the fields named by `fieldpaths` (labels, labels.<key>, target,
  // annotations, annotations.<key>; none means everything but created_at).
  // An empty label value removes the label. updated_at is `timestamp` when
  // given, else now.
  virtual absl::StatusOr<Image> Update(absl::string_view ns, const Image& image,
                                       absl::Span<const std::string> fieldpaths,
                                       absl::string_view lease,
                                       std::optional<absl::Time> timestamp) = 0;
  absl::StatusOr<Image> Update(absl::string_view ns, const Image& image,
                               absl::Span<const std::string> fieldpaths,
                               absl::string_view lease = "") {
    return Update(ns, image, fieldpaths, lease, std::nullopt);
  }
  // With `target_digest` (containerd 2.x's guarded delete), only while the
  // record's target has that digest: NotFound otherwise, and nothing changes.
  virtual absl::Status Delete(absl::string_view ns, absl::string_view name,
                              absl::string_view target_digest) = 0;
  absl::Status Delete(absl::string_view ns, absl::string_view name) {
    return Delete(ns, name, "");
  }
};

// What a pull or an import ends with: the image's records and the labels
// that tie its blobs together (containerd's gc.ref labels on the index and
// the manifest), written as one operation.
struct ImageCommit {
  // Each is created, or, when the name exists, gets this target and these
  // labels set (other labels stay, unless replace_labels; an empty value
  // removes one).
  std::vector<Image> images;
  bool replace_labels = false;
  // Records to delete in the same write (a name that does not exist is skipped).
  std::vector<std::string> deletes;
  // digest -> labels to set on that blob of the namespace (merged as above).
  std::vector<std::pair<std::string, Labels>> blob_labels;
};

class ImageCommitter {
 public:
  virtual ~ImageCommitter() = default;
  // Applies `commit` to `ns` in one write and returns the records written
  // (not the deleted ones), each with whether it existed before. NotFound when a labelled
  // blob or the `lease` is missing (nothing is written then);
  // InvalidArgument as for Create.
  struct Written {
    Image image;
    bool existed = false;
  };
  virtual absl::StatusOr<std::vector<Written>> Commit(absl::string_view ns,
                                                      const ImageCommit& commit,
                                                      absl::string_view lease) = 0;
};

// How CRI reports one record name: as a repo tag, a repo digest, or not at
// all (a bare "sha256:<id>" name, or one that does not parse). The index works
// it out once, when the name is written, so listing never parses names.
struct CriName {
  enum Kind : uint8_t { kNone = 0, kTag = 1, kDigest = 2, kTaggedDigest = 3 };
  Kind kind = kNone;
  std::string ref;  // normalised, e.g. "docker.io/library/busybox:1.36"
};
// Computes a name's CriName; supplied by cri/ (store/ does not parse references).
using CriNameFn = std::function<CriName(absl::string_view name)>;

// One resolved image as CRI sees it: every record whose target resolves to the
// same config digest is one image with several names.
struct CriImage {
  std::string id;                  // config digest
  std::vector<std::string> names;  // record names, sorted
  std::vector<CriName> refs;       // names[i] as CRI reports it
  int64_t size = 0;
  std::string chain_id;
  std::optional<int64_t> uid;
  std::string username;
  bool pinned = false;
};

// A record the index could not take in, and why.
struct UnresolvedImage {
  std::string ns;
  std::string name;
  std::string waiting_for;  // a digest whose arrival retries it, or ""
  std::string reason;
};

class CriImageIndex {
 public:
  using ImageFn = std::function<absl::Status(const CriImage&)>;
  virtual ~CriImageIndex() = default;
  // Every resolved image of `ns`, in image-ID order; one prefix scan.
  virtual absl::Status ListImages(absl::string_view ns, const ImageFn& fn) = 0;
  // The image with exactly this ID, or nullopt.
  virtual absl::StatusOr<std::optional<CriImage>> GetImage(absl::string_view ns,
                                                           absl::string_view id) = 0;
  // The image config (JSON) of a resolved image ID, for verbose status;
  // NotFound when `id` is not an image of `ns`.
  virtual absl::StatusOr<std::string> ImageConfigJson(absl::string_view ns, absl::string_view id) = 0;
  // The image ID a record name resolved to, or nullopt.
  virtual absl::StatusOr<std::optional<std::string>> ImageIdOfName(absl::string_view ns,
                                                                   absl::string_view name) = 0;
  // Up to `limit` image IDs starting with `id_prefix` ("sha256:<hex prefix>").
  virtual absl::StatusOr<std::vector<std::string>> ImageIdsWithPrefix(absl::string_view ns,
                                                                      absl::string_view id_prefix,
                                                                      size_t limit) = 0;
  // Deletes every record whose target resolves to `id`, and a record named
  // `id` itself, in one write, and returns the names deleted (none when there
  // was nothing to delete).
  virtual absl::StatusOr<std::vector<std::string>> RemoveImage(absl::string_view ns,
                                                               absl::string_view id) = 0;
  // A number that changes with every write to the index (in any namespace),
  // by the time the write is visible: an answer built from the index after
  // reading generation g stays the answer while Generation() is still g.
  virtual uint64_t Generation() const = 0;
  // The image IDs of `ns` whose index rows were written after generation
  // `since` (up to the current one, perhaps more), sorted; nullopt when that
  // is no longer known (too many writes since: then rebuild from a scan).
  virtual std::optional<std::vector<std::string>> ChangedSince(absl::string_view ns,
                                                               uint64_t since) const = 0;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_IMAGE_STORE_H_
