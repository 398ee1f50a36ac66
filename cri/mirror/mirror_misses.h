// Mirror mode's ImageStatus misses. A name imaged's index lacks may be in
// containerd already (its event not yet applied), so it is looked up there,
// but never on the caller's thread and never for long:
//
//   Lookup(ns, ref, done)
//     same ns/ref already being looked up -> joins it (one lookup for all)
//     `max_pending` lookups queued or running -> done(kQueueFull) at once
//     else queued for one of `workers` threads
//   done(kFound / kAbsent / kFailed) when the lookup ends, or
//   done(kOverBudget) once `budget` has passed, whichever comes first; the
//   lookup itself goes on (with the upstream call's own deadline), so the
//   next ask finds the record.
//
// A hung containerd therefore costs a caller at most `budget`, and once the
// queue is full, nothing: callers get kQueueFull at once. `done` is called
// exactly once, from a worker, the budget timer, or the caller's own thread
// (kQueueFull, kStopped); never under this class's lock.
#ifndef IMAGED_CRI_MIRROR_MIRROR_MISSES_H_
#define IMAGED_CRI_MIRROR_MIRROR_MISSES_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace imaged::cri {

class MirrorMisses {
 public:
  struct Options {
    size_t workers = 4;
    size_t max_pending = 64;  // distinct lookups queued or running
    absl::Duration budget = absl::Seconds(2);
  };
  enum class Outcome { kFound, kAbsent, kFailed, kOverBudget, kQueueFull, kStopped };
  struct Stats {
    int64_t lookups = 0;  // started (one per distinct name in flight)
    int64_t joined = 0;   // callers that shared a lookup already under way
    int64_t found = 0;
    int64_t absent = 0;
    int64_t failed = 0;
    int64_t over_budget = 0;
    int64_t queue_full = 0;
  };
  // Whether containerd has `ref` in `ns` (and it is now in imaged's index).
  using LookupFn = std::function<absl::StatusOr<bool>(const std::string& ns, const std::string& ref)>;
  using DoneFn = std::function<void(Outcome)>;

  MirrorMisses(LookupFn lookup, Options options);
  // Stop().
  ~MirrorMisses();

  void Lookup(const std::string& ns, const std::string& ref, DoneFn done);
  // Answers every waiting caller kStopped and joins the threads; lookups
  // under way end when their upstream calls do (cancel those first).
  void Stop();

  Stats stats() const;
  static const char* Name(Outcome outcome);

 private:
  struct Waiter {
    absl::Time deadline;
    DoneFn done;
  };
  struct Entry {
    std::vector<Waiter> waiters;
  };
  void Work();
  void Timer();
  void Count(Outcome outcome) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LookupFn lookup_;
  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // queued or running
  std::deque<std::pair<std::string, std::string>> queue_ ABSL_GUARDED_BY(mu_);  // ns, ref
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t timer_wakeups_ ABSL_GUARDED_BY(mu_) = 0;  // bumped when an earlier deadline arrives
  // When the budget timer wakes next on its own (InfiniteFuture: no waiter).
  absl::Time timer_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
  std::thread timer_;
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_MIRROR_MIRROR_MISSES_H_
