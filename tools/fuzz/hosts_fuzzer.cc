// containerd's hosts.toml (registry mirrors, CAs, headers), as an operator
// or a broken config management tool writes it.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "cri/registry/hosts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/imaged-hosts-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    std::string host = tmpl + "/registry.example";
    ::mkdir(host.c_str(), 0755);
    return tmpl;
  }();
  {
    std::ofstream out(dir + "/registry.example/hosts.toml", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)imaged::cri::HostsFor(dir, "registry.example");
  return 0;
}
