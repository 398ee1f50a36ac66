// imagectl: a crictl-like client for imaged. Flag parsing only; the commands
// live in commands.cc.
#include <unistd.h>

#include <iostream>

#include "CLI/CLI.hpp"
#include "plugin/version.h"
#include "tools/imagectl/archive_commands.h"
#include "tools/imagectl/commands.h"
#include "tools/imagectl/pull_command.h"

int main(int argc, char** argv) {
  namespace ic = imaged::imagectl;
  CLI::App app{"imagectl: inspect and manage imaged's images"};
  app.set_version_flag("--version", imaged::plugin::VersionLine("imagectl"));
  app.require_subcommand(1);
  std::string address = "/run/imaged/imaged.sock";
  app.add_option("-a,--address,--image-endpoint", address, "imaged socket (like crictl's --image-endpoint)")
      ->envname("IMAGE_SERVICE_ENDPOINT");

  std::string filter, ref, ns = "k8s.io";
  bool digests = false, quiet = false, repair = false;
  std::vector<std::string> refs, filters;

  auto* images = app.add_subcommand("images", "list images (CRI)");
  images->add_option("filter", filter, "only the image this reference names");
  images->add_flag("--digests", digests, "show digests");
  images->add_flag("-q,--quiet", quiet, "only image IDs");
  auto* inspecti = app.add_subcommand("inspecti", "image status, verbose (CRI)");
  inspecti->add_option("image", ref)->required();
  auto* rmi = app.add_subcommand("rmi", "remove images (CRI)");
  rmi->add_option("images", refs)->required();
  auto* fsinfo = app.add_subcommand("imagefsinfo", "image filesystem usage (CRI)");
  auto* ls = app.add_subcommand("ls", "list image records (containerd Images API)");
  ls->add_option("-n,--namespace", ns, "containerd namespace");
  ls->add_option("filters", filters, "containerd filters, e.g. name~=busybox");
  auto* check = app.add_subcommand("check", "check the image-ID index against the records");
  check->add_flag("--repair", repair, "rebuild the index from the records");
  ic::ArchiveCommands archive(app);  // import, export
  std::vector<std::string> gc_namespaces;
  auto* gc = app.add_subcommand("gc", "collect garbage now and report what went");
  gc->add_option("-n,--namespace", gc_namespaces, "only these namespaces (repeatable)");
  auto* du = app.add_subcommand("du", "disk use per namespace and what gc would free");
  auto* mirror = app.add_subcommand("mirror", "mirror mode: connection to containerd, sync, lag");
  ic::PullFlags pull_flags;
  auto* pull = app.add_subcommand("pull", "pull an image through imaged's CRI, with progress");
  pull->add_option("image", pull_flags.image)->required();
  pull->add_option("-n,--namespace", pull_flags.ns, "imaged's CRI namespace (for progress)");
  pull->add_option("--creds", pull_flags.creds, "registry credentials, USER[:PASSWORD]");
  pull->add_option("--auth", pull_flags.auth, "base64 of USER:PASSWORD");
  pull->add_option("--identity-token", pull_flags.identity_token, "OAuth2 refresh token");
  pull->add_option("--registry-token", pull_flags.registry_token, "bearer token for the registry");
  CLI11_PARSE(app, argc, argv);

  auto channel = ic::Connect(address);
  absl::Status s;
  if (*images) s = ic::Images(channel, filter, digests, quiet, std::cout);
  if (*inspecti) s = ic::InspectImage(channel, ref, std::cout);
  if (*rmi) s = ic::RemoveImages(channel, refs, std::cout);
  if (*fsinfo) s = ic::ImageFsInfo(channel, std::cout);
  if (*ls) s = ic::ListRecords(channel, ns, filters, std::cout);
  if (*check) s = ic::Check(channel, repair, std::cout);
  if (archive.selected()) s = archive.Run(channel, std::cout);
  if (*gc) s = ic::GarbageCollect(channel, gc_namespaces, std::cout);
  if (*du) s = ic::DiskUsage(channel, std::cout);
  if (*mirror) s = ic::MirrorStatus(channel, std::cout);
  if (*pull) {
    pull_flags.terminal = ::isatty(STDOUT_FILENO) == 1;
    s = ic::Pull(channel, pull_flags, std::cout);
  }
  if (!s.ok()) {
    std::cerr << "imagectl: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
