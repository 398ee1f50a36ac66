// The tar stream of an archive import alone (cri::TarReader): decompression
// (gzip, bzip2, xz, zstd, lz4), tar headers, names, links, and the JSON files
// an import parses from it (index.json as an OCI index), with no store, so it
// runs thousands of times faster than archive_fuzzer. Checks: every name and
// link target is clean; a file yields at most its size.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cri/archive/tar_reader.h"
#include "store/oci.h"

namespace {

// Decompressed bytes read per input at most (a small input can expand to
// gigabytes; the import streams those, here they would only cost time).
constexpr size_t kMaxRead = 4 << 20;

[[noreturn]] void Fail(const char* what, const std::string& name) {
  std::fprintf(stderr, "%s: \"%s\"\n", what, name.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using imaged::cri::CleanPath;
  using imaged::cri::TarEntry;
  size_t at = 0;
  // Reads of uneven sizes, as from a pipe.
  imaged::cri::ArchiveReadFn read = [&](char* buf, size_t len) -> absl::StatusOr<size_t> {
    size_t n = std::min({len, size - at, static_cast<size_t>(7919)});
    if (n > 0) std::memcpy(buf, data + at, n);
    at += n;
    return n;
  };
  // Small buffers: a fresh 1 MiB one per input (ASan maps it anew) cost
  // most of the time in page faults.
  imaged::cri::TarReader reader(read, 16 << 10);
  static std::vector<char> buf(16 << 10);
  size_t total = 0;
  while (total < kMaxRead) {
    absl::StatusOr<std::optional<TarEntry>> entry = reader.Next();
    if (!entry.ok() || !entry->has_value()) break;
    const TarEntry& e = **entry;
    if (CleanPath(e.name) != e.name) Fail("unclean name", e.name);
    if (e.type == TarEntry::Type::kLink) {
      if (CleanPath(e.target) != e.target) Fail("unclean link target", e.target);
      continue;
    }
    if (e.size < 0) Fail("negative size", e.name);
    std::string json;
    int64_t got = 0;
    for (;;) {
      absl::StatusOr<size_t> n = reader.Read(buf.data(), buf.size());
      if (!n.ok() || *n == 0) break;
      got += static_cast<int64_t>(*n);
      total += *n;
      if (got > e.size) Fail("more bytes than the header says", e.name);
      if (e.name == "index.json" && json.size() < (1 << 20)) json.append(buf.data(), *n);
      if (total >= kMaxRead) break;
    }
    if (!json.empty()) (void)imaged::store::ParseIndex(json);
  }
  return 0;
}
