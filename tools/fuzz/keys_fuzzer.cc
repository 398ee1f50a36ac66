// RocksDB keys and values as a damaged or hostile database holds them: every
// decoder answers or refuses, never reads past its input.
#include <cstdint>
#include <string>

#include "store/keys.h"
#include "store/records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  namespace s = imaged::store;
  (void)s::ParseNamespacedKey(in);
  (void)s::ParseCriIndexKey(in);
  (void)s::ParseAwaitingSuffix(in);
  (void)s::ParseCriDocUserSuffix(in);
  (void)s::ParseLeaseResourceSuffix(in);
  (void)s::DecodeContentRecord(in);
  (void)s::DecodeIngestRecord(in);
  (void)s::DecodeImageRecord(in);
  (void)s::DecodeCriMetaRecord(in);
  (void)s::DecodeNameRecord(in);
  (void)s::DecodeCriStatusRecord(in);
  (void)s::DecodeDigestList(in);
  absl::string_view view(in);
  absl::string_view field;
  while (s::GetLengthPrefixed(&view, &field)) {
  }
  return 0;
}
