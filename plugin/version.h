// What `imaged --version` and `imagectl --version` print: the release and
// the commit the binary was built from (Bazel's workspace status, read by
// the //plugin:version_stamp genrule; "unknown" outside a git checkout).
#ifndef IMAGED_PLUGIN_VERSION_H_
#define IMAGED_PLUGIN_VERSION_H_

#include <string>

namespace imaged::plugin {

// The release: tools/package.sh names the .deb after it.
inline constexpr char kImagedVersion[] = "0.16.0";

// The git commit (12 hex digits) or "unknown".
const char* ImagedCommit();

// "<program> <version> (commit <commit>)".
std::string VersionLine(const std::string& program);

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_VERSION_H_
