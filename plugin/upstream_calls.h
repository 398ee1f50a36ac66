// Every call imaged makes to another server (containerd's APIs, its CRI) gets
// its client context here, so deadlines are set in one place:
//
//   point calls (Get, Info, Create, Update, Delete...)  now + `timeout`
//   whole-list calls and deletes that wait for containerd's collector
//                                                       now + `list_timeout`
//   streams (content Read, Write, List)                 cancelled when the
//                                                       peer keeps one
//                                                       waiting `timeout`
//                                                       for a message, and
//                                                       at `stream_cap`
//   the event subscription                              none (idle is normal)
//
// Each call is registered while it runs, so CancelAll() (shutdown) ends every
// call in flight at once, and calls started after it fail at once. How calls
// end is recorded: a deadline exceeded or an unreachable server marks the
// upstream "not answering" (with the method and error), any answer marks it
// answering again; timeouts are counted per method for metrics.
#ifndef IMAGED_PLUGIN_UPSTREAM_CALLS_H_
#define IMAGED_PLUGIN_UPSTREAM_CALLS_H_

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace imaged::plugin {

class UpstreamCalls {
 public:
  struct Options {
    absl::Duration timeout = absl::InfiniteDuration();
    absl::Duration list_timeout = absl::InfiniteDuration();
    absl::Duration stream_cap = absl::InfiniteDuration();
  };
  // kForwarded: made for a server call, which sets its deadline; running
  // out of it says nothing about containerd's health.
  enum class Kind { kPoint, kList, kStream, kSubscription, kForwarded };

  // Whether the upstream answers, as the last finished call (or heartbeat) saw it.
  struct Health {
    bool answering = true;
    absl::Time since = absl::InfinitePast();  // of the current state
    std::string last_failure;                 // "Images/Get: deadline exceeded ..."
  };

  // One call. Registered from creation to destruction; the context carries
  // the namespace header (when `ns` is not empty) and the deadline.
  class Call {
   public:
    ~Call();
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

    grpc::ClientContext* get() { return ctx_.get(); }
    // A stream moved a message and waits for the next: the peer's clock
    // starts again. A stream is cancelled when the peer keeps it waiting for
    // longer than the timeout.
    void Progress();
    // A stream waits for us, not the peer (a writer between requests).
    void Idle();
    // Records how the call ended and returns it as an absl::Status (a call
    // cancelled by CancelAll or the idle watchdog says so).
    absl::Status Finish(const grpc::Status& status);

   private:
    friend class UpstreamCalls;
    Call(UpstreamCalls* owner, std::string method, Kind kind,
         std::unique_ptr<grpc::ClientContext> ctx);

    UpstreamCalls* const owner_;
    const std::string method_;
    const Kind kind_;
    const std::unique_ptr<grpc::ClientContext> ctx_;
    std::atomic<int64_t> waiting_since_ns_{0};  // 0: not waiting on the peer
    std::atomic<bool> idle_cancelled_{false};
  };

  explicit UpstreamCalls(Options options);
  ~UpstreamCalls();

  // No deadlines and nothing shared: for tools and tests that act as a
  // plain client.
  static UpstreamCalls* Unbounded();

  // A call of `method` ("Images/Get") in namespace `ns` ("" sends no header).
  std::unique_ptr<Call> Start(absl::string_view method, absl::string_view ns,
                              Kind kind = Kind::kPoint);

  // A call made on behalf of a server call (a forwarded PullImage): it ends
  // when `parent` is cancelled, at the parent's deadline, or after `cap`.
  std::unique_ptr<Call> StartForwarded(absl::string_view method, const grpc::ServerContextBase& parent,
                                       absl::Duration cap);

  // Cancels every call in flight; every later call is cancelled at once.
  void CancelAll();
  bool cancelled() const;

  Health health() const;
  // Calls that ended with DEADLINE_EXCEEDED (or were cancelled idle), per method.
  std::map<std::string, int64_t> Timeouts() const;
  // Told of every change between answering and not (not under any lock of ours).
  void OnHealthChange(std::function<void(bool answering)> fn);

  const Options& options() const { return options_; }

 private:
  void Register(Call* call);
  void Unregister(Call* call);
  void Note(const std::string& method, Kind kind, const grpc::Status& status, bool idle_cancelled);
  void Watchdog();

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<Call*> active_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Health health_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> timeouts_ ABSL_GUARDED_BY(mu_);
  std::function<void(bool)> on_health_ ABSL_GUARDED_BY(mu_);
  std::thread watchdog_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_UPSTREAM_CALLS_H_
