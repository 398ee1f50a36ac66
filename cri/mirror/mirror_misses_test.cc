#include "cri/mirror/mirror_misses.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace imaged::cri {
namespace {

using Outcome = MirrorMisses::Outcome;

// A lookup that waits until released, counting its calls.
struct BlockingLookup {
  absl::Notification release;
  std::atomic<int> calls{0};
  absl::StatusOr<bool> result = true;
  MirrorMisses::LookupFn Fn() {
    return [this](const std::string&, const std::string&) -> absl::StatusOr<bool> {
      ++calls;
      release.WaitForNotification();
      return result;
    };
  }
};

// Collects outcomes and when they came.
struct Answers {
  absl::Mutex mu;
  std::vector<Outcome> got ABSL_GUARDED_BY(mu);
  MirrorMisses::DoneFn Fn() {
    return [this](Outcome o) {
      absl::MutexLock lock(&mu);
      got.push_back(o);
    };
  }
  bool WaitFor(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return got.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  std::vector<Outcome> Get() {
    absl::MutexLock lock(&mu);
    return got;
  }
};

MirrorMisses::Options Opts(size_t workers, size_t max_pending, absl::Duration budget) {
  MirrorMisses::Options o;
  o.workers = workers;
  o.max_pending = max_pending;
  o.budget = budget;
  return o;
}

TEST(MirrorMissesTest, ConcurrentMissesOfOneNameShareOneLookup) {
  BlockingLookup lookup;
  MirrorMisses misses(lookup.Fn(), Opts(4, 64, absl::Seconds(30)));
  Answers answers;
  for (int i = 0; i < 10; ++i) misses.Lookup("k8s.io", "docker.io/library/busybox:1.36", answers.Fn());
  absl::SleepFor(absl::Milliseconds(100));
  lookup.release.Notify();
  ASSERT_TRUE(answers.WaitFor(10, absl::Seconds(10)));
  EXPECT_EQ(lookup.calls.load(), 1);
  for (Outcome o : answers.Get()) EXPECT_EQ(o, Outcome::kFound);
  MirrorMisses::Stats st = misses.stats();
  EXPECT_EQ(st.lookups, 1);
  EXPECT_EQ(st.joined, 9);
  EXPECT_EQ(st.found, 10);
}

TEST(MirrorMissesTest, HungLookupAnswersOverBudgetAndGoesOn) {
  BlockingLookup lookup;
  MirrorMisses misses(lookup.Fn(), Opts(2, 64, absl::Milliseconds(200)));
  Answers answers;
  const absl::Time start = absl::Now();
  misses.Lookup("k8s.io", "app:1", answers.Fn());
  ASSERT_TRUE(answers.WaitFor(1, absl::Seconds(10)));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(190));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_EQ(answers.Get(), std::vector<Outcome>{Outcome::kOverBudget});
  // A second caller while the lookup still runs joins it rather than start another.
  misses.Lookup("k8s.io", "app:1", answers.Fn());
  lookup.release.Notify();
  ASSERT_TRUE(answers.WaitFor(2, absl::Seconds(10)));
  EXPECT_EQ(lookup.calls.load(), 1);
  absl::SleepFor(absl::Milliseconds(300));  // and nobody is answered twice
  EXPECT_EQ(answers.Get(), (std::vector<Outcome>{Outcome::kOverBudget, Outcome::kFound}));
  EXPECT_EQ(misses.stats().over_budget, 1);
}

TEST(MirrorMissesTest, FloodOfDistinctNamesIsBoundedAndAnsweredAtOnce) {
  BlockingLookup lookup;
  MirrorMisses misses(lookup.Fn(), Opts(1, 3, absl::Seconds(30)));
  Answers answers;
  for (int i = 0; i < 3; ++i) misses.Lookup("k8s.io", "app:" + std::to_string(i), answers.Fn());
  const absl::Time start = absl::Now();
  for (int i = 3; i < 50; ++i) misses.Lookup("k8s.io", "app:" + std::to_string(i), answers.Fn());
  ASSERT_TRUE(answers.WaitFor(47, absl::Seconds(1)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  for (Outcome o : answers.Get()) EXPECT_EQ(o, Outcome::kQueueFull);
  EXPECT_EQ(misses.stats().queue_full, 47);
  lookup.release.Notify();
  ASSERT_TRUE(answers.WaitFor(50, absl::Seconds(10)));
  EXPECT_EQ(lookup.calls.load(), 3);
}

TEST(MirrorMissesTest, FailedAndAbsentLookupsSaySo) {
  BlockingLookup lookup;
  lookup.release.Notify();
  lookup.result = absl::DeadlineExceededError("Images/Get: deadline exceeded");
  MirrorMisses misses(lookup.Fn(), Opts(1, 8, absl::Seconds(30)));
  Answers answers;
  misses.Lookup("k8s.io", "a", answers.Fn());
  ASSERT_TRUE(answers.WaitFor(1, absl::Seconds(10)));
  EXPECT_EQ(answers.Get().back(), Outcome::kFailed);
}

TEST(MirrorMissesTest, StopAnswersWaitingCallersBeforeHungLookupsEnd) {
  BlockingLookup lookup;
  auto misses = std::make_unique<MirrorMisses>(lookup.Fn(), Opts(1, 8, absl::Seconds(30)));
  Answers answers;
  misses->Lookup("k8s.io", "a", answers.Fn());
  misses->Lookup("k8s.io", "b", answers.Fn());  // queued behind a
  absl::Notification stopped;
  std::thread stopper([&] {
    misses->Stop();
    stopped.Notify();
  });
  ASSERT_TRUE(answers.WaitFor(2, absl::Seconds(5)));
  EXPECT_EQ(answers.Get(), (std::vector<Outcome>{Outcome::kStopped, Outcome::kStopped}));
  EXPECT_FALSE(stopped.HasBeenNotified());  // the worker is still in the lookup
  lookup.release.Notify();                  // as a cancelled upstream call would end it
  stopper.join();
  EXPECT_EQ(lookup.calls.load(), 1);
  // After Stop every caller is answered at once.
  misses->Lookup("k8s.io", "c", answers.Fn());
  EXPECT_EQ(answers.Get().back(), Outcome::kStopped);
}

}  // namespace
}  // namespace imaged::cri
