#include "tools/imagectl/commands.h"

#include <grpcpp/create_channel.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/imaged/v1/admin.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "cri/reference.h"
#include "plugin/content_client.h"
#include "plugin/grpc_status.h"
#include "plugin/images_client.h"

namespace imaged::imagectl {
namespace {

namespace cripb = ::runtime::v1;
namespace adminpb = ::imaged::v1;
using plugin::FromGrpcStatus;

// crictl shows 13 characters of the ID, without the algorithm.
std::string ShortId(const std::string& id) {
  std::string hex = absl::StartsWith(id, "sha256:") ? id.substr(7) : id;
  return hex.substr(0, 13);
}

// "docker.io/library/busybox:1.36" -> {"docker.io/library/busybox", "1.36"}.
std::pair<std::string, std::string> SplitTag(const std::string& ref) {
  size_t slash = ref.rfind('/');
  size_t colon = ref.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    return {ref, "<none>"};
  }
  return {ref.substr(0, colon), ref.substr(colon + 1)};
}

std::string Row(const std::vector<std::string>& cells, const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    line += cells[i];
    if (i + 1 < cells.size()) line += std::string(widths[i] > cells[i].size() ? widths[i] - cells[i].size() + 3 : 3, ' ');
  }
  return line + "\n";
}

void PrintTable(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) out << Row(row, widths);
}

nlohmann::json ImageJson(const cripb::Image& image) {
  nlohmann::json j = {{"id", image.id()},
                      {"repoTags", std::vector<std::string>(image.repo_tags().begin(), image.repo_tags().end())},
                      {"repoDigests", std::vector<std::string>(image.repo_digests().begin(),
                                                               image.repo_digests().end())},
                      {"size", std::to_string(image.size())},
                      {"username", image.username()},
                      {"pinned", image.pinned()}};
  j["uid"] = image.has_uid() ? nlohmann::json{{"value", std::to_string(image.uid().value())}}
                             : nlohmann::json(nullptr);
  return j;
}

}  // namespace

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  std::string path = address;
  if (absl::StartsWith(path, "unix://")) path = path.substr(7);
  if (absl::StartsWith(path, "unix:")) path = path.substr(5);
  // Lists of 30,000 images (and records an older imaged stored beyond
  // today's limits) are larger than gRPC's default 4 MiB.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  return grpc::CreateCustomChannel("unix:" + path, grpc::InsecureChannelCredentials(), args);
}

std::string HumanSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1000 && unit < 5) {
    v /= 1000;
    ++unit;
  }
  // Three significant digits, as crictl's go-units does, without trailing zeros.
  // (One literal format each: clang checks absl::StrFormat's formats at compile time.)
  std::string s = v >= 100  ? absl::StrFormat("%.0f", v)
                  : v >= 10 ? absl::StrFormat("%.1f", v)
                            : absl::StrFormat("%.2f", v);
  if (absl::StrContains(s, '.')) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s + kUnits[unit];
}

absl::Status Images(const std::shared_ptr<grpc::Channel>& ch, const std::string& filter, bool digests, bool quiet,
                    std::ostream& out) {
  auto stub = cripb::ImageService::NewStub(ch);
  cripb::ListImagesRequest req;
  if (!filter.empty()) req.mutable_filter()->mutable_image()->set_image(filter);
  cripb::ListImagesResponse resp;
  grpc::ClientContext ctx;
  if (absl::Status s = FromGrpcStatus(stub->ListImages(&ctx, req, &resp)); !s.ok()) return s;
  if (quiet) {
    for (const auto& image : resp.images()) out << image.id() << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back(digests ? std::vector<std::string>{"IMAGE", "TAG", "DIGEST", "IMAGE ID", "SIZE"}
                         : std::vector<std::string>{"IMAGE", "TAG", "IMAGE ID", "SIZE"});
  for (const auto& image : resp.images()) {
    std::string digest = "<none>";
    std::string repo_of_digest;
    if (image.repo_digests_size() > 0) {
      const std::string& rd = image.repo_digests(0);
      size_t at = rd.find('@');
      repo_of_digest = rd.substr(0, at);
      digest = rd.substr(at + 1 + 7, 13);
    }
    std::vector<std::pair<std::string, std::string>> tags;
    for (const std::string& t : image.repo_tags()) tags.push_back(SplitTag(t));
    if (tags.empty()) tags.emplace_back(repo_of_digest.empty() ? "<none>" : repo_of_digest, "<none>");
    for (const auto& [repo, tag] : tags) {
      std::vector<std::string> row = {repo, tag};
      if (digests) row.push_back(digest);
      row.push_back(ShortId(image.id()));
      row.push_back(HumanSize(image.size()));
      rows.push_back(std::move(row));
    }
  }
  PrintTable(rows, out);
  return absl::OkStatus();
}

absl::Status InspectImage(const std::shared_ptr<grpc::Channel>& ch, const std::string& ref, std::ostream& out) {
  auto stub = cripb::ImageService::NewStub(ch);
  cripb::ImageStatusRequest req;
  req.mutable_image()->set_image(ref);
  req.set_verbose(true);
  cripb::ImageStatusResponse resp;
  grpc::ClientContext ctx;
  if (absl::Status s = FromGrpcStatus(stub->ImageStatus(&ctx, req, &resp)); !s.ok()) return s;
  if (!resp.has_image()) return absl::NotFoundError(absl::StrCat("no such image \"", ref, "\" present"));
  nlohmann::json j = {{"status", ImageJson(resp.image())}};
  auto info = resp.info().find("info");
  if (info != resp.info().end()) {
    j["info"] = nlohmann::json::parse(info->second, nullptr, false);
  }
  out << j.dump(2) << "\n";
  return absl::OkStatus();
}

absl::Status RemoveImages(const std::shared_ptr<grpc::Channel>& ch, const std::vector<std::string>& refs,
                          std::ostream& out) {
  auto stub = cripb::ImageService::NewStub(ch);
  absl::Status result;
  for (const std::string& ref : refs) {
    cripb::RemoveImageRequest req;
    req.mutable_image()->set_image(ref);
    cripb::RemoveImageResponse resp;
    grpc::ClientContext ctx;
    absl::Status s = FromGrpcStatus(stub->RemoveImage(&ctx, req, &resp));
    if (s.ok()) {
      out << "Deleted: " << ref << "\n";
    } else {
      out << "error removing " << ref << ": " << s.message() << "\n";
      result = s;
    }
  }
  return result;
}

absl::Status ImageFsInfo(const std::shared_ptr<grpc::Channel>& ch, std::ostream& out) {
  auto stub = cripb::ImageService::NewStub(ch);
  cripb::ImageFsInfoRequest req;
  cripb::ImageFsInfoResponse resp;
  grpc::ClientContext ctx;
  if (absl::Status s = FromGrpcStatus(stub->ImageFsInfo(&ctx, req, &resp)); !s.ok()) return s;
  auto list = [](const auto& filesystems) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& fs : filesystems) {
      list.push_back({{"timestamp", std::to_string(fs.timestamp())},
                      {"fsId", {{"mountpoint", fs.fs_id().mountpoint()}}},
                      {"usedBytes", {{"value", std::to_string(fs.used_bytes().value())}}},
                      {"inodesUsed", {{"value", std::to_string(fs.inodes_used().value())}}}});
    }
    return list;
  };
  // As crictl imagefsinfo prints it.
  out << nlohmann::json{{"status",
                         {{"imageFilesystems", list(resp.image_filesystems())},
                          {"containerFilesystems", list(resp.container_filesystems())}}}}
             .dump(2)
      << "\n";
  return absl::OkStatus();
}

absl::Status ListRecords(const std::shared_ptr<grpc::Channel>& ch, const std::string& ns,
                         const std::vector<std::string>& filters, std::ostream& out) {
  plugin::RemoteImageStore images(ch);
  auto list = images.List(ns, filters);
  if (!list.ok()) return list.status();
  std::vector<std::vector<std::string>> rows = {{"NAME", "TARGET", "IMAGE ID", "LABELS"}};
  for (const store::Image& image : *list) {
    auto id = image.labels.find(store::kLabelImageId);
    std::vector<std::string> labels;
    for (const auto& [k, v] : image.labels) {
      if (k != store::kLabelImageId) labels.push_back(absl::StrCat(k, "=", v));
    }
    rows.push_back({image.name, image.target.digest,
                    id == image.labels.end() ? "<unresolved>" : ShortId(id->second),
                    labels.empty() ? "-" : absl::StrJoin(labels, ",")});
  }
  PrintTable(rows, out);
  return absl::OkStatus();
}

absl::Status Check(const std::shared_ptr<grpc::Channel>& ch, bool repair, std::ostream& out) {
  auto stub = adminpb::Admin::NewStub(ch);
  adminpb::CheckIndexRequest req;
  req.set_repair(repair);
  adminpb::CheckIndexResponse resp;
  grpc::ClientContext ctx;
  if (absl::Status s = FromGrpcStatus(stub->CheckIndex(&ctx, req, &resp)); !s.ok()) return s;
  out << absl::StrFormat("records: %d, resolved: %d, unresolved: %d\n", resp.records(),
                         resp.resolved(), resp.unresolved());
  for (const std::string& p : resp.problems()) out << "problem: " << p << "\n";
  if (resp.repaired()) out << "index repaired\n";

  adminpb::ListUnresolvedRequest ureq;
  adminpb::ListUnresolvedResponse uresp;
  grpc::ClientContext uctx;
  if (absl::Status s = FromGrpcStatus(stub->ListUnresolved(&uctx, ureq, &uresp)); !s.ok()) return s;
  for (const auto& u : uresp.images()) {
    out << "unresolved: " << u.namespace_() << "/" << u.name() << ": " << u.reason() << "\n";
  }
  if (resp.problems_size() > 0 && !resp.repaired()) {
    return absl::FailedPreconditionError(
        absl::StrCat(resp.problems_size(), " index problems (imagectl check --repair rebuilds it)"));
  }
  return absl::OkStatus();
}

absl::Status GarbageCollect(const std::shared_ptr<grpc::Channel>& ch,
                            const std::vector<std::string>& namespaces, std::ostream& out) {
  auto stub = adminpb::Admin::NewStub(ch);
  adminpb::GarbageCollectRequest req;
  for (const std::string& ns : namespaces) req.add_namespaces(ns);
  adminpb::GarbageCollectResponse resp;
  grpc::ClientContext ctx;
  if (absl::Status s = FromGrpcStatus(stub->GarbageCollect(&ctx, req, &resp)); !s.ok()) return s;
  out << absl::StrFormat(
      "removed %d blobs (freed %d, %s), %d expired leases; kept %d blobs; %d namespaces in %.1fms%s\n",
      resp.blobs_removed(), resp.files_removed(), HumanSize(resp.bytes_freed()),
      resp.leases_expired(), resp.blobs_kept(), resp.namespaces(),
      resp.duration_micros() / 1000.0, resp.complete() ? "" : " (budget reached: run again)");
  return absl::OkStatus();
}

absl::Status DiskUsage(const std::shared_ptr<grpc::Channel>& ch, std::ostream& out) {
  auto stub = adminpb::Admin::NewStub(ch);
  adminpb::DiskUsageRequest req;
  adminpb::DiskUsageResponse resp;
  grpc::ClientContext ctx;
  if (absl::Status s = FromGrpcStatus(stub->DiskUsage(&ctx, req, &resp)); !s.ok()) return s;
  out << absl::StrFormat("%-20s %8s %10s %10s %8s %12s\n", "NAMESPACE", "BLOBS", "SIZE",
                         "EXCLUSIVE", "GARBAGE", "RECLAIMABLE");
  for (const auto& u : resp.namespaces()) {
    out << absl::StrFormat("%-20s %8d %10s %10s %8d %12s\n",
                           u.namespace_().empty() ? "(content proxy)" : u.namespace_(), u.blobs(),
                           HumanSize(u.bytes()), HumanSize(u.exclusive_bytes()), u.garbage_blobs(),
                           HumanSize(u.reclaimable_bytes()));
  }
  // Small blobs are rows of the metadata database, not files.
  out << absl::StrFormat(
      "on disk: %d files, %s (%d bytes); in the metadata database: %d blobs, %s (%d bytes)\n",
      resp.files(), HumanSize(resp.bytes()), resp.bytes(), resp.inline_blobs(),
      HumanSize(resp.inline_bytes()), resp.inline_bytes());
  return absl::OkStatus();
}

absl::Status MirrorStatus(const std::shared_ptr<grpc::Channel>& ch, std::ostream& out) {
  auto stub = adminpb::Admin::NewStub(ch);
  adminpb::MirrorStatusRequest req;
  adminpb::MirrorStatusResponse resp;
  grpc::ClientContext ctx;
  if (absl::Status s = FromGrpcStatus(stub->MirrorStatus(&ctx, req, &resp)); !s.ok()) return s;
  if (!resp.enabled()) {
    out << "mirror mode is off\n";
    return absl::OkStatus();
  }
  out << "connected: " << (resp.connected() ? "yes" : "no") << "\n";
  const std::string since =
      resp.answering_since_unix() > 0
          ? absl::StrCat(" since ", absl::FormatTime(absl::RFC3339_sec,
                                                      absl::FromUnixSeconds(resp.answering_since_unix()),
                                                      absl::UTCTimeZone()))
          : "";
  if (resp.containerd_answering()) {
    out << "containerd: answering" << since << "\n";
  } else {
    out << "containerd: not answering" << since << " (" << resp.last_failure() << ")\n";
  }
  if (resp.last_sync_unix() > 0) {
    out << absl::StrFormat(
        "last sync: %s (%d records in containerd, %d unchanged, %d written, %d deleted, %.1fms)\n",
        absl::FormatTime(absl::RFC3339_sec, absl::FromUnixSeconds(resp.last_sync_unix()),
                         absl::UTCTimeZone()),
        resp.last_sync_upstream(), resp.last_sync_unchanged(), resp.last_sync_written(),
        resp.last_sync_deleted(), resp.last_sync_micros() / 1000.0);
  } else {
    out << "last sync: none yet\n";
  }
  out << absl::StrFormat("events applied: %d, lag: last %.1fms, p50 %.1fms, p99 %.1fms\n",
                         resp.events_applied(), resp.last_event_lag_micros() / 1000.0,
                         resp.lag_p50_micros() / 1000.0, resp.lag_p99_micros() / 1000.0);
  if (!resp.last_error().empty()) out << "last error: " << resp.last_error() << "\n";
  // Not connected is a state to report, and a failure for scripts.
  if (!resp.containerd_answering()) return absl::UnavailableError("containerd is not answering");
  if (!resp.connected()) return absl::UnavailableError("the mirror is not connected to containerd");
  return absl::OkStatus();
}

}  // namespace imaged::imagectl
