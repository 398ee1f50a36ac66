# Shared by tools/soak/crash.sh and load.sh (sourced after e2e_lib.sh).

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
