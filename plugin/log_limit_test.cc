#include "plugin/log_limit.h"

#include <cstdint>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace imaged::plugin {
namespace {

TEST(LogLimiterTest, AdmitsUpToTheLimitPerWindowAndCountsTheRest) {
  LogLimiter limiter(2, absl::Minutes(1));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  int64_t dropped = -1;
  EXPECT_TRUE(limiter.Admit(t0, &dropped));
  EXPECT_EQ(dropped, 0);
  EXPECT_TRUE(limiter.Admit(t0 + absl::Seconds(1), &dropped));
  EXPECT_EQ(dropped, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.Admit(t0 + absl::Seconds(2), &dropped));
  EXPECT_FALSE(limiter.Admit(t0 + absl::Seconds(59), &dropped));
  // The next window's first line says how many the last one dropped.
  EXPECT_TRUE(limiter.Admit(t0 + absl::Seconds(60), &dropped));
  EXPECT_EQ(dropped, 1001);
  EXPECT_TRUE(limiter.Admit(t0 + absl::Seconds(61), &dropped));
  EXPECT_EQ(dropped, 0);
  EXPECT_FALSE(limiter.Admit(t0 + absl::Seconds(62), &dropped));
}

}  // namespace
}  // namespace imaged::plugin
