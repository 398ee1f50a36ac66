// imagectl pull: CRI PullImage (what kubelet calls), with progress. The pull
// itself is one unary RPC; progress comes from the ingests the server opens
// for each blob it downloads (Content API ListStatuses, the way `ctr pull`
// watches a pull), polled while the RPC runs.
//
//   imagectl pull IMAGE [-n NS] [--creds USER[:PASS]] [--auth B64]
//                       [--identity-token T] [--registry-token T]
//
// On a terminal: one bar per blob and a total, redrawn in place. Otherwise:
// a line when a blob starts and when it is done, and the total every few
// seconds. Then crictl's "Image is up to date for <image ID>".
#ifndef IMAGED_TOOLS_IMAGECTL_PULL_COMMAND_H_
#define IMAGED_TOOLS_IMAGECTL_PULL_COMMAND_H_

#include <grpcpp/channel.h>

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "store/content_store.h"

namespace imaged::imagectl {

struct PullFlags {
  std::string image;
  std::string ns = "k8s.io";  // where the server's CRI ingests live
  std::string creds;          // "user:password" (crictl's --creds)
  std::string auth;           // base64 "user:password" (crictl's --auth)
  std::string identity_token;
  std::string registry_token;
  bool terminal = false;      // draw bars in place
  absl::Duration poll = absl::Milliseconds(200);
};

absl::Status Pull(const std::shared_ptr<grpc::Channel>& ch, const PullFlags& flags,
                  std::ostream& out);

// What the progress display knows: every blob seen downloading, by ingest ref.
class PullProgress {
 public:
  // Takes one poll's active ingests. Refs seen before and gone now are done.
  void Update(const std::vector<store::IngestStatus>& active);
  // Marks everything done (the pull returned).
  void Finish();
  // Bars redrawn over the previous drawing (ANSI cursor movement).
  void DrawTerminal(std::ostream& out);
  // Plain lines: starts and completions since the last call; the total at
  // most every `every`.
  void DrawPlain(std::ostream& out, absl::Duration every);

  int64_t done_bytes() const;
  int64_t total_bytes() const;

 private:
  struct Blob {
    int64_t offset = 0;
    int64_t total = 0;
    bool done = false;
    bool announced = false;
    bool announced_done = false;
  };
  std::map<std::string, Blob> blobs_;  // by ref: stable order
  int lines_drawn_ = 0;
  absl::Time last_total_ = absl::InfinitePast();
};

}  // namespace imaged::imagectl

#endif  // IMAGED_TOOLS_IMAGECTL_PULL_COMMAND_H_
