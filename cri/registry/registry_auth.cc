#include "cri/registry/registry_auth.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace imaged::cri {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos;
}

void SkipSpace(absl::string_view* s) {
  while (!s->empty() && (s->front() == ' ' || s->front() == '\t')) s->remove_prefix(1);
}

std::string ReadToken(absl::string_view* s) {
  size_t n = 0;
  while (n < s->size() && IsTokenChar((*s)[n])) ++n;
  std::string out(s->substr(0, n));
  s->remove_prefix(n);
  return out;
}

// A quoted-string after its opening quote; backslash escapes one character.
std::optional<std::string> ReadQuoted(absl::string_view* s) {
  std::string out;
  while (!s->empty()) {
    char c = s->front();
    s->remove_prefix(1);
    if (c == '"') return out;
    if (c == '\\' && !s->empty()) {
      c = s->front();
      s->remove_prefix(1);
    }
    out.push_back(c);
  }
  return std::nullopt;
}

// application/x-www-form-urlencoded / query component escaping.
std::string UrlEscape(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string BasicHeader(absl::string_view user, absl::string_view pass) {
  return absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(user, ":", pass)));
}

}  // namespace

absl::StatusOr<Credentials> CredentialsFromAuthConfig(absl::string_view username,
                                                      absl::string_view password,
                                                      absl::string_view auth,
                                                      absl::string_view identity_token,
                                                      absl::string_view registry_token) {
  Credentials c;
  c.registry_token = std::string(registry_token);
  if (!username.empty()) {
    c.username = std::string(username);
    c.password = std::string(password);
  } else if (!identity_token.empty()) {
    c.identity_token = std::string(identity_token);
  } else if (!auth.empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(auth, &decoded)) {
      return absl::InvalidArgumentError("auth config: \"auth\" is not base64");
    }
    std::pair<std::string, std::string> parts = absl::StrSplit(decoded, absl::MaxSplits(':', 1));
    if (decoded.find(':') == std::string::npos || parts.first.empty()) {
      return absl::InvalidArgumentError("auth config: \"auth\" is not base64 of user:password");
    }
    c.username = std::move(parts.first);
    c.password = std::move(parts.second);
  }
  return c;
}

std::vector<Challenge> ParseChallenges(absl::string_view header) {
  std::vector<Challenge> out;
  absl::string_view s = header;
  while (true) {
    SkipSpace(&s);
    while (!s.empty() && s.front() == ',') {
      s.remove_prefix(1);
      SkipSpace(&s);
    }
    if (s.empty()) break;
    std::string scheme = ReadToken(&s);
    if (scheme.empty()) break;
    Challenge c;
    c.scheme = absl::AsciiStrToLower(scheme);
    // auth-params: name=value pairs separated by commas, until the next
    // token that is not followed by '=' (the next challenge's scheme).
    while (true) {
      SkipSpace(&s);
      absl::string_view save = s;
      std::string name = ReadToken(&s);
      SkipSpace(&s);
      if (name.empty() || s.empty() || s.front() != '=') {
        s = save;
        break;
      }
      s.remove_prefix(1);
      SkipSpace(&s);
      std::string value;
      if (!s.empty() && s.front() == '"') {
        s.remove_prefix(1);
        std::optional<std::string> q = ReadQuoted(&s);
        if (!q) {
          s = {};
          break;
        }
        value = *std::move(q);
      } else {
        value = ReadToken(&s);
      }
      c.params[absl::AsciiStrToLower(name)] = std::move(value);
      SkipSpace(&s);
      if (!s.empty() && s.front() == ',') s.remove_prefix(1);
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::string Authorizer::HeaderFor(absl::string_view host, absl::string_view scope) {
  if (!creds_.registry_token.empty()) return absl::StrCat("Bearer ", creds_.registry_token);
  absl::MutexLock lock(&mu_);
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return "";
  if (!it->second.basic.empty()) return it->second.basic;
  auto tok = it->second.tokens.find(scope);
  return tok == it->second.tokens.end() ? "" : tok->second;
}

absl::Status Authorizer::OnUnauthorized(absl::string_view host, absl::string_view scope,
                                        const HttpResponse& response,
                                        const CancelCheck& cancel) {
  std::vector<Challenge> challenges;
  for (const std::string& h : response.Headers("www-authenticate")) {
    for (Challenge& c : ParseChallenges(h)) challenges.push_back(std::move(c));
  }
  const Challenge* bearer = nullptr;
  const Challenge* basic = nullptr;
  for (const Challenge& c : challenges) {
    if (c.scheme == "bearer" && bearer == nullptr) bearer = &c;
    if (c.scheme == "basic" && basic == nullptr) basic = &c;
  }
  if (!creds_.registry_token.empty()) {
    return absl::UnauthenticatedError("the registry refused the registry token");
  }

  std::optional<Challenge> to_answer;
  {
    absl::MutexLock lock(&mu_);
    HostAuth& ha = hosts_[std::string(host)];
    if (bearer != nullptr) {
      to_answer = *bearer;
    } else if (basic != nullptr) {
      if (creds_.username.empty()) return absl::UnauthenticatedError("authorization required");
      std::string header = BasicHeader(creds_.username, creds_.password);
      if (ha.basic == header) return absl::UnauthenticatedError("the credentials were refused");
      ha.basic = std::move(header);
      return absl::OkStatus();
    } else {
      return absl::UnauthenticatedError(
          challenges.empty() ? "authorization required (no WWW-Authenticate challenge)"
                             : absl::StrCat("unsupported authentication scheme \"",
                                            challenges.front().scheme, "\""));
    }
  }
  // The token is fetched without holding the lock: parallel downloads
  // needing another scope are not held up; two fetching the same scope at
  // once is harmless.
  absl::StatusOr<std::string> token = FetchToken(*to_answer, scope, cancel);
  if (!token.ok()) return token.status();
  absl::MutexLock lock(&mu_);
  hosts_[std::string(host)].tokens[std::string(scope)] = absl::StrCat("Bearer ", *token);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Authorizer::FetchToken(const Challenge& c, absl::string_view scope,
                                                   const CancelCheck& cancel) {
  auto realm = c.params.find("realm");
  if (realm == c.params.end() || realm->second.empty()) {
    return absl::UnauthenticatedError("the registry's Bearer challenge has no realm");
  }
  if (!absl::StartsWith(realm->second, "https://") && !absl::StartsWith(realm->second, "http://")) {
    return absl::UnauthenticatedError(
        absl::StrCat("the registry's token realm \"", realm->second, "\" is not an http(s) URL"));
  }
  auto service = c.params.find("service");
  std::string service_value = service == c.params.end() ? "" : service->second;
  // The challenge's own scope (if any) is asked for along with ours.
  std::vector<std::string> scopes = {std::string(scope)};
  if (auto s = c.params.find("scope"); s != c.params.end() && s->second != scope) {
    scopes.push_back(s->second);
  }

  HttpRequest req;
  req.url = realm->second;
  req.tls = token_tls_;
  req.total_timeout = absl::Seconds(60);
  req.cancel = cancel;
  if (!creds_.identity_token.empty()) {
    // OAuth2 refresh-token grant (Docker's identity tokens).
    req.method = "POST";
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.body = absl::StrCat("grant_type=refresh_token&refresh_token=",
                            UrlEscape(creds_.identity_token), "&client_id=imaged&service=",
                            UrlEscape(service_value), "&scope=",
                            UrlEscape(absl::StrJoin(scopes, " ")));
  } else {
    std::string query;
    if (!service_value.empty()) absl::StrAppend(&query, "service=", UrlEscape(service_value));
    for (const std::string& s : scopes) {
      absl::StrAppend(&query, query.empty() ? "" : "&", "scope=", UrlEscape(s));
    }
    if (!query.empty()) {
      absl::StrAppend(&req.url, req.url.find('?') == std::string::npos ? "?" : "&", query);
    }
    if (!creds_.username.empty()) {
      req.headers.emplace_back("Authorization", BasicHeader(creds_.username, creds_.password));
    }
  }
  absl::StatusOr<HttpResponse> resp = http_->Do(req, nullptr, 1 << 20);
  std::string where = absl::StrCat("token server ", realm->second);
  if (!resp.ok()) {
    return absl::Status(resp.status().code(), absl::StrCat(where, ": ", resp.status().message()));
  }
  if (resp->status == 401 || resp->status == 403) {
    return absl::UnauthenticatedError(
        absl::StrCat(where, " refused the credentials (HTTP ", resp->status, ")"));
  }
  if (resp->status != 200) {
    return absl::UnavailableError(absl::StrCat(where, " answered HTTP ", resp->status));
  }
  nlohmann::json j = nlohmann::json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::UnavailableError(absl::StrCat(where, " sent no JSON object"));
  for (const char* key : {"token", "access_token"}) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
      return it->get<std::string>();
    }
  }
  return absl::UnavailableError(absl::StrCat(where, " sent no token"));
}

}  // namespace imaged::cri
