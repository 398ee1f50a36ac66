#include "cri/registry/hosts.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <toml++/toml.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "store/errors.h"

namespace imaged::cri {
namespace {

constexpr absl::string_view kHostsFile = "hosts.toml";
constexpr absl::string_view kDefaultDir = "_default";

// Go's path.Clean: the shortest equivalent path, lexically.
std::string CleanPath(absl::string_view p) {
  if (p.empty()) return ".";
  const bool rooted = p[0] == '/';
  std::vector<absl::string_view> out;
  for (absl::string_view seg : absl::StrSplit(p, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!rooted) {
        out.push_back(seg);
      }
      continue;
    }
    out.push_back(seg);
  }
  std::string joined = absl::StrJoin(out, "/");
  if (rooted) return absl::StrCat("/", joined);
  return joined.empty() ? "." : joined;
}

// containerd's makeAbsPath: absolute paths as they are, others joined to the
// hosts.toml's directory (and cleaned, as filepath.Join does).
std::string MakeAbsPath(absl::string_view p, absl::string_view base) {
  if (absl::StartsWith(p, "/")) return std::string(p);
  return CleanPath(absl::StrCat(base, "/", p));
}

// Go's net.SplitHostPort, host part only; nullopt where Go reports an error
// (no port, too many colons), and then containerd uses the whole string.
std::optional<absl::string_view> HostOfHostPort(absl::string_view s) {
  if (absl::StartsWith(s, "[")) {
    size_t end = s.find(']');
    if (end == absl::string_view::npos || end + 1 >= s.size() || s[end + 1] != ':') {
      return std::nullopt;
    }
    return s.substr(1, end - 1);
  }
  size_t colon = s.rfind(':');
  if (colon == absl::string_view::npos) return std::nullopt;
  if (s.substr(0, colon).find(':') != absl::string_view::npos) return std::nullopt;
  return s.substr(0, colon);
}

// containerd's hostDirectory: "host:port" is looked up as "host_port_" first.
std::string PortDirectory(absl::string_view host) {
  size_t idx = host.rfind(':');
  if (idx == absl::string_view::npos || idx == 0) return std::string(host);
  return absl::StrCat(host.substr(0, idx), "_", host.substr(idx + 1), "_");
}

// stat(2): true when `path` exists, false when it does not (ENOENT only, as
// Go's os.IsNotExist), an errno status otherwise.
absl::StatusOr<bool> Exists(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return store::ErrnoError(errno, absl::StrCat("stat ", path));
}

// Reads a whole file; `*missing` is set (and "" returned) when it does not
// exist.
absl::StatusOr<std::string> ReadFile(const std::string& path, bool* missing) {
  *missing = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      *missing = true;
      return std::string();
    }
    return store::ErrnoError(errno, absl::StrCat("open ", path));
  }
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return store::ErrnoError(err, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// The first of containerd's candidate directories for `host` that exists
// under `root`, or "" for none.
absl::StatusOr<std::string> HostDirIn(absl::string_view root, absl::string_view host) {
  std::vector<std::string> candidates;
  std::string port_dir = PortDirectory(host);
  if (port_dir != host) candidates.push_back(CleanPath(absl::StrCat(root, "/", port_dir)));
  candidates.push_back(CleanPath(absl::StrCat(root, "/", host)));
  candidates.push_back(CleanPath(absl::StrCat(root, "/", kDefaultDir)));
  for (const std::string& dir : candidates) {
    absl::StatusOr<bool> exists = Exists(dir);
    if (!exists.ok()) return exists.status();
    if (*exists) return dir;
  }
  return std::string();
}

// Docker's certs.d layout, for a host directory without a hosts.toml: one
// entry without a host (the default endpoint fills it in).
absl::StatusOr<std::vector<RegistryHost>> LoadCertFiles(const std::string& dir) {
  std::vector<RegistryHost> hosts(1);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return hosts;
    return store::ErrnoError(errno, absl::StrCat("opendir ", dir));
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());  // os.ReadDir's order
  RegistryHost& h = hosts[0];
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    struct stat st;
    // Go's DirEntry.IsDir: the entry itself, not a symlink's target.
    if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    if (absl::EndsWith(name, ".crt")) h.ca_files.push_back(path);
    if (absl::EndsWith(name, ".cert")) {
      std::string key = absl::StrCat(dir, "/", name.substr(0, name.size() - 5), ".key");
      absl::StatusOr<bool> has_key = Exists(key);
      if (!has_key.ok()) return has_key.status();
      h.client_certs.emplace_back(path, *has_key ? key : "");
    }
  }
  return hosts;
}

// --- hosts.toml ------------------------------------------------------------

// Where an error is: the file and the key path within it.
struct Where {
  const std::string& file;
  const std::string& dir;  // relative paths are relative to this
};

absl::Status Bad(const Where& w, const toml::node& at, absl::string_view key,
                 absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(w.file, ":", at.source().begin.line, ": ", key, ": ", why));
}

const char* TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date or time";
  }
}

absl::Status WrongType(const Where& w, const toml::node& at, absl::string_view key,
                       absl::string_view want) {
  return Bad(w, at, key, absl::StrCat("must be ", want, ", not ", TypeName(at)));
}

// A path field's value: a non-empty string, made absolute.
absl::StatusOr<std::string> PathValue(const Where& w, const toml::node& n, absl::string_view key,
                                      bool allow_empty = false) {
  const toml::value<std::string>* s = n.as_string();
  if (s == nullptr) return WrongType(w, n, key, "a path string");
  if (s->get().empty()) {
    if (allow_empty) return std::string();
    return Bad(w, n, key, "empty path");
  }
  return MakeAbsPath(s->get(), w.dir);
}

struct UrlParts {
  std::string scheme;
  std::string host;
  std::string path;  // percent-decoded, as Go's url.URL.Path
};

bool IsSchemeChar(char c, bool first) {
  if (absl::ascii_isalpha(c)) return true;
  return !first && (absl::ascii_isdigit(c) || c == '+' || c == '-' || c == '.');
}

// What containerd takes from Go's url.Parse: scheme (lowercased), host (with
// port, userinfo dropped) and the decoded path; query and fragment are
// ignored. The error says why, for the caller to place.
absl::StatusOr<UrlParts> ParseUrl(absl::string_view raw) {
  for (char c : raw) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("invalid control character in URL");
    }
  }
  absl::string_view s = raw;
  s = s.substr(0, s.find('#'));
  s = s.substr(0, s.find('?'));
  UrlParts u;
  size_t i = 0;
  while (i < s.size() && IsSchemeChar(s[i], i == 0)) ++i;
  if (i < s.size() && s[i] == ':') {
    if (i == 0) return absl::InvalidArgumentError("missing protocol scheme");
    u.scheme = absl::AsciiStrToLower(s.substr(0, i));
    s.remove_prefix(i + 1);
  }
  if (u.scheme != "http" && u.scheme != "https") {
    return absl::InvalidArgumentError("scheme must be http or https");
  }
  if (!absl::ConsumePrefix(&s, "//")) return absl::InvalidArgumentError("no host");
  size_t slash = s.find('/');
  absl::string_view authority = s.substr(0, slash);
  absl::string_view path = slash == absl::string_view::npos ? "" : s.substr(slash);
  size_t at = authority.rfind('@');
  if (at != absl::string_view::npos) authority.remove_prefix(at + 1);
  if (authority.empty()) return absl::InvalidArgumentError("no host");
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {
    size_t end = authority.find(']');
    if (end == absl::string_view::npos) return absl::InvalidArgumentError("missing ']' in host");
    port = authority.substr(end + 1);
  } else if (size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    port = authority.substr(colon);
  }
  if (!port.empty() &&
      (port[0] != ':' || !std::all_of(port.begin() + 1, port.end(), absl::ascii_isdigit))) {
    return absl::InvalidArgumentError(absl::StrCat("invalid port \"", port, "\" after host"));
  }
  for (char c : authority) {
    if (!absl::ascii_isalnum(c) && !absl::StrContains("-_.~!$&'()*+,;=:[]<>\"", c)) {
      return absl::InvalidArgumentError("invalid character in host name");
    }
  }
  u.host = std::string(authority);
  for (size_t k = 0; k < path.size(); ++k) {
    if (path[k] != '%') {
      u.path.push_back(path[k]);
      continue;
    }
    if (k + 2 >= path.size() || !absl::ascii_isxdigit(path[k + 1]) ||
        !absl::ascii_isxdigit(path[k + 2])) {
      return absl::InvalidArgumentError("invalid URL escape");
    }
    auto hex = [](char c) { return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10; };
    u.path.push_back(static_cast<char>(hex(path[k + 1]) * 16 + hex(path[k + 2])));
    k += 2;
  }
  return u;
}

// containerd's parseHostConfig for the URL: a missing scheme is https; "/v2"
// is appended to the path unless it ends in "/v2" or override_path is set.
// containerd keeps Clean("/") + "/v2" = "//v2", which its request builder
// cleans again; the path here is the cleaned one.
absl::Status SetEndpoint(const Where& w, const toml::node& at, absl::string_view key,
                         absl::string_view url, bool override_path, RegistryHost* h) {
  if (!absl::StartsWith(url, "http") && absl::StrContains(url, "://")) {
    // containerd would read "ftp://h" as the host "ftp:" over https.
    return Bad(w, at, key, absl::StrCat("\"", url, "\": scheme must be http or https"));
  }
  std::string full = absl::StartsWith(url, "http") ? std::string(url) : absl::StrCat("https://", url);
  absl::StatusOr<UrlParts> u = ParseUrl(full);
  if (!u.ok()) return Bad(w, at, key, absl::StrCat("\"", url, "\": ", u.status().message()));
  std::string path = u->path.empty() ? "" : CleanPath(u->path);
  if (path == "/") path.clear();
  if (!override_path && !absl::EndsWith(path, "/v2")) path += "/v2";
  h->scheme = u->scheme;
  h->host = u->host;
  h->path = path;
  return absl::OkStatus();
}

// The fields shared by the top level (the server) and each [host."..."]
// table. Keys other than these are ignored, as containerd's decoder does.
// `prefix` is "" at the top level and `host."<url>".` in a host table.
absl::Status ParseFields(const Where& w, const toml::table& t, const std::string& prefix,
                         RegistryHost* h, bool* override_path) {
  *override_path = false;
  for (const auto& [k, node] : t) {
    const std::string name(k.str());
    const std::string key = absl::StrCat(prefix, name);
    if (name == "capabilities") {
      const toml::array* arr = node.as_array();
      if (arr == nullptr) return WrongType(w, node, key, "an array of strings");
      if (arr->empty()) continue;  // containerd: none listed means all
      h->pull = h->resolve = h->push = false;
      for (const toml::node& c : *arr) {
        const toml::value<std::string>* s = c.as_string();
        if (s == nullptr) return WrongType(w, c, key, "an array of strings");
        std::string cap = absl::AsciiStrToLower(s->get());
        if (cap == "pull") {
          h->pull = true;
        } else if (cap == "resolve") {
          h->resolve = true;
        } else if (cap == "push") {
          h->push = true;
        } else {
          return Bad(w, c, key, absl::StrCat("unknown capability \"", s->get(), "\""));
        }
      }
    } else if (name == "skip_verify" || name == "override_path") {
      const toml::value<bool>* b = node.as_boolean();
      if (b == nullptr) return WrongType(w, node, key, "a boolean");
      (name == "skip_verify" ? h->skip_verify : *override_path) = b->get();
    } else if (name == "ca") {
      if (node.is_string()) {
        absl::StatusOr<std::string> p = PathValue(w, node, key);
        if (!p.ok()) return p.status();
        h->ca_files.push_back(*std::move(p));
      } else if (const toml::array* arr = node.as_array()) {
        for (const toml::node& e : *arr) {
          absl::StatusOr<std::string> p = PathValue(w, e, key);
          if (!p.ok()) return p.status();
          h->ca_files.push_back(*std::move(p));
        }
      } else {
        return WrongType(w, node, key, "a path or an array of paths");
      }
    } else if (name == "client") {
      if (node.is_string()) {
        absl::StatusOr<std::string> p = PathValue(w, node, key);
        if (!p.ok()) return p.status();
        h->client_certs.emplace_back(*std::move(p), "");
      } else if (const toml::array* arr = node.as_array()) {
        for (const toml::node& e : *arr) {
          if (e.is_string()) {
            absl::StatusOr<std::string> p = PathValue(w, e, key);
            if (!p.ok()) return p.status();
            h->client_certs.emplace_back(*std::move(p), "");
            continue;
          }
          const toml::array* pair = e.as_array();
          if (pair == nullptr) return WrongType(w, e, key, "a path or a [cert, key] pair");
          if (pair->size() != 2) {
            return Bad(w, e, key, absl::StrCat("a [cert, key] pair has 2 paths, not ", pair->size()));
          }
          absl::StatusOr<std::string> cert = PathValue(w, (*pair)[0], key);
          if (!cert.ok()) return cert.status();
          absl::StatusOr<std::string> pem_key = PathValue(w, (*pair)[1], key, /*allow_empty=*/true);
          if (!pem_key.ok()) return pem_key.status();
          h->client_certs.emplace_back(*std::move(cert), *std::move(pem_key));
        }
      } else {
        return WrongType(w, node, key, "a path or an array of paths or [cert, key] pairs");
      }
    } else if (name == "header") {
      const toml::table* headers = node.as_table();
      if (headers == nullptr) return WrongType(w, node, key, "a table");
      for (const auto& [hk, hv] : *headers) {
        const std::string hkey = absl::StrCat(key, ".", std::string(hk.str()));
        if (const toml::value<std::string>* s = hv.as_string()) {
          h->headers.emplace_back(std::string(hk.str()), s->get());
        } else if (const toml::array* arr = hv.as_array()) {
          for (const toml::node& e : *arr) {
            const toml::value<std::string>* v = e.as_string();
            if (v == nullptr) return WrongType(w, e, hkey, "a string or an array of strings");
            h->headers.emplace_back(std::string(hk.str()), v->get());
          }
        } else {
          return WrongType(w, hv, hkey, "a string or an array of strings");
        }
      }
    }
  }
  return absl::OkStatus();
}

// containerd's parseHostsFile: the [host."<url>"] entries in file order,
// then the server (which has no host when `server` is missing or "").
absl::StatusOr<std::vector<RegistryHost>> ParseHostsFile(const Where& w, const std::string& text) {
  toml::table root;
  // Debian builds toml++ with exceptions: its parse error stops here.
  try {
    root = toml::parse(text, w.file);
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(absl::StrCat(w.file, ":", err.source().begin.line, ":",
                                                   err.source().begin.column, ": ",
                                                   std::string(err.description())));
  }

  std::vector<RegistryHost> hosts;
  if (const toml::node* host_node = root.get("host")) {
    const toml::table* host_table = host_node->as_table();
    if (host_table == nullptr) return WrongType(w, *host_node, "host", "a table");
    // toml++ keeps keys sorted; containerd keeps the order of the file.
    struct Entry {
      toml::source_position pos;
      std::string url;
      const toml::table* table;
    };
    std::vector<Entry> entries;
    for (const auto& [k, node] : *host_table) {
      const std::string key = absl::StrCat("host.\"", std::string(k.str()), "\"");
      const toml::table* t = node.as_table();
      if (t == nullptr) return WrongType(w, node, key, "a table");
      entries.push_back({t->source().begin, std::string(k.str()), t});
    }
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.pos.line, a.pos.column) < std::tie(b.pos.line, b.pos.column);
    });
    for (const Entry& e : entries) {
      const std::string prefix = absl::StrCat("host.\"", e.url, "\".");
      RegistryHost h;
      bool override_path = false;
      if (absl::Status s = ParseFields(w, *e.table, prefix, &h, &override_path); !s.ok()) return s;
      absl::Status s = SetEndpoint(w, *e.table, absl::StrCat("host.\"", e.url, "\""), e.url,
                                   override_path, &h);
      if (!s.ok()) return s;
      hosts.push_back(std::move(h));
    }
  }

  RegistryHost server;
  bool override_path = false;
  if (absl::Status s = ParseFields(w, root, "", &server, &override_path); !s.ok()) return s;
  if (const toml::node* n = root.get("server")) {
    const toml::value<std::string>* url = n->as_string();
    if (url == nullptr) return WrongType(w, *n, "server", "a URL string");
    if (!url->get().empty()) {
      absl::Status s = SetEndpoint(w, *n, "server", url->get(), override_path, &server);
      if (!s.ok()) return s;
    }
  }
  hosts.push_back(std::move(server));
  return hosts;
}

// containerd's loadHostDir: hosts.toml, or the certs.d files when it is
// missing or empty.
absl::StatusOr<std::vector<RegistryHost>> LoadHostDir(const std::string& dir) {
  const std::string file = absl::StrCat(dir, "/", kHostsFile);
  bool missing = false;
  absl::StatusOr<std::string> text = ReadFile(file, &missing);
  if (!text.ok()) return text.status();
  if (text->empty()) return LoadCertFiles(dir);
  return ParseHostsFile(Where{file, dir}, *text);
}

// The endpoint a registry host gets when nothing configures its server.
void FillDefault(absl::string_view host, RegistryHost* h) {
  if (host == "docker.io") {
    h->scheme = "https";
    h->host = "registry-1.docker.io";
  } else if (IsLocalhost(host)) {
    h->scheme = "http";
    h->host = std::string(host);
    h->skip_verify = true;
  } else {
    h->scheme = "https";
    h->host = std::string(host);
  }
  h->path = "/v2";
  h->pull = h->resolve = h->push = true;
}

}  // namespace

std::string RegistryHost::Url() const { return absl::StrCat(scheme, "://", host, path); }

bool IsLocalhost(absl::string_view host) {
  absl::string_view h = HostOfHostPort(host).value_or(host);
  if (h == "localhost") return true;
  const std::string s(h);
  in_addr a4;
  if (::inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    return (ntohl(a4.s_addr) >> 24) == 127;
  }
  in6_addr a6;
  if (::inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  return false;
}

absl::StatusOr<std::vector<RegistryHost>> HostsFor(absl::string_view config_path,
                                                   absl::string_view host) {
  if (host.empty() || host == "." || host == ".." || absl::StrContains(host, '/') ||
      absl::StrContains(host, '\0')) {
    return absl::InvalidArgumentError(absl::StrCat("registry host \"", host, "\": not a host name"));
  }
  std::string dir;
  for (absl::string_view root : absl::StrSplit(config_path, ':', absl::SkipEmpty())) {
    std::string abs_root(root);
    if (!absl::StartsWith(root, "/")) {
      char cwd[4096];
      if (::getcwd(cwd, sizeof(cwd)) == nullptr) return store::ErrnoError(errno, "getcwd");
      abs_root = CleanPath(absl::StrCat(cwd, "/", root));
    }
    absl::StatusOr<std::string> found = HostDirIn(abs_root, host);
    if (!found.ok()) return found.status();
    if (!found->empty()) {
      dir = *std::move(found);
      break;
    }
  }

  std::vector<RegistryHost> hosts;
  if (!dir.empty()) {
    absl::StatusOr<std::vector<RegistryHost>> loaded = LoadHostDir(dir);
    if (!loaded.ok()) return loaded.status();
    hosts = *std::move(loaded);
  }
  if (hosts.empty()) hosts.resize(1);
  if (hosts.back().host.empty()) FillDefault(host, &hosts.back());
  return hosts;
}

}  // namespace imaged::cri
