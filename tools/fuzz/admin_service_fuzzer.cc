// imaged.v1.Admin: index checks and repairs, unresolved records, collections
// of any namespaces and disk usage, between writes and deletes of content,
// images and leases (tools/fuzz/service_fuzz.h).
#include "tools/fuzz/service_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* ops = new std::vector<imaged::fuzz::Op>(imaged::fuzz::Ops(
      {"Admin.CheckIndex", "Admin.ListUnresolved", "Admin.GarbageCollect", "Admin.DiskUsage",
       "Admin.MirrorStatus", "Content.WriteKnown", "Content.Delete", "Images.Create",
       "Images.Delete", "Leases.Create", "Leases.AddResource", "Leases.Delete"}));
  return imaged::fuzz::RunInput(data, size, *ops);
}
