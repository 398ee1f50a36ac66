// The cached ListImages answer: built once per index generation, shared by
// the calls that wait for it, and rebuilt after every kind of index write
// (each write path has a test that the next ListImages shows it).
#include "plugin/list_images_cache.h"

#include <grpcpp/create_channel.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/test_server.h"
#include "store/test_images.h"

namespace imaged::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
namespace cripb = ::runtime::v1;

std::string Bytes(const grpc::ByteBuffer& bb) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!bb.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Get() for tests: blocks until `done` ran.
std::string GetNow(ListImagesCache& cache) {
  absl::Notification done;
  std::string out;
  cache.Get([&](const absl::Status& s, const grpc::ByteBuffer& bb) {
    EXPECT_TRUE(s.ok()) << s;
    out = Bytes(bb);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

// An answer of one chunk holding `bytes` as one entry.
ListImagesCache::Answer Answer(absl::string_view bytes) {
  ListImagesCache::ChunkWriter writer;
  writer.Add(bytes);
  return ListImagesCache::Answer{writer.Finish(), false};
}

// An images entry whose Image has only `id`.
std::string EntryOf(absl::string_view id) {
  runtime::v1::ListImagesResponse one;
  one.add_images()->set_id(std::string(id));
  return one.SerializeAsString();
}

std::string Concat(const ListImagesCache::Chunks& chunks) {
  std::string out;
  for (const auto& chunk : chunks) {
    out.append(reinterpret_cast<const char*>(chunk->bytes.begin()), chunk->bytes.size());
  }
  return out;
}

TEST(ListImagesCacheTest, BuildsOncePerGeneration) {
  std::atomic<uint64_t> generation{1};
  std::atomic<int> builds{0};
  ListImagesCache cache([&] { return generation.load(); },
                        [&](const ListImagesCache::Previous*) -> absl::StatusOr<ListImagesCache::Answer> {
                          ++builds;
                          return Answer(absl::StrCat("gen", generation.load()));
                        });
  EXPECT_EQ(GetNow(cache), "gen1");
  EXPECT_EQ(GetNow(cache), "gen1");
  EXPECT_EQ(GetNow(cache), "gen1");
  EXPECT_EQ(builds, 1);
  EXPECT_EQ(cache.stats().hits, 2u);
  generation = 2;
  EXPECT_EQ(GetNow(cache), "gen2");
  EXPECT_EQ(builds, 2);
}

TEST(ListImagesCacheTest, OneRebuildServesEveryWaitingCall) {
  absl::Notification release;
  std::atomic<int> builds{0};
  ListImagesCache cache([] { return uint64_t{7}; },
                        [&](const ListImagesCache::Previous*) -> absl::StatusOr<ListImagesCache::Answer> {
                          ++builds;
                          release.WaitForNotification();
                          return Answer("answer");
                        });
  std::atomic<int> answered{0};
  // The first call starts the build and holds it; the others queue behind it.
  std::vector<std::thread> callers;
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([&] {
      EXPECT_EQ(GetNow(cache), "answer");
      ++answered;
    });
  }
  absl::SleepFor(absl::Milliseconds(100));
  release.Notify();
  for (auto& t : callers) t.join();
  EXPECT_EQ(answered, 8);
  EXPECT_LE(builds, 2);  // the first, and at most one for callers that came after it started
}

TEST(ListImagesCacheTest, AFailedBuildIsReportedAndNotCached) {
  std::atomic<bool> fail{true};
  ListImagesCache cache([] { return uint64_t{1}; },
                        [&](const ListImagesCache::Previous*) -> absl::StatusOr<ListImagesCache::Answer> {
                          if (fail) return absl::DataLossError("bad row");
                          return Answer("ok");
                        });
  absl::Notification done;
  cache.Get([&](const absl::Status& s, const grpc::ByteBuffer&) {
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    done.Notify();
  });
  done.WaitForNotification();
  fail = false;
  EXPECT_EQ(GetNow(cache), "ok");
}

TEST(ListImagesCacheTest, EntryImageIdReadsTheImagesFirstField) {
  runtime::v1::ListImagesResponse resp;
  resp.add_images()->set_id("sha256:abc");
  resp.mutable_images(0)->add_repo_tags("a:1");
  EXPECT_EQ(EntryImageId(resp.SerializeAsString()), "sha256:abc");
  EXPECT_EQ(EntryImageId(""), "");
  EXPECT_EQ(EntryImageId("\x0a\x05\x0a\x09" "ab"), "");  // runs past the end
}

std::string SliceBytes(const grpc::Slice& s) {
  return std::string(reinterpret_cast<const char*>(s.begin()), s.size());
}

TEST(ListImagesCacheTest, FindEntryAnswersFromTheAnswerOfItsGeneration) {
  std::atomic<uint64_t> generation{1};
  ListImagesCache cache([&] { return generation.load(); },
                        [&](const ListImagesCache::Previous*) -> absl::StatusOr<ListImagesCache::Answer> {
                          // Entries of about 80 bytes in chunks of 200: several chunks.
                          ListImagesCache::ChunkWriter writer(200);
                          for (int i = 0; i < 20; ++i) {
                            writer.Add(EntryOf(absl::StrFormat("sha256:%064d", 2 * i)));
                          }
                          return ListImagesCache::Answer{writer.Finish(), false};
                        });
  GetNow(cache);
  for (int i = 0; i < 20; ++i) {
    const std::string id = absl::StrFormat("sha256:%064d", 2 * i);
    std::optional<grpc::Slice> entry = cache.FindEntry(id, 1);
    ASSERT_TRUE(entry.has_value()) << id;
    EXPECT_EQ(SliceBytes(*entry), EntryOf(id));
    // The entry is an ImageStatusResponse of the image.
    runtime::v1::ImageStatusResponse status;
    ASSERT_TRUE(status.ParseFromString(SliceBytes(*entry)));
    EXPECT_EQ(status.image().id(), id);
    EXPECT_FALSE(cache.FindEntry(absl::StrFormat("sha256:%064d", 2 * i + 1), 1).has_value());
  }
  EXPECT_FALSE(cache.FindEntry("sha256:", 1).has_value());
  EXPECT_FALSE(cache.FindEntry(absl::StrFormat("sha256:%064d", 99), 1).has_value());  // past the last
  EXPECT_FALSE(cache.FindEntry("", 1).has_value());
  EXPECT_EQ(cache.stats().entries_found, 20u);
  // Another generation's answer answers nothing.
  EXPECT_FALSE(cache.FindEntry(absl::StrFormat("sha256:%064d", 0), 2).has_value());
}

TEST(ListImagesCacheTest, AStaleFindEntryAsksForARebuild) {
  std::atomic<uint64_t> generation{1};
  std::atomic<int> builds{0};
  ListImagesCache cache([&] { return generation.load(); },
                        [&](const ListImagesCache::Previous*) -> absl::StatusOr<ListImagesCache::Answer> {
                          ++builds;
                          return Answer(EntryOf(absl::StrCat("sha256:gen", generation.load())));
                        },
                        /*rebuild_spacing=*/absl::ZeroDuration());
  GetNow(cache);
  EXPECT_TRUE(cache.FindEntry("sha256:gen1", 1).has_value());
  generation = 2;
  // Stale: nothing found, and a rebuild starts without a ListImages call;
  // the stale calls after the first ask for no more than one more.
  EXPECT_FALSE(cache.FindEntry("sha256:gen2", 2).has_value());
  for (int i = 0; i < 10; ++i) cache.FindEntry("sha256:gen2", 2);
  for (int i = 0; i < 500 && !cache.FindEntry("sha256:gen2", 2).has_value(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(cache.FindEntry("sha256:gen2", 2).has_value());
  // One rebuild; a call queued while it ran found its answer current.
  EXPECT_EQ(builds, 2);
}

TEST(ListImagesCacheTest, AStaleFindEntryRightAfterABuildAsksForNone) {
  std::atomic<uint64_t> generation{1};
  std::atomic<int> builds{0};
  ListImagesCache cache([&] { return generation.load(); },
                        [&](const ListImagesCache::Previous*) -> absl::StatusOr<ListImagesCache::Answer> {
                          ++builds;
                          return Answer(EntryOf("sha256:a"));
                        },
                        /*rebuild_spacing=*/absl::Hours(1));
  GetNow(cache);
  generation = 2;
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(cache.FindEntry("sha256:a", 2).has_value());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(builds, 1);
  GetNow(cache);  // ListImages itself is never held back
  EXPECT_EQ(builds, 2);
  EXPECT_TRUE(cache.FindEntry("sha256:a", 2).has_value());
}

// Over a real server: each write path, then ListImages.
class CachedListImagesTest : public ::testing::Test {
 protected:
  CachedListImagesTest()
      : content_(fixture_.channel()),
        images_(fixture_.channel()),
        cri_(cripb::ImageService::NewStub(fixture_.channel())) {}

  store::TestImage Make(const std::string& seed, bool write = true) {
    store::TestImageSpec spec;
    spec.seed = seed;
    auto ti = store::MakeTestImage(content_, "k8s.io", spec, write);
    EXPECT_TRUE(ti.ok()) << ti.status();
    return *ti;
  }
  store::Image Record(const std::string& name, const store::TestImage& ti) {
    store::Image image;
    image.name = name;
    image.target = ti.manifest;
    image.target.platform.reset();
    return image;
  }
  void Name(const std::string& name, const store::TestImage& ti) {
    auto created = images_.Create("k8s.io", Record(name, ti));
    ASSERT_TRUE(created.ok()) << created.status();
  }
  // Repo tags of every listed image, in list order.
  std::vector<std::string> Tags(const std::string& filter = "") {
    cripb::ListImagesRequest req;
    if (!filter.empty()) req.mutable_filter()->mutable_image()->set_image(filter);
    cripb::ListImagesResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = cri_->ListImages(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> out;
    for (const cripb::Image& image : resp.images()) {
      for (const std::string& t : image.repo_tags()) out.push_back(t);
      if (image.repo_tags().empty()) out.push_back(image.id());
    }
    return out;
  }
  bool Pinned(const std::string& tag) {
    cripb::ListImagesResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(cri_->ListImages(&ctx, cripb::ListImagesRequest(), &resp).ok());
    for (const cripb::Image& image : resp.images()) {
      for (const std::string& t : image.repo_tags()) {
        if (t == tag) return image.pinned();
      }
    }
    ADD_FAILURE() << tag << " not listed";
    return false;
  }
  ListImagesCache::Stats Stats() { return fixture_.server()->cri_service().ListCacheStats(); }

  ServerFixture fixture_;
  RemoteContentStore content_;
  RemoteImageStore images_;
  std::unique_ptr<cripb::ImageService::Stub> cri_;
};

TEST_F(CachedListImagesTest, AnUnchangedListIsServedFromTheCache) {
  Name("docker.io/library/a:1", Make("a"));
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  const ListImagesCache::Stats first = Stats();
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  EXPECT_EQ(Stats().builds, first.builds);
  EXPECT_EQ(Stats().hits, first.hits + 2);
  EXPECT_EQ(Stats().images, 1);
}

TEST_F(CachedListImagesTest, AFilteredListIsNotCachedAndNotStale) {
  store::TestImage a = Make("a");
  Name("docker.io/library/a:1", a);
  EXPECT_THAT(Tags("docker.io/library/a:1"), ElementsAre("docker.io/library/a:1"));
  EXPECT_THAT(Tags("docker.io/library/b:1"), IsEmpty());
  Name("docker.io/library/b:1", Make("b"));
  EXPECT_THAT(Tags("docker.io/library/b:1"), ElementsAre("docker.io/library/b:1"));
}

TEST_F(CachedListImagesTest, ImagesApiCreateIsSeenByTheNextList) {
  Name("docker.io/library/a:1", Make("a"));
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  store::TestImage b = Make("b");
  Name("docker.io/library/b:1", b);
  EXPECT_THAT(Tags(), testing::UnorderedElementsAre("docker.io/library/a:1", "docker.io/library/b:1"));
}

TEST_F(CachedListImagesTest, ImagesApiUpdateIsSeenByTheNextList) {
  Name("docker.io/library/a:1", Make("a"));
  EXPECT_FALSE(Pinned("docker.io/library/a:1"));
  store::Image pin;
  pin.name = "docker.io/library/a:1";
  pin.labels = {{store::kLabelPinned, store::kPinnedValue}};
  ASSERT_TRUE(images_.Update("k8s.io", pin, {"labels.io.cri-containerd.pinned"}).ok());
  EXPECT_TRUE(Pinned("docker.io/library/a:1"));
}

TEST_F(CachedListImagesTest, ImagesApiDeleteIsSeenByTheNextList) {
  Name("docker.io/library/a:1", Make("a"));
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  ASSERT_TRUE(images_.Delete("k8s.io", "docker.io/library/a:1").ok());
  EXPECT_THAT(Tags(), IsEmpty());
}

TEST_F(CachedListImagesTest, CriRemoveImageIsSeenByTheNextList) {
  Name("docker.io/library/a:1", Make("a"));
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  cripb::RemoveImageRequest req;
  req.mutable_image()->set_image("docker.io/library/a:1");
  cripb::RemoveImageResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cri_->RemoveImage(&ctx, req, &resp).ok());
  EXPECT_THAT(Tags(), IsEmpty());
}

TEST_F(CachedListImagesTest, ABlobThatResolvesAWaitingRecordIsSeenByTheNextList) {
  store::TestImage a = Make("a", /*write=*/false);
  for (const auto& [digest, bytes] : a.blobs) {
    if (digest != a.config.digest) {
      ASSERT_TRUE(store::WriteBlob(content_, "k8s.io", bytes).ok());
    }
  }
  Name("docker.io/library/a:1", a);
  EXPECT_THAT(Tags(), IsEmpty());  // waiting for its config
  for (const auto& [digest, bytes] : a.blobs) {
    if (digest == a.config.digest) {
      ASSERT_TRUE(store::WriteBlob(content_, "k8s.io", bytes).ok());
    }
  }
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
}

TEST_F(CachedListImagesTest, ACommitAsPullsAndImportsWriteIsSeenByTheNextList) {
  EXPECT_THAT(Tags(), IsEmpty());
  store::ImageCommit commit;
  commit.images.push_back(Record("docker.io/library/a:1", Make("a")));
  ASSERT_TRUE(fixture_.server()->image_store().Commit("k8s.io", commit, "").ok());
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
}

// Several writes between two lists: the second answer is the first one
// patched, and equals what a scan (StreamImages) says.
TEST_F(CachedListImagesTest, APatchedAnswerEqualsAFreshScan) {
  std::vector<store::TestImage> made;
  for (int i = 0; i < 6; ++i) {
    made.push_back(Make(absl::StrCat("p", i)));
    Name(absl::StrCat("docker.io/library/p", i, ":1"), made.back());
  }
  EXPECT_EQ(Tags().size(), 6u);
  const uint64_t patches = Stats().patches;
  ASSERT_TRUE(images_.Delete("k8s.io", "docker.io/library/p0:1").ok());  // an image goes
  Name("docker.io/library/p1:2", made[1]);                               // a name comes
  Name("docker.io/library/q:1", Make("q"));                               // an image comes
  store::Image pin;
  pin.name = "docker.io/library/p5:1";
  pin.labels = {{store::kLabelPinned, store::kPinnedValue}};
  ASSERT_TRUE(images_.Update("k8s.io", pin, {"labels.io.cri-containerd.pinned"}).ok());

  cripb::ListImagesResponse listed;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cri_->ListImages(&ctx, cripb::ListImagesRequest(), &listed).ok());
  }
  EXPECT_EQ(Stats().patches, patches + 1);
  cripb::ListImagesResponse scanned;
  {
    grpc::ClientContext ctx;
    auto reader = cri_->StreamImages(&ctx, cripb::StreamImagesRequest());
    cripb::StreamImagesResponse part;
    while (reader->Read(&part)) {
      for (const cripb::Image& image : part.images()) *scanned.add_images() = image;
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  EXPECT_EQ(listed.SerializeAsString(), scanned.SerializeAsString());
  EXPECT_EQ(listed.images_size(), 6);
}

// ImageStatus answered from the list answer (ListImagesCache::FindEntry)
// says what the index says, by every form of reference, after every kind of
// write; and a write is never answered from the answer before it.
TEST_F(CachedListImagesTest, ImageStatusFromTheListAnswerEqualsTheIndexAfterEveryWrite) {
  std::vector<store::TestImage> made;
  for (int i = 0; i < 3; ++i) made.push_back(Make(absl::StrCat("s", i)));
  auto check = [&](const std::string& after) {
    SCOPED_TRACE(after);
    // Every image's ID (with and without "sha256:", truncated), tags and
    // repo digests, and references to nothing.
    std::vector<std::string> refs = {"docker.io/library/none:1", "none", "sha256:" + std::string(64, 'f')};
    for (const store::TestImage& ti : made) refs.push_back(ti.config.digest);
    cripb::ListImagesResponse listed;
    {
      grpc::ClientContext ctx;
      ASSERT_TRUE(cri_->ListImages(&ctx, cripb::ListImagesRequest(), &listed).ok());
    }
    for (const cripb::Image& image : listed.images()) {
      refs.push_back(image.id().substr(7));
      refs.push_back(image.id().substr(7, 12));
      for (const std::string& t : image.repo_tags()) refs.push_back(t);
      for (const std::string& d : image.repo_digests()) refs.push_back(d);
    }
    const uint64_t found_before = Stats().entries_found;
    int present = 0;
    for (const std::string& ref : refs) {
      cripb::ImageStatusRequest req;
      req.mutable_image()->set_image(ref);
      cripb::ImageStatusResponse wire;
      grpc::ClientContext ctx;
      ASSERT_TRUE(cri_->ImageStatus(&ctx, req, &wire).ok()) << ref;
      cripb::ImageStatusResponse index;
      bool found = false;
      ASSERT_TRUE(fixture_.server()->cri_service().StatusFromIndex(req, &index, &found).ok()) << ref;
      EXPECT_EQ(wire.SerializeAsString(), index.SerializeAsString()) << ref;
      present += found;
    }
    // Every present image was answered from the list answer (the status
    // cache had nothing: each write retired it).
    EXPECT_EQ(Stats().entries_found - found_before, static_cast<uint64_t>(present));
  };
  check("nothing");
  Name("docker.io/library/s0:1", made[0]);
  check("Images.Create");
  Name("docker.io/library/s0:2", made[0]);
  Name("docker.io/library/s1:1", made[1]);
  check("a second name, a second image");
  store::Image pin;
  pin.name = "docker.io/library/s1:1";
  pin.labels = {{store::kLabelPinned, store::kPinnedValue}};
  ASSERT_TRUE(images_.Update("k8s.io", pin, {"labels.io.cri-containerd.pinned"}).ok());
  check("Images.Update");
  ASSERT_TRUE(images_.Delete("k8s.io", "docker.io/library/s0:1").ok());
  check("Images.Delete");
  {
    cripb::RemoveImageRequest req;
    req.mutable_image()->set_image("docker.io/library/s1:1");
    cripb::RemoveImageResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(cri_->RemoveImage(&ctx, req, &resp).ok());
  }
  check("CRI RemoveImage");
  store::ImageCommit commit;
  commit.images.push_back(Record("docker.io/library/s2:1", made[2]));
  commit.images.push_back(Record("docker.io/library/s0:1", made[2]));  // the name moves
  ASSERT_TRUE(fixture_.server()->image_store().Commit("k8s.io", commit, "").ok());
  check("a commit that moves a name");
}

// Without a ListImages call in between, ImageStatus after a write is the
// index's answer, and then (the answer rebuilt in the background) the list
// answer's again.
TEST_F(CachedListImagesTest, ImageStatusAfterAWriteIsNeverFromTheAnswerBeforeIt) {
  store::TestImage a = Make("a");
  store::TestImage b = Make("b");
  Name("docker.io/library/a:1", a);
  Name("docker.io/library/b:1", b);
  EXPECT_THAT(Tags(), testing::UnorderedElementsAre("docker.io/library/a:1", "docker.io/library/b:1"));
  // "ID tag tag...", or "" when not present.
  auto status = [&](const std::string& ref) {
    cripb::ImageStatusRequest req;
    req.mutable_image()->set_image(ref);
    cripb::ImageStatusResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(cri_->ImageStatus(&ctx, req, &resp).ok());
    std::vector<std::string> tags(resp.image().repo_tags().begin(), resp.image().repo_tags().end());
    std::sort(tags.begin(), tags.end());
    std::string out = resp.image().id();
    for (const std::string& t : tags) absl::StrAppend(&out, " ", t);
    return out;
  };
  const std::string b_before = b.config.digest + " docker.io/library/b:1";
  EXPECT_EQ(status("docker.io/library/x:1"), "");
  const uint64_t found = Stats().entries_found;
  EXPECT_EQ(status(b.config.digest), b_before);
  EXPECT_EQ(Stats().entries_found, found + 1);
  // Two names move to b. The answer from before the write still holds b's
  // entry with one tag: it must never be sent again.
  Name("docker.io/library/x:1", b);
  store::Image moved = Record("docker.io/library/a:1", b);
  ASSERT_TRUE(images_.Update("k8s.io", moved, {}).ok());
  const std::string b_after =
      b.config.digest + " docker.io/library/a:1 docker.io/library/b:1 docker.io/library/x:1";
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(status(b.config.digest), b_after);
    ASSERT_EQ(status("docker.io/library/a:1"), b_after);
    ASSERT_EQ(status("docker.io/library/x:1"), b_after);
    ASSERT_EQ(status(a.config.digest), "");
  }
  // The rebuild the stale calls asked for (a second after the last one):
  // the list answer answers again (requests not asked before, as a
  // repeated one is answered from the status cache).
  const std::string hex = b.config.digest.substr(7);
  for (size_t n = 12; n <= hex.size() && Stats().entries_found == found + 1; ++n) {
    EXPECT_EQ(status(hex.substr(0, n)), b_after);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GT(Stats().entries_found, found + 1);
}

TEST_F(CachedListImagesTest, AnIndexRepairIsSeenByTheNextList) {
  Name("docker.io/library/a:1", Make("a"));
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  // A repair that finds nothing to do writes nothing and keeps the answer.
  const uint64_t builds = Stats().builds;
  ASSERT_TRUE(fixture_.server()->image_store().Check(/*repair=*/true).ok());
  EXPECT_THAT(Tags(), ElementsAre("docker.io/library/a:1"));
  EXPECT_EQ(Stats().builds, builds);
}


// Patching with small chunks: the result is the entries in ID order with the
// updates applied, and the chunks no update touched are the same objects.
TEST(ListImagesCacheTest, APatchRebuildsOnlyTheChunksItTouches) {
  constexpr size_t kSmall = 32;  // two or three entries a chunk
  ListImagesCache::ChunkWriter writer(kSmall);
  std::map<std::string, std::string> want;
  for (int i = 0; i < 40; i += 2) {
    std::string id = absl::StrFormat("sha256:%03d", i);
    want[id] = EntryOf(id);
    writer.Add(want[id]);
  }
  const ListImagesCache::Chunks before = writer.Finish();
  ASSERT_GT(before.size(), 5u);
  // Changed: one replaced, one removed, one added in the middle, one before
  // all, one after all.
  std::vector<ListImagesCache::Update> updates = {
      {"sha256:", EntryOf("sha256:")},
      {"sha256:005", EntryOf("sha256:005")},
      {"sha256:010", ""},
      {"sha256:012", EntryOf("sha256:012") + ""},
      {"sha256:999", EntryOf("sha256:999")},
  };
  for (const auto& u : updates) {
    if (u.entry.empty()) {
      want.erase(u.id);
    } else {
      want[u.id] = u.entry;
    }
  }
  const ListImagesCache::Chunks after = ListImagesCache::Patch(before, updates, kSmall);
  std::string expected;
  for (const auto& [id, entry] : want) expected += entry;
  EXPECT_EQ(Concat(after), expected);
  EXPECT_EQ(ListImagesCache::CountImages(after), static_cast<int64_t>(want.size()));
  int shared = 0;
  for (const auto& chunk : after) {
    shared += std::count(before.begin(), before.end(), chunk) > 0;
  }
  EXPECT_GE(shared, static_cast<int>(before.size()) - 4);
  // Patching an empty answer adds the entries; removing every one empties it.
  EXPECT_EQ(Concat(ListImagesCache::Patch({}, updates, kSmall)),
            EntryOf("sha256:") + EntryOf("sha256:005") + EntryOf("sha256:012") +
                EntryOf("sha256:999"));
  std::vector<ListImagesCache::Update> all_gone;
  for (const auto& [id, entry] : want) all_gone.push_back({id, ""});
  EXPECT_TRUE(ListImagesCache::Patch(after, all_gone, kSmall).empty());
}

// Many patches of one small region do not leave the answer in slivers.
TEST(ListImagesCacheTest, RepeatedPatchesKeepChunksFull) {
  constexpr size_t kSmall = 64;
  ListImagesCache::ChunkWriter writer(kSmall);
  for (int i = 0; i < 200; ++i) writer.Add(EntryOf(absl::StrFormat("sha256:%03d", i)));
  ListImagesCache::Chunks chunks = writer.Finish();
  const std::string whole = Concat(chunks);
  for (int round = 0; round < 300; ++round) {
    std::string id = absl::StrFormat("sha256:%03d", (round * 37) % 200);
    chunks = ListImagesCache::Patch(chunks, {{id, EntryOf(id)}}, kSmall);
  }
  EXPECT_EQ(Concat(chunks), whole);
  EXPECT_LE(chunks.size(), 2 * (whole.size() / kSmall) + 8);
}

}  // namespace
}  // namespace imaged::plugin
