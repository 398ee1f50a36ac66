#include "store/resolver.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/digest.h"
#include "store/limits.h"

namespace imaged::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Documents by digest, in memory; remembers what was asked for.
class MapSource : public DocumentSource {
 public:
  Descriptor Add(absl::string_view media_type, const std::string& bytes) {
    Descriptor d{std::string(media_type), Sha256::Of(bytes), static_cast<int64_t>(bytes.size())};
    docs_[d.digest] = bytes;
    return d;
  }
  void Remove(const std::string& digest) { docs_.erase(digest); }

  absl::StatusOr<std::string> Fetch(const Descriptor& desc, DocumentKind kind,
                                    int64_t max_bytes) override {
    fetched.push_back(absl::StrCat(DocumentKindName(kind), " ", desc.digest));
    auto it = docs_.find(desc.digest);
    if (it == docs_.end()) return absl::NotFoundError("not here");
    return it->second;
  }

  std::vector<std::string> fetched;

 private:
  std::map<std::string, std::string> docs_;
};

std::string DescriptorJson(const Descriptor& d, absl::string_view platform = "") {
  std::string out = absl::StrCat(R"({"mediaType":")", d.media_type, R"(","digest":")", d.digest,
                                 R"(","size":)", d.size);
  if (!platform.empty()) absl::StrAppend(&out, R"(,"platform":)", platform);
  return out + "}";
}

std::string PlatformJson(absl::string_view os, absl::string_view arch) {
  return absl::StrCat(R"({"os":")", os, R"(","architecture":")", arch, R"("})");
}

// A config, two layers and a manifest for os/arch; returns the manifest.
Descriptor AddImage(MapSource& src, absl::string_view os = "linux",
                    absl::string_view arch = "amd64", Descriptor* config_out = nullptr) {
  Descriptor config =
      src.Add(kMediaTypeOciConfig,
              absl::StrCat(R"({"architecture":")", arch, R"(","os":")", os,
                           R"(","config":{"User":"1000"},"rootfs":{"type":"layers","diff_ids":[")",
                           Sha256::Of(absl::StrCat(os, arch, "1")), R"("]}})"));
  Descriptor layer{std::string(kMediaTypeOciLayerGzip), Sha256::Of(absl::StrCat(os, arch)), 100};
  if (config_out != nullptr) *config_out = config;
  return src.Add(
      kMediaTypeOciManifest,
      absl::StrCat(R"({"schemaVersion":2,"mediaType":")", kMediaTypeOciManifest, R"(","config":)",
                   DescriptorJson(config), R"(,"layers":[)", DescriptorJson(layer), "]}"));
}

Descriptor AddIndex(MapSource& src, const std::vector<std::string>& entries) {
  return src.Add(kMediaTypeOciIndex,
                 absl::StrCat(R"({"schemaVersion":2,"mediaType":")", kMediaTypeOciIndex,
                              R"(","manifests":[)", absl::StrJoin(entries, ","), "]}"));
}

const PlatformMatcher& Amd64() {
  static const PlatformMatcher* m =
      new PlatformMatcher(store::Platform{"linux", "amd64", "", "", {}});
  return *m;
}

TEST(ResolveImage, ManifestTargetIsNotCheckedForPlatform) {
  MapSource src;
  Descriptor config;
  Descriptor manifest = AddImage(src, "windows", "arm64", &config);
  ResolvedImage out;
  ASSERT_TRUE(ResolveImage(src, manifest, Amd64(), "linux/amd64", ConfigRead::kAlways, &out).ok());
  EXPECT_EQ(out.image_id(), config.digest);
  ASSERT_EQ(out.path.size(), 1u);
  EXPECT_EQ(out.path[0].digest, manifest.digest);
  ASSERT_TRUE(out.config.has_value());
  EXPECT_EQ(out.config->user, "1000");
  EXPECT_FALSE(out.via_platformless_entry);
  EXPECT_EQ(ImageSize(out.path, *out.manifest), manifest.size + config.size + 100);
}

TEST(ResolveImage, IndexEntryForThePlatformIsChosen) {
  MapSource src;
  Descriptor arm = AddImage(src, "linux", "arm64");
  Descriptor amd = AddImage(src, "linux", "amd64");
  Descriptor index = AddIndex(src, {DescriptorJson(arm, PlatformJson("linux", "arm64")),
                                    DescriptorJson(amd, PlatformJson("linux", "amd64"))});
  ResolvedImage out;
  ASSERT_TRUE(ResolveImage(src, index, Amd64(), "linux/amd64", ConfigRead::kWhenNeeded, &out).ok());
  ASSERT_EQ(out.path.size(), 2u);
  EXPECT_EQ(out.path[1].digest, amd.digest);
  // The platform said enough: the config was not read.
  EXPECT_FALSE(out.config.has_value());
  EXPECT_THAT(src.fetched, ElementsAre(absl::StrCat("index ", index.digest),
                                       absl::StrCat("manifest ", amd.digest)));
}

TEST(ResolveImage, NoEntryForThePlatformIsNotFound) {
  MapSource src;
  Descriptor arm = AddImage(src, "linux", "arm64");
  Descriptor index = AddIndex(src, {DescriptorJson(arm, PlatformJson("linux", "arm64"))});
  ResolvedImage out;
  absl::Status s = ResolveImage(src, index, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("no manifest for linux/amd64"));
}

TEST(ResolveImage, PlatformlessEntryMustProveItsPlatformThroughItsConfig) {
  MapSource src;
  Descriptor amd = AddImage(src, "linux", "amd64");
  ResolvedImage out;
  Descriptor index = AddIndex(src, {DescriptorJson(amd)});
  ASSERT_TRUE(ResolveImage(src, index, Amd64(), "linux/amd64", ConfigRead::kWhenNeeded, &out).ok());
  EXPECT_TRUE(out.via_platformless_entry);
  EXPECT_TRUE(out.config.has_value());  // needed, so read

  // The first platform-less entry is of another platform: containerd does
  // not go on to the next one.
  Descriptor arm = AddImage(src, "linux", "arm64");
  Descriptor mixed = AddIndex(src, {DescriptorJson(arm), DescriptorJson(amd)});
  absl::Status s = ResolveImage(src, mixed, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("no manifest for linux/amd64"));
}

TEST(ResolveImage, NestedIndexesAreFollowedToTheLimit) {
  MapSource src;
  Descriptor d = AddImage(src);
  for (int i = 0; i < kMaxIndexNesting; ++i) {
    d = AddIndex(src, {DescriptorJson(d, PlatformJson("linux", "amd64"))});
  }
  ResolvedImage out;
  ASSERT_TRUE(ResolveImage(src, d, Amd64(), "linux/amd64", ConfigRead::kAlways, &out).ok());
  EXPECT_EQ(out.path.size(), static_cast<size_t>(kMaxIndexNesting + 1));

  Descriptor deeper = AddIndex(src, {DescriptorJson(d, PlatformJson("linux", "amd64"))});
  absl::Status s = ResolveImage(src, deeper, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("nested more than 4 deep"));
}

TEST(ResolveImage, MissingDocumentStopsTheWalkWithWhatWasRead) {
  MapSource src;
  Descriptor amd = AddImage(src);
  Descriptor index = AddIndex(src, {DescriptorJson(amd, PlatformJson("linux", "amd64"))});
  src.Remove(amd.digest);
  ResolvedImage out;
  absl::Status s = ResolveImage(src, index, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_EQ(s.message(), absl::StrCat("manifest ", amd.digest, ": not here"));
  ASSERT_EQ(out.path.size(), 2u);  // the index and the entry it chose
  EXPECT_FALSE(out.manifest.has_value());
}

TEST(ResolveImage, OversizedDocumentIsRefusedBeforeItIsFetched) {
  MapSource src;
  Descriptor manifest = AddImage(src);
  manifest.size = kMaxImageDocumentBytes + 1;
  ResolvedImage out;
  absl::Status s = ResolveImage(src, manifest, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(src.fetched, IsEmpty());

  // A source that returns more than the descriptor said is caught too.
  Descriptor big = src.Add(kMediaTypeOciManifest, std::string(kMaxImageDocumentBytes + 1, ' '));
  big.size = 10;
  s = ResolveImage(src, big, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
}

TEST(ResolveImage, BadDocumentsAndTypes) {
  MapSource src;
  ResolvedImage out;
  Descriptor junk = src.Add(kMediaTypeOciIndex, "not json");
  absl::Status s = ResolveImage(src, junk, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("index ", junk.digest, ": ")));

  Descriptor layer{std::string(kMediaTypeOciLayerGzip), Sha256::Of("x"), 1};
  s = ResolveImage(src, layer, Amd64(), "linux/amd64", ConfigRead::kAlways, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("unexpected media type"));
  EXPECT_THAT(src.fetched, ElementsAre(absl::StrCat("index ", junk.digest)));
}

TEST(ChildGcLabels, NumbersEachKindAsContainerdDoes) {
  Descriptor config{std::string(kMediaTypeOciConfig), "sha256:c", 1};
  Descriptor m{std::string(kMediaTypeDockerManifest), "sha256:m", 1};
  Descriptor index{std::string(kMediaTypeOciIndex), "sha256:i", 1};
  Descriptor l0{std::string(kMediaTypeOciLayerGzip), "sha256:l0", 1};
  Descriptor l1{std::string(kMediaTypeDockerLayerGzip), "sha256:l1", 1};
  Labels got = ChildGcLabels({config, m, index, l0, l1, m});
  EXPECT_EQ(got, (Labels{{"containerd.io/gc.ref.content.config", "sha256:c"},
                         {"containerd.io/gc.ref.content.m.0", "sha256:m"},
                         {"containerd.io/gc.ref.content.m.1", "sha256:m"},
                         {"containerd.io/gc.ref.content.0", "sha256:i"},
                         {"containerd.io/gc.ref.content.l.0", "sha256:l0"},
                         {"containerd.io/gc.ref.content.l.1", "sha256:l1"}}));
}

}  // namespace
}  // namespace imaged::store
