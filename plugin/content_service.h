// containerd.services.content.v1.Content over a store::ContentStore.
// Each handler reads the namespace, checks the request's shape, makes one
// store call, converts and maps the status.
//
// Read is served on the async calls' thread (async_calls.h). containerd's
// content proxy sends one Read per 32 KiB its unpacker reads, thousands
// per layer, so the call's own cost counts: a window of at most
// kInlineRead bytes is read there and sent with the status in one batch,
// with no hand-off to a worker thread. A larger window is read a chunk at
// a time by the service's reader threads, each chunk sent before the next
// is read, so a slow disk or a slow client holds no gRPC thread; at most
// store::kMaxConcurrentLargeReads of them stream at once.
#ifndef IMAGED_PLUGIN_CONTENT_SERVICE_H_
#define IMAGED_PLUGIN_CONTENT_SERVICE_H_

#include <cstdint>

#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "plugin/async_calls.h"
#include "plugin/call_slots.h"
#include "plugin/convert.h"
#include "plugin/event_exchange.h"
#include "store/content_store.h"
#include "store/limits.h"

namespace imaged::plugin {

class ContentService final
    : public contentpb::Content::WithAsyncMethod_Read<contentpb::Content::Service> {
 public:
  // Largest data field of one Read response.
  static constexpr size_t kReadChunk = 1 << 20;
  // Largest Read window answered on the async calls' thread.
  static constexpr int64_t kInlineRead = 64 << 10;
  // Threads that read larger windows.
  static constexpr int kReaderThreads = 2;
  // Infos per List response message.
  static constexpr size_t kListBatch = 100;

  // `events` (may be null) gets /content/create after a commit that made a
  // new blob and /content/delete after a Delete, as containerd publishes,
  // for calls in a namespace. With `proxy_only` (Config::content_proxy)
  // every call is the content-proxy namespace's ("") and carries no lease,
  // whatever its headers say.
  explicit ContentService(store::ContentStore* store, EventExchange* events = nullptr,
                          bool proxy_only = false)
      : store_(store), events_(events), proxy_only_(proxy_only) {}

  grpc::Status Info(grpc::ServerContext* ctx, const contentpb::InfoRequest* req,
                    contentpb::InfoResponse* resp) override;
  grpc::Status Update(grpc::ServerContext* ctx, const contentpb::UpdateRequest* req,
                      contentpb::UpdateResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const contentpb::ListContentRequest* req,
                    grpc::ServerWriter<contentpb::ListContentResponse>* writer) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const contentpb::DeleteContentRequest* req,
                      google::protobuf::Empty* resp) override;
  grpc::Status Status(grpc::ServerContext* ctx, const contentpb::StatusRequest* req,
                      contentpb::StatusResponse* resp) override;
  grpc::Status ListStatuses(grpc::ServerContext* ctx, const contentpb::ListStatusesRequest* req,
                            contentpb::ListStatusesResponse* resp) override;
  grpc::Status Write(grpc::ServerContext* ctx,
                     grpc::ServerReaderWriter<contentpb::WriteContentResponse,
                                              contentpb::WriteContentRequest>* stream) override;
  grpc::Status Abort(grpc::ServerContext* ctx, const contentpb::AbortRequest* req,
                     google::protobuf::Empty* resp) override;

  // Registers Read with `calls`, before the server is built. Read is not
  // served without it.
  void ServeAsync(AsyncCalls* calls);

 private:
  friend class ReadCall;

  // Events belong to a namespace: a call without one (the Content API allows
  // it) publishes nothing.
  bool Publishing(absl::string_view ns) const { return events_ != nullptr && !ns.empty(); }
  // The call's namespace: its header's (ContentNamespace), or "" for a proxy.
  absl::StatusOr<std::string> Namespace(const grpc::ServerContext& ctx) const;

  store::ContentStore* const store_;
  EventExchange* const events_;
  const bool proxy_only_;
  AsyncCalls* calls_ = nullptr;
  ArmFn arm_read_;  // requests one more Read call
  CallSlots large_reads_{store::kMaxConcurrentLargeReads};
  WorkQueue readers_{kReaderThreads};
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_CONTENT_SERVICE_H_
