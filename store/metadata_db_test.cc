#include "store/metadata_db.h"

#include <stdlib.h>

#include <algorithm>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "store/files.h"
#include "store/test_dirs.h"

namespace imaged::store {
namespace {

class MetadataDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("imaged-meta");
    auto db = MetadataDb::Open(root_ + "/meta");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
  }
  void TearDown() override {
    db_.reset();
    RemoveAll(root_).IgnoreError();
  }

  absl::Status Put(const std::string& key) {
    rocksdb::WriteBatch batch;
    batch.Put(db_->cf(Cf::kDefault), key, "v");
    return db_->Write(&batch);
  }

  std::string root_;
  std::unique_ptr<MetadataDb> db_;
};

TEST_F(MetadataDbTest, GroupCommitReturnsTheResultAndSyncsOnce) {
  absl::StatusOr<int> r = db_->GroupCommit([&]() -> absl::StatusOr<int> {
    if (absl::Status s = Put("a"); !s.ok()) return s;
    // A nested call joins the outer one: no fsync of its own.
    absl::Status inner = db_->GroupCommit([&] { return Put("b"); });
    if (!inner.ok()) return inner;
    return 7;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 7);
  EXPECT_EQ(db_->group_syncs(), 1u);
  std::string v;
  EXPECT_TRUE(db_->Get(Cf::kDefault, "a", &v).ok());
  EXPECT_TRUE(db_->Get(Cf::kDefault, "b", &v).ok());

  // Nothing written: nothing to sync; an error comes back as it was.
  absl::Status none = db_->GroupCommit([] { return absl::NotFoundError("x"); });
  EXPECT_TRUE(absl::IsNotFound(none));
  EXPECT_EQ(db_->group_syncs(), 1u);
}

// Writers serialised by a lock of their own share fsyncs: while one syncs,
// the others write, and the next fsync covers them all.
TEST_F(MetadataDbTest, WritersBehindOneLockShareFsyncs) {
  constexpr int kThreads = 8, kWrites = 50;
  absl::Mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        absl::Status s = db_->GroupCommit([&] {
          absl::MutexLock lock(&mu);
          return Put(absl::StrCat("k", t, "-", i));
        });
        EXPECT_TRUE(s.ok()) << s;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kWrites; ++i) {
      std::string v;
      EXPECT_TRUE(db_->Get(Cf::kDefault, absl::StrCat("k", t, "-", i), &v).ok());
    }
  }
  EXPECT_GE(db_->group_syncs(), 1u);
  EXPECT_LT(db_->group_syncs(), static_cast<uint64_t>(kThreads * kWrites));
}

// GroupCommitThen: the result reaches `done` after the fsync, on the WAL
// syncer's thread; nothing written means `done` at once, on the caller's.
TEST_F(MetadataDbTest, GroupCommitThenAnswersAfterTheFsync) {
  absl::Notification answered;
  std::thread::id answered_on;
  db_->GroupCommitThen([&]() -> absl::StatusOr<int> {
        if (absl::Status s = Put("a"); !s.ok()) return s;
        return 7;
      },
      [&](absl::StatusOr<int> r) {
        EXPECT_TRUE(r.ok()) << r.status();
        if (r.ok()) EXPECT_EQ(*r, 7);
        EXPECT_EQ(db_->group_syncs(), 1u);  // synced before the answer
        answered_on = std::this_thread::get_id();
        answered.Notify();
      });
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_NE(answered_on, std::this_thread::get_id());

  bool inline_answer = false;
  db_->GroupCommitThen([] { return absl::NotFoundError("x"); },
                       [&](absl::Status s) {
                         EXPECT_TRUE(absl::IsNotFound(s)) << s;
                         inline_answer = true;
                       });
  EXPECT_TRUE(inline_answer);
  EXPECT_EQ(db_->group_syncs(), 1u);
}

// Tickets waiting together share an fsync, and callbacks still waiting when
// the database closes run (after a last fsync) before it is gone: the
// first callback holds the syncer until the close has begun.
TEST_F(MetadataDbTest, WaitingTicketsShareFsyncsAndRunAtClose) {
  constexpr int kWrites = 200;
  absl::Notification first_running, release;
  absl::Mutex mu;
  int done = 0;
  uint64_t syncs = 0;  // seen by the callbacks, while the database lives
  MetadataDb* db = db_.get();
  db_->GroupCommitThen([&] { return Put("k0"); },
                       [&](absl::Status s) {
                         EXPECT_TRUE(s.ok()) << s;
                         first_running.Notify();
                         release.WaitForNotification();
                         absl::MutexLock lock(&mu);
                         ++done;
                       });
  first_running.WaitForNotification();
  for (int i = 1; i < kWrites; ++i) {
    db_->GroupCommitThen([&] { return Put(absl::StrCat("k", i)); },
                         [&](absl::Status s) {
                           EXPECT_TRUE(s.ok()) << s;
                           absl::MutexLock lock(&mu);
                           ++done;
                           syncs = std::max(syncs, db->group_syncs());
                         });
  }
  std::thread closer([&] { db_.reset(); });
  absl::SleepFor(absl::Milliseconds(100));  // the close waits for the syncer
  release.Notify();
  closer.join();
  EXPECT_EQ(done, kWrites);
  // One fsync for the first, one for the 199 that waited behind it.
  EXPECT_EQ(syncs, 2u);
  auto reopened = MetadataDb::Open(root_ + "/meta");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  std::string v;
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_TRUE((*reopened)->Get(Cf::kDefault, absl::StrCat("k", i), &v).ok()) << i;
  }
}

TEST_F(MetadataDbTest, ASchemaVersionNewerThanThisImagedIsRefused) {
  std::string v;
  ASSERT_TRUE(db_->Get(Cf::kDefault, kSchemaVersionKey, &v).ok());  // written at creation
  std::string newer;
  PutU32(&newer, kSchemaVersion + 1);
  rocksdb::WriteBatch batch;
  batch.Put(db_->cf(Cf::kDefault), std::string(kSchemaVersionKey), newer);
  ASSERT_TRUE(db_->Write(&batch).ok());
  db_.reset();
  absl::StatusOr<std::unique_ptr<MetadataDb>> reopened = MetadataDb::Open(root_ + "/meta");
  EXPECT_TRUE(absl::IsFailedPrecondition(reopened.status())) << reopened.status();
  EXPECT_NE(reopened.status().message().find("newer than this imaged supports"),
            std::string::npos);
}

TEST_F(MetadataDbTest, AMalformedSchemaVersionIsDataLoss) {
  rocksdb::WriteBatch batch;
  batch.Put(db_->cf(Cf::kDefault), std::string(kSchemaVersionKey), "x");
  ASSERT_TRUE(db_->Write(&batch).ok());
  db_.reset();
  absl::StatusOr<std::unique_ptr<MetadataDb>> reopened = MetadataDb::Open(root_ + "/meta");
  EXPECT_TRUE(absl::IsDataLoss(reopened.status())) << reopened.status();
}

TEST_F(MetadataDbTest, TodaysSchemaVersionReopens) {
  db_.reset();
  absl::StatusOr<std::unique_ptr<MetadataDb>> reopened = MetadataDb::Open(root_ + "/meta");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  std::string v;
  ASSERT_TRUE((*reopened)->Get(Cf::kDefault, kSchemaVersionKey, &v).ok());
  absl::string_view in = v;
  uint32_t version = 0;
  ASSERT_TRUE(GetU32(&in, &version));
  EXPECT_EQ(version, kSchemaVersion);
}

}  // namespace
}  // namespace imaged::store
