#!/usr/bin/env bash
# CRI PullImage through imaged from Debian's docker-registry on 127.0.0.1,
# with images made here by umoci and pushed by skopeo (registry_lib.sh):
# OCI and Docker schema 2, single-platform and a multi-platform index, by tag
# and by digest; htpasswd Basic auth and token auth, right and wrong
# credentials and an identity (refresh) token; a mirror from hosts.toml; a
# blob tampered with in the registry's storage; the registry stopped mid-pull
# and the next pull resuming; concurrent pulls sharing one download; a
# repeated pull costing one manifest request; 429/5xx retried; TLS with a CA
# named in hosts.toml.
#
#   pull_test.sh IMAGED IMAGECTL
set -euo pipefail

LIB="${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing"
source "$LIB/e2e_lib.sh"
source "$LIB/registry_lib.sh"

IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
e2e_init
require_tools docker-registry skopeo umoci curl openssl htpasswd ctr

HOSTS_DIR="$E2E_TMP/certs.d"
mkdir -p "$HOSTS_DIR"
start_imaged "$E2E_TMP/root" "$E2E_SOCKDIR/imaged.sock" --registry-config-path "$HOSTS_DIR"
ic() { "$IMAGECTL" --address "$IMAGED_SOCK" "$@"; }
content_ls() { ctr --address "$IMAGED_SOCK" -n k8s.io content ls -q; }

# pull_ok REF [imagectl pull flags...]: pulls and checks the answer is an image ID.
pull_ok() {
  local out
  out=$(must "imagectl pull $1" ic pull "$@")
  PULLED_ID=$(sed -n 's/^Image is up to date for //p' <<<"$out")
  [[ $PULLED_ID =~ ^sha256:[0-9a-f]{64}$ ]] || fail "imagectl pull $1 printed no image ID: $out"
}
# pull_fails REF [flags...]: the pull fails; PULL_ERROR holds its message.
pull_fails() {
  PULL_ERROR=$(ic pull "$@" 2>&1) && fail "imagectl pull $1 succeeded; expected failure: $PULL_ERROR"
  true
}
# registry_requests NAME METHOD PATH_REGEX: requests the registry logged so far
# (it quotes a URI only when it has characters such as ':').
registry_requests() {
  local log_var="REGISTRY_${1^^}_LOG"
  grep 'response completed' "${!log_var}" | grep "http.request.method=$2 " |
    grep -cE "http.request.uri=\"?$3\"? " || true
}

step "single-platform OCI image by tag: three names, image ID = config digest"
start_registry plain
R=$REGISTRY_PLAIN_ADDR
build_image "$E2E_TMP/app" v1 3 200000
APP_CONFIG=$IMAGE_CONFIG
APP_LAYERS=("${IMAGE_LAYERS[@]}")
push_image "$E2E_TMP/app:v1" "$R/team/app:v1" --format oci
APP_DIGEST=$PUSHED_DIGEST
pull_ok "$R/team/app:v1"
assert_eq "image ID of $R/team/app:v1" "$APP_CONFIG" "$PULLED_ID"
records=$(ic ls -n k8s.io)
assert_contains "records" "$records" "$R/team/app:v1"
assert_contains "records" "$records" "$R/team/app@$APP_DIGEST"
assert_contains "records" "$records" "$APP_CONFIG"
status=$(ic inspecti "$R/team/app:v1")
assert_contains "inspecti repoDigests" "$status" "$R/team/app@$APP_DIGEST"
for d in "${APP_LAYERS[@]}" "$APP_CONFIG" "$APP_DIGEST"; do
  assert_contains "content after the pull" "$(content_ls)" "$d"
done
labels=$(ctr --address "$IMAGED_SOCK" -n k8s.io content ls | grep "^$APP_DIGEST")
assert_contains "manifest labels" "$labels" "containerd.io/gc.ref.content.config=$APP_CONFIG"
assert_contains "manifest labels" "$labels" "containerd.io/gc.ref.content.l.2=${APP_LAYERS[2]}"
assert_contains "image labels" "$(ctr --address "$IMAGED_SOCK" -n k8s.io images ls)" "io.cri-containerd.image=managed"

step "pulling it again costs one manifest request and no blob"
heads=$(registry_requests plain HEAD "/v2/team/app/manifests/v1")
gets=$(registry_requests plain GET "/v2/team/app/.*")
pull_ok "$R/team/app:v1"
assert_eq "image ID" "$APP_CONFIG" "$PULLED_ID"
assert_eq "HEAD requests of the re-pull" $((heads + 1)) "$(registry_requests plain HEAD "/v2/team/app/manifests/v1")"
assert_eq "GET requests of the re-pull" "$gets" "$(registry_requests plain GET "/v2/team/app/.*")"

step "by digest: no tag name, the same image"
ic rmi "$APP_CONFIG" >/dev/null
pull_ok "$R/team/app@$APP_DIGEST"
assert_eq "image ID by digest" "$APP_CONFIG" "$PULLED_ID"
assert_not_contains "records after a pull by digest" "$(ic ls -n k8s.io)" "$R/team/app:v1"

step "Docker schema 2 media types"
build_image "$E2E_TMP/docker" v1 2 100000
DOCKER_CONFIG=$IMAGE_CONFIG
push_image "$E2E_TMP/docker:v1" "$R/team/docker:v1" --format v2s2
assert_contains "pushed media type" "$PUSHED_MEDIA_TYPE" "docker.distribution.manifest.v2"
pull_ok "$R/team/docker:v1"
assert_eq "image ID of a schema 2 image" "$DOCKER_CONFIG" "$PULLED_ID"

step "multi-platform index (OCI and Docker list): the linux/amd64 manifest"
for format in oci v2s2; do
  push_multiarch "$R/team/multi-$format:v1" --format "$format"
  pull_ok "$R/team/multi-$format:v1"
  assert_eq "image ID of the $format index" "${MULTIARCH_CONFIG[linux/amd64]}" "$PULLED_ID"
  assert_contains "records" "$(ic ls -n k8s.io)" "$R/team/multi-$format@$MULTIARCH_INDEX"
  labels=$(ctr --address "$IMAGED_SOCK" -n k8s.io content ls | grep "^$MULTIARCH_INDEX")
  assert_contains "index labels" "$labels" "containerd.io/gc.ref.content.m.0=${MULTIARCH_MANIFEST[linux/amd64]}"
  assert_not_contains "content: the arm64 config" "$(content_ls)" "${MULTIARCH_CONFIG[linux/arm64]}"
done

step "a missing tag and a missing repository are NotFound, naming the reference"
pull_fails "$R/team/app:nope"
assert_contains "missing tag error" "$PULL_ERROR" "$R/team/app:nope"
assert_contains "missing tag error" "$PULL_ERROR" "not found"

step "concurrent pulls of one image share the download"
build_image "$E2E_TMP/shared" v1 4 2000000
SHARED_LAYERS=("${IMAGE_LAYERS[@]}")
push_image "$E2E_TMP/shared:v1" "$R/team/shared:v1" --format oci
pids=()
for i in 1 2 3; do
  ic pull "$R/team/shared:v1" >"$E2E_TMP/concurrent.$i" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent pull failed: $(cat "$E2E_TMP"/concurrent.*)"; done
for d in "${SHARED_LAYERS[@]}"; do
  assert_eq "GETs of layer $d" 1 "$(registry_requests plain GET "/v2/team/shared/blobs/$d")"
done

step "a blob tampered with in the registry: DataLoss, the blob not stored, no name"
build_image "$E2E_TMP/bad" v1 2 100000
BAD_LAYER=${IMAGE_LAYERS[1]}
push_image "$E2E_TMP/bad:v1" "$R/team/bad:v1" --format oci
tamper_blob plain "$BAD_LAYER"
pull_fails "$R/team/bad:v1"
assert_contains "tampered pull error" "$PULL_ERROR" "$BAD_LAYER"
assert_contains "tampered pull error" "$PULL_ERROR" "verification"
assert_not_contains "content after the tampered pull" "$(content_ls)" "$BAD_LAYER"
assert_not_contains "records after the tampered pull" "$(ic ls -n k8s.io)" "team/bad"
assert_eq "active ingests after the tampered pull" "" \
  "$(ctr --address "$IMAGED_SOCK" -n k8s.io content active | grep "$BAD_LAYER" || true)"

step "the registry stopped mid-pull: a clear error; the next pull resumes"
build_image "$E2E_TMP/big" v1 1 300000000
BIG_LAYER=${IMAGE_LAYERS[0]}
push_image "$E2E_TMP/big:v1" "$R/team/big:v1" --format oci
ic pull "$R/team/big:v1" >"$E2E_TMP/big-pull.out" 2>&1 &
pull_pid=$!
e2e_track "$pull_pid"
offset_of_big() {
  ctr --address "$IMAGED_SOCK" -n k8s.io content active 2>/dev/null |
    awk -v ref="layer-$BIG_LAYER" '$1 == ref { print $2 }' | head -1
}
big_partly_there() {
  local offset
  offset=$(offset_of_big)
  [ -n "$offset" ] && [ "$offset" != "0B" ]
}
wait_for "a partial download of $BIG_LAYER" 60 big_partly_there
stop_registry plain --kill
if wait "$pull_pid"; then
  fail "the pull succeeded although the registry was killed: $(cat "$E2E_TMP/big-pull.out")"
fi
assert_contains "mid-pull error" "$(cat "$E2E_TMP/big-pull.out")" "$R"
partial=$(ctr --address "$IMAGED_SOCK" -n k8s.io content active | grep "layer-$BIG_LAYER" || true)
[ -n "$partial" ] || fail "no partial ingest kept for $BIG_LAYER after the interrupted pull"
restart_registry plain
pull_ok "$R/team/big:v1"
assert_contains "imaged log" "$(cat "$IMAGED_LOG")" "resumed"
resumed=$(grep "pulled $R/team/big:v1" "$IMAGED_LOG" | sed -n 's/.* \([0-9]*\) bytes resumed.*/\1/p' | tail -1)
[ -n "$resumed" ] && [ "$resumed" -gt 0 ] || fail "the second pull did not resume: $(grep "pulled $R/team/big" "$IMAGED_LOG")"

step "htpasswd Basic auth: right credentials pull, wrong and none are refused"
start_registry basic --htpasswd alice s3cret-basic
B=$REGISTRY_BASIC_ADDR
build_image "$E2E_TMP/private" v1 1 50000
PRIVATE_CONFIG=$IMAGE_CONFIG
push_image "$E2E_TMP/private:v1" "$B/private/app:v1" --creds alice:s3cret-basic
pull_fails "$B/private/app:v1"
assert_contains "anonymous pull error" "$PULL_ERROR" "authorization required"
pull_fails "$B/private/app:v1" --creds alice:wrong
assert_contains "wrong password error" "$PULL_ERROR" "$B"
pull_ok "$B/private/app:v1" --creds alice:s3cret-basic
assert_eq "image ID behind Basic auth" "$PRIVATE_CONFIG" "$PULLED_ID"
ic rmi "$PULLED_ID" >/dev/null
pull_ok "$B/private/app:v1" --auth "$(printf 'alice:s3cret-basic' | base64)"

step "token auth: right, wrong, identity token; no secret in any log"
start_registry tok --token bob s3cret-token
T=$REGISTRY_TOK_ADDR
push_image "$E2E_TMP/private:v1" "$T/private/app:v1" --creds bob:s3cret-token
pull_fails "$T/private/app:v1"
pull_fails "$T/private/app:v1" --creds bob:wrong
assert_contains "wrong token credentials" "$PULL_ERROR" "refused"
pull_ok "$T/private/app:v1" --creds bob:s3cret-token
assert_eq "image ID behind token auth" "$PRIVATE_CONFIG" "$PULLED_ID"
ic rmi "$PULLED_ID" >/dev/null
pull_ok "$T/private/app:v1" --identity-token "$REGISTRY_TOK_REFRESH_TOKEN"
assert_eq "image ID with an identity token" "$PRIVATE_CONFIG" "$PULLED_ID"
for secret in s3cret-basic s3cret-token "$REGISTRY_TOK_REFRESH_TOKEN" "$(printf 'alice:s3cret-basic' | base64)"; do
  assert_not_contains "imaged's log" "$(cat "$IMAGED_LOG")" "$secret"
done

step "a mirror from hosts.toml serves a registry that does not exist"
mkdir -p "$HOSTS_DIR/registry.imaged.test"
cat >"$HOSTS_DIR/registry.imaged.test/hosts.toml" <<EOF
server = "https://registry.imaged.test"

[host."http://$R"]
  capabilities = ["pull", "resolve"]
EOF
restart_registry plain
pull_ok "registry.imaged.test/team/app:v1"
assert_eq "image ID through the mirror" "$APP_CONFIG" "$PULLED_ID"
assert_contains "records" "$(ic ls -n k8s.io)" "registry.imaged.test/team/app:v1"

step "HTTP 503 and 429 are retried with backoff (Retry-After honoured)"
start_fault_proxy "$R" 503 2
pull_ok "$FAULT_PROXY_ADDR/team/docker:v1"
assert_eq "image ID through a flaky registry" "$DOCKER_CONFIG" "$PULLED_ID"
assert_eq "503s then success for the tag" "503 503 200" \
  "$(awk '$2 == "/v2/team/docker/manifests/v1" && $1 == "HEAD" { printf "%s%s", sep, $3; sep = " " }' "$FAULT_PROXY_LOG")"
stop_fault_proxy
start_fault_proxy "$R" 429 1 1
pull_ok "$FAULT_PROXY_ADDR/team/app:v1"
assert_contains "429 log" "$(cat "$FAULT_PROXY_LOG")" " 429"
stop_fault_proxy

step "a registry that keeps failing: Unavailable, naming the registry and the status"
start_fault_proxy "$R" 500 1000
pull_fails "$FAULT_PROXY_ADDR/team/app:v1"
assert_contains "failing registry error" "$PULL_ERROR" "$FAULT_PROXY_ADDR"
assert_contains "failing registry error" "$PULL_ERROR" "HTTP 500"
stop_fault_proxy

step "TLS: a registry whose CA hosts.toml names; without it the pull fails"
start_registry secure --tls
S=$REGISTRY_SECURE_ADDR
push_image "$E2E_TMP/docker:v1" "$S/team/docker:v1" --format v2s2
mkdir -p "$HOSTS_DIR/$S"
cat >"$HOSTS_DIR/$S/hosts.toml" <<EOF
server = "https://$S"
EOF
pull_fails "$S/team/docker:v1"
cat >"$HOSTS_DIR/$S/hosts.toml" <<EOF
server = "https://$S"

[host."https://$S"]
  ca = "$REGISTRY_SECURE_CA"
EOF
pull_ok "$S/team/docker:v1"
assert_eq "image ID over TLS" "$DOCKER_CONFIG" "$PULLED_ID"

step "CRI sees every pulled image; the index is consistent"
must "imagectl check" ic check >/dev/null
listed=$(ic images)
assert_contains "imagectl images" "$listed" "registry.imaged.test/team/app"
stop_imaged
e2e_pass
