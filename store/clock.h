// Time is injected so that timestamps, expiry, backoff and retries are
// testable: code that waits asks its Clock to sleep, and a FakeClock's sleep
// only moves its time.
#ifndef IMAGED_STORE_CLOCK_H_
#define IMAGED_STORE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace imaged::store {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Waits `d` of this clock's time.
  virtual void SleepFor(absl::Duration d) const = 0;
};

// The wall clock.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void SleepFor(absl::Duration d) const override { absl::SleepFor(d); }
  // A process-wide instance; never destroyed.
  static SystemClock* Get() {
    static SystemClock* clock = new SystemClock;
    return clock;
  }
};

// A clock that moves only when told to, or by as much as someone sleeps on
// it (at once); thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void SleepFor(absl::Duration d) const override {
    absl::MutexLock lock(&mu_);
    if (d > absl::ZeroDuration()) {
      now_ += d;
      slept_ += d;
    }
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  // The time all sleepers together have waited.
  absl::Duration slept() const {
    absl::MutexLock lock(&mu_);
    return slept_;
  }

 private:
  mutable absl::Mutex mu_;
  mutable absl::Time now_ ABSL_GUARDED_BY(mu_);
  mutable absl::Duration slept_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_CLOCK_H_
