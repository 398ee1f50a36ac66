// Start-up runs code that never runs again: RocksDB's open and recovery,
// gRPC's and OpenSSL's initialisation, the first ListImages answer. The
// kernel maps library text 64 KiB at a fault, so at 30,000 images about 32
// of imaged's 57 MiB resident after start were file pages of code and
// read-only data, most of them touched only then (issue 15: under 48 MiB).
// Once serving has begun, imaged asks the kernel to reclaim them
// (MADV_PAGEOUT, as Android does for cached apps); what the serving paths
// use is faulted back in as they run. The kernel skips pages that another
// process maps too (libc, libstdc++ on a node), so only imaged's own are
// given back.
#ifndef IMAGED_PLUGIN_STARTUP_PAGES_H_
#define IMAGED_PLUGIN_STARTUP_PAGES_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imaged::plugin {

struct MappedRange {
  uintptr_t begin = 0;
  uintptr_t end = 0;
};

// The read-only file mappings (code and read-only data of the binary and its
// libraries) among the lines of a /proc/<pid>/maps text. Writable, anonymous
// and special mappings ([vdso], [stack]...) are left out, and so are lines
// that do not parse.
std::vector<MappedRange> ReadOnlyFileMappings(absl::string_view maps);

// Advises MADV_PAGEOUT over this process's read-only file mappings and
// returns how many bytes of mappings were advised. FailedPrecondition when
// the kernel has no MADV_PAGEOUT (before Linux 5.4); nothing else changes
// then.
absl::StatusOr<int64_t> PageOutFileMappings();

// This process's resident set in bytes (/proc/self/statm), or -1. Also
// the metrics' process_resident_memory_bytes.
int64_t ResidentBytes();

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_STARTUP_PAGES_H_
