#!/usr/bin/env bash
# containerd 2.x's Transfer service through imaged, driven over the wire as
# ctr 2.x's `images pull`, `images import` and `images export` drive it
# (tools/testing/transfer_client: no containerd 2.x binary builds here):
# a pull from Debian's docker-registry with htpasswd credentials answered on
# the auth stream, progress on the progress stream, a wrong password, a
# repeated pull; an export that containerd 1.6 imports; containerd 1.6's
# export imported back with ctr 2.x's naming rules (--base-name, --digests,
# --label).
#
#   transfer_test.sh IMAGED TRANSFER_CLIENT
set -euo pipefail

LIB="${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing"
source "$LIB/e2e_lib.sh"
source "$LIB/registry_lib.sh"

IMAGED=$(realpath "$1")
TRANSFER=$(realpath "$2")
e2e_init
require_tools docker-registry skopeo umoci htpasswd ctr containerd

start_imaged "$E2E_TMP/root" "$E2E_SOCKDIR/imaged.sock"
tc() { "$TRANSFER" --address "$IMAGED_SOCK" "$@"; }
ctr_imaged() { ctr --address "$IMAGED_SOCK" "$@"; }

step "ctr 2.x images pull: credentials on the auth stream, progress, one record"
start_registry auth --htpasswd alice s3cret
R=$REGISTRY_AUTH_ADDR
build_image "$E2E_TMP/app" v1 2 300000
APP_CONFIG=$IMAGE_CONFIG
APP_LAYERS=("${IMAGE_LAYERS[@]}")
push_image "$E2E_TMP/app:v1" "$R/team/app:v1" --creds alice:s3cret
APP_DIGEST=$PUSHED_DIGEST
out=$(must "transfer pull" tc pull "$R/team/app:v1" --user alice:s3cret --label team=blue)
assert_contains "progress" "$out" "progress Resolving from OCI Registry ($R/team/app:v1)"
assert_contains "progress" "$out" "progress Pulling from OCI Registry ($R/team/app:v1)"
assert_contains "progress" "$out" "progress complete layer-${APP_LAYERS[0]}"
assert_contains "progress" "$out" "progress complete config-$APP_CONFIG"
assert_contains "progress" "$out" "progress saved $R/team/app:v1"
assert_contains "progress" "$out" "progress Completed pull from OCI Registry ($R/team/app:v1)"
records=$(ctr_imaged -n default images ls)
assert_eq "records after the pull" 2 "$(wc -l <<<"$records")"  # header + one
assert_contains "record" "$records" "$R/team/app:v1"
assert_contains "record target" "$records" "$APP_DIGEST"
assert_contains "record labels" "$records" "team=blue"
assert_not_contains "record labels" "$records" "io.cri-containerd.image=managed"
for d in "${APP_LAYERS[@]}" "$APP_CONFIG" "$APP_DIGEST"; do
  assert_contains "content after the pull" "$(ctr_imaged -n default content ls -q)" "$d"
done
assert_eq "temporary leases left" "" "$(ctr_imaged -n default leases ls -q)"

step "a wrong password: Unauthenticated, nothing named"
build_image "$E2E_TMP/app" v2 1 1000
push_image "$E2E_TMP/app:v2" "$R/team/app:v2" --creds alice:s3cret
err=$(tc pull "$R/team/app:v2" --user alice:wrong 2>&1) && fail "a pull with a wrong password succeeded"
assert_contains "error" "$err" "transfer_client: UNAUTHENTICATED"
assert_not_contains "error" "$err" "wrong"
assert_not_contains "records" "$(ctr_imaged -n default images ls -q)" "$R/team/app:v2"

step "pulling it again: every blob already exists"
out=$(must "transfer pull again" tc pull "$R/team/app:v1" --user alice:s3cret)
assert_contains "progress" "$out" "progress already exists layer-${APP_LAYERS[1]}"
assert_not_contains "progress" "$out" "progress downloading"
# The record was replaced as containerd replaces it: labels as given (none).
assert_not_contains "record labels" "$(ctr_imaged -n default images ls)" "team=blue"

step "ctr 2.x images export: the stream's archive imports into containerd 1.6"
out=$(must "transfer export" tc export "$E2E_TMP/app.tar" "$R/team/app:v1")
assert_contains "progress" "$out" "progress Exporting"
assert_contains "progress" "$out" "progress Completed export"
CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK" io.containerd.grpc.v1.cri </dev/null
e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$E2E_TMP/containerd.log"
ctr_ctrd() { ctr --address "$CTRD_SOCK" "$@"; }
must "ctr images import" ctr_ctrd images import --no-unpack "$E2E_TMP/app.tar" >/dev/null
assert_contains "containerd's records" "$(ctr_ctrd images ls)" "$R/team/app:v1"
assert_contains "containerd's record target" "$(ctr_ctrd images ls)" "$APP_DIGEST"

step "ctr 2.x images import of containerd's export, with ctr 2.x's naming"
must "ctr images export" ctr_ctrd images export "$E2E_TMP/ctrd.tar" "$R/team/app:v1"
out=$(must "transfer import" tc --namespace one import "$E2E_TMP/ctrd.tar")
assert_contains "progress" "$out" "progress Importing"
assert_contains "progress" "$out" "progress saved $R/team/app:v1"
assert_contains "progress" "$out" "progress Completed import"
assert_contains "imported record" "$(ctr_imaged -n one images ls)" "$APP_DIGEST"
# --base-name outside the image's repository drops its name; --digests
# names it after the base; --label labels it.
must "transfer import --base-name" tc --namespace two import "$E2E_TMP/ctrd.tar" \
  --base-name example.com/mine --digests --label origin=ctrd >/dev/null 2>&1
two=$(ctr_imaged -n two images ls)
assert_not_contains "records with a foreign base name" "$two" "$R/team/app:v1"
assert_contains "digest record" "$two" "example.com/mine@$APP_DIGEST"
assert_contains "digest record labels" "$two" "origin=ctrd"
# A compressed archive is taken too (containerd's importer detects it).
gzip -c "$E2E_TMP/ctrd.tar" >"$E2E_TMP/ctrd.tar.gz"
must "transfer import of a gzipped archive" tc --namespace three import "$E2E_TMP/ctrd.tar.gz" >/dev/null 2>&1
assert_contains "record from the gzipped archive" "$(ctr_imaged -n three images ls)" "$R/team/app:v1"

step "what is not served is refused, and imaged keeps serving"
err=$(tc export "$E2E_TMP/none.tar" "$R/team/none:v1" 2>&1) && fail "export of a missing image succeeded"
assert_contains "error" "$err" "transfer_client: NOT_FOUND"
assert_contains "records after the refusals" "$(must "ctr images ls" ctr_imaged -n default images ls -q)" "$R/team/app:v1"
# ctr 2.x's client leases are deleted; imaged's temporary ones too.
for ns in default one two three; do
  assert_eq "leases left in $ns" "" "$(ctr_imaged -n "$ns" leases ls -q)"
done
e2e_stop_containerd
stop_imaged
