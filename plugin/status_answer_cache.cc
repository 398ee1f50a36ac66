#include "plugin/status_answer_cache.h"

namespace imaged::plugin {

std::optional<grpc::Slice> StatusAnswerCache::Find(absl::string_view request,
                                                   uint64_t generation) {
  absl::MutexLock lock(&mu_);
  if (generation != generation_) return std::nullopt;
  auto it = answers_.find(request);
  if (it == answers_.end()) return std::nullopt;
  ++hits_;
  return it->second;
}

void StatusAnswerCache::Put(absl::string_view request, uint64_t generation,
                            const grpc::Slice& answer) {
  if (request.size() > kMaxKeyBytes) return;
  absl::MutexLock lock(&mu_);
  if (generation < generation_) return;  // built before a write the cache has seen
  const size_t cost = request.size() + answer.size();
  if (generation > generation_ || answers_.size() >= kMaxEntries || bytes_ + cost > kMaxBytes) {
    answers_.clear();
    bytes_ = 0;
    generation_ = generation;
  }
  if (cost > kMaxBytes) return;
  if (answers_.try_emplace(request, answer).second) bytes_ += cost;
}

size_t StatusAnswerCache::size() {
  absl::MutexLock lock(&mu_);
  return answers_.size();
}

StatusAnswerCache::Stats StatusAnswerCache::stats() {
  absl::MutexLock lock(&mu_);
  return Stats{hits_, answers_.size(), bytes_};
}

}  // namespace imaged::plugin
