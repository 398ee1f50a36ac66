// hostile_client: malformed, mutated and oversized requests to every method
// imaged serves, from several threads at once, while a probe thread times
// the small calls an ordinary client makes meanwhile (tools/soak/hostile.sh;
// not run in CI).
//
//   hostile_client --address SOCK [--threads 8] [--duration 10m] [--seed N]
//
// Each request starts as a message of the method's type filled at random
// through protobuf reflection, string fields mostly from small pools
// (namespaces, names, digests, lease ids, label keys, filters, field paths)
// so that calls meet each other's state, sometimes a field of 1 KiB to
// 8 MiB, a repeated field of thousands of entries, integers at their
// extremes or an undefined enum value. A third of the serialized requests
// are then mutated as bytes (flipped, cut, spliced, or replaced by random
// bytes), so most of those no longer parse as the method's type. The
// namespace header is absent, empty, invalid, oversized or a real one.
// Content.Write gets a stream of such requests. PullImage is only ever sent
// references to 127.0.0.1:1 (nothing listens there) or ones that cannot
// parse, and is never byte-mutated, so no traffic leaves the machine.
//
// Every call has a 30 s deadline. A code other than the ones a client may
// be told for a bad request (OK, Cancelled, InvalidArgument, NotFound,
// AlreadyExists, FailedPrecondition, OutOfRange, ResourceExhausted,
// Unavailable; DeadlineExceeded only from Events.Subscribe, whose stream is
// cut at 1 s by design; Unimplemented only for a lease resource of an
// unknown type, as containerd; Internal only for a body that does not parse
// as the method's type, which gRPC refuses before any handler, as
// containerd's Go gRPC does) is unexpected, as is an error message longer
// than 1 KiB + 64.
//
// The probe thread, every 200 ms, in its own namespace: Images.Create and
// Images.Delete of a name, Content.Update of a blob's label, CRI ListImages.
// At the end: per method, calls and codes; per probe, p50/p99/max latency;
// Admin.CheckIndex must report no problem; then one line
//   summary calls=N unexpected=N probe_max_ms=N longest_message=N
// Exit 1 on an unexpected code or a failed check.
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "api/containerd/services/leases/v1/leases.grpc.pb.h"
#include "api/imaged/v1/admin.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/stubs/logging.h"
#include "store/digest.h"

namespace {

namespace pb = ::google::protobuf;
namespace contentpb = ::containerd::services::content::v1;
namespace imagespb = ::containerd::services::images::v1;
namespace cripb = ::runtime::v1;
namespace adminpb = ::imaged::v1;

constexpr absl::Duration kDeadline = absl::Seconds(30);
constexpr size_t kMaxMessage = 1024 + 64;  // the server cuts details at 1 KiB

const char* const kServices[] = {
    "containerd.services.content.v1.Content", "containerd.services.images.v1.Images",
    "containerd.services.events.v1.Events",   "containerd.services.leases.v1.Leases",
    "runtime.v1.ImageService",                "imaged.v1.Admin",
};

struct Method {
  std::string path;  // /package.Service/Method
  const pb::MethodDescriptor* desc;
};

// Per-method tallies, merged from every thread.
struct Tally {
  int64_t calls = 0;
  std::map<int, int64_t> codes;
  int64_t unexpected = 0;
};

// gRPC's codes are absl's (plugin/grpc_status.h relies on it too).
std::string CodeName(int code) { return absl::StatusCodeToString(static_cast<absl::StatusCode>(code)); }

bool Expected(const std::string& method, int code, bool parses) {
  // A body that does not parse is refused by gRPC itself, before any
  // handler: Internal, as containerd's Go gRPC answers it.
  if (!parses && code == grpc::INTERNAL) return true;
  switch (static_cast<grpc::StatusCode>(code)) {
    case grpc::OK:
    case grpc::CANCELLED:
    case grpc::INVALID_ARGUMENT:
    case grpc::NOT_FOUND:
    case grpc::ALREADY_EXISTS:
    case grpc::FAILED_PRECONDITION:
    case grpc::OUT_OF_RANGE:
    case grpc::RESOURCE_EXHAUSTED:
    case grpc::UNAVAILABLE:
      return true;
    case grpc::DEADLINE_EXCEEDED:
      return method == "/containerd.services.events.v1.Events/Subscribe";
    case grpc::UNIMPLEMENTED:  // a lease resource type other than content, ingests, snapshots/*
      return method == "/containerd.services.leases.v1.Leases/AddResource" ||
             method == "/containerd.services.leases.v1.Leases/DeleteResource";
    default:
      return false;
  }
}

// Random requests, one generator per thread.
class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {
    for (int i = 0; i < 4; ++i) {
      digests_.push_back(imaged::store::Sha256::Of(absl::StrCat("hostile blob ", i)));
    }
  }

  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  size_t Below(size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Below(v.size())]; }

  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng_());
    return s;
  }

  // 1 KiB to 8 MiB, log-uniform; mostly printable so it parses as a string.
  std::string Huge() {
    size_t n = static_cast<size_t>(1024.0 * std::pow(8192.0, std::uniform_real_distribution<double>(0, 1)(rng_)));
    return Chance(0.5) ? std::string(n, 'a' + static_cast<char>(Below(26))) : Bytes(n);
  }

  std::string Namespace() {
    static const std::vector<std::string> kPool = {"default", "k8s.io", "hostile", "", "-bad",
                                                   "a/b", std::string(77, 'n')};
    return Pick(kPool);
  }

  // A string for `field`, chosen by its name.
  std::string StringFor(const pb::FieldDescriptor* f) {
    if (Chance(0.03)) return Huge();
    const std::string& n = f->name();
    static const std::vector<std::string> kNames = {
        "docker.io/library/busybox:1", "k8s.io/pause:3.9", "127.0.0.1:1/hostile/x:1",
        "hostile/img:latest", "", "UPPER/case", "a:b:c", std::string(300, 'x')};
    static const std::vector<std::string> kIds = {"lease-1", "lease-2", "ref-1", "ref-2", "",
                                                  "bad id!", std::string(100, 'i')};
    static const std::vector<std::string> kKeys = {
        "containerd.io/gc.root", "containerd.io/gc.ref.content.l0", "containerd.io/gc.ref.content.m",
        "containerd.io/gc.expire", "containerd.io/gc.flat", "io.cri-containerd.image", "k", ""};
    static const std::vector<std::string> kFilters = {
        "name==hostile/img:latest", "labels.\"k\"==v", "target.digest~=sha256", "name~=[",
        "labels.containerd.io/gc.root", ",,", "name==a,name==b", ""};
    static const std::vector<std::string> kPaths = {"labels", "labels.k", "target", "annotations",
                                                    "name", "labels.containerd.io/gc.root", ""};
    static const std::vector<std::string> kMedia = {
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json", "", "text/plain"};
    if (n == "namespace" || n == "namespaces") return Namespace();
    if (n == "digest" || n == "expected" || n == "image_id") {
      return Chance(0.8) ? Pick(digests_) : Pick(std::vector<std::string>{"sha256:", "md5:00", ""});
    }
    if (n == "name" || n == "image") return Pick(kNames);
    if (n == "id" || n == "ref" || n == "lease") return Pick(kIds);
    if (n == "key") return Pick(kKeys);
    if (n == "filters") return Pick(kFilters);
    if (n == "paths") return Pick(kPaths);
    if (n == "media_type") return Pick(kMedia);
    if (n == "topic") return Pick(std::vector<std::string>{"/images/create", "/x", "", "bad"});
    // Mostly printable: a string that is not UTF-8 fails the whole request
    // in gRPC's parsing, before any handler sees it.
    return Chance(0.1) ? Bytes(Below(24)) : std::string(Below(24), 'a' + static_cast<char>(Below(26)));
  }

  int64_t Int() {
    static const std::vector<int64_t> kEdges = {0, 1, -1, 4096, 1 << 20, std::numeric_limits<int64_t>::max(),
                                                std::numeric_limits<int64_t>::min(), int64_t{1} << 40};
    return Chance(0.5) ? Pick(kEdges) : static_cast<int64_t>(Below(1 << 20));
  }

  void Fill(pb::Message* m, int depth) {
    const pb::Descriptor* d = m->GetDescriptor();
    const pb::Reflection* r = m->GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (!Chance(0.7)) continue;
      if (f->is_repeated()) {
        size_t count = Chance(0.03) ? 1000 + Below(20000) : Below(4);
        if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && count > 2000) count = 2000;
        for (size_t k = 0; k < count; ++k) Add(m, r, f, depth, count > 100);
      } else {
        Set(m, r, f, depth);
      }
    }
  }

  void Set(pb::Message* m, const pb::Reflection* r, const pb::FieldDescriptor* f, int depth) {
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        r->SetString(m, f, f->type() == pb::FieldDescriptor::TYPE_BYTES
                               ? Bytes(Below(Chance(0.1) ? (4 << 20) : 65536))
                               : StringFor(f));
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64: r->SetInt64(m, f, Int()); break;
      case pb::FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, static_cast<uint64_t>(Int())); break;
      case pb::FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, f, static_cast<int32_t>(Int())); break;
      case pb::FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(m, f, static_cast<uint32_t>(Int())); break;
      case pb::FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, Chance(0.5)); break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(m, f, static_cast<double>(Int())); break;
      case pb::FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(m, f, static_cast<float>(Int())); break;
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnumValue(m, f, Chance(0.8) ? f->enum_type()->value(Below(f->enum_type()->value_count()))->number()
                                          : static_cast<int>(Below(100)));
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 3) Fill(r->MutableMessage(m, f), depth + 1);
        break;
    }
  }

  void Add(pb::Message* m, const pb::Reflection* r, const pb::FieldDescriptor* f, int depth, bool many) {
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        r->AddString(m, f, many ? absl::StrCat(StringFor(f).substr(0, 32), Below(1000)) : StringFor(f));
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
        pb::Message* sub = r->AddMessage(m, f);
        if (many) {  // keep thousands of entries small: strings only, from pools
          const pb::Descriptor* d = sub->GetDescriptor();
          for (int i = 0; i < d->field_count(); ++i) {
            const pb::FieldDescriptor* g = d->field(i);
            if (!g->is_repeated() && g->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) {
              sub->GetReflection()->SetString(sub, g, absl::StrCat(StringFor(g).substr(0, 32), Below(100000)));
            }
          }
        } else if (depth < 3) {
          Fill(sub, depth + 1);
        }
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(m, f, Int());
        break;
      default:  // no other repeated scalar in these APIs' requests
        break;
    }
  }

  // A request for `method`, serialized, mutated as bytes a third of the time.
  // Clears *parses when the bytes do not parse as the method's type (cut,
  // garbage, or a string field that is not UTF-8, which proto3 refuses).
  std::string Request(const Method& method, bool* parses) {
    std::string out = Serialized(method);
    std::unique_ptr<pb::Message> check(
        pb::MessageFactory::generated_factory()->GetPrototype(method.desc->input_type())->New());
    if (!check->ParseFromString(out)) *parses = false;
    return out;
  }

  std::string Serialized(const Method& method) {
    std::unique_ptr<pb::Message> m(
        pb::MessageFactory::generated_factory()->GetPrototype(method.desc->input_type())->New());
    Fill(m.get(), 0);
    bool pull = method.desc->name() == "PullImage";
    if (pull) Loopback(m.get());
    std::string out = m->SerializeAsString();
    if (pull || !Chance(0.33)) return out;
    switch (Below(4)) {
      case 0:  // flip bytes
        for (size_t k = 0, n = 1 + Below(8); k < n && !out.empty(); ++k) out[Below(out.size())] ^= static_cast<char>(1 + Below(255));
        break;
      case 1:  // cut
        out.resize(Below(out.size() + 1));
        break;
      case 2:  // splice random bytes in
        out.insert(Below(out.size() + 1), Bytes(1 + Below(64)));
        break;
      default:  // replaced entirely
        out = Bytes(Below(Chance(0.1) ? (1 << 20) : 256));
        break;
    }
    return out;
  }

  // PullImage may only name a loopback port nobody serves, or a reference
  // that cannot parse.
  void Loopback(pb::Message* m) {
    auto* req = static_cast<cripb::PullImageRequest*>(m);
    static const std::vector<std::string> kRefs = {"127.0.0.1:1/hostile/x:1", "127.0.0.1:1/hostile/y@" ,
                                                   "UPPER CASE", "::::", ""};
    std::string ref = Pick(kRefs);
    if (ref == "127.0.0.1:1/hostile/y@") ref += Pick(digests_);
    if (Chance(0.05)) ref = "127.0.0.1:1/" + std::string(1 << 20, 'a');
    req->mutable_image()->set_image(ref);
  }

  std::string Header() {
    switch (Below(10)) {
      case 0: return "";
      case 1: return "/bad";
      case 2: return std::string(4000, 'h');
      case 3: case 4: return "k8s.io";
      case 5: return "hostile";
      default: return "default";
    }
  }

 private:
  std::mt19937_64 rng_;
  std::vector<std::string> digests_;
};

grpc::ByteBuffer ToBuffer(const std::string& s) {
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::atomic<bool> g_stop{false};

class Runner {
 public:
  Runner(std::shared_ptr<grpc::Channel> channel, std::vector<Method> methods)
      : channel_(std::move(channel)), methods_(std::move(methods)) {}

  void Thread(uint64_t seed) {
    Generator gen(seed);
    std::map<std::string, Tally> local;
    size_t longest = 0;
    while (!g_stop) {
      const Method& m = methods_[gen.Below(methods_.size())];
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(kDeadline));
      bool subscribe = m.desc->name() == "Subscribe";
      if (subscribe) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      int mode = gen.Below(8);
      if (mode > 0) ctx.AddMetadata("containerd-namespace", gen.Header());
      if (gen.Chance(0.1)) ctx.AddMetadata("containerd-lease", gen.Chance(0.5) ? "lease-1" : std::string(2000, 'l'));
      bool parses = true;
      grpc::Status st = Call(m, gen, &ctx, &parses);
      Tally& t = local[m.path];
      t.calls++;
      t.codes[st.error_code()]++;
      longest = std::max(longest, st.error_message().size());
      if (!Expected(m.path, st.error_code(), parses) || st.error_message().size() > kMaxMessage) {
        t.unexpected++;
        std::lock_guard<std::mutex> l(mu_);
        if (reported_++ < 20) {
          std::cerr << "unexpected: " << m.path << " " << CodeName(st.error_code()) << " ("
                    << st.error_message().size() << " bytes): " << st.error_message().substr(0, 200) << "\n";
        }
      }
    }
    std::lock_guard<std::mutex> l(mu_);
    longest_ = std::max(longest_, longest);
    for (const auto& [path, t] : local) {
      Tally& all = tallies_[path];
      all.calls += t.calls;
      all.unexpected += t.unexpected;
      for (const auto& [code, n] : t.codes) all.codes[code] += n;
    }
  }

  grpc::Status Call(const Method& m, Generator& gen, grpc::ClientContext* ctx, bool* parses) {
    const bool cs = m.desc->client_streaming(), ss = m.desc->server_streaming();
    if (!cs && !ss) {
      grpc::ByteBuffer resp;
      return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
          channel_.get(), grpc::internal::RpcMethod(m.path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC),
          ctx, ToBuffer(gen.Request(m, parses)), &resp);
    }
    if (!cs) {
      std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
          grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
              channel_.get(),
              grpc::internal::RpcMethod(m.path.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING),
              ctx, ToBuffer(gen.Request(m, parses))));
      grpc::ByteBuffer resp;
      int n = 0;
      while (n < 1000 && reader->Read(&resp)) ++n;
      if (n == 1000) ctx->TryCancel();  // enough: the server must still end the call cleanly
      return reader->Finish();
    }
    std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
        grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
            channel_.get(),
            grpc::internal::RpcMethod(m.path.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING), ctx));
    for (size_t k = 0, n = 1 + gen.Below(5); k < n; ++k) {
      if (!stream->Write(ToBuffer(gen.Request(m, parses)))) break;
    }
    stream->WritesDone();
    grpc::ByteBuffer resp;
    for (int n = 0; n < 1000 && stream->Read(&resp); ++n) {
    }
    return stream->Finish();
  }

  // Prints the tallies; returns the number of unexpected answers.
  int64_t Report() {
    int64_t unexpected = 0, calls = 0;
    for (const auto& [path, t] : tallies_) {
      std::string codes;
      for (const auto& [code, n] : t.codes) absl::StrAppend(&codes, " ", CodeName(code), "=", n);
      std::printf("%-58s calls=%-6lld%s%s\n", path.c_str(), static_cast<long long>(t.calls), codes.c_str(),
                  t.unexpected ? absl::StrCat(" UNEXPECTED=", t.unexpected).c_str() : "");
      unexpected += t.unexpected;
      calls += t.calls;
    }
    calls_ = calls;
    return unexpected;
  }
  int64_t calls() const { return calls_; }
  size_t longest() const { return longest_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<Method> methods_;
  std::mutex mu_;
  std::map<std::string, Tally> tallies_;
  size_t longest_ = 0;
  int reported_ = 0;
  int64_t calls_ = 0;
};

// Times what an ordinary client does meanwhile.
class Probe {
 public:
  explicit Probe(std::shared_ptr<grpc::Channel> channel)
      : content_(contentpb::Content::NewStub(channel)),
        images_(imagespb::Images::NewStub(channel)),
        cri_(cripb::ImageService::NewStub(channel)) {}

  bool Setup() {
    const std::string data = "hostile probe blob";
    digest_ = imaged::store::Sha256::Of(data);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(kDeadline));
    ctx.AddMetadata("containerd-namespace", "hostile-probe");
    auto stream = content_->Write(&ctx);
    contentpb::WriteContentRequest req;
    req.set_action(contentpb::COMMIT);
    req.set_ref("probe");
    req.set_total(static_cast<int64_t>(data.size()));
    req.set_expected(digest_);
    req.set_data(data);
    req.mutable_labels()->insert({"containerd.io/gc.root", "probe"});
    stream->Write(req);
    stream->WritesDone();
    contentpb::WriteContentResponse resp;
    while (stream->Read(&resp)) {
    }
    grpc::Status st = stream->Finish();
    if (!st.ok() && st.error_code() != grpc::ALREADY_EXISTS) {
      std::cerr << "probe: writing its blob: " << st.error_message() << "\n";
      return false;
    }
    size_ = static_cast<int64_t>(data.size());
    return true;
  }

  void Run() {
    for (int64_t i = 0; !g_stop; ++i) {
      const std::string name = absl::StrCat("probe/img:", i);
      Time("Images.Create", [&](grpc::ClientContext* ctx) {
        imagespb::CreateImageRequest req;
        req.mutable_image()->set_name(name);
        auto* t = req.mutable_image()->mutable_target();
        t->set_media_type("application/vnd.oci.image.manifest.v1+json");
        t->set_digest(digest_);
        t->set_size(size_);
        imagespb::CreateImageResponse resp;
        return images_->Create(ctx, req, &resp);
      });
      Time("Images.Delete", [&](grpc::ClientContext* ctx) {
        imagespb::DeleteImageRequest req;
        req.set_name(name);
        google::protobuf::Empty resp;
        return images_->Delete(ctx, req, &resp);
      });
      Time("Content.Update", [&](grpc::ClientContext* ctx) {
        contentpb::UpdateRequest req;
        req.mutable_info()->set_digest(digest_);
        (*req.mutable_info()->mutable_labels())["probe"] = absl::StrCat(i);
        (*req.mutable_info()->mutable_labels())["containerd.io/gc.root"] = "probe";
        req.mutable_update_mask()->add_paths("labels");
        contentpb::UpdateResponse resp;
        return content_->Update(ctx, req, &resp);
      });
      Time("CRI.ListImages", [&](grpc::ClientContext* ctx) {
        cripb::ListImagesRequest req;
        cripb::ListImagesResponse resp;
        return cri_->ListImages(ctx, req, &resp);
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  // Prints p50/p99/max per probe; returns the largest latency in ms.
  double Report() {
    double worst = 0;
    for (auto& entry : latencies_) {
      const std::string& name = entry.first;
      std::vector<double>& v = entry.second;  // not a structured binding: the lambda below reads it
      std::sort(v.begin(), v.end());
      auto at = [&](double q) { return v.empty() ? 0.0 : v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
      std::printf("probe %-16s n=%-5zu p50=%.1fms p99=%.1fms max=%.1fms failed=%lld\n", name.c_str(), v.size(),
                  at(0.5), at(0.99), v.empty() ? 0.0 : v.back(), static_cast<long long>(failed_[name]));
      if (!v.empty()) worst = std::max(worst, v.back());
    }
    return worst;
  }
  int64_t failures() const {
    int64_t n = 0;
    for (const auto& [name, f] : failed_) n += f;
    return n;
  }

 private:
  // CRI calls carry no namespace header (CRI is k8s.io whatever it says).
  template <typename F>
  void Time(const std::string& name, F call) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(kDeadline));
    if (name.rfind("CRI.", 0) != 0) ctx.AddMetadata("containerd-namespace", "hostile-probe");
    absl::Time start = absl::Now();
    grpc::Status st = call(&ctx);
    latencies_[name].push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    if (!st.ok() && failed_[name]++ < 5) {
      std::cerr << "probe " << name << ": " << CodeName(st.error_code()) << " " << st.error_message() << "\n";
    }
  }

  std::unique_ptr<contentpb::Content::Stub> content_;
  std::unique_ptr<imagespb::Images::Stub> images_;
  std::unique_ptr<cripb::ImageService::Stub> cri_;
  std::string digest_;
  int64_t size_ = 0;
  std::map<std::string, std::vector<double>> latencies_;
  std::map<std::string, int64_t> failed_;
};

bool CheckIndex(const std::shared_ptr<grpc::Channel>& channel) {
  auto admin = adminpb::Admin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  adminpb::CheckIndexRequest req;
  adminpb::CheckIndexResponse resp;
  grpc::Status st = admin->CheckIndex(&ctx, req, &resp);
  if (!st.ok()) {
    std::cerr << "CheckIndex: " << st.error_message() << "\n";
    return false;
  }
  std::printf("check: records=%lld resolved=%lld unresolved=%lld problems=%d\n",
              static_cast<long long>(resp.records()), static_cast<long long>(resp.resolved()),
              static_cast<long long>(resp.unresolved()), resp.problems_size());
  for (const std::string& p : resp.problems()) std::cerr << "problem: " << p.substr(0, 300) << "\n";
  return resp.problems_size() == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address;
  int threads = 8;
  absl::Duration duration = absl::Minutes(10);
  uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--address") {
      address = value;
    } else if (flag == "--threads") {
      threads = std::max(1, std::atoi(value.c_str()));
    } else if (flag == "--duration") {
      if (!absl::ParseDuration(value, &duration)) address.clear();
    } else if (flag == "--seed") {
      seed = std::strtoull(value.c_str(), nullptr, 10);
    } else {
      address.clear();
      break;
    }
  }
  if (address.empty() || argc % 2 == 0) {
    std::cerr << "usage: hostile_client --address SOCK [--threads 8] [--duration 10m] [--seed N]\n";
    return 2;
  }
  // Serializing strings that are not UTF-8 is the point: no log line each.
  pb::SetLogHandler(nullptr);
  // A message of each service, so that its descriptors are linked in.
  (void)contentpb::InfoRequest::descriptor();
  (void)imagespb::GetImageRequest::descriptor();
  (void)::containerd::services::events::v1::PublishRequest::descriptor();
  (void)::containerd::services::leases::v1::CreateRequest::descriptor();
  (void)cripb::ListImagesRequest::descriptor();
  (void)adminpb::CheckIndexRequest::descriptor();
  std::vector<Method> methods;
  for (const char* name : kServices) {
    const pb::ServiceDescriptor* s = pb::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (s == nullptr) {
      std::cerr << "hostile_client: no descriptor for " << name << "\n";
      return 2;
    }
    for (int i = 0; i < s->method_count(); ++i) {
      methods.push_back({absl::StrCat("/", s->full_name(), "/", s->method(i)->name()), s->method(i)});
    }
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel("unix:" + address, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::cerr << "hostile_client: cannot connect to " << address << "\n";
    return 2;
  }
  Probe probe(channel);
  if (!probe.Setup()) return 1;

  Runner runner(channel, methods);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) workers.emplace_back([&, t] { runner.Thread(seed * 1000 + t); });
  std::thread prober([&] { probe.Run(); });
  std::this_thread::sleep_for(absl::ToChronoMilliseconds(duration));
  g_stop = true;
  for (std::thread& w : workers) w.join();
  prober.join();

  int64_t unexpected = runner.Report();
  double worst = probe.Report();
  bool clean = CheckIndex(channel);
  std::printf("summary calls=%lld unexpected=%lld probe_max_ms=%.0f probe_failures=%lld longest_message=%zu\n",
              static_cast<long long>(runner.calls()), static_cast<long long>(unexpected), worst,
              static_cast<long long>(probe.failures()), runner.longest());
  return unexpected == 0 && clean && probe.failures() == 0 ? 0 : 1;
}
