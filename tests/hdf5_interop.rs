//! HDF5 interop: datasets h5py writes (every filter, layout and dtype it offers that tessera
//! reads) are read back bit-exactly; datasets tessera writes are read back bit-exactly by h5py,
//! with the chunks, filters and completion attribute asked for; the library API round-trips
//! without Python; bad input gives one clear `error:` line and writes nothing; `info`
//! describes a dataset.
//!
//! The h5py tests need a Python with NumPy 2 and h5py, named by `$TESSERA_PYTHON` (see
//! `tests/python/README.md`); without it they print that they were skipped, unless
//! `TESSERA_REQUIRE_ORACLE=1`. Every check is batched: one Python call writes the inputs, the
//! `tessera` runs go in parallel, and one Python call checks all the results and prints one
//! `FAIL` line per mismatch.
#![cfg(feature = "hdf5")]

#[path = "common/python.rs"]
mod python;

use ndarray::{ArrayD, IxDyn};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tessera::chunks::AxisChunks;
use tessera::ops::slice::SliceItem;
use tessera::store::hdf5::{self as th5, Hdf5WriteOptions};
use tessera::{ChunkedArray, Chunks, DType, Error, ExecOptions};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

// -------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------

/// libhdf5 opens files without close-on-exec, so a child process started while this process
/// has an HDF5 file open inherits the descriptor, and with it HDF5's lock on the file, until the
/// child exits; a later open for writing in this process then fails with `unable to lock file`.
/// So the tests that open HDF5 files in this process do it under [`in_process`], and children
/// are started under [`spawning`]: never both at once.
static HDF5_IN_PROCESS: RwLock<()> = RwLock::new(());

/// Held while this process has HDF5 files open (drop every handle before the guard).
fn in_process() -> RwLockWriteGuard<'static, ()> {
    HDF5_IN_PROCESS.write().unwrap_or_else(|e| e.into_inner())
}

/// Held while a child process is started.
fn spawning() -> RwLockReadGuard<'static, ()> {
    HDF5_IN_PROCESS.read().unwrap_or_else(|e| e.into_inner())
}

/// The Python oracle for `test` (see `common/python.rs`).
fn oracle(test: &str) -> Option<PathBuf> {
    let _g = spawning();
    python::python(test)
}

/// Runs a Python oracle script (see `common/python.rs`).
#[track_caller]
fn run_script<S: AsRef<OsStr>>(py: &Path, script: &str, args: &[S]) -> String {
    let _g = spawning();
    python::run_script(py, script, args)
}

/// Runs `tessera` with `args` in `dir` (without the environment's memory and thread settings).
fn tessera<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    let child = {
        let _g = spawning();
        Command::new(TESSERA)
            .args(args)
            .current_dir(dir)
            .env_remove("TESSERA_ALLOWED_MEM")
            .env_remove("TESSERA_THREADS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run the tessera binary")
    };
    child
        .wait_with_output()
        .expect("cannot run the tessera binary")
}

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

/// The `backend` line of `tessera info` output.
#[track_caller]
fn backend_line(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("backend"))
        .unwrap_or_else(|| panic!("no backend line:\n{text}"))
        .to_string()
}

fn opts() -> ExecOptions {
    ExecOptions::default().threads(2)
}

fn hopts(deflate: Option<u8>, shuffle: bool, overwrite: bool) -> Hdf5WriteOptions {
    Hdf5WriteOptions {
        deflate,
        shuffle,
        overwrite,
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

/// The names of the links directly under `group` of the HDF5 file at `path`, sorted (call it
/// under [`in_process`]).
fn members(path: &Path, group: &str) -> Vec<String> {
    let file = hdf5::File::open(path).unwrap();
    let mut names = file.group(group).unwrap().member_names().unwrap();
    names.sort();
    names
}

/// The numbers of a Python helper that the writing scripts share: `values(dtype, shape)` with
/// the extremes of the dtype (NaN, infinities, -0.0, tiny, max, min; or min, max, 0, 1) first.
const VALUES: &str = r#"
import os, sys, json, math, warnings
import numpy as np
import h5py
warnings.simplefilter("ignore")
rng = np.random.default_rng(20250612)

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
// 1. h5py writes, tessera reads
// -------------------------------------------------------------------------------------------

/// Writes one dataset per case into files under `argv[1]`, and prints `NAME<TAB>SPEC<TAB>WHAT`
/// where SPEC is `file.h5:/path/to/dataset`.
const WRITE_H5: &str = r#"
root = sys.argv[1]
files = {}

def put(name, what, shape, dtype, path=None, file="r.h5", region=None, data=None, **kw):
    if file not in files:
        files[file] = h5py.File(os.path.join(root, file), "w")
    f = files[file]
    path = path or "/" + name
    a = values(dtype, shape) if data is None else np.asarray(data, dtype=dtype).reshape(shape)
    d = f.create_dataset(path, shape=shape, dtype=dtype, **kw)
    if region is not None:
        d[region] = a[region]
    elif shape == ():
        d[()] = a
    elif a.size:
        d[...] = a
    print(f"{name}\t{file}:{path}\t{what}")

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64"]
for i, dt in enumerate(DTYPES):
    put(f"{dt}_gzip_shuffle", f"{dt} (11,6)/(4,5) gzip {i % 9 + 1} shuffle", (11, 6), dt,
        chunks=(4, 5), compression="gzip", compression_opts=i % 9 + 1, shuffle=True)
    put(f"{dt}_contiguous", f"{dt} (7,5) contiguous", (7, 5), dt)

put("gzip_only", "i4 (13,7)/(5,3) gzip 9, no shuffle", (13, 7), "i4", chunks=(5, 3),
    compression="gzip", compression_opts=9)
put("shuffle_only", "u2 (13,7)/(6,6) shuffle only", (13, 7), "u2", chunks=(6, 6), shuffle=True)
put("fletcher32", "f8 (10,9)/(3,4) fletcher32", (10, 9), "f8", chunks=(3, 4), fletcher32=True)
put("fletcher32_gzip_shuffle", "i8 (6,5,4)/(4,2,3) gzip shuffle fletcher32", (6, 5, 4), "i8",
    chunks=(4, 2, 3), compression="gzip", shuffle=True, fletcher32=True)
put("scaleoffset_int", "i2 (13,7)/(5,3) scaleoffset lossless", (13, 7), "i2", chunks=(5, 3),
    scaleoffset=0)

put("big_endian_f8_chunked", ">f8 (13,7)/(5,3) gzip shuffle", (13, 7), ">f8", chunks=(5, 3),
    compression="gzip", shuffle=True)
put("big_endian_f8_contiguous", ">f8 (9,4) contiguous", (9, 4), ">f8")
put("big_endian_i4_chunked", ">i4 (13,7)/(4,4)", (13, 7), ">i4", chunks=(4, 4))
put("big_endian_i4_contiguous", ">i4 (10,) contiguous", (10,), ">i4")
put("big_endian_u8_fletcher32", ">u8 (6,7)/(4,5) fletcher32", (6, 7), ">u8", chunks=(4, 5),
    fletcher32=True)
put("big_endian_i2_gzip", ">i2 (12,)/(5,) gzip shuffle", (12,), ">i2", chunks=(5,),
    compression="gzip", shuffle=True)
put("big_endian_f4_contiguous", ">f4 (3,4,5) contiguous", (3, 4, 5), ">f4")

put("nested_a_b_c", "u4 in /a/b/c (4,5)/(3,3) gzip", (4, 5), "u4", path="/a/b/c",
    chunks=(3, 3), compression="gzip")
put("nested_contiguous", "f8 in /a/b/d contiguous", (5, 2), "f8", path="/a/b/d")
put("other_file_hdf5", "i8 in x.hdf5:/grp/x (5,5)/(2,2)", (5, 5), "i8", path="/grp/x",
    file="x.hdf5", chunks=(2, 2))

put("ragged_1d", "f8 (10,)/(3,)", (10,), "f8", chunks=(3,))
put("ragged_3d", "f4 (7,9,5)/(2,4,3) gzip", (7, 9, 5), "f4", chunks=(2, 4, 3),
    compression="gzip")
put("chunk_larger_than_shape", "i4 (5,)/(8,) resizable", (5,), "i4", chunks=(8,),
    maxshape=(None,))
put("fill_value_unwritten", "f8 (9,10)/(4,4) fill -1.5, only one chunk written", (9, 10), "f8",
    chunks=(4, 4), fillvalue=-1.5, region=(slice(0, 4), slice(0, 4)))

# h5py's own LZF filter: read directly (shuffle and LZF undone in the workers), and through
# the library where the direct path does not go (big-endian, fletcher32, chunks never written).
# Values that compress (the random ones mostly do not: such chunks are stored as they are).
smooth = lambda n: np.round(np.sin(np.arange(n) / 7.0) * 100, 1)
put("lzf_f8", "f8 (130,70)/(50,30) lzf, smooth", (130, 70), "f8", chunks=(50, 30),
    compression="lzf", data=smooth(130 * 70))
put("lzf_f8_random", "f8 (13,7)/(5,3) lzf", (13, 7), "f8", chunks=(5, 3), compression="lzf")
put("lzf_shuffle_i4_rows", "i4 (130,70)/(40,70) lzf shuffle, smooth", (130, 70), "i4",
    chunks=(40, 70), compression="lzf", shuffle=True, data=smooth(130 * 70) * 10)
put("lzf_shuffle_u2_3d", "u2 (70,9,5)/(20,4,3) lzf shuffle, repeats", (70, 9, 5), "u2",
    chunks=(20, 4, 3), compression="lzf", shuffle=True, data=np.arange(70 * 9 * 5) % 97)
put("lzf_shuffle_f8_random", "f8 (13,7)/(4,7) lzf shuffle", (13, 7), "f8", chunks=(4, 7),
    compression="lzf", shuffle=True)
put("lzf_bool", "bool (11,6)/(4,5) lzf", (11, 6), "bool", chunks=(4, 5), compression="lzf")
put("lzf_big_endian_f8", ">f8 (90,40)/(40,40) lzf shuffle, smooth", (90, 40), ">f8",
    chunks=(40, 40), compression="lzf", shuffle=True, data=smooth(90 * 40))
put("lzf_fletcher32", "f4 (100,9)/(30,4) lzf fletcher32, smooth", (100, 9), "f4",
    chunks=(30, 4), compression="lzf", fletcher32=True, data=smooth(900))
put("lzf_fill_unwritten", "f8 (90,10)/(40,4) lzf, fill 2.5, one chunk written", (90, 10),
    "f8", chunks=(40, 4), compression="lzf", fillvalue=2.5, region=(slice(40, 80), slice(0, 4)),
    data=smooth(900))
put("lzf_incompressible", "u8 (2000,)/(1000,) lzf, noise: chunks stored as they are",
    (2000,), "u8", chunks=(1000,), compression="lzf")

put("scalar_f8", "f8 0-d", (), "f8")
put("scalar_i2_big_endian", ">i2 0-d", (), ">i2")
put("scalar_bool", "bool 0-d", (), "bool")
put("empty_1d", "i2 (0,) contiguous", (0,), "i2")
put("empty_2d_chunked", "f8 (0,3)/(2,3) resizable", (0, 3), "f8", chunks=(2, 3),
    maxshape=(None, 3))
put("empty_3d", "u1 (3,0,2) contiguous", (3, 0, 2), "u1")

for f in files.values():
    f.close()

# External links into r.h5, from a file whose own bytes lie where r.h5's offsets point: the
# linked datasets must be read from r.h5, not at those offsets of links.h5.
with h5py.File(os.path.join(root, "links.h5"), "w") as f:
    f.create_dataset("pad", data=np.full(1 << 16, 9.0))
    for target in ["float64_contiguous", "ragged_1d", "gzip_only", "lzf_f8"]:
        f["ext_" + target] = h5py.ExternalLink("r.h5", "/" + target)
        print(f"ext_{target}\tlinks.h5:/ext_{target}\texternal link to r.h5:/{target}")

# Layouts other than chunked and contiguous: a virtual dataset mapped from two datasets (with
# rows left at its fill value), and a compact one (its elements in the object header).
with h5py.File(os.path.join(root, "layouts.h5"), "w") as f:
    f["src_a"] = np.arange(12.0).reshape(3, 4)
    f["src_b"] = -np.arange(8.0).reshape(2, 4)
    lay = h5py.VirtualLayout(shape=(7, 4), dtype="f8")
    lay[0:3] = h5py.VirtualSource(f["src_a"])
    lay[4:6] = h5py.VirtualSource(f["src_b"])
    f.create_virtual_dataset("virtual", lay, fillvalue=-1.5)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    space = h5py.h5s.create_simple((5, 3))
    compact = h5py.h5d.create(f.id, b"compact", h5py.h5t.STD_I16BE, space, dcpl=dcpl)
    compact.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(15, dtype=">i2").reshape(5, 3) - 7)
print("virtual\tlayouts.h5:/virtual\tvirtual f8 (7,4) from two sources, fill -1.5")
print("compact\tlayouts.h5:/compact\tcompact >i2 (5,3)")
"#;

/// For every `NAME=SPEC` argument after the root, compares the dataset h5py reads from
/// `in/SPEC` with `out/NAME.npy`: shape, dtype up to byte order, every bit of every element.
const CHECK_READ: &str = r#"
root = sys.argv[1]
for arg in sys.argv[2:]:
    name, spec = arg.split("=", 1)
    file, path = spec.split(":", 1)
    with h5py.File(os.path.join(root, "in", file), "r") as f:
        a = np.asarray(f[path][()])
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
fn h5py_datasets_read_back_exactly() {
    let Some(py) = oracle("h5py_datasets_read_back_exactly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("in")).unwrap();
    std::fs::create_dir(root.join("out")).unwrap();
    let manifest = run_script(&py, &format!("{VALUES}{WRITE_H5}"), &[root.join("in")]);
    let cases: Vec<Vec<&str>> = manifest
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .collect();
    assert!(
        cases.len() >= 45 && cases.iter().all(|c| c.len() == 3),
        "{manifest}"
    );

    // Half the datasets through `convert`, half through `eval -o`.
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
    let report = run_script(&py, &format!("{VALUES}{CHECK_READ}"), &args);
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
        "{} of {} h5py datasets do not read back:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    // LZF chunks are decoded by the workers, not by the library behind its lock.
    let plan = success(
        "explain lzf",
        &tessera(
            root,
            &[
                "eval",
                "sum(x)",
                "--in",
                "x=in/r.h5:/lzf_shuffle_i4_rows",
                "--explain",
            ],
        ),
    );
    assert!(
        plan.contains("decoded in parallel (shuffle, LZF)"),
        "{plan}"
    );
    // `info` names the layout of a dataset that is not chunked.
    for (ds, layout) in [("virtual", "virtual"), ("compact", "compact")] {
        let spec = format!("in/layouts.h5:/{ds}");
        let text = success(&spec, &tessera(root, &["info", &spec]));
        assert!(
            text.contains(&format!("in/layouts.h5), {layout}")),
            "{text}"
        );
    }
}

/// An LZF dataset whose filter number is changed to one no library has (32123): the pipeline
/// message of a version-1 object header (h5py's default) holds the number just before the
/// filter's name, without a checksum.
const WRITE_UNKNOWN_FILTER: &str = r#"
root = sys.argv[1]
path = os.path.join(root, "u.h5")
with h5py.File(path, "w") as f:
    f.create_dataset("x", data=values("float64", (10, 9)), chunks=(4, 4), compression="lzf")
b = bytearray(open(path, "rb").read())
at = b.find(b"lzf\0")
assert b.count(b"lzf\0") == 1 and b[at - 8:at - 6] == (32000).to_bytes(2, "little")
b[at - 8:at - 6] = (32123).to_bytes(2, "little")
open(path, "wb").write(b)
"#;

/// A filter the library does not have is named in the error (not only the plugin directory
/// HDF5 searched), no output is left, and `info` (metadata only) still works and shows it.
#[test]
fn a_filter_the_library_lacks_is_named_in_the_error() {
    let Some(py) = oracle("a_filter_the_library_lacks_is_named_in_the_error") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    run_script(&py, &format!("{VALUES}{WRITE_UNKNOWN_FILTER}"), &[root]);
    let line = clean_error(
        "convert unknown filter",
        &tessera(root, &["convert", "u.h5:/x", "x.npy"]),
        &["u.h5", "/x", "32123"],
    );
    eprintln!("unknown filter: {line}");
    assert!(!root.join("x.npy").exists(), "a failed read left x.npy");
    clean_error(
        "eval unknown filter to hdf5",
        &tessera(root, &["eval", "x", "--in", "x=u.h5:/x", "-o", "o.h5:/x"]),
        &["u.h5", "32123"],
    );
    assert!(!root.join("o.h5").exists(), "a failed read left o.h5");
    let text = success("info unknown filter", &tessera(root, &["info", "u.h5:/x"]));
    assert!(text.contains("32123"), "{text}");
}

// -------------------------------------------------------------------------------------------
// 2. tessera writes, h5py reads
// -------------------------------------------------------------------------------------------

const DTYPES: [&str; 11] = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
    "float64",
];

/// Writes `in/DTYPE.npy` (13, 7) for every dtype, plus a few other shapes.
const WRITE_NPY: &str = r#"
out = sys.argv[1]
for name in sys.argv[2:]:
    np.save(os.path.join(out, name + ".npy"), values(name, (13, 7)))
np.save(os.path.join(out, "big.npy"), values("float64", (700, 3)))
np.save(os.path.join(out, "int16_3d.npy"), values("int16", (4, 5, 6)))
np.save(os.path.join(out, "float64_0d.npy"), values("float64", ()))
np.save(os.path.join(out, "float64_empty.npy"), values("float64", (0, 3)))
# Chunks of 16-32 KiB per byte plane: tessera codes the planes LZ77 cannot shorten as
# literal-only deflate blocks (store::deflate), which zlib in h5py must inflate.
for dt in ("float64", "float32", "int32"):
    np.save(os.path.join(out, "wide_" + dt + ".npy"), values(dt, (700, 64)))
"#;

/// Reads `cases.tsv` (name, source .npy, expression of the source `a`, HDF5 file, dataset,
/// chunks as JSON, `contiguous` or `-`, codec, level) under `argv[1]` and checks each output
/// with h5py.
const CHECK_WRITE: &str = r#"
root = sys.argv[1]
with open(os.path.join(root, "cases.tsv")) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
done = set(sys.argv[2:])
for name, src, expr, file, path, chunks, codec, level in rows:
    if name not in done:
        continue
    why = []
    try:
        a = np.array(eval(expr, {"a": np.load(os.path.join(root, src)), "np": np}), order="C")
        with h5py.File(os.path.join(root, file), "r") as f:
            node = f
            for part in path.strip("/").split("/"):
                node = node[part]
            if not isinstance(node, h5py.Dataset):
                why.append(f"{path} is not a dataset: {node!r}")
            d = f[path]
            b = np.asarray(d[()])
            done_attr = d.attrs.get("tessera_complete")
            if not (isinstance(done_attr, (bool, np.bool_)) and bool(done_attr)):
                why.append(f"tessera_complete is {done_attr!r}")
            if d.shape != a.shape:
                why.append(f"shape {d.shape}, want {a.shape}")
            if d.dtype != a.dtype:
                why.append(f"dtype {d.dtype}, want {a.dtype}")
            if chunks == "contiguous" and d.chunks is not None:
                why.append(f"chunks {d.chunks}, want contiguous")
            elif chunks not in ("-", "contiguous") and d.chunks != tuple(json.loads(chunks)):
                why.append(f"chunks {d.chunks}, want {tuple(json.loads(chunks))}")
            if codec == "none":
                if d.compression is not None or d.shuffle:
                    why.append(f"compression {d.compression} shuffle {d.shuffle}, want none")
            else:
                if d.compression != "gzip":
                    why.append(f"compression {d.compression!r}, want 'gzip'")
                if d.compression_opts != int(level):
                    why.append(f"gzip level {d.compression_opts}, want {level}")
                if not d.shuffle:
                    why.append("no shuffle with gzip")
            if d.fletcher32 or d.scaleoffset is not None:
                why.append(f"unexpected filters: fletcher32 {d.fletcher32}, "
                           f"scaleoffset {d.scaleoffset}")
            if not why and a.tobytes() != np.ascontiguousarray(b).tobytes():
                why.append(f"values differ:\n  got  {b!r}\n  want {a!r}")
    except Exception as e:
        why.append(f"{type(e).__name__}: {e}")
    print(f"FAIL {name}: " + "; ".join(why) if why else f"OK {name}")
"#;

/// One `tessera` run writing an HDF5 dataset, and what h5py must find.
struct WriteCase {
    name: String,
    args: Vec<String>,
    src: String,
    /// What h5py must read, as a NumPy expression of the source `a`.
    expr: &'static str,
    file: String,
    dataset: String,
    /// `[5,3]`, `contiguous`, or `-` (not checked).
    chunks: String,
    codec: &'static str,
    level: u8,
}

fn write_cases() -> Vec<WriteCase> {
    // Ragged chunks for the (13, 7) arrays: --chunks and the chunk shape h5py must see.
    let ragged: [(&str, &str); 4] = [
        ("5,3", "[5,3]"),
        ("4", "[4,4]"),
        ("-1,2", "[13,2]"),
        ("6,7", "[6,7]"),
    ];
    let mut cases = Vec::new();
    for (i, dt) in DTYPES.iter().enumerate() {
        for (j, codec) in ["none", "gzip"].into_iter().enumerate() {
            let (spec, chunks) = ragged[(i + j) % ragged.len()];
            let name = format!("{dt}_{codec}");
            let file = format!("out/{name}.h5");
            let dataset = format!("/{dt}");
            let mut args: Vec<String> = [
                "convert".to_string(),
                format!("in/{dt}.npy"),
                format!("{file}:{dataset}"),
                // `--chunks=SPEC`: `--chunks -1,2` is taken for an option.
                format!("--chunks={spec}"),
                "--codec".to_string(),
                codec.to_string(),
            ]
            .to_vec();
            // gzip: `--level 4`, the default (4), or `--level 9`.
            let level = match (codec, i % 3) {
                ("none", _) => 0,
                (_, 0) => {
                    args.extend(["--level".to_string(), "4".to_string()]);
                    4
                }
                (_, 1) => 4,
                _ => {
                    args.extend(["--level".to_string(), "9".to_string()]);
                    9
                }
            };
            cases.push(WriteCase {
                name,
                args,
                src: format!("in/{dt}.npy"),
                expr: "a",
                file,
                dataset,
                chunks: chunks.to_string(),
                codec,
                level,
            });
        }
    }
    let mut extra = |name: &str,
                     args: &[&str],
                     src: &str,
                     expr: &'static str,
                     dst: &str,
                     chunks: &str,
                     codec: &'static str,
                     level: u8| {
        let (file, dataset) = dst.split_once(':').unwrap();
        cases.push(WriteCase {
            name: name.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            src: src.to_string(),
            expr,
            file: file.to_string(),
            dataset: dataset.to_string(),
            chunks: chunks.to_string(),
            codec,
            level,
        });
    };
    let dst = "out/big.h5:/big";
    extra(
        "big_ragged_300",
        &[
            "convert",
            "in/big.npy",
            dst,
            "--chunks=300,-1",
            "--codec",
            "gzip",
            "--level",
            "4",
        ],
        "in/big.npy",
        "a",
        dst,
        "[300,3]",
        "gzip",
        4,
    );
    let dst = "out/nested.h5:/a/b/c";
    extra(
        "nested_a_b_c",
        &[
            "convert",
            "in/int32.npy",
            dst,
            "--chunks=5,3",
            "--codec",
            "gzip",
            "--level",
            "4",
        ],
        "in/int32.npy",
        "a",
        dst,
        "[5,3]",
        "gzip",
        4,
    );
    let dst = "out/ext.hdf5:/grp/x";
    extra(
        "hdf5_extension_default",
        &["convert", "in/uint16.npy", dst],
        "in/uint16.npy",
        "a",
        dst,
        "[13,7]",
        "none",
        0,
    );
    let dst = "out/3d.h5:/x";
    extra(
        "3d_int16",
        &[
            "convert",
            "in/int16_3d.npy",
            dst,
            "--chunks=3,-1,4",
            "--codec",
            "gzip",
        ],
        "in/int16_3d.npy",
        "a",
        dst,
        "[3,5,4]",
        "gzip",
        4,
    );
    // Planes of 32 KiB (float64, a ragged last chunk), 44.8 KiB (float32, one chunk) and
    // 16 KiB (int32: every plane random, stored, and no libdeflate blocks at all), at levels
    // 9, 1 and 4.
    for (dt, spec, chunks, level) in [
        ("float64", "512,-1", "[512,64]", "9"),
        ("float32", "-1,-1", "[700,64]", "1"),
        ("int32", "256,64", "[256,64]", "4"),
    ] {
        let src = format!("in/wide_{dt}.npy");
        let dst = format!("out/wide_{dt}.h5:/w");
        let name = format!("wide_{dt}_gzip{level}");
        let chunks_arg = format!("--chunks={spec}");
        let args = [
            "convert",
            src.as_str(),
            dst.as_str(),
            chunks_arg.as_str(),
            "--codec",
            "gzip",
            "--level",
            level,
        ];
        extra(
            &name,
            &args,
            &src,
            "a",
            &dst,
            chunks,
            "gzip",
            level.parse().unwrap(),
        );
    }
    let dst = "out/scalar.h5:/s";
    extra(
        "scalar",
        &["convert", "in/float64_0d.npy", dst],
        "in/float64_0d.npy",
        "a",
        dst,
        "contiguous",
        "none",
        0,
    );
    let dst = "out/empty.h5:/e";
    extra(
        "empty",
        &["convert", "in/float64_empty.npy", dst, "--codec", "gzip"],
        "in/float64_empty.npy",
        "a",
        dst,
        "-",
        "gzip",
        4,
    );
    let dst = "out/eval_t.h5:/results/t";
    extra(
        "eval_transpose",
        &[
            "eval",
            "x.T",
            "--in",
            "x=in/float64.npy",
            "-o",
            dst,
            "--codec",
            "gzip",
            "--level",
            "4",
        ],
        "in/float64.npy",
        "a.T",
        dst,
        "[7,13]",
        "gzip",
        4,
    );
    let dst = "out/eval_slice.h5:/s";
    extra(
        "eval_strided_slice",
        &["eval", "x[::2, 1:]", "--in", "x=in/int64.npy", "-o", dst],
        "in/int64.npy",
        "a[::2, 1:]",
        dst,
        "[7,6]",
        "none",
        0,
    );
    let dst = "out/eval_rechunk.h5:/r";
    extra(
        "eval_rechunk",
        &[
            "eval",
            "rechunk(x, (5, 3))",
            "--in",
            "x=in/float32.npy",
            "-o",
            dst,
            "--codec",
            "gzip",
        ],
        "in/float32.npy",
        "a",
        dst,
        "[5,3]",
        "gzip",
        4,
    );
    cases
}

#[test]
fn tessera_written_datasets_read_back_by_h5py() {
    let Some(py) = oracle("tessera_written_datasets_read_back_by_h5py") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("in")).unwrap();
    std::fs::create_dir(root.join("out")).unwrap();
    let mut args: Vec<String> = vec![root.join("in").to_string_lossy().into_owned()];
    args.extend(DTYPES.iter().map(|d| d.to_string()));
    run_script(&py, &format!("{VALUES}{WRITE_NPY}"), &args);

    let cases = write_cases();
    let tsv: String = cases
        .iter()
        .map(|c| {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                c.name, c.src, c.expr, c.file, c.dataset, c.chunks, c.codec, c.level
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
    let report = run_script(&py, &format!("{VALUES}{CHECK_WRITE}"), &args);
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
        "{} of {} tessera-written datasets are wrong in h5py:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

/// Checks `f.h5` after the runs of `datasets_added_or_overwritten_keep_their_siblings`: every
/// dataset, what it holds and its filters; and nothing else in the file.
const CHECK_SIBLINGS: &str = r#"
root = sys.argv[1]
want = {
    "/g/first": ("a.npy", "gzip"),
    "/g/second": ("c.npy", None),
    "/top": ("b.npy", None),
    "/g/deeper/third": ("b.npy", "gzip"),
}
with h5py.File(os.path.join(root, "f.h5"), "r") as f:
    found = []
    f.visititems(lambda n, o: found.append("/" + n) if isinstance(o, h5py.Dataset) else None)
    if sorted(found) != sorted(want):
        print(f"FAIL datasets: {sorted(found)}, want {sorted(want)}")
    for path, (src, comp) in want.items():
        why = []
        try:
            a = np.load(os.path.join(root, src))
            d = f[path]
            b = d[()]
            if d.dtype != a.dtype or d.shape != a.shape:
                why.append(f"{d.dtype} {d.shape}, want {a.dtype} {a.shape}")
            elif a.tobytes() != np.ascontiguousarray(b).tobytes():
                why.append(f"values differ:\n  got  {b!r}\n  want {a!r}")
            if d.compression != comp:
                why.append(f"compression {d.compression!r}, want {comp!r}")
            if d.attrs.get("tessera_complete") is not np.True_:
                why.append(f"tessera_complete is {d.attrs.get('tessera_complete')!r}")
        except Exception as e:
            why.append(f"{type(e).__name__}: {e}")
        print(f"FAIL {path}: " + "; ".join(why) if why else f"OK {path}")
"#;

#[test]
fn datasets_added_or_overwritten_keep_their_siblings() {
    let Some(py) = oracle("datasets_added_or_overwritten_keep_their_siblings") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("a.npy"), &sample(&[13, 7])).unwrap();
    let b =
        ArrayD::from_shape_vec(IxDyn(&[4, 5]), (0..20i32).map(|i| i * 7 - 50).collect()).unwrap();
    ndarray_npy::write_npy(root.join("b.npy"), &b).unwrap();
    let c = ArrayD::from_shape_vec(IxDyn(&[6]), vec![1u8, 0, 255, 7, 128, 9]).unwrap();
    ndarray_npy::write_npy(root.join("c.npy"), &c).unwrap();
    // Sequential: every run opens the same file for writing.
    for args in [
        &[
            "convert",
            "a.npy",
            "f.h5:/g/first",
            "--chunks=5,3",
            "--codec",
            "gzip",
        ][..],
        // A second dataset in an existing file, in the same group.
        &["convert", "a.npy", "f.h5:/g/second"],
        // One at the root, and one in a new group under an existing one.
        &["convert", "b.npy", "f.h5:/top"],
        &[
            "eval",
            "x",
            "--in",
            "x=b.npy",
            "-o",
            "f.h5:/g/deeper/third",
            "--codec",
            "gzip",
        ],
        // --overwrite of one dataset, with another dtype and shape: its siblings stay.
        &["convert", "c.npy", "f.h5:/g/second", "--overwrite"],
    ] {
        success(&format!("{args:?}"), &tessera(root, args));
    }
    let report = run_script(&py, &format!("{VALUES}{CHECK_SIBLINGS}"), &[root]);
    let bad = failures(&report);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count(),
        4,
        "{report}"
    );
}

// -------------------------------------------------------------------------------------------
// 3. The library API, without Python
// -------------------------------------------------------------------------------------------

#[test]
fn library_round_trip_with_ragged_chunks() {
    let _h5 = in_process();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.h5");
    let data = sample(&[10, 9]);
    // Irregular blocks: to_hdf5 writes regular (5, 4) chunks, the last ones ragged.
    let ragged = Chunks::PerAxis(vec![
        AxisChunks::Explicit(vec![3, 5, 2]),
        AxisChunks::Explicit(vec![4, 4, 1]),
    ]);
    let x = ChunkedArray::<f64>::from_array(data.clone(), ragged).unwrap();
    x.to_hdf5(
        &path,
        "/g/x",
        &Hdf5WriteOptions {
            deflate: Some(4),
            shuffle: true,
            overwrite: false,
        },
        &ExecOptions::default(),
    )
    .unwrap();
    let info = th5::info(&path, "/g/x").unwrap();
    assert_eq!(info.shape, vec![10, 9]);
    assert_eq!(info.dtype, DType::F64);
    assert_eq!(info.chunk_shape, Some(vec![5, 4]));
    assert_eq!(info.complete, Some(true));
    let filters = info.filters.to_ascii_lowercase();
    assert!(
        filters.contains("deflate") && filters.contains("shuffle"),
        "{}",
        info.filters
    );

    let want = bits(&data);
    let back = ChunkedArray::<f64>::from_hdf5(&path, "/g/x", Chunks::Auto).unwrap();
    assert_eq!(back.shape(), &[10, 9]);
    assert_eq!(bits(&back.compute_with(&opts()).unwrap()), want);
    // (An open dataset keeps its file open read-only, and HDF5 will not open it for writing.)
    drop(back);

    // Other blocks than the stored chunks: smaller, larger, aligned or not.
    let cases: Vec<(Chunks, Vec<Vec<usize>>)> = vec![
        (Chunks::from([2, 2]), vec![vec![2; 5], vec![2, 2, 2, 2, 1]]),
        (Chunks::from([3, 3]), vec![vec![3, 3, 3, 1], vec![3, 3, 3]]),
        (Chunks::from([1, 9]), vec![vec![1; 10], vec![9]]),
        (Chunks::from([7, 6]), vec![vec![7, 3], vec![6, 3]]),
        // Blocks that are whole stored chunks, or stacks of them: decoded in place.
        (Chunks::from([5, 4]), vec![vec![5, 5], vec![4, 4, 1]]),
        (Chunks::from([10, 4]), vec![vec![10], vec![4, 4, 1]]),
        (Chunks::Size(100), vec![vec![10], vec![9]]),
        (
            Chunks::PerAxis(vec![AxisChunks::Whole, AxisChunks::Explicit(vec![1, 7, 1])]),
            vec![vec![10], vec![1, 7, 1]],
        ),
    ];
    for (chunks, blocks) in cases {
        let x = ChunkedArray::<f64>::from_hdf5(&path, "/g/x", chunks.clone()).unwrap();
        assert_eq!(x.chunks(), blocks.as_slice(), "{chunks:?}");
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
    let e = ChunkedArray::<f32>::from_hdf5(&path, "/g/x", Chunks::Auto)
        .expect_err("float64 read as float32");
    assert!(matches!(e, Error::DType(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("float64") && msg.contains("float32"), "{msg}");
    let e = ChunkedArray::<i64>::from_hdf5(&path, "/g/x", Chunks::Auto)
        .expect_err("float64 read as int64");
    let msg = e.to_string();
    assert!(msg.contains("float64") && msg.contains("int64"), "{msg}");

    // A second dataset, uncompressed, in the same file: the first one stays.
    let y = ChunkedArray::<f64>::from_array(data.mapv(|v| -v), [4, 9]).unwrap();
    y.to_hdf5(&path, "/g/y", &hopts(None, false, false), &opts())
        .unwrap();
    let info = th5::info(&path, "/g/y").unwrap();
    assert_eq!(info.chunk_shape, Some(vec![4, 9]));
    assert_eq!(info.filters, "[]");
    let first = ChunkedArray::<f64>::from_hdf5(&path, "/g/x", Chunks::Auto).unwrap();
    assert_eq!(bits(&first.compute_with(&opts()).unwrap()), want);
    drop(first);
    assert_eq!(members(&path, "g"), ["x", "y"]);
}

/// Unfiltered datasets are written in place: their chunks are allocated when the dataset is
/// created and filled from every worker with positioned writes. Ragged edge chunks, 3-D,
/// single-element chunks, one chunk, a transposed input (its blocks gathered row by row) and a
/// zero-length axis read back exactly through the HDF5 library itself. In a file with a user
/// block, chunk addresses are not file offsets: the same writes go through the library's
/// writer, read back the same, and keep the user block.
#[test]
fn unfiltered_datasets_are_written_in_place_or_through_the_library() {
    let _h5 = in_process();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.h5");
    let with_block = dir.path().join("userblock.h5");
    drop(
        hdf5::File::with_options()
            .with_fcpl(|p| p.userblock(512))
            .create(&with_block)
            .unwrap(),
    );
    let ragged = Chunks::PerAxis(vec![
        AxisChunks::Explicit(vec![3, 5, 2]),
        AxisChunks::Explicit(vec![4, 4, 1]),
    ]);
    let cases: Vec<(ArrayD<f64>, Chunks)> = vec![
        (sample(&[10, 9]), ragged),
        (sample(&[4, 5, 6]), Chunks::from([3, 2, 4])),
        (sample(&[3, 4]), Chunks::from([1, 1])),
        (sample(&[7]), Chunks::from([7])),
        (sample(&[9, 10]).reversed_axes(), Chunks::from([4, 3])),
        (sample(&[0, 5]), Chunks::from([2, 2])),
    ];
    for path in [&plain, &with_block] {
        for (k, (data, chunks)) in cases.iter().enumerate() {
            let x = ChunkedArray::<f64>::from_array(data.clone(), chunks.clone()).unwrap();
            let name = format!("/g/c{k}");
            x.to_hdf5(path, &name, &hopts(None, false, false), &opts())
                .unwrap();
            let file = hdf5::File::open(path).unwrap();
            let ds = file.dataset(&name).unwrap();
            assert!(ds.filters().is_empty(), "{name}");
            let back = ds.read_dyn::<f64>().unwrap();
            assert_eq!(bits(&back), bits(data), "{}:{name}", path.display());
            drop((ds, file));
            let ours = ChunkedArray::<f64>::from_hdf5(path, &name, Chunks::Auto).unwrap();
            assert_eq!(bits(&ours.compute_with(&opts()).unwrap()), bits(data));
        }
    }
    let file = hdf5::File::open(&with_block).unwrap();
    assert_eq!(file.create_plist().unwrap().userblock(), 512);
    drop(file);

    // Other element types, unfiltered, in both files: bool, the extremes of i8 and u16, and
    // float32 specials, in ragged chunks.
    let b = ArrayD::from_shape_vec(IxDyn(&[3, 5]), (0..15).map(|i| i % 4 == 1).collect()).unwrap();
    let i8s = ArrayD::from_shape_vec(IxDyn(&[5]), vec![i8::MIN, -1, 0, 1, i8::MAX]).unwrap();
    let u16s = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0, 1, 2, u16::MAX, 1 << 15, 7]).unwrap();
    let f32s = ArrayD::from_shape_vec(
        IxDyn(&[6]),
        vec![f32::NAN, -0.0, f32::INFINITY, f32::MIN, f32::MAX, 1e-45],
    )
    .unwrap();
    let none = hopts(None, false, false);
    for path in [&plain, &with_block] {
        let o = opts();
        ChunkedArray::<bool>::from_array(b.clone(), 2)
            .unwrap()
            .to_hdf5(path, "/t/b", &none, &o)
            .unwrap();
        ChunkedArray::<i8>::from_array(i8s.clone(), 2)
            .unwrap()
            .to_hdf5(path, "/t/i8", &none, &o)
            .unwrap();
        ChunkedArray::<u16>::from_array(u16s.clone(), [1, 2])
            .unwrap()
            .to_hdf5(path, "/t/u16", &none, &o)
            .unwrap();
        ChunkedArray::<f32>::from_array(f32s.clone(), 4)
            .unwrap()
            .to_hdf5(path, "/t/f32", &none, &o)
            .unwrap();
        let file = hdf5::File::open(path).unwrap();
        let read = |name: &str| file.dataset(name).unwrap();
        assert_eq!(read("/t/b").read_dyn::<bool>().unwrap(), b);
        assert_eq!(read("/t/i8").read_dyn::<i8>().unwrap(), i8s);
        assert_eq!(read("/t/u16").read_dyn::<u16>().unwrap(), u16s);
        let f = read("/t/f32").read_dyn::<f32>().unwrap();
        let fbits = |a: &ArrayD<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(fbits(&f), fbits(&f32s));
        drop(file);

        // An unfiltered dataset replaced by another of a new shape: the new values only.
        let again = sample(&[6, 4]).mapv(|v| v * 2.0);
        ChunkedArray::<f64>::from_array(again.clone(), [4, 3])
            .unwrap()
            .to_hdf5(path, "/g/c0", &hopts(None, false, true), &o)
            .unwrap();
        let file = hdf5::File::open(path).unwrap();
        let back = file.dataset("/g/c0").unwrap().read_dyn::<f64>().unwrap();
        assert_eq!(bits(&back), bits(&again));
    }
}

/// A distance matrix whose tiles are not all one shape is re-blocked into regular chunks
/// before it is written, and then needs whole tiles: under memory that only strips would fit,
/// it is refused, and the file keeps its size and its members.
#[test]
fn an_irregular_distance_matrix_is_checked_before_the_file_grows() {
    let _h5 = in_process();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.h5");
    ChunkedArray::<f64>::from_array(sample(&[4]), 4)
        .unwrap()
        .to_hdf5(&path, "/keep", &hopts(None, false, false), &opts())
        .unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let n = 8000;
    let pts = ArrayD::from_shape_fn(IxDyn(&[n, 3]), |ix| ((ix[0] * 7 + ix[1] * 13) % 101) as f64);
    let ragged = Chunks::PerAxis(vec![
        AxisChunks::Explicit(vec![4000, 3000, 1000]),
        AxisChunks::Whole,
    ]);
    let x = ChunkedArray::<f64>::from_array(pts, ragged).unwrap();
    let d = tessera::distance::pdist(&x, tessera::distance::Metric::Euclidean).unwrap();
    let tight = ExecOptions::default().threads(2).allowed_mem(192 << 20);
    let refused = d.to_hdf5(&path, "/d", &hopts(None, false, false), &tight);
    assert!(
        matches!(refused, Err(Error::MemoryLimit { .. })),
        "{refused:?}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    assert_eq!(members(&path, "/"), ["keep"]);
}

#[test]
fn library_refuses_an_existing_dataset_unless_overwrite() {
    let _h5 = in_process();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5");
    let first = sample(&[6, 5]);
    ChunkedArray::<f64>::from_array(first.clone(), 2)
        .unwrap()
        .to_hdf5(&path, "/a", &hopts(Some(4), true, false), &opts())
        .unwrap();
    ChunkedArray::<f64>::from_array(first.clone(), 3)
        .unwrap()
        .to_hdf5(&path, "/b", &hopts(None, false, false), &opts())
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let second = ArrayD::from_elem(IxDyn(&[3, 4]), 7i16);
    let y = ChunkedArray::<i16>::from_array(second.clone(), 2).unwrap();
    let e = y
        .to_hdf5(&path, "/a", &hopts(Some(1), true, false), &opts())
        .expect_err("overwrote without overwrite");
    assert!(matches!(e, Error::Exists(_)), "{e:?}");
    assert!(e.to_string().contains("/a"), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the refused write touched the file"
    );
    y.to_hdf5(&path, "/a", &hopts(Some(1), true, true), &opts())
        .unwrap();
    let back = ChunkedArray::<i16>::from_hdf5(&path, "/a", Chunks::Auto).unwrap();
    assert_eq!(back.compute().unwrap(), second);
    assert_eq!(
        th5::info(&path, "/a").unwrap().chunk_shape,
        Some(vec![2, 2])
    );
    // The sibling is untouched.
    let b = ChunkedArray::<f64>::from_hdf5(&path, "/b", Chunks::Auto).unwrap();
    assert_eq!(bits(&b.compute().unwrap()), bits(&first));
}

#[test]
fn library_round_trips_0d_zero_length_and_other_dtypes() {
    let _h5 = in_process();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shapes.h5");
    let shapes: [&[usize]; 4] = [&[], &[0], &[0, 4], &[3, 0, 2]];
    for (k, shape) in shapes.iter().enumerate() {
        let data = sample(shape);
        let name = format!("/s{k}");
        // Filters need a chunked dataset, which a 0-d one is not (see the BUG test below).
        let w = if shape.is_empty() {
            hopts(None, false, false)
        } else {
            hopts(Some(4), true, false)
        };
        ChunkedArray::<f64>::from_array(data.clone(), Chunks::Auto)
            .unwrap()
            .to_hdf5(&path, &name, &w, &opts())
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        let info = th5::info(&path, &name).unwrap();
        assert_eq!(info.complete, Some(true), "{shape:?}");
        assert_eq!(info.shape, *shape);
        let back = ChunkedArray::<f64>::from_hdf5(&path, &name, Chunks::Auto)
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        assert_eq!(back.shape(), *shape);
        assert_eq!(
            bits(&back.compute_with(&opts()).unwrap()),
            bits(&data),
            "{shape:?}"
        );
    }
    // Other element types: a 0-d bool, a bool matrix, an empty int64, extremes of i8 and u64,
    // and float32 specials.
    let b0 = ArrayD::from_elem(IxDyn(&[]), true);
    let b = ArrayD::from_shape_vec(IxDyn(&[3, 3]), (0..9).map(|i| i % 4 == 1).collect()).unwrap();
    let i0 = ArrayD::<i64>::zeros(IxDyn(&[4, 0]));
    let i8s = ArrayD::from_shape_vec(IxDyn(&[5]), vec![i8::MIN, -1, 0, 1, i8::MAX]).unwrap();
    let u64s = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0, 1, u64::MAX, 1 << 63]).unwrap();
    let f32s = ArrayD::from_shape_vec(
        IxDyn(&[6]),
        vec![f32::NAN, -0.0, f32::INFINITY, f32::MIN, f32::MAX, 1e-45],
    )
    .unwrap();
    let o = opts();
    let w = hopts(Some(6), true, false);
    ChunkedArray::<bool>::from_array(b0.clone(), Chunks::Auto)
        .unwrap()
        .to_hdf5(&path, "/t/b0", &hopts(None, false, false), &o)
        .unwrap();
    ChunkedArray::<bool>::from_array(b.clone(), 2)
        .unwrap()
        .to_hdf5(&path, "/t/b", &w, &o)
        .unwrap();
    ChunkedArray::<i64>::from_array(i0.clone(), Chunks::Auto)
        .unwrap()
        .to_hdf5(&path, "/t/i0", &w, &o)
        .unwrap();
    ChunkedArray::<i8>::from_array(i8s.clone(), 2)
        .unwrap()
        .to_hdf5(&path, "/t/i8", &w, &o)
        .unwrap();
    ChunkedArray::<u64>::from_array(u64s.clone(), 1)
        .unwrap()
        .to_hdf5(&path, "/t/u64", &w, &o)
        .unwrap();
    ChunkedArray::<f32>::from_array(f32s.clone(), 4)
        .unwrap()
        .to_hdf5(&path, "/t/f32", &w, &o)
        .unwrap();
    let read_bool = |name: &str| {
        ChunkedArray::<bool>::from_hdf5(&path, name, Chunks::Auto)
            .unwrap()
            .compute()
            .unwrap()
    };
    assert_eq!(read_bool("/t/b0"), b0);
    assert_eq!(read_bool("/t/b"), b);
    let got = ChunkedArray::<i64>::from_hdf5(&path, "/t/i0", Chunks::Auto).unwrap();
    assert_eq!(got.compute().unwrap(), i0);
    let got = ChunkedArray::<i8>::from_hdf5(&path, "/t/i8", Chunks::Auto).unwrap();
    assert_eq!(got.compute().unwrap(), i8s);
    let got = ChunkedArray::<u64>::from_hdf5(&path, "/t/u64", Chunks::Auto).unwrap();
    assert_eq!(got.compute().unwrap(), u64s);
    let got = ChunkedArray::<f32>::from_hdf5(&path, "/t/f32", Chunks::from([5]))
        .unwrap()
        .compute()
        .unwrap();
    let bits32 = |a: &ArrayD<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits32(&got), bits32(&f32s));
    // DynArray opens each with its own dtype.
    for (name, dtype) in [
        ("/t/b", DType::Bool),
        ("/t/i8", DType::I8),
        ("/t/u64", DType::U64),
        ("/t/f32", DType::F32),
        ("/s0", DType::F64),
    ] {
        let d = tessera::dynarray::DynArray::from_hdf5(&path, name, Chunks::Auto).unwrap();
        assert_eq!(d.dtype(), dtype, "{name}");
    }
}

// -------------------------------------------------------------------------------------------
// 4. Bad input
// -------------------------------------------------------------------------------------------

#[test]
fn bad_hdf5_paths_give_one_clear_error_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = root.join("f.h5");
    let data = sample(&[6, 5]);
    {
        let _h5 = in_process();
        ChunkedArray::<f64>::from_array(data.clone(), 3)
            .unwrap()
            .to_hdf5(&f, "/g/a", &hopts(Some(4), true, false), &opts())
            .unwrap();
    }
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[4, 3])).unwrap();
    std::fs::write(root.join("notes.h5"), "this is not an HDF5 file\n").unwrap();
    let notes = std::fs::read(root.join("notes.h5")).unwrap();

    // A missing file, through each command.
    for args in [
        &["convert", "missing.h5:/x", "o.npy"][..],
        &["info", "missing.h5:/x"],
        &["eval", "x", "--in", "x=missing.h5:/x"],
        &["eval", "x", "--in", "x=missing.h5:/x", "-o", "o.h5:/x"],
    ] {
        clean_error(&format!("{args:?}"), &tessera(root, args), &["missing.h5"]);
    }
    assert!(!root.join("missing.h5").exists());
    // A file that is not HDF5, as input and as output: untouched.
    for args in [
        &["convert", "notes.h5:/x", "o.npy"][..],
        &["info", "notes.h5:/x"],
        &["eval", "x", "--in", "x=notes.h5:/x"],
        &["convert", "in.npy", "notes.h5:/x"],
        &[
            "eval",
            "x",
            "--in",
            "x=in.npy",
            "-o",
            "notes.h5:/x",
            "--overwrite",
        ],
    ] {
        clean_error(&format!("{args:?}"), &tessera(root, args), &["notes.h5"]);
        assert_eq!(std::fs::read(root.join("notes.h5")).unwrap(), notes);
    }
    // A missing dataset, a missing group on the way, a group where a dataset is expected.
    for (args, want) in [
        (&["convert", "f.h5:/nope", "o.npy"][..], "/nope"),
        (&["info", "f.h5:/g/nope"], "/g/nope"),
        (&["eval", "x + 1", "--in", "x=f.h5:/g/nope/x"], "/g/nope/x"),
        (&["convert", "f.h5:/g", "o.npy"], "/g"),
    ] {
        clean_error(&format!("{args:?}"), &tessera(root, args), &["f.h5", want]);
    }
    // No dataset named at all.
    clean_error(
        "bare .h5",
        &tessera(root, &["convert", "f.h5", "o.npy"]),
        &["f.h5", "dataset"],
    );
    // A dataset with a null dataspace (h5py.Empty) holds no array: named, not read as 0-d.
    {
        let _h5 = in_process();
        let file = hdf5::File::create(root.join("empty.h5")).unwrap();
        file.new_dataset::<f64>()
            .shape(hdf5::Extents::Null)
            .create("nothing")
            .unwrap();
    }
    for args in [
        &["info", "empty.h5:/nothing"][..],
        &["eval", "x.sum()", "--in", "x=empty.h5:/nothing"],
        &["convert", "empty.h5:/nothing", "o.npy"],
    ] {
        clean_error(
            &format!("{args:?}"),
            &tessera(root, args),
            &["empty.h5", "/nothing", "null dataspace"],
        );
    }
    assert!(!root.join("o.npy").exists());
    assert!(!root.join("o.h5").exists());

    // An existing dataset without --overwrite: refused, the file untouched.
    let before = std::fs::read(&f).unwrap();
    for args in [
        &["convert", "in.npy", "f.h5:/g/a"][..],
        &["eval", "x * 2", "--in", "x=in.npy", "-o", "f.h5:/g/a"],
        &["convert", "in.npy", "f.h5:/g/a", "--codec", "gzip"],
        // A group is an existing link too.
        &["convert", "in.npy", "f.h5:/g"],
    ] {
        clean_error(
            &format!("{args:?}"),
            &tessera(root, args),
            &["f.h5:/g", "exists", "--overwrite"],
        );
        assert_eq!(std::fs::read(&f).unwrap(), before, "{args:?} touched f.h5");
    }

    // A codec HDF5 outputs do not have, and a level out of range: nothing written.
    for args in [
        &["convert", "in.npy", "new.h5:/x", "--codec", "zstd"][..],
        &[
            "eval",
            "x",
            "--in",
            "x=in.npy",
            "-o",
            "new.h5:/x",
            "--codec",
            "zstd",
        ],
        &["convert", "in.npy", "f.h5:/y", "--codec", "zstd"],
        &["convert", "in.npy", "f.h5:/y", "--codec", "blosc"],
    ] {
        clean_error(
            &format!("{args:?}"),
            &tessera(root, args),
            &["codec", "none", "gzip"],
        );
        assert!(!root.join("new.h5").exists(), "{args:?} left new.h5");
        assert_eq!(std::fs::read(&f).unwrap(), before, "{args:?} touched f.h5");
    }
    for level in ["10", "-1"] {
        let args = [
            "convert",
            "in.npy",
            "new.h5:/x",
            "--codec",
            "gzip",
            "--level",
            level,
        ];
        clean_error(
            &format!("{args:?}"),
            &tessera(root, &args),
            &["level", level],
        );
        assert!(!root.join("new.h5").exists(), "{args:?} left new.h5");
    }
    // An output directory that does not exist.
    clean_error(
        "missing output directory",
        &tessera(root, &["convert", "in.npy", "nodir/o.h5:/x"]),
        &["o.h5"],
    );
    assert!(!root.join("nodir").exists());

    // A write that fails while the blocks are computed (an all-NaN column for nanargmax):
    // no dataset left behind, the other datasets intact; no file if there was none.
    let mut nan = sample(&[6, 3]);
    nan.slice_mut(ndarray::s![.., 1]).fill(f64::NAN);
    ndarray_npy::write_npy(root.join("nan.npy"), &nan).unwrap();
    let expr = "nanargmax(x, axis=0)";
    for dst in ["f.h5:/x", "new.h5:/x", "new.h5:/deep/er/x"] {
        clean_error(
            dst,
            &tessera(root, &["eval", expr, "--in", "x=nan.npy", "-o", dst]),
            &["All-NaN"],
        );
        assert!(
            !root.join("new.h5").exists(),
            "{dst}: a failed write left new.h5"
        );
    }
    clean_error(
        "gzip",
        &tessera(
            root,
            &[
                "eval",
                expr,
                "--in",
                "x=nan.npy",
                "-o",
                "f.h5:/x",
                "--codec",
                "gzip",
            ],
        ),
        &["All-NaN"],
    );
    let _h5 = in_process();
    assert_eq!(members(&f, "/"), ["g"], "a failed write left a dataset");
    assert!(th5::info(&f, "/x").is_err());
    let a = ChunkedArray::<f64>::from_hdf5(&f, "/g/a", Chunks::Auto).unwrap();
    assert_eq!(bits(&a.compute().unwrap()), bits(&data));
    assert_eq!(th5::info(&f, "/g/a").unwrap().complete, Some(true));
}

/// h5py datasets of dtypes tessera does not read.
const WRITE_UNSUPPORTED: &str = r#"
root = sys.argv[1]
with h5py.File(os.path.join(root, "u.h5"), "w") as f:
    f["c128"] = np.array([1 + 2j, 0, -1j])
    f["str"] = np.array([b"a", b"bb", b"ccc"])
    f["f16"] = np.full((4,), 1.5, dtype="f2")
    f.create_group("g")["enum"] = np.array([0, 1, 2], dtype=h5py.enum_dtype({"A": 0, "B": 1, "C": 2}, basetype="i1"))
    f.create_dataset("vlen", (3,), dtype=h5py.vlen_dtype(np.dtype("i4")))
    f["ok"] = np.arange(3.0)
"#;

#[test]
fn an_unsupported_hdf5_dtype_is_refused_clearly() {
    let Some(py) = oracle("an_unsupported_hdf5_dtype_is_refused_clearly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    run_script(&py, &format!("{VALUES}{WRITE_UNSUPPORTED}"), &[root]);
    for (ds, kind) in [
        ("/c128", "compound"),
        ("/str", "string"),
        ("/g/enum", "enum"),
        ("/vlen", "variable-length"),
    ] {
        let spec = format!("u.h5:{ds}");
        for args in [
            &["convert", &spec, "o.npy"][..],
            &["info", &spec],
            &["eval", "x", "--in", &format!("x={spec}"), "-o", "o.h5:/x"],
        ] {
            clean_error(
                &format!("{args:?}"),
                &tessera(root, args),
                &["u.h5", kind, "HDF5 datatype is not supported"],
            );
        }
    }
    assert!(!root.join("o.npy").exists());
    assert!(!root.join("o.h5").exists());
    success("ok", &tessera(root, &["convert", "u.h5:/ok", "o.npy"]));
}

/// A gzip dataset h5py writes with `libver="latest"` (a layout message newer than some
/// libhdf5 releases read).
const WRITE_LATEST: &str = r#"
root = sys.argv[1]
with h5py.File(os.path.join(root, "l.h5"), "w", libver="latest") as f:
    f.create_dataset("c", data=values("float64", (10, 10)), chunks=(3, 3), compression="gzip")
"#;

/// A file in a newer format than the linked libhdf5 reads is read exactly, or refused with an
/// error that says so and names the library's version (not only "bad version number").
#[test]
fn a_newer_format_file_reads_or_says_the_library_is_older() {
    let Some(py) = oracle("a_newer_format_file_reads_or_says_the_library_is_older") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("in")).unwrap();
    std::fs::create_dir(root.join("out")).unwrap();
    run_script(&py, &format!("{VALUES}{WRITE_LATEST}"), &[root.join("in")]);
    let out = tessera(root, &["convert", "in/l.h5:/c", "out/c.npy"]);
    if out.status.success() {
        let args = [root.to_string_lossy().into_owned(), "c=l.h5:/c".into()];
        let report = run_script(&py, &format!("{VALUES}{CHECK_READ}"), &args);
        assert!(report.starts_with("OK c"), "{report}");
        return;
    }
    let (major, minor, release) = hdf5::library_version();
    let version = format!("{major}.{minor}.{release}");
    let line = clean_error("convert", &out, &["l.h5", "newer HDF5 format", &version]);
    eprintln!("libver latest: {line}");
}

#[test]
fn a_float16_dataset_is_named_as_unsupported() {
    let Some(py) = oracle("a_float16_dataset_is_named_as_unsupported") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    run_script(&py, &format!("{VALUES}{WRITE_UNSUPPORTED}"), &[root]);
    for args in [
        &["convert", "u.h5:/f16", "o.npy"][..],
        &["info", "u.h5:/f16"],
    ] {
        clean_error(
            &format!("{args:?}"),
            &tessera(root, args),
            &["u.h5", "/f16", "float16", "not supported"],
        );
    }
}

#[test]
fn a_failed_write_leaves_no_new_groups() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = root.join("f.h5");
    {
        let _h5 = in_process();
        ChunkedArray::<f64>::from_array(sample(&[4, 3]), 2)
            .unwrap()
            .to_hdf5(&f, "/keep", &hopts(None, false, false), &opts())
            .unwrap();
    }
    let mut nan = sample(&[6, 3]);
    nan.slice_mut(ndarray::s![.., 1]).fill(f64::NAN);
    ndarray_npy::write_npy(root.join("nan.npy"), &nan).unwrap();
    clean_error(
        "failed nested write",
        &tessera(
            root,
            &[
                "eval",
                "nanargmax(x, axis=0)",
                "--in",
                "x=nan.npy",
                "-o",
                "f.h5:/new/group/x",
            ],
        ),
        &["All-NaN"],
    );
    let _h5 = in_process();
    assert_eq!(
        members(&f, "/"),
        ["keep"],
        "the failed write of f.h5:/new/group/x left groups behind"
    );
    // A deflate level HDF5 does not have is refused by name, before the file is touched.
    let before = std::fs::read(&f).unwrap();
    let e = ChunkedArray::<f64>::from_array(sample(&[4, 3]), 2)
        .unwrap()
        .to_hdf5(&f, "/x", &hopts(Some(10), false, false), &opts())
        .unwrap_err();
    assert!(e.to_string().contains("deflate level 10"), "{e}");
    assert!(e.to_string().contains("0 to 9"), "{e}");
    assert_eq!(std::fs::read(&f).unwrap(), before);
}

/// A group in `other.h5`, reached from `links.h5` through an external link `/ext`.
const WRITE_EXTERNAL_GROUP: &str = r#"
root = sys.argv[1]
with h5py.File(os.path.join(root, "other.h5"), "w") as f:
    f.create_group("g")
with h5py.File(os.path.join(root, "links.h5"), "w") as f:
    f.create_dataset("pad", data=np.full(1 << 16, 9.0))
    f["ext"] = h5py.ExternalLink("other.h5", "/g")
"#;

/// Reads back what tessera wrote through the external link, and the link file's own data.
const CHECK_EXTERNAL_GROUP: &str = r#"
root = sys.argv[1]
a = np.load(os.path.join(root, "a.npy"))
with h5py.File(os.path.join(root, "other.h5"), "r") as f:
    ok = all(np.array_equal(f["g"][n][()], a, equal_nan=True) for n in ["plain", "gzip"])
with h5py.File(os.path.join(root, "links.h5"), "r") as f:
    ok = ok and bool((f["pad"][()] == 9.0).all())
print("OK" if ok else "FAIL")
"#;

/// A dataset written into a group of another file, through an external link, lands in that
/// file whole (an unfiltered one is not written in place at the link file's offsets).
#[test]
fn a_write_through_an_external_link_lands_in_the_linked_file() {
    let Some(py) = oracle("a_write_through_an_external_link_lands_in_the_linked_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    run_script(&py, &format!("{VALUES}{WRITE_EXTERNAL_GROUP}"), &[root]);
    ndarray_npy::write_npy(root.join("a.npy"), &sample(&[300, 40])).unwrap();
    success(
        "plain",
        &tessera(root, &["convert", "a.npy", "links.h5:/ext/plain"]),
    );
    success(
        "gzip",
        &tessera(
            root,
            &["convert", "a.npy", "links.h5:/ext/gzip", "--codec", "gzip"],
        ),
    );
    let report = run_script(&py, &format!("{VALUES}{CHECK_EXTERNAL_GROUP}"), &[root]);
    assert_eq!(report.trim(), "OK");
}

/// A path through an existing dataset (as if it were a group) is refused, and the dataset
/// stays; `--overwrite` never replaces a group, with what it holds, by a dataset.
#[test]
fn a_dataset_in_the_way_of_a_write_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let f = root.join("f.h5");
    ndarray_npy::write_npy(root.join("a.npy"), &sample(&[4, 3])).unwrap();
    for target in ["f.h5:/x", "f.h5:/g/y"] {
        success("convert", &tessera(root, &["convert", "a.npy", target]));
    }
    let refusals: [(&[&str], &[&str]); 5] = [
        (
            &["convert", "a.npy", "f.h5:/x/inside"],
            &["/x", "not a group"],
        ),
        (
            &["convert", "a.npy", "f.h5:/g/y/w/v"],
            &["/g/y", "not a group"],
        ),
        (
            &["knn", "a.npy", "-k", "2", "-o", "f.h5:/x"],
            &["/x", "not a group"],
        ),
        (
            &["cdist", "a.npy", "-o", "f.h5:/x/d"],
            &["/x", "not a group"],
        ),
        (
            &["convert", "a.npy", "f.h5:/g", "--overwrite"],
            &["/g", "is a group"],
        ),
    ];
    for (args, words) in refusals {
        clean_error(&args.join(" "), &tessera(root, args), words);
        let _h5 = in_process();
        assert_eq!(members(&f, "/"), ["g", "x"], "after {args:?}");
        assert_eq!(members(&f, "/g"), ["y"], "after {args:?}");
    }
    let _h5 = in_process();
    let file = hdf5::File::open(&f).unwrap();
    for name in ["x", "g/y"] {
        let back = file.dataset(name).unwrap().read_dyn::<f64>().unwrap();
        assert_eq!(back.shape(), [4, 3], "{name}");
    }
}

#[test]
fn a_0d_output_with_gzip_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[5, 4])).unwrap();
    let want = sample(&[5, 4])
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .count() as f64;
    success(
        "eval 0-d to gzip",
        &tessera(
            root,
            &[
                "eval",
                "sum(x == x)",
                "--in",
                "x=in.npy",
                "-o",
                "o.h5:/n",
                "--codec",
                "gzip",
            ],
        ),
    );
    let text = success("eval", &tessera(root, &["eval", "x", "--in", "x=o.h5:/n"]));
    assert_eq!(text.trim(), format!("{}", want as i64));
}

// -------------------------------------------------------------------------------------------
// 5. info
// -------------------------------------------------------------------------------------------

#[test]
fn info_shows_layout_filters_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ndarray_npy::write_npy(root.join("in.npy"), &sample(&[13, 7])).unwrap();
    ndarray_npy::write_npy(root.join("s.npy"), &sample(&[])).unwrap();
    for args in [
        &[
            "convert",
            "in.npy",
            "t.h5:/g/x",
            "--chunks=5,3",
            "--codec",
            "gzip",
        ][..],
        &["convert", "in.npy", "t.h5:/n", "--chunks=4"],
        &["convert", "s.npy", "t.h5:/s"],
    ] {
        success(&format!("{args:?}"), &tessera(root, args));
    }
    for (ds, wants, filters) in [
        (
            "/g/x",
            &["hdf5", "dataset /g/x in t.h5", "chunks [5, 3]"][..],
            &["deflate", "shuffle"][..],
        ),
        ("/n", &["chunks [4, 4]", "filters []"], &[]),
        ("/s", &["contiguous", "filters []"], &[]),
    ] {
        let spec = format!("t.h5:{ds}");
        let text = success(&spec, &tessera(root, &["info", &spec]));
        let backend = backend_line(&text);
        for want in wants.iter().chain(&[", complete"]) {
            assert!(backend.contains(want), "{spec}: lacks {want:?}:\n{text}");
        }
        for want in filters {
            assert!(
                backend.to_ascii_lowercase().contains(want),
                "{spec}: lacks {want:?}:\n{text}"
            );
        }
        assert!(!backend.contains("not written by tessera"), "{text}");
        assert!(!backend.contains("INCOMPLETE"), "{text}");
        if ds == "/s" {
            assert!(text.contains("shape      []"), "{text}");
        } else {
            for want in ["[13, 7]", "float64", "728 B"] {
                assert!(text.contains(want), "{spec}: lacks {want:?}:\n{text}");
            }
        }
    }

    // A dataset whose completion attribute is still false (an interrupted write) says so.
    {
        let _h5 = in_process();
        let file = hdf5::File::open_rw(root.join("t.h5")).unwrap();
        let ds = file.dataset("g/x").unwrap();
        ds.attr(th5::COMPLETE_ATTRIBUTE)
            .unwrap()
            .write_scalar(&false)
            .unwrap();
    }
    let text = success("incomplete", &tessera(root, &["info", "t.h5:/g/x"]));
    let backend = backend_line(&text);
    assert!(backend.contains("INCOMPLETE"), "{text}");
    assert!(!backend.contains(", complete"), "{text}");
}

const WRITE_FOR_INFO: &str = r#"
root = sys.argv[1]
with h5py.File(os.path.join(root, "py.h5"), "w") as f:
    f["c"] = values("int32", (9, 7))
    f.create_dataset("k", data=values("float32", (9, 7)), chunks=(4, 3), compression="gzip",
                     compression_opts=6)
    f.create_dataset("a/b/f", data=values("uint16", (9, 7)), chunks=(5, 5), fletcher32=True,
                     shuffle=True)
    f.create_dataset("s", data=values("float64", ()))
"#;

#[test]
fn info_says_h5py_datasets_were_not_written_by_tessera() {
    let Some(py) = oracle("info_says_h5py_datasets_were_not_written_by_tessera") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    run_script(&py, &format!("{VALUES}{WRITE_FOR_INFO}"), &[root]);
    for (ds, wants, filters, dtype) in [
        ("/c", &["contiguous", "filters []"][..], &[][..], "int32"),
        ("/k", &["chunks [4, 3]"], &["deflate"], "float32"),
        (
            "/a/b/f",
            &["chunks [5, 5]"],
            &["fletcher32", "shuffle"],
            "uint16",
        ),
        ("/s", &["contiguous"], &[], "float64"),
    ] {
        let spec = format!("py.h5:{ds}");
        let text = success(&spec, &tessera(root, &["info", &spec]));
        let backend = backend_line(&text);
        for want in wants.iter().chain(&[
            "not written by tessera",
            &format!("dataset {ds} in py.h5")[..],
        ]) {
            assert!(backend.contains(want), "{spec}: lacks {want:?}:\n{text}");
        }
        for want in filters {
            assert!(
                backend.to_ascii_lowercase().contains(want),
                "{spec}: lacks {want:?}:\n{text}"
            );
        }
        assert!(!backend.contains("INCOMPLETE"), "{text}");
        assert!(!backend.contains(", complete"), "{text}");
        assert!(text.contains(dtype), "{spec}: lacks {dtype}:\n{text}");
        if ds != "/s" {
            assert!(text.contains("[9, 7]"), "{text}");
        }
    }
}

// -------------------------------------------------------------------------------------------
// 3. Chunks read around the library: partial chunks, fill values, skipped filters, corruption
// -------------------------------------------------------------------------------------------

/// h5py writes datasets whose chunks tessera reads itself (shuffle + deflate): chunks never
/// written (fill value), blocks cutting across chunks, and a corrupt chunk. Expected values are what h5py reads.
const WRITE_DIRECT: &str = r#"
root = sys.argv[1]
with h5py.File(os.path.join(root, "d.h5"), "w") as f:
    x = f.create_dataset("g/x", shape=(37, 23), dtype="f8", chunks=(8, 5),
                         compression="gzip", compression_opts=3, shuffle=True, fillvalue=-2.5)
    x[0:16, :] = values("f8", (16, 23))
    x[30:, 20:] = 7.0
    np.save(os.path.join(root, "x_expected.npy"), x[...])
    i = f.create_dataset("i", data=values("i2", (41, 3, 5)), chunks=(6, 2, 4),
                         compression="gzip", shuffle=True)
    np.save(os.path.join(root, "i_expected.npy"), i[...])
    c = f.create_dataset("c", data=np.arange(100, dtype="i4"), chunks=(50,), compression="gzip")
    c.flush()
    info = c.id.get_chunk_info_by_coord((50,))
    offset, size = info.byte_offset, info.size
with open(os.path.join(root, "d.h5"), "r+b") as fh:
    fh.seek(offset + 2)
    fh.write(b"\xff" * (size - 2))
print("written")
"#;

const CHECK_DIRECT: &str = r#"
root = sys.argv[1]
bad = []
for name in ["x", "i"]:
    want = np.load(os.path.join(root, name + "_expected.npy"))
    for suffix in ["a", "b"]:
        got = np.load(os.path.join(root, f"{name}_{suffix}.npy"))
        if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
            bad.append(f"{name}_{suffix}")
print("OK" if not bad else "FAIL " + " ".join(bad))
"#;

#[test]
fn chunks_read_directly_match_h5py_and_corruption_names_the_chunk() {
    let Some(py) = oracle("chunks_read_directly_match_h5py_and_corruption_names_the_chunk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = run_script(&py, &format!("{VALUES}{WRITE_DIRECT}"), &[root]);
    assert_eq!(out.trim(), "written");
    // Blocks of the dataset's own chunking, and blocks cutting across its chunks.
    for (name, chunks) in [("g/x", "7,6"), ("i", "5,3,1")] {
        let short = name.trim_start_matches("g/");
        let src = format!("d.h5:/{name}");
        success(
            "convert",
            &tessera(root, &["convert", &src, &format!("{short}_a.npy")]),
        );
        success(
            "convert with chunks",
            &tessera(
                root,
                &[
                    "convert",
                    &src,
                    &format!("{short}_b.npy"),
                    "--chunks",
                    chunks,
                ],
            ),
        );
    }
    let report = run_script(&py, &format!("{VALUES}{CHECK_DIRECT}"), &[root]);
    assert_eq!(report.trim(), "OK");
    // The corrupt chunk: one error naming the dataset and the chunk, nothing written.
    let line = clean_error(
        "read a corrupt chunk",
        &tessera(root, &["eval", "sum(c)", "--in", "c=d.h5:/c"]),
        &["d.h5", "c", "chunk [1]", "deflate"],
    );
    eprintln!("corrupt: {line}");
    clean_error(
        "convert a corrupt chunk",
        &tessera(root, &["convert", "d.h5:/c", "c.npy"]),
        &["chunk [1]"],
    );
    assert!(!root.join("c.npy").exists(), "a failed read left c.npy");
}

#[test]
fn a_failed_overwrite_keeps_the_old_dataset_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let path = root.join("x.h5");
    // A source that fails half-way: a Zarr array with one corrupt chunk among good ones.
    let bad = root.join("bad.zarr");
    let zo = tessera::store::zarr::ZarrWriteOptions::default();
    ChunkedArray::<f64>::from_array(sample(&[10, 10]), 5)
        .unwrap()
        .to_zarr(&bad, &zo, &opts())
        .unwrap();
    std::fs::write(bad.join("c/1/1"), b"garbage").unwrap();
    let old = sample(&[6, 5]);
    {
        let _h5 = in_process();
        for (dataset, deflate) in [("/g/a", Some(4)), ("/top", None)] {
            ChunkedArray::<f64>::from_array(old.clone(), 2)
                .unwrap()
                .to_hdf5(
                    &path,
                    dataset,
                    &hopts(deflate, deflate.is_some(), false),
                    &opts(),
                )
                .unwrap();
            let failing = ChunkedArray::<f64>::from_zarr(&bad, 5).unwrap();
            let e = failing
                .to_hdf5(
                    &path,
                    dataset,
                    &hopts(deflate, deflate.is_some(), true),
                    &opts(),
                )
                .expect_err("a corrupt source chunk did not fail the write");
            assert!(e.to_string().contains("c/1/1"), "{dataset}: {e}");
            let back = ChunkedArray::<f64>::from_hdf5(&path, dataset, Chunks::Auto).unwrap();
            assert_eq!(
                bits(&back.compute_with(&opts()).unwrap()),
                bits(&old),
                "{dataset}: a failed --overwrite changed the old dataset"
            );
            assert_eq!(th5::info(&path, dataset).unwrap().complete, Some(true));
        }
        assert_eq!(
            members(&path, "/g"),
            vec!["a".to_string()],
            "leftovers in /g"
        );
        assert_eq!(
            members(&path, "/"),
            vec!["g".to_string(), "top".to_string()],
            "leftovers in /"
        );
        // A good overwrite replaces it and leaves nothing else behind.
        let new = sample(&[4, 4]).mapv(|v| v * 2.0);
        ChunkedArray::<f64>::from_array(new.clone(), 3)
            .unwrap()
            .to_hdf5(&path, "/g/a", &hopts(Some(1), true, true), &opts())
            .unwrap();
        let back = ChunkedArray::<f64>::from_hdf5(&path, "/g/a", Chunks::Auto).unwrap();
        assert_eq!(bits(&back.compute_with(&opts()).unwrap()), bits(&new));
        assert_eq!(
            members(&path, "/g"),
            vec!["a".to_string()],
            "leftovers in /g"
        );
    }
    // The CLI says the same, in one line.
    let out = tessera(
        root,
        &[
            "convert",
            "bad.zarr",
            "x.h5:/top",
            "--overwrite",
            "--chunks",
            "5",
        ],
    );
    clean_error("failing overwrite", &out, &["bad.zarr", "c/1/1"]);
}

#[test]
fn an_interrupted_write_is_refused_by_readers_and_shown_by_info() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let path = root.join("x.h5");
    {
        let _h5 = in_process();
        ChunkedArray::<f64>::from_array(sample(&[6, 4]), 3)
            .unwrap()
            .to_hdf5(&path, "/g/x", &hopts(Some(4), true, false), &opts())
            .unwrap();
        // What a write killed before its end leaves: the completion attribute still false.
        {
            let file = hdf5::File::open_rw(&path).unwrap();
            let ds = file.dataset("g/x").unwrap();
            ds.attr(th5::COMPLETE_ATTRIBUTE)
                .unwrap()
                .write_scalar(&false)
                .unwrap();
        }
        let e = ChunkedArray::<f64>::from_hdf5(&path, "/g/x", Chunks::Auto)
            .err()
            .unwrap_or_else(|| panic!("an incomplete dataset was opened for reading"));
        let msg = e.to_string();
        assert!(msg.contains("incomplete") && msg.contains("/g/x"), "{msg}");
        assert_eq!(th5::info(&path, "/g/x").unwrap().complete, Some(false));
    }
    clean_error(
        "eval incomplete",
        &tessera(root, &["eval", "x.sum()", "--in", "x=x.h5:/g/x"]),
        &["x.h5", "incomplete"],
    );
    let info = success("info incomplete", &tessera(root, &["info", "x.h5:/g/x"]));
    assert!(info.contains("INCOMPLETE"), "{info}");
    assert!(info.contains("shape      [6, 4]"), "{info}");
}

#[test]
fn contiguous_datasets_read_the_same_with_any_blocks() {
    let _h5 = in_process();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contig.h5");
    // Rows of 40 KB, planes of 160 KB: blocks make long runs of memory (read directly), short
    // runs (through the library) and strided pieces.
    let data = sample(&[12, 4, 5000]);
    let ints = ndarray::Array::from_shape_fn((9, 20000), |(i, j)| (i * 20000 + j) as i32 - 7);
    let flags = ndarray::Array::from_shape_fn((3, 5), |(i, j)| (i + j) % 3 == 0);
    {
        let file = hdf5::File::create(&path).unwrap();
        let g = file.create_group("g").unwrap();
        for (name, ds) in [
            ("x", g.new_dataset_builder().with_data(&data).create("x")),
            ("i", g.new_dataset_builder().with_data(&ints).create("i")),
            ("b", g.new_dataset_builder().with_data(&flags).create("b")),
        ] {
            let ds = ds.unwrap();
            assert!(!ds.is_chunked(), "{name} should be contiguous");
        }
    }
    let want = bits(&data);
    let cases: Vec<Chunks> = vec![
        Chunks::Auto,
        Chunks::from([5, 4, 5000]),
        Chunks::from([5, 2, 5000]),
        Chunks::from([5, 1, 5000]),
        Chunks::from([12, 4, 1000]),
        Chunks::from([1, 1, 5000]),
        Chunks::from([7, 3, 4999]),
    ];
    for chunks in cases {
        let x = ChunkedArray::<f64>::from_hdf5(&path, "/g/x", chunks.clone()).unwrap();
        assert_eq!(bits(&x.compute_with(&opts()).unwrap()), want, "{chunks:?}");
        let items = [
            SliceItem::Range {
                start: Some(2),
                stop: Some(9),
                step: 2,
            },
            SliceItem::Index(-1),
            SliceItem::Range {
                start: Some(10),
                stop: None,
                step: 1,
            },
        ];
        let s = x.slice(&items).unwrap().compute_with(&opts()).unwrap();
        let expect = data
            .slice(ndarray::s![2..9;2, -1, 10..])
            .to_owned()
            .into_dyn();
        assert_eq!(bits(&s), bits(&expect), "{chunks:?}");
    }
    for chunks in [
        Chunks::Auto,
        Chunks::from([2, 20000]),
        Chunks::from([4, 7000]),
    ] {
        let i = ChunkedArray::<i32>::from_hdf5(&path, "/g/i", chunks.clone()).unwrap();
        assert_eq!(
            i.compute_with(&opts()).unwrap(),
            ints.clone().into_dyn(),
            "{chunks:?}"
        );
    }
    let b = ChunkedArray::<bool>::from_hdf5(&path, "/g/b", [2, 5]).unwrap();
    assert_eq!(b.compute_with(&opts()).unwrap(), flags.into_dyn());
}

/// A write to a new HDF5 file killed on the way leaves no file at the output path (the file
/// is made under a hidden name beside it and renamed once complete); the same write then
/// completes, readable.
#[test]
fn a_killed_write_leaves_no_file_at_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 16 MB of varied values: deflate at level 9 takes a while, one chunk after another.
    let x = ArrayD::from_shape_fn(IxDyn(&[1000, 2000]), |i| {
        let k = (i[0] * 2000 + i[1]) as u64;
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
    });
    ndarray_npy::write_npy(d.join("x.npy"), &x).unwrap();
    let args = [
        "--threads",
        "1",
        "-q",
        "convert",
        "x.npy",
        "new.h5:/g/d",
        "--codec",
        "gzip",
        "--level",
        "9",
        "--chunks",
        "50",
    ];
    let mut child = {
        let _g = spawning();
        Command::new(TESSERA)
            .args(args)
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run the tessera binary")
    };
    // Killed once the hidden file has some chunks in it.
    let partial = || {
        std::fs::read_dir(d).unwrap().flatten().find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".new.h5.tessera-partial")
                && e.metadata().is_ok_and(|m| m.len() > 1 << 20)
        })
    };
    let start = std::time::Instant::now();
    while partial().is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the write ended before it could be interrupted"
        );
        assert!(
            start.elapsed().as_secs() < 120,
            "no partial file after 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !d.join("new.h5").exists(),
        "an interrupted write left new.h5"
    );
    // The same write, not interrupted, gives the file.
    success("the write again", &tessera(d, &args));
    let back = {
        let _g = in_process();
        ChunkedArray::<f64>::from_hdf5(d.join("new.h5"), "/g/d", Chunks::Auto)
            .unwrap()
            .compute()
            .unwrap()
    };
    assert_eq!(bits(&back), bits(&x));
}

/// A file another process holds open for writing (as h5py does in mode 'a') is named as
/// locked by it, not as an unreadable or unwritable file; once it is closed, the write runs.
#[test]
fn a_file_locked_by_another_process_is_named_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ndarray_npy::write_npy(d.join("x.npy"), &sample(&[3, 4])).unwrap();
    success("first", &tessera(d, &["convert", "x.npy", "f.h5:/a"]));
    let out = {
        // No other test starts a process while this one holds the file open.
        let _g = in_process();
        let held = hdf5::File::append(d.join("f.h5")).unwrap();
        let out = Command::new(TESSERA)
            .args(["convert", "x.npy", "f.h5:/b"])
            .current_dir(d)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        drop(held);
        out
    };
    clean_error(
        "locked",
        &out,
        &["f.h5", "another process has the file open"],
    );
    success("after", &tessera(d, &["convert", "x.npy", "f.h5:/b"]));
}
