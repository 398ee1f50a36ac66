// containerd.services.leases.v1.Leases: leases holding content, ingests and
// images written under them, deleted (sync or not) around collections
// (tools/fuzz/service_fuzz.h).
#include "tools/fuzz/service_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* ops = new std::vector<imaged::fuzz::Op>(imaged::fuzz::Ops(
      {"Leases.Create", "Leases.Delete", "Leases.List", "Leases.AddResource",
       "Leases.DeleteResource", "Leases.ListResources", "Content.WriteKnown", "Content.Write",
       "Images.Create", "Admin.GarbageCollect"}));
  return imaged::fuzz::RunInput(data, size, *ops);
}
