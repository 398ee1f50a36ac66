#include "plugin/async_calls.h"

#include <cstdio>
#include <utility>

#include "absl/time/time.h"

namespace imaged::plugin {

RawBytes::RawBytes(const grpc::ByteBuffer& raw) : ok_(raw.Dump(&slices_).ok()) {
  if (slices_.size() == 1) {
    view_ = absl::string_view(reinterpret_cast<const char*>(slices_[0].begin()), slices_[0].size());
    return;
  }
  for (const grpc::Slice& s : slices_) {
    joined_.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  view_ = joined_;
}

bool ParseRaw(const RawBytes& raw, google::protobuf::MessageLite* out) {
  return raw.ok() && out->ParseFromArray(raw.view().data(), static_cast<int>(raw.view().size()));
}

bool ParseRaw(const grpc::ByteBuffer& raw, google::protobuf::MessageLite* out) {
  return ParseRaw(RawBytes(raw), out);
}

grpc::ByteBuffer Serialized(const google::protobuf::MessageLite& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

// One call of a raw unary method, from its request to its answer's
// completion. Deletes itself.
class AsyncCalls::RawUnaryCall final : public AsyncTag {
 public:
  RawUnaryCall(AsyncCalls* calls, const RawUnaryMethod* method, grpc::ServerCompletionQueue* cq)
      : live_(calls), calls_(calls), method_(method), writer_(&ctx_) {
    method_->request(&ctx_, &request_, &writer_, cq, this);
  }

  void Proceed(bool ok) override {
    if (answering_) {  // the answer went out, or the call ended first
      delete this;
      return;
    }
    if (!ok) {  // the server is shutting down: no call came
      delete this;
      return;
    }
    answering_ = true;
    calls_->Arm([calls = calls_, method = method_](grpc::ServerCompletionQueue* cq) {
      new RawUnaryCall(calls, method, cq);
    });
    method_->handler(&ctx_, request_, [this](const grpc::Status& status, grpc::ByteBuffer answer) {
      if (status.ok()) {
        writer_.Finish(answer, status, this);
      } else {
        writer_.FinishWithError(status, this);
      }
    });
    // A call answered later (a Create waiting for its fsync) would otherwise
    // hold up to 16 MiB of request until then, beside what the wait's bound
    // counts.
    request_.Clear();
  }

 private:
  Live live_;
  AsyncCalls* const calls_;
  const RawUnaryMethod* const method_;
  grpc::ServerContext ctx_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> writer_;
  bool answering_ = false;  // only ever touched on the queue's thread
};

AsyncCalls::Live::Live(AsyncCalls* calls) : calls_(calls) {
  absl::MutexLock lock(&calls_->live_mu_);
  ++calls_->live_;
}

AsyncCalls::Live::~Live() {
  absl::MutexLock lock(&calls_->live_mu_);
  --calls_->live_;
}

AsyncCalls::~AsyncCalls() { Shutdown(); }

void AsyncCalls::AddRawUnary(RawUnaryRequest request, RawUnaryHandler handler) {
  unary_.push_back(
      std::make_unique<RawUnaryMethod>(RawUnaryMethod{std::move(request), std::move(handler)}));
}

void AsyncCalls::AddMethod(ArmFn arm) { arms_.push_back(std::move(arm)); }

void AsyncCalls::AddTo(grpc::ServerBuilder* builder) { cq_ = builder->AddCompletionQueue(); }

void AsyncCalls::Start() {
  for (const auto& method : unary_) {
    for (int i = 0; i < kRequestedPerMethod; ++i) {
      Arm([this, m = method.get()](grpc::ServerCompletionQueue* cq) {
        new RawUnaryCall(this, m, cq);
      });
    }
  }
  for (const ArmFn& arm : arms_) {
    for (int i = 0; i < kRequestedPerMethod; ++i) Arm(arm);
  }
  thread_ = std::thread([this] {
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) static_cast<AsyncTag*>(tag)->Proceed(ok);
  });
}

void AsyncCalls::Arm(const ArmFn& arm) {
  absl::MutexLock lock(&arm_mu_);
  if (!closed_) arm(cq_.get());
}

void AsyncCalls::Shutdown() {
  {
    absl::MutexLock lock(&arm_mu_);
    if (closed_ || cq_ == nullptr) {
      closed_ = true;
      return;
    }
    closed_ = true;  // Arm requests no more
  }
  if (thread_.joinable()) {
    absl::MutexLock lock(&live_mu_);
    auto gone = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(live_mu_) { return live_ == 0; };
    // Bounded in case a path ever gets here without the server's shutdown.
    if (!live_mu_.AwaitWithTimeout(absl::Condition(&gone), absl::Seconds(60))) {
      std::fprintf(stderr, "imaged: %d async calls still open at shutdown\n", live_);
    }
  }
  cq_->Shutdown();
  if (thread_.joinable()) {
    thread_.join();
  } else {  // never started: drain here
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) static_cast<AsyncTag*>(tag)->Proceed(ok);
  }
}

WorkQueue::WorkQueue(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkQueue::~WorkQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void WorkQueue::Post(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void WorkQueue::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;  // stopping, and nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace imaged::plugin
