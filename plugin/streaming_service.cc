#include "plugin/streaming_service.h"

#include <google/protobuf/empty.pb.h>

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"
#include "store/limits.h"

namespace imaged::plugin {

absl::string_view AnyTypeName(const google::protobuf::Any& any) {
  absl::string_view url = any.type_url();
  size_t slash = url.rfind('/');
  return slash == absl::string_view::npos ? url : url.substr(slash + 1);
}

google::protobuf::Any PackAny(const google::protobuf::Message& message) {
  google::protobuf::Any any;
  any.set_type_url(message.GetDescriptor()->full_name());
  message.SerializeToString(any.mutable_value());
  return any;
}

absl::Status UnpackAny(const google::protobuf::Any& any, google::protobuf::Message* out) {
  const std::string& want = out->GetDescriptor()->full_name();
  if (AnyTypeName(any) != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a ", want, ", got ", store::Quote(any.type_url())));
  }
  if (!out->ParseFromString(any.value())) {
    return absl::InvalidArgumentError(absl::StrCat("a ", want, " that does not parse"));
  }
  return absl::OkStatus();
}

// One Streaming call: reads the StreamInit, registers the stream, acks it,
// then serves the ManagedStream's reads and writes until it is closed or
// the call ends. Its completions run on the async calls' thread, one at a
// time; the ManagedStream starts reads, writes and the finish from its
// user's threads. Deletes itself once the call has ended and no operation
// is in flight.
class StreamCall final {
 public:
  StreamCall(StreamingService* service, grpc::ServerCompletionQueue* cq)
      : live_(service->calls_),
        service_(service),
        rw_(&ctx_),
        stream_(std::make_shared<ManagedStream>(this)) {
    ctx_.AsyncNotifyWhenDone(&ended_tag_);
    service_->RequestStream(&ctx_, &rw_, cq, cq, &started_tag_);
  }

  // The stream's operations, called with stream_->op_mu_ held.
  void StartRead(google::protobuf::Any* msg) {
    Begin();
    rw_.Read(msg, &read_tag_);
  }
  void StartWrite(const google::protobuf::Any* msg) {
    Begin();
    rw_.Write(*msg, &write_tag_);
  }
  void Finish(const grpc::Status& status) {
    Begin();
    rw_.Finish(status, &finish_tag_);
  }

  // Finishes the call once; later calls do nothing.
  void FinishOnce(const grpc::Status& status) {
    absl::MutexLock op(&stream_->op_mu_);
    {
      absl::MutexLock lock(&stream_->mu_);
      if (stream_->finished_) return;
      stream_->finished_ = true;
    }
    Finish(status);
  }

 private:
  enum class Phase { kInit, kAck, kOpen };

  void OnStarted(bool ok) {
    if (!ok) {  // the server is shutting down: no call came (nor will its end)
      delete this;
      return;
    }
    service_->calls_->Arm(service_->arm_);
    absl::StatusOr<std::string> ns = ContentNamespace(ctx_);
    if (!ns.ok()) {
      FinishOnce(ToGrpcStatus(ns.status()));
      return;
    }
    ns_ = *std::move(ns);
    absl::MutexLock op(&stream_->op_mu_);
    StartRead(&init_);
  }

  void OnReadDone(bool ok) {
    if (phase_.load() == Phase::kInit) {
      Init(ok);
    } else {
      absl::MutexLock lock(&stream_->mu_);
      stream_->read_ = ManagedStream::Op::kDone;
      stream_->read_ok_ = ok;
    }
    Settle();
  }

  void OnWriteDone(bool ok) {
    if (phase_.load() == Phase::kAck) {
      phase_ = Phase::kOpen;
      {
        absl::MutexLock lock(&stream_->mu_);
        stream_->write_ = ManagedStream::Op::kIdle;
      }
      if (!ok) FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "stream ended"));
    } else {
      absl::MutexLock lock(&stream_->mu_);
      stream_->write_ = ManagedStream::Op::kDone;
      stream_->write_ok_ = ok;
    }
    Settle();
  }

  void OnFinished(bool) { Settle(); }

  // The call is over: finished, or cancelled by the client or the server's
  // shutdown.
  void OnEnded(bool) {
    if (ctx_.IsCancelled()) {
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    }
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
    }
    Settle(/*op_done=*/false);
  }

  void Begin() {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }

  // An operation has completed (`op_done`) or the call has ended: once both
  // the call is over and nothing is in flight, the stream is let go.
  void Settle(bool op_done = true) {
    {
      absl::MutexLock lock(&mu_);
      if (op_done) --in_flight_;
      if (!ended_ || in_flight_ > 0) return;
    }
    if (registered_) service_->manager_->Unregister(ns_, id_, stream_.get());
    {
      absl::MutexLock lock(&stream_->mu_);
      stream_->done_ = true;
      stream_->call_ = nullptr;
    }
    delete this;
  }

  void Init(bool ok) {
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "the stream ended before its StreamInit"));
      return;
    }
    streamingpb::StreamInit init;
    if (absl::Status s = UnpackAny(init_, &init); !s.ok()) {
      FinishOnce(ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("the first message of a stream: ", s.message()))));
      return;
    }
    if (init.id().empty() || init.id().size() > store::kMaxStreamIdLength) {
      FinishOnce(ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("stream id ", store::Quote(init.id()), ": must be 1 to ",
                       store::kMaxStreamIdLength, " bytes"))));
      return;
    }
    id_ = init.id();
    {
      // The ack is the stream's first write: a user's Send waits for it.
      absl::MutexLock lock(&stream_->mu_);
      stream_->write_ = ManagedStream::Op::kPending;
    }
    if (absl::Status s = service_->manager_->Register(ns_, id_, stream_); !s.ok()) {
      FinishOnce(ToGrpcStatus(s));
      return;
    }
    registered_ = true;
    phase_ = Phase::kAck;
    ack_ = PackAny(google::protobuf::Empty());
    absl::MutexLock op(&stream_->op_mu_);
    {
      absl::MutexLock lock(&stream_->mu_);
      if (stream_->finished_) {  // cancelled meanwhile
        stream_->write_ = ManagedStream::Op::kIdle;
        return;
      }
    }
    StartWrite(&ack_);
  }

  AsyncCalls::Live live_;
  StreamingService* const service_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<google::protobuf::Any, google::protobuf::Any> rw_;
  const std::shared_ptr<ManagedStream> stream_;
  MemberTag<StreamCall> started_tag_{this, &StreamCall::OnStarted};
  MemberTag<StreamCall> read_tag_{this, &StreamCall::OnReadDone};
  MemberTag<StreamCall> write_tag_{this, &StreamCall::OnWriteDone};
  MemberTag<StreamCall> finish_tag_{this, &StreamCall::OnFinished};
  MemberTag<StreamCall> ended_tag_{this, &StreamCall::OnEnded};
  std::string ns_;
  std::string id_;
  bool registered_ = false;  // only touched on the queue's thread
  std::atomic<Phase> phase_{Phase::kInit};
  google::protobuf::Any init_;
  google::protobuf::Any ack_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // reads, writes and the finish
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Status ManagedStream::Send(google::protobuf::Any message, absl::Duration timeout) {
  auto write_settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return write_ != Op::kPending || done_;
  };
  {
    // A write that timed out earlier is waited for first.
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&write_settled), timeout)) {
      return absl::DeadlineExceededError(
          absl::StrCat("the client has not read the stream for ", absl::FormatDuration(timeout)));
    }
  }
  {
    absl::MutexLock op(&op_mu_);
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || write_ == Op::kPending) {
        return absl::UnavailableError("the stream has ended");
      }
      write_ = Op::kPending;
    }
    write_msg_ = std::move(message);
    call_->StartWrite(&write_msg_);
  }
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&write_settled), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("the client has not read the stream for ", absl::FormatDuration(timeout)));
  }
  if (write_ != Op::kDone) return absl::UnavailableError("the stream has ended");
  write_ = Op::kIdle;
  if (!write_ok_) return absl::UnavailableError("the stream has ended");
  return absl::OkStatus();
}

absl::Status ManagedStream::Recv(google::protobuf::Any* message, absl::Duration timeout) {
  {
    absl::MutexLock op(&op_mu_);
    bool start = false;
    {
      absl::MutexLock lock(&mu_);
      if (read_ == Op::kIdle) {
        if (finished_) return absl::UnavailableError("the stream has ended");
        read_ = Op::kPending;
        start = true;
      }
    }
    // A read that timed out earlier is still pending: its message is next.
    if (start) call_->StartRead(&read_msg_);
  }
  absl::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return read_ != Op::kPending || done_;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&settled), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("the client sent nothing on the stream for ", absl::FormatDuration(timeout)));
  }
  if (read_ != Op::kDone) return absl::UnavailableError("the stream has ended");
  read_ = Op::kIdle;
  if (!read_ok_) {
    return finished_ ? absl::UnavailableError("the stream has ended")
                     : absl::OutOfRangeError("end of stream");
  }
  *message = std::move(read_msg_);
  read_msg_.Clear();
  return absl::OkStatus();
}

void ManagedStream::Close(const absl::Status& status) {
  absl::MutexLock op(&op_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
  }
  call_->Finish(ToGrpcStatus(status));
}

StreamManager::~StreamManager() {
  absl::MutexLock lock(&mu_);
  streams_.clear();
}

absl::Status StreamManager::Register(const std::string& ns, const std::string& id,
                                     std::shared_ptr<ManagedStream> stream) {
  absl::MutexLock lock(&mu_);
  if (streams_.size() >= store::kMaxOpenStreams) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many open streams (", store::kMaxOpenStreams, ")"));
  }
  if (!streams_.emplace(std::make_pair(ns, id), std::move(stream)).second) {
    return absl::AlreadyExistsError(absl::StrCat("stream ", store::Quote(id), " already exists"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ManagedStream>> StreamManager::Get(const std::string& ns,
                                                                  const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(std::make_pair(ns, id));
  if (it == streams_.end()) {
    return absl::NotFoundError(absl::StrCat("stream ", store::Quote(id), " not found"));
  }
  return it->second;
}

void StreamManager::Unregister(const std::string& ns, const std::string& id,
                               const ManagedStream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(std::make_pair(ns, id));
  if (it != streams_.end() && it->second.get() == stream) streams_.erase(it);
}

size_t StreamManager::size() {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

void StreamingService::ServeAsync(AsyncCalls* calls) {
  calls_ = calls;
  arm_ = [this](grpc::ServerCompletionQueue* cq) { new StreamCall(this, cq); };
  calls->AddMethod(arm_);
}

}  // namespace imaged::plugin
