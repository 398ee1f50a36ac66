// A bound on calls of one kind running at once, which several services can
// share: containerd 2.x's Transfer and imaged's Archives imports hold a
// server thread each and up to about 100 MiB of buffers, so they count
// against one store::kMaxConcurrentTransfers together.
#ifndef IMAGED_PLUGIN_CALL_SLOTS_H_
#define IMAGED_PLUGIN_CALL_SLOTS_H_

#include <atomic>
#include <utility>

namespace imaged::plugin {

class CallSlots {
 public:
  explicit CallSlots(int max) : max_(max) {}
  CallSlots(const CallSlots&) = delete;
  CallSlots& operator=(const CallSlots&) = delete;

  // One slot, given back when it goes; false when none was free.
  class Slot {
   public:
    Slot(Slot&& o) noexcept : slots_(std::exchange(o.slots_, nullptr)) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (slots_ != nullptr) --slots_->held_;
    }
    explicit operator bool() const { return slots_ != nullptr; }

   private:
    friend class CallSlots;
    explicit Slot(CallSlots* slots) : slots_(slots) {}
    CallSlots* slots_;
  };

  Slot TryAcquire() {
    if (++held_ > max_) {
      --held_;
      return Slot(nullptr);
    }
    return Slot(this);
  }
  int max() const { return max_; }

 private:
  const int max_;
  std::atomic<int> held_{0};
};

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_CALL_SLOTS_H_
