#!/usr/bin/env python3
"""Format benches/storage.sh results (JSON lines) as a Markdown table.

    python benches/python/storage_table.py RESULTS.jsonl --data x.npy --out DIR \
        --threads T --repeat R --tessera PATH [--elapsed SECONDS]

Input records (one JSON object a line):
  {"source": "process", "tool": "tessera"|"dask"|"dd", "backend", "op", "cache", "file",
   "codec", "seconds", "rss_kb", "rc", "stdout", "stderr"}   one timed process (storage.sh);
   a Dask process's stdout holds storage_peer.py's JSON lines
  {"source": "info", "backend", "file", "path", "stdout"}   `tessera info` of a read file
  {"source": "disk", "backend", "file", "bytes"}             bytes on disk of a written file
  {"source": "note", "note"}                                  printed under the table
The reference sum comes from the input's sidecar (x.npy.json, storage_data.py). Exit
status 1 if a run failed or a sum disagrees with the other tool's or the reference
(relative 1e-9).
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys

NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?\b(?:nan|inf)\b", re.I)
REL_TOL = 1e-9
ORDER = ["memory", "npy", "zarr-none", "zarr-zstd", "zarr-blosc", "zarr-gzip", "hdf5-none",
         "hdf5-gzip"]
LABEL = {"memory": "memory", "npy": ".npy", "zarr-none": "Zarr none", "zarr-zstd": "Zarr zstd 3",
         "zarr-blosc": "Zarr blosc-zstd 5 + shuffle", "zarr-gzip": "Zarr gzip 5",
         "hdf5-none": "HDF5 none (chunked)",
         "hdf5-gzip": "HDF5 deflate 4 + shuffle"}


def json_lines(text):
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def last_number(text):
    found = NUMBER.findall(text or "")
    return float(found[-1]) if found else None


def close(a, b):
    return a is not None and b is not None and math.isclose(a, b, rel_tol=REL_TOL)


def gbps(nbytes, s):
    return nbytes / s / 1e9 if s and s > 0 else None


def fmt_gbps(v):
    return "–" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def fmt_mb(kb):
    return "–" if kb is None else f"{kb / 1024:,.0f} MB"


def failure(rec):
    msg = (rec.get("stderr", "").strip().splitlines() or [""])[-1][:100].replace("|", "\\|")
    return f"**failed** (exit {rec['rc']}): {msg}"


def machine(out):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(ln.split()[1]) for ln in f if ln.startswith("MemTotal:"))
        ram = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    free = f"{shutil.disk_usage(out).free / 1e9:.0f} GB free"
    fs = "?"
    try:
        fs = subprocess.run(["df", "--output=source,fstype", out], capture_output=True, text=True,
                            check=False).stdout.split("\n")[1].strip()
        fs = " ".join(fs.split())
    except (OSError, IndexError):
        pass
    return (f"{os.cpu_count()} cores ({cpu}), RAM {ram}, kernel {platform.release()}, "
            f"disk {fs}: {free} under {out}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--data", required=True, help="the input .npy (its .json sidecar is read)")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeat", type=int, required=True)
    p.add_argument("--tessera", required=True, help="the tessera binary (for --version)")
    p.add_argument("--elapsed", default=None, help="seconds the whole run took")
    a = p.parse_args()

    with open(a.results) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    with open(a.data + ".json") as f:
        meta = json.load(f)
    rows_n, cols_n = meta["shape"]
    nbytes = rows_n * cols_n * 8
    ref_sum = meta["sum"]
    proc = [r for r in recs if r.get("source") == "process"]
    infos = {(r["backend"], r["file"]): r for r in recs if r.get("source") == "info"}
    disk = {(r["backend"], r["file"]): r["bytes"] for r in recs if r.get("source") == "disk"}
    notes = [r["note"] for r in recs if r.get("source") == "note"]
    bad = False
    versions = {}

    def tessera_cells(runs, want_sum):
        """(GB/s cell, GB/s, peak RSS cell, result, failure note) of tessera's runs."""
        nonlocal bad
        if not runs:
            return "–", None, "–", None, None
        ok = [r for r in runs if r["rc"] == 0]
        if not ok:
            bad = True
            return "failed", None, "–", None, failure(runs[-1])
        best = min(ok, key=lambda r: r["seconds"])
        rss = max((r["rss_kb"] for r in ok if r["rss_kb"]), default=None)
        result, note = None, None
        if want_sum:
            sums = [last_number(r["stdout"]) for r in ok]
            result = last_number(best["stdout"])
            if any(not close(s, result) for s in sums):
                bad = True
                note = f"**✗ tessera's runs disagree**: {sorted(set(sums))}"
        if len(ok) < len(runs):
            bad = True
            note = (note + "; " if note else "") + f"{len(runs) - len(ok)} of {len(runs)} runs " + \
                failure(next(r for r in runs if r["rc"] != 0))
        v = gbps(nbytes, best["seconds"])
        return fmt_gbps(v), v, fmt_mb(rss), result, note

    def peer(rec, tool):
        """(GB/s cell, GB/s, RSS cell, result, line, failure note) of a storage_peer process."""
        nonlocal bad
        if rec is None:
            return "–", None, "–", None, None, None
        if rec["rc"] != 0:
            bad = True
            return "failed", None, fmt_mb(rec["rss_kb"]), None, None, failure(rec)
        line = next((j for j in json_lines(rec["stdout"]) if j.get("tool") == tool), None)
        if line is None:
            bad = True
            return "?", None, fmt_mb(rec["rss_kb"]), None, None, "no result line from storage_peer.py"
        versions.update(line.get("versions", {}))
        v = line["gb_per_s"]
        return fmt_gbps(v), v, fmt_mb(rec["rss_kb"]), line.get("result"), line, None

    def check(t_sum, d_sum, names=("tessera", "Dask")):
        nonlocal bad
        have = [(n, s) for n, s in zip(names, (t_sum, d_sum)) if s is not None]
        if not have:
            return ""
        wrong = [n for n, s in have if not close(s, ref_sum)]
        if len(have) == 2 and not close(t_sum, d_sum):
            wrong = wrong or [" vs ".join(names)]
        if wrong:
            bad = True
            got = ", ".join(f"{n} {s!r}" for n, s in have)
            return f"**✗ SUM MISMATCH** ({', '.join(wrong)}): {got}, reference {ref_sum!r}"
        return "sums ✓"

    def blocks_of(backend, writer):
        r = infos.get((backend, writer))
        if not r or r.get("rc") != 0:
            return None
        m = re.search(r"^blocks\s+(\d+)", r["stdout"], re.M)
        c = re.search(r"^chunks\s+\[([^\]]*)\]", r["stdout"], re.M)
        if not m or not c:
            return None
        return f"{c.group(1).replace(', ', '×')} ({m.group(1)} blocks)"

    table = []
    for backend in ORDER:
        mine = [r for r in proc if r["backend"] == backend]
        if not mine:
            continue
        if backend == "memory":
            rec = next((r for r in mine if r["tool"] == "dask"), None)
            dcell, dv, drss, dsum, dline, dfail = peer(rec, "dask")
            ncell, nv, _, nsum, nline, _ = peer(rec, "numpy")
            note = []
            if nline:
                note.append(f"NumPy `x.sum()` (1 thread) {ncell} GB/s")
            if dline:
                note.append(f"Dask chunks {'×'.join(map(str, dline['chunks']))}")
            note.append("RSS includes x loaded in RAM")
            note += [n for n in (check(nsum, dsum, ("NumPy", "Dask")), dfail) if n]
            table.append([LABEL[backend], "read (in RAM)", "x loaded in RAM", "n/a (see .npy warm)",
                          dcell, "–", "–", drss, "; ".join(note)])
            continue
        # writes
        tw = [r for r in mine if r["tool"] == "tessera" and r["op"] == "write"]
        dw = next((r for r in mine if r["tool"] == "dask" and r["op"] == "write"), None)
        if tw or dw:
            tcell, tv, trss, _, tfail = tessera_cells(tw, False)
            dcell, dv, drss, _, dline, dfail = peer(dw, "dask")
            note = []
            sizes = [(w, disk.get((backend, w))) for w in ("tessera", "dask")]
            sizes = [f"{'Dask' if w == 'dask' else w} {b / 1e9:.2f} GB ({b / nbytes:.0%})"
                     for w, b in sizes if b is not None]
            if sizes:
                note.append("on disk: " + ", ".join(sizes))
            note += [n for n in (tfail, dfail) if n]
            table.append([LABEL[backend], "write", "each its own", tcell, dcell,
                          f"{tv / dv:.2f}×" if tv and dv else "–", trss, drss, "; ".join(note)])
        # reads
        for cache in ("warm", "cold"):
            for writer in ("input", "tessera", "dask"):
                tr = [r for r in mine if r["tool"] == "tessera" and r["op"] == "read"
                      and r["cache"] == cache and r["file"] == writer]
                dr = next((r for r in mine if r["tool"] == "dask" and r["op"] == "read"
                           and r["cache"] == cache and r["file"] == writer), None)
                if not tr and dr is None:
                    continue
                tcell, tv, trss, tsum, tfail = tessera_cells(tr, True)
                dcell, dv, drss, dsum, dline, dfail = peer(dr, "dask")
                note = [check(tsum, dsum)]
                b = blocks_of(backend, writer)
                if b:
                    note.append(f"tessera blocks {b}")
                if dline:
                    note.append(f"Dask chunks {'×'.join(map(str, dline['chunks']))}")
                note += [n for n in (tfail, dfail) if n]
                who = {"input": "the input", "tessera": "tessera's", "dask": "Dask's"}[writer]
                table.append([LABEL[backend], f"read {cache}", who, tcell, dcell,
                              f"{tv / dv:.2f}×" if tv and dv else "–", trss, drss,
                              "; ".join(n for n in note if n)])

    dd = {}
    for op, cache in (("read", "warm"), ("read", "cold"), ("write", None)):
        runs = [r for r in proc if r["tool"] == "dd" and r["op"] == op and r["cache"] == cache]
        ok = [r for r in runs if r["rc"] == 0]
        if not runs:
            continue
        if not ok:
            bad = True
            dd[(op, cache)] = failure(runs[-1])
            continue
        best = min(ok, key=lambda r: r["seconds"])
        m = re.search(r"^(\d+) bytes", best["stderr"], re.M)
        dd[(op, cache)] = f"{fmt_gbps(gbps(int(m.group(1)) if m else nbytes, best['seconds']))} GB/s"

    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"],
                             capture_output=True, text=True, check=False).stdout.strip() or "?"
    except OSError:
        rev = "?"
    try:
        tver = subprocess.run([a.tessera, "--version"], capture_output=True, text=True,
                              check=False).stdout.strip() or "?"
    except OSError:
        tver = "?"
    vers = ", ".join(f"{k} {v}" for k, v in versions.items())
    base = sorted(j["rss_base_kb"] for r in proc if r["tool"] == "dask"
                  for j in json_lines(r["stdout"]) if "rss_base_kb" in j)
    size = f"{nbytes / 1e9:.2f}"
    for row in table:
        row.insert(3, size)

    print(f"### Storage throughput: tessera vs Dask ({datetime.date.today()}, {tver}, git {rev})\n")
    print(f"- machine: {machine(a.out)}")
    print(f"- versions: {tver} (git {rev}); {vers or 'Python peers did not report'}")
    print(f"- array: {rows_n}×{cols_n} float64 ({nbytes / 1e9:.2f} GB), "
          f"round(2 + sin + 0.5·N(0,1), 3); written chunks 4096×{cols_n} (32 MiB); "
          f"threads={a.threads}; best of {a.repeat}"
          + (f"; whole run {float(a.elapsed) / 60:.1f} min" if a.elapsed else ""))
    print()
    print("| backend | op | file | size GB | tessera GB/s | Dask GB/s | tessera/Dask "
          "| tessera peak RSS | Dask peak RSS | notes |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in table:
        print("| " + " | ".join(str(c) for c in row) + " |")
    if dd:
        print(f"\n**dd** (same disk, bs=16M, the input file / {size} GB from /dev/zero): "
              + ", ".join(f"{op}{' ' + c if c else ' (conv=fdatasync)'} {v}"
                          for (op, c), v in dd.items()))
    print(f"\nGB/s = {nbytes / 1e9:.2f} GB of array data (uncompressed) / seconds. "
          "tessera: whole process under /usr/bin/time (start-up, open, compute, print), "
          "`eval \"sum(x)\" --in x=PATH` for reads, `convert x.npy OUT --codec C --level L "
          f"--chunks 4096,{cols_n}` for writes. Dask: in-process time (after imports) of "
          "`sum().compute()` from opening the array, or of creating, filling and closing the "
          "output; threaded scheduler. Warm: one untimed run first; cold: page cache dropped "
          "before every run. Writes go to the page cache (neither tool fsyncs; dd's write "
          "does). Peak RSS: /usr/bin/time's maximum resident set of the whole process; "
          "memory-mapped .npy pages count in it for both tools"
          + (f"; the Dask column includes Python with its imports ({base[len(base) // 2] / 1024:.0f} MB)"
             if base else "")
          + ". Ratio > 1: tessera is faster. Every Zarr / HDF5 file is read by both tools; "
          f"sums are checked against each other and the generator's exact sum (relative {REL_TOL:g}).")
    for n in notes:
        print(f"\nNote: {n}")
    if bad:
        print("\n**Some runs failed or disagree: see the rows marked above.**")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
