#include "plugin/config.h"

#include <filesystem>
#include <toml++/toml.h>

#include "absl/strings/str_cat.h"

namespace imaged::plugin {
namespace {

absl::Status Bad(const std::string& path, absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("config ", path, ": ", key, ": ", why));
}

}  // namespace

absl::StatusOr<unsigned> ParseMode(const std::string& text) {
  if (text.empty() || text.size() > 4) return absl::InvalidArgumentError("mode must be octal like 0660");
  unsigned mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return absl::InvalidArgumentError(absl::StrCat("mode \"", text, "\" is not octal"));
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  return mode;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path, Config base) {
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(absl::StrCat("config ", path, ": no such file"));
  }
  // Debian builds toml++ with exceptions: its parse error is caught here and
  // never crosses into the rest of imaged.
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config ", path, ":", err.source().begin.line, ":", err.source().begin.column, ": ",
        std::string(err.description())));
  }
  Config out = base;
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    auto text = node.value<std::string>();
    if (k == "root" || k == "address" || k == "platform" || k == "cri_namespace" ||
        k == "containerd_root" || k == "containerd_snapshotter") {
      if (!text || text->empty()) return Bad(path, k, "must be a non-empty string");
      std::string* field = k == "root"              ? &out.root
                           : k == "address"         ? &out.address
                           : k == "platform"        ? &out.platform
                           : k == "cri_namespace"   ? &out.cri_namespace
                           : k == "containerd_root" ? &out.containerd_root
                                                    : &out.containerd_snapshotter;
      *field = *text;
    } else if (k == "metrics_address") {
      if (!text) return Bad(path, k, "must be a string such as \"127.0.0.1:9464\"");
      out.metrics_address = *text;
    } else if (k == "index_check") {
      if (!text || (*text != "off" && *text != "report" && *text != "repair")) {
        return Bad(path, k, "must be \"off\", \"report\" or \"repair\"");
      }
      out.index_check = *text;
    } else if (k == "socket_mode") {
      if (!text) return Bad(path, k, "must be an octal string such as \"0660\"");
      absl::StatusOr<unsigned> mode = ParseMode(*text);
      if (!mode.ok()) return Bad(path, k, mode.status().message());
      out.socket_mode = *mode;
    } else if (k == "ingest_expiry" || k == "shutdown_timeout" || k == "containerd_timeout" ||
               k == "containerd_list_timeout" || k == "upstream_pull_timeout" ||
               k == "mirror_miss_budget") {
      absl::Duration d;
      if (!text || !absl::ParseDuration(*text, &d) || d <= absl::ZeroDuration() ||
          d == absl::InfiniteDuration()) {
        return Bad(path, k, "must be a positive duration such as \"30s\" or \"24h\"");
      }
      absl::Duration* field = k == "ingest_expiry"             ? &out.ingest_expiry
                              : k == "shutdown_timeout"        ? &out.shutdown_timeout
                              : k == "containerd_timeout"      ? &out.containerd_timeout
                              : k == "containerd_list_timeout" ? &out.containerd_list_timeout
                              : k == "upstream_pull_timeout"   ? &out.upstream_pull_timeout
                                                               : &out.mirror_miss_budget;
      *field = d;
    } else if (k == "mirror_miss_queue") {
      auto n = node.value_exact<int64_t>();  // value<> converts floats: UB past int64's range
      if (!n || *n < 1 || *n > 4096) return Bad(path, k, "must be an integer from 1 to 4096");
      out.mirror_miss_queue = static_cast<int>(*n);
    } else if (k == "containerd_address" || k == "upstream_cri_address") {
      if (!text) return Bad(path, k, "must be a string (a unix socket path)");
      (k == "containerd_address" ? out.containerd_address : out.upstream_cri_address) = *text;
    } else if (k == "mirror_namespaces") {
      const toml::array* list = node.as_array();
      if (list == nullptr || list->empty()) return Bad(path, k, "must be a non-empty array of strings");
      out.mirror_namespaces.clear();
      for (const toml::node& item : *list) {
        auto ns = item.value<std::string>();
        if (!ns || ns->empty()) return Bad(path, k, "must be a non-empty array of strings");
        out.mirror_namespaces.push_back(*ns);
      }
    } else if (k == "gc_interval" || k == "gc_delay") {
      absl::Duration d;
      if (!text || !absl::ParseDuration(*text, &d) || d < absl::ZeroDuration()) {
        return Bad(path, k, "must be a duration such as \"1h\" or \"0s\"");
      }
      (k == "gc_interval" ? out.gc_interval : out.gc_delay) = d;
    } else if (k == "gc_max_share") {
      auto share = node.value<double>();
      if (!share || !(*share > 0 && *share <= 1)) {
        return Bad(path, k, "must be a number above 0 and at most 1, such as 0.02");
      }
      out.gc_max_share = *share;
    } else if (k == "content_proxy") {
      auto b = node.value_exact<bool>();
      if (!b) return Bad(path, k, "must be true or false");
      out.content_proxy = *b;
    } else if (k == "max_concurrent_downloads") {
      auto n = node.value_exact<int64_t>();  // value<> converts floats: UB past int64's range
      if (!n || *n < 1 || *n > 64) return Bad(path, k, "must be an integer from 1 to 64");
      out.max_concurrent_downloads = static_cast<int>(*n);
    } else if (k == "registry") {
      const toml::table* registry = node.as_table();
      if (registry == nullptr) return Bad(path, k, "must be a table");
      for (const auto& [rkey, rnode] : *registry) {
        const std::string rk = absl::StrCat("registry.", std::string(rkey.str()));
        if (rk != "registry.config_path") return Bad(path, rk, "unknown key");
        auto dir = rnode.value<std::string>();
        if (!dir) return Bad(path, rk, "must be a string");
        out.registry_config_path = *dir;
      }
    } else {
      return Bad(path, k, "unknown key");
    }
  }
  return out;
}

}  // namespace imaged::plugin
