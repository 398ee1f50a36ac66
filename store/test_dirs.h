// Scratch directories for tests.
#ifndef IMAGED_STORE_TEST_DIRS_H_
#define IMAGED_STORE_TEST_DIRS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace imaged::store {

// A new, empty directory named `<prefix>-XXXXXX` under $TEST_TMPDIR (Bazel's
// per-test scratch space) or /tmp. Aborts the test binary if it cannot.
std::string MakeTempDir(absl::string_view prefix = "imaged");

}  // namespace imaged::store

#endif  // IMAGED_STORE_TEST_DIRS_H_
