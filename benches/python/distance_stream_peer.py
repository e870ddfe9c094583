#!/usr/bin/env python3
"""Dask side of the streaming part of benches/distance.sh: a distance matrix larger than the
memory it is given, computed tile by tile and written to an uncompressed Zarr array.

    python benches/python/distance_stream_peer.py write --x X.npy --out OUT.zarr \
        --chunk 4000 --metric euclidean --threads 2
    python benches/python/distance_stream_peer.py check --x X.npy --path OUT.zarr|OUT.h5:/d \
        [--rows 4] [--metric euclidean]

write: x = da.from_array(np.load(X, mmap_mode='r'), chunks=(chunk, d));
d = da.blockwise(scipy cdist tile, 'ij', x, 'ik', x, 'jk') (tiles chunk x chunk, float64);
zarr.create_array(OUT, shape=(n, n), chunks=(chunk, chunk), dtype=float64, compressors=None,
filters=None, zarr_format=3) (zarr-python 3, no codec but the bytes codec), then
da.to_zarr(d, that array) on the threaded scheduler with --threads workers (zarr-python's
own pool too). Nothing is fsynced. The driver times the whole process and its peak RSS with
/usr/bin/time; the line also gives the in-process time from creating the array to the end.
Prints {"impl": "dask", "metric", "dtype", "n", "m", "d", "chunk", "seconds", "bytes",
"versions"}.

check: reads --rows rows spread over the matrix (first, last and between) from a Zarr array or
an HDF5 dataset (FILE.h5:/DATASET) and compares them with scipy cdist of those rows against
all of x (relative 1e-6 of the largest distance: GEMM-identity kernels lose digits on
near points). Prints {"check": "ok" | "mismatch" |
"unchecked", "detail"}.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def open_matrix(path):
    """(array-like supporting [i] row reads, closer) for OUT.zarr or FILE.h5:/DATASET."""
    if ".h5:" in path or ".hdf5:" in path:
        import h5py

        file, dset = path.rsplit(":", 1)
        f = h5py.File(file, "r")
        return f[dset], f.close
    import zarr

    return zarr.open_array(path, mode="r"), (lambda: None)


def check(a):
    from scipy.spatial.distance import cdist

    x = np.load(a.x, mmap_mode="r")
    n = x.shape[0]
    try:
        arr, close = open_matrix(a.path)
    except Exception as e:  # noqa: BLE001 - any reader failure is reported, not raised
        return {"check": "unchecked", "detail": f"cannot open {a.path}: {e}"}
    try:
        if tuple(arr.shape) != (n, n):
            return {"check": "mismatch", "detail": f"shape {tuple(arr.shape)}, want {(n, n)}"}
        rows = sorted({int(r) for r in np.linspace(0, n - 1, max(2, a.rows))})
        worst = 0.0
        for r in rows:
            got = np.asarray(arr[r], dtype=np.float64)
            ref = cdist(np.asarray(x[r:r + 1], dtype=np.float64), np.asarray(x, dtype=np.float64),
                        a.metric)[0]
            worst = max(worst, float(np.max(np.abs(got - ref))) / (float(np.max(ref)) or 1.0))
        ok = worst <= 1e-6
        return {"check": "ok" if ok else "mismatch",
                "detail": f"rows {rows}: max rel err {worst:.2g}"}
    finally:
        close()


def write(a):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))
    import dask
    import dask.array as da
    import scipy
    import zarr
    from scipy.spatial.distance import cdist

    zarr.config.set({"threading.max_workers": a.threads})
    x = np.load(a.x, mmap_mode="r")
    n, d = x.shape
    if os.path.exists(a.out):
        sys.exit(f"distance_stream_peer: {a.out} exists; remove it first")

    def tile(xb, yb):
        return cdist(xb, yb, a.metric)

    t0 = time.perf_counter()
    xs = da.from_array(x, chunks=(a.chunk, d))
    dd = da.blockwise(tile, "ij", xs, "ik", xs, "jk", dtype=np.float64, concatenate=True)
    z = zarr.create_array(store=a.out, shape=(n, n), chunks=(a.chunk, a.chunk), dtype=np.float64,
                          filters=None, compressors=None, fill_value=0.0, zarr_format=3)
    with dask.config.set(scheduler="threads", num_workers=a.threads):
        da.to_zarr(dd, z)
    seconds = time.perf_counter() - t0
    print(json.dumps({"impl": "dask", "metric": a.metric, "dtype": x.dtype.name, "n": n, "m": n,
                      "d": d, "chunk": a.chunk, "seconds": seconds, "bytes": n * n * 8,
                      "threads": a.threads,
                      "versions": {"numpy": np.__version__, "dask": dask.__version__,
                                   "scipy": scipy.__version__, "zarr": zarr.__version__}}),
          flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("op", choices=["write", "check"])
    p.add_argument("--x", required=True, help="points (n, d), .npy")
    p.add_argument("--out", help="write: the Zarr array to make")
    p.add_argument("--path", help="check: OUT.zarr or FILE.h5:/DATASET")
    p.add_argument("--metric", default="euclidean")
    p.add_argument("--chunk", type=int, default=4000, help="write: tile rows and columns")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rows", type=int, default=4, help="check: rows compared")
    a = p.parse_args()
    if a.op == "write":
        if not a.out:
            p.error("write needs --out")
        if a.chunk < 1 or a.threads < 1:
            p.error("--chunk and --threads must be >= 1")
        return write(a)
    if not a.path:
        p.error("check needs --path")
    print(json.dumps(check(a)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
