// The on-disk schema of imaged's metadata: column families and key encoding.
// Every key imaged writes is built and parsed here and nowhere else.
//
// Schema version 4 (version 1 had no [cri_names] or [cri_status], version
// 2 no [cri_docs], they are built when an older database is opened; version
// 3 had no [blob_data], which starts empty: its blobs stay files).
//
//   <root>/
//   ├── meta/                      RocksDB
//   │   ├── [default]
//   │   │   ├── "schema_version"                      -> u32 BE
//   │   │   └── "content_usage"                       -> u64 bytes, u64 files (blobs/ on disk),
//   │   │                                                u64 bytes, u64 blobs ([blob_data];
//   │   │                                                absent in schema 3)
//   │   ├── [content]               one row per blob a namespace holds
//   │   │   └── lp(namespace) digest                  -> ContentRecord
//   │   ├── [blob_owners]           reverse of [content]: who still holds a blob
//   │   │   └── lp(digest) namespace                  -> ""
//   │   ├── [blob_data]             the bytes of small blobs (documents), instead
//   │   │   │                       of a file: written with the blob's first
//   │   │   │                       [content] row, deleted with its last
//   │   │   └── digest                                -> the blob's bytes
//   │   ├── [ingests]               one row per in-progress write
//   │   │   └── lp(namespace) ref                     -> IngestRecord
//   │   ├── [images]                containerd image records
//   │   │   └── lp(namespace) name                    -> ImageRecord
//   │   ├── [cri_index]             the image-ID index CRI reads: per resolved
//   │   │   │                       image ID one meta row, then its names
//   │   │   ├── lp(namespace) lp(image id)            -> CriMetaRecord
//   │   │   └── lp(namespace) lp(image id) name       -> NameRecord
//   │   ├── [cri_configs]           per resolved image ID its config, for verbose
//   │   │   │                       ImageStatus only (kept out of the ListImages scan)
//   │   │   └── lp(namespace) lp(image id)            -> config JSON
//   │   ├── [cri_names]             derived from [cri_index]: each indexed name's
//   │   │   │                       image ID (one point read resolves a name)
//   │   │   └── lp(namespace) name                    -> image id
//   │   ├── [cri_status]            derived from [cri_index]: per image ID its
//   │   │   │                       meta row and name rows in one value (one
//   │   │   │                       point read answers ImageStatus)
//   │   │   └── lp(namespace) lp(image id)            -> CriStatusRecord
//   │   ├── [unresolved]            records whose target could not be resolved
//   │   │   └── lp(namespace) name                    -> reason (text)
//   │   ├── [awaiting]              blobs an unresolved record waits for
//   │   │   └── lp(digest) lp(namespace) name         -> ""
//   │   ├── [cri_docs]              the documents (indexes, manifest, config)
//   │   │   │                       each record's walk read, both ways: a
//   │   │   │                       removed one re-resolves its readers
//   │   │   ├── "n" lp(namespace) name                -> lp(digest)...
//   │   │   └── "d" lp(digest) lp(namespace) name     -> ""
//   │   ├── [leases]                containerd leases
//   │   │   └── lp(namespace) id                      -> LeaseRecord
//   │   └── [lease_resources]       what each lease holds
//   │       └── lp(namespace) lp(lease id) lp(type) resource id -> ""
//   ├── blobs/sha256/<hex>         committed, verified content (containerd's layout)
//   │                              larger than the store's inline limit
//   └── ingest/<IngestFileName>    bytes of an in-progress write (renamed into blobs/ at commit)
//
// lp(x) is x prefixed with its length as a u32 big-endian, so a namespace (or
// digest) prefix never matches a longer one and prefix scans are exact. The last
// field of a key is not length-prefixed: it runs to the end of the key, which
// lets refs carry any byte, NUL and '/' included.
//
// Image IDs are "sha256:" + 64 hex, so lp(image id) has a fixed length and a
// truncated ID is a prefix scan of [cri_index] too. The meta row's key is a
// prefix of its name rows' keys and sorts first, so ListImages is one scan that
// meets each ID's meta row and then its names.
//
// [cri_names] and [cri_status] are never written on their own: every batch
// that puts or deletes [cri_index] rows gets them recomputed for the image
// IDs it touches (RocksDbImageStore::StageDerivedRows), in the same batch.
//
// The namespace "" is the content-proxy namespace: calls that arrive without a
// containerd-namespace header (containerd's proxy plugin sends none).
#ifndef IMAGED_STORE_KEYS_H_
#define IMAGED_STORE_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace imaged::store {

inline constexpr uint32_t kSchemaVersion = 4;
inline constexpr absl::string_view kSchemaVersionKey = "schema_version";
inline constexpr absl::string_view kContentUsageKey = "content_usage";

// Column families, in the order they are opened; index 0 is RocksDB's default.
enum class Cf : int {
  kDefault = 0,
  kContent,
  kBlobOwners,
  kIngests,
  kImages,
  kCriIndex,
  kCriConfigs,
  kUnresolved,
  kAwaiting,
  kLeases,
  kLeaseResources,
  kCriNames,
  kCriStatus,
  kCriDocs,
  kBlobData,
  kCount,
};
// The RocksDB name of each column family, indexed by Cf.
const std::vector<std::string>& ColumnFamilyNames();

// u32 big-endian helpers, shared with the record codecs.
void PutU32(std::string* out, uint32_t v);
void PutU64(std::string* out, uint64_t v);
void PutLengthPrefixed(std::string* out, absl::string_view s);
// Each reads from the front of *in and advances it; false when *in is too short.
bool GetU32(absl::string_view* in, uint32_t* v);
bool GetU64(absl::string_view* in, uint64_t* v);
bool GetLengthPrefixed(absl::string_view* in, absl::string_view* s);

// [content]
std::string ContentKey(absl::string_view ns, absl::string_view digest);
// The prefix every [content] key of `ns` starts with.
std::string NamespacePrefix(absl::string_view ns);
// Splits a [content] or [ingests] key into namespace and last field.
struct NamespacedKey {
  absl::string_view ns;
  absl::string_view name;  // digest for [content], ref for [ingests]
};
std::optional<NamespacedKey> ParseNamespacedKey(absl::string_view key);

// [blob_owners]
std::string BlobOwnerKey(absl::string_view digest, absl::string_view ns);
// [blob_data]
std::string BlobDataKey(absl::string_view digest);
std::string BlobOwnerPrefix(absl::string_view digest);

// [ingests]
std::string IngestKey(absl::string_view ns, absl::string_view ref);
// The directory name under <root>/ingest/ for an ingest: the hex SHA-256 of its
// [ingests] key, so no ref, however odd, ever names a path.
std::string IngestFileName(absl::string_view ns, absl::string_view ref);

// [images], [unresolved]: lp(namespace) name, as ContentKey.
std::string ImageKey(absl::string_view ns, absl::string_view name);

// [cri_index]
// Also the meta row's key, and the [cri_configs] key.
std::string CriIdPrefix(absl::string_view ns, absl::string_view image_id);
std::string CriNameKey(absl::string_view ns, absl::string_view image_id, absl::string_view name);
// Splits a [cri_index] key; name is empty for the meta row.
struct CriIndexKey {
  absl::string_view ns;
  absl::string_view image_id;
  absl::string_view name;
};
std::optional<CriIndexKey> ParseCriIndexKey(absl::string_view key);

// [cri_names]: lp(namespace) name, as ImageKey. [cri_status]: CriIdPrefix.
std::string CriNameToIdKey(absl::string_view ns, absl::string_view name);

// [awaiting]
std::string AwaitingPrefix(absl::string_view digest);
std::string AwaitingKey(absl::string_view digest, absl::string_view ns, absl::string_view name);
// Splits the part after AwaitingPrefix(digest) into namespace and name.
std::optional<NamespacedKey> ParseAwaitingSuffix(absl::string_view suffix);

// [cri_docs]: an indexed name's documents, and each document's users.
std::string CriDocsOfKey(absl::string_view ns, absl::string_view name);
std::string CriDocUsersPrefix(absl::string_view digest);
std::string CriDocUserKey(absl::string_view digest, absl::string_view ns, absl::string_view name);
// Splits the part after CriDocUsersPrefix(digest) into namespace and name.
std::optional<NamespacedKey> ParseCriDocUserSuffix(absl::string_view suffix);

// [leases]: lp(namespace) id, as ContentKey.
std::string LeaseKey(absl::string_view ns, absl::string_view id);

// [lease_resources]
std::string LeaseResourcePrefix(absl::string_view ns, absl::string_view lease);
std::string LeaseResourceKey(absl::string_view ns, absl::string_view lease,
                             absl::string_view type, absl::string_view resource);
// Splits the part after LeaseResourcePrefix into type and resource id.
struct LeaseResourceSuffix {
  absl::string_view type;
  absl::string_view id;
};
std::optional<LeaseResourceSuffix> ParseLeaseResourceSuffix(absl::string_view suffix);

// The smallest key greater than every key that starts with `prefix`
// (the upper bound of a prefix scan); empty when there is none.
std::string PrefixUpperBound(absl::string_view prefix);

}  // namespace imaged::store

#endif  // IMAGED_STORE_KEYS_H_
