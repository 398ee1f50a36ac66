// The image contract: cases every ImageStore must pass, run on RocksDB
// directly and through the Images gRPC service.
#ifndef IMAGED_STORE_IMAGE_STORE_CONTRACT_H_
#define IMAGED_STORE_IMAGE_STORE_CONTRACT_H_

#include <functional>
#include <memory>

#include "gtest/gtest.h"
#include "store/content_store.h"
#include "store/image_store.h"

namespace imaged::store {

// One fresh image store, and the content store its records resolve against.
class ImageHarness {
 public:
  virtual ~ImageHarness() = default;
  virtual ImageStore& images() = 0;
  virtual ContentStore& content() = 0;
};

using ImageHarnessFactory = std::function<std::unique_ptr<ImageHarness>()>;

class ImageStoreContract : public ::testing::TestWithParam<ImageHarnessFactory> {
 protected:
  void SetUp() override { harness_ = GetParam()(); }
  ImageStore& images() { return harness_->images(); }
  ContentStore& content() { return harness_->content(); }

 private:
  std::unique_ptr<ImageHarness> harness_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_IMAGE_STORE_CONTRACT_H_
