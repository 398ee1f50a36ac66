// HTTP over libcurl, as the registry client needs it: one request at a time
// per call, bodies streamed to a callback, a Range start for resumed blobs,
// timeouts that catch a stalled transfer without limiting a long one, TLS
// options from hosts.toml, and cancellation. Connections are kept and reused
// across calls (a pool of easy handles), so a pull's many requests to one
// registry share their TCP and TLS set-up.
//
// Thread-safe: any number of calls may run at once, each on its own handle.
#ifndef IMAGED_CRI_REGISTRY_HTTP_CLIENT_H_
#define IMAGED_CRI_REGISTRY_HTTP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace imaged::cri {

// Asked while a request runs and between retries: true stops the work with
// Cancelled. Called from any thread, often (curl's progress callback): keep
// it cheap. Empty means never.
using CancelCheck = std::function<bool()>;
inline bool IsCancelled(const CancelCheck& cancel) { return cancel && cancel(); }

struct HttpTls {
  bool skip_verify = false;
  std::vector<std::string> ca_files;  // trusted in addition to the system's
  std::string client_cert;            // PEM; "" for none
  std::string client_key;
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD or POST
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;           // POST only
  int64_t range_start = -1;   // >= 0: "Range: bytes=<start>-"
  HttpTls tls;
  // Abort when connecting takes longer than this.
  absl::Duration connect_timeout = absl::Seconds(30);
  // Abort when fewer than `low_speed_bytes` arrive per `low_speed_time`: a
  // stalled transfer fails, a slow but moving one does not.
  absl::Duration low_speed_time = absl::Seconds(30);
  int64_t low_speed_bytes = 1;
  // Abort the whole request after this long; InfiniteDuration for blobs.
  absl::Duration total_timeout = absl::InfiniteDuration();
  // Aborts the transfer (Cancelled).
  CancelCheck cancel;
};

struct HttpResponse {
  int status = 0;
  // Header names lower-cased, of the final response (after redirects).
  std::vector<std::pair<std::string, std::string>> headers;
  // The body, unless a sink took it (then only an error status's body, up
  // to 64 KiB, for its message).
  std::string body;
  std::string Header(absl::string_view name) const;  // first value, or ""
  std::vector<std::string> Headers(absl::string_view name) const;
};

// How the registry client, its auth and the puller speak HTTP: HttpClient
// (libcurl) in imaged; the unit tests of the logic above it give a fake.
class HttpTransport {
 public:
  // Receives the body of a 2xx response as it arrives, with the response's
  // status and headers (`head.body` is empty); an error aborts the transfer
  // and is what the call returns.
  using Sink = std::function<absl::Status(const HttpResponse& head, absl::string_view chunk)>;

  virtual ~HttpTransport() = default;

  // Sends `req`, following redirects (an Authorization header is not sent on
  // to another host). Any HTTP status is a response; a transport failure is
  // Unavailable (connection refused or reset, DNS, TLS handshake, stalled or
  // timed out), a body larger than `max_body` without a sink is
  // ResourceExhausted, cancellation is Cancelled, and a sink's error is
  // returned as it is.
  virtual absl::StatusOr<HttpResponse> Do(const HttpRequest& req, const Sink& sink,
                                          size_t max_body) = 0;
  absl::StatusOr<HttpResponse> Do(const HttpRequest& req, const Sink& sink = nullptr) {
    return Do(req, sink, kDefaultMaxBody);
  }
  static constexpr size_t kDefaultMaxBody = 8 << 20;
};

class HttpClient final : public HttpTransport {
 public:
  HttpClient();
  ~HttpClient() override;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  using HttpTransport::Do;
  absl::StatusOr<HttpResponse> Do(const HttpRequest& req, const Sink& sink,
                                  size_t max_body) override;

 private:
  void* TakeHandle();
  void GiveBack(void* handle);

  absl::Mutex mu_;
  // Handles not in use; each keeps its open connections for the next call.
  std::vector<void*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_REGISTRY_HTTP_CLIENT_H_
