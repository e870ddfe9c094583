#!/usr/bin/env python3
"""Format benches/distance.sh results (JSON lines) as Markdown tables.

    python benches/python/distance_table.py RESULTS.jsonl --n N --m M --stream-n S \
        --threads T --repeat R --budget B --out DIR [--tessera PATH] [--quick] [--elapsed S]

Input records (one JSON object a line):
  {"source": "process", "part": "kernel"|"stream"|"knn", "impl", "metric", "dtype", "d",
   "seconds", "sync_seconds", "rss_kb", "rc", "stdout", "stderr"}   one timed process; its
   stdout holds the JSON lines of distance_bench / distance_peer.py / knn_peer.py /
   distance_stream_peer.py ({"impl", "metric", "dtype", "n", "m", "d", "seconds", ...})
  {"source": "check", "part", "impl", "check": "ok"|"mismatch"|"unchecked", "detail"}
  {"source": "disk", "part", "impl", "bytes"}
  {"source": "note", "note"}                                         printed under the tables
Kernel rate: G pair-dims/s = n * m * d / seconds / 1e9 of each JSON line (a peer timed on a
prefix of x reports that prefix as n). Exit status 1 if a process failed or a result
disagrees with SciPy.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys

METRICS = ["cityblock", "euclidean", "sqeuclidean", "chebyshev", "minkowski", "canberra",
           "braycurtis", "cosine"]
PEERS = ["scipy", "numpy-gemm", "numba", "dask"]
TESSERA = ["tessera", "tessera-native"]
DTYPES = {"f64": "float64", "float64": "float64", "<f8": "float64", "double": "float64",
          "f32": "float32", "float32": "float32", "<f4": "float32", "float": "float32"}
STREAM = [("dd", "dd", "/dev/zero, bs=16M, conv=fdatasync"),
          ("dask-zarr", "Dask + zarr-python", "Zarr v3, no compressor"),
          ("tessera-zarr", "tessera", "Zarr v3, --codec none"),
          ("tessera-hdf5", "tessera", "HDF5, --codec none")]


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


def norm_dtype(v):
    return DTYPES.get(str(v).lower(), str(v)) if v is not None else None


def norm_metric(v):
    v = str(v).lower()
    return "minkowski" if v.startswith("minkowski") else v


def fmt_rate(v):
    if v is None:
        return "–"
    return f"{v:.3g}" if v < 100 else f"{v:,.0f}"


def fmt_s(s):
    return "–" if s is None else (f"{s:.3g} s" if s < 100 else f"{s:,.0f} s")


def fmt_mb(kb):
    return "–" if kb is None else f"{kb / 1024:,.0f} MB"


def failure(rec):
    msg = (rec.get("stderr", "").strip().splitlines() or [""])[-1][:90].replace("|", "\\|")
    return f"failed (exit {rec['rc']}): {msg}"


def machine(out):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
        isa = "AVX-512" if "avx512f" in flags else "AVX2+FMA" if "avx2" in flags else "SSE2"
    except OSError:
        isa = "?"
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(ln.split()[1]) for ln in f if ln.startswith("MemTotal:"))
        ram = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    fs = "?"
    try:
        fs = " ".join(subprocess.run(["df", "--output=source,fstype", out], capture_output=True,
                                     text=True, check=False).stdout.split("\n")[1].split())
    except (OSError, IndexError):
        pass
    free = f"{shutil.disk_usage(out).free / 1e9:.0f} GB free"
    return (f"{os.cpu_count()} cores ({cpu}, {isa}), RAM {ram}, kernel {platform.release()}, "
            f"disk {fs}: {free} under {out}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--m", type=int, required=True)
    p.add_argument("--stream-n", type=int, default=40000)
    p.add_argument("--stream-d", type=int, default=64)
    p.add_argument("--stream-chunk", type=int, default=4000)
    p.add_argument("--knn-n", type=int, default=None)
    p.add_argument("--knn-k", type=int, default=8)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeat", type=int, required=True)
    p.add_argument("--budget", type=float, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--tessera", default=None, help="the tessera binary (for --version)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--elapsed", default=None, help="seconds the whole run took")
    a = p.parse_args()

    with open(a.results) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    proc = [r for r in recs if r.get("source") == "process"]
    checks = {(r["part"], r["impl"]): r for r in recs if r.get("source") == "check"}
    disk = {(r["part"], r["impl"]): r["bytes"] for r in recs if r.get("source") == "disk"}
    notes = [r["note"] for r in recs if r.get("source") == "note"]
    bad = []
    versions, blas, layers, isas = {}, None, set(), {}

    def seen(line):
        nonlocal blas
        versions.update(line.get("versions") or {})
        if line.get("blas") and blas is None:
            blas = line["blas"]
        if line.get("threading_layer"):
            layers.add(line["threading_layer"])

    # --- the machine's limits (examples/machine_peak.rs) ------------------------------
    limits = {}  # (mix, dtype, threads) -> G pair-dims/s
    for r in (r for r in proc if r.get("part") == "peak"):
        if r["rc"] != 0:
            notes.append("no limits measured: " + failure(r))
            continue
        for line in json_lines(r["stdout"]):
            limits[(line["mix"], norm_dtype(line["dtype"]), int(line["threads"]))] = \
                float(line["g_pair_dims"])

    def limit(metric, dtype, d):
        """The limit of the row's kernel on a.threads threads, or None."""
        # minkowski: distance.sh runs p = 3.
        mixes = {"cityblock": ["cityblock (add)", "cityblock (fma)"], "chebyshev": ["chebyshev"],
                 "minkowski": ["minkowski3"],
                 # float64: the split kernel ("canberra"); float32 divides.
                 "canberra": ["canberra", "canberra (divide)"],
                 # Inputs without a negative coordinate (the benchmark's) sum |x - y| alone,
                 # cityblock's mix; the denominator comes from each point's total.
                 "braycurtis": ["braycurtis", "cityblock (add)", "cityblock (fma)"],
                 "cosine": ["fma"]}.get(metric)
        if metric in ("euclidean", "sqeuclidean"):
            # Up to d = 16 these run the direct loop, which has no measured limit.
            mixes = ["fma"] if d > 16 else None
        got = [limits.get((mx, dtype, a.threads)) for mx in mixes or []]
        got = [g for g in got if g]
        return max(got) if got else None

    # --- kernels ---------------------------------------------------------------------
    cells = {}  # (metric, dtype, d) -> impl -> {"rate", "text"}
    flags_used = set()
    for r in (r for r in proc if r.get("part") == "kernel"):
        impl, lines = r["impl"], json_lines(r["stdout"])
        if r["rc"] != 0 or not lines:
            why = failure(r) if r["rc"] != 0 else "printed no JSON line"
            metrics = METRICS if r.get("metric") in (None, "all") else [r["metric"]]
            for mtr in metrics:
                cells.setdefault((mtr, norm_dtype(r.get("dtype")), r.get("d")), {})[impl] = \
                    {"rate": None, "text": "failed"}
            bad.append(f"{impl} d={r.get('d')} {r.get('dtype')} {r.get('metric')}: {why}")
            if r["rc"] != 0 or impl in TESSERA:
                continue
        for line in lines:
            seen(line)
            if impl in TESSERA and line.get("isa"):
                isas.setdefault(impl, set()).add(str(line["isa"]))
            metric = norm_metric(r["metric"] if r.get("metric") not in (None, "all")
                                 else line.get("metric"))
            dtype = norm_dtype(line.get("dtype") or r.get("dtype"))
            d = int(line.get("d") or r.get("d"))
            key = (metric, dtype, d)
            if line.get("skipped"):
                cells.setdefault(key, {})[impl] = {"rate": None, "text": "n/a"}
                continue
            try:
                rate = line["n"] * line["m"] * line["d"] / line["seconds"] / 1e9
            except (KeyError, TypeError, ZeroDivisionError):
                cells.setdefault(key, {})[impl] = {"rate": None, "text": "?"}
                bad.append(f"{impl} {metric} {dtype} d={d}: incomplete line {json.dumps(line)[:200]}")
                continue
            marks = ""
            if line.get("subset"):
                marks += "†"
            if line.get("out_dtype") and norm_dtype(line["out_dtype"]) != dtype:
                marks += "‡"
            ok = line.get("ok")
            if ok is False:
                marks += " ✗"
                bad.append(f"{impl} {metric} {dtype} d={d}: differs from SciPy, max rel err "
                           f"{line.get('max_err')} > {line.get('tol')}")
            flags_used.update(c for c in marks if c in "†‡✗")
            cells.setdefault(key, {})[impl] = {"rate": None if ok is False else rate,
                                               "text": fmt_rate(rate) + marks}

    kernel_rows = []
    dims = sorted({k[2] for k in cells})
    for metric in METRICS:
        for dtype in ("float64", "float32"):
            for d in dims:
                c = cells.get((metric, dtype, d))
                if not c:
                    continue
                row = [metric + (" (p=3)" if metric == "minkowski" else ""),
                       "f64" if dtype == "float64" else "f32", str(d)]
                row += [c.get(i, {}).get("text", "–") for i in PEERS + TESSERA]
                peers = [(c[i]["rate"], i) for i in PEERS if c.get(i, {}).get("rate")]
                t = c.get("tessera", {}).get("rate")
                tn = c.get("tessera-native", {}).get("rate")
                if t and peers:
                    best, who = max(peers)
                    row.append(f"{t / best:.2f}× ({who})")
                else:
                    row.append("–")
                row.append(f"{tn / t:.2f}×" if t and tn else "–")
                lim = limit(metric, dtype, d)
                row.append(f"{100 * t / lim:.0f}%" if t and lim else "–")
                kernel_rows.append(row)

    # --- streaming -------------------------------------------------------------------
    sbytes = a.stream_n * a.stream_n * 8
    stream = []  # (writer, target, best seconds, GB/s, GB/s incl. sync, peak RSS kB, notes)
    for impl, who, target in STREAM:
        runs = [r for r in proc if r.get("part") == "stream" and r["impl"] == impl]
        if not runs:
            continue
        ok = [r for r in runs if r["rc"] == 0]
        if len(ok) < len(runs):
            bad.append(f"stream {impl}: {len(runs) - len(ok)} of {len(runs)} runs "
                       + failure(next(r for r in runs if r["rc"] != 0)))
        if not ok:
            stream.append((impl, who, target, None, None, None, None, failure(runs[-1])))
            continue
        best = min(ok, key=lambda r: r["seconds"])
        rate = sbytes / best["seconds"] / 1e9
        if impl == "dd":
            srate = rate  # dd's own time includes its fdatasync
        else:
            synced = [sbytes / (r["seconds"] + r["sync_seconds"]) / 1e9 for r in ok
                      if r.get("sync_seconds") is not None]
            srate = max(synced) if synced else None
        rss = max((r["rss_kb"] for r in ok if r.get("rss_kb")), default=None)
        note = []
        lines = [j for r in ok for j in json_lines(r["stdout"])]
        for j in lines:
            seen(j)
        inproc = [j["seconds"] for j in lines if "seconds" in j]
        if inproc:
            note.append(f"in-process {fmt_s(min(inproc))}")
        if ("stream", impl) in disk:
            note.append(f"on disk {disk[('stream', impl)] / 1e9:.2f} GB")
        ck = checks.get(("stream", impl))
        if ck:
            note.append(f"check {ck['check']}: {ck.get('detail', '')}"[:160])
            if ck["check"] == "mismatch":
                bad.append(f"stream {impl}: {ck.get('detail')}")
        stream.append((impl, who, target, best["seconds"], rate, srate, rss, "; ".join(note)))
    dd_rate = next((e[4] for e in stream if e[0] == "dd"), None)
    stream_rows = []
    for impl, who, target, secs, rate, srate, rss, note in stream:
        share = f"{rate / dd_rate:.0%}" if rate and dd_rate else "–"
        sshare = f"{srate / dd_rate:.0%}" if srate and dd_rate else "–"
        if impl == "dd":
            share = sshare = "(100%)"
        stream_rows.append([who, target, "failed" if secs is None else fmt_s(secs),
                            f"{rate:.2f}" if rate else "–", f"{srate:.2f}" if srate else "–",
                            share, sshare, fmt_mb(rss), note])

    # --- knn -------------------------------------------------------------------------
    knn_rows, knn_best = [], {}
    for impl in ("sklearn", "tessera"):
        runs = [r for r in proc if r.get("part") == "knn" and r["impl"] == impl]
        if not runs:
            continue
        ok = [r for r in runs if r["rc"] == 0]
        if len(ok) < len(runs):
            bad.append(f"knn {impl}: {len(runs) - len(ok)} of {len(runs)} runs "
                       + failure(next(r for r in runs if r["rc"] != 0)))
        if not ok:
            knn_rows.append([impl, "–", "failed", "–", "–", "–", failure(runs[-1])])
            continue
        best = min(ok, key=lambda r: r["seconds"])
        knn_best[impl] = best["seconds"]
        lines = [j for r in ok for j in json_lines(r["stdout"])]
        for j in lines:
            seen(j)
        inproc = [j["seconds"] for j in lines if "seconds" in j]
        n = next((j["n"] for j in lines if "n" in j), a.knn_n)
        rss = max((r["rss_kb"] for r in ok if r.get("rss_kb")), default=None)
        note = []
        ck = checks.get(("knn", impl))
        if ck:
            note.append(f"check {ck['check']}: {ck.get('detail', '')}"[:200])
            if ck["check"] == "mismatch":
                bad.append(f"knn {impl}: {ck.get('detail')}")
        knn_rows.append([impl if impl == "tessera" else "scikit-learn",
                         f"{n:,}" if n else "–", fmt_s(best["seconds"]),
                         fmt_s(min(inproc)) if inproc else "–", fmt_mb(rss), None, "; ".join(note)])
    for row in knn_rows:
        if row[5] is None:
            s, t = knn_best.get("sklearn"), knn_best.get("tessera")
            row[5] = f"{s / t:.2f}×" if row[0] == "tessera" and s and t else "–"

    # --- print -----------------------------------------------------------------------
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"],
                             capture_output=True, text=True, check=False).stdout.strip() or "?"
    except OSError:
        rev = "?"
    tver = "tessera not run"
    if a.tessera:
        try:
            tver = subprocess.run([a.tessera, "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip() or "tessera ?"
        except OSError:
            tver = "tessera ?"
    vers = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    blas_txt = "; ".join(f"{b.get('for') or '?'}: {b.get('internal_api')} {b.get('version')} "
                         f"({b.get('architecture')}, {b.get('num_threads')} threads)"
                         for b in (blas or []) if b.get("internal_api") != "openmp") or "?"

    print(f"### Distances: tessera vs SciPy, NumPy, Numba, Dask ({datetime.date.today()}, "
          f"{tver}, git {rev}{', quick' if a.quick else ''})\n")
    print(f"- machine: {machine(a.out)}")
    print(f"- versions: {tver}; {vers or 'Python peers did not report'}; BLAS: {blas_txt}"
          + (f"; Numba threading layer {', '.join(sorted(layers))}" if layers else "")
          + "".join(f"; {i} kernels: {', '.join(sorted(v))}" for i, v in isas.items()))
    print(f"- threads={a.threads}; best of {a.repeat}; peer budget {a.budget:g} s"
          + (f"; whole run {float(a.elapsed) / 60:.1f} min" if a.elapsed else ""))
    if kernel_rows:
        print(f"\n#### Kernels: x {a.n}×d, y {a.m}×d, uniform [0, 1); G pair-dims/s "
              "(n·m·d / seconds / 1e9), higher is faster\n")
        print("| metric | dtype | d | SciPy cdist | NumPy GEMM | Numba | Dask | tessera "
              "| tessera-native | tessera / best peer | native / tessera | tessera / limit |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: |")
        for row in kernel_rows:
            print("| " + " | ".join(row) + " |")
        print("\nIn-process time of the whole (n, m) matrix, output allocated inside the timed "
              "span, best of the runs. SciPy: `cdist` (one thread). NumPy GEMM: "
              "`x2[:, None] + y2[None, :] - 2 x @ y.T` in place, clamped at 0, sqrt for "
              "euclidean (BLAS threads); euclidean and sqeuclidean only (n/a elsewhere). Numba: "
              "`@njit(parallel=True, fastmath=True)` prange loops, compiled before timing, "
              "accumulating in the input dtype; minkowski through the general `** p`. Dask: "
              "`da.blockwise(cdist)` over x and y chunked by rows (ceil(n/4)), threaded "
              "scheduler. tessera: `distance_bench` (default `cargo build --release`); "
              "tessera-native: the same built with `-C target-cpu=native`. Ratios use the "
              "best peer of the row (named); > 1: tessera is faster. tessera / limit: "
              "tessera's rate over the machine's limit for the row's kernel on the same "
              "threads (below; – for euclidean and sqeuclidean at d <= 16, which run a "
              "direct loop).")
        if "‡" in flags_used:
            print("‡ computed and returned in float64 although the input is float32 (SciPy "
                  "`cdist` converts its inputs; Dask calls it per tile); reported anyway.")
        if "†" in flags_used:
            print(f"† timed on a prefix of the rows of x (a full run was projected above the "
                  f"{a.budget:g} s budget); the rate is per pair-dimension, y complete.")
        if "✗" in flags_used:
            print("✗ differs from SciPy on the checked rows (see below); left out of the ratios.")
    if limits:
        mixes = list(dict.fromkeys(k[0] for k in limits))
        tcounts = sorted({k[2] for k in limits})
        print("\n#### The machine's limits (`machine_peak`): G pair-dims/s\n")
        head = [f"{dt} {t} thread{'s' if t > 1 else ''}" for dt in ("f64", "f32") for t in tcounts]
        print("| kernel's instructions | " + " | ".join(head) + " |")
        print("| --- | " + " | ".join("---:" for _ in head) + " |")
        for mx in mixes:
            vals = [limits.get((mx, dt, t)) for dt in ("float64", "float32") for t in tcounts]
            print(f"| {mx} | " + " | ".join(fmt_rate(v) if v else "–" for v in vals) + " |")
        print("\nThe AVX-512 instructions each kernel issues per vector of "
              "pair-dimensions, eight independent chains in a loop, operands in registers "
              "(no loads or stores): what the cores can issue for that kernel. fma: one "
              "multiply-add per pair-dimension, the inner product under the GEMM metrics "
              "(twice it is the FLOP peak). cityblock: `x - y`, `|.|`, the sum through the "
              "adder or the multiply-add unit (the faster counts). minkowski3: with two "
              "products for `|.|^3`. canberra (divide): with the division, bound by the divider "
              "(tessera's float32 kernel); canberra (estimate): the correctly rounded quotient "
              "from the reciprocal estimate and Newton steps; canberra: three vectors divided "
              "for each one estimated, tessera's float64 kernel. braycurtis: both sums; on points "
              "without a negative coordinate tessera sums `|x - y|` alone (cityblock's mix) "
              "and takes the denominator from each point's total.")
    if stream_rows:
        print(f"\n#### A {a.stream_n}×{a.stream_n} float64 distance matrix "
              f"({sbytes / 1e9:.1f} GB) streamed to disk: euclidean, {a.stream_n}×{a.stream_d} "
              f"points, {a.stream_chunk}×{a.stream_chunk} tiles\n")
        print("| writer | target | seconds | GB/s | GB/s incl. sync | share of dd "
              "| share of dd incl. sync | peak RSS | notes |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for row in stream_rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
        print("\nWhole process under /usr/bin/time (start-up, compute, write), best of the "
              "runs; GB/s = matrix bytes / seconds. tessera: `tessera cdist X.npy --metric "
              f"euclidean --chunk {a.stream_chunk} --mem 1GiB --codec none -o OUT.zarr` (or "
              f"`OUT.h5:/d`). Dask: `da.blockwise(cdist)` on {a.stream_chunk}-row chunks, "
              "`da.to_zarr` into a "
              "zarr-python 3 array with `compressors=None`. Neither fsyncs: \"incl. sync\" adds "
              "a `sync` run right after the process. dd: `dd if=/dev/zero bs=16M "
              "conv=fdatasync` of the same bytes, the disk's sequential write bandwidth. "
              "Outputs removed after each run; the first of each checked against SciPy on 3 rows.")
    if knn_rows:
        print(f"\n#### k nearest neighbours: k = {a.knn_k}, euclidean, 3-D float64 points, "
              "each against all\n")
        print("| impl | points | seconds (process) | seconds (in-process) | peak RSS "
              "| scikit-learn / tessera | notes |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for row in knn_rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
        print(f"\nscikit-learn: `NearestNeighbors(n_neighbors={a.knn_k}, algorithm='brute')"
              f".fit(x).kneighbors(x)`, one run per process; tessera: `tessera knn X.npy -k {a.knn_k} "
              "--metric euclidean -o OUT.zarr`. Whole processes under /usr/bin/time, best of "
              "the runs; each point is its own first neighbour. tessera's distances are "
              "checked against scikit-learn's.")
    for n in notes:
        print(f"\nNote: {n}")
    if bad:
        print("\n**Some runs failed or disagree:**\n")
        for b in bad:
            print(f"- {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
