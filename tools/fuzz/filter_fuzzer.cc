// containerd's filter language (List, Walk, ListStatuses, Subscribe): any
// input parses or fails cleanly, and a parsed filter matches a record.
#include <cstdint>
#include <string>

#include "store/filter.h"

namespace {

class Record final : public imaged::store::FieldAdaptor {
 public:
  std::optional<absl::string_view> Field(absl::Span<const std::string> path) const override {
    if (path.empty()) return std::nullopt;
    if (path[0] == "name") return absl::string_view("docker.io/library/busybox:1.36");
    if (path[0] == "topic") return absl::string_view("/images/create");
    if (path[0] == "labels") return imaged::store::MapField(path.subspan(1), labels_);
    return std::nullopt;
  }

 private:
  std::map<std::string, std::string> labels_ = {{"a", "b"}, {"io.cri-containerd.image", "managed"}};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  // One filter, and the input split at newlines as several (ParseAll).
  absl::StatusOr<imaged::store::Filter> one = imaged::store::Filter::Parse(in);
  if (one.ok()) (void)one->Match(Record());
  std::vector<std::string> many;
  size_t start = 0;
  for (size_t i = 0; i <= in.size(); ++i) {
    if (i == in.size() || in[i] == '\n') {
      many.push_back(in.substr(start, i - start));
      start = i + 1;
    }
  }
  absl::StatusOr<imaged::store::Filter> all = imaged::store::Filter::ParseAll(many);
  if (all.ok()) (void)all->Match(Record());
  return 0;
}
