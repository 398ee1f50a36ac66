#include "tools/imagectl/pull_command.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace imaged::imagectl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

store::IngestStatus Ingest(const std::string& ref, int64_t offset, int64_t total) {
  store::IngestStatus st;
  st.ref = ref;
  st.offset = offset;
  st.total = total;
  return st;
}

TEST(PullProgress, ABlobThatLeavesTheActiveListIsDone) {
  PullProgress p;
  p.Update({Ingest("layer-sha256:aa", 10, 100), Ingest("layer-sha256:bb", 0, 50)});
  EXPECT_EQ(p.done_bytes(), 10);
  EXPECT_EQ(p.total_bytes(), 150);
  p.Update({Ingest("layer-sha256:bb", 25, 50)});
  EXPECT_EQ(p.done_bytes(), 125);
  p.Finish();
  EXPECT_EQ(p.done_bytes(), 150);
}

TEST(PullProgress, PlainLinesAnnounceStartsAndCompletionsOnce) {
  PullProgress p;
  std::ostringstream out;
  p.Update({Ingest("layer-sha256:aa", 10, 1000)});
  p.DrawPlain(out, absl::Hours(1));
  p.DrawPlain(out, absl::Hours(1));
  p.Update({});
  p.DrawPlain(out, absl::Hours(1));
  EXPECT_EQ(out.str(),
            "layer-sha256:aa: downloading 1kB\n"
            "total: 10B of 1kB\n"
            "layer-sha256:aa: done\n");
}

TEST(PullProgress, TerminalRedrawsInPlace) {
  PullProgress p;
  std::ostringstream first, second;
  p.Update({Ingest("layer-sha256:0123456789abcdef", 50, 100)});
  p.DrawTerminal(first);
  EXPECT_THAT(first.str(), Not(HasSubstr("\x1b[2A")));
  EXPECT_THAT(first.str(), HasSubstr("[===============>"));
  EXPECT_THAT(first.str(), HasSubstr("total"));
  p.Finish();
  p.DrawTerminal(second);
  // Two lines (the blob and the total) are drawn over.
  EXPECT_THAT(second.str(), HasSubstr("\x1b[2A"));
  EXPECT_THAT(second.str(), HasSubstr("done"));
}

}  // namespace
}  // namespace imaged::imagectl
