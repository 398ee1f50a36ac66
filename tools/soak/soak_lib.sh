# Shared by tools/soak/crash.sh, load.sh and hostile.sh (sourced after
# e2e_lib.sh; soak_push and soak_archive need registry_lib.sh too).

# soak_options DEFAULT_THREADS ARGS...: parses --duration Nm|Ns (default
# 10m) and --threads N; sets DURATION, THREADS and SECONDS_TOTAL.
soak_options() {
  THREADS=$1 DURATION=10m
  shift
  local usage="usage: $0 [--duration 10m] [--threads $THREADS]"
  while [ $# -gt 0 ]; do
    case "$1" in
      --duration) DURATION=${2:?}; shift 2 ;;
      --threads) THREADS=${2:?}; shift 2 ;;
      *) echo "$usage" >&2; exit 2 ;;
    esac
  done
  case "$DURATION" in
    *m) SECONDS_TOTAL=$((${DURATION%m} * 60)) ;;
    *s) SECONDS_TOTAL=${DURATION%s} ;;
    *) echo "--duration takes Nm or Ns" >&2; exit 2 ;;
  esac
}

# soak_binaries REPO VAR //CLIENT:TARGET: sets IMAGED and the variable VAR
# (SOAK_CLIENT, HOSTILE_CLIENT) to absolute paths: as given in the
# environment, else built with bazel from the checkout at REPO.
soak_binaries() {
  local repo=$1 var=$2 target=$3 bin path
  if [ -z "${IMAGED:-}" ] || [ -z "${!var:-}" ]; then
    (cd "$repo" && bazel build //plugin:imaged "$target")
    # Not the bazel-bin symlink: a build with another --config repoints it.
    bin=$(cd "$repo" && bazel info bazel-bin)
    IMAGED=$bin/plugin/imaged
    path=${target#//}
    printf -v "$var" '%s' "$bin/${path/://}"
  fi
  IMAGED=$(realpath "$IMAGED")
  printf -v "$var" '%s' "$(realpath "${!var}")"
}

# soak_root NAME: sets ROOT to a new state directory for imaged, in memory
# when /dev/shm is there (after e2e_init).
soak_root() {
  ROOT=$(mktemp -d "/dev/shm/imaged-$1.XXXXXX" 2>/dev/null || mktemp -d "$E2E_TMP/root.XXXXXX")
}

# soak_sample LABEL: appends "LABEL rss_kib fds" of imaged (IMAGED_PID) to
# SAMPLES and prints it.
SAMPLES=()
soak_sample() {
  local rss fds
  rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$IMAGED_PID/status")
  fds=$(ls "/proc/$IMAGED_PID/fd" | wc -l)
  SAMPLES+=("$1 $rss $fds")
  echo "    $1: VmRSS $rss KiB, open fds $fds"
}

# soak_table HEADING: SAMPLES as a Markdown table (RSS in MiB).
soak_table() {
  local label rss fds s
  echo "| $1 | VmRSS (MiB) | open fds |"
  echo "|---|---|---|"
  for s in "${SAMPLES[@]}"; do
    read -r label rss fds <<<"$s"
    printf '| %s | %.1f | %s |\n' "$label" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$fds"
  done
}

# soak_growth: sets GROWTH to what grew from the third sample (after the
# warm-up) to the last one: fds by more than 16, RSS by more than 25%;
# empty when nothing did. Prints the verdict.
soak_growth() {
  local rss_warm fds_warm rss_last fds_last
  GROWTH=""
  if [ ${#SAMPLES[@]} -ge 4 ]; then
    read -r _ rss_warm fds_warm <<<"${SAMPLES[2]}"
    read -r _ rss_last fds_last <<<"${SAMPLES[-1]}"
    ((fds_last - fds_warm > 16)) && GROWTH+=" fds $fds_warm -> $fds_last"
    ((rss_last * 4 > rss_warm * 5)) && GROWTH+=" VmRSS ${rss_warm} -> ${rss_last} KiB"
  fi
  if [ -z "$GROWTH" ]; then
    echo "growth after warm-up (third sample to the last): none flagged"
  else
    echo "GROWTH after warm-up (third sample to the last):$GROWTH"
  fi
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
