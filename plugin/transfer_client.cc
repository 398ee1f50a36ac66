#include "plugin/transfer_client.h"

#include <google/protobuf/empty.pb.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "api/containerd/services/leases/v1/leases.grpc.pb.h"
#include "api/containerd/services/streaming/v1/streaming.grpc.pb.h"
#include "api/containerd/services/transfer/v1/transfer.grpc.pb.h"
#include "api/containerd/types/transfer/imagestore.pb.h"
#include "api/containerd/types/transfer/importexport.pb.h"
#include "api/containerd/types/transfer/progress.pb.h"
#include "api/containerd/types/transfer/registry.pb.h"
#include "api/containerd/types/transfer/streaming.pb.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {
namespace {

namespace ttypes = ::containerd::types::transfer;
namespace streamingpb = ::containerd::services::streaming::v1;
namespace transferpb = ::containerd::services::transfer::v1;
using google::protobuf::Any;

// How long a stream's reader may go on after the Transfer call returned
// OK: the server finishes every stream it used before it answers, so what
// is still open then was never used. After a failed transfer nothing
// read from a stream counts, and the streams are cancelled at once.
constexpr absl::Duration kDrain = absl::Seconds(5);
// containerd's client: Data of at most 32 KiB; a 64 KiB receive window.
constexpr size_t kMaxData = 32 << 10;
constexpr int32_t kWindow = 64 << 10;

Any Pack(const google::protobuf::Message& m) {
  Any any;
  any.set_type_url(m.GetDescriptor()->full_name());
  m.SerializeToString(any.mutable_value());
  return any;
}

bool Unpack(const Any& any, google::protobuf::Message* out) {
  absl::string_view url = any.type_url();
  if (size_t slash = url.rfind('/'); slash != absl::string_view::npos) url.remove_prefix(slash + 1);
  return url == out->GetDescriptor()->full_name() && out->ParseFromString(any.value());
}

// containerd's stream ids: "<kind>-<nanos of the second>-<base64url of 3 random bytes>".
std::string StreamId(absl::string_view kind) {
  static std::atomic<uint64_t> serial{0};
  std::mt19937_64 rng(absl::ToUnixNanos(absl::Now()) + serial++);
  std::string random(3, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  return absl::StrCat(kind, "-", absl::ToUnixNanos(absl::Now()) % 1000000000, "-",
                      absl::WebSafeBase64Escape(random));
}

void SetPlatform(const TransferPlatform& p, ::containerd::types::Platform* out) {
  out->set_os(p.os);
  out->set_architecture(p.architecture);
  out->set_variant(p.variant);
}

// One Streaming call, opened and acked; `serve` (if any) runs on its own
// thread with the stream until the server closes it.
class Stream {
 public:
  using Rw = grpc::ClientReaderWriter<Any, Any>;

  static absl::StatusOr<std::unique_ptr<Stream>> Open(const std::shared_ptr<grpc::Channel>& channel,
                                                      const TransferCall& call,
                                                      absl::string_view kind) {
    auto s = std::unique_ptr<Stream>(new Stream());
    s->id_ = StreamId(kind);
    s->stub_ = streamingpb::Streaming::NewStub(channel);
    s->ctx_.AddMetadata(kNamespaceHeader, call.ns);
    if (!call.lease.empty()) s->ctx_.AddMetadata(kLeaseHeader, call.lease);
    s->rw_ = s->stub_->Stream(&s->ctx_);
    streamingpb::StreamInit init;
    init.set_id(s->id_);
    Any ack;
    if (!s->rw_->Write(Pack(init)) || !s->rw_->Read(&ack)) {
      grpc::Status st = s->rw_->Finish();
      s->stopped_ = true;
      return absl::Status(FromGrpcStatus(st).code(),
                          absl::StrCat("opening stream ", s->id_, ": ", st.error_message()));
    }
    return s;
  }

  ~Stream() { Stop(/*transfer_ok=*/false); }

  const std::string& id() const { return id_; }
  Rw* rw() { return rw_.get(); }

  void Serve(std::function<void(Stream*)> serve) {
    thread_ = std::thread([this, serve = std::move(serve)] {
      serve(this);
      served_.Notify();
    });
  }

  // Waits for the server to close the stream (cancels it after kDrain), or
  // when the transfer failed cancels it, and returns how it ended.
  absl::Status Stop(bool transfer_ok) {
    if (stopped_) return status_;
    stopped_ = true;
    if (!transfer_ok || !thread_.joinable() || !served_.WaitForNotificationWithTimeout(kDrain)) {
      ctx_.TryCancel();
    }
    if (thread_.joinable()) thread_.join();
    status_ = FromGrpcStatus(rw_->Finish());
    return status_;
  }

 private:
  Stream() = default;
  std::string id_;
  std::unique_ptr<streamingpb::Streaming::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<Rw> rw_;
  std::thread thread_;
  absl::Notification served_;
  bool stopped_ = false;
  absl::Status status_;
};

// The progress stream of a call, when it wants progress.
absl::StatusOr<std::unique_ptr<Stream>> OpenProgress(const std::shared_ptr<grpc::Channel>& channel,
                                                     const TransferCall& call) {
  if (!call.progress) return std::unique_ptr<Stream>();
  auto s = Stream::Open(channel, call, "progress");
  if (!s.ok()) return s.status();
  auto fn = call.progress;
  (*s)->Serve([fn](Stream* stream) {
    Any any;
    while (stream->rw()->Read(&any)) {
      ttypes::Progress p;
      if (!Unpack(any, &p)) continue;
      TransferProgress out;
      out.event = p.event();
      out.name = p.name();
      out.parents.assign(p.parents().begin(), p.parents().end());
      out.progress = p.progress();
      out.total = p.total();
      if (p.has_desc()) out.digest = p.desc().digest();
      fn(out);
    }
  });
  return s;
}

absl::Status CallTransfer(const std::shared_ptr<grpc::Channel>& channel, const TransferCall& call,
                          const Any& source, const Any& destination, Stream* progress) {
  auto stub = transferpb::Transfer::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata(kNamespaceHeader, call.ns);
  if (!call.lease.empty()) ctx.AddMetadata(kLeaseHeader, call.lease);
  transferpb::TransferRequest req;
  *req.mutable_source() = source;
  *req.mutable_destination() = destination;
  if (progress != nullptr) req.mutable_options()->set_progress_stream(progress->id());
  google::protobuf::Empty resp;
  absl::Status s = FromGrpcStatus(stub->Transfer(&ctx, req, &resp));
  if (progress != nullptr) progress->Stop(s.ok());
  return s;
}

}  // namespace

absl::Status TransferClient::Pull(const TransferCall& call, const std::string& reference,
                                  const TransferPullOptions& options) {
  auto progress = OpenProgress(channel_, call);
  if (!progress.ok()) return progress.status();
  auto auth = Stream::Open(channel_, call, "creds");
  if (!auth.ok()) return auth.status();
  const std::string user = options.user, secret = options.secret;
  (*auth)->Serve([user, secret](Stream* stream) {
    Any any;
    while (stream->rw()->Read(&any)) {
      ttypes::AuthRequest ask;
      if (!Unpack(any, &ask)) continue;
      ttypes::AuthResponse answer;
      if (!user.empty()) {
        answer.set_authtype(ttypes::CREDENTIALS);
        answer.set_username(user);
      } else {
        answer.set_authtype(ttypes::REFRESH);
      }
      answer.set_secret(secret);
      if (!stream->rw()->Write(Pack(answer))) return;
    }
  });

  ttypes::OCIRegistry reg;
  reg.set_reference(reference);
  reg.mutable_resolver()->set_auth_stream((*auth)->id());
  reg.mutable_resolver()->set_host_dir(options.hosts_dir);
  if (options.plain_http) reg.mutable_resolver()->set_default_scheme("http");
  ttypes::ImageStore is;
  is.set_name(options.name);
  for (const auto& [k, v] : options.labels) (*is.mutable_labels())[k] = v;
  for (const TransferPlatform& p : options.platforms) {
    SetPlatform(p, is.add_platforms());
    SetPlatform(p, is.add_unpacks()->mutable_platform());
  }
  is.set_all_metadata(true);
  absl::Status s = CallTransfer(channel_, call, Pack(reg), Pack(is), progress->get());
  (*auth)->Stop(s.ok());
  return s;
}

absl::Status TransferClient::Import(
    const TransferCall& call, const std::function<absl::StatusOr<size_t>(char*, size_t)>& read,
    const TransferImportOptions& options) {
  auto progress = OpenProgress(channel_, call);
  if (!progress.ok()) return progress.status();
  auto data = Stream::Open(channel_, call, "import");
  if (!data.ok()) return data.status();

  // containerd's SendStream: one thread takes window updates, another sends
  // Data within them and closes its side at the end of the archive.
  struct Window {
    absl::Mutex mu;
    int64_t left ABSL_GUARDED_BY(mu) = 0;
    bool closed ABSL_GUARDED_BY(mu) = false;
  };
  auto window = std::make_shared<Window>();
  absl::Status read_error;
  std::thread sender([&, window] {
    std::string buf(kMaxData, '\0');
    Stream::Rw* rw = (*data)->rw();
    for (;;) {
      int64_t grant;
      {
        absl::MutexLock lock(&window->mu);
        window->mu.Await(absl::Condition(
            +[](Window* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu) { return w->left > 0 || w->closed; },
            window.get()));
        if (window->closed) return;
        grant = window->left;
      }
      absl::StatusOr<size_t> n = read(buf.data(), std::min<size_t>(kMaxData, grant));
      if (!n.ok()) {
        read_error = n.status();
        rw->WritesDone();
        return;
      }
      if (*n == 0) {
        rw->WritesDone();
        return;
      }
      ttypes::Data d;
      d.set_data(buf.data(), *n);
      if (!rw->Write(Pack(d))) return;
      absl::MutexLock lock(&window->mu);
      window->left -= static_cast<int64_t>(*n);
    }
  });
  (*data)->Serve([window](Stream* stream) {
    Any any;
    while (stream->rw()->Read(&any)) {
      ttypes::WindowUpdate update;
      if (!Unpack(any, &update)) continue;
      absl::MutexLock lock(&window->mu);
      window->left += update.update();
    }
    absl::MutexLock lock(&window->mu);
    window->closed = true;
  });

  ttypes::ImageImportStream iis;
  iis.set_stream((*data)->id());
  ttypes::ImageStore is;
  is.set_name(options.index_name);
  std::string prefix = options.base_name;
  bool overwrite = false;
  if (prefix.empty()) {
    prefix = absl::StrCat("import-", absl::FormatTime("%Y-%m-%d", absl::Now(), absl::LocalTimeZone()));
    overwrite = true;
  }
  ttypes::ImageReference* ref = is.add_extra_references();
  ref->set_name(prefix);
  ref->set_is_prefix(true);
  ref->set_allow_overwrite(overwrite);
  ref->set_add_digest(options.digests);
  ref->set_skip_named_digest(options.skip_digest_for_named);
  for (const auto& [k, v] : options.labels) (*is.mutable_labels())[k] = v;
  for (const TransferPlatform& p : options.platforms) SetPlatform(p, is.add_platforms());
  absl::Status s = CallTransfer(channel_, call, Pack(iis), Pack(is), progress->get());
  (*data)->Stop(s.ok());
  {
    absl::MutexLock lock(&window->mu);
    window->closed = true;
  }
  sender.join();
  if (s.ok() && !read_error.ok()) return read_error;
  return s;
}

absl::Status TransferClient::ImportBytes(const TransferCall& call, absl::string_view archive,
                                         const TransferImportOptions& options) {
  return Import(
      call,
      [&archive](char* buf, size_t len) -> absl::StatusOr<size_t> {
        size_t n = std::min(len, archive.size());
        std::memcpy(buf, archive.data(), n);
        archive.remove_prefix(n);
        return n;
      },
      options);
}

absl::Status TransferClient::Export(const TransferCall& call,
                                    const std::vector<std::string>& names,
                                    const std::function<absl::Status(absl::string_view)>& write,
                                    const TransferExportOptions& options) {
  auto progress = OpenProgress(channel_, call);
  if (!progress.ok()) return progress.status();
  auto data = Stream::Open(channel_, call, "export");
  if (!data.ok()) return data.status();
  // containerd's ReceiveStream: grant 64 KiB whenever less is left, write
  // what arrives.
  absl::Status write_error;
  (*data)->Serve([&](Stream* stream) {
    int64_t window = 0;
    for (;;) {
      if (window < kWindow) {
        ttypes::WindowUpdate update;
        update.set_update(kWindow);
        if (stream->rw()->Write(Pack(update))) window += kWindow;
      }
      Any any;
      if (!stream->rw()->Read(&any)) return;
      ttypes::Data d;
      if (!Unpack(any, &d)) continue;
      window -= static_cast<int64_t>(d.data().size());
      if (write_error.ok()) write_error = write(d.data());
    }
  });

  ttypes::ImageStore is;
  for (const std::string& name : names) is.add_extra_references()->set_name(name);
  ttypes::ImageExportStream ies;
  ies.set_stream((*data)->id());
  for (const TransferPlatform& p : options.platforms) SetPlatform(p, ies.add_platforms());
  ies.set_all_platforms(options.all_platforms);
  ies.set_skip_compatibility_manifest(options.skip_manifest_json);
  absl::Status s = CallTransfer(channel_, call, Pack(is), Pack(ies), progress->get());
  absl::Status ended = (*data)->Stop(s.ok());
  if (!s.ok()) return s;
  if (!ended.ok()) return ended;
  return write_error;
}

absl::Status TransferClient::WithLease(
    TransferCall call, const std::function<absl::Status(const TransferCall&)>& fn) {
  namespace leasespb = ::containerd::services::leases::v1;
  auto stub = leasespb::Leases::NewStub(channel_);
  leasespb::CreateRequest create;
  create.set_id(StreamId("transfer"));
  (*create.mutable_labels())["containerd.io/gc.expire"] =
      absl::FormatTime(absl::RFC3339_sec, absl::Now() + absl::Hours(24), absl::UTCTimeZone());
  leasespb::CreateResponse created;
  grpc::ClientContext cctx;
  cctx.AddMetadata(kNamespaceHeader, call.ns);
  if (absl::Status s = FromGrpcStatus(stub->Create(&cctx, create, &created)); !s.ok()) return s;
  call.lease = created.lease().id();
  absl::Status result = fn(call);
  leasespb::DeleteRequest del;
  del.set_id(call.lease);
  google::protobuf::Empty empty;
  grpc::ClientContext dctx;
  dctx.AddMetadata(kNamespaceHeader, call.ns);
  absl::Status deleted = FromGrpcStatus(stub->Delete(&dctx, del, &empty));
  return result.ok() ? deleted : result;
}

absl::Status TransferClient::RawTransfer(const TransferCall& call, const std::string& source_type,
                                         const std::string& source,
                                         const std::string& destination_type,
                                         const std::string& destination) {
  auto progress = OpenProgress(channel_, call);
  if (!progress.ok()) return progress.status();
  Any src, dst;
  src.set_type_url(source_type);
  src.set_value(source);
  dst.set_type_url(destination_type);
  dst.set_value(destination);
  return CallTransfer(channel_, call, src, dst, progress->get());
}

}  // namespace imaged::plugin
