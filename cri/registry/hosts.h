// Which registry endpoints to contact for an image's registry host, read from
// containerd's registry hosts configuration: a directory holding one
// `<host>/hosts.toml` per registry (containerd's `config_path`, imaged's
// `--registry-config-path` / `registry.config_path`), so that mirrors, private
// CAs, client certificates and plain-HTTP registries are configured the way
// containerd users already do. The semantics are containerd 1.6.20's
// (remotes/docker/config/hosts.go, as used by its CRI plugin), the version
// Debian 12 ships and imaged's end-to-end tests run against.
//
// Finding the host directory, for a registry host H under each root R of the
// config path in turn (the first root with a match wins):
//   R/<H with ":port" written as "_port_">  (only when H has a port)
//   R/H
//   R/_default
// The first of these that exists is the host directory. With none, or no
// config path, H gets the default endpoint (below).
//
// Reading a host directory: if `hosts.toml` is missing or empty, Docker's
// certs.d layout is read instead: every `*.crt` is a CA file, every `*.cert`
// a client certificate with `<name>.key` as its key when that exists; they
// apply to the default endpoint. Otherwise hosts.toml gives, in order:
//   - one endpoint per `[host."<url>"]` table, in the order the tables appear
//     in the file (not sorted), then
//   - the server: `server = "<url>"` with the file's top-level fields.
// A `<url>` without a scheme is https. Its path gets "/v2" appended unless
// it already ends in "/v2" or `override_path = true`; with override_path the
// path is used as the API root as it is ("" = the root). Fields, both
// top-level (for the server) and in each host table:
//   capabilities  array of "pull", "resolve", "push" (any case); missing or
//                 [] means all three; anything else is an error
//   skip_verify   bool
//   ca            path or array of paths
//   client        path (certificate and key in one file), array of paths, or
//                 array of [cert, key] pairs ("" key: the key is in the cert)
//   [header]      name = "value" or ["value", ...]
//   override_path bool
// Relative paths are relative to the hosts.toml's directory. Unknown keys are
// ignored, as containerd ignores them (so a typo silently does nothing).
//
// The default endpoint fills the last entry (the server) when it has no host:
// no server key, Docker certs.d only, or no directory at all. It is
// https://H/v2 with all capabilities, except that
//   - "docker.io" is https://registry-1.docker.io/v2;
//   - a loopback host (IsLocalhost: "localhost", 127.0.0.0/8, ::1, with or
//     without a port) is plain http://H/v2, with skip_verify set. containerd
//     1.6.20 never tries https for it and has no https-to-http fallback, so a
//     plain-HTTP registry on 127.0.0.1:5000 needs no configuration (and a TLS
//     one on loopback needs a hosts.toml with `server = "https://..."`).
// Filling in the default also resets that entry's capabilities to all three
// and its path to "/v2" (a top-level `capabilities` or `override_path` in a
// file without `server` has no effect), keeping its ca, client and headers.
//
// Deliberate differences from containerd 1.6.20, each where containerd would
// silently do something other than what the file says:
//   - a hosts.toml that does not parse, or has a field of the wrong type, an
//     unknown capability, a malformed URL or a scheme other than http/https,
//     is an InvalidArgument error naming the file, line and key; containerd
//     logs the error and ignores the file (falling back to certs.d files);
//   - a hosts.toml with `server` but no `[host]` table is used; containerd
//     1.6 rejects it ("invalid `host` tree") and ignores the file (fixed in
//     containerd 1.7.32 and 2.x);
//   - a client pair's "" key means "the key is in the certificate file", as
//     containerd documents; containerd 1.6 turns it into the directory path.
//   - an empty config path element is skipped; relative config paths are made
//     absolute, so every file path returned is absolute.
//   - with no configuration at all, containerd's CRI plugin (no config_path:
//     its deprecated registry.mirrors path) gives only pull and resolve; here
//     the default endpoint also has push, as with any config_path set. imaged
//     never pushes, so this only shows in HostsFor's result.
#ifndef IMAGED_CRI_REGISTRY_HOSTS_H_
#define IMAGED_CRI_REGISTRY_HOSTS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace imaged::cri {

// One registry endpoint, in the order it is to be tried.
struct RegistryHost {
  std::string scheme;  // "https" or "http"
  std::string host;    // "registry-1.docker.io", "127.0.0.1:5000"
  // The API root: "/v2", "/us/v2", an override path such as "/v2/prefix",
  // or "" for the server's root. Cleaned: never ends in "/".
  std::string path;
  // What the endpoint may be used for: resolve (tag -> digest, fetching a
  // manifest by tag), pull (fetching by digest), push.
  bool pull = true;
  bool resolve = true;
  bool push = true;
  bool skip_verify = false;
  std::vector<std::string> ca_files;  // trusted in addition to the system's
  // (certificate, key) file paths; key "" when the key is in the certificate
  // file.
  std::vector<std::pair<std::string, std::string>> client_certs;
  // Extra request headers, (name, value), one pair per value; names as
  // written in the file, ordered by name.
  std::vector<std::pair<std::string, std::string>> headers;

  // scheme://host + path: "https://registry-1.docker.io/v2". Append
  // "/<repository>/manifests/<ref>" and the like to it.
  std::string Url() const;
};

// The endpoints to try, in order, for registry host `host` ("docker.io",
// "127.0.0.1:5000", as Reference::domain spells it). `config_path` is a
// ':'-separated list of configuration directories ("" = none: the default
// endpoint alone). The result is never empty.
// The files are read on every call, as containerd reads them on every pull,
// so an edit applies to the next pull without a restart.
// InvalidArgument when `host` is empty or could escape the config directory
// ("/", "." or ".."), or a hosts.toml is malformed (the message names the
// file, line and key); a file or directory that cannot be read is an errno
// status naming the path.
absl::StatusOr<std::vector<RegistryHost>> HostsFor(absl::string_view config_path,
                                                   absl::string_view host);

// containerd's IsLocalhost: true for "localhost" and loopback IP addresses
// (127.0.0.0/8, ::1, ::ffff:127.x.x.x), with or without ":port" ("[::1]:5000"
// for IPv6). Hosts given this way default to plain http.
bool IsLocalhost(absl::string_view host);

}  // namespace imaged::cri

#endif  // IMAGED_CRI_REGISTRY_HOSTS_H_
