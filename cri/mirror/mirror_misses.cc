#include "cri/mirror/mirror_misses.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace imaged::cri {
namespace {

std::string Key(const std::string& ns, const std::string& ref) { return absl::StrCat(ns, "\n", ref); }

MirrorMisses::Options AtLeastOneWorker(MirrorMisses::Options options) {
  if (options.workers == 0) options.workers = 1;
  return options;
}

}  // namespace

MirrorMisses::MirrorMisses(LookupFn lookup, Options options)
    : lookup_(std::move(lookup)), options_(AtLeastOneWorker(options)) {
  for (size_t i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { Work(); });
  timer_ = std::thread([this] { Timer(); });
}

MirrorMisses::~MirrorMisses() { Stop(); }

const char* MirrorMisses::Name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kFound: return "found";
    case Outcome::kAbsent: return "absent";
    case Outcome::kFailed: return "failed";
    case Outcome::kOverBudget: return "over_budget";
    case Outcome::kQueueFull: return "queue_full";
    case Outcome::kStopped: return "stopped";
  }
  return "unknown";
}

void MirrorMisses::Count(Outcome outcome) {
  switch (outcome) {
    case Outcome::kFound: ++stats_.found; break;
    case Outcome::kAbsent: ++stats_.absent; break;
    case Outcome::kFailed: ++stats_.failed; break;
    case Outcome::kOverBudget: ++stats_.over_budget; break;
    case Outcome::kQueueFull: ++stats_.queue_full; break;
    case Outcome::kStopped: break;
  }
}

void MirrorMisses::Lookup(const std::string& ns, const std::string& ref, DoneFn done) {
  Outcome now;
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      const std::string key = Key(ns, ref);
      Waiter waiter{absl::Now() + options_.budget, std::move(done)};
      // The timer is woken only for a deadline earlier than its own (with
      // one budget for all, only when nobody was waiting): not per miss.
      if (waiter.deadline < timer_deadline_) ++timer_wakeups_;
      if (auto it = entries_.find(key); it != entries_.end()) {
        ++stats_.joined;
        it->second.waiters.push_back(std::move(waiter));
        return;
      }
      if (entries_.size() < options_.max_pending) {
        ++stats_.lookups;
        entries_[key].waiters.push_back(std::move(waiter));
        queue_.emplace_back(ns, ref);
        return;
      }
      done = std::move(waiter.done);
      now = Outcome::kQueueFull;
    } else {
      now = Outcome::kStopped;
    }
    Count(now);
  }
  done(now);
}

void MirrorMisses::Work() {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
    mu_.Await(absl::Condition(&ready));
    if (stop_) return;
    auto [ns, ref] = std::move(queue_.front());
    queue_.pop_front();
    mu_.Unlock();
    absl::StatusOr<bool> found = lookup_(ns, ref);
    mu_.Lock();
    const Outcome outcome = !found.ok() ? Outcome::kFailed : *found ? Outcome::kFound : Outcome::kAbsent;
    auto it = entries_.find(Key(ns, ref));
    if (it == entries_.end()) continue;  // stopped meanwhile
    std::vector<Waiter> waiters = std::move(it->second.waiters);
    entries_.erase(it);
    for (size_t i = 0; i < waiters.size(); ++i) Count(outcome);
    mu_.Unlock();
    for (Waiter& w : waiters) w.done(outcome);
    mu_.Lock();
  }
}

void MirrorMisses::Timer() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    absl::Time earliest = absl::InfiniteFuture();
    const absl::Time now = absl::Now();
    std::vector<DoneFn> expired;
    for (auto& [key, entry] : entries_) {
      std::vector<Waiter>& ws = entry.waiters;
      for (size_t i = 0; i < ws.size();) {
        if (ws[i].deadline <= now) {
          expired.push_back(std::move(ws[i].done));
          ws[i] = std::move(ws.back());
          ws.pop_back();
        } else {
          earliest = std::min(earliest, ws[i].deadline);
          ++i;
        }
      }
    }
    if (!expired.empty()) {
      for (size_t i = 0; i < expired.size(); ++i) Count(Outcome::kOverBudget);
      mu_.Unlock();
      for (DoneFn& done : expired) done(Outcome::kOverBudget);
      mu_.Lock();
      continue;
    }
    const int64_t seen = timer_wakeups_;
    auto woken = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || timer_wakeups_ != seen;
    };
    timer_deadline_ = earliest;
    mu_.AwaitWithDeadline(absl::Condition(&woken), earliest);
    timer_deadline_ = absl::InfiniteFuture();
  }
}

void MirrorMisses::Stop() {
  std::vector<DoneFn> waiting;
  {
    absl::MutexLock lock(&mu_);
    if (stop_ && workers_.empty()) return;
    stop_ = true;
    for (auto& [key, entry] : entries_) {
      for (Waiter& w : entry.waiters) waiting.push_back(std::move(w.done));
    }
    entries_.clear();
    queue_.clear();
  }
  for (DoneFn& done : waiting) done(Outcome::kStopped);
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  if (timer_.joinable()) timer_.join();
  absl::MutexLock lock(&mu_);
  workers_.clear();
}

MirrorMisses::Stats MirrorMisses::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace imaged::cri
