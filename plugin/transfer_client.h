// The client side of containerd 2.x's Transfer and Streaming services, as
// ctr 2.x drives them (without --local), written from the wire protocol:
// each stream is a Streaming call opened with StreamInit{id} and acked with
// Empty before the Transfer call names it; archive bytes flow in Data
// messages within the receiver's WindowUpdate grants; progress arrives as
// containerd.types.transfer.Progress until the server closes the stream.
// What tools/testing/transfer_client and the Transfer tests use.
#ifndef IMAGED_PLUGIN_TRANSFER_CLIENT_H_
#define IMAGED_PLUGIN_TRANSFER_CLIENT_H_

#include <grpcpp/channel.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imaged::plugin {

struct TransferProgress {
  std::string event;
  std::string name;
  std::vector<std::string> parents;
  int64_t progress = 0;
  int64_t total = 0;
  std::string digest;  // of the descriptor, when one came
};

struct TransferPlatform {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
};

// Settings every transfer shares.
struct TransferCall {
  std::string ns = "default";
  // Called on the progress reader's thread for each Progress (none: no
  // progress stream is opened, as ctr without a progress handler).
  std::function<void(const TransferProgress&)> progress;
  // The containerd-lease header of every call; ctr 2.x's client takes a
  // lease for each transfer (TransferClient::WithLease does the same).
  std::string lease;
};

struct TransferPullOptions {
  std::string name;  // the record name (ctr: the reference as given)
  std::map<std::string, std::string> labels;
  std::vector<TransferPlatform> platforms{TransferPlatform{}};
  // ctr's credentials: an auth stream is always opened (as ctr's
  // NewStaticCredentials); empty user answers REFRESH with no secret.
  std::string user;
  std::string secret;
  bool plain_http = false;
  std::string hosts_dir;
};

struct TransferImportOptions {
  // ctr --base-name ("" as ctr: "import-<date>" that may be overwritten).
  std::string base_name;
  bool digests = false;           // ctr --digests
  bool skip_digest_for_named = false;
  std::vector<TransferPlatform> platforms{TransferPlatform{}};  // empty: all
  std::map<std::string, std::string> labels;
  std::string index_name;  // ctr --index-name
};

struct TransferExportOptions {
  std::vector<TransferPlatform> platforms;
  bool all_platforms = false;
  bool skip_manifest_json = false;
};

class TransferClient {
 public:
  explicit TransferClient(std::shared_ptr<grpc::Channel> channel) : channel_(std::move(channel)) {}

  absl::Status Pull(const TransferCall& call, const std::string& reference,
                    const TransferPullOptions& options);
  // Streams `read`'s bytes (0 at the end) as the archive.
  absl::Status Import(const TransferCall& call,
                      const std::function<absl::StatusOr<size_t>(char*, size_t)>& read,
                      const TransferImportOptions& options);
  // Import of an archive held in memory.
  absl::Status ImportBytes(const TransferCall& call, absl::string_view archive,
                           const TransferImportOptions& options);
  // The archive of `names` goes to `write`.
  absl::Status Export(const TransferCall& call, const std::vector<std::string>& names,
                      const std::function<absl::Status(absl::string_view)>& write,
                      const TransferExportOptions& options);

  // Runs `fn` with `call` under a new lease (24 h expiry) that is deleted
  // afterwards, as ctr 2.x's client.Transfer does.
  absl::Status WithLease(TransferCall call, const std::function<absl::Status(const TransferCall&)>& fn);

  // Raw Transfer with the given Anys (type URL, bytes), and streams opened
  // by id first; for tests of what the server refuses.
  absl::Status RawTransfer(const TransferCall& call, const std::string& source_type,
                           const std::string& source, const std::string& destination_type,
                           const std::string& destination);

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_TRANSFER_CLIENT_H_
