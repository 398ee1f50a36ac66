#include "store/local_stores.h"

#include <utility>

#include "store/keys.h"

namespace imaged::store {

absl::StatusOr<std::unique_ptr<LocalStores>> LocalStores::Open(const std::string& root,
                                                               LocalStoresOptions options) {
  std::unique_ptr<LocalStores> s(new LocalStores(root));
  absl::StatusOr<std::unique_ptr<MetadataDb>> db = MetadataDb::Open(root + "/meta");
  if (!db.ok()) return db.status();
  s->db_ = *std::move(db);
  absl::StatusOr<std::unique_ptr<RocksDbContentStore>> content =
      RocksDbContentStore::Open(s->db_.get(), root, options.clock, options.content);
  if (!content.ok()) return content.status();
  s->content_ = *std::move(content);
  s->images_ = std::make_unique<RocksDbImageStore>(s->db_.get(), s->content_.get(), options.clock,
                                                   options.platform, std::move(options.classify));
  RocksDbImageStore* images = s->images_.get();
  const uint32_t opened = s->db_->opened_schema_version();
  if (opened != 0 && opened < 2) {
    if (absl::Status up = images->UpgradeFromSchema1(); !up.ok()) return up;
  }
  if (opened != 0 && opened < 3) {
    if (absl::Status up = images->UpgradeFromSchema2(); !up.ok()) return up;
  }
  if (opened != 0 && opened < 4) {
    // [blob_data] was created empty when the database opened; the blobs
    // already stored stay files, which readers fall back to.
    std::string version;
    PutU32(&version, 4);
    rocksdb::WriteBatch batch;
    batch.Put(s->db_->cf(Cf::kDefault), std::string(kSchemaVersionKey), version);
    if (absl::Status up = s->db_->Write(&batch); !up.ok()) return up;
  }
  s->content_->SetRemovalGuard([images](absl::string_view ns, absl::Span<const std::string> digests,
                                        const RocksDbContentStore::RemoveFn& remove) {
    return images->RemoveDocuments(ns, digests, remove);
  });
  s->content_->SetCommitObserver(
      [images, on_error = std::move(options.on_resolve_error)](absl::string_view,
                                                                absl::string_view digest) {
        absl::Status resolved = images->OnBlobArrived(digest);
        if (!resolved.ok() && on_error) on_error(digest, resolved);
      });
  s->leases_ = std::make_unique<RocksDbLeaseStore>(s->db_.get(), options.clock);
  return s;
}

LocalStores::~LocalStores() {
  // No commit may call into an image store that is going away.
  if (content_ != nullptr) {
    content_->SetCommitObserver(nullptr);
    content_->SetRemovalGuard(nullptr);
  }
}

}  // namespace imaged::store
