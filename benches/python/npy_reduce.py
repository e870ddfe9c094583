#!/usr/bin/env python3
"""Reference timings for reductions over a large 2-D float64 .npy file.

Measure (page cache warmed first):
    python benches/python/npy_reduce.py --file bench-out/x.npy [--repeat 3]
      numpy-mmap  np.load(mmap_mode='r'), then .sum() and .mean(axis=0)
      numpy-mem   np.load() fully, then the same (only if it fits comfortably
                  in available RAM; see --mem-fraction)
      dask        da.from_array(np.load(mmap_mode='r'), chunks='auto'), then
                  .sum().compute() and .mean(axis=0).compute() (threaded)
    One JSON line per measurement:
      {"tool", "op": "sum"|"mean0", "seconds" (best of --repeat), "gb_per_s",
       "result_checksum" (the sum, or the sum of the column means), ...}

Make the input (random float64, C order, bounded memory, seeded):
    python benches/python/npy_reduce.py --make 1000000 500 --file bench-out/x.npy
"""

import argparse
import json
import os
import sys
import time

import numpy as np

SLAB_BYTES = 64 << 20


def make(path, n, m, seed):
    """Write a random (n, m) float64 C-order .npy in ~64 MiB slabs."""
    t0 = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".partial"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f8", shape=(n, m),
                                    fortran_order=False)
    rng = np.random.default_rng(seed)
    rows = max(1, SLAB_BYTES // (8 * m))
    for i in range(0, n, rows):
        # Each slab is a contiguous run of rows, filled in place: the content
        # depends only on the seed, not on the slab size.
        rng.random(out=arr[i:i + rows])
    arr.flush()
    del arr
    os.replace(tmp, path)
    return {"made": path, "shape": [n, m], "dtype": "float64", "seed": seed,
            "bytes": os.path.getsize(path), "seconds": time.perf_counter() - t0}


def warm(path):
    """Read the whole file once so the page cache is warm."""
    buf = bytearray(SLAB_BYTES)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def best_of(repeat, fn):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", required=True, help=".npy file (float64, 2-D, C order)")
    p.add_argument("--make", nargs=2, type=int, metavar=("N", "M"),
                   help="write a random (N, M) float64 file to --file and exit")
    p.add_argument("--seed", type=int, default=42, help="seed for --make")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; best reported")
    p.add_argument("--tools", default="numpy-mmap,numpy-mem,dask",
                   help="comma list among numpy-mmap, numpy-mem, dask")
    p.add_argument("--threads", type=int, default=None,
                   help="dask threaded-scheduler workers (default: CPU count)")
    p.add_argument("--mem-fraction", type=float, default=0.5,
                   help="numpy-mem runs only if the file is below this fraction of MemAvailable")
    p.add_argument("--no-warm", action="store_true", help="skip the page-cache warm-up read")
    a = p.parse_args()

    if a.make:
        n, m = a.make
        if n < 1 or m < 1:
            p.error("--make N M needs N, M >= 1")
        print(json.dumps(make(a.file, n, m, a.seed)), flush=True)
        return 0

    tools = [t for t in a.tools.split(",") if t]
    unknown = set(tools) - {"numpy-mmap", "numpy-mem", "dask"}
    if unknown:
        p.error(f"unknown tools: {sorted(unknown)}")

    x = np.load(a.file, mmap_mode="r")
    if x.dtype != np.float64 or x.ndim != 2 or not x.flags.c_contiguous:
        sys.exit(f"{a.file}: need a 2-D float64 C-order array, got {x.dtype} "
                 f"shape {x.shape} fortran_order={x.flags.f_contiguous and not x.flags.c_contiguous}")
    nbytes = x.nbytes
    common = {"file": a.file, "shape": list(x.shape), "bytes": nbytes, "repeat": a.repeat}
    if not a.no_warm:
        warm(a.file)

    def emit(tool, op, seconds, times, checksum, **extra):
        print(json.dumps({"tool": tool, "op": op, "seconds": seconds,
                          "gb_per_s": nbytes / seconds / 1e9 if seconds > 0 else None,
                          "result_checksum": float(checksum), "seconds_all": times,
                          **common, **extra}), flush=True)

    def numpy_ops(tool, arr, **extra):
        s, ts, r = best_of(a.repeat, arr.sum)
        emit(tool, "sum", s, ts, r, **extra)
        s, ts, r = best_of(a.repeat, lambda: arr.mean(axis=0))
        emit(tool, "mean0", s, ts, r.sum(), **extra)

    if "numpy-mmap" in tools:
        numpy_ops("numpy-mmap", x)

    if "numpy-mem" in tools:
        avail = mem_available()
        if avail is not None and nbytes > a.mem_fraction * avail:
            print(f"npy_reduce: skipping numpy-mem: {nbytes / 1e9:.1f} GB > "
                  f"{a.mem_fraction} x {avail / 1e9:.1f} GB available", file=sys.stderr)
        else:
            t0 = time.perf_counter()
            arr = np.load(a.file)
            load_seconds = time.perf_counter() - t0
            numpy_ops("numpy-mem", arr, load_seconds=load_seconds)
            del arr

    if "dask" in tools:
        import dask
        import dask.array as da

        kw = {"scheduler": "threads"}
        if a.threads:
            kw["num_workers"] = a.threads
        d = da.from_array(np.load(a.file, mmap_mode="r"), chunks="auto")
        extra = {"chunksize": list(d.chunksize), "blocks": d.npartitions,
                 "threads": a.threads or os.cpu_count(), "dask": dask.__version__}
        s, ts, r = best_of(a.repeat, lambda: d.sum().compute(**kw))
        emit("dask", "sum", s, ts, r, **extra)
        s, ts, r = best_of(a.repeat, lambda: d.mean(axis=0).compute(**kw))
        emit("dask", "mean0", s, ts, r.sum(), **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
