#include "cri/reference.h"

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imaged::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Hex(char c, size_t n = 64) { return std::string(n, c); }
std::string Repeat(absl::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, s);
  return out;
}

const std::string kHexA =
    "e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
const std::string kHexB =
    "c75bebcdd211f41b3a460c7bf82970ed6c75acaab9cd4c9a4e125b03ca113799";
const std::string kDigestA = "sha256:" + kHexA;
const std::string kDigestB = "sha256:" + kHexB;
const std::string kDigestF = "sha256:" + Hex('f');
const std::string kSha512F = "sha512:" + Hex('f', 128);

// ---------------------------------------------------------------------------
// ParseNormalizedNamed

struct ParseCase {
  std::string input;
  std::string domain;
  std::string path;
  std::string tag;
  std::string digest;
  // Non-empty: parsing must fail with InvalidArgument whose message contains
  // this; the fields above are then ignored.
  std::string error;
};

ParseCase Ok(std::string input, std::string domain, std::string path,
             std::string tag = "", std::string digest = "") {
  return {std::move(input), std::move(domain), std::move(path),
          std::move(tag),   std::move(digest), ""};
}
ParseCase Err(std::string input, std::string error) {
  return {std::move(input), "", "", "", "", std::move(error)};
}

constexpr char kFormat[] = "invalid reference format";
constexpr char kLower[] = "must be lowercase";
constexpr char kTooLong[] = "more than 255";

std::vector<ParseCase> ParseCases() {
  return {
      // Docker's valid repository names and how they normalise.
      Ok("docker/docker", "docker.io", "docker/docker"),
      Ok("library/debian", "docker.io", "library/debian"),
      Ok("debian", "docker.io", "library/debian"),
      Ok("docker.io/docker/docker", "docker.io", "docker/docker"),
      Ok("docker.io/library/debian", "docker.io", "library/debian"),
      Ok("docker.io/debian", "docker.io", "library/debian"),
      Ok("index.docker.io/docker/docker", "docker.io", "docker/docker"),
      Ok("index.docker.io/library/debian", "docker.io", "library/debian"),
      Ok("index.docker.io/debian", "docker.io", "library/debian"),
      Ok("127.0.0.1:5000/docker/docker", "127.0.0.1:5000", "docker/docker"),
      Ok("127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian"),
      Ok("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian"),
      Ok("localhost/debian", "localhost", "debian"),
      Ok("localhost/library/debian", "localhost", "library/debian"),
      Ok("localhost:5000/x", "localhost:5000", "x"),
      Ok("localhost", "docker.io", "library/localhost"),
      Ok("localhost:5000", "docker.io", "library/localhost", "5000"),
      Ok("192.168.0.1", "docker.io", "library/192.168.0.1"),
      Ok("192.168.0.1:80", "docker.io", "library/192.168.0.1", "80"),
      Ok("192.168.0.1:8/debian", "192.168.0.1:8", "debian"),
      Ok("192.168.0.2:25000/debian", "192.168.0.2:25000", "debian"),
      // 64 characters, but not hexadecimal, so a name.
      Ok("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
         "docker.io",
         "library/"
         "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"),
      // 64 hex is a name once a domain removes the doubt.
      Ok("docker.io/" + kHexA, "docker.io", "library/" + kHexA),
      Ok("docker-rules/docker", "docker.io", "docker-rules/docker"),
      Ok("docker---rules/docker", "docker.io", "docker---rules/docker"),
      Ok("doc/docker", "docker.io", "doc/docker"),
      Ok("d/docker", "docker.io", "d/docker"),
      Ok("jess/t", "docker.io", "jess/t"),
      Ok("dock__er/docker", "docker.io", "dock__er/docker"),
      Ok("a_b-c/d", "docker.io", "a_b-c/d"),
      // Looks like a host (it has a "."), is not a valid domain ("_"), but is
      // a valid path component: upstream keeps it as a domain-less path.
      Ok("a.b_c-d/e", "", "a.b_c-d/e"),
      Ok("foo/bar/baz/qux", "docker.io", "foo/bar/baz/qux"),
      Ok("library/foo/bar", "docker.io", "library/foo/bar"),
      Ok("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
      Ok("store/foo/bar", "docker.io", "store/foo/bar"),
      Ok("other/library", "docker.io", "other/library"),
      Ok("ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base"),
      // Where the domain ends.
      Ok("test.com/foo", "test.com", "foo"),
      Ok("test_com/foo", "docker.io", "test_com/foo"),
      Ok("test.com:8080/foo", "test.com:8080", "foo"),
      Ok("test-com:8080/foo", "test-com:8080", "foo"),
      Ok("test:5000/repo", "test:5000", "repo"),
      Ok("xn--n3h.com/foo", "xn--n3h.com", "foo"),
      Ok("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
      Ok("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux"),
      Ok("Example.COM/foo", "Example.COM", "foo"),  // domains keep their case
      Ok("quay.io/a/b:1", "quay.io", "a/b", "1"),
      // Tags.
      Ok("test_com", "docker.io", "library/test_com"),
      Ok("test.com:tag", "docker.io", "library/test.com", "tag"),
      Ok("test.com:5000", "docker.io", "library/test.com", "5000"),
      Ok("test.com/repo:tag", "test.com", "repo", "tag"),
      Ok("test:5000/repo:tag", "test:5000", "repo", "tag"),
      Ok("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase"),
      Ok("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com",
         "bar/baz/quux", "some-long-tag"),
      Ok("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io",
         "test.example.com/my-app", "test.example.com"),
      Ok("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage",
         "xn--n3h.com"),
      Ok("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080"),
      Ok("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080"),
      Ok("busybox:_x", "docker.io", "library/busybox", "_x"),
      Ok("busybox:" + Hex('a', 128), "docker.io", "library/busybox",
         Hex('a', 128)),
      // A full image ID is a tag on "library/sha256" to this parser; see
      // NormalizeImageRefOfAnImageIdIsATagOnLibrarySha256.
      Ok(kDigestA, "docker.io", "library/sha256", kHexA),
      // Digests.
      Ok("test:5000/repo@" + kDigestF, "test:5000", "repo", "", kDigestF),
      Ok("test:5000/repo:tag@" + kDigestF, "test:5000", "repo", "tag",
         kDigestF),
      Ok("busybox@" + kDigestA, "docker.io", "library/busybox", "", kDigestA),
      Ok("busybox:latest@" + kDigestA, "docker.io", "library/busybox", "latest",
         kDigestA),
      Ok("registry.example.com/x/y:tag@" + kDigestA, "registry.example.com",
         "x/y", "tag", kDigestA),
      Ok("xn--7o8h.com/myimage:xn--7o8h.com@" + kSha512F, "xn--7o8h.com",
         "myimage", "xn--7o8h.com", kSha512F),
      Ok("busybox@sha384:" + Hex('0', 96), "docker.io", "library/busybox", "",
         "sha384:" + Hex('0', 96)),

      // Invalid names.
      Err("", "empty"),
      Err(kHexA, "image ID"),
      Err("https://github.com/docker/docker", kFormat),
      Err("-docker", kFormat),
      Err("-docker/docker", kFormat),
      Err("-docker.io/docker/docker", kFormat),
      Err("docker-/docker", kFormat),
      Err("-docker-/docker", kFormat),
      Err("docker///docker", kFormat),
      Err("docker.io/docker///docker", kFormat),
      Err("____/____", kFormat),
      Err("_docker/_docker", kFormat),
      Err("dock..er/docker", kFormat),
      Err("dock_.er/docker", kFormat),
      Err("dock-.er/docker", kFormat),
      Err("a___b", kFormat),
      Err("a.-b", kFormat),
      Err("docker/", kFormat),
      Err("/docker", kFormat),
      Err(":justtag", kFormat),
      Err("@" + kDigestF, kFormat),
      Err("aa/asdf$$^/aa", kFormat),
      Err("a b", kFormat),
      Err(" busybox", kFormat),
      Err("busybox ", kFormat),
      Err("b\xc3\xbc", kFormat),  // non-ASCII
      // containerd 1.6's grammar has no IPv6 literal hosts.
      Err("[fc00::1]:5000/docker", kFormat),
      Err("[::1]/foo", kFormat),
      Err("localhost:abc/foo", kFormat),
      // Uppercase repository paths.
      Err("docker/Docker", kLower),
      Err("docker.io/docker/Docker", kLower),
      Err("Uppercase:tag", kLower),
      Err("test:5000/Uppercase/lowercase:tag", kLower),
      // Parse alone would take "Uppercase" for a domain; normalisation does
      // not, because it has no "." or ":".
      Err("Uppercase/lowercase:tag", kLower),
      // Newer distribution/reference treats an uppercase first component as
      // a domain; containerd 1.6 does not.
      Err("LOCALDOMAIN/debian", kLower),
      // Tags.
      Err("busybox:", "invalid tag"),
      Err("busybox:-x", "invalid tag"),
      Err("busybox:.x", "invalid tag"),
      Err("busybox:" + Hex('a', 129), "invalid tag"),
      Err("busybox:b\xc3\xbc", "invalid tag"),
      Err("busybox:a:b", kFormat),
      // Digests.
      Err("busybox@", "invalid digest"),
      Err("busybox@sha256:" + Hex('a', 31), "invalid digest"),
      Err("repo@sha256:" + Hex('f', 34), "digest length"),
      Err("busybox@sha256:" + Hex('a', 65), "digest length"),
      Err("busybox@sha512:" + Hex('a', 64), "digest length"),
      Err("busybox@sha256:" + Hex('A'), "digest format"),
      Err("busybox:1@SHA256:" + Hex('a'), "digest format"),
      // Without a tag, the lowercase check (on everything before the first
      // ":") sees the algorithm, as upstream's does.
      Err("busybox@SHA256:" + Hex('a'), kLower),
      Err("validname@invaliddigest:" + Hex('f'), "unsupported digest"),
      Err("busybox@md5:" + Hex('a', 32), "unsupported digest"),
      Err("busybox@" + kHexA, "invalid digest"),
      // Length counts the normalised name.
      Err(Repeat("a/", 128) + "a:tag", kTooLong),
      Err(Repeat("a/", 127) + "a:tag-puts-this-over-max", kTooLong),
      Err("this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_"
          "255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_"
          "than_255_this_is_not_a_valid_namespace_because_its_lenth_is_"
          "greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_"
          "is_greater_than_255/docker",
          kTooLong),
  };
}

TEST(ParseNormalizedNamedTest, Table) {
  for (const ParseCase& c : ParseCases()) {
    SCOPED_TRACE(c.input);
    absl::StatusOr<Reference> got = ParseNormalizedNamed(c.input);
    if (!c.error.empty()) {
      ASSERT_FALSE(got.ok()) << got->String();
      EXPECT_TRUE(absl::IsInvalidArgument(got.status())) << got.status();
      EXPECT_THAT(got.status().message(), HasSubstr(c.error));
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->domain, c.domain);
    EXPECT_EQ(got->path, c.path);
    EXPECT_EQ(got->tag, c.tag);
    EXPECT_EQ(got->digest, c.digest);
  }
}

TEST(ParseNormalizedNamedTest, ErrorNamesTheInput) {
  for (const char* input : {"docker/Docker", "busybox:-x", "-docker"}) {
    absl::StatusOr<Reference> got = ParseNormalizedNamed(input);
    ASSERT_FALSE(got.ok());
    EXPECT_THAT(got.status().message(),
                HasSubstr(absl::StrCat("reference \"", input, "\"")));
  }
}

TEST(ParseNormalizedNamedTest, NameLimitIs255CharactersAfterNormalisation) {
  // "example.com/" is 12 characters; "docker.io/library/" is 18.
  EXPECT_TRUE(ParseNormalizedNamed("example.com/" + Hex('a', 243)).ok());
  EXPECT_FALSE(ParseNormalizedNamed("example.com/" + Hex('a', 244)).ok());
  EXPECT_TRUE(ParseNormalizedNamed(Hex('a', 237) + ":tag").ok());
  EXPECT_FALSE(ParseNormalizedNamed(Hex('a', 238) + ":tag").ok());
  // The tag does not count.
  EXPECT_TRUE(
      ParseNormalizedNamed("example.com/" + Hex('a', 243) + ":" + Hex('t', 128))
          .ok());
}

TEST(ParseNormalizedNamedTest, InvalidDomainThatIsAValidPathKeepsNoDomain) {
  // "foo_bar.com" has a "." so it is split off as the domain, but "_" is not
  // allowed in domains, so the grammar reads the whole name as a path.
  absl::StatusOr<Reference> got = ParseNormalizedNamed("foo_bar.com/app:1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->domain, "");
  EXPECT_EQ(got->path, "foo_bar.com/app");
  EXPECT_EQ(got->Name(), "foo_bar.com/app");
  EXPECT_EQ(got->String(), "foo_bar.com/app:1");
  EXPECT_EQ(got->Familiar(), "foo_bar.com/app:1");
}

// ---------------------------------------------------------------------------
// String, Name, Familiar

struct FormCase {
  std::string input;
  std::string name;
  std::string string;
  std::string familiar;
};

TEST(ReferenceTest, NameStringFamiliar) {
  const FormCase cases[] = {
      {"fooo/bar", "docker.io/fooo/bar", "docker.io/fooo/bar", "fooo/bar"},
      {"index.docker.io/fooo/bar", "docker.io/fooo/bar", "docker.io/fooo/bar",
       "fooo/bar"},
      {"ubuntu", "docker.io/library/ubuntu", "docker.io/library/ubuntu",
       "ubuntu"},
      {"library/ubuntu", "docker.io/library/ubuntu", "docker.io/library/ubuntu",
       "ubuntu"},
      {"docker.io/foo", "docker.io/library/foo", "docker.io/library/foo",
       "foo"},
      {"nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu",
       "docker.io/nonlibrary/ubuntu", "nonlibrary/ubuntu"},
      {"other/library", "docker.io/other/library", "docker.io/other/library",
       "other/library"},
      {"library/foo/bar", "docker.io/library/foo/bar",
       "docker.io/library/foo/bar", "library/foo/bar"},
      {"store/foo/bar", "docker.io/store/foo/bar", "docker.io/store/foo/bar",
       "store/foo/bar"},
      {"127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase",
       "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase"},
      {"example.com:8000/privatebasee", "example.com:8000/privatebasee",
       "example.com:8000/privatebasee", "example.com:8000/privatebasee"},
      {"localhost/library/foo", "localhost/library/foo",
       "localhost/library/foo", "localhost/library/foo"},
      {"busybox:latest", "docker.io/library/busybox",
       "docker.io/library/busybox:latest", "busybox:latest"},
      {"quay.io/a/b:1", "quay.io/a/b", "quay.io/a/b:1", "quay.io/a/b:1"},
      {"user/app@" + kDigestA, "docker.io/user/app",
       "docker.io/user/app@" + kDigestA, "user/app@" + kDigestA},
      {"busybox:latest@" + kDigestA, "docker.io/library/busybox",
       "docker.io/library/busybox:latest@" + kDigestA,
       "busybox:latest@" + kDigestA},
  };
  for (const FormCase& c : cases) {
    SCOPED_TRACE(c.input);
    absl::StatusOr<Reference> got = ParseNormalizedNamed(c.input);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->Name(), c.name);
    EXPECT_EQ(got->String(), c.string);
    EXPECT_EQ(got->Familiar(), c.familiar);
    // The qualified and familiar forms parse back to the same reference.
    EXPECT_EQ(ParseNormalizedNamed(got->String()).value(), *got);
    EXPECT_EQ(ParseNormalizedNamed(got->Familiar()).value(), *got);
  }
}

TEST(ReferenceTest, FormsOfAHandBuiltReference) {
  Reference r{"docker.io", "library/busybox", "1.36", ""};
  EXPECT_EQ(r.String(), "docker.io/library/busybox:1.36");
  EXPECT_EQ(r.Familiar(), "busybox:1.36");
  r.tag.clear();
  EXPECT_EQ(r.String(), "docker.io/library/busybox");
  EXPECT_EQ(r.Familiar(), "busybox");
  EXPECT_EQ(Reference{}.String(), "");
}

// ---------------------------------------------------------------------------
// NormalizeImageRef

TEST(NormalizeImageRefTest, Table) {
  struct Case {
    std::string input;
    std::string want;  // empty: must fail
  };
  const Case cases[] = {
      {"busybox", "docker.io/library/busybox:latest"},
      {"busybox:latest", "docker.io/library/busybox:latest"},
      {"busybox:1.36", "docker.io/library/busybox:1.36"},
      {"busybox@" + kDigestA, "docker.io/library/busybox@" + kDigestA},
      {"library/busybox", "docker.io/library/busybox:latest"},
      {"docker.io/busybox", "docker.io/library/busybox:latest"},
      {"docker.io/library/busybox", "docker.io/library/busybox:latest"},
      {"docker.io/busybox:latest", "docker.io/library/busybox:latest"},
      {"library/busybox:latest", "docker.io/library/busybox:latest"},
      {"docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
      {"index.docker.io/library/busybox", "docker.io/library/busybox:latest"},
      {"gcr.io/library/busybox", "gcr.io/library/busybox:latest"},
      {"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
      {"localhost:5000/x", "localhost:5000/x:latest"},
      {"user/repo", "docker.io/user/repo:latest"},
      {"foo_bar.com/app", "foo_bar.com/app:latest"},
      // Both tag and digest: the tag is dropped.
      {"gcr.io/library/busybox:latest@" + kDigestA,
       "gcr.io/library/busybox@" + kDigestA},
      {"busybox:1.36@" + kDigestA, "docker.io/library/busybox@" + kDigestA},
      {"registry.example.com/x/y:tag@" + kDigestB,
       "registry.example.com/x/y@" + kDigestB},
      {"", ""},
      {"Busybox", ""},
      {kHexA, ""},
      {"busybox:-1", ""},
      {"busybox@sha256:abc", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input);
    absl::StatusOr<std::string> got = NormalizeImageRef(c.input);
    if (c.want.empty()) {
      ASSERT_FALSE(got.ok()) << *got;
      EXPECT_TRUE(absl::IsInvalidArgument(got.status()));
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, c.want);
    // Normalising is idempotent.
    EXPECT_EQ(NormalizeImageRef(*got).value(), *got);
  }
}

// Why callers test IsImageId before NormalizeImageRef (localResolve's order):
// an image ID parses as the tag of an image named "sha256".
TEST(NormalizeImageRefTest, NormalizeImageRefOfAnImageIdIsATagOnLibrarySha256) {
  EXPECT_EQ(NormalizeImageRef(kDigestA).value(),
            "docker.io/library/sha256:" + kHexA);
  EXPECT_EQ(NormalizeImageRef("sha256:abc").value(),
            "docker.io/library/sha256:abc");
  EXPECT_TRUE(IsImageId(kDigestA));
}

// ---------------------------------------------------------------------------
// SplitImageNames

struct SplitCase {
  const char* name;
  std::vector<std::string> names;
  std::vector<std::string> tags;
  std::vector<std::string> digests;
};

TEST(SplitImageNamesTest, Table) {
  const SplitCase cases[] = {
      {"upstream parseImageReferences case",
       {"gcr.io/library/busybox@" + kDigestA, "gcr.io/library/busybox:1.2",
        kDigestA, "arbitrary-ref"},
       {"gcr.io/library/busybox:1.2"},
       {"gcr.io/library/busybox@" + kDigestA}},
      {"a pulled image: tag, repo digest and the ID name",
       {"docker.io/library/busybox:1.36",
        "docker.io/library/busybox@" + kDigestA, kDigestB},
       {"docker.io/library/busybox:1.36"},
       {"docker.io/library/busybox@" + kDigestA}},
      {"docker.io names stay fully qualified; familiar ones are qualified",
       {"busybox:1.36", "nginx@" + kDigestA, "user/app:v1"},
       {"docker.io/library/busybox:1.36", "docker.io/user/app:v1"},
       {"docker.io/library/nginx@" + kDigestA}},
      {"duplicates, also after normalisation",
       {"docker.io/library/busybox:1.36", "busybox:1.36",
        "docker.io/library/busybox:1.36", "index.docker.io/busybox:1.36",
        "busybox@" + kDigestA, "docker.io/library/busybox@" + kDigestA},
       {"docker.io/library/busybox:1.36"},
       {"docker.io/library/busybox@" + kDigestA}},
      {"IDs and other digests are not repository references",
       {kDigestA, kHexA, kSha512F, "sha384:" + Hex('0', 96)},
       {},
       {}},
      {"unparsable and bare names are left out",
       {"", "Busybox:1", "busybox:-x", "busybox@sha256:abc",
        "docker.io/library/busybox", "quay.io/a/b"},
       {},
       {}},
      {"tags sorted",
       {"registry.k8s.io/pause:3.9", "docker.io/library/b:2",
        "docker.io/library/b:10", "docker.io/library/a:1"},
       {"docker.io/library/a:1", "docker.io/library/b:10",
        "docker.io/library/b:2", "registry.k8s.io/pause:3.9"},
       {}},
      {"tag+digest names are repo digests, ranked before digest-only ones",
       {"a.io/x@" + kDigestA, "b.io/y:1@" + kDigestB, "a.io/x@" + kDigestB},
       {},
       {"b.io/y:1@" + kDigestB, "a.io/x@" + kDigestB, "a.io/x@" + kDigestA}},
      {"nothing", {}, {}, {}},
  };
  for (const SplitCase& c : cases) {
    SCOPED_TRACE(c.name);
    RepoRefs got = SplitImageNames(c.names);
    EXPECT_THAT(got.repo_tags, ElementsAreArray(c.tags));
    EXPECT_THAT(got.repo_digests, ElementsAreArray(c.digests));
  }
}

TEST(SplitImageNamesTest, OrderDoesNotDependOnInputOrder) {
  std::vector<std::string> names = {"docker.io/library/busybox:1.36",
                                    "docker.io/library/busybox:latest",
                                    "docker.io/library/busybox@" + kDigestA,
                                    kDigestB,
                                    "quay.io/x/busybox:1@" + kDigestA,
                                    "docker.io/library/busybox@" + kDigestB};
  std::sort(names.begin(), names.end());
  const RepoRefs want = SplitImageNames(names);
  EXPECT_THAT(want.repo_tags, ElementsAre("docker.io/library/busybox:1.36",
                                          "docker.io/library/busybox:latest"));
  EXPECT_THAT(want.repo_digests,
              ElementsAre("quay.io/x/busybox:1@" + kDigestA,
                          "docker.io/library/busybox@" + kDigestB,
                          "docker.io/library/busybox@" + kDigestA));
  while (std::next_permutation(names.begin(), names.end())) {
    RepoRefs got = SplitImageNames(names);
    ASSERT_EQ(got.repo_tags, want.repo_tags);
    ASSERT_EQ(got.repo_digests, want.repo_digests);
  }
}

// A name that is a truncated ID is not a digest, so, as in containerd, it
// reads as the tag of "library/sha256". The CRI plugin never creates such
// names; this pins the behaviour rather than endorsing it.
TEST(SplitImageNamesTest, TruncatedIdNameBecomesALibrarySha256Tag) {
  RepoRefs got = SplitImageNames({"sha256:abcdef"});
  EXPECT_THAT(got.repo_tags, ElementsAre("docker.io/library/sha256:abcdef"));
  EXPECT_THAT(got.repo_digests, IsEmpty());
}

// ---------------------------------------------------------------------------
// IsImageId, ImageIdPrefix

TEST(IsImageIdTest, Table) {
  struct Case {
    std::string input;
    bool want;
  };
  const Case cases[] = {
      {kDigestA, true},
      {kHexA, true},
      {"sha256:" + Hex('0'), true},
      {"", false},
      {"sha256:", false},
      {"sha256", false},
      {"sha256:" + Hex('a', 63), false},
      {"sha256:" + Hex('a', 65), false},
      {Hex('a', 63), false},
      {Hex('a', 65), false},
      {"sha256:" + Hex('A'), false},
      {Hex('A'), false},
      {"SHA256:" + kHexA, false},
      {"sha256:sha256:" + kHexA, false},
      {" " + kDigestA, false},
      {kDigestA + " ", false},
      {kSha512F, false},
      {"sha512:" + kHexA, false},
      {"busybox", false},
      {"docker.io/library/busybox:latest", false},
      {"busybox@" + kDigestA, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(IsImageId(c.input), c.want) << c.input;
  }
}

TEST(ImageIdPrefixTest, Table) {
  struct Case {
    std::string input;
    std::optional<std::string> want;
  };
  const Case cases[] = {
      {kDigestA, kDigestA},
      {kHexA, kDigestA},
      {"sha256:" + kHexA.substr(0, 12), "sha256:" + kHexA.substr(0, 12)},
      {kHexA.substr(0, 12), "sha256:" + kHexA.substr(0, 12)},
      {"e669", "sha256:e669"},
      {"a", "sha256:a"},
      {"sha256:a", "sha256:a"},
      {"0123456789abcdef", "sha256:0123456789abcdef"},
      {"", std::nullopt},
      {"sha256:", std::nullopt},
      {"sha256", std::nullopt},
      {"ABC", std::nullopt},
      {"sha256:ABC", std::nullopt},
      {"e669G", std::nullopt},
      {"xyz", std::nullopt},
      {"busybox", std::nullopt},
      {"busybox:latest", std::nullopt},
      {Hex('a', 65), std::nullopt},
      {"sha256:" + Hex('a', 65), std::nullopt},
      {"sha512:abc", std::nullopt},
      {"SHA256:abc", std::nullopt},
      {"sha256:sha256:abc", std::nullopt},
      {"abc ", std::nullopt},
      {" abc", std::nullopt},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ImageIdPrefix(c.input), c.want) << c.input;
  }
}

// The resolution the header asks of callers, over a sorted list of IDs the
// way an index prefix scan sees them: one match resolves, none or several
// resolve to nothing.
std::optional<std::string> ResolveId(const std::vector<std::string>& ids,
                                     absl::string_view s) {
  std::optional<std::string> prefix = ImageIdPrefix(s);
  if (!prefix) return std::nullopt;
  std::vector<std::string> matches;
  for (const std::string& id : ids) {
    if (absl::string_view(id).substr(0, prefix->size()) == *prefix) {
      matches.push_back(id);
    }
  }
  if (matches.size() != 1) return std::nullopt;
  return matches[0];
}

TEST(ImageIdPrefixTest, AmbiguousPrefixResolvesToNothing) {
  // The IDs of containerd's image store test: they differ in the first digit.
  std::vector<std::string> ids;
  for (char first : {'1', '2', '3', '4'}) {
    ids.push_back(absl::StrCat(
        "sha256:", std::string(1, first),
        "123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  }
  for (const std::string& id : ids) {
    // Half of the ID, with and without the algorithm, is unique.
    const std::string hex = id.substr(7);
    EXPECT_EQ(ResolveId(ids, id.substr(0, (id.size() + 1) / 2)), id);
    EXPECT_EQ(ResolveId(ids, hex.substr(0, (hex.size() + 1) / 2)), id);
    EXPECT_EQ(ResolveId(ids, hex.substr(0, 1)), id);
    EXPECT_EQ(ResolveId(ids, hex), id);
  }
  EXPECT_EQ(ResolveId(ids, "sha256"), std::nullopt);
  EXPECT_EQ(ResolveId(ids, "sha256:"), std::nullopt);
  EXPECT_EQ(ResolveId(ids, "5"), std::nullopt);
  // Two IDs share "1123": ambiguous, so nothing, never the first.
  ids.push_back("sha256:1123" + Hex('0', 60));
  EXPECT_EQ(ResolveId(ids, "1123"), std::nullopt);
  EXPECT_EQ(ResolveId(ids, "sha256:1123"), std::nullopt);
  EXPECT_EQ(ResolveId(ids, "11234"), ids[0]);
  EXPECT_EQ(ResolveId(ids, ids[4]), ids[4]);
}

}  // namespace
}  // namespace imaged::cri

namespace imaged::cri {
namespace {

// The hand-written split must agree with RE2 on everything it accepts, and
// accept the references kubelet sends.
TEST(SplitReferenceFastTest, AgreesWithRe2OnGeneratedStrings) {
  const std::vector<std::string> pieces = {
      "a", "b9", "Z", "0", ".", "_", "__", "-", "--", ":", "/", "@", "sha256:",
      std::string(64, 'e'), std::string(32, 'F'), "docker.io", "localhost", "my-host.example.com",
      "host:5000", "x+y", "v1.2", "latest", "ab_cd", "ex..am", "-x", "x-"};
  std::mt19937 rng(6);
  int accepted = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string s;
    const int n = 1 + static_cast<int>(rng() % 7);
    for (int k = 0; k < n; ++k) s += pieces[rng() % pieces.size()];
    std::optional<internal::ReferenceParts> fast = internal::SplitReferenceFast(s);
    if (!fast) continue;
    ++accepted;
    std::optional<internal::ReferenceParts> re2 = internal::SplitReferenceRe2(s);
    ASSERT_TRUE(re2.has_value()) << s;
    EXPECT_EQ(fast->domain, re2->domain) << s;
    EXPECT_EQ(fast->path, re2->path) << s;
    EXPECT_EQ(fast->tag, re2->tag) << s;
    EXPECT_EQ(fast->digest, re2->digest) << s;
  }
  EXPECT_GT(accepted, 1000);
}

TEST(SplitReferenceFastTest, TakesTheCommonForms) {
  for (const char* s : {"docker.io/library/busybox:1.36", "registry.example.com/bench/app-000001:v1",
                        "localhost:5000/a/b_c/d--e:tag.1-x",
                        "docker.io/library/busybox@sha256:"
                        "0000000000000000000000000000000000000000000000000000000000000000",
                        "quay.io/org/app:v1@sha256:"
                        "1111111111111111111111111111111111111111111111111111111111111111"}) {
    std::optional<internal::ReferenceParts> fast = internal::SplitReferenceFast(s);
    ASSERT_TRUE(fast.has_value()) << s;
    std::optional<internal::ReferenceParts> re2 = internal::SplitReferenceRe2(s);
    ASSERT_TRUE(re2.has_value()) << s;
    EXPECT_EQ(fast->domain, re2->domain);
    EXPECT_EQ(fast->path, re2->path);
    EXPECT_EQ(fast->tag, re2->tag);
    EXPECT_EQ(fast->digest, re2->digest);
  }
}

}  // namespace
}  // namespace imaged::cri
