#include "store/oci.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "store/digest.h"

namespace imaged::store {
namespace {

// Keys keep document order so that "the last of several matching keys wins"
// can be decided the way Go's decoder decides it.
using Json = nlohmann::ordered_json;

absl::string_view TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "a number";
    default:
      return "an invalid value";
  }
}

// Reads the fields of one JSON object with encoding/json's rules (see oci.h):
// a key names a field exactly or ASCII-case-insensitively, the last such key
// wins, and null is the same as absent. Errors name the document kind and the
// field's path, e.g. `image index: manifests[1].size: expected an integer`.
class ObjectReader {
 public:
  ObjectReader(const Json& object, absl::string_view kind, std::string path)
      : object_(object), kind_(kind), path_(std::move(path)) {}

  // The value of `key`, or nullptr when absent or null.
  const Json* Find(absl::string_view key) const {
    const Json* found = nullptr;
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      if (absl::EqualsIgnoreCase(it.key(), key)) found = &it.value();
    }
    if (found != nullptr && found->is_null()) return nullptr;
    return found;
  }

  // Whether `key` appears at all, null included (containerd's shape check
  // keeps the raw bytes of a field, so even `"manifests": null` counts).
  bool Has(absl::string_view key) const {
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      if (absl::EqualsIgnoreCase(it.key(), key)) return true;
    }
    return false;
  }

  std::string FieldPath(absl::string_view key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
  }

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(kind_, ": ", FieldPath(key), ": ", what));
  }

  absl::Status TypeError(absl::string_view key, absl::string_view expected, const Json& got) const {
    return Error(key, absl::StrCat("expected ", expected, ", got ", TypeName(got)));
  }

  absl::Status String(absl::string_view key, std::string* out) const {
    out->clear();
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_string()) return TypeError(key, "a string", *v);
    *out = v->get<std::string>();
    return absl::OkStatus();
  }

  absl::Status Int64(absl::string_view key, int64_t* out) const {
    *out = 0;
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (v->is_number_integer() && !v->is_number_unsigned()) {
      *out = v->get<int64_t>();
      return absl::OkStatus();
    }
    if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(key, "integer out of range");
      }
      *out = static_cast<int64_t>(u);
      return absl::OkStatus();
    }
    return TypeError(key, "an integer", *v);
  }

  // A JSON array of strings; a null element reads as "" (Go leaves the
  // element zero).
  absl::Status StringList(absl::string_view key, std::vector<std::string>* out) const {
    out->clear();
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return TypeError(key, "an array", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& e = (*v)[i];
      if (e.is_null()) {
        out->emplace_back();
      } else if (e.is_string()) {
        out->push_back(e.get<std::string>());
      } else {
        return TypeError(absl::StrCat(key, "[", i, "]"), "a string", e);
      }
    }
    return absl::OkStatus();
  }

  // A JSON object of strings; a null value reads as "".
  absl::Status StringMap(absl::string_view key, Labels* out) const {
    out->clear();
    const Json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_object()) return TypeError(key, "an object", *v);
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (it.value().is_null()) {
        (*out)[it.key()] = "";
      } else if (it.value().is_string()) {
        (*out)[it.key()] = it.value().get<std::string>();
      } else {
        return TypeError(absl::StrCat(key, ".", it.key()), "a string", it.value());
      }
    }
    return absl::OkStatus();
  }

  // The object under `key`, or nullptr when absent or null.
  absl::StatusOr<const Json*> Object(absl::string_view key) const {
    const Json* v = Find(key);
    if (v == nullptr) return nullptr;
    if (!v->is_object()) return TypeError(key, "an object", *v);
    return v;
  }

  absl::string_view kind() const { return kind_; }

 private:
  const Json& object_;
  absl::string_view kind_;
  std::string path_;
};

absl::StatusOr<Json> ParseObject(absl::string_view text, absl::string_view kind) {
  // nlohmann skips a UTF-8 byte-order mark; Go's decoder refuses it.
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, ": invalid JSON: leading byte-order mark"));
  }
  Json doc;
  try {
    doc = Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // The parser quotes the bytes it stopped at, which may be anything;
    // keep the status message printable ASCII.
    std::string what = e.what();
    for (char& c : what) {
      if (!absl::ascii_isprint(static_cast<unsigned char>(c))) c = '?';
    }
    return absl::InvalidArgumentError(absl::StrCat(kind, ": invalid JSON: ", what));
  }
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, ": expected a JSON object, got ", TypeName(doc)));
  }
  return doc;
}

absl::Status ReadPlatform(const ObjectReader& r, Platform* p) {
  if (absl::Status s = r.String("os", &p->os); !s.ok()) return s;
  if (absl::Status s = r.String("architecture", &p->architecture); !s.ok()) {
    return s;
  }
  if (absl::Status s = r.String("variant", &p->variant); !s.ok()) return s;
  if (absl::Status s = r.String("os.version", &p->os_version); !s.ok()) {
    return s;
  }
  return r.StringList("os.features", &p->os_features);
}

// Reads the descriptor `j` (at `path` within a `kind` document).
absl::Status ReadDescriptor(const Json& j, absl::string_view kind, const std::string& path,
                            Descriptor* d) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, ": ", path, ": expected an object, got ", TypeName(j)));
  }
  ObjectReader r(j, kind, path);
  if (absl::Status s = r.String("mediaType", &d->media_type); !s.ok()) return s;
  if (absl::Status s = r.String("digest", &d->digest); !s.ok()) return s;
  if (absl::Status s = ValidateDigest(d->digest); !s.ok()) {
    return r.Error("digest", s.message());
  }
  if (absl::Status s = r.Int64("size", &d->size); !s.ok()) return s;
  if (absl::Status s = r.StringMap("annotations", &d->annotations); !s.ok()) {
    return s;
  }
  absl::StatusOr<const Json*> platform = r.Object("platform");
  if (!platform.ok()) return platform.status();
  d->platform.reset();
  if (*platform != nullptr) {
    ObjectReader pr(**platform, kind, r.FieldPath("platform"));
    Platform p;
    if (absl::Status s = ReadPlatform(pr, &p); !s.ok()) return s;
    d->platform = std::move(p);
  }
  return absl::OkStatus();
}

// The checks containerd makes before decoding a document under a manifest or
// index media type: no schema 1, and not the other kind of document.
absl::Status CheckShape(const ObjectReader& r, bool want_index) {
  if (r.Has("fsLayers")) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.kind(), ": Docker schema 1 manifests (fsLayers) are not supported"));
  }
  std::string media_type;
  if (absl::Status s = r.String("mediaType", &media_type); !s.ok()) return s;
  // Go decodes schemaVersion into an int, so a non-integer one is an error
  // there too.
  int64_t schema_version = 0;
  if (absl::Status s = r.Int64("schemaVersion", &schema_version); !s.ok()) {
    return s;
  }
  if (want_index) {
    if (r.Has("config") || r.Has("layers") || IsManifestType(media_type)) {
      return absl::InvalidArgumentError(
          absl::StrCat(r.kind(), ": expected an index but found a manifest"));
    }
  } else {
    if (r.Has("manifests") || IsIndexType(media_type)) {
      return absl::InvalidArgumentError(
          absl::StrCat(r.kind(), ": expected a manifest but found an index"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsIndexType(absl::string_view media_type) {
  return media_type == kMediaTypeOciIndex || media_type == kMediaTypeDockerManifestList;
}

bool IsManifestType(absl::string_view media_type) {
  return media_type == kMediaTypeOciManifest || media_type == kMediaTypeDockerManifest;
}

bool IsConfigType(absl::string_view media_type) {
  return media_type == kMediaTypeOciConfig || media_type == kMediaTypeDockerConfig;
}

bool IsLayerType(absl::string_view media_type) {
  if (absl::StartsWith(media_type, "application/vnd.oci.image.layer.")) {
    return true;
  }
  absl::string_view base = media_type.substr(0, media_type.find('+'));
  return base == kMediaTypeDockerLayer || base == kMediaTypeDockerLayerGzip ||
         base == kMediaTypeDockerLayerForeign || base == kMediaTypeDockerLayerForeignGzip;
}

bool operator==(const Descriptor& a, const Descriptor& b) {
  return a.media_type == b.media_type && a.digest == b.digest && a.size == b.size &&
         a.annotations == b.annotations && a.platform == b.platform;
}

bool operator!=(const Descriptor& a, const Descriptor& b) { return !(a == b); }

absl::StatusOr<std::vector<Descriptor>> ParseIndex(absl::string_view json) {
  constexpr absl::string_view kKind = "image index";
  try {
    absl::StatusOr<Json> doc = ParseObject(json, kKind);
    if (!doc.ok()) return doc.status();
    ObjectReader r(*doc, kKind, "");
    if (absl::Status s = CheckShape(r, /*want_index=*/true); !s.ok()) return s;
    std::vector<Descriptor> out;
    const Json* manifests = r.Find("manifests");
    if (manifests == nullptr) return out;
    if (!manifests->is_array()) {
      return r.TypeError("manifests", "an array", *manifests);
    }
    out.resize(manifests->size());
    for (size_t i = 0; i < manifests->size(); ++i) {
      if (absl::Status s =
              ReadDescriptor((*manifests)[i], kKind, absl::StrCat("manifests[", i, "]"), &out[i]);
          !s.ok()) {
        return s;
      }
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(kKind, ": ", e.what()));
  }
}

absl::StatusOr<Manifest> ParseManifest(absl::string_view json) {
  constexpr absl::string_view kKind = "image manifest";
  try {
    absl::StatusOr<Json> doc = ParseObject(json, kKind);
    if (!doc.ok()) return doc.status();
    ObjectReader r(*doc, kKind, "");
    if (absl::Status s = CheckShape(r, /*want_index=*/false); !s.ok()) {
      return s;
    }
    Manifest m;
    const Json* config = r.Find("config");
    if (config == nullptr) return r.Error("config", "missing");
    if (absl::Status s = ReadDescriptor(*config, kKind, "config", &m.config); !s.ok()) {
      return s;
    }
    const Json* layers = r.Find("layers");
    if (layers == nullptr) return m;
    if (!layers->is_array()) return r.TypeError("layers", "an array", *layers);
    m.layers.resize(layers->size());
    for (size_t i = 0; i < layers->size(); ++i) {
      if (absl::Status s =
              ReadDescriptor((*layers)[i], kKind, absl::StrCat("layers[", i, "]"), &m.layers[i]);
          !s.ok()) {
        return s;
      }
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(kKind, ": ", e.what()));
  }
}

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json) {
  constexpr absl::string_view kKind = "image config";
  try {
    absl::StatusOr<Json> doc = ParseObject(json, kKind);
    if (!doc.ok()) return doc.status();
    ObjectReader r(*doc, kKind, "");
    ImageConfig c;
    if (absl::Status s = ReadPlatform(r, &c.platform); !s.ok()) return s;

    absl::StatusOr<const Json*> config = r.Object("config");
    if (!config.ok()) return config.status();
    if (*config != nullptr) {
      ObjectReader cr(**config, kKind, "config");
      if (absl::Status s = cr.String("User", &c.user); !s.ok()) return s;
    }

    absl::StatusOr<const Json*> rootfs = r.Object("rootfs");
    if (!rootfs.ok()) return rootfs.status();
    if (*rootfs != nullptr) {
      ObjectReader rr(**rootfs, kKind, "rootfs");
      if (absl::Status s = rr.StringList("diff_ids", &c.diff_ids); !s.ok()) {
        return s;
      }
      for (size_t i = 0; i < c.diff_ids.size(); ++i) {
        if (absl::Status s = ValidateDigest(c.diff_ids[i]); !s.ok()) {
          return rr.Error(absl::StrCat("diff_ids[", i, "]"), s.message());
        }
      }
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(kKind, ": ", e.what()));
  }
}

std::string ChainId(absl::Span<const std::string> diff_ids) {
  if (diff_ids.empty()) return "";
  std::string chain = diff_ids[0];
  for (size_t i = 1; i < diff_ids.size(); ++i) {
    chain = Sha256::Of(absl::StrCat(chain, " ", diff_ids[i]));
  }
  return chain;
}

ImageUser ParseImageUser(absl::string_view user) {
  ImageUser out;
  if (user.empty()) return out;
  absl::string_view name = user.substr(0, user.find(':'));

  // strconv.ParseInt(name, 10, 64): sign, then one or more decimal digits,
  // the value within int64.
  absl::string_view digits = name;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  bool numeric = !digits.empty();
  // Accumulate the magnitude as unsigned: -2^63 is in range, +2^63 is not.
  uint64_t magnitude = 0;
  const uint64_t limit =
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1 : 0);
  for (char c : digits) {
    if (c < '0' || c > '9') {
      numeric = false;
      break;
    }
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (magnitude > (limit - d) / 10) {
      numeric = false;  // out of range: containerd falls back to a name too
      break;
    }
    magnitude = magnitude * 10 + d;
  }
  if (!numeric) {
    out.username = std::string(name);
    return out;
  }
  if (negative) {
    out.uid = magnitude == uint64_t{1} << 63 ? std::numeric_limits<int64_t>::min()
                                             : -static_cast<int64_t>(magnitude);
  } else {
    out.uid = static_cast<int64_t>(magnitude);
  }
  return out;
}

std::optional<Descriptor> SelectManifest(absl::Span<const Descriptor> manifests,
                                         const PlatformMatcher& matcher) {
  const Descriptor* best = nullptr;
  for (const Descriptor& d : manifests) {
    if (d.platform.has_value() && !matcher.Match(*d.platform)) continue;
    if (best == nullptr) {
      best = &d;
      continue;
    }
    // Stable order: replace only when strictly preferred. A platform-less
    // entry never beats one with a platform; one with a platform always
    // beats a platform-less one.
    if (!d.platform.has_value()) continue;
    if (!best->platform.has_value() || matcher.Less(*d.platform, *best->platform)) {
      best = &d;
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

bool ConfigMatchesPlatform(const ImageConfig& config, const PlatformMatcher& matcher) {
  Platform p;
  p.os = config.platform.os;
  p.architecture = config.platform.architecture;
  return matcher.Match(p);
}

int64_t ImageSize(absl::Span<const Descriptor> path, const Manifest& manifest) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t total = 0;
  auto add = [&](const Descriptor& d) {
    if (d.size <= 0) return;
    total = d.size > kMax - total ? kMax : total + d.size;
  };
  for (const Descriptor& d : path) add(d);
  add(manifest.config);
  for (const Descriptor& d : manifest.layers) add(d);
  return total;
}

}  // namespace imaged::store
