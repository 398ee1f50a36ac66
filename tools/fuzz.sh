#!/usr/bin/env bash
# Fuzzes one target of tools/fuzz with libFuzzer (clang-14, ASan, UBSan).
#   tools/fuzz.sh TARGET SECONDS      e.g. tools/fuzz.sh reference_fuzzer 600
#   tools/fuzz.sh --all SECONDS       every target, SECONDS each
# New inputs that reach new code are added to testdata/fuzz/TARGET/ (commit
# the useful ones); a crash leaves crash-* in the current directory and the
# script fails. Prints the number of runs per target (docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: tools/fuzz.sh TARGET|--all SECONDS" >&2; exit 2; }
targets=("$1")
if [ "$1" == --all ]; then
  mapfile -t targets < <(sed -n 's/^ *name = "\(.*_fuzzer\)",$/\1/p' tools/fuzz/BUILD.bazel)
fi
bazel build --config=fuzz "${targets[@]/#/\/\/tools\/fuzz:}"
bin=$(bazel info --config=fuzz bazel-bin)
# Scratch in memory when there is some: targets that write files (config,
# hosts, archive and the service targets' stores) write them to TMPDIR.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then work=$(mktemp -d -p /dev/shm); else work=$(mktemp -d); fi
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
for t in "${targets[@]}"; do
  mkdir -p "testdata/fuzz/$t" "$work/$t"
  # The targets that run a real store per input (the services' and the
  # archive import's) skip libFuzzer's per-input leak check, which rescans
  # the whole heap (RocksDB's and gRPC's) after nearly every input since
  # their threads allocate beside it, and its entropic schedule, whose
  # bookkeeping over their ~30,000 features cost more than the input (runs
  # per second: 1.7x for the archive, 3.8x for Content). Leaks are still
  # checked when the process exits.
  flags=()
  case "$t" in
    *_service_fuzzer | archive_fuzzer) flags=(-detect_leaks=0 -entropic=0) ;;
  esac
  # New finds go to a scratch corpus first, then are merged (minimised) into
  # the seed corpus, so it grows only by inputs that add coverage.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$bin/tools/fuzz/$t" "${flags[@]}" -max_total_time="$2" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$work/$t" "testdata/fuzz/$t" 2>"$work/$t.log" ||
    { tail -50 "$work/$t.log" >&2; echo "fuzz: $t found a crash" >&2; exit 1; }
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  "$bin/tools/fuzz/$t" -merge=1 "testdata/fuzz/$t" "$work/$t" >/dev/null 2>&1 || true
  echo "fuzz: $t: ${runs:-?} runs in $2 s, corpus $(ls "testdata/fuzz/$t" | wc -l) inputs"
done
