// ThreadSanitizer and Debian's Abseil (--config=tsan, docs/reliability.md).
//
// Debian builds libabsl_synchronization without -fsanitize=thread, so TSan
// cannot see that absl::Mutex orders anything (it locks with atomics and
// futexes in code TSan does not instrument): every access to state an
// absl::Mutex guards would be reported as a race. This file, linked into
// every binary of the tsan build, defines absl::Mutex's and absl::CondVar's
// out-of-line lock functions itself: each tells TSan what happens (the
// __tsan_mutex_* annotations Abseil makes when it is built with TSan) and
// calls the library's own function (dlsym RTLD_NEXT). The executable's
// definitions take precedence over the library's, including for the calls
// the library and gRPC make, and the annotations' ignore regions cover
// everything the library does inside, such as evaluating Conditions. Calls
// the library makes to these functions from inside one of them (a
// CondVar::WaitWithTimeout calls WaitWithDeadline) pass straight through.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#define IMAGED_STR(x) #x
#define IMAGED_XSTR(x) IMAGED_STR(x)

namespace {

// The mangled name of absl::<inline namespace>::<cls>::<rest>.
std::string Mangled(const char* cls, const char* rest) {
  const char* ns = IMAGED_XSTR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return "_ZN4absl" + std::to_string(std::strlen(ns)) + ns + cls + rest;
}

template <typename F>
F Real(const char* cls, const char* rest) {
  const std::string name = Mangled(cls, rest);
  void* f = ::dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

// Depth of shim calls on this thread: only the outermost annotates.
thread_local int nesting = 0;
struct Nesting {
  Nesting() : inner(nesting++ > 0) {}
  ~Nesting() { --nesting; }
  const bool inner;
};

using Mutex = absl::Mutex;
using Cond = absl::Condition;
constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;

// A call made with the mutex held that releases and re-acquires it inside.
template <typename R, typename... A>
R Releasing(void* mu, unsigned flags, R (*real)(A...), A... args) {
  __tsan_mutex_pre_unlock(mu, flags);
  R r = real(args...);
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
  return r;
}

// Lock functions that always end with the mutex held.
template <typename R, typename... A>
R Locking(void* mu, unsigned flags, R (*real)(A...), A... args) {
  __tsan_mutex_pre_lock(mu, flags);
  R r = real(args...);
  __tsan_mutex_post_lock(mu, flags, 0);
  return r;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex", "4LockEv");
  Nesting nested;
  if (nested.inner) return real(this);
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex", "10ReaderLockEv");
  Nesting nested;
  if (nested.inner) return real(this);
  __tsan_mutex_pre_lock(this, kRead);
  real(this);
  __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::TryLock() {
  static auto real = Real<bool (*)(Mutex*)>("5Mutex", "7TryLockEv");
  Nesting nested;
  if (nested.inner) return real(this);
  __tsan_mutex_pre_lock(this, kTry);
  const bool ok = real(this);
  __tsan_mutex_post_lock(this, kTry | (ok ? 0 : __tsan_mutex_try_lock_failed), 0);
  return ok;
}

bool Mutex::ReaderTryLock() {
  static auto real = Real<bool (*)(Mutex*)>("5Mutex", "13ReaderTryLockEv");
  Nesting nested;
  if (nested.inner) return real(this);
  __tsan_mutex_pre_lock(this, kRead | kTry);
  const bool ok = real(this);
  __tsan_mutex_post_lock(this, kRead | kTry | (ok ? 0 : __tsan_mutex_try_lock_failed), 0);
  return ok;
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex", "6UnlockEv");
  Nesting nested;
  if (nested.inner) return real(this);
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex", "12ReaderUnlockEv");
  Nesting nested;
  if (nested.inner) return real(this);
  __tsan_mutex_pre_unlock(this, kRead);
  real(this);
  __tsan_mutex_post_unlock(this, kRead);
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Cond&)>("5Mutex", "8LockWhenERKNS0_9ConditionE");
  Nesting nested;
  if (nested.inner) return real(this, cond);
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto real =
      Real<void (*)(Mutex*, const Cond&)>("5Mutex", "14ReaderLockWhenERKNS0_9ConditionE");
  Nesting nested;
  if (nested.inner) return real(this, cond);
  __tsan_mutex_pre_lock(this, kRead);
  real(this, cond);
  __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Cond*, Duration)>(
      "5Mutex", "19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Nesting nested;
  if (nested.inner) return real(this, &cond, timeout);
  return Locking(this, 0, real, this, &cond, timeout);
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Cond*, Time)>(
      "5Mutex", "20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Nesting nested;
  if (nested.inner) return real(this, &cond, deadline);
  return Locking(this, 0, real, this, &cond, deadline);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Cond*, Duration)>(
      "5Mutex", "25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Nesting nested;
  if (nested.inner) return real(this, &cond, timeout);
  return Locking(this, kRead, real, this, &cond, timeout);
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Cond*, Time)>(
      "5Mutex", "26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Nesting nested;
  if (nested.inner) return real(this, &cond, deadline);
  return Locking(this, kRead, real, this, &cond, deadline);
}

// Await may run in either mode; TSan is told "exclusive", which orders at
// least as much.
void Mutex::Await(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Cond*)>("5Mutex", "5AwaitERKNS0_9ConditionE");
  Nesting nested;
  if (nested.inner) return real(this, &cond);
  __tsan_mutex_pre_unlock(this, 0);
  real(this, &cond);
  __tsan_mutex_post_unlock(this, 0);
  __tsan_mutex_pre_lock(this, 0);
  __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Cond*, Duration)>(
      "5Mutex", "16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Nesting nested;
  if (nested.inner) return real(this, &cond, timeout);
  return Releasing(this, 0, real, this, &cond, timeout);
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Cond*, Time)>(
      "5Mutex", "17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Nesting nested;
  if (nested.inner) return real(this, &cond, deadline);
  return Releasing(this, 0, real, this, &cond, deadline);
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Real<void (*)(CondVar*, Mutex*)>("7CondVar", "4WaitEPNS0_5MutexE");
  Nesting nested;
  if (nested.inner) return real(this, mu);
  __tsan_mutex_pre_unlock(mu, 0);
  real(this, mu);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
  __tsan_mutex_post_lock(mu, 0, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar", "15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Nesting nested;
  if (nested.inner) return real(this, mu, timeout);
  return Releasing(mu, 0, real, this, mu, timeout);
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar", "16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Nesting nested;
  if (nested.inner) return real(this, mu, deadline);
  return Releasing(mu, 0, real, this, mu, deadline);
}

ABSL_NAMESPACE_END
}  // namespace absl
