#include "store/resolver.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/limits.h"

namespace imaged::store {
namespace {

// "index sha256:...: <why>", keeping the code.
absl::Status About(DocumentKind kind, const Descriptor& desc, const absl::Status& s) {
  return absl::Status(s.code(),
                      absl::StrCat(DocumentKindName(kind), " ", desc.digest, ": ", s.message()));
}

absl::StatusOr<std::string> Read(DocumentSource& source, const Descriptor& desc,
                                 DocumentKind kind) {
  const int64_t limit =
      kind == DocumentKind::kConfig ? kMaxImageConfigBytes : kMaxImageDocumentBytes;
  auto too_large = [&](int64_t size) {
    return absl::FailedPreconditionError(absl::StrCat(DocumentKindName(kind), " ", desc.digest,
                                                      " is ", size, " bytes, over the ", limit,
                                                      "-byte limit"));
  };
  // The descriptor's word first (no fetch), then the bytes' own.
  if (desc.size > limit) return too_large(desc.size);
  absl::StatusOr<std::string> bytes = source.Fetch(desc, kind, limit);
  if (!bytes.ok()) return About(kind, desc, bytes.status());
  if (static_cast<int64_t>(bytes->size()) > limit) return too_large(bytes->size());
  return bytes;
}

}  // namespace

absl::string_view DocumentKindName(DocumentKind kind) {
  switch (kind) {
    case DocumentKind::kIndex:
      return "index";
    case DocumentKind::kManifest:
      return "manifest";
    case DocumentKind::kConfig:
      return "config";
  }
  return "document";
}

ContentDocuments::ContentDocuments(ContentStore* content, absl::string_view ns,
                                   std::optional<std::string> fallback_ns)
    : content_(content), ns_(ns), fallback_ns_(std::move(fallback_ns)) {}

absl::StatusOr<std::string> ContentDocuments::Fetch(const Descriptor& desc, DocumentKind kind,
                                                    int64_t max_bytes) {
  asked_.push_back(desc.digest);
  auto read = [&](const std::string& ns) -> absl::StatusOr<std::string> {
    if (excluded_ != nullptr && ns == excluded_ns_ && excluded_->contains(desc.digest)) {
      return absl::NotFoundError(absl::StrCat("content ", desc.digest, ": being removed"));
    }
    return ReadWholeBlob(*content_, ns, desc.digest, max_bytes);
  };
  absl::StatusOr<std::string> bytes = read(ns_);
  if (absl::IsNotFound(bytes.status()) && fallback_ns_) bytes = read(*fallback_ns_);
  if (absl::IsNotFound(bytes.status())) {
    missing_ = desc.digest;
    missing_kind_ = kind;
  }
  return bytes;
}

absl::Status ResolveImage(DocumentSource& source, const Descriptor& target,
                          const PlatformMatcher& matcher, absl::string_view platform_name,
                          ConfigRead config_read, ResolvedImage* out) {
  *out = ResolvedImage();
  auto no_match = [&] {
    return absl::NotFoundError(
        absl::StrCat("image ", target.digest, " has no manifest for ", platform_name));
  };
  Descriptor desc = target;
  desc.platform.reset();  // the target's is not an entry's
  out->path.push_back(desc);
  for (int depth = 0; IsIndexType(desc.media_type); ++depth) {
    if (depth == kMaxIndexNesting) {
      return absl::FailedPreconditionError(absl::StrCat(
          "image ", target.digest, ": indexes nested more than ", kMaxIndexNesting, " deep"));
    }
    absl::StatusOr<std::string> bytes = Read(source, desc, DocumentKind::kIndex);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<std::vector<Descriptor>> entries = ParseIndex(*bytes);
    if (!entries.ok()) return About(DocumentKind::kIndex, desc, entries.status());
    std::optional<Descriptor> chosen = SelectManifest(*entries, matcher);
    if (!chosen) {
      return absl::NotFoundError(
          absl::StrCat("index ", desc.digest, " has no manifest for ", platform_name));
    }
    desc = *std::move(chosen);
    out->via_platformless_entry = !desc.platform.has_value();
    out->path.push_back(desc);
  }
  if (!IsManifestType(desc.media_type)) {
    return absl::NotFoundError(absl::StrCat("unexpected media type \"", desc.media_type, "\" for ",
                                            desc.digest, ": not an image index or manifest"));
  }
  absl::StatusOr<std::string> bytes = Read(source, desc, DocumentKind::kManifest);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<Manifest> manifest = ParseManifest(*bytes);
  if (!manifest.ok()) return About(DocumentKind::kManifest, desc, manifest.status());
  out->manifest = *std::move(manifest);

  if (config_read == ConfigRead::kWhenNeeded && !out->via_platformless_entry) {
    return absl::OkStatus();
  }
  const Descriptor& config_desc = out->manifest->config;
  absl::StatusOr<std::string> config_bytes = Read(source, config_desc, DocumentKind::kConfig);
  if (!config_bytes.ok()) return config_bytes.status();
  absl::StatusOr<ImageConfig> config = ParseImageConfig(*config_bytes);
  if (!config.ok()) return About(DocumentKind::kConfig, config_desc, config.status());
  if (out->via_platformless_entry && !ConfigMatchesPlatform(*config, matcher)) return no_match();
  out->config = *std::move(config);
  out->config_bytes = *std::move(config_bytes);
  return absl::OkStatus();
}

Labels ChildGcLabels(absl::Span<const Descriptor> children) {
  Labels labels;
  std::map<std::string, int> counts;
  for (const Descriptor& child : children) {
    std::string key = kGcRefContentPrefix;
    if (IsConfigType(child.media_type)) {
      key += "config";
    } else if (IsManifestType(child.media_type)) {
      key += "m.";
    } else if (IsLayerType(child.media_type)) {
      key += "l.";
    }
    // containerd numbers every key that ends in '.', and repeats of others.
    int n = counts[key]++;
    if (n > 0 || key.back() == '.') absl::StrAppend(&key, n);
    labels[key] = child.digest;
  }
  return labels;
}

}  // namespace imaged::store
