// MirrorRunner against an in-process imaged playing containerd: it serves
// the same Images, Content, Leases and Events APIs, so the runner's
// subscribe -> probe -> sync -> follow loop, its reconnection and its health
// reports run as they do against containerd (testdata/mirror_test.sh runs
// them against the real one).
#include "plugin/mirror_runner.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/test_server.h"
#include "store/files.h"
#include "store/local_stores.h"
#include "store/test_dirs.h"
#include "store/test_images.h"

namespace imaged::plugin {
namespace {

constexpr absl::string_view kNs = "k8s.io";

// Waits for `cond`, polling; false when it did not hold within `within`.
bool Eventually(const std::function<bool()>& cond, absl::Duration within = absl::Seconds(30)) {
  const absl::Time until = absl::Now() + within;
  while (!cond()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// "containerd": an imaged on `dir`, with clients of its APIs.
struct Upstream {
  explicit Upstream(std::string dir)
      : server(std::move(dir)), content(server.channel()), images(server.channel()) {}

  // A test image's blobs, written through the Content API.
  store::Descriptor AddImage(const std::string& seed) {
    store::TestImageSpec spec;
    spec.seed = seed;
    absl::StatusOr<store::TestImage> image = store::MakeTestImage(content, kNs, spec, /*write=*/true);
    EXPECT_TRUE(image.ok()) << image.status();
    store::Descriptor target = image->manifest;
    target.platform.reset();
    return target;
  }
  void Create(const std::string& name, const store::Descriptor& target) {
    store::Image image;
    image.name = name;
    image.target = target;
    absl::StatusOr<store::Image> created = images.Create(kNs, image, "");
    ASSERT_TRUE(created.ok()) << created.status();
  }

  ServerFixture server;
  RemoteContentStore content;
  RemoteImageStore images;
};

class MirrorRunnerTest : public ::testing::Test {
 protected:
  MirrorRunnerTest()
      : dir_(MakeShortTempDir()), local_root_(store::MakeTempDir("imaged-mirror-runner")) {
    stores_ = *store::LocalStores::Open(local_root_, {});
  }
  ~MirrorRunnerTest() override {
    runner_.reset();  // before "containerd" goes
    upstream_.reset();
    store::RemoveAll(dir_).IgnoreError();  // when "containerd" never came up
    stores_.reset();
    store::RemoveAll(local_root_).IgnoreError();
  }

  void StartUpstream() { upstream_ = std::make_unique<Upstream>(dir_); }
  void StartRunner() {
    MirrorRunner::Options options;
    options.containerd_address = dir_ + "/run/imaged.sock";
    options.namespaces = {std::string(kNs)};
    options.max_backoff = absl::Seconds(1);
    options.calls.timeout = absl::Seconds(10);
    options.calls.list_timeout = absl::Seconds(20);
    options.on_serving = [this](bool serving) {
      absl::MutexLock lock(&mu_);
      serving_.push_back(serving);
    };
    cri::MirrorTarget target{stores_->content(), stores_->images(), stores_->images(),
                             stores_->leases()};
    runner_ = std::make_unique<MirrorRunner>(std::move(options), target, store::DefaultPlatform());
    runner_->Start();
  }
  bool Mirrored(const std::string& name) { return stores_->images()->Get(kNs, name).ok(); }
  bool Serving() {
    absl::MutexLock lock(&mu_);
    return !serving_.empty() && serving_.back();
  }
  std::vector<bool> ServingReports() {
    absl::MutexLock lock(&mu_);
    return serving_;
  }

  std::string dir_;  // "containerd"'s; its fixture removes it
  std::string local_root_;
  std::unique_ptr<store::LocalStores> stores_;
  std::unique_ptr<Upstream> upstream_;
  std::unique_ptr<MirrorRunner> runner_;
  absl::Mutex mu_;
  std::vector<bool> serving_ ABSL_GUARDED_BY(mu_);
};

TEST_F(MirrorRunnerTest, SyncsWhatContainerdHasThenFollowsItsEvents) {
  StartUpstream();
  const store::Descriptor a = upstream_->AddImage("a");
  upstream_->Create("docker.io/team/a:1", a);
  StartRunner();
  ASSERT_TRUE(Eventually([&] { return Mirrored("docker.io/team/a:1"); }));
  ASSERT_TRUE(Eventually([&] { return Serving(); }));
  // The documents came along: the record resolves (it has a CRI image).
  absl::StatusOr<store::Image> here = stores_->images()->Get(kNs, "docker.io/team/a:1");
  ASSERT_TRUE(here.ok()) << here.status();
  EXPECT_EQ(here->target.digest, a.digest);
  EXPECT_TRUE(stores_->content()->Info(kNs, a.digest).ok());

  // Created, then deleted, in containerd: followed through its events.
  const store::Descriptor b = upstream_->AddImage("b");
  upstream_->Create("docker.io/team/b:1", b);
  ASSERT_TRUE(Eventually([&] { return Mirrored("docker.io/team/b:1"); }));
  ASSERT_TRUE(upstream_->images.Delete(kNs, "docker.io/team/a:1").ok());
  ASSERT_TRUE(Eventually([&] { return !Mirrored("docker.io/team/a:1"); }));

  // Counted once each SyncName returns, just after the record changed.
  ASSERT_TRUE(Eventually([&] { return runner_->mirror().State().events_applied >= 2; }));
  cri::MirrorState state = runner_->mirror().State();
  EXPECT_TRUE(state.connected);
  EXPECT_EQ(state.last_report.upstream, 1);
  EXPECT_EQ(state.last_report.written, 1);
}

TEST_F(MirrorRunnerTest, ABurstOfEventsOverManyNamesEndsAsContainerdDoes) {
  StartUpstream();
  StartRunner();
  ASSERT_TRUE(Eventually([&] { return Serving(); }));
  const store::Descriptor target = upstream_->AddImage("burst");
  constexpr int kNames = 40;
  for (int i = 0; i < kNames; ++i) upstream_->Create(absl::StrCat("docker.io/team/burst:", i), target);
  for (int i = 0; i < kNames; i += 2) {
    ASSERT_TRUE(upstream_->images.Delete(kNs, absl::StrCat("docker.io/team/burst:", i)).ok());
  }
  // Containerd's end state: the odd names.
  std::vector<std::string> want;
  for (int i = 1; i < kNames; i += 2) want.push_back(absl::StrCat("docker.io/team/burst:", i));
  auto names_here = [&] {
    std::vector<std::string> out;
    for (const store::Image& i : stores_->images()->List(kNs, {}).value_or(std::vector<store::Image>{})) {
      out.push_back(i.name);
    }
    return out;
  };
  ASSERT_TRUE(Eventually([&] {
    std::vector<std::string> here = names_here();
    return std::is_permutation(here.begin(), here.end(), want.begin(), want.end());
  })) << ::testing::PrintToString(names_here());
}

TEST_F(MirrorRunnerTest, ConnectsWhenContainerdComesUpAndSaysWhenItGoes) {
  StartRunner();  // nothing listens on the socket yet
  ASSERT_TRUE(Eventually([&] { return !runner_->mirror().State().last_error.empty(); }));
  EXPECT_FALSE(runner_->mirror().State().connected);
  EXPECT_FALSE(Serving());

  StartUpstream();
  upstream_->Create("docker.io/team/late:1", upstream_->AddImage("late"));
  // Retried with backoff (capped at 1 s here) until containerd answers.
  ASSERT_TRUE(Eventually([&] { return Serving() && Mirrored("docker.io/team/late:1"); }));

  upstream_.reset();
  ASSERT_TRUE(Eventually([&] { return !Serving(); }));
  EXPECT_FALSE(runner_->mirror().State().connected);
  // What was mirrored is still answered from the local index.
  EXPECT_TRUE(Mirrored("docker.io/team/late:1"));
  std::vector<bool> reports = ServingReports();
  ASSERT_GE(reports.size(), 2u);
  EXPECT_EQ(reports[reports.size() - 2], true);
  EXPECT_EQ(reports.back(), false);
}

TEST_F(MirrorRunnerTest, StopReturnsPromptlyWhileContainerdIsAway) {
  StartRunner();
  ASSERT_TRUE(Eventually([&] { return !runner_->mirror().State().last_error.empty(); }));
  const absl::Time start = absl::Now();
  runner_->Stop();
  // Not a speed figure: Stop must not wait out a backoff or a call deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace imaged::plugin
