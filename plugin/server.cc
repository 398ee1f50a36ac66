#include "plugin/server.h"

#include <malloc.h>

#include <grpcpp/create_channel.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "store/clock.h"
#include "store/errors.h"
#include "store/files.h"
#include "store/limits.h"
#include "cri/reference.h"
#include "store/platform.h"
#include "plugin/archives_service.h"
#include "plugin/leases_service.h"
#include "plugin/namespaces.h"
#include "plugin/transfer_service.h"

namespace imaged::plugin {
namespace {

// containerd's 16 MiB (store/limits.h): a chunk of 1 MiB plus framing fits.
constexpr int kMaxMessageSize = store::kMaxReceiveMessageBytes;

bool SocketAnswers(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  store::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

absl::Status CheckWritableDir(const std::string& dir) {
  if (absl::Status s = store::MakeDirs(dir); !s.ok()) return s;
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return store::ErrnoError(errno, absl::StrCat("root ", dir, " is not writable"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PrepareSocket(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("socket address must not be empty");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", path, " is too long"));
  }
  std::string dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    if (absl::Status s = store::MakeDirs(dir); !s.ok()) return s;
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return store::ErrnoError(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a socket"));
  }
  if (SocketAnswers(path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket ", path, " is in use by a live server"));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return store::ErrnoError(errno, absl::StrCat("remove stale socket ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config) {
  // Everything a configuration can get wrong, before anything is opened.
  absl::StatusOr<store::Platform> platform = store::ParsePlatform(config.platform);
  if (!platform.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("platform: ", platform.status().message()));
  }
  if (absl::Status s = ValidateNamespace(config.cri_namespace); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cri_namespace: ", s.message()));
  }
  if (!config.containerd_address.empty() &&
      std::find(config.mirror_namespaces.begin(), config.mirror_namespaces.end(),
                config.cri_namespace) == config.mirror_namespaces.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mirror_namespaces must include cri_namespace \"", config.cri_namespace, "\""));
  }
  if (absl::Status s = PrepareSocket(config.address); !s.ok()) return s;
  if (absl::Status s = CheckWritableDir(config.root); !s.ok()) return s;

  std::unique_ptr<Server> server(new Server(config));
  if (absl::Status s = server->OpenStores(*platform); !s.ok()) return s;
  server->StartCollector();
  if (absl::Status s = server->BuildServices(*platform); !s.ok()) return s;
  if (absl::Status s = server->Serve(); !s.ok()) return s;
  return server;
}

absl::Status Server::OpenStores(const store::Platform& platform) {
  const absl::Time start = absl::Now();
  store::LocalStoresOptions store_options;
  store_options.platform = platform;
  store_options.classify = cri::ClassifyImageName;
  store_options.on_resolve_error = [](absl::string_view digest, const absl::Status& s) {
    std::fprintf(stderr, "imaged: resolving images waiting for %s: %s\n",
                 std::string(digest).c_str(), s.ToString().c_str());
  };
  absl::StatusOr<std::unique_ptr<store::LocalStores>> stores =
      store::LocalStores::Open(config_.root, std::move(store_options));
  if (!stores.ok()) return stores.status();
  stores_ = *std::move(stores);
  db_ = stores_->db();
  content_ = stores_->content();
  images_ = stores_->images();
  leases_ = stores_->leases();
  const absl::Time opened = absl::Now();
  if (absl::Status s = content_->Recover(); !s.ok()) return s;
  std::fprintf(stderr, "imaged: metadata opened in %.3f s, content recovered in %.3f s\n",
               absl::ToDoubleSeconds(opened - start), absl::ToDoubleSeconds(absl::Now() - opened));
  // A crash may have come between a blob's commit and the retry it triggers.
  if (absl::Status s = images_->RetryUnresolved(); !s.ok()) return s;
  if (config_.index_check != "off") {
    auto report = images_->Check(config_.index_check == "repair");
    if (!report.ok()) return report.status();
    for (const std::string& p : report->problems) {
      std::fprintf(stderr, "imaged: index check: %s\n", p.c_str());
    }
    std::fprintf(stderr, "imaged: index check: %d records, %d resolved, %d unresolved, %zu problems%s\n",
                 report->records, report->resolved, report->unresolved, report->problems.size(),
                 report->repaired ? ", repaired" : "");
  }
  if (auto expired = content_->ExpireIngests(config_.ingest_expiry); !expired.ok()) {
    return expired.status();
  }
  return absl::OkStatus();
}

void Server::StartCollector() {
  store::GcOptions options;
  if (config_.gc_sweep_chunk > 0) options.sweep_chunk = config_.gc_sweep_chunk;
  collector_ = std::make_unique<store::Collector>(db_, content_, leases_,
                                                  store::SystemClock::Get(), options);
  gc_ = std::make_unique<GcScheduler>(
      collector_.get(),
      config_.gc_interval == absl::ZeroDuration() ? absl::InfiniteDuration() : config_.gc_interval,
      config_.gc_delay, config_.gc_max_share);
}

absl::Status Server::BuildServices(const store::Platform& platform) {
  store::RocksDbImageStore* images = images_;
  GcScheduler* gc = gc_.get();
  auto health = std::make_unique<HealthService>();
  health->ServeAsync(&async_calls_);
  health_ = health.get();
  services_.push_back(std::move(health));
  auto content_service = std::make_unique<ContentService>(content_, &events_, config_.content_proxy);
  content_service->ServeAsync(&async_calls_);
  services_.push_back(std::move(content_service));
  auto images_service = std::make_unique<ImagesService>(images, &events_, gc);
  images_service->ServeAsync(&async_calls_);
  services_.push_back(std::move(images_service));
  services_.push_back(std::make_unique<EventsService>(&events_));
  services_.push_back(std::make_unique<LeasesService>(leases_, gc));
  store::RocksDbContentStore* content_store = content_;
  cri_ = std::make_unique<cri::ImageService>(
      images, config_.root, [content_store] { return content_store->Usage(); });
  http_ = std::make_unique<cri::HttpClient>();
  cri::PullerOptions pull_options;
  pull_options.hosts_dir = config_.registry_config_path;
  pull_options.max_concurrent_downloads = config_.max_concurrent_downloads;
  if (config_.pull_initial_backoff > absl::ZeroDuration()) {
    pull_options.retry.initial_backoff = config_.pull_initial_backoff;
  }
  pull_options.log = [](const std::string& line) {
    std::fprintf(stderr, "imaged: %s\n", line.c_str());
  };
  cri::Puller* cri_puller = nullptr;
  if (config_.containerd_address.empty()) {
    puller_ = std::make_unique<cri::Puller>(content_, images, images, leases_, http_.get(),
                                            platform, std::move(pull_options));
    cri_puller = puller_.get();
    // containerd 2.x's ctr pulls, imports and exports through these.
    auto streaming = std::make_unique<StreamingService>(&streams_);
    streaming->ServeAsync(&async_calls_);
    services_.push_back(std::move(streaming));
    services_.push_back(std::make_unique<TransferService>(
        TransferService::Stores{content_, images, leases_, puller_.get()}, &streams_, &events_,
        platform, &transfer_slots_));
    // imagectl import: the same import, its commits batched.
    services_.push_back(std::make_unique<ArchivesService>(content_, images, leases_, &events_,
                                                          platform, &transfer_slots_));
  } else {
    // Mirror mode: containerd holds the images; imaged indexes them.
    MirrorRunner::Options mirror_options;
    mirror_options.containerd_address = config_.containerd_address;
    mirror_options.namespaces = config_.mirror_namespaces;
    mirror_options.calls.timeout = config_.containerd_timeout;
    mirror_options.calls.list_timeout = config_.containerd_list_timeout;
    mirror_options.calls.stream_cap = config_.upstream_pull_timeout;
    mirror_options.on_serving = [this](bool serving) {
      health_->SetServingStatus(kMirrorHealthService, serving);
    };
    mirror_ = std::make_unique<MirrorRunner>(
        std::move(mirror_options), cri::MirrorTarget{content_, images, images, leases_}, platform);
    if (config_.upstream_cri_address.empty()) {
      // Pulls go into containerd itself, under a containerd lease.
      mirror_committer_ = std::make_unique<RemoteImageCommitter>(
          &mirror_->upstream_content(), &mirror_->upstream_images());
      puller_ = std::make_unique<cri::Puller>(
          &mirror_->upstream_content(), &mirror_->upstream_images(), mirror_committer_.get(),
          &mirror_->upstream_leases(), http_.get(), platform, std::move(pull_options));
      cri_puller = puller_.get();
    }
  }
  auto cri_service = std::make_unique<CriService>(cri_.get(), &events_, config_.cri_namespace,
                                                  cri_puller, gc);
  if (mirror_ != nullptr) {
    CriService::MirrorOptions options;
    options.misses.budget = config_.mirror_miss_budget;
    options.misses.max_pending = static_cast<size_t>(config_.mirror_miss_queue);
    options.pull_timeout = config_.upstream_pull_timeout;
    options.disk.root = config_.containerd_root;
    options.disk.snapshotter = config_.containerd_snapshotter;
    cri_service->SetMirror(mirror_.get(),
                           config_.upstream_cri_address.empty()
                               ? nullptr
                               : grpc::CreateChannel("unix:" + config_.upstream_cri_address,
                                                     grpc::InsecureChannelCredentials()),
                           options);
  }
  cri_service->ServeAsync(&async_calls_);
  cri_service_ = cri_service.get();
  // kubelet lists images as soon as it connects: have the answer under way.
  cri_service->WarmUp();
  services_.push_back(std::move(cri_service));
  services_.push_back(std::make_unique<AdminService>(
      images, content_, collector_.get(), gc, mirror_ != nullptr ? &mirror_->mirror() : nullptr));
  return absl::OkStatus();
}

absl::Status Server::Serve() {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + config_.address, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(kMaxMessageSize);
  builder.SetMaxSendMessageSize(kMaxMessageSize);
  // The synchronous services (Content, Images, Leases...) run on gRPC's
  // thread pool, which by default keeps at most 2 idle pollers: under
  // concurrent calls it created and ended a thread per call (clone, stack
  // mmap and munmap; ~4% of a bulk load's CPU). Idle pollers wake every 10 s.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 16);
  if (!config_.metrics_address.empty()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> timing;
    timing.push_back(rpc_metrics_.InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(timing));
  }
  for (const auto& service : services_) builder.RegisterService(service.get());
  async_calls_.AddTo(&builder);
  grpc_ = builder.BuildAndStart();
  if (grpc_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config_.address));
  }
  async_calls_.Start();
  if (::chmod(config_.address.c_str(), config_.socket_mode) != 0) {
    return store::ErrnoError(errno, absl::StrCat("chmod ", config_.address));
  }
  expirer_ = std::thread([this] { ExpireLoop(); });
  trimmer_ = std::thread([this] { TrimLoop(); });
  if (!config_.metrics_address.empty()) {
    auto metrics =
        MetricsServer::Start(config_.metrics_address, [this] { return RenderMetrics(); });
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
    std::fprintf(stderr, "imaged: metrics on port %d (GET /metrics)\n", metrics_->port());
  }
  if (mirror_ != nullptr) {
    health_->SetServingStatus(kMirrorHealthService, false);
    mirror_->Start();
  }
  return absl::OkStatus();
}

void Server::ExpireLoop() {
  // Crash leftovers in blobs/, once serving has begun: listing the directory
  // was a quarter of the start-up at 60,000 blobs.
  if (absl::Status s = content_->RemoveUnheldBlobs(); !s.ok()) {
    std::fprintf(stderr, "imaged: removing unheld blob files: %s\n", s.ToString().c_str());
  }
  const absl::Duration period = std::min(config_.ingest_expiry / 4, absl::Hours(1));
  while (!stop_.WaitForNotificationWithTimeout(period)) {
    auto expired = content_->ExpireIngests(config_.ingest_expiry);
    if (!expired.ok()) {
      std::fprintf(stderr, "imaged: expiring ingests: %s\n", expired.status().ToString().c_str());
    } else if (*expired > 0) {
      std::fprintf(stderr, "imaged: expired %d stale ingests\n", *expired);
    }
  }
}

void Server::TrimLoop() {
  while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) ::malloc_trim(0);
}

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  metrics_.reset();
  // Only a server that got as far as listening owns the socket: a failed
  // start must not remove the socket of the live server it found there.
  const bool listening = grpc_ != nullptr;
  events_.Close();
  if (health_ != nullptr) health_->Shutdown();  // its watches end
  if (listening) {
    // A handler waiting on containerd, or running a garbage collection,
    // would hold the drain past its deadline (gRPC waits for every handler to
    // return): when the drain runs out, calls to containerd are cancelled,
    // waiting ImageStatus misses answered and a collection stopped, so every
    // handler returns.
    absl::Notification drained;
    std::thread canceller([this, &drained] {
      if (drained.WaitForNotificationWithTimeout(config_.shutdown_timeout)) return;
      if (mirror_ != nullptr) mirror_->CancelCalls();
      if (cri_service_ != nullptr) cri_service_->StopMirror();
      if (collector_ != nullptr) collector_->Shutdown();
    });
    auto deadline = std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(config_.shutdown_timeout);
    grpc_->Shutdown(deadline);
    grpc_->Wait();
    async_calls_.Shutdown();
    drained.Notify();
    canceller.join();
  }
  if (mirror_ != nullptr) mirror_->Stop();
  if (cri_service_ != nullptr) cri_service_->StopMirror();
  stop_.Notify();
  if (expirer_.joinable()) expirer_.join();
  if (trimmer_.joinable()) trimmer_.join();
  if (gc_ != nullptr) gc_->Stop();
  grpc_.reset();
  cri_service_ = nullptr;
  health_ = nullptr;
  services_.clear();
  cri_.reset();
  puller_.reset();
  mirror_committer_.reset();
  mirror_.reset();
  http_.reset();
  gc_.reset();
  collector_.reset();
  db_ = nullptr;
  content_ = nullptr;
  images_ = nullptr;
  leases_ = nullptr;
  stores_.reset();
  if (listening) ::unlink(config_.address.c_str());
}

Server::~Server() { Shutdown(); }

std::string Server::RenderMetrics() {
  std::string out;
  rpc_metrics_.Write(&out);
  const ListImagesCache::Stats list = cri_service().ListCacheStats();
  AppendHeader(&out, "imaged_cri_images", "gauge",
               "Images in the CRI index (as of the last ListImages answer built).");
  AppendSample(&out, "imaged_cri_images", "", static_cast<double>(list.images));
  AppendHeader(&out, "imaged_cri_index_generation", "counter", "Writes of the CRI index since start.");
  AppendSample(&out, "imaged_cri_index_generation", "", static_cast<double>(images_->Generation()));
  AppendHeader(&out, "imaged_cri_list_cache_hits_total", "counter",
               "ListImages answered with the cached response.");
  AppendSample(&out, "imaged_cri_list_cache_hits_total", "", static_cast<double>(list.hits));
  AppendHeader(&out, "imaged_cri_list_cache_builds_total", "counter",
               "ListImages responses built (after index writes).");
  AppendSample(&out, "imaged_cri_list_cache_builds_total", "", static_cast<double>(list.builds));
  AppendHeader(&out, "imaged_cri_list_cache_bytes", "gauge", "Size of the cached ListImages response.");
  AppendSample(&out, "imaged_cri_list_cache_bytes", "", static_cast<double>(list.bytes));
  AppendHeader(&out, "imaged_cri_list_build_seconds", "gauge", "How long the last build took.");
  AppendSample(&out, "imaged_cri_list_build_seconds", "", list.last_build_seconds);
  const StatusAnswerCache::Stats status = cri_service().StatusCacheStats();
  AppendHeader(&out, "imaged_cri_status_cache_hits_total", "counter",
               "ImageStatus answered with the answer kept for the same request.");
  AppendSample(&out, "imaged_cri_status_cache_hits_total", "", static_cast<double>(status.hits));
  AppendHeader(&out, "imaged_cri_status_cache_answers", "gauge",
               "ImageStatus answers kept (until the index changes).");
  AppendSample(&out, "imaged_cri_status_cache_answers", "", static_cast<double>(status.answers));
  AppendHeader(&out, "imaged_cri_status_from_list_total", "counter",
               "ImageStatus answered with an entry of the cached ListImages response.");
  AppendSample(&out, "imaged_cri_status_from_list_total", "", static_cast<double>(list.entries_found));
  if (mirror_ != nullptr) AppendMirrorMetrics(&out);
  AppendRocksDbMetrics(*db_, &out);
  AppendProcessMetrics(&out);
  return out;
}

void Server::AppendMirrorMetrics(std::string* out) {
  const UpstreamCalls::Health health = mirror_->calls().health();
  AppendHeader(out, "imaged_mirror_containerd_answering", "gauge",
               "1 while containerd answers calls within their deadlines, else 0.");
  AppendSample(out, "imaged_mirror_containerd_answering", "", health.answering ? 1 : 0);
  AppendHeader(out, "imaged_mirror_containerd_timeouts_total", "counter",
               "Calls to containerd that ran out of time, per method.");
  for (const auto& [method, n] : mirror_->calls().Timeouts()) {
    AppendSample(out, "imaged_mirror_containerd_timeouts_total",
                 absl::StrCat("method=\"", method, "\""), static_cast<double>(n));
  }
  const cri::MirrorMisses::Stats misses = cri_service_->MissStats();
  AppendHeader(out, "imaged_mirror_miss_lookups_total", "counter",
               "ImageStatus misses looked up in containerd (one per name in flight).");
  AppendSample(out, "imaged_mirror_miss_lookups_total", "", static_cast<double>(misses.lookups));
  AppendHeader(out, "imaged_mirror_misses_total", "counter",
               "ImageStatus misses answered, by outcome (over_budget and queue_full were "
               "answered \"not present\" without waiting for containerd).");
  const std::pair<const char*, int64_t> outcomes[] = {
      {"found", misses.found},           {"absent", misses.absent},
      {"failed", misses.failed},         {"over_budget", misses.over_budget},
      {"queue_full", misses.queue_full},
  };
  for (const auto& [outcome, n] : outcomes) {
    AppendSample(out, "imaged_mirror_misses_total", absl::StrCat("outcome=\"", outcome, "\""),
                 static_cast<double>(n));
  }
}

CriService& Server::cri_service() { return *cri_service_; }

}  // namespace imaged::plugin
