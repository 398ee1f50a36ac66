// The content contract: cases every ContentStore implementation must pass, run
// against the RocksDB store directly and against the gRPC service through a
// client (the way containerd runs one suite against each content store).
//
// Use: define a harness factory and instantiate the suite:
//   INSTANTIATE_TEST_SUITE_P(RocksDb, ContentStoreContract,
//                            ::testing::Values(ContentHarnessFactory(&MakeHarness)));
#ifndef IMAGED_STORE_CONTENT_STORE_CONTRACT_H_
#define IMAGED_STORE_CONTENT_STORE_CONTRACT_H_

#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "store/content_store.h"

namespace imaged::store {

// Owns one fresh, empty store (and whatever it runs on) for one test.
class ContentHarness {
 public:
  virtual ~ContentHarness() = default;
  virtual ContentStore& store() = 0;
};

using ContentHarnessFactory = std::function<std::unique_ptr<ContentHarness>()>;

class ContentStoreContract : public ::testing::TestWithParam<ContentHarnessFactory> {
 protected:
  void SetUp() override { harness_ = GetParam()(); }
  ContentStore& store() { return harness_->store(); }

  // Writes `data` under `ref` in chunks and commits it with `labels`.
  absl::Status Put(absl::string_view ns, absl::string_view ref, absl::string_view data,
                   const Labels& labels = {});
  // The whole blob, read in chunks of `chunk` bytes.
  absl::StatusOr<std::string> ReadAll(absl::string_view ns, absl::string_view digest,
                                      size_t chunk = 7);

 private:
  std::unique_ptr<ContentHarness> harness_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_CONTENT_STORE_CONTRACT_H_
