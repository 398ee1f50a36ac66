#include "store/digest.h"

#include "gtest/gtest.h"

namespace imaged::store {
namespace {

TEST(DigestTest, KnownValues) {
  EXPECT_EQ(Sha256::Of(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, IncrementalMatchesOneShotAndStaysOpen) {
  Sha256 h;
  h.Update("ab");
  EXPECT_EQ(h.Digest(), Sha256::Of("ab"));
  h.Update("c");
  EXPECT_EQ(h.Digest(), Sha256::Of("abc"));
  h.Reset();
  EXPECT_EQ(h.Digest(), Sha256::Of(""));
}

TEST(DigestTest, Validate) {
  const std::string good = Sha256::Of("x");
  EXPECT_TRUE(ValidateDigest(good).ok());
  struct Case {
    std::string digest;
    const char* why;
  };
  const Case bad[] = {
      {"", "empty"},
      {"sha256", "no colon"},
      {"sha256:", "no hex"},
      {good.substr(0, good.size() - 1), "short"},
      {good + "a", "long"},
      {"sha256:" + std::string(64, 'A'), "uppercase"},
      {"sha256:" + std::string(63, 'a') + "g", "not hex"},
      {"sha512:" + std::string(128, 'a'), "unsupported algorithm"},
      {"Sha256:" + good.substr(7), "algorithm case"},
  };
  for (const Case& c : bad) {
    absl::Status s = ValidateDigest(c.digest);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.why;
  }
}

}  // namespace
}  // namespace imaged::store
