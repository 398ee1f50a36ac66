// Errors of the storage layer: everything below plugin/ reports absl::Status,
// and the two ways the outside world fails us (errno and RocksDB) are turned
// into one here, so that the gRPC mapping in plugin/ sees only absl codes.
#ifndef IMAGED_STORE_ERRORS_H_
#define IMAGED_STORE_ERRORS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace imaged::store {

// Maps an errno value to a status whose message is "<what>: <strerror>".
// ENOENT -> NotFound, EEXIST -> AlreadyExists, ENOSPC/EDQUOT -> ResourceExhausted,
// EACCES/EPERM/EROFS -> PermissionDenied, EINVAL -> InvalidArgument, else Internal.
absl::Status ErrnoError(int err, absl::string_view what);

// Maps a failed RocksDB status to a status whose message is "<what>: <rocksdb message>".
// Ok stays Ok. NotFound -> NotFound, Busy/TryAgain/TimedOut -> Unavailable,
// Corruption -> DataLoss, IOError with no space -> ResourceExhausted, else Internal.
absl::Status RocksError(const rocksdb::Status& s, absl::string_view what);

}  // namespace imaged::store

#endif  // IMAGED_STORE_ERRORS_H_
