// WWW-Authenticate headers from registries (hostile ones included).
#include <cstdint>
#include <string>

#include "cri/registry/registry_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  (void)imaged::cri::ParseChallenges(in);
  return 0;
}
