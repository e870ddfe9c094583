#!/usr/bin/env python3
"""Dask (and NumPy) side of benches/storage.sh: one storage measurement per process.

Read (the full sum of a 2-D float64 array), best of --repeat after one untimed run (warm)
or with the page cache dropped before every run (cold):
    python benches/python/storage_peer.py read --backend npy   --path x.npy
    python benches/python/storage_peer.py read --backend zarr  --path x.zarr
    python benches/python/storage_peer.py read --backend hdf5  --path x.h5:/x [--cold]
    python benches/python/storage_peer.py read --backend memory --path x.npy
      npy     da.from_array(np.load(path, mmap_mode='r'), chunks=(--slab-rows, cols)).sum()
      zarr    da.from_zarr(path).sum()                  (Dask chunks = the Zarr chunks)
      hdf5    da.from_array(h5py dataset, chunks=(the dataset's chunk rows rounded up
              to ~--slab-bytes, cols)).sum()
      memory  np.load(path) into RAM (untimed), then NumPy x.sum() and
              da.from_array(x, chunks=(--slab-rows, cols)).sum(): two result lines

Write (from a .npy, page cache warm; the output removed before each run, untimed):
    python benches/python/storage_peer.py write --backend zarr --src x.npy --path out.zarr \
        --codec zstd --level 3 --chunks 4096
    python benches/python/storage_peer.py write --backend hdf5 --src x.npy --path out.h5:/x \
        --codec gzip --level 4 --chunks 4096
      d = da.from_array(np.load(src, mmap_mode='r'), chunks=(--chunks, cols))
      zarr    zarr.create_array(path, chunks=(--chunks, cols), compressors=<codec>) (Zarr v3,
              BytesCodec + none | ZstdCodec(level) | BloscCodec(cname='zstd', clevel, shuffle)
              | GzipCodec(level)),
              then da.to_zarr(d, that array)
      hdf5    da.to_hdf5(file, dataset, d, chunks=(--chunks, cols)[, compression='gzip',
              compression_opts=level, shuffle=True | compression='lzf', shuffle=True])
    The timed span is from creating the output to closing it; nothing is fsynced.

Dask runs with the threaded scheduler and --threads workers; zarr-python's own thread pool
(threading.max_workers) is set to --threads too. One JSON line per result:
    {"tool": "dask"|"numpy", "backend", "op": "read"|"write", "cache": "warm"|"cold"|null,
     "path", "seconds" (best), "seconds_all", "bytes" (uncompressed array bytes), "gb_per_s",
     "result" (the sum; null for writes), "chunks", "rss_base_kb" (ru_maxrss after imports and
     before any data is touched), "rss_peak_kb" (ru_maxrss at the end), "threads", "versions"}
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def drop_caches():
    """Write back dirty pages, then drop the page cache (needs root)."""
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def warm(path):
    """Read every file under `path` once so it sits in the page cache."""
    files = [path] if os.path.isfile(path) else [
        os.path.join(d, n) for d, _, names in os.walk(path) for n in names]
    buf = bytearray(16 << 20)
    for name in files:
        with open(name, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def split_h5(path):
    """'file.h5:/group/x' -> ('file.h5', '/group/x')."""
    if ":" not in path:
        sys.exit(f"storage_peer: HDF5 path {path!r} needs FILE:/DATASET")
    file, dset = path.rsplit(":", 1)
    return file, dset


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("op", choices=["read", "write"])
    p.add_argument("--backend", required=True, choices=["memory", "npy", "zarr", "hdf5"])
    p.add_argument("--path", required=True, help="file to read, or output to write")
    p.add_argument("--src", help="write: the source .npy")
    p.add_argument("--codec", default="none", choices=["none", "zstd", "blosc", "gzip", "lzf"])
    p.add_argument("--level", type=int, default=None)
    p.add_argument("--chunks", type=int, default=4096, help="write: chunk rows of the output")
    p.add_argument("--slab-bytes", type=int, default=128 << 20,
                   help="read: target Dask chunk bytes for npy, memory and hdf5 (default 128 MiB)")
    p.add_argument("--cold", action="store_true", help="read: drop the page cache before each run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--label", default="", help="copied into the output records")
    a = p.parse_args()
    if a.repeat < 1 or a.threads < 1 or a.chunks < 1:
        p.error("--repeat, --threads and --chunks must be >= 1")
    if a.op == "write" and (a.backend not in ("zarr", "hdf5") or not a.src):
        p.error("write needs --backend zarr|hdf5 and --src FILE.npy")

    import dask
    import dask.array as da
    import h5py
    import zarr
    import zarr.codecs as zc

    dask.config.set(scheduler="threads", num_workers=a.threads)
    zarr.config.set({"threading.max_workers": a.threads})
    versions = {"numpy": np.__version__, "dask": dask.__version__, "zarr": zarr.__version__,
                "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version}
    rss_base = maxrss_kb()

    def emit(tool, seconds_all, nbytes, result, chunks, cache):
        best = min(seconds_all)
        print(json.dumps({
            "tool": tool, "backend": a.backend, "op": a.op, "cache": cache, "path": a.path,
            "codec": a.codec if a.op == "write" else None, "label": a.label,
            "seconds": best, "seconds_all": seconds_all, "bytes": nbytes,
            "gb_per_s": nbytes / best / 1e9 if best > 0 else None,
            "result": None if result is None else float(result), "chunks": chunks,
            "rss_base_kb": rss_base, "rss_peak_kb": maxrss_kb(), "threads": a.threads,
            "versions": versions}), flush=True)

    def timed_runs(fn, cold):
        """Untimed first run (warm) or cache drops (cold), then --repeat timed runs."""
        if not cold:
            result = fn()
        times = []
        for _ in range(a.repeat):
            if cold:
                drop_caches()
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        return times, result

    def slab_rows(cols, itemsize, multiple=1):
        rows = max(1, a.slab_bytes // (cols * itemsize))
        return max(multiple, rows // multiple * multiple)

    cache = "cold" if a.cold else "warm"
    if a.op == "read":
        if a.backend == "memory":
            x = np.load(a.path)  # in RAM, untimed
            times, result = timed_runs(x.sum, False)
            emit("numpy", times, x.nbytes, result, list(x.shape), "memory")
            d = da.from_array(x, chunks=(slab_rows(x.shape[1], 8), x.shape[1]))
            times, result = timed_runs(lambda: d.sum().compute(), False)
            emit("dask", times, x.nbytes, result, list(d.chunksize), "memory")
            return 0
        if a.backend == "npy":
            def fn():
                x = np.load(a.path, mmap_mode="r")
                d = da.from_array(x, chunks=(slab_rows(x.shape[1], 8), x.shape[1]))
                fn.chunks = list(d.chunksize)
                return d.sum().compute()
        elif a.backend == "zarr":
            def fn():
                d = da.from_zarr(a.path)
                fn.chunks = list(d.chunksize)
                return d.sum().compute()
        else:
            file, dset = split_h5(a.path)

            def fn():
                with h5py.File(file, "r") as f:
                    ds = f[dset]
                    cols = ds.shape[1]
                    base = ds.chunks[0] if ds.chunks else 1
                    d = da.from_array(ds, chunks=(slab_rows(cols, ds.dtype.itemsize, base), cols))
                    fn.chunks = list(d.chunksize)
                    return d.sum().compute()
        times, result = timed_runs(fn, a.cold)
        x = np.load(a.path, mmap_mode="r") if a.backend == "npy" else None
        nbytes = x.nbytes if x is not None else None
        if nbytes is None:
            if a.backend == "zarr":
                z = zarr.open_array(a.path, mode="r")
                nbytes = z.nbytes
            else:
                with h5py.File(split_h5(a.path)[0], "r") as f:
                    ds = f[split_h5(a.path)[1]]
                    nbytes = ds.size * ds.dtype.itemsize
        emit("dask", times, nbytes, result, fn.chunks, cache)
        return 0

    # write
    src = np.load(a.src, mmap_mode="r")
    if src.ndim != 2:
        sys.exit(f"storage_peer: {a.src}: need a 2-D array, got shape {src.shape}")
    warm(a.src)
    cols = src.shape[1]
    chunks = (a.chunks, cols)
    times = []
    for _ in range(a.repeat):
        if a.backend == "zarr":
            remove(a.path)
        else:
            remove(split_h5(a.path)[0])
        subprocess.run(["sync"], check=True)  # earlier runs' dirty pages written back, untimed
        d = da.from_array(src, chunks=chunks)
        t0 = time.perf_counter()
        if a.backend == "zarr":
            compressors = {
                "none": None,
                "zstd": zc.ZstdCodec(level=3 if a.level is None else a.level, checksum=False),
                "blosc": zc.BloscCodec(cname="zstd", clevel=5 if a.level is None else a.level,
                                       shuffle="shuffle", typesize=8),
                "gzip": zc.GzipCodec(level=5 if a.level is None else a.level),
            }.get(a.codec, "unsupported")
            if compressors == "unsupported":
                sys.exit(f"storage_peer: codec {a.codec} is not measured for Zarr")
            z = zarr.create_array(store=a.path, shape=src.shape, chunks=chunks, dtype=src.dtype,
                                  filters=None, compressors=compressors, fill_value=0.0,
                                  zarr_format=3)
            da.to_zarr(d, z)
        else:
            file, dset = split_h5(a.path)
            kw = {}
            if a.codec == "gzip":
                kw = {"compression": "gzip", "compression_opts": 4 if a.level is None else a.level,
                      "shuffle": True}
            elif a.codec == "lzf":
                kw = {"compression": "lzf", "shuffle": True}
            elif a.codec != "none":
                sys.exit(f"storage_peer: codec {a.codec} is not measured for HDF5")
            da.to_hdf5(file, dset, d, chunks=chunks, **kw)
        times.append(time.perf_counter() - t0)
    emit("dask", times, src.nbytes, None, list(chunks), None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
