// When imaged collects garbage: soon after a delete (debounced, so a burst
// of deletes costs one pass), on a schedule, and at once for a caller that
// asked to wait (Images Delete and Leases Delete with `sync`, CRI
// RemoveImage). Passes run one at a time (store::Collector serialises them).
#ifndef IMAGED_PLUGIN_GC_SCHEDULER_H_
#define IMAGED_PLUGIN_GC_SCHEDULER_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/gc.h"

namespace imaged::plugin {

class GcScheduler {
 public:
  // `gc` is not owned. A pass over every namespace runs every `interval`
  // (InfiniteDuration: never), a pass over dirtied namespaces `delay` after
  // the first delete that dirtied them.
  GcScheduler(store::Collector* gc, absl::Duration interval, absl::Duration delay);
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

  store::Collector* const gc_;
  const absl::Duration interval_;
  const absl::Duration delay_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  absl::Time due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // of the dirty pass
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// What a service does after deleting something in `ns`: with `sync`, runs
// the collection and returns its error; otherwise schedules it. Ok without `gc`.
absl::Status AfterDelete(GcScheduler* gc, absl::string_view ns, bool sync);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_GC_SCHEDULER_H_
