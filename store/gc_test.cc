// The collector on real stores in a temp dir: each reference rule and each
// ownership rule has a test named after it.
#include "store/gc.h"

#include <sys/stat.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/digest.h"
#include "store/files.h"
#include "store/local_stores.h"
#include "store/rocksdb_lease_store.h"
#include "store/rocksdb_image_store.h"
#include "store/test_images.h"
#include "store/test_dirs.h"

namespace imaged::store {
namespace {

constexpr absl::string_view kNs = "k8s.io";

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class GcTest : public ::testing::Test {
 protected:
  GcTest() : root_(MakeTempDir("imaged-gc")) { Open(); }
  ~GcTest() override {
    Close();
    RemoveAll(root_).IgnoreError();
  }
  // The stores as the server opens them (LocalStores: the removal guard
  // re-indexes names whose documents a sweep removes).
  void Open(GcOptions options = {}) {
    LocalStoresOptions store_options;
    store_options.clock = &clock_;
    stores_ = *LocalStores::Open(root_, store_options);
    db_ = stores_->db();
    content_ = stores_->content();
    images_ = stores_->images();
    leases_ = stores_->leases();
    ASSERT_TRUE(content_->Recover().ok());
    ASSERT_TRUE(content_->RemoveUnheldBlobs().ok());  // as the server does once serving
    gc_ = std::make_unique<Collector>(db_, content_, leases_, &clock_, options);
  }
  void Close() {
    gc_.reset();
    stores_.reset();
  }

  // A blob of `ns` with `labels`; returns its digest.
  std::string Blob(absl::string_view data, Labels labels = {}, absl::string_view ns = kNs,
                   absl::string_view lease = "") {
    std::string digest = Sha256::Of(data);
    auto w = content_->Writer(ns, absl::StrCat("t-", digest), 0, digest, lease);
    if (w.ok()) {
      EXPECT_TRUE((*w)->Write(data).ok());
      EXPECT_TRUE((*w)->Commit(0, digest, labels).ok());
    } else {
      EXPECT_TRUE(absl::IsAlreadyExists(w.status())) << w.status();
    }
    return digest;
  }
  // An image `name` whose manifest names a config and `layers`, linked by
  // gc.ref labels as a pull or an import links them.
  std::string Image(absl::string_view name, absl::string_view config,
                    const std::vector<std::string>& layers, absl::string_view ns = kNs) {
    std::string config_digest = Blob(config, {}, ns);
    Labels labels = {{"containerd.io/gc.ref.content.config", config_digest}};
    std::string manifest = absl::StrCat(R"({"schemaVersion":2,"config":{"digest":")", config_digest,
                                        R"("},"layers":[)");
    for (size_t i = 0; i < layers.size(); ++i) {
      labels[absl::StrCat("containerd.io/gc.ref.content.l.", i)] = layers[i];
      absl::StrAppend(&manifest, i ? "," : "", R"({"digest":")", layers[i], R"("})");
    }
    absl::StrAppend(&manifest, "]}");
    std::string manifest_digest = Blob(manifest, labels, ns);
    store::Image image;
    image.name = std::string(name);
    image.target.media_type = std::string(kMediaTypeOciManifest);
    image.target.digest = manifest_digest;
    image.target.size = static_cast<int64_t>(manifest.size());
    EXPECT_TRUE(images_->Create(ns, image).ok());
    return manifest_digest;
  }
  bool Has(absl::string_view digest, absl::string_view ns = kNs) {
    return content_->Info(ns, digest).ok();
  }
  // Whether the bytes of `digest` are stored: its file, or its [blob_data]
  // row (a small blob).
  bool OnDisk(absl::string_view digest) {
    std::string ignored;
    return FileExists(content_->BlobPath(digest)) ||
           db_->Get(Cf::kBlobData, BlobDataKey(digest), &ignored).ok();
  }
  GcReport Collect(std::vector<std::string> namespaces = {}) {
    absl::StatusOr<GcReport> r = gc_->Collect(namespaces);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : GcReport{};
  }

  std::string root_;
  FakeClock clock_;
  std::unique_ptr<LocalStores> stores_;
  MetadataDb* db_ = nullptr;
  RocksDbContentStore* content_ = nullptr;
  RocksDbImageStore* images_ = nullptr;
  RocksDbLeaseStore* leases_ = nullptr;
  std::unique_ptr<Collector> gc_;
};

TEST_F(GcTest, RemovedImageLosesItsOwnBlobsButASharedLayerStays) {
  std::string shared = Blob("shared layer"), own_a = Blob("layer a"), own_b = Blob("layer b");
  std::string ma = Image("a:1", "config a", {shared, own_a});
  std::string mb = Image("b:1", "config b", {shared, own_b});
  GcReport nothing = Collect();
  EXPECT_EQ(nothing.blobs_removed, 0);
  EXPECT_EQ(nothing.blobs_kept, 7);

  ASSERT_TRUE(images_->Delete(kNs, "a:1").ok());
  GcReport r = Collect();
  EXPECT_EQ(r.blobs_removed, 3);  // manifest, config, own layer
  EXPECT_EQ(r.files_removed, 3);
  EXPECT_TRUE(r.complete);
  EXPECT_FALSE(Has(ma));
  EXPECT_FALSE(Has(own_a));
  EXPECT_FALSE(OnDisk(own_a));
  EXPECT_TRUE(Has(shared));
  EXPECT_TRUE(OnDisk(shared));
  EXPECT_TRUE(Has(mb));
  EXPECT_TRUE(Has(own_b));
  EXPECT_EQ(content_->Usage()->files + content_->Usage()->inline_blobs, 4);
}

TEST_F(GcTest, UnlabelledBlobIsGarbageAndGcRootIsNot) {
  std::string loose = Blob("loose");
  std::string rooted = Blob("rooted", {{kGcRootLabel, "2026-01-01T00:00:00Z"}});
  Collect();
  EXPECT_FALSE(Has(loose));
  EXPECT_TRUE(Has(rooted));
}

TEST_F(GcTest, ALeaseHoldsWhatWasWrittenUnderItUntilItIsDeleted) {
  ASSERT_TRUE(leases_->Create(kNs, Lease{"import-1", {}, {}}).ok());
  std::string layer = Blob("slow import layer", {}, kNs, "import-1");
  Collect();
  EXPECT_TRUE(Has(layer));
  ASSERT_TRUE(leases_->Delete(kNs, "import-1").ok());
  Collect();
  EXPECT_FALSE(Has(layer));
}

TEST_F(GcTest, AnExpiredLeaseIsCollectedWithWhatItHeld) {
  Lease lease{"pull-1", {}, {{kLeaseExpireLabel, absl::FormatTime(absl::RFC3339_full,
                                                                   clock_.Now() + absl::Hours(1),
                                                                   absl::UTCTimeZone())}}};
  ASSERT_TRUE(leases_->Create(kNs, lease).ok());
  std::string blob = Blob("held for an hour", {}, kNs, "pull-1");
  EXPECT_EQ(Collect().leases_expired, 0);
  EXPECT_TRUE(Has(blob));
  clock_.Advance(absl::Hours(2));
  GcReport r = Collect();
  EXPECT_EQ(r.leases_expired, 1);
  EXPECT_FALSE(Has(blob));
  EXPECT_TRUE(absl::IsNotFound(leases_->Get(kNs, "pull-1").status()));
}

TEST_F(GcTest, ALeasedImageRecordHoldsItsTarget) {
  ASSERT_TRUE(leases_->Create(kNs, Lease{"l", {}, {}}).ok());
  std::string manifest = Image("kept:1", "config", {Blob("layer")});
  ASSERT_TRUE(leases_->AddResource(kNs, "l", {manifest, "content"}).ok());
  ASSERT_TRUE(images_->Delete(kNs, "kept:1").ok());
  Collect();
  EXPECT_TRUE(Has(manifest));
  EXPECT_TRUE(Has(Sha256::Of("layer")));  // through the manifest's labels
}

TEST_F(GcTest, ABlobAnotherNamespaceHoldsKeepsItsFile) {
  std::string blob = Blob("in both");
  Blob("in both", {}, "other");
  Image("other:1", "cfg", {blob}, "other");
  Collect({std::string(kNs)});
  EXPECT_FALSE(Has(blob));
  EXPECT_TRUE(Has(blob, "other"));
  EXPECT_TRUE(OnDisk(blob));
}

TEST_F(GcTest, TheContentProxyNamespaceIsNeverCollected) {
  std::string proxied = Blob("containerd's own", {}, "");
  Collect();
  EXPECT_TRUE(Has(proxied, ""));
  GcReport named = Collect({""});
  EXPECT_EQ(named.namespaces, 0);
  EXPECT_TRUE(Has(proxied, ""));
  EXPECT_TRUE(OnDisk(proxied));
}

TEST_F(GcTest, ThePassIsBoundedAndTheNextOneGoesOn) {
  Close();
  GcOptions small;
  small.max_removals_per_pass = 2;
  Open(small);
  for (int i = 0; i < 5; ++i) Blob(absl::StrCat("garbage ", i));
  GcReport first = Collect();
  EXPECT_EQ(first.blobs_removed, 2);
  EXPECT_FALSE(first.complete);
  EXPECT_EQ(Collect().blobs_removed, 2);
  GcReport last = Collect();
  EXPECT_EQ(last.blobs_removed, 1);
  EXPECT_TRUE(last.complete);
}

TEST_F(GcTest, UsageShowsWhatAPassWouldFree) {
  std::string kept = Image("k:1", "cfg", {Blob("kept layer")});
  std::string loose = Blob("loose bytes");
  Blob("shared loose", {}, kNs);
  Blob("shared loose", {}, "other");
  Blob("proxy", {}, "");
  absl::StatusOr<std::vector<NamespaceUsage>> usage = gc_->Usage();
  ASSERT_TRUE(usage.ok()) << usage.status();
  ASSERT_EQ(usage->size(), 3u);
  EXPECT_EQ((*usage)[0].ns, "");
  EXPECT_EQ((*usage)[0].garbage_blobs, 0);
  const NamespaceUsage& k8s = (*usage)[1].ns == kNs ? (*usage)[1] : (*usage)[2];
  EXPECT_EQ(k8s.blobs, 5);
  EXPECT_EQ(k8s.garbage_blobs, 2);
  EXPECT_EQ(k8s.reclaimable_bytes, static_cast<int64_t>(std::string("loose bytes").size()));
  EXPECT_TRUE(Has(loose));  // nothing removed
}

TEST_F(GcTest, ACrashBetweenMetadataAndFilesLeavesOnlyUnheldFilesWhichRecoverRemoves) {
  // Over the inline limit: a file (a small blob's row goes in the sweep's
  // own write).
  std::string blob = Blob(std::string(RocksDbContentStoreOptions{}.inline_max_bytes + 1, 'x'));
  // What a sweep's metadata write does, without the unlink that would follow.
  rocksdb::WriteBatch batch;
  batch.Delete(db_->cf(Cf::kContent), ContentKey(kNs, blob));
  batch.Delete(db_->cf(Cf::kBlobOwners), BlobOwnerKey(blob, kNs));
  ASSERT_TRUE(db_->Write(&batch).ok());
  ASSERT_TRUE(OnDisk(blob));
  Close();
  Open();  // Recover and RemoveUnheldBlobs
  EXPECT_FALSE(OnDisk(blob));
}

// Marking holds no lock (issue 13: writes waited 17-20 s behind a
// collection): writes made while a namespace is marked go through at once,
// and what they reference then is spared by the sweep, with everything its
// labels reach; garbage nobody touched still goes.
TEST_F(GcTest, WritesDuringMarkingGoThroughAndWhatTheyReferenceIsSpared) {
  std::string for_image = Blob("unreferenced, then an image's target");
  std::string for_label = Blob("unreferenced, then a gc.ref target");
  std::string for_lease = Blob("unreferenced, then a lease resource");
  std::string reached = Blob("reached through the new image's labels");
  std::string garbage = Blob("garbage all along");
  std::string live = Image("live:1", "live config", {});
  ASSERT_TRUE(leases_->Create(kNs, Lease{"late", {}, {}}).ok());
  Close();
  GcOptions options;
  int hooked = 0;
  options.after_mark = [&](absl::string_view ns) {
    if (hooked++ > 0) return;  // the first pass only
    // Each of these takes gc_lock shared: with the lock held by the pass they
    // would never return.
    std::string manifest = Blob("a manifest written meanwhile",
                                {{"containerd.io/gc.ref.content.l.0", reached}});
    store::Image image;
    image.name = "meanwhile:1";
    image.target = Descriptor{std::string(kMediaTypeOciManifest), manifest, 28};
    absl::StatusOr<store::Image> created = images_->Create(ns, image);
    ASSERT_TRUE(created.ok()) << created.status();
    store::Image direct;
    direct.name = "direct:1";
    direct.target = Descriptor{std::string(kMediaTypeOciManifest), for_image, 37};
    created = images_->Create(ns, direct);
    ASSERT_TRUE(created.ok()) << created.status();
    ContentInfo info;
    info.digest = live;
    info.labels = {{"containerd.io/gc.ref.content.extra", for_label}};
    ASSERT_TRUE(content_->Update(ns, info, {"labels.containerd.io/gc.ref.content.extra"}).ok());
    ASSERT_TRUE(leases_->AddResource(ns, "late", {for_lease, "content"}).ok());
  };
  Open(options);
  GcReport r = Collect({std::string(kNs)});
  ASSERT_EQ(hooked, 1);
  EXPECT_TRUE(Has(for_image));
  EXPECT_TRUE(Has(for_label));
  EXPECT_TRUE(Has(for_lease));
  EXPECT_TRUE(Has(reached));
  EXPECT_FALSE(Has(garbage));
  EXPECT_EQ(r.blobs_removed, 1);
  // The next pass sees the same references in its own snapshot.
  EXPECT_EQ(Collect({std::string(kNs)}).blobs_removed, 0);
}

// The sweep writes sweep_chunk blobs at a time and lets the lock go
// between chunks: a write made there goes through (with the lock held it
// would never return), and a candidate it references is spared.
TEST_F(GcTest, TheSweepWritesInChunksAndWritesBetweenThemAreSpared) {
  std::vector<std::string> garbage;
  for (int i = 0; i < 6; ++i) garbage.push_back(Blob(absl::StrCat("garbage ", i)));
  Close();
  GcOptions options;
  options.sweep_chunk = 2;
  std::string taken;  // the candidate an image took between chunks
  int between = 0;
  options.between_chunks = [&](absl::string_view ns) {
    if (between++ > 0) return;
    int left = 0;
    for (const std::string& d : garbage) {
      if (!Has(d)) continue;
      ++left;
      if (taken.empty()) taken = d;
    }
    EXPECT_EQ(left, 4);  // one chunk written
    store::Image image;
    image.name = "between:1";
    image.target = Descriptor{std::string(kMediaTypeOciManifest), taken, 9};
    absl::StatusOr<store::Image> created = images_->Create(ns, image);
    EXPECT_TRUE(created.ok()) << created.status();
  };
  Open(options);
  GcReport r = Collect({std::string(kNs)});
  EXPECT_EQ(between, 2);  // 2 removed, 1 spared, 2 removed, 1 removed
  EXPECT_EQ(r.blobs_removed, 5);
  EXPECT_EQ(r.blobs_kept, 1);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.namespaces, 1);
  ASSERT_FALSE(taken.empty());
  for (const std::string& d : garbage) EXPECT_EQ(Has(d), d == taken) << d;
}

// A pass stops between chunks when its caller gives up (or imaged shuts
// down): what the written chunks removed is gone, the rest is left whole for
// the next pass, as after a crash between two chunks.
TEST_F(GcTest, APassStoppedBetweenChunksLeavesTheRestForTheNext) {
  std::vector<std::string> garbage;
  for (int i = 0; i < 5; ++i) garbage.push_back(Blob(absl::StrCat("garbage ", i)));
  std::string kept = Image("kept:1", "kept config", {Blob("kept layer")});
  Close();
  GcOptions options;
  options.sweep_chunk = 2;
  bool stop = false;
  options.between_chunks = [&](absl::string_view) { stop = true; };
  Open(options);
  absl::StatusOr<GcReport> r = gc_->Collect({std::string(kNs)}, [&]() -> absl::Status {
    return stop ? absl::CancelledError("the caller went away") : absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
  int left = 0;
  for (const std::string& d : garbage) left += Has(d) ? 1 : 0;
  EXPECT_EQ(left, 3);  // one chunk written
  for (const std::string& d : garbage) EXPECT_EQ(Has(d), OnDisk(d)) << d;
  EXPECT_TRUE(Has(kept));
  stop = false;
  GcReport next = Collect({std::string(kNs)});
  EXPECT_EQ(next.blobs_removed, 3);
  EXPECT_TRUE(next.complete);
  for (const std::string& d : garbage) EXPECT_FALSE(Has(d) || OnDisk(d)) << d;
  EXPECT_TRUE(Has(kept));
}

// Removing documents re-indexes the names that read them in the same write
// (RocksDbImageStore::RemoveDocuments). A sweep of many such documents does
// that chunk by chunk (the whole sweep in one write once took 300-400 MiB):
// every chunk leaves the index consistent with the records.
TEST_F(GcTest, ASweepOfDocumentsNamesReadReindexesThemChunkByChunk) {
  Close();
  GcOptions options;
  options.sweep_chunk = 2;
  int between = 0;
  options.between_chunks = [&](absl::string_view) {
    ++between;
    absl::StatusOr<RocksDbImageStore::CheckReport> check = images_->Check(false);
    ASSERT_TRUE(check.ok()) << check.status();
    EXPECT_THAT(check->problems, ::testing::IsEmpty());
  };
  Open(options);
  // Five images whose manifests carry no gc.ref labels (as roots written
  // before containerd labelled them): their configs are garbage, and each
  // is read by two names.
  for (int i = 0; i < 5; ++i) {
    std::string config = Blob(absl::StrCat(R"({"architecture":"amd64","os":"linux","n":)", i, "}"));
    std::string manifest =
        absl::StrCat(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)",
                     R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")",
                     config, R"(","size":1},"layers":[]})");
    std::string digest = Blob(manifest);
    for (const char* tag : {"a", "b"}) {
      store::Image image;
      image.name = absl::StrCat("img", i, ":", tag);
      image.target = Descriptor{std::string(kMediaTypeOciManifest), digest,
                                static_cast<int64_t>(manifest.size())};
      ASSERT_TRUE(images_->Create(kNs, image).ok());
    }
  }
  GcReport r = Collect({std::string(kNs)});
  EXPECT_EQ(r.blobs_removed, 5);  // the configs; the manifests are targets
  EXPECT_EQ(between, 2);
  absl::StatusOr<RocksDbImageStore::CheckReport> check = images_->Check(false);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_THAT(check->problems, ::testing::IsEmpty());
  EXPECT_EQ(check->records, 10);
  EXPECT_EQ(check->unresolved, 10);
}

// issue 13: a collection could not be stopped (SIGTERM took 24-87 s).
TEST_F(GcTest, AnInterruptedPassRemovesNothingAndShutdownRefusesLaterOnes) {
  std::string garbage = Blob("garbage");
  int asked = 0;
  absl::StatusOr<GcReport> r = gc_->Collect({std::string(kNs)}, [&]() -> absl::Status {
    return ++asked >= 2 ? absl::CancelledError("the caller went away") : absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
  EXPECT_TRUE(Has(garbage));
  gc_->Shutdown();
  EXPECT_TRUE(absl::IsCancelled(gc_->Collect({}).status()));
  EXPECT_TRUE(Has(garbage));
}

// Marking checks its interrupt every 1024 rows, not only between namespaces.
TEST_F(GcTest, MarkingALargeNamespaceChecksItsInterruptAsItGoes) {
  for (int i = 0; i < 3000; ++i) Blob(absl::StrCat("blob ", i), {{"containerd.io/gc.root", "1"}});
  int asked = 0;
  absl::StatusOr<GcReport> r = gc_->Collect({std::string(kNs)}, [&]() -> absl::Status {
    ++asked;
    return absl::OkStatus();
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(asked, 4);  // before and after marking, and at least twice within it
}

// issue 13: a namespace named a thousand times was a thousand passes.
TEST_F(GcTest, EachNamespaceIsCollectedOnceHoweverOftenNamed) {
  Blob("garbage");
  std::vector<std::string> many(1000, std::string(kNs));
  many.push_back("");  // the content proxy's: never collected
  GcReport r = Collect(many);
  EXPECT_EQ(r.namespaces, 1);
  EXPECT_EQ(r.blobs_removed, 1);
}

}  // namespace
}  // namespace imaged::store
