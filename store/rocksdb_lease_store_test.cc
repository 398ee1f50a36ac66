// Leases on a real RocksDB: lifecycle, containerd's ID, label, filter and
// resource rules, namespaces, StageAddResource, and the record's bytes.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/files.h"
#include "store/keys.h"
#include "store/limits.h"
#include "store/rocksdb_lease_store.h"
#include "store/limits.h"
#include "store/metadata_db.h"
#include "store/test_dirs.h"

namespace imaged::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr absl::string_view kNs = "default";
const std::string kDigest = absl::StrCat("sha256:", std::string(64, 'a'));

std::vector<std::string> Ids(const std::vector<Lease>& leases) {
  std::vector<std::string> out;
  for (const Lease& l : leases) out.push_back(l.id);
  return out;
}

class LeaseStoreTest : public ::testing::Test {
 protected:
  LeaseStoreTest() : root_(MakeTempDir("imaged-leases")) { Open(); }
  ~LeaseStoreTest() override {
    store_.reset();
    db_.reset();
    RemoveAll(root_).IgnoreError();
  }

  void Open() {
    store_.reset();
    db_.reset();
    auto db = MetadataDb::Open(root_ + "/meta");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    store_ = std::make_unique<RocksDbLeaseStore>(db_.get(), &clock_);
  }

  absl::Status Create(absl::string_view id, Labels labels = {}, absl::string_view ns = kNs) {
    return store_->Create(ns, Lease{std::string(id), absl::Time(), std::move(labels)}).status();
  }

  std::vector<std::string> List(std::vector<std::string> filters, absl::string_view ns = kNs) {
    absl::StatusOr<std::vector<Lease>> leases = store_->List(ns, filters);
    EXPECT_TRUE(leases.ok()) << leases.status();
    return leases.ok() ? Ids(*leases) : std::vector<std::string>{};
  }

  std::vector<LeaseResource> Resources(absl::string_view lease, absl::string_view ns = kNs) {
    absl::StatusOr<std::vector<LeaseResource>> r = store_->ListResources(ns, lease);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<LeaseResource>{};
  }

  // Every [lease_resources] row of a lease, read raw.
  int RawResourceRows(absl::string_view lease, absl::string_view ns = kNs) {
    int n = 0;
    PrefixScan scan(*db_, Cf::kLeaseResources, LeaseResourcePrefix(ns, lease));
    for (; scan.Valid(); scan.Next()) ++n;
    EXPECT_TRUE(scan.status().ok());
    return n;
  }

  std::string root_;
  FakeClock clock_{absl::FromUnixNanos(1700000000000000005)};
  std::unique_ptr<MetadataDb> db_;
  std::unique_ptr<RocksDbLeaseStore> store_;
};

TEST_F(LeaseStoreTest, CreateGetListDelete) {
  absl::StatusOr<Lease> created =
      store_->Create(kNs, Lease{"lease-1", absl::FromUnixSeconds(1), {{"a", "b"}, {"empty", ""}}});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->id, "lease-1");
  EXPECT_EQ(created->created_at, clock_.Now()) << "the store's clock, not the argument";
  EXPECT_EQ(created->labels, (Labels{{"a", "b"}}))
      << "empty values are dropped, as containerd does";

  clock_.Advance(absl::Seconds(5));
  absl::StatusOr<Lease> got = store_->Get(kNs, "lease-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, "lease-1");
  EXPECT_EQ(got->created_at, created->created_at);
  EXPECT_EQ(got->labels, created->labels);

  ASSERT_TRUE(Create("lease-0").ok());
  EXPECT_THAT(List({}), ElementsAre("lease-0", "lease-1"));

  ASSERT_TRUE(store_->Delete(kNs, "lease-1").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Get(kNs, "lease-1").status()));
  EXPECT_THAT(List({}), ElementsAre("lease-0"));
}

TEST_F(LeaseStoreTest, LeasesSurviveReopen) {
  ASSERT_TRUE(Create("kept", {{"k", "v"}}).ok());
  ASSERT_TRUE(store_->AddResource(kNs, "kept", {kDigest, "content"}).ok());
  Open();
  absl::StatusOr<Lease> got = store_->Get(kNs, "kept");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->labels, (Labels{{"k", "v"}}));
  EXPECT_THAT(Resources("kept"), ElementsAre(LeaseResource{kDigest, "content"}));
}

TEST_F(LeaseStoreTest, TemporaryLeasesBehaveAsOthersAndBecomeDurableWithTheNextWrite) {
  absl::StatusOr<Lease> created =
      store_->CreateTemporary(kNs, Lease{"temp", absl::Time(), {{"k", "v"}}});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(absl::IsAlreadyExists(
      store_->CreateTemporary(kNs, Lease{"temp", absl::Time(), {}}).status()));
  ASSERT_TRUE(store_->AddResource(kNs, "temp", {kDigest, "content"}).ok());  // a durable write
  Open();
  absl::StatusOr<Lease> got = store_->Get(kNs, "temp");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->labels, (Labels{{"k", "v"}}));
  ASSERT_TRUE(store_->DeleteTemporary(kNs, "temp").ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Get(kNs, "temp").status()));
  EXPECT_EQ(RawResourceRows("temp"), 0);
  EXPECT_TRUE(absl::IsNotFound(store_->DeleteTemporary(kNs, "temp")));
  ASSERT_TRUE(Create("other").ok());  // a durable write
  Open();
  EXPECT_THAT(List({}), ElementsAre("other"));
}

TEST_F(LeaseStoreTest, CreateOfATakenIdIsAlreadyExistsAndKeepsTheOriginal) {
  ASSERT_TRUE(Create("dup", {{"first", "1"}}).ok());
  absl::Status s = Create("dup", {{"second", "2"}});
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(store_->Get(kNs, "dup")->labels, (Labels{{"first", "1"}}));
}

TEST_F(LeaseStoreTest, MissingLeaseIsNotFoundEverywhere) {
  EXPECT_TRUE(absl::IsNotFound(store_->Get(kNs, "nope").status()));
  absl::Status s = store_->Delete(kNs, "nope");
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_EQ(s.message(), "lease \"nope\": not found");
  EXPECT_TRUE(absl::IsNotFound(store_->ListResources(kNs, "nope").status()));
  // The lease is checked before the resource, as containerd does.
  EXPECT_TRUE(absl::IsNotFound(store_->AddResource(kNs, "nope", {"x", "bogus"})));
  EXPECT_TRUE(absl::IsNotFound(store_->AddResource(kNs, "nope", {kDigest, "content"})));
  EXPECT_TRUE(absl::IsNotFound(store_->DeleteResource(kNs, "nope", {kDigest, "content"})));
}

// containerd 1.6 checks only that a lease ID is non-empty (metadata/leases.go
// calls no identifiers.Validate), and its own clients rely on that: the IDs
// leases.WithRandomID makes end in URL-safe base64, so "123-a_-Z" and
// "123--abc" are what `ctr images import` can send.
TEST_F(LeaseStoreTest, LeaseIdsFollowContainerdNotIdentifierRules) {
  struct Case {
    std::string id;
    absl::StatusCode want;
  };
  const std::vector<Case> cases = {
      {"", absl::StatusCode::kInvalidArgument},
      {"-x", absl::StatusCode::kOk},
      {"a..b", absl::StatusCode::kOk},
      {std::string(77, 'a'), absl::StatusCode::kOk},
      {"with space", absl::StatusCode::kOk},
      {"a/b", absl::StatusCode::kOk},
      {"123456789-a_-Z", absl::StatusCode::kOk},
      {"123456789--abc", absl::StatusCode::kOk},
      {std::string("nul\0byte", 8), absl::StatusCode::kOk},
      {std::string(kMaxLeaseIdLength, 'a'), absl::StatusCode::kOk},
      // Ours, not containerd's: a bound on what one id may cost.
      {std::string(kMaxLeaseIdLength + 1, 'a'), absl::StatusCode::kInvalidArgument},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("id \"", c.id, "\""));
    EXPECT_EQ(Create(c.id).code(), c.want);
    if (c.want != absl::StatusCode::kOk) continue;
    absl::StatusOr<Lease> got = store_->Get(kNs, c.id);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->id, c.id);
    ASSERT_TRUE(store_->AddResource(kNs, c.id, {"ref", "ingests"}).ok());
    EXPECT_THAT(Resources(c.id), ElementsAre(LeaseResource{"ref", "ingests"}));
  }
  EXPECT_EQ(List({}).size(), cases.size() - 2);  // all but the two refused
}

TEST_F(LeaseStoreTest, BadLabelsAreInvalidArgument) {
  const std::string key = "containerd.io/gc.expire";
  EXPECT_TRUE(Create("at-limit", {{key, std::string(kMaxLabelSize - key.size(), 'v')}}).ok());
  absl::Status s = Create("too-large", {{key, std::string(kMaxLabelSize - key.size() + 1, 'v')}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("too-large"), absl::string_view::npos) << s;
  EXPECT_TRUE(absl::IsInvalidArgument(Create("empty-key", {{"", "v"}})));
  EXPECT_THAT(List({}), ElementsAre("at-limit"));
}

TEST_F(LeaseStoreTest, ListFilters) {
  ASSERT_TRUE(Create("a", {{"containerd.io/gc.expire", "2024-01-01T00:00:00Z"}}).ok());
  ASSERT_TRUE(Create("b", {{"other", "x"}, {"a.b", "dotted"}}).ok());
  ASSERT_TRUE(Create("c").ok());
  struct Case {
    std::string name;
    std::vector<std::string> filters;
    std::vector<std::string> want;
  };
  const std::vector<Case> cases = {
      {"None", {}, {"a", "b", "c"}},
      {"Empty", {""}, {"a", "b", "c"}},
      {"IdPresent", {"id"}, {"a", "b", "c"}},
      {"IdEqual", {"id==a"}, {"a"}},
      {"IdNotEqual", {"id!=a"}, {"b", "c"}},
      {"IdRegexp", {"id~=^[bc]$"}, {"b", "c"}},
      {"QuotedExpireLabelPresent", {R"(labels."containerd.io/gc.expire")"}, {"a"}},
      {"QuotedExpireLabelEqual",
       {R"(labels."containerd.io/gc.expire"==2024-01-01T00:00:00Z)"},
       {"a"}},
      {"UnquotedDottedKey", {"labels.a.b==dotted"}, {"b"}},
      {"Or", {"id==a", "id==c"}, {"a", "c"}},
      {"And", {"id==b,labels.other==x"}, {"b"}},
      {"AndNoMatch", {"id==a,labels.other==x"}, {}},
      {"LabelNotEqualMatchesAbsent", {"labels.other!=x"}, {"a", "c"}},
      {"UnknownField", {"name==a"}, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(List(c.filters), c.want);
  }
}

TEST_F(LeaseStoreTest, MalformedFilterIsInvalidArgument) {
  ASSERT_TRUE(Create("a").ok());
  for (const std::vector<std::string>& filters :
       {std::vector<std::string>{R"(labels."unterminated)"}, {"id==a", "id~=("}, {"==a"}}) {
    SCOPED_TRACE(filters.back());
    absl::Status s = store_->List(kNs, filters).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  }
}

TEST_F(LeaseStoreTest, ResourcesAddListDelete) {
  ASSERT_TRUE(Create("l").ok());
  EXPECT_THAT(Resources("l"), IsEmpty());
  const std::vector<LeaseResource> added = {
      {"k2", "snapshots/zfs"},
      {"ref-1", "ingests"},
      {"k1", "snapshots/overlayfs"},
      {kDigest, "content"},
  };
  for (const LeaseResource& r : added) ASSERT_TRUE(store_->AddResource(kNs, "l", r).ok()) << r.type;
  ASSERT_TRUE(store_->AddResource(kNs, "l", {kDigest, "content"}).ok()) << "adding twice is Ok";
  // containerd's order: content, ingests, then snapshots by snapshotter name
  // (keys alone would put "zfs" before "overlayfs": types are length-prefixed).
  EXPECT_THAT(Resources("l"),
              ElementsAre(LeaseResource{kDigest, "content"}, LeaseResource{"ref-1", "ingests"},
                          LeaseResource{"k1", "snapshots/overlayfs"},
                          LeaseResource{"k2", "snapshots/zfs"}));

  ASSERT_TRUE(store_->DeleteResource(kNs, "l", {"ref-1", "ingests"}).ok());
  ASSERT_TRUE(store_->DeleteResource(kNs, "l", {"ref-1", "ingests"}).ok()) << "absent is Ok";
  ASSERT_TRUE(store_->DeleteResource(kNs, "l", {"k1", "snapshots/zfs"}).ok()) << "wrong type";
  EXPECT_THAT(Resources("l"), ElementsAre(LeaseResource{kDigest, "content"},
                                          LeaseResource{"k1", "snapshots/overlayfs"},
                                          LeaseResource{"k2", "snapshots/zfs"}));
}

TEST_F(LeaseStoreTest, ResourceValidation) {
  ASSERT_TRUE(Create("l").ok());
  struct Case {
    std::string type;
    std::string id;
    absl::StatusCode want;
  };
  const std::vector<Case> cases = {
      {"content", kDigest, absl::StatusCode::kOk},
      {"ingests", "default/1/layer-sha256:abc", absl::StatusCode::kOk},
      {"snapshots/overlayfs", "sha256:chain", absl::StatusCode::kOk},
      {"content", "sha256:short", absl::StatusCode::kInvalidArgument},
      {"content", "not a digest", absl::StatusCode::kInvalidArgument},
      {"content", "", absl::StatusCode::kInvalidArgument},
      {"content/x", kDigest, absl::StatusCode::kInvalidArgument},
      {"ingests", "", absl::StatusCode::kInvalidArgument},
      {"ingests/x", "ref", absl::StatusCode::kInvalidArgument},
      {"snapshots", "key", absl::StatusCode::kInvalidArgument},
      {"snapshots/", "key", absl::StatusCode::kInvalidArgument},
      {"snapshots/a/b", "key", absl::StatusCode::kInvalidArgument},
      {"snapshots/overlayfs", "", absl::StatusCode::kInvalidArgument},
      // containerd: "resource type ... not supported yet" (ErrNotImplemented).
      {"", "x", absl::StatusCode::kUnimplemented},
      {"containers", "x", absl::StatusCode::kUnimplemented},
      {"Content", kDigest, absl::StatusCode::kUnimplemented},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.type, " \"", c.id, "\""));
    const LeaseResource r{c.id, c.type};
    EXPECT_EQ(ValidateLeaseResource(r).code(), c.want);
    EXPECT_EQ(store_->AddResource(kNs, "l", r).code(), c.want);
    EXPECT_EQ(store_->DeleteResource(kNs, "l", r).code(), c.want);
  }
  EXPECT_THAT(Resources("l"), IsEmpty()) << "each valid one was deleted again";
}

TEST_F(LeaseStoreTest, DeletingALeaseDeletesItsResources) {
  ASSERT_TRUE(Create("l").ok());
  ASSERT_TRUE(Create("l2").ok());
  ASSERT_TRUE(store_->AddResource(kNs, "l", {kDigest, "content"}).ok());
  ASSERT_TRUE(store_->AddResource(kNs, "l", {"k", "snapshots/overlayfs"}).ok());
  ASSERT_TRUE(store_->AddResource(kNs, "l2", {kDigest, "content"}).ok());
  ASSERT_EQ(RawResourceRows("l"), 2);

  ASSERT_TRUE(store_->Delete(kNs, "l").ok());
  EXPECT_EQ(RawResourceRows("l"), 0);
  EXPECT_THAT(Resources("l2"), ElementsAre(LeaseResource{kDigest, "content"}));
  ASSERT_TRUE(Create("l").ok());
  EXPECT_THAT(Resources("l"), IsEmpty());
}

TEST_F(LeaseStoreTest, NamespacesAreSeparate) {
  ASSERT_TRUE(Create("same", {{"ns", "one"}}, "one").ok());
  ASSERT_TRUE(Create("same", {{"ns", "two"}}, "two").ok());
  ASSERT_TRUE(Create("only-two", {}, "two").ok());
  ASSERT_TRUE(store_->AddResource("one", "same", {kDigest, "content"}).ok());

  EXPECT_THAT(List({}, "one"), ElementsAre("same"));
  EXPECT_THAT(List({}, "two"), ElementsAre("only-two", "same"));
  EXPECT_THAT(List({}, "three"), IsEmpty());
  EXPECT_EQ(store_->Get("two", "same")->labels, (Labels{{"ns", "two"}}));
  EXPECT_THAT(Resources("same", "two"), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(store_->Get("one", "only-two").status()));
  EXPECT_TRUE(absl::IsNotFound(store_->AddResource("one", "only-two", {"r", "ingests"})));

  ASSERT_TRUE(store_->Delete("one", "same").ok());
  EXPECT_TRUE(store_->Get("two", "same").ok());
}

TEST_F(LeaseStoreTest, StageAddResourceWritesWithTheCallersBatch) {
  ASSERT_TRUE(Create("l").ok());
  rocksdb::WriteBatch batch;
  batch.Put(db_->cf(Cf::kDefault), "caller-row", "x");
  store_->StageAddResource(&batch, kNs, "l", {kDigest, "content"});
  EXPECT_THAT(Resources("l"), IsEmpty()) << "nothing is written until the caller writes";

  ASSERT_TRUE(db_->Write(&batch).ok());
  EXPECT_THAT(Resources("l"), ElementsAre(LeaseResource{kDigest, "content"}));
  std::string value;
  EXPECT_TRUE(db_->Get(Cf::kDefault, "caller-row", &value).ok());
  ASSERT_TRUE(store_->Delete(kNs, "l").ok());
  EXPECT_EQ(RawResourceRows("l"), 0);
}

// A StageAddResource that checked the lease, then lost a race with Delete,
// leaves a row behind; a new lease of that ID must not inherit it.
TEST_F(LeaseStoreTest, CreateClearsRowsLeftByARacingStage) {
  rocksdb::WriteBatch batch;
  store_->StageAddResource(&batch, kNs, "late", {kDigest, "content"});
  ASSERT_TRUE(db_->Write(&batch).ok());
  ASSERT_EQ(RawResourceRows("late"), 1);
  ASSERT_TRUE(Create("late").ok());
  EXPECT_THAT(Resources("late"), IsEmpty());
}

// The [leases] value: format 1, created_at as u64 big-endian Unix nanos, then
// the label count and each label as lp(key) lp(value), keys sorted.
const std::string kGoldenRecord = std::string(
    "\x01"
    "\x17\x97\x9c\xfe\x36\x2a\x00\x05"
    "\x00\x00\x00\x02"
    "\x00\x00\x00\x01"
    "a"
    "\x00\x00\x00\x02"
    "bc"
    "\x00\x00\x00\x01"
    "d"
    "\x00\x00\x00\x01"
    "e",
    1 + 8 + 4 + (4 + 1 + 4 + 2) + (4 + 1 + 4 + 1));

TEST_F(LeaseStoreTest, RecordGoldenBytes) {
  ASSERT_EQ(absl::ToUnixNanos(clock_.Now()), 0x17979cfe362a0005);
  ASSERT_TRUE(Create("g", {{"d", "e"}, {"empty", ""}, {"a", "bc"}}).ok());
  std::string value;
  ASSERT_TRUE(db_->Get(Cf::kLeases, LeaseKey(kNs, "g"), &value).ok());
  EXPECT_EQ(value, kGoldenRecord);

  rocksdb::WriteBatch batch;
  batch.Put(db_->cf(Cf::kLeases), LeaseKey(kNs, "golden"), kGoldenRecord);
  ASSERT_TRUE(db_->Write(&batch).ok());
  absl::StatusOr<Lease> got = store_->Get(kNs, "golden");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->created_at, absl::FromUnixNanos(0x17979cfe362a0005));
  EXPECT_EQ(got->labels, (Labels{{"a", "bc"}, {"d", "e"}}));
}

TEST_F(LeaseStoreTest, MalformedRecordIsDataLoss) {
  for (const std::string& bad :
       {std::string(), std::string("\x02") + kGoldenRecord.substr(1),
        kGoldenRecord.substr(0, kGoldenRecord.size() - 1), kGoldenRecord + "x"}) {
    rocksdb::WriteBatch batch;
    batch.Put(db_->cf(Cf::kLeases), LeaseKey(kNs, "bad"), bad);
    ASSERT_TRUE(db_->Write(&batch).ok());
    EXPECT_TRUE(absl::IsDataLoss(store_->Get(kNs, "bad").status())) << bad.size();
    EXPECT_TRUE(absl::IsDataLoss(store_->List(kNs, {}).status()));
  }
}

}  // namespace
}  // namespace imaged::store
