#!/usr/bin/env python3
"""Per-block scheduling overhead of Dask (the reference for tessera's planner).

Times  (da.sqrt(da.ones((n,), chunks=c) * 4.0) + 1.0).sum().compute()
with the threaded scheduler, where tiny chunks make the per-block cost
dominate. With --numpy, times the same expression in plain NumPy instead.

    python benches/python/overhead.py --n 1000000 --chunks 10 --repeat 1
    python benches/python/overhead.py --n 1000000 --numpy

Prints one JSON line:
    {"tool": "dask", "n", "chunks", "blocks", "seconds" (graph build + compute,
     best of --repeat), "build_seconds", "compute_seconds", "us_per_block",
     "import_seconds", "process_seconds" (whole process so far, interpreter
     start-up included), "result", ...}
"""

import time

_T_SCRIPT = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def process_seconds():
    """Wall time since this process started (Linux /proc; else since script start)."""
    try:
        with open("/proc/self/stat") as f:
            # Field 22 (starttime, clock ticks after boot) follows the ")" of comm.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _T_SCRIPT


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="array length")
    p.add_argument("--chunks", type=int, default=10, help="chunk length (dask)")
    p.add_argument("--repeat", type=int, default=1, help="runs; the best is reported")
    p.add_argument("--threads", type=int, default=None,
                   help="threaded scheduler workers (default: dask's, i.e. CPU count)")
    p.add_argument("--numpy", action="store_true", help="time plain NumPy instead of Dask")
    a = p.parse_args()
    if a.n < 1 or a.chunks < 1 or a.repeat < 1:
        p.error("--n, --chunks and --repeat must be >= 1")

    t = time.perf_counter()
    import numpy as np
    if not a.numpy:
        import dask
        import dask.array as da
    import_seconds = time.perf_counter() - t

    runs = []  # (build, compute, result)
    for _ in range(a.repeat):
        if a.numpy:
            t0 = time.perf_counter()
            x = np.ones((a.n,)) * 4.0
            result = (np.sqrt(x) + 1.0).sum()
            t1 = time.perf_counter()
            runs.append((0.0, t1 - t0, float(result)))
            del x
        else:
            t0 = time.perf_counter()
            expr = (da.sqrt(da.ones((a.n,), chunks=a.chunks) * 4.0) + 1.0).sum()
            t1 = time.perf_counter()
            kw = {"scheduler": "threads"}
            if a.threads:
                kw["num_workers"] = a.threads
            result = expr.compute(**kw)
            t2 = time.perf_counter()
            runs.append((t1 - t0, t2 - t1, float(result)))
            del expr

    build, compute, result = min(runs, key=lambda r: r[0] + r[1])
    seconds = build + compute
    blocks = 1 if a.numpy else -(-a.n // a.chunks)
    expected = 3.0 * a.n
    out = {
        "tool": "numpy" if a.numpy else "dask",
        "n": a.n,
        "chunks": None if a.numpy else a.chunks,
        "blocks": blocks,
        "seconds": seconds,
        "us_per_block": seconds / blocks * 1e6,
        "build_seconds": build,
        "compute_seconds": compute,
        "seconds_all": [r[0] + r[1] for r in runs],
        "import_seconds": import_seconds,
        "result": result,
        "result_ok": abs(result - expected) <= 1e-9 * expected,
        "repeat": a.repeat,
        "threads": a.threads or os.cpu_count(),
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     **({} if a.numpy else {"dask": dask.__version__})},
    }
    out["process_seconds"] = round(process_seconds(), 2)  # /proc resolution: 10 ms
    print(json.dumps(out), flush=True)
    return 0 if out["result_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
