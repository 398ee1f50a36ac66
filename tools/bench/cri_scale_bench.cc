// imaged against containerd 1.6's CRI at node scale (issue 6): one run loads
// the same N images (x3 names) into both, then measures each over its real
// CRI socket with one long-lived connection per system:
//
//   load        imaged: Content Write + Images Create over its socket, from
//               --load-concurrency workers; containerd: `ctr -n k8s.io
//               images import --no-unpack` of the dataset's OCI archives,
//               then the wait until its CRI lists every image
//   start-up    SIGTERM, start again, time until ListImages answers with all
//               N images (for imaged, an inotify watch on blobs/sha256 counts
//               blob opens until then: there must be none); RSS after it
//   ListImages  p50/p99 and the server's CPU time per call (/proc/<pid>/stat)
//               when nothing changed between calls, and right after an
//               Images API write; the time protobuf takes just to serialize
//               the same response, for comparison
//   ImageStatus by tag, by digest reference and by ID: p50/p99/p99.9 and
//               calls/s with 1, 4 and 16 concurrent callers
//   mixed load  --nodes kubelets listing every 30 s (time divided by
//               --time-scale), ImageStatus bursts as at pod starts, while
//               images are created (Content + Images API) and removed (CRI
//               RemoveImage); RSS sampled throughout
//   disk        bytes under each root (metadata and blobs)
//
// plus the same ListImages/ImageStatus measurements of two baselines served
// by this binary in child processes (baselines.h): an in-memory index like
// containerd's CRI image store, and PR #7061's list-and-group over imaged's
// Images API.
//
// Latency is measured to the last byte of the response, which the client
// takes as raw bytes (a generic call), so client-side parsing - the same for
// every system - is not in the figures; its cost is reported once.
//
//   bazel run //tools/bench:cri_scale_bench -- --images 30000 [--keep] [--reuse]
//       [--systems imaged,containerd,memory,pr7061] [--json FILE] [--tsv FILE]
//
// Needs root (containerd) and Debian's containerd and ctr. Figures and the
// exact commands are in docs/benchmarks.md; tools/bench/plot_cri_scale.sh
// draws the TSV rows of several runs.
#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "tools/bench/baselines.h"
#include "tools/bench/dataset.h"

namespace imaged::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void Log(const std::string& line) {
  std::fprintf(stderr, "[bench] %s\n", line.c_str());
  std::fflush(stderr);
}

[[noreturn]] void Die(const std::string& why) {
  Log(absl::StrCat("FATAL: ", why));
  std::exit(1);
}

// ---------------------------------------------------------------------------
// Processes

std::vector<pid_t>* children = new std::vector<pid_t>;

void KillChildren() {
  for (pid_t pid : *children) ::kill(pid, SIGKILL);
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) Die(absl::StrCat("open ", log));
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(fd);
  if (pid < 0) Die("fork");
  children->push_back(pid);
  return pid;
}

// Waits for `pid`; its exit status, or -1 when it had to be killed.
int Reap(pid_t pid, double timeout_s) {
  auto start = Clock::now();
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return -1;
    if (timeout_s >= 0 && Since(start) > timeout_s) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      children->erase(std::remove(children->begin(), children->end(), pid), children->end());
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  children->erase(std::remove(children->begin(), children->end(), pid), children->end());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int RunCommand(const std::vector<std::string>& argv, const std::string& log) {
  return Reap(Spawn(argv, log), -1);
}

void Stop(pid_t pid) {
  ::kill(pid, SIGTERM);
  if (Reap(pid, 60) < 0) Log(absl::StrCat("pid ", pid, " killed after 60 s"));
}

// CPU seconds (user + system) the process has used.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> f = absl::StrSplit(all.substr(close + 2), ' ');
  // After the comm: state is field 3, utime 14, stime 15 (1-based in proc(5)).
  if (f.size() < 13) return 0;
  double ticks = std::stod(f[11]) + std::stod(f[12]);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double RssMiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      return std::stod(line.substr(6)) / 1024.0;
    }
  }
  return 0;
}

// True when a unix socket at `path` accepts a connection.
bool SocketAccepts(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

int64_t DiskBytes(const fs::path& dir) {
  int64_t total = 0;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) total += st.st_blocks * 512;
  }
  return total;
}

void DropCaches() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
}

// ---------------------------------------------------------------------------
// Statistics

struct Latencies {
  std::vector<double> s;  // seconds
  void Add(double v) { s.push_back(v); }
  void Merge(const Latencies& o) { s.insert(s.end(), o.s.begin(), o.s.end()); }
  double Pct(double p) {
    if (s.empty()) return 0;
    std::sort(s.begin(), s.end());
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(s.size() - 1) + 0.5);
    return s[std::min(i, s.size() - 1)];
  }
};

// ---------------------------------------------------------------------------
// A system under test: a CRI socket, and the process behind it.

std::shared_ptr<grpc::Channel> Connect(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // One connection per system, whatever else shares the process.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Start-up is polled every few ms: gRPC's default reconnect backoff
  // (1 s, growing) would be measured instead of the server.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 5);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 50);
  return grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
}

struct System {
  std::string name;
  std::string socket;
  std::vector<std::string> argv;  // how to start it
  std::string log;
  std::string root;   // its state directory ("" for none)
  bool has_images_api = false;  // Content + Images API on the same socket
  pid_t pid = -1;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<cripb::ImageService::Stub> cri;
  Json result = Json::object();

  void Open() {
    channel = Connect(socket);
    cri = cripb::ImageService::NewStub(channel);
  }
};

struct RawList {
  grpc::Status status;
  double seconds = 0;
  size_t bytes = 0;
  grpc::ByteBuffer response;
};

// ListImages with the response taken as bytes, unparsed.
RawList ListRaw(System& sys, bool keep = false) {
  static const grpc::internal::RpcMethod kMethod("/runtime.v1.ImageService/ListImages",
                                                 grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Slice empty("");
  grpc::ByteBuffer req(&empty, 1);
  RawList out;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  auto t0 = Clock::now();
  out.status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      sys.channel.get(), kMethod, &ctx, req, &out.response);
  out.seconds = Since(t0);
  out.bytes = out.response.Length();
  if (!keep) out.response.Clear();
  return out;
}

bool Parse(grpc::ByteBuffer& bb, cripb::ListImagesResponse* resp) {
  std::vector<grpc::Slice> slices;
  if (!bb.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return resp->ParseFromString(bytes);
}

// Images the system's ListImages reports, or -1 when it does not answer.
int CountImages(System& sys) {
  RawList r = ListRaw(sys, true);
  if (!r.status.ok()) return -1;
  cripb::ListImagesResponse resp;
  if (!Parse(r.response, &resp)) return -1;
  return resp.images_size();
}

// Polls ListImages until it reports `want` images; seconds since `start`.
double WaitForImages(System& sys, int want, Clock::time_point start, double timeout_s,
                     double poll_s) {
  int last = -2;
  while (Since(start) < timeout_s) {
    int n = CountImages(sys);
    if (n >= want) return Since(start);
    if (n != last && n >= 0) last = n;
    std::this_thread::sleep_for(std::chrono::duration<double>(poll_s));
  }
  Die(absl::StrCat(sys.name, ": ListImages reported ", last, " images, not ", want, ", after ",
                   timeout_s, " s"));
}

// ---------------------------------------------------------------------------

struct Options {
  int images = 30000;
  std::string imaged;
  std::string workdir;
  std::string systems = "imaged,containerd,memory,pr7061";
  bool keep = false;
  bool reuse = false;
  int load_concurrency = 32;
  bool no_gc_labels = false;
  int list_calls = 20;
  double list_seconds = 3;
  double status_seconds = 3;
  // ImageStatus asks about this many images (0: all of them), as kubelet
  // asks about the images of the pods it starts, again and again.
  int status_working_set = 0;
  int nodes = 30;
  double time_scale = 10;
  double mixed_seconds = 20;
  int burst = 8;
  double write_period_s = 0.5;
  std::string json_out;
  std::string tsv_out;
  bool drop_caches = true;
  // Baseline server mode (a child of the benchmark).
  std::string serve;
  std::string socket;
  std::string images_socket;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}
  void Run();

 private:
  bool Wants(const std::string& s) const {
    return absl::StrContains(absl::StrCat(",", o_.systems, ","), absl::StrCat(",", s, ","));
  }
  void Setup();
  void StartImaged(bool load);
  void StartContainerd(bool load);
  void StartBaselines();
  void Restart(System& sys, double timeout_s, double poll_s);
  void MeasureList(System& sys, bool writes);
  void MeasureStatus(System& sys, int max_concurrency);
  void MeasureMixed(System& sys);
  void Report();

  // A write that changes ListImages' answer: an extra name for image k, or
  // its removal (alternately).
  void TouchIndex(System& sys, int k);

  Options o_;
  Dataset dataset_;
  std::string dir_;      // workdir: roots, archives, logs
  std::string sockdir_;  // short /tmp dir for sockets
  std::vector<std::unique_ptr<System>> systems_;
  System* imaged_ = nullptr;
  System* containerd_ = nullptr;
  int extra_names_ = 0;
  Json doc_ = Json::object();
};

std::string ContainerdConfig(const std::string& dir, const std::string& sockdir) {
  return absl::StrFormat(R"(version = 2
root = "%1$s/containerd/root"
state = "%1$s/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.overlayfs",
]
[grpc]
  address = "%2$s/containerd.sock"
[ttrpc]
  address = "%2$s/containerd.ttrpc"
[debug]
  address = "%2$s/containerd.debug"
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "%1$s/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_cgroup = true
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%1$s/containerd/cni/bin"
    conf_dir = "%1$s/containerd/cni/conf"
)",
                         dir, sockdir);
}

void Bench::Setup() {
  dir_ = o_.workdir.empty() ? absl::StrCat("/var/tmp/imaged-cri-scale-", o_.images) : o_.workdir;
  if (!o_.reuse) fs::remove_all(dir_);
  fs::create_directories(dir_ + "/logs");
  sockdir_ = "/tmp/imaged-bench-XXXXXX";
  if (::mkdtemp(sockdir_.data()) == nullptr) Die("mkdtemp");
  DatasetOptions d;
  d.images = o_.images;
  auto t0 = Clock::now();
  dataset_ = Dataset::Make(d);
  Log(absl::StrFormat("dataset: %d images x 3 names, %d shared layers (%.1f s)", o_.images,
                      d.shared_layers, Since(t0)));
  doc_["images"] = o_.images;
  doc_["names"] = 3 * o_.images;
}

// The marker a completed load leaves, with its duration, for --reuse.
std::optional<double> LoadedMarker(const std::string& path) {
  std::ifstream in(path);
  double s = 0;
  if (in >> s) return s;
  return std::nullopt;
}

void Bench::StartImaged(bool load) {
  auto sys = std::make_unique<System>();
  sys->name = "imaged";
  sys->root = dir_ + "/imaged";
  sys->socket = sockdir_ + "/imaged.sock";
  sys->log = dir_ + "/logs/imaged.log";
  sys->argv = {o_.imaged, "--root", sys->root, "--address", sys->socket};
  sys->has_images_api = true;
  imaged_ = sys.get();
  systems_.push_back(std::move(sys));
  System& s = *imaged_;
  std::optional<double> loaded = o_.reuse ? LoadedMarker(s.root + ".loaded") : std::nullopt;
  s.pid = Spawn(s.argv, s.log);
  s.Open();
  if (!s.channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    Die("imaged did not start; see " + s.log);
  }
  if (!load) return;
  if (loaded) {
    Log(absl::StrFormat("imaged: reusing the loaded root (load took %.1f s)", *loaded));
    s.result["load_s"] = *loaded;
    return;
  }
  plugin::RemoteContentStore content(s.channel);
  plugin::RemoteImageStore images(s.channel);
  // Neither load pays for the other's writeback (or for the archives').
  ::sync();
  Log(absl::StrFormat("imaged: loading %d images through the Content and Images APIs, %d workers",
                      o_.images, o_.load_concurrency));
  auto stats =
      LoadThroughApi(dataset_, content, images, "k8s.io", o_.load_concurrency, !o_.no_gc_labels);
  if (!stats.ok()) Die(absl::StrCat("imaged load: ", stats.status().ToString()));
  int n = CountImages(s);
  if (n != o_.images) Die(absl::StrCat("imaged lists ", n, " images after the load"));
  Log(absl::StrFormat("imaged: loaded in %.1f s (%lld blobs in %.1f s, %lld records)", stats->seconds,
                      static_cast<long long>(stats->blobs), stats->blob_seconds,
                      static_cast<long long>(stats->records)));
  s.result["load_s"] = stats->seconds;
  s.result["load_blobs_s"] = stats->blob_seconds;
  std::ofstream(s.root + ".loaded") << stats->seconds << "\n";
}

void Bench::StartContainerd(bool load) {
  auto sys = std::make_unique<System>();
  sys->name = "containerd";
  sys->root = dir_ + "/containerd/root";
  sys->socket = sockdir_ + "/containerd.sock";
  sys->log = dir_ + "/logs/containerd.log";
  std::string config = dir_ + "/containerd/config.toml";
  fs::create_directories(dir_ + "/containerd");
  std::ofstream(config) << ContainerdConfig(dir_, sockdir_);
  sys->argv = {"containerd", "--config", config};
  sys->has_images_api = true;
  containerd_ = sys.get();
  systems_.push_back(std::move(sys));
  System& s = *containerd_;
  std::optional<double> loaded = o_.reuse ? LoadedMarker(dir_ + "/containerd.loaded") : std::nullopt;
  s.pid = Spawn(s.argv, s.log);
  s.Open();
  if (!s.channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(60))) {
    Die("containerd did not start; see " + s.log);
  }
  if (!load) return;
  if (loaded) {
    Log(absl::StrFormat("containerd: reusing the imported root (import took %.1f s)", *loaded));
    s.result["load_s"] = *loaded;
    std::ifstream in(dir_ + "/containerd.loaded");
    double a, b, c;
    if (in >> a >> b >> c) {
      s.result["import_s"] = b;
      s.result["cri_catch_up_s"] = c;
    }
    WaitForImages(s, o_.images, Clock::now(), 3600, 1);
    return;
  }
  // containerd refuses an index.json over 20 MiB: one archive per 10k images.
  std::vector<std::string> archives;
  for (int begin = 0; begin < o_.images; begin += kImagesPerArchive) {
    int end = std::min(o_.images, begin + kImagesPerArchive);
    std::string path = absl::StrCat(dir_, "/dataset-", begin, ".tar");
    if (absl::Status st = dataset_.WriteOciArchive(path, begin, end); !st.ok()) Die(st.ToString());
    archives.push_back(path);
  }
  ::sync();
  Log(absl::StrFormat("containerd: ctr images import --no-unpack of %zu archive(s)", archives.size()));
  auto t0 = Clock::now();
  for (const std::string& archive : archives) {
    int rc = RunCommand({"ctr", "--address", s.socket, "-n", "k8s.io", "images", "import", "--no-unpack",
                  archive},
                 dir_ + "/logs/ctr-import.log");
    if (rc != 0) Die(absl::StrCat("ctr images import ", archive, " exited ", rc));
  }
  double import_s = Since(t0);
  Log(absl::StrFormat("containerd: ctr import done in %.1f s; waiting for its CRI to list them",
                      import_s));
  double total = WaitForImages(s, o_.images, t0, 7200, 1);
  s.result["import_s"] = import_s;
  s.result["cri_catch_up_s"] = total - import_s;
  s.result["load_s"] = total;
  Log(absl::StrFormat("containerd: CRI lists all %d images %.1f s after the import started",
                      o_.images, total));
  std::ofstream(dir_ + "/containerd.loaded") << total << " " << import_s << " " << total - import_s
                                              << "\n";
}

void Bench::StartBaselines() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) Die("readlink /proc/self/exe");
  self[n] = '\0';
  for (const std::string& which : {std::string("memory"), std::string("pr7061")}) {
    if (!Wants(which)) continue;
    if (which == "pr7061" && imaged_ == nullptr) continue;
    auto sys = std::make_unique<System>();
    sys->name = which == "memory" ? "memory-index" : "pr7061";
    sys->socket = absl::StrCat(sockdir_, "/", which, ".sock");
    sys->log = absl::StrCat(dir_, "/logs/", which, ".log");
    sys->argv = {self, "--serve", which, "--socket", sys->socket, "--images",
                 absl::StrCat(o_.images)};
    if (which == "pr7061") {
      sys->argv.push_back("--images-socket");
      sys->argv.push_back(imaged_->socket);
    }
    auto t0 = Clock::now();
    sys->pid = Spawn(sys->argv, sys->log);
    sys->Open();
    if (!sys->channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(120))) {
      Die(which + " baseline did not start; see " + sys->log);
    }
    WaitForImages(*sys, o_.images, t0, 600, 0.05);
    sys->result["startup_s"] = Since(t0);
    sys->result["rss_after_start_mib"] = RssMiB(sys->pid);
    Log(absl::StrFormat("%s: serving, RSS %.1f MiB", sys->name, RssMiB(sys->pid)));
    systems_.push_back(std::move(sys));
  }
}

// Stops and starts `sys`, timing the start to a complete ListImages answer.
void Bench::Restart(System& sys, double timeout_s, double poll_s) {
  sys.cri.reset();
  sys.channel.reset();
  Stop(sys.pid);
  if (o_.drop_caches) DropCaches();
  int inotify = -1;
  if (&sys == imaged_) {
    // Every open of a blob file during start-up shows up here.
    inotify = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    std::string blobs = sys.root + "/blobs/sha256";
    if (::inotify_add_watch(inotify, blobs.c_str(), IN_OPEN | IN_ACCESS) < 0) Die("inotify " + blobs);
  }
  auto t0 = Clock::now();
  sys.pid = Spawn(sys.argv, sys.log);
  // A channel made before the socket exists fails and sits in gRPC's
  // reconnect backoff, which would be timed instead of the server: connect
  // by hand first, then open the channel.
  while (!SocketAccepts(sys.socket)) {
    if (Since(t0) > timeout_s) Die(sys.name + " did not listen on " + sys.socket);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  sys.Open();
  double s = WaitForImages(sys, o_.images, t0, timeout_s, poll_s);
  sys.result["startup_s"] = s;
  sys.result["rss_after_start_mib"] = RssMiB(sys.pid);
  if (inotify >= 0) {
    int64_t events = 0;
    alignas(inotify_event) char buf[65536];
    for (ssize_t n; (n = ::read(inotify, buf, sizeof(buf))) > 0;) {
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        // Events of the directory itself (a listing) have no name.
        if (ev->len > 0) ++events;
        p += sizeof(inotify_event) + ev->len;
      }
    }
    ::close(inotify);
    sys.result["blob_opens_at_start"] = events;
  }
  Log(absl::StrFormat("%s: restarted; complete ListImages after %.3f s, RSS %.1f MiB%s", sys.name, s,
                      RssMiB(sys.pid),
                      inotify >= 0 ? absl::StrCat(", blob opens ",
                                                  sys.result["blob_opens_at_start"].get<int64_t>())
                                   : ""));
}

void Bench::TouchIndex(System& sys, int k) {
  plugin::RemoteImageStore images(sys.channel);
  const DatasetImage& img = dataset_.images()[k % dataset_.images().size()];
  std::string name = absl::StrCat("registry.example.com/bench/extra-", extra_names_ / 2, ":v1");
  absl::Status s;
  if (extra_names_ % 2 == 0) {
    store::Image rec;
    rec.name = name;
    rec.target.media_type = img.manifest.media_type;
    rec.target.digest = img.manifest.digest;
    rec.target.size = static_cast<int64_t>(img.manifest.bytes.size());
    rec.labels = {{store::kLabelManaged, "managed"}};
    s = images.Create("k8s.io", rec).status();
  } else {
    s = images.Delete("k8s.io", name);
  }
  if (!s.ok()) Die(absl::StrCat(sys.name, ": index write: ", s.ToString()));
  ++extra_names_;
}

void Bench::MeasureList(System& sys, bool writes) {
  for (int i = 0; i < 2; ++i) ListRaw(sys);  // warm
  Latencies lat;
  size_t bytes = 0;
  double cpu0 = CpuSeconds(sys.pid);
  auto t0 = Clock::now();
  int calls = 0;
  // At least --list-calls calls (but no more than 60 s of them, and at least
  // 5), or --list-seconds of them, whichever is more.
  while ((calls < o_.list_calls && (calls < 5 || Since(t0) < 60)) ||
         (Since(t0) < o_.list_seconds && calls < 2000)) {
    RawList r = ListRaw(sys);
    if (!r.status.ok()) Die(absl::StrCat(sys.name, ": ListImages: ", r.status.error_message()));
    lat.Add(r.seconds);
    bytes = r.bytes;
    ++calls;
  }
  double cpu = CpuSeconds(sys.pid) - cpu0;
  Json& out = sys.result["list_unchanged"];
  out["calls"] = calls;
  out["p50_ms"] = lat.Pct(50) * 1e3;
  out["p99_ms"] = lat.Pct(99) * 1e3;
  out["cpu_per_call_ms"] = cpu / calls * 1e3;
  out["response_bytes"] = bytes;
  Log(absl::StrFormat("%s: ListImages, nothing changed: p50 %.3f ms, p99 %.3f ms, server CPU %.3f ms/call, %zu bytes (%d calls)",
                      sys.name, lat.Pct(50) * 1e3, lat.Pct(99) * 1e3, cpu / calls * 1e3, bytes, calls));

  // The cost of just serializing (and, for the record, parsing) this answer.
  if (!doc_.contains("serialize_ms")) {
    RawList r = ListRaw(sys, true);
    cripb::ListImagesResponse resp;
    auto p0 = Clock::now();
    if (!Parse(r.response, &resp)) Die("parse ListImages");
    double parse_s = Since(p0);
    Latencies ser;
    for (int i = 0; i < 20; ++i) {
      std::string bytes_out;
      auto s0 = Clock::now();
      resp.SerializeToString(&bytes_out);
      ser.Add(Since(s0));
    }
    doc_["serialize_ms"] = ser.Pct(50) * 1e3;
    doc_["parse_ms"] = parse_s * 1e3;
    doc_["response_bytes"] = r.bytes;
    Log(absl::StrFormat("serializing the %d-image answer (%zu bytes) takes %.3f ms; parsing it %.3f ms",
                        resp.images_size(), r.bytes, ser.Pct(50) * 1e3, parse_s * 1e3));
  }
  if (!writes) return;
  Latencies after;
  double cpu_w = 0;
  int n = std::max(10, o_.list_calls / 2);
  for (int i = 0; i < n; ++i) {
    TouchIndex(sys, i * 7919);
    double c0 = CpuSeconds(sys.pid);
    RawList r = ListRaw(sys);
    cpu_w += CpuSeconds(sys.pid) - c0;
    if (!r.status.ok()) Die(absl::StrCat(sys.name, ": ListImages: ", r.status.error_message()));
    after.Add(r.seconds);
  }
  if (extra_names_ % 2 == 1) TouchIndex(sys, 0);  // leave no extra name behind
  Json& w = sys.result["list_after_write"];
  w["calls"] = n;
  w["p50_ms"] = after.Pct(50) * 1e3;
  w["p99_ms"] = after.Pct(99) * 1e3;
  w["cpu_per_call_ms"] = cpu_w / n * 1e3;
  Log(absl::StrFormat("%s: ListImages right after an Images API write: p50 %.3f ms, p99 %.3f ms", sys.name,
                      after.Pct(50) * 1e3, after.Pct(99) * 1e3));
}

const std::string& NameOf(const DatasetImage& img, const std::string& kind) {
  return kind == "tag" ? img.tag_name : kind == "digest" ? img.digest_name : img.id;
}

void Bench::MeasureStatus(System& sys, int max_concurrency) {
  for (const std::string kind : {"tag", "digest", "id"}) {
    for (int c : {1, 4, 16}) {
      if (c > max_concurrency) continue;
      std::vector<Latencies> per(c);
      std::atomic<bool> stop{false};
      std::atomic<int> errors{0};
      std::vector<std::thread> threads;
      double cpu0 = CpuSeconds(sys.pid);
      auto t0 = Clock::now();
      for (int t = 0; t < c; ++t) {
        threads.emplace_back([&, t] {
          std::mt19937 rng(1000 + t);
          const int set = o_.status_working_set > 0 ? std::min(o_.status_working_set, o_.images)
                                                    : o_.images;
          std::uniform_int_distribution<int> pick(0, set - 1);
          while (!stop) {
            cripb::ImageStatusRequest req;
            req.mutable_image()->set_image(NameOf(dataset_.images()[pick(rng)], kind));
            cripb::ImageStatusResponse resp;
            grpc::ClientContext ctx;
            auto s0 = Clock::now();
            grpc::Status s = sys.cri->ImageStatus(&ctx, req, &resp);
            per[t].Add(Since(s0));
            if (!s.ok() || !resp.has_image()) ++errors;
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(o_.status_seconds));
      stop = true;
      for (auto& th : threads) th.join();
      double wall = Since(t0);
      double cpu = CpuSeconds(sys.pid) - cpu0;
      Latencies all;
      for (auto& p : per) all.Merge(p);
      Json& out = sys.result["status"][kind][absl::StrCat(c)];
      double calls = static_cast<double>(all.s.size());
      out["calls_per_s"] = calls / wall;
      out["p50_us"] = all.Pct(50) * 1e6;
      out["p99_us"] = all.Pct(99) * 1e6;
      out["p999_us"] = all.Pct(99.9) * 1e6;
      out["cpu_per_call_us"] = cpu / calls * 1e6;
      out["errors"] = errors.load();
      Log(absl::StrFormat("%s: ImageStatus by %-6s x%-2d: %8.0f calls/s  p50 %7.0f us  p99 %7.0f us  p99.9 %7.0f us  CPU %5.0f us/call%s",
                          sys.name, kind, c, calls / wall, all.Pct(50) * 1e6, all.Pct(99) * 1e6,
                          all.Pct(99.9) * 1e6, cpu / calls * 1e6,
                          errors ? absl::StrCat("  ERRORS ", errors.load()) : ""));
    }
  }
}

void Bench::MeasureMixed(System& sys) {
  const double period = 30.0 / o_.time_scale;
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  Latencies list_lat, status_lat;
  std::atomic<int> writes{0}, errors{0};
  std::atomic<double> max_rss{0};
  std::vector<std::thread> threads;
  double cpu0 = CpuSeconds(sys.pid);
  auto t0 = Clock::now();
  auto sleep_until = [&](Clock::time_point t) {
    while (!stop && Clock::now() < t) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  for (int n = 0; n < o_.nodes; ++n) {
    threads.emplace_back([&, n] {
      auto next = t0 + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(period * n / o_.nodes));
      while (true) {
        sleep_until(next);
        if (stop) return;
        RawList r = ListRaw(sys);
        if (!r.status.ok()) ++errors;
        {
          absl::MutexLock lock(&mu);
          list_lat.Add(r.seconds);
        }
        next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(period));
      }
    });
  }
  // Pod starts: every 1 s (scaled), `burst` ImageStatus calls at once.
  for (int b = 0; b < o_.burst; ++b) {
    threads.emplace_back([&, b] {
      std::mt19937 rng(77 + b);
      std::uniform_int_distribution<int> pick(0, o_.images - 1);
      auto next = t0;
      while (true) {
        sleep_until(next);
        if (stop) return;
        cripb::ImageStatusRequest req;
        req.mutable_image()->set_image(dataset_.images()[pick(rng)].tag_name);
        cripb::ImageStatusResponse resp;
        grpc::ClientContext ctx;
        auto s0 = Clock::now();
        if (!sys.cri->ImageStatus(&ctx, req, &resp).ok()) ++errors;
        {
          absl::MutexLock lock(&mu);
          status_lat.Add(Since(s0));
        }
        next += std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(std::max(0.1, 30.0 / o_.time_scale / 30.0 * 10)));
      }
    });
  }
  // Names come and go, as pulls and image GC make them: every period a new
  // tag for one of the images (Images API Create), and the tag made two
  // periods before removed (Images API Delete). Content is not written: a
  // containerd 1.6 Content Write racing its CRI's synchronous GC can stall.
  threads.emplace_back([&] {
    plugin::RemoteImageStore images(sys.channel);
    std::vector<std::string> created;
    int serial = 0;
    auto next = t0;
    while (true) {
      sleep_until(next);
      if (stop) break;
      const DatasetImage& img = dataset_.images()[(serial * 7919) % dataset_.images().size()];
      store::Image rec;
      rec.name = absl::StrCat("registry.example.com/bench/mixed-", serial++, ":v1");
      rec.target.media_type = img.manifest.media_type;
      rec.target.digest = img.manifest.digest;
      rec.target.size = static_cast<int64_t>(img.manifest.bytes.size());
      rec.labels = {{store::kLabelManaged, "managed"}};
      if (images.Create("k8s.io", rec).ok()) {
        created.push_back(rec.name);
        ++writes;
      } else {
        ++errors;
      }
      if (created.size() > 2) {
        if (!images.Delete("k8s.io", created.front()).ok()) ++errors;
        created.erase(created.begin());
        ++writes;
      }
      next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.write_period_s));
    }
    for (const std::string& name : created) images.Delete("k8s.io", name).IgnoreError();
  });
  threads.emplace_back([&] {
    while (!stop) {
      double r = RssMiB(sys.pid);
      if (r > max_rss) max_rss = r;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(o_.mixed_seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double wall = Since(t0);
  double cpu = CpuSeconds(sys.pid) - cpu0;
  Json& out = sys.result["mixed"];
  out["seconds"] = wall;
  out["nodes"] = o_.nodes;
  out["list_calls"] = list_lat.s.size();
  out["list_p50_ms"] = list_lat.Pct(50) * 1e3;
  out["list_p99_ms"] = list_lat.Pct(99) * 1e3;
  out["status_calls"] = status_lat.s.size();
  out["status_p50_us"] = status_lat.Pct(50) * 1e6;
  out["status_p99_us"] = status_lat.Pct(99) * 1e6;
  out["writes"] = writes.load();
  out["errors"] = errors.load();
  out["server_cpu_cores"] = cpu / wall;
  sys.result["rss_under_load_mib"] = max_rss.load();
  Log(absl::StrFormat("%s: mixed load %.0f s: %zu ListImages p50 %.2f ms p99 %.2f ms; %zu ImageStatus p50 %.0f us p99 %.0f us; %d writes; server %.2f cores; max RSS %.1f MiB%s",
                      sys.name, wall, list_lat.s.size(), list_lat.Pct(50) * 1e3, list_lat.Pct(99) * 1e3,
                      status_lat.s.size(), status_lat.Pct(50) * 1e6, status_lat.Pct(99) * 1e6,
                      writes.load(), cpu / wall, max_rss.load(),
                      errors ? absl::StrCat(", ERRORS ", errors.load()) : ""));
}

void Bench::Report() {
  for (auto& sys : systems_) {
    if (!sys->root.empty()) {
      if (sys.get() == imaged_) {
        sys->result["disk_meta_bytes"] = DiskBytes(sys->root + "/meta");
        sys->result["disk_blob_bytes"] = DiskBytes(sys->root + "/blobs");
      } else {
        sys->result["disk_meta_bytes"] = DiskBytes(sys->root + "/io.containerd.metadata.v1.bolt");
        sys->result["disk_blob_bytes"] = DiskBytes(sys->root + "/io.containerd.content.v1.content");
      }
      sys->result["disk_bytes"] = DiskBytes(sys->root);
    }
    doc_["systems"][sys->name] = sys->result;
  }
  std::string json = doc_.dump(2);
  std::printf("%s\n", json.c_str());
  if (!o_.json_out.empty()) std::ofstream(o_.json_out) << json << "\n";
  if (!o_.tsv_out.empty()) {
    // Long format: images, system, metric, value (what plot_cri_scale.sh reads).
    std::ofstream tsv(o_.tsv_out, std::ios::app);
    std::function<void(const std::string&, const std::string&, const Json&)> walk =
        [&](const std::string& system, const std::string& path, const Json& j) {
          if (j.is_object()) {
            for (auto it = j.begin(); it != j.end(); ++it) {
              walk(system, path.empty() ? it.key() : absl::StrCat(path, ".", it.key()), it.value());
            }
          } else if (j.is_number()) {
            tsv << o_.images << "\t" << system << "\t" << path << "\t" << j.dump() << "\n";
          }
        };
    for (auto& sys : systems_) walk(sys->name, "", sys->result);
    walk("protobuf", "", Json{{"serialize_ms", doc_.value("serialize_ms", 0.0)}});
  }
}

void Bench::Run() {
  Setup();
  if (Wants("imaged") || Wants("pr7061")) StartImaged(true);
  if (Wants("containerd")) StartContainerd(true);
  // Start-up with the dataset stored: both restarted, caches dropped.
  if (imaged_) Restart(*imaged_, 120, 0.005);
  if (containerd_) Restart(*containerd_, 1800, 0.1);
  StartBaselines();
  for (auto& sys : systems_) {
    bool writable = sys->has_images_api;
    if (sys->name == "imaged" && !Wants("imaged")) continue;
    MeasureList(*sys, writable);
    MeasureStatus(*sys, 16);
    if (writable) MeasureMixed(*sys);
    if (sys->name != "imaged" && sys->name != "containerd") {
      sys->result["rss_under_load_mib"] = RssMiB(sys->pid);
    }
  }
  for (auto& sys : systems_) sys->result["rss_end_mib"] = RssMiB(sys->pid);
  // Baselines first: pr7061 reads imaged.
  for (auto it = systems_.rbegin(); it != systems_.rend(); ++it) {
    (*it)->cri.reset();
    (*it)->channel.reset();
  }
  for (auto it = systems_.rbegin(); it != systems_.rend(); ++it) Stop((*it)->pid);
  if (!Wants("imaged")) {
    systems_.erase(std::remove_if(systems_.begin(), systems_.end(),
                                  [](const auto& s) { return s->name == "imaged"; }),
                   systems_.end());
  }
  Report();
  fs::remove_all(sockdir_);
  if (!o_.keep) fs::remove_all(dir_);
}

// --serve: one baseline's CRI server, until SIGTERM.
int Serve(const Options& o) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::unique_ptr<grpc::Service> service;
  if (o.serve == "memory") {
    DatasetOptions d;
    d.images = o.images;
    service = std::make_unique<MemoryIndexService>(Dataset::Make(d));
  } else if (o.serve == "pr7061") {
    // 3 names per image at ~420 bytes a record: past ~30k records one
    // unfiltered List would not fit 16 MiB.
    int partitions = 3 * o.images > 30000 ? 16 : 1;
    service = std::make_unique<Pr7061Service>(Connect(o.images_socket), "k8s.io", partitions);
  } else {
    Die("--serve takes memory or pr7061");
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + o.socket, grpc::InsecureServerCredentials());
  builder.SetMaxSendMessageSize(256 << 20);
  builder.RegisterService(service.get());
  auto server = builder.BuildAndStart();
  if (!server) Die("cannot listen on " + o.socket);
  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace
}  // namespace imaged::bench

int main(int argc, char** argv) {
  using imaged::bench::Options;
  Options o;
  CLI::App app{"imaged vs containerd's CRI at node scale (issue 6)"};
  app.add_option("--images", o.images, "images in the dataset (x3 names)");
  app.add_option("--imaged", o.imaged, "the imaged binary");
  app.add_option("--workdir", o.workdir, "roots, archives and logs (default /var/tmp/imaged-cri-scale-N)");
  app.add_option("--systems", o.systems, "comma-separated: imaged,containerd,memory,pr7061");
  app.add_flag("--keep", o.keep, "keep the workdir (loaded roots) for --reuse");
  app.add_flag("--reuse", o.reuse, "reuse the loaded roots a --keep run left");
  app.add_option("--load-concurrency", o.load_concurrency, "imaged loader workers");
  app.add_flag("--no-gc-labels", o.no_gc_labels,
               "imaged loader: manifests without gc.ref labels (a collection takes every config "
               "and layer: for measuring such a sweep)");
  app.add_option("--list-calls", o.list_calls, "ListImages calls at least");
  app.add_option("--list-seconds", o.list_seconds, "ListImages for at least this long");
  app.add_option("--status-seconds", o.status_seconds, "per ImageStatus kind and concurrency");
  app.add_option("--status-working-set", o.status_working_set,
                 "ImageStatus of the first N images only (default: all)");
  app.add_option("--nodes", o.nodes, "mixed load: simulated kubelets");
  app.add_option("--time-scale", o.time_scale, "mixed load: 30 s periods divided by this");
  app.add_option("--mixed-seconds", o.mixed_seconds, "mixed load duration");
  app.add_option("--burst", o.burst, "mixed load: ImageStatus calls per pod-start burst");
  app.add_option("--write-period", o.write_period_s, "mixed load: seconds between image writes");
  app.add_option("--json", o.json_out, "write the results here");
  app.add_option("--tsv", o.tsv_out, "append images/system/metric/value rows here");
  app.add_option("--drop-caches", o.drop_caches, "drop the page cache before each restart");
  app.add_option("--serve", o.serve, "(internal) serve a baseline: memory or pr7061");
  app.add_option("--socket", o.socket, "(internal) baseline socket");
  app.add_option("--images-socket", o.images_socket, "(internal) imaged socket for pr7061");
  CLI11_PARSE(app, argc, argv);
  if (!o.serve.empty()) return imaged::bench::Serve(o);
  if (o.imaged.empty() && (absl::StrContains(o.systems, "imaged") || absl::StrContains(o.systems, "pr7061"))) {
    std::fprintf(stderr, "--imaged is required\n");
    return 2;
  }
  if (!o.imaged.empty()) o.imaged = std::filesystem::absolute(o.imaged).string();
  std::atexit(imaged::bench::KillChildren);
  imaged::bench::Bench(o).Run();
  return 0;
}
