#include "cri/archive/archive_internal.h"

#include <optional>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace imaged::cri::archive_internal {

std::string RandomToken() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

const nlohmann::json* Member(const nlohmann::json& obj, absl::string_view key) {
  const nlohmann::json* found = nullptr;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key() == key) {
      found = &it.value();
      break;
    }
    if (!found && absl::EqualsIgnoreCase(it.key(), key)) found = &it.value();
  }
  return found && !found->is_null() ? found : nullptr;
}

absl::StatusOr<std::vector<DockerEntry>> ParseDockerManifest(absl::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("manifest.json: not valid JSON");
  if (!doc.is_array()) return absl::InvalidArgumentError("manifest.json: not a JSON array");
  auto strings = [](const nlohmann::json* v, absl::string_view field,
                    std::vector<std::string>* out) -> absl::Status {
    if (!v) return absl::OkStatus();
    if (!v->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat("manifest.json: ", field, " is not an array"));
    }
    for (const auto& s : *v) {
      if (!s.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat("manifest.json: ", field, " holds a non-string"));
      }
      out->push_back(s.get<std::string>());
    }
    return absl::OkStatus();
  };
  std::vector<DockerEntry> entries;
  for (const auto& e : doc) {
    if (!e.is_object())
      return absl::InvalidArgumentError("manifest.json: an entry is not an object");
    DockerEntry entry;
    if (const nlohmann::json* c = Member(e, "Config")) {
      if (!c->is_string())
        return absl::InvalidArgumentError("manifest.json: Config is not a string");
      entry.config = c->get<std::string>();
    }
    if (absl::Status s = strings(Member(e, "RepoTags"), "RepoTags", &entry.repo_tags); !s.ok()) {
      return s;
    }
    if (absl::Status s = strings(Member(e, "Layers"), "Layers", &entry.layers); !s.ok()) return s;
    entries.push_back(std::move(entry));
  }
  return entries;
}

nlohmann::ordered_json DescriptorJson(const store::Descriptor& d) {
  nlohmann::ordered_json j;
  if (!d.media_type.empty()) j["mediaType"] = d.media_type;
  j["digest"] = d.digest;
  j["size"] = d.size;
  if (!d.annotations.empty()) {
    nlohmann::ordered_json a = nlohmann::ordered_json::object();
    for (const auto& [k, v] : d.annotations) a[k] = v;  // std::map: sorted
    j["annotations"] = std::move(a);
  }
  if (d.platform) {
    const store::Platform& p = *d.platform;
    nlohmann::ordered_json pj;
    pj["architecture"] = p.architecture;
    pj["os"] = p.os;
    if (!p.os_version.empty()) pj["os.version"] = p.os_version;
    if (!p.os_features.empty()) pj["os.features"] = p.os_features;
    if (!p.variant.empty()) pj["variant"] = p.variant;
    j["platform"] = std::move(pj);
  }
  return j;
}

std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

bool LooksCompressed(absl::string_view head) {
  return absl::StartsWith(head, absl::string_view("\x1f\x8b\x08", 3)) ||
         absl::StartsWith(head, absl::string_view("\x28\xb5\x2f\xfd", 4));
}

std::vector<ChildPlan> PlanChildren(const std::vector<store::Descriptor>& children,
                                    bool parent_required, const store::PlatformMatcher& matcher,
                                    bool all_platforms) {
  std::vector<ChildPlan> plan;
  std::optional<store::Descriptor> chosen = store::SelectManifest(children, matcher);
  bool chosen_taken = false;
  for (const store::Descriptor& child : children) {
    if (all_platforms) {
      plan.push_back({child, parent_required});
      continue;
    }
    if (child.platform && !matcher.Match(*child.platform)) continue;
    bool is_chosen = !chosen_taken && chosen && *chosen == child;
    if (is_chosen) chosen_taken = true;
    plan.push_back({child, parent_required && is_chosen});
  }
  return plan;
}

}  // namespace imaged::cri::archive_internal
