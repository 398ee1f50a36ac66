// Export: ctr images export's OCI archive (see archive.h).
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
#include "cri/archive/archive_internal.h"
#include "cri/reference.h"
#include "store/digest.h"
#include "store/errors.h"
#include "store/files.h"
#include "store/limits.h"
#include "store/resolver.h"

namespace imaged::cri {
namespace {

using archive_internal::ChildPlan;
using archive_internal::DescriptorJson;
using archive_internal::Dump;
using archive_internal::kAnnotationImageName;
using archive_internal::kAnnotationRefName;
using archive_internal::kChunk;
using archive_internal::kOciLayoutFile;
using archive_internal::kOciLayoutVersion;
using archive_internal::PlanChildren;
using archive_internal::RandomToken;
using store::ContentStore;
using store::Descriptor;
using store::ImageStore;

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
        auto bytes = 
            store::ReadWholeBlob(*content_, ns_, d.digest, store::kMaxImageDocumentBytes);
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
        auto bytes = 
            store::ReadWholeBlob(*content_, ns_, d.digest, store::kMaxImageDocumentBytes);
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
