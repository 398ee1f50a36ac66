// A scratch directory for a fuzz target's process (a config file, a store),
// removed when the process exits: libFuzzer's exit at the end of a run, or
// the replay main's return. Without this every CI fuzz run left one behind
// under /tmp. (A run stopped by a signal or a crash still leaves it.)
#ifndef IMAGED_TOOLS_FUZZ_FUZZ_TEMP_DIR_H_
#define IMAGED_TOOLS_FUZZ_FUZZ_TEMP_DIR_H_

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace imaged::fuzz {

// $TMPDIR (or /tmp)/imaged-<name>-XXXXXX, made once per call; aborts if it
// cannot be made.
inline std::string FuzzTempDir(const char* name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/imaged-" +
                     name + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  // Never destroyed: the exit handler runs after other statics may be gone.
  static auto* dirs = new std::vector<std::string>;
  if (dirs->empty()) {
    std::atexit([] {
      for (const std::string& dir : *dirs) {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      }
    });
  }
  dirs->push_back(tmpl);
  return tmpl;
}

}  // namespace imaged::fuzz

#endif  // IMAGED_TOOLS_FUZZ_FUZZ_TEMP_DIR_H_
