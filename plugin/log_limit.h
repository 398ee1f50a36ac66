// Protobuf writes a log line (to stderr, so to the journal) for every string
// field that is not UTF-8 in a request it parses, and gRPC then refuses the
// request: any client could fill a node's journal at thousands of lines a
// second. imaged routes protobuf's log through a limiter instead.
#ifndef IMAGED_PLUGIN_LOG_LIMIT_H_
#define IMAGED_PLUGIN_LOG_LIMIT_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace imaged::plugin {

// At most `lines` lines per `window`; the rest are counted.
class LogLimiter {
 public:
  LogLimiter(int lines, absl::Duration window) : lines_(lines), window_(window) {}

  // Whether a line at `now` may be written. When it may and lines were
  // dropped since the last one written, *dropped is their number (else 0).
  bool Admit(absl::Time now, int64_t* dropped) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const int lines_;
  const absl::Duration window_;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Sends protobuf's log lines to stderr through a LogLimiter of 10 lines a
// minute, each cut to 300 bytes, with a count of the ones dropped. Call once,
// before serving.
void LimitProtobufLog();

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_LOG_LIMIT_H_
