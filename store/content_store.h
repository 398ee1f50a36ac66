// The content store: content-addressed blobs with labels, and resumable
// ingests that become blobs on commit. Semantics follow containerd's
// content.Store; every call names its namespace explicitly ("" is the
// content-proxy namespace, see keys.h).
//
// Errors: NotFound (no such blob/ingest in the namespace), AlreadyExists
// (committing or expecting a digest the namespace holds), FailedPrecondition
// (size or digest mismatch at commit), Unavailable (ref locked by another
// writer), OutOfRange (read past the end), InvalidArgument (bad digest, label,
// filter, field path or offset).
#ifndef IMAGED_STORE_CONTENT_STORE_H_
#define IMAGED_STORE_CONTENT_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "store/labels.h"

namespace imaged::store {

struct ContentInfo {
  std::string digest;
  int64_t size = 0;
  absl::Time created_at;
  absl::Time updated_at;
  Labels labels;
};

struct IngestStatus {
  std::string ref;
  int64_t offset = 0;
  int64_t total = 0;
  std::string expected;
  absl::Time started_at;
  absl::Time updated_at;
};

// Reads one committed blob. Safe to keep reading after the blob is deleted.
class ContentReader {
 public:
  virtual ~ContentReader() = default;
  virtual int64_t Size() const = 0;
  // Reads up to `n` bytes at `offset` into `out` (replacing its contents).
  // Returns fewer bytes only at the end of the blob, none at its end;
  // OutOfRange past the end, InvalidArgument for a negative offset.
  virtual absl::Status ReadAt(int64_t offset, size_t n, std::string* out) = 0;
};

// An open ingest, holding its ref's lock until destroyed.
class ContentWriter {
 public:
  virtual ~ContentWriter() = default;
  virtual absl::StatusOr<IngestStatus> Status() = 0;
  // Digest of the bytes written so far.
  virtual std::string Digest() = 0;
  // Appends at the current offset.
  virtual absl::Status Write(absl::string_view data) = 0;
  // Discards what was written: only 0 is supported, which restarts the ingest.
  virtual absl::Status Truncate(int64_t size) = 0;
  // Makes the bytes a blob: durable, verified against `size` (when > 0) and
  // `expected` (when set), then visible with `labels`. The writer is done after.
  virtual absl::Status Commit(int64_t size, absl::string_view expected, const Labels& labels) = 0;
};

// Disk use of committed blobs (each blob once, however many namespaces hold
// it): files under blobs/, and small blobs kept in the metadata database
// instead (RocksDbContentStore::Options::inline_max_bytes).
struct ContentUsage {
  int64_t bytes = 0;  // of the files
  int64_t files = 0;
  int64_t inline_bytes = 0;
  int64_t inline_blobs = 0;

  int64_t total_bytes() const { return bytes + inline_bytes; }
};

class ContentStore {
 public:
  using WalkFn = std::function<absl::Status(const ContentInfo&)>;

  virtual ~ContentStore() = default;

  virtual absl::StatusOr<ContentInfo> Info(absl::string_view ns, absl::string_view digest) = 0;
  // Updates the fields named by `fieldpaths` ("labels", "labels.<key>"; none
  // means all labels) from `info`; an empty label value removes that label.
  virtual absl::StatusOr<ContentInfo> Update(absl::string_view ns, const ContentInfo& info,
                                             absl::Span<const std::string> fieldpaths) = 0;
  // Calls `fn` for each blob of `ns` matching any of `filters` (containerd's
  // filter syntax: digest, size, labels.<key>), in digest order; stops at the
  // first error `fn` returns and returns it.
  virtual absl::Status Walk(absl::string_view ns, absl::Span<const std::string> filters,
                            const WalkFn& fn) = 0;
  virtual absl::Status Delete(absl::string_view ns, absl::string_view digest) = 0;
  virtual absl::StatusOr<std::unique_ptr<ContentReader>> Reader(absl::string_view ns,
                                                                absl::string_view digest) = 0;

  virtual absl::StatusOr<IngestStatus> Status(absl::string_view ns, absl::string_view ref) = 0;
  // Ingests of `ns` matching any of `filters` (field path: ref).
  virtual absl::StatusOr<std::vector<IngestStatus>> ListStatuses(
      absl::string_view ns, absl::Span<const std::string> filters) = 0;
  // Opens (creating or resuming) the ingest `ref`. `total` and `expected` are
  // optional expectations (0 and ""). AlreadyExists when `expected` is already
  // held by the namespace. Under a `lease` (containerd's, "" for none) the
  // ingest and then the committed blob are resources of that lease, written in
  // the same batch as they are; NotFound when the lease does not exist.
  virtual absl::StatusOr<std::unique_ptr<ContentWriter>> Writer(absl::string_view ns,
                                                                absl::string_view ref,
                                                                int64_t total,
                                                                absl::string_view expected,
                                                                absl::string_view lease) = 0;
  absl::StatusOr<std::unique_ptr<ContentWriter>> Writer(absl::string_view ns,
                                                        absl::string_view ref, int64_t total,
                                                        absl::string_view expected) {
    return Writer(ns, ref, total, expected, "");
  }
  virtual absl::Status Abort(absl::string_view ns, absl::string_view ref) = 0;
};

// What a store that can make many small blobs durable together offers
// (RocksDbContentStore): an import's manifests, configs and indexes, held
// whole in memory, committed as one batch instead of one ingest each.
class BlobBatchCommitter {
 public:
  virtual ~BlobBatchCommitter() = default;
  struct Blob {
    absl::string_view digest;
    absl::string_view data;
  };
  struct BatchResult {
    absl::Status status;        // the first failure
    size_t failed = 0;          // the blob it is about, when it is about one
    std::vector<bool> written;  // per blob: false when `ns` held it already
  };
  // Commits `blobs` (each hashed here and checked against its digest) into
  // `ns`, under `lease` as Writer does: a blob `ns` or another namespace
  // holds already is shared, not written. On failure, blobs before `failed`
  // may be committed; none is half-written. At most kMaxBatchBlobs blobs.
  virtual BatchResult CommitBlobs(absl::string_view ns, absl::Span<const Blob> blobs,
                                  absl::string_view lease) = 0;
};

// The whole of blob `digest` of `ns`, read in one call: the store's error
// (NotFound when `ns` lacks it), or FailedPrecondition when it is larger than
// `max_bytes` (documents, not layers, are read whole).
absl::StatusOr<std::string> ReadWholeBlob(ContentStore& store, absl::string_view ns,
                                          absl::string_view digest, int64_t max_bytes);

// Writes `data` as the whole of ingest `ref` (`writer`, from the start) and
// commits it as blob `expected`. AlreadyExists when another writer committed
// that blob first, which callers count as written. On any other failure the
// writer is closed and the ingest aborted, so nothing is left behind.
absl::Status CommitWhole(ContentStore& store, absl::string_view ns, absl::string_view ref,
                         std::unique_ptr<ContentWriter> writer, absl::string_view data,
                         absl::string_view expected);

}  // namespace imaged::store

#endif  // IMAGED_STORE_CONTENT_STORE_H_
