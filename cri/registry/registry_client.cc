#include "cri/registry/registry_client.h"

#include <algorithm>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "store/digest.h"

namespace imaged::cri {

const char kManifestAccept[] =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

namespace {

bool Retryable(int status) { return status == 429 || status >= 500; }

// Waits `d` on `clock`, waking early on cancellation. False when cancelled.
bool Sleep(const store::Clock& clock, absl::Duration d, const CancelCheck& cancel) {
  const absl::Time until = clock.Now() + d;
  for (absl::Time now = clock.Now(); now < until; now = clock.Now()) {
    if (IsCancelled(cancel)) return false;
    clock.SleepFor(std::min(until - now, absl::Milliseconds(50)));
  }
  return !IsCancelled(cancel);
}

// The media type a manifest response declares ("type; charset=..." -> type).
std::string MediaTypeOf(const HttpResponse& r) {
  std::string ct = r.Header("content-type");
  std::string type(absl::StripAsciiWhitespace(ct.substr(0, ct.find(';'))));
  return type;
}

// The media type of a manifest document that does not come with a useful
// Content-Type, from its own mediaType field or its shape.
std::string SniffMediaType(absl::string_view body) {
  if (store::ParseIndex(body).ok()) {
    return std::string(absl::StrContains(body, "application/vnd.docker.distribution.manifest.list")
                           ? store::kMediaTypeDockerManifestList
                           : store::kMediaTypeOciIndex);
  }
  if (store::ParseManifest(body).ok()) {
    return std::string(absl::StrContains(body, "application/vnd.docker.distribution.manifest.v2")
                           ? store::kMediaTypeDockerManifest
                           : store::kMediaTypeOciManifest);
  }
  return "";
}

bool IsKnownManifestType(absl::string_view t) {
  return store::IsIndexType(t) || store::IsManifestType(t);
}

}  // namespace

RegistryClient::RegistryClient(HttpTransport* http, Authorizer* auth, std::string registry,
                               std::string repository, std::vector<RegistryHost> hosts,
                               RetryPolicy retry, CancelCheck cancel, const store::Clock* clock)
    : http_(http),
      auth_(auth),
      registry_(std::move(registry)),
      repository_(std::move(repository)),
      hosts_(std::move(hosts)),
      retry_(retry),
      cancel_(std::move(cancel)),
      clock_(clock) {}

absl::StatusOr<HttpResponse> RegistryClient::Send(Kind kind, const std::string& method,
                                                  const std::string& path,
                                                  const std::function<int64_t()>& range_start,
                                                  const HttpTransport::Sink& sink,
                                                  const std::string& what) {
  const std::string scope = absl::StrCat("repository:", repository_, ":pull");
  absl::Status last = absl::NotFoundError(
      absl::StrCat(what, ": no host of ", registry_, " is configured to ",
                   kind == Kind::kResolve ? "resolve" : "pull"));
  for (const RegistryHost& host : hosts_) {
    if (kind == Kind::kResolve ? !host.resolve : !host.pull) continue;
    const std::string url = absl::StrCat(host.Url(), "/", repository_, "/", path);
    const std::string where = absl::StrCat(what, " from ", host.scheme, "://", host.host);
    bool auth_answered = false;
    absl::Duration backoff = retry_.initial_backoff;
    for (int attempt = 1; attempt <= retry_.attempts;) {
      if (IsCancelled(cancel_)) return absl::CancelledError(what + ": cancelled");
      HttpRequest req;
      req.method = method;
      req.url = url;
      req.cancel = cancel_;
      req.connect_timeout = retry_.connect_timeout;
      req.low_speed_time = retry_.stall_timeout;
      req.total_timeout = kind == Kind::kBlob ? absl::InfiniteDuration() : retry_.request_timeout;
      req.tls.skip_verify = host.skip_verify;
      req.tls.ca_files = host.ca_files;
      if (!host.client_certs.empty()) {
        req.tls.client_cert = host.client_certs.front().first;
        req.tls.client_key = host.client_certs.front().second;
      }
      req.headers = host.headers;
      if (kind != Kind::kBlob) req.headers.emplace_back("Accept", kManifestAccept);
      if (std::string a = auth_->HeaderFor(host.host, scope); !a.empty()) {
        req.headers.emplace_back("Authorization", std::move(a));
      }
      if (range_start) {
        int64_t start = range_start();
        if (start > 0) req.range_start = start;
      }

      absl::StatusOr<HttpResponse> resp = http_->Do(req, sink, kMaxManifestBytes);
      if (!resp.ok()) {
        if (!absl::IsUnavailable(resp.status())) {
          // Cancelled, or the sink refused (a full disk, a size overrun).
          return absl::Status(resp.status().code(),
                              absl::StrCat(where, ": ", resp.status().message()));
        }
        last = absl::UnavailableError(absl::StrCat(where, ": ", resp.status().message()));
      } else if (resp->status == 401) {
        if (auth_answered) {
          return absl::UnauthenticatedError(absl::StrCat(
              where, ": pull access denied (HTTP 401): the repository does not exist or the "
                     "credentials do not grant pulling it"));
        }
        absl::Status a = auth_->OnUnauthorized(host.host, scope, *resp, cancel_);
        if (!a.ok()) {
          return absl::Status(a.code(), absl::StrCat(where, ": ", a.message()));
        }
        auth_answered = true;
        continue;  // not an attempt: the same request, now authorized
      } else if (resp->status == 403) {
        return absl::PermissionDeniedError(absl::StrCat(where, ": access denied (HTTP 403)"));
      } else if (resp->status == 404) {
        last = absl::NotFoundError(absl::StrCat(what, ": not found on ", registry_));
        break;  // the next host may have it
      } else if (Retryable(resp->status)) {
        last = absl::UnavailableError(absl::StrCat(where, ": HTTP ", resp->status));
        int64_t after = 0;
        if (absl::SimpleAtoi(resp->Header("retry-after"), &after) && after > 0) {
          backoff = std::max(backoff, absl::Seconds(after));
        }
      } else if (resp->status >= 200 && resp->status < 300) {
        return resp;
      } else {
        return absl::FailedPreconditionError(
            absl::StrCat(where, ": unexpected HTTP ", resp->status));
      }
      if (++attempt > retry_.attempts) break;
      if (!Sleep(*clock_, std::min(backoff, retry_.max_backoff), cancel_)) {
        return absl::CancelledError(what + ": cancelled");
      }
      backoff *= 2;
    }
  }
  return last;
}

absl::StatusOr<store::Descriptor> RegistryClient::Resolve(absl::string_view tag_or_digest) {
  const bool by_digest = absl::StartsWith(tag_or_digest, store::kSha256Prefix);
  const std::string what = absl::StrCat("resolving ", Name(), by_digest ? "@" : ":", tag_or_digest);
  const std::string path = absl::StrCat("manifests/", tag_or_digest);

  absl::StatusOr<HttpResponse> head = Send(Kind::kResolve, "HEAD", path, nullptr, nullptr, what);
  if (!head.ok() && !absl::IsFailedPrecondition(head.status())) return head.status();
  if (head.ok()) {
    store::Descriptor d;
    d.media_type = MediaTypeOf(*head);
    d.digest = head->Header("docker-content-digest");
    if (by_digest) d.digest = std::string(tag_or_digest);
    bool sized = absl::SimpleAtoi(head->Header("content-length"), &d.size) && d.size > 0;
    if (store::ValidateDigest(d.digest).ok() && sized && IsKnownManifestType(d.media_type)) {
      return d;
    }
  }
  // The registry would not say (or refused HEAD): GET the document itself.
  absl::StatusOr<HttpResponse> get = Send(Kind::kResolve, "GET", path, nullptr, nullptr, what);
  if (!get.ok()) return get.status();
  store::Descriptor d;
  d.digest = store::Sha256::Of(get->body);
  d.size = static_cast<int64_t>(get->body.size());
  if (by_digest && d.digest != tag_or_digest) {
    return absl::DataLossError(
        absl::StrCat(what, ": the registry sent a manifest whose digest is ", d.digest));
  }
  d.media_type = MediaTypeOf(*get);
  if (!IsKnownManifestType(d.media_type)) d.media_type = SniffMediaType(get->body);
  if (d.media_type.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": unsupported manifest type \"", MediaTypeOf(*get), "\" (schema 1?)"));
  }
  return d;
}

absl::StatusOr<std::string> RegistryClient::FetchManifest(const store::Descriptor& desc) {
  const std::string what = absl::StrCat("fetching manifest ", Name(), "@", desc.digest);
  if (desc.size > static_cast<int64_t>(kMaxManifestBytes)) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", desc.size,
                                                      " bytes is more than a manifest may have"));
  }
  absl::StatusOr<HttpResponse> get =
      Send(Kind::kManifest, "GET", absl::StrCat("manifests/", desc.digest), nullptr, nullptr, what);
  if (!get.ok()) return get.status();
  std::string digest = store::Sha256::Of(get->body);
  if (digest != desc.digest || (desc.size > 0 && static_cast<int64_t>(get->body.size()) != desc.size)) {
    return absl::DataLossError(absl::StrCat(what, ": got ", get->body.size(), " bytes with digest ",
                                            digest, ", expected ", desc.size, " bytes"));
  }
  return std::move(get->body);
}

absl::Status RegistryClient::FetchBlob(const store::Descriptor& desc, int64_t offset,
                                       const HttpTransport::Sink& sink) {
  const std::string what = absl::StrCat("fetching blob ", Name(), "@", desc.digest);
  // `delivered` counts bytes handed on past `offset`, across retries, so a
  // retry asks for the rest only. Within one response, `skip` drops what a
  // registry that ignored Range sends again.
  int64_t delivered = 0;
  int64_t skip = 0;
  const HttpResponse* current = nullptr;
  auto range_start = [&]() -> int64_t {
    current = nullptr;
    return offset + delivered;
  };
  HttpTransport::Sink counting = [&](const HttpResponse& head, absl::string_view chunk) -> absl::Status {
    if (current != &head) {
      current = &head;
      // 206 continues where we asked; 200 starts from byte 0 again.
      skip = head.status == 206 ? 0 : offset + delivered;
    }
    if (skip > 0) {
      size_t n = static_cast<size_t>(std::min<int64_t>(skip, static_cast<int64_t>(chunk.size())));
      chunk.remove_prefix(n);
      skip -= static_cast<int64_t>(n);
      if (chunk.empty()) return absl::OkStatus();
    }
    if (desc.size > 0 && offset + delivered + static_cast<int64_t>(chunk.size()) > desc.size) {
      return absl::DataLossError(absl::StrCat(what, ": the registry sent more than the ",
                                              desc.size, " bytes the manifest declares"));
    }
    absl::Status s = sink(head, chunk);
    if (s.ok()) delivered += static_cast<int64_t>(chunk.size());
    return s;
  };
  if (desc.size > 0 && offset >= desc.size) return absl::OkStatus();
  absl::StatusOr<HttpResponse> get =
      Send(Kind::kBlob, "GET", absl::StrCat("blobs/", desc.digest), range_start, counting, what);
  if (!get.ok()) return get.status();
  if (desc.size > 0 && offset + delivered != desc.size) {
    return absl::UnavailableError(absl::StrCat(what, ": the transfer ended after ",
                                               offset + delivered, " of ", desc.size, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace imaged::cri
