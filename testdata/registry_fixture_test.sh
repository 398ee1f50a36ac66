#!/usr/bin/env bash
# Self-test of the registry fixture (tools/testing/registry_lib.sh) that the
# pull tests stand on: Debian's docker-registry 2.8.2 started plain, with
# htpasswd, with token auth (token_server.py: GET with Basic credentials,
# anonymous, POST password and refresh-token grants) and with TLS; images
# built with umoci and pushed with skopeo as OCI and as Docker schema 2, a
# multi-platform index, tamper_blob, stop and restart. It also pins down what
# docker-registry answers where a pull client has to get it right: HEAD of a
# manifest, the Accept rules for OCI and schema 2, Range on blob GET.
# It needs no imaged.
#
#   registry_fixture_test.sh
set -euo pipefail

LIB="${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing"
source "$LIB/e2e_lib.sh"
source "$LIB/registry_lib.sh"

e2e_init
require_tools docker-registry skopeo umoci curl openssl htpasswd sha256sum

# http_code CURL_ARGS...: the status curl got (000: no answer).
http_code() {
  curl -s -o /dev/null -w '%{http_code}' "$@" || true
}

# header NAME: the value of header NAME in the curl -D output on stdin.
header() {
  tr -d '\r' | awk -v n="$1" 'BEGIN { n = tolower(n) ":" } tolower($1) == n { sub(/^[^:]*: */, ""); print }'
}

# jwt_claims TOKEN: the JWT's claims, as compact JSON.
jwt_claims() {
  "$REGISTRY_PYTHON" -c 'import base64, json, sys
claims = sys.argv[1].split(".")[1]
print(json.dumps(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))), separators=(",", ":")))' "$1"
}

# json_field KEY: member KEY of the JSON object on stdin ("" if absent).
json_field() {
  "$REGISTRY_PYTHON" -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

step "start a plain registry: /v2/ answers 200, storage under \$E2E_TMP"
start_registry plain
[[ $REGISTRY_PLAIN_ADDR =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "REGISTRY_PLAIN_ADDR is '$REGISTRY_PLAIN_ADDR'"
assert_eq "REGISTRY_PLAIN_URL" "http://$REGISTRY_PLAIN_ADDR" "$REGISTRY_PLAIN_URL"
assert_eq "GET /v2/ on the plain registry" 200 "$(http_code "$REGISTRY_PLAIN_URL/v2/")"
[[ $REGISTRY_PLAIN_ROOT == "$E2E_TMP"/* ]] || fail "REGISTRY_PLAIN_ROOT $REGISTRY_PLAIN_ROOT is not under $E2E_TMP"
e2e_alive "$REGISTRY_PLAIN_PID" || fail "REGISTRY_PLAIN_PID $REGISTRY_PLAIN_PID is not alive"
assert_contains "plain registry config" "$(cat "$REGISTRY_PLAIN_CONFIG")" "enabled: true"

step "build_image: 2 layers of 256 KiB random bytes, each distinct"
LAYOUT="$E2E_TMP/app"
build_image "$LAYOUT" v1 2 262144
APP_MANIFEST=$IMAGE_MANIFEST
APP_CONFIG=$IMAGE_CONFIG
APP_LAYERS=("${IMAGE_LAYERS[@]}")
[ "${APP_LAYERS[0]}" != "${APP_LAYERS[1]}" ] || fail "build_image made two identical layers ${APP_LAYERS[0]}"
for d in "${APP_LAYERS[@]}"; do
  size=$(size_of "$LAYOUT/blobs/sha256/${d#sha256:}")
  [ "$size" -ge 262144 ] || fail "layer $d is $size bytes gzipped; random content should not shrink below 262144"
done
assert_eq "IMAGE_MANIFEST_SIZE" "$(size_of "$LAYOUT/blobs/sha256/${APP_MANIFEST#sha256:}")" "$IMAGE_MANIFEST_SIZE"
assert_contains "the manifest build_image wrote" "$(cat "$LAYOUT/blobs/sha256/${APP_MANIFEST#sha256:}")" \
  "\"mediaType\":\"$MT_OCI_MANIFEST\""
build_image "$LAYOUT" arm 1 1024 linux/arm64
assert_contains "config of an arm64 build" "$(cat "$LAYOUT/blobs/sha256/${IMAGE_CONFIG#sha256:}")" '"architecture":"arm64"'

step "push_image (OCI, the default and --format oci): the registry keeps the layout's manifest"
push_image "$LAYOUT:v1" "$REGISTRY_PLAIN_ADDR/lib/app:v1"
assert_eq "pushed OCI digest" "$APP_MANIFEST" "$PUSHED_DIGEST"
assert_eq "pushed OCI mediaType" "$MT_OCI_MANIFEST" "$PUSHED_MEDIA_TYPE"
assert_eq "PUSHED_REF" "$REGISTRY_PLAIN_ADDR/lib/app@$APP_MANIFEST" "$PUSHED_REF"
OCI_MANIFEST_SIZE=$(size_of "$PUSHED_MANIFEST")
push_image "$LAYOUT:v1" "$REGISTRY_PLAIN_ADDR/lib/app:oci" --format oci
assert_eq "--format oci digest" "$APP_MANIFEST" "$PUSHED_DIGEST"
raw=$(must "skopeo inspect --raw the OCI tag" skopeo --insecure-policy inspect --raw --tls-verify=false \
  "docker://$REGISTRY_PLAIN_ADDR/lib/app:oci")
assert_contains "skopeo inspect --raw of the OCI push" "$raw" "\"mediaType\":\"$MT_OCI_MANIFEST\""

step "push_image --format v2s2: Docker schema 2 media types, same config and layers"
push_image "$LAYOUT:v1" "$REGISTRY_PLAIN_ADDR/lib/app:v2s2" --format v2s2
V2S2_DIGEST=$PUSHED_DIGEST
assert_eq "pushed v2s2 mediaType" "$MT_DOCKER_MANIFEST" "$PUSHED_MEDIA_TYPE"
[ "$V2S2_DIGEST" != "$APP_MANIFEST" ] || fail "the v2s2 manifest kept the OCI digest"
raw=$(must "skopeo inspect --raw the v2s2 tag" skopeo --insecure-policy inspect --raw --tls-verify=false \
  "docker://$REGISTRY_PLAIN_ADDR/lib/app:v2s2")
assert_contains "skopeo inspect --raw of the v2s2 push" "$raw" "\"mediaType\":\"$MT_DOCKER_MANIFEST\""
assert_contains "v2s2 config" "$raw" "application/vnd.docker.container.image.v1+json"
assert_contains "v2s2 layers" "$raw" "application/vnd.docker.image.rootfs.diff.tar.gzip"
assert_eq "digests in the v2s2 manifest (config, layers)" "$APP_CONFIG ${APP_LAYERS[*]}" \
  "$(json_digests <<<"$raw" | tr '\n' ' ' | sed 's/ $//')"

step "docker-registry's manifest answers: HEAD has Docker-Content-Digest; Accept decides OCI and schema 2"
hdrs=$(must "HEAD the OCI manifest" curl -sS -I -H "Accept: $REGISTRY_ACCEPT" "$REGISTRY_PLAIN_URL/v2/lib/app/manifests/v1")
assert_contains "HEAD manifest status" "$hdrs" "200 OK"
assert_eq "HEAD manifest Docker-Content-Digest" "$APP_MANIFEST" "$(header Docker-Content-Digest <<<"$hdrs")"
assert_eq "HEAD manifest Content-Type" "$MT_OCI_MANIFEST" "$(header Content-Type <<<"$hdrs")"
assert_eq "HEAD manifest Content-Length" "$OCI_MANIFEST_SIZE" "$(header Content-Length <<<"$hdrs")"
body=$(curl -sS "$REGISTRY_PLAIN_URL/v2/lib/app/manifests/v1")
assert_contains "GET an OCI manifest without Accept (404)" "$body" "MANIFEST_UNKNOWN"
assert_eq "GET an OCI manifest without Accept" 404 "$(http_code "$REGISTRY_PLAIN_URL/v2/lib/app/manifests/v1")"
hdrs=$(curl -sS -o /dev/null -D - "$REGISTRY_PLAIN_URL/v2/lib/app/manifests/v2s2")
assert_eq "a schema 2 manifest by tag without Accept is rewritten to schema 1" \
  "application/vnd.docker.distribution.manifest.v1+prettyjws" "$(header Content-Type <<<"$hdrs")"
hdrs=$(curl -sS -o /dev/null -D - -H "Accept: $MT_DOCKER_MANIFEST" "$REGISTRY_PLAIN_URL/v2/lib/app/manifests/v2s2")
assert_eq "a schema 2 manifest with Accept" "$V2S2_DIGEST" "$(header Docker-Content-Digest <<<"$hdrs")"

step "docker-registry's blob answers: GET, HEAD and Range"
LAYER=${APP_LAYERS[0]}
LAYER_FILE="$LAYOUT/blobs/sha256/${LAYER#sha256:}"
must "GET a layer" curl -sS -o "$E2E_TMP/layer.got" "$REGISTRY_PLAIN_URL/v2/lib/app/blobs/$LAYER"
assert_same_bytes "GET a layer" "$LAYER_FILE" "$E2E_TMP/layer.got"
hdrs=$(must "HEAD a layer" curl -sS -I "$REGISTRY_PLAIN_URL/v2/lib/app/blobs/$LAYER")
assert_eq "HEAD blob Content-Length" "$(size_of "$LAYER_FILE")" "$(header Content-Length <<<"$hdrs")"
assert_eq "HEAD blob Docker-Content-Digest" "$LAYER" "$(header Docker-Content-Digest <<<"$hdrs")"
hdrs=$(must "GET a layer with Range" curl -sS -D - -o "$E2E_TMP/range.got" -H "Range: bytes=1000-1999" \
  "$REGISTRY_PLAIN_URL/v2/lib/app/blobs/$LAYER")
assert_contains "Range GET status" "$hdrs" "206 Partial Content"
assert_eq "Range GET Content-Range" "bytes 1000-1999/$(size_of "$LAYER_FILE")" "$(header Content-Range <<<"$hdrs")"
dd if="$LAYER_FILE" of="$E2E_TMP/range.want" bs=1000 skip=1 count=1 status=none
assert_same_bytes "Range GET bytes 1000-1999" "$E2E_TMP/range.want" "$E2E_TMP/range.got"
hdrs=$(curl -sS -D - -o /dev/null -H "Range: bytes=1000-" "$REGISTRY_PLAIN_URL/v2/lib/app/blobs/$LAYER")
assert_eq "open-ended Range GET Content-Length" "$(($(size_of "$LAYER_FILE") - 1000))" "$(header Content-Length <<<"$hdrs")"

step "push_multiarch: an OCI index of linux/arm64 and linux/amd64, each its own image"
push_multiarch "$REGISTRY_PLAIN_ADDR/lib/multi:1"
assert_eq "multiarch index mediaType" "$MT_OCI_INDEX" "$MULTIARCH_MEDIA_TYPE"
assert_eq "MULTIARCH_PLATFORMS" "linux/arm64 linux/amd64" "${MULTIARCH_PLATFORMS[*]}"
must "skopeo inspect --raw the index" skopeo --insecure-policy inspect --raw --tls-verify=false \
  "docker://$REGISTRY_PLAIN_ADDR/lib/multi:1" >"$E2E_TMP/index.json"
assert_eq "index digest" "$MULTIARCH_INDEX" "$(digest_of "$E2E_TMP/index.json")"
raw=$(cat "$E2E_TMP/index.json")
assert_eq "entries of the index (platform mediaType digest)" \
  "linux/arm64 $MT_OCI_MANIFEST ${MULTIARCH_MANIFEST[linux/arm64]}
linux/amd64 $MT_OCI_MANIFEST ${MULTIARCH_MANIFEST[linux/amd64]}" \
  "$("$REGISTRY_PYTHON" -c 'import json, sys
for m in json.loads(sys.argv[1])["manifests"]:
    print(m["platform"]["os"] + "/" + m["platform"]["architecture"], m["mediaType"], m["digest"])' "$raw")"
[ "${MULTIARCH_MANIFEST[linux/arm64]}" != "${MULTIARCH_MANIFEST[linux/amd64]}" ] || fail "both platforms have one manifest"
[ "${MULTIARCH_CONFIG[linux/arm64]}" != "${MULTIARCH_CONFIG[linux/amd64]}" ] || fail "both platforms have one config"
for p in linux/arm64 linux/amd64; do
  raw=$(must "skopeo inspect --raw the $p manifest" skopeo --insecure-policy inspect --raw --tls-verify=false \
    "docker://$REGISTRY_PLAIN_ADDR/lib/multi@${MULTIARCH_MANIFEST[$p]}")
  assert_eq "digests of the $p manifest" "${MULTIARCH_CONFIG[$p]} ${MULTIARCH_LAYERS[$p]}" \
    "$(json_digests <<<"$raw" | tr '\n' ' ' | sed 's/ $//')"
  config=$(must "GET the $p config" curl -sS "$REGISTRY_PLAIN_URL/v2/lib/multi/blobs/${MULTIARCH_CONFIG[$p]}")
  assert_contains "the $p config" "$config" "\"architecture\":\"${p#*/}\""
done
push_multiarch "$REGISTRY_PLAIN_ADDR/lib/multi:v2s2" --format v2s2 --layers 2 --layer-bytes 4096
assert_eq "v2s2 multiarch mediaType" "$MT_DOCKER_LIST" "$MULTIARCH_MEDIA_TYPE"
assert_eq "v2s2 multiarch entries" "$MT_DOCKER_MANIFEST $MT_DOCKER_MANIFEST" \
  "${MULTIARCH_MANIFEST_MEDIA_TYPE[linux/arm64]} ${MULTIARCH_MANIFEST_MEDIA_TYPE[linux/amd64]}"
assert_eq "layers per platform" 2 "$(wc -w <<<"${MULTIARCH_LAYERS[linux/amd64]}")"
hdrs=$(curl -sS -o /dev/null -D - -H "Accept: $MT_DOCKER_MANIFEST" "$REGISTRY_PLAIN_URL/v2/lib/multi/manifests/v2s2")
assert_eq "a manifest list by tag without its type in Accept: the registry picks linux/amd64" \
  "${MULTIARCH_MANIFEST[linux/amd64]}" "$(header Docker-Content-Digest <<<"$hdrs")"
assert_eq "an OCI index without its type in Accept" 404 \
  "$(http_code -H "Accept: $MT_OCI_MANIFEST" "$REGISTRY_PLAIN_URL/v2/lib/multi/manifests/1")"

step "tamper_blob: same length, every byte different, still served under the old digest"
BLOB_PATH=$(registry_blob_path plain "$LAYER")
assert_eq "registry_blob_path" \
  "$REGISTRY_PLAIN_ROOT/docker/registry/v2/blobs/sha256/${LAYER:7:2}/${LAYER#sha256:}/data" "$BLOB_PATH"
assert_same_bytes "stored blob before tampering" "$LAYER_FILE" "$BLOB_PATH"
tamper_blob plain "$LAYER"
assert_eq "tampered blob size" "$(size_of "$LAYER_FILE")" "$(size_of "$BLOB_PATH")"
[ "$(head -c 1 "$BLOB_PATH" | od -An -tu1)" != "$(head -c 1 "$LAYER_FILE" | od -An -tu1)" ] ||
  fail "tamper_blob left the first byte as it was"
hdrs=$(must "GET the tampered layer" curl -sS -D - -o "$E2E_TMP/tampered.got" "$REGISTRY_PLAIN_URL/v2/lib/app/blobs/$LAYER")
assert_eq "tampered blob Docker-Content-Digest" "$LAYER" "$(header Docker-Content-Digest <<<"$hdrs")"
assert_same_bytes "GET the tampered layer" "$BLOB_PATH" "$E2E_TMP/tampered.got"
[ "$(digest_of "$E2E_TMP/tampered.got")" != "$LAYER" ] || fail "the tampered blob still hashes to $LAYER"

step "stop_registry and restart_registry: same address and storage; an upload started before resumes"
OLD_PID=$REGISTRY_PLAIN_PID
OLD_ADDR=$REGISTRY_PLAIN_ADDR
hdrs=$(must "start a blob upload" curl -sS -D - -o /dev/null -X POST "$REGISTRY_PLAIN_URL/v2/lib/app/blobs/uploads/")
UPLOAD=$(header Location <<<"$hdrs")
[ -n "$UPLOAD" ] || fail "POST blobs/uploads/ gave no Location: $hdrs"
stop_registry plain
assert_eq "REGISTRY_PLAIN_PID after stop" "" "$REGISTRY_PLAIN_PID"
e2e_alive "$OLD_PID" && fail "docker-registry $OLD_PID still runs after stop_registry"
assert_eq "GET /v2/ while stopped" 000 "$(http_code --max-time 2 "$REGISTRY_PLAIN_URL/v2/")"
restart_registry plain
assert_eq "address after restart" "$OLD_ADDR" "$REGISTRY_PLAIN_ADDR"
[ "$REGISTRY_PLAIN_PID" != "$OLD_PID" ] || fail "restart_registry kept pid $OLD_PID"
hdrs=$(must "HEAD the manifest after restart" curl -sS -I -H "Accept: $REGISTRY_ACCEPT" \
  "$REGISTRY_PLAIN_URL/v2/lib/app/manifests/v1")
assert_eq "manifest after restart" "$APP_MANIFEST" "$(header Docker-Content-Digest <<<"$hdrs")"
[[ $UPLOAD == http* ]] || UPLOAD="$REGISTRY_PLAIN_URL$UPLOAD"
printf 'resumed' >"$E2E_TMP/chunk"
assert_eq "PATCH the upload started before the restart" 202 \
  "$(http_code -X PATCH --data-binary @"$E2E_TMP/chunk" -H 'Content-Type: application/octet-stream' "$UPLOAD")"
restart_registry plain  # while running: stops it first
stop_registry plain --kill
restart_registry plain
assert_eq "GET /v2/ after SIGKILL and restart" 200 "$(http_code "$REGISTRY_PLAIN_URL/v2/")"

step "htpasswd: right credentials push, wrong ones and none are refused"
start_registry basic --htpasswd bob 'b0b pass'
assert_eq "REGISTRY_BASIC_AUTH" htpasswd "$REGISTRY_BASIC_AUTH"
hdrs=$(curl -sS -D - -o /dev/null "$REGISTRY_BASIC_URL/v2/")
assert_contains "GET /v2/ without credentials" "$hdrs" "401 Unauthorized"
assert_contains "Basic challenge" "$(header WWW-Authenticate <<<"$hdrs")" "Basic realm="
assert_eq "GET /v2/ with credentials (registry_curl)" 200 \
  "$(registry_curl basic -o /dev/null -w '%{http_code}' "$REGISTRY_BASIC_URL/v2/")"
push_image "$LAYOUT:v1" "$REGISTRY_BASIC_ADDR/lib/app:v1" --creds 'bob:b0b pass'
assert_eq "htpasswd push digest" "$APP_MANIFEST" "$PUSHED_DIGEST"
msg=$(must_fail "push with a wrong password" skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
  --dest-creds bob:wrong "oci:$LAYOUT:v1" "docker://$REGISTRY_BASIC_ADDR/lib/app:wrong")
assert_contains "push with a wrong password" "$msg" "unauthorized"
msg=$(must_fail "push_image with a wrong password" \
  push_image "$LAYOUT:v1" "$REGISTRY_BASIC_ADDR/lib/app:wrong" --creds bob:wrong)
assert_contains "push_image with a wrong password" "$msg" "FAIL: push $LAYOUT:v1"
assert_eq "GET a manifest without credentials" 401 \
  "$(http_code -H "Accept: $REGISTRY_ACCEPT" "$REGISTRY_BASIC_URL/v2/lib/app/manifests/v1")"

step "token auth: the challenge, skopeo through the token flow, wrong credentials refused"
start_registry hub --token alice 's3cret!'
hdrs=$(curl -sS -D - -o /dev/null "$REGISTRY_HUB_URL/v2/")
assert_contains "GET /v2/ without a token" "$hdrs" "401 Unauthorized"
assert_eq "Bearer challenge" "Bearer realm=\"$REGISTRY_HUB_REALM\",service=\"$REGISTRY_HUB_SERVICE\"" \
  "$(header WWW-Authenticate <<<"$hdrs")"
push_image "$LAYOUT:v1" "$REGISTRY_HUB_ADDR/lib/app:v1" --creds 'alice:s3cret!'
assert_eq "token push digest" "$APP_MANIFEST" "$PUSHED_DIGEST"
TOKEN_LOG=$(cat "$REGISTRY_HUB_TOKEN_LOG")
assert_contains "token log of the push" "$TOKEN_LOG" \
  'status=200 flow=basic user=alice scope="repository:lib/app:pull,push" granted="repository:lib/app:pull,push"'
msg=$(must_fail "push with wrong token credentials" skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
  --dest-creds alice:wrong "oci:$LAYOUT:v1" "docker://$REGISTRY_HUB_ADDR/lib/app:wrong")
assert_contains "push with wrong token credentials" "$msg" "invalid username/password"
assert_contains "token log of the wrong credentials" "$(cat "$REGISTRY_HUB_TOKEN_LOG")" "status=401 flow=basic user=alice"

step "token auth with curl: a pull token reads, an anonymous token and a pull-only token are refused more"
TOKEN=$(registry_token hub repository:lib/app:pull)
claims=$(jwt_claims "$TOKEN")
for want in "\"iss\":\"$REGISTRY_HUB_ISSUER\"" '"sub":"alice"' "\"aud\":\"$REGISTRY_HUB_SERVICE\"" \
  '"access":[{"type":"repository","name":"lib/app","actions":["pull"]}]'; do
  assert_contains "JWT claims" "$claims" "$want"
done
hdrs=$(must "HEAD the manifest with a pull token" curl -sS -I -H "Authorization: Bearer $TOKEN" \
  -H "Accept: $REGISTRY_ACCEPT" "$REGISTRY_HUB_URL/v2/lib/app/manifests/v1")
assert_eq "manifest through a token" "$APP_MANIFEST" "$(header Docker-Content-Digest <<<"$hdrs")"
hdrs=$(curl -sS -D - -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "$REGISTRY_HUB_URL/v2/lib/app/blobs/uploads/")
assert_contains "push with a pull-only token" "$(header WWW-Authenticate <<<"$hdrs")" 'error="insufficient_scope"'
body=$(must "anonymous token" curl -sS --fail -G --data-urlencode "service=$REGISTRY_HUB_SERVICE" \
  --data-urlencode scope=repository:lib/app:pull "$REGISTRY_HUB_REALM")
ANON=$(json_field token <<<"$body")
assert_contains "anonymous token claims" "$(jwt_claims "$ANON")" '"access":[]'
assert_eq "anonymous token expires_in" 300 "$(json_field expires_in <<<"$body")"
hdrs=$(curl -sS -D - -o /dev/null -H "Authorization: Bearer $ANON" -H "Accept: $REGISTRY_ACCEPT" \
  "$REGISTRY_HUB_URL/v2/lib/app/manifests/v1")
assert_contains "manifest with an anonymous token" "$hdrs" "401 Unauthorized"
assert_contains "manifest with an anonymous token" "$(header WWW-Authenticate <<<"$hdrs")" 'error="insufficient_scope"'
assert_eq "anonymous token on /v2/" 200 "$(http_code -H "Authorization: Bearer $ANON" "$REGISTRY_HUB_URL/v2/")"
assert_eq "token request with wrong credentials" 401 \
  "$(http_code -u alice:nope -G --data-urlencode "service=$REGISTRY_HUB_SERVICE" "$REGISTRY_HUB_REALM")"
assert_eq "token request for another service" 400 \
  "$(http_code -u 'alice:s3cret!' -G --data-urlencode service=elsewhere "$REGISTRY_HUB_REALM")"
assert_contains "token log of the anonymous request" "$(cat "$REGISTRY_HUB_TOKEN_LOG")" \
  'status=200 flow=anonymous user=- scope="repository:lib/app:pull" granted=""'

step "token auth, OAuth2 POST: password grant gives a refresh token, refresh_token grant uses it"
body=$(must "POST grant_type=password" curl -sS --fail "$REGISTRY_HUB_REALM" \
  --data-urlencode grant_type=password --data-urlencode username=alice --data-urlencode 'password=s3cret!' \
  --data-urlencode "service=$REGISTRY_HUB_SERVICE" --data-urlencode scope=repository:lib/app:pull \
  --data-urlencode client_id=registry-fixture-test --data-urlencode access_type=offline)
REFRESH=$(json_field refresh_token <<<"$body")
[ -n "$REFRESH" ] || fail "password grant with access_type=offline gave no refresh_token: $body"
for refresh in "$REFRESH" "$REGISTRY_HUB_REFRESH_TOKEN"; do
  body=$(must "POST grant_type=refresh_token" curl -sS --fail "$REGISTRY_HUB_REALM" \
    --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$refresh" \
    --data-urlencode "service=$REGISTRY_HUB_SERVICE" --data-urlencode scope=repository:lib/app:pull \
    --data-urlencode client_id=registry-fixture-test)
  TOKEN=$(json_field access_token <<<"$body")
  assert_contains "refreshed token's subject" "$(jwt_claims "$TOKEN")" '"sub":"alice"'
  assert_eq "GET the manifest with a refreshed token" 200 "$(http_code -H "Authorization: Bearer $TOKEN" \
    -H "Accept: $REGISTRY_ACCEPT" "$REGISTRY_HUB_URL/v2/lib/app/manifests/v1")"
done
assert_eq "POST an unknown refresh token" 401 "$(http_code "$REGISTRY_HUB_REALM" -d grant_type=refresh_token \
  -d refresh_token=bogus --data-urlencode "service=$REGISTRY_HUB_SERVICE")"
assert_eq "POST a wrong password" 401 "$(http_code "$REGISTRY_HUB_REALM" -d grant_type=password \
  -d username=alice -d password=wrong --data-urlencode "service=$REGISTRY_HUB_SERVICE")"
TOKEN_LOG=$(cat "$REGISTRY_HUB_TOKEN_LOG")
assert_contains "token log of the password grant" "$TOKEN_LOG" "POST /token status=200 flow=password user=alice"
assert_contains "token log of the refresh grant" "$TOKEN_LOG" "POST /token status=200 flow=refresh_token user=alice"
assert_not_contains "token log (no password)" "$TOKEN_LOG" 's3cret!'
assert_not_contains "token log (no refresh token)" "$TOKEN_LOG" "$REGISTRY_HUB_REFRESH_TOKEN"

step "TLS: the registry and its token server answer over HTTPS with REGISTRY_<NAME>_CA"
start_registry secure --tls --token carol pw2
assert_eq "REGISTRY_SECURE_URL" "https://$REGISTRY_SECURE_ADDR" "$REGISTRY_SECURE_URL"
[[ $REGISTRY_SECURE_REALM == https://127.0.0.1:* ]] || fail "REGISTRY_SECURE_REALM is '$REGISTRY_SECURE_REALM'"
assert_eq "GET /v2/ with --cacert" 401 "$(http_code --cacert "$REGISTRY_SECURE_CA" "$REGISTRY_SECURE_URL/v2/")"
msg=$(must_fail "GET /v2/ without the CA" curl -sS "$REGISTRY_SECURE_URL/v2/")
assert_contains "GET /v2/ without the CA" "$msg" "certificate"
cert=$(must "read the server certificate" openssl x509 -noout -text -in "$REGISTRY_SECURE_DIR/server.pem")
assert_contains "server certificate" "$cert" "IP Address:127.0.0.1"
push_image "$LAYOUT:v1" "$REGISTRY_SECURE_ADDR/lib/app:v1" --creds carol:pw2 --format v2s2
assert_eq "TLS push digest" "$V2S2_DIGEST" "$PUSHED_DIGEST"
TOKEN=$(registry_token secure repository:lib/app:pull)
assert_eq "GET the manifest over TLS" 200 "$(http_code --cacert "$REGISTRY_SECURE_CA" \
  -H "Authorization: Bearer $TOKEN" -H "Accept: $REGISTRY_ACCEPT" "$REGISTRY_SECURE_URL/v2/lib/app/manifests/v1")"

step "stop_token_server: the realm stops answering"
stop_token_server secure
assert_eq "REGISTRY_SECURE_TOKEN_PID after stop" "" "$REGISTRY_SECURE_TOKEN_PID"
assert_eq "token request to a stopped token server" 000 \
  "$(http_code --max-time 2 --cacert "$REGISTRY_SECURE_CA" "$REGISTRY_SECURE_REALM")"

e2e_pass
