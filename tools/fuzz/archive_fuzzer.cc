// Image archives as `ctr images import` and `docker load` users hand them
// over: the input is the archive (tar, or tar compressed with gzip, zstd or
// xz; OCI layout or docker save), imported into RocksDB stores in a temp dir.
// Beyond "no crash": an import that fails leaves no image record behind, and
// what one that succeeds names resolves. The stores are emptied after each
// input, so every input runs against the same empty stores.
// IMAGED_FUZZ_VERBOSE=1 prints each import's outcome (to check seeds).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cri/archive/archive.h"
#include "cri/reference.h"
#include "store/clock.h"
#include "store/files.h"
#include "store/local_stores.h"
#include "tools/fuzz/compact_store.h"
#include "tools/fuzz/fuzz_temp_dir.h"

namespace {

using namespace imaged;  // NOLINT: a fuzz target's file

constexpr absl::string_view kNs = "fuzz";

struct Stores {
  Stores() {
    root = fuzz::FuzzTempDir("archive-fuzz");
    store::LocalStoresOptions options;
    options.clock = &clock;
    options.classify = cri::ClassifyImageName;
    local = *store::LocalStores::Open(root, options);
    content = local->content();
    images = local->images();
  }

  // Removes every image and blob of the namespace.
  void Empty() {
    auto list = images->List(kNs, {});
    if (!list.ok()) std::abort();
    for (const store::Image& i : *list) {
      if (!images->Delete(kNs, i.name).ok()) std::abort();
    }
    std::vector<std::string> digests;
    if (!content
             ->Walk(kNs, {},
                    [&](const store::ContentInfo& info) {
                      digests.push_back(info.digest);
                      return absl::OkStatus();
                    })
             .ok()) {
      std::abort();
    }
    for (const std::string& d : digests) {
      if (!content->Delete(kNs, d).ok()) std::abort();
    }
  }

  std::string root;
  store::FakeClock clock;
  std::unique_ptr<store::LocalStores> local;
  store::RocksDbContentStore* content;
  store::RocksDbImageStore* images;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Stores* stores = new Stores();
  size_t at = 0;
  // Reads of uneven sizes, as from a pipe.
  cri::ArchiveReadFn read = [&](char* buf, size_t len) -> absl::StatusOr<size_t> {
    size_t n = std::min({len, size - at, static_cast<size_t>(7919)});
    if (n > 0) std::memcpy(buf, data + at, n);
    at += n;
    return n;
  };
  cri::ImportOptions options;
  options.base_name = "example.com/fuzz";
  options.now = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<cri::ImportResult> result =
      cri::Import(stores->content, stores->images, kNs, read, "fuzz.tar", options);
  static const bool verbose = std::getenv("IMAGED_FUZZ_VERBOSE") != nullptr;
  if (verbose) {
    std::fprintf(stderr, "import: %s, %zu images\n", result.status().ToString().c_str(),
                 result.ok() ? result->images.size() : 0);
  }
  auto names = stores->images->List(kNs, {});
  if (!names.ok()) std::abort();
  if (!result.ok() && !names->empty()) {
    std::fprintf(stderr, "a failed import (%s) left %zu images\n",
                 std::string(result.status().message()).c_str(), names->size());
    std::abort();
  }
  if (result.ok()) {
    for (const cri::ImportedImage& i : result->images) {
      if (!stores->images->Get(kNs, i.name).ok()) {
        std::fprintf(stderr, "imported image %s is not there\n", i.name.c_str());
        std::abort();
      }
    }
  }
  stores->Empty();
  fuzz::CompactEvery(*stores->local->db());
  return 0;
}
