#include "store/limits.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "store/labels.h"

namespace imaged::store {
namespace {

TEST(LimitsTest, IdentifiersFollowContainerdsRule) {
  for (const char* ok : {"k8s.io", "default", "a", "a-b_c.d", "imaged-pull-1733400000-7"}) {
    EXPECT_TRUE(ValidateIdentifier("namespace", ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateIdentifier("namespace", std::string(76, 'a')).ok());
  for (const std::string& bad : {std::string(""), std::string(77, 'a'), std::string("-a"),
                                 std::string("a-"), std::string("a..b"), std::string("a b"),
                                 std::string("a/b"), std::string("a\0b", 3)}) {
    absl::Status s = ValidateIdentifier("namespace", bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_NE(s.message().find("namespace"), absl::string_view::npos) << s;
  }
}

// containerd 1.6 and 2.x take any non-empty lease id; ctr's random ids
// ("123--abc") break the identifier rule. Only the length is ours.
TEST(LimitsTest, LeaseIdsAreAnyBytesUpToTheCap) {
  for (const std::string& ok : {std::string("123456789--abc"), std::string("a/b c"),
                                std::string("nul\0byte", 8), std::string(kMaxLeaseIdLength, 'a')}) {
    EXPECT_TRUE(ValidateLeaseId(ok).ok());
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateLeaseId("")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateLeaseId(std::string(kMaxLeaseIdLength + 1, 'a'))));
}

TEST(LimitsTest, ErrorsQuoteAtMostAShortPrefix) {
  const std::string huge(1 << 20, 'x');
  for (absl::Status s : {ValidateIdentifier("namespace", huge), ValidateLeaseId(huge), ValidateImageName(huge),
                         ValidateIngestRef(huge), ValidateImageRef(huge),
                         ValidateResourceSize("content", huge), ValidateFilters({huge}),
                         ValidateLabels({{huge, "v"}})}) {
    EXPECT_TRUE(absl::IsInvalidArgument(s));
    EXPECT_LT(s.message().size(), 400u) << s.message().substr(0, 400);
    EXPECT_NE(s.message().find("1048576 bytes"), absl::string_view::npos) << s.message().substr(0, 400);
  }
  EXPECT_EQ(Quote("abc"), "\"abc\"");
  // A cut never splits a UTF-8 sequence.
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "\xc3\xa9";  // é
  const std::string q = Quote(accents);
  EXPECT_EQ(q.substr(0, 1 + kMaxQuoted), "\"" + accents.substr(0, kMaxQuoted));
  EXPECT_LE(CutErrorMessage(std::string(1 << 20, 'e')).size(), kMaxErrorMessage);
  EXPECT_EQ(CutErrorMessage("short"), "short");
}

TEST(LimitsTest, NamesRefsAndResources) {
  EXPECT_TRUE(ValidateImageName("docker.io/library/busybox:1.36").ok());
  EXPECT_TRUE(ValidateImageName(std::string(kMaxImageNameLength, 'a')).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateImageName("")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateImageName(std::string(kMaxImageNameLength + 1, 'a'))));
  EXPECT_TRUE(ValidateImageRef("").ok());  // names nothing, not an error
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateImageRef(std::string(kMaxImageNameLength + 1, 'r'))));
  EXPECT_TRUE(ValidateIngestRef("layer-sha256:" + std::string(64, 'a')).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateIngestRef("")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateIngestRef(std::string(kMaxRefLength + 1, 'r'))));
  EXPECT_TRUE(ValidateResourceSize("snapshots/overlayfs", "sha256:abc").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateResourceSize(std::string(129, 't'), "x")));
}

TEST(LimitsTest, RepeatedFieldsAreCounted) {
  EXPECT_TRUE(ValidateFilters(std::vector<std::string>(kMaxFilters, "name==a")).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateFilters(std::vector<std::string>(kMaxFilters + 1, "a"))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateFilters({std::string(kMaxFilterLength + 1, 'a')})));
  EXPECT_TRUE(ValidateFieldPaths(std::vector<std::string>(kMaxFieldPaths, "labels.a")).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateFieldPaths(std::vector<std::string>(kMaxFieldPaths + 1, "x"))));
}

TEST(LimitsTest, LabelsOneAndAll) {
  EXPECT_TRUE(ValidateLabels({{"k", std::string(kMaxLabelSize - 1, 'v')}}).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateLabels({{"k", std::string(kMaxLabelSize, 'v')}})));
  Labels many;
  while (many.size() * 4000 <= kMaxLabelsSize) {
    many["key-" + std::to_string(many.size())] = std::string(4000, 'v');
  }
  absl::Status s = ValidateLabels(many);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("in all"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace imaged::store
