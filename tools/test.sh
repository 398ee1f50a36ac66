#!/usr/bin/env bash
# Installs whatever is missing, then builds and runs every test: Bazel's
# (which replay every fuzz corpus), then each fuzz target briefly with
# libFuzzer, ASan and UBSan (IMAGED_FUZZ_SECONDS each, default 10; 0: none).
#   tools/test.sh [extra bazel test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
rc=0
bazel test //... "$@" || rc=$?
if [ "${IMAGED_FUZZ_SECONDS:-10}" -gt 0 ]; then
  # A crash found here fails the run even when every Bazel test passed.
  tools/fuzz.sh --all "${IMAGED_FUZZ_SECONDS:-10}" || { [ "$rc" -ne 0 ] || rc=1; }
fi
exit "$rc"
