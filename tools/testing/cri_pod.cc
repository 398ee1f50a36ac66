// cri_pod: what kubelet does for one pod with one container, through an image
// endpoint (imaged) and a runtime endpoint (containerd's CRI), for the pod
// e2e test:
//
//   ImageStatus (expected: not present)    image endpoint
//   PullImage, ImageStatus (present)       image endpoint
//   RunPodSandbox (host network)           runtime endpoint
//   CreateContainer, StartContainer        runtime endpoint
//   ContainerStatus until exited           runtime endpoint
//   the container's log                    log directory
//   RemoveContainer, StopPodSandbox, RemovePodSandbox
//   RemoveImage, ImageStatus (not present) image endpoint
//
//   cri_pod --image-endpoint SOCK --runtime-endpoint SOCK --image REF
//           --log-dir DIR [--expect-log TEXT] [--timeout 60s]
//
// Prints each step; exits 0 when the container exited 0 and its log holds
// TEXT, 1 on any failure (after removing what it created), 2 on bad usage.
#include <grpcpp/create_channel.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "api/runtime/v1/runtime_service.grpc.pb.h"

namespace {

namespace cripb = ::runtime::v1;

std::shared_ptr<grpc::Channel> Dial(std::string path) {
  if (path.rfind("unix://", 0) == 0) path = path.substr(7);
  return grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
}

// A context with kubelet's runtime request timeout (2 min; pulls have none).
std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Minutes(2)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (timeout != absl::InfiniteDuration()) {
    ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  }
  return ctx;
}

bool Check(const char* step, const grpc::Status& s) {
  if (s.ok()) return true;
  std::printf("%s: FAILED: code %d: %s\n", step, static_cast<int>(s.error_code()),
              s.error_message().c_str());
  return false;
}

bool Flag(int& i, int argc, char** argv, const char* name, std::string* out) {
  if (std::string(argv[i]) != name || i + 1 >= argc) return false;
  *out = argv[++i];
  return true;
}

class Pod {
 public:
  Pod(std::shared_ptr<grpc::Channel> images, std::shared_ptr<grpc::Channel> runtime)
      : images_(cripb::ImageService::NewStub(images)),
        runtime_(cripb::RuntimeService::NewStub(runtime)) {}

  ~Pod() { Cleanup(); }

  bool Run(const std::string& image, const std::string& log_dir, const std::string& expect,
           absl::Duration timeout) {
    // kubelet's image manager: is it there?
    cripb::ImageStatusRequest status;
    status.mutable_image()->set_image(image);
    cripb::ImageStatusResponse st;
    if (!Check("ImageStatus", images_->ImageStatus(Ctx().get(), status, &st))) return false;
    std::printf("ImageStatus %s: %s\n", image.c_str(), st.has_image() ? "present" : "not present");

    cripb::PullImageRequest pull;
    pull.mutable_image()->set_image(image);
    cripb::PullImageResponse pulled;
    if (!Check("PullImage", images_->PullImage(Ctx(absl::InfiniteDuration()).get(), pull, &pulled))) {
      return false;
    }
    image_ref_ = pulled.image_ref();
    std::printf("PullImage: %s\n", image_ref_.c_str());
    if (!Check("ImageStatus", images_->ImageStatus(Ctx().get(), status, &st))) return false;
    if (!st.has_image() || st.image().id() != image_ref_ || st.image().size() == 0) {
      std::printf("ImageStatus after the pull: FAILED: %s\n", st.ShortDebugString().c_str());
      return false;
    }
    std::printf("ImageStatus: id %s, %llu bytes\n", st.image().id().c_str(),
                static_cast<unsigned long long>(st.image().size()));

    cripb::PodSandboxConfig sandbox;
    sandbox.mutable_metadata()->set_name("imaged-e2e");
    sandbox.mutable_metadata()->set_uid(absl::StrCat("uid-", absl::ToUnixNanos(absl::Now())));
    sandbox.mutable_metadata()->set_namespace_("default");
    sandbox.set_log_directory(log_dir);
    sandbox.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        cripb::NODE);
    cripb::RunPodSandboxRequest run;
    *run.mutable_config() = sandbox;
    cripb::RunPodSandboxResponse ran;
    if (!Check("RunPodSandbox", runtime_->RunPodSandbox(Ctx().get(), run, &ran))) return false;
    sandbox_id_ = ran.pod_sandbox_id();
    std::printf("RunPodSandbox: %s\n", sandbox_id_.c_str());

    cripb::CreateContainerRequest create;
    create.set_pod_sandbox_id(sandbox_id_);
    *create.mutable_sandbox_config() = sandbox;
    cripb::ContainerConfig* c = create.mutable_config();
    c->mutable_metadata()->set_name("hello");
    c->mutable_image()->set_image(image_ref_);  // kubelet passes the pulled image's ID
    c->set_log_path("hello/0.log");
    c->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        cripb::NODE);
    cripb::CreateContainerResponse created;
    if (!Check("CreateContainer", runtime_->CreateContainer(Ctx().get(), create, &created))) {
      return false;
    }
    container_id_ = created.container_id();
    std::printf("CreateContainer: %s\n", container_id_.c_str());

    cripb::StartContainerRequest start;
    start.set_container_id(container_id_);
    cripb::StartContainerResponse started;
    if (!Check("StartContainer", runtime_->StartContainer(Ctx().get(), start, &started))) return false;
    std::printf("StartContainer: ok\n");

    cripb::ContainerStatusRequest cs;
    cs.set_container_id(container_id_);
    cripb::ContainerStatusResponse css;
    const absl::Time end = absl::Now() + timeout;
    while (true) {
      if (!Check("ContainerStatus", runtime_->ContainerStatus(Ctx().get(), cs, &css))) return false;
      if (css.status().state() == cripb::CONTAINER_EXITED) break;
      if (absl::Now() > end) {
        std::printf("ContainerStatus: FAILED: not exited after %s\n", absl::FormatDuration(timeout).c_str());
        return false;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    std::printf("ContainerStatus: exited %d (%s)\n", css.status().exit_code(),
                css.status().reason().c_str());
    if (css.status().exit_code() != 0) return false;

    std::ifstream log(log_dir + "/hello/0.log");
    std::stringstream text;
    text << log.rdbuf();
    std::printf("log:\n%s", text.str().c_str());
    if (text.str().find(expect) == std::string::npos) {
      std::printf("log: FAILED: no \"%s\" in it\n", expect.c_str());
      return false;
    }
    if (!Cleanup()) return false;

    cripb::RemoveImageRequest remove;
    remove.mutable_image()->set_image(image_ref_);
    cripb::RemoveImageResponse removed;
    if (!Check("RemoveImage", images_->RemoveImage(Ctx().get(), remove, &removed))) return false;
    if (!Check("ImageStatus", images_->ImageStatus(Ctx().get(), status, &st))) return false;
    if (st.has_image()) {
      std::printf("ImageStatus after RemoveImage: FAILED: still present\n");
      return false;
    }
    std::printf("RemoveImage: ok; ImageStatus: not present\n");
    return true;
  }

 private:
  // Removes the container and the sandbox, if made.
  bool Cleanup() {
    bool ok = true;
    if (!container_id_.empty()) {
      cripb::RemoveContainerRequest req;
      req.set_container_id(container_id_);
      cripb::RemoveContainerResponse resp;
      ok = Check("RemoveContainer", runtime_->RemoveContainer(Ctx().get(), req, &resp)) && ok;
      container_id_.clear();
    }
    if (!sandbox_id_.empty()) {
      cripb::StopPodSandboxRequest stop;
      stop.set_pod_sandbox_id(sandbox_id_);
      cripb::StopPodSandboxResponse stopped;
      ok = Check("StopPodSandbox", runtime_->StopPodSandbox(Ctx().get(), stop, &stopped)) && ok;
      cripb::RemovePodSandboxRequest remove;
      remove.set_pod_sandbox_id(sandbox_id_);
      cripb::RemovePodSandboxResponse removed;
      ok = Check("RemovePodSandbox", runtime_->RemovePodSandbox(Ctx().get(), remove, &removed)) && ok;
      sandbox_id_.clear();
      if (ok) std::printf("RemoveContainer, StopPodSandbox, RemovePodSandbox: ok\n");
    }
    return ok;
  }

  std::unique_ptr<cripb::ImageService::Stub> images_;
  std::unique_ptr<cripb::RuntimeService::Stub> runtime_;
  std::string image_ref_, sandbox_id_, container_id_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string image_endpoint, runtime_endpoint, image, log_dir, expect = "hello", timeout_s = "60s";
  for (int i = 1; i < argc; ++i) {
    if (Flag(i, argc, argv, "--image-endpoint", &image_endpoint) ||
        Flag(i, argc, argv, "--runtime-endpoint", &runtime_endpoint) ||
        Flag(i, argc, argv, "--image", &image) || Flag(i, argc, argv, "--log-dir", &log_dir) ||
        Flag(i, argc, argv, "--expect-log", &expect) || Flag(i, argc, argv, "--timeout", &timeout_s)) {
      continue;
    }
    std::cerr << "cri_pod: unknown argument " << argv[i] << "\n";
    return 2;
  }
  absl::Duration timeout;
  if (image_endpoint.empty() || runtime_endpoint.empty() || image.empty() || log_dir.empty() ||
      !absl::ParseDuration(timeout_s, &timeout)) {
    std::cerr << "usage: cri_pod --image-endpoint SOCK --runtime-endpoint SOCK --image REF "
                 "--log-dir DIR [--expect-log TEXT] [--timeout 60s]\n";
    return 2;
  }
  Pod pod(Dial(image_endpoint), Dial(runtime_endpoint));
  bool ok = pod.Run(image, log_dir, expect, timeout);
  std::fflush(stdout);
  return ok ? 0 : 1;
}
