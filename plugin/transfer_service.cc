#include "plugin/transfer_service.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "api/containerd/types/transfer/imagestore.pb.h"
#include "api/containerd/types/transfer/importexport.pb.h"
#include "api/containerd/types/transfer/progress.pb.h"
#include "api/containerd/types/transfer/registry.pb.h"
#include "api/containerd/types/transfer/streaming.pb.h"
#include "cri/archive/archive.h"
#include "cri/reference.h"
#include "cri/registry/registry_auth.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"
#include "store/labels.h"
#include "store/limits.h"

namespace imaged::plugin {

namespace ttypes = ::containerd::types::transfer;

namespace {

// The window imaged grants an import stream's sender, and when it tops it
// up (containerd grants 64 KiB whenever less than that is left: a round
// trip per 32 KiB message).
constexpr int32_t kImportWindow = 1 << 20;
// Data messages of an export carry at most this much (and at most what the
// client's window allows: 64 KiB for containerd's client).
constexpr size_t kExportChunk = 1 << 20;
// A "downloading" update per blob at most this often.
constexpr absl::Duration kProgressInterval = absl::Milliseconds(100);
// How long a progress message may wait for the client to take it.
constexpr absl::Duration kProgressSendTimeout = absl::Seconds(5);
// A temporary lease of an import outlives a crashed imaged by this much.

store::Platform PlatformFromProto(const ::containerd::types::Platform& p) {
  store::Platform out;
  out.os = p.os();
  out.architecture = p.architecture();
  out.variant = p.variant();
  out.os_version = p.os_version();
  out.os_features.assign(p.os_features().begin(), p.os_features().end());
  return out;
}

template <typename Repeated>
absl::Status CheckCount(absl::string_view what, const Repeated& items) {
  if (static_cast<size_t>(items.size()) > store::kMaxTransferItems) {
    return absl::InvalidArgumentError(absl::StrCat(items.size(), " ", what, ": at most ",
                                                   store::kMaxTransferItems, " are allowed"));
  }
  return absl::OkStatus();
}

// An ImageStore's common checks: counts and labels.
absl::Status CheckImageStore(const ttypes::ImageStore& is) {
  if (absl::Status s = CheckCount("platforms", is.platforms()); !s.ok()) return s;
  if (absl::Status s = CheckCount("extra references", is.extra_references()); !s.ok()) return s;
  if (absl::Status s = CheckCount("unpack configurations", is.unpacks()); !s.ok()) return s;
  store::Labels labels(is.labels().begin(), is.labels().end());
  return store::ValidateLabels(labels);
}

}  // namespace

// Sends Progress messages on the progress stream, if there is one; pull
// threads report concurrently. A send that fails ends reporting (the
// transfer goes on, as containerd's does).
class TransferService::Progress {
 public:
  explicit Progress(std::shared_ptr<ManagedStream> stream) : stream_(std::move(stream)) {}

  void Status(absl::string_view event) { Send(event, "", {}, 0, 0, nullptr); }

  void Blob(const cri::PullProgress& p) {
    if (stream_ == nullptr) return;
    if (p.event == "downloading") {
      absl::MutexLock lock(&mu_);
      absl::Time now = absl::Now();
      absl::Time& last = last_update_[p.name];
      if (p.offset != 0 && now - last < kProgressInterval) return;
      last = now;
    }
    std::vector<std::string> parents;
    if (!p.parent.empty()) parents.push_back(p.parent);
    int64_t total = std::max<int64_t>(p.desc.size, 0);
    Send(p.event, p.name, parents, p.offset, total, &p.desc);
  }

  void Saved(const std::string& name, const store::Descriptor& desc) {
    Send("saved", name, {}, 0, 0, &desc);
  }

 private:
  void Send(absl::string_view event, absl::string_view name,
            const std::vector<std::string>& parents, int64_t progress, int64_t total,
            const store::Descriptor* desc) {
    if (stream_ == nullptr) return;
    ttypes::Progress msg;
    msg.set_event(std::string(event));
    msg.set_name(std::string(name));
    for (const std::string& p : parents) msg.add_parents(p);
    msg.set_progress(progress);
    msg.set_total(total);
    if (desc != nullptr) ToProto(*desc, msg.mutable_desc());
    absl::MutexLock lock(&mu_);
    if (failed_) return;
    // Pull threads report under mu_: a client that stops reading progress
    // holds them back once, for kProgressSendTimeout, then is ignored.
    if (!stream_->Send(PackAny(msg), kProgressSendTimeout).ok()) failed_ = true;
  }

  const std::shared_ptr<ManagedStream> stream_;
  absl::Mutex mu_;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, absl::Time> last_update_ ABSL_GUARDED_BY(mu_);
};

// One Transfer call: its namespace, its streams (all closed at the end, so
// every client-side reader sees EOF), its progress.
struct TransferService::Call {
  std::string ns;
  grpc::ServerContext* ctx = nullptr;
  StreamManager* streams = nullptr;
  std::vector<std::shared_ptr<ManagedStream>> opened;
  std::unique_ptr<Progress> progress;
  std::shared_ptr<ManagedStream> progress_stream;  // always ends with OK
  absl::Status result;  // how the other streams end

  absl::StatusOr<std::shared_ptr<ManagedStream>> Stream(const std::string& id) {
    absl::StatusOr<std::shared_ptr<ManagedStream>> s = streams->Get(ns, id);
    if (s.ok()) opened.push_back(*s);
    return s;
  }
  ~Call() {
    for (const auto& s : opened) s->Close(s == progress_stream ? absl::OkStatus() : result);
  }
};

grpc::Status TransferService::Transfer(grpc::ServerContext* ctx,
                                       const transferpb::TransferRequest* req,
                                       google::protobuf::Empty* /*resp*/) {
  absl::StatusOr<std::string> ns = RequiredNamespace(*ctx);
  if (!ns.ok()) return ToGrpcStatus(ns.status());
  CallSlots::Slot slot = slots_->TryAcquire();
  if (!slot) {
    return ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "too many transfers and imports under way (", slots_->max(), "); try again")));
  }
  Call call;
  call.ns = *std::move(ns);
  call.ctx = ctx;
  call.streams = streams_;
  if (!req->options().progress_stream().empty()) {
    auto s = call.Stream(req->options().progress_stream());
    if (!s.ok()) return ToGrpcStatus(s.status());
    call.progress_stream = *s;
  }
  call.progress = std::make_unique<Progress>(call.progress_stream);

  const absl::string_view src = AnyTypeName(req->source());
  const absl::string_view dst = AnyTypeName(req->destination());
  const std::string kRegistry = ttypes::OCIRegistry::descriptor()->full_name();
  const std::string kStore = ttypes::ImageStore::descriptor()->full_name();
  const std::string kImport = ttypes::ImageImportStream::descriptor()->full_name();
  const std::string kExport = ttypes::ImageExportStream::descriptor()->full_name();
  absl::Status s;
  if (src == kRegistry && dst == kStore) {
    s = Pull(call, req->source(), req->destination());
  } else if (src == kImport && dst == kStore) {
    s = Import(call, req->source(), req->destination());
  } else if (src == kStore && dst == kExport) {
    s = Export(call, req->source(), req->destination());
  } else {
    s = absl::UnimplementedError(absl::StrCat("method Transfer not implemented for ",
                                              store::Quote(req->source().type_url()), " to ",
                                              store::Quote(req->destination().type_url())));
  }
  call.result = s;
  return ToGrpcStatus(s);
}

absl::Status TransferService::Pull(Call& call, const google::protobuf::Any& source,
                                   const google::protobuf::Any& destination) {
  ttypes::OCIRegistry reg;
  ttypes::ImageStore is;
  if (absl::Status s = UnpackAny(source, &reg); !s.ok()) return s;
  if (absl::Status s = UnpackAny(destination, &is); !s.ok()) return s;
  if (absl::Status s = CheckImageStore(is); !s.ok()) return s;
  if (reg.reference().empty()) return absl::InvalidArgumentError("pull: no reference given");
  if (absl::Status s = store::ValidateImageRef(reg.reference()); !s.ok()) return s;
  if (absl::Status s = CheckCount("headers", reg.resolver().headers()); !s.ok()) return s;
  if (stores_.puller == nullptr) {
    return absl::FailedPreconditionError(
        "pulls through the Transfer service need imaged in standalone mode (in mirror mode, "
        "pull through containerd)");
  }

  cri::PullRequest pull;
  pull.ns = call.ns;
  pull.image = reg.reference();
  pull.cancel = CallerGone(call.ctx);
  // ctr 2.x's client holds its transfer under a lease (else the puller
  // takes a temporary one).
  pull.lease = LeaseOf(*call.ctx);
  if (!is.name().empty()) pull.names.push_back(is.name());
  for (const ttypes::ImageReference& ref : is.extra_references()) {
    if (ref.is_prefix() || ref.add_digest()) {
      return absl::UnimplementedError(
          "pull: prefix and digest references of an image store are not supported");
    }
    pull.names.push_back(ref.name());
  }
  if (pull.names.empty()) return absl::NotFoundError("pull: no image name found");
  for (const std::string& name : pull.names) {
    if (absl::Status s = store::ValidateImageName(name); !s.ok()) return s;
  }
  pull.labels = store::Labels(is.labels().begin(), is.labels().end());
  if (is.platforms_size() > 0) pull.platform = PlatformFromProto(is.platforms(0));
  const ttypes::RegistryResolver& resolver = reg.resolver();
  if (!resolver.host_dir().empty()) pull.hosts_dir = resolver.host_dir();
  pull.plain_http = resolver.default_scheme() == "http";
  if (!resolver.logs_stream().empty()) {
    // HTTP debugging is not served: the client's copy of the log ends at once.
    if (auto logs = call.Stream(resolver.logs_stream()); logs.ok()) (*logs)->Close();
  }
  if (!resolver.auth_stream().empty()) {
    auto auth = call.Stream(resolver.auth_stream());
    if (!auth.ok()) return auth.status();
    absl::StatusOr<cri::Reference> ref = cri::ParseNormalizedNamed(reg.reference());
    if (!ref.ok()) return ref.status();
    ttypes::AuthRequest ask;
    ask.set_host(ref->domain);
    ask.set_reference(reg.reference());
    if (absl::Status s = (*auth)->Send(PackAny(ask)); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("asking for credentials: ", s.message()));
    }
    google::protobuf::Any answer;
    if (absl::Status s = (*auth)->Recv(&answer); !s.ok()) {
      return absl::Status(absl::IsOutOfRange(s) ? absl::StatusCode::kUnavailable : s.code(),
                          absl::StrCat("waiting for credentials: ", s.message()));
    }
    ttypes::AuthResponse creds;
    if (absl::Status s = UnpackAny(answer, &creds); !s.ok()) return s;
    switch (creds.authtype()) {
      case ttypes::CREDENTIALS:
        pull.creds.username = creds.username();
        pull.creds.password = creds.secret();
        break;
      case ttypes::REFRESH:
        pull.creds.identity_token = creds.secret();
        break;
      case ttypes::HEADER: {
        // A whole Authorization value: "Bearer <token>" or "Basic <base64>".
        absl::string_view header = creds.secret();
        if (absl::ConsumePrefix(&header, "Bearer ")) {
          pull.creds.registry_token = std::string(header);
        } else if (absl::ConsumePrefix(&header, "Basic ")) {
          auto basic = cri::CredentialsFromAuthConfig("", "", header, "", "");
          if (!basic.ok()) return basic.status();
          pull.creds = *std::move(basic);
        } else if (!header.empty()) {
          return absl::InvalidArgumentError(
              "credentials: an authorization header must be Bearer or Basic");
        }
        break;
      }
      default:
        break;
    }
  }

  const std::string what = absl::StrCat("OCI Registry (", reg.reference(), ")");
  call.progress->Status(absl::StrCat("Resolving from ", what));
  Progress* progress = call.progress.get();
  pull.progress = [progress](const cri::PullProgress& p) { progress->Blob(p); };
  call.progress->Status(absl::StrCat("Pulling from ", what));
  absl::StatusOr<cri::PullResult> result = stores_.puller->Pull(pull);
  if (!result.ok()) return result.status();
  for (const store::ImageCommitter::Written& w : result->written) {
    events_->PublishImageWritten(call.ns, w.image, w.existed);
    call.progress->Saved(w.image.name, w.image.target);
  }
  call.progress->Status(absl::StrCat("Completed pull from ", what));
  return absl::OkStatus();
}

absl::Status TransferService::Import(Call& call, const google::protobuf::Any& source,
                                     const google::protobuf::Any& destination) {
  ttypes::ImageImportStream iis;
  ttypes::ImageStore is;
  if (absl::Status s = UnpackAny(source, &iis); !s.ok()) return s;
  if (absl::Status s = UnpackAny(destination, &is); !s.ok()) return s;
  if (absl::Status s = CheckImageStore(is); !s.ok()) return s;
  if (!is.name().empty()) {
    return absl::UnimplementedError(
        "import: naming the archive's index (ctr import --index-name) is not supported");
  }

  cri::ImportOptions options;
  options.transfer_naming = true;
  options.platform = platform_;
  options.all_platforms = is.platforms_size() == 0;
  if (is.platforms_size() > 0) options.platform = PlatformFromProto(is.platforms(0));
  options.labels = store::Labels(is.labels().begin(), is.labels().end());
  int prefixes = 0;
  for (const ttypes::ImageReference& ref : is.extra_references()) {
    if (!ref.is_prefix()) {
      return absl::UnimplementedError("import: only prefix references are supported");
    }
    if (++prefixes > 1) return absl::UnimplementedError("import: one prefix reference at most");
    if (ref.name().empty()) return absl::InvalidArgumentError("import: an empty prefix");
    if (absl::Status s = store::ValidateImageName(ref.name()); !s.ok()) return s;
    options.base_name = ref.name();
    options.allow_foreign = ref.allow_overwrite();
    options.digest_refs = ref.add_digest();
    options.skip_digest_for_named = ref.skip_named_digest();
  }
  if (prefixes == 0) return absl::NotFoundError("import: no image name found");
  if (!iis.media_type().empty() && !absl::StartsWith(iis.media_type(), "application/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("import: media type ", store::Quote(iis.media_type())));
  }

  auto stream = call.Stream(iis.stream());
  if (!stream.ok()) return stream.status();
  call.progress->Status("Importing");

  // The stream's bytes, pulled by the archive reader: grant a window, take
  // Data messages, and keep what a message holds beyond what was asked.
  int64_t window = 0;
  std::string pending;
  size_t pending_at = 0;
  bool eof = false;
  std::shared_ptr<ManagedStream> in = *stream;
  cri::ArchiveReadFn read = [&](char* buf, size_t len) -> absl::StatusOr<size_t> {
    while (pending_at == pending.size() && !eof) {
      if (window < kImportWindow / 2) {
        ttypes::WindowUpdate update;
        update.set_update(kImportWindow);
        if (absl::Status s = in->Send(PackAny(update)); !s.ok()) return s;
        window += kImportWindow;
      }
      google::protobuf::Any msg;
      absl::Status s = in->Recv(&msg);
      if (absl::IsOutOfRange(s)) {
        eof = true;
        break;
      }
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("import stream: ", s.message()));
      ttypes::Data data;
      if (AnyTypeName(msg) != ttypes::Data::descriptor()->full_name()) continue;
      if (absl::Status u = UnpackAny(msg, &data); !u.ok()) return u;
      window -= static_cast<int64_t>(data.data().size());
      pending = std::move(*data.mutable_data());
      pending_at = 0;
    }
    size_t n = std::min(len, pending.size() - pending_at);
    std::memcpy(buf, pending.data() + pending_at, n);
    pending_at += n;
    return n;
  };

  options.lease = LeaseOf(*call.ctx);
  absl::StatusOr<cri::ImportResult> result = cri::ImportUnderLease(
      stores_.content, stores_.images, stores_.leases, call.ns, read,
      absl::StrCat("stream ", iis.stream()), "imaged-import", options);
  if (!result.ok()) return result.status();
  for (const cri::ImportedImage& image : result->images) {
    if (auto record = stores_.images->Get(call.ns, image.name); record.ok()) {
      events_->PublishImageWritten(call.ns, *record, image.existed);
    }
    call.progress->Saved(image.name, image.target);
  }
  call.progress->Status("Completed import");
  return absl::OkStatus();
}

absl::Status TransferService::Export(Call& call, const google::protobuf::Any& source,
                                     const google::protobuf::Any& destination) {
  ttypes::ImageStore is;
  ttypes::ImageExportStream ies;
  if (absl::Status s = UnpackAny(source, &is); !s.ok()) return s;
  if (absl::Status s = UnpackAny(destination, &ies); !s.ok()) return s;
  if (absl::Status s = CheckImageStore(is); !s.ok()) return s;
  if (absl::Status s = CheckCount("platforms", ies.platforms()); !s.ok()) return s;
  std::vector<std::string> names;
  if (!is.name().empty()) names.push_back(is.name());
  for (const ttypes::ImageReference& ref : is.extra_references()) {
    if (ref.is_prefix()) {
      return absl::UnimplementedError("prefix lookup on export not implemented");
    }
    names.push_back(ref.name());
  }
  if (names.empty()) return absl::InvalidArgumentError("export: no image named");
  for (const std::string& name : names) {
    if (absl::Status s = store::ValidateImageName(name); !s.ok()) return s;
  }
  cri::ExportOptions options;
  options.platform = platform_;
  if (ies.platforms_size() > 0) options.platform = PlatformFromProto(ies.platforms(0));
  options.all_platforms = ies.all_platforms();
  options.skip_docker_manifest = ies.skip_compatibility_manifest();

  auto stream = call.Stream(ies.stream());
  if (!stream.ok()) return stream.status();
  call.progress->Status("Exporting");
  std::shared_ptr<ManagedStream> out = *stream;
  int64_t window = 0;
  cri::ArchiveWriteFn write = [&](absl::string_view data) -> absl::Status {
    while (!data.empty()) {
      while (window <= 0) {
        google::protobuf::Any msg;
        absl::Status s = out->Recv(&msg);
        if (!s.ok()) {
          return absl::Status(absl::IsOutOfRange(s) ? absl::StatusCode::kUnavailable : s.code(),
                              absl::StrCat("export stream: ", s.message()));
        }
        ttypes::WindowUpdate update;
        if (UnpackAny(msg, &update).ok() && update.update() > 0) window += update.update();
      }
      size_t n = std::min({data.size(), static_cast<size_t>(window), kExportChunk});
      ttypes::Data chunk;
      chunk.set_data(std::string(data.substr(0, n)));
      if (absl::Status s = out->Send(PackAny(chunk)); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("export stream: ", s.message()));
      }
      window -= static_cast<int64_t>(n);
      data.remove_prefix(n);
    }
    return absl::OkStatus();
  };
  if (absl::Status s =
          cri::Export(stores_.content, stores_.images, call.ns, names, write, options);
      !s.ok()) {
    return s;
  }
  out->Close();  // the client's copy ends: the archive is complete
  call.progress->Status("Completed export");
  return absl::OkStatus();
}

}  // namespace imaged::plugin
