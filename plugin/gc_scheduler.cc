#include "plugin/gc_scheduler.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_format.h"

namespace imaged::plugin {

namespace {

GcScheduler::Collection Of(store::Collector* gc) {
  GcScheduler::Collection c;
  c.collect = [gc](const std::vector<std::string>& namespaces, const store::GcInterrupt& interrupt) {
    return gc->Collect(namespaces, interrupt);
  };
  c.shutdown = [gc] { gc->Shutdown(); };
  return c;
}

GcScheduler::Options With(absl::Duration interval, absl::Duration delay, double max_share) {
  GcScheduler::Options o;
  o.interval = interval;
  o.delay = delay;
  o.max_share = max_share;
  return o;
}

}  // namespace

GcScheduler::GcScheduler(store::Collector* gc, absl::Duration interval, absl::Duration delay,
                         double max_share)
    : GcScheduler(Of(gc), With(interval, delay, max_share)) {}

GcScheduler::GcScheduler(Collection collection, Options options)
    : collection_(std::move(collection)),
      options_(std::move(options)),
      next_full_(options_.interval == absl::InfiniteDuration()
                     ? absl::InfiniteFuture()
                     : options_.clock->Now() + options_.interval),
      thread_([this] { Loop(); }) {}

GcScheduler::~GcScheduler() { Stop(); }

void GcScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  collection_.shutdown();  // a pass under way stops at its next check
  if (thread_.joinable()) thread_.join();
}

void GcScheduler::Dirty(absl::string_view ns) {
  if (ns.empty()) return;  // the content-proxy namespace is never collected
  absl::MutexLock lock(&mu_);
  if (dirty_.empty()) due_ = std::max(options_.clock->Now() + options_.delay, not_before_);
  dirty_.insert(std::string(ns));
}

absl::StatusOr<store::GcReport> GcScheduler::CollectNow(const std::vector<std::string>& namespaces,
                                                         const store::GcInterrupt& interrupt) {
  absl::StatusOr<store::GcReport> report = collection_.collect(namespaces, interrupt);
  if (report.ok()) Log(*report, "requested");
  return report;
}

void GcScheduler::Log(const store::GcReport& r, absl::string_view why) {
  if (r.blobs_removed == 0 && r.leases_expired == 0) return;
  std::fprintf(stderr,
               "imaged: gc (%s): removed %lld blobs (freed %lld, %lld bytes), %d expired leases, "
               "kept %lld, in %s%s\n",
               std::string(why).c_str(), static_cast<long long>(r.blobs_removed),
               static_cast<long long>(r.files_removed), static_cast<long long>(r.bytes_freed),
               r.leases_expired, static_cast<long long>(r.blobs_kept),
               absl::FormatDuration(absl::Trunc(r.duration, absl::Microseconds(100))).c_str(),
               r.complete ? "" : " (budget reached, more to do)");
}

void GcScheduler::Loop() {
  const store::Clock& clock = *options_.clock;
  absl::Time& next_full = next_full_;
  while (true) {
    std::vector<std::string> namespaces;
    bool full = false;
    {
      absl::MutexLock lock(&mu_);
      // Wakes for Stop at once, otherwise when a pass is due or a tick has
      // passed (to notice a Dirty that made one due sooner).
      absl::Duration wait = std::min({due_, next_full}) - clock.Now();
      mu_.AwaitWithTimeout(absl::Condition(&stop_), std::min(wait, options_.tick));
      if (stop_) return;
      absl::Time now = clock.Now();
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
    const absl::Time start = clock.Now();
    absl::StatusOr<store::GcReport> report = collection_.collect(namespaces, nullptr);
    {
      // At 30,000 images a pass reads every record and blob row of a
      // namespace (0.7 s): with a delete every second or so, passes ran
      // back to back. They are spaced to the share of time allowed.
      const absl::Time end = clock.Now();
      pass_time_ += end - start;
      ++passes_;
      absl::Duration spacing;
      if (options_.max_share > 0 && options_.max_share < 1) {
        const absl::Duration average = pass_time_ / passes_;
        spacing = average / options_.max_share - average;
      }
      absl::MutexLock lock(&mu_);
      not_before_ = end + spacing;
      if (!dirty_.empty()) due_ = std::max(due_, not_before_);  // deleted during the pass
    }
    if (!report.ok()) {
      std::fprintf(stderr, "imaged: gc: %s\n", report.status().ToString().c_str());
    } else {
      Log(*report, full ? "scheduled" : "after deletes");
      if (!report->complete) {
        // The budget stopped it: go on soon, over everything it covered.
        absl::MutexLock lock(&mu_);
        for (std::string& ns : namespaces) dirty_.insert(std::move(ns));
        if (full) {
          next_full = clock.Now();
        } else {
          due_ = clock.Now() + options_.delay;
        }
        continue;
      }
    }
    if (full) next_full = clock.Now() + options_.interval;
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
