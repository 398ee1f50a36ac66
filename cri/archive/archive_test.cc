// Image archives over real RocksDB stores: OCI round trips between two
// stores, docker-save imports, platforms, and every way an archive can be
// broken (which must leave no image record behind).
#include "cri/archive/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cri/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/digest.h"
#include "store/limits.h"
#include "store/local_stores.h"
#include "store/files.h"
#include "store/plain_stores.h"
#include "store/test_images.h"

namespace imaged::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr absl::string_view kNs = "k8s.io";

// One imaged: a root with RocksDB, blobs and the image store.
struct Stores {
  explicit Stores(const std::string& root) : root(root) {
    store::MakeDirs(root).IgnoreError();
    store::LocalStoresOptions options;
    options.clock = &clock;
    options.classify = ClassifyImageName;
    local = *store::LocalStores::Open(root, options);
    content = local->content();
    images = local->images();
  }

  std::vector<std::string> Names() {
    std::vector<std::string> names;
    auto list = images->List(kNs, {});
    EXPECT_TRUE(list.ok()) << list.status();
    for (const store::Image& i : list.value_or(std::vector<store::Image>{}))
      names.push_back(i.name);
    return names;
  }
  std::string BlobBytes(const std::string& digest) {
    auto r = content->Reader(kNs, digest);
    if (!r.ok()) return "<" + std::string(r.status().message()) + ">";
    std::string out;
    (*r)->ReadAt(0, (*r)->Size(), &out).IgnoreError();
    return out;
  }
  bool Has(const std::string& digest) { return content->Info(kNs, digest).ok(); }
  std::string IdOf(const std::string& name) {
    auto id = images->ImageIdOfName(kNs, name);
    return id.ok() && id->has_value() ? **id : "";
  }

  std::string root;
  store::FakeClock clock;
  std::unique_ptr<store::LocalStores> local;
  store::RocksDbContentStore* content;
  store::RocksDbImageStore* images;
};

// A tar built in memory: regular files and symlinks, in order.
struct TarEntry {
  std::string name;
  std::string data;
  std::string symlink;  // set: a symlink to this
};

std::string Tar(const std::vector<TarEntry>& entries, bool gzip = false) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_open2(
      a, &out, nullptr,
      [](struct archive*, void* data, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(data)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr, nullptr);
  for (const TarEntry& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_perm(entry, 0644);
    if (!e.symlink.empty()) {
      archive_entry_set_filetype(entry, AE_IFLNK);
      archive_entry_set_symlink(entry, e.symlink.c_str());
      archive_write_header(a, entry);
    } else {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_size(entry, e.data.size());
      archive_write_header(a, entry);
      archive_write_data(a, e.data.data(), e.data.size());
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// The regular files of a tar, in order.
std::vector<std::pair<std::string, std::string>> Untar(const std::string& tar) {
  std::vector<std::pair<std::string, std::string>> files;
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_open_memory(a, tar.data(), tar.size());
  struct archive_entry* entry;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    std::string data(archive_entry_size(entry), '\0');
    archive_read_data(a, data.data(), data.size());
    files.emplace_back(archive_entry_pathname(entry), data);
  }
  archive_read_free(a);
  return files;
}

ArchiveReadFn FromString(const std::string& data) {
  auto offset = std::make_shared<size_t>(0);
  return [&data, offset](char* buf, size_t len) -> absl::StatusOr<size_t> {
    size_t n = std::min(len, data.size() - *offset);
    std::memcpy(buf, data.data() + *offset, n);
    *offset += n;
    return n;
  };
}

std::string BlobPath(const std::string& digest) {
  return absl::StrCat("blobs/sha256/", store::DigestHex(digest));
}

// An OCI layout's files for a test image (tar order: blobs first, as ctr).
std::vector<TarEntry> OciEntries(const store::TestImage& image, const std::string& index_json,
                                 bool with_layout = true) {
  std::vector<TarEntry> entries;
  for (const auto& [digest, data] : image.blobs) entries.push_back({BlobPath(digest), data, ""});
  entries.push_back({"index.json", index_json, ""});
  if (with_layout) entries.push_back({"oci-layout", R"({"imageLayoutVersion":"1.0.0"})", ""});
  return entries;
}

std::string IndexJson(const std::vector<nlohmann::json>& manifests) {
  return nlohmann::json({{"schemaVersion", 2}, {"manifests", manifests}}).dump();
}

nlohmann::json Entry(const store::Descriptor& d,
                     const std::map<std::string, std::string>& annotations) {
  nlohmann::json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (!annotations.empty()) j["annotations"] = annotations;
  return j;
}

// Each test runs twice: importing into the stores themselves (batched
// commits, as the server's own import) and through their plain faces (one
// at a time, as over gRPC).
class ArchiveTest : public ::testing::TestWithParam<bool> {
 protected:
  ArchiveTest() {
    const char* base = std::getenv("TEST_TMPDIR");
    tmp_ = absl::StrCat(base ? base : "/tmp", "/imaged-archive-XXXXXX");
    EXPECT_NE(::mkdtemp(tmp_.data()), nullptr);
    a_ = std::make_unique<Stores>(tmp_ + "/a");
    b_ = std::make_unique<Stores>(tmp_ + "/b");
  }
  bool batched() const { return GetParam(); }
  // What imports into b go through (a test may replace b_).
  store::ContentStore* b_content() {
    if (batched()) return b_->content;
    Wrap();
    return b_plain_content_.get();
  }
  store::ImageStore* b_images() {
    if (batched()) return b_->images;
    Wrap();
    return b_plain_images_.get();
  }
  void Wrap() {
    if (b_plain_wraps_ == b_.get()) return;
    b_plain_content_ = std::make_unique<store::PlainContentStore>(b_->content);
    b_plain_images_ = std::make_unique<store::PlainImageStore>(b_->images);
    b_plain_wraps_ = b_.get();
  }
  ~ArchiveTest() override {
    a_.reset();
    b_.reset();
    store::RemoveAll(tmp_).IgnoreError();
  }

  store::TestImage Make(const std::string& seed, const std::string& arch = "amd64",
                        bool write = true) {
    store::TestImageSpec spec;
    spec.seed = seed;
    spec.architecture = arch;
    return *store::MakeTestImage(*a_->content, kNs, spec, write);
  }
  void Name(Stores& s, const std::string& name, store::Descriptor target) {
    store::Image image;
    image.name = name;
    target.platform.reset();
    image.target = target;
    ASSERT_TRUE(s.images->Create(kNs, image).ok()) << name;
  }
  absl::StatusOr<std::string> ExportA(const std::vector<std::string>& names,
                                      ExportOptions options = {}) {
    std::string out;
    absl::Status s = Export(
        a_->content, a_->images, kNs, names,
        [&out](absl::string_view d) {
          out.append(d.data(), d.size());
          return absl::OkStatus();
        },
        options);
    if (!s.ok()) return s;
    return out;
  }
  absl::StatusOr<ImportResult> ImportB(const std::string& tar, ImportOptions options = {}) {
    return Import(b_content(), b_images(), kNs, FromString(tar), "test.tar", options);
  }

  std::string tmp_;
  std::unique_ptr<Stores> a_, b_;
  std::unique_ptr<store::PlainContentStore> b_plain_content_;
  std::unique_ptr<store::PlainImageStore> b_plain_images_;
  const Stores* b_plain_wraps_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Commits, ArchiveTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Batched" : "OneByOne";
                         });

// --- names -----------------------------------------------------------------

TEST(ArchiveNamesTest, OciReferenceNameIsContainerdsObject) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"docker.io/library/busybox:1.36", "1.36"},
      {"docker.io/library/busybox", ""},
      {"docker.io/library/busybox@sha256:abc", "@sha256:abc"},
      {"docker.io/library/busybox:1@sha256:abc", "1@sha256:abc"},
      {"localhost:5000/app:v2", "v2"},
      {"busybox:1.36", "busybox:1.36"},  // no host: the name as is
      {"import-2024-01-02:latest", "import-2024-01-02:latest"},
      {"https://x/y:1", "https://x/y:1"},
  };
  for (const auto& [name, want] : cases) EXPECT_EQ(OciReferenceName(name), want) << name;
}

TEST(ArchiveNamesTest, CleanPathIsGosPathClean) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"./blobs/sha256/ab", "blobs/sha256/ab"},
      {"blobs//sha256/", "blobs/sha256"},
      {"a/../b", "b"},
      {"../a", "../a"},
      {"/index.json", "/index.json"},
      {"/../x", "/x"},
      {"", "."},
      {"abc/./layer.tar", "abc/layer.tar"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(CleanPath(in), want) << in;
}

// --- OCI -------------------------------------------------------------------

TEST_P(ArchiveTest, OciRoundTripKeepsImageIdAndBytes) {
  store::TestImage ti = Make("a");
  Name(*a_, "docker.io/library/busybox:1.36", ti.manifest);
  auto tar = ExportA({"busybox:1.36"});  // found by its normalised name
  ASSERT_TRUE(tar.ok()) << tar.status();

  // Metadata first, then every blob, each once.
  auto files = Untar(*tar);
  ASSERT_GE(files.size(), 3u);
  EXPECT_EQ(files[0].first, "oci-layout");
  EXPECT_EQ(files[0].second, R"({"imageLayoutVersion":"1.0.0"})");
  EXPECT_EQ(files[1].first, "index.json");
  nlohmann::json index = nlohmann::json::parse(files[1].second);
  ASSERT_EQ(index["manifests"].size(), 1u);
  EXPECT_EQ(index["manifests"][0]["digest"], ti.manifest.digest);
  EXPECT_EQ(index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "docker.io/library/busybox:1.36");
  EXPECT_EQ(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1.36");
  EXPECT_EQ(files[2].first, "manifest.json");
  nlohmann::json docker = nlohmann::json::parse(files[2].second);
  EXPECT_EQ(docker[0]["Config"], BlobPath(ti.config.digest));
  EXPECT_EQ(docker[0]["RepoTags"], nlohmann::json({"busybox:1.36"}));
  EXPECT_EQ(docker[0]["Layers"].size(), 2u);
  std::map<std::string, std::string> blobs(files.begin() + 3, files.end());
  EXPECT_EQ(blobs.size(), files.size() - 3);
  for (const auto& [digest, data] : ti.blobs) EXPECT_EQ(blobs[BlobPath(digest)], data) << digest;
  EXPECT_EQ(blobs.size(), ti.blobs.size());

  auto result = ImportB(*tar);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->images.size(), 1u);
  EXPECT_EQ(result->images[0].name, "docker.io/library/busybox:1.36");
  EXPECT_EQ(result->images[0].target.digest, ti.manifest.digest);
  EXPECT_EQ(result->images[0].image_id, ti.config.digest);
  EXPECT_EQ(result->blobs_written, static_cast<int64_t>(ti.blobs.size()));
  EXPECT_EQ(b_->IdOf("docker.io/library/busybox:1.36"), ti.config.digest);
  for (const auto& [digest, data] : ti.blobs) EXPECT_EQ(b_->BlobBytes(digest), data);
}

TEST_P(ArchiveTest, ImportSetsContainerdGcLabelsOnTheManifest) {
  store::TestImage ti = Make("a", "amd64", /*write=*/false);
  ASSERT_TRUE(
      ImportB(Tar(OciEntries(
                  ti, IndexJson({Entry(ti.manifest, {{"io.containerd.image.name", "x/y:1"}})}))))
          .ok());
  auto info = b_->content->Info(kNs, ti.manifest.digest);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels["containerd.io/gc.ref.content.config"], ti.config.digest);
  EXPECT_EQ(info->labels["containerd.io/gc.ref.content.l.0"], ti.layers[0].digest);
  EXPECT_EQ(info->labels["containerd.io/gc.ref.content.l.1"], ti.layers[1].digest);
}

TEST_P(ArchiveTest, ImportNamesEntriesAsCtrDoes) {
  store::TestImage ti = Make("a", "amd64", /*write=*/false);
  std::string index = IndexJson({
      Entry(ti.manifest, {{"io.containerd.image.name", "docker.io/x/full:1"},
                          {"org.opencontainers.image.ref.name", "ignored"}}),
      Entry(ti.manifest, {{"org.opencontainers.image.ref.name", "v2"}}),
      Entry(ti.manifest, {{"org.opencontainers.image.ref.name", "quay.io/other/repo:3"}}),
      Entry(ti.manifest, {{"org.opencontainers.image.ref.name", "example.com/base/app:4"}}),
      Entry(ti.manifest, {}),  // unnamed: no image
  });
  std::string tar = Tar(OciEntries(ti, index));

  struct Case {
    std::string base_name;
    bool digest_refs;
    std::vector<std::string> want;
  };
  const std::string dated = "import-2024-03-05";
  const std::string at = "@" + ti.manifest.digest;
  const std::vector<Case> cases = {
      {"",
       false,
       {"docker.io/x/full:1", dated + ":v2", "quay.io/other/repo:3", "example.com/base/app:4"}},
      // --base-name: bare tags join it, other repositories are skipped.
      {"example.com/base/app",
       false,
       {"docker.io/x/full:1", "example.com/base/app:v2", "example.com/base/app:4"}},
      // A repository below the base counts as inside it, as in ctr.
      {"example.com/base",
       false,
       {"docker.io/x/full:1", "example.com/base:v2", "example.com/base/app:4"}},
      {"example.com/base",
       true,
       {"docker.io/x/full:1", "example.com/base" + at, "example.com/base:v2",
        "example.com/base" + at, "example.com/base" + at, "example.com/base/app:4",
        "example.com/base" + at, "example.com/base" + at}},
  };
  for (const Case& c : cases) {
    ImportOptions options;
    options.base_name = c.base_name;
    options.digest_refs = c.digest_refs;
    options.now =
        absl::FromCivil(absl::CivilDay(2024, 3, 5), absl::LocalTimeZone()) + absl::Hours(12);
    auto result = ImportB(tar, options);
    ASSERT_TRUE(result.ok()) << result.status();
    std::vector<std::string> got;
    for (const ImportedImage& i : result->images) got.push_back(i.name);
    EXPECT_EQ(got, c.want) << "base " << c.base_name;
  }
}

TEST_P(ArchiveTest, ReimportIsIdempotentAndRetargetsAnExistingName) {
  store::TestImage one = Make("one", "amd64", false);
  store::TestImage two = Make("two", "amd64", false);
  auto tar_of = [&](const store::TestImage& ti) {
    return Tar(OciEntries(
        ti, IndexJson({Entry(ti.manifest, {{"io.containerd.image.name", "docker.io/x/y:1"}})})));
  };
  auto first = ImportB(tar_of(one));
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = ImportB(tar_of(one));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->blobs_written, 0);
  EXPECT_EQ(again->blobs_present, static_cast<int64_t>(one.blobs.size()));
  EXPECT_THAT(b_->Names(), ElementsAre("docker.io/x/y:1"));
  EXPECT_EQ(b_->IdOf("docker.io/x/y:1"), one.config.digest);

  ASSERT_TRUE(ImportB(tar_of(two)).ok());
  EXPECT_THAT(b_->Names(), ElementsAre("docker.io/x/y:1"));
  EXPECT_EQ(b_->images->Get(kNs, "docker.io/x/y:1")->target.digest, two.manifest.digest);
  EXPECT_EQ(b_->IdOf("docker.io/x/y:1"), two.config.digest);
}

TEST_P(ArchiveTest, GzipCompressedArchiveImports) {
  store::TestImage ti = Make("a", "amd64", false);
  std::string tar =
      Tar(OciEntries(ti, IndexJson({Entry(ti.manifest, {{"io.containerd.image.name", "x/y:1"}})})),
          /*gzip=*/true);
  auto result = ImportB(tar);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->images[0].image_id, ti.config.digest);
}

// --- platforms ---------------------------------------------------------------

TEST_P(ArchiveTest, MultiPlatformIndexExportsOnePlatformAndImportsWithoutTheOthers) {
  store::TestImage amd = Make("m", "amd64");
  store::TestImage arm = Make("m", "arm64", /*write=*/false);  // not in store A
  auto [index, index_bytes] = *store::MakeTestIndex(*a_->content, kNs, {arm, amd});
  Name(*a_, "docker.io/x/multi:1", index);

  ExportOptions all;
  all.all_platforms = true;
  auto refused = ExportA({"docker.io/x/multi:1"}, all);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();

  auto tar = ExportA({"docker.io/x/multi:1"});
  ASSERT_TRUE(tar.ok()) << tar.status();
  std::map<std::string, std::string> files;
  for (auto& [name, data] : Untar(*tar)) files[name] = data;
  EXPECT_TRUE(files.count(BlobPath(index.digest)));
  for (const auto& [digest, data] : amd.blobs) EXPECT_TRUE(files.count(BlobPath(digest))) << digest;
  EXPECT_FALSE(files.count(BlobPath(arm.manifest.digest)));
  EXPECT_EQ(nlohmann::json::parse(files["manifest.json"])[0]["Config"],
            BlobPath(amd.config.digest));

  auto result = ImportB(*tar);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->images[0].target.digest, index.digest);
  EXPECT_EQ(result->images[0].image_id, amd.config.digest);
  EXPECT_EQ(b_->IdOf("docker.io/x/multi:1"), amd.config.digest);

  ImportOptions every;
  every.all_platforms = true;
  b_ = std::make_unique<Stores>(tmp_ + "/c");
  auto strict = ImportB(*tar, every);
  EXPECT_TRUE(absl::IsFailedPrecondition(strict.status())) << strict.status();
  EXPECT_THAT(strict.status().message(), HasSubstr(arm.manifest.digest));
  EXPECT_THAT(b_->Names(), IsEmpty());
}

TEST_P(ArchiveTest, IndexWhoseOwnPlatformIsMissingIsRefused) {
  store::TestImage amd = Make("m", "amd64", false);
  store::TestImage arm = Make("m", "arm64", false);
  auto [index, index_bytes] = *store::MakeTestIndex(*a_->content, kNs, {arm, amd}, false);
  std::vector<TarEntry> entries =
      OciEntries(arm, IndexJson({Entry(index, {{"io.containerd.image.name", "x/m:1"}})}));
  entries.insert(entries.begin(), {BlobPath(index.digest), index_bytes, ""});
  auto result = ImportB(Tar(entries));
  EXPECT_TRUE(absl::IsFailedPrecondition(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr(amd.manifest.digest));
  EXPECT_THAT(b_->Names(), IsEmpty());
}

TEST_P(ArchiveTest, IndexesNestedDeeperThanTheLimitAreRefused) {
  store::TestImage ti = Make("n", "amd64", false);
  auto archive = [&](int levels) {
    std::vector<TarEntry> entries;
    for (const auto& [digest, data] : ti.blobs) entries.push_back({BlobPath(digest), data, ""});
    store::Descriptor d = ti.manifest;
    for (int i = 0; i < levels; ++i) {
      nlohmann::json e = Entry(d, {});
      e["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
      std::string bytes = IndexJson({e});
      d = {std::string(store::kMediaTypeOciIndex), store::Sha256::Of(bytes),
           static_cast<int64_t>(bytes.size())};
      entries.push_back({BlobPath(d.digest), bytes, ""});
    }
    entries.push_back(
        {"index.json", IndexJson({Entry(d, {{"io.containerd.image.name", "x/deep:1"}})}), ""});
    entries.push_back({"oci-layout", R"({"imageLayoutVersion":"1.0.0"})", ""});
    return Tar(entries);
  };
  auto deepest = ImportB(archive(store::kMaxIndexNesting));
  ASSERT_TRUE(deepest.ok()) << deepest.status();
  ASSERT_EQ(deepest->images.size(), 1u);
  EXPECT_EQ(deepest->images[0].image_id, ti.config.digest);

  auto deeper = ImportB(archive(store::kMaxIndexNesting + 1));
  EXPECT_TRUE(absl::IsFailedPrecondition(deeper.status())) << deeper.status();
  EXPECT_THAT(deeper.status().message(), HasSubstr("nested more than"));
}

// --- docker save -------------------------------------------------------------

TEST_P(ArchiveTest, DockerSaveArchiveImportsAsContainerdDoes) {
  store::TestImage ti = Make("d", "amd64", false);
  std::string config = ti.blobs[2].second;  // layers first, then the config
  ASSERT_EQ(store::Sha256::Of(config), ti.config.digest);
  std::string hex = std::string(store::DigestHex(ti.config.digest));
  // Legacy layout: <id>/layer.tar, the second layer a symlink to a third dir
  // (docker dedupes that way), the config at the top, manifest.json last.
  std::vector<TarEntry> entries = {
      {"l1/VERSION", "1.0", ""},
      {"l1/json", "{}", ""},
      {"l1/layer.tar", ti.blobs[0].second, ""},
      {"l3/layer.tar", ti.blobs[1].second, ""},
      {"l2/layer.tar", "", "../l3/layer.tar"},
      {hex + ".json", config, ""},
      {"repositories", R"({"busybox":{"1.36":"l2"}})", ""},
      {"manifest.json",
       nlohmann::json::array({{{"Config", hex + ".json"},
                               {"RepoTags", {"busybox:1.36", "quay.io/x/y:2"}},
                               {"Layers", {"l1/layer.tar", "l2/layer.tar"}}}})
           .dump(),
       ""},
  };
  auto result = ImportB(Tar(entries));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->images.size(), 2u);
  EXPECT_EQ(result->images[0].name, "docker.io/library/busybox:1.36");
  EXPECT_EQ(result->images[1].name, "quay.io/x/y:2");

  // The manifest containerd's importer writes, byte for byte.
  std::string want = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)",
      R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")",
      ti.config.digest, R"(","size":)", config.size(), "},",
      R"("layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":")",
      ti.layers[0].digest, R"(","size":)", ti.layers[0].size, "},",
      R"({"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":")",
      ti.layers[1].digest, R"(","size":)", ti.layers[1].size, "}]}");
  const store::Descriptor& target = result->images[0].target;
  EXPECT_EQ(target.media_type, "application/vnd.docker.distribution.manifest.v2+json");
  EXPECT_EQ(b_->BlobBytes(target.digest), want);
  EXPECT_EQ(target.digest, store::Sha256::Of(want));
  EXPECT_THAT(target.annotations,
              ElementsAre(Pair("io.containerd.image.name", "docker.io/library/busybox:1.36"),
                          Pair("org.opencontainers.image.ref.name", "1.36")));
  EXPECT_EQ(result->images[0].image_id, ti.config.digest);
  EXPECT_EQ(b_->IdOf("docker.io/library/busybox:1.36"), ti.config.digest);
  EXPECT_EQ(b_->IdOf("quay.io/x/y:2"), ti.config.digest);
  // Only what the image uses is stored: no VERSION, json or repositories.
  EXPECT_FALSE(b_->Has(store::Sha256::Of("1.0")));
  EXPECT_FALSE(b_->Has(store::Sha256::Of("{}")));
}

TEST_P(ArchiveTest, DockerSaveGzipLayerGetsTheGzipMediaType) {
  std::string layer = Tar({{"etc/x", "hello", ""}}, /*gzip=*/true);
  std::string config =
      nlohmann::json({{"architecture", "amd64"},
                      {"os", "linux"},
                      {"rootfs", {{"type", "layers"}, {"diff_ids", {store::Sha256::Of("x")}}}}})
          .dump();
  std::string tar =
      Tar({{"c.json", config, ""},
           {"blobs/sha256/" + std::string(store::DigestHex(store::Sha256::Of(layer))), layer, ""},
           {"manifest.json",
            nlohmann::json::array(
                {{{"Config", "c.json"},
                  {"RepoTags", {"a:1"}},
                  {"Layers",
                   {"blobs/sha256/" + std::string(store::DigestHex(store::Sha256::Of(layer)))}}}})
                .dump(),
            ""}});
  auto result = ImportB(tar);
  ASSERT_TRUE(result.ok()) << result.status();
  auto manifest = store::ParseManifest(b_->BlobBytes(result->images[0].target.digest));
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->layers[0].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
}

TEST_P(ArchiveTest, DockerSaveWithAMissingLayerIsRefused) {
  store::TestImage ti = Make("d", "amd64", false);
  std::string tar =
      Tar({{"c.json", ti.blobs[2].second, ""},
           {"manifest.json", R"([{"Config":"c.json","RepoTags":["a:1"],"Layers":["l/layer.tar"]}])",
            ""}});
  auto result = ImportB(tar);
  EXPECT_TRUE(absl::IsFailedPrecondition(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("l/layer.tar"));
  EXPECT_THAT(b_->Names(), IsEmpty());
}

// --- broken archives ---------------------------------------------------------

TEST_P(ArchiveTest, BrokenArchivesAreRefusedAndCreateNoImage) {
  store::TestImage ti = Make("a", "amd64", false);
  std::string index = IndexJson({Entry(ti.manifest, {{"io.containerd.image.name", "x/y:1"}})});
  std::string good = Tar(OciEntries(ti, index));

  std::vector<TarEntry> corrupt = OciEntries(ti, index);
  corrupt[0].data[0] ^= 1;  // a layer whose bytes do not match its name
  std::vector<TarEntry> missing_layer = OciEntries(ti, index);
  missing_layer.erase(missing_layer.begin());
  std::vector<TarEntry> bad_json = OciEntries(ti, "{not json");
  std::vector<TarEntry> no_layout = OciEntries(ti, index, /*with_layout=*/false);
  std::vector<TarEntry> no_index = OciEntries(ti, index);
  no_index.erase(no_index.end() - 2);
  std::vector<TarEntry> new_layout = OciEntries(ti, index);
  new_layout.back().data = R"({"imageLayoutVersion":"2.0.0"})";
  store::Descriptor wrong_size = ti.manifest;
  wrong_size.size += 1;  // the index says the manifest is longer than it is
  std::vector<TarEntry> bad_size =
      OciEntries(ti, IndexJson({Entry(wrong_size, {{"io.containerd.image.name", "x/y:1"}})}));

  struct Case {
    std::string what;
    std::string tar;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"digest mismatch", Tar(corrupt), absl::StatusCode::kDataLoss, BlobPath(ti.layers[0].digest)},
      // Every entry here is one header block and one data block.
      {"truncated in a blob", good.substr(0, 3 * 1024 + 600), absl::StatusCode::kDataLoss,
       "truncated"},
      {"truncated in a header", good.substr(0, 3 * 1024 + 300), absl::StatusCode::kDataLoss, ""},
      {"size mismatch", Tar(bad_size), absl::StatusCode::kDataLoss, "descriptor says"},
      {"missing layer", Tar(missing_layer), absl::StatusCode::kFailedPrecondition,
       ti.layers[0].digest},
      {"missing index.json", Tar(no_index), absl::StatusCode::kFailedPrecondition, "index.json"},
      {"index.json not JSON", Tar(bad_json), absl::StatusCode::kInvalidArgument, "index.json"},
      {"no oci-layout or manifest.json", Tar(no_layout), absl::StatusCode::kInvalidArgument,
       "unrecognized image format"},
      {"unsupported layout", Tar(new_layout), absl::StatusCode::kInvalidArgument, "2.0.0"},
      {"not a tar", std::string(4096, 'z'), absl::StatusCode::kInvalidArgument, "not a tar"},
  };
  int n = 0;
  for (const Case& c : cases) {
    // Each into a fresh store: blobs an earlier case committed would stand
    // in for the ones a later archive lacks.
    b_ = std::make_unique<Stores>(absl::StrCat(tmp_, "/case", n++));
    auto result = ImportB(c.tar);
    EXPECT_EQ(result.status().code(), c.code) << c.what << ": " << result.status();
    EXPECT_THAT(result.status().message(), HasSubstr("test.tar")) << c.what;
    EXPECT_THAT(result.status().message(), HasSubstr(c.message)) << c.what;
    EXPECT_THAT(b_->Names(), IsEmpty()) << c.what;
  }
  // The corrupt layer never became a blob, and no ingest is left.
  b_ = std::make_unique<Stores>(tmp_ + "/corrupt");
  EXPECT_FALSE(ImportB(Tar(corrupt)).ok());
  EXPECT_FALSE(b_->Has(store::Sha256::Of(corrupt[0].data)));
  EXPECT_FALSE(b_->Has(ti.layers[0].digest));
  EXPECT_THAT(*b_->content->ListStatuses(kNs, {}), IsEmpty());
  // A truncated import keeps the blobs that arrived whole, and the good
  // archive then imports.
  b_ = std::make_unique<Stores>(tmp_ + "/truncated");
  EXPECT_FALSE(ImportB(good.substr(0, 3 * 1024 + 600)).ok());
  EXPECT_THAT(*b_->content->ListStatuses(kNs, {}), IsEmpty());
  EXPECT_TRUE(b_->Has(ti.layers[0].digest));
  EXPECT_TRUE(ImportB(good).ok());
  EXPECT_THAT(b_->Names(), ElementsAre("x/y:1"));
}

// Small blobs are committed on the import's commit threads: a commit that
// fails there fails the import, naming its entry, and makes no image.
TEST_P(ArchiveTest, ABlobCommitThatFailsFailsTheImportNamingItsEntry) {
  store::TestImage ti = Make("a", "amd64", false);
  std::string tar = Tar(
      OciEntries(ti, IndexJson({Entry(ti.manifest, {{"io.containerd.image.name", "x/y:1"}})})));
  ImportOptions options;
  options.lease = "no-such-lease";  // every blob write is refused
  auto result = ImportB(tar, options);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("test.tar: blobs/sha256/"));
  EXPECT_THAT(b_->Names(), IsEmpty());
  EXPECT_THAT(*b_->content->ListStatuses(kNs, {}), IsEmpty());
  // Many blobs at once (more than the commit threads and their queue):
  // every one arrives, each counted once, a repeated one as present.
  std::vector<TarEntry> entries;
  std::vector<nlohmann::json> manifests;
  for (int i = 0; i < 40; ++i) {
    store::TestImage image = Make(absl::StrCat("many-", i), "amd64", false);
    for (const auto& [digest, data] : image.blobs) entries.push_back({BlobPath(digest), data, ""});
    manifests.push_back(Entry(image.manifest, {{"io.containerd.image.name", absl::StrCat("m/", i, ":1")}}));
  }
  entries.push_back(entries.front());
  entries.push_back({"index.json", IndexJson(manifests), ""});
  entries.push_back({"oci-layout", R"({"imageLayoutVersion":"1.0.0"})", ""});
  result = ImportB(Tar(entries));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->images.size(), 40u);
  EXPECT_EQ(result->blobs_written + result->blobs_present, static_cast<int64_t>(entries.size() - 2));
  EXPECT_EQ(result->blobs_present, 1);
}

// The temporary lease an import takes is gone afterwards, whether the
// import succeeded or failed; a caller's own lease is used as given.
TEST_P(ArchiveTest, ImportUnderLeaseTakesAndReleasesATemporaryLease) {
  store::TestImage ti = Make("leased", "amd64", false);
  std::string tar = Tar(
      OciEntries(ti, IndexJson({Entry(ti.manifest, {{"io.containerd.image.name", "x/l:1"}})})));
  store::LeaseStore* leases = b_->local->leases();
  auto result = ImportUnderLease(b_content(), b_images(), leases, kNs, FromString(tar), "t.tar",
                                 "test-import", {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*leases->List(kNs, {}), IsEmpty());
  auto failed = ImportUnderLease(b_content(), b_images(), leases, kNs, FromString("not a tar"),
                                 "t.tar", "test-import", {});
  EXPECT_FALSE(failed.ok());
  EXPECT_THAT(*leases->List(kNs, {}), IsEmpty());
  ImportOptions given;
  given.lease = "no-such-lease";  // used as given: the store refuses it
  auto refused = ImportUnderLease(b_content(), b_images(), leases, kNs, FromString(tar), "t.tar",
                                  "test-import", given);
  EXPECT_TRUE(absl::IsNotFound(refused.status())) << refused.status();
}

TEST_P(ArchiveTest, ReadErrorsPassThrough) {
  ArchiveReadFn failing = [](char*, size_t) -> absl::StatusOr<size_t> {
    return absl::UnavailableError("disk gone");
  };
  auto result = Import(b_content(), b_images(), kNs, failing, "x.tar", {});
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
}

TEST_P(ArchiveTest, AnEntryWithANegativeSizeIsRefusedNotTrusted) {
  // A ustar header whose size field is base-256 -1 (GNU's encoding).
  std::string tar = Tar({{"index.json", "{}", ""}});
  std::fill(tar.begin() + 124, tar.begin() + 136, '\xff');
  std::fill(tar.begin() + 148, tar.begin() + 156, ' ');
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(tar[i]);
  std::string checksum = absl::StrFormat("%06o", sum);
  std::copy(checksum.begin(), checksum.end(), tar.begin() + 148);
  tar[154] = '\0';
  auto result = ImportB(tar);
  EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("negative size"));
  EXPECT_THAT(b_->Names(), IsEmpty());
}

// --- export errors -----------------------------------------------------------

TEST_P(ArchiveTest, ExportOfUnknownImageIsNotFound) {
  auto result = ExportA({"nothere:1"});
  EXPECT_TRUE(absl::IsNotFound(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr("nothere:1"));
}

TEST_P(ArchiveTest, FailedExportFileLeavesNoFile) {
  store::TestImage ti = Make("a");
  store::TestImage gone = Make("gone", "amd64", /*write=*/false);
  Name(*a_, "docker.io/x/ok:1", ti.manifest);
  Name(*a_, "docker.io/x/gone:1", gone.manifest);
  std::string dir = tmp_ + "/out";
  ASSERT_TRUE(store::MakeDirs(dir).ok());
  std::string path = dir + "/images.tar";

  absl::Status s = ExportFile(a_->content, a_->images, kNs,
                              {"docker.io/x/ok:1", "docker.io/x/gone:1"}, path, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(*store::ListDir(dir), IsEmpty());

  ASSERT_TRUE(
      ExportFile(a_->content, a_->images, kNs, {"docker.io/x/ok:1"}, path, {}).ok());
  EXPECT_THAT(*store::ListDir(dir), ElementsAre("images.tar"));
  auto result = ImportFile(b_content(), b_images(), kNs, path, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->images[0].image_id, ti.config.digest);

  auto missing = ImportFile(b_content(), b_images(), kNs, dir + "/nope.tar", {});
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
}

TEST_P(ArchiveTest, ExportOfACorruptStoreBlobFails) {
  store::TestImageSpec spec;
  spec.seed = "a";
  spec.layer_size = 100000;  // a file, which can be damaged: over the inline limit
  store::TestImage ti = *store::MakeTestImage(*a_->content, kNs, spec);
  Name(*a_, "docker.io/x/ok:1", ti.manifest);
  // Damage the layer file behind the store's back.
  std::string file =
      a_->root + "/blobs/sha256/" + std::string(store::DigestHex(ti.layers[0].digest));
  ::chmod(file.c_str(), 0644);
  FILE* f = std::fopen(file.c_str(), "r+");
  ASSERT_NE(f, nullptr);
  std::fputc('X', f);
  std::fclose(f);
  auto result = ExportA({"docker.io/x/ok:1"});
  EXPECT_TRUE(absl::IsDataLoss(result.status())) << result.status();
  EXPECT_THAT(result.status().message(), HasSubstr(ti.layers[0].digest));
}

}  // namespace
}  // namespace imaged::cri
