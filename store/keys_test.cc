// Golden bytes for every key shape and record: a change here is a schema change.
#include "store/keys.h"

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "store/records.h"

namespace imaged::store {
namespace {

std::string Hex(absl::string_view s) { return absl::BytesToHexString(s); }

TEST(KeysTest, ColumnFamiliesMatchTheEnum) {
  ASSERT_EQ(ColumnFamilyNames().size(), static_cast<size_t>(Cf::kCount));
  EXPECT_EQ(ColumnFamilyNames()[0], "default");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kContent)], "content");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kBlobOwners)], "blob_owners");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kIngests)], "ingests");
}

TEST(KeysTest, ContentKeyGolden) {
  EXPECT_EQ(Hex(ContentKey("k8s.io", "sha256:ab")), "000000066b38732e696f" "7368613235363a6162");
  EXPECT_EQ(Hex(ContentKey("", "sha256:ab")), "00000000" "7368613235363a6162");
  EXPECT_EQ(Hex(NamespacePrefix("ns")), "000000026e73");
}

TEST(KeysTest, BlobOwnerKeyGolden) {
  EXPECT_EQ(Hex(BlobOwnerKey("sha256:ab", "ns")), "00000009" "7368613235363a6162" "6e73");
  EXPECT_EQ(Hex(BlobOwnerPrefix("sha256:ab")), "000000097368613235363a6162");
}

TEST(KeysTest, IngestKeyGoldenAndDirName) {
  EXPECT_EQ(Hex(IngestKey("ns", std::string("a\0/", 3))), "000000026e73" "61002f");
  // sha256 of the key bytes 00000000 "ref"
  EXPECT_EQ(IngestDirName("", "ref").size(), 64u);
  EXPECT_NE(IngestDirName("", std::string("ns\0ref", 6)), IngestDirName("ns", "ref"));
}

TEST(KeysTest, NamespacePrefixesDoNotOverlap) {
  std::string a = NamespacePrefix("k8s");
  std::string key = ContentKey("k8s.io", "sha256:ab");
  EXPECT_NE(key.compare(0, a.size(), a), 0);
}

TEST(KeysTest, ParseNamespacedKeyRoundTrips) {
  auto k = ParseNamespacedKey(IngestKey("default", "x/y"));
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->ns, "default");
  EXPECT_EQ(k->name, "x/y");
  EXPECT_FALSE(ParseNamespacedKey("\x00\x00").has_value());
  EXPECT_FALSE(ParseNamespacedKey(std::string("\0\0\0\x09short", 9)).has_value());
}

TEST(KeysTest, PrefixUpperBound) {
  EXPECT_EQ(PrefixUpperBound("ab"), "ac");
  EXPECT_EQ(PrefixUpperBound(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixUpperBound(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(PrefixUpperBound(""), "");
}

TEST(RecordsTest, ContentRecordGolden) {
  ContentRecord r{5, absl::FromUnixNanos(1), absl::FromUnixNanos(2), {{"k", "v"}}};
  std::string bytes = EncodeContentRecord(r);
  EXPECT_EQ(Hex(bytes),
            "01" "0000000000000005" "0000000000000001" "0000000000000002" "00000001"
            "000000016b" "0000000176");
  absl::StatusOr<ContentRecord> back = DecodeContentRecord(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->size, 5);
  EXPECT_EQ(back->updated_at, absl::FromUnixNanos(2));
  EXPECT_EQ(back->labels, r.labels);
  EXPECT_TRUE(absl::IsDataLoss(DecodeContentRecord(bytes.substr(0, bytes.size() - 1)).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeContentRecord("\x02").status()));
}

TEST(RecordsTest, IngestRecordGolden) {
  IngestRecord r{10, "sha256:ab", absl::FromUnixNanos(3), absl::FromUnixNanos(4)};
  std::string bytes = EncodeIngestRecord(r);
  EXPECT_EQ(Hex(bytes), "01" "000000000000000a" "00000009" "7368613235363a6162"
                        "0000000000000003" "0000000000000004");
  absl::StatusOr<IngestRecord> back = DecodeIngestRecord(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->total, 10);
  EXPECT_EQ(back->expected, "sha256:ab");
  EXPECT_EQ(back->started_at, absl::FromUnixNanos(3));
  EXPECT_TRUE(absl::IsDataLoss(DecodeIngestRecord(bytes + "x").status()));
}

}  // namespace
}  // namespace imaged::store
