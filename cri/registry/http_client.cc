#include "cri/registry/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace imaged::cri {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// State one transfer's callbacks share.
struct Transfer {
  CURL* curl = nullptr;
  const HttpClient::Sink* sink = nullptr;
  size_t max_body = 0;
  const CancelCheck* cancel = nullptr;
  HttpResponse response;
  absl::Status failure;  // why a callback stopped the transfer
  bool status_known = false;
  bool to_sink = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<Transfer*>(arg);
  absl::string_view line(data, size * n);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (a redirect's or the final one): start over.
    t->response.headers.clear();
    t->status_known = false;
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return size * n;
  t->response.headers.emplace_back(absl::AsciiStrToLower(line.substr(0, colon)),
                                   std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* arg) {
  auto* t = static_cast<Transfer*>(arg);
  size_t len = size * n;
  if (!t->status_known) {
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    t->response.status = static_cast<int>(code);
    t->status_known = true;
    t->to_sink = *t->sink != nullptr && code >= 200 && code < 300;
  }
  absl::string_view chunk(data, len);
  if (t->to_sink) {
    absl::Status s = (*t->sink)(t->response, chunk);
    if (!s.ok()) {
      t->failure = std::move(s);
      return 0;
    }
    return len;
  }
  size_t limit = *t->sink != nullptr ? kMaxErrorBody : t->max_body;
  if (t->response.body.size() + len > limit) {
    if (*t->sink != nullptr) return len;  // an error body's tail is not needed
    t->failure = absl::ResourceExhaustedError(
        absl::StrCat("response body larger than ", t->max_body, " bytes"));
    return 0;
  }
  t->response.body.append(data, len);
  return len;
}

int OnProgress(void* arg, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(arg);
  if (IsCancelled(*t->cancel)) {
    t->failure = absl::CancelledError("request cancelled");
    return 1;
  }
  return 0;
}

long Millis(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return 0;  // curl: 0 = no limit
  return static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

}  // namespace

std::string HttpResponse::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

std::vector<std::string> HttpResponse::Headers(absl::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, name)) out.push_back(v);
  }
  return out;
}

HttpClient::HttpClient() { GlobalInit(); }

HttpClient::~HttpClient() {
  absl::MutexLock lock(&mu_);
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* HttpClient::TakeHandle() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void HttpClient::GiveBack(void* handle) {
  absl::MutexLock lock(&mu_);
  idle_.push_back(handle);
}

absl::StatusOr<HttpResponse> HttpClient::Do(const HttpRequest& req, const Sink& sink,
                                            size_t max_body) {
  CURL* curl = static_cast<CURL*>(TakeHandle());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  // Options go back to defaults; the handle's open connections stay.
  curl_easy_reset(curl);

  Transfer t;
  t.curl = curl;
  t.sink = &sink;
  t.max_body = max_body;
  t.cancel = &req.cancel;

  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS,
                   static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "imaged/1");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, Millis(req.connect_timeout));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, Millis(req.total_timeout));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(req.low_speed_bytes));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(req.low_speed_time))));
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  // Registries send blobs compressed already; never ask for more encoding.
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, nullptr);

  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.c_str());
  } else if (req.method != "GET") {
    GiveBack(curl);
    return absl::InvalidArgumentError(absl::StrCat("unsupported HTTP method ", req.method));
  }
  std::string range;
  if (req.range_start >= 0) {
    range = absl::StrCat(req.range_start, "-");
    curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  }

  if (req.tls.skip_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  // curl takes one CA file; with several, the first is used and the rest are
  // named in the error if verification fails. hosts.toml rarely lists more.
  if (!req.tls.ca_files.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, req.tls.ca_files.front().c_str());
  }
  if (!req.tls.client_cert.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT, req.tls.client_cert.c_str());
    if (!req.tls.client_key.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLKEY, req.tls.client_key.c_str());
    }
  }

  struct curl_slist* headers = nullptr;
  for (const auto& [k, v] : req.headers) {
    headers = curl_slist_append(headers, absl::StrCat(k, ": ", v).c_str());
  }
  if (headers != nullptr) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  // The handle must not keep pointers into this call's state.
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);

  if (!t.status_known) {
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    t.response.status = static_cast<int>(code);
  }
  GiveBack(curl);

  if (!t.failure.ok()) return t.failure;
  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT) {
      return absl::InvalidArgumentError(detail);
    }
    return absl::UnavailableError(detail);
  }
  return std::move(t.response);
}

}  // namespace imaged::cri
