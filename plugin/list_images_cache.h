// The serialized answer to an unfiltered CRI ListImages, kept until the
// image-ID index changes. kubelet lists every image every 30 s and, on a
// node whose images did not change, gets the same bytes each time: they are
// built once, after the first call that follows a write, and then handed to
// gRPC as a reference-counted slice, with no proto built, copied or
// serialized per call.
//
// Whether the cached answer is current is the index's generation
// (store::CriImageIndex::Generation), which every index write moves on
// before it returns: a call that starts after a write returns never gets
// an answer from before it.
//
// Rebuilds run on the cache's own thread, not on gRPC's, and one rebuild
// serves every call waiting when it starts. A rebuild after a few writes
// patches the last answer: the images the index says changed since its
// generation (CriImageIndex::ChangedSince) are read again and only the
// chunks of the answer that hold them are rebuilt; the rest are shared.
//
// The answer also answers ImageStatus: an entry (tag 0x0a, length, Image)
// is byte for byte an ImageStatusResponse of that image, whose `image` is
// field 1 too. FindEntry hands one out as a slice of its chunk.
#ifndef IMAGED_PLUGIN_LIST_IMAGES_CACHE_H_
#define IMAGED_PLUGIN_LIST_IMAGES_CACHE_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace imaged::plugin {

class ListImagesCache {
 public:
  // One image's place in a chunk: `length` bytes at `offset`, the whole
  // `images` field entry (tag, length, Image message).
  struct Entry {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  // A piece of the answer: whole entries back to back, in image-ID order.
  // The response is its chunks in order (a protobuf message is the
  // concatenation of its fields), each a reference-counted slice, and a
  // patched answer shares every chunk no changed image falls into with the
  // previous one: a write costs the chunks it touches, not a copy of the
  // answer, and two answers are never resident whole at once.
  struct Chunk {
    grpc::Slice bytes;
    std::vector<Entry> entries;  // offsets within `bytes`
  };
  using Chunks = std::vector<std::shared_ptr<const Chunk>>;
  static constexpr size_t kChunkBytes = 128 << 10;
  // Room reserved past a chunk's size for the entry that ends it.
  static constexpr size_t kEntrySlack = 4 << 10;
  // What a build produces, and whether it was patched from the last one.
  struct Answer {
    Chunks chunks;
    bool patched = false;
  };
  // The last answer, for a build that patches it instead of scanning.
  struct Previous {
    uint64_t generation = 0;
    const Chunks* chunks = nullptr;
  };

  // Cuts entries, added in image-ID order, into chunks of about `chunk_bytes`.
  class ChunkWriter {
   public:
    explicit ChunkWriter(size_t chunk_bytes = kChunkBytes) : chunk_bytes_(chunk_bytes) {}
    // One whole entry.
    void Add(absl::string_view entry);
    // An unchanged chunk of the previous answer, shared as it is.
    void Reuse(std::shared_ptr<const Chunk> chunk);
    Chunks Finish();

   private:
    void Flush();
    const size_t chunk_bytes_;
    std::string bytes_;
    std::vector<Entry> entries_;
    Chunks out_;
  };
  // An image's new entry by image ID; an empty entry: the image is gone.
  struct Update {
    std::string id;
    std::string entry;
  };
  // `previous` with `updates` (sorted by ID, one per ID) merged in.
  static Chunks Patch(const Chunks& previous, const std::vector<Update>& updates,
                      size_t chunk_bytes = kChunkBytes);
  // A response of the chunks, and its size in images and bytes.
  static grpc::ByteBuffer ToByteBuffer(const Chunks& chunks);
  static int64_t CountImages(const Chunks& chunks);
  static size_t CountBytes(const Chunks& chunks);

  using GenerationFn = std::function<uint64_t()>;
  // Builds the answer, from scratch or from `previous` (null when there is none).
  using BuildFn = std::function<absl::StatusOr<Answer>(const Previous* previous)>;
  using DoneFn = std::function<void(const absl::Status&, const grpc::ByteBuffer&)>;

  // `rebuild_spacing`: how long after a build ends a stale FindEntry may ask
  // for the next one (a ListImages call asks at any time).
  ListImagesCache(GenerationFn generation, BuildFn build,
                  absl::Duration rebuild_spacing = absl::Seconds(1));
  // Answers what is waiting, then stops the rebuild thread.
  ~ListImagesCache();
  ListImagesCache(const ListImagesCache&) = delete;
  ListImagesCache& operator=(const ListImagesCache&) = delete;

  // Calls `done` with the current answer: at once, on this thread, when the
  // cached one is current; otherwise on the rebuild thread once rebuilt.
  void Get(DoneFn done);

  // The entry of image `id` in the answer built at `generation`, sharing its
  // chunk's bytes (a non-verbose ImageStatusResponse of the image as it was
  // at `generation`); nullopt when the answer is of another generation or
  // has no such image. A stale answer is rebuilt in the background (as if
  // ListImages had been called) unless a rebuild is already asked for or
  // the last one ended less than `rebuild_spacing` ago, so the calls after
  // a write find entries again once it is patched, and calls during a long
  // run of writes (a bulk import) cost a rebuild a second at most.
  std::optional<grpc::Slice> FindEntry(absl::string_view id, uint64_t generation);

  struct Stats {
    uint64_t hits = 0;
    uint64_t builds = 0;
    uint64_t patches = 0;        // builds that patched the last answer
    uint64_t entries_found = 0;  // FindEntry calls that found one
    int64_t images = 0;          // in the last answer built
    size_t bytes = 0;            // of the last answer built
    double last_build_seconds = 0;
  };
  Stats stats() const;

 private:
  void Loop();

  const GenerationFn generation_;
  const BuildFn build_;
  const absl::Duration rebuild_spacing_;
  mutable absl::Mutex mu_;
  uint64_t generation_built_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ByteBuffer answer_ ABSL_GUARDED_BY(mu_);
  // The chunks of `answer_` (FindEntry searches them, a patch starts from
  // them); null until the first build.
  std::shared_ptr<const Chunks> chunks_ ABSL_GUARDED_BY(mu_);
  std::vector<DoneFn> waiting_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_build_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> entries_found_{0};
  std::thread thread_;
};

// The image ID of an entry (the Image's first field, which ToCriImage sets
// first); empty if the bytes are not an entry.
absl::string_view EntryImageId(absl::string_view entry);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_LIST_IMAGES_CACHE_H_
