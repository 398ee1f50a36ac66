// Test stores that show only their ContentStore and ImageStore faces: what
// code written on those interfaces sees over gRPC (no BlobBatchCommitter, no
// ImageCommitter), so a test can run the one-at-a-time path of code that
// batches when it can (cri::Import, cri::Mirror) against RocksDB stores.
#ifndef IMAGED_STORE_PLAIN_STORES_H_
#define IMAGED_STORE_PLAIN_STORES_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/content_store.h"
#include "store/image_store.h"

namespace imaged::store {

class PlainContentStore final : public ContentStore {
 public:
  explicit PlainContentStore(ContentStore* s) : s_(s) {}
  absl::StatusOr<ContentInfo> Info(absl::string_view ns, absl::string_view d) override {
    return s_->Info(ns, d);
  }
  absl::StatusOr<ContentInfo> Update(absl::string_view ns, const ContentInfo& info,
                                     absl::Span<const std::string> paths) override {
    return s_->Update(ns, info, paths);
  }
  absl::Status Walk(absl::string_view ns, absl::Span<const std::string> filters,
                    const WalkFn& fn) override {
    return s_->Walk(ns, filters, fn);
  }
  absl::Status Delete(absl::string_view ns, absl::string_view d) override {
    return s_->Delete(ns, d);
  }
  absl::StatusOr<std::unique_ptr<ContentReader>> Reader(absl::string_view ns,
                                                        absl::string_view d) override {
    return s_->Reader(ns, d);
  }
  absl::StatusOr<IngestStatus> Status(absl::string_view ns, absl::string_view ref) override {
    return s_->Status(ns, ref);
  }
  absl::StatusOr<std::vector<IngestStatus>> ListStatuses(
      absl::string_view ns, absl::Span<const std::string> filters) override {
    return s_->ListStatuses(ns, filters);
  }
  using ContentStore::Writer;
  absl::StatusOr<std::unique_ptr<ContentWriter>> Writer(absl::string_view ns, absl::string_view ref,
                                                        int64_t total, absl::string_view expected,
                                                        absl::string_view lease) override {
    return s_->Writer(ns, ref, total, expected, lease);
  }
  absl::Status Abort(absl::string_view ns, absl::string_view ref) override {
    return s_->Abort(ns, ref);
  }

 private:
  ContentStore* const s_;
};

class PlainImageStore : public ImageStore {
 public:
  explicit PlainImageStore(ImageStore* s) : s_(s) {}
  absl::StatusOr<Image> Get(absl::string_view ns, absl::string_view name) override {
    return s_->Get(ns, name);
  }
  absl::StatusOr<std::vector<Image>> List(absl::string_view ns,
                                          absl::Span<const std::string> filters) override {
    return s_->List(ns, filters);
  }
  using ImageStore::Create;
  absl::StatusOr<Image> Create(absl::string_view ns, const Image& image, absl::string_view lease,
                               std::optional<absl::Time> timestamp) override {
    return s_->Create(ns, image, lease, timestamp);
  }
  using ImageStore::Update;
  absl::StatusOr<Image> Update(absl::string_view ns, const Image& image,
                               absl::Span<const std::string> paths, absl::string_view lease,
                               std::optional<absl::Time> timestamp) override {
    return s_->Update(ns, image, paths, lease, timestamp);
  }
  using ImageStore::Delete;
  absl::Status Delete(absl::string_view ns, absl::string_view name,
                      absl::string_view target_digest) override {
    return s_->Delete(ns, name, target_digest);
  }

 private:
  ImageStore* const s_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_PLAIN_STORES_H_
