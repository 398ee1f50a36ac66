#include "plugin/list_images_cache.h"

#include <chrono>
#include <cstdio>
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
    Previous previous;
    bool have_previous = false;
    grpc::Slice held;  // keeps the previous bytes alive while patching
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ListImagesCache* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->stop_ || !c->waiting_.empty();
          },
          this));
      if (waiting_.empty()) return;  // stopping, nobody waiting
      waiting.swap(waiting_);
      if (valid_) {
        held = answer_;
        have_previous = true;
        previous.generation = generation_built_;
      }
    }
    if (have_previous) {
      previous.bytes = absl::string_view(reinterpret_cast<const char*>(held.begin()), held.size());
      previous.entries = &entries_;
    }
    // Read after the waiters were taken: the answer is at least as new as
    // any write that finished before one of them called.
    const uint64_t generation = generation_();
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Answer> built = build_(have_previous ? &previous : nullptr);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    held = grpc::Slice();
    grpc::Slice answer;
    if (built.ok()) {
      const int64_t images = static_cast<int64_t>(built->entries.size());
      const size_t bytes = built->bytes.size();
      const bool patched = built->patched;
      entries_ = std::move(built->entries);
      answer = OwningSlice(std::move(built->bytes));
      absl::MutexLock lock(&mu_);
      valid_ = true;
      generation_built_ = generation;
      answer_ = answer;
      ++stats_.builds;
      if (patched) ++stats_.patches;
      stats_.images = images;
      stats_.bytes = bytes;
      stats_.last_build_seconds = seconds;
      if (stats_.builds == 1) {
        std::fprintf(stderr, "imaged: first ListImages answer built in %.3f s (%lld images, %zu bytes)\n",
                     seconds, static_cast<long long>(images), bytes);
      }
    }
    const absl::Status status = built.status();
    const grpc::ByteBuffer buffer = built.ok() ? grpc::ByteBuffer(&answer, 1) : grpc::ByteBuffer();
    for (DoneFn& done : waiting) done(status, buffer);
  }
}

absl::string_view EntryImageId(absl::string_view entry) {
  // Reads a varint at `p`; false when it runs past `end`.
  auto varint = [](const char*& p, const char* end, uint64_t* v) {
    *v = 0;
    for (int shift = 0; p < end && shift < 64; shift += 7) {
      uint8_t b = static_cast<uint8_t>(*p++);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  const char* p = entry.data();
  const char* end = p + entry.size();
  uint64_t v = 0;
  if (p == end || *p++ != '\x0a' || !varint(p, end, &v)) return {};  // images entry, its length
  if (p == end || *p++ != '\x0a' || !varint(p, end, &v)) return {};  // Image.id, its length
  if (v > static_cast<uint64_t>(end - p)) return {};
  return absl::string_view(p, static_cast<size_t>(v));
}

}  // namespace imaged::plugin
