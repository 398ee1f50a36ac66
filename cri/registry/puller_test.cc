// The puller's own logic (retries, resumed transfers, verification, shared
// downloads, naming) over real stores and a registry faked at the HTTP
// transport: the end-to-end tests (testdata/) pull from a real
// docker-registry; these pin what is hard to provoke there.
#include "cri/registry/puller.h"

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/files.h"
#include "store/local_stores.h"
#include "store/test_dirs.h"
#include "store/test_images.h"

namespace imaged::cri {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr absl::string_view kNs = "k8s.io";
constexpr absl::string_view kRef = "127.0.0.1:5000/team/app:v1";

// A registry in memory: manifests by tag and digest, blobs by digest, and
// ways to misbehave.
class FakeRegistry : public HttpTransport {
 public:
  void AddManifest(const std::string& tag, const std::string& media_type, const std::string& bytes,
                   const std::string& digest) {
    absl::MutexLock lock(&mu_);
    manifests_[tag] = manifests_[digest] = {media_type, bytes};
    digests_[tag] = digest;
  }
  void AddBlob(const std::string& digest, const std::string& bytes) {
    absl::MutexLock lock(&mu_);
    blobs_[digest] = bytes;
  }
  // The next `n` blob GETs answer 503.
  void FailBlobGets(int n) {
    absl::MutexLock lock(&mu_);
    fail_blob_gets_ = n;
  }
  // The next GET of `digest` ends after `bytes` bytes with a reset connection.
  void CutBlob(const std::string& digest, size_t bytes, int times = 1) {
    absl::MutexLock lock(&mu_);
    cuts_[digest] = {bytes, times};
  }
  void CorruptBlob(const std::string& digest) {
    absl::MutexLock lock(&mu_);
    blobs_[digest][0] ^= 1;
  }
  void SlowBlobs(absl::Duration per_chunk) {
    absl::MutexLock lock(&mu_);
    per_chunk_ = per_chunk;
  }
  int BlobGets(const std::string& digest) {
    absl::MutexLock lock(&mu_);
    return blob_gets_[digest];
  }
  std::vector<int64_t> RangesAsked(const std::string& digest) {
    absl::MutexLock lock(&mu_);
    return ranges_[digest];
  }

  using HttpTransport::Do;
  absl::StatusOr<HttpResponse> Do(const HttpRequest& req, const Sink& sink,
                                  size_t max_body) override {
    HttpResponse resp;
    std::string body;
    size_t cut = std::string::npos;
    absl::Duration per_chunk;
    {
      absl::MutexLock lock(&mu_);
      per_chunk = per_chunk_;
      if (size_t at = req.url.find("/manifests/"); at != std::string::npos) {
        std::string ref = req.url.substr(at + 11);
        auto it = manifests_.find(ref);
        if (it == manifests_.end()) {
          resp.status = 404;
          return resp;
        }
        resp.status = 200;
        resp.headers = {{"content-type", it->second.first},
                        {"docker-content-digest",
                         digests_.count(ref) ? digests_[ref] : ref},
                        {"content-length", absl::StrCat(it->second.second.size())}};
        if (req.method == "GET") resp.body = it->second.second;
        return resp;
      }
      size_t at = req.url.find("/blobs/");
      if (at == std::string::npos) {
        resp.status = 404;
        return resp;
      }
      std::string digest = req.url.substr(at + 7);
      ++blob_gets_[digest];
      if (fail_blob_gets_ > 0) {
        --fail_blob_gets_;
        resp.status = 503;
        return resp;
      }
      auto it = blobs_.find(digest);
      if (it == blobs_.end()) {
        resp.status = 404;
        return resp;
      }
      body = it->second;
      if (req.range_start >= 0) {
        ranges_[digest].push_back(req.range_start);
        body = body.substr(static_cast<size_t>(req.range_start));
        resp.status = 206;
      } else {
        resp.status = 200;
      }
      if (auto c = cuts_.find(digest); c != cuts_.end() && c->second.second > 0) {
        cut = c->second.first;
        --c->second.second;
      }
    }
    // Streamed to the sink in pieces, as a connection delivers them.
    constexpr size_t kPiece = 1000;
    for (size_t sent = 0; sent < body.size(); sent += kPiece) {
      if (sent >= cut) return absl::UnavailableError("connection reset by peer");
      if (per_chunk > absl::ZeroDuration()) absl::SleepFor(per_chunk);
      // As HttpClient does between reads.
      if (IsCancelled(req.cancel)) return absl::CancelledError("request cancelled");
      absl::string_view piece = absl::string_view(body).substr(sent, kPiece);
      if (absl::Status s = sink(resp, piece); !s.ok()) return s;
    }
    return resp;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> digests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);
  int fail_blob_gets_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::pair<size_t, int>> cuts_ ABSL_GUARDED_BY(mu_);
  absl::Duration per_chunk_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> blob_gets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<int64_t>> ranges_ ABSL_GUARDED_BY(mu_);
};

class PullerTest : public ::testing::Test {
 protected:
  PullerTest() : root_(store::MakeTempDir("imaged-puller")) {
    store::LocalStoresOptions options;
    options.clock = &clock_;
    options.classify = [](absl::string_view) { return store::CriName{}; };
    stores_ = *store::LocalStores::Open(root_, options);
    store::TestImageSpec spec;
    spec.seed = "pull";
    spec.layer_size = 10000;
    image_ = *store::MakeTestImage(*stores_->content(), kNs, spec, /*write=*/false);
    for (const auto& [digest, bytes] : image_.blobs) {
      if (digest == image_.manifest.digest) {
        registry_.AddManifest("v1", image_.manifest.media_type, bytes, digest);
      } else {
        registry_.AddBlob(digest, bytes);
      }
    }
  }
  ~PullerTest() override {
    stores_.reset();
    store::RemoveAll(root_).IgnoreError();
  }

  std::unique_ptr<Puller> NewPuller(int attempts = 4) {
    PullerOptions options;
    options.retry.attempts = attempts;
    options.retry.initial_backoff = absl::Milliseconds(1);
    options.retry.max_backoff = absl::Milliseconds(5);
    return std::make_unique<Puller>(stores_->content(), stores_->images(), stores_->images(),
                                    stores_->leases(), &registry_, store::DefaultPlatform(),
                                    options);
  }
  absl::StatusOr<PullResult> Pull(Puller& puller) {
    PullRequest req;
    req.ns = std::string(kNs);
    req.image = std::string(kRef);
    return puller.Pull(req);
  }
  std::vector<std::string> Names() {
    std::vector<std::string> out;
    for (const store::Image& i : stores_->images()->List(kNs, {}).value_or(
             std::vector<store::Image>{})) {
      out.push_back(i.name);
    }
    return out;
  }
  bool Has(const std::string& digest) { return stores_->content()->Info(kNs, digest).ok(); }
  const std::string& Layer(size_t i) const { return image_.layers[i].digest; }

  std::string root_;
  store::FakeClock clock_;
  std::unique_ptr<store::LocalStores> stores_;
  store::TestImage image_;
  FakeRegistry registry_;
};

TEST_F(PullerTest, PullWritesContainerdsThreeNamesAndGcLabels) {
  auto puller = NewPuller();
  absl::StatusOr<PullResult> r = Pull(*puller);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->image_id, image_.config.digest);
  EXPECT_THAT(Names(), UnorderedElementsAre(absl::StrCat(kRef),
                                            absl::StrCat("127.0.0.1:5000/team/app@",
                                                         image_.manifest.digest),
                                            image_.config.digest));
  for (const auto& [digest, bytes] : image_.blobs) EXPECT_TRUE(Has(digest)) << digest;
  store::Labels labels = stores_->content()->Info(kNs, image_.manifest.digest)->labels;
  EXPECT_EQ(labels["containerd.io/gc.ref.content.config"], image_.config.digest);
  EXPECT_EQ(labels["containerd.io/gc.ref.content.l.0"], Layer(0));
  EXPECT_THAT(*stores_->content()->ListStatuses(kNs, {}), IsEmpty());

  // Again: present and unchanged, nothing fetched or written.
  absl::StatusOr<PullResult> again = Pull(*puller);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->blobs_fetched, 0);
  EXPECT_THAT(again->written, IsEmpty());
}

TEST_F(PullerTest, ServerErrorsAreRetriedAndACutTransferResumesWhereItStopped) {
  registry_.FailBlobGets(2);
  registry_.CutBlob(Layer(0), 1000);
  auto puller = NewPuller();
  absl::StatusOr<PullResult> r = Pull(*puller);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(Has(Layer(0)));
  // The retry asked for the rest only.
  EXPECT_THAT(registry_.RangesAsked(Layer(0)), ::testing::ElementsAre(1000));
}

TEST_F(PullerTest, AnInterruptedPullIsResumedByTheNextOne) {
  registry_.CutBlob(Layer(0), 2000, /*times=*/1);
  auto failing = NewPuller(/*attempts=*/1);
  absl::StatusOr<PullResult> first = Pull(*failing);
  EXPECT_TRUE(absl::IsUnavailable(first.status())) << first.status();
  EXPECT_THAT(Names(), IsEmpty());
  absl::StatusOr<PullResult> second = Pull(*NewPuller());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->bytes_resumed, 2000);
  EXPECT_THAT(registry_.RangesAsked(Layer(0)), ::testing::ElementsAre(2000));
}

TEST_F(PullerTest, ABlobThatDoesNotMatchItsDigestIsDataLossAndNamesNothing) {
  registry_.CorruptBlob(Layer(1));
  auto puller = NewPuller();
  absl::StatusOr<PullResult> r = Pull(*puller);
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_FALSE(Has(Layer(1)));
  EXPECT_THAT(Names(), IsEmpty());
}

TEST_F(PullerTest, ConcurrentPullsOfOneImageDownloadEachBlobOnce) {
  registry_.SlowBlobs(absl::Milliseconds(2));
  auto puller = NewPuller();
  std::vector<std::thread> pulls;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i) {
    pulls.emplace_back([&] {
      if (Pull(*puller).ok()) ++ok;
    });
  }
  for (std::thread& t : pulls) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(registry_.BlobGets(image_.config.digest), 1);
  for (const store::Descriptor& layer : image_.layers) {
    EXPECT_EQ(registry_.BlobGets(layer.digest), 1) << layer.digest;
  }
}

// What CRI PullImage does when kubelet gives up: the cancel check turns
// true (here once a layer's transfer has begun) and the pull stops with
// Cancelled, naming nothing and leaving no lease behind.
TEST_F(PullerTest, ACancelledPullStopsNamesNothingAndDropsItsLease) {
  registry_.SlowBlobs(absl::Milliseconds(1));
  auto puller = NewPuller();
  PullRequest req;
  req.ns = std::string(kNs);
  req.image = std::string(kRef);
  req.cancel = [this] { return registry_.BlobGets(Layer(0)) > 0; };
  absl::StatusOr<PullResult> r = puller->Pull(req);
  EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
  EXPECT_THAT(Names(), IsEmpty());
  EXPECT_FALSE(Has(Layer(0)));
  absl::StatusOr<std::vector<store::Lease>> leases = stores_->leases()->List(kNs, {});
  ASSERT_TRUE(leases.ok()) << leases.status();
  EXPECT_THAT(*leases, IsEmpty());
}

TEST_F(PullerTest, AReferenceTheRegistryLacksIsNotFound) {
  auto puller = NewPuller();
  PullRequest req;
  req.ns = std::string(kNs);
  req.image = "127.0.0.1:5000/team/app:missing";
  absl::StatusOr<PullResult> r = puller->Pull(req);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_THAT(Names(), IsEmpty());
}

}  // namespace
}  // namespace imaged::cri
