// Value encodings of the rows in keys.h. Private to store/: nothing outside it
// sees these bytes. Each record starts with a format byte so a later schema can
// tell old rows from new ones.
#ifndef IMAGED_STORE_RECORDS_H_
#define IMAGED_STORE_RECORDS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "store/labels.h"

namespace imaged::store {

// [content] value.
struct ContentRecord {
  int64_t size = 0;
  absl::Time created_at;
  absl::Time updated_at;
  Labels labels;
};
std::string EncodeContentRecord(const ContentRecord& r);
// DataLoss when `bytes` is not a ContentRecord.
absl::StatusOr<ContentRecord> DecodeContentRecord(absl::string_view bytes);

// [ingests] value. The offset is not stored: it is the size of the data file,
// which is the truth after a crash.
struct IngestRecord {
  int64_t total = 0;
  std::string expected;
  absl::Time started_at;
  absl::Time updated_at;
};
std::string EncodeIngestRecord(const IngestRecord& r);
absl::StatusOr<IngestRecord> DecodeIngestRecord(absl::string_view bytes);

// [images] value: a containerd image record.
struct ImageRecord {
  Labels labels;
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  Labels annotations;
  absl::Time created_at;
  absl::Time updated_at;
};
std::string EncodeImageRecord(const ImageRecord& r);
absl::StatusOr<ImageRecord> DecodeImageRecord(absl::string_view bytes);

// [cri_index] meta row: what CRI needs of one resolved image ID.
struct CriMetaRecord {
  int64_t size = 0;
  std::string chain_id;
  bool has_uid = false;
  int64_t uid = 0;
  std::string username;
};
std::string EncodeCriMetaRecord(const CriMetaRecord& r);
absl::StatusOr<CriMetaRecord> DecodeCriMetaRecord(absl::string_view bytes);

// [cri_index] name row. `kind` and `ref` are how CRI reports the name
// (CriName in image_store.h), worked out once when the name is indexed.
struct NameRecord {
  bool pinned = false;
  uint8_t kind = 0;
  std::string ref;
};
std::string EncodeNameRecord(const NameRecord& r);
absl::StatusOr<NameRecord> DecodeNameRecord(absl::string_view bytes);

// [cri_status] value: an image ID's [cri_index] meta row and name rows,
// as stored there, in key order.
struct CriStatusRecord {
  CriMetaRecord meta;
  std::vector<std::pair<std::string, NameRecord>> names;  // name, its row
};
// `meta` and each name's row are the encoded [cri_index] values.
std::string EncodeCriStatusRecord(absl::string_view meta,
                                  const std::vector<std::pair<std::string, std::string>>& names);
absl::StatusOr<CriStatusRecord> DecodeCriStatusRecord(absl::string_view bytes);

// [cri_docs] value of a name: the digests of the documents it resolved through.
std::string EncodeDigestList(const std::vector<std::string>& digests);
absl::StatusOr<std::vector<std::string>> DecodeDigestList(absl::string_view bytes);

}  // namespace imaged::store

#endif  // IMAGED_STORE_RECORDS_H_
