#include "tools/bench/dataset.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "store/digest.h"
#include "store/oci.h"
#include "store/resolver.h"

namespace imaged::bench {
namespace {

constexpr char kLayerType[] = "application/vnd.oci.image.layer.v1.tar";
constexpr char kConfigType[] = "application/vnd.oci.image.config.v1+json";
constexpr char kManifestType[] = "application/vnd.oci.image.manifest.v1+json";

// A ustar header for a regular file (or directory) of `size` bytes.
std::string TarHeader(absl::string_view name, int64_t size, bool dir = false) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 99));
  auto octal = [&](size_t offset, size_t width, int64_t v) {
    std::string s = absl::StrFormat("%0*o", static_cast<int>(width - 1), v);
    std::memcpy(&h[offset], s.data(), width - 1);
  };
  octal(100, 8, dir ? 0755 : 0644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 1767225600);  // 2026-01-01: fixed, so archives are reproducible
  h[156] = dir ? '5' : '0';
  std::memcpy(&h[257], "ustar\0" "00", 8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::string chk = absl::StrFormat("%06o", sum);
  std::memcpy(&h[148], chk.data(), 6);
  h[154] = '\0';
  h[155] = ' ';
  return h;
}

void AppendTarFile(std::string* out, absl::string_view name, absl::string_view data) {
  out->append(TarHeader(name, static_cast<int64_t>(data.size())));
  out->append(data.data(), data.size());
  out->append((512 - data.size() % 512) % 512, '\0');
}

std::string DescriptorJson(const Blob& b) {
  return absl::StrCat(R"({"mediaType":")", b.media_type, R"(","digest":")", b.digest,
                      R"(","size":)", b.bytes.size(), "}");
}

Blob MakeBlob(absl::string_view media_type, std::string bytes) {
  Blob b;
  b.media_type = std::string(media_type);
  b.digest = store::Sha256::Of(bytes);
  b.bytes = std::move(bytes);
  return b;
}

}  // namespace

std::vector<Blob> Dataset::MakeLayers(int count) {
  std::vector<Blob> out;
  for (int k = 0; k < count; ++k) {
    // A one-file uncompressed tar: its digest is its diff ID.
    std::string tar;
    AppendTarFile(&tar, absl::StrCat("bench/layer-", k), absl::StrCat("shared layer ", k, "\n"));
    tar.append(1024, '\0');
    out.push_back(MakeBlob(kLayerType, std::move(tar)));
  }
  return out;
}

DatasetImage Dataset::MakeImage(int index, const std::vector<Blob>& layers, int layers_per_image) {
  DatasetImage img;
  img.index = index;
  img.repo = absl::StrFormat("registry.example.com/bench/app-%06d", index);
  // Most images have no User, some a uid, some a name: kubelet sees all three.
  img.user = index % 10 == 0 ? "1000" : index % 10 == 1 ? "nobody" : "";
  std::string diff_ids;
  for (int j = 0; j < layers_per_image && !layers.empty(); ++j) {
    int k = (index + j) % static_cast<int>(layers.size());
    img.layers.push_back(k);
    absl::StrAppend(&diff_ids, j == 0 ? "" : ",", "\"", layers[k].digest, "\"");
  }
  std::string user = img.user.empty() ? "" : absl::StrCat(R"("User":")", img.user, R"(",)");
  img.config = MakeBlob(
      kConfigType,
      absl::StrCat(R"({"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z",)",
                   R"("config":{)", user, R"("Env":["PATH=/usr/local/bin:/usr/bin:/bin","APP=)",
                   index, R"("],"Cmd":["/app"],"WorkingDir":"/"},)",
                   R"("rootfs":{"type":"layers","diff_ids":[)", diff_ids, "]}}"));
  std::string layer_json;
  for (size_t j = 0; j < img.layers.size(); ++j) {
    absl::StrAppend(&layer_json, j == 0 ? "" : ",", DescriptorJson(layers[img.layers[j]]));
  }
  img.manifest = MakeBlob(
      kManifestType, absl::StrCat(R"({"schemaVersion":2,"mediaType":")", kManifestType,
                                  R"(","config":)", DescriptorJson(img.config), R"(,"layers":[)",
                                  layer_json, "]}"));
  img.tag_name = absl::StrCat(img.repo, ":v1");
  img.digest_name = absl::StrCat(img.repo, "@", img.manifest.digest);
  img.id = img.config.digest;
  return img;
}

Dataset Dataset::Make(const DatasetOptions& options) {
  Dataset d;
  d.options_ = options;
  d.layers_ = MakeLayers(options.shared_layers);
  d.images_.reserve(options.images);
  for (int i = 0; i < options.images; ++i) {
    d.images_.push_back(MakeImage(options.first_index + i, d.layers_, options.layers_per_image));
  }
  return d;
}

absl::Status Dataset::WriteOciArchive(const std::string& path, int begin, int end) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot create ", path));
  std::string buf;
  AppendTarFile(&buf, "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  buf.append(TarHeader("blobs/", 0, true));
  buf.append(TarHeader("blobs/sha256/", 0, true));
  auto blob = [&](const Blob& b) {
    AppendTarFile(&buf, absl::StrCat("blobs/sha256/", store::DigestHex(b.digest)), b.bytes);
    if (buf.size() > (4 << 20)) {
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      buf.clear();
    }
  };
  for (const Blob& b : layers_) blob(b);
  std::string index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)";
  bool first = true;
  for (int i = begin; i < end; ++i) {
    const DatasetImage& img = images_[i];
    blob(img.config);
    blob(img.manifest);
    // Not the ID name: containerd's CRI writes "sha256:<id>" itself when it
    // sees the image (and ctr's create of it would then fail as a duplicate).
    for (const std::string* name : {&img.tag_name, &img.digest_name}) {
      absl::StrAppend(&index, first ? "" : ",", R"({"mediaType":")", kManifestType,
                      R"(","digest":")", img.manifest.digest, R"(","size":)",
                      img.manifest.bytes.size(), R"(,"annotations":{"io.containerd.image.name":")",
                      *name, R"("}})");
      first = false;
    }
  }
  index += "]}";
  AppendTarFile(&buf, "index.json", index);
  buf.append(1024, '\0');
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("write ", path));
  return absl::OkStatus();
}

absl::Status WriteBlob(store::ContentStore& content, absl::string_view ns, const Blob& blob,
                       const store::Labels& labels) {
  auto w = content.Writer(ns, absl::StrCat("bench-", blob.digest), static_cast<int64_t>(blob.bytes.size()),
                          blob.digest);
  if (absl::IsAlreadyExists(w.status())) return absl::OkStatus();
  if (!w.ok()) return w.status();
  if (absl::Status s = (*w)->Write(blob.bytes); !s.ok()) return s;
  absl::Status s = (*w)->Commit(static_cast<int64_t>(blob.bytes.size()), blob.digest, labels);
  return absl::IsAlreadyExists(s) ? absl::OkStatus() : s;
}

absl::StatusOr<store::Labels> ManifestGcLabels(const Blob& manifest) {
  auto parsed = store::ParseManifest(manifest.bytes);
  if (!parsed.ok()) return parsed.status();
  std::vector<store::Descriptor> children{parsed->config};
  children.insert(children.end(), parsed->layers.begin(), parsed->layers.end());
  return store::ChildGcLabels(children);
}

absl::Status WriteImageBlobs(store::ContentStore& content, absl::string_view ns,
                             const DatasetImage& image, bool gc_labels) {
  if (absl::Status s = WriteBlob(content, ns, image.config); !s.ok()) return s;
  if (!gc_labels) return WriteBlob(content, ns, image.manifest);
  auto labels = ManifestGcLabels(image.manifest);
  if (!labels.ok()) return labels.status();
  return WriteBlob(content, ns, image.manifest, *labels);
}

absl::Status LoadImage(store::ContentStore& content, store::ImageStore& images,
                       absl::string_view ns, const DatasetImage& image) {
  if (absl::Status s = WriteImageBlobs(content, ns, image); !s.ok()) return s;
  return WriteRecords(images, ns, image);
}

absl::Status WriteRecords(store::ImageStore& images, absl::string_view ns,
                          const DatasetImage& image) {
  for (const std::string* name : {&image.tag_name, &image.digest_name, &image.id}) {
    store::Image rec;
    rec.name = *name;
    rec.target.media_type = image.manifest.media_type;
    rec.target.digest = image.manifest.digest;
    rec.target.size = static_cast<int64_t>(image.manifest.bytes.size());
    // What containerd's CRI sets on the records it writes.
    rec.labels = {{store::kLabelManaged, "managed"}};
    auto created = images.Create(ns, rec);
    if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
  }
  return absl::OkStatus();
}

namespace {

// Runs fn(i) for i in [0, n) on `concurrency` threads; the first error stops it.
absl::Status ForEach(int n, int concurrency, const std::function<absl::Status(int)>& fn) {
  std::atomic<int> next{0};
  absl::Mutex mu;
  absl::Status first_error;
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        absl::Status s = fn(i);
        if (!s.ok()) {
          absl::MutexLock lock(&mu);
          if (first_error.ok()) first_error = s;
          next = n;
          return;
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  return first_error;
}

}  // namespace

absl::StatusOr<LoadStats> LoadThroughApi(const Dataset& dataset, store::ContentStore& content,
                                         store::ImageStore& images, absl::string_view ns,
                                         int concurrency, bool gc_labels) {
  const auto start = std::chrono::steady_clock::now();
  for (const Blob& layer : dataset.layers()) {
    if (absl::Status s = WriteBlob(content, ns, layer); !s.ok()) return s;
  }
  const auto& all = dataset.images();
  const int n = static_cast<int>(all.size());
  // Blobs first, then the records, which then resolve at once.
  absl::Status s = ForEach(n, concurrency, [&](int i) {
    return WriteImageBlobs(content, ns, all[i], gc_labels);
  });
  if (!s.ok()) return s;
  const auto blobs_done = std::chrono::steady_clock::now();
  s = ForEach(n, concurrency, [&](int i) { return WriteRecords(images, ns, all[i]); });
  if (!s.ok()) return s;
  LoadStats stats;
  auto now = std::chrono::steady_clock::now();
  stats.seconds = std::chrono::duration<double>(now - start).count();
  stats.blob_seconds = std::chrono::duration<double>(blobs_done - start).count();
  stats.blobs = static_cast<int64_t>(dataset.layers().size() + 2 * dataset.images().size());
  stats.records = static_cast<int64_t>(3 * dataset.images().size());
  return stats;
}

}  // namespace imaged::bench
