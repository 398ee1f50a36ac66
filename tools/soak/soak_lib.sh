# Shared by tools/soak/crash.sh and load.sh (sourced after e2e_lib.sh and registry_lib.sh).

# Sets IMAGED and SOAK_CLIENT to absolute paths: as given in the
# environment, else built with bazel from the checkout at $1.
soak_binaries() {
  local repo=$1 bin
  if [ -z "${IMAGED:-}" ] || [ -z "${SOAK_CLIENT:-}" ]; then
    (cd "$repo" && bazel build //plugin:imaged //tools/soak:soak_client)
    # Not the bazel-bin symlink: a build with another --config repoints it.
    bin=$(cd "$repo" && bazel info bazel-bin)
    IMAGED=$bin/plugin/imaged
    SOAK_CLIENT=$bin/tools/soak/soak_client
  fi
  IMAGED=$(realpath "$IMAGED")
  SOAK_CLIENT=$(realpath "$SOAK_CLIENT")
}

# soak_push TAG REF BYTES: pushes a one-layer image (BYTES of random layer)
# to REF on the registry and appends "--pull REF=<its image ID>" to PULLS.
soak_push() {
  local tag=$1 ref=$2 bytes=$3 layout=$E2E_TMP/push-$1
  OCI_QUICK_ENTRIES=()
  oci_quick_image "$layout" "soak/img:$tag" "$bytes"
  oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$layout/index.json"
  push_image "$layout:$tag" "$ref" --format oci
  PULLS+=(--pull "$ref=$OCI_CONFIG")
}

# soak_archive NAME...: an OCI archive of one image per name, for
# `ctr images import`; appends "--archive FILE=NAME@MANIFEST,..." to ARCHIVES.
soak_archive() {
  local layout=$E2E_TMP/archive-$1 name spec=""
  OCI_QUICK_ENTRIES=()
  for name in "$@"; do
    oci_quick_image "$layout" "$name" $((96 << 10))
    spec+="${spec:+,}$name@$OCI_MANIFEST"
  done
  oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$layout/index.json"
  oci_archive "$layout" "$layout.tar"
  ARCHIVES+=(--archive "$layout.tar=$spec")
}
