// transfer_client: ctr 2.x's Transfer-based image commands, as a test
// client (no containerd 2.x binary builds on Debian 12's Go 1.19). Each
// command sends what ctr 2.x sends for it, streams included
// (plugin/transfer_client.h), and prints every progress event as a line:
//
//   transfer_client --address SOCK [--namespace NS] COMMAND ...
//     pull REF [--user USER:SECRET] [--plain-http] [--hosts-dir DIR]
//              [--label K=V]... [--platform OS/ARCH[/VARIANT]]
//         ctr images pull REF (the record is named REF)
//     import FILE [--base-name NAME] [--digests] [--skip-digest-for-named]
//                 [--all-platforms] [--platform P] [--label K=V]...
//         ctr images import FILE ("-" reads stdin)
//     export FILE NAME... [--all-platforms] [--platform P]... [--skip-manifest-json]
//         ctr images export FILE NAME... ("-" writes stdout)
//
// Each runs under a lease of its own, deleted at the end, as ctr 2.x does.
// Progress lines (stdout; stderr when the archive goes to stdout): "progress EVENT" for a status, "progress EVENT NAME
// [OFFSET/TOTAL]" for a blob or record. On failure the last line is
// "transfer_client: CODE: MESSAGE" and the exit status is 1.
#include <grpcpp/create_channel.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "plugin/transfer_client.h"

namespace {

using imaged::plugin::TransferPlatform;

absl::StatusOr<TransferPlatform> ParsePlatform(const std::string& spec) {
  std::vector<std::string> parts = absl::StrSplit(spec, '/');
  if (parts.size() < 2 || parts.size() > 3) {
    return absl::InvalidArgumentError(absl::StrCat("platform ", spec, ": want OS/ARCH[/VARIANT]"));
  }
  TransferPlatform p;
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "transfer_client: %s: %s\n", absl::StatusCodeToString(s.code()).c_str(),
               std::string(s.message()).c_str());
  return 1;
}

int Usage() {
  std::fprintf(stderr,
               "usage: transfer_client --address SOCK [--namespace NS] "
               "pull REF | import FILE | export FILE NAME... [options]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address, ns = "default", command;
  std::vector<std::string> args;
  std::string user, hosts_dir, base_name;
  bool plain_http = false, digests = false, skip_named = false, all_platforms = false,
       skip_manifest = false;
  std::vector<TransferPlatform> platforms;
  std::map<std::string, std::string> labels;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "transfer_client: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--address") {
      address = value();
    } else if (a == "--namespace") {
      ns = value();
    } else if (a == "--user") {
      user = value();
    } else if (a == "--hosts-dir") {
      hosts_dir = value();
    } else if (a == "--base-name") {
      base_name = value();
    } else if (a == "--plain-http") {
      plain_http = true;
    } else if (a == "--digests") {
      digests = true;
    } else if (a == "--skip-digest-for-named") {
      skip_named = true;
    } else if (a == "--all-platforms") {
      all_platforms = true;
    } else if (a == "--skip-manifest-json") {
      skip_manifest = true;
    } else if (a == "--platform") {
      auto p = ParsePlatform(value());
      if (!p.ok()) return Fail(p.status());
      platforms.push_back(*p);
    } else if (a == "--label") {
      std::string kv = value();
      size_t eq = kv.find('=');
      labels[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    } else if (command.empty()) {
      command = a;
    } else {
      args.push_back(a);
    }
  }
  if (address.empty() || command.empty() || args.empty()) return Usage();

  auto channel = grpc::CreateChannel("unix:" + address, grpc::InsecureChannelCredentials());
  imaged::plugin::TransferClient client(channel);
  imaged::plugin::TransferCall call;
  call.ns = ns;
  // Progress goes to stdout, as ctr prints it, unless the archive does.
  FILE* progress_out = command == "export" && args[0] == "-" ? stderr : stdout;
  call.progress = [progress_out](const imaged::plugin::TransferProgress& p) {
    std::string line = absl::StrCat("progress ", p.event);
    if (!p.name.empty()) absl::StrAppend(&line, " ", p.name);
    if (p.total > 0) absl::StrAppend(&line, " ", p.progress, "/", p.total);
    std::fprintf(progress_out, "%s\n", line.c_str());
    std::fflush(progress_out);
  };

  absl::Status s;
  if (command == "pull") {
    imaged::plugin::TransferPullOptions options;
    options.name = args[0];
    options.labels = labels;
    if (!platforms.empty()) options.platforms = platforms;
    if (size_t colon = user.find(':'); colon != std::string::npos) {
      options.user = user.substr(0, colon);
      options.secret = user.substr(colon + 1);
    } else {
      options.user = user;
    }
    options.plain_http = plain_http;
    options.hosts_dir = hosts_dir;
    s = client.WithLease(call, [&](const imaged::plugin::TransferCall& c) {
      return client.Pull(c, args[0], options);
    });
  } else if (command == "import") {
    imaged::plugin::TransferImportOptions options;
    options.base_name = base_name;
    options.digests = digests;
    options.skip_digest_for_named = skip_named;
    options.labels = labels;
    if (all_platforms) {
      options.platforms.clear();
    } else if (!platforms.empty()) {
      options.platforms = {platforms[0]};
    }
    FILE* in = args[0] == "-" ? stdin : std::fopen(args[0].c_str(), "rb");
    if (in == nullptr) return Fail(absl::NotFoundError(absl::StrCat("cannot open ", args[0])));
    s = client.WithLease(call, [&](const imaged::plugin::TransferCall& c) {
      return client.Import(
        c,
        [in](char* buf, size_t len) -> absl::StatusOr<size_t> {
          size_t n = std::fread(buf, 1, len, in);
          if (n == 0 && std::ferror(in)) return absl::DataLossError("read error");
          return n;
        },
        options);
    });
    if (in != stdin) std::fclose(in);
  } else if (command == "export") {
    if (args.size() < 2) return Usage();
    imaged::plugin::TransferExportOptions options;
    options.platforms = platforms;
    options.all_platforms = all_platforms;
    options.skip_manifest_json = skip_manifest;
    FILE* out = args[0] == "-" ? stdout : std::fopen(args[0].c_str(), "wb");
    if (out == nullptr) return Fail(absl::NotFoundError(absl::StrCat("cannot create ", args[0])));
    std::vector<std::string> names(args.begin() + 1, args.end());
    s = client.WithLease(call, [&](const imaged::plugin::TransferCall& c) {
      return client.Export(
        c, names,
        [out](absl::string_view data) {
          if (std::fwrite(data.data(), 1, data.size(), out) != data.size()) {
            return absl::DataLossError("write error");
          }
          return absl::OkStatus();
        },
        options);
    });
    if (out != stdout && std::fclose(out) != 0 && s.ok()) s = absl::DataLossError("close error");
  } else {
    return Usage();
  }
  if (!s.ok()) return Fail(s);
  return 0;
}
