#include "plugin/event_exchange.h"

#include <optional>

#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/containerd/events/content.pb.h"
#include "api/containerd/events/image.pb.h"
#include "plugin/convert.h"
#include "store/limits.h"

namespace imaged::plugin {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Fields of an envelope, and of its event where the event's type is known to
// this process: event.<field> for scalar fields, event.<map field>.<key>.
class EnvelopeAdaptor final : public store::FieldAdaptor {
 public:
  explicit EnvelopeAdaptor(const eventspb::Envelope& e) : e_(e) {
    const std::string& url = e.event().type_url();
    std::string name = url.substr(url.rfind('/') == std::string::npos ? 0 : url.rfind('/') + 1);
    const auto* desc =
        google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(name);
    if (desc != nullptr) {
      event_.reset(factory_.GetPrototype(desc)->New());
      if (!event_->ParseFromString(e.event().value())) event_.reset();
    }
  }

  std::optional<absl::string_view> Field(absl::Span<const std::string> path) const override {
    if (path.empty()) return std::nullopt;
    if (path[0] == "namespace") return absl::string_view(e_.namespace_());
    if (path[0] == "topic") return absl::string_view(e_.topic());
    if (path[0] != "event" || path.size() < 2 || !event_) return std::nullopt;
    const auto* field = event_->GetDescriptor()->FindFieldByName(path[1]);
    if (field == nullptr) return std::nullopt;
    const auto* refl = event_->GetReflection();
    if (field->is_map()) {
      if (path.size() < 3) return std::nullopt;
      std::string key = absl::StrJoin(path.subspan(2), ".");
      for (const Message& entry : refl->GetRepeatedFieldRef<Message>(*event_, field)) {
        const auto* ed = entry.GetDescriptor();
        const auto* er = entry.GetReflection();
        if (er->GetString(entry, ed->FindFieldByNumber(1)) == key) {
          scratch_ = er->GetString(entry, ed->FindFieldByNumber(2));
          return absl::string_view(scratch_);
        }
      }
      return std::nullopt;
    }
    if (field->is_repeated() || field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      return std::nullopt;
    }
    scratch_ = refl->GetString(*event_, field);
    return absl::string_view(scratch_);
  }

 private:
  const eventspb::Envelope& e_;
  google::protobuf::DynamicMessageFactory factory_;
  std::unique_ptr<Message> event_;
  mutable std::string scratch_;
};

}  // namespace

EventExchange::Subscription::~Subscription() { exchange_->Remove(this); }

bool EventExchange::Subscription::Next(eventspb::Envelope* out, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return false;
  *out = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

void EventExchange::Publish(absl::string_view ns, absl::string_view topic,
                            const google::protobuf::Message& event) {
  // Every image write and content commit publishes: with nobody subscribed
  // (the usual case) no envelope is built. A subscriber that arrives now
  // sees the events published after it subscribed, as always.
  {
    absl::MutexLock lock(&mu_);
    if (subscribers_.empty()) return;
  }
  eventspb::Envelope envelope;
  ToProto(absl::Now(), envelope.mutable_timestamp());
  envelope.set_namespace_(std::string(ns));
  envelope.set_topic(std::string(topic));
  // containerd's type URLs are the bare message name.
  envelope.mutable_event()->set_type_url(event.GetDescriptor()->full_name());
  event.SerializeToString(envelope.mutable_event()->mutable_value());
  PublishEnvelope(envelope);
}

void EventExchange::PublishEnvelope(const eventspb::Envelope& envelope) {
  // The event is decoded (for event.<field> filters) only if a filter asks.
  std::optional<EnvelopeAdaptor> adaptor;
  absl::MutexLock lock(&mu_);
  for (Subscription* s : subscribers_) {
    if (!s->filter_.MatchesAll()) {
      if (!adaptor) adaptor.emplace(envelope);
      if (!s->filter_.Match(*adaptor)) continue;
    }
    absl::MutexLock queue_lock(&s->mu_);
    if (s->queue_.size() >= kMaxQueue) s->queue_.pop_front();
    s->queue_.push_back(envelope);
  }
}

absl::StatusOr<std::unique_ptr<EventExchange::Subscription>> EventExchange::Subscribe(
    absl::Span<const std::string> filters) {
  absl::StatusOr<store::Filter> filter = store::Filter::ParseAll(filters);
  if (!filter.ok()) return filter.status();
  std::unique_ptr<Subscription> s(new Subscription(this, *std::move(filter)));
  absl::MutexLock lock(&mu_);
  subscribers_.push_back(s.get());
  return s;
}

void EventExchange::Remove(Subscription* s) {
  absl::MutexLock lock(&mu_);
  subscribers_.remove(s);
}

absl::Status EventExchange::ValidateTopic(absl::string_view topic) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("topic ", store::Quote(topic), ": ", why));
  };
  if (topic.size() < 2 || topic[0] != '/') return invalid("must start with '/' and name something");
  for (absl::string_view part : absl::StrSplit(topic.substr(1), '/')) {
    if (part.empty()) return invalid("empty component");
    for (char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
        return invalid(
            absl::StrCat("invalid character '", absl::CHexEscape(std::string(1, c)), "'"));
      }
    }
  }
  return absl::OkStatus();
}

void EventExchange::PublishImageWritten(absl::string_view ns, const store::Image& image,
                                        bool existed) {
  if (existed) {
    Publish(ns, "/images/update", ImageEvent<imagespb::ImageUpdate>(image));
  } else {
    Publish(ns, "/images/create", ImageEvent<imagespb::ImageCreate>(image));
  }
}

void EventExchange::PublishContentCreated(absl::string_view ns, absl::string_view digest,
                                          int64_t size) {
  ::containerd::events::ContentCreate event;
  event.set_digest(std::string(digest));
  event.set_size(size);
  Publish(ns, "/content/create", event);
}

void EventExchange::PublishContentDeleted(absl::string_view ns, absl::string_view digest) {
  ::containerd::events::ContentDelete event;
  event.set_digest(std::string(digest));
  Publish(ns, "/content/delete", event);
}

void EventExchange::PublishImageDeleted(absl::string_view ns, absl::string_view name) {
  imagespb::ImageDelete event;
  event.set_name(std::string(name));
  Publish(ns, "/images/delete", event);
}

}  // namespace imaged::plugin
