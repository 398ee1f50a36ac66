// Labels: the string map containerd attaches to content, images and leases.
#ifndef IMAGED_STORE_LABELS_H_
#define IMAGED_STORE_LABELS_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "store/limits.h"

namespace imaged::store {

using Labels = std::map<std::string, std::string>;

// The labels containerd's garbage collector reads (store/gc.h): a root, and
// references from a blob to other blobs of its namespace, either the bare
// key or the prefix with anything after it.
inline constexpr char kGcRootLabel[] = "containerd.io/gc.root";
inline constexpr char kGcRefContentLabel[] = "containerd.io/gc.ref.content";
inline constexpr char kGcRefContentPrefix[] = "containerd.io/gc.ref.content.";

// Ok when every label has a non-empty key, key + value fit kMaxLabelSize
// and all of them kMaxLabelsSize (store/limits.h); InvalidArgument naming
// the first offending key (quoted, cut) otherwise.
absl::Status ValidateLabels(const Labels& labels);

}  // namespace imaged::store

#endif  // IMAGED_STORE_LABELS_H_
