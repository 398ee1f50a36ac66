#include "store/test_dirs.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace imaged::store {

std::string MakeTempDir(absl::string_view prefix) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base ? base : "/tmp", "/", prefix, "-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) {
    std::perror(dir.c_str());
    std::abort();
  }
  return dir;
}

}  // namespace imaged::store
