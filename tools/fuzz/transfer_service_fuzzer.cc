// containerd.services.transfer.v1.Transfer and .streaming.v1.Streaming
// (containerd 2.x), driven as ctr 2.x drives them: exports of images the
// steps wrote, imports of those archives (whole or damaged) and of input
// bytes, and raw transfers of any pair with input bytes for their sources
// and destinations; and imaged.v1.Archives/Import (imagectl import) of the
// same archives (tools/fuzz/service_fuzz.h).
#include "tools/fuzz/service_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* ops = new std::vector<imaged::fuzz::Op>(imaged::fuzz::Ops(
      {"Transfer.Export", "Transfer.Import", "Transfer.Raw", "Content.WriteKnown",
       "Images.Create", "Images.Delete", "Leases.Create", "Admin.GarbageCollect",
       "Archives.Import"}));
  return imaged::fuzz::RunInput(data, size, *ops);
}
