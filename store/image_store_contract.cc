#include "store/image_store_contract.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "store/digest.h"
#include "store/test_images.h"

namespace imaged::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::string_view kNs = "k8s.io";

Image Named(absl::string_view name, absl::string_view seed = "x") {
  Image image;
  image.name = std::string(name);
  image.target = Descriptor{std::string(kMediaTypeOciManifest), Sha256::Of(seed), 100, {}, std::nullopt};
  return image;
}

std::vector<std::string> Names(const absl::StatusOr<std::vector<Image>>& images) {
  std::vector<std::string> out;
  EXPECT_TRUE(images.ok()) << images.status();
  if (images.ok()) {
    for (const Image& i : *images) out.push_back(i.name);
  }
  return out;
}

TEST_P(ImageStoreContract, CreateGetDelete) {
  Image in = Named("docker.io/library/busybox:1.36");
  in.labels = {{"a", "1"}};
  absl::StatusOr<Image> created = images().Create(kNs, in);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_GT(created->created_at, absl::UnixEpoch());
  EXPECT_EQ(created->created_at, created->updated_at);

  absl::StatusOr<Image> got = images().Get(kNs, in.name);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->target.digest, in.target.digest);
  EXPECT_EQ(got->target.media_type, in.target.media_type);
  EXPECT_EQ(got->target.size, 100);
  EXPECT_EQ(got->labels.at("a"), "1");

  absl::Status again = images().Create(kNs, in).status();
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;

  ASSERT_TRUE(images().Delete(kNs, in.name).ok());
  EXPECT_TRUE(absl::IsNotFound(images().Get(kNs, in.name).status()));
  EXPECT_TRUE(absl::IsNotFound(images().Delete(kNs, in.name)));
}

// containerd 2.x's source_date_epoch: Create stamps both times with it,
// Update only updated_at.
TEST_P(ImageStoreContract, AGivenTimestampIsStampedInsteadOfNow) {
  const absl::Time epoch = absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(5);
  absl::StatusOr<Image> created = images().Create(kNs, Named("stamped"), "", epoch);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->created_at, epoch);
  EXPECT_EQ(created->updated_at, epoch);

  const absl::Time later = epoch + absl::Hours(1);
  Image relabelled = Named("stamped");
  relabelled.labels = {{"a", "1"}};
  absl::StatusOr<Image> updated = images().Update(kNs, relabelled, {"labels.a"}, "", later);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->created_at, epoch);
  EXPECT_EQ(updated->updated_at, later);
  absl::StatusOr<Image> got = images().Get(kNs, "stamped");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->created_at, epoch);
  EXPECT_EQ(got->updated_at, later);

  // Without one, an update is stamped by the store's clock (a fake one in
  // the RocksDB harness, the wall clock over the wire).
  absl::StatusOr<Image> now = images().Update(kNs, relabelled, {"labels.a"});
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_NE(now->updated_at, later);
  EXPECT_EQ(now->created_at, epoch);
}

// containerd 2.x's guarded delete: only while the record has that target.
TEST_P(ImageStoreContract, ADeleteGuardedByATargetDeletesOnlyThatTarget) {
  ASSERT_TRUE(images().Create(kNs, Named("guarded", "one")).ok());
  absl::Status s = images().Delete(kNs, "guarded", Sha256::Of("two"));
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_TRUE(images().Get(kNs, "guarded").ok());
  s = images().Delete(kNs, "missing", Sha256::Of("one"));
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  ASSERT_TRUE(images().Delete(kNs, "guarded", Sha256::Of("one")).ok());
  EXPECT_TRUE(absl::IsNotFound(images().Get(kNs, "guarded").status()));
}

TEST_P(ImageStoreContract, InvalidImagesAreRejectedAndNothingChanges) {
  ASSERT_TRUE(images().Create(kNs, Named("keep")).ok());
  std::vector<Image> bad;
  bad.push_back(Named(""));
  Image digest = Named("bad-digest");
  digest.target.digest = "sha256:nothex";
  bad.push_back(digest);
  Image size = Named("zero-size");
  size.target.size = 0;
  bad.push_back(size);
  Image media = Named("no-media-type");
  media.target.media_type = "";
  bad.push_back(media);
  Image label = Named("big-label");
  label.labels = {{"k", std::string(4096, 'v')}};
  bad.push_back(label);
  for (const Image& image : bad) {
    absl::Status s = images().Create(kNs, image).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << image.name << ": " << s;
  }
  EXPECT_THAT(Names(images().List(kNs, {})), ElementsAre("keep"));
}

TEST_P(ImageStoreContract, UpdateByFieldPath) {
  Image in = Named("img");
  in.labels = {{"a", "1"}, {"b", "2"}};
  in.target.annotations = {{"x", "1"}};
  absl::StatusOr<Image> created = images().Create(kNs, in);
  ASSERT_TRUE(created.ok());

  Image change = Named("img", "other");
  change.labels = {{"b", "20"}, {"c", "3"}};
  change.target.annotations = {{"x", "10"}, {"y", "2"}};
  auto up = images().Update(kNs, change, {"labels.b", "annotations.y"});
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_THAT(up->labels, ElementsAre(Pair("a", "1"), Pair("b", "20")));
  EXPECT_THAT(up->target.annotations, ElementsAre(Pair("x", "1"), Pair("y", "2")));
  EXPECT_EQ(up->target.digest, in.target.digest);
  EXPECT_EQ(up->created_at, created->created_at);

  up = images().Update(kNs, change, {"target"});
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->target.digest, change.target.digest);

  // An empty value removes a label.
  Image clear = Named("img");
  clear.labels = {{"a", ""}};
  up = images().Update(kNs, clear, {"labels.a"});
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->labels.count("a"), 0u);

  // No mask: everything but created_at.
  Image whole = Named("img", "whole");
  whole.labels = {{"only", "this"}};
  up = images().Update(kNs, whole, {});
  ASSERT_TRUE(up.ok());
  EXPECT_THAT(up->labels, ElementsAre(Pair("only", "this")));
  EXPECT_EQ(up->target.digest, whole.target.digest);
  EXPECT_EQ(up->created_at, created->created_at);

  EXPECT_TRUE(absl::IsInvalidArgument(images().Update(kNs, whole, {"name"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(images().Update(kNs, whole, {"target.size"}).status()));
  EXPECT_TRUE(absl::IsNotFound(images().Update(kNs, Named("missing"), {}).status()));
  Image invalid = Named("img");
  invalid.target.size = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(images().Update(kNs, invalid, {"target"}).status()));
  EXPECT_EQ(images().Get(kNs, "img")->target.digest, whole.target.digest);
}

TEST_P(ImageStoreContract, ListFilters) {
  Image a = Named("docker.io/library/a:1", "a");
  a.labels = {{"io.cri-containerd.image", "managed"}};
  Image b = Named("docker.io/library/b:1", "b");
  b.target.media_type = std::string(kMediaTypeDockerManifest);
  b.target.annotations = {{"org.opencontainers.image.ref.name", "1"}};
  Image c = Named("quay.io/c:2", "c");
  c.labels = {{"env", "prod"}};
  for (const Image& i : {a, b, c}) ASSERT_TRUE(images().Create(kNs, i).ok());

  EXPECT_THAT(Names(images().List(kNs, {})), ElementsAre(a.name, b.name, c.name));
  EXPECT_THAT(Names(images().List(kNs, {"name==quay.io/c:2"})), ElementsAre(c.name));
  EXPECT_THAT(Names(images().List(kNs, {"name~=library"})), ElementsAre(a.name, b.name));
  EXPECT_THAT(Names(images().List(kNs, {absl::StrCat("target.digest==", b.target.digest)})),
              ElementsAre(b.name));
  EXPECT_THAT(Names(images().List(kNs, {absl::StrCat("target.mediatype==", kMediaTypeDockerManifest)})),
              ElementsAre(b.name));
  EXPECT_THAT(Names(images().List(kNs, {"labels.\"io.cri-containerd.image\"==managed"})),
              ElementsAre(a.name));
  EXPECT_THAT(Names(images().List(kNs, {"labels.env!=prod"})), ElementsAre(a.name, b.name));
  EXPECT_THAT(Names(images().List(kNs, {"annotations.\"org.opencontainers.image.ref.name\""})),
              ElementsAre(b.name));
  EXPECT_THAT(Names(images().List(kNs, {"labels.env==prod", "name~=\"/a:\""})),
              ElementsAre(a.name, c.name));
  EXPECT_THAT(Names(images().List(kNs, {"labels.env==prod,name~=\"/a:\""})), IsEmpty());
  EXPECT_TRUE(absl::IsInvalidArgument(images().List(kNs, {"name=="}).status()));
}

TEST_P(ImageStoreContract, WriteUnderAMissingLeaseIsNotFoundAndStoresNothing) {
  EXPECT_TRUE(absl::IsNotFound(images().Create(kNs, Named("leased"), "no-such-lease").status()));
  EXPECT_TRUE(absl::IsNotFound(images().Get(kNs, "leased").status()));
  ASSERT_TRUE(images().Create(kNs, Named("leased")).ok());
  EXPECT_TRUE(absl::IsNotFound(images().Update(kNs, Named("leased"), {}, "no-such-lease").status()));
}

TEST_P(ImageStoreContract, NamespacesAreSeparate) {
  ASSERT_TRUE(images().Create("one", Named("img")).ok());
  EXPECT_TRUE(absl::IsNotFound(images().Get("two", "img").status()));
  EXPECT_THAT(Names(images().List("two", {})), IsEmpty());
  EXPECT_TRUE(images().Create("two", Named("img")).ok());
}

TEST_P(ImageStoreContract, ResolvedRecordCarriesCriLabels) {
  TestImageSpec spec;
  spec.user = "1000:1000";
  absl::StatusOr<TestImage> ti = MakeTestImage(content(), kNs, spec);
  ASSERT_TRUE(ti.ok()) << ti.status();
  Image in;
  in.name = "docker.io/library/app:1";
  in.target = ti->manifest;
  in.target.platform.reset();
  absl::StatusOr<Image> created = images().Create(kNs, in);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->labels.at(kLabelImageId), ti->config.digest);
  EXPECT_EQ(created->labels.at(kLabelChainId), ChainId(ti->diff_ids));
  EXPECT_EQ(created->labels.at(kLabelSpecUser), "1000:1000");
  int64_t size = ti->manifest.size + ti->config.size;
  for (const auto& l : ti->layers) size += l.size;
  EXPECT_EQ(created->labels.at(kLabelImageSize), absl::StrCat(size));
  EXPECT_EQ(images().Get(kNs, in.name)->labels, created->labels);
}

TEST_P(ImageStoreContract, ImageWithoutUserHasNoUserLabel) {
  absl::StatusOr<TestImage> ti = MakeTestImage(content(), kNs, TestImageSpec{});
  ASSERT_TRUE(ti.ok());
  Image in;
  in.name = "nouser";
  in.target = ti->manifest;
  in.target.platform.reset();
  absl::StatusOr<Image> created = images().Create(kNs, in);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->labels.count(kLabelSpecUser), 0u);
  EXPECT_EQ(created->labels.count(kLabelImageId), 1u);
}

TEST_P(ImageStoreContract, ClientImageIdLabelMustMatchTheContent) {
  absl::StatusOr<TestImage> ti = MakeTestImage(content(), kNs, TestImageSpec{});
  ASSERT_TRUE(ti.ok());
  Image in;
  in.name = "liar";
  in.target = ti->manifest;
  in.target.platform.reset();
  in.labels = {{kLabelImageId, Sha256::Of("not the config")}};
  absl::Status s = images().Create(kNs, in).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(images().Get(kNs, "liar").status()));
  in.labels = {{kLabelImageId, ti->config.digest}};
  EXPECT_TRUE(images().Create(kNs, in).ok());
}

}  // namespace
}  // namespace imaged::store
