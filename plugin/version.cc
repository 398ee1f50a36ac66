#include "plugin/version.h"

#include "plugin/version_stamp.h"  // IMAGED_COMMIT, generated

namespace imaged::plugin {

const char* ImagedCommit() { return IMAGED_COMMIT; }

std::string VersionLine(const std::string& program) {
  return program + " " + kImagedVersion + " (commit " + ImagedCommit() + ")";
}

}  // namespace imaged::plugin
