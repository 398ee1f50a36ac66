// cri_compare: asks two CRI ImageService endpoints the same questions and
// compares the answers field by field, for the mirror-mode test (imaged vs
// containerd's own CRI).
//
//   cri_compare [--ignore FIELD]... SOCKET_A SOCKET_B
//
// ListImages of both (images ordered by ID, repo tags and digests sorted, as
// their order carries no meaning), then ImageStatus for every image by ID,
// by each repo tag and by each repo digest. Prints each difference and the
// number of images; exits 1 on a difference, 2 on an RPC failure.
// --ignore drops a field of runtime.v1.Image from the comparison (e.g.
// "pinned", which containerd 1.6 does not report).
#include <grpcpp/create_channel.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "api/runtime/v1/api.grpc.pb.h"

namespace {

namespace cripb = ::runtime::v1;

std::unique_ptr<cripb::ImageService::Stub> Stub(std::string path) {
  if (path.rfind("unix://", 0) == 0) path = path.substr(7);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  return cripb::ImageService::NewStub(
      grpc::CreateCustomChannel("unix:" + path, grpc::InsecureChannelCredentials(), args));
}

void Normalize(cripb::Image* image, const std::vector<std::string>& ignore) {
  std::sort(image->mutable_repo_tags()->begin(), image->mutable_repo_tags()->end());
  std::sort(image->mutable_repo_digests()->begin(), image->mutable_repo_digests()->end());
  for (const std::string& field : ignore) {
    const auto* f = image->GetDescriptor()->FindFieldByName(field);
    if (f != nullptr) image->GetReflection()->ClearField(image, f);
  }
}

// Every call is given up after 60 s: a hung endpoint fails the comparison
// (exit 2) instead of hanging the test until Bazel's timeout.
void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
}

bool List(cripb::ImageService::Stub* stub, const std::vector<std::string>& ignore,
          std::vector<cripb::Image>* out) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  cripb::ListImagesRequest req;
  cripb::ListImagesResponse resp;
  grpc::Status s = stub->ListImages(&ctx, req, &resp);
  if (!s.ok()) {
    std::cerr << "ListImages: " << s.error_message() << "\n";
    return false;
  }
  for (cripb::Image& image : *resp.mutable_images()) {
    Normalize(&image, ignore);
    out->push_back(image);
  }
  std::sort(out->begin(), out->end(),
            [](const cripb::Image& a, const cripb::Image& b) { return a.id() < b.id(); });
  return true;
}

bool Status(cripb::ImageService::Stub* stub, const std::string& ref,
            const std::vector<std::string>& ignore, cripb::ImageStatusResponse* out) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  cripb::ImageStatusRequest req;
  req.mutable_image()->set_image(ref);
  grpc::Status s = stub->ImageStatus(&ctx, req, out);
  if (!s.ok()) {
    std::cerr << "ImageStatus " << ref << ": " << s.error_message() << "\n";
    return false;
  }
  if (out->has_image()) Normalize(out->mutable_image(), ignore);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> ignore, sockets;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--ignore" && i + 1 < argc) {
      ignore.push_back(argv[++i]);
    } else {
      sockets.push_back(arg);
    }
  }
  if (sockets.size() != 2) {
    std::cerr << "usage: cri_compare [--ignore FIELD]... SOCKET_A SOCKET_B\n";
    return 2;
  }
  auto a = Stub(sockets[0]), b = Stub(sockets[1]);
  std::vector<cripb::Image> la, lb;
  if (!List(a.get(), ignore, &la) || !List(b.get(), ignore, &lb)) return 2;
  int differences = 0;
  auto differ = [&](const std::string& what, const google::protobuf::Message& x,
                    const google::protobuf::Message& y) {
    std::string report;
    google::protobuf::util::MessageDifferencer d;
    d.ReportDifferencesToString(&report);
    if (!d.Compare(x, y)) {
      std::cout << what << " differs (A then B):\n" << report;
      ++differences;
    }
  };
  if (la.size() != lb.size()) {
    std::cout << "ListImages: " << la.size() << " images in A, " << lb.size() << " in B\n";
    ++differences;
  }
  for (size_t i = 0; i < std::min(la.size(), lb.size()); ++i) {
    differ("ListImages image " + la[i].id(), la[i], lb[i]);
  }
  for (const cripb::Image& image : la) {
    std::vector<std::string> refs = {image.id()};
    refs.insert(refs.end(), image.repo_tags().begin(), image.repo_tags().end());
    refs.insert(refs.end(), image.repo_digests().begin(), image.repo_digests().end());
    for (const std::string& ref : refs) {
      cripb::ImageStatusResponse sa, sb;
      if (!Status(a.get(), ref, ignore, &sa) || !Status(b.get(), ref, ignore, &sb)) return 2;
      differ("ImageStatus " + ref, sa, sb);
    }
  }
  std::cout << la.size() << " images, " << differences << " differences\n";
  return differences == 0 ? 0 : 1;
}
