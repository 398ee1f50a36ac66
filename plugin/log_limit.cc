#include "plugin/log_limit.h"

#include <cstdio>
#include <string>

#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"

namespace imaged::plugin {

bool LogLimiter::Admit(absl::Time now, int64_t* dropped) {
  absl::MutexLock lock(&mu_);
  *dropped = 0;
  if (now - window_start_ >= window_) {
    window_start_ = now;
    written_ = 0;
  }
  if (written_ >= lines_) {
    ++dropped_;
    return false;
  }
  ++written_;
  *dropped = dropped_;
  dropped_ = 0;
  return true;
}

namespace {

constexpr size_t kMaxLine = 300;

LogLimiter& ProtobufLimiter() {
  static LogLimiter* limiter = new LogLimiter(10, absl::Minutes(1));
  return *limiter;
}

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  int64_t dropped = 0;
  if (level != google::protobuf::LOGLEVEL_FATAL && !ProtobufLimiter().Admit(absl::Now(), &dropped)) {
    return;
  }
  if (dropped > 0) {
    std::fprintf(stderr, "imaged: protobuf: %lld log lines dropped (at most 10 a minute)\n",
                 static_cast<long long>(dropped));
  }
  std::fprintf(stderr, "imaged: protobuf %s:%d: %s%s\n", file, line,
               message.substr(0, kMaxLine).c_str(), message.size() > kMaxLine ? "..." : "");
}

}  // namespace

void LimitProtobufLog() { google::protobuf::SetLogHandler(&ProtobufLog); }

}  // namespace imaged::plugin
