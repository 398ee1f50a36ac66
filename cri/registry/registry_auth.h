// Registry authentication as containerd's resolver does it: a request goes
// out anonymously (or with a token already earned for its scope); a 401 names
// what the registry wants in WWW-Authenticate, and the Authorizer answers it:
//   Basic  -> the username and password;
//   Bearer -> a token from the challenge's realm for (service, scope):
//             GET with Basic credentials (or none: anonymous pull tokens), or
//             POST grant_type=refresh_token for an identity token;
// and a registry token supplied by the caller is sent as the Bearer token
// from the start.
//
// Secrets never leave this file except in Authorization headers: no message,
// log line or status built here contains one.
#ifndef IMAGED_CRI_REGISTRY_REGISTRY_AUTH_H_
#define IMAGED_CRI_REGISTRY_REGISTRY_AUTH_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cri/registry/http_client.h"

namespace imaged::cri {

// What CRI's AuthConfig carries, decoded.
struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // an OAuth2 refresh token
  std::string registry_token;  // a bearer token, used as is
  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty() &&
           registry_token.empty();
  }
};

// CRI AuthConfig fields -> Credentials, as containerd's CRI reads them:
// username (and password) first, then identity_token, then `auth`
// (base64 "user:password"); registry_token is kept alongside. InvalidArgument
// for an `auth` that is not base64 of "user:password" (the message does not
// repeat it).
absl::StatusOr<Credentials> CredentialsFromAuthConfig(absl::string_view username,
                                                      absl::string_view password,
                                                      absl::string_view auth,
                                                      absl::string_view identity_token,
                                                      absl::string_view registry_token);

// One challenge of a WWW-Authenticate header.
struct Challenge {
  std::string scheme;                         // lower-case: "basic", "bearer"
  std::map<std::string, std::string> params;  // keys lower-case
};

// Parses a WWW-Authenticate header value (RFC 7235: comma-separated
// challenges, each a scheme and auth-params with token or quoted-string
// values). Unparseable trailing parts are dropped, as Docker's parser does.
std::vector<Challenge> ParseChallenges(absl::string_view header);

// Authorization for the requests of one pull (one repository, one set of
// credentials). Thread-safe: parallel layer downloads share it.
class Authorizer {
 public:
  Authorizer(HttpTransport* http, Credentials creds, HttpTls token_tls = {})
      : http_(http), creds_(std::move(creds)), token_tls_(std::move(token_tls)) {}

  // The Authorization header value for a request to `host` needing `scope`
  // ("repository:library/busybox:pull"), or "" to go anonymous.
  std::string HeaderFor(absl::string_view host, absl::string_view scope);

  // Handles a 401 from `host`: works out from its WWW-Authenticate header
  // what to send next time. Ok when retrying may now succeed (callers retry
  // a request once: a second 401 means the credentials do not grant it);
  // Unauthenticated when there is nothing to try (no credentials for Basic,
  // the same Basic credentials refused before, an unsupported scheme, a
  // registry token refused) or the token server refused; Unavailable when
  // the token server could not be reached or answered nonsense.
  absl::Status OnUnauthorized(absl::string_view host, absl::string_view scope,
                              const HttpResponse& response, const CancelCheck& cancel);

 private:
  struct HostAuth {
    std::string basic;                              // "Basic ..." once challenged
    absl::flat_hash_map<std::string, std::string> tokens;  // scope -> "Bearer ..."
  };
  absl::StatusOr<std::string> FetchToken(const Challenge& c, absl::string_view scope,
                                         const CancelCheck& cancel);

  HttpTransport* const http_;
  const Credentials creds_;
  const HttpTls token_tls_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, HostAuth> hosts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace imaged::cri

#endif  // IMAGED_CRI_REGISTRY_REGISTRY_AUTH_H_
