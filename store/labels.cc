#include "store/labels.h"

#include "absl/strings/str_cat.h"

namespace imaged::store {

absl::Status ValidateLabels(const Labels& labels) {
  size_t total = 0;
  for (const auto& [key, value] : labels) {
    if (key.empty()) return absl::InvalidArgumentError("label key must not be empty");
    if (key.size() + value.size() > kMaxLabelSize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label key and value greater than maximum size (", kMaxLabelSize, " bytes), key: ",
          Quote(key)));
    }
    total += key.size() + value.size();
    if (total > kMaxLabelsSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("labels greater than ", kMaxLabelsSize, " bytes in all"));
    }
  }
  return absl::OkStatus();
}

}  // namespace imaged::store
