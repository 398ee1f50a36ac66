#include "store/content_store.h"

namespace imaged::store {

absl::Status CommitWhole(ContentStore& store, absl::string_view ns, absl::string_view ref,
                         std::unique_ptr<ContentWriter> writer, absl::string_view data,
                         absl::string_view expected) {
  absl::Status s = writer->Truncate(0);
  if (s.ok()) s = writer->Write(data);
  if (s.ok()) s = writer->Commit(static_cast<int64_t>(data.size()), expected, {});
  writer.reset();  // the ingest's lock, before it is aborted
  if (!s.ok() && !absl::IsAlreadyExists(s)) store.Abort(ns, ref).IgnoreError();
  return s;
}

}  // namespace imaged::store
