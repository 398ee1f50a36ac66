// imagectl import / export: image archives in and out of imaged, so an
// air-gapped node can take images from, or give them to, `ctr images
// export/import`, skopeo and docker. cri/archive/archive.h does the work:
// for import, on the server (the archive is streamed to imaged.v1.Archives,
// which commits in batches), or here over the Content and Images APIs with
// --content-api (also what a server without Archives gets); for export, here.
//
//   imagectl import FILE [-n NS] [--base-name NAME] [--digests]
//                        [--platform P] [--all-platforms] [--content-api]
//   imagectl export IMAGE... FILE [-n NS] [--platform P] [--all-platforms]
//                        [--skip-manifest-json]
//
// FILE "-" is stdin / stdout. Note the export argument order: the images,
// then the file (as in the issue, "imagectl export IMAGE FILE"); ctr's is
// the other way round ("ctr images export OUT IMAGE...").
#ifndef IMAGED_TOOLS_IMAGECTL_ARCHIVE_COMMANDS_H_
#define IMAGED_TOOLS_IMAGECTL_ARCHIVE_COMMANDS_H_

#include <grpcpp/channel.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace imaged::imagectl {

struct ArchiveFlags {
  std::string ns = "k8s.io";
  std::string platform;  // "" = linux/amd64, imaged's default
  bool all_platforms = false;
  // import only
  std::string base_name;
  bool digests = false;
  // Import client-side over the Content and Images APIs instead of
  // streaming the archive to imaged.v1.Archives (which a server without it
  // gets anyway, when FILE is a file).
  bool content_api = false;
  // export only
  bool skip_manifest_json = false;
};

// Imports FILE, an OCI archive or a docker-save archive. Prints one line per
// image (name, target digest, image ID) and a summary.
absl::Status ImportArchive(const std::shared_ptr<grpc::Channel>& ch, const std::string& file,
                           const ArchiveFlags& flags, std::ostream& out);

// Writes the images as one OCI archive at FILE, which appears only when the
// export succeeded.
absl::Status ExportArchive(const std::shared_ptr<grpc::Channel>& ch,
                           const std::vector<std::string>& images, const std::string& file,
                           const ArchiveFlags& flags, std::ostream& out);

// The two subcommands, registered on imagectl's CLI::App; after parsing,
// Run() carries out whichever was given.
class ArchiveCommands {
 public:
  explicit ArchiveCommands(CLI::App& app);
  bool selected() const { return *import_ || *export_; }
  absl::Status Run(const std::shared_ptr<grpc::Channel>& ch, std::ostream& out) const;

 private:
  CLI::App* import_;
  CLI::App* export_;
  ArchiveFlags import_flags_;
  ArchiveFlags export_flags_;
  std::string import_file_;
  std::vector<std::string> export_args_;  // IMAGE... FILE
};

}  // namespace imaged::imagectl

#endif  // IMAGED_TOOLS_IMAGECTL_ARCHIVE_COMMANDS_H_
