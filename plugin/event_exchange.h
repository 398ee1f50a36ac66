// In-process event fan-out with containerd's envelope and filter semantics.
// Writers publish after their write has committed; subscribers receive the
// envelopes their filters match, in publish order.
#ifndef IMAGED_PLUGIN_EVENT_EXCHANGE_H_
#define IMAGED_PLUGIN_EVENT_EXCHANGE_H_

#include <google/protobuf/message.h>

#include <atomic>
#include <deque>
#include <list>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "api/containerd/services/events/v1/events.pb.h"
#include "store/filter.h"
#include "store/image_store.h"

namespace imaged::plugin {

namespace eventspb = ::containerd::services::events::v1;

class EventExchange {
 public:
  // A subscriber's queue. Destroying it unsubscribes.
  class Subscription {
   public:
    ~Subscription();
    // Waits up to `timeout` for the next envelope; false when none came.
    bool Next(eventspb::Envelope* out, absl::Duration timeout);

   private:
    friend class EventExchange;
    Subscription(EventExchange* exchange, store::Filter filter)
        : exchange_(exchange), filter_(std::move(filter)) {}

    EventExchange* const exchange_;
    const store::Filter filter_;
    absl::Mutex mu_;
    std::deque<eventspb::Envelope> queue_ ABSL_GUARDED_BY(mu_);
  };

  // A subscriber that falls this far behind loses the oldest envelopes.
  static constexpr size_t kMaxQueue = 4096;

  // Publishes `event` under `topic` in namespace `ns`.
  void Publish(absl::string_view ns, absl::string_view topic,
               const google::protobuf::Message& event);
  // The events containerd's Images API publishes: /images/create (or
  // /images/update when `existed`) for a record written, with its name and
  // labels; /images/delete for a name removed.
  void PublishImageWritten(absl::string_view ns, const store::Image& image, bool existed);
  void PublishImageDeleted(absl::string_view ns, absl::string_view name);
  // The Content API's: /content/create when a write committed a new blob
  // (containerd 2.x), /content/delete when Delete removed one.
  void PublishContentCreated(absl::string_view ns, absl::string_view digest, int64_t size);
  void PublishContentDeleted(absl::string_view ns, absl::string_view digest);
  // Publishes a complete envelope (Publish and Forward RPCs).
  void PublishEnvelope(const eventspb::Envelope& envelope);
  // Subscribes with containerd filters over namespace, topic and event.<field>.
  absl::StatusOr<std::unique_ptr<Subscription>> Subscribe(absl::Span<const std::string> filters);

  // Ends every subscription stream (server shutdown): Subscribe loops check it.
  void Close() { closed_.store(true); }
  bool closed() const { return closed_.load(); }

  // containerd's topic rule: "/" followed by "/"-separated components of
  // letters, digits, '_', '-' and '.'. InvalidArgument otherwise.
  static absl::Status ValidateTopic(absl::string_view topic);

 private:
  void Remove(Subscription* s);

  absl::Mutex mu_;
  std::list<Subscription*> subscribers_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> closed_{false};
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_EVENT_EXCHANGE_H_
