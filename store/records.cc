#include "store/records.h"

#include "store/keys.h"

namespace imaged::store {
namespace {

constexpr char kContentFormat = 1;
constexpr char kIngestFormat = 1;

void PutTime(std::string* out, absl::Time t) {
  PutU64(out, static_cast<uint64_t>(absl::ToUnixNanos(t)));
}

bool GetTime(absl::string_view* in, absl::Time* t) {
  uint64_t ns;
  if (!GetU64(in, &ns)) return false;
  *t = absl::FromUnixNanos(static_cast<int64_t>(ns));
  return true;
}

bool GetFormat(absl::string_view* in, char want) {
  if (in->empty() || (*in)[0] != want) return false;
  in->remove_prefix(1);
  return true;
}

}  // namespace

std::string EncodeContentRecord(const ContentRecord& r) {
  std::string out(1, kContentFormat);
  PutU64(&out, static_cast<uint64_t>(r.size));
  PutTime(&out, r.created_at);
  PutTime(&out, r.updated_at);
  PutU32(&out, static_cast<uint32_t>(r.labels.size()));
  for (const auto& [k, v] : r.labels) {
    PutLengthPrefixed(&out, k);
    PutLengthPrefixed(&out, v);
  }
  return out;
}

absl::StatusOr<ContentRecord> DecodeContentRecord(absl::string_view in) {
  ContentRecord r;
  uint64_t size;
  uint32_t n;
  if (!GetFormat(&in, kContentFormat) || !GetU64(&in, &size) || !GetTime(&in, &r.created_at) ||
      !GetTime(&in, &r.updated_at) || !GetU32(&in, &n)) {
    return absl::DataLossError("malformed content record");
  }
  r.size = static_cast<int64_t>(size);
  for (uint32_t i = 0; i < n; ++i) {
    absl::string_view k, v;
    if (!GetLengthPrefixed(&in, &k) || !GetLengthPrefixed(&in, &v)) {
      return absl::DataLossError("malformed content record labels");
    }
    r.labels.emplace(std::string(k), std::string(v));
  }
  if (!in.empty()) return absl::DataLossError("trailing bytes in content record");
  return r;
}

std::string EncodeIngestRecord(const IngestRecord& r) {
  std::string out(1, kIngestFormat);
  PutU64(&out, static_cast<uint64_t>(r.total));
  PutLengthPrefixed(&out, r.expected);
  PutTime(&out, r.started_at);
  PutTime(&out, r.updated_at);
  return out;
}

absl::StatusOr<IngestRecord> DecodeIngestRecord(absl::string_view in) {
  IngestRecord r;
  uint64_t total;
  absl::string_view expected;
  if (!GetFormat(&in, kIngestFormat) || !GetU64(&in, &total) ||
      !GetLengthPrefixed(&in, &expected) || !GetTime(&in, &r.started_at) ||
      !GetTime(&in, &r.updated_at) || !in.empty()) {
    return absl::DataLossError("malformed ingest record");
  }
  r.total = static_cast<int64_t>(total);
  r.expected = std::string(expected);
  return r;
}

}  // namespace imaged::store
