#!/usr/bin/env bash
# The imaged binary's startup contract: a clear message and a non-zero exit for
# a bad config, a root it cannot create, and a socket a live server answers on;
# SIGTERM stops it cleanly and removes the socket.
set -euo pipefail

imaged=$1
dir=$(mktemp -d /tmp/imaged-cli.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_exit CODE PATTERN -- ARGS...: imaged exits with CODE, stderr matching PATTERN.
expect_exit() {
  local want=$1 pattern=$2; shift 3
  local got=0
  "$imaged" "$@" >"$dir/out" 2>&1 || got=$?
  [ "$got" -eq "$want" ] || fail "imaged $* exited $got, want $want: $(cat "$dir/out")"
  grep -q -- "$pattern" "$dir/out" || fail "imaged $* said '$(cat "$dir/out")', want /$pattern/"
}

wait_for_socket() {
  for _ in $(seq 1 100); do [ -S "$1" ] && return 0; sleep 0.05; done
  fail "socket $1 never appeared"
}

# --version: the release and the commit, exit 0, nothing started.
expect_exit 0 "^imaged [0-9][0-9.]* (commit " -- --version

printf 'root = \n' >"$dir/broken.toml"
expect_exit 2 "broken.toml" -- --config "$dir/broken.toml"
printf 'colour = "blue"\n' >"$dir/unknown.toml"
expect_exit 2 "colour: unknown key" -- --config "$dir/unknown.toml"
expect_exit 2 "no such file" -- --config "$dir/missing.toml"
expect_exit 2 "not octal" -- --socket-mode 0999 --root "$dir/r" --address "$dir/s.sock"

touch "$dir/file"
expect_exit 1 "$dir/file/root" -- --root "$dir/file/root" --address "$dir/a.sock"

"$imaged" --root "$dir/root" --address "$dir/run/imaged.sock" 2>"$dir/live.log" &
pids+=($!)
live=$!
wait_for_socket "$dir/run/imaged.sock"
expect_exit 1 "in use by a live server" -- --root "$dir/root2" --address "$dir/run/imaged.sock"
[ -S "$dir/run/imaged.sock" ] || fail "a failed start removed the live server's socket"
# The same root from a second process, on another socket.
expect_exit 1 "in use by another process" -- --root "$dir/root" --address "$dir/other.sock"

kill -TERM "$live"
wait "$live" || fail "imaged exited non-zero after SIGTERM: $(cat "$dir/live.log")"
[ ! -e "$dir/run/imaged.sock" ] || fail "socket left behind after SIGTERM"
grep -q "stopped" "$dir/live.log" || fail "no clean stop in log: $(cat "$dir/live.log")"
echo PASS
