#include "store/records.h"

#include "store/keys.h"

namespace imaged::store {
namespace {

constexpr char kContentFormat = 1;
constexpr char kIngestFormat = 1;
constexpr char kImageFormat = 1;
constexpr char kCriMetaFormat = 1;
constexpr char kNameFormat = 1;
constexpr char kCriStatusFormat = 1;

void PutLabels(std::string* out, const Labels& labels) {
  PutU32(out, static_cast<uint32_t>(labels.size()));
  for (const auto& [k, v] : labels) {
    PutLengthPrefixed(out, k);
    PutLengthPrefixed(out, v);
  }
}

bool GetLabels(absl::string_view* in, Labels* labels) {
  uint32_t n;
  if (!GetU32(in, &n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    absl::string_view k, v;
    if (!GetLengthPrefixed(in, &k) || !GetLengthPrefixed(in, &v)) return false;
    labels->emplace(std::string(k), std::string(v));
  }
  return true;
}

bool GetString(absl::string_view* in, std::string* s) {
  absl::string_view v;
  if (!GetLengthPrefixed(in, &v)) return false;
  *s = std::string(v);
  return true;
}

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
  PutLabels(&out, r.labels);
  return out;
}

absl::StatusOr<ContentRecord> DecodeContentRecord(absl::string_view in) {
  ContentRecord r;
  uint64_t size;
  if (!GetFormat(&in, kContentFormat) || !GetU64(&in, &size) || !GetTime(&in, &r.created_at) ||
      !GetTime(&in, &r.updated_at) || !GetLabels(&in, &r.labels) || !in.empty()) {
    return absl::DataLossError("malformed content record");
  }
  r.size = static_cast<int64_t>(size);
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

std::string EncodeImageRecord(const ImageRecord& r) {
  std::string out(1, kImageFormat);
  PutLabels(&out, r.labels);
  PutLengthPrefixed(&out, r.media_type);
  PutLengthPrefixed(&out, r.digest);
  PutU64(&out, static_cast<uint64_t>(r.size));
  PutLabels(&out, r.annotations);
  PutTime(&out, r.created_at);
  PutTime(&out, r.updated_at);
  return out;
}

absl::StatusOr<ImageRecord> DecodeImageRecord(absl::string_view in) {
  ImageRecord r;
  uint64_t size;
  if (!GetFormat(&in, kImageFormat) || !GetLabels(&in, &r.labels) || !GetString(&in, &r.media_type) ||
      !GetString(&in, &r.digest) || !GetU64(&in, &size) || !GetLabels(&in, &r.annotations) ||
      !GetTime(&in, &r.created_at) || !GetTime(&in, &r.updated_at) || !in.empty()) {
    return absl::DataLossError("malformed image record");
  }
  r.size = static_cast<int64_t>(size);
  return r;
}

std::string EncodeCriMetaRecord(const CriMetaRecord& r) {
  std::string out(1, kCriMetaFormat);
  PutU64(&out, static_cast<uint64_t>(r.size));
  PutLengthPrefixed(&out, r.chain_id);
  out.push_back(r.has_uid ? 1 : 0);
  PutU64(&out, static_cast<uint64_t>(r.uid));
  PutLengthPrefixed(&out, r.username);
  return out;
}

absl::StatusOr<CriMetaRecord> DecodeCriMetaRecord(absl::string_view in) {
  CriMetaRecord r;
  uint64_t size, uid;
  if (!GetFormat(&in, kCriMetaFormat) || !GetU64(&in, &size) || !GetString(&in, &r.chain_id) ||
      in.empty()) {
    return absl::DataLossError("malformed cri meta record");
  }
  r.has_uid = in[0] != 0;
  in.remove_prefix(1);
  if (!GetU64(&in, &uid) || !GetString(&in, &r.username) || !in.empty()) {
    return absl::DataLossError("malformed cri meta record");
  }
  r.size = static_cast<int64_t>(size);
  r.uid = static_cast<int64_t>(uid);
  return r;
}

std::string EncodeNameRecord(const NameRecord& r) {
  std::string out(1, kNameFormat);
  out.push_back(r.pinned ? 1 : 0);
  out.push_back(static_cast<char>(r.kind));
  out.append(r.ref);
  return out;
}

absl::StatusOr<NameRecord> DecodeNameRecord(absl::string_view in) {
  if (in.size() < 3 || in[0] != kNameFormat) return absl::DataLossError("malformed name record");
  return NameRecord{in[1] != 0, static_cast<uint8_t>(in[2]), std::string(in.substr(3))};
}

std::string EncodeCriStatusRecord(absl::string_view meta,
                                  const std::vector<std::pair<std::string, std::string>>& names) {
  size_t n = 1 + 8 + meta.size();
  for (const auto& [name, row] : names) n += 8 + name.size() + row.size();
  std::string out;
  out.reserve(n);
  out.push_back(kCriStatusFormat);
  PutLengthPrefixed(&out, meta);
  PutU32(&out, static_cast<uint32_t>(names.size()));
  for (const auto& [name, row] : names) {
    PutLengthPrefixed(&out, name);
    PutLengthPrefixed(&out, row);
  }
  return out;
}

absl::StatusOr<CriStatusRecord> DecodeCriStatusRecord(absl::string_view in) {
  const absl::Status malformed = absl::DataLossError("malformed cri status record");
  CriStatusRecord r;
  absl::string_view meta;
  uint32_t n = 0;
  if (!GetFormat(&in, kCriStatusFormat) || !GetLengthPrefixed(&in, &meta) || !GetU32(&in, &n)) {
    return malformed;
  }
  absl::StatusOr<CriMetaRecord> m = DecodeCriMetaRecord(meta);
  if (!m.ok()) return m.status();
  r.meta = *std::move(m);
  // Each name takes at least 8 bytes: a count beyond that is malformed, and
  // is not reserved.
  if (n > in.size() / 8) return malformed;
  r.names.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    absl::string_view name, row;
    if (!GetLengthPrefixed(&in, &name) || !GetLengthPrefixed(&in, &row)) return malformed;
    absl::StatusOr<NameRecord> rec = DecodeNameRecord(row);
    if (!rec.ok()) return rec.status();
    r.names.emplace_back(std::string(name), *std::move(rec));
  }
  if (!in.empty()) return malformed;
  return r;
}

std::string EncodeDigestList(const std::vector<std::string>& digests) {
  std::string out;
  for (const std::string& d : digests) PutLengthPrefixed(&out, d);
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeDigestList(absl::string_view in) {
  std::vector<std::string> out;
  while (!in.empty()) {
    absl::string_view d;
    if (!GetLengthPrefixed(&in, &d)) return absl::DataLossError("malformed digest list");
    out.emplace_back(d);
  }
  return out;
}

}  // namespace imaged::store
