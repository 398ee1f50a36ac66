#include "plugin/list_images_cache.h"

#include <chrono>
#include <utility>

namespace imaged::plugin {
namespace {

// A slice that owns `bytes` without copying them.
grpc::Slice OwningSlice(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  return grpc::Slice(owned->data(), owned->size(),
                     [](void* p) { delete static_cast<std::string*>(p); }, owned);
}

}  // namespace

ListImagesCache::ListImagesCache(GenerationFn generation, BuildFn build)
    : generation_(std::move(generation)), build_(std::move(build)), thread_([this] { Loop(); }) {}

ListImagesCache::~ListImagesCache() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void ListImagesCache::Get(DoneFn done) {
  const uint64_t generation = generation_();
  grpc::Slice answer;
  {
    absl::MutexLock lock(&mu_);
    if (!valid_ || generation_built_ != generation) {
      waiting_.push_back(std::move(done));
      return;
    }
    answer = answer_;  // a reference, not a copy
    ++stats_.hits;
  }
  done(absl::OkStatus(), grpc::ByteBuffer(&answer, 1));
}

ListImagesCache::Stats ListImagesCache::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void ListImagesCache::Loop() {
  while (true) {
    std::vector<DoneFn> waiting;
    size_t hint = 0;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ListImagesCache* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->stop_ || !c->waiting_.empty();
          },
          this));
      if (waiting_.empty()) return;  // stopping, nobody waiting
      waiting.swap(waiting_);
      hint = stats_.bytes;
    }
    // Read after the waiters were taken: the answer is at least as new as
    // any write that finished before one of them called.
    const uint64_t generation = generation_();
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Answer> built = build_(hint);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    grpc::Slice answer;
    if (built.ok()) {
      int64_t images = built->images;
      size_t bytes = built->bytes.size();
      answer = OwningSlice(std::move(built->bytes));
      absl::MutexLock lock(&mu_);
      valid_ = true;
      generation_built_ = generation;
      answer_ = answer;
      ++stats_.builds;
      stats_.images = images;
      stats_.bytes = bytes;
      stats_.last_build_seconds = seconds;
    }
    const absl::Status status = built.status();
    const grpc::ByteBuffer buffer = built.ok() ? grpc::ByteBuffer(&answer, 1) : grpc::ByteBuffer();
    for (DoneFn& done : waiting) done(status, buffer);
  }
}

}  // namespace imaged::plugin
