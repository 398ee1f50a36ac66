#include "plugin/status_answer_cache.h"

#include <string>

#include "gtest/gtest.h"

namespace imaged::plugin {
namespace {

std::string Text(const std::optional<grpc::Slice>& s) {
  return s ? std::string(reinterpret_cast<const char*>(s->begin()), s->size()) : "(none)";
}

TEST(StatusAnswerCacheTest, AnAnswerIsFoundOnlyAtItsGeneration) {
  StatusAnswerCache cache;
  cache.Put("req-a", 7, grpc::Slice("answer-a"));
  EXPECT_EQ(Text(cache.Find("req-a", 7)), "answer-a");
  EXPECT_EQ(Text(cache.Find("req-b", 7)), "(none)");
  EXPECT_EQ(Text(cache.Find("req-a", 8)), "(none)");  // the index has changed since
  EXPECT_EQ(Text(cache.Find("req-a", 6)), "(none)");
}

TEST(StatusAnswerCacheTest, ANewerGenerationRetiresEveryAnswer) {
  StatusAnswerCache cache;
  cache.Put("req-a", 1, grpc::Slice("a1"));
  cache.Put("req-b", 1, grpc::Slice("b1"));
  cache.Put("req-a", 2, grpc::Slice("a2"));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(Text(cache.Find("req-a", 2)), "a2");
  EXPECT_EQ(Text(cache.Find("req-b", 2)), "(none)");
}

TEST(StatusAnswerCacheTest, AnAnswerBuiltBeforeAWriteTheCacheHasSeenIsNotKept) {
  // Two calls race a write: the one that read the newer generation stored
  // first; the slower one's answer is from before the write.
  StatusAnswerCache cache;
  cache.Put("req-a", 5, grpc::Slice("new"));
  cache.Put("req-b", 4, grpc::Slice("old"));
  EXPECT_EQ(Text(cache.Find("req-b", 4)), "(none)");
  EXPECT_EQ(Text(cache.Find("req-b", 5)), "(none)");
  EXPECT_EQ(Text(cache.Find("req-a", 5)), "new");
}

TEST(StatusAnswerCacheTest, LongRequestsAreNotKept) {
  StatusAnswerCache cache;
  const std::string long_request(StatusAnswerCache::kMaxKeyBytes + 1, 'x');
  cache.Put(long_request, 1, grpc::Slice("a"));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(StatusAnswerCacheTest, ItStartsOverWhenFull) {
  StatusAnswerCache cache;
  for (size_t i = 0; i < StatusAnswerCache::kMaxEntries; ++i) {
    cache.Put("req-" + std::to_string(i), 1, grpc::Slice("a"));
  }
  EXPECT_EQ(cache.size(), StatusAnswerCache::kMaxEntries);
  cache.Put("one-more", 1, grpc::Slice("b"));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(Text(cache.Find("one-more", 1)), "b");
  // And by bytes: an answer too large to keep is not kept at all.
  cache.Put("big", 1, grpc::Slice(std::string(StatusAnswerCache::kMaxBytes, 'z')));
  EXPECT_EQ(Text(cache.Find("big", 1)), "(none)");
}

}  // namespace
}  // namespace imaged::plugin
