#include "store/rocksdb_content_store.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/content_store_contract.h"
#include "store/digest.h"
#include "store/files.h"
#include "store/limits.h"
#include "store/metadata_db.h"
#include "store/test_dirs.h"

namespace imaged::store {
namespace {

namespace fs = std::filesystem;

// KillNineAtAnyPointLeavesOnlyWholeBlobs runs this binary again as its
// writer: this runs before main, so the child never enters the test runner.
// It writes, commits and deletes blobs until it is killed.
[[noreturn]] void CrashChild(const char* root, int round, int progress) {
  auto db = MetadataDb::Open(std::string(root) + "/meta");
  if (!db.ok()) ::_exit(3);
  auto store = RocksDbContentStore::Open(db->get(), root, SystemClock::Get());
  if (!store.ok()) ::_exit(4);
  for (int i = 0;; ++i) {
    std::string data(1 << 16, static_cast<char>('a' + i % 26));
    data += absl::StrCat(round, "-", i);
    auto w = (*store)->Writer("default", absl::StrCat("ref-", i % 3), 0, "");
    if (!w.ok()) continue;
    // An ingest left by the previous round resumes with its old bytes:
    // start it over, as a client writing at offset 0 would.
    (*w)->Truncate(0).IgnoreError();
    for (size_t off = 0; off < data.size(); off += 4096) {
      (*w)->Write(data.substr(off, 4096)).IgnoreError();
    }
    if ((*w)->Commit(0, Sha256::Of(data), {{"i", absl::StrCat(i)}}).ok() && progress >= 0) {
      if (::write(progress, "x", 1) != 1) ::_exit(6);
      ::close(progress);
      progress = -1;
    }
    if (i % 4 == 0) (*store)->Delete("default", Sha256::Of(data)).IgnoreError();
    if (i % 3 == 2) {  // a small blob through a writer: kept inline
      const std::string small = absl::StrCat("small ", round, "-", i, std::string(500, 's'));
      auto sw = (*store)->Writer("default", absl::StrCat("small-", i % 2), 0, "");
      if (sw.ok()) {
        (*sw)->Truncate(0).IgnoreError();
        (*sw)->Write(small).IgnoreError();
        (*sw)->Commit(0, Sha256::Of(small), {}).IgnoreError();
      }
      if (i % 6 == 5) (*store)->Delete("default", Sha256::Of(small)).IgnoreError();
    }
    if (i % 2 == 1) {  // and a batch, as an import commits its small documents
      std::vector<std::string> small, digests;
      for (int k = 0; k < 4; ++k) {
        small.push_back(absl::StrCat("batch ", round, "-", i, "-", k, std::string(2000, 'b')));
        digests.push_back(Sha256::Of(small.back()));
      }
      std::vector<BlobBatchCommitter::Blob> batch;
      for (int k = 0; k < 4; ++k) batch.push_back({digests[k], small[k]});
      (*store)->CommitBlobs("default", batch, "").status.IgnoreError();
    }
  }
}

const bool kCrashChild = [] {
  const char* root = std::getenv("IMAGED_CRASH_CHILD_ROOT");
  if (root != nullptr) {
    CrashChild(root, std::atoi(std::getenv("IMAGED_CRASH_CHILD_ROUND")),
               std::atoi(std::getenv("IMAGED_CRASH_CHILD_FD")));
  }
  return false;
}();

// A store on a fresh root; reopenable to simulate a restart.
class Fixture {
 public:
  explicit Fixture(const Clock* clock = SystemClock::Get(),
                   RocksDbContentStore::Options options = {})
      : root_(MakeTempDir("imaged-content")), clock_(clock), options_(options) {
    Open();
  }
  ~Fixture() {
    Close();
    RemoveAll(root_).IgnoreError();
  }

  void Open() {
    auto db = MetadataDb::Open(root_ + "/meta");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    auto store = RocksDbContentStore::Open(db_.get(), root_, clock_, options_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void Close() {
    store_.reset();
    db_.reset();
  }
  void Reopen() {
    Close();
    Open();
  }

  RocksDbContentStore& store() { return *store_; }
  MetadataDb& db() { return *db_; }
  const std::string& root() const { return root_; }
  // Whether the bytes of `digest` are stored: a file or a [blob_data] row.
  bool Stored(absl::string_view digest) {
    std::string ignored;
    return fs::exists(root_ + "/blobs/sha256/" + std::string(DigestHex(digest))) ||
           db_->Get(Cf::kBlobData, BlobDataKey(digest), &ignored).ok();
  }
  void set_options(RocksDbContentStore::Options options) { options_ = options; }

 private:
  std::string root_;
  const Clock* clock_;
  RocksDbContentStore::Options options_;
  std::unique_ptr<MetadataDb> db_;
  std::unique_ptr<RocksDbContentStore> store_;
};

constexpr RocksDbContentStore::Options kFilesOnly{/*inline_max_bytes=*/0};

class RocksDbHarness final : public ContentHarness {
 public:
  explicit RocksDbHarness(RocksDbContentStore::Options options)
      : fixture_(SystemClock::Get(), options) {}
  ContentStore& store() override { return fixture_.store(); }

 private:
  Fixture fixture_;
};

// As served (small blobs kept inline), and with every blob a file (as a
// root written before [blob_data] holds them).
INSTANTIATE_TEST_SUITE_P(RocksDb, ContentStoreContract,
                         ::testing::Values(ContentHarnessFactory([] {
                           return std::make_unique<RocksDbHarness>(
                               RocksDbContentStore::Options{});
                         })));
INSTANTIATE_TEST_SUITE_P(RocksDbFilesOnly, ContentStoreContract,
                         ::testing::Values(ContentHarnessFactory(
                             [] { return std::make_unique<RocksDbHarness>(kFilesOnly); })));

// Tests that hold for both layouts of a blob's bytes.
class BothLayouts : public ::testing::TestWithParam<int64_t> {
 protected:
  BothLayouts() : f(SystemClock::Get(), RocksDbContentStore::Options{GetParam()}) {}
  Fixture f;
};
INSTANTIATE_TEST_SUITE_P(Layouts, BothLayouts,
                         ::testing::Values(RocksDbContentStore::Options{}.inline_max_bytes, 0),
                         [](const ::testing::TestParamInfo<int64_t>& p) {
                           return p.param > 0 ? "Inline" : "FilesOnly";
                         });

int64_t Blobs(const ContentUsage& u) { return u.files + u.inline_blobs; }

absl::Status PutBlob(ContentStore& store, absl::string_view ns, absl::string_view ref,
                     absl::string_view data) {
  auto w = store.Writer(ns, ref, 0, "");
  if (!w.ok()) return w.status();
  if (absl::Status s = (*w)->Write(data); !s.ok()) return s;
  return (*w)->Commit(static_cast<int64_t>(data.size()), Sha256::Of(data), {});
}

TEST(RocksDbContentStoreTest, BlobsUseContainerdLayout) {
  Fixture f(SystemClock::Get(), kFilesOnly);
  ASSERT_TRUE(PutBlob(f.store(), "default", "r", "layout").ok());
  std::string path = f.root() + "/blobs/sha256/" + Sha256::Hex("layout");
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::file_size(path), 6u);
}

TEST(RocksDbContentStoreTest, OddRefsNeverNameAPath) {
  Fixture f;
  const std::string refs[] = {"../../escape", "/abs/path", std::string("a\0b", 3), "x/../../y"};
  for (const std::string& ref : refs) {
    auto w = f.store().Writer("", ref, 0, "");
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Write("partial").ok());
  }
  // Only hex-named files under ingest/, nothing outside the root.
  for (const auto& e : fs::directory_iterator(f.root() + "/ingest")) {
    EXPECT_EQ(e.path().filename().string().size(), 64u) << e.path();
  }
  EXPECT_FALSE(fs::exists(fs::path(f.root()).parent_path() / "escape"));
  EXPECT_FALSE(fs::exists("/abs/path"));
  std::vector<std::string> top;
  for (const auto& e : fs::directory_iterator(f.root())) top.push_back(e.path().filename());
  std::sort(top.begin(), top.end());
  EXPECT_EQ(top, (std::vector<std::string>{"blobs", "ingest", "meta"}));
}

TEST(RocksDbContentStoreTest, RestartKeepsBlobsAndResumableIngests) {
  Fixture f;
  ASSERT_TRUE(PutBlob(f.store(), "default", "done", "committed").ok());
  {
    auto w = f.store().Writer("default", "half", 8, "");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("half").ok());
  }
  f.Reopen();
  ASSERT_TRUE(f.store().Recover().ok());
  EXPECT_TRUE(f.store().Info("default", Sha256::Of("committed")).ok());
  auto w = f.store().Writer("default", "half", 0, "");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->Status()->offset, 4);
  ASSERT_TRUE((*w)->Write("done").ok());
  EXPECT_TRUE((*w)->Commit(8, Sha256::Of("halfdone"), {}).ok());
}

TEST(RocksDbContentStoreTest, RecoverRemovesCrashLeftovers) {
  Fixture f(SystemClock::Get(), kFilesOnly);
  ASSERT_TRUE(PutBlob(f.store(), "default", "kept", "kept blob").ok());
  // A blob renamed into place whose metadata never got written.
  std::string orphan = f.root() + "/blobs/sha256/" + Sha256::Hex("orphan");
  { std::ofstream(orphan) << "orphan"; }
  // An ingest directory whose row never got written.
  std::string stray = f.root() + "/ingest/" + std::string(64, 'a');
  ASSERT_TRUE(MakeDirs(stray).ok());

  f.Reopen();
  ASSERT_TRUE(f.store().Recover().ok());
  EXPECT_FALSE(fs::exists(stray));
  EXPECT_TRUE(fs::exists(orphan));  // blobs/ is swept after serving starts
  ASSERT_TRUE(f.store().RemoveUnheldBlobs().ok());
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_FALSE(fs::exists(stray));
  EXPECT_TRUE(fs::exists(f.root() + "/blobs/sha256/" + Sha256::Hex("kept blob")));
}

// Until 2026-11-30 an ingest was ingest/<hex>/data; one left by an older
// imaged resumes with its bytes after an upgrade.
TEST(RocksDbContentStoreTest, RecoverKeepsAnIngestOfTheOldDirectoryLayout) {
  Fixture f;
  {
    auto w = f.store().Writer("default", "old", 0, "");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("old ").ok());
  }
  std::string file;
  for (const auto& e : fs::directory_iterator(f.root() + "/ingest")) file = e.path();
  ASSERT_FALSE(file.empty());
  fs::rename(file, file + ".tmp");
  fs::create_directory(file);
  fs::rename(file + ".tmp", file + "/data");

  f.Reopen();
  ASSERT_TRUE(f.store().Recover().ok());
  EXPECT_TRUE(fs::is_regular_file(file));
  auto w = f.store().Writer("default", "old", 0, "");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->Status()->offset, 4);
  ASSERT_TRUE((*w)->Write("bytes").ok());
  EXPECT_TRUE((*w)->Commit(9, Sha256::Of("old bytes"), {}).ok());
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
}

// A committed blob leaves nothing under ingest/: its file became the blob.
TEST(RocksDbContentStoreTest, CommitLeavesNoIngestFile) {
  Fixture f;
  ASSERT_TRUE(PutBlob(f.store(), "default", "r", "one").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(PutBlob(f.store(), "default", "r", "one")));
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
}

// Small blobs are rows of [blob_data], never a file; larger ones are files.
TEST(RocksDbContentStoreTest, SmallBlobsAreRowsAndLargerOnesFiles) {
  Fixture f(SystemClock::Get(), RocksDbContentStore::Options{16});
  const std::string small = "sixteen bytes!!!", large = "seventeen bytes!!";
  ASSERT_EQ(small.size(), 16u);
  ASSERT_TRUE(PutBlob(f.store(), "default", "s", small).ok());
  ASSERT_TRUE(PutBlob(f.store(), "default", "l", large).ok());
  EXPECT_FALSE(fs::exists(f.root() + "/blobs/sha256/" + Sha256::Hex(small)));
  EXPECT_TRUE(fs::exists(f.root() + "/blobs/sha256/" + Sha256::Hex(large)));
  EXPECT_TRUE(f.Stored(Sha256::Of(small)));
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
  auto usage = f.store().Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->files, 1);
  EXPECT_EQ(usage->bytes, 17);
  EXPECT_EQ(usage->inline_blobs, 1);
  EXPECT_EQ(usage->inline_bytes, 16);
  // Read at any offset, as a file is.
  auto r = f.store().Reader("default", Sha256::Of(small));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->Size(), 16);
  std::string out;
  ASSERT_TRUE((*r)->ReadAt(8, 100, &out).ok());
  EXPECT_EQ(out, "bytes!!!");
  ASSERT_TRUE((*r)->ReadAt(16, 1, &out).ok());
  EXPECT_EQ(out, "");
  EXPECT_TRUE(absl::IsOutOfRange((*r)->ReadAt(17, 1, &out)));
  EXPECT_TRUE(absl::IsInvalidArgument((*r)->ReadAt(-1, 1, &out)));
  // Durable across a restart; gone with its last holder.
  f.Reopen();
  ASSERT_TRUE(f.store().Recover().ok());
  ASSERT_TRUE(f.store().RemoveUnheldBlobs().ok());
  EXPECT_EQ(*ReadWholeBlob(f.store(), "default", Sha256::Of(small), 100), small);
  ASSERT_TRUE(f.store().Delete("default", Sha256::Of(small)).ok());
  EXPECT_FALSE(f.Stored(Sha256::Of(small)));
  EXPECT_TRUE(absl::IsNotFound(f.store().Reader("default", Sha256::Of(small)).status()));
  usage = f.store().Usage();
  EXPECT_EQ(usage->inline_blobs, 0);
  EXPECT_EQ(usage->inline_bytes, 0);
  EXPECT_EQ(usage->files, 1);
}

// An ingest held in memory goes to its file when its writer closes
// uncommitted, so it resumes (after a restart too); one that outgrows the
// limit moves to its file as it is written. Either commits inline when the
// blob is small.
TEST(RocksDbContentStoreTest, AnIngestHeldInMemoryResumesAndSpills) {
  Fixture f(SystemClock::Get(), RocksDbContentStore::Options{16});
  {
    auto w = f.store().Writer("default", "r", 0, "");
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Write("first ").ok());
    EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
    EXPECT_EQ((*w)->Status()->offset, 6);
  }
  EXPECT_EQ(f.store().Status("default", "r")->offset, 6);
  f.Reopen();
  ASSERT_TRUE(f.store().Recover().ok());
  {
    auto w = f.store().Writer("default", "r", 0, "");
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ((*w)->Status()->offset, 6);
    ASSERT_TRUE((*w)->Write("half").ok());
    ASSERT_TRUE((*w)->Commit(10, Sha256::Of("first half"), {}).ok());
  }
  EXPECT_FALSE(fs::exists(f.root() + "/blobs/sha256/" + Sha256::Hex("first half")));
  EXPECT_EQ(*ReadWholeBlob(f.store(), "default", Sha256::Of("first half"), 100), "first half");
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));

  auto w = f.store().Writer("default", "grows", 0, "");
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Write("0123456789").ok());
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
  ASSERT_TRUE((*w)->Write("0123456789").ok());
  EXPECT_FALSE(fs::is_empty(f.root() + "/ingest"));
  EXPECT_EQ(f.store().Status("default", "grows")->offset, 20);
  // Started over in its file, and small again: committed inline.
  ASSERT_TRUE((*w)->Truncate(0).ok());
  ASSERT_TRUE((*w)->Write("abc").ok());
  ASSERT_TRUE((*w)->Commit(3, Sha256::Of("abc"), {}).ok());
  w->reset();
  EXPECT_FALSE(fs::exists(f.root() + "/blobs/sha256/" + Sha256::Hex("abc")));
  EXPECT_EQ(*ReadWholeBlob(f.store(), "default", Sha256::Of("abc"), 100), "abc");
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
  auto usage = f.store().Usage();
  EXPECT_EQ(usage->inline_blobs, 2);
  EXPECT_EQ(usage->inline_bytes, 13);
  EXPECT_EQ(usage->files, 0);
}

// A commit that fails after closing the ingest's file leaves the writer
// refusing more (it has no file to add to: what it took would be lost to the
// digest), and the ingest whole for a new writer.
TEST(RocksDbContentStoreTest, AWriterWhoseCommitFailedAfterClosingItsFileTakesNoMore) {
  Fixture f(SystemClock::Get(), RocksDbContentStore::Options{16});
  const std::string data(100, 'x');
  // A non-empty directory where the blob's file goes: the rename fails.
  const std::string in_the_way = f.root() + "/blobs/sha256/" + Sha256::Hex(data);
  ASSERT_TRUE(MakeDirs(in_the_way + "/sub").ok());
  {
    auto w = f.store().Writer("default", "r", 0, "");
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Write(data).ok());
    EXPECT_FALSE((*w)->Commit(100, Sha256::Of(data), {}).ok());
    EXPECT_TRUE(absl::IsFailedPrecondition((*w)->Write("more")));
    EXPECT_TRUE(absl::IsFailedPrecondition((*w)->Truncate(0)));
    EXPECT_TRUE(absl::IsFailedPrecondition((*w)->Commit(100, Sha256::Of(data), {})));
  }
  ASSERT_TRUE(RemoveAll(in_the_way).ok());
  auto w = f.store().Writer("default", "r", 0, "");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->Status()->offset, 100);
  ASSERT_TRUE((*w)->Commit(100, Sha256::Of(data), {}).ok());
  EXPECT_EQ(*ReadWholeBlob(f.store(), "default", Sha256::Of(data), 1000), data);
}

// A root written before [blob_data] (every blob a file, the usage row of
// two counters) is served as it is: its files are read, shared and
// removed, and new small blobs become rows beside them.
TEST(RocksDbContentStoreTest, FilesFromBeforeInlineBlobsStayServed) {
  Fixture f(SystemClock::Get(), kFilesOnly);
  ASSERT_TRUE(PutBlob(f.store(), "a", "r", "old").ok());
  {
    std::string two;
    PutU64(&two, 3);
    PutU64(&two, 1);
    rocksdb::WriteBatch batch;
    batch.Put(f.db().cf(Cf::kDefault), std::string(kContentUsageKey), two);
    ASSERT_TRUE(f.db().Write(&batch).ok());
  }
  f.set_options({});
  f.Reopen();
  ASSERT_TRUE(f.store().Recover().ok());
  ASSERT_TRUE(f.store().RemoveUnheldBlobs().ok());
  EXPECT_EQ(*ReadWholeBlob(f.store(), "a", Sha256::Of("old"), 100), "old");
  EXPECT_TRUE(absl::IsAlreadyExists(f.store().Writer("b", "r", 3, Sha256::Of("old")).status()));
  EXPECT_EQ(*ReadWholeBlob(f.store(), "b", Sha256::Of("old"), 100), "old");
  ASSERT_TRUE(PutBlob(f.store(), "a", "r", "new").ok());
  EXPECT_FALSE(fs::exists(f.root() + "/blobs/sha256/" + Sha256::Hex("new")));
  auto usage = f.store().Usage();
  ASSERT_TRUE(usage.ok()) << usage.status();
  EXPECT_EQ(usage->files, 1);
  EXPECT_EQ(usage->bytes, 3);
  EXPECT_EQ(usage->inline_blobs, 1);
  EXPECT_EQ(usage->inline_bytes, 3);
  ASSERT_TRUE(f.store().Delete("a", Sha256::Of("old")).ok());
  ASSERT_TRUE(f.store().Delete("b", Sha256::Of("old")).ok());
  EXPECT_FALSE(fs::exists(f.root() + "/blobs/sha256/" + Sha256::Hex("old")));
  EXPECT_EQ(f.store().Usage()->files, 0);
  EXPECT_EQ(f.store().Usage()->bytes, 0);
}

TEST(RocksDbContentStoreTest, UnheldFileIsNotSharedButRewritten) {
  Fixture f;
  // A leftover file is not trusted: a writer expecting its digest must transfer.
  std::string orphan = f.root() + "/blobs/sha256/" + Sha256::Hex("leftover");
  { std::ofstream(orphan) << "leftover"; }
  auto w = f.store().Writer("default", "r", 0, Sha256::Of("leftover"));
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Write("leftover").ok());
  EXPECT_TRUE((*w)->Commit(0, Sha256::Of("leftover"), {}).ok());
}

TEST_P(BothLayouts, DeleteKeepsTheBytesWhileAnotherNamespaceHoldsThem) {
  ASSERT_TRUE(PutBlob(f.store(), "a", "r", "shared").ok());
  ASSERT_TRUE(PutBlob(f.store(), "b", "r", "shared").ok() ||
              absl::IsAlreadyExists(PutBlob(f.store(), "b", "r", "shared")));
  ASSERT_TRUE(f.store().Delete("a", Sha256::Of("shared")).ok());
  EXPECT_TRUE(f.Stored(Sha256::Of("shared")));
  EXPECT_EQ(*ReadWholeBlob(f.store(), "b", Sha256::Of("shared"), 100), "shared");
  ASSERT_TRUE(f.store().Delete("b", Sha256::Of("shared")).ok());
  EXPECT_FALSE(f.Stored(Sha256::Of("shared")));
}

TEST_P(BothLayouts, UsageCountsEachBlobOnce) {
  ASSERT_TRUE(PutBlob(f.store(), "a", "r", "12345").ok());
  ASSERT_TRUE(PutBlob(f.store(), "a", "r", "123").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(f.store().Writer("b", "r", 0, Sha256::Of("12345")).status()));
  auto usage = f.store().Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->total_bytes(), 8);
  EXPECT_EQ(Blobs(*usage), 2);
  ASSERT_TRUE(f.store().Delete("a", Sha256::Of("12345")).ok());
  EXPECT_EQ(Blobs(*f.store().Usage()), 2);  // "b" still holds it
  ASSERT_TRUE(f.store().Delete("b", Sha256::Of("12345")).ok());
  ASSERT_TRUE(f.store().Delete("a", Sha256::Of("123")).ok());
  EXPECT_EQ(f.store().Usage()->total_bytes(), 0);
  EXPECT_EQ(Blobs(*f.store().Usage()), 0);
}

// Commits no longer hold the store's mutex across their fsyncs (group
// commit): commits and deletes of one digest racing from many namespaces
// must still leave the file present exactly while some namespace holds it,
// and the usage counter counting it once.
TEST_P(BothLayouts, RacingCommitsAndDeletesOfOneDigestStayConsistent) {
  const std::string data = "raced blob";
  const std::string digest = Sha256::Of(data);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string ns = absl::StrCat("ns", t % 4);
      for (int i = 0; i < 40; ++i) {
        absl::Status s = PutBlob(f.store(), ns, absl::StrCat("r", t), data);
        EXPECT_TRUE(s.ok() || absl::IsAlreadyExists(s)) << s;
        if ((i + t) % 3 == 0) {
          absl::Status d = f.store().Delete(ns, digest);
          EXPECT_TRUE(d.ok() || absl::IsNotFound(d)) << d;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  int holders = 0;
  for (int n = 0; n < 4; ++n) holders += f.store().Info(absl::StrCat("ns", n), digest).ok();
  auto usage = f.store().Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(Blobs(*usage), holders > 0 ? 1 : 0);
  EXPECT_EQ(usage->total_bytes(), holders > 0 ? static_cast<int64_t>(data.size()) : 0);
  EXPECT_EQ(f.Stored(digest), holders > 0);
  for (int n = 0; n < 4; ++n) f.store().Delete(absl::StrCat("ns", n), digest).IgnoreError();
  EXPECT_FALSE(f.Stored(digest));
  EXPECT_EQ(Blobs(*f.store().Usage()), 0);
}

TEST(RocksDbContentStoreTest, WritesUnderALeaseBecomeItsResourcesInTheSameBatch) {
  Fixture f;
  MetadataDb& db = f.db();
  auto has = [&](absl::string_view type, absl::string_view id) {
    std::string ignored;
    return db.Get(Cf::kLeaseResources, LeaseResourceKey("default", "l1", type, id), &ignored).ok();
  };
  // The lease store owns the record format; existence is all content checks.
  rocksdb::WriteBatch lease;
  lease.Put(db.cf(Cf::kLeases), LeaseKey("default", "l1"), "x");
  ASSERT_TRUE(db.Write(&lease).ok());

  EXPECT_TRUE(absl::IsNotFound(f.store().Writer("default", "r", 0, "", "missing").status()));
  auto w = f.store().Writer("default", "r", 0, "", "l1");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(has("ingests", "r"));
  ASSERT_TRUE((*w)->Write("leased").ok());
  ASSERT_TRUE((*w)->Commit(0, Sha256::Of("leased"), {}).ok());
  EXPECT_TRUE(has("content", Sha256::Of("leased")));
  EXPECT_FALSE(has("ingests", "r"));

  // A digest the namespace already holds joins the lease too.
  ASSERT_TRUE(PutBlob(f.store(), "default", "r2", "held").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(
      f.store().Writer("default", "r3", 0, Sha256::Of("held"), "l1").status()));
  EXPECT_TRUE(has("content", Sha256::Of("held")));
}

// CommitBlobs: what an import's batch of small documents gets. Each blob
// ends as a Writer's commit would leave it, whatever it started as.
TEST_P(BothLayouts, CommitBlobsCommitsABatchAsWritersWould) {
  MetadataDb& db = f.db();
  rocksdb::WriteBatch lease;
  lease.Put(db.cf(Cf::kLeases), LeaseKey("a", "l1"), "x");
  ASSERT_TRUE(db.Write(&lease).ok());
  ASSERT_TRUE(PutBlob(f.store(), "a", "r", "held here").ok());
  ASSERT_TRUE(PutBlob(f.store(), "b", "r", "held by b").ok());
  const std::vector<std::string> data = {"new one", "held here", "held by b", "new two",
                                         "new one"};
  std::vector<std::string> digests;
  std::vector<BlobBatchCommitter::Blob> blobs;
  for (const std::string& d : data) digests.push_back(Sha256::Of(d));
  for (size_t i = 0; i < data.size(); ++i) blobs.push_back({digests[i], data[i]});

  BlobBatchCommitter::BatchResult r = f.store().CommitBlobs("a", blobs, "l1");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.written, (std::vector<bool>{true, false, false, true, false}));
  for (size_t i = 0; i < data.size(); ++i) {
    auto info = f.store().Info("a", digests[i]);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->size, static_cast<int64_t>(data[i].size()));
    auto read = ReadWholeBlob(f.store(), "a", digests[i], 1 << 20);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(*read, data[i]);
    std::string ignored;
    EXPECT_TRUE(
        db.Get(Cf::kLeaseResources, LeaseResourceKey("a", "l1", "content", digests[i]), &ignored)
            .ok())
        << data[i];
  }
  // Four blobs, counted once each; nothing left in ingest/.
  auto usage = f.store().Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(Blobs(*usage), 4);
  EXPECT_EQ(usage->total_bytes(), 7 + 9 + 9 + 7);
  // Kept as the layout says: rows and no file, or files.
  EXPECT_EQ(usage->inline_blobs, GetParam() > 0 ? 4 : 0);
  EXPECT_EQ(fs::is_empty(f.root() + "/blobs/sha256"), GetParam() > 0);
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
  // And they stay after a restart's recovery.
  f.Reopen();
  ASSERT_TRUE(f.store().Recover().ok());
  ASSERT_TRUE(f.store().RemoveUnheldBlobs().ok());
  for (const std::string& d : digests) {
    EXPECT_TRUE(f.store().Info("a", d).ok()) << d;
    EXPECT_TRUE(f.Stored(d)) << d;
  }
  EXPECT_EQ(Blobs(*f.store().Usage()), 4);
}

// A batch larger than the fsync group (several groups of descriptors, the
// last one short) ends the same.
TEST_P(BothLayouts, CommitBlobsOfALargeBatch) {
  std::vector<std::string> data, digests;
  for (int i = 0; i < 100; ++i) {
    data.push_back(absl::StrCat("blob ", i, std::string(i * 10, 'x')));
    digests.push_back(Sha256::Of(data.back()));
  }
  std::vector<BlobBatchCommitter::Blob> blobs;
  int64_t bytes = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    blobs.push_back({digests[i], data[i]});
    bytes += static_cast<int64_t>(data[i].size());
  }
  BlobBatchCommitter::BatchResult r = f.store().CommitBlobs("a", blobs, "");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.written, std::vector<bool>(data.size(), true));
  for (size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(*ReadWholeBlob(f.store(), "a", digests[i], 1 << 20), data[i]);
  }
  EXPECT_EQ(Blobs(*f.store().Usage()), 100);
  EXPECT_EQ(f.store().Usage()->total_bytes(), bytes);
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
}

TEST_P(BothLayouts, CommitBlobsVerifiesBeforeWritingAnything) {
  const std::string good = "good", bad = "bad";
  const std::string good_digest = Sha256::Of(good), wrong = Sha256::Of("not bad");
  std::vector<BlobBatchCommitter::Blob> blobs = {{good_digest, good}, {wrong, bad}};
  BlobBatchCommitter::BatchResult r = f.store().CommitBlobs("a", blobs, "");
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status)) << r.status;
  EXPECT_EQ(r.failed, 1u);
  EXPECT_TRUE(absl::IsNotFound(f.store().Info("a", good_digest).status()));
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
  EXPECT_TRUE(fs::is_empty(f.root() + "/blobs/sha256"));

  std::vector<BlobBatchCommitter::Blob> malformed = {{"sha256:nope", good}};
  EXPECT_TRUE(absl::IsInvalidArgument(f.store().CommitBlobs("a", malformed, "").status));
  EXPECT_TRUE(absl::IsNotFound(f.store().CommitBlobs("a", {{good_digest, good}}, "gone").status));
  std::vector<BlobBatchCommitter::Blob> many(kMaxBatchBlobs + 1, {good_digest, good});
  EXPECT_TRUE(absl::IsInvalidArgument(f.store().CommitBlobs("a", many, "").status));
  EXPECT_EQ(Blobs(*f.store().Usage()), 0);
}

// Batches racing Writer commits and deletes of the same digests from other
// namespaces: the file exists exactly while some namespace holds it, and
// usage counts it once.
TEST_P(BothLayouts, CommitBlobsRacingWritersAndDeletesStayConsistent) {
  std::vector<std::string> data;
  for (int i = 0; i < 8; ++i) data.push_back(absl::StrCat("raced batch blob ", i));
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      const std::string ns = absl::StrCat("ns", t % 3);
      for (int round = 0; round < 20; ++round) {
        if (t % 2 == 0) {
          std::vector<std::string> digests;
          for (const std::string& d : data) digests.push_back(Sha256::Of(d));
          std::vector<BlobBatchCommitter::Blob> blobs;
          for (size_t i = 0; i < data.size(); ++i) blobs.push_back({digests[i], data[i]});
          absl::Status s = f.store().CommitBlobs(ns, blobs, "").status;
          EXPECT_TRUE(s.ok()) << s;
        } else {
          const std::string& d = data[(round + t) % data.size()];
          absl::Status s = PutBlob(f.store(), ns, absl::StrCat("r", t), d);
          EXPECT_TRUE(s.ok() || absl::IsAlreadyExists(s)) << s;
          absl::Status del = f.store().Delete(ns, Sha256::Of(data[round % data.size()]));
          EXPECT_TRUE(del.ok() || absl::IsNotFound(del)) << del;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  int64_t files = 0, bytes = 0;
  for (const std::string& d : data) {
    int holders = 0;
    for (int n = 0; n < 3; ++n) holders += f.store().Info(absl::StrCat("ns", n), Sha256::Of(d)).ok();
    EXPECT_EQ(f.Stored(Sha256::Of(d)), holders > 0) << d;
    if (holders > 0) {
      ++files;
      bytes += static_cast<int64_t>(d.size());
    }
  }
  EXPECT_EQ(Blobs(*f.store().Usage()), files);
  EXPECT_EQ(f.store().Usage()->total_bytes(), bytes);
  EXPECT_TRUE(fs::is_empty(f.root() + "/ingest"));
}

TEST(RocksDbContentStoreTest, LeasedIngestsDoNotExpire) {
  FakeClock clock;
  Fixture f(&clock);
  rocksdb::WriteBatch lease;
  lease.Put(f.db().cf(Cf::kLeases), LeaseKey("default", "slow-pull"), "x");
  ASSERT_TRUE(f.db().Write(&lease).ok());
  { ASSERT_TRUE(f.store().Writer("default", "leased", 0, "", "slow-pull").ok()); }
  { ASSERT_TRUE(f.store().Writer("default", "loose", 0, "").ok()); }
  clock.Advance(absl::Hours(48));
  absl::StatusOr<int> removed = f.store().ExpireIngests(absl::Hours(24));
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1);
  EXPECT_TRUE(f.store().Status("default", "leased").ok());
  EXPECT_TRUE(absl::IsNotFound(f.store().Status("default", "loose").status()));
}

TEST(RocksDbContentStoreTest, SharingNeedsTheDeclaredSizeToMatch) {
  Fixture f;
  ASSERT_TRUE(PutBlob(f.store(), "a", "r", "12345").ok());
  // Another namespace claiming a different size must transfer the bytes.
  auto w = f.store().Writer("b", "r", 4, Sha256::Of("12345"));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(absl::IsNotFound(f.store().Info("b", Sha256::Of("12345")).status()));
}

TEST(RocksDbContentStoreTest, ExpireIngestsUsesTheInjectedClock) {
  FakeClock clock;
  Fixture f(&clock);
  { ASSERT_TRUE(f.store().Writer("default", "old", 0, "").ok()); }
  clock.Advance(absl::Hours(2));
  { ASSERT_TRUE(f.store().Writer("default", "new", 0, "").ok()); }
  auto held = f.store().Writer("default", "held", 0, "");
  ASSERT_TRUE(held.ok());
  clock.Advance(absl::Hours(2));

  absl::StatusOr<int> removed = f.store().ExpireIngests(absl::Hours(3));
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1);
  EXPECT_TRUE(absl::IsNotFound(f.store().Status("default", "old").status()));
  EXPECT_TRUE(f.store().Status("default", "new").ok());
  // A writer still holds "held": never expired under it.
  removed = f.store().ExpireIngests(absl::Minutes(1));
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1);
  EXPECT_TRUE(f.store().Status("default", "held").ok());
}

TEST(RocksDbContentStoreTest, SecondProcessOnTheSameRootIsFailedPrecondition) {
  Fixture f;
  absl::Status s = MetadataDb::Open(f.root() + "/meta").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
}

// kill -9 at random points of a write/commit/delete loop, many times over:
// after each restart every blob the store shows is whole and verified, and
// every ingest resumes.
TEST(RocksDbContentStoreTest, KillNineAtAnyPointLeavesOnlyWholeBlobs) {
  std::string root = MakeTempDir("imaged-content");
  std::mt19937 rng(42);
  int blobs_seen = 0;
  int64_t inline_rows_seen = 0;
  for (int round = 0; round < 12; ++round) {
    // The child is this binary run afresh (fork alone would leave it with
    // RocksDB's thread pools of the parent, and no threads behind them). It
    // reports its first commit on a pipe, so the kill lands in the middle of
    // the write loop however slow the machine is.
    int progress[2];
    ASSERT_EQ(::pipe(progress), 0);
    // Built before fork: the child only closes, execs or exits.
    const std::string env_root = absl::StrCat("IMAGED_CRASH_CHILD_ROOT=", root);
    const std::string env_round = absl::StrCat("IMAGED_CRASH_CHILD_ROUND=", round);
    const std::string env_fd = absl::StrCat("IMAGED_CRASH_CHILD_FD=", progress[1]);
    char* const env[] = {const_cast<char*>(env_root.c_str()), const_cast<char*>(env_round.c_str()),
                         const_cast<char*>(env_fd.c_str()), nullptr};
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(progress[0]);
      ::execle("/proc/self/exe", "crash-child", static_cast<char*>(nullptr), env);
      ::_exit(5);
    }
    ::close(progress[1]);
    pollfd wait_for{progress[0], POLLIN, 0};
    char byte;
    ssize_t started = ::poll(&wait_for, 1, 60000) == 1 ? ::read(progress[0], &byte, 1) : 0;
    ::close(progress[0]);
    ::usleep(std::uniform_int_distribution<int>(0, 100000)(rng));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);
    ASSERT_EQ(started, 1) << "the child never committed before it was killed";

    auto db = MetadataDb::Open(root + "/meta");
    ASSERT_TRUE(db.ok()) << db.status();
    auto store = RocksDbContentStore::Open(db->get(), root, SystemClock::Get());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Recover().ok());
    ASSERT_TRUE((*store)->RemoveUnheldBlobs().ok());
    int blobs = 0;
    ASSERT_TRUE((*store)->Walk("default", {}, [&](const ContentInfo& info) {
      ++blobs;
      auto r = (*store)->Reader("default", info.digest);
      EXPECT_TRUE(r.ok()) << info.digest;
      if (!r.ok()) return absl::OkStatus();
      std::string all;
      EXPECT_TRUE((*r)->ReadAt(0, static_cast<size_t>(info.size) + 1, &all).ok());
      EXPECT_EQ(Sha256::Of(all), info.digest);
      EXPECT_EQ(static_cast<int64_t>(all.size()), info.size);
      return absl::OkStatus();
    }).ok());
    blobs_seen += blobs;
    // Every file on disk is held by a row after Recover, and counted.
    int64_t files = 0, bytes = 0;
    for (const auto& e : fs::directory_iterator(root + "/blobs/sha256")) {
      EXPECT_TRUE((*store)->Info("default", "sha256:" + e.path().filename().string()).ok());
      ++files;
      bytes += static_cast<int64_t>(e.file_size());
    }
    // Every [blob_data] row is held, and counted.
    int64_t rows = 0, row_bytes = 0;
    {
      PrefixScan scan(**db, Cf::kBlobData, "");
      for (; scan.Valid(); scan.Next()) {
        EXPECT_TRUE((*store)->Info("default", scan.key()).ok()) << scan.key();
        EXPECT_EQ(Sha256::Of(scan.value()), scan.key());
        ++rows;
        row_bytes += static_cast<int64_t>(scan.value().size());
      }
      ASSERT_TRUE(scan.status().ok());
    }
    inline_rows_seen += rows;
    auto usage = (*store)->Usage();
    ASSERT_TRUE(usage.ok());
    EXPECT_EQ(usage->files, files);
    EXPECT_EQ(usage->bytes, bytes);
    EXPECT_EQ(usage->inline_blobs, rows);
    EXPECT_EQ(usage->inline_bytes, row_bytes);
    for (const auto& e : fs::directory_iterator(root + "/ingest")) {
      EXPECT_FALSE(absl::StartsWith(e.path().filename().string(), "batch-")) << e.path();
    }
    auto ingests = (*store)->ListStatuses("default", {});
    ASSERT_TRUE(ingests.ok());
    for (const IngestStatus& st : *ingests) {
      auto w = (*store)->Writer("default", st.ref, 0, "");
      ASSERT_TRUE(w.ok()) << w.status();
      EXPECT_EQ((*w)->Status()->offset, st.offset);
    }
  }
  EXPECT_GT(blobs_seen, 0) << "the child never got to commit: the test proved nothing";
  EXPECT_GT(inline_rows_seen, 0) << "no blob was ever kept inline: half the test proved nothing";
  RemoveAll(root).IgnoreError();
}

}  // namespace
}  // namespace imaged::store
