//! NumPy as the oracle for the command line: `.npy` files NumPy writes are read back exactly,
//! and a table of expressions evaluated by `tessera eval ... -o out.npy` agrees with the same
//! expression evaluated by NumPy (values, shape and dtype).
//!
//! The tests need a Python with NumPy 2, named by `$TESSERA_PYTHON` (see `tests/python/README.md`);
//! without it they print that they were skipped, unless `TESSERA_REQUIRE_ORACLE=1`.
//!
//! Every check is batched: one Python call writes the inputs, the `tessera` runs go in parallel,
//! and one Python call compares all the results and prints one line per mismatch.

#[path = "common/python.rs"]
mod python;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[path = "common/cli.rs"]
mod cli;
use cli::tessera;

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
        } else if line.starts_with("OK ") || line.starts_with("RAISES ") {
            in_failure = false;
        } else if in_failure {
            let last = out.last_mut().expect("a FAIL line first");
            last.push('\n');
            last.push_str(line);
        }
    }
    out
}

// -------------------------------------------------------------------------------------------
// .npy files written by NumPy
// -------------------------------------------------------------------------------------------

/// Writes `in/NNN.npy` for every dtype, order and shape, and prints `NNN<TAB>description`.
const WRITE_FILES: &str = r#"
import os, sys, math
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(20240611)
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64", ">i4", ">f8", ">u2", ">i8", ">f4"]
SHAPES = [(), (0,), (3, 0, 2), (7,), (5, 6), (2, 3, 4)]

def values(dt, n):
    native = dt.newbyteorder("=")
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(native)
        v = rng.integers(info.min, info.max, n, dtype=native, endpoint=True)
        special = np.array([info.min, info.max, 0, 1], dtype=native)
    else:
        v = (rng.standard_normal(n) * 1e3).astype(native)
        fi = np.finfo(native)
        special = np.array([np.nan, np.inf, -np.inf, -0.0, fi.tiny, fi.max, fi.min], dtype=native)
    k = min(n, len(special))
    v[:k] = special[:k]
    return v

k = 0
for name in DTYPES:
    dt = np.dtype(name)
    for order in "CF":
        for shape in SHAPES:
            n = math.prod(shape)
            a = values(dt, n).reshape(shape, order=order).astype(dt)
            path = os.path.join(out, f"{k:03}.npy")
            # The header by hand, so that fortran_order is exactly ORDER even for 0-d, 1-d and
            # empty arrays (np.save would pick it from the strides).
            header = {"descr": np.lib.format.dtype_to_descr(dt),
                      "fortran_order": order == "F", "shape": shape}
            with open(path, "wb") as f:
                np.lib.format.write_array_header_1_0(f, header)
                f.write(a.tobytes(order=order))
            assert np.array_equal(np.load(path), a, equal_nan=True)
            print(f"{k:03}\t{name} order={order} shape={shape}")
            k += 1
"#;

/// For every `NNN` argument, compares `in/NNN.npy` with `out/NNN.npy`: shape, dtype up to byte
/// order, and every bit of every element.
const CHECK_FILES: &str = r#"
import os, sys
import numpy as np

root = sys.argv[1]
for k in sys.argv[2:]:
    a = np.load(os.path.join(root, "in", k + ".npy"))
    b = np.load(os.path.join(root, "out", k + ".npy"))
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
    if why:
        print(f"FAIL {k}: " + "; ".join(why))
    else:
        print(f"OK {k}")
"#;

#[test]
fn npy_files_written_by_numpy_read_back_exactly() {
    let Some(py) = python::python("npy_files_written_by_numpy_read_back_exactly") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("in")).unwrap();
    std::fs::create_dir(root.join("out")).unwrap();
    let manifest = python::run_script(&py, WRITE_FILES, &[root.join("in")]);
    let files: Vec<(&str, &str)> = manifest
        .lines()
        .map(|l| l.split_once('\t').expect("NNN<TAB>description"))
        .collect();
    assert_eq!(files.len(), 16 * 2 * 6, "{manifest}");

    let jobs: Vec<Vec<OsString>> = files
        .iter()
        .map(|(k, _)| {
            os(&[
                "eval",
                "x",
                "--in",
                &format!("x=in/{k}.npy"),
                "-o",
                &format!("out/{k}.npy"),
            ])
        })
        .collect();
    let outputs = tessera_all(root, &jobs);
    let mut problems = Vec::new();
    let mut written = Vec::new();
    for ((k, what), out) in files.iter().zip(&outputs) {
        if out.status.success() {
            written.push(k.to_string());
        } else {
            problems.push(format!(
                "{k} ({what}): tessera failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let mut args = vec![root.to_string_lossy().into_owned()];
    args.extend(written);
    let report = python::run_script(&py, CHECK_FILES, &args);
    for line in failures(&report) {
        let k = &line[5..8];
        let what = files.iter().find(|f| f.0 == k).map_or("?", |f| f.1);
        problems.push(format!("{what}: {line}"));
    }
    assert!(
        problems.is_empty(),
        "{} of {} files do not round-trip:\n{}",
        problems.len(),
        files.len(),
        problems.join("\n")
    );

    // `info` reports the layout NumPy wrote: a big-endian Fortran-order float64 file.
    let (k, _) = files
        .iter()
        .find(|f| f.1 == ">f8 order=F shape=(2, 3, 4)")
        .unwrap();
    let out = tessera(root, &os(&["info", &format!("in/{k}.npy")]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for want in ["Fortran", "big-endian", "[2, 3, 4]", "float64", "192 B"] {
        assert!(text.contains(want), "info lacks {want:?}:\n{text}");
    }
}

// -------------------------------------------------------------------------------------------
// Expressions against NumPy
// -------------------------------------------------------------------------------------------

/// Writes the inputs of the expression table into the folder `argv[1]`.
const WRITE_INPUTS: &str = r#"
import os, sys
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(7)
x = rng.standard_normal((5, 6)) * 10
for ij in [(0, 1), (2, 4), (3, 0), (4, 5), (1, 1)]:
    x[ij] = np.nan
z = rng.standard_normal((60, 45))
z[rng.random((60, 45)) < 0.05] = np.nan
z[10] = np.nan  # a row of NaN only
u = rng.integers(0, 256, (5, 6)).astype(np.uint8)
u[0, 0], u[0, 1] = 255, 0
inputs = {
    "x": x,                                                       # float64 with NaNs
    "y": rng.standard_normal((5, 6)),                             # float64
    "i": rng.integers(-20, 21, (5, 6)).astype(np.int32),          # int32, negatives and 0
    "j": (rng.integers(1, 8, (5, 6)) * rng.choice([-1, 1], (5, 6))).astype(np.int32),  # no 0
    "u": u,                                                       # uint8, with 0 and 255
    "b": rng.random((5, 6)) < 0.5,
    "f": rng.standard_normal((5, 6)).astype(np.float32),
    "v": rng.standard_normal(6),                                  # float64 (6,)
    "z": z,                                                       # float64 (60, 45)
    "e": np.zeros((3, 0, 2)),                                     # empty
    "s": np.array(2.5),                                           # 0-d
    "L": np.array([np.iinfo(np.int64).min, -5, 0, 7, np.iinfo(np.int64).max - 1, 2**62]),
    "U": np.array([0, 5, 2**63, 2**64 - 1, 2**53 + 1, 7], dtype=np.uint64),
}
for name, a in inputs.items():
    np.save(os.path.join(out, name + ".npy"), a)
"#;

/// Input names of the table (each `in/NAME.npy`).
const INPUTS: [&str; 13] = [
    "x", "y", "i", "j", "u", "b", "f", "v", "z", "e", "s", "L", "U",
];

/// Reads `cases.tsv` (id, NumPy expression, comparison) from `argv[1]`, evaluates each with
/// NumPy over the inputs, and compares with `out/ID.npy`.
const CHECK_CASES: &str = r#"
import os, sys, warnings
import numpy as np

root = sys.argv[1]
ns = {n: getattr(np, n) for n in dir(np) if not n.startswith("_")}
ns.update(np=np, numpy=np, rechunk=lambda a, chunks: a)
for name in "xyijubfvzesLU":
    ns[name] = np.load(os.path.join(root, "in", name + ".npy"))

def close(got, want, rtol):
    if got.size == 0:
        return True
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    finite = ~np.isnan(want)
    g, w = got[finite].astype(np.float64), want[finite].astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
    return bool(np.all((g == w) | (np.abs(g - w) <= rtol * np.maximum(np.abs(w), scale))))

with open(os.path.join(root, "cases.tsv")) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
for case, expr, cmp in rows:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            want = np.asarray(eval(expr, ns))
    except Exception as e:
        print(f"FAIL {case} NumPy raises {type(e).__name__}: {e}")
        continue
    got = np.load(os.path.join(root, "out", case + ".npy"))
    why = []
    if got.shape != want.shape:
        why.append(f"shape {got.shape}, NumPy {want.shape}")
    if got.dtype != want.dtype:
        why.append(f"dtype {got.dtype}, NumPy {want.dtype}")
    if not why:
        floats = want.dtype.kind in "fc"
        if cmp == "exact" or not floats:
            ok = np.array_equal(got, want, equal_nan=floats)
            if ok and floats:
                # Exact is to the sign of zero too (array_equal takes -0.0 for 0.0).
                num = ~np.isnan(want)
                ok = np.array_equal(np.signbit(got[num]), np.signbit(want[num]))
        else:
            ok = close(got, want, float(cmp))
        if not ok:
            why.append(f"values differ ({cmp}):\n    got   {got!r}\n    NumPy {want!r}")
    print((f"FAIL {case} " + "; ".join(why)) if why else f"OK {case}")
"#;

/// How a result is compared with NumPy's.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    /// Equal values (NaN equal to NaN), same shape and dtype.
    Exact,
    /// Same shape and dtype, NaN in the same places, and floats within this tolerance relative
    /// to the largest magnitude in NumPy's result (at least 1), so that an element that
    /// cancels to near zero is not held to a bound relative to itself. Integers are exact.
    Rel(f64),
}

/// Float reductions of float64.
const R64: Cmp = Cmp::Rel(1e-12);
/// Float reductions of float32.
const R32: Cmp = Cmp::Rel(1e-5);
/// Transcendental functions: NumPy's SIMD routines and Rust's libm may differ in the last bit.
const ULP: Cmp = Cmp::Rel(1e-15);

/// One row of the table: tessera's expression, NumPy's expression when it differs, comparison.
#[derive(Clone, Debug)]
struct Case {
    expr: String,
    numpy: String,
    cmp: Cmp,
}

fn case(expr: &str, cmp: Cmp) -> Case {
    Case {
        expr: expr.into(),
        numpy: expr.into(),
        cmp,
    }
}

/// A case where NumPy needs a different spelling (documented at the call).
fn case_np(expr: &str, numpy: &str, cmp: Cmp) -> Case {
    Case {
        expr: expr.into(),
        numpy: numpy.into(),
        cmp,
    }
}

/// Elementwise arithmetic, promotion, comparisons, selection and unary functions.
fn elementwise_cases() -> Vec<Case> {
    use Cmp::Exact;
    let mut v: Vec<Case> = [
        // Arithmetic, scalars on both sides.
        "x + y",
        "x - 2.5",
        "2.5 - x",
        "x * y",
        "x / y",
        "1 / y",
        "-x",
        "+x",
        "x * y - v",
        "3 - i",
        "i * 2",
        "2 * i",
        "-i",
        "abs(i)",
        "abs(x)",
        "i / 4",
        "u / 2",
        "f / 3",
        // NumPy 2 (NEP 50) weak scalars: a Python number keeps the array's dtype when it can.
        "u + 1",
        "u * 3",
        "u - 1",
        "1 - u",
        "i * 2.5",
        "u + 2.5",
        "f + 1.0",
        "f * 2",
        "2.0 * f",
        "b * 2",
        "b + 1.5",
        // Promotion between arrays.
        "i + u",
        "u + b",
        "i + b",
        "b + b",
        "b * b",
        "i + x",
        "i + f",
        "u + f",
        "f + y",
        "j - u",
        // Floor division and remainder with negatives (Python's signs).
        "i // 3",
        "i % 3",
        "i // -3",
        "i % -3",
        "i // j",
        "i % j",
        "-7 // j",
        "-7 % j",
        "x // 0.7",
        "x % 0.7",
        "x % -0.7",
        "y // -1.5",
        "y // j",
        "y % j",
        "i // 0",
        "i % 0",
        "u // 7",
        "u % 7",
        "x // 0.0",
        "x % 0.0",
        // Powers.
        "i ** 2",
        "x ** 2",
        "y ** 0.5",
        "u ** 2",
        "2 ** u",
        "f ** 2",
        "2.0 ** i",
        "x ** y",
        "j ** 3",
        // Comparisons (NaN compares false, except !=).
        "x > 0.5",
        "x == x",
        "x != x",
        "0.5 < x",
        "i <= u",
        "i == 0",
        "f < y",
        "u >= 128",
        "b == (i > 0)",
        "(x > 0) & (y < 0)",
        "(i > 0) | b",
        "~b",
        "b ^ (i > 0)",
        "logical_and(b, x > 0)",
        "logical_not(i)",
        // Selection.
        "where(isnan(x), 0, x)",
        "where(b, i, u)",
        "where(x > 0, 1, 2.5)",
        "where(b, f, 0)",
        "where(b, 1, f)",
        "where(i, x, y)",
        "where(b, x, v)",
        "clip(x, -1, 1)",
        "clip(i, -3, 3)",
        "clip(u, 10, None)",
        "clip(f, -0.5, 0.5)",
        "clip(x, None, 0)",
        // minimum / maximum propagate NaN.
        "minimum(x, y)",
        "maximum(x, 0.5)",
        "minimum(i, u)",
        "maximum(f, x)",
        "maximum(x, v)",
        // A Python int beyond an integer dtype where the operation runs in floats, and clip
        // bounds beyond the dtype on the side they bound: as NumPy 2, no OverflowError.
        "astype(i, int8) / 300",
        "astype(i, int8) / -1000",
        "300 / astype(j, int8)",
        "clip(astype(i, int8), -1000, 1000)",
        "clip(U, -1, 8)",
        "clip(u, None, 1000)",
        // Of 0.0 and -0.0 (y * 0 has y's sign), NumPy takes the second; NaN still wins.
        "minimum(y * 0, -(y * 0))",
        "maximum(y * 0, -(y * 0))",
        "minimum(-(y * 0), y * 0)",
        "maximum(x * 0, -(x * 0))",
        "clip(y * 0, -(y * 0), 1)",
        "clip(-(y * 0), -1, y * 0)",
        // A scalar bound keeps the value it equals (an array bound is taken, above).
        "clip(y * 0, 0.0, 1.0)",
        "clip(-(y * 0), -1.0, 0.0)",
        "clip(y * 0, -0.0, 1)",
        "clip(f * 0, 0, 1)",
        // Unary functions.
        "sqrt(abs(x))",
        "sqrt(i)",
        "floor(x)",
        "ceil(f)",
        "round(x)",
        "round(y * 4) / 4",
        "floor(i)",
        "sign(x)",
        "sign(i)",
        "isnan(x)",
        "isfinite(x / y)",
        "isfinite(i)",
        "negative(u)",
        "np.sqrt(abs(y))",
        "numpy.floor(f)",
        "round(arange(-2.5, 3, 0.5))",
        "round(f * 2)",
        "round(x * 1000, 2)",
        "round(y * 1000, -2)",
        "around(f * 100, decimals=1)",
        "round(i * 37, -1)",
        "round(u, 3)",
        "x.round(1)",
        "round(arange(-35, 36, 5), -1)",
        "round(u, -1)",
        "round(astype(u, int8), -1)",
        "i == 2.5",
        "maximum(i, 2.5)",
        "b + True",
        "x + True",
        "i / 0",
        "U // 0",
        "L % 0",
        "x ** 0",
        "1 ** x",
        "i ** 0",
        "-2 ** 2 + x",
        "2 ** 3 ** 2 + i",
        "x[1][2]",
        "x[..., 0]",
        "1e-3 * x + .5 - 5. + 1_0",
        "sqrt(-abs(y))",
        "log(abs(i))",
        "sum(x, axis=())",
        "var(y, ddof=30)",
        "var(y, ddof=40)",
        "any(b, axis=())",
    ]
    .iter()
    .map(|e| case(e, Exact))
    .collect();
    v.extend([
        case("exp(y)", ULP),
        case("log(abs(y))", ULP),
        case("log1p(abs(x))", ULP),
        case("expm1(y)", ULP),
        case("sin(x)", ULP),
        case("cos(y)", ULP),
        case("tan(y)", ULP),
        case("arctan2(x, y)", ULP),
        case("exp(f)", Cmp::Rel(1e-6)),
        // NumPy computes float functions of 8- and 16-bit integers in float16, tessera in
        // float32: the documented exception, so NumPy is given float32 input.
        case_np("sqrt(u)", "sqrt(u.astype(float32))", Exact),
        case_np(
            "sqrt(astype(i, int8))",
            "sqrt(astype(i, int8).astype(float32))",
            Exact,
        ),
        case_np(
            "exp(u // 50)",
            "exp((u // 50).astype(float32))",
            Cmp::Rel(1e-6),
        ),
        // int16 and uint16 are float32 in both.
        case("sqrt(astype(abs(i), int16))", Exact),
        case("log1p(astype(u, uint16))", Cmp::Rel(1e-6)),
        case("u / 2.0", Exact),
    ]);
    v
}

/// Every reduction over every kind of axis, keepdims, ddof, and the dtypes of the results.
fn reduction_cases() -> Vec<Case> {
    let mut v = Vec::new();
    let full = [
        "sum", "prod", "mean", "var", "std", "min", "max", "any", "all", "nansum", "nanprod",
        "nanmean", "nanvar", "nanstd", "nanmin", "nanmax",
    ];
    let axes = ["", ", axis=0", ", axis=-1", ", axis=(0, 1)", ", axis=None"];
    for op in full {
        for a in axes {
            v.push(case(&format!("{op}(x{a})"), R64));
        }
        v.push(case(&format!("{op}(y, axis=1, keepdims=True)"), R64));
    }
    // Scans: NumPy's additions in NumPy's order, so the bits are NumPy's.
    for e in [
        "cumsum(x, axis=0)",
        "cumsum(x, axis=-1)",
        "cumsum(x)",
        "cumprod(y, axis=1)",
        "nancumsum(x, axis=1)",
        "nancumprod(x)",
        "x.cumsum(axis=0)",
        "cumsum(rechunk(z, 7), axis=0)",
        "cumprod(rechunk(z, (13, 4)) / 2 + 0.8, axis=1)",
        "cumsum(z[::-3, 5:], axis=0)",
        "cumsum(i)",
        "cumsum(i, axis=0)",
        "cumprod(j, axis=1)",
        "cumsum(u, axis=1)",
        "cumsum(b, axis=0)",
        "cumsum(f, axis=0)",
        "nancumsum(f)",
        "cumsum(L)",
        "cumsum(e, axis=1)",
        "cumsum(s)",
        "cumsum(s, axis=0)",
        "cumprod(s, axis=-1)",
    ] {
        v.push(case(e, Cmp::Exact));
    }
    for op in ["argmin", "argmax", "nanargmin", "nanargmax"] {
        for a in ["", ", axis=0", ", axis=-1", ", axis=1"] {
            v.push(case(&format!("{op}(x{a})"), Cmp::Exact));
        }
        v.push(case(&format!("{op}(y, axis=0)"), Cmp::Exact));
    }
    for e in [
        "sum(x, axis=0, keepdims=True)",
        "nanmean(x, axis=-1, keepdims=True)",
        "max(x, axis=(0, 1), keepdims=True)",
        "var(x, keepdims=True)",
        "nansum(x, keepdims=True)",
        "any(x > 5, axis=0, keepdims=True)",
        // ddof
        "var(x, ddof=1)",
        "var(y, ddof=1)",
        "std(y, axis=0, ddof=1)",
        "nanvar(x, axis=1, ddof=1)",
        "nanstd(x, ddof=1)",
        "nanvar(x, axis=0, ddof=2, keepdims=True)",
        // Methods.
        "x.sum(axis=0)",
        "y.mean()",
        "x.var(ddof=1)",
        "y.std(axis=-1)",
        "y.argmax(axis=0)",
        "y.min(axis=1, keepdims=True)",
        // Integer, unsigned and bool inputs: NumPy's accumulator and result dtypes.
        "sum(i)",
        "sum(i, axis=0)",
        "prod(i, axis=1)",
        "prod(i)",
        "prod(u)",
        "mean(i, axis=1)",
        "var(i)",
        "std(u, axis=0)",
        "min(i, axis=0)",
        "max(u)",
        "argmax(i)",
        "argmin(u, axis=1)",
        "sum(u)",
        "sum(u, axis=-1)",
        "sum(b)",
        "sum(b, axis=0)",
        "mean(b)",
        "any(i, axis=0)",
        "all(u)",
        "all(b, axis=1)",
        "nansum(i)",
        "nanmax(u, axis=0)",
        "nanmean(i, axis=0)",
        "min(b)",
        "max(b, axis=0)",
        "sum(u + 1)",
        // Many blocks, and a row of NaN only.
        "sum(rechunk(z, 7))",
        "nansum(rechunk(z, (7, 11)), axis=0)",
        "nanmean(rechunk(z, (13, 4)), axis=1)",
        "mean(rechunk(z, 5), axis=0)",
        "nanvar(rechunk(z, (6, 9)))",
        "nanstd(rechunk(z, (1, 45)), axis=-1, ddof=1)",
        "nanmax(rechunk(z, 8), axis=1)",
        "nanmin(rechunk(z, 8), axis=1)",
        "var(rechunk(z, 7), axis=0)",
    ] {
        let cmp = if e.contains("arg") { Cmp::Exact } else { R64 };
        v.push(case(e, cmp));
    }
    // Means are NumPy's sum over the count, so NumPy's bits in one block (float32 summed in
    // float32), along any axis and with NaN skipped; integer means are exact sums over the
    // count whatever the chunks (blocks merge sums and counts, not means).
    for e in [
        "mean(y)",
        "mean(z, axis=0)",
        "mean(z, axis=1)",
        "nanmean(x, axis=0)",
        "nanmean(z, axis=0)",
        "nanmean(z)",
        "mean(f)",
        "mean(f, axis=0)",
        "nanmean(f, axis=1)",
        "mean(i)",
        "mean(rechunk(i, 1))",
        "mean(rechunk(u, (2, 3)), axis=0)",
        "nanmean(rechunk(i, (1, 4)), axis=1)",
        "mean(b)",
    ] {
        v.push(case(e, Cmp::Exact));
    }
    // float32: results stay float32.
    for e in [
        "sum(f)",
        "sum(f, axis=0)",
        "mean(f, axis=0)",
        "var(f)",
        "std(f, axis=1)",
        "nanmean(f)",
        "max(f)",
        "prod(f, axis=0)",
        "nanvar(f, axis=-1, ddof=1)",
    ] {
        v.push(case(e, R32));
    }
    v
}

/// Slicing, transposes, reshapes and joins.
fn structure_cases() -> Vec<Case> {
    [
        "x[::-1]",
        "x[::-2, ::-1]",
        "x[-2:0:-1, 1::2]",
        "x[3]",
        "x[:, -1]",
        "x[-1, -1]",
        "x[None, 1:3]",
        "x[..., ::-3]",
        "x[1:4, None, ::-2]",
        "x[10:]",
        "x[:, 4:1]",
        "i[1:4, ::-2]",
        "u[::-1, 2]",
        "x.T",
        "x.T[::-1]",
        "transpose(i)",
        "b.T",
        "reshape(x, (3, 10))",
        "x.reshape(-1)",
        "x.reshape(2, 15)",
        "reshape(i.T, (10, 3))",
        "reshape(x[::-1, 1:], (5, 5, 1))",
        "concatenate([x, y])",
        "concatenate([x, y], axis=1)",
        "concatenate([i, u], axis=-1)",
        "concatenate([x, v[None]], axis=0)",
        "concatenate([f, b])",
        "stack([x, y])",
        "stack([x, y], axis=-1)",
        "stack([i, f], axis=1)",
        "stack([u, u, u], axis=2)",
        "x[::-1].sum(axis=0)",
        "(x.T * v[:, None]).T",
        "sum(x[::2, ::-1] * y[::2, :], axis=1)",
    ]
    .iter()
    .map(|e| case(e, R64))
    .collect()
}

/// The same expressions over several chunkings of `x` (NumPy ignores `rechunk`).
fn chunking_cases() -> Vec<Case> {
    let templates = [
        ("sum({x}, axis=0)", R64),
        ("nanvar({x}, axis=1)", R64),
        ("nanmean({x})", R64),
        ("nanargmax({x}, axis=0)", Cmp::Exact),
        ("argmin({x})", Cmp::Exact),
        ("max({x}, axis=-1)", Cmp::Exact),
        ("{x}[::-2, 1:] * 2", Cmp::Exact),
        ("reshape({x}, (6, 5))", Cmp::Exact),
        ("concatenate([{x}, y], axis=1)", Cmp::Exact),
        ("{x}.T - nanmean({x}, axis=1)", R64),
        ("std(where(isnan({x}), 0, {x}), ddof=1)", R64),
        ("cumsum({x}, axis=0)", Cmp::Exact),
        ("nancumprod({x} / 2 + 1, axis=1)", Cmp::Exact),
        ("nancumsum({x})", Cmp::Exact),
    ];
    let chunkings = [
        "rechunk(x, 1)",
        "rechunk(x, 2)",
        "rechunk(x, (3, 4))",
        "rechunk(x, (5, 1))",
        "rechunk(x, ((1, 4), (2, 2, 2)))",
    ];
    let mut v = Vec::new();
    for (t, cmp) in templates {
        for c in chunkings {
            v.push(case(&t.replace("{x}", c), cmp));
        }
    }
    v
}

/// 64-bit integers at their limits, empty and 0-d arrays, casts, and the creation functions.
fn edge_cases() -> Vec<Case> {
    let mut v: Vec<Case> = [
        // int64 and uint64 at their limits: wrapping, and int64 with uint64 gives float64.
        "L + 1",
        "L - 1",
        "L * 3",
        "L // 7",
        "L % 7",
        "L // -1",
        "abs(L)",
        "-L",
        "L + U",
        "U + 1",
        "U * 2",
        "U // 7",
        "U % 1000",
        "U - 1",
        "U > 5",
        "L == 0",
        "sum(L)",
        "sum(U)",
        "max(U)",
        "min(L)",
        "argmax(U)",
        "where(U > 10, U, 3)",
        // Empty arrays.
        "e + 1",
        "e * e",
        "e.T",
        "sum(e)",
        "sum(e, axis=1)",
        "prod(e, axis=(0, 1))",
        "any(e, axis=1)",
        "all(e)",
        "max(e, axis=0)",
        "argmax(e, axis=0)",
        "e[::-1, :, 1:]",
        "reshape(e, (0, 3))",
        "concatenate([e, e], axis=1)",
        // 0-d arrays.
        "s",
        "s + x",
        "s * 2",
        "-s",
        "sum(s)",
        "s[None]",
        "reshape(s, (1, 1))",
        "stack([s, s])",
        "where(s > 1, x, y)",
        // Casts.
        "astype(y * 100, int32)",
        "astype(i, uint8)",
        "astype(i, bool)",
        "astype(b, float32)",
        "astype(x, float32)",
        "astype(u, int8)",
        "x.astype(float32)",
        "astype(f, float64)",
        "astype(L, float64)",
        "astype(U, int64)",
        // Creation.
        "arange(10)",
        "arange(2, 20, 3)",
        "arange(5, 0, -1)",
        "arange(10, dtype=int32)",
        "arange(0, 1, 0.125)",
        "arange(-1.5, 2.0, 0.5)",
        "ones((2, 3), dtype=int8)",
        "ones((2, 3))",
        "zeros((4,), dtype=bool)",
        "zeros((2, 0))",
        "full((2, 2), 7)",
        "full((3,), 2.5, dtype=float32)",
        "full((2,), True)",
        "linspace(0, 1, 5)",
        "linspace(0, 1, 1)",
        "linspace(2, 3, 0)",
        // arange as NumPy fills it: the length from the exact range, the first two values cast,
        // the rest first + i * (second - first) in the dtype.
        "arange(10**18, 10**18 + 3)",
        "arange(-2**62, -2**62 + 3)",
        "arange(9007199254740993, 9007199254740996)",
        "arange(1, 2, 0.1)",
        "arange(0, 1, 0.1)",
        "arange(0, 1, 0.1, dtype=float32)",
        "arange(0, 10, 1.5, dtype=int8)",
        "arange(1e16, 1e16 + 10)",
        "arange(250, 256, dtype=uint8)",
        "arange(255, 256, dtype=uint8)",
        "arange(3, 0, 1)",
        "arange(True)",
        "arange(2, 7, 2, dtype=float32)",
        "arange(10**17, 10**17 + 10, 0.5)",
        "arange(2**53, 2**53 + 3, 1.0)",
        "arange(-0.5, 3, dtype=int64)",
        "arange(0.5, 4.5, 1.5, dtype=uint8)",
        // NumPy 2 floors linspace for integer dtypes.
        "linspace(-1, 1, 5, dtype=int32)",
        "linspace(7, 0, 4, dtype=uint8)",
        "linspace(0, 1, 7)",
        "linspace(-3, 5, 50)",
    ]
    .iter()
    .map(|e| case(e, Cmp::Exact))
    .collect();
    v.extend([
        case("mean(e, axis=1)", R64),
        case("mean(e, axis=0)", R64),
        case("mean(s)", R64),
        case("var(b)", R64),
        case("mean(u)", R64),
    ]);
    v
}

/// Runs every case with tessera (into `out/ID.npy`) and checks them with NumPy; returns the
/// mismatches, one line each.
fn check_against_numpy(py: &Path, cases: &[Case]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    python::run_script(py, WRITE_INPUTS, &[root.join("in")]);
    let jobs: Vec<Vec<OsString>> = cases
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut args = os(&["eval", "-o", &format!("out/{k:03}.npy")]);
            for name in INPUTS {
                args.push("--in".into());
                args.push(format!("{name}=in/{name}.npy").into());
            }
            // After `--`, so that an expression such as `-x` is not taken for an option.
            args.extend(os(&["--", &c.expr]));
            args
        })
        .collect();
    let outputs = tessera_all(root, &jobs);
    let mut problems = Vec::new();
    let mut tsv = String::new();
    for (k, (c, out)) in cases.iter().zip(&outputs).enumerate() {
        if out.status.success() {
            let cmp = match c.cmp {
                Cmp::Exact => "exact".to_string(),
                Cmp::Rel(r) => format!("{r:e}"),
            };
            writeln!(tsv, "{k:03}\t{}\t{cmp}", c.numpy).unwrap();
        } else {
            problems.push(format!(
                "`{}`: tessera failed: {}",
                c.expr,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    std::fs::write(root.join("cases.tsv"), tsv).unwrap();
    let report = python::run_script(py, CHECK_CASES, &[root]);
    for line in failures(&report) {
        let k: usize = line[5..8].parse().unwrap();
        problems.push(format!("`{}`: {}", cases[k].expr, &line[9..]));
    }
    let checked = report.lines().filter(|l| l.starts_with("OK ")).count();
    assert_eq!(
        checked + problems.len(),
        cases.len(),
        "every case is checked or reported:\n{report}"
    );
    problems
}

fn assert_table(test: &str, cases: Vec<Case>, min: usize) {
    assert!(cases.len() >= min, "{} cases", cases.len());
    let Some(py) = python::python(test) else {
        return;
    };
    let problems = check_against_numpy(&py, &cases);
    assert!(
        problems.is_empty(),
        "{} of {} expressions disagree with NumPy:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}

#[test]
fn elementwise_expressions_match_numpy() {
    assert_table(
        "elementwise_expressions_match_numpy",
        elementwise_cases(),
        40,
    );
}

#[test]
fn reductions_match_numpy() {
    assert_table("reductions_match_numpy", reduction_cases(), 40);
}

#[test]
fn slicing_reshaping_and_joining_match_numpy() {
    assert_table(
        "slicing_reshaping_and_joining_match_numpy",
        structure_cases(),
        20,
    );
}

#[test]
fn results_do_not_depend_on_chunking() {
    assert_table("results_do_not_depend_on_chunking", chunking_cases(), 40);
}

#[test]
fn edge_cases_match_numpy() {
    assert_table("edge_cases_match_numpy", edge_cases(), 40);
}

// -------------------------------------------------------------------------------------------
// Errors where NumPy raises
// -------------------------------------------------------------------------------------------

/// Prints `RAISES ID <exception>` when NumPy raises on the expression of each line of
/// `errors.tsv` (id, expression), and `FAIL ID ...` when it does not.
const CHECK_RAISES: &str = r#"
import os, sys, warnings
import numpy as np

root = sys.argv[1]
ns = {n: getattr(np, n) for n in dir(np) if not n.startswith("_")}
ns.update(np=np, numpy=np, rechunk=lambda a, chunks: a)
for name in "xyijubfvzesLU":
    ns[name] = np.load(os.path.join(root, "in", name + ".npy"))
with open(os.path.join(root, "errors.tsv")) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
for case, expr in rows:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            r = eval(expr, ns)
        print(f"FAIL {case} NumPy does not raise: {np.asarray(r)!r}")
    except Exception as e:
        print(f"RAISES {case} {type(e).__name__}: {e}")
"#;

/// Checks that NumPy raises on each expression and that tessera fails the CLI way: a non-zero
/// exit, exactly one `error: ` line on stderr, no panic, no output. Returns the problems.
fn check_errors_like_numpy(py: &Path, exprs: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["in", "out"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    python::run_script(py, WRITE_INPUTS, &[root.join("in")]);
    let mut tsv = String::new();
    let jobs: Vec<Vec<OsString>> = exprs
        .iter()
        .enumerate()
        .map(|(k, e)| {
            writeln!(tsv, "{k:03}\t{e}").unwrap();
            let mut args = os(&["eval", "-o", &format!("out/{k:03}.npy")]);
            for name in INPUTS {
                args.push("--in".into());
                args.push(format!("{name}=in/{name}.npy").into());
            }
            args.extend(os(&["--", e]));
            args
        })
        .collect();
    std::fs::write(root.join("errors.tsv"), tsv).unwrap();
    let report = python::run_script(py, CHECK_RAISES, &[root]);
    let mut problems = Vec::new();
    for line in failures(&report) {
        let k: usize = line[5..8].parse().unwrap();
        problems.push(format!("`{}`: {}", exprs[k], &line[9..]));
    }
    let outputs = tessera_all(root, &jobs);
    for (k, (e, out)) in exprs.iter().zip(&outputs).enumerate() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let numpy = report
            .lines()
            .find(|l| l.starts_with(&format!("RAISES {k:03}")))
            .map_or("", |l| &l[11..]);
        let lines: Vec<&str> = stderr.lines().collect();
        let clean = !out.status.success()
            && !stderr.contains("panicked")
            && lines.len() == 1
            && lines[0].starts_with("error: ")
            && !root.join(format!("out/{k:03}.npy")).exists();
        if !clean {
            problems.push(format!(
                "`{e}`: NumPy raises {numpy}, but tessera exits with {} and\n  stdout: {}\n  stderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                stderr.trim()
            ));
        }
    }
    problems
}

fn assert_errors_like_numpy(test: &str, exprs: &[&str]) {
    let Some(py) = python::python(test) else {
        return;
    };
    let problems = check_errors_like_numpy(&py, exprs);
    assert!(
        problems.is_empty(),
        "{} of {} expressions do not fail as in NumPy:\n{}",
        problems.len(),
        exprs.len(),
        problems.join("\n")
    );
}

#[test]
fn errors_where_numpy_raises() {
    assert_errors_like_numpy(
        "errors_where_numpy_raises",
        &[
            "x + ones((4,))",
            "concatenate([x, e])",
            "concatenate([x, v])",
            "stack([x, v])",
            "stack([x, x], axis=3)",
            "reshape(x, (7, 4))",
            "reshape(x, (-1, -1))",
            "transpose(x, (0, 0))",
            "sum(x, axis=2)",
            "sum(x, axis=-3)",
            "sum(x, axis=(0, 0))",
            "sum(x, axis=(0, -2))",
            "argmax(x, axis=(0, 1))",
            "min(e)",
            "max(e, axis=1)",
            "nanmin(e, axis=1)",
            "argmin(e)",
            "nanargmax(e, axis=1)",
            "nanargmax(z, axis=1)",
            "nanargmin(z, axis=-1)",
            "x[::0]",
            "x[5]",
            "x[0, 0, 0]",
            "x[-6]",
            "b - b",
            "-b",
            "1 // 0",
            "where(x > 0, x)",
            "cumsum(x, axis=2)",
            "cumprod(x, axis=-3)",
            "round(b, 1)",
            // Python ints out of an integer dtype's range: OverflowError in NumPy 2.
            "full((2,), 300, dtype=uint8)",
            "full((2,), -1, dtype=uint16)",
            "arange(-3, 3, dtype=uint8)",
            "arange(254, 258, 2, dtype=uint8)",
            "astype(i, int8) // 300",
            "arange(127.0, 130.0, dtype=int8)",
            "arange(-1.5, 3, dtype=uint8)",
            "arange(1e20, 1e20 + 1e5, 1e4, dtype=int64)",
            "minimum(astype(i, int8), 300)",
            "clip(astype(i, int8), 1000, None)",
            "clip(u, None, -1)",
        ],
    );
}

// -------------------------------------------------------------------------------------------
// Known disagreements with NumPy (bugs in src/; see the ignore reasons)
// -------------------------------------------------------------------------------------------

#[test]
fn arg_reductions_keep_dims() {
    assert_table(
        "arg_reductions_keep_dims",
        vec![
            case("argmax(y, axis=1, keepdims=True)", Cmp::Exact),
            case("argmin(y, axis=0, keepdims=True)", Cmp::Exact),
            case("nanargmin(x, axis=-1, keepdims=True)", Cmp::Exact),
            case("nanargmax(x, keepdims=True)", Cmp::Exact),
            case("argmax(y, keepdims=True)", Cmp::Exact),
        ],
        1,
    );
}

#[test]
fn fmod_has_the_sign_of_the_dividend() {
    assert_table(
        "fmod_has_the_sign_of_the_dividend",
        vec![
            case("fmod(i, 3)", Cmp::Exact),
            case("fmod(i, -3)", Cmp::Exact),
            case("fmod(x, 0.7)", Cmp::Exact),
            case("fmod(x, -0.7)", Cmp::Exact),
        ],
        1,
    );
}

#[test]
fn bitwise_operators_on_integers() {
    assert_table(
        "bitwise_operators_on_integers",
        vec![
            case("i & 3", Cmp::Exact),
            case("i | j", Cmp::Exact),
            case("u ^ 255", Cmp::Exact),
            case("L & 7", Cmp::Exact),
            case("invert(i)", Cmp::Exact),
            case("invert(u)", Cmp::Exact),
            // Shifts: counts past the bits or negative give 0 (left) or the sign (right).
            case("i << 3", Cmp::Exact),
            case("i >> 2", Cmp::Exact),
            case("u << 3", Cmp::Exact),
            case("u >> 9", Cmp::Exact),
            case("i << j", Cmp::Exact),
            case("i >> j", Cmp::Exact),
            case("L >> 63", Cmp::Exact),
            case("L << 1", Cmp::Exact),
            case("L >> 64", Cmp::Exact),
            case("U >> 3", Cmp::Exact),
            case("left_shift(i, 40)", Cmp::Exact),
            case("right_shift(i, 40)", Cmp::Exact),
            case("b << 1", Cmp::Exact),
            case("b >> b", Cmp::Exact),
            // Python's precedence: + binds tighter than <<, << tighter than & and <.
            case("(i << 2) + 1 << 1", Cmp::Exact),
            case("i & 3 << 1", Cmp::Exact),
            case("2 < i << 1", Cmp::Exact),
            case("i + (1 << 20) - (-9 >> 1)", Cmp::Exact),
        ],
        1,
    );
}

#[test]
fn out_of_range_python_ints_compare_exactly() {
    assert_table(
        "out_of_range_python_ints_compare_exactly",
        vec![
            case("u < 300", Cmp::Exact),
            case("u == -1", Cmp::Exact),
            case("u != 256", Cmp::Exact),
            case("u > -1", Cmp::Exact),
            case("i >= 2**40", Cmp::Exact),
        ],
        1,
    );
}

#[test]
fn out_of_range_python_ints_raise() {
    assert_errors_like_numpy(
        "out_of_range_python_ints_raise",
        &[
            "u + 300",
            "u + -1",
            "u * 256",
            "minimum(u, -1)",
            "i + 2**40",
            "x << 1",
            "i << 1.5",
            "i + (1 << -1)",
            "U << L",
        ],
    );
}

#[test]
fn negative_integer_powers_raise() {
    assert_errors_like_numpy(
        "negative_integer_powers_raise",
        &["i ** -1", "j ** -2", "power(i, -1)", "L ** -3"],
    );
}

#[test]
fn nanvar_without_degrees_of_freedom_is_nan() {
    assert_table(
        "nanvar_without_degrees_of_freedom_is_nan",
        vec![
            case("nanvar(x, axis=0, ddof=5)", R64),
            case("nanstd(x, axis=0, ddof=4)", R64),
            case("nanvar(x, ddof=30)", R64),
        ],
        1,
    );
}

// -------------------------------------------------------------------------------------------
// Precision
// -------------------------------------------------------------------------------------------

const WRITE_OFFSET: &str = r#"
import sys
import numpy as np

v = 1e8 + np.tile([1.0, 2.0, 3.0], 10000)
np.save(sys.argv[1], v)
print(repr(float(np.var(v))), repr(float(np.std(v))))
"#;

/// `var` of values with a large common offset, over 4286 blocks of 7: a naive
/// `E[x^2] - E[x]^2` would lose every digit; the exact answer is 2/3.
#[test]
fn variance_with_a_large_offset_is_precise() {
    let Some(py) = python::python("variance_with_a_large_offset_is_precise") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("v.npy");
    let numpy = python::run_script(&py, WRITE_OFFSET, &[&path]);
    let numpy: Vec<f64> = numpy
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let exact_var: f64 = 2.0 / 3.0;
    let exact_std = exact_var.sqrt();
    assert!(
        (numpy[0] - exact_var).abs() < 1e-9,
        "NumPy var {}",
        numpy[0]
    );
    assert!(
        (numpy[1] - exact_std).abs() < 1e-9,
        "NumPy std {}",
        numpy[1]
    );

    for (expr, exact) in [
        ("var(rechunk(v, 7))", exact_var),
        ("nanvar(rechunk(v, 7))", exact_var),
        ("std(rechunk(v, 7))", exact_std),
        ("var(rechunk(v, 7), ddof=0)", exact_var),
        ("var(rechunk(v, 7), axis=0)", exact_var),
        ("var(rechunk(v, 7), split_every=2)", exact_var),
        ("var(rechunk(v, 1000))", exact_var),
    ] {
        let out = tessera(
            dir.path(),
            &os(&["eval", expr, "--in", &format!("v={}", path.display())]),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{expr}: {out:?}");
        let got: f64 = stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{expr}: {stdout:?}: {e}"));
        assert!(
            (got - exact).abs() < 1e-9,
            "{expr} = {got:e}, want {exact:e} (NumPy {})",
            if exact == exact_var {
                numpy[0]
            } else {
                numpy[1]
            }
        );
    }
}

/// `tessera eval` prints a float64 as Python's `repr` does and a float32 as NumPy's `str`
/// does, digit for digit, over values of every magnitude and the special ones.
/// `tessera eval x --in x=NAME.npy` for each name, its output kept as `NAME.txt` in `root`.
fn print_each(root: &Path, names: &[&str]) {
    for name in names {
        let out = tessera(root, &["eval", "x", "--in", &format!("x={name}.npy")]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(root.join(format!("{name}.txt")), &out.stdout).unwrap();
    }
}

#[test]
fn printed_floats_match_python_and_numpy() {
    let Some(py) = python::python("printed_floats_match_python_and_numpy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    python::run_script(
        &py,
        r#"
import sys, warnings, numpy as np
warnings.simplefilter("ignore")
rng = np.random.default_rng(3)
v = np.concatenate([
    rng.standard_normal(400) * 10.0 ** rng.integers(-40, 40, 400),
    10.0 ** np.arange(-8, 20), 2.0 ** np.arange(-30, 60, 3),
    [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, 1e15,
     9999999999999998.0, 123456.0, 999999.94, 1e-4, 0.00012, 1e6],
])
np.save(sys.argv[1] + "/f64.npy", v)
np.save(sys.argv[1] + "/f32.npy", v.astype(np.float32))
"#,
        &[root],
    );
    print_each(root, &["f64", "f32"]);
    let report = python::run_script(
        &py,
        r#"
import sys, numpy as np
root = sys.argv[1]
for name, show in (("f64", repr), ("f32", str)):
    v = np.load(f"{root}/{name}.npy")
    want = [show(x if name == "f32" else float(x)) for x in v]
    got = open(f"{root}/{name}.txt").read().strip().strip("[]").split(", ")
    bad = [(g, w) for g, w in zip(got, want) if g != w]
    if len(got) != len(want) or bad:
        print(f"FAIL {name}: {len(got)} printed for {len(want)}; differ (tessera, NumPy): {bad[:10]}")
    else:
        print(f"OK {name} {len(got)}")
"#,
        &[root],
    );
    let bad = failures(&report);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count(),
        2,
        "{report}"
    );
}

#[test]
fn printed_arrays_match_numpy() {
    // `eval` prints an array as NumPy's `array2string(a, separator=", ")` with Python's `repr`
    // of each element (NumPy's `str` for float32) and no line wrapping: the same nesting,
    // blank lines, summary of arrays above 1000 elements (3 items at each end of a long axis)
    // and `[]` for an empty array.
    let Some(py) = python::python("printed_arrays_match_numpy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let listing = python::run_script(
        &py,
        r#"
import sys, numpy as np
root = sys.argv[1]
rng = np.random.default_rng(5)
arrays = {
    "a1000": np.arange(1000.0), "a1001": np.arange(1001.0), "a2000": np.arange(2000),
    "m40x50": np.arange(2000.0).reshape(40, 50) / 7, "c2x3x4": np.arange(24).reshape(2, 3, 4),
    "c10x10x30": np.arange(3000).reshape(10, 10, 30) - 1500, "t7x1x1": np.arange(7.0).reshape(7, 1, 1),
    "w1x1x1001": np.arange(1001.0).reshape(1, 1, 1001), "e3x0": np.zeros((3, 0)), "e0": np.zeros(0),
    "s10x200": rng.standard_normal((10, 200)).astype(np.float32), "b40x30": rng.random((40, 30)) < 0.5,
    "u2x3": np.arange(6, dtype=np.uint8).reshape(2, 3), "r4x5x6x7": rng.standard_normal((4, 5, 6, 7)),
    "n5": np.array([np.nan, -0.0, np.inf, 1e-5, 3e6]),
}
for name, a in arrays.items():
    np.save(f"{root}/{name}.npy", a)
    print(name)
"#,
        &[root],
    );
    let names: Vec<&str> = listing.lines().map(str::trim).collect();
    assert_eq!(names.len(), 15, "{listing}");
    print_each(root, &names);
    let report = python::run_script(
        &py,
        r#"
import sys, glob, os, numpy as np
root = sys.argv[1]
for path in sorted(glob.glob(f"{root}/*.npy")):
    name = os.path.basename(path)[:-4]
    a = np.load(path)
    show = str if a.dtype == np.float32 else (lambda x: repr(x.item()))
    want = np.array2string(a, separator=", ", formatter={"all": show}, max_line_width=sys.maxsize)
    got = open(f"{root}/{name}.txt").read().rstrip("\n")
    if got != want:
        print(f"FAIL {name}: tessera printed\n{got[:800]}\nNumPy\n{want[:800]}")
    else:
        print(f"OK {name}")
"#,
        &[root],
    );
    let bad = failures(&report);
    assert!(bad.is_empty(), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("OK ")).count(),
        15,
        "{report}"
    );
}
