// Mirror mode without containerd's CRI: ImageFsInfo describes containerd's
// disk, not imaged's (which holds only copied documents). kubelet's image
// garbage collection and imagefs eviction act on the filesystem of
// image_filesystems[0].fs_id.mountpoint, and containerd's CRI names its
// snapshotter's directory there; used bytes and inodes are those of the
// snapshotter's directory and the content store together.
//
// Walking a node's snapshots takes seconds, so it happens on a thread of its
// own: once at start, every `interval`, and soon after Refresh() (a pull or a
// removal); ImageFsInfo answers from the last measurement.
#ifndef IMAGED_CRI_MIRROR_CONTAINERD_DISK_H_
#define IMAGED_CRI_MIRROR_CONTAINERD_DISK_H_

#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cri/image_service.h"

namespace imaged::cri {

class ContainerdDisk {
 public:
  struct Options {
    std::string root = "/var/lib/containerd";  // containerd's `root`
    std::string snapshotter = "overlayfs";     // its CRI's snapshotter
    absl::Duration interval = absl::Seconds(30);
  };

  // Starts the first measurement.
  explicit ContainerdDisk(Options options);
  ~ContainerdDisk();

  // <root>/io.containerd.snapshotter.v1.<snapshotter>, as containerd's CRI reports it.
  const std::string& mountpoint() const { return mountpoint_; }
  // The last measurement; before the first, waits for it up to `wait`, then
  // Unavailable.
  absl::StatusOr<FsUsage> Last(absl::Duration wait);
  // Measure again now (returns at once).
  void Refresh();
  void Stop();

 private:
  void Loop();
  FsUsage Measure() const;

  const Options options_;
  const std::string mountpoint_;
  const std::string content_dir_;
  absl::Mutex mu_;
  std::optional<FsUsage> last_ ABSL_GUARDED_BY(mu_);
  bool refresh_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_MIRROR_CONTAINERD_DISK_H_
