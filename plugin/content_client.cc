#include "plugin/content_client.h"

#include <grpcpp/client_context.h>

#include "absl/strings/str_cat.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

class RemoteReader final : public store::ContentReader {
 public:
  RemoteReader(contentpb::Content::Stub* stub, UpstreamCalls* calls, std::string ns,
               std::string digest, int64_t size)
      : stub_(stub), calls_(calls), ns_(std::move(ns)), digest_(std::move(digest)), size_(size) {}

  int64_t Size() const override { return size_; }

  absl::Status ReadAt(int64_t offset, size_t n, std::string* out) override {
    out->clear();
    // The server would read a negative offset from 0 (containerd's rule);
    // the store interface calls it a mistake.
    if (offset < 0) return absl::InvalidArgumentError(absl::StrCat("negative read offset ", offset));
    if (n == 0) return absl::OkStatus();
    contentpb::ReadContentRequest req;
    req.set_digest(digest_);
    req.set_offset(offset);
    req.set_size(static_cast<int64_t>(n));
    auto call = calls_->Start("Content/Read", ns_, UpstreamCalls::Kind::kStream);
    auto reader = stub_->Read(call->get(), req);
    contentpb::ReadContentResponse resp;
    while (reader->Read(&resp)) {
      call->Progress();
      out->append(resp.data());
    }
    return call->Finish(reader->Finish());
  }

 private:
  contentpb::Content::Stub* stub_;
  UpstreamCalls* calls_;
  std::string ns_;
  std::string digest_;
  int64_t size_;
};

// One Write stream; every call is a request and its response.
class RemoteWriter final : public store::ContentWriter {
 public:
  using Stream = grpc::ClientReaderWriter<contentpb::WriteContentRequest,
                                          contentpb::WriteContentResponse>;

  RemoteWriter(std::unique_ptr<UpstreamCalls::Call> call, std::unique_ptr<Stream> stream,
               std::string ref)
      : call_(std::move(call)), stream_(std::move(stream)), ref_(std::move(ref)) {}

  ~RemoteWriter() override {
    if (!finished_) {
      call_->Progress();
      stream_->WritesDone();
      contentpb::WriteContentResponse extra;  // containerd answers EOF with one more
      while (stream_->Read(&extra)) {
      }
      stream_->Finish().IgnoreError();
    }
  }

  // Sends `req` and reads its response; on failure the stream's status.
  absl::StatusOr<contentpb::WriteContentResponse> Send(const contentpb::WriteContentRequest& req) {
    if (finished_) return absl::FailedPreconditionError("write stream already closed");
    contentpb::WriteContentResponse resp;
    call_->Progress();
    if (!stream_->Write(req) || !stream_->Read(&resp)) {
      finished_ = true;
      stream_->WritesDone();
      contentpb::WriteContentResponse extra;
      while (stream_->Read(&extra)) {
      }
      absl::Status s = call_->Finish(stream_->Finish());
      return s.ok() ? absl::UnknownError("write stream closed early") : s;
    }
    call_->Idle();  // until the next request: our own time, not the peer's
    offset_ = resp.offset();
    if (!resp.digest().empty()) digest_ = resp.digest();
    return resp;
  }

  absl::StatusOr<store::IngestStatus> Status() override {
    contentpb::WriteContentRequest req;
    req.set_action(contentpb::STAT);
    auto resp = Send(req);
    if (!resp.ok()) return resp.status();
    return store::IngestStatus{ref_, resp->offset(), resp->total(), "",
                               FromProto(resp->started_at()), FromProto(resp->updated_at())};
  }

  std::string Digest() override { return digest_; }

  absl::Status Write(absl::string_view data) override {
    contentpb::WriteContentRequest req;
    req.set_action(contentpb::WRITE);
    req.set_offset(offset_);
    req.set_data(data.data(), data.size());
    return Send(req).status();
  }

  absl::Status Truncate(int64_t size) override {
    if (size != 0) return absl::InvalidArgumentError("can only truncate to 0");
    offset_ = 0;  // the next write at offset 0 restarts the ingest
    return absl::OkStatus();
  }

  absl::Status Commit(int64_t size, absl::string_view expected,
                      const store::Labels& labels) override {
    contentpb::WriteContentRequest req;
    req.set_action(contentpb::COMMIT);
    req.set_offset(offset_);
    req.set_total(size);
    req.set_expected(std::string(expected));
    req.mutable_labels()->insert(labels.begin(), labels.end());
    absl::Status s = Send(req).status();
    if (!finished_) {
      finished_ = true;
      call_->Progress();
      stream_->WritesDone();
      // containerd's Write handler sends its last response twice after a
      // commit (once in its loop, once more as it returns); gRPC's Finish
      // waits until every message has been read, so drain them first.
      contentpb::WriteContentResponse extra;
      while (stream_->Read(&extra)) {
      }
      absl::Status end = call_->Finish(stream_->Finish());
      if (s.ok()) s = end;
    }
    return s;
  }

 private:
  // Declared first: the stream must end before its context does.
  std::unique_ptr<UpstreamCalls::Call> call_;
  std::unique_ptr<Stream> stream_;
  std::string ref_;
  int64_t offset_ = 0;
  std::string digest_;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<grpc::ClientContext> NamespacedContext(absl::string_view ns) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!ns.empty()) ctx->AddMetadata(kNamespaceHeader, std::string(ns));
  return ctx;
}

RemoteContentStore::RemoteContentStore(std::shared_ptr<grpc::Channel> channel,
                                       UpstreamCalls* calls)
    : stub_(contentpb::Content::NewStub(std::move(channel))),
      calls_(calls != nullptr ? calls : UpstreamCalls::Unbounded()) {}

absl::StatusOr<store::ContentInfo> RemoteContentStore::Info(absl::string_view ns,
                                                            absl::string_view digest) {
  contentpb::InfoRequest req;
  req.set_digest(std::string(digest));
  contentpb::InfoResponse resp;
  auto call = calls_->Start("Content/Info", ns);
  if (absl::Status s = call->Finish(stub_->Info(call->get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.info());
}

absl::StatusOr<store::ContentInfo> RemoteContentStore::Update(
    absl::string_view ns, const store::ContentInfo& info,
    absl::Span<const std::string> fieldpaths) {
  contentpb::UpdateRequest req;
  ToProto(info, req.mutable_info());
  for (const std::string& p : fieldpaths) req.mutable_update_mask()->add_paths(p);
  contentpb::UpdateResponse resp;
  auto call = calls_->Start("Content/Update", ns);
  if (absl::Status s = call->Finish(stub_->Update(call->get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.info());
}

absl::Status RemoteContentStore::Walk(absl::string_view ns, absl::Span<const std::string> filters,
                                      const WalkFn& fn) {
  contentpb::ListContentRequest req;
  for (const std::string& f : filters) req.add_filters(f);
  auto call = calls_->Start("Content/List", ns, UpstreamCalls::Kind::kStream);
  auto reader = stub_->List(call->get(), req);
  contentpb::ListContentResponse resp;
  absl::Status result;
  while (result.ok() && reader->Read(&resp)) {
    call->Progress();
    for (const contentpb::Info& info : resp.info()) {
      result = fn(FromProto(info));
      if (!result.ok()) break;
    }
  }
  if (!result.ok()) {
    call->get()->TryCancel();
    reader->Finish().IgnoreError();
    return result;
  }
  return call->Finish(reader->Finish());
}

absl::Status RemoteContentStore::Delete(absl::string_view ns, absl::string_view digest) {
  contentpb::DeleteContentRequest req;
  req.set_digest(std::string(digest));
  google::protobuf::Empty resp;
  auto call = calls_->Start("Content/Delete", ns);
  return call->Finish(stub_->Delete(call->get(), req, &resp));
}

absl::StatusOr<std::unique_ptr<store::ContentReader>> RemoteContentStore::Reader(
    absl::string_view ns, absl::string_view digest) {
  absl::StatusOr<store::ContentInfo> info = Info(ns, digest);
  if (!info.ok()) return info.status();
  return std::make_unique<RemoteReader>(stub_.get(), calls_, std::string(ns), std::string(digest),
                                        info->size);
}

absl::StatusOr<store::IngestStatus> RemoteContentStore::Status(absl::string_view ns,
                                                               absl::string_view ref) {
  contentpb::StatusRequest req;
  req.set_ref(std::string(ref));
  contentpb::StatusResponse resp;
  auto call = calls_->Start("Content/Status", ns);
  if (absl::Status s = call->Finish(stub_->Status(call->get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.status());
}

absl::StatusOr<std::vector<store::IngestStatus>> RemoteContentStore::ListStatuses(
    absl::string_view ns, absl::Span<const std::string> filters) {
  contentpb::ListStatusesRequest req;
  for (const std::string& f : filters) req.add_filters(f);
  contentpb::ListStatusesResponse resp;
  auto call = calls_->Start("Content/ListStatuses", ns, UpstreamCalls::Kind::kList);
  if (absl::Status s = call->Finish(stub_->ListStatuses(call->get(), req, &resp)); !s.ok()) {
    return s;
  }
  std::vector<store::IngestStatus> out;
  for (const contentpb::Status& st : resp.statuses()) out.push_back(FromProto(st));
  return out;
}

absl::StatusOr<std::unique_ptr<store::ContentWriter>> RemoteContentStore::Writer(
    absl::string_view ns, absl::string_view ref, int64_t total, absl::string_view expected,
    absl::string_view lease) {
  auto call = calls_->Start("Content/Write", ns, UpstreamCalls::Kind::kStream);
  if (!lease.empty()) call->get()->AddMetadata(kLeaseHeader, std::string(lease));
  auto stream = stub_->Write(call->get());
  auto writer = std::make_unique<RemoteWriter>(std::move(call), std::move(stream), std::string(ref));
  // Opening is a STAT that names the ref, as containerd's proxy negotiates.
  contentpb::WriteContentRequest req;
  req.set_action(contentpb::STAT);
  req.set_ref(std::string(ref));
  req.set_total(total);
  req.set_expected(std::string(expected));
  if (auto resp = writer->Send(req); !resp.ok()) return resp.status();
  return writer;
}

absl::Status RemoteContentStore::Abort(absl::string_view ns, absl::string_view ref) {
  contentpb::AbortRequest req;
  req.set_ref(std::string(ref));
  google::protobuf::Empty resp;
  auto call = calls_->Start("Content/Abort", ns);
  return call->Finish(stub_->Abort(call->get(), req, &resp));
}

}  // namespace imaged::plugin
