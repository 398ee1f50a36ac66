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
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kImages)], "images");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kCriIndex)], "cri_index");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kCriConfigs)], "cri_configs");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kUnresolved)], "unresolved");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kAwaiting)], "awaiting");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kLeases)], "leases");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kLeaseResources)], "lease_resources");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kCriNames)], "cri_names");
  EXPECT_EQ(ColumnFamilyNames()[static_cast<int>(Cf::kCriStatus)], "cri_status");
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
  EXPECT_EQ(IngestFileName("", "ref").size(), 64u);
  EXPECT_NE(IngestFileName("", std::string("ns\0ref", 6)), IngestFileName("ns", "ref"));
}

TEST(KeysTest, NamespacePrefixesDoNotOverlap) {
  std::string a = NamespacePrefix("k8s");
  std::string key = ContentKey("k8s.io", "sha256:ab");
  EXPECT_NE(key.compare(0, a.size(), a), 0);
}

TEST(KeysTest, ParseNamespacedKeyRoundTrips) {
  const std::string key = IngestKey("default", "x/y");
  auto k = ParseNamespacedKey(key);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->ns, "default");
  EXPECT_EQ(k->name, "x/y");
  EXPECT_FALSE(ParseNamespacedKey("\x00\x00").has_value());
  EXPECT_FALSE(ParseNamespacedKey(std::string("\0\0\0\x09short", 9)).has_value());
}

TEST(KeysTest, ImageKeyGolden) {
  EXPECT_EQ(Hex(ImageKey("ns", "a:b")), "000000026e73" "613a62");
}

TEST(KeysTest, CriIndexKeysGolden) {
  EXPECT_EQ(Hex(CriIdPrefix("ns", "sha256:ab")), "000000026e73" "00000009" "7368613235363a6162");
  EXPECT_EQ(Hex(CriNameKey("ns", "sha256:ab", "x")),
            "000000026e73" "00000009" "7368613235363a6162" "78");
  const std::string name_key = CriNameKey("k8s.io", "sha256:ab", "docker.io/x:1");
  auto k = ParseCriIndexKey(name_key);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->ns, "k8s.io");
  EXPECT_EQ(k->image_id, "sha256:ab");
  EXPECT_EQ(k->name, "docker.io/x:1");
  const std::string meta_key = CriIdPrefix("k8s.io", "sha256:ab");
  auto meta = ParseCriIndexKey(meta_key);
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->name, "");
  // The meta row sorts before every name of its ID.
  EXPECT_LT(CriIdPrefix("n", "sha256:ab"), CriNameKey("n", "sha256:ab", "\x01"));
}

TEST(KeysTest, AwaitingKeyGolden) {
  EXPECT_EQ(Hex(AwaitingKey("sha256:ab", "ns", "x")),
            "00000009" "7368613235363a6162" "000000026e73" "78");
  std::string key = AwaitingKey("sha256:ab", "ns", "x");
  auto k = ParseAwaitingSuffix(absl::string_view(key).substr(AwaitingPrefix("sha256:ab").size()));
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->ns, "ns");
  EXPECT_EQ(k->name, "x");
}

TEST(KeysTest, LeaseKeysGolden) {
  EXPECT_EQ(Hex(LeaseKey("ns", "l1")), "000000026e73" "6c31");
  const std::string key = LeaseResourceKey("ns", "l1", "content", "sha256:ab");
  EXPECT_EQ(Hex(key), "000000026e73" "000000026c31" "00000007636f6e74656e74" "7368613235363a6162");
  auto s = ParseLeaseResourceSuffix(absl::string_view(key).substr(LeaseResourcePrefix("ns", "l1").size()));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->type, "content");
  EXPECT_EQ(s->id, "sha256:ab");
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

TEST(RecordsTest, ImageRecordGolden) {
  ImageRecord r{{{"l", "v"}}, "mt", "sha256:ab", 7, {{"a", "b"}}, absl::FromUnixNanos(1),
                absl::FromUnixNanos(2)};
  std::string bytes = EncodeImageRecord(r);
  EXPECT_EQ(Hex(bytes), "01" "00000001" "000000016c" "0000000176" "00000002" "6d74"
                        "00000009" "7368613235363a6162" "0000000000000007" "00000001"
                        "0000000161" "0000000162" "0000000000000001" "0000000000000002");
  absl::StatusOr<ImageRecord> back = DecodeImageRecord(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->labels, r.labels);
  EXPECT_EQ(back->annotations, r.annotations);
  EXPECT_EQ(back->digest, "sha256:ab");
  EXPECT_EQ(back->size, 7);
  EXPECT_TRUE(absl::IsDataLoss(DecodeImageRecord(bytes.substr(1)).status()));
}

TEST(RecordsTest, CriMetaAndNameRecordsGolden) {
  CriMetaRecord m{9, "sha256:c", true, 1000, ""};
  std::string bytes = EncodeCriMetaRecord(m);
  EXPECT_EQ(Hex(bytes), "01" "0000000000000009" "00000008" "7368613235363a63" "01"
                        "00000000000003e8" "00000000");
  absl::StatusOr<CriMetaRecord> back = DecodeCriMetaRecord(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->has_uid);
  EXPECT_EQ(back->uid, 1000);
  EXPECT_EQ(Hex(EncodeNameRecord(NameRecord{true, 1, "a:1"})), "0101" "01" "613a31");
  absl::StatusOr<NameRecord> name = DecodeNameRecord(EncodeNameRecord(NameRecord{true, 2, "x"}));
  ASSERT_TRUE(name.ok());
  EXPECT_TRUE(name->pinned);
  EXPECT_EQ(name->kind, 2);
  EXPECT_EQ(name->ref, "x");
  EXPECT_TRUE(absl::IsDataLoss(DecodeNameRecord("\x01\x00").status()));
}

TEST(RecordsTest, CriStatusRecordGolden) {
  const std::string meta = EncodeCriMetaRecord(CriMetaRecord{9, "", false, 0, "app"});
  const std::string row = EncodeNameRecord(NameRecord{true, 1, "a:1"});
  std::string bytes = EncodeCriStatusRecord(meta, {{"n", row}});
  EXPECT_EQ(Hex(bytes), "01" "0000001d" + Hex(meta) + "00000001" "00000001" "6e" "00000006" +
                            Hex(row));
  absl::StatusOr<CriStatusRecord> back = DecodeCriStatusRecord(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->meta.size, 9);
  EXPECT_EQ(back->meta.username, "app");
  ASSERT_EQ(back->names.size(), 1u);
  EXPECT_EQ(back->names[0].first, "n");
  EXPECT_TRUE(back->names[0].second.pinned);
  EXPECT_EQ(back->names[0].second.ref, "a:1");
  // Truncated anywhere, a count larger than the bytes, trailing bytes.
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeCriStatusRecord(bytes.substr(0, n)).status())) << n;
  }
  std::string huge = bytes;
  huge[5 + meta.size() + 0] = '\x7f';
  EXPECT_TRUE(absl::IsDataLoss(DecodeCriStatusRecord(huge).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeCriStatusRecord(bytes + "x").status()));
}

}  // namespace
}  // namespace imaged::store
