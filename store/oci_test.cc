#include "store/oci.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imaged::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Digests of the documents below (any valid digest would do).
const std::string kAmd64Manifest = "sha256:" + std::string(64, 'a');
const std::string kArm64Manifest = "sha256:" + std::string(64, 'b');
const std::string kArmV7Manifest = "sha256:" + std::string(64, 'c');
const std::string kAttestation = "sha256:" + std::string(64, 'd');
const std::string kConfig = "sha256:" + std::string(64, 'e');
const std::string kLayer1 = "sha256:" + std::string(64, '1');
const std::string kLayer2 = "sha256:" + std::string(64, '2');

// The diff IDs are the SHA-256 of "layer1", "layer2", "layer3"; the chain IDs
// were computed in a shell:
//   printf '%s' "$D1 $D2" | sha256sum      -> kChain12
//   printf '%s' "$kChain12 $D3" | sha256sum -> kChain123
constexpr char kDiff1[] = "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2";
constexpr char kDiff2[] = "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06";
constexpr char kDiff3[] = "sha256:a0e70458d19e37e14d6388030a017c587283e2fb6ef10c0744cad0294c47e8f8";
constexpr char kChain12[] =
    "sha256:9c7a0b8937394482a0afcc4bef0ca0aba0d74084bd9f60198ec7fac434e5436d";
constexpr char kChain123[] =
    "sha256:1512378f2edc09c9e21c7511cc1aaf7c6d42d3b6ff301027b8527b8b23c3ce70";
// printf '%s' 'sha256:a sha256:b' | sha256sum
constexpr char kChainAB[] =
    "sha256:970a948bffa8de94d6e22d747ba8c95030e6e546909f98f54e99a13005e173a8";

// A multi-platform OCI index as BuildKit pushes it: three images and an
// attestation manifest for the amd64 one.
std::string OciIndex() {
  return absl::Substitute(R"json({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "$0",
      "size": 1051,
      "platform": {"architecture": "amd64", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "$1",
      "size": 1052,
      "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "$2",
      "size": 1053,
      "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "$3",
      "size": 566,
      "annotations": {
        "vnd.docker.reference.digest": "$0",
        "vnd.docker.reference.type": "attestation-manifest"
      },
      "platform": {"architecture": "unknown", "os": "unknown"}
    }
  ]
})json",
                          kAmd64Manifest, kArm64Manifest, kArmV7Manifest, kAttestation);
}

// A Docker manifest list as the Docker Hub serves it for library images.
std::string DockerManifestList() {
  return absl::Substitute(R"json({
  "manifests": [
    {
      "digest": "$0",
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "platform": {"architecture": "amd64", "os": "linux"},
      "size": 528
    },
    {
      "digest": "$1",
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
      "size": 528
    },
    {
      "digest": "$2",
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "platform": {"architecture": "windows-only", "os": "windows",
                   "os.version": "10.0.17763.5329", "os.features": ["win32k"]},
      "size": 1125
    }
  ],
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "schemaVersion": 2
})json",
                          kAmd64Manifest, kArmV7Manifest, kArm64Manifest);
}

std::string OciManifest() {
  return absl::Substitute(R"json({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "$0",
    "size": 1470
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "$1",
      "size": 3370706
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
      "digest": "$2",
      "size": 93,
      "annotations": {"org.opencontainers.image.title": "etc"}
    }
  ],
  "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
})json",
                          kConfig, kLayer1, kLayer2);
}

std::string DockerManifest() {
  return absl::Substitute(R"json({
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1457,
      "digest": "$0"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2207025,
         "digest": "$1"
      }
   ]
})json",
                          kConfig, kLayer1);
}

std::string ImageConfigJson() {
  return absl::Substitute(R"json({
  "architecture": "arm",
  "variant": "v7",
  "os": "linux",
  "created": "2024-01-01T00:00:00Z",
  "config": {
    "User": "1000:1000",
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["/bin/sh"],
    "WorkingDir": "/"
  },
  "rootfs": {"type": "layers", "diff_ids": ["$0", "$1"]},
  "history": [{"created_by": "ADD file:abc in /"}]
})json",
                          kDiff1, kDiff2);
}

Platform P(std::string os, std::string arch, std::string variant = "") {
  Platform p;
  p.os = std::move(os);
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

Descriptor D(std::string digest, std::optional<Platform> platform, int64_t size = 100) {
  Descriptor d;
  d.media_type = std::string(kMediaTypeOciManifest);
  d.digest = std::move(digest);
  d.size = size;
  d.platform = std::move(platform);
  return d;
}

PlatformMatcher Matcher(absl::string_view spec) {
  absl::StatusOr<Platform> p = ParsePlatform(spec);
  EXPECT_TRUE(p.ok()) << p.status();
  return PlatformMatcher(p.ok() ? *p : Platform{});
}

// --- media types -----------------------------------------------------------

TEST(MediaTypeTest, Classification) {
  struct Case {
    absl::string_view mt;
    bool index, manifest, config, layer;
  };
  const Case kCases[] = {
      {kMediaTypeOciIndex, true, false, false, false},
      {kMediaTypeDockerManifestList, true, false, false, false},
      {kMediaTypeOciManifest, false, true, false, false},
      {kMediaTypeDockerManifest, false, true, false, false},
      {kMediaTypeOciConfig, false, false, true, false},
      {kMediaTypeDockerConfig, false, false, true, false},
      {kMediaTypeOciLayer, false, false, false, true},
      {kMediaTypeOciLayerGzip, false, false, false, true},
      {kMediaTypeOciLayerZstd, false, false, false, true},
      {kMediaTypeOciLayerNonDistributable, false, false, false, true},
      {kMediaTypeOciLayerNonDistributableGzip, false, false, false, true},
      {kMediaTypeOciLayerNonDistributableZstd, false, false, false, true},
      {kMediaTypeDockerLayer, false, false, false, true},
      {kMediaTypeDockerLayerGzip, false, false, false, true},
      {kMediaTypeDockerLayerForeign, false, false, false, true},
      {kMediaTypeDockerLayerForeignGzip, false, false, false, true},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted", false, false, false, true},
      {kMediaTypeDockerSchema1Manifest, false, false, false, false},
      {"application/vnd.in-toto+json", false, false, false, false},
      {"application/json", false, false, false, false},
      {"", false, false, false, false},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.mt);
    EXPECT_EQ(IsIndexType(c.mt), c.index);
    EXPECT_EQ(IsManifestType(c.mt), c.manifest);
    EXPECT_EQ(IsConfigType(c.mt), c.config);
    EXPECT_EQ(IsLayerType(c.mt), c.layer);
  }
  EXPECT_EQ(kMediaTypeDockerConfig, "application/vnd.docker.container.image.v1+json");
  EXPECT_EQ(kMediaTypeDockerLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip");
}

// --- ParseIndex --------------------------------------------------------------

TEST(ParseIndexTest, OciIndexWithAttestation) {
  absl::StatusOr<std::vector<Descriptor>> got = ParseIndex(OciIndex());
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 4u);

  const Descriptor& amd64 = (*got)[0];
  EXPECT_EQ(amd64.media_type, kMediaTypeOciManifest);
  EXPECT_EQ(amd64.digest, kAmd64Manifest);
  EXPECT_EQ(amd64.size, 1051);
  EXPECT_TRUE(amd64.annotations.empty());
  EXPECT_EQ(amd64.platform, P("linux", "amd64"));

  EXPECT_EQ((*got)[1].platform, P("linux", "arm64", "v8"));
  EXPECT_EQ((*got)[2].platform, P("linux", "arm", "v7"));
  EXPECT_EQ((*got)[2].size, 1053);

  const Descriptor& att = (*got)[3];
  EXPECT_EQ(att.digest, kAttestation);
  EXPECT_EQ(att.platform, P("unknown", "unknown"));
  EXPECT_EQ(att.annotations, (Labels{{"vnd.docker.reference.digest", kAmd64Manifest},
                                     {"vnd.docker.reference.type", "attestation-manifest"}}));
}

TEST(ParseIndexTest, DockerManifestList) {
  absl::StatusOr<std::vector<Descriptor>> got = ParseIndex(DockerManifestList());
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].media_type, kMediaTypeDockerManifest);
  EXPECT_EQ((*got)[0].digest, kAmd64Manifest);
  EXPECT_EQ((*got)[0].size, 528);
  Platform windows = P("windows", "windows-only");
  windows.os_version = "10.0.17763.5329";
  windows.os_features = {"win32k"};
  EXPECT_EQ((*got)[2].platform, windows);
}

TEST(ParseIndexTest, AcceptedShapes) {
  const std::string kEntry =
      absl::StrCat(R"({"mediaType":"x","digest":")", kAmd64Manifest, R"("})");
  struct Case {
    std::string json;
    size_t want_entries;
  };
  const Case kCases[] = {
      {"{}", 0},
      {R"({"manifests": null})", 0},
      {R"({"manifests": []})", 0},
      {R"({"schemaVersion": 2, "manifests": []})", 0},
      {absl::StrCat(" \n{\"manifests\": [", kEntry, "]}\n "), 1},
      // Go's decoder matches keys case-insensitively.
      {absl::StrCat(R"({"Manifests": [{"Digest": ")", kAmd64Manifest, R"(", "SIZE": 7}]})"), 1},
      // An unknown top-level mediaType is not a reason to refuse.
      {absl::StrCat(R"({"mediaType": "application/json", "manifests": [)", kEntry, "]}"), 1},
      // Unknown fields are ignored.
      {absl::StrCat(R"({"subject": {"x": 1}, "manifests": [)", kEntry, "]}"), 1},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<std::vector<Descriptor>> got = ParseIndex(c.json);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->size(), c.want_entries);
  }
}

TEST(ParseIndexTest, NullFieldsAreAbsentAndLastDuplicateWins) {
  absl::StatusOr<std::vector<Descriptor>> got = ParseIndex(
      absl::StrCat(R"({"manifests": [{"mediaType": null, "digest": ")", kArm64Manifest,
                   R"(", "size": 5, "Size": 6, "annotations": null, "platform": null}]})"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].media_type, "");
  EXPECT_EQ((*got)[0].size, 6);
  EXPECT_TRUE((*got)[0].annotations.empty());
  EXPECT_FALSE((*got)[0].platform.has_value());
}

TEST(ParseIndexTest, NegativeSizeIsKeptAsContainerdDoes) {
  absl::StatusOr<std::vector<Descriptor>> got = ParseIndex(
      absl::StrCat(R"({"manifests": [{"digest": ")", kAmd64Manifest, R"(", "size": -1}]})"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].size, -1);
}

TEST(ParseIndexTest, Rejects) {
  const std::string& d = kAmd64Manifest;
  struct Case {
    std::string json;
    std::string why;
  };
  const Case kCases[] = {
      {"", "invalid JSON"},
      {"not json", "invalid JSON"},
      {"{", "invalid JSON"},
      {R"({"manifests": []} trailing)", "invalid JSON"},
      {R"({"manifests": [],})", "invalid JSON"},
      {"{/* comment */}", "invalid JSON"},
      {"\xEF\xBB\xBF{}", "byte-order mark"},
      {"[]", "expected a JSON object"},
      {"null", "expected a JSON object"},
      {"\"index\"", "expected a JSON object"},
      {R"({"manifests": {}})", "manifests: expected an array"},
      {R"({"manifests": "x"})", "manifests: expected an array"},
      {R"({"manifests": [1]})", "manifests[0]: expected an object"},
      {R"({"manifests": [null]})", "manifests[0]: expected an object"},
      {R"({"manifests": [{}]})", "manifests[0].digest"},
      {R"({"manifests": [{"digest": "sha256:abc"}]})", "manifests[0].digest"},
      {R"({"manifests": [{"digest": 5}]})", "expected a string"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"("}, {"digest": "md5:x"}]})"),
       "manifests[1].digest"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"(", "size": "12"}]})"),
       "size: expected an integer"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"(", "size": 1.5}]})"),
       "size: expected an integer"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"(", "size": 9223372036854775808}]})"),
       "out of range"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"(", "platform": "linux/amd64"}]})"),
       "platform: expected an object"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"(", "platform": {"os": 1}}]})"),
       "manifests[0].platform.os"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d,
                    R"(", "platform": {"os.features": "x"}}]})"),
       "platform.os.features"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"(", "annotations": {"a": 1}}]})"),
       "annotations.a"},
      {absl::StrCat(R"({"manifests": [{"digest": ")", d, R"(", "annotations": []}]})"),
       "annotations: expected an object"},
      {R"({"mediaType": 5})", "mediaType"},
      {R"({"schemaVersion": "2"})", "schemaVersion"},
      // A manifest where an index was expected, as containerd refuses it.
      {OciManifest(), "expected an index but found a manifest"},
      {R"({"config": null})", "expected an index"},
      {R"({"layers": []})", "expected an index"},
      {R"({"mediaType": "application/vnd.docker.distribution.manifest.v2+json"})",
       "expected an index"},
      {R"({"fsLayers": []})", "schema 1"},
      {"{\"manifests\": [{\"digest\": \"\xff\"}]}", "invalid JSON"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<std::vector<Descriptor>> got = ParseIndex(c.json);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), HasSubstr(c.why));
    EXPECT_THAT(got.status().message(), HasSubstr("image index"));
  }
}

// --- ParseManifest -----------------------------------------------------------

TEST(ParseManifestTest, OciManifest) {
  absl::StatusOr<Manifest> got = ParseManifest(OciManifest());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->config.media_type, kMediaTypeOciConfig);
  EXPECT_EQ(got->config.digest, kConfig);
  EXPECT_EQ(got->config.size, 1470);
  EXPECT_FALSE(got->config.platform.has_value());
  ASSERT_EQ(got->layers.size(), 2u);
  EXPECT_EQ(got->layers[0].media_type, kMediaTypeOciLayerGzip);
  EXPECT_EQ(got->layers[0].digest, kLayer1);
  EXPECT_EQ(got->layers[0].size, 3370706);
  EXPECT_EQ(got->layers[1].media_type, kMediaTypeOciLayerZstd);
  EXPECT_EQ(got->layers[1].annotations, (Labels{{"org.opencontainers.image.title", "etc"}}));
}

TEST(ParseManifestTest, DockerV2Manifest) {
  absl::StatusOr<Manifest> got = ParseManifest(DockerManifest());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->config.media_type, kMediaTypeDockerConfig);
  EXPECT_EQ(got->config.digest, kConfig);
  EXPECT_EQ(got->config.size, 1457);
  ASSERT_EQ(got->layers.size(), 1u);
  EXPECT_EQ(got->layers[0].media_type, kMediaTypeDockerLayerGzip);
  EXPECT_EQ(got->layers[0].size, 2207025);
}

TEST(ParseManifestTest, LayersMayBeAbsent) {
  absl::StatusOr<Manifest> got =
      ParseManifest(absl::StrCat(R"({"config": {"digest": ")", kConfig, R"("}})"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->layers.empty());
}

TEST(ParseManifestTest, Rejects) {
  const std::string config = absl::StrCat(R"("config": {"digest": ")", kConfig, R"("})");
  struct Case {
    std::string json;
    std::string why;
  };
  const Case kCases[] = {
      {"", "invalid JSON"},
      {"{]", "invalid JSON"},
      {"[]", "expected a JSON object"},
      {"{}", "config: missing"},
      {R"({"config": null})", "config: missing"},
      {R"({"config": []})", "config: expected an object"},
      {R"({"config": {"digest": "sha256:XYZ"}})", "config.digest"},
      {absl::StrCat("{", config, R"(, "layers": {}})"), "layers: expected an array"},
      {absl::StrCat("{", config, R"(, "layers": [{"digest": "nope"}]})"), "layers[0].digest"},
      {absl::StrCat("{", config, R"(, "layers": [{"digest": ")", kLayer1, R"(", "size": true}]})"),
       "layers[0].size"},
      // An index where a manifest was expected.
      {OciIndex(), "expected a manifest but found an index"},
      {absl::StrCat("{", config, R"(, "manifests": null})"), "expected a manifest"},
      {absl::StrCat("{", config, R"(, "mediaType": "application/vnd.oci.image.index.v1+json"})"),
       "expected a manifest"},
      // Docker schema 1.
      {R"({"schemaVersion": 1, "name": "library/busybox", "tag": "latest",
           "architecture": "amd64",
           "fsLayers": [{"blobSum": "sha256:aaaa"}],
           "history": [], "signatures": []})",
       "schema 1"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<Manifest> got = ParseManifest(c.json);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), HasSubstr(c.why));
    EXPECT_THAT(got.status().message(), HasSubstr("image manifest"));
  }
}

// --- ParseImageConfig --------------------------------------------------------

TEST(ParseImageConfigTest, RealShapedConfig) {
  absl::StatusOr<ImageConfig> got = ParseImageConfig(ImageConfigJson());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->user, "1000:1000");
  EXPECT_THAT(got->diff_ids, ElementsAre(kDiff1, kDiff2));
  EXPECT_EQ(got->platform, P("linux", "arm", "v7"));
}

TEST(ParseImageConfigTest, MinimalShapes) {
  struct Case {
    std::string json;
    std::string user;
    size_t diff_ids;
  };
  const Case kCases[] = {
      {"{}", "", 0},
      {R"({"config": null, "rootfs": null})", "", 0},
      {R"({"config": {}, "rootfs": {"type": "layers"}})", "", 0},
      {R"({"config": {"User": ""}})", "", 0},
      {R"({"config": {"User": "nobody"}})", "nobody", 0},
      {R"({"config": {"user": "lower-case key"}})", "lower-case key", 0},
      {absl::StrCat(R"({"rootfs": {"diff_ids": [")", kDiff3, R"("]}})"), "", 1},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<ImageConfig> got = ParseImageConfig(c.json);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->user, c.user);
    EXPECT_EQ(got->diff_ids.size(), c.diff_ids);
  }
}

TEST(ParseImageConfigTest, OsVersionAndFeatures) {
  absl::StatusOr<ImageConfig> got = ParseImageConfig(
      R"({"os": "windows", "architecture": "amd64",
          "os.version": "10.0.17763.1", "os.features": ["win32k"]})");
  ASSERT_TRUE(got.ok()) << got.status();
  Platform want = P("windows", "amd64");
  want.os_version = "10.0.17763.1";
  want.os_features = {"win32k"};
  EXPECT_EQ(got->platform, want);
}

TEST(ParseImageConfigTest, Rejects) {
  struct Case {
    std::string json;
    std::string why;
  };
  const Case kCases[] = {
      {"", "invalid JSON"},
      {"{\"config\": {", "invalid JSON"},
      {"7", "expected a JSON object"},
      {R"({"config": "x"})", "config: expected an object"},
      {R"({"config": {"User": 1000}})", "config.User: expected a string"},
      {R"({"rootfs": []})", "rootfs: expected an object"},
      {R"({"rootfs": {"diff_ids": "x"}})", "rootfs.diff_ids: expected an array"},
      {R"({"rootfs": {"diff_ids": [1]}})", "rootfs.diff_ids[0]"},
      {R"({"rootfs": {"diff_ids": [null]}})", "rootfs.diff_ids[0]"},
      {absl::StrCat(R"({"rootfs": {"diff_ids": [")", kDiff1, R"(", "sha256:a"]}})"),
       "rootfs.diff_ids[1]"},
      {R"({"os": ["linux"]})", "os: expected a string"},
      {R"({"architecture": 64})", "architecture: expected a string"},
      {R"({"variant": {}})", "variant: expected a string"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.json);
    absl::StatusOr<ImageConfig> got = ParseImageConfig(c.json);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), HasSubstr(c.why));
    EXPECT_THAT(got.status().message(), HasSubstr("image config"));
  }
}

// --- ChainId -----------------------------------------------------------------

TEST(ChainIdTest, Golden) {
  struct Case {
    std::vector<std::string> diff_ids;
    std::string want;
  };
  const Case kCases[] = {
      {{}, ""},
      {{kDiff1}, kDiff1},
      {{kDiff1, kDiff2}, kChain12},
      {{kDiff1, kDiff2, kDiff3}, kChain123},
      {{"sha256:a", "sha256:b"}, kChainAB},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(ChainId(c.diff_ids), c.want) << c.diff_ids.size() << " layers";
  }
}

TEST(ChainIdTest, FromParsedConfig) {
  absl::StatusOr<ImageConfig> config = ParseImageConfig(ImageConfigJson());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(ChainId(config->diff_ids), kChain12);
}

// --- ParseImageUser ----------------------------------------------------------

TEST(ParseImageUserTest, MatchesContainerdGetUserFromImage) {
  struct Case {
    std::string user;
    std::optional<int64_t> uid;
    std::string username;
  };
  const Case kCases[] = {
      {"", std::nullopt, ""},
      {"0", 0, ""},
      {"1000", 1000, ""},
      {"1000:1000", 1000, ""},
      {"0:0", 0, ""},
      {"007", 7, ""},
      {"+5", 5, ""},
      {"-1", -1, ""},
      {"-0", 0, ""},
      {"9223372036854775807", std::numeric_limits<int64_t>::max(), ""},
      {"-9223372036854775808", std::numeric_limits<int64_t>::min(), ""},
      // Out of int64 range: not a uid, so a name.
      {"9223372036854775808", std::nullopt, "9223372036854775808"},
      {"-9223372036854775809", std::nullopt, "-9223372036854775809"},
      {"99999999999999999999", std::nullopt, "99999999999999999999"},
      {"root", std::nullopt, "root"},
      {"root:root", std::nullopt, "root"},
      {"nobody:1000", std::nullopt, "nobody"},
      {"1000:nogroup", 1000, ""},
      {"a:b:c", std::nullopt, "a"},
      // No trimming, no other syntaxes.
      {"  ", std::nullopt, "  "},
      {" 1000", std::nullopt, " 1000"},
      {"1000 ", std::nullopt, "1000 "},
      {"0x10", std::nullopt, "0x10"},
      {"1_000", std::nullopt, "1_000"},
      {"1e3", std::nullopt, "1e3"},
      {"+", std::nullopt, "+"},
      {"-", std::nullopt, "-"},
      {"--1", std::nullopt, "--1"},
      // Empty user part: ParseInt fails, the (empty) name is returned.
      {":", std::nullopt, ""},
      {":1000", std::nullopt, ""},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE("\"" + c.user + "\"");
    ImageUser got = ParseImageUser(c.user);
    EXPECT_EQ(got.uid, c.uid);
    EXPECT_EQ(got.username, c.username);
  }
}

// --- SelectManifest ----------------------------------------------------------

std::string Selected(absl::Span<const Descriptor> manifests, const PlatformMatcher& m) {
  std::optional<Descriptor> d = SelectManifest(manifests, m);
  return d.has_value() ? d->digest : "none";
}

TEST(SelectManifestTest, MultiPlatformOciIndex) {
  absl::StatusOr<std::vector<Descriptor>> index = ParseIndex(OciIndex());
  ASSERT_TRUE(index.ok()) << index.status();
  struct Case {
    std::string platform;
    std::string want;
  };
  const Case kCases[] = {
      {"linux/amd64", kAmd64Manifest},
      {"linux/arm64", kArm64Manifest},
      {"linux/arm64/v8", kArm64Manifest},
      {"linux/arm/v7", kArmV7Manifest},
      {"linux/arm", kArmV7Manifest},
      {"linux/arm/v8", kArmV7Manifest},  // v8 falls back to v7
      // Not present: nothing, and never the attestation manifest.
      {"linux/arm/v6", "none"},
      {"linux/386", "none"},
      {"linux/s390x", "none"},
      {"windows/amd64", "none"},
      {"linux/amd64/v2", kAmd64Manifest},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(Selected(*index, Matcher(c.platform)), c.want) << c.platform;
  }
  EXPECT_EQ(Selected(*index, PlatformMatcher(DefaultPlatform())), kAmd64Manifest);
}

TEST(SelectManifestTest, DockerManifestList) {
  absl::StatusOr<std::vector<Descriptor>> list = ParseIndex(DockerManifestList());
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(Selected(*list, Matcher("linux/amd64")), kAmd64Manifest);
  EXPECT_EQ(Selected(*list, Matcher("linux/arm/v7")), kArmV7Manifest);
  // arm64 nodes run arm/v7 images when there is no arm64 one.
  EXPECT_EQ(Selected(*list, Matcher("linux/arm64")), kArmV7Manifest);
  EXPECT_EQ(Selected(*list, Matcher("linux/ppc64le")), "none");
  EXPECT_EQ(Selected({}, Matcher("linux/amd64")), "none");
}

TEST(SelectManifestTest, PrefersByMatcherOrderNotDocumentOrder) {
  const std::vector<Descriptor> index = {
      D("v5", P("linux", "arm", "v5")), D("v6", P("linux", "arm", "v6")),
      D("386", P("linux", "386")),      D("v7", P("linux", "arm", "v7")),
      D("arm64", P("linux", "arm64")),  D("amd64", P("linux", "x86_64")),  // aliases are normalized
  };
  EXPECT_EQ(Selected(index, Matcher("linux/arm64")), "arm64");
  EXPECT_EQ(Selected(index, Matcher("linux/arm/v7")), "v7");
  EXPECT_EQ(Selected(index, Matcher("linux/arm/v6")), "v6");
  EXPECT_EQ(Selected(index, Matcher("linux/amd64")), "amd64");
  EXPECT_EQ(Selected(index, Matcher("linux/386")), "386");
  EXPECT_EQ(Selected({D("386", P("linux", "386"))}, Matcher("linux/amd64")), "386");
}

TEST(SelectManifestTest, EqualPlatformsKeepDocumentOrder) {
  const std::vector<Descriptor> index = {
      D("first", P("linux", "arm64")),
      D("second", P("linux", "aarch64", "v8")),
  };
  EXPECT_EQ(Selected(index, Matcher("linux/arm64")), "first");
}

TEST(SelectManifestTest, PlatformlessEntryOnlyWhenNothingMatches) {
  const std::vector<Descriptor> index = {
      D("nil1", std::nullopt),
      D("arm64", P("linux", "arm64")),
      D("nil2", std::nullopt),
  };
  // A matching platform beats an earlier entry without one.
  EXPECT_EQ(Selected(index, Matcher("linux/arm64")), "arm64");
  // Otherwise the first entry without a platform is taken; the caller must
  // then check its config with ConfigMatchesPlatform.
  EXPECT_EQ(Selected(index, Matcher("linux/amd64")), "nil1");
}

TEST(SelectManifestTest, MediaTypeIsNotConsidered) {
  Descriptor nested = D("nested", P("linux", "amd64"));
  nested.media_type = std::string(kMediaTypeOciIndex);
  Descriptor odd = D("odd", P("linux", "amd64"));
  odd.media_type = "application/vnd.example+json";
  EXPECT_EQ(Selected({nested, D("m", P("linux", "amd64"))}, Matcher("linux/amd64")), "nested");
  EXPECT_EQ(Selected({odd, D("m", P("linux", "amd64"))}, Matcher("linux/amd64")), "odd");
}

TEST(SelectManifestTest, ReturnsTheWholeDescriptor) {
  absl::StatusOr<std::vector<Descriptor>> index = ParseIndex(OciIndex());
  ASSERT_TRUE(index.ok()) << index.status();
  std::optional<Descriptor> got = SelectManifest(*index, Matcher("linux/arm/v7"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (*index)[2]);
}

// --- ConfigMatchesPlatform ---------------------------------------------------

TEST(ConfigMatchesPlatformTest, Table) {
  struct Case {
    Platform config;
    std::string matcher;
    bool want;
  };
  const Case kCases[] = {
      {P("linux", "amd64"), "linux/amd64", true},
      {P("", "amd64"), "linux/amd64", true},
      {P("linux", "x86_64"), "linux/amd64", true},
      {P("linux", "386"), "linux/amd64", true},
      {P("linux", "arm64"), "linux/amd64", false},
      {P("windows", "amd64"), "linux/amd64", false},
      {P("linux", "arm64", "v8"), "linux/arm64", true},
      {P("linux", "arm", "v7"), "linux/arm64", true},
      // The config's variant is ignored, as containerd ignores it: an arm
      // config counts as arm/v7, so an arm/v6 node refuses even a v6 config.
      {P("linux", "arm", "v6"), "linux/arm/v6", false},
      {P("linux", "arm", "v5"), "linux/arm/v7", true},
      {P("linux", "amd64", "v3"), "linux/amd64", true},
  };
  for (const Case& c : kCases) {
    ImageConfig config;
    config.platform = c.config;
    EXPECT_EQ(ConfigMatchesPlatform(config, Matcher(c.matcher)), c.want)
        << FormatPlatform(c.config) << " on " << c.matcher;
  }
}

// --- ImageSize ---------------------------------------------------------------

TEST(ImageSizeTest, CountsIndexManifestConfigAndLayers) {
  absl::StatusOr<Manifest> manifest = ParseManifest(OciManifest());
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  Descriptor target = D(kAmd64Manifest, std::nullopt, 2000);
  target.media_type = std::string(kMediaTypeOciIndex);
  Descriptor chosen = D(kAmd64Manifest, P("linux", "amd64"), 1051);
  EXPECT_EQ(ImageSize({target, chosen}, *manifest), 2000 + 1051 + 1470 + 3370706 + 93);
  // A target that is the manifest itself.
  EXPECT_EQ(ImageSize({chosen}, *manifest), 1051 + 1470 + 3370706 + 93);
}

TEST(ImageSizeTest, NegativeSizesCountAsZero) {
  Manifest m;
  m.config = D(kConfig, std::nullopt, -1);
  m.layers = {D(kLayer1, std::nullopt, 10), D(kLayer2, std::nullopt, -5),
              D(kLayer1, std::nullopt, 10)};  // repeated layers count twice
  EXPECT_EQ(ImageSize({D(kAmd64Manifest, std::nullopt, 7)}, m), 27);
}

TEST(ImageSizeTest, Saturates) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Manifest m;
  m.config = D(kConfig, std::nullopt, kMax - 1);
  m.layers = {D(kLayer1, std::nullopt, 10)};
  EXPECT_EQ(ImageSize({D(kAmd64Manifest, std::nullopt, 5)}, m), kMax);
}

}  // namespace
}  // namespace imaged::store
