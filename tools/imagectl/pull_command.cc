#include "tools/imagectl/pull_command.h"

#include <grpcpp/client_context.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "plugin/content_client.h"
#include "plugin/grpc_status.h"
#include "tools/imagectl/commands.h"

namespace imaged::imagectl {
namespace {

constexpr int kBarWidth = 30;

std::string Bar(int64_t done, int64_t total) {
  int filled = total > 0 ? static_cast<int>(kBarWidth * std::min(done, total) / total) : 0;
  std::string bar(kBarWidth, ' ');
  for (int i = 0; i < filled; ++i) bar[i] = '=';
  if (filled < kBarWidth && filled > 0) bar[filled] = '>';
  return absl::StrCat("[", bar, "]");
}

// "layer-sha256:0123456789ab..." -> "layer-sha256:0123456789ab".
std::string ShortRef(const std::string& ref) {
  size_t colon = ref.find(':');
  return colon == std::string::npos ? ref : ref.substr(0, std::min(ref.size(), colon + 13));
}

}  // namespace

void PullProgress::Update(const std::vector<store::IngestStatus>& active) {
  std::map<std::string, bool> seen;
  for (const store::IngestStatus& st : active) {
    Blob& b = blobs_[st.ref];
    b.offset = st.offset;
    b.total = st.total;
    b.done = false;
    seen[st.ref] = true;
  }
  for (auto& [ref, b] : blobs_) {
    if (!seen.count(ref) && !b.done) {
      b.done = true;
      b.offset = b.total;
    }
  }
}

void PullProgress::Finish() {
  for (auto& [ref, b] : blobs_) {
    b.done = true;
    b.offset = b.total;
  }
}

int64_t PullProgress::done_bytes() const {
  int64_t n = 0;
  for (const auto& [ref, b] : blobs_) n += b.offset;
  return n;
}

int64_t PullProgress::total_bytes() const {
  int64_t n = 0;
  for (const auto& [ref, b] : blobs_) n += b.total;
  return n;
}

void PullProgress::DrawTerminal(std::ostream& out) {
  if (lines_drawn_ > 0) out << "\x1b[" << lines_drawn_ << "A";
  lines_drawn_ = 0;
  for (const auto& [ref, b] : blobs_) {
    out << "\x1b[2K" << absl::StrFormat("%-26s %s %10s / %-10s %s\n", ShortRef(ref), Bar(b.offset, b.total),
                                        HumanSize(b.offset), HumanSize(b.total),
                                        b.done ? "done" : "");
    ++lines_drawn_;
  }
  out << "\x1b[2K"
      << absl::StrFormat("%-26s %s %10s / %-10s\n", "total", Bar(done_bytes(), total_bytes()),
                         HumanSize(done_bytes()), HumanSize(total_bytes()));
  ++lines_drawn_;
  out.flush();
}

void PullProgress::DrawPlain(std::ostream& out, absl::Duration every) {
  for (auto& [ref, b] : blobs_) {
    if (!b.announced) {
      out << ref << ": downloading " << HumanSize(b.total) << "\n";
      b.announced = true;
    }
    if (b.done && !b.announced_done) {
      out << ref << ": done\n";
      b.announced_done = true;
    }
  }
  absl::Time now = absl::Now();
  if (!blobs_.empty() && now - last_total_ >= every) {
    out << "total: " << HumanSize(done_bytes()) << " of " << HumanSize(total_bytes()) << "\n";
    last_total_ = now;
  }
  out.flush();
}

absl::Status Pull(const std::shared_ptr<grpc::Channel>& ch, const PullFlags& flags,
                  std::ostream& out) {
  runtime::v1::PullImageRequest req;
  req.mutable_image()->set_image(flags.image);
  runtime::v1::AuthConfig* auth = req.mutable_auth();
  if (!flags.creds.empty()) {
    std::pair<std::string, std::string> up = absl::StrSplit(flags.creds, absl::MaxSplits(':', 1));
    auth->set_username(up.first);
    auth->set_password(up.second);
  }
  auth->set_auth(flags.auth);
  auth->set_identity_token(flags.identity_token);
  auth->set_registry_token(flags.registry_token);

  auto stub = runtime::v1::ImageService::NewStub(ch);
  grpc::ClientContext ctx;
  runtime::v1::PullImageResponse resp;
  grpc::Status status;
  absl::Notification done;
  std::thread call([&] {
    status = stub->PullImage(&ctx, req, &resp);
    done.Notify();
  });

  plugin::RemoteContentStore content(ch);
  PullProgress progress;
  auto draw = [&] {
    if (flags.terminal) {
      progress.DrawTerminal(out);
    } else {
      progress.DrawPlain(out, absl::Seconds(5));
    }
  };
  while (!done.WaitForNotificationWithTimeout(flags.poll)) {
    // Only this pull's kinds of ingest: the refs the server's puller uses.
    auto active = content.ListStatuses(
        flags.ns, {"ref~=\"^(index|manifest|config|layer)-sha256:\""});
    if (!active.ok()) continue;  // progress is best effort; the pull goes on
    progress.Update(*active);
    draw();
  }
  call.join();
  if (!status.ok()) return plugin::FromGrpcStatus(status);
  progress.Finish();
  if (progress.total_bytes() > 0) draw();
  out << "Image is up to date for " << resp.image_ref() << "\n";
  return absl::OkStatus();
}

}  // namespace imaged::imagectl
