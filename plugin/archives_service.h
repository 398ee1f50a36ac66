// imaged.v1.Archives: imaged's own bulk import (api/imaged/v1/archives.proto).
// The archive is streamed in and imported on the server by cri::Import over
// the server's own stores, which commit small blobs in batches
// (store::BlobBatchCommitter) and GC labels and records a thousand to a
// write (store::ImageCommitter): the path `imagectl import` takes.
#ifndef IMAGED_PLUGIN_ARCHIVES_SERVICE_H_
#define IMAGED_PLUGIN_ARCHIVES_SERVICE_H_

#include "absl/time/time.h"
#include "api/imaged/v1/archives.grpc.pb.h"
#include "plugin/call_slots.h"
#include "plugin/event_exchange.h"
#include "store/content_store.h"
#include "store/image_store.h"
#include "store/lease_store.h"
#include "store/platform.h"

namespace imaged::plugin {

class ArchivesService final : public ::imaged::v1::Archives::Service {
 public:
  // A stream that sends nothing for this long is cancelled.
  static constexpr absl::Duration kQuiet = absl::Seconds(60);
  // The largest data chunk of one message.
  static constexpr size_t kMaxChunk = 4 << 20;

  // Nothing is owned. `platform`: what an import that names none requires.
  // `slots` bounds the imports running at once, shared with Transfer.
  ArchivesService(store::ContentStore* content, store::ImageStore* images,
                  store::LeaseStore* leases, EventExchange* events, store::Platform platform,
                  CallSlots* slots)
      : content_(content),
        images_(images),
        leases_(leases),
        events_(events),
        platform_(std::move(platform)),
        slots_(slots) {}

  grpc::Status Import(grpc::ServerContext* ctx,
                      grpc::ServerReader<::imaged::v1::ImportRequest>* reader,
                      ::imaged::v1::ImportResponse* resp) override;

 private:
  store::ContentStore* const content_;
  store::ImageStore* const images_;
  store::LeaseStore* const leases_;
  EventExchange* const events_;
  const store::Platform platform_;
  CallSlots* const slots_;
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_ARCHIVES_SERVICE_H_
