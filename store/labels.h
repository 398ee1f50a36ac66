// Labels: the string map containerd attaches to content, images and leases.
#ifndef IMAGED_STORE_LABELS_H_
#define IMAGED_STORE_LABELS_H_

#include <map>
#include <string>

#include "absl/status/status.h"

namespace imaged::store {

using Labels = std::map<std::string, std::string>;

// containerd's limit on one label: key and value together.
inline constexpr size_t kMaxLabelSize = 4096;

// Ok when every label has a non-empty key and key + value fit kMaxLabelSize;
// InvalidArgument naming the first offending key (truncated) otherwise.
absl::Status ValidateLabels(const Labels& labels);

}  // namespace imaged::store

#endif  // IMAGED_STORE_LABELS_H_
