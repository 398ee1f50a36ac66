// The fuzz targets that run a store (the services' and archive_fuzzer)
// delete everything an input made after it, so the next input starts from
// an empty store. RocksDB keeps each deletion as a tombstone in the
// memtable until a flush and a compaction drop it, and every prefix scan
// steps over the tombstones in its range: after a few minutes of
// archive_fuzzer, its content walks took a third of its time. Compacting
// every few hundred inputs keeps the store as small as it looks.
#ifndef IMAGED_TOOLS_FUZZ_COMPACT_STORE_H_
#define IMAGED_TOOLS_FUZZ_COMPACT_STORE_H_

#include <cstdio>
#include <cstdlib>

#include "rocksdb/db.h"
#include "store/keys.h"
#include "store/metadata_db.h"

namespace imaged::fuzz {

// Call once per input: every `every`th call flushes and compacts every
// column family of `db` (aborts on failure).
inline void CompactEvery(store::MetadataDb& db, int every = 500) {
  static int calls = 0;
  if (++calls % every != 0) return;
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (int cf = 0; cf < static_cast<int>(store::Cf::kCount); ++cf) {
    rocksdb::Status s =
        db.db()->CompactRange(options, db.cf(static_cast<store::Cf>(cf)), nullptr, nullptr);
    if (!s.ok()) {
      std::fprintf(stderr, "compaction: %s\n", s.ToString().c_str());
      std::abort();
    }
  }
}

}  // namespace imaged::fuzz

#endif  // IMAGED_TOOLS_FUZZ_COMPACT_STORE_H_
