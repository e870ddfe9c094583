#!/usr/bin/env python3
"""Python peers of benches/distance.sh: one implementation, several metrics, per process.

    python benches/python/distance_peer.py --impl scipy --x X.npy --y Y.npy \
        --metrics cityblock,euclidean --p 3 --threads 2 --repeat 3 [--budget 30]

Implementations (--impl), each computing the full (n, m) matrix of distances between the rows
of X and the rows of Y, the output allocated inside the timed span:
  scipy       scipy.spatial.distance.cdist(x, y, metric) (one thread; float32 input is
              converted to float64 by SciPy, so the output and the arithmetic are float64).
  numpy-gemm  the GEMM identity, euclidean and sqeuclidean only: x2 = sum(x*x, 1),
              g = x @ y.T (BLAS, --threads), g = x2[:, None] + y2[None, :] - 2 g in place,
              clamped at 0, sqrt for euclidean. float32 stays float32.
  numba       one @njit(parallel=True, fastmath=True) kernel per metric: prange over the rows
              of x, a plain loop over the rows of y and the d coordinates, accumulating in the
              input dtype (float32 stays float32); minkowski through the general power
              |u - v| ** p; cosine with the norms computed first. Compiled (or loaded from
              NUMBA_CACHE_DIR) on tiny arrays of the same types before anything is timed.
  dask        da.blockwise(cdist tile) over x and y chunked along rows (--dask-chunk rows
              each, default ceil(n / 4); d in one chunk), .compute() on the threaded scheduler
              with --threads workers. Float64 like SciPy.

Metrics: cityblock, euclidean, sqeuclidean, chebyshev, minkowski (with --p), canberra,
braycurtis, cosine, as SciPy defines them.

Timing: best of --repeat runs. With --budget S > 0, untimed calibration runs on the first
256, 1024, ... rows of x come first (they warm up the threads and the allocator too); when
they project a full run above S seconds, the timed runs use only the first rows of x that
take about S seconds, and the line says so ("n" is then the rows measured, "n_full" the
file's and "projected_full_seconds" the estimate). The table compares rates per
pair-dimension, which a row prefix measures as well as the whole (y is always complete).

Check: the first --check-rows rows of the result are compared with SciPy cdist in float64;
"max_err" is max |D - D_ref| / max |D_ref| and "ok" is max_err <= 1e-6 (float64 input) or
1e-3 (float32 input).

One JSON line per metric:
    {"impl", "metric", "p" (minkowski only), "dtype" (input), "out_dtype", "n", "m", "d",
     "seconds" (best), "seconds_all", "n_full", "subset", "threads", "max_err", "tol", "ok",
     "compile_seconds" (numba), "chunks" (dask), "versions", "blas"}
An implementation that cannot run (Numba not installed, GEMM for another metric) prints
{"impl", "metric", ..., "skipped": REASON} instead.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

METRICS = ["cityblock", "euclidean", "sqeuclidean", "chebyshev", "minkowski", "canberra",
           "braycurtis", "cosine"]
GEMM_METRICS = {"euclidean", "sqeuclidean"}
IMPLS = ["scipy", "numpy-gemm", "numba", "dask"]


def versions():
    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    for name in ("scipy", "dask", "numba", "sklearn"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out


def blas_info():
    """The BLAS / OpenMP libraries loaded, whose they are, their kernel and threads
    (threadpoolctl), or None without threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    out = []
    for lib in threadpoolctl.threadpool_info():
        if lib.get("user_api") not in ("blas", "openmp"):
            continue
        # wheels bundle their libraries in site-packages/NAME.libs/
        owner = os.path.basename(os.path.dirname(lib.get("filepath") or "")).split(".")[0]
        out.append({"for": owner or None, **{k: lib.get(k) for k in (
            "internal_api", "version", "architecture", "num_threads")}})
    return out


# --- Numba kernels ---------------------------------------------------------------------
def numba_kernels():
    """{metric: kernel(x, y, out, zero, p)}; zero is a scalar of the input dtype, so the
    accumulators (and the output) keep that dtype."""
    from numba import njit, prange

    jit = njit(parallel=True, fastmath=True, error_model="numpy", cache=True)

    @jit
    def cityblock(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        for i in prange(n):
            for j in range(m):
                s = zero
                for k in range(d):
                    s += abs(x[i, k] - y[j, k])
                out[i, j] = s

    @jit
    def sqeuclidean(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        for i in prange(n):
            for j in range(m):
                s = zero
                for k in range(d):
                    t = x[i, k] - y[j, k]
                    s += t * t
                out[i, j] = s

    @jit
    def euclidean(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        for i in prange(n):
            for j in range(m):
                s = zero
                for k in range(d):
                    t = x[i, k] - y[j, k]
                    s += t * t
                out[i, j] = np.sqrt(s)

    @jit
    def chebyshev(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        for i in prange(n):
            for j in range(m):
                s = zero
                for k in range(d):
                    s = max(s, abs(x[i, k] - y[j, k]))
                out[i, j] = s

    @jit
    def minkowski(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        inv = (zero + 1) / p
        for i in prange(n):
            for j in range(m):
                s = zero
                for k in range(d):
                    s += abs(x[i, k] - y[j, k]) ** p
                out[i, j] = s ** inv

    @jit
    def canberra(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        for i in prange(n):
            for j in range(m):
                s = zero
                for k in range(d):
                    den = abs(x[i, k]) + abs(y[j, k])
                    if den > zero:
                        s += abs(x[i, k] - y[j, k]) / den
                out[i, j] = s

    @jit
    def braycurtis(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        for i in prange(n):
            for j in range(m):
                num = zero
                den = zero
                for k in range(d):
                    num += abs(x[i, k] - y[j, k])
                    den += abs(x[i, k] + y[j, k])
                out[i, j] = num / den

    @jit
    def cosine(x, y, out, zero, p):
        n, d = x.shape
        m = y.shape[0]
        ny = np.empty(m, dtype=out.dtype)
        for j in prange(m):
            s = zero
            for k in range(d):
                s += y[j, k] * y[j, k]
            ny[j] = np.sqrt(s)
        for i in prange(n):
            s = zero
            for k in range(d):
                s += x[i, k] * x[i, k]
            nx = np.sqrt(s)
            for j in range(m):
                dot = zero
                for k in range(d):
                    dot += x[i, k] * y[j, k]
                out[i, j] = (zero + 1) - dot / (nx * ny[j])

    return {"cityblock": cityblock, "euclidean": euclidean, "sqeuclidean": sqeuclidean,
            "chebyshev": chebyshev, "minkowski": minkowski, "canberra": canberra,
            "braycurtis": braycurtis, "cosine": cosine}


def gemm_distances(x, y, metric):
    """The NumPy GEMM trick, in place on the (n, m) product; keeps the input dtype."""
    x2 = np.einsum("ij,ij->i", x, x)
    y2 = np.einsum("ij,ij->i", y, y)
    g = x @ y.T
    g *= -2
    g += x2[:, None]
    g += y2[None, :]
    np.maximum(g, 0, out=g)
    if metric == "euclidean":
        np.sqrt(g, out=g)
    return g


def calibrate(run, n_full, budget):
    """Untimed runs on growing row prefixes (256, x4, ...) until one takes a quarter of the
    budget or covers every row. Returns (rows for the timed runs, projected full seconds):
    all rows if the projection fits in the budget, else the prefix that takes about budget."""
    rows = min(n_full, 256)
    while True:
        t0 = time.perf_counter()
        r = run(rows)
        t = time.perf_counter() - t0
        del r
        est = t * n_full / rows
        if rows == n_full or est <= budget:
            return n_full, est
        if t >= budget / 4:
            return min(n_full, max(rows, int(rows * budget / t))), est
        rows = min(n_full, rows * 4)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", required=True, choices=IMPLS)
    p.add_argument("--x", required=True, help="points (n, d), .npy")
    p.add_argument("--y", required=True, help="points (m, d), .npy, same dtype and d")
    p.add_argument("--metrics", default=",".join(METRICS),
                   help=f"comma list among {','.join(METRICS)} (default: all)")
    p.add_argument("--p", type=float, default=3.0, help="minkowski's p (default 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--budget", type=float, default=0.0,
                   help="seconds a timed run may take before rows of x are dropped (0: never)")
    p.add_argument("--dask-chunk", type=int, default=0, help="dask: rows per chunk (0: ceil(n/4))")
    p.add_argument("--check-rows", type=int, default=64)
    a = p.parse_args()
    metrics = [m for m in a.metrics.split(",") if m]
    for m in metrics:
        if m not in METRICS:
            p.error(f"unknown metric {m!r} (known: {', '.join(METRICS)})")
    if a.threads < 1 or a.repeat < 1 or a.check_rows < 0 or a.budget < 0:
        p.error("--threads and --repeat must be >= 1, --check-rows and --budget >= 0")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))

    x = np.load(a.x)
    y = np.load(a.y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or x.dtype != y.dtype:
        sys.exit(f"distance_peer: x {x.shape} {x.dtype} and y {y.shape} {y.dtype} "
                 "need 2 dimensions, the same d and the same dtype")
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    n_full, d = x.shape
    m = y.shape[0]
    dtype = x.dtype
    tol = 1e-6 if dtype == np.float64 else 1e-3

    from scipy.spatial.distance import cdist

    def metric_kw(metric):
        return {"p": a.p} if metric == "minkowski" else {}

    def base(metric):
        rec = {"impl": a.impl, "metric": metric}
        if metric == "minkowski":
            rec["p"] = a.p
        rec.update({"dtype": dtype.name, "n": n_full, "m": m, "d": d, "threads": a.threads})
        return rec

    def emit(rec):
        rec["versions"] = versions()
        rec["blas"] = blas_info()
        print(json.dumps(rec), flush=True)

    # compute(metric, rows) -> the (rows, m) result; extra fields for the record
    extra = {}
    if a.impl == "scipy":
        def compute(metric, rows):
            return cdist(x[:rows], y, metric, **metric_kw(metric))
    elif a.impl == "numpy-gemm":
        def compute(metric, rows):
            return gemm_distances(x[:rows], y, metric)
    elif a.impl == "numba":
        try:
            import numba
        except ImportError as e:
            for metric in metrics:
                emit({**base(metric), "skipped": f"numba does not import: {e}"})
            return 0
        numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
        kernels = numba_kernels()
        zero = dtype.type(0)

        def compute(metric, rows):
            out = np.empty((rows, m), dtype=dtype)
            kernels[metric](x[:rows], y, out, zero, dtype.type(a.p))
            return out
    else:
        import dask
        import dask.array as da

        chunk = a.dask_chunk or -(-n_full // 4)
        extra["chunks"] = [chunk, d]

        def tile(xb, yb, metric):
            return cdist(xb, yb, metric, **metric_kw(metric))

        def compute(metric, rows):
            xs = da.from_array(x[:rows], chunks=(chunk, d))
            ys = da.from_array(y, chunks=(chunk, d))
            dd = da.blockwise(tile, "ij", xs, "ik", ys, "jk", dtype=np.float64,
                              concatenate=True, metric=metric)
            return dd.compute(scheduler="threads", num_workers=a.threads)

    for metric in metrics:
        rec = base(metric)
        rec.update(extra)
        if a.impl == "numpy-gemm" and metric not in GEMM_METRICS:
            emit({**rec, "skipped": "the GEMM trick covers euclidean and sqeuclidean only"})
            continue
        if a.impl == "numba":
            t0 = time.perf_counter()
            tiny = np.random.default_rng(0).random((8, d)).astype(dtype)
            compute_tiny = np.empty((8, 8), dtype=dtype)
            kernels[metric](tiny, tiny, compute_tiny, zero, dtype.type(a.p))
            rec["compile_seconds"] = time.perf_counter() - t0
            rec["threading_layer"] = numba.threading_layer()
        rows = n_full
        if a.budget > 0:
            rows, est = calibrate(lambda r: compute(metric, r), n_full, a.budget)
            if rows < n_full:
                rec["projected_full_seconds"] = est
        times = []
        head = None
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            r = compute(metric, rows)
            times.append(time.perf_counter() - t0)
            head = np.array(r[:a.check_rows], dtype=np.float64)
            out_dtype = r.dtype.name
            del r
        rec.update({"n": rows, "n_full": n_full, "subset": rows < n_full, "out_dtype": out_dtype,
                    "seconds": min(times), "seconds_all": times})
        if a.check_rows:
            c = min(a.check_rows, rows)
            ref = cdist(x[:c].astype(np.float64), y.astype(np.float64), metric, **metric_kw(metric))
            scale = float(np.max(np.abs(ref))) or 1.0
            err = float(np.max(np.abs(head[:c] - ref))) / scale
            rec.update({"max_err": err if math.isfinite(err) else None, "tol": tol,
                        "ok": bool(math.isfinite(err) and err <= tol)})
        emit(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
