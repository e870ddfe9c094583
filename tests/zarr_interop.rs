//! Zarr interop: arrays zarr-python writes (v2 and v3, every codec and layout it offers that
//! tessera reads) are read back bit-exactly; arrays tessera writes are read back bit-exactly by
//! zarr-python, with the chunks, codec and completion attribute asked for; the library API
//! round-trips without Python; bad input gives one clear `error:` line; `info` describes a store.
//!
//! The zarr-python tests need a Python with NumPy 2, zarr 3 and numcodecs, named by
//! `$TESSERA_PYTHON` (see `tests/python/README.md`); without it they print that they were
//! skipped, unless `TESSERA_REQUIRE_ORACLE=1`. Every check is batched: one Python call writes
//! the inputs, the `tessera` runs go in parallel, and one Python call checks all the results and
//! prints one `FAIL` line per mismatch.

#[path = "common/python.rs"]
mod python;

use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tessera::chunks::AxisChunks;
use tessera::ops::slice::SliceItem;
use tessera::store::zarr::{self as tzarr, Codec, ZarrWriteOptions};
use tessera::{ChunkedArray, Chunks, Error, ExecOptions};

#[path = "common/cli.rs"]
mod cli;
use cli::tessera;

// -------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------

/// Runs every job (the arguments of one `tessera` call) on a few threads; outputs in job order.
fn tessera_all(dir: &Path, jobs: &[Vec<OsString>]) -> Vec<Output> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Output>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= jobs.len() {
                    break;
                }
                let out = tessera(dir, &jobs[k]);
                results.lock().unwrap()[k] = Some(out);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect()
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The `FAIL ...` reports an oracle script printed, each with its continuation lines.
fn failures(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_failure = false;
    for line in stdout.lines() {
        if line.starts_with("FAIL") {
            out.push(line.to_string());
            in_failure = true;
        } else if line.starts_with("OK ") {
            in_failure = false;
        } else if in_failure {
            let last = out.last_mut().expect("a FAIL line first");
            last.push('\n');
            last.push_str(line);
        }
    }
    out
}

/// Asserts that a run failed cleanly: non-zero exit, nothing on stdout, exactly one stderr line
/// starting with `error: `, no panic, and that line holding every one of `wants`. Returns it.
#[track_caller]
fn clean_error(what: &str, out: &Output, wants: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: succeeded:\n{stdout}");
    assert_ne!(out.status.code(), Some(101), "{what}: panicked:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{what}: panicked:\n{stderr}");
    assert!(stdout.is_empty(), "{what}: wrote to stdout:\n{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one stderr line:\n{stderr}");
    assert!(
        lines[0].starts_with("error: "),
        "{what}: no `error: ` prefix:\n{stderr}"
    );
    for w in wants {
        assert!(lines[0].contains(w), "{what}: error lacks {w:?}:\n{stderr}");
    }
    lines[0].to_string()
}

#[track_caller]
fn success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir` with its bytes, and every directory (as `dir/` with no bytes), to
/// show that a failed run left a store untouched.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel.join(""), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn opts() -> ExecOptions {
    ExecOptions::default().threads(2)
}

fn zopts(codec: Codec, overwrite: bool) -> ZarrWriteOptions {
    ZarrWriteOptions {
        codec,
        overwrite,
        ..ZarrWriteOptions::default()
    }
}

/// A float64 array with every kind of special value, `a[i] = f(i)` elsewhere.
fn sample(shape: &[usize]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let special = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        5e-324,
    ];
    let v: Vec<f64> = (0..n)
        .map(|i| {
            if i % 11 == 3 {
                special[(i / 11) % special.len()]
            } else {
                (i as f64) * 0.37 - 7.25
            }
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

/// Shape and the bits of every element in logical order: equality with NaN and -0.0.
fn bits(a: &ArrayD<f64>) -> (Vec<usize>, Vec<u64>) {
    (a.shape().to_vec(), a.iter().map(|x| x.to_bits()).collect())
}

/// The numbers of a Python helper that both writing scripts share: `values(dtype, shape)` with
/// the extremes of the dtype (NaN, infinities, -0.0, tiny, max, min; or min, max, 0, 1) first.
const VALUES: &str = r#"
import os, sys, json, math, warnings
import numpy as np
warnings.simplefilter("ignore")
rng = np.random.default_rng(20250611)

def values(dtype, shape):
    dt = np.dtype(dtype)
    native = dt.newbyteorder("=")
    n = math.prod(shape)
    if dt.kind == "b":
        v = rng.integers(0, 2, n).astype(bool)
        special = np.array([True, False])
    elif dt.kind in "iu":
        info = np.iinfo(native)
        v = rng.integers(info.min, info.max, n, dtype=native, endpoint=True)
        special = np.array([info.min, info.max, 0, 1], dtype=native)
    else:
        v = (rng.standard_normal(n) * 1e3).astype(native)
        fi = np.finfo(native)
        special = np.array([np.nan, np.inf, -np.inf, -0.0, fi.tiny, fi.max, fi.min],
                           dtype=native)
    k = min(n, len(special))
    v[:k] = special[:k]
    return v.reshape(shape).astype(dt)
"#;

// -------------------------------------------------------------------------------------------
// 1. zarr-python writes, tessera reads
// -------------------------------------------------------------------------------------------

/// Writes one Zarr array per case under `argv[1]`, and prints `NAME<TAB>SPEC<TAB>WHAT` where
/// SPEC is the store path (with the array path inside it for arrays in groups).
const WRITE_ZARR: &str = r#"
import zarr, numcodecs
from numcodecs import Blosc, Zlib, Zstd, GZip
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, TransposeCodec, ZstdCodec

root = sys.argv[1]

def put(name, what, shape, dtype, inner="", region=None, **kw):
    store = os.path.join(root, name + ".zarr")
    if inner:
        fmt = kw.pop("zarr_format", 3)
        g = zarr.open_group(store, mode="w", zarr_format=fmt)
        *parents, leaf = inner.split("/")
        for p in parents:
            g = g.require_group(p)
        z = g.create_array(leaf, shape=shape, dtype=dtype, **kw)
    else:
        z = zarr.create_array(store, shape=shape, dtype=dtype, **kw)
    a = values(dtype, shape)
    if region is None:
        z[...] = a
    else:
        z[region] = a[region]
    spec = name + ".zarr" + ("/" + inner if inner else "")
    print(f"{name}\t{spec}\t{what}")

v2 = dict(zarr_format=2)
put("v2_blosc_lz4_shuffle", "v2 f8 (13,7)/(5,3) Blosc lz4 shuffle", (13, 7), "f8", chunks=(5, 3),
    compressors=Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE), **v2)
put("v2_blosc_zstd_bitshuffle", "v2 i4 (13,7)/(4,4) Blosc zstd bitshuffle", (13, 7), "i4",
    chunks=(4, 4), compressors=Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE), **v2)
put("v2_blosc_noshuffle_u8", "v2 u8 (20,)/(6,) Blosc lz4 no shuffle", (20,), "u8", chunks=(6,),
    compressors=Blosc(cname="lz4", shuffle=Blosc.NOSHUFFLE), **v2)
put("v2_zlib", "v2 f4 (10,)/(3,) Zlib", (10,), "f4", chunks=(3,), compressors=Zlib(level=6), **v2)
put("v2_zstd", "v2 u1 (9,11)/(4,5) Zstd", (9, 11), "u1", chunks=(4, 5),
    compressors=Zstd(level=3), **v2)
put("v2_gzip", "v2 i8 (6,5,4)/(4,2,3) GZip", (6, 5, 4), "i8", chunks=(4, 2, 3),
    compressors=GZip(level=5), **v2)
put("v2_no_compressor", "v2 bool (11,6)/(5,5) no compressor", (11, 6), "bool", chunks=(5, 5),
    compressors=None, **v2)
put("v2_order_F", "v2 f8 order F (7,9)/(3,4) Blosc lz4", (7, 9), "f8", chunks=(3, 4), order="F",
    compressors=Blosc(cname="lz4"), **v2)
put("v2_order_F_big_endian", "v2 >f8 order F (7,9)/(3,4) Zlib", (7, 9), ">f8", chunks=(3, 4),
    order="F", compressors=Zlib(), **v2)
put("v2_order_F_3d", "v2 f4 order F (5,6,7)/(2,4,3) GZip", (5, 6, 7), "f4", chunks=(2, 4, 3),
    order="F", compressors=GZip(), **v2)
put("v2_big_endian_f8", "v2 >f8 (13,7)/(5,3) Zstd", (13, 7), ">f8", chunks=(5, 3),
    compressors=Zstd(), **v2)
put("v2_big_endian_i4", "v2 >i4 (13,7)/(6,6) Blosc zstd bitshuffle", (13, 7), ">i4",
    chunks=(6, 6), compressors=Blosc(cname="zstd", shuffle=Blosc.BITSHUFFLE), **v2)
put("v2_slash_separator", "v2 u2 (9,11)/(4,5) '/' chunk keys", (9, 11), "u2", chunks=(4, 5),
    chunk_key_encoding={"name": "v2", "separator": "/"}, **v2)
put("v2_fill_nan_missing", "v2 f8 fill NaN, chunks never written", (9, 11), "f8",
    chunks=(4, 5), fill_value=np.nan, region=(slice(0, 4), slice(0, 5)), **v2)
put("v2_int16", "v2 i2 (8,6)/(3,4)", (8, 6), "i2", chunks=(3, 4), **v2)
put("v2_none_rows", "v2 f8 (13,7)/(5,7) no compressor", (13, 7), "f8", chunks=(5, 7),
    compressors=None, **v2)
put("v2_none_3d", "v2 u2 (9,4,3)/(4,4,3) no compressor", (9, 4, 3), "u2", chunks=(4, 4, 3),
    compressors=None, **v2)
put("v2_zstd_rows", "v2 f8 (13,7)/(5,7) Zstd", (13, 7), "f8", chunks=(5, 7),
    compressors=Zstd(level=1), **v2)
put("v2_zstd_checksum_rows", "v2 i2 (13,7)/(4,7) Zstd checksum", (13, 7), "i2", chunks=(4, 7),
    compressors=Zstd(level=5, checksum=True), **v2)
put("v2_blosc_lz4_rows", "v2 f8 (13,7)/(5,7) Blosc lz4 shuffle", (13, 7), "f8", chunks=(5, 7),
    compressors=Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE), **v2)
put("v2_blosc_zstd_bitshuffle_rows", "v2 i4 (21,)/(8,) Blosc zstd bitshuffle", (21,), "i4",
    chunks=(8,), compressors=Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE), **v2)
put("v2_blosc_memcpy_rows", "v2 u8 (13,3,2)/(4,3,2) Blosc clevel 0", (13, 3, 2), "u8",
    chunks=(4, 3, 2), compressors=Blosc(cname="lz4", clevel=0), **v2)
put("v2_0d", "v2 f8 0-d", (), "f8", chunks=(), **v2)
put("v2_group", "v2 i2 in group/array", (8, 6), "i2", inner="group/array", chunks=(3, 4),
    compressors=Zlib(), **v2)

put("v3_zstd", "v3 f8 (13,7)/(5,3) zstd", (13, 7), "f8", chunks=(5, 3),
    compressors=ZstdCodec(level=3))
put("v3_zstd_checksum", "v3 i8 (13,7)/(5,3) zstd checksum", (13, 7), "i8", chunks=(5, 3),
    compressors=ZstdCodec(level=1, checksum=True))
put("v3_blosc_lz4_bitshuffle", "v3 i4 (13,7)/(4,4) blosc lz4 bitshuffle", (13, 7), "i4",
    chunks=(4, 4), compressors=BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"))
put("v3_blosc_zstd_shuffle", "v3 f4 (9,11)/(4,5) blosc zstd shuffle", (9, 11), "f4",
    chunks=(4, 5), compressors=BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"))
put("v3_gzip", "v3 f4 (10,)/(3,) gzip", (10,), "f4", chunks=(3,), compressors=GzipCodec(level=6))
# numcodecs' Zlib in a v3 array (named numcodecs.zlib); zarr-python warns that it is not in
# the v3 specification.
import warnings, numcodecs.zarr3
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    put("v3_numcodecs_zlib_rows", "v3 f8 (13,7)/(5,7) numcodecs.zlib", (13, 7), "f8",
        chunks=(5, 7), compressors=numcodecs.zarr3.Zlib(level=6))
    put("v3_numcodecs_zlib", "v3 i4 (9,11)/(4,5) numcodecs.zlib", (9, 11), "i4",
        chunks=(4, 5), compressors=numcodecs.zarr3.Zlib(level=1))
    # Zlib() with numcodecs' default level is stored without one.
    put("v3_numcodecs_zlib_default", "v3 f4 (9,11)/(4,5) numcodecs.zlib defaults", (9, 11),
        "f4", chunks=(4, 5), compressors=numcodecs.zarr3.Zlib())
    # numcodecs' GZip, Zstd and Blosc (named numcodecs.gzip, .zstd, .blosc, with only the
    # settings that differ from numcodecs' defaults): read as the core codecs.
    nc = numcodecs.zarr3
    put("v3_numcodecs_gzip_rows", "v3 f8 (13,7)/(5,7) numcodecs.gzip", (13, 7), "f8",
        chunks=(5, 7), compressors=nc.GZip(level=5))
    put("v3_numcodecs_gzip_default", "v3 i2 (9,11)/(4,5) numcodecs.gzip defaults", (9, 11),
        "i2", chunks=(4, 5), compressors=nc.GZip())
    put("v3_numcodecs_zstd_rows", "v3 f4 (13,7)/(4,7) numcodecs.zstd defaults", (13, 7), "f4",
        chunks=(4, 7), compressors=nc.Zstd())
    put("v3_numcodecs_zstd_checksum", "v3 u8 (9,11)/(4,5) numcodecs.zstd checksum", (9, 11),
        "u8", chunks=(4, 5), compressors=nc.Zstd(level=7, checksum=True))
    put("v3_numcodecs_blosc_rows", "v3 f8 (13,7)/(5,7) numcodecs.blosc defaults", (13, 7), "f8",
        chunks=(5, 7), compressors=nc.Blosc())
    put("v3_numcodecs_blosc_zstd_bit", "v3 i4 (9,11)/(4,5) numcodecs.blosc zstd bitshuffle",
        (9, 11), "i4", chunks=(4, 5),
        compressors=nc.Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE))
    put("v3_numcodecs_blosc_auto_u1", "v3 u1 (21,)/(8,) numcodecs.blosc autoshuffle", (21,),
        "u1", chunks=(8,), compressors=nc.Blosc(cname="lz4", shuffle=Blosc.AUTOSHUFFLE))
    put("v3_numcodecs_blosc_noshuffle", "v3 i8 (6,5,4)/(4,2,3) numcodecs.blosc no shuffle",
        (6, 5, 4), "i8", chunks=(4, 2, 3),
        compressors=nc.Blosc(cname="zlib", clevel=1, shuffle=Blosc.NOSHUFFLE))
    put("v3_numcodecs_sharded", "v3 f8 (15,11) shards (8,6) inner (4,3) numcodecs.zstd",
        (15, 11), "f8", shards=(8, 6), chunks=(4, 3), compressors=nc.Zstd(level=2))
    put("v3_numcodecs_group", "v3 u2 numcodecs.gzip in g/a", (8, 6), "u2", inner="g/a",
        chunks=(3, 4), compressors=nc.GZip(level=9))
put("v3_no_compressor", "v3 bool (11,6)/(5,5) no compressor", (11, 6), "bool", chunks=(5, 5),
    compressors=None)
put("v3_big_endian", "v3 f8 big-endian bytes codec (7,9)/(3,4)", (7, 9), "f8", chunks=(3, 4),
    serializer=BytesCodec(endian="big"))
put("v3_transpose", "v3 i8 transpose codec (5,7)/(2,3)", (5, 7), "i8", chunks=(2, 3),
    filters=[TransposeCodec(order=(1, 0))])
put("v3_sharded", "v3 i2 (15,11) shards (8,6) inner (4,3) zstd", (15, 11), "i2",
    shards=(8, 6), chunks=(4, 3), compressors=ZstdCodec())
put("v3_sharded_partial", "v3 f8 sharded, fill 7, inner chunks and shards never written",
    (15, 11), "f8", shards=(8, 6), chunks=(4, 3), fill_value=7.0,
    region=(slice(0, 5), slice(0, 4)))
put("v3_fill_missing", "v3 i4 fill -1, chunks never written", (9, 11), "i4", chunks=(4, 5),
    fill_value=-1, region=(slice(2, 6), slice(0, 5)))
put("v3_int8", "v3 i1 (6,7,8)/(4,5,3)", (6, 7, 8), "i1", chunks=(4, 5, 3))
put("v3_none_rows", "v3 i4 (13,7)/(5,7) no compressor", (13, 7), "i4", chunks=(5, 7),
    compressors=None)
put("v3_none_rows_missing", "v3 f8 (13,7)/(5,7) no compressor, fill 2.5, chunks never written",
    (13, 7), "f8", chunks=(5, 7), compressors=None, fill_value=2.5,
    region=(slice(5, 10), slice(0, 7)))
put("v3_zstd_rows", "v3 f8 (13,7)/(5,7) zstd checksum", (13, 7), "f8", chunks=(5, 7),
    compressors=ZstdCodec(level=3, checksum=True))
put("v3_zstd_rows_missing", "v3 i8 (13,7)/(5,7) zstd, fill 3, chunks never written", (13, 7),
    "i8", chunks=(5, 7), compressors=ZstdCodec(), fill_value=3,
    region=(slice(5, 10), slice(0, 7)))
put("v3_blosc_rows", "v3 f4 (13,7)/(4,7) blosc lz4 bitshuffle", (13, 7), "f4", chunks=(4, 7),
    compressors=BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"))
put("v3_blosc_zlib_rows", "v3 f8 (13,7)/(5,7) blosc zlib shuffle", (13, 7), "f8",
    chunks=(5, 7), compressors=BloscCodec(cname="zlib", clevel=4, shuffle="shuffle"))
put("v3_blosc_u1_rows", "v3 u1 (21,)/(8,) blosc zstd no shuffle", (21,), "u1", chunks=(8,),
    compressors=BloscCodec(cname="zstd", clevel=5, shuffle="noshuffle"))
put("v3_zstd_chunk_past_end", "v3 f8 (3,17)/(5,4) zstd, chunks longer than the array",
    (3, 17), "f8", chunks=(5, 4), compressors=ZstdCodec())
put("v2_blosc_chunk_past_end", "v2 i8 (23,2)/(5,4) Blosc, chunks wider than the array",
    (23, 2), "i8", chunks=(5, 4), compressors=Blosc(cname="lz4"), zarr_format=2)
put("v3_none_chunk_past_end", "v3 u4 (7,3,2)/(4,4,4) no compressor, chunks past every end",
    (7, 3, 2), "u4", chunks=(4, 4, 4), compressors=None)
put("v3_uint16", "v3 u2 (6,7)/(4,5)", (6, 7), "u2", chunks=(4, 5))
put("v3_uint32", "v3 u4 (6,7)/(4,5) gzip", (6, 7), "u4", chunks=(4, 5), compressors=GzipCodec())
put("v3_uint64", "v3 u8 (6,7)/(4,5) blosc", (6, 7), "u8", chunks=(4, 5),
    compressors=BloscCodec(cname="zstd"))
put("v3_0d", "v3 f8 0-d", (), "f8", chunks=())
put("v3_empty", "v3 i4 (0,5)/(2,5)", (0, 5), "i4", chunks=(2, 5))
put("v3_group", "v3 u1 in group/array", (8, 6), "u1", inner="group/array", chunks=(3, 4))
put("v3_nested_group", "v3 u4 in a/b/c", (4, 5), "u4", inner="a/b/c", chunks=(3, 3),
    compressors=GzipCodec())
"#;

/// For every `NAME=SPEC` argument after the root, compares the array zarr-python reads from
/// `in/SPEC` with `out/NAME.npy`: shape, dtype up to byte order, every bit of every element.
const CHECK_READ: &str = r#"
import zarr
root = sys.argv[1]
for arg in sys.argv[2:]:
    name, spec = arg.split("=", 1)
    z = zarr.open_array(os.path.join(root, "in", spec), mode="r")
    a = np.asarray(z[...])
    b = np.load(os.path.join(root, "out", name + ".npy"))
    native = a.dtype.newbyteorder("=")
    why = []
    if a.shape != b.shape:
        why.append(f"shape {b.shape}, want {a.shape}")
    if b.dtype != native:
        why.append(f"dtype {b.dtype.str}, want {native.str}")
    if not why:
        wa = np.ascontiguousarray(a.astype(native)).tobytes()
        wb = np.ascontiguousarray(b.astype(native)).tobytes()
        if wa != wb:
            why.append(f"values differ:\n  got  {b!r}\n  want {a!r}")
    print(f"FAIL {name}: " + "; ".join(why) if why else f"OK {name}")
"#;

#[test]
fn zarr_python_arrays_read_back_exactly() {
    let Some(py) = python::python("zarr_python_arrays_read_back_exactly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("in")).unwrap();
    std::fs::create_dir(root.join("out")).unwrap();
    let manifest = python::run_script(&py, &format!("{VALUES}{WRITE_ZARR}"), &[root.join("in")]);
    let cases: Vec<Vec<&str>> = manifest
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .collect();
    assert!(
        cases.len() >= 30 && cases.iter().all(|c| c.len() == 3),
        "{manifest}"
    );

    // Half the arrays through `convert`, half through `eval -o`.
    let jobs: Vec<Vec<OsString>> = cases
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let (src, dst) = (format!("in/{}", c[1]), format!("out/{}.npy", c[0]));
            if k % 2 == 0 {
                os(&["convert", &src, &dst])
            } else {
                os(&["eval", "x", "--in", &format!("x={src}"), "-o", &dst])
            }
        })
        .collect();
    let outputs = tessera_all(root, &jobs);
    let mut problems = Vec::new();
    let mut args = vec![root.to_string_lossy().into_owned()];
    for (c, out) in cases.iter().zip(&outputs) {
        if out.status.success() {
            args.push(format!("{}={}", c[0], c[1]));
        } else {
            problems.push(format!(
                "{} ({}): tessera failed: {}",
                c[0],
                c[2],
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let report = python::run_script(&py, &format!("{VALUES}{CHECK_READ}"), &args);
    for line in failures(&report) {
        let name = line[5..].split(':').next().unwrap_or("?");
        let what = cases.iter().find(|c| c[0] == name).map_or("?", |c| c[2]);
        problems.push(format!("{what}: {line}"));
    }
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count() + problems.len(),
        cases.len(),
        "{report}"
    );
    assert!(
        problems.is_empty(),
        "{} of {} zarr-python arrays do not read back:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    // `info` shows the chain zarrs opened, and which numcodecs compressor it stands for.
    let info = &tessera_all(root, &[os(&["info", "in/v3_numcodecs_sharded.zarr"])])[0];
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.status.success() && text.contains("(read numcodecs.zstd as zstd)"),
        "{text}{}",
        String::from_utf8_lossy(&info.stderr)
    );
}

// -------------------------------------------------------------------------------------------
// 2. tessera writes, zarr-python reads
// -------------------------------------------------------------------------------------------

const DTYPES: [&str; 11] = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
    "float64",
];
const CODECS: [&str; 4] = ["none", "zstd", "blosc", "gzip"];

/// Writes `in/DTYPE.npy` (13, 7) for every dtype, plus a few other shapes.
const WRITE_NPY: &str = r#"
out = sys.argv[1]
for name in sys.argv[2:]:
    np.save(os.path.join(out, name + ".npy"), values(name, (13, 7)))
np.save(os.path.join(out, "float64_3d.npy"), values("float64", (4, 5, 6)))
np.save(os.path.join(out, "int16_3d.npy"), values("int16", (4, 5, 6)))
np.save(os.path.join(out, "int32_1d.npy"), values("int32", (10,)))
np.save(os.path.join(out, "float64_0d.npy"), values("float64", ()))
np.save(os.path.join(out, "float64_empty.npy"), values("float64", (0, 3)))
with np.errstate(over="ignore"):
    x2 = np.load(os.path.join(out, "float32.npy")) * np.float32(2)
np.save(os.path.join(out, "float32_x2.npy"), x2)
"#;

/// Reads `cases.tsv` (name, source .npy, Zarr output, chunks as JSON or `-`, codec) under
/// `argv[1]` and checks each output with zarr-python.
const CHECK_WRITE: &str = r#"
import zarr
root = sys.argv[1]
with open(os.path.join(root, "cases.tsv")) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
done = set(sys.argv[2:])
for name, src, dst, chunks, codec, fmt in rows:
    if name not in done:
        continue
    why = []
    try:
        a = np.load(os.path.join(root, src))
        z = zarr.open_array(os.path.join(root, dst), mode="r")
        b = np.asarray(z[...])
        if z.metadata.zarr_format != int(fmt):
            why.append(f"zarr_format {z.metadata.zarr_format}, want {fmt}")
        if z.attrs.get("tessera_complete") is not True:
            why.append(f"tessera_complete is {z.attrs.get('tessera_complete')!r}")
        if z.shape != a.shape:
            why.append(f"shape {z.shape}, want {a.shape}")
        if chunks != "-" and tuple(z.chunks) != tuple(json.loads(chunks)):
            why.append(f"chunks {z.chunks}, want {tuple(json.loads(chunks))}")
        if z.dtype != a.dtype:
            why.append(f"dtype {z.dtype}, want {a.dtype}")
        names = [type(c).__name__.lower() for c in z.compressors]
        # v3 codecs are zarr's (ZstdCodec), v2 compressors numcodecs' (Zstd).
        want = [codec + "codec" if fmt == "3" else codec]
        if (codec == "none" and names) or (codec != "none" and names != want):
            why.append(f"compressors {names}, want {codec}")
        if not why and a.tobytes() != np.ascontiguousarray(b).tobytes():
            why.append(f"values differ:\n  got  {b!r}\n  want {a!r}")
        # An array inside a group is reachable from the store root, group by group.
        store, _, inner = dst.partition(".zarr/")
        if inner:
            node = zarr.open_group(os.path.join(root, store + ".zarr"), mode="r")
            for part in inner.split("/"):
                node = node[part]
            if not isinstance(node, zarr.Array) or node.shape != a.shape:
                why.append(f"{inner} is not reachable from the root group: {node!r}")
    except Exception as e:
        why.append(f"{type(e).__name__}: {e}")
    print(f"FAIL {name}: " + "; ".join(why) if why else f"OK {name}")
"#;

/// One `tessera` run writing a Zarr array, and what zarr-python must find.
struct WriteCase {
    name: String,
    args: Vec<String>,
    src: String,
    dst: String,
    /// The chunk shape zarr-python must report, if the case fixes one.
    chunks: Option<Vec<usize>>,
    codec: &'static str,
    /// The Zarr format zarr-python must find.
    format: u8,
}

fn write_cases() -> Vec<WriteCase> {
    let convert = |name: &str, src: &str, dst: &str, chunks: Option<&str>, codec: &'static str| {
        let mut args = vec!["convert".to_string(), src.to_string(), dst.to_string()];
        if let Some(c) = chunks {
            // `--chunks=SPEC`: `--chunks -1,2` is taken for an option (see the BUG test below).
            args.push(format!("--chunks={c}"));
        }
        args.extend(["--codec".to_string(), codec.to_string()]);
        (name.to_string(), args)
    };
    // Ragged chunks for the (13, 7) arrays: --chunks and the chunk shape zarr-python must see.
    let ragged: [(&str, [usize; 2]); 4] = [
        ("5,3", [5, 3]),
        ("4", [4, 4]),
        ("-1,2", [13, 2]),
        ("6,7", [6, 7]),
    ];
    let mut cases = Vec::new();
    for (i, dt) in DTYPES.iter().enumerate() {
        for (j, codec) in CODECS.iter().enumerate() {
            // Zarr v3 with every codec; v2 (`--zarr-format 2`) with the codecs in turn.
            for format in [3u8, 2] {
                if format == 2 && j != i % CODECS.len() {
                    continue;
                }
                let (spec, chunks) = ragged[(i + j) % ragged.len()];
                let prefix = if format == 2 { "v2_" } else { "" };
                let name = format!("{prefix}{dt}_{codec}");
                let (name, mut args) = convert(
                    &name,
                    &format!("in/{dt}.npy"),
                    &format!("out/{name}.zarr"),
                    Some(spec),
                    codec,
                );
                if codec != &"none" && (i + j) % 3 == 0 {
                    args.extend(["--level".to_string(), "1".to_string()]);
                }
                if format == 2 {
                    args.extend(["--zarr-format".to_string(), "2".to_string()]);
                }
                cases.push(WriteCase {
                    src: format!("in/{dt}.npy"),
                    dst: format!("out/{name}.zarr"),
                    name,
                    args,
                    chunks: Some(chunks.to_vec()),
                    codec,
                    format,
                });
            }
        }
    }
    let mut extra = |name: &str,
                     src: &str,
                     dst: &str,
                     chunks: Option<&str>,
                     want: Option<Vec<usize>>,
                     codec: &'static str| {
        let (name, mut args) = convert(name, src, dst, chunks, codec);
        let format = if name.starts_with("v2_") { 2 } else { 3 };
        if format == 2 {
            args.extend(["--zarr-format".to_string(), "2".to_string()]);
        }
        cases.push(WriteCase {
            name,
            args,
            src: src.to_string(),
            dst: dst.to_string(),
            chunks: want,
            codec,
            format,
        });
    };
    extra(
        "3d_float64",
        "in/float64_3d.npy",
        "out/3d_float64.zarr",
        Some("3,-1,4"),
        Some(vec![3, 5, 4]),
        "blosc",
    );
    extra(
        "3d_int16",
        "in/int16_3d.npy",
        "out/3d_int16.zarr",
        Some("3"),
        Some(vec![3, 3, 3]),
        "gzip",
    );
    extra(
        "1d_int32",
        "in/int32_1d.npy",
        "out/1d_int32.zarr",
        Some("3"),
        Some(vec![3]),
        "zstd",
    );
    extra(
        "group",
        "in/int32.npy",
        "out/grp.zarr/g/a",
        Some("5,3"),
        Some(vec![5, 3]),
        "zstd",
    );
    extra(
        "deep_group",
        "in/uint8.npy",
        "out/deep.zarr/a/b/c",
        Some("4"),
        Some(vec![4, 4]),
        "gzip",
    );
    extra(
        "v2_3d_float64",
        "in/float64_3d.npy",
        "out/v2_3d.zarr",
        Some("3,-1,4"),
        Some(vec![3, 5, 4]),
        "zstd",
    );
    extra(
        "v2_deep_group",
        "in/int16.npy",
        "out/v2deep.zarr/a/b/c",
        Some("4"),
        Some(vec![4, 4]),
        "blosc",
    );
    extra(
        "v2_empty",
        "in/float64_empty.npy",
        "out/v2_empty.zarr",
        None,
        None,
        "gzip",
    );
    extra(
        "scalar",
        "in/float64_0d.npy",
        "out/scalar.zarr",
        None,
        Some(vec![]),
        "zstd",
    );
    extra(
        "empty",
        "in/float64_empty.npy",
        "out/empty.zarr",
        None,
        None,
        "none",
    );
    // Without --chunks, a small array is one chunk; without --codec, zstd.
    cases.push(WriteCase {
        name: "default".into(),
        args: ["convert", "in/int64.npy", "out/default.zarr"]
            .map(String::from)
            .to_vec(),
        src: "in/int64.npy".into(),
        dst: "out/default.zarr".into(),
        chunks: Some(vec![13, 7]),
        codec: "zstd",
        format: 3,
    });
    // `eval -o` writes Zarr too.
    cases.push(WriteCase {
        name: "eval".into(),
        args: [
            "eval",
            "rechunk(x, (5, 3))",
            "--in",
            "x=in/float64.npy",
            "-o",
            "out/eval.zarr",
            "--codec",
            "gzip",
        ]
        .map(String::from)
        .to_vec(),
        src: "in/float64.npy".into(),
        dst: "out/eval.zarr".into(),
        chunks: Some(vec![5, 3]),
        codec: "gzip",
        format: 3,
    });
    cases.push(WriteCase {
        name: "eval_group".into(),
        args: [
            "eval",
            "x",
            "--in",
            "x=in/uint16.npy",
            "-o",
            "out/evalg.zarr/results/x",
            "--codec",
            "blosc",
        ]
        .map(String::from)
        .to_vec(),
        src: "in/uint16.npy".into(),
        dst: "out/evalg.zarr/results/x".into(),
        chunks: Some(vec![13, 7]),
        codec: "blosc",
        format: 3,
    });
    cases.push(WriteCase {
        name: "eval_v2".into(),
        args: [
            "eval",
            "x * 2",
            "--in",
            "x=in/float32.npy",
            "-o",
            "out/evalv2.zarr",
            "--zarr-format",
            "2",
        ]
        .map(String::from)
        .to_vec(),
        src: "in/float32_x2.npy".into(),
        dst: "out/evalv2.zarr".into(),
        chunks: Some(vec![13, 7]),
        codec: "zstd",
        format: 2,
    });
    cases
}

#[test]
fn tessera_written_arrays_read_back_by_zarr_python() {
    let Some(py) = python::python("tessera_written_arrays_read_back_by_zarr_python") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("in")).unwrap();
    std::fs::create_dir(root.join("out")).unwrap();
    let mut args: Vec<String> = vec![root.join("in").to_string_lossy().into_owned()];
    args.extend(DTYPES.iter().map(|d| d.to_string()));
    python::run_script(&py, &format!("{VALUES}{WRITE_NPY}"), &args);

    let cases = write_cases();
    let tsv: String = cases
        .iter()
        .map(|c| {
            let chunks = c.chunks.as_ref().map_or("-".to_string(), |v| {
                format!(
                    "[{}]",
                    v.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            });
            format!(
                "{}\t{}\t{}\t{chunks}\t{}\t{}\n",
                c.name, c.src, c.dst, c.codec, c.format
            )
        })
        .collect();
    std::fs::write(root.join("cases.tsv"), tsv).unwrap();
    let jobs: Vec<Vec<OsString>> = cases
        .iter()
        .map(|c| c.args.iter().map(OsString::from).collect())
        .collect();
    let outputs = tessera_all(root, &jobs);
    let mut problems = Vec::new();
    let mut args = vec![root.to_string_lossy().into_owned()];
    for (c, out) in cases.iter().zip(&outputs) {
        if out.status.success() {
            args.push(c.name.clone());
        } else {
            problems.push(format!(
                "{} ({}): tessera failed: {}",
                c.name,
                c.args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let report = python::run_script(&py, &format!("{VALUES}{CHECK_WRITE}"), &args);
    for line in failures(&report) {
        let name = line[5..].split(':').next().unwrap_or("?");
        let how = cases
            .iter()
            .find(|c| c.name == name)
            .map_or(String::new(), |c| c.args.join(" "));
        problems.push(format!("tessera {how}: {line}"));
    }
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count() + problems.len(),
        cases.len(),
        "{report}"
    );
    assert!(
        problems.is_empty(),
        "{} of {} tessera-written arrays are wrong in zarr-python:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

// -------------------------------------------------------------------------------------------
// 3. The library API, without Python
// -------------------------------------------------------------------------------------------

#[test]
fn library_round_trip_with_ragged_chunks_and_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let data = sample(&[10, 9]);
    // Irregular blocks: to_zarr makes them regular (5, 4) chunks, the last ones ragged.
    let ragged = Chunks::PerAxis(vec![
        AxisChunks::Explicit(vec![3, 5, 2]),
        AxisChunks::Explicit(vec![4, 4, 1]),
    ]);
    let x = ChunkedArray::<f64>::from_array(data.clone(), ragged).unwrap();
    let codecs = [Codec::None, Codec::Zstd(3), Codec::Blosc(5), Codec::Gzip(5)];
    for (k, (codec, format)) in codecs
        .iter()
        .flat_map(|&c| [(c, 2u8), (c, 3u8)])
        .enumerate()
    {
        let path = dir.path().join(format!("lib{k}.zarr/grp/x"));
        let zo = ZarrWriteOptions {
            zarr_format: format,
            ..zopts(codec, false)
        };
        x.to_zarr(&path, &zo, &opts())
            .unwrap_or_else(|e| panic!("{codec:?} v{format}: {e}"));
        let z = tzarr::info(&path).unwrap();
        assert_eq!(z.zarr_format, format, "{codec:?}");
        assert_eq!(z.chunk_shape, Some(vec![5, 4]), "{codec:?}");
        assert_eq!(z.complete, Some(true), "{codec:?}");
        assert_eq!(z.shape, vec![10, 9], "{codec:?}");
        assert_eq!(z.array_path, "/grp/x", "{codec:?}");
        let back = ChunkedArray::<f64>::from_zarr(&path, Chunks::Auto).unwrap();
        assert_eq!(back.shape(), &[10, 9]);
        assert_eq!(
            bits(&back.compute_with(&opts()).unwrap()),
            bits(&data),
            "{codec:?}"
        );
    }
}

#[test]
fn library_reads_with_chunks_other_than_the_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.zarr");
    let data = sample(&[10, 9]);
    ChunkedArray::<f64>::from_array(data.clone(), [5, 4])
        .unwrap()
        .to_zarr(&path, &zopts(Codec::Zstd(3), false), &opts())
        .unwrap();
    let want = bits(&data);
    let cases: Vec<(Chunks, Option<Vec<Vec<usize>>>)> = vec![
        (Chunks::Auto, None),
        // Smaller than the stored chunks, aligned and not.
        (
            Chunks::from([2, 2]),
            Some(vec![vec![2; 5], vec![2, 2, 2, 2, 1]]),
        ),
        (
            Chunks::from([3, 3]),
            Some(vec![vec![3, 3, 3, 1], vec![3, 3, 3]]),
        ),
        (Chunks::from([1, 9]), Some(vec![vec![1; 10], vec![9]])),
        // Larger than the stored chunks, and more than the array.
        (Chunks::from([7, 6]), Some(vec![vec![7, 3], vec![6, 3]])),
        (Chunks::from([10, 9]), Some(vec![vec![10], vec![9]])),
        (Chunks::Size(100), Some(vec![vec![10], vec![9]])),
        (
            Chunks::PerAxis(vec![AxisChunks::Whole, AxisChunks::Explicit(vec![1, 7, 1])]),
            Some(vec![vec![10], vec![1, 7, 1]]),
        ),
    ];
    for (chunks, blocks) in cases {
        let x = ChunkedArray::<f64>::from_zarr(&path, chunks.clone()).unwrap();
        if let Some(b) = blocks {
            assert_eq!(x.chunks(), b.as_slice(), "{chunks:?}");
        }
        assert_eq!(bits(&x.compute_with(&opts()).unwrap()), want, "{chunks:?}");
        // A slice cutting through stored chunks reads the same elements.
        let items = [
            SliceItem::Range {
                start: Some(3),
                stop: Some(8),
                step: 1,
            },
            SliceItem::Range {
                start: Some(-2),
                stop: None,
                step: -3,
            },
        ];
        let s = x.slice(&items).unwrap().compute_with(&opts()).unwrap();
        let expect = data.slice(ndarray::s![3..8, ..8;-3]).to_owned().into_dyn();
        assert_eq!(bits(&s), bits(&expect), "{chunks:?}");
    }
    // The wrong element type is refused with both dtypes named.
    let e =
        ChunkedArray::<f32>::from_zarr(&path, Chunks::Auto).expect_err("float64 read as float32");
    assert!(matches!(e, Error::DType(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("float64") && msg.contains("float32"), "{msg}");
}

#[test]
fn library_round_trips_0d_and_zero_length_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let shapes: [&[usize]; 4] = [&[], &[0], &[0, 4], &[3, 0, 2]];
    for (k, shape) in shapes.iter().enumerate() {
        let data = sample(shape);
        let path = dir.path().join(format!("a{k}.zarr"));
        ChunkedArray::<f64>::from_array(data.clone(), Chunks::Auto)
            .unwrap()
            .to_zarr(&path, &zopts(Codec::Zstd(3), false), &opts())
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert_eq!(
            tzarr::info(&path).unwrap().complete,
            Some(true),
            "{shape:?}"
        );
        let back = ChunkedArray::<f64>::from_zarr(&path, Chunks::Auto)
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert_eq!(back.shape(), *shape);
        assert_eq!(
            bits(&back.compute_with(&opts()).unwrap()),
            bits(&data),
            "{shape:?}"
        );
    }
    // Other element types too: a 0-d bool and an empty int64.
    let path = dir.path().join("b.zarr");
    let b = ArrayD::from_elem(IxDyn(&[]), true);
    ChunkedArray::<bool>::from_array(b.clone(), Chunks::Auto)
        .unwrap()
        .to_zarr(&path, &zopts(Codec::Gzip(5), false), &opts())
        .unwrap();
    assert_eq!(
        ChunkedArray::<bool>::from_zarr(&path, Chunks::Auto)
            .unwrap()
            .compute()
            .unwrap(),
        b
    );
    let path = dir.path().join("i.zarr");
    let i = ArrayD::<i64>::zeros(IxDyn(&[4, 0]));
    ChunkedArray::<i64>::from_array(i.clone(), Chunks::Auto)
        .unwrap()
        .to_zarr(&path, &zopts(Codec::Blosc(5), false), &opts())
        .unwrap();
    assert_eq!(
        ChunkedArray::<i64>::from_zarr(&path, Chunks::Auto)
            .unwrap()
            .compute()
            .unwrap(),
        i
    );
}

#[test]
fn library_refuses_an_existing_output_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.zarr");
    let first = sample(&[6, 5]);
    ChunkedArray::<f64>::from_array(first.clone(), 2)
        .unwrap()
        .to_zarr(&path, &zopts(Codec::Zstd(3), false), &opts())
        .unwrap();
    let before = snapshot(&path);
    let second = ArrayD::from_elem(IxDyn(&[3, 4]), 1.5);
    let y = ChunkedArray::<f64>::from_array(second.clone(), 2).unwrap();
    let e = y
        .to_zarr(&path, &zopts(Codec::Gzip(5), false), &opts())
        .expect_err("overwrote without overwrite");
    assert!(matches!(e, Error::Exists(_)), "{e:?}");
    assert_eq!(
        snapshot(&path),
        before,
        "the refused write touched the store"
    );
    y.to_zarr(&path, &zopts(Codec::Gzip(5), true), &opts())
        .unwrap();
    let back = ChunkedArray::<f64>::from_zarr(&path, Chunks::Auto).unwrap();
    assert_eq!(back.compute().unwrap(), second);
    assert_eq!(tzarr::info(&path).unwrap().chunk_shape, Some(vec![2, 2]));
}

/// Only groups hold nodes: an output inside an existing array (its store root, or one in a
/// group) is refused, for every writer, and the store stays as it was.
#[test]
fn an_output_inside_an_array_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("a.npy"), &sample(&[4, 3])).unwrap();
    let run = |args: &[&str]| tessera_all(root, &[os(args)]).remove(0);
    success("convert", &run(&["convert", "a.npy", "s.zarr/g/arr"]));
    success("convert", &run(&["convert", "a.npy", "r.zarr"]));
    let before = (
        snapshot(&root.join("s.zarr")),
        snapshot(&root.join("r.zarr")),
    );
    let refusals: [(&[&str], &str); 6] = [
        (
            &["convert", "a.npy", "s.zarr/g/arr/inner"],
            "/g/arr is an array",
        ),
        (
            &["convert", "a.npy", "s.zarr/g/arr/v2", "--zarr-format", "2"],
            "/g/arr is an array",
        ),
        (
            &["knn", "a.npy", "-k", "2", "-o", "s.zarr/g/arr"],
            "/g/arr is an array",
        ),
        (
            &["cdist", "a.npy", "-o", "s.zarr/g/arr/d"],
            "/g/arr is an array",
        ),
        (
            &["eval", "x + 1", "--in", "x=a.npy", "-o", "s.zarr/g/arr/a/b"],
            "/g/arr is an array",
        ),
        (
            &["convert", "a.npy", "r.zarr/sub"],
            "the store's root is an array",
        ),
    ];
    for (args, words) in refusals {
        clean_error(&args.join(" "), &run(args), &[words, "only groups"]);
        let now = (
            snapshot(&root.join("s.zarr")),
            snapshot(&root.join("r.zarr")),
        );
        assert!(now == before, "{args:?} changed a store");
    }
}

// -------------------------------------------------------------------------------------------
// 4. Bad input
// -------------------------------------------------------------------------------------------

/// Writes a float64 (10, 10) array with (5, 5) chunks to `path` with `codec`.
fn write_10x10(path: &Path, codec: Codec) -> ArrayD<f64> {
    let data = sample(&[10, 10]);
    ChunkedArray::<f64>::from_array(data.clone(), 5)
        .unwrap()
        .to_zarr(path, &zopts(codec, false), &opts())
        .unwrap();
    data
}

#[test]
fn bad_paths_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_10x10(&root.join("s.zarr/g/a"), Codec::Zstd(3));
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[4, 3])).unwrap();
    std::fs::create_dir(root.join("plain.zarr")).unwrap();
    std::fs::create_dir(root.join("other.zarr")).unwrap();
    std::fs::write(root.join("other.zarr/notes.txt"), "not zarr").unwrap();
    std::fs::create_dir(root.join("somedir")).unwrap();

    // A missing store, through each command.
    for args in [
        &["convert", "missing.zarr", "o.npy"][..],
        &["info", "missing.zarr"],
        &["eval", "x", "--in", "x=missing.zarr/a"],
    ] {
        clean_error(
            &format!("{args:?}"),
            &tessera(root, args),
            &["missing.zarr"],
        );
    }
    // A directory that is not a Zarr store, named .zarr or not.
    clean_error(
        "empty plain.zarr",
        &tessera(root, &["convert", "plain.zarr", "o.npy"]),
        &["plain.zarr"],
    );
    clean_error(
        "other.zarr with a text file",
        &tessera(root, &["info", "other.zarr"]),
        &["other.zarr"],
    );
    clean_error(
        "somedir",
        &tessera(root, &["convert", "somedir", "o.npy"]),
        &["somedir"],
    );
    // A missing array path inside a store, and a group where an array is expected.
    clean_error(
        "missing array",
        &tessera(root, &["convert", "s.zarr/g/nope", "o.npy"]),
        &["s.zarr/g/nope"],
    );
    clean_error(
        "missing array, eval",
        &tessera(root, &["eval", "x", "--in", "x=s.zarr/nope/a"]),
        &["nope"],
    );
    clean_error(
        "a group",
        &tessera(root, &["convert", "s.zarr/g", "o.npy"]),
        &["s.zarr/g"],
    );
    clean_error(
        "the root group",
        &tessera(root, &["info", "s.zarr"]),
        &["s.zarr"],
    );
    assert!(!root.join("o.npy").exists());

    // An existing output without --overwrite: refused, untouched.
    let before = snapshot(&root.join("s.zarr"));
    for (what, args) in [
        ("convert", &["convert", "in.npy", "s.zarr"][..]),
        (
            "convert to the same array",
            &["convert", "in.npy", "s.zarr/g/a"],
        ),
        (
            "eval -o",
            &["eval", "x", "--in", "x=in.npy", "-o", "s.zarr"],
        ),
        (
            "convert another codec",
            &["convert", "in.npy", "s.zarr", "--codec", "gzip"],
        ),
    ] {
        clean_error(
            what,
            &tessera(root, args),
            &["s.zarr", "exists", "--overwrite"],
        );
        assert_eq!(
            snapshot(&root.join("s.zarr")),
            before,
            "{what} touched s.zarr"
        );
    }

    // An unknown codec: the known ones listed, nothing written.
    for args in [
        &["convert", "in.npy", "new.zarr", "--codec", "lz4"][..],
        &[
            "eval", "x", "--in", "x=in.npy", "-o", "new.zarr", "--codec", "LZ4",
        ],
    ] {
        let line = clean_error(&format!("{args:?}"), &tessera(root, args), &["codec"]);
        for known in ["none", "zstd", "blosc", "gzip"] {
            assert!(line.contains(known), "{line}");
        }
        assert!(!root.join("new.zarr").exists(), "{args:?} left new.zarr");
    }
    // Bad --chunks for a Zarr output.
    clean_error(
        "--chunks 0",
        &tessera(root, &["convert", "in.npy", "new.zarr", "--chunks", "0"]),
        &["chunk"],
    );
    assert!(!root.join("new.zarr").exists());
}

#[test]
fn a_corrupt_chunk_is_an_error_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let zpath = root.join("z.zarr");
    let data = write_10x10(&zpath, Codec::Zstd(3));
    let chunk = zpath.join("c/1/0");
    assert!(chunk.is_file(), "no chunk file at {}", chunk.display());
    std::fs::write(&chunk, b"this is not a zstd frame, just garbage").unwrap();

    // Library: an error, not a panic, whatever the blocks.
    for chunks in [Chunks::Auto, Chunks::Size(5), Chunks::Size(3)] {
        let x = ChunkedArray::<f64>::from_zarr(&zpath, chunks.clone()).unwrap();
        let e = x.compute_with(&opts()).expect_err("read a corrupt chunk");
        let msg = e.to_string();
        assert!(
            msg.contains("z.zarr") && msg.contains("c/1/0"),
            "{chunks:?}: the error names neither the store nor the chunk key c/1/0: {msg}"
        );
    }
    // A part of the array that avoids the corrupt chunk (rows 5..10, columns 0..5) still reads.
    let x = ChunkedArray::<f64>::from_zarr(&zpath, Chunks::Size(5)).unwrap();
    let top = x
        .slice(&[SliceItem::Range {
            start: None,
            stop: Some(5),
            step: 1,
        }])
        .unwrap();
    let want = data.slice(ndarray::s![..5, ..]).to_owned().into_dyn();
    assert_eq!(bits(&top.compute_with(&opts()).unwrap()), bits(&want));

    // CLI: one error line; no output left behind, .npy or Zarr.
    let line = clean_error(
        "convert corrupt",
        &tessera(root, &["convert", "z.zarr", "o.npy"]),
        &["z.zarr", "c/1/0"],
    );
    eprintln!("corrupt zstd chunk: {line}");
    assert!(!root.join("o.npy").exists());
    clean_error(
        "eval corrupt",
        &tessera(root, &["eval", "x.sum()", "--in", "x=z.zarr"]),
        &["z.zarr"],
    );
    clean_error(
        "convert corrupt to zarr",
        &tessera(root, &["convert", "z.zarr", "o.zarr", "--chunks", "5"]),
        &["z.zarr"],
    );
    assert!(
        !root.join("o.zarr").exists(),
        "a failed write left o.zarr behind"
    );
    // Into an existing store: the groups the failed write made on the way go too, and the
    // store keeps what it held.
    write_10x10(&root.join("s.zarr/keep"), Codec::None);
    let before = snapshot(&root.join("s.zarr"));
    clean_error(
        "convert corrupt into new groups",
        &tessera(root, &["convert", "z.zarr", "s.zarr/new/deeper/o"]),
        &["z.zarr"],
    );
    let after = snapshot(&root.join("s.zarr"));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(after == before, "a failed write changed files of s.zarr");

    // A truncated chunk of an uncompressed array.
    let npath = root.join("n.zarr");
    write_10x10(&npath, Codec::None);
    let chunk = npath.join("c/0/1");
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..10]).unwrap();
    let line = clean_error(
        "truncated chunk",
        &tessera(root, &["convert", "n.zarr", "o.npy"]),
        &["n.zarr", "c/0/1"],
    );
    eprintln!("truncated uncompressed chunk: {line}");
    assert!(!root.join("o.npy").exists());
}

#[test]
fn a_corrupt_v2_chunk_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let path = root.join("v2.zarr");
    let data = sample(&[10, 10]);
    let zo = ZarrWriteOptions {
        zarr_format: 2,
        ..zopts(Codec::Blosc(5), false)
    };
    ChunkedArray::<f64>::from_array(data, [5, 5])
        .unwrap()
        .to_zarr(&path, &zo, &opts())
        .unwrap();
    let chunk = path.join("0.1");
    assert!(chunk.is_file(), "no v2 chunk file at {}", chunk.display());
    std::fs::write(&chunk, b"garbage, not a blosc frame").unwrap();
    let line = clean_error(
        "corrupt v2 chunk",
        &tessera(root, &["eval", "x.sum()", "--in", "x=v2.zarr"]),
        &["v2.zarr", "0.1"],
    );
    eprintln!("corrupt v2 blosc chunk: {line}");
}

/// Metadata whose shape or chunk shape cannot be addressed (a crafted
/// `.zarray` of a few bytes) is one clear error from `eval`, `info` and `verify`, naming what
/// is too large: not a panic, an allocation of exabytes, or "0 of 0 chunks, complete".
#[test]
fn metadata_too_large_to_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (name, shape, chunks, want) in [
        (
            "chunk.zarr",
            "[10, 1]",
            "[2305843009213693952, 1]",
            "chunk shape",
        ),
        (
            "shape.zarr",
            "[2305843009213693952]",
            "[2305843009213693952]",
            "shape",
        ),
        ("grid.zarr", "[4294967296, 4294967296]", "[1, 1]", "shape"),
    ] {
        std::fs::create_dir(root.join(name)).unwrap();
        let zarray = format!(
            r#"{{"zarr_format": 2, "shape": {shape}, "chunks": {chunks}, "dtype": "<f8",
            "compressor": null, "fill_value": 0.0, "filters": null, "order": "C"}}"#
        );
        std::fs::write(root.join(name).join(".zarray"), zarray).unwrap();
        for args in [
            vec!["eval", "x.sum()", "--in"],
            vec!["info"],
            vec!["verify"],
        ] {
            let mut args: Vec<String> = args.into_iter().map(String::from).collect();
            let last = if args[0] == "eval" {
                format!("x={name}")
            } else {
                name.to_string()
            };
            args.push(last);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            clean_error(
                &format!("{args:?}"),
                &tessera(root, &args),
                &[name, want, "more than can be addressed"],
            );
        }
    }
}

#[test]
fn an_interrupted_write_is_refused_by_readers_and_shown_by_info() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = sample(&[6, 4]);
    for (format, meta) in [(3u8, "zarr.json"), (2, ".zattrs")] {
        let name = format!("v{format}.zarr");
        let path = root.join(&name);
        let zo = ZarrWriteOptions {
            zarr_format: format,
            ..zopts(Codec::Zstd(3), false)
        };
        ChunkedArray::<f64>::from_array(data.clone(), [3, 4])
            .unwrap()
            .to_zarr(&path, &zo, &opts())
            .unwrap();
        // What a write killed before its end leaves: the completion attribute still false.
        let file = path.join(meta);
        let text = std::fs::read_to_string(&file).unwrap();
        let marked = text.replace(
            r#""tessera_complete": true"#,
            r#""tessera_complete": false"#,
        );
        assert_ne!(text, marked, "no completion attribute in {meta}: {text}");
        std::fs::write(&file, marked).unwrap();

        let e = ChunkedArray::<f64>::from_zarr(&path, Chunks::Auto)
            .err()
            .unwrap_or_else(|| panic!("v{format}: an incomplete array was opened for reading"));
        assert!(e.to_string().contains("incomplete"), "v{format}: {e}");
        clean_error(
            "eval incomplete",
            &tessera(root, &["eval", "x.sum()", "--in", &format!("x={name}")]),
            &[&name, "incomplete"],
        );
        let info = success("info incomplete", &tessera(root, &["info", &name]));
        assert!(info.contains("INCOMPLETE"), "v{format}: {info}");
        assert!(info.contains("shape      [6, 4]"), "v{format}: {info}");
    }
}

#[test]
fn a_failed_overwrite_keeps_the_old_array_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A source that fails half-way: one corrupt chunk among good ones.
    let bad = root.join("bad.zarr");
    write_10x10(&bad, Codec::Zstd(3));
    std::fs::write(bad.join("c/1/1"), b"garbage").unwrap();
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[10, 10])).unwrap();
    for (dst, format) in [
        ("root.zarr", "3"),
        ("root2.zarr", "2"),
        ("s.zarr/g/a", "3"),
        ("s2.zarr/g/a", "2"),
    ] {
        success(
            "first write",
            &tessera(
                root,
                &[
                    "convert",
                    "in.npy",
                    dst,
                    "--chunks",
                    "5",
                    "--zarr-format",
                    format,
                ],
            ),
        );
        let store = root.join(dst.split('/').next().unwrap());
        let before = snapshot(&store);
        clean_error(
            "failing overwrite",
            &tessera(
                root,
                &[
                    "convert",
                    "bad.zarr",
                    dst,
                    "--overwrite",
                    "--chunks",
                    "5",
                    "--zarr-format",
                    format,
                ],
            ),
            &["bad.zarr", "c/1/1"],
        );
        assert_eq!(
            snapshot(&store),
            before,
            "{dst}: a failed --overwrite changed the old array"
        );
        let listing = |d: &Path| -> Vec<String> {
            std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("tessera-"))
                .collect()
        };
        assert_eq!(listing(root), Vec::<String>::new(), "{dst}: leftovers");
        // A good overwrite replaces it, again without leftovers, and the result reads back.
        success(
            "good overwrite",
            &tessera(
                root,
                &[
                    "convert",
                    "in.npy",
                    dst,
                    "--overwrite",
                    "--chunks",
                    "4",
                    "--zarr-format",
                    format,
                ],
            ),
        );
        assert_eq!(listing(root), Vec::<String>::new(), "{dst}: leftovers");
        if let Some(group) = dst.rsplit_once('/').map(|(g, _)| root.join(g)) {
            assert_eq!(listing(&group), Vec::<String>::new(), "{dst}: leftovers");
        }
        let z = tzarr::info(&root.join(dst)).unwrap();
        assert_eq!(z.chunk_shape, Some(vec![4, 4]), "{dst}");
        assert_eq!(z.complete, Some(true), "{dst}");
        assert_eq!(z.zarr_format.to_string(), format, "{dst}");
    }
    // A directory in the way that is not a Zarr node is never written into or replaced.
    std::fs::create_dir_all(root.join("busy.zarr")).unwrap();
    std::fs::write(root.join("busy.zarr/notes.txt"), "mine").unwrap();
    clean_error(
        "not a zarr node",
        &tessera(root, &["convert", "in.npy", "busy.zarr", "--overwrite"]),
        &["busy.zarr", "not a Zarr"],
    );
    assert!(root.join("busy.zarr/notes.txt").is_file());
}

#[test]
fn zarr_format_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[4, 3])).unwrap();
    clean_error(
        "format 4",
        &tessera(root, &["convert", "in.npy", "o.zarr", "--zarr-format", "4"]),
        &["--zarr-format 4"],
    );
    clean_error(
        "format for npy",
        &tessera(root, &["convert", "in.npy", "o.npy", "--zarr-format", "2"]),
        &["--zarr-format"],
    );
    assert!(!root.join("o.zarr").exists() && !root.join("o.npy").exists());
}

/// zarr-python arrays of dtypes tessera does not read.
const WRITE_UNSUPPORTED: &str = r#"
import zarr
root = sys.argv[1]
z = zarr.create_array(os.path.join(root, "c128.zarr"), shape=(3,), dtype="c16")
z[...] = np.array([1 + 2j, 0, -1j])
z = zarr.create_array(os.path.join(root, "str.zarr"), shape=(3,), dtype=str)
z[...] = np.array(["a", "bb", "ccc"])
z = zarr.create_array(os.path.join(root, "f16.zarr"), shape=(4,), dtype="f2")
z[...] = 1.5
z = zarr.create_array(os.path.join(root, "v2_c64.zarr"), shape=(2, 2), dtype="c8", zarr_format=2)
z[...] = 1j
"#;

#[test]
fn an_unsupported_zarr_dtype_is_named() {
    let Some(py) = python::python("an_unsupported_zarr_dtype_is_named") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    python::run_script(&py, &format!("{VALUES}{WRITE_UNSUPPORTED}"), &[root]);
    for (store, dtype) in [
        ("c128.zarr", "complex128"),
        ("str.zarr", "string"),
        ("f16.zarr", "float16"),
        ("v2_c64.zarr", "complex64"),
    ] {
        for args in [
            &["convert", store, "o.npy"][..],
            &["info", store],
            &["eval", "x", "--in", &format!("x={store}")],
        ] {
            clean_error(
                &format!("{args:?}"),
                &tessera(root, args),
                &[store, dtype, "not supported"],
            );
        }
        assert!(!root.join("o.npy").exists());
    }
}

// -------------------------------------------------------------------------------------------
// 5. info
// -------------------------------------------------------------------------------------------

#[test]
fn info_shows_format_chunks_codecs_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[13, 7])).unwrap();
    for (dst, codec, chunks, want_chunks, inner) in [
        (
            "t.zarr",
            "zstd",
            "5,3",
            "chunks [5, 3]",
            "array / in t.zarr",
        ),
        ("b.zarr", "blosc", "4", "chunks [4, 4]", "array / in b.zarr"),
        (
            "g.zarr",
            "gzip",
            "-1,2",
            "chunks [13, 2]",
            "array / in g.zarr",
        ),
        (
            "n.zarr/grp/a",
            "none",
            "6,7",
            "chunks [6, 7]",
            "array /grp/a in n.zarr",
        ),
    ] {
        success(
            dst,
            &tessera(
                root,
                &[
                    "convert",
                    "in.npy",
                    dst,
                    &format!("--chunks={chunks}"),
                    "--codec",
                    codec,
                ],
            ),
        );
        let text = success(dst, &tessera(root, &["info", dst]));
        let backend = text
            .lines()
            .find(|l| l.starts_with("backend"))
            .unwrap_or_else(|| panic!("no backend line:\n{text}"));
        for want in ["zarr v3", want_chunks, inner, ", complete"] {
            assert!(backend.contains(want), "{dst}: lacks {want:?}:\n{text}");
        }
        if codec == "none" {
            assert!(
                !["zstd", "blosc", "gzip"]
                    .iter()
                    .any(|c| backend.contains(c)),
                "{text}"
            );
        } else {
            assert!(backend.contains(codec), "{dst}: lacks {codec:?}:\n{text}");
        }
        assert!(!backend.contains("not written by tessera"), "{text}");
        for want in ["[13, 7]", "float64", "728 B"] {
            assert!(text.contains(want), "{dst}: lacks {want:?}:\n{text}");
        }
    }

    // An output whose completion attribute is still false (an interrupted write) says so.
    let meta = root.join("t.zarr/zarr.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    json["attributes"][tzarr::COMPLETE_ATTRIBUTE] = serde_json::Value::Bool(false);
    std::fs::write(&meta, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let text = success("incomplete", &tessera(root, &["info", "t.zarr"]));
    assert!(text.contains("INCOMPLETE"), "{text}");
    assert!(!text.contains(", complete"), "{text}");
}

const WRITE_FOR_INFO: &str = r#"
import zarr, numcodecs
root = sys.argv[1]
z = zarr.create_array(os.path.join(root, "v2.zarr"), shape=(9, 7), chunks=(4, 3), dtype="<i4",
                      zarr_format=2, compressors=numcodecs.Blosc(cname="lz4"))
z[...] = values("int32", (9, 7))
z = zarr.create_array(os.path.join(root, "v3.zarr"), shape=(9, 7), chunks=(4, 3), dtype="f4",
                      compressors=zarr.codecs.GzipCodec())
z[...] = values("float32", (9, 7))
"#;

#[test]
fn info_says_zarr_python_arrays_were_not_written_by_tessera() {
    let Some(py) = python::python("info_says_zarr_python_arrays_were_not_written_by_tessera")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    python::run_script(&py, &format!("{VALUES}{WRITE_FOR_INFO}"), &[root]);
    for (store, wants) in [
        (
            "v2.zarr",
            &[
                "zarr v2",
                "chunks [4, 3]",
                "blosc",
                "lz4",
                "not written by tessera",
            ][..],
        ),
        (
            "v3.zarr",
            &["zarr v3", "chunks [4, 3]", "gzip", "not written by tessera"],
        ),
    ] {
        let text = success(store, &tessera(root, &["info", store]));
        for want in wants.iter().chain(&["[9, 7]"]) {
            assert!(text.contains(want), "{store}: lacks {want:?}:\n{text}");
        }
        assert!(!text.contains("INCOMPLETE"), "{text}");
    }
}

// -------------------------------------------------------------------------------------------
// Bugs
// -------------------------------------------------------------------------------------------

#[test]
fn overwriting_one_array_keeps_its_siblings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[4, 3])).unwrap();
    success(
        "first",
        &tessera(root, &["convert", "in.npy", "s.zarr/g/a"]),
    );
    let a_before = snapshot(&root.join("s.zarr/g/a"));
    // DST is s.zarr/g/b, which does not exist; --overwrite may replace it, nothing else.
    success(
        "second",
        &tessera(root, &["convert", "in.npy", "s.zarr/g/b", "--overwrite"]),
    );
    assert!(
        root.join("s.zarr/g/a/zarr.json").is_file(),
        "writing s.zarr/g/b --overwrite deleted the sibling array s.zarr/g/a"
    );
    assert_eq!(snapshot(&root.join("s.zarr/g/a")), a_before);
}

#[test]
fn chunks_may_start_with_minus_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[13, 7])).unwrap();
    // `--chunks=-1,2` works; the space-separated form of the same option must too.
    for (dst, chunks) in [("a.zarr", "-1,2"), ("b.zarr", "-1")] {
        success(
            &format!("--chunks {chunks}"),
            &tessera(root, &["convert", "in.npy", dst, "--chunks", chunks]),
        );
        let want = if chunks == "-1" { "[13, 7]" } else { "[13, 2]" };
        let text = success(dst, &tessera(root, &["info", dst]));
        assert!(text.contains(&format!("chunks {want}")), "{text}");
    }
}

/// Uncompressed chunks are read straight from their files when a block is a run of whole
/// chunks along axis 0 (one chunk wide across): every chunking of the read (runs of chunks,
/// single tiles, ragged edges, blocks that cut chunks, one block) gives the array written, in
/// Zarr v3 and v2, and a chunk file that is missing reads as the fill value (0).
#[test]
fn uncompressed_chunks_read_the_same_by_any_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let data = ArrayD::from_shape_fn(IxDyn(&[37, 23]), |i| (i[0] * 100 + i[1]) as f64 * 0.5 - 3.0);
    let ragged = Chunks::PerAxis(vec![
        AxisChunks::Explicit(vec![10, 20, 7]),
        AxisChunks::Whole,
    ]);
    for (chunks, format) in [([10, 23], 3u8), ([10, 5], 3), ([10, 23], 2), ([7, 5], 2)] {
        let path = dir
            .path()
            .join(format!("a-{}-{}-v{format}.zarr", chunks[0], chunks[1]));
        let zopts = ZarrWriteOptions {
            codec: Codec::None,
            overwrite: false,
            zarr_format: format,
        };
        ChunkedArray::from_array(data.clone(), chunks)
            .unwrap()
            .to_zarr(&path, &zopts, &ExecOptions::default())
            .unwrap();
        let reads: Vec<Chunks> = vec![
            Chunks::Auto,
            [10, 23].into(),
            [20, 23].into(),
            [10, 5].into(),
            [7, 5].into(),
            [3, 23].into(),
            [37, 23].into(),
            ragged.clone(),
        ];
        for read in reads {
            let got = ChunkedArray::<f64>::from_zarr(&path, read.clone())
                .unwrap()
                .compute()
                .unwrap();
            assert_eq!(got, data, "chunks {chunks:?} v{format}, read by {read:?}");
        }
        // The second chunk along axis 0 (first across) removed: zeros there.
        let key = if format == 3 { "c/1/0" } else { "1.0" };
        std::fs::remove_file(path.join(key)).unwrap();
        let mut want = data.clone();
        let (r, c) = (chunks[0], chunks[1]);
        want.slice_mut(ndarray::s![r..2 * r, 0..c]).fill(0.0);
        for read in [Chunks::Auto, [10, 23].into(), [7, 5].into()] {
            let got = ChunkedArray::<f64>::from_zarr(&path, read.clone())
                .unwrap()
                .compute()
                .unwrap();
            assert_eq!(
                got, want,
                "chunks {chunks:?} v{format}, read by {read:?}, one missing"
            );
        }
        // A truncated chunk file: an error naming its key, whichever way it is read.
        std::fs::write(path.join(key), [0u8; 10]).unwrap();
        for read in [Chunks::from(chunks), [7, 5].into()] {
            let e = ChunkedArray::<f64>::from_zarr(&path, read)
                .unwrap()
                .compute()
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("a-"), "{e}");
        }
    }
}

/// zarr-python opens a group through its consolidated metadata when it has some: arrays that
/// tessera writes, replaces, shards or nests below such a group (v2 `.zmetadata`, v3
/// `consolidated_metadata`) are entered there, so zarr-python sees their shapes and values,
/// and the groups tessera creates on the way.
#[test]
fn consolidated_groups_see_what_tessera_writes() {
    let Some(py) = python::python("consolidated_groups_see_what_tessera_writes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    python::run_script(
        &py,
        r#"
import sys, warnings, numpy as np, zarr
warnings.simplefilter("ignore")
root = sys.argv[1]
for fmt in (2, 3):
    g = zarr.open_group(f"{root}/c{fmt}.zarr", mode="w", zarr_format=fmt)
    g.create_array("a", shape=(3, 4), dtype="f8")[:] = 1
    g.create_group("sub").create_array("b", shape=(2,), dtype="i4")[:] = 2
    zarr.consolidate_metadata(f"{root}/c{fmt}.zarr")
np.save(f"{root}/v.npy", np.arange(35.0).reshape(7, 5))
"#,
        &[root],
    );
    for f in ["c2.zarr", "c3.zarr"] {
        let runs: Vec<Vec<String>> = vec![
            vec!["convert", "v.npy", &format!("{f}/a"), "--overwrite"],
            vec!["convert", "v.npy", &format!("{f}/new")],
            vec!["convert", "v.npy", &format!("{f}/sub/deep/c")],
            vec!["convert", "v.npy", &format!("{f}/sub/b"), "--overwrite"],
            // Two workers of a sharded run, then `verify` marks the array complete.
            vec!["convert", "v.npy", &format!("{f}/s"), "--chunks", "2,5"],
            vec!["knn", "v.npy", "-k", "2", "--metric", "euclidean"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for mut args in runs {
            if args[0] == "knn" {
                args.extend(["-o".into(), format!("{f}/nn")]);
            }
            if args.last().is_some_and(|a| a == "2,5") {
                for task in ["0", "1"] {
                    let mut a = args.clone();
                    a.extend([
                        "--task-index".into(),
                        task.into(),
                        "--task-count".into(),
                        "2".into(),
                    ]);
                    success(&a.join(" "), &tessera(root, &a));
                }
                let v = ["verify".to_string(), format!("{f}/s")];
                success(&v.join(" "), &tessera(root, &v));
                continue;
            }
            success(&args.join(" "), &tessera(root, &args));
        }
        // Runs writing into one group at once each enter their array (the updates take turns).
        let jobs: Vec<Vec<OsString>> = (0..8)
            .map(|i| os(&["convert", "v.npy", &format!("{f}/par{i}")]))
            .collect();
        for (job, out) in jobs.iter().zip(tessera_all(root, &jobs)) {
            success(&format!("{job:?}"), &out);
        }
    }
    let report = python::run_script(
        &py,
        r#"
import sys, warnings, numpy as np, zarr
warnings.simplefilter("ignore")
root = sys.argv[1]
want = np.arange(35.0).reshape(7, 5)
for fmt in (2, 3):
    path = f"{root}/c{fmt}.zarr"
    for how, g in (("open_group", zarr.open_group(path, mode="r")),
                   ("open_consolidated", zarr.open_consolidated(path, mode="r"))):
        tag = f"v{fmt} {how}"
        if g.metadata.consolidated_metadata is None:
            print(f"FAIL {tag}: the group is not read through consolidated metadata")
        names = sorted(n for n, _ in g.members(max_depth=None))
        expect = sorted(["a", "new", "nn", "nn/distances", "nn/indices", "s", "sub", "sub/b",
                         "sub/deep", "sub/deep/c"] + [f"par{i}" for i in range(8)])
        if names != expect:
            print(f"FAIL {tag}: members {names}")
        for p in ("a", "new", "sub/deep/c", "sub/b", "s", "par0", "par7"):
            arr = g[p]
            if arr.shape != want.shape or not np.array_equal(arr[:], want):
                print(f"FAIL {tag} {p}: shape {arr.shape}")
            elif arr.attrs.get("tessera_complete") is not True:
                print(f"FAIL {tag} {p}: attributes {dict(arr.attrs)}")
            else:
                print(f"OK {tag} {p}")
        if g["nn/indices"].shape != (7, 2) or list(g["nn/indices"][0]) != [0, 1]:
            print(f"FAIL {tag} nn/indices: {g['nn/indices'][:]}")
"#,
        &[root],
    );
    let bad = failures(&report);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count(),
        28,
        "{report}"
    );
}
