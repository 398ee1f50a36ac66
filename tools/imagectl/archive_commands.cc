#include "tools/imagectl/archive_commands.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "cri/archive/archive.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/leases_client.h"
#include "store/platform.h"

namespace imaged::imagectl {
namespace {

absl::StatusOr<store::Platform> PlatformOf(const ArchiveFlags& flags) {
  if (flags.platform.empty()) return store::DefaultPlatform();
  return store::ParsePlatform(flags.platform);
}

void AddCommonFlags(CLI::App* cmd, ArchiveFlags* flags) {
  cmd->add_option("-n,--namespace", flags->ns, "containerd namespace")->capture_default_str();
  cmd->add_option("--platform", flags->platform,
                  "platform whose content must be complete (default linux/amd64)");
  cmd->add_flag("--all-platforms", flags->all_platforms, "every platform of an index");
}

}  // namespace

absl::Status ImportArchive(const std::shared_ptr<grpc::Channel>& ch, const std::string& file,
                           const ArchiveFlags& flags, std::ostream& out) {
  cri::ImportOptions options;
  auto platform = PlatformOf(flags);
  if (!platform.ok()) return platform.status();
  options.platform = *platform;
  options.all_platforms = flags.all_platforms;
  options.base_name = flags.base_name;
  options.digest_refs = flags.digests;
  plugin::RemoteContentStore content(ch);
  plugin::RemoteImageStore images(ch);
  // The import runs under a lease, so the server's collector leaves blobs
  // written before their image record alone; it expires by itself if we die.
  plugin::RemoteLeaseStore leases(ch);
  absl::StatusOr<std::string> lease = store::CreateTemporaryLease(
      leases, flags.ns, absl::StrCat("imagectl-import-", ::getpid()), absl::Now(), absl::Hours(24));
  if (!lease.ok()) return lease.status();
  options.lease = *lease;
  auto result = cri::ImportFile(&content, &images, flags.ns, file, options);
  absl::Status released = leases.DeleteTemporary(flags.ns, *lease);
  if (!result.ok()) return result.status();
  if (!released.ok()) return released;
  for (const cri::ImportedImage& image : result->images) {
    out << image.name << "\t" << image.target.digest << "\t"
        << (image.image_id.empty() ? "-" : image.image_id) << "\n";
  }
  out << "imported " << result->images.size() << " image(s) into namespace " << flags.ns << ": "
      << result->blobs_written << " blob(s) written, " << result->blobs_present
      << " already present\n";
  if (result->images.empty()) out << "no entry of the archive is named; --digests names them\n";
  return absl::OkStatus();
}

absl::Status ExportArchive(const std::shared_ptr<grpc::Channel>& ch,
                           const std::vector<std::string>& images, const std::string& file,
                           const ArchiveFlags& flags, std::ostream& out) {
  cri::ExportOptions options;
  auto platform = PlatformOf(flags);
  if (!platform.ok()) return platform.status();
  options.platform = *platform;
  options.all_platforms = flags.all_platforms;
  options.skip_docker_manifest = flags.skip_manifest_json;
  plugin::RemoteContentStore content(ch);
  plugin::RemoteImageStore image_store(ch);
  if (absl::Status s = cri::ExportFile(&content, &image_store, flags.ns, images, file, options);
      !s.ok()) {
    return s;
  }
  // With "-" stdout carries the archive and nothing else.
  if (file != "-") out << "exported " << images.size() << " image(s) to " << file << "\n";
  return absl::OkStatus();
}

ArchiveCommands::ArchiveCommands(CLI::App& app) {
  import_ =
      app.add_subcommand("import", "import an OCI or docker-save archive (like ctr images import)");
  import_->add_option("file", import_file_, "the archive; - reads stdin")->required();
  AddCommonFlags(import_, &import_flags_);
  import_->add_option("--base-name", import_flags_.base_name,
                      "repository for bare-tag names; other repositories are skipped");
  import_->add_flag("--digests", import_flags_.digests, "also name each image <base>@<digest>");

  export_ = app.add_subcommand("export", "export images as an OCI archive: export IMAGE... FILE");
  export_->add_option("args", export_args_, "the images, then the file (- writes stdout)")
      ->required()
      ->expected(2, -1);
  AddCommonFlags(export_, &export_flags_);
  export_->add_flag("--skip-manifest-json", export_flags_.skip_manifest_json,
                    "no Docker manifest.json in the archive");
}

absl::Status ArchiveCommands::Run(const std::shared_ptr<grpc::Channel>& ch,
                                  std::ostream& out) const {
  if (*import_) return ImportArchive(ch, import_file_, import_flags_, out);
  if (*export_) {
    if (export_args_.size() < 2) return absl::InvalidArgumentError("usage: export IMAGE... FILE");
    std::vector<std::string> images(export_args_.begin(), export_args_.end() - 1);
    return ExportArchive(ch, images, export_args_.back(), export_flags_, out);
  }
  return absl::OkStatus();
}

}  // namespace imaged::imagectl
