// Image platforms (os/architecture/variant) as containerd 1.6 parses,
// normalizes and matches them, so imaged picks the same manifest out of a
// multi-platform index as containerd's CRI plugin would on the same node.
//
// The flow: a node's platform (DefaultPlatform(), or a configured one) becomes
// a PlatformMatcher; an index's manifest descriptors carry platforms; the
// matcher says which of them the node accepts (Match) and which it prefers
// (Less). See SelectManifest in oci.h.
//
// Everything here is pure and thread-compatible; a PlatformMatcher is
// immutable after construction and may be shared between threads.

#ifndef IMAGED_STORE_PLATFORM_H_
#define IMAGED_STORE_PLATFORM_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imaged::store {

// The OCI platform object (the `platform` of an index entry, or the os and
// architecture fields of an image config). Fields hold what was written;
// nothing is normalized until NormalizePlatform or a PlatformMatcher does it.
struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string os_version;
  std::vector<std::string> os_features;
};

// Field-by-field equality (os_features compared in order). Note that two
// platforms naming the same target differently ("aarch64" vs "arm64") are not
// equal; compare NormalizePlatform results, or use a PlatformMatcher.
bool operator==(const Platform& a, const Platform& b);
bool operator!=(const Platform& a, const Platform& b);

// linux/amd64: the platform imaged resolves images for when its caller does
// not configure another. It plays the role of containerd's
// platforms.DefaultSpec() on an amd64 Linux host (whose variant is empty:
// containerd reads a CPU variant only on arm hosts).
Platform DefaultPlatform();

// Parses a platform specifier the way containerd's platforms.Parse does:
//   "os/arch/variant", "os/arch", or a lone "os" or "arch".
// Every component must match [A-Za-z0-9_-]+ and there are at most three.
// Components are lower-cased and aliases resolved (see NormalizePlatform),
// with two wrinkles kept from containerd: a two-part arm specifier drops the
// default "v7" ("linux/arm" and "linux/armhf" give variant ""), and a
// three-part arm64 specifier keeps "v8" ("linux/arm64/v8" gives "v8" while
// "linux/arm64" gives ""). Both forms match the same platforms.
//
// A lone component is first tried as an operating system containerd knows
// (linux, windows, darwin, "macos", ...); the architecture then comes from
// `host` (and its variant too when `host` is arm with a variant other than
// v7). Otherwise it is tried as a known architecture (amd64, arm64, x86_64,
// aarch64, armhf, armel, i386, s390x, ...) and the os comes from `host`.
// containerd uses its own build's GOOS/GOARCH there; imaged uses `host`.
//
// Errors: InvalidArgument for wildcards ("*"), empty or invalid components,
// more than three components, and a lone component that is neither a known
// os nor a known architecture. Two- and three-part specifiers are not checked
// against known names ("foo/bar" parses), as in containerd.
absl::StatusOr<Platform> ParsePlatform(absl::string_view spec,
                                       const Platform& host = DefaultPlatform());

// "os/arch/variant" with empty parts left out ("linux/amd64", "linux/arm/v7"),
// or "unknown" when os is empty, like containerd's platforms.Format. os_version
// and os_features are not shown. For a platform with an os and architecture
// the result parses back to one that a PlatformMatcher treats the same.
std::string FormatPlatform(const Platform& platform);

// containerd's platforms.Normalize: lower-cases os, architecture and variant
// and resolves aliases:
//   os:   "" -> "linux" (containerd uses the host's OS; imaged serves Linux
//         nodes), "macos" -> "darwin"
//   arch: "i386" -> "386" (variant dropped); "x86_64", "x86-64" -> "amd64"
//         (variant "v1" -> ""); "aarch64" -> "arm64" (variant "8"/"v8" -> "");
//         "armhf" -> arm/v7 and "armel" -> arm/v6 (variant replaced);
//         "arm" with variant "" or "7" -> "v7", "5"/"6"/"8" -> "v5"/"v6"/"v8".
// os_version and os_features are returned unchanged.
Platform NormalizePlatform(Platform platform);

// The set of platforms a node accepts, in preference order, with the
// semantics of containerd's platforms.Only(platform) (which is what
// platforms.Default() and so the CRI plugin use):
//   amd64/vN  -> amd64/vN, amd64/v(N-1), ..., amd64 (v1), then 386
//   amd64     -> amd64, then 386
//   arm/vN    -> arm/vN, arm/v(N-1), ..., arm/v5   (arm alone means arm/v7)
//   arm64     -> arm64, then arm/v8, arm/v7, arm/v6, arm/v5
//   others    -> exactly that os/architecture/variant
// all under the same os. Only os, architecture and variant take part (after
// NormalizePlatform on both sides); os_version and os_features are ignored,
// as containerd's non-Windows matcher ignores them.
class PlatformMatcher {
 public:
  explicit PlatformMatcher(const Platform& platform);

  // True when `platform` (normalized first) is one of the accepted ones.
  bool Match(const Platform& platform) const;

  // True when `a` is preferred over `b`: `a` is accepted and either `b` is
  // not or `a` comes earlier in the preference order. A strict weak order;
  // two platforms that are not accepted are equivalent.
  bool Less(const Platform& a, const Platform& b) const;

  // The accepted platforms, normalized, most preferred first.
  const std::vector<Platform>& preference() const { return preference_; }

 private:
  // Position of `platform` in preference_, or preference_.size() if absent.
  size_t Rank(const Platform& platform) const;

  std::vector<Platform> preference_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_PLATFORM_H_
