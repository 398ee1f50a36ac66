#!/usr/bin/env bash
# Draws cri_scale_bench results (issue 6) as a PNG: ListImages and
# ImageStatus latency (p50) against the number of images, one line per
# system, log-log.
#
#   tools/bench/plot_cri_scale.sh RESULTS.tsv OUT.png
#
# RESULTS.tsv is what `cri_scale_bench --tsv FILE` appends (images, system,
# metric, value per line), from runs at several N. Needs gnuplot
# (tools/install_deps.sh installs gnuplot-nox).
set -euo pipefail

tsv=${1:?usage: $0 RESULTS.tsv OUT.png}
out=${2:?usage: $0 RESULTS.tsv OUT.png}
command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# series SYSTEM METRIC FILE: "images value" lines, sorted by images (the last
# run at each N wins).
series() {
  awk -F'\t' -v s="$1" -v m="$2" '$2 == s && $3 == m { v[$1] = $4 } END { for (n in v) print n, v[n] }' "$tsv" |
    sort -n >"$3"
}

for sys in imaged containerd memory-index pr7061; do
  series "$sys" list_unchanged.p50_ms "$tmp/list-$sys"
  series "$sys" status.tag.1.p50_us "$tmp/status-$sys"
  series "$sys" status.tag.16.calls_per_s "$tmp/rate-$sys"
done
series imaged list_after_write.p50_ms "$tmp/list-imaged-write"
series protobuf serialize_ms "$tmp/list-serialize"

gnuplot <<GNUPLOT
set terminal pngcairo size 1500,500 font "sans,10"
set output "$out"
set multiplot layout 1,3 title "imaged vs containerd 1.6 CRI (2 cores; x3 names per image)"
set logscale xy
set grid
set key top left
set xlabel "images"
set format x "%.0s%c"
set title "ListImages p50 (ms)"
set ylabel "ms"
plot "$tmp/list-containerd" using 1:2 with linespoints title "containerd CRI", \
     "$tmp/list-memory-index" using 1:2 with linespoints title "in-memory index (baseline)", \
     "$tmp/list-pr7061" using 1:2 with linespoints title "PR #7061 list+group (baseline)", \
     "$tmp/list-imaged-write" using 1:2 with linespoints title "imaged, right after a write", \
     "$tmp/list-imaged" using 1:2 with linespoints title "imaged, unchanged (cached)", \
     "$tmp/list-serialize" using 1:2 with lines dashtype 2 title "protobuf: serialize the answer"
set title "ImageStatus by tag p50, 1 caller (us)"
set ylabel "us"
plot "$tmp/status-containerd" using 1:2 with linespoints title "containerd CRI", \
     "$tmp/status-memory-index" using 1:2 with linespoints title "in-memory index", \
     "$tmp/status-pr7061" using 1:2 with linespoints title "PR #7061", \
     "$tmp/status-imaged" using 1:2 with linespoints title "imaged"
set title "ImageStatus by tag, 16 callers (calls/s)"
set ylabel "calls/s"
unset logscale y
set yrange [0:*]
plot "$tmp/rate-containerd" using 1:2 with linespoints title "containerd CRI", \
     "$tmp/rate-memory-index" using 1:2 with linespoints title "in-memory index", \
     "$tmp/rate-pr7061" using 1:2 with linespoints title "PR #7061", \
     "$tmp/rate-imaged" using 1:2 with linespoints title "imaged"
unset multiplot
GNUPLOT
echo "wrote $out"
