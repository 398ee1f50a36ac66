// runtime.v1.ImageService (CRI): ListImages, ImageStatus, RemoveImage by
// reference, ID and ID prefix, PullImage (from a loopback port nobody
// serves), ImageFsInfo, over images created and broken through the
// containerd APIs in k8s.io (tools/fuzz/service_fuzz.h).
#include "tools/fuzz/service_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* ops = [] {
    imaged::fuzz::Harness::Get().set_home("k8s.io");
    return new std::vector<imaged::fuzz::Op>(imaged::fuzz::Ops(
        {"CRI.ListImages", "CRI.ImageStatus", "CRI.PullImage", "CRI.RemoveImage",
         "CRI.ImageFsInfo", "Content.WriteKnown", "Content.Delete", "Images.Create",
         "Images.Delete"}));
  }();
  return imaged::fuzz::RunInput(data, size, *ops);
}
