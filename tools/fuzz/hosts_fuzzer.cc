// containerd's hosts.toml (registry mirrors, CAs, headers), as an operator
// or a broken config management tool writes it.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "cri/registry/hosts.h"
#include "tools/fuzz/fuzz_temp_dir.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    std::string tmpl = imaged::fuzz::FuzzTempDir("hosts-fuzz");
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
