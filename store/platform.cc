#include "store/platform.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace imaged::store {
namespace {

// The operating systems and architectures containerd 1.6 accepts as a lone
// specifier component (its lists mirror Go's GOOS and GOARCH values).
bool IsKnownOs(absl::string_view os) {
  static constexpr absl::string_view kKnown[] = {
      "aix",   "android", "darwin", "dragonfly", "freebsd", "hurd",    "illumos", "ios", "js",
      "linux", "nacl",    "netbsd", "openbsd",   "plan9",   "solaris", "windows", "zos"};
  for (absl::string_view k : kKnown) {
    if (os == k) return true;
  }
  return false;
}

bool IsKnownArch(absl::string_view arch) {
  static constexpr absl::string_view kKnown[] = {
      "386",     "amd64",   "amd64p32", "arm",    "armbe",  "arm64",    "arm64be",   "ppc64",
      "ppc64le", "loong64", "mips",     "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le",
      "ppc",     "riscv",   "riscv64",  "s390",   "s390x",  "sparc",    "sparc64",   "wasm"};
  for (absl::string_view k : kKnown) {
    if (arch == k) return true;
  }
  return false;
}

bool IsValidComponent(absl::string_view part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string NormalizeOs(std::string os) {
  if (os.empty()) return DefaultPlatform().os;
  absl::AsciiStrToLower(&os);
  if (os == "macos") os = "darwin";
  return os;
}

void NormalizeArch(std::string& arch, std::string& variant) {
  absl::AsciiStrToLower(&arch);
  absl::AsciiStrToLower(&variant);
  if (arch == "i386") {
    arch = "386";
    variant.clear();
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1") variant.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8") variant.clear();
  } else if (arch == "armhf") {
    arch = "arm";
    variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty() || variant == "7") {
      variant = "v7";
    } else if (variant == "5" || variant == "6" || variant == "8") {
      variant = absl::StrCat("v", variant);
    }
  }
}

// The N of a "vN" variant, parsed as Go's strconv.Atoi (which containerd
// uses here) parses: optional sign, decimal digits, nothing else. Numbers past
// kMaxVariant are refused so a hostile variant cannot make a matcher with
// millions of entries; containerd would build them.
constexpr int kMaxVariant = 1000;

bool VariantNumber(absl::string_view variant, int* n) {
  if (!variant.empty() && variant[0] == 'v') variant.remove_prefix(1);
  bool negative = false;
  if (!variant.empty() && (variant[0] == '+' || variant[0] == '-')) {
    negative = variant[0] == '-';
    variant.remove_prefix(1);
  }
  if (variant.empty()) return false;
  int value = 0;
  for (char c : variant) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
    if (value > kMaxVariant) return false;
  }
  *n = negative ? -value : value;
  return true;
}

Platform Sibling(const Platform& p, absl::string_view arch, std::string variant) {
  Platform s;
  s.os = p.os;
  s.architecture = std::string(arch);
  s.variant = std::move(variant);
  s.os_version = p.os_version;
  s.os_features = p.os_features;
  return s;
}

// containerd's preference vector for platforms.Only, for a normalized
// platform.
void AppendPreference(const Platform& p, std::vector<Platform>& out) {
  out.push_back(p);
  int n = 0;
  if (p.architecture == "amd64") {
    if (VariantNumber(p.variant, &n) && n > 1) {
      for (--n; n >= 1; --n) {
        out.push_back(Sibling(p, "amd64", absl::StrCat("v", n)));
      }
    }
    out.push_back(Sibling(p, "386", ""));
  } else if (p.architecture == "arm") {
    if (VariantNumber(p.variant, &n) && n > 5) {
      for (--n; n >= 5; --n) {
        out.push_back(Sibling(p, "arm", absl::StrCat("v", n)));
      }
    }
  } else if (p.architecture == "arm64") {
    AppendPreference(Sibling(p, "arm", p.variant.empty() ? "v8" : p.variant), out);
  }
}

bool SameTarget(const Platform& a, const Platform& b) {
  return a.os == b.os && a.architecture == b.architecture && a.variant == b.variant;
}

}  // namespace

bool operator==(const Platform& a, const Platform& b) {
  return a.os == b.os && a.architecture == b.architecture && a.variant == b.variant &&
         a.os_version == b.os_version && a.os_features == b.os_features;
}

bool operator!=(const Platform& a, const Platform& b) { return !(a == b); }

Platform DefaultPlatform() {
  Platform p;
  p.os = "linux";
  p.architecture = "amd64";
  return p;
}

absl::StatusOr<Platform> ParsePlatform(absl::string_view spec, const Platform& host) {
  if (spec.find('*') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("platform \"", spec, "\": wildcards are not supported"));
  }
  std::vector<std::string> parts = absl::StrSplit(spec, '/');
  for (const std::string& part : parts) {
    if (!IsValidComponent(part)) {
      return absl::InvalidArgumentError(absl::StrCat("platform \"", spec, "\": component \"", part,
                                                     "\" must match [A-Za-z0-9_-]+"));
    }
  }

  Platform p;
  switch (parts.size()) {
    case 1: {
      p.os = NormalizeOs(parts[0]);
      if (IsKnownOs(p.os)) {
        Platform h = NormalizePlatform(host);
        p.architecture = h.architecture;
        if (h.architecture == "arm" && h.variant != "v7") p.variant = h.variant;
        return p;
      }
      p.os.clear();
      p.architecture = parts[0];
      NormalizeArch(p.architecture, p.variant);
      if (p.architecture == "arm" && p.variant == "v7") p.variant.clear();
      if (IsKnownArch(p.architecture)) {
        p.os = NormalizeOs(host.os);
        return p;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("platform \"", spec, "\": unknown operating system or architecture"));
    }
    case 2:
      p.os = NormalizeOs(parts[0]);
      p.architecture = parts[1];
      NormalizeArch(p.architecture, p.variant);
      if (p.architecture == "arm" && p.variant == "v7") p.variant.clear();
      return p;
    case 3:
      p.os = NormalizeOs(parts[0]);
      p.architecture = parts[1];
      p.variant = parts[2];
      NormalizeArch(p.architecture, p.variant);
      if (p.architecture == "arm64" && p.variant.empty()) p.variant = "v8";
      return p;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("platform \"", spec, "\": more than os/architecture/variant"));
}

std::string FormatPlatform(const Platform& platform) {
  if (platform.os.empty()) return "unknown";
  std::vector<absl::string_view> parts;
  for (const std::string* s : {&platform.os, &platform.architecture, &platform.variant}) {
    if (!s->empty()) parts.push_back(*s);
  }
  return absl::StrJoin(parts, "/");
}

Platform NormalizePlatform(Platform platform) {
  platform.os = NormalizeOs(std::move(platform.os));
  NormalizeArch(platform.architecture, platform.variant);
  return platform;
}

PlatformMatcher::PlatformMatcher(const Platform& platform) {
  AppendPreference(NormalizePlatform(platform), preference_);
  // containerd normalizes each entry again when it builds a matcher from it
  // (amd64 "v1" becomes ""), so do the same.
  for (Platform& p : preference_) p = NormalizePlatform(std::move(p));
}

size_t PlatformMatcher::Rank(const Platform& platform) const {
  Platform n = NormalizePlatform(platform);
  for (size_t i = 0; i < preference_.size(); ++i) {
    if (SameTarget(preference_[i], n)) return i;
  }
  return preference_.size();
}

bool PlatformMatcher::Match(const Platform& platform) const {
  return Rank(platform) < preference_.size();
}

bool PlatformMatcher::Less(const Platform& a, const Platform& b) const { return Rank(a) < Rank(b); }

}  // namespace imaged::store
