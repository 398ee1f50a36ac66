#include "tools/imagectl/archive_commands.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "api/imaged/v1/archives.grpc.pb.h"
#include "cri/archive/archive.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/grpc_status.h"
#include "plugin/leases_client.h"
#include "store/errors.h"
#include "store/platform.h"

namespace imaged::imagectl {
namespace {

namespace archivespb = ::imaged::v1;

// Archive bytes per Archives.Import message.
constexpr size_t kImportChunk = 1 << 20;

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

void PrintImported(const std::vector<cri::ImportedImage>& images, int64_t written,
                   int64_t present, const std::string& ns, std::ostream& out) {
  for (const cri::ImportedImage& image : images) {
    out << image.name << "\t" << image.target.digest << "\t"
        << (image.image_id.empty() ? "-" : image.image_id) << "\n";
  }
  out << "imported " << images.size() << " image(s) into namespace " << ns << ": " << written
      << " blob(s) written, " << present << " already present\n";
  if (images.empty()) out << "no entry of the archive is named; --digests names them\n";
}

// The import over the Content and Images APIs, run here: what works against
// any containerd-compatible server.
absl::Status ImportThroughContentApi(const std::shared_ptr<grpc::Channel>& ch,
                                     const std::string& file, const ArchiveFlags& flags,
                                     std::ostream& out) {
  cri::ImportOptions options;
  auto platform = PlatformOf(flags);
  if (!platform.ok()) return platform.status();
  options.platform = *platform;
  options.all_platforms = flags.all_platforms;
  options.base_name = flags.base_name;
  options.digest_refs = flags.digests;
  plugin::RemoteContentStore content(ch);
  plugin::RemoteImageStore images(ch);
  // Under a temporary lease, so the server's collector leaves blobs written
  // before their image record alone; it expires by itself if we die.
  plugin::RemoteLeaseStore leases(ch);
  auto result = cri::ImportFile(&content, &images, flags.ns, file, options, &leases,
                                absl::StrCat("imagectl-import-", ::getpid()));
  if (!result.ok()) return result.status();
  PrintImported(result->images, result->blobs_written, result->blobs_present, flags.ns, out);
  return absl::OkStatus();
}

// The archive streamed to imaged's own Archives.Import, which imports it on
// the server with batched commits. Unimplemented when the server has no such
// service (containerd, or imaged in mirror mode).
absl::Status ImportThroughArchivesApi(const std::shared_ptr<grpc::Channel>& ch,
                                      const std::string& file, const ArchiveFlags& flags,
                                      std::ostream& out) {
  if (!flags.platform.empty()) {
    if (auto p = store::ParsePlatform(flags.platform); !p.ok()) return p.status();
  }
  int fd = 0;
  if (file != "-") {
    fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return store::ErrnoError(errno, absl::StrCat("open ", file));
  }
  struct Close {
    int fd;
    ~Close() {
      if (fd != 0) ::close(fd);
    }
  } close_fd{fd};

  auto stub = archivespb::Archives::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.AddMetadata("containerd-namespace", flags.ns);
  archivespb::ImportResponse resp;
  std::unique_ptr<grpc::ClientWriter<archivespb::ImportRequest>> writer = stub->Import(&ctx, &resp);
  archivespb::ImportRequest req;
  req.mutable_options()->set_base_name(flags.base_name);
  req.mutable_options()->set_digests(flags.digests);
  req.mutable_options()->set_platform(flags.platform);
  req.mutable_options()->set_all_platforms(flags.all_platforms);
  // Errors name the file, as they do when the import runs here.
  const std::string source = file == "-" ? "(stdin)" : file;
  if (source.size() <= 256) req.mutable_options()->set_source(source);
  std::string buf(kImportChunk, '\0');
  absl::Status read_error;
  for (bool first = true;; first = false) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      read_error = store::ErrnoError(errno, absl::StrCat("read ", file));
      ctx.TryCancel();
      break;
    }
    if (n == 0 && !first) break;
    req.set_data(buf.data(), static_cast<size_t>(n));
    if (!writer->Write(req)) break;  // the server has answered: Finish says how
    req.clear_options();
    if (n == 0) break;
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!read_error.ok()) return read_error;
  if (!status.ok()) return plugin::FromGrpcStatus(status);
  std::vector<cri::ImportedImage> images;
  for (const archivespb::ImportedImage& image : resp.images()) {
    cri::ImportedImage i;
    i.name = image.name();
    i.target.digest = image.target_digest();
    i.target.media_type = image.target_media_type();
    i.target.size = image.target_size();
    i.image_id = image.image_id();
    i.existed = image.existed();
    images.push_back(std::move(i));
  }
  PrintImported(images, resp.blobs_written(), resp.blobs_present(), flags.ns, out);
  return absl::OkStatus();
}

}  // namespace

absl::Status ImportArchive(const std::shared_ptr<grpc::Channel>& ch, const std::string& file,
                           const ArchiveFlags& flags, std::ostream& out) {
  if (flags.content_api) return ImportThroughContentApi(ch, file, flags, out);
  absl::Status s = ImportThroughArchivesApi(ch, file, flags, out);
  // A server without Archives: the import runs here, over the Content API,
  // when the archive can be read again.
  if (absl::IsUnimplemented(s) && file != "-") return ImportThroughContentApi(ch, file, flags, out);
  return s;
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
  import_->add_flag("--content-api", import_flags_.content_api,
                    "import here, over the Content and Images APIs (as ctr does), instead of "
                    "streaming the archive to imaged's bulk import");

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
