#include "store/keys.h"

#include "absl/strings/str_cat.h"
#include "store/digest.h"

namespace imaged::store {

const std::vector<std::string>& ColumnFamilyNames() {
  static const auto* names =
      new std::vector<std::string>{"default",   "content",         "blob_owners", "ingests",
                                   "images",    "cri_index",       "cri_configs", "unresolved",
                                   "awaiting",  "leases",          "lease_resources",
                                   "cri_names", "cri_status",      "cri_docs",    "blob_data"};
  return *names;
}

void PutU32(std::string* out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out->append(b, 4);
}

void PutU64(std::string* out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v >> 32));
  PutU32(out, static_cast<uint32_t>(v));
}

void PutLengthPrefixed(std::string* out, absl::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s.data(), s.size());
}

bool GetU32(absl::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(in->data());
  *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  in->remove_prefix(4);
  return true;
}

bool GetU64(absl::string_view* in, uint64_t* v) {
  uint32_t hi, lo;
  if (!GetU32(in, &hi) || !GetU32(in, &lo)) return false;
  *v = (uint64_t{hi} << 32) | lo;
  return true;
}

bool GetLengthPrefixed(absl::string_view* in, absl::string_view* s) {
  uint32_t n;
  absl::string_view rest = *in;
  if (!GetU32(&rest, &n) || rest.size() < n) return false;
  *s = rest.substr(0, n);
  rest.remove_prefix(n);
  *in = rest;
  return true;
}

std::string NamespacePrefix(absl::string_view ns) {
  std::string key;
  PutLengthPrefixed(&key, ns);
  return key;
}

std::string ContentKey(absl::string_view ns, absl::string_view digest) {
  return absl::StrCat(NamespacePrefix(ns), digest);
}

std::optional<NamespacedKey> ParseNamespacedKey(absl::string_view key) {
  NamespacedKey out;
  if (!GetLengthPrefixed(&key, &out.ns)) return std::nullopt;
  out.name = key;
  return out;
}

std::string BlobOwnerPrefix(absl::string_view digest) {
  std::string key;
  PutLengthPrefixed(&key, digest);
  return key;
}

std::string BlobDataKey(absl::string_view digest) { return std::string(digest); }

std::string BlobOwnerKey(absl::string_view digest, absl::string_view ns) {
  return absl::StrCat(BlobOwnerPrefix(digest), ns);
}

std::string IngestKey(absl::string_view ns, absl::string_view ref) {
  return absl::StrCat(NamespacePrefix(ns), ref);
}

std::string IngestFileName(absl::string_view ns, absl::string_view ref) {
  return Sha256::Hex(IngestKey(ns, ref));
}

std::string ImageKey(absl::string_view ns, absl::string_view name) {
  return absl::StrCat(NamespacePrefix(ns), name);
}

std::string CriNameToIdKey(absl::string_view ns, absl::string_view name) {
  return ImageKey(ns, name);
}

std::string CriIdPrefix(absl::string_view ns, absl::string_view image_id) {
  std::string key = NamespacePrefix(ns);
  PutLengthPrefixed(&key, image_id);
  return key;
}

std::string CriNameKey(absl::string_view ns, absl::string_view image_id, absl::string_view name) {
  return absl::StrCat(CriIdPrefix(ns, image_id), name);
}

std::optional<CriIndexKey> ParseCriIndexKey(absl::string_view key) {
  CriIndexKey out;
  if (!GetLengthPrefixed(&key, &out.ns) || !GetLengthPrefixed(&key, &out.image_id)) {
    return std::nullopt;
  }
  out.name = key;
  return out;
}

std::string AwaitingPrefix(absl::string_view digest) { return BlobOwnerPrefix(digest); }

std::string AwaitingKey(absl::string_view digest, absl::string_view ns, absl::string_view name) {
  return absl::StrCat(AwaitingPrefix(digest), NamespacePrefix(ns), name);
}

std::optional<NamespacedKey> ParseAwaitingSuffix(absl::string_view suffix) {
  return ParseNamespacedKey(suffix);
}

std::string CriDocsOfKey(absl::string_view ns, absl::string_view name) {
  return absl::StrCat("n", NamespacePrefix(ns), name);
}

std::string CriDocUsersPrefix(absl::string_view digest) {
  return absl::StrCat("d", BlobOwnerPrefix(digest));
}

std::string CriDocUserKey(absl::string_view digest, absl::string_view ns, absl::string_view name) {
  return absl::StrCat(CriDocUsersPrefix(digest), NamespacePrefix(ns), name);
}

std::optional<NamespacedKey> ParseCriDocUserSuffix(absl::string_view suffix) {
  return ParseNamespacedKey(suffix);
}

std::string LeaseKey(absl::string_view ns, absl::string_view id) {
  return absl::StrCat(NamespacePrefix(ns), id);
}

std::string LeaseResourcePrefix(absl::string_view ns, absl::string_view lease) {
  std::string key = NamespacePrefix(ns);
  PutLengthPrefixed(&key, lease);
  return key;
}

std::string LeaseResourceKey(absl::string_view ns, absl::string_view lease,
                             absl::string_view type, absl::string_view resource) {
  std::string key = LeaseResourcePrefix(ns, lease);
  PutLengthPrefixed(&key, type);
  key.append(resource.data(), resource.size());
  return key;
}

std::optional<LeaseResourceSuffix> ParseLeaseResourceSuffix(absl::string_view suffix) {
  LeaseResourceSuffix out;
  if (!GetLengthPrefixed(&suffix, &out.type)) return std::nullopt;
  out.id = suffix;
  return out;
}

std::string PrefixUpperBound(absl::string_view prefix) {
  std::string bound(prefix);
  while (!bound.empty()) {
    unsigned char last = static_cast<unsigned char>(bound.back());
    if (last != 0xff) {
      bound.back() = static_cast<char>(last + 1);
      return bound;
    }
    bound.pop_back();
  }
  return bound;
}

}  // namespace imaged::store
