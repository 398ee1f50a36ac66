#include "store/content_store_contract.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "store/digest.h"

namespace imaged::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::string_view kNs = "default";
const std::string kData = "hello, imaged content store";

std::vector<std::string> Digests(ContentStore& store, absl::string_view ns,
                                 std::vector<std::string> filters = {},
                                 absl::Status* status = nullptr) {
  std::vector<std::string> out;
  absl::Status s = store.Walk(ns, filters, [&](const ContentInfo& info) {
    out.push_back(info.digest);
    return absl::OkStatus();
  });
  if (status != nullptr) *status = s;
  return out;
}

}  // namespace

absl::Status ContentStoreContract::Put(absl::string_view ns, absl::string_view ref,
                                       absl::string_view data, const Labels& labels) {
  absl::StatusOr<std::unique_ptr<ContentWriter>> w =
      store().Writer(ns, ref, static_cast<int64_t>(data.size()), Sha256::Of(data));
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < data.size(); i += 5) {
    if (absl::Status s = (*w)->Write(data.substr(i, 5)); !s.ok()) return s;
  }
  return (*w)->Commit(static_cast<int64_t>(data.size()), Sha256::Of(data), labels);
}

absl::StatusOr<std::string> ContentStoreContract::ReadAll(absl::string_view ns,
                                                          absl::string_view digest, size_t chunk) {
  absl::StatusOr<std::unique_ptr<ContentReader>> r = store().Reader(ns, digest);
  if (!r.ok()) return r.status();
  std::string all, part;
  for (int64_t off = 0;; off += static_cast<int64_t>(part.size())) {
    if (absl::Status s = (*r)->ReadAt(off, chunk, &part); !s.ok()) return s;
    if (part.empty()) break;
    all += part;
  }
  return all;
}

TEST_P(ContentStoreContract, CommitThenInfoAndRead) {
  ASSERT_TRUE(Put(kNs, "ref-1", kData, {{"a", "1"}}).ok());
  absl::StatusOr<ContentInfo> info = store().Info(kNs, Sha256::Of(kData));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, static_cast<int64_t>(kData.size()));
  EXPECT_THAT(info->labels, ElementsAre(Pair("a", "1")));
  EXPECT_EQ(ReadAll(kNs, Sha256::Of(kData)).value_or(""), kData);

  absl::StatusOr<std::unique_ptr<ContentReader>> r = store().Reader(kNs, Sha256::Of(kData));
  ASSERT_TRUE(r.ok());
  std::string part;
  ASSERT_TRUE((*r)->ReadAt(7, 6, &part).ok());
  EXPECT_EQ(part, "imaged");
  ASSERT_TRUE((*r)->ReadAt(static_cast<int64_t>(kData.size()) - 3, 100, &part).ok());
  EXPECT_EQ(part, "ore");
  EXPECT_TRUE(absl::IsOutOfRange((*r)->ReadAt(static_cast<int64_t>(kData.size()) + 1, 1, &part)));
  // The ingest is gone once committed.
  EXPECT_TRUE(absl::IsNotFound(store().Status(kNs, "ref-1").status()));
}

TEST_P(ContentStoreContract, EmptyBlobCommits) {
  ASSERT_TRUE(Put(kNs, "empty", "").ok());
  absl::StatusOr<ContentInfo> info = store().Info(kNs, Sha256::Of(""));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 0);
}

TEST_P(ContentStoreContract, CommitWithWrongSizeIsFailedPreconditionAndStoresNothing) {
  auto w = store().Writer(kNs, "ref", 0, "");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(kData).ok());
  absl::Status s = (*w)->Commit(static_cast<int64_t>(kData.size()) + 1, "", {});
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  w->reset();
  EXPECT_TRUE(absl::IsNotFound(store().Info(kNs, Sha256::Of(kData)).status()));
}

TEST_P(ContentStoreContract, CommitWithWrongDigestIsFailedPreconditionAndStoresNothing) {
  auto w = store().Writer(kNs, "ref", 0, "");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(kData).ok());
  absl::Status s = (*w)->Commit(0, Sha256::Of("other"), {});
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  w->reset();
  EXPECT_THAT(Digests(store(), kNs), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(store().Info(kNs, Sha256::Of("other")).status()));
}

TEST_P(ContentStoreContract, WriterExpectingHeldDigestIsAlreadyExists) {
  ASSERT_TRUE(Put(kNs, "ref", kData).ok());
  absl::Status s = store().Writer(kNs, "ref-2", 0, Sha256::Of(kData)).status();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
}

TEST_P(ContentStoreContract, CommittingHeldDigestIsAlreadyExistsAndDropsIngest) {
  ASSERT_TRUE(Put(kNs, "ref", kData).ok());
  auto w = store().Writer(kNs, "ref-2", 0, "");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(kData).ok());
  absl::Status s = (*w)->Commit(0, "", {});
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  w->reset();
  EXPECT_TRUE(absl::IsNotFound(store().Status(kNs, "ref-2").status()));
}

TEST_P(ContentStoreContract, IngestResumesAtItsOffset) {
  {
    auto w = store().Writer(kNs, "resume", static_cast<int64_t>(kData.size()), "");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write(kData.substr(0, 10)).ok());
  }
  absl::StatusOr<IngestStatus> st = store().Status(kNs, "resume");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->offset, 10);
  EXPECT_EQ(st->total, static_cast<int64_t>(kData.size()));

  auto w = store().Writer(kNs, "resume", 0, "");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->Status()->offset, 10);
  EXPECT_EQ((*w)->Digest(), Sha256::Of(kData.substr(0, 10)));
  ASSERT_TRUE((*w)->Write(kData.substr(10)).ok());
  ASSERT_TRUE((*w)->Commit(static_cast<int64_t>(kData.size()), Sha256::Of(kData), {}).ok());
  EXPECT_EQ(ReadAll(kNs, Sha256::Of(kData)).value_or(""), kData);
}

TEST_P(ContentStoreContract, TruncateToZeroRestartsTheIngest) {
  auto w = store().Writer(kNs, "restart", 0, "");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("garbage").ok());
  ASSERT_TRUE((*w)->Truncate(0).ok());
  ASSERT_TRUE((*w)->Write(kData).ok());
  ASSERT_TRUE((*w)->Commit(0, Sha256::Of(kData), {}).ok());
  EXPECT_EQ(ReadAll(kNs, Sha256::Of(kData)).value_or(""), kData);
}

TEST_P(ContentStoreContract, CommitWholeReplacesWhatTheIngestHeldAndCleansUpOnFailure) {
  auto w = store().Writer(kNs, "whole", 0, "");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("stale bytes of an earlier try").ok());
  ASSERT_TRUE(CommitWhole(store(), kNs, "whole", *std::move(w), kData, Sha256::Of(kData)).ok());
  EXPECT_EQ(ReadAll(kNs, Sha256::Of(kData)).value_or(""), kData);

  // Bytes that are not the blob expected: refused, and no ingest is left.
  w = store().Writer(kNs, "whole-bad", 0, "");
  ASSERT_TRUE(w.ok());
  absl::Status s =
      CommitWhole(store(), kNs, "whole-bad", *std::move(w), "not it", Sha256::Of("other"));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(store().Status(kNs, "whole-bad").status()));

  // Committed meanwhile by someone else: AlreadyExists, which counts as written.
  w = store().Writer(kNs, "whole-again", 0, "");
  ASSERT_TRUE(w.ok());
  s = CommitWhole(store(), kNs, "whole-again", *std::move(w), kData, Sha256::Of(kData));
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(store().Status(kNs, "whole-again").status()));
}

TEST_P(ContentStoreContract, SecondWriterOfARefIsUnavailable) {
  auto first = store().Writer(kNs, "busy", 0, "");
  ASSERT_TRUE(first.ok());
  absl::Status s = store().Writer(kNs, "busy", 0, "").status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  first->reset();
  EXPECT_TRUE(store().Writer(kNs, "busy", 0, "").ok());
}

TEST_P(ContentStoreContract, AbortRemovesTheIngest) {
  {
    auto w = store().Writer(kNs, "gone", 0, "");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("x").ok());
  }
  ASSERT_TRUE(store().Abort(kNs, "gone").ok());
  EXPECT_TRUE(absl::IsNotFound(store().Status(kNs, "gone").status()));
  EXPECT_TRUE(absl::IsNotFound(store().Abort(kNs, "gone")));
}

TEST_P(ContentStoreContract, ListStatusesFiltersOnRef) {
  for (const char* ref : {"layer-1", "layer-2", "config"}) {
    ASSERT_TRUE(store().Writer(kNs, ref, 0, "").ok());
  }
  auto refs = [&](std::vector<std::string> filters) {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<IngestStatus>> st = store().ListStatuses(kNs, filters);
    EXPECT_TRUE(st.ok()) << st.status();
    for (const auto& s : st.value_or(std::vector<IngestStatus>{})) out.push_back(s.ref);
    return out;
  };
  EXPECT_THAT(refs({}), UnorderedElementsAre("layer-1", "layer-2", "config"));
  EXPECT_THAT(refs({"ref~=layer"}), UnorderedElementsAre("layer-1", "layer-2"));
  EXPECT_THAT(refs({"ref==config"}), ElementsAre("config"));
  EXPECT_THAT(refs({"ref==config", "ref==layer-2"}), UnorderedElementsAre("config", "layer-2"));
  EXPECT_TRUE(absl::IsInvalidArgument(store().ListStatuses(kNs, {"ref=="}).status()));
}

TEST_P(ContentStoreContract, UpdateLabelsByFieldPath) {
  ASSERT_TRUE(Put(kNs, "ref", kData, {{"a", "1"}, {"b", "2"}}).ok());
  const std::string d = Sha256::Of(kData);

  ContentInfo change{d, 0, {}, {}, {{"b", "20"}, {"c", "3"}}};
  auto info = store().Update(kNs, change, {"labels.b"});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->labels, ElementsAre(Pair("a", "1"), Pair("b", "20")));

  info = store().Update(kNs, ContentInfo{d, 0, {}, {}, {}}, {"labels.a"});
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->labels, ElementsAre(Pair("b", "20")));

  info = store().Update(kNs, change, {});
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->labels, ElementsAre(Pair("b", "20"), Pair("c", "3")));

  EXPECT_TRUE(absl::IsInvalidArgument(store().Update(kNs, change, {"size"}).status()));
  ContentInfo huge{d, 0, {}, {}, {{"big", std::string(4096, 'x')}}};
  EXPECT_TRUE(absl::IsInvalidArgument(store().Update(kNs, huge, {"labels.big"}).status()));
  EXPECT_THAT(store().Info(kNs, d)->labels, ElementsAre(Pair("b", "20"), Pair("c", "3")));
  EXPECT_TRUE(absl::IsNotFound(
      store().Update(kNs, ContentInfo{Sha256::Of("nope"), 0, {}, {}, {}}, {}).status()));
}

TEST_P(ContentStoreContract, WalkAppliesFilters) {
  const std::string a = "blob a", b = "blob b", c = "blob c";
  ASSERT_TRUE(Put(kNs, "a", a, {{"kind", "layer"}}).ok());
  ASSERT_TRUE(Put(kNs, "b", b, {{"kind", "config"}, {"io.x/y", "z"}}).ok());
  ASSERT_TRUE(Put(kNs, "c", c).ok());
  EXPECT_THAT(Digests(store(), kNs), UnorderedElementsAre(Sha256::Of(a), Sha256::Of(b), Sha256::Of(c)));
  EXPECT_THAT(Digests(store(), kNs, {"labels.kind==layer"}), ElementsAre(Sha256::Of(a)));
  EXPECT_THAT(Digests(store(), kNs, {"labels.kind"}),
              UnorderedElementsAre(Sha256::Of(a), Sha256::Of(b)));
  EXPECT_THAT(Digests(store(), kNs, {"labels.kind!=layer"}),
              UnorderedElementsAre(Sha256::Of(b), Sha256::Of(c)));
  EXPECT_THAT(Digests(store(), kNs, {"labels.\"io.x/y\"==z"}), ElementsAre(Sha256::Of(b)));
  EXPECT_THAT(Digests(store(), kNs, {absl::StrCat("digest==", Sha256::Of(c)), "labels.kind==config"}),
              UnorderedElementsAre(Sha256::Of(b), Sha256::Of(c)));
  EXPECT_THAT(Digests(store(), kNs, {"labels.kind==layer,labels.kind==config"}), IsEmpty());
  absl::Status s;
  Digests(store(), kNs, {"labels.kind=="}, &s);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

TEST_P(ContentStoreContract, DeleteRemovesAndMissingIsNotFound) {
  ASSERT_TRUE(Put(kNs, "ref", kData).ok());
  const std::string d = Sha256::Of(kData);
  ASSERT_TRUE(store().Delete(kNs, d).ok());
  EXPECT_TRUE(absl::IsNotFound(store().Info(kNs, d).status()));
  EXPECT_TRUE(absl::IsNotFound(store().Reader(kNs, d).status()));
  EXPECT_TRUE(absl::IsNotFound(store().Delete(kNs, d)));
  // And it can come back.
  ASSERT_TRUE(Put(kNs, "ref", kData).ok());
  EXPECT_EQ(ReadAll(kNs, d).value_or(""), kData);
}

TEST_P(ContentStoreContract, NamespacesSeeOnlyTheirOwnContent) {
  ASSERT_TRUE(Put("a", "ref", kData, {{"owner", "a"}}).ok());
  const std::string d = Sha256::Of(kData);
  EXPECT_TRUE(absl::IsNotFound(store().Info("b", d).status()));
  EXPECT_THAT(Digests(store(), "b"), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(store().Info("", d).status()));

  // Expecting a digest another namespace holds shares it without a transfer.
  EXPECT_TRUE(absl::IsAlreadyExists(store().Writer("b", "ref", 0, d).status()));
  absl::StatusOr<ContentInfo> info = store().Info("b", d);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->labels, IsEmpty());  // labels are per namespace

  ASSERT_TRUE(store().Delete("a", d).ok());
  EXPECT_EQ(ReadAll("b", d).value_or(""), kData);
  EXPECT_TRUE(absl::IsNotFound(store().Info("a", d).status()));
}

TEST_P(ContentStoreContract, StatusOfMissingIngestIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(store().Status(kNs, "nope").status()));
}

TEST_P(ContentStoreContract, OddRefsAreLegal) {
  const std::vector<std::string> refs = {"default/1/layer-sha256:abc", "../../../../etc/passwd",
                                         std::string("nul\0byte", 8), "a//b/./c/..", "/"};
  for (const std::string& ref : refs) {
    std::string data = "data for " + ref;
    ASSERT_TRUE(Put(kNs, ref, data).ok()) << absl::CHexEscape(ref);
    EXPECT_EQ(ReadAll(kNs, Sha256::Of(data)).value_or(""), data);
  }
}

TEST_P(ContentStoreContract, BadInputsAreInvalidArgumentAndChangeNothing) {
  ASSERT_TRUE(Put(kNs, "ref", kData, {{"keep", "me"}}).ok());
  const std::string d = Sha256::Of(kData);
  const std::vector<std::string> bad_digests = {
      "", "sha256", "sha256:", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e",
      "sha256:" + std::string(64, 'G'), "SHA256:" + std::string(d.substr(7)),
      d + "0", "sha512:" + std::string(128, 'a')};
  for (const std::string& bad : bad_digests) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(store().Info(kNs, bad).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(store().Delete(kNs, bad)));
    EXPECT_TRUE(absl::IsInvalidArgument(store().Reader(kNs, bad).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(store().Update(kNs, ContentInfo{bad, 0, {}, {}, {}}, {}).status()));
    if (!bad.empty()) {
      EXPECT_TRUE(absl::IsInvalidArgument(store().Writer(kNs, "w", 0, bad).status()));
    }
  }
  EXPECT_TRUE(absl::IsInvalidArgument(store().Writer(kNs, "", 0, "").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(store().Status(kNs, "").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(store().Abort(kNs, "")));
  EXPECT_TRUE(absl::IsInvalidArgument(store().Writer(kNs, "neg", -1, "").status()));

  auto w = store().Writer(kNs, "labels", 0, "");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("labelled").ok());
  absl::Status s = (*w)->Commit(0, "", {{"k", std::string(4096, 'v')}});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  w->reset();
  EXPECT_TRUE(absl::IsNotFound(store().Info(kNs, Sha256::Of("labelled")).status()));

  absl::StatusOr<std::unique_ptr<ContentReader>> r = store().Reader(kNs, d);
  ASSERT_TRUE(r.ok());
  std::string out;
  EXPECT_TRUE(absl::IsInvalidArgument((*r)->ReadAt(-1, 10, &out)));

  absl::StatusOr<ContentInfo> info = store().Info(kNs, d);
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->labels, ElementsAre(Pair("keep", "me")));
  EXPECT_EQ(ReadAll(kNs, d).value_or(""), kData);
}

}  // namespace imaged::store
