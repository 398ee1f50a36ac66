// containerd.services.transfer.v1.Transfer (containerd 2.x), what ctr 2.x's
// `images pull`, `images import` and `images export` call unless given
// --local. A TransferRequest names a source and a destination as Anys of
// containerd.types.transfer messages; their streams (archive bytes,
// progress, registry credentials) are Streaming calls the client opened
// first (streaming_service.h). Served pairs:
//
//   OCIRegistry       -> ImageStore         pull, with cri::Puller
//   ImageImportStream -> ImageStore         import, with cri::Import
//   ImageStore        -> ImageExportStream  export, with cri::Export
//
// anything else is Unimplemented naming both type URLs, as containerd
// answers a pair no transferrer takes (push, tag, echo are not served).
//
// The stream protocol is containerd's: the side that receives bytes grants
// a window with WindowUpdate{update} and the sender sends Data{data} within
// it; the sender's end of stream is its close. Progress goes out as
// containerd.types.transfer.Progress, in containerd's words: a status line
// ("Resolving from ...", "Importing", "Completed export", with no name),
// per blob "already exists" / "downloading" / "complete" named by its
// ingest ref ("layer-sha256:..."), and "saved" per record written.
//
// What imaged leaves out and why (docs/images.md, "containerd 2.x
// transfers"): nothing is unpacked (imaged has no snapshotter; the unpack
// configurations are accepted and skipped, as containerd skips one it has no
// snapshotter for); a pull fetches the manifest for the first platform
// given and not other platforms' metadata (all_metadata); credentials are
// asked for once per pull, for the reference's registry; request headers
// and HTTP debugging are not applied (a logs stream is closed at once).
#ifndef IMAGED_PLUGIN_TRANSFER_SERVICE_H_
#define IMAGED_PLUGIN_TRANSFER_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>

#include "api/containerd/services/transfer/v1/transfer.grpc.pb.h"
#include "cri/registry/puller.h"
#include "plugin/call_slots.h"
#include "plugin/event_exchange.h"
#include "plugin/streaming_service.h"
#include "store/content_store.h"
#include "store/image_store.h"
#include "store/lease_store.h"
#include "store/platform.h"

namespace imaged::plugin {

namespace transferpb = ::containerd::services::transfer::v1;

class TransferService final : public transferpb::Transfer::Service {
 public:
  struct Stores {
    store::ContentStore* content = nullptr;
    store::ImageStore* images = nullptr;
    store::LeaseStore* leases = nullptr;  // imports run under a temporary lease
    cri::Puller* puller = nullptr;        // null: pulls are FailedPrecondition
  };
  // Nothing is owned; all must outlive the service. `platform` is what
  // imports and exports use when the request names none.
  // `slots` bounds the transfers running at once (shared with
  // ArchivesService); none: a bound of store::kMaxConcurrentTransfers of
  // its own.
  TransferService(Stores stores, StreamManager* streams, EventExchange* events,
                  store::Platform platform, CallSlots* slots = nullptr)
      : stores_(stores),
        streams_(streams),
        events_(events),
        platform_(std::move(platform)),
        slots_(slots != nullptr ? slots : &own_slots_) {}

  grpc::Status Transfer(grpc::ServerContext* ctx, const transferpb::TransferRequest* req,
                        google::protobuf::Empty* resp) override;

  class Progress;
  struct Call;

 private:
  absl::Status Pull(Call& call, const google::protobuf::Any& source,
                    const google::protobuf::Any& destination);
  absl::Status Import(Call& call, const google::protobuf::Any& source,
                      const google::protobuf::Any& destination);
  absl::Status Export(Call& call, const google::protobuf::Any& source,
                      const google::protobuf::Any& destination);

  const Stores stores_;
  StreamManager* const streams_;
  EventExchange* const events_;
  const store::Platform platform_;
  CallSlots own_slots_{store::kMaxConcurrentTransfers};
  CallSlots* const slots_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_TRANSFER_SERVICE_H_
