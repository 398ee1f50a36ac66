# A registry fixture for imaged's pull tests: Debian's docker-registry
# (distribution 2.8.2) on 127.0.0.1 with optional htpasswd or token auth and
# TLS, and images built with umoci and pushed with skopeo.
# Source it (the sh_library //tools/testing:registry_lib) after e2e_lib.sh and
# e2e_init, from a script that runs under `set -euo pipefail`:
#
#   source "$lib_dir/e2e_lib.sh"
#   source "$lib_dir/registry_lib.sh"
#   e2e_init
#   start_registry hub --token alice s3cret --tls
#   build_image "$E2E_TMP/app" v1 2 $((1 << 20))
#   push_image "$E2E_TMP/app:v1" "$REGISTRY_HUB_ADDR/library/app:v1" --creds alice:s3cret
#   ... pull "$REGISTRY_HUB_ADDR/library/app:v1" with imaged, expect $PUSHED_DIGEST ...
#
# Every process is registered with e2e_track, so e2e_lib's EXIT trap stops it.
#
# Per registry NAME (letters, digits, '_'; upper-cased in variable names) the
# following shell globals are set. They are deliberately NOT exported:
# docker-registry reads every REGISTRY_* environment variable as a
# configuration override (REGISTRY_HTTP_ADDR, REGISTRY_AUTH_...), so the
# registry is also started with every REGISTRY_* variable removed from its
# environment.
#
#   REGISTRY_<NAME>_ADDR     127.0.0.1:<port>           (what image references use)
#   REGISTRY_<NAME>_URL      http(s)://127.0.0.1:<port>
#   REGISTRY_<NAME>_SCHEME   http | https
#   REGISTRY_<NAME>_ROOT     storage dir (docker/registry/v2/... below it)
#   REGISTRY_<NAME>_DIR      everything of this registry: config, logs, certs
#   REGISTRY_<NAME>_PID      docker-registry's PID ("" while stopped)
#   REGISTRY_<NAME>_LOG      docker-registry's log (appended across restarts)
#   REGISTRY_<NAME>_CONFIG   its config.yml
#   REGISTRY_<NAME>_AUTH     none | htpasswd | token
#   REGISTRY_<NAME>_USER, REGISTRY_<NAME>_PASS    the one valid user (auth only)
#   REGISTRY_<NAME>_CA       CA certificate (PEM) that signed the server cert (--tls only)
# and with --token:
#   REGISTRY_<NAME>_REALM    token endpoint URL (same scheme and CA as the registry)
#   REGISTRY_<NAME>_SERVICE  the service name the registry's challenge carries
#   REGISTRY_<NAME>_ISSUER   the tokens' "iss"
#   REGISTRY_<NAME>_REFRESH_TOKEN  a refresh token valid for USER from the start
#                            (what CRI's AuthConfig.identity_token carries)
#   REGISTRY_<NAME>_TOKEN_LOG      one line per token request (see token_server.py)
#   REGISTRY_<NAME>_TOKEN_PID      the token server's PID ("" once stopped)
#
# docker-registry 2.8.2 facts the pull tests lean on (registry_fixture_test
# checks each):
# - GET/HEAD of an OCI manifest or index answers 404 MANIFEST_UNKNOWN unless
#   Accept lists its media type. By tag, a Docker manifest list without the
#   list type in Accept comes back as its linux/amd64 manifest, and a Docker
#   schema 2 manifest without the schema 2 type as a rewritten schema 1
#   (another digest). So send REGISTRY_ACCEPT.
# - HEAD of a manifest returns Docker-Content-Digest, Content-Type and
#   Content-Length; blob GET honours Range (206, Content-Range) and sends
#   Docker-Content-Digest.
# - Blobs are served from the files as they are: tamper_blob's bytes go out
#   under the original digest.
# - Upload sessions (blobs/uploads/<uuid>?_state=...) are HMAC-signed with
#   http.secret; the config fixes it, so one outlives restart_registry.

REGISTRY_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REGISTRY_PYTHON=/usr/bin/python3  # Debian's; a pyenv python may shadow it on PATH

MT_OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
MT_OCI_INDEX=application/vnd.oci.image.index.v1+json
MT_DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
MT_DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json
# An Accept header with every manifest type a pull client should send.
REGISTRY_ACCEPT="$MT_OCI_INDEX, $MT_DOCKER_LIST, $MT_OCI_MANIFEST, $MT_DOCKER_MANIFEST"

# ---------------------------------------------------------------------------
# Internal: per-registry variables

_registry_key() {
  [[ $1 =~ ^[A-Za-z][A-Za-z0-9_]*$ ]] || fail "registry name '$1': use letters, digits and '_'"
  printf '%s' "${1^^}"
}

_registry_set() {  # KEY FIELD VALUE
  declare -g "REGISTRY_$1_$2=$3"
}

_registry_get() {  # KEY FIELD
  local v="REGISTRY_$1_$2"
  printf '%s' "${!v-}"
}

_registry_free_port() {
  "$REGISTRY_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Prints the HTTP status of GET URL/v2/ (000 when nothing answers).
_registry_ping() {
  local key=$1 ca
  ca=$(_registry_get "$key" CA)
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 ${ca:+--cacert "$ca"} \
    "$(_registry_get "$key" URL)/v2/" || true
}

# Starts docker-registry on the registry's config and waits until /v2/
# answers 200 or 401. Returns 2 (after reaping it) when it exited because its
# port was taken, fails the test on any other early exit.
_registry_launch() {
  local key=$1 log cfg offset pid v code
  log=$(_registry_get "$key" LOG)
  cfg=$(_registry_get "$key" CONFIG)
  offset=$(($(size_of "$log") + 1))
  local -a clean=()
  for v in $(compgen -e); do
    [[ $v == REGISTRY_* ]] && clean+=(-u "$v")
  done
  env "${clean[@]}" docker-registry serve "$cfg" >>"$log" 2>&1 &
  pid=$!
  e2e_track "$pid"
  local deadline=$((SECONDS + 30))
  while true; do
    code=$(_registry_ping "$key")
    [ "$code" == 200 ] || [ "$code" == 401 ] && break
    if ! e2e_alive "$pid"; then
      e2e_reap "$pid"
      if tail -c +"$offset" "$log" | grep -q 'address already in use'; then
        return 2
      fi
      fail "docker-registry ($key) exited with status $E2E_STATUS before answering; its log:
$(tail -c +"$offset" "$log")"
    fi
    [ "$SECONDS" -ge "$deadline" ] &&
      fail "docker-registry ($key) did not answer GET $(_registry_get "$key" URL)/v2/ within 30s (last status $code)"
    sleep 0.05
  done
  _registry_set "$key" PID "$pid"
}

# A CA and a server certificate for IP 127.0.0.1 (and localhost) signed by it.
_registry_make_tls() {
  local dir=$1 name=$2
  must "openssl: CA for $name" openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -days 3 -subj "/CN=imaged test CA $name" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem"
  must "openssl: server key for $name" openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server-key.pem" -out "$dir/server.csr"
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'extendedKeyUsage=serverAuth' \
    'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature' >"$dir/server.ext"
  must "openssl: server certificate for $name" openssl x509 -req -in "$dir/server.csr" \
    -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
    -days 3 -extfile "$dir/server.ext" -out "$dir/server.pem"
}

# Starts token_server.py for registry KEY; sets REALM and TOKEN_PID.
_registry_start_token_server() {
  local key=$1 dir=$2 scheme=$3 name=$4
  local port_file="$dir/token.port" log="$dir/token-server.log" pid
  must "openssl: token signing key for $name" openssl req -x509 -newkey rsa:2048 -nodes -days 3 \
    -subj "/CN=imaged test token signer $name" -keyout "$dir/token-key.pem" -out "$dir/token-cert.pem"
  : >"$log"
  E2E_LOGS+=("$log" "$(_registry_get "$key" TOKEN_LOG)")
  local -a tls=()
  [ "$scheme" == https ] && tls=(--tls-cert "$dir/server.pem" --tls-key "$dir/server-key.pem")
  "$REGISTRY_PYTHON" "$REGISTRY_LIB_DIR/token_server.py" --port-file "$port_file" \
    --key "$dir/token-key.pem" --cert "$dir/token-cert.pem" \
    --issuer "$(_registry_get "$key" ISSUER)" --service "$(_registry_get "$key" SERVICE)" \
    --user "$(_registry_get "$key" USER)" --password "$(_registry_get "$key" PASS)" \
    --refresh-token "$(_registry_get "$key" REFRESH_TOKEN)" \
    --log "$(_registry_get "$key" TOKEN_LOG)" "${tls[@]}" >"$log" 2>&1 &
  pid=$!
  e2e_track "$pid"
  local deadline=$((SECONDS + 20))
  until [ -s "$port_file" ]; do
    if ! e2e_alive "$pid"; then
      e2e_reap "$pid"
      fail "token_server.py ($name) exited with status $E2E_STATUS before serving; its output: $(cat "$log")"
    fi
    [ "$SECONDS" -ge "$deadline" ] && fail "token_server.py ($name) did not write $port_file within 20s"
    sleep 0.05
  done
  _registry_set "$key" TOKEN_PID "$pid"
  _registry_set "$key" REALM "$scheme://127.0.0.1:$(cat "$port_file")/token"
}

_registry_write_config() {
  local key=$1 port=$2 dir auth
  dir=$(_registry_get "$key" DIR)
  auth=$(_registry_get "$key" AUTH)
  {
    cat <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: "$(_registry_get "$key" ROOT)"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  # Fixed, so upload sessions started before restart_registry stay valid.
  secret: "$(cat "$dir/http-secret")"
EOF
    if [ "$(_registry_get "$key" SCHEME)" == https ]; then
      cat <<EOF
  tls:
    certificate: "$dir/server.pem"
    key: "$dir/server-key.pem"
EOF
    fi
    case "$auth" in
      htpasswd)
        cat <<EOF
auth:
  htpasswd:
    realm: "imaged-test-$key"
    path: "$dir/htpasswd"
EOF
        ;;
      token)
        cat <<EOF
auth:
  token:
    realm: "$(_registry_get "$key" REALM)"
    service: "$(_registry_get "$key" SERVICE)"
    issuer: "$(_registry_get "$key" ISSUER)"
    rootcertbundle: "$dir/token-cert.pem"
EOF
        ;;
    esac
  } >"$(_registry_get "$key" CONFIG)"
}

# ---------------------------------------------------------------------------
# Registries

# start_registry NAME [--htpasswd USER PASS] [--token USER PASS] [--tls]
# Starts a docker-registry with its own storage under $E2E_TMP on a free
# 127.0.0.1 port and returns once GET /v2/ answers (200, or 401 with auth).
#   --htpasswd USER PASS  Basic auth (auth.htpasswd, bcrypt file from `htpasswd -B`)
#   --token USER PASS     Bearer tokens (auth.token) from token_server.py,
#                         which accepts USER:PASS, anonymous requests (no access)
#                         and REGISTRY_<NAME>_REFRESH_TOKEN
#   --tls                 HTTPS with a certificate for 127.0.0.1 signed by
#                         REGISTRY_<NAME>_CA (the token server uses it too)
start_registry() {
  local name=${1:?usage: start_registry NAME [--htpasswd USER PASS] [--token USER PASS] [--tls]}
  shift
  local key auth=none user="" pass="" scheme=http
  key=$(_registry_key "$name")
  while [ $# -gt 0 ]; do
    case "$1" in
      --htpasswd | --token)
        [ "$auth" == none ] || fail "start_registry $name: give one of --htpasswd and --token"
        [ $# -ge 3 ] || fail "start_registry $name: $1 needs USER PASS"
        auth=${1#--}
        user=$2
        pass=$3
        shift 3
        ;;
      --tls)
        scheme=https
        shift
        ;;
      *) fail "start_registry $name: unknown option '$1'" ;;
    esac
  done
  [ -n "$E2E_TMP" ] || fail "start_registry: call e2e_init first"
  require_tools docker-registry curl openssl "$REGISTRY_PYTHON"
  [ -z "$(_registry_get "$key" DIR)" ] || fail "start_registry: registry '$name' was already started"

  local dir="$E2E_TMP/registry-$name"
  mkdir -p "$dir/storage"
  _registry_set "$key" DIR "$dir"
  _registry_set "$key" ROOT "$dir/storage"
  _registry_set "$key" CONFIG "$dir/config.yml"
  _registry_set "$key" LOG "$dir/registry.log"
  _registry_set "$key" SCHEME "$scheme"
  _registry_set "$key" AUTH "$auth"
  _registry_set "$key" USER "$user"
  _registry_set "$key" PASS "$pass"
  _registry_set "$key" CA ""
  _registry_set "$key" PID ""
  : >"$dir/registry.log"
  E2E_LOGS+=("$dir/registry.log")
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/http-secret"

  if [ "$scheme" == https ]; then
    _registry_make_tls "$dir" "$name"
    _registry_set "$key" CA "$dir/ca.pem"
  fi
  case "$auth" in
    htpasswd)
      require_tools htpasswd
      must "htpasswd for $name" htpasswd -Bbn "$user" "$pass" >"$dir/htpasswd"
      ;;
    token)
      _registry_set "$key" SERVICE "$name.registry.test"
      _registry_set "$key" ISSUER "imaged-test-token-issuer-$name"
      _registry_set "$key" REFRESH_TOKEN "refresh-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
      _registry_set "$key" TOKEN_LOG "$dir/token-requests.log"
      : >"$dir/token-requests.log"
      _registry_start_token_server "$key" "$dir" "$scheme" "$name"
      ;;
  esac

  # A free port can be taken between the probe and docker-registry's bind;
  # then try another.
  local attempt port rc
  for attempt in 1 2 3 4 5; do
    port=$(_registry_free_port)
    _registry_set "$key" ADDR "127.0.0.1:$port"
    _registry_set "$key" URL "$scheme://127.0.0.1:$port"
    _registry_write_config "$key" "$port"
    rc=0
    _registry_launch "$key" || rc=$?
    [ "$rc" -eq 0 ] && return 0
  done
  fail "start_registry $name: 5 free ports in a row were taken before docker-registry could bind them"
}

# stop_registry NAME [--kill]
# Stops docker-registry (SIGTERM, which 2.8.2 does not drain: open
# connections are cut; --kill sends SIGKILL). Storage, port and token server
# stay, for restart_registry.
stop_registry() {
  local key pid sig=TERM
  key=$(_registry_key "${1:?usage: stop_registry NAME [--kill]}")
  [ "${2:-}" == --kill ] && sig=KILL
  pid=$(_registry_get "$key" PID)
  [ -n "$pid" ] || fail "stop_registry $1: not running"
  kill "-$sig" "$pid" 2>/dev/null || true
  e2e_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  e2e_wait_gone "$pid" 10 || fail "stop_registry $1: docker-registry (pid $pid) survived SIGKILL"
  e2e_reap "$pid" 2>/dev/null  # not bash's "Killed" job notice
  _registry_set "$key" PID ""
}

# restart_registry NAME: stops it if it runs, starts it again on the same
# port, storage and config, and waits until /v2/ answers.
restart_registry() {
  local key
  key=$(_registry_key "${1:?usage: restart_registry NAME}")
  [ -n "$(_registry_get "$key" DIR)" ] || fail "restart_registry $1: never started"
  [ -z "$(_registry_get "$key" PID)" ] || stop_registry "$1"
  local attempt rc
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    rc=0
    _registry_launch "$key" || rc=$?
    [ "$rc" -eq 0 ] && return 0
    sleep 0.5
  done
  fail "restart_registry $1: port $(_registry_get "$key" ADDR) stayed taken for 5s"
}

# stop_token_server NAME: stops a --token registry's token server (to test an
# unreachable realm). It is not restarted by restart_registry.
stop_token_server() {
  local key pid
  key=$(_registry_key "${1:?usage: stop_token_server NAME}")
  pid=$(_registry_get "$key" TOKEN_PID)
  [ -n "$pid" ] || fail "stop_token_server $1: no token server running"
  kill -TERM "$pid" 2>/dev/null || true
  e2e_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  e2e_reap "$pid"
  _registry_set "$key" TOKEN_PID ""
}

# registry_curl NAME CURL_ARGS... : curl -sS with the registry's CA (--tls)
# and, for --htpasswd, its Basic credentials; pass full URLs, e.g.
# "$REGISTRY_HUB_URL/v2/". (--token registries: add the Authorization header
# from registry_token.)
registry_curl() {
  local key ca
  key=$(_registry_key "${1:?usage: registry_curl NAME CURL_ARGS...}")
  shift
  ca=$(_registry_get "$key" CA)
  local -a extra=()
  [ -n "$ca" ] && extra+=(--cacert "$ca")
  [ "$(_registry_get "$key" AUTH)" == htpasswd ] &&
    extra+=(-u "$(_registry_get "$key" USER):$(_registry_get "$key" PASS)")
  curl -sS "${extra[@]}" "$@"
}

# registry_token NAME SCOPE... : prints a bearer token for the scopes (e.g.
# repository:library/app:pull) fetched with GET and USER:PASS from a --token
# registry's token server.
registry_token() {
  local key name=${1:?usage: registry_token NAME SCOPE...}
  key=$(_registry_key "$name")
  shift
  [ "$(_registry_get "$key" AUTH)" == token ] || fail "registry_token $name: not a --token registry"
  local -a query=(--data-urlencode "service=$(_registry_get "$key" SERVICE)")
  local scope
  for scope in "$@"; do
    query+=(--data-urlencode "scope=$scope")
  done
  local ca body
  ca=$(_registry_get "$key" CA)
  body=$(must "fetch a token from $(_registry_get "$key" REALM)" curl -sS --fail -G ${ca:+--cacert "$ca"} \
    -u "$(_registry_get "$key" USER):$(_registry_get "$key" PASS)" "${query[@]}" "$(_registry_get "$key" REALM)")
  "$REGISTRY_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["token"])' <<<"$body"
}

# registry_blob_path NAME DIGEST: where filesystem storage keeps a blob.
registry_blob_path() {
  local key digest=${2:?usage: registry_blob_path NAME DIGEST} hex
  key=$(_registry_key "$1")
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || fail "registry_blob_path: '$digest' is not a sha256 digest"
  hex=${digest#sha256:}
  printf '%s/docker/registry/v2/blobs/sha256/%s/%s/data\n' "$(_registry_get "$key" ROOT)" "${hex:0:2}" "$hex"
}

# tamper_blob NAME DIGEST: inverts every byte of the stored blob in place
# (same length, every byte different); the registry keeps serving it under
# DIGEST.
tamper_blob() {
  local path
  path=$(registry_blob_path "$1" "$2")
  [ -f "$path" ] || fail "tamper_blob: registry $1 has no blob $2 ($path missing)"
  [ -s "$path" ] || fail "tamper_blob: blob $2 is empty; nothing to change"
  must "tamper_blob $2" "$REGISTRY_PYTHON" -c 'import sys
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    f.seek(0)
    f.write(data.translate(bytes(range(255, -1, -1))))' "$path"
}

# ---------------------------------------------------------------------------
# Images

# Prints the digest of the manifest TAG names in an OCI layout's index.json.
_registry_layout_manifest() {
  "$REGISTRY_PYTHON" -c 'import json, sys
index = json.load(open(sys.argv[1] + "/index.json"))
found = [m["digest"] for m in index["manifests"]
         if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]]
if len(found) != 1:
    sys.exit("expected one manifest tagged %r in %s/index.json, found %d" % (sys.argv[2], sys.argv[1], len(found)))
print(found[0])' "$1" "$2"
}

# umoci 0.4.7 writes OCI manifests without a "mediaType" member (optional in
# OCI 1.0); buildkit, buildah and Docker write it. Rewrites the manifest that
# TAG names in layout DIR with it and points index.json at the new blob.
_registry_add_media_type() {
  "$REGISTRY_PYTHON" - "$1" "$2" "$MT_OCI_MANIFEST" <<'PY'
import hashlib, json, os, sys
layout, tag, media_type = sys.argv[1:]
with open(layout + "/index.json") as f:
    index = json.load(f)
entry = next(m for m in index["manifests"]
             if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
with open(layout + "/blobs/sha256/" + entry["digest"][len("sha256:"):], "rb") as f:
    manifest = json.load(f)
if "mediaType" not in manifest:
    manifest = {"schemaVersion": manifest.pop("schemaVersion"), "mediaType": media_type, **manifest}
    data = json.dumps(manifest, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    with open(layout + "/blobs/sha256/" + digest, "wb") as f:
        f.write(data)
    entry.update(mediaType=media_type, digest="sha256:" + digest, size=len(data))
    with open(layout + "/index.json.tmp", "w") as f:
        json.dump(index, f, separators=(",", ":"))
    os.rename(layout + "/index.json.tmp", layout + "/index.json")
PY
}

# build_image DIR TAG LAYER_COUNT LAYER_BYTES [OS/ARCH]
# Adds image TAG to the OCI layout DIR (made if missing) with umoci:
# LAYER_COUNT layers, layer i holding one file /layer-<i>/blob of
# LAYER_BYTES random (incompressible) bytes, so no two layers or images are
# alike. The config says OS/ARCH (default linux/amd64). The manifest gets a
# "mediaType" member, which umoci leaves out; with BUILD_IMAGE_MEDIA_TYPE=0
# it stays as umoci wrote it (then only the registry's Content-Type says what
# it is, and PUSHED_MEDIA_TYPE is empty). Sets:
#   IMAGE_MANIFEST  IMAGE_MANIFEST_SIZE  IMAGE_CONFIG  IMAGE_LAYERS (array)
# (OCI media types, as in DIR; push_image --format v2s2 changes the
# manifest's digest but not the config's or the layers').
build_image() {
  local dir=${1:?usage: build_image DIR TAG LAYER_COUNT LAYER_BYTES [OS/ARCH]} tag=${2:?} count=${3:?} bytes=${4:?}
  local platform=${5:-linux/amd64}
  local os=${platform%%/*} arch=${platform#*/} scratch i
  [ -n "$E2E_TMP" ] || fail "build_image: call e2e_init first"
  require_tools umoci
  scratch=$(mktemp -d "$E2E_TMP/build.XXXXXX")
  [ -f "$dir/index.json" ] || must "umoci init $dir" umoci init --layout "$dir" >/dev/null
  must "umoci new $dir:$tag" umoci new --image "$dir:$tag" >/dev/null
  for ((i = 1; i <= count; i++)); do
    mkdir -p "$scratch/layer-$i"
    head -c "$bytes" /dev/urandom >"$scratch/layer-$i/blob"
    must "umoci insert layer $i into $dir:$tag" \
      umoci insert --rootless --image "$dir:$tag" "$scratch/layer-$i" "/layer-$i" >/dev/null
  done
  if [ "$platform" != linux/amd64 ]; then
    must "umoci config --os $os --architecture $arch" \
      umoci config --image "$dir:$tag" --os "$os" --architecture "$arch" >/dev/null
  fi
  if [ "${BUILD_IMAGE_MEDIA_TYPE:-1}" == 1 ]; then
    must "add mediaType to the manifest of $dir:$tag" _registry_add_media_type "$dir" "$tag"
  fi
  must "umoci gc $dir" umoci gc --layout "$dir" >/dev/null
  rm -rf "$scratch"

  IMAGE_MANIFEST=$(_registry_layout_manifest "$dir" "$tag") || fail "build_image: $IMAGE_MANIFEST"
  local manifest="$dir/blobs/sha256/${IMAGE_MANIFEST#sha256:}" digests config_json
  IMAGE_MANIFEST_SIZE=$(size_of "$manifest")
  mapfile -t digests < <(json_digests <"$manifest")
  IMAGE_CONFIG=${digests[0]}
  IMAGE_LAYERS=("${digests[@]:1}")
  [ "${#IMAGE_LAYERS[@]}" -eq "$count" ] ||
    fail "build_image: expected $count layers in $dir:$tag, the manifest lists ${#IMAGE_LAYERS[@]}"
  config_json=$(cat "$dir/blobs/sha256/${IMAGE_CONFIG#sha256:}")
  if ! grep -qF "\"os\":\"$os\"" <<<"$config_json" || ! grep -qF "\"architecture\":\"$arch\"" <<<"$config_json"; then
    fail "build_image: expected a $platform config, got: $config_json"
  fi
}

# Parses push options into _push_args (skopeo flags for the destination) and
# _inspect_args (the same credentials for `skopeo inspect`).
_registry_push_opts() {
  local what=$1
  shift
  _push_args=(--dest-tls-verify=false --dest-authfile "$(_registry_empty_authfile)")
  _inspect_args=(--tls-verify=false --authfile "$(_registry_empty_authfile)")
  while [ $# -gt 0 ]; do
    case "$1" in
      --format)
        [[ ${2:-} == v2s2 || ${2:-} == oci ]] || fail "$what: --format takes v2s2 or oci, got '${2:-}'"
        _push_args+=(--format "$2")
        shift 2
        ;;
      --creds)
        [ -n "${2:-}" ] || fail "$what: --creds needs USER:PASS"
        _push_args+=(--dest-creds "$2")
        _inspect_args+=(--creds "$2")
        shift 2
        ;;
      *) fail "$what: unknown option '$1'" ;;
    esac
  done
}

# An auth file with no entries, so skopeo never picks up the machine's
# ~/.docker/config.json or containers auth.json.
_registry_empty_authfile() {
  local f="$E2E_TMP/skopeo-auth.json"
  [ -f "$f" ] || echo '{"auths":{}}' >"$f"
  printf '%s' "$f"
}

# Fetches the manifest at REF@DIGEST back from the registry into FILE and
# checks that its bytes hash to DIGEST; prints its mediaType.
_registry_fetch_raw() {
  local ref=$1 digest=$2 file=$3
  shift 3
  must "skopeo inspect --raw docker://$ref@$digest" \
    skopeo --insecure-policy inspect --raw "$@" "docker://$ref@$digest" >"$file"
  assert_eq "digest of the manifest the registry returns for $ref@$digest" "$digest" "$(digest_of "$file")"
  "$REGISTRY_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("mediaType", ""))' "$file"
}

# push_image DIR:TAG ADDR/REPO:TAG [--format v2s2|oci] [--creds USER:PASS]
# Copies image TAG of the OCI layout DIR to the registry with skopeo
# (TLS not verified, so plain HTTP and --tls registries both work). Without
# --format the manifest goes as it is in DIR (OCI). Sets:
#   PUSHED_DIGEST      the manifest digest the registry stored
#   PUSHED_MEDIA_TYPE  its "mediaType" member (empty if it has none)
#   PUSHED_MANIFEST    a file holding its bytes as the registry returns them
#   PUSHED_REF         ADDR/REPO@PUSHED_DIGEST
push_image() {
  local src=${1:?usage: push_image DIR:TAG ADDR/REPO:TAG [--format v2s2|oci] [--creds USER:PASS]}
  local dest=${2:?usage: push_image DIR:TAG ADDR/REPO:TAG [--format v2s2|oci] [--creds USER:PASS]}
  shift 2
  [[ ${dest##*/} == *:* ]] || fail "push_image: destination '$dest' has no :TAG"
  require_tools skopeo
  local _push_args _inspect_args
  _registry_push_opts push_image "$@"
  local work
  work=$(mktemp -d "$E2E_TMP/push.XXXXXX")
  must "push $src to $dest" skopeo --insecure-policy copy --quiet "${_push_args[@]}" \
    --digestfile "$work/digest" "oci:$src" "docker://$dest" >/dev/null
  PUSHED_DIGEST=$(cat "$work/digest")
  PUSHED_REF="${dest%:*}@$PUSHED_DIGEST"
  PUSHED_MANIFEST="$work/manifest.json"
  PUSHED_MEDIA_TYPE=$(_registry_fetch_raw "${dest%:*}" "$PUSHED_DIGEST" "$PUSHED_MANIFEST" "${_inspect_args[@]}")
}

# push_multiarch ADDR/REPO:TAG [--format v2s2|oci] [--creds USER:PASS]
#                [--platforms OS/ARCH,...] [--layers N] [--layer-bytes B]
# Builds one distinct image per platform (default linux/arm64,linux/amd64:
# arm64 first, so a client that takes the first entry is caught; N=1 layer
# of B=65536 bytes each), writes an OCI image index of them by hand and
# pushes it with `skopeo copy --all`. v2s2 pushes a Docker manifest list of
# Docker manifests. Sets:
#   MULTIARCH_INDEX       digest of the index the registry stored
#   MULTIARCH_MEDIA_TYPE  its mediaType
#   MULTIARCH_INDEX_FILE  a file holding its bytes
#   MULTIARCH_PLATFORMS   array of OS/ARCH, in index order
# and associative arrays keyed by OS/ARCH:
#   MULTIARCH_MANIFEST[p] MULTIARCH_CONFIG[p] MULTIARCH_LAYERS[p] (space-separated)
#   MULTIARCH_MANIFEST_MEDIA_TYPE[p]
# (manifest digests as in the pushed index, so converted ones for v2s2).
push_multiarch() {
  local dest=${1:?usage: push_multiarch ADDR/REPO:TAG [--format v2s2|oci] [--creds USER:PASS] [--platforms LIST] [--layers N] [--layer-bytes B]}
  shift
  [[ ${dest##*/} == *:* ]] || fail "push_multiarch: destination '$dest' has no :TAG"
  local platforms=linux/arm64,linux/amd64 layers=1 layer_bytes=65536
  local -a opts=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --platforms) platforms=${2:?}; shift 2 ;;
      --layers) layers=${2:?}; shift 2 ;;
      --layer-bytes) layer_bytes=${2:?}; shift 2 ;;
      *) opts+=("$1" "${2:-}"); shift 2 || shift ;;
    esac
  done
  require_tools skopeo
  local _push_args _inspect_args
  _registry_push_opts push_multiarch "${opts[@]}"

  local work layout p i=0 index
  work=$(mktemp -d "$E2E_TMP/multiarch.XXXXXX")
  layout="$work/layout"
  declare -gA MULTIARCH_MANIFEST=() MULTIARCH_CONFIG=() MULTIARCH_LAYERS=() MULTIARCH_MANIFEST_MEDIA_TYPE=()
  IFS=, read -r -a MULTIARCH_PLATFORMS <<<"$platforms"
  local -a descriptors=()
  for p in "${MULTIARCH_PLATFORMS[@]}"; do
    i=$((i + 1))
    build_image "$work/image-$i" img "$layers" "$layer_bytes" "$p"
    mkdir -p "$layout/blobs/sha256"
    cp "$work/image-$i/oci-layout" "$layout/oci-layout"
    cp "$work/image-$i/blobs/sha256/"* "$layout/blobs/sha256/"
    descriptors+=("$(oci_descriptor "$layout" "$MT_OCI_MANIFEST" "$IMAGE_MANIFEST" "$(oci_platform "$p")")")
    MULTIARCH_CONFIG[$p]=$IMAGE_CONFIG
    MULTIARCH_LAYERS[$p]="${IMAGE_LAYERS[*]}"
  done
  oci_index_json "${descriptors[@]}" >"$work/index.blob.json"
  index=$(oci_add_blob "$layout" "$work/index.blob.json")
  oci_index_json "$(oci_descriptor "$layout" "$MT_OCI_INDEX" "$index" \
    '"annotations":{"org.opencontainers.image.ref.name":"img"}')" >"$layout/index.json"

  must "push the index to $dest" skopeo --insecure-policy copy --quiet --all "${_push_args[@]}" \
    --digestfile "$work/digest" "oci:$layout:img" "docker://$dest" >/dev/null
  MULTIARCH_INDEX=$(cat "$work/digest")
  MULTIARCH_INDEX_FILE="$work/pushed-index.json"
  MULTIARCH_MEDIA_TYPE=$(_registry_fetch_raw "${dest%:*}" "$MULTIARCH_INDEX" "$MULTIARCH_INDEX_FILE" "${_inspect_args[@]}")
  # "os/arch digest mediaType" per entry of the pushed index.
  local entries line
  entries=$("$REGISTRY_PYTHON" -c 'import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    print("%s/%s %s %s" % (m["platform"]["os"], m["platform"]["architecture"], m["digest"], m["mediaType"]))' \
    "$MULTIARCH_INDEX_FILE")
  while read -r p line; do
    MULTIARCH_MANIFEST[$p]=${line%% *}
    MULTIARCH_MANIFEST_MEDIA_TYPE[$p]=${line#* }
  done <<<"$entries"
  for p in "${MULTIARCH_PLATFORMS[@]}"; do
    [ -n "${MULTIARCH_MANIFEST[$p]:-}" ] || fail "push_multiarch: the pushed index has no $p entry: $entries"
  done
}

# ---------------------------------------------------------------------------
# Faults in front of a registry

# start_fault_proxy UPSTREAM_ADDR STATUS FAIL_FIRST [RETRY_AFTER]
# Starts fault_proxy.py on a free 127.0.0.1 port in front of the registry at
# UPSTREAM_ADDR: the first FAIL_FIRST requests for each (method, path) get
# HTTP STATUS (with Retry-After: RETRY_AFTER if given), later ones are
# forwarded. Sets FAULT_PROXY_ADDR, FAULT_PROXY_PID and FAULT_PROXY_LOG (one
# "<method> <path> <status>" line per request).
start_fault_proxy() {
  local upstream=$1 status=$2 fail_first=$3 retry_after=${4:-}
  local dir port_file
  dir=$(mktemp -d "$E2E_TMP/fault-proxy.XXXXXX")
  port_file="$dir/port"
  FAULT_PROXY_LOG="$dir/requests.log"
  : >"$FAULT_PROXY_LOG"
  E2E_LOGS+=("$FAULT_PROXY_LOG")
  "$REGISTRY_PYTHON" "$REGISTRY_LIB_DIR/fault_proxy.py" --listen "$port_file" \
    --upstream "http://$upstream" --status "$status" --fail-first "$fail_first" \
    --retry-after "$retry_after" --log "$FAULT_PROXY_LOG" >"$dir/out.log" 2>&1 &
  FAULT_PROXY_PID=$!
  e2e_track "$FAULT_PROXY_PID"
  local deadline=$((SECONDS + 20))
  until [ -s "$port_file" ]; do
    e2e_alive "$FAULT_PROXY_PID" || fail "fault_proxy.py exited: $(cat "$dir/out.log")"
    [ "$SECONDS" -ge "$deadline" ] && fail "fault_proxy.py did not start within 20s"
    sleep 0.05
  done
  FAULT_PROXY_ADDR="127.0.0.1:$(cat "$port_file")"
}

stop_fault_proxy() {
  [ -n "${FAULT_PROXY_PID:-}" ] || return 0
  kill "$FAULT_PROXY_PID" 2>/dev/null || true
  e2e_wait_gone "$FAULT_PROXY_PID" 10 || true
  e2e_reap "$FAULT_PROXY_PID"
  FAULT_PROXY_PID=""
}
