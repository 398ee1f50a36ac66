#include "store/filter.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imaged::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// An image record shaped like containerd's images.Image, enough to exercise
// scalar, nested and map fields.
struct TestImage {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string digest;
  std::string media_type;
};

// Mirrors containerd's image adaptor: empty scalars count as absent, and
// `target` alone is not a value.
class TestImageAdaptor : public FieldAdaptor {
 public:
  explicit TestImageAdaptor(const TestImage& image) : image_(image) {}

  std::optional<absl::string_view> Field(
      absl::Span<const std::string> fieldpath) const override {
    if (fieldpath.empty()) return std::nullopt;
    if (fieldpath[0] == "name") return NonEmpty(image_.name);
    if (fieldpath[0] == "labels") {
      return MapField(fieldpath.subspan(1), image_.labels);
    }
    if (fieldpath[0] == "target" && fieldpath.size() == 2) {
      if (fieldpath[1] == "digest") return NonEmpty(image_.digest);
      if (fieldpath[1] == "mediatype") return NonEmpty(image_.media_type);
    }
    return std::nullopt;
  }

 private:
  static std::optional<absl::string_view> NonEmpty(const std::string& s) {
    if (s.empty()) return std::nullopt;
    return absl::string_view(s);
  }

  const TestImage& image_;
};

constexpr char kDigest1[] =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
constexpr char kDigestBusybox[] =
    "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
constexpr char kBusybox[] = "docker.io/library/busybox:latest";

// Upstream's filter_test.go corpus (with unique names, its `other` field
// moved to a `note` label), plus CRI-style and corner-case entries.
const std::vector<TestImage>& Corpus() {
  static const auto* const kCorpus = new std::vector<TestImage>{
      {"foo",
       {{"foo", "true"}},
       kDigest1,
       "application/vnd.oci.image.manifest.v1+json"},
      {"bar", {}, "", ""},
      {"foo-complex",
       {{"foo", "present"}, {"more complex label", "present"}},
       "",
       ""},
      {"bar-labelled", {{"bar", "true"}}, "", ""},
      {"fooer", {{"more complex label with \\ and \"", "present"}}, "", ""},
      {"fooer-post",
       {{"more complex label with \\ and \".post", "present"}},
       "",
       ""},
      {"baz", {{"note", "too complex, yo"}}, "", ""},
      {"bazo", {{"note", "abc"}}, "", ""},
      {"compound", {{"foo", "omg_asdf.asdf-qwer"}}, "", ""},
      {kBusybox,
       {{"io.cri-containerd.image", "managed"}},
       kDigestBusybox,
       "application/vnd.docker.distribution.manifest.list.v2+json"},
      {"moo", {{"moo", "牛"}, {"a.b", "dotted"}, {"empty", ""}}, "", ""},
  };
  return *kCorpus;
}

std::vector<std::string> AllNames() {
  std::vector<std::string> names;
  for (const TestImage& image : Corpus()) names.push_back(image.name);
  return names;
}

std::vector<std::string> AllNamesExcept(
    const std::vector<std::string>& excluded) {
  std::vector<std::string> names;
  for (const TestImage& image : Corpus()) {
    bool skip = false;
    for (const std::string& e : excluded) skip = skip || e == image.name;
    if (!skip) names.push_back(image.name);
  }
  return names;
}

std::vector<std::string> MatchingNames(const Filter& filter) {
  std::vector<std::string> names;
  for (const TestImage& image : Corpus()) {
    if (filter.Match(TestImageAdaptor(image))) names.push_back(image.name);
  }
  return names;
}

struct MatchCase {
  std::string test_name;
  std::vector<std::string> filters;  // given to ParseAll
  std::vector<std::string> want;     // matching names, in corpus order
};

class FilterMatchTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(FilterMatchTest, MatchesExpectedImages) {
  const MatchCase& c = GetParam();
  absl::StatusOr<Filter> filter = Filter::ParseAll(c.filters);
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_EQ(MatchingNames(*filter), c.want);
  // MatchesAll may be conservative, but must never claim too much.
  if (filter->MatchesAll()) {
    EXPECT_EQ(c.want, AllNames());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Upstream, FilterMatchTest,
    ::testing::ValuesIn(std::vector<MatchCase>{
        {"NoFilters", {}, AllNames()},
        {"Empty", {""}, AllNames()},
        {"Present", {"name"}, AllNames()},
        {"LabelPresent",
         {"labels.foo"},
         {"foo", "foo-complex", "compound"}},
        {"NameAndLabelPresent",
         {"labels.foo,name"},
         {"foo", "foo-complex", "compound"}},
        {"LabelValue", {"labels.foo==true"}, {"foo"}},
        {"LabelValuePunctuated",
         {"labels.foo==omg_asdf.asdf-qwer"},
         {"compound"}},
        {"Name", {"name==bar"}, {"bar"}},
        {"NameNotEqual", {"name!=bar"}, AllNamesExcept({"bar"})},
        {"NameAndLabelPresentAnd",
         {"name==bar-labelled,labels.bar"},
         {"bar-labelled"}},
        {"QuotedValueWithComma",
         {R"(labels.note=="too complex, yo")"},
         {"baz"}},
        {"RegexpValue", {"labels.note~=[abc]+,name!=foo"}, {"baz", "bazo"}},
        {"RegexpSlashQuoted",
         {"labels.note~=/[abc]+/,name!=foo"},
         {"baz", "bazo"}},
        {"RegexpSlashQuotedWithComma",
         {"labels.note~=/[abc]{1,2}/,name!=foo"},
         {"baz", "bazo"}},
        {"RegexpPipeQuoted", {"labels.note~=|[abc]{1,2}|"}, {"baz", "bazo"}},
        {"RegexpQuotedGarbage",
         {R"(labels.note~=/[abc]{0,1}"\//,name!=foo)"},
         {}},
        {"NameAndLabelValue",
         {"name==bar-labelled,labels.bar==true"},
         {"bar-labelled"}},
        {"NameAndLabelValueNoMatch",
         {"name==bar-labelled,labels.bar==wrong"},
         {}},
        {"QuotedFieldPathPresent",
         {R"(name==foo-complex,labels."more complex label")"},
         {"foo-complex"}},
        {"QuotedFieldPathWithEscapes",
         {R"(labels."more complex label with \\ and \""==present)"},
         {"fooer"}},
        {"QuotedFieldPathThenUnquoted",
         {R"(labels."more complex label with \\ and \"".post==present)"},
         {"fooer-post"}},
    }),
    [](const auto& info) { return info.param.test_name; });

INSTANTIATE_TEST_SUITE_P(
    Semantics, FilterMatchTest,
    ::testing::ValuesIn(std::vector<MatchCase>{
        // Keys with dots must be quoted or they would be split.
        {"CriQuotedKey",
         {R"(labels."io.cri-containerd.image"==managed)"},
         {kBusybox}},
        {"CriQuotedKeyPresent",
         {R"(labels."io.cri-containerd.image")"},
         {kBusybox}},
        {"UnquotedDottedKeyIsJoined", {"labels.a.b==dotted"}, {"moo"}},
        {"QuotedDottedKey", {R"(labels."a.b")"}, {"moo"}},
        {"BareMapIsAbsent", {"labels"}, {}},
        {"NestedTargetDigest", {absl::StrCat("target.digest==", kDigest1)},
         {"foo"}},
        {"NestedTargetMediaTypeRegexp",
         {"target.mediatype~=manifest\\.list"},
         {kBusybox}},
        {"PartialFieldpathAbsent", {"target"}, {}},
        {"ValueWithSlashesAndColon",
         {absl::StrCat("name==", kBusybox)},
         {kBusybox}},
        {"PresentWithEmptyValue", {"labels.empty"}, {"moo"}},
        {"EqualQuotedEmpty", {R"(labels.empty=="")"}, {"moo"}},
        // An absent field compares as "", so `!=` accepts it...
        {"NotEqualMatchesAbsent",
         {"labels.foo!=true"},
         AllNamesExcept({"foo"})},
        // ...unless the value is "" itself.
        {"NotEqualEmptyMeansNonEmpty",
         {R"(labels.foo!="")"},
         {"foo", "foo-complex", "compound"}},
        {"RegexpUnanchored",
         {"name~=oo"},
         {"foo", "foo-complex", "fooer", "fooer-post", "moo"}},
        {"RegexpAnchoredPrefix",
         {"name~=^foo"},
         {"foo", "foo-complex", "fooer", "fooer-post"}},
        {"RegexpAnchoredBothEnds", {"name~=^foo$"}, {"foo"}},
        {"RegexpQuotedAnchored", {"name~=\"^ba[rz]$\""}, {"bar", "baz"}},
        {"RegexpEscapedSlash",
         {R"(name~=/library\/busybox/)"},
         {kBusybox}},
        // An absent field is matched as "".
        {"RegexpMatchesAbsentAsEmpty",
         {"labels.note~=^$"},
         AllNamesExcept({"baz", "bazo"})},
        {"OrOfTwo", {"name==foo", "name==bar"}, {"foo", "bar"}},
        {"OrOverlapping",
         {"labels.foo", "name~=^foo"},
         {"foo", "foo-complex", "fooer", "fooer-post", "compound"}},
        {"OrOfConjunctions",
         {"name==foo,labels.foo==true", "name==bazo,labels.note==abc"},
         {"foo", "bazo"}},
        {"OrWithEmptyMatchesAll", {"name==foo", ""}, AllNames()},
        {"SpacesBeforeTokens", {"name == foo"}, {"foo"}},
        {"LeadingSpaceAndAfterComma",
         {"  name==foo,\tlabels.foo"},
         {"foo"}},
        {"UnicodeValue", {"labels.moo==牛"}, {"moo"}},
        {"UnicodeRegexpPipeQuoted", {"labels.moo~=|牛|"}, {"moo"}},
        {"UnicodeEscape", {R"(labels.moo=="\u725b")"}, {"moo"}},
        {"HexByteEscapes", {R"(labels.moo=="\xe7\x89\x9b")"}, {"moo"}},
        {"OctalEscape", {R"(labels.note=="\164oo complex, yo")"}, {"baz"}},
        {"EscapedSpaceInQuoted",
         {R"(labels.note=="too complex,\x20yo")"},
         {"baz"}},
        // Upstream's scanner has no single quotes: they are value text.
        {"SingleQuotesAreLiteral", {"labels.foo=='true'"}, {}},
        {"LeadingQuotedField",
         {R"("labels"."more complex label"==present)"},
         {"foo-complex"}},
    }),
    [](const auto& info) { return info.param.test_name; });

struct ErrorCase {
  std::string test_name;
  std::string filter;
  std::string problem;  // substring of the message
  size_t pos;           // byte offset the message ends with
};

class FilterErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(FilterErrorTest, IsInvalidArgument) {
  const ErrorCase& c = GetParam();
  absl::StatusOr<Filter> filter = Filter::Parse(c.filter);
  ASSERT_FALSE(filter.ok()) << c.filter;
  EXPECT_EQ(filter.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(filter.status().message());
  EXPECT_THAT(message, StartsWith("filter \""));
  EXPECT_THAT(message, HasSubstr(c.problem));
  EXPECT_TRUE(absl::EndsWith(message, absl::StrCat(" at ", c.pos))) << message;

  // The same error surfaces through ParseAll, even beside a match-all "".
  absl::StatusOr<Filter> all = Filter::ParseAll({"", "name", c.filter});
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status(), filter.status());
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, FilterErrorTest,
    ::testing::ValuesIn(std::vector<ErrorCase>{
        {"MissingValue", "name==", "value expected", 6},
        {"MissingValueBeforeComma", "image~=,id?=?fbaq", "value expected", 7},
        {"OperatorOnly", "==", "field expected", 0},
        {"InvalidRegexp", "name~=[", "invalid regular expression", 6},
        {"InvalidRegexpGroup", "name~=/a(/", "invalid regular expression", 6},
        {"UnterminatedQuotedField", R"(labels."unterminated)",
         "not terminated", 7},
        {"UnterminatedQuotedValue", R"(name=="foo)", "not terminated", 6},
        {"NewlineInQuoted", "labels.\"containerd.io\nkey\"==value",
         "not terminated", 7},
        {"TrailingComma", "name==foo,", "field expected", 10},
        {"EmptySelector", "name,,labels.foo", "field expected", 5},
        {"LeadingComma", ",name", "field expected", 0},
        {"TrailingFieldSeparator", "labels.", "field expected", 7},
        {"DoubleFieldSeparator", "labels..foo", "field expected", 7},
        {"AltQuoteInField", "labels.|foo|==omg", "only allowed in ~=", 7},
        {"AltQuoteInEqualValue", "name==/foo/", "only allowed in ~=", 6},
        {"IllegalFieldRune", R"(labels.?"x".post==present)",
         "field expected", 7},
        {"SlashInUnquotedField", "labels.ns/key==value", "not terminated", 9},
        {"DottedSlashKeyUnquoted", "labels.containerd.io/key==value",
         "not terminated", 20},
        {"UnterminatedSlashValue", "labels.key==/value", "not terminated",
         12},
        {"SingleEquals", "name=foo", "unsupported operator \"=\"", 4},
        {"TripleEquals", "name===foo", "unsupported operator", 4},
        {"BangOnly", "name!", "unsupported operator", 4},
        {"NotAnOperator", "name<foo", "operator (==, != or ~=) expected", 4},
        {"SpaceBeforeSeparator", "labels .foo", "operator", 7},
        {"SecondValue", "name==value value", "unexpected \" \"", 11},
        {"TrailingSpace", "name==foo ", "unexpected \" \"", 9},
        {"TextAfterQuoted", R"(name=="a"b)", "unexpected \"b\"", 9},
        {"OnlySpace", " ", "field expected", 1},
        {"NulByte", std::string("foo\0bar", 7), "NUL", 3},
        {"InvalidUtf8", "name==\xff", "UTF-8", 6},
        {"IllegalEscape", R"(labels."\g")", "illegal escape", 7},
        {"RegexpEscapeInSlashes", R"(name~=/\d+/)", "illegal escape", 6},
        {"WrongQuoteEscaped", R"(name=="\'")", "illegal escape", 6},
        {"IllegalHexEscape", R"(labels."\xaz")", "illegal numeric escape", 7},
        {"OctalOutOfRange", R"(labels."\400")", "out of range", 7},
        {"RuneOutOfRange", R"(labels."\U00110000")", "out of range", 7},
    }),
    [](const auto& info) { return info.param.test_name; });

TEST(FilterTest, ErrorMessageNamesFilterAndPosition) {
  absl::StatusOr<Filter> filter = Filter::Parse("labels.a==");
  ASSERT_FALSE(filter.ok());
  EXPECT_EQ(filter.status(), absl::InvalidArgumentError(
                                 "filter \"labels.a==\": value expected at 10"));
}

TEST(FilterTest, MatchesAllOnlyForUnconstrainedFilters) {
  EXPECT_TRUE(Filter().MatchesAll());
  EXPECT_TRUE(Filter::Parse("")->MatchesAll());
  EXPECT_TRUE(Filter::ParseAll({})->MatchesAll());
  EXPECT_TRUE(Filter::ParseAll({"name==x", ""})->MatchesAll());
  EXPECT_FALSE(Filter::Parse("name")->MatchesAll());
  EXPECT_FALSE(Filter::ParseAll({"name", "labels.x"})->MatchesAll());
}

TEST(FilterTest, ParsedRepresentation) {
  absl::StatusOr<Filter> filter =
      Filter::ParseAll({R"(labels."a.b"~=x, name=="a\"b")", "labels.c"});
  ASSERT_TRUE(filter.ok()) << filter.status();
  const auto& d = filter->disjuncts();
  ASSERT_EQ(d.size(), 2);
  ASSERT_EQ(d[0].size(), 2);
  EXPECT_THAT(d[0][0].fieldpath, ElementsAre("labels", "a.b"));
  EXPECT_EQ(d[0][0].op, Filter::Op::kMatches);
  EXPECT_EQ(d[0][0].value, "x");
  EXPECT_NE(d[0][0].regexp, nullptr);
  EXPECT_THAT(d[0][1].fieldpath, ElementsAre("name"));
  EXPECT_EQ(d[0][1].op, Filter::Op::kEqual);
  EXPECT_EQ(d[0][1].value, "a\"b");
  EXPECT_EQ(d[0][1].regexp, nullptr);
  ASSERT_EQ(d[1].size(), 1);
  EXPECT_THAT(d[1][0].fieldpath, ElementsAre("labels", "c"));
  EXPECT_EQ(d[1][0].op, Filter::Op::kPresent);
}

TEST(FilterTest, CopiesOutliveOriginal) {
  std::optional<Filter> original = *Filter::Parse("name~=^foo$");
  const Filter copy = *original;
  original.reset();
  EXPECT_THAT(MatchingNames(copy), ElementsAre("foo"));
}

TEST(MapFieldTest, LooksUpJoinedKey) {
  const std::map<std::string, std::string> m = {
      {"a", "1"}, {"a.b", "2"}, {"", "3"}};
  const std::vector<std::string> a = {"a"};
  const std::vector<std::string> ab = {"a", "b"};
  const std::vector<std::string> missing = {"b"};
  EXPECT_EQ(MapField(a, m), "1");
  EXPECT_EQ(MapField(ab, m), "2");
  EXPECT_EQ(MapField(missing, m), std::nullopt);
  EXPECT_EQ(MapField({}, m), std::nullopt);
  EXPECT_EQ(MapField(a, {}), std::nullopt);
}

}  // namespace
}  // namespace imaged::store
