#!/usr/bin/env python3
"""Format benches/compare.sh results (JSON lines) as a Markdown table.

    python benches/python/compare_table.py RESULTS.jsonl --n N --chunks C \
        --data FILE.npy --threads T --repeat R

Input records: {"source": "process", ...} from compare.sh's timed runs (the
stdout of overhead.py runs holds its JSON line), npy_reduce.py's lines, and
{"source": "check", ...} for tessera's written output. Exit status 1 if a
tessera run failed or its result disagrees with the reference.
"""

import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?\b(?:nan|inf)\b", re.I)
REL_TOL = 1e-6


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def last_number(text):
    found = NUMBER.findall(text or "")
    return float(found[-1]) if found else None


def secs(s):
    if s is None:
        return "?"
    return f"{s:.3g} s" if s < 10 else f"{s:.1f} s"


def close(a, b):
    return a is not None and b is not None and math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-9)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--chunks", type=int, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeat", type=int, required=True)
    a = p.parse_args()

    with open(a.results) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    proc = [r for r in recs if r.get("source") == "process"]
    npy = {(r["tool"], r["op"]): r for r in recs if "op" in r}
    checks = {(r["workload"], r["tool"]): r for r in recs if r.get("source") == "check"}
    bad = False

    def tessera_cell(workload, expected, got_of, per):
        """Best successful tessera run, with a result check against `expected`."""
        nonlocal bad
        runs = [r for r in proc if r["workload"] == workload and r["tool"] == "tessera"]
        if not runs:
            return "–", None
        ok = [r for r in runs if r["rc"] == 0]
        if not ok:
            bad = True
            r = runs[-1]
            msg = (r["stderr"].strip().splitlines() or [""])[-1][:80].replace("|", "\\|")
            return f"failed (exit {r['rc']}): {msg}", None
        best = min(ok, key=lambda r: r["seconds"])
        got = got_of(best)
        if got is None:
            mark = "? (no result parsed)"
        elif close(got, expected):
            mark = "✓"
        else:
            bad = True
            mark = f"✗ got {got:.10g}, want {expected:.10g}"
        rss = f", {best['rss_kb'] / 1024:.0f} MB RSS" if best["rss_kb"] else ""
        return f"{secs(best['seconds'])} ({per(best['seconds'])}{rss}) {mark}", best["seconds"]

    def ratio(refs, t):
        if t is None:
            return "–"
        return ", ".join(f"{name} {s / t:.3g}×" for name, s in refs if s)

    rows = []
    # Overhead: whole-process times on both sides.
    blocks = -(-a.n // a.chunks)
    pr = {r["tool"]: r for r in proc if r["workload"] == "overhead" and r["tool"] != "tessera"}
    dask_proc, np_proc = pr.get("dask"), pr.get("numpy")
    dj = last_json(dask_proc["stdout"]) if dask_proc else None
    nj = last_json(np_proc["stdout"]) if np_proc else None
    refs, cells = [], []
    if dj:
        refs.append(("dask", dask_proc["seconds"]))
        cells.append(f"dask {secs(dask_proc['seconds'])} process ({secs(dj['seconds'])} in-process, "
                     f"{dj['us_per_block']:.0f} µs/block, {dask_proc['rss_kb'] / 1024:.0f} MB RSS)")
    if nj:
        refs.append(("numpy", np_proc["seconds"]))
        cells.append(f"numpy {secs(np_proc['seconds'])} process ({secs(nj['seconds'])} in-process)")
    cell, t = tessera_cell("overhead", 3.0 * a.n, lambda r: last_number(r["stdout"]),
                           lambda s: f"{s / blocks * 1e6:.2f} µs/block")
    rows.append((f"overhead: `sum(sqrt(ones(({a.n},), chunks={a.chunks}) * 4.0) + 1.0)`, "
                 f"{blocks} blocks, whole process", cell, "; ".join(cells) or "–", ratio(refs, t)))

    # Reductions over the .npy file: in-process reference times.
    try:
        import numpy as np
        x = np.load(a.data, mmap_mode="r")
        shape, nbytes = "×".join(map(str, x.shape)), x.nbytes
    except Exception:  # noqa: BLE001 - the table is still useful without it
        shape, nbytes = "?", None
    gbs = (lambda s: f"{nbytes / s / 1e9:.2f} GB/s") if nbytes else (lambda s: "")
    size = f"{nbytes / 1e9:.1f} GB" if nbytes else "?"
    for op, label, got_of in (
        ("sum", f"`sum(x)`, x: {shape} f64 .npy ({size}), warm cache",
         lambda r: last_number(r["stdout"])),
        ("mean0", "`mean(x, axis=0)` to .npy, same x",
         lambda r: checks.get(("mean0", "tessera"), {}).get("result_checksum")),
    ):
        refs, cells = [], []
        for tool in ("numpy-mmap", "numpy-mem", "dask"):
            r = npy.get((tool, op))
            if r:
                refs.append((tool, r["seconds"]))
                cells.append(f"{tool} {secs(r['seconds'])} ({r['gb_per_s']:.2f} GB/s)")
        ref = npy.get(("dask", op)) or npy.get(("numpy-mmap", op))
        cell, t = tessera_cell(op, ref["result_checksum"] if ref else None, got_of, gbs)
        rows.append((label, cell, "; ".join(cells) or "–", ratio(refs, t)))

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip() or "?"
    except OSError:
        commit = "?"
    versions = ", ".join(f"{k} {v}" for k, v in (dj or {}).get("versions", {}).items())
    print(f"### tessera vs Dask / NumPy ({datetime.date.today()}, commit {commit}, "
          f"{os.cpu_count()} cores, threads={a.threads}, best of {a.repeat})\n")
    print("| workload | tessera | reference(s) | ratio (reference / tessera) |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\ntessera: whole process (start-up, open, compute, output), best of {a.repeat}. "
          "Overhead references: whole process too (Dask once), in-process time in parentheses. "
          f".npy references: in-process time of the operation after import and np.load, best of "
          f"{a.repeat}. Ratio > 1: tessera is faster. {versions}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
