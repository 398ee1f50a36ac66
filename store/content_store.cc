#include "store/content_store.h"

#include "absl/strings/str_cat.h"

namespace imaged::store {

absl::StatusOr<std::string> ReadWholeBlob(ContentStore& store, absl::string_view ns,
                                          absl::string_view digest, int64_t max_bytes) {
  absl::StatusOr<std::unique_ptr<ContentReader>> r = store.Reader(ns, digest);
  if (!r.ok()) return r.status();
  const int64_t size = (*r)->Size();
  if (size > max_bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("blob ", digest, " is ", size, " bytes, over the ", max_bytes, "-byte limit"));
  }
  std::string out;
  if (absl::Status s = (*r)->ReadAt(0, static_cast<size_t>(size), &out); !s.ok()) return s;
  return out;
}

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
