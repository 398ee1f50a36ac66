#include "plugin/gc_scheduler.h"

#include <cstdio>

#include "absl/strings/str_format.h"

namespace imaged::plugin {

GcScheduler::GcScheduler(store::Collector* gc, absl::Duration interval, absl::Duration delay)
    : gc_(gc), interval_(interval), delay_(delay), thread_([this] { Loop(); }) {}

GcScheduler::~GcScheduler() { Stop(); }

void GcScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  gc_->Shutdown();  // a pass under way stops at its next check
  if (thread_.joinable()) thread_.join();
}

void GcScheduler::Dirty(absl::string_view ns) {
  if (ns.empty()) return;  // the content-proxy namespace is never collected
  absl::MutexLock lock(&mu_);
  if (dirty_.empty()) due_ = absl::Now() + delay_;
  dirty_.insert(std::string(ns));
}

absl::StatusOr<store::GcReport> GcScheduler::CollectNow(const std::vector<std::string>& namespaces,
                                                         const store::GcInterrupt& interrupt) {
  absl::StatusOr<store::GcReport> report = gc_->Collect(namespaces, interrupt);
  if (report.ok()) Log(*report, "requested");
  return report;
}

void GcScheduler::Log(const store::GcReport& r, absl::string_view why) {
  if (r.blobs_removed == 0 && r.leases_expired == 0) return;
  std::fprintf(stderr,
               "imaged: gc (%s): removed %lld blobs (%lld files, %lld bytes), %d expired leases, "
               "kept %lld, in %s%s\n",
               std::string(why).c_str(), static_cast<long long>(r.blobs_removed),
               static_cast<long long>(r.files_removed), static_cast<long long>(r.bytes_freed),
               r.leases_expired, static_cast<long long>(r.blobs_kept),
               absl::FormatDuration(absl::Trunc(r.duration, absl::Microseconds(100))).c_str(),
               r.complete ? "" : " (budget reached, more to do)");
}

void GcScheduler::Loop() {
  absl::Time next_full = interval_ == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                                               : absl::Now() + interval_;
  while (true) {
    std::vector<std::string> namespaces;
    bool full = false;
    {
      absl::MutexLock lock(&mu_);
      // Wakes for Stop at once, otherwise when a pass is due (or every
      // second, to notice a Dirty that made one due sooner).
      absl::Time until = std::min({due_, next_full, absl::Now() + absl::Seconds(1)});
      mu_.AwaitWithDeadline(absl::Condition(&stop_), until);
      if (stop_) return;
      absl::Time now = absl::Now();
      if (now >= next_full) {
        full = true;
        dirty_.clear();
        due_ = absl::InfiniteFuture();
      } else if (now >= due_) {
        namespaces.assign(dirty_.begin(), dirty_.end());
        dirty_.clear();
        due_ = absl::InfiniteFuture();
      } else {
        continue;
      }
    }
    absl::StatusOr<store::GcReport> report = gc_->Collect(namespaces);
    if (!report.ok()) {
      std::fprintf(stderr, "imaged: gc: %s\n", report.status().ToString().c_str());
    } else {
      Log(*report, full ? "scheduled" : "after deletes");
      if (!report->complete) {
        // The budget stopped it: go on soon, over everything it covered.
        absl::MutexLock lock(&mu_);
        for (std::string& ns : namespaces) dirty_.insert(std::move(ns));
        if (full) {
          next_full = absl::Now();
        } else {
          due_ = absl::Now() + delay_;
        }
        continue;
      }
    }
    if (full) next_full = absl::Now() + interval_;
  }
}

absl::Status AfterDelete(GcScheduler* gc, absl::string_view ns, bool sync) {
  if (gc == nullptr) return absl::OkStatus();
  if (!sync) {
    gc->Dirty(ns);
    return absl::OkStatus();
  }
  return gc->CollectNow({std::string(ns)}).status();
}

}  // namespace imaged::plugin
