// The harness of the gRPC service fuzz targets (one per service: content,
// images, leases, cri, admin, transfer). One imaged (plugin::Server, as the `imaged`
// binary runs it, on a root in $TMPDIR, no scheduled collections, sweeps of
// 2 blobs a write so that an input's few blobs take several) is started
// per process and called over its socket, as clients call it (see
// service_fuzz.cc for why not gRPC's in-process channel). Each input
// is a sequence of steps (FuzzedDataProvider): a step picks one operation
// of the target's table and builds its request from the input, drawing
// namespaces, names, digests, lease ids and ingest refs mostly from small
// pools (and a few real blobs: two images and an index over them) so that
// steps meet each other's state; sometimes any string. Every call has a 5 s
// deadline (IMAGED_FUZZ_CALL_DEADLINE=N: N seconds).
//
// After the sequence, the input fails (abort, so libFuzzer keeps it) unless:
//   - every call answered a code a client may be told (never Unknown,
//     Internal, DataLoss, DeadlineExceeded, Cancelled...; Unimplemented
//     only for a lease resource of a type containerd does not know);
//   - the index check is clean (the image-ID index equals what the records
//     imply);
//   - the content store's usage counters equal the files under blobs/;
//   - removing everything the input made (leases, images, ingests, content,
//     then a collection) leaves no blob file and zero usage.
// So every input starts from the same empty store and a failure reproduces
// from its input alone.
#ifndef IMAGED_TOOLS_FUZZ_SERVICE_FUZZ_H_
#define IMAGED_TOOLS_FUZZ_SERVICE_FUZZ_H_

#include <fuzzer/FuzzedDataProvider.h>
#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace imaged::plugin {
class Server;
}  // namespace imaged::plugin

namespace imaged::fuzz {

class Harness;
class LoopbackRegistry;

// One operation a step may pick: it builds a request from `in` and makes
// the call, checking its status with Harness::Check.
struct Op {
  const char* name;
  std::function<void(Harness&, FuzzedDataProvider&)> run;
};

// The operations of every service, by name ("Content.Write",
// "Images.Create", "CRI.PullImage", "Admin.GarbageCollect"...); aborts on an
// unknown name.
std::vector<Op> Ops(std::initializer_list<const char*> names);

// Runs `data` as up to 24 steps over `ops`, then checks and empties the
// store (see the top of this file). Returns 0 (libFuzzer's convention).
int RunInput(const uint8_t* data, size_t size, const std::vector<Op>& ops);

// What operations draw from.
class Harness {
 public:
  struct Blob {
    std::string digest;
    std::string bytes;
    std::string media_type;
  };

  static Harness& Get();
  ~Harness();

  plugin::Server& server() const { return *server_; }

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  // The registry CRI.PullImage pulls from (service_fuzz.cc).
  LoopbackRegistry& registry() const { return *registry_; }
  const std::vector<Blob>& blobs() const { return blobs_; }

  // The namespace most calls name ("fuzz"; the CRI target: "k8s.io", its
  // cri_namespace). The others: the other of those two, "other".
  void set_home(std::string ns) { home_ = std::move(ns); }

  // A context with the call deadline, a containerd-namespace header chosen
  // by `in` (usually home; sometimes another, none, empty or invalid) and,
  // sometimes, a containerd-lease header.
  void Prepare(grpc::ClientContext* ctx, FuzzedDataProvider& in);

  const Blob& KnownBlob(FuzzedDataProvider& in) const;
  std::string Digest(FuzzedDataProvider& in) const;  // mostly a known blob's
  std::string Name(FuzzedDataProvider& in) const;    // image names and references
  std::string LeaseId(FuzzedDataProvider& in) const;  // fit for a header
  std::string Ref(FuzzedDataProvider& in) const;  // ingest refs
  std::map<std::string, std::string> Labels(FuzzedDataProvider& in) const;
  std::vector<std::string> Filters(FuzzedDataProvider& in) const;
  std::vector<std::string> FieldPaths(FuzzedDataProvider& in) const;
  static std::string Text(FuzzedDataProvider& in, size_t max);        // valid UTF-8
  static std::string HeaderText(FuzzedDataProvider& in, size_t max);  // printable ASCII

  // Aborts, naming `method`, when `status` is a code no call may answer, or
  // one `also` does not allow beyond the usual client errors (OK,
  // InvalidArgument, NotFound, AlreadyExists, FailedPrecondition,
  // OutOfRange, Aborted), or a message longer than the server cuts them
  // (store::kMaxErrorMessage).
  static void Check(const char* method, const grpc::Status& status,
                    std::initializer_list<grpc::StatusCode> also = {});

  // The checks and the reset after a sequence.
  void EndInput();
  // Removes imaged's directories (at exit).
  void RemoveDirs();

 private:
  Harness();

  std::string root_;
  std::string socket_dir_;
  std::unique_ptr<plugin::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<Blob> blobs_;
  std::unique_ptr<LoopbackRegistry> registry_;
  std::string home_ = "fuzz";
};

}  // namespace imaged::fuzz

#endif  // IMAGED_TOOLS_FUZZ_SERVICE_FUZZ_H_
