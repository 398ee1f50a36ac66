// imagectl's commands, separate from its flag parsing so they can be tested
// against a real server. Each prints crictl- or ctr-like output to `out` and
// returns the status to exit with.
#ifndef IMAGED_TOOLS_IMAGECTL_COMMANDS_H_
#define IMAGED_TOOLS_IMAGECTL_COMMANDS_H_

#include <grpcpp/channel.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace imaged::imagectl {

// "unix:///run/x.sock", "unix:/run/x.sock" or "/run/x.sock" -> a channel.
std::shared_ptr<grpc::Channel> Connect(const std::string& address);

// CRI (runtime.v1.ImageService), like crictl.
absl::Status Images(const std::shared_ptr<grpc::Channel>& ch, const std::string& filter, bool digests, bool quiet,
                    std::ostream& out);
absl::Status InspectImage(const std::shared_ptr<grpc::Channel>& ch, const std::string& ref, std::ostream& out);
absl::Status RemoveImages(const std::shared_ptr<grpc::Channel>& ch, const std::vector<std::string>& refs,
                          std::ostream& out);
absl::Status ImageFsInfo(const std::shared_ptr<grpc::Channel>& ch, std::ostream& out);

// containerd's Images API and imaged's Admin API.
absl::Status ListRecords(const std::shared_ptr<grpc::Channel>& ch, const std::string& ns,
                         const std::vector<std::string>& filters, std::ostream& out);
// Index consistency and unresolved records; a problem found is FailedPrecondition.
absl::Status Check(const std::shared_ptr<grpc::Channel>& ch, bool repair, std::ostream& out);

// A garbage collection pass now (of `namespaces`; none: all) and what it removed.
absl::Status GarbageCollect(const std::shared_ptr<grpc::Channel>& ch,
                            const std::vector<std::string>& namespaces, std::ostream& out);
// Space per namespace, and what a collection would free.
absl::Status DiskUsage(const std::shared_ptr<grpc::Channel>& ch, std::ostream& out);

// Mirror mode's state: connected, last sync, events applied and their lag.
// Unavailable when enabled but not connected.
absl::Status MirrorStatus(const std::shared_ptr<grpc::Channel>& ch, std::ostream& out);

// "1.5MB": crictl's human-readable size (powers of 1000).
std::string HumanSize(uint64_t bytes);

}  // namespace imaged::imagectl

#endif  // IMAGED_TOOLS_IMAGECTL_COMMANDS_H_
