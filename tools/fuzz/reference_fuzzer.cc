// Image references as kubelet and clients send them: parsing and Docker
// normalisation never crash, and the hand-written split of the common form
// agrees with the RE2 grammar on every input.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cri/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  (void)imaged::cri::ParseNormalizedNamed(in);
  absl::StatusOr<std::string> normalized = imaged::cri::NormalizeImageRef(in);
  if (normalized.ok()) {
    // Normalising is idempotent.
    absl::StatusOr<std::string> again = imaged::cri::NormalizeImageRef(*normalized);
    if (!again.ok() || *again != *normalized) std::abort();
  }
  auto fast = imaged::cri::internal::SplitReferenceFast(in);
  if (fast) {
    auto slow = imaged::cri::internal::SplitReferenceRe2(in);
    if (!slow || slow->domain != fast->domain || slow->path != fast->path || slow->tag != fast->tag ||
        slow->digest != fast->digest) {
      std::abort();
    }
  }
  (void)imaged::cri::IsImageId(in);
  (void)imaged::cri::ImageIdPrefix(in);
  return 0;
}
