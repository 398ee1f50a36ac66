// The registry client's decisions, each pinned against a scripted transport:
// which requests it sends, in what order, how long it waits between them
// (on a fake clock), and what status it ends with. The end-to-end tests
// (testdata/) run it against a real docker-registry.
#include "cri/registry/registry_client.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/digest.h"
#include "store/oci.h"

namespace imaged::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::string_view kManifest =
    R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
    R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":)"
    R"("sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},)"
    R"("layers":[]})";

// One request as the transport saw it, shortened for matching.
struct Seen {
  std::string method;
  std::string url;
  std::string authorization;
  int64_t range_start = -1;
};

// A transport whose answers the test scripts: each request goes to
// `handler`, which answers it (and may stream a body to the sink).
class ScriptedTransport : public HttpTransport {
 public:
  using Handler =
      std::function<absl::StatusOr<HttpResponse>(const HttpRequest& req, const Sink& sink)>;
  Handler handler;
  std::vector<Seen> seen;

  using HttpTransport::Do;
  absl::StatusOr<HttpResponse> Do(const HttpRequest& req, const Sink& sink, size_t) override {
    Seen s{req.method, req.url, "", req.range_start};
    for (const auto& [name, value] : req.headers) {
      if (name == "Authorization") s.authorization = value;
    }
    seen.push_back(std::move(s));
    return handler(req, sink);
  }
  std::vector<std::string> Urls() const {
    std::vector<std::string> out;
    for (const Seen& s : seen) out.push_back(s.method + " " + s.url);
    return out;
  }
};

HttpResponse Status(int status, std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.headers = std::move(headers);
  return r;
}

// A 2xx answer whose `body` goes to the sink when there is one.
absl::StatusOr<HttpResponse> Body(const HttpTransport::Sink& sink, int status, std::string body,
                                  std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse r = Status(status, std::move(headers));
  if (!sink) {
    r.body = std::move(body);
    return r;
  }
  if (absl::Status s = sink(r, body); !s.ok()) return s;
  return r;
}

RegistryHost Host(const std::string& host) {
  RegistryHost h;
  h.scheme = "http";
  h.host = host;
  h.path = "/v2";
  return h;
}

class RegistryClientTest : public ::testing::Test {
 protected:

  std::unique_ptr<RegistryClient> Client(std::vector<RegistryHost> hosts = {Host("reg")},
                                         CancelCheck cancel = nullptr) {
    RetryPolicy retry;  // the defaults: 4 attempts, 250 ms doubling to 8 s
    return std::make_unique<RegistryClient>(&http_, auth_.get(), "reg", "team/app", std::move(hosts),
                                            retry, std::move(cancel), &clock_);
  }
  store::Descriptor Blob(const std::string& bytes) {
    store::Descriptor d;
    d.digest = store::Sha256::Of(bytes);
    d.size = static_cast<int64_t>(bytes.size());
    return d;
  }
  store::Descriptor ManifestDescriptor() {
    store::Descriptor d = Blob(std::string(kManifest));
    d.media_type = std::string(store::kMediaTypeOciManifest);
    return d;
  }

  ScriptedTransport http_;
  std::unique_ptr<Authorizer> auth_ = std::make_unique<Authorizer>(&http_, Credentials{});
  store::FakeClock clock_;
};

TEST_F(RegistryClientTest, ServerErrorsAreRetriedWithDoublingBackoffThenUnavailable) {
  http_.handler = [](const HttpRequest&, const HttpTransport::Sink&) { return Status(500); };
  absl::StatusOr<std::string> got = Client()->FetchManifest(ManifestDescriptor());
  EXPECT_TRUE(absl::IsUnavailable(got.status())) << got.status();
  EXPECT_THAT(got.status().message(), HasSubstr("HTTP 500"));
  EXPECT_THAT(got.status().message(), HasSubstr("reg/team/app"));
  EXPECT_EQ(http_.seen.size(), 4u);
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(250 + 500 + 1000));
}

TEST_F(RegistryClientTest, RetryAfterIsWaitedBeforeTheNextAttempt) {
  int calls = 0;
  http_.handler = [&](const HttpRequest&, const HttpTransport::Sink& sink) {
    if (++calls == 1) return absl::StatusOr<HttpResponse>(Status(429, {{"retry-after", "3"}}));
    return Body(sink, 200, std::string(kManifest));
  };
  absl::StatusOr<std::string> got = Client()->FetchManifest(ManifestDescriptor());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, kManifest);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(clock_.slept(), absl::Seconds(3));
}

TEST_F(RegistryClientTest, RetryAfterIsCappedByTheLongestBackoff) {
  int calls = 0;
  http_.handler = [&](const HttpRequest&, const HttpTransport::Sink& sink) {
    if (++calls == 1) return absl::StatusOr<HttpResponse>(Status(503, {{"retry-after", "3600"}}));
    return Body(sink, 200, std::string(kManifest));
  };
  ASSERT_TRUE(Client()->FetchManifest(ManifestDescriptor()).ok());
  EXPECT_EQ(clock_.slept(), RetryPolicy{}.max_backoff);
}

TEST_F(RegistryClientTest, CancellationStopsTheBackoff) {
  bool cancelled = false;
  http_.handler = [&](const HttpRequest&, const HttpTransport::Sink&) {
    cancelled = true;  // the caller goes away while the registry fails
    return absl::StatusOr<HttpResponse>(Status(503));
  };
  absl::StatusOr<std::string> got =
      Client({Host("reg")}, [&] { return cancelled; })->FetchManifest(ManifestDescriptor());
  EXPECT_TRUE(absl::IsCancelled(got.status())) << got.status();
  EXPECT_EQ(http_.seen.size(), 1u);
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
}

TEST_F(RegistryClientTest, A404OnAMirrorFallsThroughToTheNextHost) {
  http_.handler = [](const HttpRequest& req, const HttpTransport::Sink& sink) {
    if (absl::StartsWith(req.url, "http://mirror/")) return absl::StatusOr<HttpResponse>(Status(404));
    return Body(sink, 200, std::string(kManifest));
  };
  absl::StatusOr<std::string> got =
      Client({Host("mirror"), Host("reg")})->FetchManifest(ManifestDescriptor());
  ASSERT_TRUE(got.ok()) << got.status();
  const std::string path = "/v2/team/app/manifests/" + ManifestDescriptor().digest;
  EXPECT_THAT(http_.Urls(), ElementsAre("GET http://mirror" + path, "GET http://reg" + path));
}

TEST_F(RegistryClientTest, AHostThatMayOnlyPullIsNotAskedToResolve) {
  RegistryHost pull_only = Host("mirror");
  pull_only.resolve = false;
  const std::string digest = ManifestDescriptor().digest;
  http_.handler = [&](const HttpRequest&, const HttpTransport::Sink&) {
    return absl::StatusOr<HttpResponse>(
        Status(200, {{"content-type", std::string(store::kMediaTypeOciManifest)},
                     {"docker-content-digest", digest},
                     {"content-length", absl::StrCat(kManifest.size())}}));
  };
  absl::StatusOr<store::Descriptor> d = Client({pull_only, Host("reg")})->Resolve("v1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(http_.Urls(), ElementsAre("HEAD http://reg/v2/team/app/manifests/v1"));
}

TEST_F(RegistryClientTest, ResolveUsesHeadWhenItSaysDigestSizeAndType) {
  const store::Descriptor want = ManifestDescriptor();
  http_.handler = [&](const HttpRequest&, const HttpTransport::Sink&) {
    return absl::StatusOr<HttpResponse>(
        Status(200, {{"content-type", std::string(store::kMediaTypeOciManifest) + "; charset=utf-8"},
                     {"docker-content-digest", want.digest},
                     {"content-length", absl::StrCat(want.size)}}));
  };
  absl::StatusOr<store::Descriptor> d = Client()->Resolve("v1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, want.digest);
  EXPECT_EQ(d->size, want.size);
  EXPECT_EQ(d->media_type, store::kMediaTypeOciManifest);
  EXPECT_EQ(http_.seen.size(), 1u);
}

TEST_F(RegistryClientTest, ResolveFallsBackToGetWhenHeadLacksTheDigest) {
  http_.handler = [&](const HttpRequest& req, const HttpTransport::Sink& sink) {
    if (req.method == "HEAD") {
      return absl::StatusOr<HttpResponse>(
          Status(200, {{"content-type", std::string(store::kMediaTypeOciManifest)}}));
    }
    // No useful Content-Type either: the document's shape says what it is.
    return Body(sink, 200, std::string(kManifest), {{"content-type", "text/plain"}});
  };
  absl::StatusOr<store::Descriptor> d = Client()->Resolve("v1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, ManifestDescriptor().digest);
  EXPECT_EQ(d->size, static_cast<int64_t>(kManifest.size()));
  EXPECT_EQ(d->media_type, store::kMediaTypeOciManifest);
  EXPECT_THAT(http_.Urls(), ElementsAre("HEAD http://reg/v2/team/app/manifests/v1",
                                        "GET http://reg/v2/team/app/manifests/v1"));
}

TEST_F(RegistryClientTest, ResolveFallsBackToGetWhenHeadIsRefused) {
  http_.handler = [&](const HttpRequest& req, const HttpTransport::Sink& sink) {
    if (req.method == "HEAD") return absl::StatusOr<HttpResponse>(Status(405));
    return Body(sink, 200, std::string(kManifest),
                {{"content-type", std::string(store::kMediaTypeOciManifest)}});
  };
  absl::StatusOr<store::Descriptor> d = Client()->Resolve("v1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, ManifestDescriptor().digest);
  EXPECT_EQ(http_.seen.size(), 2u);
}

TEST_F(RegistryClientTest, ADocumentThatIsNotTheDigestAskedForIsDataLoss) {
  const std::string other = absl::StrCat(kManifest.substr(0, kManifest.size() - 1), " }");
  http_.handler = [&](const HttpRequest& req, const HttpTransport::Sink& sink) {
    if (req.method == "HEAD") return absl::StatusOr<HttpResponse>(Status(405));
    return Body(sink, 200, other, {{"content-type", std::string(store::kMediaTypeOciManifest)}});
  };
  const std::string digest = ManifestDescriptor().digest;
  absl::StatusOr<store::Descriptor> d = Client()->Resolve(digest);
  EXPECT_TRUE(absl::IsDataLoss(d.status())) << d.status();
  EXPECT_TRUE(absl::IsDataLoss(Client()->FetchManifest(ManifestDescriptor()).status()));
}

TEST_F(RegistryClientTest, Schema1IsFailedPreconditionNamingItsType) {
  http_.handler = [&](const HttpRequest& req, const HttpTransport::Sink& sink) {
    if (req.method == "HEAD") return absl::StatusOr<HttpResponse>(Status(405));
    return Body(sink, 200, R"({"schemaVersion":1,"name":"team/app","fsLayers":[]})",
                {{"content-type", "application/vnd.docker.distribution.manifest.v1+prettyjws"}});
  };
  absl::StatusOr<store::Descriptor> d = Client()->Resolve("v1");
  EXPECT_TRUE(absl::IsFailedPrecondition(d.status())) << d.status();
  EXPECT_THAT(d.status().message(), HasSubstr("manifest.v1+prettyjws"));
}

TEST_F(RegistryClientTest, ForbiddenIsPermissionDeniedAndNotRetried) {
  http_.handler = [](const HttpRequest&, const HttpTransport::Sink&) { return Status(403); };
  absl::StatusOr<std::string> got = Client()->FetchManifest(ManifestDescriptor());
  EXPECT_TRUE(absl::IsPermissionDenied(got.status())) << got.status();
  EXPECT_EQ(http_.seen.size(), 1u);
}

TEST_F(RegistryClientTest, AnUnknownStatusIsFailedPreconditionAndNotRetried) {
  http_.handler = [](const HttpRequest&, const HttpTransport::Sink&) { return Status(418); };
  absl::StatusOr<std::string> got = Client()->FetchManifest(ManifestDescriptor());
  EXPECT_TRUE(absl::IsFailedPrecondition(got.status())) << got.status();
  EXPECT_EQ(http_.seen.size(), 1u);
}

TEST_F(RegistryClientTest, AResumeAsksForTheRestAndA206ContinuesThere) {
  const std::string blob = "0123456789abcdefghij";
  http_.handler = [&](const HttpRequest& req, const HttpTransport::Sink& sink) {
    if (req.range_start < 0) {
      // The first transfer breaks off after 8 bytes.
      HttpResponse head = Status(200);
      if (absl::Status s = sink(head, blob.substr(0, 8)); !s.ok()) return absl::StatusOr<HttpResponse>(s);
      return absl::StatusOr<HttpResponse>(absl::UnavailableError("connection reset by peer"));
    }
    return Body(sink, 206, blob.substr(static_cast<size_t>(req.range_start)));
  };
  std::string got;
  absl::Status s = Client()->FetchBlob(Blob(blob), 0, [&](const HttpResponse&, absl::string_view c) {
    got.append(c.data(), c.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(got, blob);
  ASSERT_EQ(http_.seen.size(), 2u);
  EXPECT_EQ(http_.seen[1].range_start, 8);
}

TEST_F(RegistryClientTest, ARegistryThatIgnoresRangeIsReadPastWhatWeHave) {
  const std::string blob = "0123456789abcdefghij";
  // Every answer is 200 with the whole blob, whatever Range asked.
  http_.handler = [&](const HttpRequest&, const HttpTransport::Sink& sink) {
    return Body(sink, 200, blob);
  };
  std::string got;
  absl::Status s = Client()->FetchBlob(Blob(blob), 12, [&](const HttpResponse&, absl::string_view c) {
    got.append(c.data(), c.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(got, blob.substr(12));
  EXPECT_EQ(http_.seen.at(0).range_start, 12);
}

TEST_F(RegistryClientTest, MoreBytesThanTheManifestDeclaresIsDataLoss) {
  const std::string blob = "0123456789";
  http_.handler = [&](const HttpRequest&, const HttpTransport::Sink& sink) {
    return Body(sink, 200, blob + "extra");
  };
  absl::Status s = Client()->FetchBlob(Blob(blob), 0, [](const HttpResponse&, absl::string_view) {
    return absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_EQ(http_.seen.size(), 1u);
}

TEST_F(RegistryClientTest, ATransferThatEndsShortIsUnavailable) {
  const std::string blob = "0123456789";
  // A well-formed answer that simply stops early, every time.
  http_.handler = [&](const HttpRequest& req, const HttpTransport::Sink& sink) {
    return Body(sink, req.range_start > 0 ? 206 : 200, req.range_start > 0 ? "" : blob.substr(0, 4));
  };
  absl::Status s = Client()->FetchBlob(Blob(blob), 0, [](const HttpResponse&, absl::string_view) {
    return absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("after 4 of 10 bytes"));
}

// A registry with a token server: tokens are "t1", "t2", ... in the order
// issued, and the registry accepts only the newest (older ones expired).
class TokenRegistry {
 public:
  explicit TokenRegistry(ScriptedTransport* http) {
    http->handler = [this](const HttpRequest& req, const HttpTransport::Sink& sink) {
      return Handle(req, sink);
    };
  }
  void ExpireTokens() { expired_below_ = issued_ + 1; }
  int issued() const { return issued_; }

 private:
  absl::StatusOr<HttpResponse> Handle(const HttpRequest& req, const HttpTransport::Sink& sink) {
    if (absl::StartsWith(req.url, "http://auth/token?")) {
      ++issued_;
      return Body(sink, 200, absl::StrCat(R"({"token":"t)", issued_, R"("})"));
    }
    std::string authorization;
    for (const auto& [name, value] : req.headers) {
      if (name == "Authorization") authorization = value;
    }
    const int newest = issued_ >= expired_below_ ? issued_ : -1;
    if (authorization != absl::StrCat("Bearer t", newest)) {
      return Status(401, {{"www-authenticate",
                           R"(Bearer realm="http://auth/token",service="reg",scope="repository:team/app:pull")"}});
    }
    return Body(sink, 200, std::string(kManifest));
  }

  int issued_ = 0;
  int expired_below_ = 0;
};

TEST_F(RegistryClientTest, ABearerTokenIsFetchedOnceAndReused) {
  TokenRegistry registry(&http_);
  std::unique_ptr<RegistryClient> client = Client();
  ASSERT_TRUE(client->FetchManifest(ManifestDescriptor()).ok());
  ASSERT_TRUE(client->FetchManifest(ManifestDescriptor()).ok());
  EXPECT_EQ(registry.issued(), 1);
  // anonymous, token, with token; then with token at once.
  ASSERT_EQ(http_.seen.size(), 4u);
  EXPECT_EQ(http_.seen[0].authorization, "");
  EXPECT_THAT(http_.seen[1].url, HasSubstr("service=reg&scope=repository%3Ateam%2Fapp%3Apull"));
  EXPECT_EQ(http_.seen[2].authorization, "Bearer t1");
  EXPECT_EQ(http_.seen[3].authorization, "Bearer t1");
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
}

TEST_F(RegistryClientTest, AnExpiredTokenIsRefreshedOnceAndTheRequestRepeated) {
  TokenRegistry registry(&http_);
  std::unique_ptr<RegistryClient> client = Client();
  ASSERT_TRUE(client->FetchManifest(ManifestDescriptor()).ok());
  registry.ExpireTokens();
  absl::StatusOr<std::string> got = client->FetchManifest(ManifestDescriptor());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(registry.issued(), 2);
  EXPECT_EQ(http_.seen.back().authorization, "Bearer t2");
}

TEST_F(RegistryClientTest, ASecondRefusalIsUnauthenticatedWithoutTheCredentials) {
  auth_ = std::make_unique<Authorizer>(&http_, Credentials{"alice", "s3cret-pass", "", ""});
  http_.handler = [](const HttpRequest&, const HttpTransport::Sink&) {
    return Status(401, {{"www-authenticate", R"(Basic realm="reg")"}});
  };
  absl::StatusOr<std::string> got = Client()->FetchManifest(ManifestDescriptor());
  EXPECT_TRUE(absl::IsUnauthenticated(got.status())) << got.status();
  EXPECT_THAT(got.status().message(), Not(HasSubstr("s3cret")));
  ASSERT_EQ(http_.seen.size(), 2u);  // anonymous, then once with the credentials
  EXPECT_THAT(http_.seen[1].authorization, HasSubstr("Basic "));
}

}  // namespace
}  // namespace imaged::cri
