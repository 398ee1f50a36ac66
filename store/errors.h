// Errors of the storage layer: everything below plugin/ reports absl::Status,
// and the ways the outside world fails us are turned into it where they
// arise: errno here, RocksDB's status in metadata_db.h (the one place that
// speaks to RocksDB), so that the gRPC mapping in plugin/ sees only absl codes
// and nothing that needs errno mapping (files, hosts.toml) sees RocksDB.
#ifndef IMAGED_STORE_ERRORS_H_
#define IMAGED_STORE_ERRORS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace imaged::store {

// Maps an errno value to a status whose message is "<what>: <strerror>".
// ENOENT -> NotFound, EEXIST -> AlreadyExists, ENOSPC/EDQUOT -> ResourceExhausted,
// EACCES/EPERM/EROFS -> PermissionDenied, EINVAL/EISDIR/ENOTDIR (a path that
// names the wrong kind of file) -> InvalidArgument, else Internal.
absl::Status ErrnoError(int err, absl::string_view what);

}  // namespace imaged::store

#endif  // IMAGED_STORE_ERRORS_H_
