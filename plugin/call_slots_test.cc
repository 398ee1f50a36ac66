#include "plugin/call_slots.h"

#include <utility>

#include "gtest/gtest.h"

namespace imaged::plugin {
namespace {

TEST(CallSlotsTest, AtMostMaxAreHeldAndEachIsGivenBack) {
  CallSlots slots(2);
  {
    CallSlots::Slot a = slots.TryAcquire();
    CallSlots::Slot b = slots.TryAcquire();
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
    EXPECT_FALSE(slots.TryAcquire());  // a refusal holds nothing
    CallSlots::Slot moved = std::move(a);
    EXPECT_FALSE(slots.TryAcquire());  // a move gives nothing back
  }
  CallSlots::Slot c = slots.TryAcquire();
  CallSlots::Slot d = slots.TryAcquire();
  EXPECT_TRUE(c);
  EXPECT_TRUE(d);
  EXPECT_EQ(slots.max(), 2);
}

}  // namespace
}  // namespace imaged::plugin
