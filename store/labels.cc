#include "store/labels.h"

#include "absl/strings/str_cat.h"

namespace imaged::store {

absl::Status ValidateLabels(const Labels& labels) {
  for (const auto& [key, value] : labels) {
    if (key.empty()) return absl::InvalidArgumentError("label key must not be empty");
    if (key.size() + value.size() > kMaxLabelSize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label key and value greater than maximum size (", kMaxLabelSize,
          " bytes), key: ", key.substr(0, 64), key.size() > 64 ? "..." : ""));
    }
  }
  return absl::OkStatus();
}

}  // namespace imaged::store
