#include "plugin/mirror_runner.h"

#include <grpcpp/create_channel.h>

#include <cstdio>
#include <deque>
#include <map>
#include <functional>

#include "absl/strings/str_cat.h"
#include "api/containerd/events/image.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"

namespace imaged::plugin {
namespace {

namespace eventspb = ::containerd::services::events::v1;

constexpr char kProbeTopic[] = "/imaged/mirror-probe";

std::shared_ptr<grpc::Channel> Dial(const std::string& path) {
  grpc::ChannelArguments args;
  // containerd answers an unfiltered List with up to 16 MiB.
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel("unix:" + path, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

MirrorRunner::MirrorRunner(Options options, cri::MirrorTarget target,
                           const store::Platform& platform)
    : options_(std::move(options)),
      channel_(Dial(options_.containerd_address)),
      calls_(std::make_unique<UpstreamCalls>(options_.calls)) {
  images_ = std::make_unique<RemoteImageStore>(channel_, calls_.get());
  content_ = std::make_unique<RemoteContentStore>(channel_, calls_.get());
  leases_ = std::make_unique<RemoteLeaseStore>(channel_, calls_.get());
  cri::MirrorSource source{images_.get(), content_.get()};
  source.delete_sync = [images = images_.get()](absl::string_view ns, absl::string_view name) {
    return images->DeleteSync(ns, name);
  };
  mirror_ = std::make_unique<cri::Mirror>(std::move(source), target,
                                          platform);
  calls_->OnHealthChange([this](bool) { UpstreamHealthChanged(); });
}

MirrorRunner::~MirrorRunner() { Stop(); }

void MirrorRunner::Start() {
  thread_ = std::thread([this] { Loop(); });
  heartbeat_ = std::thread([this] { Heartbeat(); });
}

void MirrorRunner::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  calls_->CancelAll();
  if (thread_.joinable()) thread_.join();
  if (heartbeat_.joinable()) heartbeat_.join();
}

void MirrorRunner::Heartbeat() {
  // A Get of a name nobody uses: NotFound is the answer expected; what
  // matters is that one comes within the deadline.
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    mu_.Unlock();
    images_->Get(options_.namespaces.front(), "imaged-heartbeat").status().IgnoreError();
    mu_.Lock();
    mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.heartbeat);
  }
}

void MirrorRunner::SetConnected(bool connected, absl::string_view error) {
  mirror_->SetConnected(connected, error);
  {
    absl::MutexLock lock(&health_mu_);
    connected_ = connected;
  }
  UpstreamHealthChanged();
}

void MirrorRunner::UpstreamHealthChanged() {
  absl::MutexLock lock(&health_mu_);
  const UpstreamCalls::Health h = calls_->health();
  mirror_->SetAnswering(h.answering, h.since, h.last_failure);
  const bool serving = connected_ && h.answering;
  if (serving_ == serving) return;
  serving_ = serving;
  if (!h.answering) {
    std::fprintf(stderr, "imaged: mirror: containerd at %s is not answering (%s)\n",
                 options_.containerd_address.c_str(), h.last_failure.c_str());
  }
  if (options_.on_serving) options_.on_serving(serving);
}

void MirrorRunner::Loop() {
  absl::Duration backoff = absl::Milliseconds(500);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    const absl::Time start = absl::Now();
    absl::Status ended = RunOnce();
    SetConnected(false, ended.ToString());
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    std::fprintf(stderr, "imaged: mirror: containerd at %s: %s; retrying in %s\n",
                 options_.containerd_address.c_str(), ended.ToString().c_str(),
                 absl::FormatDuration(backoff).c_str());
    // A connection that lasted resets the backoff.
    if (absl::Now() - start > absl::Minutes(1)) backoff = absl::Milliseconds(500);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status MirrorRunner::RunOnce() {
  auto events = eventspb::Events::NewStub(channel_);
  // Idle for as long as containerd has nothing to say; Stop cancels it.
  std::unique_ptr<UpstreamCalls::Call> sub =
      calls_->Start("Events/Subscribe", "", UpstreamCalls::Kind::kSubscription);
  grpc::ClientContext& ctx = *sub->get();

  eventspb::SubscribeRequest req;
  for (const std::string& ns : options_.namespaces) {
    req.add_filters(absl::StrCat("topic~=\"^/images/\",namespace==\"", ns, "\""));
  }
  req.add_filters(absl::StrCat("topic==\"", kProbeTopic, "\""));
  std::unique_ptr<grpc::ClientReader<eventspb::Envelope>> reader = events->Subscribe(&ctx, req);

  // The probe: once one comes back, the subscription is registered. The
  // call above returns before containerd has registered it, so probes are
  // published until one arrives.
  const std::string probe_id = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  absl::Notification probed_note;
  absl::Status publish_error;
  std::thread prober([&] {
    for (int i = 0; i < 100 && !probed_note.HasBeenNotified(); ++i) {
      eventspb::PublishRequest pub;
      pub.set_topic(kProbeTopic);
      pub.mutable_event()->set_type_url("imaged.mirror.probe");
      pub.mutable_event()->set_value(probe_id);
      google::protobuf::Empty empty;
      auto pub_call = calls_->Start("Events/Publish", options_.namespaces.front());
      absl::Status s = pub_call->Finish(events->Publish(pub_call->get(), pub, &empty));
      if (!s.ok()) {
        publish_error = s;
        ctx.TryCancel();
        return;
      }
      probed_note.WaitForNotificationWithTimeout(absl::Milliseconds(200));
    }
    if (!probed_note.HasBeenNotified()) ctx.TryCancel();  // 20 s without our own event
  });
  eventspb::Envelope env;
  bool probed = false;
  std::vector<std::pair<std::string, std::string>> early;  // events before the probe
  while (!probed && reader->Read(&env)) {
    if (env.topic() == kProbeTopic) {
      probed = env.event().value() == probe_id;
    } else {
      imagespb::ImageDelete named;  // every image event has the name as field 1
      if (named.ParseFromString(env.event().value())) early.emplace_back(env.namespace_(), named.name());
    }
  }
  if (!probed_note.HasBeenNotified()) probed_note.Notify();
  prober.join();
  if (!publish_error.ok()) {
    reader->Finish().ok();
    return publish_error;
  }
  if (!probed) return sub->Finish(reader->Finish());

  for (const std::string& ns : options_.namespaces) {
    absl::StatusOr<cri::MirrorSyncReport> r = mirror_->Sync(ns);
    if (!r.ok()) {
      ctx.TryCancel();
      reader->Finish().ok();
      return r.status();
    }
    std::fprintf(stderr,
                 "imaged: mirror: %s: %lld records in containerd, %lld unchanged, %lld written, "
                 "%lld deleted, in %s\n",
                 ns.c_str(), static_cast<long long>(r->upstream),
                 static_cast<long long>(r->unchanged), static_cast<long long>(r->written),
                 static_cast<long long>(r->deleted),
                 absl::FormatDuration(absl::Trunc(r->took, absl::Milliseconds(1))).c_str());
  }
  for (const auto& [ns, name] : early) mirror_->SyncName(ns, name).IgnoreError();
  // Connected means: in step with containerd, following its events.
  SetConnected(true);

  // Events are applied by a few workers, each name always by the same one
  // (in order for that name); different names in parallel, so a burst of
  // imports does not queue behind one slow write.
  constexpr size_t kWorkers = 4;
  constexpr size_t kMaxEventBatch = 256;
  struct Work {
    std::string ns, name, topic;
    absl::Time at;
  };
  struct Queue {
    absl::Mutex mu;
    std::deque<Work> items ABSL_GUARDED_BY(mu);
    bool closed ABSL_GUARDED_BY(mu) = false;
  };
  std::vector<std::unique_ptr<Queue>> queues;
  std::vector<std::thread> workers;
  for (size_t w = 0; w < kWorkers; ++w) {
    queues.push_back(std::make_unique<Queue>());
    workers.emplace_back([this, q = queues.back().get()] {
      while (true) {
        // Everything queued meanwhile goes in one SyncNames: a burst costs a
        // lease and a RocksDB write per batch, not per event.
        std::vector<Work> batch;
        {
          absl::MutexLock lock(&q->mu);
          auto ready = [q]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu) {
            return !q->items.empty() || q->closed;
          };
          q->mu.Await(absl::Condition(&ready));
          if (q->items.empty()) return;
          while (!q->items.empty() && batch.size() < kMaxEventBatch) {
            batch.push_back(std::move(q->items.front()));
            q->items.pop_front();
          }
        }
        std::map<std::string, std::vector<const Work*>> by_ns;
        for (const Work& work : batch) by_ns[work.ns].push_back(&work);
        for (const auto& [ns, works] : by_ns) {
          std::vector<std::string> names;
          for (const Work* work : works) names.push_back(work->name);
          absl::StatusOr<std::vector<bool>> applied = mirror_->SyncNames(ns, names);
          if (applied.ok()) {
            const absl::Time now = absl::Now();
            for (const Work* work : works) mirror_->EventApplied(now - work->at);
            continue;
          }
          // One name's failure (containerd not answering for it, a target
          // that does not copy) must not drop the others' events: one by one.
          for (const Work* work : works) {
            absl::StatusOr<bool> one = mirror_->SyncName(ns, work->name);
            if (!one.ok()) {
              std::fprintf(stderr, "imaged: mirror: %s %s: %s\n", work->topic.c_str(),
                           work->name.c_str(), one.status().ToString().c_str());
              continue;
            }
            mirror_->EventApplied(absl::Now() - work->at);
          }
        }
      }
    });
  }
  while (reader->Read(&env)) {
    if (env.topic() == kProbeTopic) continue;
    imagespb::ImageDelete named;
    if (!named.ParseFromString(env.event().value()) || named.name().empty()) continue;
    Queue* q = queues[std::hash<std::string>()(named.name()) % kWorkers].get();
    absl::MutexLock lock(&q->mu);
    q->items.push_back(Work{env.namespace_(), named.name(), env.topic(), FromProto(env.timestamp())});
  }
  for (auto& q : queues) {
    absl::MutexLock lock(&q->mu);
    q->closed = true;
  }
  for (std::thread& t : workers) t.join();
  absl::Status finished = sub->Finish(reader->Finish());
  return finished.ok() ? absl::UnavailableError("containerd closed the event stream") : finished;
}

}  // namespace imaged::plugin
