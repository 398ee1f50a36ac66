// GcScheduler's timing on a fake clock, over a fake collection: when passes
// run, over which namespaces, and what follows a pass the budget stopped.
#include "plugin/gc_scheduler.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"

namespace imaged::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kDelay = absl::Seconds(5);
constexpr absl::Duration kInterval = absl::Minutes(10);

// Records each pass; answers with `next_complete`.
class FakeCollection {
 public:
  GcScheduler::Collection Collection() {
    GcScheduler::Collection c;
    c.collect = [this](const std::vector<std::string>& namespaces,
                       const store::GcInterrupt&) -> absl::StatusOr<store::GcReport> {
      if (during_pass_) during_pass_();  // the loop's thread: outside mu_
      absl::MutexLock lock(&mu_);
      passes_.push_back(namespaces);
      store::GcReport report;
      report.complete = next_complete_;
      next_complete_ = true;
      return report;
    };
    c.shutdown = [this] {
      absl::MutexLock lock(&mu_);
      shut_down_ = true;
    };
    return c;
  }
  // The passes so far, once there are `n` (or after `timeout`).
  std::vector<std::vector<std::string>> WaitForPasses(size_t n,
                                                      absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return passes_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return passes_;
  }
  // Runs in every pass (before it is recorded); set before the scheduler starts.
  void DuringPass(std::function<void()> fn) { during_pass_ = std::move(fn); }
  void NextIsIncomplete() {
    absl::MutexLock lock(&mu_);
    next_complete_ = false;
  }
  bool shut_down() {
    absl::MutexLock lock(&mu_);
    return shut_down_;
  }

 private:
  std::function<void()> during_pass_;
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> passes_ ABSL_GUARDED_BY(mu_);
  bool next_complete_ ABSL_GUARDED_BY(mu_) = true;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

class GcSchedulerTest : public ::testing::Test {
 protected:
  std::unique_ptr<GcScheduler> Start(absl::Duration interval = absl::InfiniteDuration(),
                                     double max_share = 0.02) {
    GcScheduler::Options options;
    options.interval = interval;
    options.max_share = max_share;
    options.delay = kDelay;
    options.clock = &clock_;
    options.tick = absl::Milliseconds(5);
    return std::make_unique<GcScheduler>(fake_.Collection(), options);
  }
  // Lets the scheduler's loop look at the clock a few times.
  static void Settle() { absl::SleepFor(absl::Milliseconds(50)); }

  store::FakeClock clock_;
  FakeCollection fake_;
};

TEST_F(GcSchedulerTest, ABurstOfDeletesCostsOnePassAfterTheDelay) {
  auto gc = Start();
  gc->Dirty("a");
  clock_.Advance(absl::Seconds(3));
  gc->Dirty("b");  // the delay runs from the first delete, not the last
  gc->Dirty("a");
  Settle();
  EXPECT_THAT(fake_.WaitForPasses(0), IsEmpty());
  clock_.Advance(absl::Seconds(2));
  std::vector<std::vector<std::string>> passes = fake_.WaitForPasses(1);
  ASSERT_EQ(passes.size(), 1u);
  EXPECT_THAT(passes[0], UnorderedElementsAre("a", "b"));
  Settle();
  EXPECT_EQ(fake_.WaitForPasses(1).size(), 1u);  // nothing dirty since
}

// Passes after deletes are spaced so that, on average, they take at most
// max_share of the time (at 30,000 images a pass takes 0.7 s, and a delete
// every half second ran them back to back).
TEST_F(GcSchedulerTest, PassesAfterDeletesTakeAtMostTheirShareOfTheTime) {
  fake_.DuringPass([this] { clock_.Advance(absl::Seconds(2)); });
  auto gc = Start(absl::InfiniteDuration(), /*max_share=*/0.1);
  gc->Dirty("a");
  clock_.Advance(kDelay);  // t=5: the first pass runs, and ends at t=7
  ASSERT_EQ(fake_.WaitForPasses(1).size(), 1u);
  Settle();
  // A 2 s pass at a share of 0.1: the next one after deletes waits until
  // t = 7 + 18 = 25, not until t = 7 + kDelay.
  gc->Dirty("b");
  clock_.Advance(absl::Seconds(17));  // t=24
  Settle();
  EXPECT_EQ(fake_.WaitForPasses(1).size(), 1u);
  clock_.Advance(absl::Seconds(1));  // t=25
  std::vector<std::vector<std::string>> passes = fake_.WaitForPasses(2);
  ASSERT_EQ(passes.size(), 2u);
  EXPECT_THAT(passes[1], ElementsAre("b"));
}

TEST_F(GcSchedulerTest, APassTheBudgetStoppedGoesOnWhateverItsShare) {
  fake_.DuringPass([this] { clock_.Advance(absl::Seconds(2)); });
  auto gc = Start(absl::InfiniteDuration(), /*max_share=*/0.1);
  fake_.NextIsIncomplete();
  gc->Dirty("a");
  clock_.Advance(kDelay);
  ASSERT_EQ(fake_.WaitForPasses(1).size(), 1u);  // ended at t=7
  Settle();
  clock_.Advance(kDelay);  // t=12: a delay after it, not 18 s
  EXPECT_EQ(fake_.WaitForPasses(2).size(), 2u);
}

TEST_F(GcSchedulerTest, TheContentProxyNamespaceIsNeverCollected) {
  auto gc = Start();
  gc->Dirty("");
  clock_.Advance(kDelay * 2);
  Settle();
  EXPECT_THAT(fake_.WaitForPasses(0), IsEmpty());
}

TEST_F(GcSchedulerTest, AScheduledPassCoversEveryNamespaceEachInterval) {
  auto gc = Start(kInterval);
  clock_.Advance(kInterval - absl::Seconds(1));
  Settle();
  EXPECT_THAT(fake_.WaitForPasses(0), IsEmpty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(fake_.WaitForPasses(1), ElementsAre(IsEmpty()));  // none named: all
  // The next is due an interval after the loop saw the first one end, which
  // may be before or after this Advance: a few more intervals, then.
  for (int i = 0; i < 5 && fake_.WaitForPasses(2, absl::Milliseconds(200)).size() < 2; ++i) {
    clock_.Advance(kInterval);
  }
  EXPECT_EQ(fake_.WaitForPasses(2).size(), 2u);
}

TEST_F(GcSchedulerTest, APassTheBudgetStoppedGoesOnAfterTheDelay) {
  auto gc = Start();
  fake_.NextIsIncomplete();
  gc->Dirty("a");
  clock_.Advance(kDelay);
  ASSERT_EQ(fake_.WaitForPasses(1).size(), 1u);
  Settle();
  EXPECT_EQ(fake_.WaitForPasses(1).size(), 1u);  // not at once: after the delay
  // Due a delay after the loop saw the pass end (before or after an Advance).
  for (int i = 0; i < 5 && fake_.WaitForPasses(2, absl::Milliseconds(200)).size() < 2; ++i) {
    clock_.Advance(kDelay);
  }
  std::vector<std::vector<std::string>> passes = fake_.WaitForPasses(2);
  ASSERT_EQ(passes.size(), 2u);
  EXPECT_THAT(passes[1], ElementsAre("a"));
}

TEST_F(GcSchedulerTest, CollectNowRunsOnTheCallersThreadAndStopStopsThePass) {
  auto gc = Start();
  ASSERT_TRUE(gc->CollectNow({"x"}).ok());
  EXPECT_THAT(fake_.WaitForPasses(1), ElementsAre(ElementsAre("x")));
  gc->Stop();
  EXPECT_TRUE(fake_.shut_down());
  gc->Stop();  // idempotent
}

TEST_F(GcSchedulerTest, AfterDeleteSchedulesOrRunsAsAsked) {
  auto gc = Start();
  ASSERT_TRUE(AfterDelete(gc.get(), "sync", /*sync=*/true).ok());
  EXPECT_THAT(fake_.WaitForPasses(1), ElementsAre(ElementsAre("sync")));
  ASSERT_TRUE(AfterDelete(gc.get(), "later", /*sync=*/false).ok());
  Settle();
  EXPECT_EQ(fake_.WaitForPasses(1).size(), 1u);
  clock_.Advance(kDelay);
  EXPECT_THAT(fake_.WaitForPasses(2)[1], ElementsAre("later"));
  EXPECT_TRUE(AfterDelete(nullptr, "x", true).ok());
}

}  // namespace
}  // namespace imaged::plugin
