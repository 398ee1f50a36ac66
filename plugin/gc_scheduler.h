// When imaged collects garbage: soon after a delete (debounced, so a burst
// of deletes costs one pass), on a schedule, and at once for a caller that
// asked to wait (Images Delete and Leases Delete with `sync`, CRI
// RemoveImage). Passes run one at a time (store::Collector serialises them).
#ifndef IMAGED_PLUGIN_GC_SCHEDULER_H_
#define IMAGED_PLUGIN_GC_SCHEDULER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/clock.h"
#include "store/gc.h"

namespace imaged::plugin {

class GcScheduler {
 public:
  // A pass and how to stop one: store::Collector's Collect and Shutdown.
  struct Collection {
    std::function<absl::StatusOr<store::GcReport>(const std::vector<std::string>& namespaces,
                                                  const store::GcInterrupt& interrupt)>
        collect;
    std::function<void()> shutdown;
  };
  struct Options {
    // A pass over every namespace runs every `interval` (InfiniteDuration:
    // never), a pass over dirtied namespaces `delay` after the first delete
    // that dirtied them.
    absl::Duration interval = absl::InfiniteDuration();
    absl::Duration delay = absl::Seconds(1);
    // Passes after deletes take at most this share of the time, on average:
    // after each background pass the next one after deletes waits until
    // the average pass time is this share of the time between passes
    // (containerd's pause_threshold, 0.02 there too). A pass the budget
    // stopped goes on after `delay` regardless; 1: no spacing.
    double max_share = 0.02;
    const store::Clock* clock = store::SystemClock::Get();  // not owned
    // How often the waiting loop looks at the clock (a Dirty that makes a
    // pass due sooner is noticed within it).
    absl::Duration tick = absl::Seconds(1);
  };

  // `gc` is not owned.
  GcScheduler(store::Collector* gc, absl::Duration interval, absl::Duration delay,
              double max_share);
  GcScheduler(Collection collection, Options options);
  ~GcScheduler();
  GcScheduler(const GcScheduler&) = delete;
  GcScheduler& operator=(const GcScheduler&) = delete;

  // Something was deleted in `ns`: a pass over it follows shortly.
  void Dirty(absl::string_view ns);
  // A pass over `namespaces` (none: all) now, on the caller's thread;
  // `interrupt` (e.g. the caller's RPC cancelled) may stop it.
  absl::StatusOr<store::GcReport> CollectNow(const std::vector<std::string>& namespaces,
                                             const store::GcInterrupt& interrupt = nullptr);
  // Stops the background thread and any pass under way, and refuses later
  // passes (imaged is shutting down); idempotent.
  void Stop();

 private:
  void Loop();
  void Log(const store::GcReport& report, absl::string_view why);

  const Collection collection_;
  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  absl::Time due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // of the dirty pass
  // No pass after deletes before this (Options::max_share).
  absl::Time not_before_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Of the next pass over everything; the loop's own (set before it starts).
  absl::Time next_full_;
  // The background passes so far and their wall time; the loop's own.
  int passes_ = 0;
  absl::Duration pass_time_;
  std::thread thread_;
};

// What a service does after deleting something in `ns`: with `sync`, runs
// the collection and returns its error; otherwise schedules it. Ok without `gc`.
absl::Status AfterDelete(GcScheduler* gc, absl::string_view ns, bool sync);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_GC_SCHEDULER_H_
