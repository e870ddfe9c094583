#!/usr/bin/env python3
"""Make the input of benches/storage.sh: a large 2-D float64 .npy, written in row slabs.

    python benches/python/storage_data.py --rows 488281 --cols 1024 --file bench-out/storage/x.npy

Content: round(2 + sin(2 pi row / 4096) + 0.5 * N(0, 1), 3), C order, seeded. Rounding to three
decimals leaves a few thousand distinct values, so the codecs compress it (zstd to about a third)
without it being trivial (no long runs, no zeros). The array is made in ~64 MiB slabs
through a memory map, so Python never holds more than one slab; it is written to FILE.partial
and renamed into place, with a sidecar FILE.json holding the shape, the seed and the exact sum
(math.fsum of per-slab sums), the reference both tools' sums are checked against.

If FILE and its sidecar already describe the requested shape and seed, nothing is made (exit 0).
Prints one JSON line: {"made" or "reused": FILE, "shape", "bytes", "sum", "seconds"}.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

SLAB_BYTES = 64 << 20


def sidecar(path):
    return path + ".json"


def existing(path, rows, cols, seed):
    """The sidecar's record if FILE is complete and matches, else None."""
    try:
        with open(sidecar(path)) as f:
            meta = json.load(f)
        x = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if (meta.get("shape") == [rows, cols] and meta.get("seed") == seed
            and x.shape == (rows, cols) and x.dtype == np.float64 and x.flags.c_contiguous
            and meta.get("bytes") == os.path.getsize(path)):
        return meta
    return None


def make(path, rows, cols, seed):
    t0 = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for stale in (path, sidecar(path)):
        if os.path.exists(stale):
            os.remove(stale)
    tmp = path + ".partial"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype="<f8", shape=(rows, cols))
    rng = np.random.default_rng(seed)
    slab = max(1, SLAB_BYTES // (8 * cols))
    sums = []
    for i in range(0, rows, slab):
        out = arr[i:i + slab]
        n = out.shape[0]
        rng.standard_normal(out=out)
        out *= 0.5
        out += (2.0 + np.sin(np.arange(i, i + n, dtype=np.float64) * (2 * np.pi / 4096)))[:, None]
        np.round(out, 3, out=out)
        sums.append(float(out.sum()))
    arr.flush()
    del arr
    os.replace(tmp, path)
    meta = {"file": os.path.abspath(path), "shape": [rows, cols], "dtype": "float64",
            "seed": seed, "bytes": os.path.getsize(path), "sum": math.fsum(sums),
            "seconds": time.perf_counter() - t0}
    with open(sidecar(path) + ".partial", "w") as f:
        json.dump(meta, f)
    os.replace(sidecar(path) + ".partial", sidecar(path))
    return meta


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", required=True, help="the .npy to make")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--cols", type=int, default=1024)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    if a.rows < 1 or a.cols < 1:
        p.error("--rows and --cols must be >= 1")
    meta = existing(a.file, a.rows, a.cols, a.seed)
    if meta is not None:
        print(json.dumps({"reused": a.file, **meta}), flush=True)
        return 0
    meta = make(a.file, a.rows, a.cols, a.seed)
    print(json.dumps({"made": a.file, **meta}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
