#!/usr/bin/env bash
# Installs whatever is missing, then builds and runs every test.
#   tools/test.sh [extra bazel test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
exec bazel test //... "$@"
