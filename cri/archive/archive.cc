#include "cri/archive/archive.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace imaged::cri {

std::string OciReferenceName(absl::string_view name) {
  // containerd's reference.Parse, which reads the name as the URL
  // "dummy://<name>": a host must come before the first '/' (a port, if
  // any, numeric), and the object starts at the first ':' or '@' after it.
  if (absl::StrContains(name, "://")) return std::string(name);
  size_t slash = name.find('/');
  absl::string_view authority = name.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos ? "" : name.substr(slash);
  absl::string_view host = authority.substr(authority.rfind('@') + 1);
  if (host.empty()) return std::string(name);
  if (size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    for (char c : host.substr(colon + 1)) {
      if (!absl::ascii_isdigit(c)) return std::string(name);
    }
  }
  size_t split = path.find_first_of(":@");
  if (split == absl::string_view::npos) return "";
  absl::string_view object = path.substr(split);
  if (absl::ConsumePrefix(&object, ":")) return std::string(object);
  return std::string(object);
}

}  // namespace imaged::cri
