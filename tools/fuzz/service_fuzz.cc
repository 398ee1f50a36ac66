#include "tools/fuzz/service_fuzz.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "api/containerd/services/leases/v1/leases.grpc.pb.h"
#include "api/imaged/v1/admin.grpc.pb.h"
#include "api/imaged/v1/archives.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"
#include "plugin/server.h"
#include "plugin/transfer_client.h"
#include "store/digest.h"
#include "store/keys.h"
#include "store/limits.h"
#include "store/metadata_db.h"
#include "tools/fuzz/compact_store.h"

// LeakSanitizer's check at exit, with imaged's threads still running (the
// harness does not shut it down, see Harness::Harness): a gRPC thread that
// is starting or retiring at that moment leaves its blocks unreferenced
// (docs/reliability.md, "Fuzzing"). Only those frames are suppressed;
// gpr_malloc is gRPC core's allocator, which our code never calls, so a
// leak of ours still fails. Matching needs two frames of an allocation's
// stack (tools/fuzz.sh keeps two in long runs).
extern "C" const char* __lsan_default_suppressions() {
  return "leak:grpc::ThreadManager::MainWorkLoop\n"
         "leak:grpc_core::Thread::Thread\n"
         "leak:__cxa_thread_atexit_impl\n"
         "leak:gpr_malloc\n";
}

namespace imaged::fuzz {
namespace {

namespace contentpb = ::containerd::services::content::v1;
namespace imagespb = ::containerd::services::images::v1;
namespace leasespb = ::containerd::services::leases::v1;
namespace eventspb = ::containerd::services::events::v1;
namespace cripb = ::runtime::v1;
namespace adminpb = ::imaged::v1;

// Every call's deadline: 5 s, or IMAGED_FUZZ_CALL_DEADLINE seconds (for
// long runs beside heavy work, where a starved process can be slower than
// 5 s without any fault of imaged's).
std::chrono::seconds CallDeadline() {
  static const std::chrono::seconds deadline = [] {
    const char* env = std::getenv("IMAGED_FUZZ_CALL_DEADLINE");
    const int s = env != nullptr ? std::atoi(env) : 0;
    return std::chrono::seconds(s > 0 ? s : 5);
  }();
  return deadline;
}
// The namespaces steps write into, and so what EndInput empties; "" is the
// content-proxy namespace (content calls without a namespace header).
constexpr const char* kNamespaces[] = {"fuzz", "k8s.io", "other", ""};

template <typename T>
const T& Pick(FuzzedDataProvider& in, const std::vector<T>& from) {
  return from[in.ConsumeIntegralInRange<size_t>(0, from.size() - 1)];
}

void Fail(const std::string& what) {
  std::fprintf(stderr, "service fuzz: %s\n", what.c_str());
  std::abort();
}

// IMAGED_FUZZ_VERBOSE=1: "step <name> <microseconds>" for each step and
// the checks, and "code <method> <code> <message's start>" for each call,
// on stderr (to check seeds, and to find what an input waits on).
bool IsVerbose() {
  static const bool verbose = std::getenv("IMAGED_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

// Two small images (amd64 and arm64) and an index over them, as real JSON.
std::vector<Harness::Blob> MakeBlobs() {
  std::vector<Harness::Blob> blobs;
  auto add = [&](std::string bytes, std::string media_type) -> const Harness::Blob& {
    blobs.push_back({store::Sha256::Of(bytes), std::move(bytes), std::move(media_type)});
    return blobs.back();
  };
  std::vector<std::pair<std::string, size_t>> manifests;  // digest, size
  for (const char* arch : {"amd64", "arm64"}) {
    const Harness::Blob layer =
        add(absl::StrCat("layer of the ", arch, " image"), "application/vnd.oci.image.layer.v1.tar");
    const Harness::Blob config = add(
        absl::StrFormat(R"({"architecture":"%s","os":"linux","config":{"User":"1000"},)"
                        R"("rootfs":{"type":"layers","diff_ids":["%s"]}})",
                        arch, layer.digest),
        "application/vnd.oci.image.config.v1+json");
    const Harness::Blob manifest = add(
        absl::StrFormat(
            R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
            R"("config":{"mediaType":"%s","digest":"%s","size":%d},)"
            R"("layers":[{"mediaType":"%s","digest":"%s","size":%d}]})",
            config.media_type, config.digest, config.bytes.size(), layer.media_type, layer.digest,
            layer.bytes.size()),
        "application/vnd.oci.image.manifest.v1+json");
    manifests.emplace_back(manifest.digest, manifest.bytes.size());
  }
  add(absl::StrFormat(
          R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
          R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,)"
          R"("platform":{"architecture":"amd64","os":"linux"}},)"
          R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,)"
          R"("platform":{"architecture":"arm64","os":"linux"}}]})",
          manifests[0].first, manifests[0].second, manifests[1].first, manifests[1].second),
      "application/vnd.oci.image.index.v1+json");
  return blobs;
}

// The bytes and files under `dir`, as MeasureTree but apparent sizes (what
// the usage counters count).
std::pair<int64_t, int64_t> FilesUnder(const std::string& dir) {
  int64_t bytes = 0;
  int64_t files = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      bytes += static_cast<int64_t>(it->file_size(ec));
      ++files;
    }
  }
  return {bytes, files};
}

}  // namespace

// A registry on a loopback port, for CRI.PullImage. Each pull's step
// chooses how it answers (set_answer): blobs the harness knows are served
// by digest (or, if the step says so, with a byte changed); a manifest
// asked by tag, or any other request, gets the step's status, media type
// and body; a challenge (Bearer, with a token endpoint here, or Basic)
// comes first for requests without an Authorization header. One
// connection at a time, each closed after its answer. So pulls succeed,
// fail on a 404, 403, a challenge, an unparseable or foreign document or a
// corrupt blob, in a millisecond or two instead of waiting out a refused
// port's retries.
class LoopbackRegistry {
 public:
  struct Answer {
    int status = 404;
    std::string media_type;
    std::string body;
    enum class Challenge { kNone, kBearer, kBasic } challenge = Challenge::kNone;
    bool corrupt_blobs = false;
  };

  explicit LoopbackRegistry(const std::vector<Harness::Blob>& blobs) : blobs_(blobs) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) Fail("registry socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      Fail("registry listen");
    }
    port_ = ntohs(addr.sin_port);
    // Lives as long as the process (the harness is never destroyed).
    std::thread([this] { Serve(); }).detach();
  }

  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }

  void set_answer(Answer a) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(a);
  }

 private:
  void Serve() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{1, 0};  // a client that says nothing is dropped
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      Handle(c);
      ::close(c);
    }
  }

  void Handle(int c) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 64 * 1024) {
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    const size_t sp1 = req.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
    if (sp2 == std::string::npos) return;
    const std::string method = req.substr(0, sp1);
    const std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
    const bool authorized = absl::StrContains(absl::AsciiStrToLower(req), "\r\nauthorization:");
    Answer a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      a = answer_;
    }
    int status = a.status;
    std::string media_type = a.media_type;
    std::string body = a.body;
    std::string extra;
    if (absl::StartsWith(path, "/token")) {
      status = 200;
      media_type = "application/json";
      body = R"({"token":"fuzz-token","expires_in":300})";
    } else if (!authorized && a.challenge != Answer::Challenge::kNone) {
      status = 401;
      media_type = "application/json";
      body = R"({"errors":[{"code":"UNAUTHORIZED"}]})";
      extra = a.challenge == Answer::Challenge::kBasic
                  ? "WWW-Authenticate: Basic realm=\"fuzz\"\r\n"
                  : absl::StrCat("WWW-Authenticate: Bearer realm=\"http://", host(),
                                 "/token\",service=\"fuzz\"\r\n");
    } else if (const size_t at = path.rfind("/sha256:"); at != std::string::npos) {
      // A blob or a manifest by digest: the known one, else not found.
      const std::string digest = path.substr(at + 1);
      status = 404;
      body.clear();
      for (const Harness::Blob& b : blobs_) {
        if (b.digest != digest) continue;
        status = 200;
        media_type = b.media_type;
        body = b.bytes;
        if (a.corrupt_blobs && absl::StrContains(path, "/blobs/")) body.back() ^= 1;
        extra = absl::StrCat("Docker-Content-Digest: ", b.digest, "\r\n");
      }
    }
    std::string head = absl::StrCat("HTTP/1.1 ", status, " X\r\nConnection: close\r\n",
                                    "Content-Length: ", body.size(), "\r\n", extra);
    if (!media_type.empty()) absl::StrAppend(&head, "Content-Type: ", media_type, "\r\n");
    absl::StrAppend(&head, "\r\n");
    if (method != "HEAD") head += body;
    for (size_t sent = 0; sent < head.size();) {
      ssize_t n = ::send(c, head.data() + sent, head.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  const std::vector<Harness::Blob>& blobs_;
  int fd_ = -1;
  int port_ = 0;
  std::mutex mu_;
  Answer answer_;
};

Harness& Harness::Get() {
  static Harness* harness = new Harness();
  return *harness;
}

Harness::Harness() : blobs_(MakeBlobs()), registry_(std::make_unique<LoopbackRegistry>(blobs_)) {
  grpc_init();  // kept up for the process (see plugin/test_server.cc)
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/imaged-svc-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) Fail("mkdtemp failed");
  root_ = tmpl;
  // The socket in a short path: TMPDIR under Bazel is longer than a socket
  // path may be.
  std::string socket_dir = "/tmp/imaged-svc-XXXXXX";
  if (::mkdtemp(socket_dir.data()) == nullptr) Fail("mkdtemp failed");
  socket_dir_ = socket_dir;
  // At exit (libFuzzer's, or the replay main's) the directories go. imaged
  // is not shut down: RocksDB's own statics may be gone by then.
  std::atexit([] { Get().RemoveDirs(); });
  plugin::Config config;
  config.root = root_ + "/root";
  config.address = socket_dir + "/imaged.sock";
  config.registry_config_path = root_ + "/certs.d";
  // Only the collections the steps ask for, so the checks see a still store.
  config.gc_interval = absl::ZeroDuration();
  config.gc_delay = absl::Hours(24 * 365);
  config.gc_sweep_chunk = 2;  // an input's few blobs still make a sweep of several writes
  config.shutdown_timeout = absl::Seconds(1);
  // A registry answer that breaks HTTP is retried: 1, 2, 4 ms apart
  // instead of 250, 500, 1000 (most of a CRI input's time was such waits).
  config.pull_initial_backoff = absl::Milliseconds(1);
  absl::StatusOr<std::unique_ptr<plugin::Server>> server = plugin::Server::Start(config);
  if (!server.ok()) Fail(server.status().ToString());
  server_ = *std::move(server);
  // Over the socket, as clients call. gRPC's in-process channel was tried:
  // its calls left ~70 KiB of gRPC allocations behind per input (RSS +74
  // MiB per 1,000 inputs against +11 over the socket, at the same speed),
  // so a long run ran into libFuzzer's 2 GiB limit; and TSan cannot see it
  // hand the client's buffer to the server's parser.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(store::kMaxReceiveMessageBytes);
  args.SetMaxSendMessageSize(store::kMaxReceiveMessageBytes);
  channel_ = grpc::CreateCustomChannel("unix:" + config.address,
                                       grpc::InsecureChannelCredentials(), args);
}

Harness::~Harness() = default;

void Harness::RemoveDirs() {
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
  std::filesystem::remove_all(socket_dir_, ec);
}

void Harness::Prepare(grpc::ClientContext* ctx, FuzzedDataProvider& in) {
  ctx->set_deadline(std::chrono::system_clock::now() + CallDeadline());
  const int pick = in.ConsumeIntegralInRange(0, 99);
  std::string ns;
  bool header = true;
  if (pick < 60) {
    ns = home_;
  } else if (pick < 75) {
    ns = home_ == "fuzz" ? "k8s.io" : "fuzz";
  } else if (pick < 85) {
    ns = "other";
  } else if (pick < 90) {
    header = false;
  } else if (pick < 94) {
    ns = "";
  } else {
    // Never a valid name: what a step writes must be in kNamespaces.
    ns = "/" + HeaderText(in, 100);
  }
  if (header) ctx->AddMetadata(plugin::kNamespaceHeader, ns);
  if (in.ConsumeIntegralInRange(0, 4) == 0) {
    ctx->AddMetadata(plugin::kLeaseHeader, in.ConsumeBool() ? LeaseId(in) : HeaderText(in, 300));
  }
}

const Harness::Blob& Harness::KnownBlob(FuzzedDataProvider& in) const { return Pick(in, blobs_); }

std::string Harness::Digest(FuzzedDataProvider& in) const {
  switch (in.ConsumeIntegralInRange(0, 9)) {
    case 0:
      return store::Sha256::Of(Text(in, 16));  // well formed, unknown
    case 1:
      return Text(in, 80);
    default:
      return KnownBlob(in).digest;
  }
}

std::string Harness::Name(FuzzedDataProvider& in) const {
  switch (in.ConsumeIntegralInRange(0, 9)) {
    case 0:
      return "docker.io/library/fz:2";
    case 1:
      return "example.com/a/b:latest";
    case 2:
      return "docker.io/library/fz@" + blobs_[2].digest;
    case 3:
      return "fz:1";  // not normalised
    case 4:
      return blobs_[1].digest;  // an image ID
    case 5:
      return Text(in, 600);
    default:
      return "docker.io/library/fz:1";
  }
}

std::string Harness::LeaseId(FuzzedDataProvider& in) const {
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0:
      return HeaderText(in, 300);
    case 1:
      return "lease-2";
    default:
      return "lease-1";
  }
}

std::string Harness::Ref(FuzzedDataProvider& in) const {
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0:
      return Text(in, 300);
    case 1:
      return "ref-2";
    case 2:
      return "fuzz-" + KnownBlob(in).digest;
    default:
      return "ref-1";
  }
}

std::map<std::string, std::string> Harness::Labels(FuzzedDataProvider& in) const {
  static const std::vector<std::string> keys = {
      "a", "containerd.io/gc.root", "containerd.io/gc.ref.content.l.0",
      "containerd.io/gc.ref.content.m.1", "containerd.io/gc.expire", "containerd.io/uncompressed",
      "io.cri-containerd.image"};
  std::map<std::string, std::string> labels;
  const int n = in.ConsumeIntegralInRange(0, 3);
  for (int i = 0; i < n; ++i) {
    std::string key = in.ConsumeIntegralInRange(0, 4) == 0 ? Text(in, 5000) : Pick(in, keys);
    std::string value;
    switch (in.ConsumeIntegralInRange(0, 4)) {
      case 0:
        value = Text(in, 5000);
        break;
      case 1:
        value = "2000-01-01T00:00:00Z";
        break;
      case 2:
        value = "managed";
        break;
      default:
        value = Digest(in);
    }
    labels[std::move(key)] = std::move(value);
  }
  return labels;
}

std::vector<std::string> Harness::Filters(FuzzedDataProvider& in) const {
  static const std::vector<std::string> pool = {
      "name==docker.io/library/fz:1", "labels.a", R"(labels."containerd.io/gc.root")",
      "digest~=^sha256", "name~=^docker,labels.a==b", "id==lease-1", "ref==ref-1",
      "target.mediaType==application/vnd.oci.image.index.v1+json"};
  std::vector<std::string> filters;
  const int n = in.ConsumeIntegralInRange(0, 2);
  for (int i = 0; i < n; ++i) filters.push_back(in.ConsumeBool() ? Pick(in, pool) : Text(in, 100));
  return filters;
}

std::vector<std::string> Harness::FieldPaths(FuzzedDataProvider& in) const {
  static const std::vector<std::string> pool = {"labels", "labels.a", "target", "name",
                                                "labels.containerd.io/gc.root", "annotations"};
  std::vector<std::string> paths;
  const int n = in.ConsumeIntegralInRange(0, 2);
  for (int i = 0; i < n; ++i) paths.push_back(in.ConsumeBool() ? Pick(in, pool) : Text(in, 40));
  return paths;
}

std::string Harness::Text(FuzzedDataProvider& in, size_t max) {
  // Valid UTF-8 (bytes from 0x80 up read as Latin-1), as every protobuf
  // library sends string fields: an invalid one never reaches a handler
  // (gRPC fails its parse with Internal, as grpc-go does for containerd).
  std::string raw = in.ConsumeRandomLengthString(max);
  std::string text;
  text.reserve(raw.size());
  for (unsigned char c : raw) {
    if (c < 0x80) {
      text.push_back(static_cast<char>(c));
    } else {
      text.push_back(static_cast<char>(0xc0 | (c >> 6)));
      text.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return text;
}

std::string Harness::HeaderText(FuzzedDataProvider& in, size_t max) {
  // gRPC refuses to send anything but printable ASCII in a header.
  std::string text = in.ConsumeRandomLengthString(max);
  for (char& c : text) c = static_cast<char>(0x20 + static_cast<unsigned char>(c) % 95);
  return text;
}

void Harness::Check(const char* method, const grpc::Status& status,
                    std::initializer_list<grpc::StatusCode> also) {
  if (IsVerbose()) {
    std::fprintf(stderr, "code %s %d %s\n", method, status.error_code(),
                 status.error_message().substr(0, 160).c_str());
  }
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ABORTED:
      break;
    default:
      for (grpc::StatusCode code : also) {
        if (status.error_code() == code) return;
      }
      Fail(absl::StrCat(method, " answered code ", status.error_code(), ": ",
                        status.error_message().substr(0, 300)));
  }
  if (status.error_message().size() > store::kMaxErrorMessage) {
    Fail(absl::StrCat(method, " answered a ", status.error_message().size(), "-byte message"));
  }
}

void Harness::EndInput() {
  store::RocksDbImageStore& images = server_->image_store();
  store::RocksDbContentStore& content = server_->content_store();
  absl::StatusOr<store::RocksDbImageStore::CheckReport> report = images.Check(/*repair=*/false);
  if (!report.ok()) Fail("index check: " + report.status().ToString());
  if (!report->problems.empty()) Fail("index check: " + report->problems.front());

  const std::string blobs = server_->config().root + "/blobs";
  auto usage_matches = [&](bool empty) {
    // A collection a call started may still be removing files: give it a moment.
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<store::ContentUsage> usage = content.Usage();
      if (!usage.ok()) Fail("usage: " + usage.status().ToString());
      auto [bytes, files] = FilesUnder(blobs);
      // And the small blobs' rows: each the bytes of its digest.
      int64_t rows = 0, row_bytes = 0;
      store::PrefixScan scan(server_->metadata_db(), store::Cf::kBlobData, "");
      for (; scan.Valid(); scan.Next()) {
        if (store::Sha256::Of(scan.value()) != scan.key()) {
          Fail("a [blob_data] row is not its digest's bytes");
        }
        ++rows;
        row_bytes += static_cast<int64_t>(scan.value().size());
      }
      if (!scan.status().ok()) Fail("blob_data scan: " + scan.status().ToString());
      if (usage->bytes == bytes && usage->files == files && usage->inline_blobs == rows &&
          usage->inline_bytes == row_bytes && (!empty || files + rows == 0)) {
        return;
      }
      if (attempt == 200) {
        Fail(absl::StrFormat(
            "usage counts %d files, %d bytes, %d rows, %d bytes; blobs/ holds %d files, %d bytes, "
            "[blob_data] %d rows, %d bytes%s",
            usage->files, usage->bytes, usage->inline_blobs, usage->inline_bytes, files, bytes, rows,
            row_bytes, empty ? " (and should be empty)" : ""));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  usage_matches(/*empty=*/false);

  // Everything the input made goes, through the stores.
  for (const char* ns : kNamespaces) {
    if (*ns != '\0') {
      auto leases = server_->lease_store().List(ns, {});
      if (!leases.ok()) Fail("lease list: " + leases.status().ToString());
      for (const auto& l : *leases) server_->lease_store().Delete(ns, l.id).IgnoreError();
      auto list = images.List(ns, {});
      if (!list.ok()) Fail("image list: " + list.status().ToString());
      for (const store::Image& i : *list) {
        absl::Status s = images.Delete(ns, i.name);
        if (!s.ok()) Fail("image delete: " + s.ToString());
      }
    }
    auto ingests = content.ListStatuses(ns, {});
    if (!ingests.ok()) Fail("ingest list: " + ingests.status().ToString());
    for (const store::IngestStatus& i : *ingests) content.Abort(ns, i.ref).IgnoreError();
    std::vector<std::string> digests;
    absl::Status walked = content.Walk(ns, {}, [&](const store::ContentInfo& info) {
      digests.push_back(info.digest);
      return absl::OkStatus();
    });
    if (!walked.ok()) Fail("content walk: " + walked.ToString());
    for (const std::string& d : digests) {
      absl::Status s = content.Delete(ns, d);
      if (!s.ok() && !absl::IsNotFound(s)) Fail("content delete: " + s.ToString());
    }
  }
  auto collected = server_->gc().CollectNow({});
  if (!collected.ok()) Fail("collection: " + collected.status().ToString());
  usage_matches(/*empty=*/true);
  CompactEvery(server_->metadata_db());
}

namespace {
// The archive the last Transfer.Export of this input made (defined with the
// operations below).
std::string& LastArchive();

void Verbose(const char* step, std::chrono::steady_clock::time_point start) {
  if (!IsVerbose()) return;
  std::fprintf(stderr, "step %s %lld\n", step,
               static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::steady_clock::now() - start)
                                          .count()));
}

}  // namespace

int RunInput(const uint8_t* data, size_t size, const std::vector<Op>& ops) {
  FuzzedDataProvider in(data, size);
  Harness& harness = Harness::Get();
  LastArchive().clear();  // each input starts from nothing
  for (int step = 0; step < 24 && in.remaining_bytes() > 0; ++step) {
    const Op& op = ops[in.ConsumeIntegralInRange<size_t>(0, ops.size() - 1)];
    const auto start = std::chrono::steady_clock::now();
    op.run(harness, in);
    Verbose(op.name, start);
  }
  const auto start = std::chrono::steady_clock::now();
  harness.EndInput();
  Verbose("EndInput", start);
  return 0;
}

// ---------------------------------------------------------------------------
// The operations

namespace {

using Run = std::function<void(Harness&, FuzzedDataProvider&)>;

void SetTarget(Harness& h, FuzzedDataProvider& in, ::containerd::types::Descriptor* target) {
  if (in.ConsumeIntegralInRange(0, 5) == 0) {
    target->set_media_type(Harness::Text(in, 100));
    target->set_digest(h.Digest(in));
    target->set_size(in.ConsumeIntegral<int64_t>());
    return;
  }
  const Harness::Blob& b = h.KnownBlob(in);
  target->set_media_type(b.media_type);
  target->set_digest(b.digest);
  target->set_size(static_cast<int64_t>(b.bytes.size()));
}

// Content ---------------------------------------------------------------------

void ContentWrite(Harness& h, FuzzedDataProvider& in, bool whole_known_blob) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  auto stream = stub->Write(&ctx);
  const Harness::Blob& blob = h.KnownBlob(in);
  const std::string ref = h.Ref(in);
  const int messages = whole_known_blob ? 3 : in.ConsumeIntegralInRange(1, 6);
  size_t written = 0;
  for (int i = 0; i < messages; ++i) {
    contentpb::WriteContentRequest req;
    req.set_ref(i == 0 || whole_known_blob || in.ConsumeIntegralInRange(0, 4) != 0 ? ref
                                                                                   : h.Ref(in));
    if (whole_known_blob) {
      req.set_action(i == 0 ? contentpb::STAT : i == 1 ? contentpb::WRITE : contentpb::COMMIT);
      req.set_total(static_cast<int64_t>(blob.bytes.size()));
      req.set_expected(blob.digest);
      if (i == 1) req.set_data(blob.bytes);
    } else {
      req.set_action(static_cast<contentpb::WriteAction>(in.ConsumeIntegralInRange(0, 3)));
      if (in.ConsumeBool()) {
        req.set_total(in.ConsumeBool() ? static_cast<int64_t>(blob.bytes.size())
                                       : in.ConsumeIntegral<int64_t>());
      }
      if (in.ConsumeBool()) req.set_expected(in.ConsumeBool() ? blob.digest : h.Digest(in));
      if (in.ConsumeBool()) {
        // A piece of the known blob where the write stands, or anything anywhere.
        const size_t n = in.ConsumeIntegralInRange<size_t>(0, blob.bytes.size());
        if (in.ConsumeIntegralInRange(0, 3) != 0 && written < blob.bytes.size()) {
          req.set_offset(static_cast<int64_t>(written));
          req.set_data(blob.bytes.substr(written, n));
          written += req.data().size();
        } else {
          req.set_offset(in.ConsumeIntegralInRange<int64_t>(-2, 1 << 20));
          req.set_data(Harness::Text(in, 4096));
        }
      }
      if (in.ConsumeIntegralInRange(0, 3) == 0) {
        for (auto& [k, v] : h.Labels(in)) (*req.mutable_labels())[k] = v;
      }
    }
    contentpb::WriteContentResponse resp;
    if (!stream->Write(req) || !stream->Read(&resp)) break;
  }
  stream->WritesDone();
  Harness::Check("Content.Write", stream->Finish());
}

void ContentInfo(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::InfoRequest req;
  req.set_digest(h.Digest(in));
  contentpb::InfoResponse resp;
  Harness::Check("Content.Info", stub->Info(&ctx, req, &resp));
}

void ContentUpdate(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::UpdateRequest req;
  req.mutable_info()->set_digest(h.Digest(in));
  if (in.ConsumeBool()) req.mutable_info()->set_size(in.ConsumeIntegral<int64_t>());
  for (auto& [k, v] : h.Labels(in)) (*req.mutable_info()->mutable_labels())[k] = v;
  for (const std::string& p : h.FieldPaths(in)) req.mutable_update_mask()->add_paths(p);
  contentpb::UpdateResponse resp;
  Harness::Check("Content.Update", stub->Update(&ctx, req, &resp));
}

void ContentList(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::ListContentRequest req;
  for (const std::string& f : h.Filters(in)) req.add_filters(f);
  auto reader = stub->List(&ctx, req);
  contentpb::ListContentResponse resp;
  while (reader->Read(&resp)) {
  }
  Harness::Check("Content.List", reader->Finish());
}

void ContentDelete(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::DeleteContentRequest req;
  req.set_digest(h.Digest(in));
  google::protobuf::Empty resp;
  Harness::Check("Content.Delete", stub->Delete(&ctx, req, &resp));
}

void ContentRead(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::ReadContentRequest req;
  req.set_digest(h.Digest(in));
  if (in.ConsumeBool()) {
    req.set_offset(in.ConsumeIntegral<int64_t>());
    req.set_size(in.ConsumeIntegral<int64_t>());
  } else {
    req.set_offset(in.ConsumeIntegralInRange<int64_t>(-1, 300));
    req.set_size(in.ConsumeIntegralInRange<int64_t>(-1, 300));
  }
  auto reader = stub->Read(&ctx, req);
  contentpb::ReadContentResponse resp;
  while (reader->Read(&resp)) {
  }
  Harness::Check("Content.Read", reader->Finish());
}

void ContentStatus(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::StatusRequest req;
  req.set_ref(h.Ref(in));
  contentpb::StatusResponse resp;
  Harness::Check("Content.Status", stub->Status(&ctx, req, &resp));
}

void ContentListStatuses(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::ListStatusesRequest req;
  for (const std::string& f : h.Filters(in)) req.add_filters(f);
  contentpb::ListStatusesResponse resp;
  Harness::Check("Content.ListStatuses", stub->ListStatuses(&ctx, req, &resp));
}

void ContentAbort(Harness& h, FuzzedDataProvider& in) {
  auto stub = contentpb::Content::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  contentpb::AbortRequest req;
  req.set_ref(h.Ref(in));
  google::protobuf::Empty resp;
  Harness::Check("Content.Abort", stub->Abort(&ctx, req, &resp));
}

// Images and events -----------------------------------------------------------

void FillImage(Harness& h, FuzzedDataProvider& in, imagespb::Image* image) {
  image->set_name(h.Name(in));
  for (auto& [k, v] : h.Labels(in)) (*image->mutable_labels())[k] = v;
  if (in.ConsumeIntegralInRange(0, 7) != 0) SetTarget(h, in, image->mutable_target());
}

void ImagesGet(Harness& h, FuzzedDataProvider& in) {
  auto stub = imagespb::Images::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  imagespb::GetImageRequest req;
  req.set_name(h.Name(in));
  imagespb::GetImageResponse resp;
  Harness::Check("Images.Get", stub->Get(&ctx, req, &resp));
}

void ImagesList(Harness& h, FuzzedDataProvider& in) {
  auto stub = imagespb::Images::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  imagespb::ListImagesRequest req;
  for (const std::string& f : h.Filters(in)) req.add_filters(f);
  imagespb::ListImagesResponse resp;
  Harness::Check("Images.List", stub->List(&ctx, req, &resp));
}

// A timestamp, mostly a plausible one, sometimes any bits (out of range).
void SetTimestamp(FuzzedDataProvider& in, google::protobuf::Timestamp* ts) {
  if (in.ConsumeBool()) {
    ts->set_seconds(in.ConsumeIntegralInRange<int64_t>(0, 4102444800));
    ts->set_nanos(in.ConsumeIntegralInRange<int32_t>(0, 999999999));
  } else {
    ts->set_seconds(in.ConsumeIntegral<int64_t>());
    ts->set_nanos(in.ConsumeIntegral<int32_t>());
  }
}

void ImagesCreate(Harness& h, FuzzedDataProvider& in) {
  auto stub = imagespb::Images::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  imagespb::CreateImageRequest req;
  FillImage(h, in, req.mutable_image());
  if (in.ConsumeBool()) SetTimestamp(in, req.mutable_source_date_epoch());  // containerd 2.x
  imagespb::CreateImageResponse resp;
  Harness::Check("Images.Create", stub->Create(&ctx, req, &resp));
}

void ImagesUpdate(Harness& h, FuzzedDataProvider& in) {
  auto stub = imagespb::Images::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  imagespb::UpdateImageRequest req;
  FillImage(h, in, req.mutable_image());
  for (const std::string& p : h.FieldPaths(in)) req.mutable_update_mask()->add_paths(p);
  if (in.ConsumeBool()) SetTimestamp(in, req.mutable_source_date_epoch());  // containerd 2.x
  imagespb::UpdateImageResponse resp;
  Harness::Check("Images.Update", stub->Update(&ctx, req, &resp));
}

void ImagesDelete(Harness& h, FuzzedDataProvider& in) {
  auto stub = imagespb::Images::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  imagespb::DeleteImageRequest req;
  req.set_name(h.Name(in));
  req.set_sync(in.ConsumeBool());
  if (in.ConsumeBool()) req.mutable_target()->set_digest(h.Digest(in));  // containerd 2.x's guard
  google::protobuf::Empty resp;
  Harness::Check("Images.Delete", stub->Delete(&ctx, req, &resp));
}

void SetEvent(FuzzedDataProvider& in, google::protobuf::Any* event) {
  event->set_type_url(in.ConsumeBool() ? "containerd.services.images.v1.ImageCreate"
                                       : Harness::Text(in, 100));
  event->set_value(Harness::Text(in, 200));
}

void EventsPublish(Harness& h, FuzzedDataProvider& in) {
  auto stub = eventspb::Events::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  eventspb::PublishRequest req;
  req.set_topic(in.ConsumeBool() ? "/images/create" : Harness::Text(in, 100));
  if (in.ConsumeBool()) SetEvent(in, req.mutable_event());
  google::protobuf::Empty resp;
  Harness::Check("Events.Publish", stub->Publish(&ctx, req, &resp));
}

void EventsForward(Harness& h, FuzzedDataProvider& in) {
  auto stub = eventspb::Events::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  eventspb::ForwardRequest req;
  req.mutable_envelope()->set_namespace_(in.ConsumeBool() ? "fuzz" : Harness::Text(in, 100));
  req.mutable_envelope()->set_topic(in.ConsumeBool() ? "/images/delete" : Harness::Text(in, 100));
  if (in.ConsumeBool()) SetEvent(in, req.mutable_envelope()->mutable_event());
  google::protobuf::Empty resp;
  Harness::Check("Events.Forward", stub->Forward(&ctx, req, &resp));
}

// Leases ----------------------------------------------------------------------

void SetResource(Harness& h, FuzzedDataProvider& in, leasespb::Resource* r) {
  switch (in.ConsumeIntegralInRange(0, 4)) {
    case 0:
      r->set_type("ingests");
      r->set_id(h.Ref(in));
      break;
    case 1:
      r->set_type(in.ConsumeBool() ? "snapshots/overlayfs" : Harness::Text(in, 200));
      r->set_id(Harness::Text(in, 600));
      break;
    default:
      r->set_type("content");
      r->set_id(h.Digest(in));
  }
}

void LeasesCreate(Harness& h, FuzzedDataProvider& in) {
  auto stub = leasespb::Leases::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  leasespb::CreateRequest req;
  if (in.ConsumeIntegralInRange(0, 5) != 0) req.set_id(h.LeaseId(in));
  for (auto& [k, v] : h.Labels(in)) (*req.mutable_labels())[k] = v;
  leasespb::CreateResponse resp;
  Harness::Check("Leases.Create", stub->Create(&ctx, req, &resp));
}

void LeasesDelete(Harness& h, FuzzedDataProvider& in) {
  auto stub = leasespb::Leases::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  leasespb::DeleteRequest req;
  req.set_id(h.LeaseId(in));
  req.set_sync(in.ConsumeBool());
  google::protobuf::Empty resp;
  Harness::Check("Leases.Delete", stub->Delete(&ctx, req, &resp));
}

void LeasesList(Harness& h, FuzzedDataProvider& in) {
  auto stub = leasespb::Leases::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  leasespb::ListRequest req;
  for (const std::string& f : h.Filters(in)) req.add_filters(f);
  leasespb::ListResponse resp;
  Harness::Check("Leases.List", stub->List(&ctx, req, &resp));
}

void LeasesAddResource(Harness& h, FuzzedDataProvider& in) {
  auto stub = leasespb::Leases::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  leasespb::AddResourceRequest req;
  req.set_id(h.LeaseId(in));
  SetResource(h, in, req.mutable_resource());
  google::protobuf::Empty resp;
  // A type containerd does not know (not content, ingests or
  // snapshots/<snapshotter>): Unimplemented, as containerd answers.
  Harness::Check("Leases.AddResource", stub->AddResource(&ctx, req, &resp), {grpc::StatusCode::UNIMPLEMENTED});
}

void LeasesDeleteResource(Harness& h, FuzzedDataProvider& in) {
  auto stub = leasespb::Leases::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  leasespb::DeleteResourceRequest req;
  req.set_id(h.LeaseId(in));
  SetResource(h, in, req.mutable_resource());
  google::protobuf::Empty resp;
  // A type containerd does not know (not content, ingests or
  // snapshots/<snapshotter>): Unimplemented, as containerd answers.
  Harness::Check("Leases.DeleteResource", stub->DeleteResource(&ctx, req, &resp), {grpc::StatusCode::UNIMPLEMENTED});
}

void LeasesListResources(Harness& h, FuzzedDataProvider& in) {
  auto stub = leasespb::Leases::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  leasespb::ListResourcesRequest req;
  req.set_id(h.LeaseId(in));
  leasespb::ListResourcesResponse resp;
  Harness::Check("Leases.ListResources", stub->ListResources(&ctx, req, &resp));
}

// CRI -------------------------------------------------------------------------

// What kubelet names an image by: a reference, an image ID or a prefix of one.
std::string CriImage(Harness& h, FuzzedDataProvider& in) {
  const std::string id = h.KnownBlob(in).digest;
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0:
      return id;
    case 1:
      return id.substr(7, in.ConsumeIntegralInRange<size_t>(0, 64));
    case 2:
      return "";
    default:
      return h.Name(in);
  }
}

void CriListImages(Harness& h, FuzzedDataProvider& in) {
  auto stub = cripb::ImageService::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  cripb::ListImagesRequest req;
  if (in.ConsumeBool()) req.mutable_filter()->mutable_image()->set_image(CriImage(h, in));
  cripb::ListImagesResponse resp;
  Harness::Check("CRI.ListImages", stub->ListImages(&ctx, req, &resp));
}

void CriImageStatus(Harness& h, FuzzedDataProvider& in) {
  auto stub = cripb::ImageService::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  cripb::ImageStatusRequest req;
  req.mutable_image()->set_image(CriImage(h, in));
  req.set_verbose(in.ConsumeBool());
  cripb::ImageStatusResponse resp;
  Harness::Check("CRI.ImageStatus", stub->ImageStatus(&ctx, req, &resp));
}

void CriPullImage(Harness& h, FuzzedDataProvider& in) {
  auto stub = cripb::ImageService::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  cripb::PullImageRequest req;
  bool corrupt = false;
  // Never off the machine: the harness's loopback registry, answering as
  // the step says, or (rarely) a loopback port nobody listens on.
  if (in.ConsumeIntegralInRange(0, 15) == 0) {
    // A refused connection is retried with backoff (here 1, 2 and 4 ms,
    // see the Harness): the caller gives up during it, as kubelet gives up
    // during a real registry's, and the pull must stop with it.
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(5));
    req.mutable_image()->set_image("127.0.0.1:1/" + (in.ConsumeBool() ? "fz:1" : Harness::Text(in, 100)));
  } else {
    const std::vector<Harness::Blob>& blobs = h.blobs();
    LoopbackRegistry::Answer a;
    switch (in.ConsumeIntegralInRange(0, 7)) {
      case 0:
        a.status = 404;
        break;
      case 1:
        a.status = in.PickValueInArray({400, 403, 405, 418});
        break;
      case 2:  // an image for another platform only
        a.status = 200;
        a.media_type = blobs[5].media_type;
        a.body = blobs[5].bytes;
        break;
      case 3:
        a.status = 200;
        a.media_type = in.ConsumeBool() ? blobs[in.ConsumeIntegralInRange<size_t>(0, blobs.size() - 1)].media_type
                                        : Harness::Text(in, 80);
        a.body = Harness::Text(in, 2000);
        break;
      case 4:  // the index over both
        a.status = 200;
        a.media_type = blobs[6].media_type;
        a.body = blobs[6].bytes;
        break;
      default:
        a.status = 200;
        a.media_type = blobs[2].media_type;
        a.body = blobs[2].bytes;
        break;
    }
    switch (in.ConsumeIntegralInRange(0, 7)) {
      case 0:
        a.challenge = LoopbackRegistry::Answer::Challenge::kBearer;
        break;
      case 1:
        a.challenge = LoopbackRegistry::Answer::Challenge::kBasic;
        break;
      default:
        break;
    }
    a.corrupt_blobs = in.ConsumeIntegralInRange(0, 7) == 0;
    corrupt = a.corrupt_blobs;
    h.registry().set_answer(std::move(a));
    std::string ref;
    switch (in.ConsumeIntegralInRange(0, 5)) {
      case 0:
        ref = Harness::Text(in, 100);
        break;
      case 1:  // by digest
        ref = "fz@" + blobs[in.ConsumeBool() ? 2 : 6].digest;
        break;
      case 2:
        ref = "fz:2";
        break;
      default:
        ref = "fz:1";
        break;
    }
    req.mutable_image()->set_image(absl::StrCat(h.registry().host(), "/", ref));
  }
  if (in.ConsumeBool()) {
    req.mutable_auth()->set_username(Harness::Text(in, 50));
    req.mutable_auth()->set_password(Harness::Text(in, 50));
    req.mutable_auth()->set_auth(Harness::Text(in, 100));
  }
  cripb::PullImageResponse resp;
  grpc::Status status = stub->PullImage(&ctx, req, &resp);
  // A blob that does not match its digest is DataLoss (docs/registry.md);
  // from anything else it would be imaged's own.
  if (corrupt && status.error_code() == grpc::StatusCode::DATA_LOSS) return;
  Harness::Check("CRI.PullImage", status,
                 {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::UNAUTHENTICATED,
                  grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::DEADLINE_EXCEEDED});

}

void CriRemoveImage(Harness& h, FuzzedDataProvider& in) {
  auto stub = cripb::ImageService::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  cripb::RemoveImageRequest req;
  req.mutable_image()->set_image(CriImage(h, in));
  cripb::RemoveImageResponse resp;
  Harness::Check("CRI.RemoveImage", stub->RemoveImage(&ctx, req, &resp));
}

void CriImageFsInfo(Harness& h, FuzzedDataProvider& in) {
  auto stub = cripb::ImageService::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  cripb::ImageFsInfoRequest req;
  cripb::ImageFsInfoResponse resp;
  Harness::Check("CRI.ImageFsInfo", stub->ImageFsInfo(&ctx, req, &resp));
}

// Admin -----------------------------------------------------------------------

void AdminCheckIndex(Harness& h, FuzzedDataProvider& in) {
  auto stub = adminpb::Admin::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  adminpb::CheckIndexRequest req;
  req.set_repair(in.ConsumeBool());
  adminpb::CheckIndexResponse resp;
  Harness::Check("Admin.CheckIndex", stub->CheckIndex(&ctx, req, &resp));
  if (resp.problems_size() > 0) Fail("Admin.CheckIndex: " + resp.problems(0));
}

void AdminListUnresolved(Harness& h, FuzzedDataProvider& in) {
  auto stub = adminpb::Admin::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  adminpb::ListUnresolvedRequest req;
  adminpb::ListUnresolvedResponse resp;
  Harness::Check("Admin.ListUnresolved", stub->ListUnresolved(&ctx, req, &resp));
}

void AdminGarbageCollect(Harness& h, FuzzedDataProvider& in) {
  auto stub = adminpb::Admin::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  adminpb::GarbageCollectRequest req;
  const int n = in.ConsumeIntegralInRange(0, 3);
  for (int i = 0; i < n; ++i) {
    req.add_namespaces(in.ConsumeIntegralInRange(0, 4) == 0 ? Harness::Text(in, 100)
                                                           : kNamespaces[in.ConsumeIntegralInRange(0, 2)]);
  }
  adminpb::GarbageCollectResponse resp;
  Harness::Check("Admin.GarbageCollect", stub->GarbageCollect(&ctx, req, &resp));
}

void AdminDiskUsage(Harness& h, FuzzedDataProvider& in) {
  auto stub = adminpb::Admin::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  adminpb::DiskUsageRequest req;
  adminpb::DiskUsageResponse resp;
  Harness::Check("Admin.DiskUsage", stub->DiskUsage(&ctx, req, &resp));
}

void AdminMirrorStatus(Harness& h, FuzzedDataProvider& in) {
  auto stub = adminpb::Admin::NewStub(h.channel());
  grpc::ClientContext ctx;
  h.Prepare(&ctx, in);
  adminpb::MirrorStatusRequest req;
  adminpb::MirrorStatusResponse resp;
  Harness::Check("Admin.MirrorStatus", stub->MirrorStatus(&ctx, req, &resp));
}

// containerd 2.x's Transfer, as ctr 2.x drives it (plugin/transfer_client.h):
// exports of names from the pools, imports of the last export (sometimes
// with bytes of the input spliced in) or of input bytes, and raw requests of
// any served or unserved pair with input bytes as the Anys' values.
std::string& LastArchive() {
  static auto* archive = new std::string();
  return *archive;
}

plugin::TransferCall TransferCallFor(FuzzedDataProvider& in) {
  plugin::TransferCall call;
  const int pick = in.ConsumeIntegralInRange(0, 9);
  call.ns = pick < 7 ? "fuzz" : pick < 9 ? "other" : "";
  if (in.ConsumeBool()) call.progress = [](const plugin::TransferProgress&) {};
  return call;
}

void TransferExport(Harness& h, FuzzedDataProvider& in) {
  plugin::TransferClient client(h.channel());
  std::vector<std::string> names;
  const int n = in.ConsumeIntegralInRange(0, 3);
  for (int i = 0; i < n; ++i) names.push_back(h.Name(in));
  plugin::TransferExportOptions options;
  options.all_platforms = in.ConsumeBool();
  options.skip_manifest_json = in.ConsumeBool();
  if (in.ConsumeBool()) options.platforms.push_back({"linux", in.ConsumeBool() ? "amd64" : "arm64"});
  std::string archive;
  absl::Status s = client.Export(
      TransferCallFor(in), names,
      [&](absl::string_view data) {
        archive.append(data.data(), data.size());
        return absl::OkStatus();
      },
      options);
  if (s.ok()) LastArchive() = archive;
  Harness::Check("Transfer.Export", plugin::ToGrpcStatus(s));
}

// What an import takes: the last export of this input, sometimes damaged (a
// run of the input's bytes over part of it), or input bytes.
std::string ArchiveToImport(FuzzedDataProvider& in) {
  std::string archive;
  if (in.ConsumeBool() && !LastArchive().empty()) {
    archive = LastArchive();
    if (in.ConsumeBool()) {
      size_t at = in.ConsumeIntegralInRange<size_t>(0, archive.size() - 1);
      std::string patch = in.ConsumeRandomLengthString(64);
      archive.replace(at, std::min(patch.size(), archive.size() - at), patch);
    }
  } else {
    archive = in.ConsumeRandomLengthString(4096);
  }
  return archive;
}

void TransferImport(Harness& h, FuzzedDataProvider& in) {
  plugin::TransferClient client(h.channel());
  std::string archive = ArchiveToImport(in);
  plugin::TransferImportOptions options;
  if (in.ConsumeBool()) options.base_name = h.Name(in);
  options.digests = in.ConsumeBool();
  options.skip_digest_for_named = in.ConsumeBool();
  if (in.ConsumeBool()) options.platforms.clear();
  options.labels = h.Labels(in);
  absl::Status s = client.ImportBytes(TransferCallFor(in), archive, options);
  Harness::Check("Transfer.Import", plugin::ToGrpcStatus(s), {grpc::StatusCode::UNIMPLEMENTED});
}

// imaged.v1.Archives/Import (imagectl import): the last export of this
// input (whole or damaged) or input bytes, cut into messages of any size,
// with options in the first message (and sometimes again, which is refused).
void ArchivesImport(Harness& h, FuzzedDataProvider& in) {
  std::string archive = ArchiveToImport(in);
  auto stub = ::imaged::v1::Archives::NewStub(h.channel());
  grpc::ClientContext ctx;
  const int pick = in.ConsumeIntegralInRange(0, 9);
  if (pick < 9) ctx.AddMetadata("containerd-namespace", pick < 7 ? "fuzz" : "other");
  ::imaged::v1::ImportResponse resp;
  auto writer = stub->Import(&ctx, &resp);
  ::imaged::v1::ImportRequest req;
  if (in.ConsumeBool()) req.mutable_options()->set_base_name(h.Name(in));
  req.mutable_options()->set_digests(in.ConsumeBool());
  req.mutable_options()->set_all_platforms(in.ConsumeBool());
  if (in.ConsumeBool()) req.mutable_options()->set_platform(Harness::HeaderText(in, 40));
  size_t at = 0;
  do {
    size_t n = std::min(archive.size() - at, in.ConsumeIntegralInRange<size_t>(0, 2048));
    req.set_data(archive.substr(at, n));
    at += n;
    if (!writer->Write(req)) break;
    req.clear_options();
    if (in.ConsumeIntegralInRange(0, 31) == 0) req.mutable_options();  // options again
  } while (at < archive.size());
  writer->WritesDone();
  // A damaged archive is DataLoss (docs/archive.md).
  Harness::Check("Archives.Import", writer->Finish(), {grpc::StatusCode::DATA_LOSS});
}

void TransferRaw(Harness& h, FuzzedDataProvider& in) {
  static const char* const kTypes[] = {
      "containerd.types.transfer.OCIRegistry",      "containerd.types.transfer.ImageStore",
      "containerd.types.transfer.ImageImportStream", "containerd.types.transfer.ImageExportStream",
      "type.googleapis.com/containerd.types.transfer.ImageStore", "google.protobuf.Empty"};
  auto type = [&] {
    return in.ConsumeIntegralInRange(0, 9) == 0
               ? Harness::HeaderText(in, 200)
               : std::string(kTypes[in.ConsumeIntegralInRange<size_t>(0, std::size(kTypes) - 1)]);
  };
  plugin::TransferClient client(h.channel());
  std::string src_type = type(), dst_type = type();
  std::string src = in.ConsumeRandomLengthString(512), dst = in.ConsumeRandomLengthString(512);
  absl::Status s = client.RawTransfer(TransferCallFor(in), src_type, src, dst_type, dst);
  // A pull reaches no registry here: the puller's hosts are unreachable or
  // refuse (Unavailable, Unauthenticated...); an unserved pair is Unimplemented.
  Harness::Check("Transfer.Raw", plugin::ToGrpcStatus(s),
                 {grpc::StatusCode::UNIMPLEMENTED, grpc::StatusCode::UNAVAILABLE,
                  grpc::StatusCode::UNAUTHENTICATED, grpc::StatusCode::PERMISSION_DENIED,
                  grpc::StatusCode::RESOURCE_EXHAUSTED, grpc::StatusCode::CANCELLED});
}

const std::vector<Op>& AllOps() {
  static const auto* ops = new std::vector<Op>{
      {"Content.Write", [](Harness& h, FuzzedDataProvider& in) { ContentWrite(h, in, false); }},
      // A whole known blob in one stream, so later steps find blobs to use.
      {"Content.WriteKnown", [](Harness& h, FuzzedDataProvider& in) { ContentWrite(h, in, true); }},
      {"Content.Info", ContentInfo},
      {"Content.Update", ContentUpdate},
      {"Content.List", ContentList},
      {"Content.Delete", ContentDelete},
      {"Content.Read", ContentRead},
      {"Content.Status", ContentStatus},
      {"Content.ListStatuses", ContentListStatuses},
      {"Content.Abort", ContentAbort},
      {"Images.Get", ImagesGet},
      {"Images.List", ImagesList},
      {"Images.Create", ImagesCreate},
      {"Images.Update", ImagesUpdate},
      {"Images.Delete", ImagesDelete},
      {"Events.Publish", EventsPublish},
      {"Events.Forward", EventsForward},
      {"Leases.Create", LeasesCreate},
      {"Leases.Delete", LeasesDelete},
      {"Leases.List", LeasesList},
      {"Leases.AddResource", LeasesAddResource},
      {"Leases.DeleteResource", LeasesDeleteResource},
      {"Leases.ListResources", LeasesListResources},
      {"CRI.ListImages", CriListImages},
      {"CRI.ImageStatus", CriImageStatus},
      {"CRI.PullImage", CriPullImage},
      {"CRI.RemoveImage", CriRemoveImage},
      {"CRI.ImageFsInfo", CriImageFsInfo},
      {"Admin.CheckIndex", AdminCheckIndex},
      {"Admin.ListUnresolved", AdminListUnresolved},
      {"Admin.GarbageCollect", AdminGarbageCollect},
      {"Admin.DiskUsage", AdminDiskUsage},
      {"Admin.MirrorStatus", AdminMirrorStatus},
      {"Transfer.Export", TransferExport},
      {"Transfer.Import", TransferImport},
      {"Transfer.Raw", TransferRaw},
      {"Archives.Import", ArchivesImport},
  };
  return *ops;
}

}  // namespace

std::vector<Op> Ops(std::initializer_list<const char*> names) {
  std::vector<Op> ops;
  for (const char* name : names) {
    bool found = false;
    for (const Op& op : AllOps()) {
      if (std::string_view(op.name) == name) {
        ops.push_back(op);
        found = true;
      }
    }
    if (!found) Fail(absl::StrCat("no operation ", name));
  }
  return ops;
}

}  // namespace imaged::fuzz
