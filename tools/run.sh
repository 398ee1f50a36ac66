#!/usr/bin/env bash
# Installs whatever is missing, builds imaged and imagectl (the quick start
# uses bazel-bin/tools/imagectl/imagectl next) and runs imaged in the
# foreground on an embedded default: state (RocksDB, blobs, ingests) under
# .state/ in this checkout, the socket at .state/imaged.sock. Extra flags go
# to imaged.
#   tools/run.sh [--config FILE] [--root DIR] [--address PATH] ...
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bazel build //plugin:imaged //tools/imagectl:imagectl
mkdir -p .state
exec bazel-bin/plugin/imaged --root "$PWD/.state/root" --address "$PWD/.state/imaged.sock" "$@"
