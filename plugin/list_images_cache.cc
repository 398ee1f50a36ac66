#include "plugin/list_images_cache.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <utility>

#include "absl/time/clock.h"

namespace imaged::plugin {
namespace {

// A slice that owns `bytes` without copying them.
grpc::Slice OwningSlice(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  return grpc::Slice(owned->data(), owned->size(),
                     [](void* p) { delete static_cast<std::string*>(p); }, owned);
}

}  // namespace

ListImagesCache::ListImagesCache(GenerationFn generation, BuildFn build,
                                 absl::Duration rebuild_spacing)
    : generation_(std::move(generation)),
      build_(std::move(build)),
      rebuild_spacing_(rebuild_spacing),
      thread_([this] { Loop(); }) {}

ListImagesCache::~ListImagesCache() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void ListImagesCache::Get(DoneFn done) {
  const uint64_t generation = generation_();
  grpc::ByteBuffer answer;
  {
    absl::MutexLock lock(&mu_);
    if (chunks_ == nullptr || generation_built_ != generation) {
      waiting_.push_back(std::move(done));
      return;
    }
    answer = answer_;  // references to the chunks, not a copy of them
    ++stats_.hits;
  }
  done(absl::OkStatus(), answer);
}

namespace {

absl::string_view EntryBytes(const ListImagesCache::Chunk& chunk, const ListImagesCache::Entry& e) {
  return absl::string_view(reinterpret_cast<const char*>(chunk.bytes.begin()) + e.offset, e.length);
}

}  // namespace

std::optional<grpc::Slice> ListImagesCache::FindEntry(absl::string_view id, uint64_t generation) {
  std::shared_ptr<const Chunks> chunks;
  {
    absl::MutexLock lock(&mu_);
    if (chunks_ == nullptr || generation_built_ != generation) {
      // Stale (or not built yet): ask for a rebuild, once, and not right
      // after the last one.
      if (waiting_.empty() && absl::Now() - last_build_end_ >= rebuild_spacing_) {
        waiting_.push_back([](const absl::Status&, const grpc::ByteBuffer&) {});
      }
      return std::nullopt;
    }
    chunks = chunks_;
  }
  if (id.empty()) return std::nullopt;
  // Chunks and their entries are in image-ID order: the first chunk whose
  // last ID is not below `id`, then the entry within it.
  auto chunk = std::partition_point(
      chunks->begin(), chunks->end(), [&](const std::shared_ptr<const Chunk>& c) {
        return c->entries.empty() || EntryImageId(EntryBytes(*c, c->entries.back())) < id;
      });
  if (chunk == chunks->end()) return std::nullopt;
  const Chunk& c = **chunk;
  auto entry = std::partition_point(c.entries.begin(), c.entries.end(), [&](const Entry& e) {
    return EntryImageId(EntryBytes(c, e)) < id;
  });
  if (entry == c.entries.end() || EntryImageId(EntryBytes(c, *entry)) != id) return std::nullopt;
  entries_found_.fetch_add(1, std::memory_order_relaxed);
  return c.bytes.sub(entry->offset, entry->offset + entry->length);
}

ListImagesCache::Stats ListImagesCache::stats() const {
  absl::MutexLock lock(&mu_);
  Stats stats = stats_;
  stats.entries_found = entries_found_.load(std::memory_order_relaxed);
  return stats;
}

void ListImagesCache::Loop() {
  while (true) {
    std::vector<DoneFn> waiting;
    Previous previous;
    std::shared_ptr<const Chunks> previous_chunks;  // kept alive while the build reads it
    std::optional<grpc::ByteBuffer> current;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ListImagesCache* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->stop_ || !c->waiting_.empty();
          },
          this));
      if (waiting_.empty()) return;  // stopping, nobody waiting
      waiting.swap(waiting_);
      // Callers that came during the last build may find its answer current.
      if (chunks_ != nullptr && generation_built_ == generation_()) {
        current = answer_;
        stats_.hits += waiting.size();
      } else if (chunks_ != nullptr) {
        previous_chunks = chunks_;
        previous.generation = generation_built_;
        previous.chunks = previous_chunks.get();
      }
    }
    if (current) {
      for (DoneFn& done : waiting) done(absl::OkStatus(), *current);
      continue;
    }
    // Read after the waiters were taken: the answer is at least as new as
    // any write that finished before one of them called.
    const uint64_t generation = generation_();
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Answer> built = build_(previous_chunks != nullptr ? &previous : nullptr);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    previous_chunks.reset();
    grpc::ByteBuffer answer;
    std::shared_ptr<const Chunks> chunks;
    int64_t images = 0;
    size_t bytes = 0;
    if (built.ok()) {
      chunks = std::make_shared<const Chunks>(std::move(built->chunks));
      answer = ToByteBuffer(*chunks);
      images = CountImages(*chunks);
      bytes = CountBytes(*chunks);
    }
    {
      absl::MutexLock lock(&mu_);
      last_build_end_ = absl::Now();
      if (chunks != nullptr) {
        chunks_ = chunks;
        generation_built_ = generation;
        answer_ = answer;
        ++stats_.builds;
        if (built->patched) ++stats_.patches;
        stats_.images = images;
        stats_.bytes = bytes;
        stats_.last_build_seconds = seconds;
        if (stats_.builds == 1) {
          std::fprintf(stderr, "imaged: first ListImages answer built in %.3f s (%lld images, %zu bytes)\n",
                       seconds, static_cast<long long>(stats_.images), stats_.bytes);
        }
      }
    }
    const absl::Status status = built.status();
    for (DoneFn& done : waiting) done(status, answer);
  }
}

void ListImagesCache::ChunkWriter::Add(absl::string_view entry) {
  // A chunk's bytes are allocated once, at about their final size: grown by
  // doubling they would end in a block up to twice what they hold (and leave
  // the smaller blocks behind in the heap), for as long as the chunk lives.
  if (bytes_.capacity() < chunk_bytes_) bytes_.reserve(chunk_bytes_ + kEntrySlack);
  entries_.push_back(Entry{static_cast<uint32_t>(bytes_.size()), static_cast<uint32_t>(entry.size())});
  bytes_.append(entry.data(), entry.size());
  if (bytes_.size() >= chunk_bytes_) Flush();
}

void ListImagesCache::ChunkWriter::Reuse(std::shared_ptr<const Chunk> chunk) {
  Flush();
  out_.push_back(std::move(chunk));
}

void ListImagesCache::ChunkWriter::Flush() {
  if (entries_.empty()) return;
  auto chunk = std::make_shared<Chunk>();
  // An entry larger than the slack grew it past what was reserved.
  if (bytes_.capacity() > bytes_.size() + kEntrySlack) bytes_.shrink_to_fit();
  chunk->bytes = OwningSlice(std::move(bytes_));
  chunk->entries = std::move(entries_);
  out_.push_back(std::move(chunk));
  bytes_ = std::string();
  entries_ = std::vector<Entry>();
}

ListImagesCache::Chunks ListImagesCache::ChunkWriter::Finish() {
  Flush();
  return std::move(out_);
}

ListImagesCache::Chunks ListImagesCache::Patch(const Chunks& previous,
                                               const std::vector<Update>& updates,
                                               size_t chunk_bytes) {
  ChunkWriter out(chunk_bytes);
  size_t u = 0;
  auto add_update = [&](size_t i) {
    if (!updates[i].entry.empty()) out.Add(updates[i].entry);
  };
  for (size_t c = 0; c < previous.size(); ++c) {
    const Chunk& chunk = *previous[c];
    const bool last = c + 1 == previous.size();
    // The updates that fall into this chunk: up to its last ID (the last
    // chunk takes the rest).
    const absl::string_view last_id = EntryImageId(EntryBytes(chunk, chunk.entries.back()));
    size_t end = u;
    while (end < updates.size() && (last || updates[end].id <= last_id)) ++end;
    if (end == u) {
      out.Reuse(previous[c]);
      continue;
    }
    for (const Entry& e : chunk.entries) {
      const absl::string_view old = EntryBytes(chunk, e);
      const absl::string_view id = EntryImageId(old);
      for (; u < end && updates[u].id < id; ++u) add_update(u);
      if (u < end && updates[u].id == id) {
        add_update(u++);  // replaces the old entry, or drops it
        continue;
      }
      out.Add(old);
    }
    for (; u < end; ++u) add_update(u);
  }
  for (; u < updates.size(); ++u) add_update(u);  // no previous chunks
  Chunks chunks = out.Finish();
  // Rebuilt chunks are flushed short before a shared one: when patches have
  // cut the answer into many small chunks, copy it into full ones again.
  const size_t bytes = CountBytes(chunks);
  if (chunks.size() > 2 * (bytes / chunk_bytes) + 8) {
    ChunkWriter compact(chunk_bytes);
    for (const auto& chunk : chunks) {
      for (const Entry& e : chunk->entries) compact.Add(EntryBytes(*chunk, e));
    }
    chunks = compact.Finish();
  }
  return chunks;
}

grpc::ByteBuffer ListImagesCache::ToByteBuffer(const Chunks& chunks) {
  std::vector<grpc::Slice> slices;
  slices.reserve(chunks.size());
  for (const auto& chunk : chunks) slices.push_back(chunk->bytes);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

int64_t ListImagesCache::CountImages(const Chunks& chunks) {
  int64_t n = 0;
  for (const auto& chunk : chunks) n += static_cast<int64_t>(chunk->entries.size());
  return n;
}

size_t ListImagesCache::CountBytes(const Chunks& chunks) {
  size_t n = 0;
  for (const auto& chunk : chunks) n += chunk->bytes.size();
  return n;
}

absl::string_view EntryImageId(absl::string_view entry) {
  // Reads a varint at `p`; false when it runs past `end`.
  auto varint = [](const char*& p, const char* end, uint64_t* v) {
    *v = 0;
    for (int shift = 0; p < end && shift < 64; shift += 7) {
      uint8_t b = static_cast<uint8_t>(*p++);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  const char* p = entry.data();
  const char* end = p + entry.size();
  uint64_t v = 0;
  if (p == end || *p++ != '\x0a' || !varint(p, end, &v)) return {};  // images entry, its length
  if (p == end || *p++ != '\x0a' || !varint(p, end, &v)) return {};  // Image.id, its length
  if (v > static_cast<uint64_t>(end - p)) return {};
  return absl::string_view(p, static_cast<size_t>(v));
}

}  // namespace imaged::plugin
