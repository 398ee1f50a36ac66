// What one request may carry, in one place; docs/limits.md lists each limit
// with containerd's value beside it.
//
// Every check is InvalidArgument naming the field and quoting at most
// kMaxQuoted bytes of it. Callers check before they take a lock or write
// anything. Only writes check: a record an older version stored beyond a
// limit stays listable, readable and deletable.
#ifndef IMAGED_STORE_LIMITS_H_
#define IMAGED_STORE_LIMITS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace imaged::store {

// containerd's identifier rule, for namespaces:
// [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, at most 76 bytes.
inline constexpr size_t kMaxIdentifierLength = 76;
// A lease id: containerd takes any non-empty string (its own random ids,
// "<nanos>-<URL-safe base64>", break the identifier rule); ours caps it.
inline constexpr size_t kMaxLeaseIdLength = 256;
// One label, key and value together (containerd's), and all the labels of
// one object together (ours: containerd has none). `ctr images import`
// labels the archive's index with a gc.ref per manifest: about 110 bytes an
// image, 2.2 MB for an archive of 20,000 names; 8 MiB leaves every answer
// that carries them under the 16 MiB message limit.
inline constexpr size_t kMaxLabelSize = 4096;
inline constexpr size_t kMaxLabelsSize = 8 << 20;
// An image record's name, and a CRI image reference: a distribution
// reference is at most 255 bytes of name, a 128-byte tag and a digest.
inline constexpr size_t kMaxImageNameLength = 512;
// An ingest ref (free-form in containerd: "layer-sha256:<hex>", "my-ref").
inline constexpr size_t kMaxRefLength = 256;
// A lease resource: its type ("content", "snapshots/overlayfs") and id (a
// digest, an image name, a snapshot key).
inline constexpr size_t kMaxResourceTypeLength = 128;
inline constexpr size_t kMaxResourceIdLength = 512;
// Repeated fields of one request.
inline constexpr size_t kMaxFilters = 64;
inline constexpr size_t kMaxFilterLength = 4096;
// An update mask names each label it sets: ctr images import's update of
// its index names one per manifest of the archive.
inline constexpr size_t kMaxFieldPaths = 1 << 17;
inline constexpr size_t kMaxGcNamespaces = 256;
// An image's documents, wherever they are read from (store/resolver.h):
// indexes nested in a target at most this deep (containerd: no limit), an
// index or manifest at most 4 MiB (distribution's limit for a manifest
// PUT), a config at most 8 MiB (none in containerd; real ones are KiBs).
inline constexpr int kMaxIndexNesting = 4;
inline constexpr int64_t kMaxImageDocumentBytes = 4 << 20;
inline constexpr int64_t kMaxImageConfigBytes = 8 << 20;
// containerd 2.x's Streaming and Transfer services: a stream id (its own
// are "<kind>-<nanos>-<4 base64 chars>"; containerd takes any string), the
// streams open at once (containerd: no limit), and a transfer's repeated
// fields (platforms, extra references, unpack configurations, headers).
inline constexpr size_t kMaxStreamIdLength = 256;
inline constexpr size_t kMaxOpenStreams = 1024;
inline constexpr size_t kMaxTransferItems = 64;
// Transfer calls running at once (each holds a server thread for as long as
// its pull, import or export takes; containerd: no limit).
inline constexpr int kMaxConcurrentTransfers = 16;
// Content Reads of a window over 64 KiB streaming at once: each holds up to
// two 1 MiB chunks (its own and gRPC's copy) until its client takes them.
// Smaller windows (containerd's proxy reads 32 KiB) are answered in one
// message and do not count. containerd: no limit.
inline constexpr int kMaxConcurrentLargeReads = 64;
// grpc.health.v1: a service name (gRPC's own health service: no limit), and
// Watch calls open at once (each holds a server thread; gRPC: no limit).
inline constexpr size_t kMaxHealthServiceLength = 256;
inline constexpr int kMaxHealthWatchers = 8;
// Images.Create calls queued in the image store or waiting for their WAL
// fsync, and the bytes of their images (each is held until it is answered;
// containerd: no limit, a goroutine each).
inline constexpr size_t kMaxCreatesWaiting = 1024;
inline constexpr size_t kMaxCreateBytesWaiting = 64 << 20;
// Blobs one BlobBatchCommitter::CommitBlobs call commits together, and
// their bytes (an import's small documents: they are held in memory).
inline constexpr size_t kMaxBatchBlobs = 256;
inline constexpr size_t kMaxBatchBytes = 4 << 20;
// The largest request message gRPC takes (containerd's 16 MiB).
inline constexpr int kMaxReceiveMessageBytes = 16 << 20;
// Error messages quote at most kMaxQuoted bytes of a field and are cut at
// kMaxErrorMessage bytes as they leave the server.
inline constexpr size_t kMaxQuoted = 128;
inline constexpr size_t kMaxErrorMessage = 1024;

// `text` in quotes, cut to kMaxQuoted bytes with its full size said:
// "\"abc...\" (5242880 bytes)".
std::string Quote(absl::string_view text);

// `what` ("namespace") by containerd's identifier rule.
absl::Status ValidateIdentifier(absl::string_view what, absl::string_view id);
// Non-empty, at most kMaxLeaseIdLength bytes, any bytes (as containerd).
absl::Status ValidateLeaseId(absl::string_view id);
// Non-empty, at most kMaxImageNameLength bytes (containerd asks only the
// first).
absl::Status ValidateImageName(absl::string_view name);
// A CRI image reference as a request carries it ("" is allowed: it names
// nothing): at most kMaxImageNameLength bytes.
absl::Status ValidateImageRef(absl::string_view ref);
// An ingest ref: non-empty, at most kMaxRefLength bytes, any bytes (refs
// never name a path).
absl::Status ValidateIngestRef(absl::string_view ref);
// A lease resource's type and id lengths (their meaning is the lease store's).
absl::Status ValidateResourceSize(absl::string_view type, absl::string_view id);
// At most kMaxFilters filters of at most kMaxFilterLength bytes each.
absl::Status ValidateFilters(absl::Span<const std::string> filters);
// At most kMaxFieldPaths paths of an update mask.
absl::Status ValidateFieldPaths(absl::Span<const std::string> paths);
// `message` cut to kMaxErrorMessage bytes (at a UTF-8 boundary).
std::string CutErrorMessage(absl::string_view message);

}  // namespace imaged::store

#endif  // IMAGED_STORE_LIMITS_H_
