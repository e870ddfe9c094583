#!/usr/bin/env python3
"""Make the point files of benches/distance.sh: (rows, d) uniform random points in [0, 1).

    python benches/python/distance_data.py --file DIR/x-10000x64-f8.npy --rows 10000 --d 64 \
        --dtype f64 --seed 1

The points are numpy.random.default_rng(seed).random((rows, d), dtype=DTYPE), C order: a float32
file is drawn as float32 (so it stays in [0, 1)), not rounded from the float64 one. The file is
written to FILE.partial and renamed into place, with a sidecar FILE.json holding the shape, the
dtype and the seed. If FILE and its sidecar already describe the requested points, nothing is
made (exit 0), so the inputs are made once and reused across runs.

Prints one JSON line: {"made" or "reused": FILE, "shape", "dtype", "seed", "bytes", "seconds"}.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

DTYPES = {"f64": np.float64, "f32": np.float32}


def sidecar(path):
    return path + ".json"


def existing(path, rows, d, dtype, seed):
    """The sidecar's record if FILE is complete and matches the request, else None."""
    try:
        with open(sidecar(path)) as f:
            meta = json.load(f)
        x = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if (meta.get("shape") == [rows, d] and meta.get("dtype") == np.dtype(dtype).name
            and meta.get("seed") == seed and x.shape == (rows, d) and x.dtype == dtype
            and x.flags.c_contiguous and meta.get("bytes") == os.path.getsize(path)):
        return meta
    return None


def make(path, rows, d, dtype, seed):
    t0 = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for stale in (path, sidecar(path)):
        if os.path.exists(stale):
            os.remove(stale)
    x = np.random.default_rng(seed).random((rows, d), dtype=dtype)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        np.save(f, x)
    os.replace(tmp, path)
    meta = {"file": os.path.abspath(path), "shape": [rows, d], "dtype": np.dtype(dtype).name,
            "seed": seed, "bytes": os.path.getsize(path), "seconds": time.perf_counter() - t0}
    with open(sidecar(path) + ".partial", "w") as f:
        json.dump(meta, f)
    os.replace(sidecar(path) + ".partial", sidecar(path))
    return meta


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", required=True, help="the .npy to make")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--d", type=int, required=True, help="dimensions (columns)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="f64")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.rows < 1 or a.d < 1:
        p.error("--rows and --d must be >= 1")
    dtype = DTYPES[a.dtype]
    meta = existing(a.file, a.rows, a.d, dtype, a.seed)
    if meta is not None:
        print(json.dumps({"reused": a.file, **meta}), flush=True)
        return 0
    meta = make(a.file, a.rows, a.d, dtype, a.seed)
    print(json.dumps({"made": a.file, **meta}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
