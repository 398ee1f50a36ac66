#!/usr/bin/env bash
# Fuzzes targets of tools/fuzz with libFuzzer (clang-14, ASan, UBSan).
#   tools/fuzz.sh TARGET SECONDS              e.g. tools/fuzz.sh reference_fuzzer 600
#   tools/fuzz.sh --all SECONDS               every target, SECONDS each
#   tools/fuzz.sh --jobs N TARGET... SECONDS  N targets at a time, SECONDS each
# New inputs that reach new code are added to testdata/fuzz/TARGET/ (commit
# the useful ones); a crash leaves crash-* in the current directory and the
# script fails. Prints the number of runs per target (docs/reliability.md).
#
# Long runs: one target per core (--jobs 2 here). A service target's input is
# a server's gRPC calls between its threads, and seven of them on two cores
# took 13-20 ms of CPU an input against 10 one to a core. Runs of a minute or
# more record two frames of each allocation's stack (ASan's
# malloc_context_size=2: no unwinding, 10-15% faster than the whole stack; a
# crash's input replays with it; fewer than two and LeakSanitizer reports
# nothing at exit, nor can its suppressions match) and allow an input 30 s, so
# that a run starved by other work is not stopped as a hang (a call's own
# deadline, IMAGED_FUZZ_CALL_DEADLINE, still catches one).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: tools/fuzz.sh [--jobs N] TARGET...|--all SECONDS" >&2; exit 2; }
jobs=1
if [ "${1:-}" == --jobs ]; then
  [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage
  jobs=$2
  shift 2
fi
[ $# -ge 2 ] || usage
seconds=${*: -1}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || usage
targets=("${@:1:$#-1}")
if [ "${targets[*]}" == --all ]; then
  mapfile -t targets < <(sed -n 's/^ *name = "\(.*_fuzzer\)",$/\1/p' tools/fuzz/BUILD.bazel)
fi
bazel build --config=fuzz "${targets[@]/#/\/\/tools\/fuzz:}"
bin=$(bazel info --config=fuzz bazel-bin)
# Scratch in memory when there is some: targets that write files (config,
# hosts, archive and the service targets' stores) write them to TMPDIR.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then work=$(mktemp -d -p /dev/shm); else work=$(mktemp -d); fi
trap 'rm -rf "$work"' EXIT
# What the run and its merge share; only the run checks leaks at exit.
stack=""
timeout=10
if [ "$seconds" -ge 60 ]; then
  stack=:malloc_context_size=2
  timeout=30
fi
ubsan=halt_on_error=1:print_stacktrace=1
limits=(-timeout="$timeout" -rss_limit_mb=2048)

# fuzz TARGET: one target's run and merge; its report in $work/TARGET.out.
fuzz() {
  local t=$1
  export TMPDIR="$work/$t.tmp"
  mkdir -p "testdata/fuzz/$t" "$work/$t" "$TMPDIR"
  # The targets that run a real store per input (the services' and the
  # archive import's) skip libFuzzer's per-input leak check, which rescans
  # the whole heap (RocksDB's and gRPC's) after nearly every input since
  # their threads allocate beside it, and its entropic schedule, whose
  # bookkeeping over their ~30,000 features cost more than the input (runs
  # per second: 1.7x for the archive, 3.8x for Content). Leaks are still
  # checked when the process exits.
  local flags=()
  case "$t" in
    *_service_fuzzer | archive_fuzzer) flags=(-detect_leaks=0 -entropic=0) ;;
  esac
  # New finds go to a scratch corpus first, then are merged (minimised) into
  # the seed corpus, so it grows only by inputs that add coverage.
  if ! ASAN_OPTIONS=detect_leaks=1$stack UBSAN_OPTIONS=$ubsan \
    "$bin/tools/fuzz/$t" "${flags[@]}" "${limits[@]}" -max_total_time="$seconds" -max_len=65536 \
    -print_final_stats=1 "$work/$t" "testdata/fuzz/$t" 2>"$work/$t.log"; then
    { tail -50 "$work/$t.log"; echo "fuzz: $t found a crash"; } >"$work/$t.out"
    return 1
  fi
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
  # The merge runs every input again (in a child it restarts after a crash),
  # under the same sanitizers: a report there fails the run as well. Leaks
  # at exit are the run's to check: each exit with imaged's threads still
  # running is a chance for gRPC's at-exit race (service_fuzz.cc).
  ASAN_OPTIONS=detect_leaks=0$stack UBSAN_OPTIONS=$ubsan \
    "$bin/tools/fuzz/$t" -merge=1 "${limits[@]}" "testdata/fuzz/$t" "$work/$t" \
    >"$work/$t.merge.log" 2>&1 || true
  local report='^==[0-9]*== *ERROR\|^SUMMARY: [A-Za-z]*Sanitizer'
  if grep -q "$report" "$work/$t.merge.log"; then
    { grep -m1 -B2 -A40 "$report" "$work/$t.merge.log"
      echo "fuzz: $t: its merge found a crash"; } >"$work/$t.out"
    return 1
  fi
  echo "fuzz: $t: ${runs:-?} runs in $seconds s, corpus $(ls "testdata/fuzz/$t" | wc -l) inputs" >"$work/$t.out"
}

# At most `jobs` at a time; each report is printed as its target ends.
failed=0
declare -A running=()  # pid -> target
reap_one() {
  local pid rc=0
  wait -n -p pid || rc=$?
  local t=${running[$pid]}
  unset "running[$pid]"
  if [ "$rc" -eq 0 ]; then
    cat "$work/$t.out"
  else
    cat "$work/$t.out" >&2 2>/dev/null || echo "fuzz: $t failed ($rc)" >&2
    failed=1
  fi
}
for t in "${targets[@]}"; do
  while [ "${#running[@]}" -ge "$jobs" ]; do reap_one; done
  fuzz "$t" &
  running[$!]=$t
done
while [ "${#running[@]}" -gt 0 ]; do reap_one; done
[ "$failed" -eq 0 ]
