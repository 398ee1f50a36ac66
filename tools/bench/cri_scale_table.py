#!/usr/bin/env python3
"""Renders cri_scale_bench results (--json) as the Markdown table of
docs/benchmarks.md "CRI at node scale".

    tools/bench/cri_scale_table.py results-30000.json [imaged-30000.json ...]

Several files of one N merge: a system found in a later file replaces the
same system of an earlier one (an imaged-only rerun next to the run that
also measured containerd, say). Missing figures print as "–".
"""
import json
import sys

SYSTEMS = ["imaged", "containerd", "memory-index", "pr7061"]


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def num(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, int) or (digits == 0):
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def pair(a, b, digits=2, sep=" / "):
    if a is None and b is None:
        return "–"
    return f"{num(a, digits)}{sep}{num(b, digits)}"


def load(s):
    if "import_s" in s:
        return f"{num(s.get('load_s'), 1)} ({num(s.get('import_s'), 1)} import)"
    return num(s.get("load_s"), 1)


def rows(n, merged):
    systems = [k for k in SYSTEMS if k in merged]
    out = []

    def row(label, f):
        out.append("| " + label + " | " + " | ".join(f(merged[k]) for k in systems) + " |")

    out.append("| | " + " | ".join(systems) + " |")
    out.append("|---" * (len(systems) + 1) + "|")
    row("load (s): APIs / ctr import + CRI catch-up", lambda s: load(s) if "load_s" in s else "–")
    row("start-up to a complete ListImages (s)", lambda s: num(s.get("startup_s"), 2))
    row("blob files opened at start",
        lambda s: num(s.get("blob_opens_at_start"), 0) if "blob_opens_at_start" in s else "–")
    row("RSS after start / max under load (MiB)",
        lambda s: pair(s.get("rss_after_start_mib"), s.get("rss_under_load_mib"), 1))
    row("disk: metadata / blobs (MB)",
        lambda s: pair(s["disk_meta_bytes"] / 1e6, s["disk_blob_bytes"] / 1e6, 1)
        if "disk_meta_bytes" in s else "–")
    row("ListImages, unchanged: p50 / p99 (ms)",
        lambda s: pair(get(s, "list_unchanged", "p50_ms"), get(s, "list_unchanged", "p99_ms")))
    row("… server CPU per call (ms)", lambda s: num(get(s, "list_unchanged", "cpu_per_call_ms")))
    row("ListImages after a write: p50 / p99 (ms)",
        lambda s: pair(get(s, "list_after_write", "p50_ms"), get(s, "list_after_write", "p99_ms")))
    for kind in ["tag", "digest", "id"]:
        row(f"ImageStatus by {kind}, 1 caller: p50 / p99 (µs)",
            lambda s, k=kind: pair(get(s, "status", k, "1", "p50_us"),
                                   get(s, "status", k, "1", "p99_us"), 0))
    for kind in ["tag", "digest", "id"]:
        row(f"ImageStatus by {kind}, 16 callers: p50 / p99 / p99.9 (µs)",
            lambda s, k=kind: "–" if get(s, "status", k, "16") is None else " / ".join(
                num(get(s, "status", k, "16", f), 0) for f in ["p50_us", "p99_us", "p999_us"]))
        row("… calls/s (1 / 4 / 16 callers); server CPU µs/call at 16",
            lambda s, k=kind: "–" if get(s, "status", k) is None else
            " / ".join(num(get(s, "status", k, c, "calls_per_s"), 0) for c in ["1", "4", "16"]) +
            "; " + num(get(s, "status", k, "16", "cpu_per_call_us"), 0))
    row("mixed load: ListImages p50 / p99 (ms)",
        lambda s: pair(get(s, "mixed", "list_p50_ms"), get(s, "mixed", "list_p99_ms"), 1))
    row("mixed load: ImageStatus p50 / p99 (µs)",
        lambda s: pair(get(s, "mixed", "status_p50_us"), get(s, "mixed", "status_p99_us"), 0))
    row("mixed load: server CPU (cores)", lambda s: num(get(s, "mixed", "server_cpu_cores")))
    return out


def main(paths):
    merged, head = {}, {}
    for p in paths:
        with open(p) as f:
            d = json.load(f)
        head = {k: v for k, v in d.items() if k != "systems"} or head
        merged.update(d.get("systems", {}))
    n = head.get("images", 0)
    print(f"**{n:,} images ({head.get('names', 3 * n):,} names)**; ListImages answer "
          f"{head.get('response_bytes', 0) / 1e6:.2f} MB, protobuf serializes it in "
          f"{head.get('serialize_ms', 0):.2f} ms")
    print()
    print("\n".join(rows(n, merged)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
