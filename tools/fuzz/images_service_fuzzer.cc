// containerd.services.images.v1.Images, and the Events service its writes
// publish through: image records whose targets are present, missing,
// deleted under them or not images at all (tools/fuzz/service_fuzz.h).
#include "tools/fuzz/service_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* ops = new std::vector<imaged::fuzz::Op>(imaged::fuzz::Ops(
      {"Images.Get", "Images.List", "Images.Create", "Images.Update", "Images.Delete",
       "Content.WriteKnown", "Content.Delete", "Events.Publish", "Events.Forward"}));
  return imaged::fuzz::RunInput(data, size, *ops);
}
