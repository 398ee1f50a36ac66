// CRI image behaviours, one named test each, over real RocksDB stores.
#include "cri/image_service.h"
#include "cri/reference.h"

#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/files.h"
#include "store/metadata_db.h"
#include "store/local_stores.h"
#include "store/test_images.h"

namespace imaged::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr absl::string_view kNs = "k8s.io";

class ImageServiceTest : public ::testing::Test {
 protected:
  ImageServiceTest() {
    const char* base = std::getenv("TEST_TMPDIR");
    root_ = absl::StrCat(base ? base : "/tmp", "/imaged-cri-XXXXXX");
    EXPECT_NE(::mkdtemp(root_.data()), nullptr);
    store::LocalStoresOptions options;
    options.clock = &clock_;
    options.classify = ClassifyImageName;
    stores_ = *store::LocalStores::Open(root_, options);
    content_ = stores_->content();
    images_ = stores_->images();
    service_ = std::make_unique<ImageService>(images_, root_,
                                              [this] { return content_->Usage(); });
  }
  ~ImageServiceTest() override {
    service_.reset();
    stores_.reset();
    store::RemoveAll(root_).IgnoreError();
  }

  store::TestImage Make(const std::string& seed, bool write = true) {
    store::TestImageSpec spec;
    spec.seed = seed;
    return *store::MakeTestImage(*content_, kNs, spec, write);
  }
  void Name(absl::string_view name, const store::Descriptor& target, store::Labels labels = {}) {
    store::Image image;
    image.name = std::string(name);
    image.target = target;
    image.target.platform.reset();
    image.labels = std::move(labels);
    ASSERT_TRUE(images_->Create(kNs, image).ok()) << name;
  }
  // The three names containerd's CRI gives a pulled image.
  void NameAsPulled(absl::string_view repo, absl::string_view tag, const store::TestImage& ti) {
    Name(absl::StrCat(repo, ":", tag), ti.manifest);
    Name(absl::StrCat(repo, "@", ti.manifest.digest), ti.manifest);
    Name(ti.config.digest, ti.manifest);
  }
  std::optional<store::CriImage> Status(absl::string_view ref) {
    auto st = service_->ImageStatus(kNs, ref);
    EXPECT_TRUE(st.ok()) << st.status();
    return st.value_or(std::nullopt);
  }

  std::string root_;
  store::FakeClock clock_;
  std::unique_ptr<store::LocalStores> stores_;
  store::RocksDbContentStore* content_;
  store::RocksDbImageStore* images_;
  std::unique_ptr<ImageService> service_;
};

TEST_F(ImageServiceTest, ImageStatusOfMissingImageIsEmptyOk) {
  EXPECT_FALSE(Status("busybox").has_value());
  EXPECT_FALSE(Status("sha256:" + std::string(64, 'a')).has_value());
  EXPECT_FALSE(Status("abc123").has_value());
}

// containerd's CRI answers both with OK: no image, nothing removed.
TEST_F(ImageServiceTest, ImageStatusAndRemoveImageOfEmptyRefAreOkAndEmpty) {
  store::TestImage ti = Make("a");
  NameAsPulled("docker.io/library/busybox", "1.36", ti);
  absl::StatusOr<std::optional<store::CriImage>> status = service_->ImageStatus(kNs, "");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_FALSE(status->has_value());
  absl::StatusOr<std::vector<std::string>> removed = service_->RemoveImage(kNs, "");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, IsEmpty());
  EXPECT_EQ(service_->ListImages(kNs, "")->size(), 1u);
}

TEST_F(ImageServiceTest, OneImageWithTagDigestAndIdNamesIsListedOnce) {
  store::TestImage ti = Make("a");
  NameAsPulled("docker.io/library/busybox", "1.36", ti);
  auto list = service_->ListImages(kNs, "");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, ti.config.digest);
  EXPECT_EQ((*list)[0].names.size(), 3u);
}

TEST_F(ImageServiceTest, ImageStatusByShortNameIsNormalisedAsDockerDoes) {
  store::TestImage ti = Make("a");
  Name("docker.io/library/busybox:latest", ti.manifest);
  for (const char* ref : {"busybox", "busybox:latest", "library/busybox",
                          "docker.io/library/busybox:latest"}) {
    auto st = Status(ref);
    ASSERT_TRUE(st.has_value()) << ref;
    EXPECT_EQ(st->id, ti.config.digest);
  }
  EXPECT_FALSE(Status("busybox:1.0").has_value());
}

TEST_F(ImageServiceTest, ImageStatusByNameAtDigestAndByFullId) {
  store::TestImage ti = Make("a");
  NameAsPulled("quay.io/app/web", "2", ti);
  EXPECT_EQ(Status(absl::StrCat("quay.io/app/web@", ti.manifest.digest))->id, ti.config.digest);
  EXPECT_EQ(Status(ti.config.digest)->id, ti.config.digest);
  EXPECT_EQ(Status(ti.config.digest.substr(7))->id, ti.config.digest);
}

TEST_F(ImageServiceTest, TruncatedIdsResolveWhenUnambiguous) {
  // Seventeen images: two of them must share a first hex digit.
  std::map<char, std::vector<std::string>> by_first;
  for (int i = 0; i < 17; ++i) {
    store::TestImage ti = Make(absl::StrCat("t", i));
    Name(absl::StrCat("t:", i), ti.manifest);
    by_first[ti.config.digest[7]].push_back(ti.config.digest);
  }
  for (const auto& [first, ids] : by_first) {
    if (ids.size() == 1) {
      // One hex digit is enough when no other ID shares it (as containerd).
      EXPECT_EQ(Status(std::string(1, first))->id, ids[0]);
      EXPECT_EQ(Status(absl::StrCat("sha256:", std::string(1, first)))->id, ids[0]);
      continue;
    }
    // A prefix two IDs share is ambiguous: an error, never "the first one".
    auto st = service_->ImageStatus(kNs, std::string(1, first));
    EXPECT_TRUE(absl::IsInvalidArgument(st.status())) << st.status();
    EXPECT_TRUE(absl::IsInvalidArgument(service_->RemoveImage(kNs, std::string(1, first)).status()));
    // Twelve digits tell them apart.
    for (const std::string& id : ids) EXPECT_EQ(Status(id.substr(7, 12))->id, id);
  }
  EXPECT_EQ(service_->ListImages(kNs, "")->size(), 17u);
}

TEST_F(ImageServiceTest, RemoveIsIdempotentAndLeavesNoOrphan) {
  store::TestImage ti = Make("a");
  NameAsPulled("docker.io/library/busybox", "1.36", ti);
  Name("docker.io/library/busybox:latest", ti.manifest);
  ASSERT_TRUE(service_->RemoveImage(kNs, "busybox:1.36").ok());
  EXPECT_THAT(*service_->ListImages(kNs, ""), IsEmpty());
  EXPECT_THAT(*images_->List(kNs, {}), IsEmpty());  // the sha256:<id> record too
  EXPECT_TRUE(service_->RemoveImage(kNs, "busybox:1.36").ok());
  EXPECT_TRUE(service_->RemoveImage(kNs, ti.config.digest).ok());
  EXPECT_THAT(images_->Check(false)->problems, IsEmpty());
}

TEST_F(ImageServiceTest, PinnedImageIsReportedPinned) {
  store::TestImage ti = Make("a");
  Name("registry.k8s.io/pause:3.9", ti.manifest, {{store::kLabelPinned, store::kPinnedValue}});
  Name("registry.k8s.io/pause:latest", ti.manifest);
  EXPECT_TRUE(Status("registry.k8s.io/pause:latest")->pinned);
}

TEST_F(ImageServiceTest, RecordWhoseContentIsMissingIsNotAnImageUntilItArrives) {
  store::TestImage ti = Make("late", /*write=*/false);
  Name("docker.io/library/late:1", ti.manifest);
  EXPECT_FALSE(Status("late:1").has_value());
  EXPECT_THAT(*service_->ListImages(kNs, ""), IsEmpty());
  for (const auto& [digest, data] : ti.blobs) {
    ASSERT_TRUE(store::WriteBlob(*content_, kNs, data).ok());
  }
  EXPECT_EQ(Status("late:1")->id, ti.config.digest);
}

TEST_F(ImageServiceTest, MultiPlatformIndexIsResolvedToTheConfiguredPlatform) {
  store::TestImageSpec arm;
  arm.seed = "arm";
  arm.architecture = "arm";
  arm.variant = "v7";
  store::TestImage a = Make("amd"), b = *store::MakeTestImage(*content_, kNs, arm);
  auto index = store::MakeTestIndex(*content_, kNs, {b, a});
  Name("docker.io/library/multi:1", index->first);
  EXPECT_EQ(Status("multi:1")->id, a.config.digest);
}

TEST_F(ImageServiceTest, ListImagesFilterSelectsByReference) {
  store::TestImage a = Make("a"), b = Make("b");
  Name("docker.io/library/a:1", a.manifest);
  Name("docker.io/library/b:1", b.manifest);
  auto list = service_->ListImages(kNs, "b:1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, b.config.digest);
  EXPECT_THAT(*service_->ListImages(kNs, "c:1"), IsEmpty());
}

TEST_F(ImageServiceTest, StreamImagesSendsTheListInBatches) {
  for (int i = 0; i < 5; ++i) {
    store::TestImage ti = Make(absl::StrCat("s", i));
    Name(absl::StrCat("img:", i), ti.manifest);
  }
  std::vector<size_t> sizes;
  ASSERT_TRUE(service_->StreamImages(kNs, [&](const std::vector<store::CriImage>& batch) {
    sizes.push_back(batch.size());
    return absl::OkStatus();
  }, 2).ok());
  EXPECT_THAT(sizes, ElementsAre(2, 2, 1));
}

// Every blob's bytes; an inode for each layer, the files (the config and
// manifest are rows of the metadata database).
TEST_F(ImageServiceTest, ImageFsInfoReportsTheContentStore) {
  store::TestImageSpec spec;
  spec.layer_size = 100000;
  store::TestImage ti = *store::MakeTestImage(*content_, kNs, spec);
  auto fs = service_->ImageFsInfo();
  ASSERT_TRUE(fs.ok());
  EXPECT_EQ(fs->mountpoint, root_);
  EXPECT_EQ(fs->inodes_used, static_cast<int64_t>(ti.layers.size()));
  int64_t bytes = 0;
  for (const auto& [digest, data] : ti.blobs) bytes += static_cast<int64_t>(data.size());
  EXPECT_EQ(fs->used_bytes, bytes);
}

TEST_F(ImageServiceTest, ImagesInOtherNamespacesAreNotSeen) {
  store::TestImage ti = *store::MakeTestImage(*content_, "default", store::TestImageSpec{});
  store::Image image;
  image.name = "docker.io/library/elsewhere:1";
  image.target = ti.manifest;
  ASSERT_TRUE(images_->Create("default", image).ok());
  EXPECT_FALSE(Status("elsewhere:1").has_value());
  EXPECT_THAT(*service_->ListImages(kNs, ""), IsEmpty());
}

}  // namespace
}  // namespace imaged::cri
