// Methods served with gRPC's async API, on one thread that polls its own
// completion queue and answers what it reads there.
//
// Why: on Debian's gRPC (1.51, the epoll1 poller) a sync method's call is
// read by a poller thread and handed to a worker, and a callback method's
// completions run on gRPC's "nexting" threads, which take turns polling the
// same sockets; each hand-off is a futex wake-up and a task switch. On this
// 2-core machine a unary call that does nothing cost the server 83-97 µs of
// CPU through either API, and 55-64 µs when the thread that polls the socket
// also answers the call (docs/benchmarks.md, "the floor"). The calls kubelet
// makes most (ImageStatus, ListImages), the health check and the Content
// Reads of containerd's proxy are served here, and Images.Create is read
// here and handed to the image store.
// A callback service anywhere in the server starts the nexting threads, and
// they then take their turns at polling for every call: imaged registers
// none (its Streaming service and health service are served here too).
//
// One thread: with two, each event hands the polling role from one to the
// other, which cost more CPU per call at 1 and at 16 callers than it gained.
// Handlers must therefore be short: a few point reads of the index, or a
// hand-off of the call to another thread that answers from there (a reply
// may be sent from any thread). A verbose ImageStatus, which reads the
// image's config, is the longest.
#ifndef IMAGED_PLUGIN_ASYNC_CALLS_H_
#define IMAGED_PLUGIN_ASYNC_CALLS_H_

#include <grpcpp/completion_queue.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/async_unary_call.h>
#include <grpcpp/support/byte_buffer.h>

#include <google/protobuf/message_lite.h>

#include <deque>
#include <functional>
#include <string>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace imaged::plugin {

// What the completion queue hands back: Proceed runs on the queue's thread
// with the outcome of the operation the tag was given to.
class AsyncTag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~AsyncTag() = default;
};

// A tag that calls `(owner->*fn)(ok)`: for a call with several operations in
// flight at once (a stream's read, write, finish and end).
template <typename T>
class MemberTag final : public AsyncTag {
 public:
  MemberTag(T* owner, void (T::*fn)(bool)) : owner_(owner), fn_(fn) {}
  void Proceed(bool ok) override { (owner_->*fn_)(ok); }

 private:
  T* const owner_;
  void (T::*const fn_)(bool);
};

// Answers one raw unary call: called exactly once, from any thread. With a
// status that is not OK the bytes are ignored.
using RawReply = std::function<void(const grpc::Status&, grpc::ByteBuffer)>;
// Answers `request` (bytes that need not parse) through `reply`. The bytes
// are released when the handler returns, even if the reply comes later: a
// handler that answers from another thread keeps what it parsed, not them.
using RawUnaryHandler =
    std::function<void(grpc::ServerContext* ctx, const grpc::ByteBuffer& request, RawReply reply)>;
// Requests one call of a raw unary method: a generated WithRawMethod_X's
// RequestX(ctx, request, writer, cq, cq, tag).
using RawUnaryRequest =
    std::function<void(grpc::ServerContext*, grpc::ByteBuffer*,
                       grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>*,
                       grpc::ServerCompletionQueue*, void* tag)>;
// Requests one call of a method whose call objects are the service's own
// (a stream): the call object asks for the next through AsyncCalls::Arm
// once its call has arrived.
using ArmFn = std::function<void(grpc::ServerCompletionQueue*)>;

// A raw request's bytes, contiguous: a view of its one slice, or a copy of
// its slices. ok() is false when the buffer could not be read.
class RawBytes {
 public:
  explicit RawBytes(const grpc::ByteBuffer& raw);
  bool ok() const { return ok_; }
  absl::string_view view() const { return view_; }

 private:
  std::vector<grpc::Slice> slices_;
  std::string joined_;
  bool ok_;
  absl::string_view view_;
};

// `raw` parsed into `out`: false when it could not be read or does not parse.
bool ParseRaw(const RawBytes& raw, google::protobuf::MessageLite* out);
bool ParseRaw(const grpc::ByteBuffer& raw, google::protobuf::MessageLite* out);
// `message` as a raw answer's bytes.
grpc::ByteBuffer Serialized(const google::protobuf::MessageLite& message);

class AsyncCalls {
 public:
  AsyncCalls() = default;
  AsyncCalls(const AsyncCalls&) = delete;
  AsyncCalls& operator=(const AsyncCalls&) = delete;
  // Shutdown() if it was not called.
  ~AsyncCalls();

  // Before AddTo: a raw unary method and its handler.
  void AddRawUnary(RawUnaryRequest request, RawUnaryHandler handler);
  // The same for `service`'s method X: `request` is the generated
  // WithRawMethod_X's RequestX, `answer` the service's own.
  template <typename S, typename Request>
  void AddRawUnary(S* service, Request request,
                   void (S::*answer)(const grpc::ByteBuffer&, RawReply)) {
    AddRawUnary(
        [service, request](grpc::ServerContext* ctx, grpc::ByteBuffer* req,
                           grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* writer,
                           grpc::ServerCompletionQueue* cq, void* tag) {
          (service->*request)(ctx, req, writer, cq, cq, tag);
        },
        [service, answer](grpc::ServerContext*, const grpc::ByteBuffer& req, RawReply reply) {
          (service->*answer)(req, std::move(reply));
        });
  }
  // Before AddTo: a method with its own call objects.
  void AddMethod(ArmFn arm);
  // Adds the completion queue to `builder`, before it builds the server.
  void AddTo(grpc::ServerBuilder* builder);
  // After the server is built and started: requests the first calls and
  // starts the thread.
  void Start();
  // Requests one more call through `arm`, unless Shutdown has begun.
  void Arm(const ArmFn& arm);
  // After the server's Shutdown has returned: stops requesting calls, waits
  // for every call object to be gone (the server's shutdown ends them:
  // requested calls come back failed, started ones cancelled, and the
  // queue's thread runs what is left of them), then shuts the queue, drains
  // it and joins the thread.
  void Shutdown();

  // Held by every call object served here, as its first member, from its
  // creation to its deletion. gRPC aborts the process on an operation
  // started after the queue is shut: a reply from another thread (a Create
  // answered after its fsync) or a stream's next chunk could come just
  // then, so Shutdown waits for the calls rather than for the server alone.
  class Live {
   public:
    explicit Live(AsyncCalls* calls);
    Live(const Live&) = delete;
    Live& operator=(const Live&) = delete;
    ~Live();

   private:
    AsyncCalls* const calls_;
  };

 private:
  struct RawUnaryMethod {
    RawUnaryRequest request;
    RawUnaryHandler handler;
  };
  class RawUnaryCall;
  // Calls of each method requested at once: a burst beyond them waits in
  // gRPC until the thread requests more (one per call it takes).
  static constexpr int kRequestedPerMethod = 4;

  std::vector<std::unique_ptr<RawUnaryMethod>> unary_;
  std::vector<ArmFn> arms_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread thread_;
  absl::Mutex arm_mu_;  // requests against the queue's shutdown
  bool closed_ ABSL_GUARDED_BY(arm_mu_) = false;
  absl::Mutex live_mu_;
  int live_ ABSL_GUARDED_BY(live_mu_) = 0;  // call objects in existence
};

// Threads that run posted tasks, oldest first: for what a call served here
// must not do on the calls' thread, such as reading a large blob, whose
// next step goes back through the completion queue. Tasks must not block
// on the queue's thread or on one another.
class WorkQueue {
 public:
  explicit WorkQueue(int threads);
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;
  // Runs every task posted before it, then joins the threads.
  ~WorkQueue();

  void Post(std::function<void()> task);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_ASYNC_CALLS_H_
