// The OCI distribution API, read side: resolve a tag or digest to a
// descriptor, fetch a manifest, stream a blob (from an offset, to resume).
//
// One client serves one repository of one registry, trying that registry's
// hosts in hosts.toml order (mirrors first; a host is used only for what its
// capabilities allow). A request that fails for a reason another attempt may
// cure (connection refused or reset, a stalled transfer, HTTP 429 or 5xx) is
// retried with exponential backoff; a host that does not have the object
// (404) or keeps failing hands over to the next host. Every error names the
// registry and the object; none contains a credential.
#ifndef IMAGED_CRI_REGISTRY_REGISTRY_CLIENT_H_
#define IMAGED_CRI_REGISTRY_REGISTRY_CLIENT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cri/registry/hosts.h"
#include "cri/registry/http_client.h"
#include "cri/registry/registry_auth.h"
#include "store/clock.h"
#include "store/limits.h"
#include "store/oci.h"

namespace imaged::cri {

struct RetryPolicy {
  int attempts = 4;  // per host, the first included
  absl::Duration initial_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(8);
  // For manifests and token requests; blobs have no total limit, only the
  // stall limit.
  absl::Duration request_timeout = absl::Seconds(60);
  absl::Duration stall_timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(20);
};

// The largest manifest or index accepted (containerd refuses bigger too).
inline constexpr size_t kMaxManifestBytes = store::kMaxImageDocumentBytes;

// Accept header for manifests: OCI index and manifest, Docker list and v2.
extern const char kManifestAccept[];

class RegistryClient {
 public:
  // `registry` is the reference's domain ("docker.io"), `repository` its
  // path ("library/busybox"); `hosts` come from HostsFor(registry). `http`
  // and `auth` are not owned. `cancel` aborts everything; backoff waits on
  // `clock` (not owned).
  RegistryClient(HttpTransport* http, Authorizer* auth, std::string registry, std::string repository,
                 std::vector<RegistryHost> hosts, RetryPolicy retry, CancelCheck cancel,
                 const store::Clock* clock = store::SystemClock::Get());

  // The descriptor a tag or a digest names (HEAD, or GET when the registry
  // does not say the digest in answer to HEAD). NotFound when no host has it.
  absl::StatusOr<store::Descriptor> Resolve(absl::string_view tag_or_digest);

  // The bytes of manifest or index `desc`, verified against its digest and
  // size. DataLoss when they do not match.
  absl::StatusOr<std::string> FetchManifest(const store::Descriptor& desc);

  // Streams blob `desc` from byte `offset` to `sink`. The sink sees exactly
  // the bytes from `offset` on (a registry ignoring Range is handled here).
  // A transfer broken off midway is retried from where it stopped. Verifying
  // the digest is the sink's business (the content store does it at commit).
  absl::Status FetchBlob(const store::Descriptor& desc, int64_t offset,
                         const HttpTransport::Sink& sink);

  // "127.0.0.1:5000/library/busybox", for messages.
  std::string Name() const { return registry_ + "/" + repository_; }

 private:
  enum class Kind { kResolve, kManifest, kBlob };
  // Sends a request for `path` (after /v2/<repository>/) to each usable host
  // in turn, with auth and retries; returns the first non-retryable answer
  // (any 2xx, or 404 from the last host) or the last error.
  absl::StatusOr<HttpResponse> Send(Kind kind, const std::string& method, const std::string& path,
                                    const std::function<int64_t()>& range_start,
                                    const HttpTransport::Sink& sink, const std::string& what);

  HttpTransport* const http_;
  Authorizer* const auth_;
  const std::string registry_;
  const std::string repository_;
  const std::vector<RegistryHost> hosts_;
  const RetryPolicy retry_;
  const CancelCheck cancel_;
  const store::Clock* const clock_;
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_REGISTRY_REGISTRY_CLIENT_H_
