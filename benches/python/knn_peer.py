#!/usr/bin/env python3
"""scikit-learn side of the k-nearest-neighbour part of benches/distance.sh.

    python benches/python/knn_peer.py --x X.npy -k 8 --threads 2 --repeat 3 [--save-dist D.npy]
    python benches/python/knn_peer.py --check OUT.zarr --ref D.npy

Run: NearestNeighbors(n_neighbors=k, algorithm='brute', metric='euclidean').fit(x)
.kneighbors(x) (every point queries the whole set, itself included as its own first
neighbour at distance 0; scikit-learn computes it by chunks of the distance matrix with the
GEMM identity, BLAS and OpenMP threads set to --threads). Timed in-process from fit to the
result, best of --repeat; the driver measures the whole process (and its peak RSS) with
/usr/bin/time. --save-dist writes the (n, k) distances of the last run, the reference of
--check.

Check: reads tessera's knn output (a Zarr array, or a group holding arrays) and compares every
float (n, k) array in it with the reference distances (relative 1e-6 of the largest one), and
every integer (n, k) array with the distances those indices give (ties make indices differ
legitimately, distances do not). Prints {"check": "ok" | "mismatch" | "unchecked", "detail"}.

One JSON line per run mode:
    {"impl": "sklearn", "metric": "euclidean", "dtype", "n", "m", "d", "k", "seconds" (best),
     "seconds_all", "threads", "versions", "blas"}
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def versions():
    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    for name in ("sklearn", "scipy", "zarr"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = getattr(mod, "__version__", "?")
    return out


def blas_info():
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


def arrays_in(path):
    """(name, numpy array) of every array in a Zarr array or group (recursively)."""
    import zarr

    node = zarr.open(path, mode="r")
    if isinstance(node, zarr.Array):
        return [(os.path.basename(path.rstrip("/")), node[...])]
    return [(name, arr[...]) for name, arr in node.arrays()] + \
        [(f"{g}/{name}", arr) for g, sub in node.groups() for name, arr in arrays_in(f"{path}/{g}")]


def check(path, ref_path, x_path):
    ref = np.load(ref_path)
    n, k = ref.shape
    scale = float(np.max(ref)) or 1.0
    x = np.load(x_path) if x_path else None
    try:
        found = arrays_in(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is reported, not raised
        return {"check": "unchecked", "detail": f"cannot read {path}: {e}"}
    done, bad = [], []
    for name, arr in found:
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != k:
            continue
        if np.issubdtype(arr.dtype, np.floating):
            err = float(np.max(np.abs(np.sort(arr.astype(np.float64), axis=1) - ref))) / scale
        elif np.issubdtype(arr.dtype, np.integer) and x is not None:
            if arr.min() < 0 or arr.max() >= x.shape[0]:
                bad.append(f"{name}: indices out of range")
                continue
            dist = np.sqrt(((x[:, None, :] - x[arr]) ** 2).sum(axis=2))
            err = float(np.max(np.abs(np.sort(dist, axis=1) - ref))) / scale
        else:
            continue
        (done if err <= 1e-6 else bad).append(f"{name} ({arr.dtype}) max rel err {err:.2g}")
    if bad:
        return {"check": "mismatch", "detail": "; ".join(bad + done)}
    if done:
        return {"check": "ok", "detail": "; ".join(done)}
    return {"check": "unchecked",
            "detail": f"no ({n}, {k}) array in {path}: " + ", ".join(
                f"{name} {a.shape} {a.dtype}" for name, a in found)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--x", help="points (n, d), .npy")
    p.add_argument("-k", type=int, default=8)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--save-dist", help="write the (n, k) distances here (.npy)")
    p.add_argument("--check", metavar="OUT", help="compare tessera's output OUT with --ref")
    p.add_argument("--ref", help="--check: the reference distances (.npy from --save-dist)")
    a = p.parse_args()
    if a.check:
        if not a.ref:
            p.error("--check needs --ref")
        print(json.dumps(check(a.check, a.ref, a.x)), flush=True)
        return 0
    if not a.x:
        p.error("--x is required")
    if a.k < 1 or a.threads < 1 or a.repeat < 1:
        p.error("-k, --threads and --repeat must be >= 1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(a.threads))

    import sklearn
    from sklearn.neighbors import NearestNeighbors

    x = np.load(a.x)
    n, d = x.shape
    times = []
    dist = None
    for _ in range(a.repeat):
        dist = None
        t0 = time.perf_counter()
        dist, _ind = NearestNeighbors(n_neighbors=a.k, algorithm="brute",
                                      metric="euclidean").fit(x).kneighbors(x)
        times.append(time.perf_counter() - t0)
        del _ind
    if a.save_dist:
        np.save(a.save_dist, dist)
    print(json.dumps({"impl": "sklearn", "metric": "euclidean", "dtype": x.dtype.name, "n": n,
                      "m": n, "d": d, "k": a.k, "seconds": min(times), "seconds_all": times,
                      "threads": a.threads, "versions": {**versions(), "sklearn": sklearn.__version__},
                      "blas": blas_info()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
