// Serialized ImageStatus answers by the request's bytes, kept while the
// image-ID index has not changed. kubelet asks the status of the same few
// images before every container start; on a node where they did not change
// a repeated request is answered with the bytes it got last time: no parse,
// no index read, no proto built. Read from the index, the two point reads
// and the answer cost some 25 µs of CPU per call over the wire (the reads
// mostly miss the CPU caches between calls); a hit costs a hash lookup.
//
// An answer is stored with the index generation read before it was built
// (store::ImageStore::Generation: an answer built after reading generation g
// stays the answer while the generation is still g), and found only while
// the generation is that one: any index write retires every answer. Only
// what is cheap to keep is stored: requests up to kMaxKeyBytes, at most
// kMaxEntries answers of kMaxBytes in all (past that the cache starts over).
#ifndef IMAGED_PLUGIN_STATUS_ANSWER_CACHE_H_
#define IMAGED_PLUGIN_STATUS_ANSWER_CACHE_H_

#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace imaged::plugin {

class StatusAnswerCache {
 public:
  static constexpr size_t kMaxKeyBytes = 1024;
  static constexpr size_t kMaxEntries = 4096;
  static constexpr size_t kMaxBytes = 4 << 20;

  // The answer stored for `request` at `generation`, if any.
  std::optional<grpc::Slice> Find(absl::string_view request, uint64_t generation);
  // Stores `answer` for `request`, built from the index after reading
  // `generation`. Ignored when `request` is too long or the generation is
  // older than the cache's.
  void Put(absl::string_view request, uint64_t generation, const grpc::Slice& answer);

  size_t size();

  struct Stats {
    uint64_t hits = 0;  // Find calls that found an answer
    size_t answers = 0;
    size_t bytes = 0;
  };
  Stats stats();

 private:
  absl::Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, grpc::Slice> answers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_STATUS_ANSWER_CACHE_H_
