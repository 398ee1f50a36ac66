// soak_client: the client of imaged's soak tests (tools/soak/crash.sh and
// tools/soak/load.sh; not run in CI).
//
//   soak_client load --address SOCK [--threads 4] [--duration 10m] [--journal FILE]
//                    [--archive FILE=NAME@DIGEST[,NAME@DIGEST...]]... [--pull REF=IMAGE_ID]...
//                    [--crash]
//   soak_client verify --address SOCK --journal FILE --root ROOT
//
// load: --threads threads, each a random mix over every service until
// --duration passes or SIGTERM/SIGINT arrives (the call in flight finishes
// first): Content writes (some interrupted on purpose and resumed later, by
// this run or the next), reads and deletes; `ctr images import` of the
// --archive files; Images tags, lists and deletes; CRI PullImage of the --pull
// references, RemoveImage, ListImages and ImageStatus; Leases create, write
// under, add a resource to, list and delete; Admin.GarbageCollect. Thread T
// owns namespace soak-tT and the --pull references whose position modulo
// --threads is T, so the last line of the journal about an object is its
// expected state. Every call has a deadline. At the end it prints, per
// method, calls, latency (p50/p99/max) and non-OK codes, expected ones apart,
// and then "summary acked=N unexpected=N".
//
// The journal (--journal) gets one line per acknowledged change, flushed
// before the next call: "TYPE NS ID STATE FIELDS...", where TYPE is blob
// (SIZE PROTECTION), image (TARGET), lease, cri (IMAGE_ID) or ingest (DIGEST
// SIZE SEED: an interrupted write to resume), and STATE is present, absent,
// maybe (the call was in flight when imaged died: either way), any
// (unprotected garbage: a collection may take it at any time) or gone (an
// absent object verify has checked once; not checked again). A new load run
// picks up the journal's state, so the objects of a run live on in the next.
// With --crash, errors that a SIGKILL of imaged explains (Unavailable,
// Cancelled, DeadlineExceeded, Unknown) are expected.
//
// verify: after a restart, checks every journal object against imaged
// (present ones read back and hash to their digest with their size, absent
// ones stay absent), settles the "maybe" ones as found (appending the lines),
// reads and hashes every blob that Content.List shows in every namespace,
// runs Admin.CheckIndex (no problem, nothing unresolved) and waits up to 10 s
// for Admin.DiskUsage to equal the files under ROOT/blobs/sha256. Prints
// "VIOLATION <kind>: <detail>" lines and exits 1 on any violation; else
// prints "verify ok objects=N blobs=N ..." and exits 0.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/create_channel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "api/containerd/services/leases/v1/leases.grpc.pb.h"
#include "api/imaged/v1/admin.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "store/digest.h"

namespace {

namespace contentpb = ::containerd::services::content::v1;
namespace imagespb = ::containerd::services::images::v1;
namespace leasespb = ::containerd::services::leases::v1;
namespace adminpb = ::imaged::v1;
namespace cripb = ::runtime::v1;

constexpr char kCriNamespace[] = "k8s.io";
constexpr char kGcRoot[] = "containerd.io/gc.root";
constexpr absl::Duration kDeadline = absl::Seconds(30);
constexpr absl::Duration kPullDeadline = absl::Seconds(120);
constexpr size_t kMaxBlobs = 12;    // per thread, so the state (and verify) stays small
constexpr size_t kMaxIngests = 3;
constexpr size_t kMaxLeases = 3;
constexpr size_t kMaxTags = 4;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// ---------------------------------------------------------------------------
// Flags

struct Flags {
  std::string mode, address, journal, root;
  int threads = 4;
  absl::Duration duration = absl::Minutes(10);
  bool crash = false;
  std::vector<std::string> archives;  // FILE=NAME@DIGEST,...
  std::vector<std::string> pulls;     // REF=IMAGE_ID
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  if (argc < 2) return false;
  f->mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string name = argv[i];
    if (name == "--crash") {
      f->crash = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    std::string value = argv[++i];
    if (name == "--address") {
      f->address = std::string(absl::StripPrefix(value, "unix://"));
    } else if (name == "--journal") {
      f->journal = value;
    } else if (name == "--root") {
      f->root = value;
    } else if (name == "--threads") {
      f->threads = std::stoi(value);
    } else if (name == "--duration") {
      if (!absl::ParseDuration(value, &f->duration)) return false;
    } else if (name == "--archive") {
      f->archives.push_back(value);
    } else if (name == "--pull") {
      f->pulls.push_back(value);
    } else {
      std::cerr << "soak_client: unknown flag " << name << "\n";
      return false;
    }
  }
  return !f->address.empty() && f->threads > 0;
}

// ---------------------------------------------------------------------------
// Per-method statistics

class Stats {
 public:
  void Add(const std::string& method, double ms, grpc::StatusCode code, bool expected) {
    std::lock_guard<std::mutex> lock(mu_);
    Method& m = methods_[method];
    m.ms.push_back(ms);
    if (code == grpc::StatusCode::OK) return;
    (expected ? m.expected : m.unexpected)[code]++;
    if (!expected) ++unexpected_;
  }
  // A failure that is not a gRPC code (a hash mismatch, a ctr exit status).
  void AddProblem(const std::string& method, const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    methods_[method].problems++;
    ++unexpected_;
    std::cerr << "soak_client: unexpected: " << method << ": " << what.substr(0, 400) << "\n";
  }
  void Acked() { acked_++; }

  void Print() {
    std::lock_guard<std::mutex> lock(mu_);
    std::printf("%-34s %8s %9s %9s %9s  %s\n", "method", "calls", "p50_ms", "p99_ms", "max_ms",
                "non-OK codes: expected | unexpected");
    for (auto& [name, m] : methods_) {
      std::sort(m.ms.begin(), m.ms.end());
      // (A structured binding cannot be captured in C++17: name the vector.)
      const std::vector<double>& ms = m.ms;
      auto at = [&ms](double q) {
        return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))];
      };
      std::printf("%-34s %8zu %9.2f %9.2f %9.2f  %s | %s%s\n", name.c_str(), m.ms.size(), at(0.5),
                  at(0.99), m.ms.empty() ? 0.0 : m.ms.back(), Codes(m.expected).c_str(),
                  Codes(m.unexpected).c_str(),
                  m.problems ? absl::StrCat(" problems=", m.problems).c_str() : "");
    }
    std::printf("summary acked=%lld unexpected=%lld\n", static_cast<long long>(acked_.load()),
                static_cast<long long>(unexpected_));
  }
  int64_t unexpected() {
    std::lock_guard<std::mutex> lock(mu_);
    return unexpected_;
  }

 private:
  struct Method {
    std::vector<double> ms;
    std::map<int, int64_t> expected, unexpected;
    int64_t problems = 0;
  };
  static std::string Codes(const std::map<int, int64_t>& codes) {
    if (codes.empty()) return "-";
    std::vector<std::string> parts;
    for (auto [code, n] : codes) parts.push_back(absl::StrCat(CodeName(code), "=", n));
    return absl::StrJoin(parts, ",");
  }
  static const char* CodeName(int code) {
    static const char* kNames[] = {"OK", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded",
                                   "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
                                   "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
                                   "Internal", "Unavailable", "DataLoss", "Unauthenticated"};
    return code >= 0 && code <= 16 ? kNames[code] : "?";
  }

  std::mutex mu_;
  std::map<std::string, Method> methods_;
  std::atomic<int64_t> acked_{0};
  int64_t unexpected_ = 0;
};

// ---------------------------------------------------------------------------
// The journal and the state it describes

struct Entry {
  std::string type, ns, id, state;
  std::vector<std::string> fields;
  std::string Key() const { return absl::StrCat(type, " ", ns, " ", id); }
};

class Journal {
 public:
  explicit Journal(const std::string& path) {
    if (!path.empty()) fd_ = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  }
  ~Journal() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // One write(2) per line, so a killed client never leaves half a line.
  void Append(const Entry& e) {
    std::string line = absl::StrCat(e.type, " ", e.ns, " ", e.id, " ", e.state);
    for (const std::string& f : e.fields) absl::StrAppend(&line, " ", f);
    line += "\n";
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ >= 0 && write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      std::perror("soak_client: journal write");
    }
  }

 private:
  int fd_ = -1;
  std::mutex mu_;
};

// The last line about each object, in first-seen order.
std::map<std::string, Entry> ReadJournal(const std::string& path) {
  std::map<std::string, Entry> model;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (parts.size() < 4) continue;
    Entry e{parts[0], parts[1], parts[2], parts[3], {parts.begin() + 4, parts.end()}};
    model[e.Key()] = e;
  }
  return model;
}

// ---------------------------------------------------------------------------
// Calls

std::string RandomBytes(uint64_t seed, int64_t size) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (int64_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    std::memcpy(&out[i], &v, std::min<int64_t>(8, size - i));
  }
  return out;
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& ns, absl::Duration deadline = kDeadline,
                                         const std::string& lease = "") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  if (!ns.empty()) ctx->AddMetadata("containerd-namespace", ns);
  if (!lease.empty()) ctx->AddMetadata("containerd-lease", lease);
  return ctx;
}

struct Stubs {
  explicit Stubs(std::shared_ptr<grpc::Channel> ch)
      : content(contentpb::Content::NewStub(ch)),
        images(imagespb::Images::NewStub(ch)),
        leases(leasespb::Leases::NewStub(ch)),
        admin(adminpb::Admin::NewStub(ch)),
        cri(cripb::ImageService::NewStub(ch)) {}
  std::unique_ptr<contentpb::Content::Stub> content;
  std::unique_ptr<imagespb::Images::Stub> images;
  std::unique_ptr<leasespb::Leases::Stub> leases;
  std::unique_ptr<adminpb::Admin::Stub> admin;
  std::unique_ptr<cripb::ImageService::Stub> cri;
};

// Reads a whole blob.
grpc::Status ReadBlob(Stubs& s, const std::string& ns, const std::string& digest, std::string* out) {
  auto ctx = Ctx(ns);
  contentpb::ReadContentRequest req;
  req.set_digest(digest);
  auto reader = s.content->Read(ctx.get(), req);
  contentpb::ReadContentResponse resp;
  out->clear();
  while (reader->Read(&resp)) out->append(resp.data());
  return reader->Finish();
}

// containerd's write protocol on one stream: STAT (the ingest's offset),
// WRITE from there in 64 KiB chunks, then COMMIT with labels. With
// stop_at >= 0 the stream is cancelled once the server has taken the bytes
// up to stop_at, leaving the ingest to resume.
grpc::Status WriteBlob(Stubs& s, const std::string& ns, const std::string& lease,
                       const std::string& ref, const std::string& data, const std::string& digest,
                       bool gc_root, int64_t stop_at = -1) {
  auto ctx = Ctx(ns, kDeadline, lease);
  auto stream = s.content->Write(ctx.get());
  contentpb::WriteContentRequest req;
  contentpb::WriteContentResponse resp;
  auto exchange = [&]() { return stream->Write(req) && stream->Read(&resp); };
  // gRPC's Finish waits until every message has been read, and containerd's
  // handler answers a commit twice: drain first.
  auto fail = [&]() {
    stream->WritesDone();
    while (stream->Read(&resp)) {
    }
    return stream->Finish();
  };
  req.set_action(contentpb::STAT);
  req.set_ref(ref);
  req.set_total(data.size());
  req.set_expected(digest);
  if (!exchange()) return fail();
  int64_t offset = resp.offset();
  if (offset < 0 || offset > static_cast<int64_t>(data.size())) {
    ctx->TryCancel();
    stream->Finish();
    return grpc::Status(grpc::StatusCode::DATA_LOSS,
                        absl::StrCat("ingest ", ref, " offset ", offset, " beyond ", data.size()));
  }
  const int64_t end = stop_at >= 0 ? std::max(stop_at, offset) : data.size();
  while (offset < end) {
    req.Clear();
    req.set_action(contentpb::WRITE);
    req.set_offset(offset);
    const int64_t n = std::min<int64_t>(64 << 10, end - offset);
    req.set_data(data.substr(offset, n));
    if (!exchange()) return fail();
    offset += n;
  }
  if (stop_at >= 0) {
    ctx->TryCancel();
    return stream->Finish();
  }
  req.Clear();
  req.set_action(contentpb::COMMIT);
  req.set_offset(offset);
  req.set_total(data.size());
  req.set_expected(digest);
  if (gc_root) (*req.mutable_labels())[kGcRoot] = "soak";
  exchange();
  return fail();
}

// Runs argv with stdout and stderr to /dev/null; its exit status, or -1 if it
// had to be killed after `timeout` or because we are stopping (ctr keeps
// redialling a server that is gone).
int RunCommand(const std::vector<std::string>& args, absl::Duration timeout) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) return -1;
  const absl::Time end = absl::Now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > end || g_stop) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---------------------------------------------------------------------------
// load: one worker per thread

struct Archive {
  std::string file;
  std::vector<std::pair<std::string, std::string>> images;  // name, manifest digest
};

struct PullRef {
  std::string ref, image_id;
};

struct Blob {
  std::string digest;
  int64_t size;
  uint64_t seed;
};

class Worker {
 public:
  Worker(int index, const Flags& flags, Stubs& stubs, Journal& journal, Stats& stats,
         const std::vector<Archive>& archives, std::vector<PullRef> pulls)
      : flags_(flags), s_(stubs), journal_(journal), stats_(stats), archives_(archives),
        pulls_(std::move(pulls)), ns_(absl::StrCat("soak-t", index)), rng_(std::random_device{}()) {}

  // Takes over this thread's objects from the journal.
  void Adopt(const std::map<std::string, Entry>& model) {
    for (const auto& [key, e] : model) {
      if (e.state != "present" || e.ns != ns_) continue;
      if (e.type == "blob" && e.fields.size() >= 2 && e.fields[1] == "root") {
        root_blobs_.push_back({e.id, std::stoll(e.fields[0]), 0});
      } else if (e.type == "lease") {
        leases_[e.id];
      } else if (e.type == "image") {
        images_[e.id] = e.fields.empty() ? "" : e.fields[0];
      } else if (e.type == "ingest" && e.fields.size() >= 3) {
        ingests_.push_back({e.id, e.fields[0], std::stoll(e.fields[1]), std::stoull(e.fields[2])});
      }
    }
    for (const auto& [key, e] : model) {  // blobs written under a lease still held
      if (e.type == "blob" && e.ns == ns_ && e.state == "present" && e.fields.size() >= 2 &&
          absl::StartsWith(e.fields[1], "lease:") && leases_.count(e.fields[1].substr(6))) {
        leases_[e.fields[1].substr(6)].push_back({e.id, std::stoll(e.fields[0]), 0});
      }
    }
  }

  void Run(absl::Time end) {
    while (!g_stop && absl::Now() < end) Step();
  }

 private:
  struct Ingest {
    std::string ref, digest;
    int64_t size;
    uint64_t seed;
  };
  using Op = void (Worker::*)();

  void Step() {
    static const std::vector<std::pair<Op, int>> kOps = {
        {&Worker::PutBlob, 20},     {&Worker::DeleteBlob, 8},  {&Worker::ReadBlobBack, 10},
        {&Worker::InterruptWrite, 6}, {&Worker::ResumeWrite, 6}, {&Worker::Import, 5},
        {&Worker::Tag, 5},          {&Worker::DeleteImage, 5}, {&Worker::ListImages, 3},
        {&Worker::Pull, 4},         {&Worker::RemoveImage, 3}, {&Worker::CriList, 5},
        {&Worker::CriStatus, 5},    {&Worker::CreateLease, 4}, {&Worker::WriteUnderLease, 4},
        {&Worker::AddLeaseResource, 3}, {&Worker::DeleteLease, 3}, {&Worker::ListLeases, 2},
        {&Worker::CollectGarbage, 2},
    };
    static const int total = [] {
      int t = 0;
      for (auto& [op, w] : kOps) t += w;
      return t;
    }();
    int pick = Uniform(0, total - 1);
    for (auto& [op, w] : kOps) {
      if ((pick -= w) < 0) {
        (this->*op)();
        return;
      }
    }
  }

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::string Hex() { return absl::StrCat(absl::Hex(rng_(), absl::kZeroPad16)); }

  // Times a call and classifies its status. `definite` codes are answers that
  // changed nothing and are expected; with --crash so are the codes a killed
  // server gives.
  template <typename F>
  grpc::Status Timed(const std::string& method, F&& call,
                     std::initializer_list<grpc::StatusCode> definite = {}) {
    const absl::Time start = absl::Now();
    grpc::Status st = call();
    const grpc::StatusCode c = st.error_code();
    bool expected = std::find(definite.begin(), definite.end(), c) != definite.end() ||
                    (flags_.crash && Killed(st));
    stats_.Add(method, absl::ToDoubleMilliseconds(absl::Now() - start), c, expected);
    if (!st.ok() && !expected) {
      std::cerr << "soak_client: " << method << " in " << ns_ << ": code " << c << ": "
                << st.error_message().substr(0, 300) << "\n";
    }
    return st;
  }
  static bool Killed(const grpc::Status& st) {
    switch (st.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
      case grpc::StatusCode::CANCELLED:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::UNKNOWN:
        return true;
      default:
        return false;
    }
  }
  // The state to journal after a change: present/absent when acknowledged,
  // maybe when the server may have acted before failing.
  void Record(Entry e, const grpc::Status& st) {
    if (st.ok()) {
      stats_.Acked();
    } else if (Killed(st)) {
      e.state = "maybe";
    } else {
      return;  // a definite refusal changes nothing
    }
    journal_.Append(e);
  }

  // --- Content

  void PutBlob() {
    if (root_blobs_.size() >= kMaxBlobs) return DeleteBlob();
    Blob b{"", Uniform(1, 256 << 10), rng_()};
    std::string data = RandomBytes(b.seed, b.size);
    b.digest = imaged::store::Sha256::Of(data);
    grpc::Status st = Timed("Content.Write", [&] {
      return WriteBlob(s_, ns_, "", "soak-" + Hex(), data, b.digest, true);
    });
    Record({"blob", ns_, b.digest, "present", {absl::StrCat(b.size), "root"}}, st);
    if (st.ok()) root_blobs_.push_back(b);
  }

  void DeleteBlob() {
    if (root_blobs_.empty()) return PutBlob();
    size_t i = Uniform(0, root_blobs_.size() - 1);
    Blob b = root_blobs_[i];
    root_blobs_.erase(root_blobs_.begin() + i);  // a maybe is never touched again
    contentpb::DeleteContentRequest req;
    req.set_digest(b.digest);
    google::protobuf::Empty resp;
    grpc::Status st = Timed("Content.Delete", [&] {
      auto ctx = Ctx(ns_);
      return s_.content->Delete(ctx.get(), req, &resp);
    });
    Record({"blob", ns_, b.digest, "absent", {absl::StrCat(b.size), "root"}}, st);
  }

  void ReadBlobBack() {
    if (root_blobs_.empty()) return PutBlob();
    const Blob& b = root_blobs_[Uniform(0, root_blobs_.size() - 1)];
    std::string data;
    grpc::Status st = Timed("Content.Read", [&] { return ReadBlob(s_, ns_, b.digest, &data); });
    if (st.ok() && (static_cast<int64_t>(data.size()) != b.size ||
                    imaged::store::Sha256::Of(data) != b.digest)) {
      stats_.AddProblem("Content.Read", absl::StrCat(ns_, " ", b.digest, ": read ", data.size(),
                                                     " bytes hashing to ", imaged::store::Sha256::Of(data)));
    }
  }

  void InterruptWrite() {
    if (ingests_.size() >= kMaxIngests) return ResumeWrite();
    Ingest in{"soak-ingest-" + Hex(), "", Uniform(2, 256 << 10), rng_()};
    std::string data = RandomBytes(in.seed, in.size);
    in.digest = imaged::store::Sha256::Of(data);
    const int64_t cut = Uniform(1, in.size - 1);
    grpc::Status st = Timed(
        "Content.Write(interrupted)",
        [&] { return WriteBlob(s_, ns_, "", in.ref, data, in.digest, true, cut); },
        {grpc::StatusCode::CANCELLED});
    if (st.ok() || st.error_code() == grpc::StatusCode::CANCELLED || Killed(st)) {
      journal_.Append({"ingest", ns_, in.ref, "present",
                       {in.digest, absl::StrCat(in.size), absl::StrCat(in.seed)}});
      ingests_.push_back(in);
    }
  }

  void ResumeWrite() {
    if (ingests_.empty()) return InterruptWrite();
    Ingest in = ingests_.front();
    std::string data = RandomBytes(in.seed, in.size);
    grpc::Status st = Timed(
        "Content.Write(resume)",
        [&] { return WriteBlob(s_, ns_, "", in.ref, data, in.digest, true); },
        // AlreadyExists: committed by a write a kill cut short. Unavailable
        // "ref locked": the server has not yet seen our cancelled stream go
        // (containerd answers so too; its client retries); tried again later.
        {grpc::StatusCode::ALREADY_EXISTS, grpc::StatusCode::UNAVAILABLE});
    if (st.error_code() == grpc::StatusCode::ALREADY_EXISTS) st = grpc::Status::OK;
    if (!st.ok() && Killed(st)) {
      Record({"blob", ns_, in.digest, "present", {absl::StrCat(in.size), "root"}}, st);
      return;  // tried again later
    }
    ingests_.erase(ingests_.begin());
    journal_.Append({"ingest", ns_, in.ref, "absent", {in.digest, absl::StrCat(in.size), "0"}});
    Record({"blob", ns_, in.digest, "present", {absl::StrCat(in.size), "root"}}, st);
    // The blob may be known already: a commit the kill cut short that verify
    // found had landed.
    bool known = std::any_of(root_blobs_.begin(), root_blobs_.end(),
                             [&](const Blob& b) { return b.digest == in.digest; });
    if (st.ok() && !known) root_blobs_.push_back({in.digest, in.size, in.seed});
  }

  // --- Images

  void Import() {
    if (archives_.empty()) return Tag();
    const Archive& a = archives_[Uniform(0, archives_.size() - 1)];
    const absl::Time start = absl::Now();
    int rc = RunCommand({"ctr", "--address", flags_.address, "-n", ns_, "images", "import",
                         "--no-unpack", a.file},
                        absl::Seconds(60));
    grpc::Status st = rc == 0 ? grpc::Status::OK
                              : grpc::Status(grpc::StatusCode::UNKNOWN, absl::StrCat("ctr exit ", rc));
    bool expected = rc == 0 || flags_.crash;
    stats_.Add("ctr images import", absl::ToDoubleMilliseconds(absl::Now() - start), st.error_code(),
               expected);
    if (!expected) std::cerr << "soak_client: ctr images import " << a.file << " into " << ns_ << ": exit " << rc << "\n";
    for (const auto& [name, target] : a.images) {
      Record({"image", ns_, name, "present", {target}}, st);
      if (st.ok()) images_[name] = target;
    }
  }

  // Images.Create of a tag pointing at an image this thread holds.
  void Tag() {
    std::vector<std::string> sources;
    size_t tags = 0;
    for (const auto& [name, target] : images_) {
      if (absl::StrContains(name, "/soak-tag:")) {
        ++tags;
      } else {
        sources.push_back(name);
      }
    }
    if (sources.empty() || tags >= kMaxTags) return DeleteImage();
    const std::string source = sources[Uniform(0, sources.size() - 1)];
    imagespb::GetImageRequest get;
    get.set_name(source);
    imagespb::GetImageResponse got;
    grpc::Status st = Timed("Images.Get", [&] {
      auto ctx = Ctx(ns_);
      return s_.images->Get(ctx.get(), get, &got);
    });
    if (!st.ok()) return;
    imagespb::CreateImageRequest req;
    const std::string name = absl::StrCat("docker.io/library/soak-tag:", Hex());
    req.mutable_image()->set_name(name);
    *req.mutable_image()->mutable_target() = got.image().target();
    imagespb::CreateImageResponse resp;
    st = Timed("Images.Create", [&] {
      auto ctx = Ctx(ns_);
      return s_.images->Create(ctx.get(), req, &resp);
    });
    Record({"image", ns_, name, "present", {got.image().target().digest()}}, st);
    if (st.ok()) images_[name] = got.image().target().digest();
  }

  void DeleteImage() {
    if (images_.empty()) return Import();
    auto it = std::next(images_.begin(), Uniform(0, images_.size() - 1));
    const std::string name = it->first, target = it->second;
    images_.erase(it);
    imagespb::DeleteImageRequest req;
    req.set_name(name);
    req.set_sync(Uniform(0, 3) == 0);
    google::protobuf::Empty resp;
    grpc::Status st = Timed(req.sync() ? "Images.Delete(sync)" : "Images.Delete", [&] {
      auto ctx = Ctx(ns_);
      return s_.images->Delete(ctx.get(), req, &resp);
    });
    Record({"image", ns_, name, "absent", {target}}, st);
  }

  void ListImages() {
    imagespb::ListImagesRequest req;
    imagespb::ListImagesResponse resp;
    Timed("Images.List", [&] {
      auto ctx = Ctx(ns_);
      return s_.images->List(ctx.get(), req, &resp);
    });
  }

  // --- CRI (namespace k8s.io)

  void Pull() {
    if (pulls_.empty()) return CriList();
    const PullRef& p = pulls_[Uniform(0, pulls_.size() - 1)];
    cripb::PullImageRequest req;
    req.mutable_image()->set_image(p.ref);
    cripb::PullImageResponse resp;
    grpc::Status st = Timed("CRI.PullImage", [&] {
      auto ctx = Ctx("", kPullDeadline);
      return s_.cri->PullImage(ctx.get(), req, &resp);
    });
    if (st.ok() && resp.image_ref() != p.image_id) {
      stats_.AddProblem("CRI.PullImage", absl::StrCat(p.ref, ": image ref ", resp.image_ref(),
                                                      ", expected ", p.image_id));
    }
    Record({"cri", kCriNamespace, p.ref, "present", {p.image_id}}, st);
  }

  void RemoveImage() {
    if (pulls_.empty()) return CriStatus();
    const PullRef& p = pulls_[Uniform(0, pulls_.size() - 1)];
    cripb::RemoveImageRequest req;
    req.mutable_image()->set_image(p.ref);
    cripb::RemoveImageResponse resp;
    grpc::Status st = Timed(
        "CRI.RemoveImage",
        [&] {
          auto ctx = Ctx("");
          return s_.cri->RemoveImage(ctx.get(), req, &resp);
        },
        {grpc::StatusCode::NOT_FOUND});  // another thread sharing the image removed it first
    if (st.error_code() != grpc::StatusCode::NOT_FOUND) {
      Record({"cri", kCriNamespace, p.ref, "absent", {p.image_id}}, st);
    }
  }

  void CriList() {
    cripb::ListImagesRequest req;
    cripb::ListImagesResponse resp;
    Timed("CRI.ListImages", [&] {
      auto ctx = Ctx("");
      return s_.cri->ListImages(ctx.get(), req, &resp);
    });
  }

  // ImageStatus of one of our references, or of a name nobody has.
  void CriStatus() {
    cripb::ImageStatusRequest req;
    req.mutable_image()->set_image(pulls_.empty() || Uniform(0, 3) == 0
                                       ? "docker.io/library/soak-missing:" + Hex()
                                       : pulls_[Uniform(0, pulls_.size() - 1)].ref);
    cripb::ImageStatusResponse resp;
    Timed("CRI.ImageStatus", [&] {
      auto ctx = Ctx("");
      return s_.cri->ImageStatus(ctx.get(), req, &resp);
    });
  }

  // --- Leases

  void CreateLease() {
    if (leases_.size() >= kMaxLeases) return DeleteLease();
    leasespb::CreateRequest req;
    req.set_id("soak-lease-" + Hex());
    leasespb::CreateResponse resp;
    grpc::Status st = Timed("Leases.Create", [&] {
      auto ctx = Ctx(ns_);
      return s_.leases->Create(ctx.get(), req, &resp);
    });
    Record({"lease", ns_, req.id(), "present", {}}, st);
    if (st.ok()) leases_[req.id()];
  }

  // A blob with no gc.root label, kept only by the lease it is written under.
  void WriteUnderLease() {
    if (leases_.empty()) return CreateLease();
    auto it = std::next(leases_.begin(), Uniform(0, leases_.size() - 1));
    Blob b{"", Uniform(1, 64 << 10), rng_()};
    std::string data = RandomBytes(b.seed, b.size);
    b.digest = imaged::store::Sha256::Of(data);
    grpc::Status st = Timed("Content.Write(lease)", [&] {
      return WriteBlob(s_, ns_, it->first, "soak-" + Hex(), data, b.digest, false);
    });
    Record({"blob", ns_, b.digest, "present", {absl::StrCat(b.size), "lease:" + it->first}}, st);
    if (st.ok()) it->second.push_back(b);
  }

  void AddLeaseResource() {
    if (leases_.empty() || root_blobs_.empty()) return CreateLease();
    auto it = std::next(leases_.begin(), Uniform(0, leases_.size() - 1));
    leasespb::AddResourceRequest req;
    req.set_id(it->first);
    req.mutable_resource()->set_id(root_blobs_[Uniform(0, root_blobs_.size() - 1)].digest);
    req.mutable_resource()->set_type("content");
    google::protobuf::Empty resp;
    grpc::Status st = Timed("Leases.AddResource", [&] {
      auto ctx = Ctx(ns_);
      return s_.leases->AddResource(ctx.get(), req, &resp);
    });
    if (st.ok()) stats_.Acked();
  }

  void DeleteLease() {
    if (leases_.empty()) return CreateLease();
    auto it = std::next(leases_.begin(), Uniform(0, leases_.size() - 1));
    const std::string id = it->first;
    leases_.erase(it);
    leasespb::DeleteRequest req;
    req.set_id(id);
    req.set_sync(Uniform(0, 3) == 0);
    google::protobuf::Empty resp;
    grpc::Status st = Timed(req.sync() ? "Leases.Delete(sync)" : "Leases.Delete", [&] {
      auto ctx = Ctx(ns_);
      return s_.leases->Delete(ctx.get(), req, &resp);
    });
    Record({"lease", ns_, id, "absent", {}}, st);
  }

  void ListLeases() {
    leasespb::ListRequest req;
    leasespb::ListResponse resp;
    Timed("Leases.List", [&] {
      auto ctx = Ctx(ns_);
      return s_.leases->List(ctx.get(), req, &resp);
    });
  }

  void CollectGarbage() {
    adminpb::GarbageCollectRequest req;
    if (Uniform(0, 2) != 0) req.add_namespaces(ns_);  // else every namespace
    adminpb::GarbageCollectResponse resp;
    Timed(req.namespaces_size() ? "Admin.GarbageCollect(ns)" : "Admin.GarbageCollect(all)", [&] {
      auto ctx = Ctx("", absl::Seconds(60));
      return s_.admin->GarbageCollect(ctx.get(), req, &resp);
    });
  }

  const Flags& flags_;
  Stubs& s_;
  Journal& journal_;
  Stats& stats_;
  const std::vector<Archive>& archives_;
  const std::vector<PullRef> pulls_;
  const std::string ns_;
  std::mt19937_64 rng_;
  std::vector<Blob> root_blobs_;
  std::map<std::string, std::vector<Blob>> leases_;  // lease id -> blobs written under it
  std::vector<Ingest> ingests_;
  std::map<std::string, std::string> images_;  // name -> target digest
};

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  auto channel =
      grpc::CreateCustomChannel("unix:" + address, grpc::InsecureChannelCredentials(), args);
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::milliseconds(100))) {
    if (g_stop || absl::Now() > end) {
      std::cerr << "soak_client: cannot connect to " << address << "\n";
      return nullptr;
    }
  }
  return channel;
}

bool ParseInputs(const Flags& flags, std::vector<Archive>* archives, std::vector<PullRef>* pulls) {
  for (const std::string& spec : flags.archives) {
    std::pair<std::string, std::string> file_images = absl::StrSplit(spec, absl::MaxSplits('=', 1));
    Archive a{file_images.first, {}};
    for (absl::string_view image : absl::StrSplit(file_images.second, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> nd = absl::StrSplit(image, absl::MaxSplits('@', 1));
      if (nd.second.empty()) return false;
      a.images.push_back(nd);
    }
    archives->push_back(a);
  }
  for (const std::string& spec : flags.pulls) {
    std::pair<std::string, std::string> ri = absl::StrSplit(spec, absl::MaxSplits('=', 1));
    if (ri.second.empty()) return false;
    pulls->push_back({ri.first, ri.second});
  }
  return true;
}

int Load(const Flags& flags) {
  std::vector<Archive> archives;
  std::vector<PullRef> all_pulls;
  if (!ParseInputs(flags, &archives, &all_pulls)) {
    std::cerr << "soak_client: bad --archive or --pull\n";
    return 2;
  }
  auto channel = Connect(flags.address);
  if (channel == nullptr && g_stop) {  // the crash soak killed imaged before we got in
    Stats().Print();
    return 0;
  }
  if (channel == nullptr) return 2;
  Stubs stubs(channel);
  const std::map<std::string, Entry> model =
      flags.journal.empty() ? std::map<std::string, Entry>() : ReadJournal(flags.journal);
  Journal journal(flags.journal);
  Stats stats;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < flags.threads; ++t) {
    // Own references when there are enough for every thread; else shared.
    std::vector<PullRef> pulls;
    for (size_t i = t; i < all_pulls.size(); i += flags.threads) pulls.push_back(all_pulls[i]);
    if (pulls.empty() && !all_pulls.empty()) pulls.push_back(all_pulls[t % all_pulls.size()]);
    workers.push_back(std::make_unique<Worker>(t, flags, stubs, journal, stats, archives, pulls));
    workers.back()->Adopt(model);
  }
  const absl::Time end = absl::Now() + flags.duration;
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w, end] { w->Run(end); });
  for (auto& t : threads) t.join();
  stats.Print();
  std::fflush(stdout);
  return stats.unexpected() == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------
// verify

class Verifier {
 public:
  Verifier(Stubs& stubs, const Flags& flags) : s_(stubs), flags_(flags) {}

  int Run() {
    std::map<std::string, Entry> model = ReadJournal(flags_.journal);
    Journal journal(flags_.journal);
    for (auto& [key, e] : model) {
      std::string settled = CheckObject(e, model);
      // An acknowledged delete is checked after the restart that follows it,
      // then retired, so verify's work stays bounded by the live objects.
      if (settled == "absent") settled = "gone";
      if (!settled.empty() && settled != e.state) {
        Entry s = e;
        s.state = settled;
        journal.Append(s);
        ++settled_;
      }
    }
    WalkContent(model);
    CheckIndex();
    CheckUsage();
    std::printf("verify %s objects=%lld settled=%lld blobs_read=%lld namespaces=%lld usage_files=%lld "
                "usage_bytes=%lld violations=%lld\n",
                violations_ ? "FAILED" : "ok", checked_, settled_, blobs_read_, namespaces_,
                usage_files_, usage_bytes_, violations_);
    return violations_ == 0 ? 0 : 1;
  }

 private:
  void Violation(const std::string& kind, const std::string& detail) {
    ++violations_;
    std::printf("VIOLATION %s: %s\n", kind.c_str(), detail.substr(0, 600).c_str());
  }

  // Checks one journal object; returns the state it was found in ("" when
  // not looked at).
  std::string CheckObject(const Entry& e, const std::map<std::string, Entry>& model) {
    if (e.type == "ingest" || e.state == "any" || e.state == "gone") return "";
    if (e.type == "blob") return CheckBlob(e, model);
    if (e.type == "image") return CheckImage(e);
    if (e.type == "lease") return CheckLease(e);
    if (e.type == "cri") return CheckCri(e);
    return "";
  }

  // The state of `e`, "" if its check failed for another reason than absence.
  std::string Expect(const Entry& e, bool found, const std::string& what) {
    ++checked_;
    if (e.state == "present" && !found) Violation("lost", absl::StrCat(what, ": acknowledged but missing"));
    if (e.state == "absent" && found) Violation("resurrected", absl::StrCat(what, ": acknowledged delete, still there"));
    return found ? "present" : "absent";
  }

  std::string CheckBlob(const Entry& e, const std::map<std::string, Entry>& model) {
    if (e.fields.size() < 2) return "";
    const std::string& prot = e.fields[1];
    if (absl::StartsWith(prot, "lease:") && e.state != "absent") {
      // Kept only while its lease is: once the lease may be gone it is garbage.
      auto lease = model.find(absl::StrCat("lease ", e.ns, " ", prot.substr(6)));
      if (lease == model.end() || lease->second.state != "present") return "any";
    }
    const std::string what = absl::StrCat("blob ", e.ns, " ", e.id);
    std::string data;
    grpc::Status st = ReadBlob(s_, e.ns, e.id, &data);
    if (!st.ok() && st.error_code() != grpc::StatusCode::NOT_FOUND) {
      Violation("read", absl::StrCat(what, ": code ", st.error_code(), " ", st.error_message()));
      return "";
    }
    if (st.ok() && (std::to_string(data.size()) != e.fields[0] || imaged::store::Sha256::Of(data) != e.id)) {
      Violation("corrupt", absl::StrCat(what, ": read ", data.size(), " bytes (expected ", e.fields[0],
                                        ") hashing to ", imaged::store::Sha256::Of(data)));
    }
    return Expect(e, st.ok(), what);
  }

  std::string CheckImage(const Entry& e) {
    imagespb::GetImageRequest req;
    req.set_name(e.id);
    imagespb::GetImageResponse resp;
    auto ctx = Ctx(e.ns);
    grpc::Status st = s_.images->Get(ctx.get(), req, &resp);
    const std::string what = absl::StrCat("image ", e.ns, " ", e.id);
    if (!st.ok() && st.error_code() != grpc::StatusCode::NOT_FOUND) {
      Violation("images", absl::StrCat(what, ": code ", st.error_code(), " ", st.error_message()));
      return "";
    }
    if (st.ok() && !e.fields.empty() && resp.image().target().digest() != e.fields[0]) {
      Violation("image-target", absl::StrCat(what, ": target ", resp.image().target().digest(),
                                             ", expected ", e.fields[0]));
    }
    if (st.ok() && e.state == "present") {  // and its manifest is there
      contentpb::InfoRequest info;
      info.set_digest(resp.image().target().digest());
      contentpb::InfoResponse got;
      auto ictx = Ctx(e.ns);
      grpc::Status ist = s_.content->Info(ictx.get(), info, &got);
      if (!ist.ok()) Violation("image-content", absl::StrCat(what, ": target blob: ", ist.error_message()));
    }
    return Expect(e, st.ok(), what);
  }

  std::string CheckLease(const Entry& e) {
    leasespb::ListRequest req;
    req.add_filters(absl::StrCat("id==", e.id));
    leasespb::ListResponse resp;
    auto ctx = Ctx(e.ns);
    grpc::Status st = s_.leases->List(ctx.get(), req, &resp);
    const std::string what = absl::StrCat("lease ", e.ns, " ", e.id);
    if (!st.ok()) {
      Violation("leases", absl::StrCat(what, ": code ", st.error_code(), " ", st.error_message()));
      return "";
    }
    bool found = false;
    for (const auto& l : resp.leases()) found |= l.id() == e.id;
    return Expect(e, found, what);
  }

  std::string CheckCri(const Entry& e) {
    cripb::ImageStatusRequest req;
    req.mutable_image()->set_image(e.id);
    cripb::ImageStatusResponse resp;
    auto ctx = Ctx("");
    grpc::Status st = s_.cri->ImageStatus(ctx.get(), req, &resp);
    const std::string what = absl::StrCat("CRI image ", e.id);
    if (!st.ok()) {
      Violation("cri", absl::StrCat(what, ": code ", st.error_code(), " ", st.error_message()));
      return "";
    }
    if (resp.has_image() && !e.fields.empty() && resp.image().id() != e.fields[0]) {
      Violation("cri-id", absl::StrCat(what, ": id ", resp.image().id(), ", expected ", e.fields[0]));
    }
    return Expect(e, resp.has_image(), what);
  }

  // Every blob any namespace lists reads back whole and hashes to its digest.
  void WalkContent(const std::map<std::string, Entry>& model) {
    std::set<std::string> namespaces = {"", kCriNamespace};
    for (const auto& [key, e] : model) namespaces.insert(e.ns);
    adminpb::DiskUsageRequest req;
    adminpb::DiskUsageResponse resp;
    auto ctx = Ctx("");
    if (s_.admin->DiskUsage(ctx.get(), req, &resp).ok()) {
      for (const auto& n : resp.namespaces()) namespaces.insert(n.namespace_());
    }
    for (const std::string& ns : namespaces) {
      ++namespaces_;
      contentpb::ListContentRequest lreq;
      auto lctx = Ctx(ns);
      auto reader = s_.content->List(lctx.get(), lreq);
      contentpb::ListContentResponse lresp;
      std::vector<contentpb::Info> infos;
      while (reader->Read(&lresp)) infos.insert(infos.end(), lresp.info().begin(), lresp.info().end());
      grpc::Status st = reader->Finish();
      if (!st.ok()) {
        Violation("list", absl::StrCat("Content.List in '", ns, "': ", st.error_message()));
        continue;
      }
      for (const contentpb::Info& info : infos) {
        std::string data;
        grpc::Status rst = ReadBlob(s_, ns, info.digest(), &data);
        if (rst.error_code() == grpc::StatusCode::NOT_FOUND) continue;  // collected since the list
        ++blobs_read_;
        if (!rst.ok()) {
          Violation("read", absl::StrCat("listed blob ", ns, " ", info.digest(), ": ", rst.error_message()));
        } else if (static_cast<int64_t>(data.size()) != info.size() ||
                   imaged::store::Sha256::Of(data) != info.digest()) {
          Violation("half-written", absl::StrCat("listed blob ", ns, " ", info.digest(), " size ",
                                                 info.size(), ": read ", data.size(),
                                                 " bytes hashing to ", imaged::store::Sha256::Of(data)));
        }
      }
    }
  }

  void CheckIndex() {
    adminpb::CheckIndexRequest req;
    adminpb::CheckIndexResponse resp;
    auto ctx = Ctx("", absl::Seconds(60));
    grpc::Status st = s_.admin->CheckIndex(ctx.get(), req, &resp);
    if (!st.ok()) return Violation("index", absl::StrCat("CheckIndex: ", st.error_message()));
    for (const std::string& p : resp.problems()) Violation("index", p);
    if (resp.unresolved() != 0) {
      adminpb::ListUnresolvedRequest ureq;
      adminpb::ListUnresolvedResponse uresp;
      auto uctx = Ctx("");
      s_.admin->ListUnresolved(uctx.get(), ureq, &uresp);
      for (const auto& u : uresp.images()) {
        Violation("unresolved", absl::StrCat(u.namespace_(), "/", u.name(), " waits for ",
                                             u.waiting_for(), ": ", u.reason()));
      }
    }
  }

  // Admin.DiskUsage equals the files on disk, once a running collection is done.
  void CheckUsage() {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    std::string last;
    while (true) {
      int64_t files = 0, bytes = 0;
      std::error_code ec;
      for (const auto& f : std::filesystem::directory_iterator(flags_.root + "/blobs/sha256", ec)) {
        if (!f.is_regular_file(ec)) continue;
        ++files;
        bytes += f.file_size(ec);
      }
      adminpb::DiskUsageRequest req;
      adminpb::DiskUsageResponse resp;
      auto ctx = Ctx("");
      grpc::Status st = s_.admin->DiskUsage(ctx.get(), req, &resp);
      if (st.ok() && resp.files() == files && resp.bytes() == bytes) {
        usage_files_ = files;
        usage_bytes_ = bytes;
        return;
      }
      last = absl::StrCat("DiskUsage files=", resp.files(), " bytes=", resp.bytes(), " (",
                          st.error_message(), "), on disk files=", files, " bytes=", bytes);
      if (absl::Now() > end) return Violation("usage", last);
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  Stubs& s_;
  const Flags& flags_;
  long long checked_ = 0, settled_ = 0, blobs_read_ = 0, namespaces_ = 0, violations_ = 0;
  long long usage_files_ = 0, usage_bytes_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags) || (flags.mode != "load" && flags.mode != "verify") ||
      (flags.mode == "verify" && (flags.journal.empty() || flags.root.empty()))) {
    std::cerr << "usage: soak_client load --address SOCK [--threads N] [--duration D] [--journal FILE]\n"
                 "                        [--archive FILE=NAME@DIGEST,...]... [--pull REF=IMAGE_ID]... [--crash]\n"
                 "       soak_client verify --address SOCK --journal FILE --root ROOT\n";
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  signal(SIGPIPE, SIG_IGN);
  if (flags.mode == "load") return Load(flags);
  auto channel = Connect(flags.address);
  if (channel == nullptr) return 2;
  Stubs stubs(channel);
  return Verifier(stubs, flags).Run();
}
