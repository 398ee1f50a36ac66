#include "cri/archive/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cri/reference.h"
#include "store/digest.h"
#include "store/errors.h"
#include "store/files.h"
#include "store/limits.h"
#include "store/resolver.h"

namespace imaged::cri {
namespace {

using store::ContentStore;
using store::Descriptor;
using store::ImageStore;

constexpr size_t kChunk = 1 << 20;
// containerd's limit on the JSON files of an archive (oci-layout, index.json,
// manifest.json); the blobs inside are image documents (store/limits.h).
constexpr int64_t kJsonLimit = 20 << 20;
// Files outside blobs/ up to this size are kept in memory until manifest.json
// says whether they are an image's config or layer; larger ones are streamed
// into the store at once (docker-save layers).
constexpr int64_t kSmallFile = 1 << 20;
constexpr int64_t kMaxBuffered = 64 << 20;

constexpr char kAnnotationImageName[] = "io.containerd.image.name";
constexpr char kAnnotationRefName[] = "org.opencontainers.image.ref.name";
constexpr char kOciLayoutFile[] = "oci-layout";
constexpr char kOciLayoutVersion[] = "1.0.0";

// Ingest refs unique to one import, so two imports of the same archive never
// wait on each other's ref lock; an ingest left by a crash is expired by the
// store.
std::string RandomToken() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

absl::StatusOr<std::string> ReadSmallBlob(ContentStore* content, absl::string_view ns,
                                          absl::string_view digest, int64_t limit) {
  auto reader = content->Reader(ns, digest);
  if (!reader.ok()) return reader.status();
  int64_t size = (*reader)->Size();
  if (size > limit) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", digest, " is ", size,
                                                   " bytes, over the ", limit,
                                                   "-byte limit for an image document"));
  }
  std::string out, chunk;
  while (static_cast<int64_t>(out.size()) < size) {
    if (absl::Status s = (*reader)->ReadAt(out.size(), kChunk, &chunk); !s.ok()) return s;
    if (chunk.empty()) break;
    out += chunk;
  }
  if (static_cast<int64_t>(out.size()) != size) {
    return absl::DataLossError(
        absl::StrCat("blob ", digest, ": read ", out.size(), " of ", size, " bytes"));
  }
  return out;
}

// A member of a JSON object matched as Go's encoding/json matches field
// names: exactly, else ASCII-case-insensitively; null counts as absent.
const nlohmann::json* Member(const nlohmann::json& obj, absl::string_view key) {
  const nlohmann::json* found = nullptr;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key() == key) {
      found = &it.value();
      break;
    }
    if (!found && absl::EqualsIgnoreCase(it.key(), key)) found = &it.value();
  }
  return found && !found->is_null() ? found : nullptr;
}

// One entry of a docker-save manifest.json.
struct DockerEntry {
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};

absl::StatusOr<std::vector<DockerEntry>> ParseDockerManifest(absl::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("manifest.json: not valid JSON");
  if (!doc.is_array()) return absl::InvalidArgumentError("manifest.json: not a JSON array");
  auto strings = [](const nlohmann::json* v, absl::string_view field,
                    std::vector<std::string>* out) -> absl::Status {
    if (!v) return absl::OkStatus();
    if (!v->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat("manifest.json: ", field, " is not an array"));
    }
    for (const auto& s : *v) {
      if (!s.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("manifest.json: ", field, " holds a non-string"));
      }
      out->push_back(s.get<std::string>());
    }
    return absl::OkStatus();
  };
  std::vector<DockerEntry> entries;
  for (const auto& e : doc) {
    if (!e.is_object())
      return absl::InvalidArgumentError("manifest.json: an entry is not an object");
    DockerEntry entry;
    if (const nlohmann::json* c = Member(e, "Config")) {
      if (!c->is_string())
        return absl::InvalidArgumentError("manifest.json: Config is not a string");
      entry.config = c->get<std::string>();
    }
    if (absl::Status s = strings(Member(e, "RepoTags"), "RepoTags", &entry.repo_tags); !s.ok()) {
      return s;
    }
    if (absl::Status s = strings(Member(e, "Layers"), "Layers", &entry.layers); !s.ok()) return s;
    entries.push_back(std::move(entry));
  }
  return entries;
}

// Go's json.Marshal of an ocispec.Descriptor (fields in struct order, map
// keys sorted), so generated documents hash as containerd's do.
nlohmann::ordered_json DescriptorJson(const Descriptor& d) {
  nlohmann::ordered_json j;
  if (!d.media_type.empty()) j["mediaType"] = d.media_type;
  j["digest"] = d.digest;
  j["size"] = d.size;
  if (!d.annotations.empty()) {
    nlohmann::ordered_json a = nlohmann::ordered_json::object();
    for (const auto& [k, v] : d.annotations) a[k] = v;  // std::map: sorted
    j["annotations"] = std::move(a);
  }
  if (d.platform) {
    const store::Platform& p = *d.platform;
    nlohmann::ordered_json pj;
    pj["architecture"] = p.architecture;
    pj["os"] = p.os;
    if (!p.os_version.empty()) pj["os.version"] = p.os_version;
    if (!p.os_features.empty()) pj["os.features"] = p.os_features;
    if (!p.variant.empty()) pj["variant"] = p.variant;
    j["platform"] = std::move(pj);
  }
  return j;
}

std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// The first bytes of a layer say whether it is compressed, as containerd's
// compression.DetectCompression reads them (gzip or zstd; both are given the
// gzip media type, as containerd 1.6 does).
bool LooksCompressed(absl::string_view head) {
  return absl::StartsWith(head, absl::string_view("\x1f\x8b\x08", 3)) ||
         absl::StartsWith(head, absl::string_view("\x28\xb5\x2f\xfd", 4));
}

// Which index entries a walk descends into, and which must be complete:
// containerd's FilterPlatforms keeps entries without a platform and those the
// matcher accepts (all of them with all_platforms); of those, the one the
// platform resolves to (SelectManifest) must be there, the others may be
// missing, as `ctr images export` writes one platform.
struct ChildPlan {
  Descriptor desc;
  bool required;
};
std::vector<ChildPlan> PlanChildren(const std::vector<Descriptor>& children, bool parent_required,
                                    const store::PlatformMatcher& matcher, bool all_platforms) {
  std::vector<ChildPlan> plan;
  std::optional<Descriptor> chosen = store::SelectManifest(children, matcher);
  bool chosen_taken = false;
  for (const Descriptor& child : children) {
    if (all_platforms) {
      plan.push_back({child, parent_required});
      continue;
    }
    if (child.platform && !matcher.Match(*child.platform)) continue;
    bool is_chosen = !chosen_taken && chosen && *chosen == child;
    if (is_chosen) chosen_taken = true;
    plan.push_back({child, parent_required && is_chosen});
  }
  return plan;
}

// ---------------------------------------------------------------------------
// Import

struct ArchiveBlob {
  std::string digest;
  int64_t size = 0;
  std::string head;  // first bytes, for LooksCompressed
};

class Importer {
 public:
  Importer(ContentStore* content, ImageStore* images, absl::string_view ns,
           absl::string_view source, const ImportOptions& options)
      : content_(content),
        images_(images),
        ns_(ns),
        source_(source),
        options_(options),
        matcher_(options.platform),
        token_(RandomToken()),
        buf_(kChunk) {}

  absl::StatusOr<ImportResult> Run(const ArchiveReadFn& read) {
    if (absl::Status s = ReadArchive(read); !s.ok()) return s;
    std::vector<Descriptor> roots;
    if (oci_layout_ && !oci_version_.empty()) {
      if (oci_version_ != kOciLayoutVersion) {
        return Error(absl::StatusCode::kInvalidArgument, kOciLayoutFile,
                     absl::StrCat("unsupported OCI layout version \"", oci_version_, "\"; want ",
                                  kOciLayoutVersion));
      }
      if (!index_json_) {
        return Error(absl::StatusCode::kFailedPrecondition, "", "OCI layout without index.json");
      }
      auto index = store::ParseIndex(*index_json_);
      if (!index.ok()) {
        return Error(absl::StatusCode::kInvalidArgument, "index.json", index.status().message());
      }
      roots = *std::move(index);
    } else if (manifest_json_) {
      auto docker = DockerRoots();
      if (!docker.ok()) return docker.status();
      roots = *std::move(docker);
    } else {
      return Error(absl::StatusCode::kInvalidArgument, "",
                   "unrecognized image format: neither an OCI layout (oci-layout, index.json) "
                   "nor a docker-save archive (manifest.json)");
    }

    // Names first (as ctr does), then the walk, then the records.
    std::vector<std::pair<std::string, Descriptor>> named;
    for (const Descriptor& root : roots) {
      std::string name = ImageName(root.annotations);
      if (!name.empty()) named.emplace_back(name, root);
      if (options_.digest_refs)
        named.emplace_back(absl::StrCat(BaseName(), "@", root.digest), root);
    }
    for (size_t i = 0; i < roots.size(); ++i) {
      const Descriptor& root = roots[i];
      if (!options_.all_platforms && root.platform && !matcher_.Match(*root.platform)) continue;
      std::string what = ImageName(root.annotations);
      if (what.empty()) what = absl::StrCat("index entry ", i, " (", root.digest, ")");
      auto walked = Walk(root, /*required=*/true, what);
      if (!walked.ok()) return walked.status();
    }

    ImportResult result;
    result.blobs_written = written_;
    result.blobs_present = present_;
    for (auto& [name, target] : named) {
      store::Image image;
      image.name = name;
      image.target = target;
      image.target.platform.reset();  // image records keep no platform
      if (absl::Status s = PutImage(image); !s.ok()) return s;
      result.images.push_back({name, image.target, ImageId(target)});
    }
    return result;
  }

 private:
  absl::Status Error(absl::StatusCode code, absl::string_view entry, absl::string_view msg) const {
    return absl::Status(code, absl::StrCat("archive ", source_, ": ",
                                           entry.empty() ? "" : absl::StrCat(entry, ": "), msg));
  }

  absl::Status TooDeep(absl::string_view image) const {
    return Error(absl::StatusCode::kFailedPrecondition, image,
                 absl::StrCat("indexes nested more than ", store::kMaxIndexNesting, " deep"));
  }

  // --- pass 1: the tar stream ---------------------------------------------

  // An error of the tar reader, named after `entry` unless it is the
  // caller's own read error, which passes through unchanged.
  absl::Status TarError(const absl::Status& s, absl::string_view entry) const {
    if (reader_->read_failed()) return s;
    return Error(s.code(), entry, s.message());
  }

  absl::Status ReadArchive(const ArchiveReadFn& read) {
    TarReader reader(read);
    reader_ = &reader;
    for (;;) {
      absl::StatusOr<std::optional<TarEntry>> entry = reader.Next();
      if (!entry.ok()) return TarError(entry.status(), "");
      if (!entry->has_value()) break;
      const TarEntry& e = **entry;
      if (e.type == TarEntry::Type::kLink) {
        aliases_[e.name] = e.target;
        continue;
      }
      if (absl::Status s = OnFile(e.name, e.size); !s.ok()) return s;
    }
    reader_ = nullptr;
    return absl::OkStatus();
  }

  // Reads the rest of the current entry into `out` (at most `limit` bytes).
  absl::Status ReadAll(const std::string& name, int64_t size, int64_t limit, std::string* out) {
    if (size > limit) {
      return Error(absl::StatusCode::kInvalidArgument, name,
                   absl::StrCat(size, " bytes, over the ", limit, "-byte limit"));
    }
    out->clear();
    out->reserve(size);
    for (;;) {
      absl::StatusOr<size_t> n = reader_->Read(buf_.data(), buf_.size());
      if (!n.ok()) return TarError(n.status(), name);
      if (*n == 0) break;
      out->append(buf_.data(), *n);
    }
    if (static_cast<int64_t>(out->size()) != size) {
      return Error(absl::StatusCode::kDataLoss, name,
                   absl::StrCat("read ", out->size(), " of ", size, " bytes"));
    }
    return absl::OkStatus();
  }

  absl::Status OnFile(const std::string& name, int64_t size) {
    if (name == kOciLayoutFile || name == "index.json" || name == "manifest.json") {
      std::string data;
      if (absl::Status s = ReadAll(name, size, kJsonLimit, &data); !s.ok()) return s;
      if (name == kOciLayoutFile) {
        nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
        const nlohmann::json* v = j.is_object() ? Member(j, "imageLayoutVersion") : nullptr;
        if (j.is_discarded() || !j.is_object() || (v && !v->is_string())) {
          return Error(absl::StatusCode::kInvalidArgument, name, "not a valid OCI layout file");
        }
        oci_layout_ = true;
        oci_version_ = v ? v->get<std::string>() : "";
      } else if (name == "index.json") {
        index_json_ = std::move(data);
      } else {
        manifest_json_ = std::move(data);
      }
      return absl::OkStatus();
    }
    std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
    if (parts.size() == 3 && parts[0] == "blobs" && parts[1] == "sha256") {
      std::string digest = absl::StrCat(store::kSha256Prefix, parts[2]);
      if (!store::ValidateDigest(digest).ok()) {
        return Error(absl::StatusCode::kInvalidArgument, name, "not a valid sha256 blob name");
      }
      return StreamFile(name, size, digest);
    }
    if (size <= kSmallFile && buffered_ + size <= kMaxBuffered) {
      std::string data;
      if (absl::Status s = ReadAll(name, size, kSmallFile, &data); !s.ok()) return s;
      buffered_ += size;
      small_[name] = std::move(data);
      files_.erase(name);
      return absl::OkStatus();
    }
    return StreamFile(name, size, "");
  }

  // Streams the current entry into the content store; with `expected` set
  // the bytes must hash to it.
  absl::Status StreamFile(const std::string& name, int64_t size, const std::string& expected) {
    std::string ref = absl::StrCat("import-", token_, "-", ++ingests_);
    std::unique_ptr<store::ContentWriter> writer;
    bool present = false;
    store::Sha256 hash;
    std::string head;
    int64_t total = 0;
    auto abort = [&](absl::Status s) {
      if (writer) {
        writer.reset();
        content_->Abort(ns_, ref).IgnoreError();
      }
      return s;
    };
    for (bool opened = false;;) {
      absl::StatusOr<size_t> got = reader_->Read(buf_.data(), buf_.size());
      if (!got.ok()) return abort(TarError(got.status(), name));
      const size_t n = *got;
      absl::string_view chunk(buf_.data(), n);
      if (head.size() < 10) absl::StrAppend(&head, chunk.substr(0, 10 - head.size()));
      if (!opened) {
        // Opened after the first read, so that an empty or unreadable entry
        // leaves no ingest behind.
        opened = true;
        auto w = content_->Writer(ns_, ref, size, expected, options_.lease);
        if (absl::IsAlreadyExists(w.status())) {
          present = true;  // still hashed below: the archive must be sound
        } else if (!w.ok()) {
          return Error(w.status().code(), name, w.status().message());
        } else {
          writer = *std::move(w);
        }
      }
      if (n == 0) break;
      hash.Update(chunk);
      total += static_cast<int64_t>(n);
      if (writer) {
        if (absl::Status s = writer->Write(chunk); !s.ok()) {
          return abort(Error(s.code(), name, s.message()));
        }
      }
    }
    if (total != size) {
      return abort(Error(absl::StatusCode::kDataLoss, name,
                         absl::StrCat("read ", total, " of ", size, " bytes")));
    }
    std::string digest = hash.Digest();
    if (!expected.empty() && digest != expected) {
      return abort(Error(absl::StatusCode::kDataLoss, name,
                         absl::StrCat("content does not match its name: it hashes to ", digest)));
    }
    if (writer) {
      absl::Status s = writer->Commit(size, digest, {});
      writer.reset();
      if (absl::IsAlreadyExists(s)) {
        present = true;
      } else if (!s.ok()) {
        content_->Abort(ns_, ref).IgnoreError();
        return Error(s.code(), name, s.message());
      }
    }
    ++(present ? present_ : written_);
    files_[name] = ArchiveBlob{digest, size, head};
    archive_digests_[digest] = size;
    small_.erase(name);
    return absl::OkStatus();
  }

  // --- docker-save ---------------------------------------------------------

  // The blob a path of manifest.json names: followed through symlinks, and
  // written to the store now when it was kept in memory.
  absl::StatusOr<ArchiveBlob> DockerFile(const std::string& path, absl::string_view what) {
    std::string p = CleanPath(path);
    for (int hops = 0; hops < 16; ++hops) {
      if (auto it = files_.find(p); it != files_.end()) return it->second;
      if (auto it = small_.find(p); it != small_.end()) {
        ArchiveBlob blob{store::Sha256::Of(it->second), static_cast<int64_t>(it->second.size()),
                         it->second.substr(0, 10)};
        if (absl::Status s = WriteBytes(it->second, blob.digest); !s.ok()) {
          return Error(s.code(), p, s.message());
        }
        files_[p] = blob;
        archive_digests_[blob.digest] = blob.size;
        return blob;
      }
      auto alias = aliases_.find(p);
      if (alias == aliases_.end()) break;
      p = alias->second;
    }
    return Error(absl::StatusCode::kFailedPrecondition, "manifest.json",
                 absl::StrCat(what, " \"", path, "\" is not in the archive"));
  }

  absl::Status WriteBytes(absl::string_view data, const std::string& digest) {
    std::string ref = absl::StrCat("import-", token_, "-", ++ingests_);
    auto w = content_->Writer(ns_, ref, data.size(), digest, options_.lease);
    absl::Status s = w.status();
    if (w.ok()) s = store::CommitWhole(*content_, ns_, ref, *std::move(w), data, digest);
    if (absl::IsAlreadyExists(s)) {
      ++present_;
      return absl::OkStatus();
    }
    if (!s.ok()) return s;
    ++written_;
    return absl::OkStatus();
  }

  // containerd's importer for Docker archives: a schema 2 manifest per entry
  // of manifest.json, an index entry per RepoTag (or one unnamed).
  absl::StatusOr<std::vector<Descriptor>> DockerRoots() {
    auto entries = ParseDockerManifest(*manifest_json_);
    if (!entries.ok()) return Error(entries.status().code(), "", entries.status().message());
    std::vector<Descriptor> roots;
    for (const DockerEntry& e : *entries) {
      auto config = DockerFile(e.config, "image config");
      if (!config.ok()) return config.status();
      nlohmann::ordered_json manifest;
      manifest["schemaVersion"] = 2;
      manifest["mediaType"] = store::kMediaTypeDockerManifest;
      Descriptor config_desc{std::string(store::kMediaTypeDockerConfig), config->digest,
                             config->size};
      manifest["config"] = DescriptorJson(config_desc);
      manifest["layers"] = nlohmann::ordered_json::array();
      for (const std::string& path : e.layers) {
        auto layer = DockerFile(path, "layer");
        if (!layer.ok()) return layer.status();
        Descriptor d{std::string(LooksCompressed(layer->head) ? store::kMediaTypeDockerLayerGzip
                                                              : store::kMediaTypeDockerLayer),
                     layer->digest, layer->size};
        manifest["layers"].push_back(DescriptorJson(d));
      }
      std::string bytes = Dump(manifest);
      Descriptor desc{std::string(store::kMediaTypeDockerManifest), store::Sha256::Of(bytes),
                      static_cast<int64_t>(bytes.size())};
      if (absl::Status s = WriteBytes(bytes, desc.digest); !s.ok()) {
        return Error(s.code(), "manifest.json", s.message());
      }
      archive_digests_[desc.digest] = desc.size;
      // containerd puts the config's platform on the entry (os and
      // architecture, normalised).
      auto config_json = ReadSmallBlob(content_, ns_, config->digest, store::kMaxImageConfigBytes);
      if (!config_json.ok())
        return Error(config_json.status().code(), e.config, config_json.status().message());
      auto cfg = store::ParseImageConfig(*config_json);
      if (!cfg.ok())
        return Error(absl::StatusCode::kInvalidArgument, e.config, cfg.status().message());
      store::Platform platform;
      platform.os = cfg->platform.os;
      platform.architecture = cfg->platform.architecture;
      platform = store::NormalizePlatform(platform);
      platform.variant.clear();  // containerd 1.6 normalises {OS, Architecture} only
      desc.platform = platform;
      if (e.repo_tags.empty()) {
        roots.push_back(desc);
        continue;
      }
      for (const std::string& tag : e.repo_tags) {
        auto normalized = NormalizeImageRef(tag);
        if (!normalized.ok()) {
          return Error(absl::StatusCode::kInvalidArgument, "manifest.json",
                       absl::StrCat("RepoTag: ", normalized.status().message()));
        }
        Descriptor named = desc;
        named.annotations[kAnnotationImageName] = *normalized;
        named.annotations[kAnnotationRefName] = OciReferenceName(*normalized);
        roots.push_back(std::move(named));
      }
    }
    return roots;
  }

  // --- names ---------------------------------------------------------------

  std::string BaseName() const {
    if (!options_.base_name.empty()) return options_.base_name;
    return absl::StrCat("import-",
                        absl::FormatTime("%Y-%m-%d", options_.now, absl::LocalTimeZone()));
  }

  // ctr's imageName with its ref translators (archive.AddRefPrefix without
  // --base-name, archive.FilterRefPrefix with it).
  std::string ImageName(const store::Labels& annotations) const {
    if (auto it = annotations.find(kAnnotationImageName);
        it != annotations.end() && !it->second.empty()) {
      return it->second;
    }
    auto it = annotations.find(kAnnotationRefName);
    if (it == annotations.end() || it->second.empty()) return "";
    const std::string& ref = it->second;
    std::string base = BaseName();
    if (ref.find_first_of("/:@") == std::string::npos) return absl::StrCat(base, ":", ref);
    if (!options_.base_name.empty()) {
      // Only references inside the base repository.
      if (!absl::StartsWith(ref, base)) return "";
      if (ref.size() > base.size() &&
          absl::string_view("/:@").find(ref[base.size()]) == absl::string_view::npos)
        return "";
    }
    return ref;
  }

  // --- pass 2: the walk ----------------------------------------------------

  // Whether blob `d` is in the archive or the store, with the size its
  // descriptor says. NotFound when it is in neither.
  absl::Status Have(const Descriptor& d, const std::string& image) {
    int64_t size;
    if (auto it = archive_digests_.find(d.digest); it != archive_digests_.end()) {
      size = it->second;
    } else if (auto it = store_sizes_.find(d.digest); it != store_sizes_.end()) {
      size = it->second;
    } else {
      if (absl::Status v = store::ValidateDigest(d.digest); !v.ok()) {
        return Error(absl::StatusCode::kInvalidArgument, image, v.message());
      }
      auto info = content_->Info(ns_, d.digest);
      if (absl::IsNotFound(info.status())) {
        return absl::NotFoundError(absl::StrCat("blob ", d.digest, " (", d.media_type,
                                                ") is neither in the archive nor in namespace ",
                                                ns_));
      }
      if (!info.ok()) return info.status();
      size = store_sizes_[d.digest] = info->size;
    }
    if (d.size >= 0 && d.size != size) {
      return Error(
          absl::StatusCode::kDataLoss, image,
          absl::StrCat("blob ", d.digest, " is ", size, " bytes but its descriptor says ", d.size));
    }
    return absl::OkStatus();
  }

  // Walks `d` and below; true when the subtree is complete, false when a
  // blob of it is missing and `required` is false. Parents get GC labels for
  // the children walked.
  absl::StatusOr<bool> Walk(const Descriptor& d, bool required, const std::string& image,
                            int depth = 0) {
    if (complete_.count(d.digest)) return true;
    absl::Status have = Have(d, image);
    if (absl::IsNotFound(have)) {
      if (!required) return false;
      return Error(absl::StatusCode::kFailedPrecondition, image,
                   absl::StrCat("needs ", have.message()));
    }
    if (!have.ok()) return have;
    std::vector<ChildPlan> plan;
    if (store::IsIndexType(d.media_type)) {
      if (depth >= store::kMaxIndexNesting) return TooDeep(image);
      auto bytes = ReadSmallBlob(content_, ns_, d.digest, store::kMaxImageDocumentBytes);
      if (!bytes.ok()) return Error(bytes.status().code(), image, bytes.status().message());
      auto children = store::ParseIndex(*bytes);
      if (!children.ok())
        return Error(absl::StatusCode::kInvalidArgument, image, children.status().message());
      plan = PlanChildren(*children, required, matcher_, options_.all_platforms);
      indexes_[d.digest] = *std::move(children);
    } else if (store::IsManifestType(d.media_type)) {
      auto bytes = ReadSmallBlob(content_, ns_, d.digest, store::kMaxImageDocumentBytes);
      if (!bytes.ok()) return Error(bytes.status().code(), image, bytes.status().message());
      auto manifest = store::ParseManifest(*bytes);
      if (!manifest.ok())
        return Error(absl::StatusCode::kInvalidArgument, image, manifest.status().message());
      plan.push_back({manifest->config, required});
      for (const Descriptor& layer : manifest->layers) plan.push_back({layer, required});
      manifests_[d.digest] = *std::move(manifest);
    }
    std::vector<Descriptor> walked;
    bool complete = true;
    for (const ChildPlan& child : plan) {
      auto ok = Walk(child.desc, child.required, image, depth + 1);
      if (!ok.ok()) return ok.status();
      if (*ok) {
        walked.push_back(child.desc);
      } else if (store::IsManifestType(d.media_type)) {
        complete = false;  // a manifest of another platform, partly missing
      }
    }
    if (!complete) return false;
    if (!walked.empty()) {
      store::ContentInfo info;
      info.digest = d.digest;
      info.labels = store::ChildGcLabels(walked);
      std::vector<std::string> paths;
      for (const auto& [key, value] : info.labels) paths.push_back(absl::StrCat("labels.", key));
      if (auto u = content_->Update(ns_, info, paths); !u.ok()) {
        return Error(u.status().code(), image, u.status().message());
      }
    }
    complete_.insert(d.digest);
    return true;
  }

  // The image ID `target` resolves to ("" when it does not).
  std::string ImageId(const Descriptor& target) {
    store::ContentDocuments documents(content_, ns_);
    store::ResolvedImage walked;
    store::ResolveImage(documents, target, matcher_, store::FormatPlatform(options_.platform),
                        store::ConfigRead::kWhenNeeded, &walked)
        .IgnoreError();
    return walked.image_id();
  }

  // ctr: update the target of an existing image, else create it.
  absl::Status PutImage(const store::Image& image) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto updated = images_->Update(ns_, image, {"target"}, options_.lease);
      if (updated.ok()) return absl::OkStatus();
      if (!absl::IsNotFound(updated.status())) {
        return Error(updated.status().code(), image.name, updated.status().message());
      }
      auto created = images_->Create(ns_, image, options_.lease);
      if (created.ok()) return absl::OkStatus();
      if (!absl::IsAlreadyExists(created.status())) {
        return Error(created.status().code(), image.name, created.status().message());
      }
    }
    return Error(absl::StatusCode::kAborted, image.name, "created and deleted concurrently");
  }

  ContentStore* content_;
  ImageStore* images_;
  std::string ns_;
  std::string source_;
  ImportOptions options_;
  store::PlatformMatcher matcher_;
  std::string token_;
  std::vector<char> buf_;

  TarReader* reader_ = nullptr;  // during pass 1
  int64_t ingests_ = 0;
  int64_t written_ = 0;
  int64_t present_ = 0;

  bool oci_layout_ = false;
  std::string oci_version_;
  std::optional<std::string> index_json_;
  std::optional<std::string> manifest_json_;
  std::map<std::string, ArchiveBlob> files_;  // path -> blob in the store
  std::map<std::string, std::string> small_;  // path -> bytes kept in memory
  int64_t buffered_ = 0;
  std::map<std::string, std::string> aliases_;      // symlink or hard link -> target path
  std::map<std::string, int64_t> archive_digests_;  // digests the archive brought

  std::map<std::string, int64_t> store_sizes_;
  std::set<std::string> complete_;
  std::map<std::string, std::vector<Descriptor>> indexes_;
  std::map<std::string, store::Manifest> manifests_;
};

// ---------------------------------------------------------------------------
// Export

struct ExportBlob {
  std::string digest;
  int64_t size;
};

class Exporter {
 public:
  Exporter(ContentStore* content, ImageStore* images, absl::string_view ns,
           const ExportOptions& options)
      : content_(content),
        images_(images),
        ns_(ns),
        options_(options),
        matcher_(options.platform) {}

  absl::Status Run(const std::vector<std::string>& names, const ArchiveWriteFn& write) {
    // Everything is found before the first byte is written.
    nlohmann::ordered_json index;
    index["schemaVersion"] = 2;
    index["mediaType"] = store::kMediaTypeOciIndex;
    index["manifests"] = nlohmann::ordered_json::array();
    std::vector<std::string> docker_order;  // manifest digests
    std::map<std::string, std::vector<std::string>> docker_names;
    for (const std::string& requested : names) {
      auto image = Find(requested);
      if (!image.ok()) return image.status();
      if (!store::IsIndexType(image->target.media_type) &&
          !store::IsManifestType(image->target.media_type)) {
        return absl::InvalidArgumentError(
            absl::StrCat("image ", image->name, ": its target is ", image->target.media_type,
                         ", and only manifests and indexes may be exported"));
      }
      Descriptor target = image->target;
      target.annotations[kAnnotationImageName] = image->name;
      std::string ref_name = OciReferenceName(image->name);
      if (ref_name.empty()) {
        target.annotations.erase(kAnnotationRefName);
      } else {
        target.annotations[kAnnotationRefName] = ref_name;
      }
      index["manifests"].push_back(DescriptorJson(target));
      auto ok = Collect(target, /*required=*/true, image->name, &blobs_);
      if (!ok.ok()) return ok.status();
      if (std::optional<std::string> m = DockerManifestOf(target)) {
        if (!docker_names.count(*m)) docker_order.push_back(*m);
        std::vector<std::string>& tags = docker_names[*m];
        if (std::optional<std::string> tag = RepoTag(image->name)) tags.push_back(*tag);
      }
    }

    std::string docker;
    if (!options_.skip_docker_manifest && !docker_order.empty()) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const std::string& digest : docker_order) {
        const store::Manifest& m = manifests_.at(digest);
        nlohmann::ordered_json e;
        e["Config"] = BlobPath(m.config.digest);
        const std::vector<std::string>& tags = docker_names[digest];
        e["RepoTags"] =
            tags.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(tags);
        nlohmann::ordered_json layers = nlohmann::ordered_json::array();
        for (const Descriptor& l : m.layers) layers.push_back(BlobPath(l.digest));
        e["Layers"] = m.layers.empty() ? nlohmann::ordered_json(nullptr) : layers;
        list.push_back(std::move(e));
      }
      docker = Dump(list);
    }

    std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_write_new(),
                                                                archive_write_free);
    a_ = a.get();
    write_ = &write;
    archive_write_set_format_pax_restricted(a_);
    if (archive_write_open2(a_, this, nullptr, WriteCallback, nullptr, nullptr) != ARCHIVE_OK) {
      return WriteError("open");
    }
    if (absl::Status s =
            WriteFile(kOciLayoutFile, 0444,
                      absl::StrCat("{\"imageLayoutVersion\":\"", kOciLayoutVersion, "\"}"));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = WriteFile("index.json", 0644, Dump(index)); !s.ok()) return s;
    if (!docker.empty()) {
      if (absl::Status s = WriteFile("manifest.json", 0644, docker); !s.ok()) return s;
    }
    for (const char* dir : {"blobs/", "blobs/sha256/"}) {
      if (absl::Status s = WriteHeader(dir, AE_IFDIR, 0755, 0); !s.ok()) return s;
    }
    std::set<std::string> written;
    for (const ExportBlob& blob : blobs_) {
      if (!written.insert(blob.digest).second) continue;
      if (absl::Status s = CopyBlob(blob); !s.ok()) return s;
    }
    if (archive_write_close(a_) != ARCHIVE_OK) return WriteError("close");
    a_ = nullptr;
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<store::Image> Find(const std::string& name) {
    auto image = images_->Get(ns_, name);
    if (absl::IsNotFound(image.status())) {
      if (auto normalized = NormalizeImageRef(name); normalized.ok() && *normalized != name) {
        image = images_->Get(ns_, *normalized);
      }
    }
    if (absl::IsNotFound(image.status())) {
      return absl::NotFoundError(
          absl::StrCat("image \"", name, "\": not found in namespace ", ns_));
    }
    return image;
  }

  static std::string BlobPath(const std::string& digest) {
    return absl::StrCat("blobs/sha256/", store::DigestHex(digest));
  }

  // ctr's familiarizeReference for manifest.json's RepoTags. Names with a
  // digest and names that do not parse are left out (ctr writes the first,
  // which `docker load` refuses, and fails the export on the second).
  static std::optional<std::string> RepoTag(const std::string& name) {
    auto ref = ParseNormalizedNamed(name);
    if (!ref.ok() || !ref->digest.empty()) return std::nullopt;
    if (ref->tag.empty()) ref->tag = "latest";
    return ref->Familiar();
  }

  // The manifest the Docker manifest.json describes for a target: itself, or
  // the one an index resolves to for the platform (ctr's choice), once
  // Collect has read it.
  std::optional<std::string> DockerManifestOf(const Descriptor& target) {
    store::ContentDocuments documents(content_, ns_);
    store::ResolvedImage walked;
    if (!store::ResolveImage(documents, target, matcher_,
                             store::FormatPlatform(options_.platform),
                             store::ConfigRead::kWhenNeeded, &walked)
             .ok() ||
        !manifests_.count(walked.path.back().digest)) {
      return std::nullopt;
    }
    return walked.path.back().digest;
  }

  // Appends `d` and the blobs below it to `out`, parents first; true when all
  // of them are in the store, false (and nothing appended) when one is
  // missing and `required` is false. A manifest counts only whole; an index
  // drops the entries that are missing and not required.
  absl::StatusOr<bool> Collect(const Descriptor& d, bool required, const std::string& image,
                               std::vector<ExportBlob>* out, int depth = 0) {
    if (absl::Status v = store::ValidateDigest(d.digest); !v.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("image ", image, ": ", v.message()));
    }
    int64_t size;
    if (auto it = sizes_.find(d.digest); it != sizes_.end()) {
      size = it->second;
    } else {
      auto info = content_->Info(ns_, d.digest);
      if (absl::IsNotFound(info.status())) {
        if (!required) return false;
        return absl::FailedPreconditionError(absl::StrCat("image ", image, ": blob ", d.digest,
                                                          " (", d.media_type,
                                                          ") is not in namespace ", ns_));
      }
      if (!info.ok()) return info.status();
      size = sizes_[d.digest] = info->size;
    }
    if (d.size >= 0 && size != d.size) {
      return absl::DataLossError(absl::StrCat("image ", image, ": blob ", d.digest, " is ", size,
                                              " bytes but its descriptor says ", d.size));
    }
    std::vector<ChildPlan> plan;
    bool is_manifest = store::IsManifestType(d.media_type);
    if (store::IsIndexType(d.media_type)) {
      if (depth >= store::kMaxIndexNesting) {
        return absl::FailedPreconditionError(absl::StrCat(
            "image ", image, ": indexes nested more than ", store::kMaxIndexNesting, " deep"));
      }
      if (!indexes_.count(d.digest)) {
        auto bytes = ReadSmallBlob(content_, ns_, d.digest, store::kMaxImageDocumentBytes);
        if (!bytes.ok()) return bytes.status();
        auto children = store::ParseIndex(*bytes);
        if (!children.ok()) {
          return absl::DataLossError(
              absl::StrCat("image ", image, ": ", children.status().message()));
        }
        indexes_[d.digest] = *std::move(children);
      }
      plan = PlanChildren(indexes_[d.digest], required, matcher_, options_.all_platforms);
    } else if (is_manifest) {
      if (!manifests_.count(d.digest)) {
        auto bytes = ReadSmallBlob(content_, ns_, d.digest, store::kMaxImageDocumentBytes);
        if (!bytes.ok()) return bytes.status();
        auto manifest = store::ParseManifest(*bytes);
        if (!manifest.ok()) {
          return absl::DataLossError(
              absl::StrCat("image ", image, ": ", manifest.status().message()));
        }
        manifests_[d.digest] = *std::move(manifest);
      }
      const store::Manifest& m = manifests_[d.digest];
      plan.push_back({m.config, required});
      for (const Descriptor& layer : m.layers) plan.push_back({layer, required});
    }
    std::vector<ExportBlob> mine{{d.digest, size}};
    for (const ChildPlan& child : plan) {
      auto ok = Collect(child.desc, child.required, image, &mine, depth + 1);
      if (!ok.ok()) return ok.status();
      if (!*ok && is_manifest) return false;
    }
    out->insert(out->end(), mine.begin(), mine.end());
    return true;
  }

  static la_ssize_t WriteCallback(struct archive* a, void* data, const void* buf, size_t n) {
    auto* self = static_cast<Exporter*>(data);
    absl::Status s = (*self->write_)(absl::string_view(static_cast<const char*>(buf), n));
    if (!s.ok()) {
      self->write_status_ = s;
      archive_set_error(a, EIO, "%s", std::string(s.message()).c_str());
      return -1;
    }
    return static_cast<la_ssize_t>(n);
  }

  absl::Status WriteError(absl::string_view what) const {
    if (!write_status_.ok()) return write_status_;
    const char* msg = archive_error_string(a_);
    return absl::InternalError(
        absl::StrCat("writing the archive (", what, "): ", msg ? msg : "unknown error"));
  }

  absl::Status WriteHeader(const std::string& name, mode_t type, mode_t perm, int64_t size) {
    std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)> e(archive_entry_new(),
                                                                             archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), perm);
    archive_entry_set_size(e.get(), size);
    archive_entry_set_mtime(e.get(), 0, 0);
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) return WriteError(name);
    return absl::OkStatus();
  }

  absl::Status WriteData(const std::string& name, absl::string_view data) {
    while (!data.empty()) {
      la_ssize_t n = archive_write_data(a_, data.data(), data.size());
      if (n <= 0) return WriteError(name);
      data.remove_prefix(n);
    }
    return absl::OkStatus();
  }

  absl::Status WriteFile(const std::string& name, mode_t perm, absl::string_view data) {
    if (absl::Status s = WriteHeader(name, AE_IFREG, perm, data.size()); !s.ok()) return s;
    return WriteData(name, data);
  }

  absl::Status CopyBlob(const ExportBlob& blob) {
    std::string name = BlobPath(blob.digest);
    auto reader = content_->Reader(ns_, blob.digest);
    if (!reader.ok()) return reader.status();
    if ((*reader)->Size() != blob.size) {
      return absl::DataLossError(
          absl::StrCat("blob ", blob.digest, " changed size during the export"));
    }
    if (absl::Status s = WriteHeader(name, AE_IFREG, 0444, blob.size); !s.ok()) return s;
    store::Sha256 hash;
    std::string chunk;
    int64_t offset = 0;
    while (offset < blob.size) {
      if (absl::Status s = (*reader)->ReadAt(offset, kChunk, &chunk); !s.ok()) return s;
      if (chunk.empty()) {
        return absl::DataLossError(absl::StrCat("blob ", blob.digest, ": ended after ", offset,
                                                " of ", blob.size, " bytes"));
      }
      hash.Update(chunk);
      if (absl::Status s = WriteData(name, chunk); !s.ok()) return s;
      offset += chunk.size();
    }
    if (hash.Digest() != blob.digest) {
      return absl::DataLossError(
          absl::StrCat("blob ", blob.digest, " in the store hashes to ", hash.Digest()));
    }
    return absl::OkStatus();
  }

  ContentStore* content_;
  ImageStore* images_;
  std::string ns_;
  ExportOptions options_;
  store::PlatformMatcher matcher_;
  std::vector<ExportBlob> blobs_;  // in walk order, possibly repeated
  std::map<std::string, int64_t> sizes_;
  std::map<std::string, std::vector<Descriptor>> indexes_;
  std::map<std::string, store::Manifest> manifests_;

  struct archive* a_ = nullptr;
  const ArchiveWriteFn* write_ = nullptr;
  absl::Status write_status_;
};

}  // namespace

std::string OciReferenceName(absl::string_view name) {
  // containerd's reference.Parse, which reads the name as the URL
  // "dummy://<name>": a host must come before the first '/' (a port, if
  // any, numeric), and the object starts at the first ':' or '@' after it.
  if (absl::StrContains(name, "://")) return std::string(name);
  size_t slash = name.find('/');
  absl::string_view authority = name.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos ? "" : name.substr(slash);
  absl::string_view host = authority.substr(authority.rfind('@') + 1);
  if (host.empty()) return std::string(name);
  if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    for (char c : host.substr(colon + 1)) {
      if (!absl::ascii_isdigit(c)) return std::string(name);
    }
  }
  size_t split = path.find_first_of(":@");
  if (split == absl::string_view::npos) return "";
  absl::string_view object = path.substr(split);
  if (absl::ConsumePrefix(&object, ":")) return std::string(object);
  return std::string(object);
}

absl::StatusOr<ImportResult> Import(ContentStore* content, ImageStore* images, absl::string_view ns,
                                    const ArchiveReadFn& read, absl::string_view source,
                                    const ImportOptions& options) {
  Importer importer(content, images, ns, source, options);
  return importer.Run(read);
}

absl::StatusOr<ImportResult> ImportFile(ContentStore* content, ImageStore* images,
                                        absl::string_view ns, const std::string& path,
                                        const ImportOptions& options) {
  int fd = 0;
  if (path != "-") {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return store::ErrnoError(errno, absl::StrCat("open ", path));
  }
  ArchiveReadFn read = [fd, &path](char* buf, size_t len) -> absl::StatusOr<size_t> {
    for (;;) {
      ssize_t n = ::read(fd, buf, len);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return store::ErrnoError(errno, absl::StrCat("read ", path));
    }
  };
  auto result = Import(content, images, ns, read, path == "-" ? "(stdin)" : path, options);
  if (fd != 0) ::close(fd);
  return result;
}

absl::Status Export(ContentStore* content, ImageStore* images, absl::string_view ns,
                    const std::vector<std::string>& names, const ArchiveWriteFn& write,
                    const ExportOptions& options) {
  if (names.empty()) return absl::InvalidArgumentError("no image to export");
  Exporter exporter(content, images, ns, options);
  return exporter.Run(names, write);
}

absl::Status ExportFile(ContentStore* content, ImageStore* images, absl::string_view ns,
                        const std::vector<std::string>& names, const std::string& path,
                        const ExportOptions& options) {
  if (path == "-") {
    return Export(
        content, images, ns, names,
        [](absl::string_view data) { return store::WriteAll(1, data, "(stdout)"); }, options);
  }
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty())
    return absl::InvalidArgumentError(absl::StrCat("export to ", path, ": not a file name"));
  // Created with mode 0666 so the umask applies, as to any file the user
  // makes; the random suffix keeps concurrent exports apart.
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = absl::StrCat(dir, "/.", base, ".tmp-", RandomToken());
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt == 8)) {
      return store::ErrnoError(errno, absl::StrCat("create a temporary file in ", dir));
    }
  }
  auto fail = [&](absl::Status s) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  absl::Status s = Export(
      content, images, ns, names,
      [fd, &tmp](absl::string_view data) { return store::WriteAll(fd, data, tmp); }, options);
  if (!s.ok()) return fail(s);
  if (::fsync(fd) != 0) return fail(store::ErrnoError(errno, absl::StrCat("fsync ", tmp)));
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) return fail(store::ErrnoError(errno, absl::StrCat("close ", tmp)));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(store::ErrnoError(errno, absl::StrCat("rename ", tmp, " to ", path)));
  }
  return store::SyncDir(dir);
}

}  // namespace imaged::cri
