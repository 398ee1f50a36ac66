#include "cri/registry/registry_auth.h"

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace imaged::cri {
namespace {

TEST(ParseChallenges, BearerWithQuotedParams) {
  std::vector<Challenge> c = ParseChallenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c[0].params["service"], "registry.docker.io");
  EXPECT_EQ(c[0].params["scope"], "repository:library/busybox:pull");
}

TEST(ParseChallenges, TableOfShapes) {
  struct Case {
    const char* header;
    std::vector<std::pair<std::string, std::map<std::string, std::string>>> want;
  };
  const Case cases[] = {
      {R"(Basic realm="Registry Realm")", {{"basic", {{"realm", "Registry Realm"}}}}},
      {R"(basic REALM=token)", {{"basic", {{"realm", "token"}}}}},
      {R"(Basic realm="a", Bearer realm="https://t/token", service=reg)",
       {{"basic", {{"realm", "a"}}}, {"bearer", {{"realm", "https://t/token"}, {"service", "reg"}}}}},
      {R"(Bearer realm="with \"escaped\" quote")", {{"bearer", {{"realm", "with \"escaped\" quote"}}}}},
      {R"(Bearer realm="a,b",  scope="x y")", {{"bearer", {{"realm", "a,b"}, {"scope", "x y"}}}}},
      {"Negotiate", {{"negotiate", {}}}},
      {"", {}},
      {R"(Bearer realm="unterminated)", {{"bearer", {}}}},
  };
  for (const Case& tc : cases) {
    std::vector<Challenge> got = ParseChallenges(tc.header);
    ASSERT_EQ(got.size(), tc.want.size()) << tc.header;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].scheme, tc.want[i].first) << tc.header;
      EXPECT_EQ(got[i].params, tc.want[i].second) << tc.header;
    }
  }
}

TEST(CredentialsFromAuthConfig, UsernameWinsThenIdentityTokenThenAuth) {
  absl::StatusOr<Credentials> c = CredentialsFromAuthConfig("u", "p", "eDp5", "idt", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "u");
  EXPECT_EQ(c->password, "p");
  EXPECT_EQ(c->identity_token, "");

  c = CredentialsFromAuthConfig("", "", absl::Base64Escape("x:y"), "idt", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identity_token, "idt");
  EXPECT_EQ(c->username, "");

  c = CredentialsFromAuthConfig("", "", absl::Base64Escape("x:y:z"), "", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "x");
  EXPECT_EQ(c->password, "y:z");

  c = CredentialsFromAuthConfig("", "", "", "", "rt");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->registry_token, "rt");
  EXPECT_TRUE(CredentialsFromAuthConfig("", "", "", "", "")->empty());
}

TEST(CredentialsFromAuthConfig, BadAuthIsInvalidArgumentWithoutTheSecret) {
  for (const std::string& auth : {std::string("!!!not base64!!!"), absl::Base64Escape("nocolon"),
                                  absl::Base64Escape(":onlypassword")}) {
    absl::StatusOr<Credentials> c = CredentialsFromAuthConfig("", "", auth, "", "");
    ASSERT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << auth;
    EXPECT_EQ(std::string(c.status().message()).find(auth), std::string::npos);
    EXPECT_EQ(std::string(c.status().message()).find("nocolon"), std::string::npos);
  }
}

TEST(Authorizer, RegistryTokenIsSentFromTheStart) {
  HttpClient http;
  Credentials creds;
  creds.registry_token = "tok";
  Authorizer auth(&http, creds);
  EXPECT_EQ(auth.HeaderFor("r.example", "repository:a:pull"), "Bearer tok");
}

TEST(Authorizer, BasicChallengeAnsweredOnceThenRefused) {
  HttpClient http;
  Credentials creds;
  creds.username = "alice";
  creds.password = "s3cret";
  Authorizer auth(&http, creds);
  EXPECT_EQ(auth.HeaderFor("r.example", "repository:a:pull"), "");
  HttpResponse r;
  r.status = 401;
  r.headers.emplace_back("www-authenticate", R"(Basic realm="x")");
  ASSERT_TRUE(auth.OnUnauthorized("r.example", "repository:a:pull", r, nullptr).ok());
  EXPECT_EQ(auth.HeaderFor("r.example", "repository:a:pull"),
            "Basic " + absl::Base64Escape("alice:s3cret"));
  EXPECT_EQ(auth.HeaderFor("other.example", "repository:a:pull"), "");
  absl::Status again = auth.OnUnauthorized("r.example", "repository:a:pull", r, nullptr);
  EXPECT_EQ(again.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(again.message()).find("s3cret"), std::string::npos);
}

TEST(Authorizer, BasicChallengeWithoutCredentialsIsUnauthenticated) {
  HttpClient http;
  Authorizer auth(&http, Credentials{});
  HttpResponse r;
  r.status = 401;
  r.headers.emplace_back("www-authenticate", R"(Basic realm="x")");
  EXPECT_EQ(auth.OnUnauthorized("r", "s", r, nullptr).code(), absl::StatusCode::kUnauthenticated);
}

TEST(Authorizer, UnknownSchemeAndMissingChallengeAreUnauthenticated) {
  HttpClient http;
  Authorizer auth(&http, Credentials{});
  HttpResponse r;
  r.status = 401;
  EXPECT_EQ(auth.OnUnauthorized("r", "s", r, nullptr).code(), absl::StatusCode::kUnauthenticated);
  r.headers.emplace_back("www-authenticate", "Negotiate");
  EXPECT_EQ(auth.OnUnauthorized("r", "s", r, nullptr).code(), absl::StatusCode::kUnauthenticated);
}

TEST(Authorizer, BearerRealmMustBeHttp) {
  HttpClient http;
  Authorizer auth(&http, Credentials{});
  HttpResponse r;
  r.status = 401;
  r.headers.emplace_back("www-authenticate", R"(Bearer realm="file:///etc/passwd")");
  EXPECT_EQ(auth.OnUnauthorized("r", "s", r, nullptr).code(), absl::StatusCode::kUnauthenticated);
}

TEST(Authorizer, UnreachableTokenServerIsUnavailable) {
  HttpClient http;
  Authorizer auth(&http, Credentials{});
  HttpResponse r;
  r.status = 401;
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  r.headers.emplace_back("www-authenticate", R"(Bearer realm="http://127.0.0.1:1/token")");
  EXPECT_EQ(auth.OnUnauthorized("r", "s", r, nullptr).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace imaged::cri
