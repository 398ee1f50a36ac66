#include "store/platform.h"

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imaged::store {

// For readable failure messages.
void PrintTo(const Platform& p, std::ostream* os) {
  *os << "{os=\"" << p.os << "\" arch=\"" << p.architecture << "\" variant=\"" << p.variant
      << "\" os_version=\"" << p.os_version << "\" features=[" << absl::StrJoin(p.os_features, ",")
      << "]}";
}

namespace {

Platform P(std::string os, std::string arch, std::string variant = "") {
  Platform p;
  p.os = std::move(os);
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

Platform MustParse(absl::string_view spec) {
  absl::StatusOr<Platform> p = ParsePlatform(spec);
  EXPECT_TRUE(p.ok()) << spec << ": " << p.status();
  return p.ok() ? *p : Platform{};
}

TEST(PlatformTest, DefaultIsLinuxAmd64) {
  EXPECT_EQ(DefaultPlatform(), P("linux", "amd64"));
  EXPECT_EQ(FormatPlatform(DefaultPlatform()), "linux/amd64");
}

TEST(PlatformTest, EqualityComparesEveryField) {
  Platform a = P("windows", "amd64");
  a.os_version = "10.0.17763.1";
  a.os_features = {"win32k"};
  Platform b = a;
  EXPECT_EQ(a, b);
  b.os_features = {};
  EXPECT_NE(a, b);
  b = a;
  b.os_version = "10.0.20348.1";
  EXPECT_NE(a, b);
  EXPECT_NE(P("linux", "arm64"), P("linux", "aarch64"));
}

struct ParseCase {
  std::string spec;
  Platform want;
  std::string formatted;
};

TEST(ParsePlatformTest, Table) {
  const ParseCase kCases[] = {
      {"linux/amd64", P("linux", "amd64"), "linux/amd64"},
      {"linux/arm64", P("linux", "arm64"), "linux/arm64"},
      // A three-part arm64 keeps (or gains) v8; two-part does not.
      {"linux/arm64/v8", P("linux", "arm64", "v8"), "linux/arm64/v8"},
      {"linux/arm64/8", P("linux", "arm64", "v8"), "linux/arm64/v8"},
      {"linux/ARM64/V8", P("linux", "arm64", "v8"), "linux/arm64/v8"},
      {"linux/aarch64", P("linux", "arm64"), "linux/arm64"},
      {"linux/aarch64/v8", P("linux", "arm64", "v8"), "linux/arm64/v8"},
      {"linux/arm64/v9", P("linux", "arm64", "v9"), "linux/arm64/v9"},
      // Two-part arm drops its default v7.
      {"linux/arm", P("linux", "arm"), "linux/arm"},
      {"linux/armhf", P("linux", "arm"), "linux/arm"},
      {"linux/armel", P("linux", "arm", "v6"), "linux/arm/v6"},
      {"linux/arm/v7", P("linux", "arm", "v7"), "linux/arm/v7"},
      {"linux/arm/7", P("linux", "arm", "v7"), "linux/arm/v7"},
      {"linux/arm/v6", P("linux", "arm", "v6"), "linux/arm/v6"},
      {"linux/arm/6", P("linux", "arm", "v6"), "linux/arm/v6"},
      {"linux/arm/5", P("linux", "arm", "v5"), "linux/arm/v5"},
      {"linux/arm/8", P("linux", "arm", "v8"), "linux/arm/v8"},
      {"linux/armhf/v6", P("linux", "arm", "v7"), "linux/arm/v7"},
      {"Linux/x86_64", P("linux", "amd64"), "linux/amd64"},
      {"linux/x86-64", P("linux", "amd64"), "linux/amd64"},
      {"linux/amd64/v1", P("linux", "amd64"), "linux/amd64"},
      {"linux/amd64/v3", P("linux", "amd64", "v3"), "linux/amd64/v3"},
      {"linux/i386", P("linux", "386"), "linux/386"},
      {"linux/i386/v2", P("linux", "386"), "linux/386"},
      {"linux/s390x", P("linux", "s390x"), "linux/s390x"},
      {"linux/ppc64le", P("linux", "ppc64le"), "linux/ppc64le"},
      {"windows/amd64", P("windows", "amd64"), "windows/amd64"},
      {"macos/arm64", P("darwin", "arm64"), "darwin/arm64"},
      // Two- and three-part specifiers are not checked against known names.
      {"foo/bar", P("foo", "bar"), "foo/bar"},
      {"foo_1/bar-2/baz", P("foo_1", "bar-2", "baz"), "foo_1/bar-2/baz"},
      // A lone architecture takes the host's os (linux by default).
      {"amd64", P("linux", "amd64"), "linux/amd64"},
      {"x86_64", P("linux", "amd64"), "linux/amd64"},
      {"Aarch64", P("linux", "arm64"), "linux/arm64"},
      {"arm", P("linux", "arm"), "linux/arm"},
      {"armhf", P("linux", "arm"), "linux/arm"},
      {"armel", P("linux", "arm", "v6"), "linux/arm/v6"},
      {"i386", P("linux", "386"), "linux/386"},
      {"s390x", P("linux", "s390x"), "linux/s390x"},
      // A lone os takes the host's architecture (amd64 by default).
      {"linux", P("linux", "amd64"), "linux/amd64"},
      {"windows", P("windows", "amd64"), "windows/amd64"},
      {"macOS", P("darwin", "amd64"), "darwin/amd64"},
  };
  for (const ParseCase& c : kCases) {
    SCOPED_TRACE(c.spec);
    absl::StatusOr<Platform> got = ParsePlatform(c.spec);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, c.want);
    EXPECT_EQ(FormatPlatform(*got), c.formatted);
    // What was parsed is accepted by a matcher built from it.
    EXPECT_TRUE(PlatformMatcher(*got).Match(c.want));
  }
}

TEST(ParsePlatformTest, LoneComponentUsesHost) {
  struct Case {
    std::string spec;
    Platform host;
    Platform want;
  };
  const Case kCases[] = {
      {"linux", P("linux", "arm64"), P("linux", "arm64")},
      {"linux", P("linux", "arm64", "v8"), P("linux", "arm64")},
      // On an arm host the host's variant comes along unless it is v7.
      {"linux", P("linux", "arm", "v6"), P("linux", "arm", "v6")},
      {"linux", P("linux", "arm", "v7"), P("linux", "arm")},
      {"linux", P("linux", "arm"), P("linux", "arm")},
      {"windows", P("linux", "s390x"), P("windows", "s390x")},
      {"amd64", P("windows", "arm64"), P("windows", "amd64")},
      {"arm64", P("darwin", "amd64"), P("darwin", "arm64")},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.spec + " on " + FormatPlatform(c.host));
    absl::StatusOr<Platform> got = ParsePlatform(c.spec, c.host);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, c.want);
  }
}

TEST(ParsePlatformTest, InvalidSpecifiers) {
  const char* const kCases[] = {
      "",
      "*",
      "linux/*",
      "*/arm64",
      "linux/",
      "/amd64",
      "linux//amd64",
      "linux/amd64/",
      "linux/amd64/v8/extra",
      "linux amd64",
      " linux/amd64",
      "linux/amd64:v2",
      "linux/amd64.v2",
      "linux/\xc3\xa4md64",
      "foo",  // neither a known os nor a known architecture
      "x86",
  };
  for (const char* spec : kCases) {
    SCOPED_TRACE(spec);
    absl::StatusOr<Platform> got = ParsePlatform(spec);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument)
        << (got.ok() ? FormatPlatform(*got) : "");
  }
  // "arm/v7" is valid syntax, read as os "arm" and architecture "v7", just as
  // containerd reads it; it matches nothing real.
  EXPECT_EQ(MustParse("arm/v7"), P("arm", "v7"));
}

TEST(FormatPlatformTest, Table) {
  struct Case {
    Platform p;
    std::string want;
  };
  Platform with_version = P("windows", "amd64");
  with_version.os_version = "10.0.17763.1";
  const Case kCases[] = {
      {Platform{}, "unknown"},
      {P("", "amd64"), "unknown"},
      {P("linux", ""), "linux"},
      {P("linux", "amd64"), "linux/amd64"},
      {P("linux", "arm", "v7"), "linux/arm/v7"},
      {P("linux", "", "v7"), "linux/v7"},
      {P("unknown", "unknown"), "unknown/unknown"},
      {with_version, "windows/amd64"},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(FormatPlatform(c.p), c.want);
  }
}

TEST(NormalizePlatformTest, Table) {
  struct Case {
    Platform in;
    Platform want;
  };
  const Case kCases[] = {
      {P("linux", "amd64"), P("linux", "amd64")},
      {P("", "amd64"), P("linux", "amd64")},
      {P("LINUX", "AMD64"), P("linux", "amd64")},
      {P("macos", "arm64"), P("darwin", "arm64")},
      {P("MacOS", "arm64"), P("darwin", "arm64")},
      {P("linux", "x86_64"), P("linux", "amd64")},
      {P("linux", "x86-64"), P("linux", "amd64")},
      {P("linux", "amd64", "v1"), P("linux", "amd64")},
      {P("linux", "amd64", "v2"), P("linux", "amd64", "v2")},
      {P("linux", "i386"), P("linux", "386")},
      {P("linux", "i386", "v7"), P("linux", "386")},
      {P("linux", "386"), P("linux", "386")},
      {P("linux", "aarch64"), P("linux", "arm64")},
      {P("linux", "aarch64", "v8"), P("linux", "arm64")},
      {P("linux", "arm64", "8"), P("linux", "arm64")},
      {P("linux", "arm64", "V8"), P("linux", "arm64")},
      {P("linux", "arm64", "v9"), P("linux", "arm64", "v9")},
      {P("linux", "armhf"), P("linux", "arm", "v7")},
      {P("linux", "armhf", "v6"), P("linux", "arm", "v7")},
      {P("linux", "armel"), P("linux", "arm", "v6")},
      {P("linux", "arm"), P("linux", "arm", "v7")},
      {P("linux", "arm", "7"), P("linux", "arm", "v7")},
      {P("linux", "arm", "5"), P("linux", "arm", "v5")},
      {P("linux", "arm", "6"), P("linux", "arm", "v6")},
      {P("linux", "arm", "8"), P("linux", "arm", "v8")},
      {P("linux", "arm", "v6"), P("linux", "arm", "v6")},
      {P("linux", "arm", "4"), P("linux", "arm", "4")},
      {P("linux", "s390x"), P("linux", "s390x")},
      {P("unknown", "unknown"), P("unknown", "unknown")},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(FormatPlatform(c.in) + " variant " + c.in.variant);
    EXPECT_EQ(NormalizePlatform(c.in), c.want);
  }
}

TEST(NormalizePlatformTest, KeepsOsVersionAndFeatures) {
  Platform p = P("Windows", "x86_64");
  p.os_version = "10.0.17763.1";
  p.os_features = {"win32k"};
  Platform want = P("windows", "amd64");
  want.os_version = "10.0.17763.1";
  want.os_features = {"win32k"};
  EXPECT_EQ(NormalizePlatform(p), want);
}

struct OnlyCase {
  std::string platform;
  std::vector<std::string> matches;
  std::vector<std::string> rejects;
};

TEST(PlatformMatcherTest, OnlyTable) {
  const OnlyCase kCases[] = {
      {"linux/amd64",
       {"linux/amd64", "linux/x86_64", "linux/amd64/v1", "linux/386", "linux/i386", "amd64"},
       {"linux/amd64/v2", "linux/arm64", "linux/arm/v7", "windows/amd64", "darwin/amd64",
        "linux/s390x", "unknown/unknown"}},
      {"linux/amd64/v3",
       {"linux/amd64/v3", "linux/amd64/v2", "linux/amd64/v1", "linux/amd64", "linux/386"},
       {"linux/amd64/v4", "linux/arm64", "windows/amd64"}},
      {"linux/386", {"linux/386", "linux/i386"}, {"linux/amd64", "linux/arm"}},
      {"linux/arm64",
       {"linux/arm64", "linux/arm64/v8", "linux/aarch64", "linux/arm", "linux/armhf", "linux/armel",
        "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"},
       {"linux/arm/v4", "linux/arm/v9", "linux/arm64/v9", "linux/amd64", "windows/arm64",
        "unknown/unknown"}},
      {"linux/arm64/v8",
       {"linux/arm64", "linux/arm/v8", "linux/arm/v5"},
       {"linux/arm/v4", "linux/amd64"}},
      {"linux/arm/v7",
       {"linux/arm", "linux/armhf", "linux/arm/v7", "linux/arm/7", "linux/arm/v6", "linux/armel",
        "linux/arm/v5"},
       {"linux/arm/v8", "linux/arm/v4", "linux/arm64", "linux/amd64", "windows/arm"}},
      {"linux/arm",  // arm alone is arm/v7
       {"linux/arm/v7", "linux/arm/v6", "linux/arm/v5"},
       {"linux/arm/v8", "linux/arm64"}},
      {"linux/arm/v6",
       {"linux/arm/v6", "linux/armel", "linux/arm/v5"},
       {"linux/arm", "linux/armhf", "linux/arm/v7", "linux/arm/v8", "linux/arm/v4", "linux/arm64",
        "linux/amd64"}},
      {"linux/arm/v5", {"linux/arm/v5"}, {"linux/arm/v4", "linux/arm/v6", "linux/arm"}},
      {"linux/arm/v4", {"linux/arm/v4"}, {"linux/arm/v5", "linux/arm"}},
      {"windows/amd64", {"windows/amd64", "windows/386"}, {"linux/amd64"}},
      {"linux/s390x", {"linux/s390x"}, {"linux/amd64", "linux/s390"}},
  };
  for (const OnlyCase& c : kCases) {
    PlatformMatcher m(MustParse(c.platform));
    for (const std::string& spec : c.matches) {
      EXPECT_TRUE(m.Match(MustParse(spec))) << c.platform << " should match " << spec;
    }
    for (const std::string& spec : c.rejects) {
      EXPECT_FALSE(m.Match(MustParse(spec))) << c.platform << " should not match " << spec;
    }
  }
}

TEST(PlatformMatcherTest, MatchIgnoresOsVersionAndFeatures) {
  PlatformMatcher m(P("linux", "amd64"));
  Platform p = P("linux", "amd64");
  p.os_version = "5.10";
  p.os_features = {"sse4"};
  EXPECT_TRUE(m.Match(p));
}

TEST(PlatformMatcherTest, EmptyOsCountsAsLinux) {
  EXPECT_TRUE(PlatformMatcher(P("linux", "amd64")).Match(P("", "amd64")));
  EXPECT_TRUE(PlatformMatcher(P("", "arm64")).Match(P("linux", "arm", "v8")));
}

TEST(PlatformMatcherTest, PreferenceOrder) {
  struct Case {
    std::string platform;
    std::vector<std::string> want;
  };
  const Case kCases[] = {
      {"linux/amd64", {"linux/amd64", "linux/386"}},
      {"linux/amd64/v3", {"linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"}},
      {"linux/arm64",
       {"linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}},
      {"linux/arm64/v8",
       {"linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}},
      {"linux/arm/v7", {"linux/arm/v7", "linux/arm/v6", "linux/arm/v5"}},
      {"linux/arm/v6", {"linux/arm/v6", "linux/arm/v5"}},
      {"linux/arm/v5", {"linux/arm/v5"}},
      {"linux/386", {"linux/386"}},
      {"linux/s390x", {"linux/s390x"}},
  };
  for (const Case& c : kCases) {
    std::vector<std::string> got;
    PlatformMatcher m(MustParse(c.platform));
    for (const Platform& p : m.preference()) {
      got.push_back(FormatPlatform(p));
    }
    EXPECT_EQ(got, c.want) << c.platform;
  }
}

TEST(PlatformMatcherTest, HugeVariantDoesNotExplode) {
  PlatformMatcher m(P("linux", "arm", "v99999999999"));
  EXPECT_EQ(m.preference().size(), 1u);
  EXPECT_TRUE(m.Match(P("linux", "arm", "v99999999999")));
}

TEST(PlatformMatcherTest, LessTable) {
  struct Case {
    std::string matcher;
    std::string a;
    std::string b;
    bool want;
  };
  const Case kCases[] = {
      {"linux/arm64", "linux/arm64", "linux/arm/v8", true},
      {"linux/arm64", "linux/arm/v8", "linux/arm64", false},
      {"linux/arm64", "linux/arm/v8", "linux/arm/v7", true},
      {"linux/arm64", "linux/arm/v7", "linux/arm/v6", true},
      {"linux/arm64", "linux/arm/v5", "linux/arm/v6", false},
      {"linux/arm64", "linux/arm64", "linux/arm64/v8", false},  // same one
      {"linux/arm64", "linux/arm64/v8", "linux/aarch64", false},
      {"linux/arm64", "linux/arm/v5", "linux/amd64", true},  // accepted first
      {"linux/arm64", "linux/amd64", "linux/arm/v5", false},
      {"linux/arm64", "linux/amd64", "linux/s390x", false},  // neither
      {"linux/arm64", "linux/s390x", "linux/amd64", false},
      {"linux/amd64", "linux/amd64", "linux/386", true},
      {"linux/amd64", "linux/386", "linux/amd64", false},
      {"linux/amd64", "linux/x86_64", "linux/amd64", false},
      {"linux/amd64", "linux/386", "linux/arm64", true},
      {"linux/arm/v7", "linux/arm", "linux/arm/v6", true},
      {"linux/arm/v7", "linux/armhf", "linux/arm/v7", false},
      {"linux/arm/v7", "linux/arm/v6", "linux/arm/v5", true},
      {"linux/arm/v7", "linux/arm/v8", "linux/arm/v5", false},
      {"linux/arm/v6", "linux/armel", "linux/arm/v5", true},
      {"linux/arm/v6", "linux/arm/v7", "linux/arm/v5", false},
  };
  for (const Case& c : kCases) {
    PlatformMatcher m(MustParse(c.matcher));
    EXPECT_EQ(m.Less(MustParse(c.a), MustParse(c.b)), c.want)
        << "Only(" << c.matcher << ").Less(" << c.a << ", " << c.b << ")";
  }
}

}  // namespace
}  // namespace imaged::store
