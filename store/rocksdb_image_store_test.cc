// The image contract on RocksDB, then the CRI image-ID index: each CRI
// behaviour has a test named after it.
#include "store/rocksdb_image_store.h"

#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/digest.h"
#include "store/files.h"
#include "store/image_store_contract.h"
#include "store/limits.h"
#include "store/local_stores.h"
#include "store/plain_stores.h"
#include "store/rocksdb_content_store.h"
#include "store/test_images.h"
#include "store/test_dirs.h"

namespace imaged::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr absl::string_view kNs = "k8s.io";

// Content and image stores on one RocksDB, wired as the server wires them.
class Stores : public ImageHarness {
 public:
  explicit Stores(const Platform& platform = DefaultPlatform())
      : root_(MakeTempDir("imaged-images")) {
    LocalStoresOptions options;
    options.clock = &clock_;
    options.platform = platform;
    options.on_resolve_error = [](absl::string_view digest, const absl::Status& s) {
      ADD_FAILURE() << "resolving what waited for " << digest << ": " << s;
    };
    auto stores = LocalStores::Open(root_, options);
    EXPECT_TRUE(stores.ok()) << stores.status();
    stores_ = *std::move(stores);
    content_ = stores_->content();
    images_ = stores_->images();
    db_ = stores_->db();
  }
  ~Stores() override {
    // Whatever a test wrote, through whichever path, the index (derived rows
    // included) is what the records give when recomputed.
    absl::StatusOr<RocksDbImageStore::CheckReport> check = images_->Check(false);
    EXPECT_TRUE(check.ok()) << check.status();
    if (check.ok()) EXPECT_THAT(check->problems, IsEmpty());
    stores_.reset();
    RemoveAll(root_).IgnoreError();
  }
  ImageStore& images() override { return *images_; }
  ContentStore& content() override { return *content_; }
  RocksDbImageStore& index() { return *images_; }
  MetadataDb& db() { return *db_; }

 private:
  std::string root_;
  FakeClock clock_;
  std::unique_ptr<LocalStores> stores_;
  MetadataDb* db_;
  RocksDbContentStore* content_;
  RocksDbImageStore* images_;
};

INSTANTIATE_TEST_SUITE_P(RocksDb, ImageStoreContract,
                         ::testing::Values(ImageHarnessFactory(
                             [] { return std::make_unique<Stores>(); })));

// The same stores, with Create answered through CreateThen: the contract
// holds for the path the Images service serves.
class CreateThenStores : public Stores {
 public:
  class Adapter final : public PlainImageStore {
   public:
    explicit Adapter(RocksDbImageStore* images) : PlainImageStore(images), images_(images) {}
    using ImageStore::Create;
    absl::StatusOr<Image> Create(absl::string_view ns, const Image& image,
                                 absl::string_view lease,
                                 std::optional<absl::Time> timestamp) override {
      absl::Notification answered;
      absl::StatusOr<Image> out;
      images_->CreateThen(ns, image, lease, timestamp, [&](absl::StatusOr<Image> r) {
        out = std::move(r);
        answered.Notify();
      });
      answered.WaitForNotification();
      return out;
    }

   private:
    RocksDbImageStore* const images_;
  };

  CreateThenStores() : adapter_(&index()) {}
  ImageStore& images() override { return adapter_; }

 private:
  Adapter adapter_;
};

INSTANTIATE_TEST_SUITE_P(RocksDbCreateThen, ImageStoreContract,
                         ::testing::Values(ImageHarnessFactory(
                             [] { return std::make_unique<CreateThenStores>(); })));

// CreateThen never waits: while the writes cannot proceed (the collector's
// lock held), calls queue up to the bound and the next is ResourceExhausted
// at once; once they can, every queued one is written and answered.
TEST(CreateThenTest, QueuesUpToItsBoundAndAnswersEveryQueuedCall) {
  Stores stores;
  absl::StatusOr<TestImage> ti = MakeTestImage(stores.content(), kNs, {}, true);
  ASSERT_TRUE(ti.ok()) << ti.status();
  constexpr size_t kMax = kMaxCreatesWaiting;
  absl::Mutex mu;
  size_t ok = 0;
  std::vector<absl::Status> refused;
  auto create = [&](size_t i) {
    Image image;
    image.name = absl::StrCat("docker.io/library/app:", i);
    image.target = ti->manifest;
    image.target.platform.reset();
    stores.index().CreateThen(kNs, image, "", std::nullopt, [&](absl::StatusOr<Image> r) {
      absl::MutexLock lock(&mu);
      if (r.ok()) {
        ++ok;
      } else {
        refused.push_back(r.status());
      }
    });
  };
  size_t ok_while_held;
  std::vector<absl::Status> refused_while_held;
  stores.db().gc_lock().Lock();
  for (size_t i = 0; i <= kMax; ++i) create(i);
  {
    absl::MutexLock lock(&mu);
    ok_while_held = ok;
    refused_while_held = refused;
  }
  stores.db().gc_lock().Unlock();
  EXPECT_EQ(ok_while_held, 0u);
  ASSERT_EQ(refused_while_held.size(), 1u);
  EXPECT_TRUE(absl::IsResourceExhausted(refused_while_held[0])) << refused_while_held[0];
  EXPECT_LT(refused_while_held[0].message().size(), 200u);
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(+[](size_t* n) { return *n == kMax; }, &ok));
  auto list = stores.images().List(kNs, {});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), kMax);
}

// Calls still queued when the store closes are written and answered first:
// they are held back (the collector's lock) until the close has begun.
TEST(CreateThenTest, QueuedCallsAreWrittenBeforeTheStoreCloses) {
  const std::string root = MakeTempDir("imaged-create-then");
  constexpr int kCalls = 50;
  absl::Mutex mu;
  int ok = 0;
  {
    auto stores = LocalStores::Open(root, LocalStoresOptions());
    ASSERT_TRUE(stores.ok()) << stores.status();
    absl::StatusOr<TestImage> ti = MakeTestImage(*(*stores)->content(), kNs, {}, true);
    ASSERT_TRUE(ti.ok()) << ti.status();
    MetadataDb* db = (*stores)->db();
    db->gc_lock().Lock();
    for (int i = 0; i < kCalls; ++i) {
      Image image;
      image.name = absl::StrCat("docker.io/library/app:", i);
      image.target = ti->manifest;
      image.target.platform.reset();
      (*stores)->images()->CreateThen(kNs, image, "", std::nullopt,
                                      [&](absl::StatusOr<Image> r) {
                                        EXPECT_TRUE(r.ok()) << r.status();
                                        absl::MutexLock lock(&mu);
                                        ++ok;
                                      });
    }
    std::thread closer([&] { stores->reset(); });
    absl::SleepFor(absl::Milliseconds(100));  // the close waits for the creator
    {
      absl::MutexLock lock(&mu);
      EXPECT_EQ(ok, 0);
    }
    db->gc_lock().Unlock();
    closer.join();
  }
  EXPECT_EQ(ok, kCalls);
  auto reopened = LocalStores::Open(root, LocalStoresOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto list = (*reopened)->images()->List(kNs, {});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), static_cast<size_t>(kCalls));
  reopened->reset();
  RemoveAll(root).IgnoreError();
}

class CriIndexTest : public ::testing::Test {
 protected:
  TestImage Make(const TestImageSpec& spec, bool write = true) {
    absl::StatusOr<TestImage> ti = MakeTestImage(stores_.content(), kNs, spec, write);
    EXPECT_TRUE(ti.ok()) << ti.status();
    return *ti;
  }
  absl::Status Create(absl::string_view name, const Descriptor& target, Labels labels = {}) {
    Image image;
    image.name = std::string(name);
    image.target = target;
    image.target.platform.reset();
    image.labels = std::move(labels);
    return stores_.images().Create(kNs, image).status();
  }
  // An amd64 and an arm64 image, and an index over both (arm64 first).
  struct TwoPlatforms {
    TestImage amd;
    TestImage arm;
    std::pair<Descriptor, std::string> index;
  };
  TwoPlatforms MakeTwoPlatforms() {
    TestImageSpec amd, arm;
    amd.seed = "amd";
    arm.seed = "arm";
    arm.architecture = "arm64";
    TwoPlatforms out{Make(amd), Make(arm), {}};
    auto index = MakeTestIndex(stores_.content(), kNs, {out.arm, out.amd});
    EXPECT_TRUE(index.ok()) << index.status();
    if (index.ok()) out.index = *std::move(index);
    return out;
  }
  std::vector<CriImage> List() {
    std::vector<CriImage> out;
    EXPECT_TRUE(stores_.index().ListImages(kNs, [&](const CriImage& i) {
      out.push_back(i);
      return absl::OkStatus();
    }).ok());
    return out;
  }

  Stores stores_;
};

TEST_F(CriIndexTest, TagDigestAndIdNamesAreOneImage) {
  TestImage ti = Make({});
  const std::string id = ti.config.digest;
  ASSERT_TRUE(Create("docker.io/library/app:1", ti.manifest).ok());
  ASSERT_TRUE(Create(absl::StrCat("docker.io/library/app@", ti.manifest.digest), ti.manifest).ok());
  ASSERT_TRUE(Create(id, ti.manifest).ok());
  std::vector<CriImage> list = List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, id);
  EXPECT_THAT(list[0].names,
              ElementsAre("docker.io/library/app:1",
                          absl::StrCat("docker.io/library/app@", ti.manifest.digest), id));
  EXPECT_EQ(list[0].chain_id, ChainId(ti.diff_ids));
  EXPECT_FALSE(list[0].pinned);
}

TEST_F(CriIndexTest, UserFromConfigAsUidOrUsername) {
  TestImageSpec uid_spec;
  uid_spec.seed = "uid";
  uid_spec.user = "1000:1000";
  TestImageSpec name_spec;
  name_spec.seed = "name";
  name_spec.user = "nobody";
  TestImage a = Make(uid_spec), b = Make(name_spec);
  ASSERT_TRUE(Create("a", a.manifest).ok());
  ASSERT_TRUE(Create("b", b.manifest).ok());
  auto ia = stores_.index().GetImage(kNs, a.config.digest);
  ASSERT_TRUE(ia.ok() && ia->has_value());
  EXPECT_EQ((*ia)->uid, 1000);
  EXPECT_EQ((*ia)->username, "");
  auto ib = stores_.index().GetImage(kNs, b.config.digest);
  ASSERT_TRUE(ib.ok() && ib->has_value());
  EXPECT_FALSE((*ib)->uid.has_value());
  EXPECT_EQ((*ib)->username, "nobody");
}

TEST_F(CriIndexTest, PinnedWhenAnyNameCarriesThePinnedLabel) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("plain", ti.manifest).ok());
  ASSERT_TRUE(Create("pinned", ti.manifest, {{kLabelPinned, kPinnedValue}}).ok());
  EXPECT_TRUE(List()[0].pinned);
  Image unpin;
  unpin.name = "pinned";
  ASSERT_TRUE(stores_.images().Update(kNs, unpin, {absl::StrCat("labels.", kLabelPinned)}).ok());
  EXPECT_FALSE(List()[0].pinned);
}

TEST_F(CriIndexTest, RecordWhoseContentIsMissingIsUnresolvedUntilItsBlobsArrive) {
  TestImage ti = Make({}, /*write=*/false);
  ASSERT_TRUE(Create("early", ti.manifest).ok());
  EXPECT_THAT(List(), IsEmpty());
  auto unresolved = stores_.index().ListUnresolved();
  ASSERT_TRUE(unresolved.ok());
  ASSERT_EQ(unresolved->size(), 1u);
  EXPECT_EQ((*unresolved)[0].name, "early");
  EXPECT_EQ((*unresolved)[0].waiting_for, ti.manifest.digest);
  EXPECT_THAT((*unresolved)[0].reason, ::testing::HasSubstr("manifest"));

  // Blobs arrive in the reverse of the usual order: manifest first.
  for (auto it = ti.blobs.rbegin(); it != ti.blobs.rend(); ++it) {
    ASSERT_TRUE(WriteBlob(stores_.content(), kNs, it->second).ok());
  }
  std::vector<CriImage> list = List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, ti.config.digest);
  EXPECT_THAT(*stores_.index().ListUnresolved(), IsEmpty());
  EXPECT_EQ(stores_.images().Get(kNs, "early")->labels.at(kLabelImageId), ti.config.digest);
}

// Resolutions are remembered so an image's several names read its blobs once;
// one whose blobs have since gone is not trusted.
TEST_F(CriIndexTest, ARememberedResolutionIsNotUsedOnceItsBlobsAreGone) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("first", ti.manifest).ok());
  ASSERT_TRUE(stores_.images().Delete(kNs, "first").ok());
  ASSERT_TRUE(stores_.content().Delete(kNs, ti.config.digest).ok());
  ASSERT_TRUE(Create("second", ti.manifest).ok());
  EXPECT_THAT(List(), IsEmpty());
  auto unresolved = stores_.index().ListUnresolved();
  ASSERT_TRUE(unresolved.ok());
  ASSERT_EQ(unresolved->size(), 1u);
  EXPECT_EQ((*unresolved)[0].waiting_for, ti.config.digest);
  // The config back: the record resolves, and the resolution is remembered anew.
  for (const auto& [digest, bytes] : ti.blobs) {
    if (digest == ti.config.digest) {
      ASSERT_TRUE(WriteBlob(stores_.content(), kNs, bytes).ok());
    }
  }
  ASSERT_EQ(List().size(), 1u);
  ASSERT_TRUE(Create("third", ti.manifest).ok());
  EXPECT_THAT(List()[0].names, ElementsAre("second", "third"));
}

// A document of an indexed image removed through the content store (ctr
// content rm, Content.Delete) takes the image out of the index in the same
// write: unresolved, waiting for it; CRI no longer lists an image whose
// config or manifest is gone. Its return resolves the image again.
TEST_F(CriIndexTest, ARemovedConfigTakesItsNamesOutOfTheIndexUntilItIsBack) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("app:1", ti.manifest).ok());
  ASSERT_TRUE(Create("app:2", ti.manifest).ok());
  ASSERT_EQ(List().size(), 1u);
  const uint64_t before = stores_.index().Generation();
  ASSERT_TRUE(stores_.content().Delete(kNs, ti.config.digest).ok());
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_GT(stores_.index().Generation(), before);
  EXPECT_FALSE(stores_.index().ImageIdOfName(kNs, "app:1")->has_value());
  auto unresolved = stores_.index().ListUnresolved();
  ASSERT_TRUE(unresolved.ok());
  ASSERT_EQ(unresolved->size(), 2u);
  EXPECT_EQ((*unresolved)[0].waiting_for, ti.config.digest);
  // The records themselves stay, as containerd keeps them.
  EXPECT_TRUE(stores_.images().Get(kNs, "app:2").ok());
  for (const auto& [digest, bytes] : ti.blobs) {
    if (digest == ti.config.digest) ASSERT_TRUE(WriteBlob(stores_.content(), kNs, bytes).ok());
  }
  ASSERT_EQ(List().size(), 1u);
  EXPECT_THAT(List()[0].names, ElementsAre("app:1", "app:2"));
}

TEST_F(CriIndexTest, ARemovedManifestTakesOnlyTheImagesThatWentThroughIt) {
  const auto [a, b, index] = MakeTwoPlatforms();
  ASSERT_TRUE(Create("multi:1", index.first).ok());
  ASSERT_TRUE(Create("single:1", a.manifest).ok());
  ASSERT_EQ(List().size(), 1u);
  // The arm64 manifest is not on this (amd64) node's path: nothing changes.
  ASSERT_TRUE(stores_.content().Delete(kNs, b.manifest.digest).ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_THAT(List()[0].names, ElementsAre("multi:1", "single:1"));
  // The index goes: only the name that resolved through it leaves.
  ASSERT_TRUE(stores_.content().Delete(kNs, index.first.digest).ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_THAT(List()[0].names, ElementsAre("single:1"));
  // The amd64 manifest goes: the other one too.
  ASSERT_TRUE(stores_.content().Delete(kNs, a.manifest.digest).ok());
  EXPECT_THAT(List(), IsEmpty());
  auto unresolved = stores_.index().ListUnresolved();
  ASSERT_TRUE(unresolved.ok());
  ASSERT_EQ(unresolved->size(), 2u);
}

// An unresolved record waits for the first document its walk misses, and
// a removal earlier on its walk changes which one that is.
TEST_F(CriIndexTest, AnUnresolvedRecordWaitsForWhatItsWalkMissesFirst) {
  TestImage a = Make({});
  auto index = MakeTestIndex(stores_.content(), kNs, {a});
  ASSERT_TRUE(index.ok());
  ASSERT_TRUE(Create("multi:1", index->first).ok());
  auto waiting_for = [&] {
    auto unresolved = stores_.index().ListUnresolved();
    EXPECT_TRUE(unresolved.ok() && unresolved->size() == 1u);
    return unresolved.ok() && unresolved->size() == 1u ? (*unresolved)[0].waiting_for : "";
  };
  ASSERT_TRUE(stores_.content().Delete(kNs, a.config.digest).ok());
  EXPECT_EQ(waiting_for(), a.config.digest);
  ASSERT_TRUE(stores_.content().Delete(kNs, index->first.digest).ok());
  EXPECT_EQ(waiting_for(), index->first.digest);
  ASSERT_TRUE(WriteBlob(stores_.content(), kNs, index->second).ok());
  EXPECT_EQ(waiting_for(), a.config.digest);
}

// One image ID reached by a name through an index and by another through
// its manifest: the size differs (the index counts in one). The index
// shows the last name written; when that name goes, the one that stays.
TEST_F(CriIndexTest, AnImageReachedThroughAnIndexAndItsManifestShowsANameThatStays) {
  const auto [a, b, index] = MakeTwoPlatforms();
  const int64_t manifest_size = a.manifest.size + a.config.size + a.layers[0].size + a.layers[1].size;
  ASSERT_TRUE(Create("single:1", a.manifest).ok());
  ASSERT_TRUE(Create("multi:1", index.first).ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_EQ(List()[0].size, index.first.size + manifest_size);
  EXPECT_THAT(stores_.index().Check(false)->problems, IsEmpty());
  ASSERT_TRUE(stores_.images().Delete(kNs, "multi:1").ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_EQ(List()[0].size, manifest_size);
}

// Records resolve from their namespace or else the content proxy's (""):
// a removal from one leaves an image indexed while the other has the blob.
TEST_F(CriIndexTest, ACopyInTheOtherNamespaceKeepsAnImageIndexed) {
  TestImage ti = Make({});
  for (const auto& [digest, bytes] : ti.blobs) ASSERT_TRUE(WriteBlob(stores_.content(), "", bytes).ok());
  ASSERT_TRUE(Create("app:1", ti.manifest).ok());
  ASSERT_TRUE(stores_.content().Delete(kNs, ti.config.digest).ok());
  ASSERT_EQ(List().size(), 1u);
  ASSERT_TRUE(stores_.content().Delete("", ti.config.digest).ok());
  EXPECT_THAT(List(), IsEmpty());
  // And the other way round: removed from "" while the namespace has it.
  ASSERT_TRUE(WriteBlob(stores_.content(), kNs, [&] {
                for (const auto& [digest, bytes] : ti.blobs) {
                  if (digest == ti.config.digest) return bytes;
                }
                return std::string();
              }()).ok());
  ASSERT_EQ(List().size(), 1u);
  ASSERT_TRUE(stores_.content().Delete("", ti.manifest.digest).ok());
  ASSERT_EQ(List().size(), 1u);
}

// The collector's sweep goes through the same path.
TEST_F(CriIndexTest, ASweptDocumentTakesItsImageOut) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("app:1", ti.manifest).ok());
  absl::StatusOr<RocksDbContentStore::Removed> removed;
  {
    absl::MutexLock gc(&stores_.db().gc_lock());
    removed = static_cast<RocksDbContentStore&>(stores_.content())
                  .RemoveBlobs(kNs, {ti.manifest.digest, ti.config.digest});
  }
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->rows, 2);
  EXPECT_THAT(List(), IsEmpty());
  auto unresolved = stores_.index().ListUnresolved();
  ASSERT_TRUE(unresolved.ok());
  ASSERT_EQ(unresolved->size(), 1u);
  EXPECT_EQ((*unresolved)[0].waiting_for, ti.manifest.digest);
}

TEST_F(CriIndexTest, MultiPlatformIndexResolvesToTheConfiguredPlatform) {
  TestImageSpec amd, arm;
  amd.seed = "amd";
  arm.seed = "arm";
  arm.architecture = "arm64";
  arm.variant = "v8";
  TestImage a = Make(amd), b = Make(arm);
  auto index = MakeTestIndex(stores_.content(), kNs, {b, a});
  ASSERT_TRUE(index.ok());
  ASSERT_TRUE(Create("multi:1", index->first).ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_EQ(List()[0].id, a.config.digest);
  EXPECT_EQ(List()[0].size, index->first.size + a.manifest.size + a.config.size +
                                a.layers[0].size + a.layers[1].size);

  Platform arm64;
  arm64.os = "linux";
  arm64.architecture = "arm64";
  Stores on_arm(arm64);
  TestImage b2 = *MakeTestImage(on_arm.content(), kNs, arm);
  TestImage a2 = *MakeTestImage(on_arm.content(), kNs, amd);
  auto index2 = MakeTestIndex(on_arm.content(), kNs, {a2, b2});
  Image multi;
  multi.name = "multi:1";
  multi.target = index2->first;
  ASSERT_TRUE(on_arm.images().Create(kNs, multi).ok());
  auto id = on_arm.index().ImageIdOfName(kNs, "multi:1");
  ASSERT_TRUE(id.ok() && id->has_value());
  EXPECT_EQ(**id, b2.config.digest);
}

TEST_F(CriIndexTest, BlobsWrittenThroughTheContentProxyResolveRecords) {
  // containerd using imaged as its content store writes with no namespace.
  absl::StatusOr<TestImage> ti = MakeTestImage(stores_.content(), "", TestImageSpec{});
  ASSERT_TRUE(ti.ok());
  ASSERT_TRUE(Create("proxied:1", ti->manifest).ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_EQ(List()[0].id, ti->config.digest);
}

TEST_F(CriIndexTest, IndexWithoutThePlatformIsUnresolvedWithAReason) {
  TestImageSpec arm;
  arm.architecture = "arm64";
  TestImage b = Make(arm);
  auto index = MakeTestIndex(stores_.content(), kNs, {b});
  ASSERT_TRUE(Create("armonly", index->first).ok());
  EXPECT_THAT(List(), IsEmpty());
  auto unresolved = stores_.index().ListUnresolved();
  ASSERT_EQ(unresolved->size(), 1u);
  EXPECT_EQ((*unresolved)[0].waiting_for, "");
  EXPECT_THAT((*unresolved)[0].reason, ::testing::HasSubstr("linux/amd64"));
}

TEST_F(CriIndexTest, RemoveImageDeletesEveryNameInOneWriteAndLeavesNoOrphan) {
  TestImage ti = Make({});
  const std::string id = ti.config.digest;
  ASSERT_TRUE(Create("docker.io/library/app:1", ti.manifest).ok());
  ASSERT_TRUE(Create("docker.io/library/app:latest", ti.manifest).ok());
  ASSERT_TRUE(Create(id, ti.manifest).ok());
  TestImage other = Make({"other"});
  ASSERT_TRUE(Create("docker.io/library/other:1", other.manifest).ok());

  auto removed = stores_.index().RemoveImage(kNs, id);
  ASSERT_TRUE(removed.ok());
  EXPECT_THAT(*removed, ::testing::UnorderedElementsAre("docker.io/library/app:1",
                                                        "docker.io/library/app:latest", id));
  auto left = stores_.images().List(kNs, {});
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].name, "docker.io/library/other:1");
  ASSERT_EQ(List().size(), 1u);
  // Idempotent.
  EXPECT_THAT(*stores_.index().RemoveImage(kNs, id), IsEmpty());
  auto check = stores_.index().Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_THAT(check->problems, IsEmpty());
}

TEST_F(CriIndexTest, RemoveImageTakesAnUnresolvedIdRecordToo) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("app:1", ti.manifest).ok());
  // A "sha256:<id>" record whose own target is not there.
  Descriptor dangling{std::string(kMediaTypeOciManifest), Sha256::Of("gone"), 10, {}, std::nullopt};
  ASSERT_TRUE(Create(ti.config.digest, dangling).ok());
  ASSERT_TRUE(stores_.index().RemoveImage(kNs, ti.config.digest).ok());
  EXPECT_THAT(*stores_.images().List(kNs, {}), IsEmpty());
  EXPECT_THAT(*stores_.index().ListUnresolved(), IsEmpty());
}

TEST_F(CriIndexTest, TruncatedIdsArePrefixScans) {
  TestImage a = Make({"a"}), b = Make({"b"});
  ASSERT_TRUE(Create("a", a.manifest).ok());
  ASSERT_TRUE(Create("b", b.manifest).ok());
  ASSERT_TRUE(Create("b2", b.manifest).ok());
  auto ids = stores_.index().ImageIdsWithPrefix(kNs, a.config.digest.substr(0, 7 + 12), 2);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(a.config.digest));
  ids = stores_.index().ImageIdsWithPrefix(kNs, "sha256:", 5);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 2u);  // b's two names are one ID
  ids = stores_.index().ImageIdsWithPrefix("other-ns", "sha256:", 5);
  EXPECT_THAT(*ids, IsEmpty());
}

TEST_F(CriIndexTest, RetargetingMovesTheNameAndDropsAnEmptyId) {
  TestImage a = Make({"a"}), b = Make({"b"});
  ASSERT_TRUE(Create("app:1", a.manifest).ok());
  Image retarget;
  retarget.name = "app:1";
  retarget.target = b.manifest;
  retarget.target.platform.reset();
  auto up = stores_.images().Update(kNs, retarget, {"target"});
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->labels.at(kLabelImageId), b.config.digest);
  std::vector<CriImage> list = List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, b.config.digest);
  EXPECT_FALSE(stores_.index().GetImage(kNs, a.config.digest)->has_value());
}

TEST_F(CriIndexTest, DeleteOfOneNameKeepsTheOthers) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  ASSERT_TRUE(Create("x:2", ti.manifest).ok());
  ASSERT_TRUE(stores_.images().Delete(kNs, "x:1").ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_THAT(List()[0].names, ElementsAre("x:2"));
  ASSERT_TRUE(stores_.images().Delete(kNs, "x:2").ok());
  EXPECT_THAT(List(), IsEmpty());
  // The config row went with the last name.
  EXPECT_TRUE(absl::IsNotFound(stores_.index().ImageConfigJson(kNs, ti.config.digest).status()));
  EXPECT_THAT(stores_.index().Check(false)->problems, IsEmpty());
}

TEST_F(CriIndexTest, ImagesWrittenUnderALeaseAreItsResources) {
  rocksdb::WriteBatch lease;
  lease.Put(stores_.db().cf(Cf::kLeases), LeaseKey(kNs, "import-1"), "x");
  ASSERT_TRUE(stores_.db().Write(&lease).ok());
  TestImage ti = Make({});
  Image image;
  image.name = "leased:1";
  image.target = ti.manifest;
  image.target.platform.reset();
  ASSERT_TRUE(stores_.images().Create(kNs, image, "import-1").ok());
  std::string ignored;
  EXPECT_TRUE(stores_.db()
                  .Get(Cf::kLeaseResources, LeaseResourceKey(kNs, "import-1", "images", "leased:1"),
                       &ignored)
                  .ok());
}

TEST_F(CriIndexTest, CheckFindsAndRepairsDrift) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  auto clean = stores_.index().Check(false);
  ASSERT_TRUE(clean.ok());
  EXPECT_THAT(clean->problems, IsEmpty());
  EXPECT_EQ(clean->records, 1);
  EXPECT_EQ(clean->resolved, 1);

  // Lose the name row and plant a stale one behind the store's back.
  rocksdb::WriteBatch batch;
  batch.Delete(stores_.db().cf(Cf::kCriIndex), CriNameKey(kNs, ti.config.digest, "x:1"));
  batch.Put(stores_.db().cf(Cf::kCriIndex), CriNameKey(kNs, ti.config.digest, "ghost"),
            EncodeNameRecord({}));
  ASSERT_TRUE(stores_.db().Write(&batch).ok());
  auto drift = stores_.index().Check(true);
  ASSERT_TRUE(drift.ok());
  EXPECT_EQ(drift->problems.size(), 2u);
  EXPECT_TRUE(drift->repaired);
  EXPECT_THAT(List()[0].names, ElementsAre("x:1"));
  EXPECT_THAT(stores_.index().Check(false)->problems, IsEmpty());
}

// [cri_names] and [cri_status] follow every write of the rows they derive
// from; Check compares them too (every test's teardown runs it).
TEST_F(CriIndexTest, NameAndStatusRowsFollowARetargetAndADelete) {
  TestImage a = Make({}), b = Make({.seed = "b"});
  ASSERT_TRUE(Create("x:1", a.manifest).ok());
  ASSERT_TRUE(Create("x:2", a.manifest).ok());
  EXPECT_EQ(*stores_.index().ImageIdOfName(kNs, "x:1"), a.config.digest);
  Image retarget;
  retarget.name = "x:1";
  retarget.target = b.manifest;
  retarget.target.platform.reset();
  ASSERT_TRUE(stores_.images().Update(kNs, retarget, {"target"}).ok());
  EXPECT_EQ(*stores_.index().ImageIdOfName(kNs, "x:1"), b.config.digest);
  EXPECT_THAT((*stores_.index().GetImage(kNs, a.config.digest))->names, ElementsAre("x:2"));
  EXPECT_THAT((*stores_.index().GetImage(kNs, b.config.digest))->names, ElementsAre("x:1"));
  ASSERT_TRUE(stores_.images().Delete(kNs, "x:2").ok());
  EXPECT_FALSE(stores_.index().ImageIdOfName(kNs, "x:2")->has_value());
  EXPECT_FALSE(stores_.index().GetImage(kNs, a.config.digest)->has_value());
  EXPECT_THAT(*stores_.index().ImageIdsWithPrefix(kNs, a.config.digest.substr(0, 17), 2),
              IsEmpty());
  EXPECT_THAT(*stores_.index().ImageIdsWithPrefix(kNs, b.config.digest.substr(0, 17), 2),
              ElementsAre(b.config.digest));
}

TEST_F(CriIndexTest, CheckFindsAndRepairsDriftOfDerivedRows) {
  TestImage a = Make({}), b = Make({.seed = "b"});
  ASSERT_TRUE(Create("x:1", a.manifest).ok());
  ASSERT_TRUE(Create("y:1", b.manifest).ok());
  // A stale name row, a lost one and a status row that lost its name.
  rocksdb::WriteBatch batch;
  batch.Put(stores_.db().cf(Cf::kCriNames), CriNameToIdKey(kNs, "ghost"), a.config.digest);
  batch.Delete(stores_.db().cf(Cf::kCriNames), CriNameToIdKey(kNs, "y:1"));
  batch.Put(stores_.db().cf(Cf::kCriStatus), CriIdPrefix(kNs, a.config.digest),
            EncodeCriStatusRecord(EncodeCriMetaRecord({}), {}));
  ASSERT_TRUE(stores_.db().Write(&batch).ok());
  auto drift = stores_.index().Check(true);
  ASSERT_TRUE(drift.ok()) << drift.status();
  EXPECT_EQ(drift->problems.size(), 3u);
  EXPECT_TRUE(drift->repaired);
  EXPECT_EQ(*stores_.index().ImageIdOfName(kNs, "y:1"), b.config.digest);
  EXPECT_FALSE(stores_.index().ImageIdOfName(kNs, "ghost")->has_value());
  EXPECT_THAT((*stores_.index().GetImage(kNs, a.config.digest))->names, ElementsAre("x:1"));
}

// A test image written into `stores` and named by each of `names`: what a
// database of an older schema is made from before it is marked older.
TestImage MakeNamedImage(LocalStores& stores, std::initializer_list<const char*> names) {
  absl::StatusOr<TestImage> ti = MakeTestImage(*stores.content(), kNs, {});
  EXPECT_TRUE(ti.ok()) << ti.status();
  if (!ti.ok()) return {};
  for (const char* name : names) {
    Image image;
    image.name = name;
    image.target = ti->manifest;
    image.target.platform.reset();
    EXPECT_TRUE(stores.images()->Create(kNs, image).ok()) << name;
  }
  return *ti;
}

// Adds to `batch` the schema version `v`, as an older imaged wrote it.
void StageSchemaVersion(MetadataDb& db, uint32_t v, rocksdb::WriteBatch* batch) {
  std::string version;
  PutU32(&version, v);
  batch->Put(db.cf(Cf::kDefault), std::string(kSchemaVersionKey), version);
}

// The schema version `db` records (0 when it cannot be read).
uint32_t SchemaVersionOf(MetadataDb& db) {
  std::string version;
  if (!db.Get(Cf::kDefault, kSchemaVersionKey, &version).ok()) return 0;
  absl::string_view in = version;
  uint32_t v = 0;
  return GetU32(&in, &v) ? v : 0;
}

// A database schema version 1 wrote has no derived rows: opening it builds
// them and moves the version on.
TEST(SchemaUpgradeTest, Version1DatabaseGetsItsDerivedRowsAtOpen) {
  const std::string root = MakeTempDir("imaged-upgrade");
  std::string id;
  {
    auto stores = LocalStores::Open(root, {});
    ASSERT_TRUE(stores.ok()) << stores.status();
    id = MakeNamedImage(**stores, {"app:1", "app:2"}).config.digest;
    // As version 1 left it.
    MetadataDb& db = *(*stores)->db();
    rocksdb::WriteBatch batch;
    for (Cf cf : {Cf::kCriNames, Cf::kCriStatus}) {
      PrefixScan scan(db, cf, "");
      for (; scan.Valid(); scan.Next()) batch.Delete(db.cf(cf), std::string(scan.key()));
    }
    StageSchemaVersion(db, 1, &batch);
    ASSERT_TRUE(db.Write(&batch).ok());
    EXPECT_FALSE((*stores)->images()->GetImage(kNs, id)->has_value());
  }
  auto stores = LocalStores::Open(root, {});
  ASSERT_TRUE(stores.ok()) << stores.status();
  RocksDbImageStore& index = *(*stores)->images();
  absl::StatusOr<std::optional<CriImage>> image = index.GetImage(kNs, id);
  ASSERT_TRUE(image.ok() && image->has_value());
  EXPECT_THAT((*image)->names, ElementsAre("app:1", "app:2"));
  EXPECT_EQ(*index.ImageIdOfName(kNs, "app:2"), id);
  EXPECT_THAT(index.Check(false)->problems, IsEmpty());
  EXPECT_EQ(SchemaVersionOf(*(*stores)->db()), kSchemaVersion);
  stores->reset();
  RemoveAll(root).IgnoreError();
}

// A database schema version 2 wrote has no [cri_docs] rows: opening it
// builds them, so a removal follows the images indexed before.
TEST(SchemaUpgradeTest, Version2DatabaseGetsItsDocumentRowsAtOpen) {
  const std::string root = MakeTempDir("imaged-upgrade");
  TestImage ti;
  {
    auto stores = LocalStores::Open(root, {});
    ASSERT_TRUE(stores.ok()) << stores.status();
    ti = MakeNamedImage(**stores, {"app:1"});
    MetadataDb& db = *(*stores)->db();
    rocksdb::WriteBatch batch;
    PrefixScan scan(db, Cf::kCriDocs, "");
    int rows = 0;
    for (; scan.Valid(); scan.Next(), ++rows) batch.Delete(db.cf(Cf::kCriDocs), std::string(scan.key()));
    EXPECT_EQ(rows, 3);  // the name's, its manifest's, its config's
    StageSchemaVersion(db, 2, &batch);
    ASSERT_TRUE(db.Write(&batch).ok());
    EXPECT_FALSE((*stores)->images()->Check(false)->problems.empty());
  }
  auto stores = LocalStores::Open(root, {});
  ASSERT_TRUE(stores.ok()) << stores.status();
  RocksDbImageStore& index = *(*stores)->images();
  EXPECT_THAT(index.Check(false)->problems, IsEmpty());
  EXPECT_EQ(SchemaVersionOf(*(*stores)->db()), kSchemaVersion);
  ASSERT_TRUE((*stores)->content()->Delete(kNs, ti.config.digest).ok());
  EXPECT_FALSE(index.ImageIdOfName(kNs, "app:1")->has_value());
  EXPECT_THAT(index.Check(false)->problems, IsEmpty());
  stores->reset();
  RemoveAll(root).IgnoreError();
}

// A database schema version 3 wrote keeps every blob a file (and has no
// [blob_data]): opening it marks it 4, its images stay indexed and their
// files readable, and new small blobs become rows beside them.
TEST(SchemaUpgradeTest, Version3DatabaseKeepsItsFiles) {
  const std::string root = MakeTempDir("imaged-upgrade");
  TestImage ti;
  {
    LocalStoresOptions files_only;
    files_only.content.inline_max_bytes = 0;
    auto stores = LocalStores::Open(root, files_only);
    ASSERT_TRUE(stores.ok()) << stores.status();
    ti = MakeNamedImage(**stores, {"app:1"});
    rocksdb::WriteBatch batch;
    StageSchemaVersion(*(*stores)->db(), 3, &batch);
    ASSERT_TRUE((*stores)->db()->Write(&batch).ok());
  }
  auto stores = LocalStores::Open(root, {});
  ASSERT_TRUE(stores.ok()) << stores.status();
  EXPECT_EQ(SchemaVersionOf(*(*stores)->db()), kSchemaVersion);
  EXPECT_THAT((*stores)->images()->Check(false)->problems, IsEmpty());
  EXPECT_TRUE((*stores)->images()->ImageIdOfName(kNs, "app:1")->has_value());
  for (const auto& [digest, data] : ti.blobs) {
    EXPECT_TRUE(FileSize((*stores)->content()->BlobPath(digest)).ok()) << digest;
    EXPECT_EQ(*ReadWholeBlob(*(*stores)->content(), kNs, digest, 1 << 20), data);
  }
  TestImageSpec second;
  second.seed = "b";
  absl::StatusOr<TestImage> other = MakeTestImage(*(*stores)->content(), kNs, second);
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string config_file = (*stores)->content()->BlobPath(other->config.digest);
  EXPECT_TRUE(absl::IsNotFound(FileSize(config_file).status()));
  auto usage = (*stores)->content()->Usage();
  ASSERT_TRUE(usage.ok()) << usage.status();
  EXPECT_EQ(usage->files, static_cast<int64_t>(ti.blobs.size()));
  EXPECT_EQ(usage->inline_blobs, static_cast<int64_t>(other->blobs.size()));
  stores->reset();
  RemoveAll(root).IgnoreError();
}

// What a pull ends with: names and blob labels in one write.
ImageCommit PullCommit(const TestImage& ti, std::vector<std::string> names) {
  ImageCommit c;
  for (std::string& n : names) {
    Image image;
    image.name = std::move(n);
    image.target = ti.manifest;
    image.target.platform.reset();
    image.labels[kLabelManaged] = "managed";
    c.images.push_back(std::move(image));
  }
  c.blob_labels.push_back({ti.manifest.digest, {{"containerd.io/gc.ref.content.config", ti.config.digest}}});
  return c;
}

TEST_F(CriIndexTest, CommitWritesNamesAndBlobLabelsTogether) {
  TestImage ti = Make({});
  auto written = stores_.index().Commit(kNs, PullCommit(ti, {"r/app:1", ti.config.digest}), "");
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->size(), 2u);
  EXPECT_FALSE((*written)[0].existed);
  EXPECT_THAT(List()[0].names, ElementsAre("r/app:1", ti.config.digest));
  auto info = stores_.content().Info(kNs, ti.manifest.digest);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at("containerd.io/gc.ref.content.config"), ti.config.digest);
}

TEST_F(CriIndexTest, CommitWithAMissingBlobWritesNothing) {
  TestImage ti = Make({});
  ImageCommit c = PullCommit(ti, {"r/app:1"});
  c.blob_labels.push_back({Sha256::Of("not stored"), {{"k", "v"}}});
  auto written = stores_.index().Commit(kNs, c, "");
  EXPECT_EQ(written.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_EQ(stores_.images().Get(kNs, "r/app:1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(stores_.content().Info(kNs, ti.manifest.digest)->labels.empty());
}

TEST_F(CriIndexTest, CommitMovingEveryNameToANewImageDropsTheOldOne) {
  TestImageSpec old_spec;
  old_spec.seed = "old";
  TestImage old_image = Make(old_spec), new_image = Make({});
  ASSERT_TRUE(stores_.index().Commit(kNs, PullCommit(old_image, {"r/app:1", "r/app:2"}), "").ok());
  // A record that is not managed keeps its labels when the commit re-points it.
  ASSERT_TRUE(stores_.images().Update(kNs, Image{"r/app:2", {{"team", "x"}}, {}, {}, {}},
                                      {"labels.team"}).ok());
  auto written = stores_.index().Commit(kNs, PullCommit(new_image, {"r/app:1", "r/app:2"}), "");
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_TRUE((*written)[1].existed);
  std::vector<CriImage> list = List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, new_image.config.digest);
  EXPECT_EQ(stores_.images().Get(kNs, "r/app:2")->labels.at("team"), "x");
  auto stale = stores_.index().GetImage(kNs, old_image.config.digest);
  ASSERT_TRUE(stale.ok());
  EXPECT_FALSE(stale->has_value());
  EXPECT_THAT(stores_.index().Check(false)->problems, IsEmpty());
  std::string ignored;
  EXPECT_TRUE(absl::IsNotFound(
      stores_.db().Get(Cf::kCriConfigs, CriIdPrefix(kNs, old_image.config.digest), &ignored)));
}

TEST_F(CriIndexTest, CommitDeletesAndRewritesInOneWriteKeepingASharedImageIndexed) {
  TestImage ti = Make({});
  ASSERT_TRUE(stores_.index().Commit(kNs, PullCommit(ti, {"r/app:1", "r/app:2", "r/app:3"}), "").ok());
  ImageCommit c = PullCommit(ti, {"r/app:1"});
  c.blob_labels.clear();
  c.deletes = {"r/app:2", "r/app:3", "r/app:never"};
  ASSERT_TRUE(stores_.index().Commit(kNs, c, "").ok());
  std::vector<CriImage> list = List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_THAT(list[0].names, ElementsAre("r/app:1"));
  EXPECT_EQ(stores_.images().Get(kNs, "r/app:2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(stores_.index().Check(false)->problems, IsEmpty());
  EXPECT_TRUE(stores_.index().ImageConfigJson(kNs, ti.config.digest).ok());
}

TEST_F(CriIndexTest, CommitCanReplaceLabels) {
  TestImage ti = Make({});
  ImageCommit c = PullCommit(ti, {"r/app:1"});
  c.images[0].labels["team"] = "x";
  ASSERT_TRUE(stores_.index().Commit(kNs, c, "").ok());
  ImageCommit mirror = PullCommit(ti, {"r/app:1"});
  mirror.replace_labels = true;
  mirror.images[0].labels = {{"other", "y"}};
  ASSERT_TRUE(stores_.index().Commit(kNs, mirror, "").ok());
  Labels labels = stores_.images().Get(kNs, "r/app:1")->labels;
  EXPECT_EQ(labels.count("team"), 0u);
  EXPECT_EQ(labels.count(kLabelManaged), 0u);
  EXPECT_EQ(labels.at("other"), "y");
  EXPECT_EQ(labels.at(kLabelImageId), ti.config.digest);  // derived labels come back
}

// Generation(): every write of the index moves it on, in every path that
// writes one, so a cached ListImages answer is rebuilt after each; reads and
// checks that find nothing to repair leave it.
class GenerationTest : public CriIndexTest {
 protected:
  uint64_t Generation() { return stores_.index().Generation(); }
};

TEST_F(GenerationTest, ReadsAndCleanChecksLeaveIt) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  const uint64_t before = Generation();
  List();
  ASSERT_TRUE(stores_.index().GetImage(kNs, ti.config.digest).ok());
  ASSERT_TRUE(stores_.index().ImageIdOfName(kNs, "x:1").ok());
  ASSERT_TRUE(stores_.images().List(kNs, {}).ok());
  ASSERT_TRUE(stores_.index().Check(true).ok());
  EXPECT_EQ(Generation(), before);
}

TEST_F(GenerationTest, CreateMovesIt) {
  TestImage ti = Make({});
  const uint64_t before = Generation();
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  EXPECT_GT(Generation(), before);
}

TEST_F(GenerationTest, UpdateMovesIt) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  const uint64_t before = Generation();
  Image image;
  image.name = "x:1";
  image.labels = {{kLabelPinned, kPinnedValue}};
  ASSERT_TRUE(stores_.images().Update(kNs, image, {"labels.io.cri-containerd.pinned"}).ok());
  EXPECT_GT(Generation(), before);
}

TEST_F(GenerationTest, DeleteMovesIt) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  const uint64_t before = Generation();
  ASSERT_TRUE(stores_.images().Delete(kNs, "x:1").ok());
  EXPECT_GT(Generation(), before);
}

TEST_F(GenerationTest, RemoveImageMovesIt) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  const uint64_t before = Generation();
  ASSERT_TRUE(stores_.index().RemoveImage(kNs, ti.config.digest).ok());
  EXPECT_GT(Generation(), before);
}

TEST_F(GenerationTest, CommitOfAPullOrImportMovesIt) {
  TestImage ti = Make({});
  const uint64_t before = Generation();
  ImageCommit commit;
  Image image;
  image.name = "x:1";
  image.target = ti.manifest;
  image.target.platform.reset();
  commit.images.push_back(image);
  ASSERT_TRUE(stores_.index().Commit(kNs, commit, "").ok());
  EXPECT_GT(Generation(), before);
}

TEST_F(GenerationTest, BlobArrivalThatResolvesARecordMovesIt) {
  TestImageSpec spec;
  TestImage ti = Make(spec, /*write=*/false);
  // Everything but the config: the record waits for it.
  for (const auto& [digest, bytes] : ti.blobs) {
    if (digest != ti.config.digest) {
      ASSERT_TRUE(WriteBlob(stores_.content(), kNs, bytes).ok());
    }
  }
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  EXPECT_TRUE(List().empty());
  const uint64_t before = Generation();
  for (const auto& [digest, bytes] : ti.blobs) {
    if (digest == ti.config.digest) {
      ASSERT_TRUE(WriteBlob(stores_.content(), kNs, bytes).ok());
    }
  }
  EXPECT_GT(Generation(), before);
  EXPECT_EQ(List().size(), 1u);
}

TEST_F(GenerationTest, ChangedSinceNamesTheImagesWrittenInThatNamespace) {
  TestImageSpec spec_a, spec_b;
  spec_a.seed = "a";
  spec_b.seed = "b";
  TestImage a = Make(spec_a);
  TestImage b = Make(spec_b);
  ASSERT_TRUE(Create("a:1", a.manifest).ok());
  const uint64_t after_a = Generation();
  ASSERT_TRUE(Create("b:1", b.manifest).ok());
  ASSERT_TRUE(Create("b:2", b.manifest).ok());
  auto changed = stores_.index().ChangedSince(kNs, after_a);
  ASSERT_TRUE(changed.has_value());
  EXPECT_THAT(*changed, ElementsAre(b.config.digest));
  EXPECT_THAT(*stores_.index().ChangedSince(kNs, Generation()), IsEmpty());
  EXPECT_THAT(*stores_.index().ChangedSince("other", after_a), IsEmpty());
  ASSERT_TRUE(stores_.index().RemoveImage(kNs, a.config.digest).ok());
  EXPECT_THAT(*stores_.index().ChangedSince(kNs, after_a),
              testing::UnorderedElementsAre(a.config.digest, b.config.digest));
}

TEST_F(GenerationTest, CheckThatRepairsMovesIt) {
  TestImage ti = Make({});
  ASSERT_TRUE(Create("x:1", ti.manifest).ok());
  rocksdb::WriteBatch batch;
  batch.Delete(stores_.db().cf(Cf::kCriIndex), CriNameKey(kNs, ti.config.digest, "x:1"));
  ASSERT_TRUE(stores_.db().Write(&batch).ok());
  const uint64_t before = Generation();
  ASSERT_TRUE(stores_.index().Check(/*repair=*/false).ok());
  EXPECT_EQ(Generation(), before);
  ASSERT_TRUE(stores_.index().Check(/*repair=*/true).ok());
  EXPECT_GT(Generation(), before);
}

}  // namespace
}  // namespace imaged::store

namespace imaged::store {
namespace {

// Limits apply to writes: a record an older version stored beyond them (a
// 2 MiB name, a 5 KiB label) is still listed, read and deleted.
TEST_F(CriIndexTest, RecordsBeyondTodaysLimitsStayListableAndDeletable) {
  TestImage ti = Make({});
  const std::string name(2 << 20, 'o');
  ImageRecord old;
  old.media_type = ti.manifest.media_type;
  old.digest = ti.manifest.digest;
  old.size = ti.manifest.size;
  old.labels = {{"big", std::string(5000, 'v')}};
  rocksdb::WriteBatch batch;
  batch.Put(stores_.db().cf(Cf::kImages), ImageKey(kNs, name), EncodeImageRecord(old));
  ASSERT_TRUE(stores_.db().Write(&batch).ok());

  EXPECT_TRUE(absl::IsInvalidArgument(Create(name + "x", ti.manifest)));  // no new ones
  absl::StatusOr<std::vector<Image>> listed = stores_.images().List(kNs, {});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name.size(), name.size());
  EXPECT_TRUE(stores_.images().Get(kNs, name).ok());
  EXPECT_TRUE(stores_.images().Delete(kNs, name).ok());
  EXPECT_THAT(*stores_.images().List(kNs, {}), IsEmpty());
}

// A removal changes only the index, never the records it re-resolves: a
// record an older version stored beyond today's label limits does not
// stop the removal of a blob it read (nor a collection's sweep).
TEST_F(CriIndexTest, ARecordBeyondTodaysLimitsDoesNotStopARemoval) {
  TestImage ti = Make({});
  ImageRecord old;
  old.media_type = ti.manifest.media_type;
  old.digest = ti.manifest.digest;
  old.size = ti.manifest.size;
  old.labels = {{"big", std::string(5000, 'v')}, {kLabelImageId, ti.config.digest}};
  rocksdb::WriteBatch batch;
  batch.Put(stores_.db().cf(Cf::kImages), ImageKey(kNs, "old:1"), EncodeImageRecord(old));
  ASSERT_TRUE(stores_.db().Write(&batch).ok());
  auto repaired = stores_.index().Check(/*repair=*/true);  // indexed, as that version had it
  ASSERT_TRUE(repaired.ok() && repaired->repaired);
  ASSERT_EQ(List().size(), 1u);

  absl::Status deleted = stores_.content().Delete(kNs, ti.config.digest);
  EXPECT_TRUE(deleted.ok()) << deleted;
  EXPECT_THAT(List(), IsEmpty());
  auto unresolved = stores_.index().ListUnresolved();
  ASSERT_TRUE(unresolved.ok());
  ASSERT_EQ(unresolved->size(), 1u);
  EXPECT_EQ((*unresolved)[0].waiting_for, ti.config.digest);
  EXPECT_EQ(stores_.images().Get(kNs, "old:1")->labels.at("big").size(), 5000u);
}

}  // namespace
}  // namespace imaged::store
