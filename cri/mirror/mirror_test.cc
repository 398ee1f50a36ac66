// The mirror between two real store sets: one plays containerd (the source,
// which plugin/ reaches over gRPC in production), the other is imaged's.
#include "cri/mirror/mirror.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/digest.h"
#include "store/files.h"
#include "store/limits.h"
#include "store/local_stores.h"
#include "store/gc.h"
#include "store/plain_stores.h"
#include "store/test_images.h"

namespace imaged::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr absl::string_view kNs = "k8s.io";

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/imaged-mirror-XXXXXX");
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

struct Stores {
  explicit Stores(store::Clock* clock) : root(MakeTempDir()) {
    store::LocalStoresOptions options;
    options.clock = clock;
    local = *store::LocalStores::Open(root, options);
    db = local->db();
    content = local->content();
    images = local->images();
    leases = local->leases();
  }
  ~Stores() {
    local.reset();
    store::RemoveAll(root).IgnoreError();
  }
  std::string root;
  std::unique_ptr<store::LocalStores> local;
  store::MetadataDb* db;
  store::RocksDbContentStore* content;
  store::RocksDbImageStore* images;
  store::RocksDbLeaseStore* leases;
};

// Each test runs twice: with imaged's content store itself (documents
// committed in batches) and through its plain ContentStore face (one by one).
class MirrorTest : public ::testing::TestWithParam<bool> {
 protected:
  MirrorTest()
      : containerd_(&clock_),
        imaged_(&clock_),
        plain_content_(imaged_.content),
        mirror_(MirrorSource{containerd_.images, containerd_.content},
                MirrorTarget{content(), imaged_.images, imaged_.images, imaged_.leases},
                store::DefaultPlatform(), /*batch=*/2, &clock_) {}

  store::ContentStore* content() {
    return GetParam() ? static_cast<store::ContentStore*>(imaged_.content) : &plain_content_;
  }

  store::TestImage Upstream(const std::string& seed) {
    store::TestImageSpec spec;
    spec.seed = seed;
    return *store::MakeTestImage(*containerd_.content, kNs, spec);
  }
  void Tag(const std::string& name, const store::TestImage& ti, store::Labels labels = {}) {
    store::Image image;
    image.name = name;
    image.target = ti.manifest;
    image.target.platform.reset();
    image.labels = std::move(labels);
    if (containerd_.images->Get(kNs, name).ok()) {
      ASSERT_TRUE(containerd_.images->Update(kNs, image, {}).ok());
    } else {
      ASSERT_TRUE(containerd_.images->Create(kNs, image).ok());
    }
  }
  std::vector<store::CriImage> Listed() {
    std::vector<store::CriImage> out;
    EXPECT_TRUE(imaged_.images->ListImages(kNs, [&](const store::CriImage& i) {
      out.push_back(i);
      return absl::OkStatus();
    }).ok());
    return out;
  }

  store::FakeClock clock_;
  Stores containerd_;
  Stores imaged_;
  store::PlainContentStore plain_content_;
  Mirror mirror_;
};

INSTANTIATE_TEST_SUITE_P(Documents, MirrorTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Batched" : "OneByOne";
                         });

TEST_P(MirrorTest, SyncMirrorsRecordsAndCopiesOnlyTheDocuments) {
  store::TestImage a = Upstream("a"), b = Upstream("b");
  Tag("docker.io/library/a:1", a, {{"io.cri-containerd.image", "managed"}});
  Tag(a.config.digest, a);
  Tag("docker.io/library/b:1", b);
  absl::StatusOr<MirrorSyncReport> r = mirror_.Sync(kNs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->upstream, 3);
  EXPECT_EQ(r->written, 3);
  std::vector<store::CriImage> list = Listed();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_TRUE(imaged_.content->Info(kNs, a.manifest.digest).ok());
  EXPECT_TRUE(imaged_.content->Info(kNs, a.config.digest).ok());
  EXPECT_FALSE(imaged_.content->Info(kNs, a.layers[0].digest).ok());  // layers stay in containerd
  EXPECT_EQ(imaged_.images->Get(kNs, "docker.io/library/a:1")->labels.at("io.cri-containerd.image"),
            "managed");
  EXPECT_TRUE(imaged_.leases->List(kNs, {})->empty());  // the sync's lease is gone
  EXPECT_EQ(mirror_.State().last_sync, clock_.Now());  // the injected clock's time
}

// After containerd's own CRI pulled "busybox": the ID record, the
// normalised reference and every other name of that target are mirrored
// before the pull is answered; other images are not touched.
TEST_P(MirrorTest, SyncPullMirrorsEveryNameOfThePulledImage) {
  store::TestImage pulled = Upstream("pulled"), other = Upstream("other");
  Tag("docker.io/library/busybox:latest", pulled);
  Tag(absl::StrCat("docker.io/library/busybox@", pulled.manifest.digest), pulled);
  Tag(pulled.config.digest, pulled);
  Tag("docker.io/library/other:1", other);
  ASSERT_TRUE(mirror_.SyncPull(kNs, "busybox", pulled.config.digest).ok());
  EXPECT_TRUE(imaged_.images->Get(kNs, "docker.io/library/busybox:latest").ok());
  EXPECT_TRUE(
      imaged_.images->Get(kNs, absl::StrCat("docker.io/library/busybox@", pulled.manifest.digest)).ok());
  EXPECT_TRUE(imaged_.images->Get(kNs, pulled.config.digest).ok());
  EXPECT_FALSE(imaged_.images->Get(kNs, "docker.io/library/other:1").ok());
}

TEST_P(MirrorTest, ASecondSyncWritesOnlyWhatChanged) {
  store::TestImage a = Upstream("a"), b = Upstream("b"), c = Upstream("c");
  Tag("a:1", a);
  Tag("b:1", b);
  Tag("gone:1", c);
  ASSERT_TRUE(mirror_.Sync(kNs).ok());
  Tag("b:1", c);                          // re-pointed
  Tag("a:1", a, {{"pinned", "yes"}});     // relabelled
  ASSERT_TRUE(containerd_.images->Delete(kNs, "gone:1").ok());
  Tag("new:1", b);
  absl::StatusOr<MirrorSyncReport> r = mirror_.Sync(kNs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->unchanged, 0);
  EXPECT_EQ(r->written, 3);
  EXPECT_EQ(r->deleted, 1);
  absl::StatusOr<MirrorSyncReport> again = mirror_.Sync(kNs);
  EXPECT_EQ(again->unchanged, 3);
  EXPECT_EQ(again->written, 0);
  EXPECT_EQ(imaged_.images->Get(kNs, "b:1")->target.digest, c.manifest.digest);
  EXPECT_EQ(imaged_.images->Get(kNs, "a:1")->labels.at("pinned"), "yes");
  EXPECT_EQ(imaged_.images->Get(kNs, "gone:1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(imaged_.images->Check(false)->problems, IsEmpty());
}

TEST_P(MirrorTest, SyncNameFollowsCreateUpdateAndDelete) {
  store::TestImage a = Upstream("a"), b = Upstream("b");
  Tag("x:1", a);
  EXPECT_TRUE(*mirror_.SyncName(kNs, "x:1"));
  EXPECT_EQ(Listed().size(), 1u);
  Tag("x:1", b);
  EXPECT_TRUE(*mirror_.SyncName(kNs, "x:1"));
  EXPECT_EQ(Listed()[0].id, b.config.digest);
  ASSERT_TRUE(containerd_.images->Delete(kNs, "x:1").ok());
  EXPECT_FALSE(*mirror_.SyncName(kNs, "x:1"));
  EXPECT_FALSE(*mirror_.SyncName(kNs, "x:1"));  // twice: still fine
  EXPECT_THAT(Listed(), IsEmpty());
}

TEST_P(MirrorTest, SyncNamesAppliesABurstInOneGo) {
  store::TestImage a = Upstream("a"), b = Upstream("b"), c = Upstream("c");
  Tag("gone:1", c);
  ASSERT_TRUE(mirror_.Sync(kNs).ok());
  Tag("x:1", a);
  Tag("x@id", a);
  Tag("y:1", b, {{"k", "v"}});
  ASSERT_TRUE(containerd_.images->Delete(kNs, "gone:1").ok());
  // Repeats (an image's create, then its label update) and a name nobody has.
  std::vector<std::string> names = {"x:1", "y:1", "x:1", "x@id", "gone:1", "never:1"};
  absl::StatusOr<std::vector<bool>> has = mirror_.SyncNames(kNs, names);
  ASSERT_TRUE(has.ok()) << has.status();
  EXPECT_THAT(*has, ElementsAre(true, true, true, true, false, false));
  std::vector<store::Image> here = *imaged_.images->List(kNs, {});
  ASSERT_EQ(here.size(), 3u);
  EXPECT_EQ(here[0].name, "x:1");
  EXPECT_EQ(here[1].name, "x@id");
  EXPECT_EQ(here[2].name, "y:1");
  EXPECT_EQ(here[2].labels.at("k"), "v");
  // Nothing changed since: nothing is written (no lease is taken either).
  ASSERT_TRUE(mirror_.SyncNames(kNs, names).ok());
  EXPECT_TRUE(imaged_.leases->List(kNs, {})->empty());
}

TEST_P(MirrorTest, AMultiPlatformIndexCopiesOnlyThePlatformsManifestWithGcLabels) {
  store::TestImageSpec arm;
  arm.seed = "arm";
  arm.architecture = "arm64";
  store::TestImage amd = Upstream("amd");
  store::TestImage arm_image = *store::MakeTestImage(*containerd_.content, kNs, arm);
  auto index = store::MakeTestIndex(*containerd_.content, kNs, {arm_image, amd});
  ASSERT_TRUE(index.ok());
  store::Image image;
  image.name = "multi:1";
  image.target = index->first;
  ASSERT_TRUE(containerd_.images->Create(kNs, image).ok());
  ASSERT_TRUE(mirror_.Sync(kNs).ok());
  ASSERT_EQ(Listed().size(), 1u);
  EXPECT_EQ(Listed()[0].id, amd.config.digest);
  EXPECT_FALSE(imaged_.content->Info(kNs, arm_image.manifest.digest).ok());
  // The copies carry the gc.ref labels that keep them together.
  EXPECT_EQ(imaged_.content->Info(kNs, index->first.digest)
                ->labels.at("containerd.io/gc.ref.content.m.0"),
            amd.manifest.digest);
  EXPECT_EQ(imaged_.content->Info(kNs, amd.manifest.digest)
                ->labels.at("containerd.io/gc.ref.content.config"),
            amd.config.digest);
}

TEST_P(MirrorTest, ImagedsCollectorKeepsTheCopiedDocuments) {
  store::TestImage a = Upstream("a");
  Tag("a:1", a);
  ASSERT_TRUE(mirror_.Sync(kNs).ok());
  store::Collector gc(imaged_.db, imaged_.content, imaged_.leases, &clock_);
  absl::StatusOr<store::GcReport> r = gc.Collect({});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->blobs_removed, 0);
  EXPECT_TRUE(imaged_.content->Info(kNs, a.config.digest).ok());
  ASSERT_TRUE(containerd_.images->Delete(kNs, "a:1").ok());
  ASSERT_TRUE(mirror_.Sync(kNs).ok());
  r = gc.Collect({});
  EXPECT_EQ(r->blobs_removed, 2);  // manifest and config
}

TEST_P(MirrorTest, ARecordWhoseDocumentsContainerdLacksWaitsUnresolved) {
  store::TestImage a = *store::MakeTestImage(*containerd_.content, kNs, {}, /*write=*/false);
  store::Image image;
  image.name = "half:1";
  image.target = a.manifest;
  image.target.platform.reset();
  ASSERT_TRUE(containerd_.images->Create(kNs, image).ok());
  ASSERT_TRUE(mirror_.Sync(kNs).ok());
  EXPECT_THAT(Listed(), IsEmpty());
  EXPECT_EQ(imaged_.images->ListUnresolved()->size(), 1u);
}

TEST_P(MirrorTest, ADocumentOverItsLimitIsNotCopiedAndLeavesNoIngest) {
  // containerd's record says 10 bytes; the blob is larger than any manifest
  // may be.
  std::string big(store::kMaxImageDocumentBytes + 1, ' ');
  ASSERT_TRUE(store::WriteBlob(*containerd_.content, kNs, big).ok());
  store::Image image;
  image.name = "big:1";
  image.target = {std::string(store::kMediaTypeOciManifest), store::Sha256::Of(big), 10};
  ASSERT_TRUE(containerd_.images->Create(kNs, image).ok());
  ASSERT_TRUE(mirror_.Sync(kNs).ok());
  EXPECT_FALSE(imaged_.content->Info(kNs, image.target.digest).ok());
  EXPECT_THAT(*imaged_.content->ListStatuses(kNs, {}), IsEmpty());
  EXPECT_EQ(imaged_.images->ListUnresolved()->size(), 1u);
}

TEST_P(MirrorTest, SyncReferenceFindsANameByItsNormalisedForm) {
  store::TestImage a = Upstream("a");
  Tag("docker.io/library/busybox:latest", a);
  EXPECT_TRUE(*mirror_.SyncReference(kNs, "busybox"));
  EXPECT_TRUE(imaged_.images->Get(kNs, "docker.io/library/busybox:latest").ok());
  EXPECT_FALSE(*mirror_.SyncReference(kNs, "alpine"));
  EXPECT_FALSE(*mirror_.SyncReference(kNs, "not a reference"));
}

TEST_P(MirrorTest, RemoveUpstreamDeletesTheIdRecordLastAndWithSync) {
  store::TestImage a = Upstream("a");
  Tag(a.config.digest, a);
  Tag("docker.io/library/a:1", a);
  Tag("docker.io/library/a@" + a.manifest.digest, a);
  std::vector<std::string> synced;
  MirrorSource source{containerd_.images, containerd_.content};
  source.delete_sync = [&](absl::string_view ns, absl::string_view name) {
    synced.emplace_back(name);
    return containerd_.images->Delete(ns, name);
  };
  Mirror mirror(source,
                MirrorTarget{content(), imaged_.images, imaged_.images, imaged_.leases},
                store::DefaultPlatform());
  ASSERT_TRUE(mirror
                  .RemoveUpstream(kNs, {a.config.digest, "docker.io/library/a:1",
                                        "docker.io/library/a@" + a.manifest.digest, "gone:1"})
                  .ok());
  EXPECT_THAT(synced, ElementsAre(a.config.digest));  // the last one, and only it
  EXPECT_THAT(*containerd_.images->List(kNs, {}), IsEmpty());
}

TEST(SameRecord, DerivedLabelsDoNotCountButOthersDo) {
  store::Image up, local;
  up.target.digest = local.target.digest = "sha256:x";
  up.labels = {{"a", "1"}};
  local.labels = {{"a", "1"}, {std::string(store::kLabelImageId), "sha256:y"}};
  EXPECT_TRUE(SameRecord(up, local));
  local.labels["b"] = "2";
  EXPECT_FALSE(SameRecord(up, local));
  local.labels.erase("b");
  up.labels["a"] = "2";
  EXPECT_FALSE(SameRecord(up, local));
}

TEST_P(MirrorTest, StateReportsLagPercentiles) {
  for (int i = 1; i <= 100; ++i) mirror_.EventApplied(absl::Milliseconds(i));
  MirrorState st = mirror_.State();
  EXPECT_EQ(st.events_applied, 100);
  EXPECT_EQ(st.lag_p50, absl::Milliseconds(51));
  EXPECT_EQ(st.lag_p99, absl::Milliseconds(100));
  EXPECT_EQ(st.last_event_lag, absl::Milliseconds(100));
}

}  // namespace
}  // namespace imaged::cri
