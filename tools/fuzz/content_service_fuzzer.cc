// containerd.services.content.v1.Content: writes (resumed, out of order,
// with wrong totals and digests), reads of any window, label updates,
// deletes and aborts, in sequences (tools/fuzz/service_fuzz.h).
#include "tools/fuzz/service_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* ops = new std::vector<imaged::fuzz::Op>(imaged::fuzz::Ops(
      {"Content.Write", "Content.WriteKnown", "Content.Info", "Content.Update", "Content.List",
       "Content.Delete", "Content.Read", "Content.Status", "Content.ListStatuses",
       "Content.Abort"}));
  return imaged::fuzz::RunInput(data, size, *ops);
}
