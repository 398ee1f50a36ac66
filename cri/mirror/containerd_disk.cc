#include "cri/mirror/containerd_disk.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "store/files.h"

namespace imaged::cri {

ContainerdDisk::ContainerdDisk(Options options)
    : options_(std::move(options)),
      mountpoint_(absl::StrCat(options_.root, "/io.containerd.snapshotter.v1.", options_.snapshotter)),
      content_dir_(absl::StrCat(options_.root, "/io.containerd.content.v1.content")) {
  thread_ = std::thread([this] { Loop(); });
}

ContainerdDisk::~ContainerdDisk() { Stop(); }

void ContainerdDisk::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ContainerdDisk::Refresh() {
  absl::MutexLock lock(&mu_);
  refresh_ = true;
}

FsUsage ContainerdDisk::Measure() const {
  FsUsage out;
  out.mountpoint = mountpoint_;
  // A missing directory (no snapshot yet; content kept by a proxy plugin)
  // counts as empty.
  for (const std::string& dir : {mountpoint_, content_dir_}) {
    absl::StatusOr<store::TreeUsage> u = store::MeasureTree(dir);
    if (!u.ok()) {
      if (!absl::IsNotFound(u.status())) {
        std::fprintf(stderr, "imaged: measuring %s: %s\n", dir.c_str(), u.status().ToString().c_str());
      }
      continue;
    }
    out.used_bytes += u->bytes;
    out.inodes_used += u->inodes;
  }
  out.measured_at = absl::Now();
  return out;
}

void ContainerdDisk::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    refresh_ = false;
    mu_.Unlock();
    FsUsage usage = Measure();
    mu_.Lock();
    last_ = std::move(usage);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || refresh_; };
    mu_.AwaitWithTimeout(absl::Condition(&woken), options_.interval);
  }
}

absl::StatusOr<FsUsage> ContainerdDisk::Last(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto measured = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return last_.has_value(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&measured), wait)) {
    return absl::UnavailableError(
        absl::StrCat("containerd's disk use under ", options_.root, " is still being measured"));
  }
  return *last_;
}

}  // namespace imaged::cri
