// containerd.services.streaming.v1.Streaming (containerd 2.x): a client
// opens a bidirectional stream of google.protobuf.Any, names it with a
// StreamInit{id} as its first message, gets google.protobuf.Empty back, and
// the stream then waits, registered under (namespace, id), for another call
// (Transfer) to use it: progress, registry credentials, archive bytes.
//
// The stream is served with the async API on the async calls' thread
// (async_calls.h), so an idle stream holds no thread. Its user sees it as a ManagedStream with blocking Send and Recv;
// Close ends the call (the client reads EOF). A stream the client cancels,
// or that is never used, leaves the manager when its call ends.
#ifndef IMAGED_PLUGIN_STREAMING_SERVICE_H_
#define IMAGED_PLUGIN_STREAMING_SERVICE_H_

#include <google/protobuf/any.pb.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/containerd/services/streaming/v1/streaming.grpc.pb.h"
#include "plugin/async_calls.h"

namespace imaged::plugin {

namespace streamingpb = ::containerd::services::streaming::v1;

// How long Recv waits for the client before DeadlineExceeded.
inline constexpr absl::Duration kStreamIdleTimeout = absl::Seconds(60);

// The full name in an Any's type URL: containerd's typeurl writes the bare
// name ("containerd.types.transfer.Data"), protobuf's own Any::PackFrom
// "type.googleapis.com/<name>"; both are accepted.
absl::string_view AnyTypeName(const google::protobuf::Any& any);
// `message` in an Any the way containerd's typeurl writes it (bare name).
google::protobuf::Any PackAny(const google::protobuf::Message& message);
// `any` parsed into `out`: InvalidArgument when the type is not out's or the
// bytes do not parse.
absl::Status UnpackAny(const google::protobuf::Any& any, google::protobuf::Message* out);

class StreamCall;

// One registered stream, as the call that uses it sees it. Send and Recv
// may be called by one thread at a time each.
class ManagedStream {
 public:
  explicit ManagedStream(StreamCall* call) : call_(call) {}
  ManagedStream(const ManagedStream&) = delete;
  ManagedStream& operator=(const ManagedStream&) = delete;

  // Sends `message` (moved into the pending write, not copied).
  // Unavailable once the stream has ended; DeadlineExceeded when the client
  // has not taken it within `timeout`.
  absl::Status Send(google::protobuf::Any message, absl::Duration timeout = kStreamIdleTimeout);
  // The client's next message: OutOfRange when the client has closed its
  // side (end of stream), Unavailable once the stream has ended,
  // DeadlineExceeded when nothing came within `timeout` (the read stays
  // pending and the next Recv takes its message).
  absl::Status Recv(google::protobuf::Any* message, absl::Duration timeout = kStreamIdleTimeout);
  // Ends the call: with OK the client reads EOF, otherwise `status` (a
  // failed transfer, so a partial archive is not taken for a whole one).
  // The first call counts.
  void Close(const absl::Status& status = absl::OkStatus());

 private:
  friend class StreamCall;
  enum class Op { kIdle, kPending, kDone };

  // Start* and Finish are called with op_mu_ held, never concurrently.
  absl::Mutex op_mu_;
  StreamCall* call_;  // valid until `done_`

  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish called
  bool done_ ABSL_GUARDED_BY(mu_) = false;      // OnDone: the call is over
  Op write_ ABSL_GUARDED_BY(mu_) = Op::kIdle;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = false;
  Op read_ ABSL_GUARDED_BY(mu_) = Op::kIdle;
  bool read_ok_ ABSL_GUARDED_BY(mu_) = false;
  google::protobuf::Any read_msg_;   // written by gRPC while read_ is pending
  google::protobuf::Any write_msg_;  // read by gRPC while write_ is pending
};

// The streams registered and not yet ended, by namespace and id.
class StreamManager {
 public:
  StreamManager() = default;
  // Takes the lock, so the last Unregister (on a gRPC thread, before the
  // server's shutdown returned) is seen to come first.
  ~StreamManager();

  // AlreadyExists when (ns, id) is taken, ResourceExhausted past
  // store::kMaxOpenStreams.
  absl::Status Register(const std::string& ns, const std::string& id,
                        std::shared_ptr<ManagedStream> stream);
  // NotFound naming the stream when (ns, id) is not registered.
  absl::StatusOr<std::shared_ptr<ManagedStream>> Get(const std::string& ns,
                                                     const std::string& id);
  // Removes (ns, id) if it is still `stream`.
  void Unregister(const std::string& ns, const std::string& id, const ManagedStream* stream);
  size_t size();

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::pair<std::string, std::string>, std::shared_ptr<ManagedStream>> streams_
      ABSL_GUARDED_BY(mu_);
};

class StreamingService final : public streamingpb::Streaming::AsyncService {
 public:
  // `manager` is not owned and must outlive the service.
  explicit StreamingService(StreamManager* manager) : manager_(manager) {}

  // Registers Stream with `calls`, before the server is built.
  void ServeAsync(AsyncCalls* calls);

 private:
  friend class StreamCall;
  StreamManager* const manager_;
  AsyncCalls* calls_ = nullptr;
  ArmFn arm_;  // requests one more Stream call
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_STREAMING_SERVICE_H_
