#include "cri/registry/hosts.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imaged::cri {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// A fresh directory per call, under Bazel's TEST_TMPDIR.
std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp", "/hosts_test.XXXXXX");
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

// Writes `content` to root/rel, creating the directories on the way.
void WriteFile(const std::string& root, const std::string& rel, const std::string& content) {
  std::string dir = root;
  std::vector<std::string> parts = absl::StrSplit(rel, '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    dir = absl::StrCat(dir, "/", parts[i]);
    ::mkdir(dir.c_str(), 0755);
  }
  std::ofstream(absl::StrCat(root, "/", rel)) << content;
}

// One line per endpoint, with the temp dir shown as "$D", so that the
// expectations below read like the hosts they describe.
std::string Describe(const RegistryHost& h, const std::string& dir) {
  std::vector<std::string> caps;
  if (h.pull) caps.push_back("pull");
  if (h.resolve) caps.push_back("resolve");
  if (h.push) caps.push_back("push");
  std::string out = absl::StrCat(h.Url(), " ", caps.empty() ? "-" : absl::StrJoin(caps, ","));
  if (h.skip_verify) absl::StrAppend(&out, " skip_verify");
  if (!h.ca_files.empty()) absl::StrAppend(&out, " ca=[", absl::StrJoin(h.ca_files, " "), "]");
  if (!h.client_certs.empty()) {
    absl::StrAppend(&out, " client=[",
                    absl::StrJoin(h.client_certs, " ", absl::PairFormatter("|")), "]");
  }
  if (!h.headers.empty()) {
    absl::StrAppend(&out, " header=[", absl::StrJoin(h.headers, " ", absl::PairFormatter(": ")),
                    "]");
  }
  return absl::StrReplaceAll(out, {{dir, "$D"}});
}

struct File {
  std::string path;  // relative to the config dir
  std::string text;
};

struct HostsCase {
  std::string name;
  std::vector<File> files;
  std::string config_path;  // "$D" is the temp dir; "" = no configuration
  std::string host;
  std::vector<std::string> want;
};

void PrintTo(const HostsCase& c, std::ostream* os) { *os << c.name; }

class HostsForTest : public ::testing::TestWithParam<HostsCase> {};

TEST_P(HostsForTest, Endpoints) {
  const HostsCase& c = GetParam();
  const std::string dir = MakeTempDir();
  for (const File& f : c.files) WriteFile(dir, f.path, f.text);
  absl::StatusOr<std::vector<RegistryHost>> hosts =
      HostsFor(absl::StrReplaceAll(c.config_path, {{"$D", dir}}), c.host);
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  std::vector<std::string> got;
  for (const RegistryHost& h : *hosts) got.push_back(Describe(h, dir));
  EXPECT_THAT(got, ElementsAreArray(c.want));
}

const char kAll[] = "pull,resolve,push";

INSTANTIATE_TEST_SUITE_P(
    Cases, HostsForTest,
    ::testing::ValuesIn(std::vector<HostsCase>{
        // --- no configuration: containerd's defaults ---
        {"NoConfigIsHttpsToTheHost", {}, "", "quay.io",
         {absl::StrCat("https://quay.io/v2 ", kAll)}},
        {"NoConfigDockerIoIsRegistry1", {}, "", "docker.io",
         {absl::StrCat("https://registry-1.docker.io/v2 ", kAll)}},
        {"NoConfigLoopbackWithPortIsPlainHttp", {}, "", "127.0.0.1:5000",
         {absl::StrCat("http://127.0.0.1:5000/v2 ", kAll, " skip_verify")}},
        {"NoConfigLocalhostIsPlainHttp", {}, "", "localhost",
         {absl::StrCat("http://localhost/v2 ", kAll, " skip_verify")}},
        {"NoConfigIpv6LoopbackIsPlainHttp", {}, "", "[::1]:5000",
         {absl::StrCat("http://[::1]:5000/v2 ", kAll, " skip_verify")}},
        {"NoConfigOtherPrivateAddressIsHttps", {}, "", "10.0.0.1:5000",
         {absl::StrCat("https://10.0.0.1:5000/v2 ", kAll)}},
        {"ConfigDirWithoutTheHostIsTheDefault",
         {{"quay.io/hosts.toml", "server = \"https://q.example\"\n[host]\n"}}, "$D", "docker.io",
         {absl::StrCat("https://registry-1.docker.io/v2 ", kAll)}},

        // --- which directory ---
        {"PortDirectoryIsHostUnderscorePortUnderscore",
         {{"127.0.0.1_5000_/hosts.toml", "server = \"http://127.0.0.1:5000\"\n[host]\n"}}, "$D",
         "127.0.0.1:5000", {absl::StrCat("http://127.0.0.1:5000/v2 ", kAll)}},
        {"PortDirectoryWithColonAlsoWorks",
         {{"127.0.0.1:5000/hosts.toml", "server = \"https://127.0.0.1:5000\"\n[host]\n"}}, "$D",
         "127.0.0.1:5000", {absl::StrCat("https://127.0.0.1:5000/v2 ", kAll)}},
        {"UnderscoreFormIsTriedBeforeColonForm",
         {{"127.0.0.1_5000_/hosts.toml", "server = \"http://first:1\"\n[host]\n"},
          {"127.0.0.1:5000/hosts.toml", "server = \"http://second:2\"\n[host]\n"}},
         "$D", "127.0.0.1:5000", {absl::StrCat("http://first:1/v2 ", kAll)}},
        {"DefaultDirectoryForAnyOtherHost",
         {{"_default/hosts.toml", "server = \"https://registry.example.com\"\n[host]\n"}}, "$D",
         "docker.io", {absl::StrCat("https://registry.example.com/v2 ", kAll)}},
        {"HostDirectoryBeatsDefault",
         {{"_default/hosts.toml", "server = \"https://registry.example.com\"\n"},
          {"quay.io/hosts.toml", "server = \"https://quay-mirror.example.com\"\n"}},
         "$D", "quay.io", {absl::StrCat("https://quay-mirror.example.com/v2 ", kAll)}},
        {"FirstRootWithTheHostWins",
         {{"a/other.io/hosts.toml", "server = \"https://a.example\"\n"},
          {"b/quay.io/hosts.toml", "server = \"https://b.example\"\n"},
          {"c/quay.io/hosts.toml", "server = \"https://c.example\"\n"}},
         "$D/a::$D/b:$D/c", "quay.io", {absl::StrCat("https://b.example/v2 ", kAll)}},

        // --- server ---
        {"ServerWithoutSchemeIsHttps", {{"docker.io/hosts.toml", "server = \"docker.io\"\n"}},
         "$D", "docker.io", {absl::StrCat("https://docker.io/v2 ", kAll)}},
        {"ServerOnlyFileIsUsed",  // containerd 1.6 would ignore it: no [host]
         {{"docker.io/hosts.toml", "server = \"https://mirror.example.com\"\n"}}, "$D",
         "docker.io", {absl::StrCat("https://mirror.example.com/v2 ", kAll)}},
        {"MissingServerIsTheDefaultEndpoint",
         {{"docker.io/hosts.toml",
           "[host.\"https://mirror.example.com\"]\n  capabilities = [\"pull\"]\n"}},
         "$D", "docker.io",
         {"https://mirror.example.com/v2 pull",
          absl::StrCat("https://registry-1.docker.io/v2 ", kAll)}},
        {"EmptyServerIsTheDefaultEndpoint", {{"quay.io/hosts.toml", "server = \"\"\n"}}, "$D",
         "quay.io", {absl::StrCat("https://quay.io/v2 ", kAll)}},
        {"DefaultEndpointResetsTopLevelCapabilitiesAndKeepsCa",
         {{"quay.io/hosts.toml", "capabilities = [\"pull\"]\noverride_path = true\nca = \"ca.pem\"\n"}},
         "$D", "quay.io", {absl::StrCat("https://quay.io/v2 ", kAll, " ca=[$D/quay.io/ca.pem]")}},
        {"DefaultLoopbackEndpointForcesSkipVerify",
         {{"localhost_5000_/hosts.toml", "skip_verify = false\n"}}, "$D", "localhost:5000",
         {absl::StrCat("http://localhost:5000/v2 ", kAll, " skip_verify")}},
        {"DefaultDirectoryWithoutServerUsesTheRequestedHost",
         {{"_default/hosts.toml", "[host.\"https://mirror.example.com\"]\n"}}, "$D", "quay.io",
         {absl::StrCat("https://mirror.example.com/v2 ", kAll),
          absl::StrCat("https://quay.io/v2 ", kAll)}},

        // --- hosts: order and fields ---
        {"MirrorsInFileOrderThenServer",
         {{"docker.io/hosts.toml",
           "server = \"https://registry-1.docker.io\"\n"
           "[host.\"https://z-mirror.example.com\"]\n  capabilities = [\"pull\"]\n"
           "[host.\"https://a-mirror.example.com\"]\n  capabilities = [\"pull\", \"resolve\"]\n"}},
         "$D", "docker.io",
         {"https://z-mirror.example.com/v2 pull", "https://a-mirror.example.com/v2 pull,resolve",
          absl::StrCat("https://registry-1.docker.io/v2 ", kAll)}},
        {"CapabilitiesAnyCaseAndEmptyMeansAll",
         {{"quay.io/hosts.toml",
           "server = \"https://quay.io\"\ncapabilities = [\"PUSH\"]\n"
           "[host.\"https://a\"]\n  capabilities = [\"Resolve\"]\n"
           "[host.\"https://b\"]\n  capabilities = []\n"}},
         "$D", "quay.io",
         {"https://a/v2 resolve", absl::StrCat("https://b/v2 ", kAll), "https://quay.io/v2 push"}},
        {"SkipVerify",
         {{"quay.io/hosts.toml",
           "server = \"https://quay.io\"\nskip_verify = true\n"
           "[host.\"https://a\"]\n  skip_verify = true\n[host.\"https://b\"]\n  skip_verify = false\n"}},
         "$D", "quay.io",
         {absl::StrCat("https://a/v2 ", kAll, " skip_verify"), absl::StrCat("https://b/v2 ", kAll),
          absl::StrCat("https://quay.io/v2 ", kAll, " skip_verify")}},
        {"CaRelativeToTheHostsTomlDirectory",
         {{"quay.io/hosts.toml",
           "server = \"https://quay.io\"\nca = [\"/etc/ssl/a.pem\", \"certs/../b.pem\"]\n"
           "[host.\"https://m\"]\n  ca = \"m.pem\"\n"}},
         "$D", "quay.io",
         {absl::StrCat("https://m/v2 ", kAll, " ca=[$D/quay.io/m.pem]"),
          absl::StrCat("https://quay.io/v2 ", kAll, " ca=[/etc/ssl/a.pem $D/quay.io/b.pem]")}},
        {"ClientAsPathPathsOrPairs",
         {{"quay.io/hosts.toml",
           "server = \"https://quay.io\"\nclient = \"both.pem\"\n"
           "[host.\"https://a\"]\n  client = [\"c1.pem\", \"/etc/c2.pem\"]\n"
           "[host.\"https://b\"]\n  client = [[\"c.cert\", \"c.key\"], [\"both.pem\", \"\"]]\n"}},
         "$D", "quay.io",
         {absl::StrCat("https://a/v2 ", kAll, " client=[$D/quay.io/c1.pem| /etc/c2.pem|]"),
          absl::StrCat("https://b/v2 ", kAll,
                       " client=[$D/quay.io/c.cert|$D/quay.io/c.key $D/quay.io/both.pem|]"),
          absl::StrCat("https://quay.io/v2 ", kAll, " client=[$D/quay.io/both.pem|]")}},
        {"PlainHttpHost",
         {{"docker.io/hosts.toml",
           "server = \"https://registry-1.docker.io\"\n"
           "[host.\"http://192.168.31.250:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"}},
         "$D", "docker.io",
         {"http://192.168.31.250:5000/v2 pull,resolve",
          absl::StrCat("https://registry-1.docker.io/v2 ", kAll)}},
        {"UrlPaths",
         {{"docker.io/hosts.toml",
           "server = \"https://registry-1.docker.io/\"\n"
           "[host.\"https://a/us\"]\n[host.\"https://b/us/\"]\n[host.\"https://c/v2\"]\n"
           "[host.\"https://d/x/v2/\"]\n[host.\"https://e/x%2Fy\"]\n"}},
         "$D", "docker.io",
         {absl::StrCat("https://a/us/v2 ", kAll), absl::StrCat("https://b/us/v2 ", kAll),
          absl::StrCat("https://c/v2 ", kAll), absl::StrCat("https://d/x/v2 ", kAll),
          absl::StrCat("https://e/x/y/v2 ", kAll),
          absl::StrCat("https://registry-1.docker.io/v2 ", kAll)}},
        {"OverridePath",
         {{"docker.io/hosts.toml",
           "server = \"https://srv/api\"\noverride_path = true\n"
           "[host.\"https://noncompliant/v2/prefix\"]\n  override_path = true\n"
           "[host.\"https://root-api\"]\n  override_path = true\n"}},
         "$D", "docker.io",
         {absl::StrCat("https://noncompliant/v2/prefix ", kAll),
          absl::StrCat("https://root-api ", kAll), absl::StrCat("https://srv/api ", kAll)}},
        {"Headers",
         {{"quay.io/hosts.toml",
           "server = \"https://quay.io\"\n[header]\n  x-b = \"2\"\n  x-a = [\"1a\", \"1b\"]\n"
           "[host.\"https://m\"]\n  [host.\"https://m\".header]\n    X-Custom = \"yes\"\n"}},
         "$D", "quay.io",
         {absl::StrCat("https://m/v2 ", kAll, " header=[X-Custom: yes]"),
          absl::StrCat("https://quay.io/v2 ", kAll, " header=[x-a: 1a x-a: 1b x-b: 2]")}},
        {"UnknownKeysAreIgnored",
         {{"quay.io/hosts.toml",
           "server = \"https://quay.io\"\nskip-verify = true\nmirrors = 3\n"
           "[host.\"https://m\"]\n  server = \"https://ignored\"\n  weight = 1\n"
           "  [host.\"https://m\".host.\"https://nested\"]\n"}},
         "$D", "quay.io", {absl::StrCat("https://m/v2 ", kAll), absl::StrCat("https://quay.io/v2 ", kAll)}},
        {"UserinfoQueryAndFragmentAreDropped",
         {{"quay.io/hosts.toml", "server = \"https://u:p@quay.io:443/x?y=1#z\"\n"}}, "$D",
         "quay.io", {absl::StrCat("https://quay.io:443/x/v2 ", kAll)}},

        // --- Docker's certs.d layout ---
        {"CertsDirWithoutHostsToml",
         {{"quay.io/ca.crt", "x"},
          {"quay.io/client.cert", "x"},
          {"quay.io/client.key", "x"},
          {"quay.io/alone.cert", "x"},
          {"quay.io/notes.txt", "x"},
          {"quay.io/sub.crt/ignored", "x"}},
         "$D", "quay.io",
         {absl::StrCat("https://quay.io/v2 ", kAll,
                       " ca=[$D/quay.io/ca.crt]"
                       " client=[$D/quay.io/alone.cert| $D/quay.io/client.cert|$D/quay.io/client.key]")}},
        {"EmptyHostsTomlFallsBackToCertsDir",
         {{"127.0.0.1_5000_/hosts.toml", ""}, {"127.0.0.1_5000_/ca.crt", "x"}}, "$D",
         "127.0.0.1:5000",
         {absl::StrCat("http://127.0.0.1:5000/v2 ", kAll, " skip_verify ca=[$D/127.0.0.1_5000_/ca.crt]")}},
    }),
    [](const ::testing::TestParamInfo<HostsCase>& info) { return info.param.name; });

struct ErrorCase {
  std::string name;
  std::string toml;  // written to quay.io/hosts.toml
  std::vector<std::string> want;  // substrings of the message besides the file name
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

class HostsForErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(HostsForErrorTest, NamesFileLineAndKey) {
  const ErrorCase& c = GetParam();
  const std::string dir = MakeTempDir();
  WriteFile(dir, "quay.io/hosts.toml", c.toml);
  absl::StatusOr<std::vector<RegistryHost>> hosts = HostsFor(dir, "quay.io");
  ASSERT_FALSE(hosts.ok());
  EXPECT_EQ(hosts.status().code(), absl::StatusCode::kInvalidArgument) << hosts.status();
  EXPECT_THAT(std::string(hosts.status().message()), HasSubstr(dir + "/quay.io/hosts.toml:"));
  for (const std::string& w : c.want) {
    EXPECT_THAT(std::string(hosts.status().message()), HasSubstr(w));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HostsForErrorTest,
    ::testing::ValuesIn(std::vector<ErrorCase>{
        {"MalformedToml", "server = \"https://quay.io\"\n\n[host.\"https://m\"\n", {"toml:3:"}},
        {"UnterminatedString", "server = \"https://quay.io\n", {"toml:1:"}},
        {"ServerNotAString", "server = 5\n", {"toml:1: server: must be a URL string"}},
        {"SkipVerifyNotABool", "[host.\"https://m\"]\nskip_verify = \"yes\"\n",
         {"toml:2: host.\"https://m\".skip_verify: must be a boolean, not a string"}},
        {"UnknownCapability", "[host.\"https://m\"]\n  capabilities = [\"pull\", \"pul\"]\n",
         {"toml:2: host.\"https://m\".capabilities: unknown capability \"pul\""}},
        {"CapabilitiesNotAnArray", "capabilities = \"pull\"\n", {"toml:1: capabilities:"}},
        {"CaWrongType", "ca = 1\n", {"toml:1: ca: must be a path or an array of paths"}},
        {"CaEmptyPath", "ca = [\"\"]\n", {"ca: empty path"}},
        {"ClientPairOfThree", "client = [[\"a\", \"b\", \"c\"]]\n", {"client: a [cert, key] pair"}},
        {"HeaderWrongType", "[header]\n  x-n = 1\n", {"toml:2: header.x-n:"}},
        {"HostNotATable", "host = \"https://m\"\n", {"toml:1: host: must be a table"}},
        {"HostEntryNotATable", "[host]\n\"https://m\" = 1\n", {"toml:2: host.\"https://m\":"}},
        {"BadScheme", "server = \"ftp://quay.io\"\n", {"toml:1: server: \"ftp://quay.io\": scheme"}},
        {"BadPort", "[host.\"https://m:port\"]\n", {"toml:1: host.\"https://m:port\": ", "invalid port"}},
        {"NoHostInMirrorUrl", "[host.\"https://\"]\n", {"toml:1: host.\"https://\": ", "no host"}},
        {"BadEscape", "server = \"https://quay.io/%zz\"\n", {"invalid URL escape"}},
    }),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(HostsForTest, RejectsHostsThatAreNotHostNames) {
  for (const char* host : {"", ".", "..", "a/b", "../etc"}) {
    EXPECT_EQ(HostsFor("", host).status().code(), absl::StatusCode::kInvalidArgument) << host;
  }
}

TEST(HostsForTest, RelativeConfigPathGivesAbsoluteFilePaths) {
  const std::string dir = MakeTempDir();
  WriteFile(dir, "quay.io/hosts.toml", "ca = \"ca.pem\"\n");
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(::chdir(dir.c_str()), 0);
  absl::StatusOr<std::vector<RegistryHost>> hosts = HostsFor(".", "quay.io");
  ASSERT_EQ(::chdir(cwd), 0);
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  ASSERT_EQ(hosts->size(), 1u);
  EXPECT_THAT(hosts->front().ca_files, ElementsAreArray({dir + "/quay.io/ca.pem"}));
}

TEST(HostsForTest, UnreadableHostsTomlIsAnError) {
  const std::string dir = MakeTempDir();
  // hosts.toml is a directory: reading it fails (containerd fails too).
  WriteFile(dir, "quay.io/hosts.toml/x", "");
  absl::StatusOr<std::vector<RegistryHost>> hosts = HostsFor(dir, "quay.io");
  ASSERT_FALSE(hosts.ok());
  EXPECT_THAT(std::string(hosts.status().message()), HasSubstr("quay.io/hosts.toml"));
}

TEST(IsLocalhostTest, AsContainerd) {
  for (const char* host : {"localhost", "localhost:5000", "127.0.0.1", "127.0.0.1:5000",
                           "127.1.2.3:80", "::1", "[::1]:5000", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLocalhost(host)) << host;
  }
  for (const char* host : {"docker.io", "localhost.localdomain", "mylocalhost:5000",
                           "LOCALHOST", "10.0.0.1:5000", "128.0.0.1", "127.0.0.01", "[::1]",
                           "::2", "0.0.0.0:5000"}) {
    EXPECT_FALSE(IsLocalhost(host)) << host;
  }
}

TEST(RegistryHostTest, Url) {
  RegistryHost h;
  h.scheme = "http";
  h.host = "127.0.0.1:5000";
  h.path = "/v2";
  EXPECT_EQ(h.Url(), "http://127.0.0.1:5000/v2");
  h.path = "";
  EXPECT_EQ(h.Url(), "http://127.0.0.1:5000");
}

}  // namespace
}  // namespace imaged::cri
