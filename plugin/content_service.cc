#include "plugin/content_service.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"
#include "store/digest.h"

namespace imaged::plugin {
namespace {

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& in) {
  return {in.begin(), in.end()};
}

grpc::Status InvalidArgument(absl::string_view msg) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(msg));
}

}  // namespace

absl::StatusOr<std::string> ContentService::Namespace(const grpc::ServerContext& ctx) const {
  if (proxy_only_) return std::string();
  return ContentNamespace(ctx);
}

grpc::Status ContentService::Info(grpc::ServerContext* ctx, const contentpb::InfoRequest* req,
                                  contentpb::InfoResponse* resp) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  absl::StatusOr<store::ContentInfo> info = store_->Info(*ns, req->digest());
  if (!info.ok()) return ToGrpcStatus(info.status());
  ToProto(*info, resp->mutable_info());
  return grpc::Status::OK;
}

grpc::Status ContentService::Update(grpc::ServerContext* ctx, const contentpb::UpdateRequest* req,
                                    contentpb::UpdateResponse* resp) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  absl::StatusOr<store::ContentInfo> info =
      store_->Update(*ns, FromProto(req->info()), Strings(req->update_mask().paths()));
  if (!info.ok()) return ToGrpcStatus(info.status());
  ToProto(*info, resp->mutable_info());
  return grpc::Status::OK;
}

grpc::Status ContentService::List(grpc::ServerContext* ctx,
                                  const contentpb::ListContentRequest* req,
                                  grpc::ServerWriter<contentpb::ListContentResponse>* writer) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  contentpb::ListContentResponse batch;
  absl::Status s =
      store_->Walk(*ns, Strings(req->filters()), [&](const store::ContentInfo& info) {
        ToProto(info, batch.add_info());
        if (static_cast<size_t>(batch.info_size()) < kListBatch) return absl::OkStatus();
        if (!writer->Write(batch)) return absl::CancelledError("client went away");
        batch.Clear();
        return absl::OkStatus();
      });
  if (!s.ok()) return ToGrpcStatus(s);
  if (batch.info_size() > 0 && !writer->Write(batch)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  return grpc::Status::OK;
}

grpc::Status ContentService::Delete(grpc::ServerContext* ctx,
                                    const contentpb::DeleteContentRequest* req,
                                    google::protobuf::Empty*) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  if (absl::Status s = store_->Delete(*ns, req->digest()); !s.ok()) return ToGrpcStatus(s);
  if (Publishing(*ns)) events_->PublishContentDeleted(*ns, req->digest());
  return grpc::Status::OK;
}

// One Read call, from its arrival to its status's completion. Only one of
// its operations is in flight at a time, and each step starts the next: the
// arrival and every sent chunk come back on the async calls' thread; a
// chunk is read there (a window of at most kInlineRead bytes) or on a
// reader thread, then sent, the last one with the status. Deletes itself
// once the status has gone out.
class ReadCall final {
 public:
  ReadCall(ContentService* service, grpc::ServerCompletionQueue* cq)
      : live_(service->calls_), service_(service), writer_(&ctx_) {
    service_->RequestRead(&ctx_, &req_, &writer_, cq, cq, &started_tag_);
  }

 private:
  void OnStarted(bool ok) {
    if (!ok) {  // the server is shutting down: no call came
      delete this;
      return;
    }
    service_->calls_->Arm(service_->arm_read_);
    if (grpc::Status s = Open(); !s.ok()) {
      Finish(s);
    } else if (end_ - offset_ <= ContentService::kInlineRead) {
      SendNext();
    } else if (slot_.emplace(service_->large_reads_.TryAcquire()); !*slot_) {
      Finish(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
          "too many reads of over ", ContentService::kInlineRead, " bytes under way (",
          service_->large_reads_.max(), "); try again"))));
    } else {
      service_->readers_.Post([this] { SendNext(); });
    }
  }

  // Opens the blob and sets the window, as containerd's Read does: a
  // negative offset reads from 0; a size of 0 or less, or one reaching past
  // the end, reads to the end.
  grpc::Status Open() {
    absl::StatusOr<std::string> ns = service_->Namespace(ctx_);
    if (!ns.ok()) return ToGrpcStatus(ns.status());
    absl::StatusOr<std::unique_ptr<store::ContentReader>> reader =
        service_->store_->Reader(*ns, req_.digest());
    if (!reader.ok()) return ToGrpcStatus(reader.status());
    reader_ = *std::move(reader);
    blob_size_ = reader_->Size();
    offset_ = std::max<int64_t>(req_.offset(), 0);
    if (offset_ > blob_size_) {
      return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                          absl::StrCat("read at ", offset_, " past the end of ", req_.digest(),
                                       " (", blob_size_, " bytes)"));
    }
    // Compared without forming offset + size, which overflows for sizes
    // near INT64_MAX.
    const int64_t size = req_.size();
    end_ = size <= 0 || size > blob_size_ - offset_ ? blob_size_ : offset_ + size;
    return grpc::Status::OK;
  }

  // Reads the next chunk and sends it; the last one goes with the status.
  void SendNext() {
    if (offset_ == end_) {  // an empty window: the status alone
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n =
        static_cast<size_t>(std::min<int64_t>(ContentService::kReadChunk, end_ - offset_));
    resp_.set_offset(offset_);
    if (absl::Status s = reader_->ReadAt(offset_, n, resp_.mutable_data()); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    if (resp_.data().empty()) {
      // The blob file is shorter than its record says: never pass that off
      // as the whole blob.
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("content ", req_.digest(), ": blob file ends at ", offset_,
                                       " of ", blob_size_, " bytes")));
      return;
    }
    offset_ += static_cast<int64_t>(resp_.data().size());
    if (offset_ == end_) {
      reader_.reset();
      writer_.WriteAndFinish(resp_, grpc::WriteOptions(), grpc::Status::OK, &finished_tag_);
    } else {
      writer_.Write(resp_, &written_tag_);
    }
  }

  void OnWritten(bool ok) {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    } else {
      service_->readers_.Post([this] { SendNext(); });
    }
  }

  void Finish(const grpc::Status& status) {
    reader_.reset();
    writer_.Finish(status, &finished_tag_);
  }

  void OnFinished(bool) { delete this; }

  AsyncCalls::Live live_;
  ContentService* const service_;
  grpc::ServerContext ctx_;
  contentpb::ReadContentRequest req_;
  grpc::ServerAsyncWriter<contentpb::ReadContentResponse> writer_;
  std::unique_ptr<store::ContentReader> reader_;
  int64_t blob_size_ = 0;
  int64_t offset_ = 0;  // of the next chunk
  int64_t end_ = 0;     // of the window
  contentpb::ReadContentResponse resp_;
  std::optional<CallSlots::Slot> slot_;  // a large window's, held to the end
  MemberTag<ReadCall> started_tag_{this, &ReadCall::OnStarted};
  MemberTag<ReadCall> written_tag_{this, &ReadCall::OnWritten};
  MemberTag<ReadCall> finished_tag_{this, &ReadCall::OnFinished};
};

void ContentService::ServeAsync(AsyncCalls* calls) {
  calls_ = calls;
  arm_read_ = [this](grpc::ServerCompletionQueue* cq) { new ReadCall(this, cq); };
  calls->AddMethod(arm_read_);
}

grpc::Status ContentService::Status(grpc::ServerContext* ctx, const contentpb::StatusRequest* req,
                                    contentpb::StatusResponse* resp) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  absl::StatusOr<store::IngestStatus> st = store_->Status(*ns, req->ref());
  if (!st.ok()) return ToGrpcStatus(st.status());
  ToProto(*st, resp->mutable_status());
  return grpc::Status::OK;
}

grpc::Status ContentService::ListStatuses(grpc::ServerContext* ctx,
                                          const contentpb::ListStatusesRequest* req,
                                          contentpb::ListStatusesResponse* resp) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  absl::StatusOr<std::vector<store::IngestStatus>> list =
      store_->ListStatuses(*ns, Strings(req->filters()));
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (const store::IngestStatus& st : *list) ToProto(st, resp->add_statuses());
  return grpc::Status::OK;
}

grpc::Status ContentService::Abort(grpc::ServerContext* ctx, const contentpb::AbortRequest* req,
                                   google::protobuf::Empty*) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  return ToGrpcStatus(store_->Abort(*ns, req->ref()));
}

// The write protocol, as containerd's clients speak it: the first message
// names the ref (and optionally total and expected digest) and opens the
// ingest; STAT reports it, WRITE appends at the current offset (offset 0
// restarts, any other offset must be the current one), COMMIT makes it a blob.
// Every message gets one response; the stream ends after COMMIT or when the
// client closes it.
grpc::Status ContentService::Write(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<contentpb::WriteContentResponse, contentpb::WriteContentRequest>*
        stream) {
  absl::StatusOr<std::string> ns = Namespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  contentpb::WriteContentRequest req;
  if (!stream->Read(&req) || req.ref().empty()) {
    return InvalidArgument("first write message must have a reference");
  }
  int64_t total = req.total();
  std::string expected = req.expected();
  // containerd's content proxy forwards the lease of the call it serves
  // (its CRI plugin's pull runs under one): a lease of containerd's own
  // metadata, which keeps its references itself, not one of imaged's.
  const std::string lease = ns->empty() ? std::string() : LeaseOf(*ctx);
  absl::StatusOr<std::unique_ptr<store::ContentWriter>> opened =
      store_->Writer(*ns, req.ref(), total, expected, lease);
  if (!opened.ok()) return ToGrpcStatus(opened.status());
  store::ContentWriter& writer = **opened;

  contentpb::WriteContentResponse resp;
  while (true) {
    resp.Clear();
    resp.set_action(req.action());
    absl::StatusOr<store::IngestStatus> st = writer.Status();
    if (!st.ok()) return ToGrpcStatus(st.status());
    resp.set_offset(st->offset);
    if (!req.expected().empty()) expected = req.expected();
    if (req.total() > 0) total = req.total();
    if (req.offset() < 0) return InvalidArgument(absl::StrCat("negative write offset ", req.offset()));

    switch (req.action()) {
      case contentpb::STAT:
        resp.set_digest(writer.Digest());
        resp.set_total(total);
        ToProto(st->started_at, resp.mutable_started_at());
        ToProto(st->updated_at, resp.mutable_updated_at());
        break;
      case contentpb::WRITE:
      case contentpb::COMMIT: {
        if (req.offset() > 0 && req.offset() != st->offset) {
          return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                              absl::StrCat("write at ", req.offset(), " must occur at current offset ",
                                           st->offset));
        }
        if (req.offset() == 0 && st->offset > 0) {
          if (absl::Status s = writer.Truncate(0); !s.ok()) return ToGrpcStatus(s);
          resp.set_offset(0);
        }
        if (!req.data().empty()) {
          if (absl::Status s = writer.Write(req.data()); !s.ok()) return ToGrpcStatus(s);
          resp.set_offset(resp.offset() + static_cast<int64_t>(req.data().size()));
        }
        if (req.action() == contentpb::COMMIT) {
          store::Labels labels(req.labels().begin(), req.labels().end());
          if (absl::Status s = writer.Commit(total, expected, labels); !s.ok()) {
            return ToGrpcStatus(s);
          }
          if (Publishing(*ns)) events_->PublishContentCreated(*ns, writer.Digest(), resp.offset());
        }
        resp.set_digest(writer.Digest());
        break;
      }
      default:
        return InvalidArgument(absl::StrCat("unknown write action ", req.action()));
    }
    if (!stream->Write(resp)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    if (req.action() == contentpb::COMMIT) return grpc::Status::OK;
    if (!stream->Read(&req)) return grpc::Status::OK;
  }
}

}  // namespace imaged::plugin
