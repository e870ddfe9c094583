//! The `tessera` command line: its error convention and its good paths.
//!
//! Every bad input gives exactly one line starting with `error: ` on stderr (a parse error adds
//! the source and a caret under the culprit), a non-zero exit, no panic, nothing on stdout and
//! nothing written next to the inputs. The good paths are checked by reading the `.npy` files
//! the binary writes back with ndarray-npy.

use ndarray::ArrayD;
use ndarray_npy::{read_npy, write_npy};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

/// What a run of the binary gave.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(TESSERA);
    c.args(args)
        .current_dir(dir)
        .env_remove("TESSERA_ALLOWED_MEM")
        .env_remove("TESSERA_THREADS");
    c
}

/// Runs `tessera ARGS` in `dir`.
fn run(dir: &Path, args: &[&str]) -> Run {
    let out = command(dir, args)
        .output()
        .expect("cannot run the tessera binary");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `tessera ARGS` in `dir`, killing it and failing the test if it takes longer than
/// `limit`.
fn run_within(dir: &Path, args: &[&str], limit: Duration) -> Run {
    let mut child = command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the tessera binary");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tessera {args:?} still runs after {limit:?}: it computed the expression");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The names in `dir`.
fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Checks the error convention on a finished run and returns the error line.
#[track_caller]
fn assert_error(r: &Run, needles: &[&str]) -> String {
    assert!(!r.status.success(), "expected a failure, got {r:#?}");
    assert_eq!(r.status.code(), Some(1), "exit code; {r:#?}");
    assert!(!r.stderr.contains("panicked"), "a panic: {r:#?}");
    assert!(r.stdout.is_empty(), "nothing on stdout: {r:#?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {r:#?}");
    assert!(lines[0].starts_with("error: "), "{r:#?}");
    for n in needles {
        assert!(
            lines[0].contains(n),
            "the error should mention {n:?}: {}",
            lines[0]
        );
    }
    lines[0].to_string()
}

/// Runs `tessera ARGS` in `dir`, expects the error convention with `needles` in the message,
/// and checks that nothing was written in `dir`.
#[track_caller]
fn fails(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let before = listing(dir);
    let r = run(dir, args);
    let line = assert_error(&r, needles);
    assert_eq!(listing(dir), before, "tessera {args:?} wrote something");
    line
}

/// Runs `tessera ARGS` in `dir` and expects success; returns stdout.
#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let r = run(dir, args);
    assert!(
        r.status.success() && !r.stderr.contains("panicked"),
        "tessera {args:?}: {r:#?}"
    );
    r.stdout
}

/// `0, 1, ..., 11` as a 3x4 float64 array, written in Fortran order as `F.npy` in `dir`.
fn write_f(dir: &Path) {
    let a = ndarray::Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64);
    let f = a.t().as_standard_layout().into_owned().reversed_axes();
    assert!(f.t().is_standard_layout());
    write_npy(dir.join("F.npy"), &f).unwrap();
    let raw = std::fs::read(dir.join("F.npy")).unwrap();
    assert!(String::from_utf8_lossy(&raw[..128]).contains("'fortran_order': True"));
}

/// A `.npy` file built by hand (format 1.0): the header with `descr`, then `data`.
fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// The header of a `.npy` file: descr, fortran_order, shape.
fn header(path: &Path) -> (String, bool, Vec<usize>) {
    let raw = std::fs::read(path).unwrap();
    assert_eq!(&raw[..6], b"\x93NUMPY", "magic of {}", path.display());
    let (len, start) = if raw[6] == 1 {
        (usize::from(u16::from_le_bytes([raw[8], raw[9]])), 10)
    } else {
        (
            u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize,
            12,
        )
    };
    assert_eq!((start + len) % 64, 0, "the data is 64-byte aligned");
    let h = String::from_utf8(raw[start..start + len].to_vec()).unwrap();
    assert!(h.ends_with('\n'), "{h:?}");
    let after =
        |key: &str| &h[h.find(key).unwrap_or_else(|| panic!("{key} in {h:?}")) + key.len()..];
    let d = after("'descr': '");
    let descr = d[..d.find('\'').unwrap()].to_string();
    let fortran = after("'fortran_order': ").starts_with("True");
    let s = after("'shape': (");
    let shape = s[..s.find(')').unwrap()]
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect();
    (descr, fortran, shape)
}

/// A `.npy` file's descr, shape and values (as `f64`, in C order), read with ndarray-npy.
fn read_values(path: &Path) -> (String, Vec<usize>, Vec<f64>) {
    fn values<T: ndarray_npy::ReadableElement + Copy>(
        path: &Path,
        f: impl Fn(T) -> f64,
    ) -> (Vec<usize>, Vec<f64>) {
        let a: ArrayD<T> = read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (a.shape().to_vec(), a.iter().map(|&v| f(v)).collect())
    }
    let (descr, _, _) = header(path);
    let (shape, v) = match descr.as_str() {
        "<f8" => values::<f64>(path, |v| v),
        "<f4" => values::<f32>(path, f64::from),
        "<i8" => values::<i64>(path, |v| v as f64),
        "<i4" => values::<i32>(path, f64::from),
        "<i2" => values::<i16>(path, f64::from),
        "|i1" => values::<i8>(path, f64::from),
        "<u8" => values::<u64>(path, |v| v as f64),
        "<u4" => values::<u32>(path, f64::from),
        "<u2" => values::<u16>(path, f64::from),
        "|u1" => values::<u8>(path, f64::from),
        "|b1" => values::<bool>(path, |v| f64::from(u8::from(v))),
        other => panic!("unexpected descr {other}"),
    };
    (descr, shape, v)
}

fn iota(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

// -------------------------------------------------------------------------------------------
// Errors
// -------------------------------------------------------------------------------------------

#[test]
fn axis_out_of_range_names_the_axis_and_ndim() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    let args = ["eval", "sum(x, axis=5)", "--in", "x=F.npy", "-o", "out.npy"];
    fails(d, &args, &["axis 5", "2 dimension"]);
    fails(
        d,
        &["eval", "x.mean(axis=-3)", "--in", "x=F.npy"],
        &["axis -3", "2 dimension"],
    );
    fails(
        d,
        &["eval", "argmax(x, axis=2)", "--in", "x=F.npy"],
        &["axis 2", "2 dimension"],
    );
    fails(
        d,
        &["eval", "concatenate([x, x], axis=2)", "--in", "x=F.npy"],
        &["axis 2", "2 dimension"],
    );
}

#[test]
fn shapes_that_do_not_broadcast_name_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails(
        d,
        &["eval", "ones((3,4)) + ones((5,))", "-o", "out.npy"],
        &["[3, 4]", "[5]", "broadcast"],
    );
    fails(
        d,
        &["eval", "where(ones((2, 3)) > 0, ones((4, 1, 2)), 0)"],
        &["broadcast"],
    );
}

#[test]
fn unknown_name_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    fails(d, &["eval", "y + 1"], &["'y'"]);
    fails(d, &["eval", "x + y", "--in", "x=F.npy"], &["'y'", "x"]);
    fails(
        d,
        &["eval", "x.frobnicate()", "--in", "x=F.npy"],
        &["'frobnicate'"],
    );
    fails(
        d,
        &["eval", "frobnicate(x)", "--in", "x=F.npy"],
        &["'frobnicate'"],
    );
}

#[test]
fn parse_error_shows_the_column_and_a_caret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (expr, col) in [
        ("1 + * 2", 5),
        ("sum(x", 4),
        ("x +", 4),
        ("1 2", 3),
        ("x[1:2", 2),
        ("ones((3,), chunks=)", 19),
    ] {
        let before = listing(d);
        let r = run(d, &["eval", expr, "-o", "out.npy"]);
        assert!(!r.status.success(), "{expr}: {r:#?}");
        assert_eq!(r.status.code(), Some(1));
        assert!(!r.stderr.contains("panicked"), "{r:#?}");
        assert!(r.stdout.is_empty(), "{r:#?}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "error, source, caret: {r:#?}");
        assert!(lines[0].starts_with("error: "), "{r:#?}");
        assert!(
            lines[0].contains(&format!("column {col}")),
            "{expr}: want column {col}: {}",
            lines[0]
        );
        assert_eq!(lines[1], expr);
        assert_eq!(lines[2], format!("{}^", " ".repeat(col - 1)), "{expr}");
        assert_eq!(listing(d), before);
    }
}

#[test]
fn chunk_size_zero_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails(
        d,
        &["eval", "ones((10,), chunks=0)", "-o", "out.npy"],
        &["chunk"],
    );
    fails(d, &["eval", "rechunk(ones((10,)), 0)"], &["chunk"]);
    fails(d, &["eval", "ones((10,), chunks=-2)"], &["chunk", "-2"]);
}

/// A boolean scalar index is a mask in NumPy (`x[True]` adds an axis), not the integer 1:
/// refused, never read as a row. A negative seed is refused too.
#[test]
fn boolean_scalar_indices_and_negative_seeds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for expr in ["arange(6).reshape((2, 3))[True]", "arange(6)[..., False]"] {
        fails(d, &["eval", expr], &["boolean index", "mask"]);
    }
    // A negative seed is refused, as NumPy's generators refuse it.
    fails(d, &["eval", "random((3,), seed=-1)"], &["seed", ">= 0"]);
    // As slice bounds, bools are integers (Python's operator.index).
    let out = ok(d, &["eval", "arange(6)[True:]"]);
    assert!(out.contains("[1, 2, 3, 4, 5]"), "{out}");
}

#[test]
fn unsupported_dtypes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two `<U5` strings, "ab" and "cde", as UCS-4.
    let mut text = Vec::new();
    for s in ["ab", "cde"] {
        let mut chars: Vec<u32> = s.chars().map(u32::from).collect();
        chars.resize(5, 0);
        for c in chars {
            text.extend(c.to_le_bytes());
        }
    }
    std::fs::write(d.join("s.npy"), npy_bytes("<U5", false, "(2,)", &text)).unwrap();
    std::fs::write(d.join("c.npy"), npy_bytes("<c16", false, "(3,)", &[0; 48])).unwrap();
    std::fs::write(d.join("o.npy"), npy_bytes("|O", false, "(1,)", &[0; 8])).unwrap();
    std::fs::write(d.join("h.npy"), npy_bytes("<f2", false, "(2,)", &[0; 4])).unwrap();
    fails(
        d,
        &["eval", "x", "--in", "x=s.npy", "-o", "out.npy"],
        &["s.npy", "<U5"],
    );
    fails(d, &["info", "s.npy"], &["s.npy", "<U5"]);
    fails(
        d,
        &["eval", "x + 1", "--in", "x=c.npy", "-o", "out.npy"],
        &["c.npy", "<c16", "complex"],
    );
    fails(d, &["info", "c.npy"], &["c.npy", "complex"]);
    fails(d, &["eval", "x", "--in", "x=o.npy"], &["o.npy", "|O"]);
    fails(d, &["eval", "x", "--in", "x=h.npy"], &["h.npy", "<f2"]);
}

#[test]
fn truncated_and_garbage_npy_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    let good = std::fs::read(d.join("F.npy")).unwrap();
    std::fs::write(d.join("t.npy"), &good[..good.len() - 10]).unwrap();
    std::fs::write(d.join("x.npy"), b"this is not an array, just some text\n").unwrap();
    std::fs::write(d.join("empty.npy"), b"").unwrap();
    std::fs::write(d.join("magic.npy"), b"\x93NUM").unwrap();
    std::fs::write(d.join("header.npy"), &good[..40]).unwrap();
    let mut bad_header = npy_bytes("<f8", false, "(2,", &[0; 16]);
    bad_header[20] = b'!';
    std::fs::write(d.join("dict.npy"), bad_header).unwrap();

    fails(
        d,
        &["eval", "x", "--in", "x=t.npy", "-o", "out.npy"],
        &["t.npy", "truncated"],
    );
    fails(d, &["info", "t.npy"], &["t.npy", "truncated"]);
    fails(
        d,
        &["eval", "x", "--in", "x=x.npy", "-o", "out.npy"],
        &["x.npy", "not a .npy file"],
    );
    fails(d, &["info", "x.npy"], &["x.npy"]);
    for f in ["empty.npy", "magic.npy", "header.npy", "dict.npy"] {
        fails(d, &["eval", "x", "--in", &format!("x={f}")], &[f]);
    }
}

#[test]
fn memory_limit_smaller_than_one_block() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = fails(
        d,
        &[
            "--mem",
            "1KiB",
            "eval",
            "ones((1000, 1000)) * 2.0",
            "-o",
            "out.npy",
        ],
        &["limit", "1.0 KiB"],
    );
    assert!(line.contains("MiB"), "the projected size: {line}");
    // --mem is global: after the subcommand too, and when printing.
    fails(
        d,
        &["eval", "sum(ones((1000, 1000)) * 2.0)", "--mem", "1KiB"],
        &["limit", "1.0 KiB"],
    );
}

#[test]
fn existing_output_is_kept_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = ndarray::arr1(&[1.5f64, 2.5, 3.5]).into_dyn();
    write_npy(d.join("out.npy"), &old).unwrap();
    let bytes = std::fs::read(d.join("out.npy")).unwrap();

    let line = fails(
        d,
        &["eval", "arange(4)", "-o", "out.npy"],
        &["out.npy", "exists", "--overwrite"],
    );
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read(d.join("out.npy")).unwrap(), bytes);

    // The output is checked before anything runs: a plan that cannot fit the memory limit
    // would fail with the limit if it were computed first...
    fails(
        d,
        &[
            "--mem",
            "1KiB",
            "eval",
            "ones((1000, 1000)) * 2.0",
            "-o",
            "out.npy",
        ],
        &["already exists"],
    );
    // ...and a sum over 4e8 elements, which takes minutes, fails at once.
    let r = run_within(
        d,
        &[
            "eval",
            "sum(ones((20000, 20000), chunks=4000))",
            "-o",
            "out.npy",
        ],
        Duration::from_secs(10),
    );
    assert_error(&r, &["already exists"]);
    assert_eq!(std::fs::read(d.join("out.npy")).unwrap(), bytes);

    // With --overwrite, the file is replaced.
    let stdout = ok(d, &["eval", "arange(4)", "-o", "out.npy", "--overwrite"]);
    assert!(stdout.contains("wrote int64 [4]"), "{stdout}");
    let (descr, shape, v) = read_values(&d.join("out.npy"));
    assert_eq!(
        (descr.as_str(), shape, v),
        ("<i8", vec![4], vec![0.0, 1.0, 2.0, 3.0])
    );
}

/// `--overwrite` replaces a Zarr array, never a group and the arrays in it; an array goes
/// into a group in the group's format (or is refused in the other one); a level needs a codec
/// that compresses.
#[test]
fn zarr_groups_are_kept_and_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(
        d.join("x.npy"),
        &ndarray::arr1(&[1.0f64, 2.0, 3.0]).into_dyn(),
    )
    .unwrap();
    let exists = |p: &str| d.join(p).exists();

    // A v2 group holding an array, and a group below it with another.
    ok(d, &["convert", "x.npy", "g.zarr/a", "--zarr-format", "2"]);
    ok(
        d,
        &["convert", "x.npy", "g.zarr/sub/b", "--zarr-format", "2"],
    );
    assert!(exists("g.zarr/.zgroup") && exists("g.zarr/sub/.zgroup"));
    for group in ["g.zarr", "g.zarr/sub"] {
        fails(
            d,
            &["convert", "x.npy", group, "--overwrite"],
            &[group, "is a Zarr group", "never a group"],
        );
    }
    assert!(exists("g.zarr/a/.zarray") && exists("g.zarr/sub/b/.zarray"));

    // Without --zarr-format, a new array follows its group: v2 here ...
    ok(d, &["convert", "x.npy", "g.zarr/sub/c"]);
    assert!(exists("g.zarr/sub/c/.zarray") && !exists("g.zarr/sub/c/zarr.json"));
    // ... and v3 where nothing says otherwise.
    ok(d, &["convert", "x.npy", "h.zarr/a"]);
    assert!(exists("h.zarr/zarr.json") && exists("h.zarr/a/zarr.json"));
    // Asked for the other format, it is refused before anything is written.
    fails(
        d,
        &["convert", "x.npy", "g.zarr/d", "--zarr-format", "3"],
        &["g.zarr/d", "Zarr v2 group", "--zarr-format 2"],
    );
    fails(
        d,
        &["convert", "x.npy", "h.zarr/e", "--zarr-format", "2"],
        &["h.zarr/e", "Zarr v3 group", "--zarr-format 3"],
    );
    assert!(!exists("g.zarr/d") && !exists("h.zarr/e"));
    // A group with both a v3 zarr.json and a v2 .zgroup is v3, as zarr-python opens it: a new
    // array goes in as v3 (where zarr-python lists it), and v2 is the format refused.
    std::fs::write(d.join("h.zarr/.zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    ok(d, &["convert", "x.npy", "h.zarr/both"]);
    assert!(exists("h.zarr/both/zarr.json") && !exists("h.zarr/both/.zarray"));
    fails(
        d,
        &["convert", "x.npy", "h.zarr/v2", "--zarr-format", "2"],
        &["h.zarr/v2", "Zarr v3 group", "--zarr-format 3"],
    );
    fails(
        d,
        &["convert", "x.npy", "h.zarr", "--overwrite"],
        &["h.zarr", "is a Zarr group"],
    );
    std::fs::remove_file(d.join("h.zarr/.zgroup")).unwrap();
    // A group where an array is read is named as one, with an array to read instead.
    fails(
        d,
        &["info", "g.zarr"],
        &["g.zarr is a Zarr group", "(as g.zarr/a)"],
    );
    fails(
        d,
        &["convert", "h.zarr", "o.npy"],
        &["h.zarr is a Zarr group", "(as h.zarr/a)"],
    );
    // A group holding arrays only in its subgroups: the error names one.
    ok(d, &["convert", "x.npy", "deep.zarr/sub/inner/b"]);
    fails(
        d,
        &["verify", "deep.zarr"],
        &["no arrays directly", "as deep.zarr/sub/inner/b"],
    );
    fails(
        d,
        &["info", "deep.zarr/sub"],
        &[
            "deep.zarr/sub is a Zarr group",
            "(as deep.zarr/sub/inner/b)",
        ],
    );
    // Replacing an array in a group keeps the group's format and its other arrays.
    ok(d, &["convert", "x.npy", "g.zarr/a", "--overwrite"]);
    assert!(exists("g.zarr/a/.zarray") && exists("g.zarr/sub/b/.zarray"));

    for (out, needles) in [
        ("n.zarr", ["level 3", "codec none"]),
        ("n.h5:/d", ["level 3", "without compression"]),
        ("n.npy", ["never compressed", "--level"]),
    ] {
        let mut args = vec!["convert", "x.npy", out, "--level", "3"];
        if out.ends_with(".zarr") {
            args.extend(["--codec", "none"]);
        }
        if out.contains(".h5") && !cfg!(feature = "hdf5") {
            continue;
        }
        fails(d, &args, &needles);
    }
}

/// A `.npy` output on a disk without room for it is an error naming the output, not a bus
/// error from its memory map, and leaves nothing behind. Needs a small tmpfs: skipped where
/// this process may not mount one (not root).
#[test]
#[cfg(target_os = "linux")]
fn a_full_disk_is_an_error_not_a_crash() {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let small = d.join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1M", "tmpfs"])
        .arg(&small)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let _unmount = Unmount(small.clone());
    write_npy(
        d.join("x.npy"),
        &ndarray::Array1::<f64>::ones(300_000).into_dyn(),
    )
    .unwrap();
    for (args, out) in [
        (&["convert", "x.npy", "small/c.npy"][..], "small/c.npy"),
        (
            &["eval", "x * 2", "--in", "x=x.npy", "-o", "small/e.npy"][..],
            "small/e.npy",
        ),
        (
            &["cdist", "x.npy", "x.npy", "-o", "small/d.npy"][..],
            "small/d.npy",
        ),
    ] {
        if args[0] == "cdist" {
            // 600 x 500 points: a 2.3 MiB matrix.
            write_npy(
                d.join("x.npy"),
                &ndarray::Array2::<f64>::ones((600, 500)).into_dyn(),
            )
            .unwrap();
        }
        fails(d, args, &[out, "No space left"]);
        assert!(
            listing(&small).is_empty(),
            "{args:?} left {:?}",
            listing(&small)
        );
    }
    // A compressed HDF5 dataset: the error names the dataset asked for, not the hidden name
    // it is written under until it is complete.
    #[cfg(feature = "hdf5")]
    {
        let mut state = 7u64;
        let noise = ndarray::Array2::<f64>::from_shape_fn((400, 1000), |_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64
        });
        write_npy(d.join("noise.npy"), &noise.into_dyn()).unwrap();
        let args = ["convert", "noise.npy", "small/o.h5:/g/x", "--codec", "gzip"];
        let err = fails(
            d,
            &args,
            &["small/o.h5: /g/x: writing the chunk", "No space left"],
        );
        assert!(!err.contains("tessera-partial"), "{err}");
        assert!(listing(&small).is_empty(), "left {:?}", listing(&small));
        // A disk too full for the library to create the file leaves nothing either.
        std::fs::write(small.join("filler"), vec![0u8; 1 << 20]).ok();
        fails(
            d,
            &["eval", "ones((4, 4))", "-o", "small/n.h5:/x"],
            &["small/n.h5", "cannot create the file", "No space left"],
        );
        let only_filler = BTreeSet::from(["filler".to_string()]);
        assert_eq!(listing(&small), only_filler, "left {:?}", listing(&small));
    }
}

#[test]
#[cfg(feature = "hdf5")]
fn hdf5_bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    std::fs::write(d.join("garbage.h5"), b"not hdf5 at all").unwrap();
    ok(d, &["convert", "F.npy", "a.h5:/g/x"]);
    fails(
        d,
        &["eval", "x", "--in", "x=missing.h5:/x"],
        &["missing.h5", "no such HDF5 file"],
    );
    fails(
        d,
        &["eval", "x", "--in", "x=a.h5:/nope"],
        &["a.h5", "no dataset /nope"],
    );
    fails(
        d,
        &["eval", "x", "--in", "x=garbage.h5:/x"],
        &["garbage.h5", "not a readable HDF5 file"],
    );
    fails(d, &["eval", "x", "--in", "x=a.h5"], &["name the dataset"]);
    fails(d, &["convert", "F.npy", "a.h5:/g/x"], &["already exists"]);
    fails(
        d,
        &["convert", "a.h5:/g/x", "a.h5:/g/y"],
        &[
            "a.h5:/g/y overlaps the input a.h5:/g/x",
            "HDF5 cannot open a file",
        ],
    );
    fails(
        d,
        &["convert", "F.npy", "b.h5:/x", "--codec", "zstd"],
        &["not available for HDF5"],
    );
    // The root group is not a dataset: refused, not written as /data.
    for root in ["b.h5:/", "b.h5://"] {
        fails(
            d,
            &["convert", "F.npy", root],
            &["b.h5", "root group", "name a dataset"],
        );
    }
    assert!(!d.join("b.h5").exists());
}

#[test]
fn a_zarr_output_cannot_replace_its_own_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    ok(d, &["convert", "F.npy", "a.zarr"]);
    let before = listing(&d.join("a.zarr"));
    for args in [
        &["convert", "a.zarr", "a.zarr", "--overwrite"][..],
        &[
            "eval",
            "x + 1",
            "--in",
            "x=a.zarr",
            "-o",
            "./a.zarr",
            "--overwrite",
        ],
    ] {
        fails(d, args, &["overlaps the input", "one holds the other"]);
    }
    assert_eq!(listing(&d.join("a.zarr")), before);
    // In one store: a node and what it holds overlap; nodes beside each other do not.
    ok(d, &["convert", "F.npy", "s.zarr/g/a"]);
    for out in ["s.zarr", "s.zarr/g", "s.zarr/g/a"] {
        fails(
            d,
            &[
                "eval",
                "x + 1",
                "--in",
                "x=s.zarr/g/a",
                "-o",
                out,
                "--overwrite",
            ],
            &["overlaps the input s.zarr/g/a"],
        );
    }
    ok(
        d,
        &["eval", "x + 1", "--in", "x=s.zarr/g/a", "-o", "s.zarr/g/b"],
    );
    ok(
        d,
        &["eval", "x * 2", "--in", "x=s.zarr/g/b", "-o", "s.zarr/h"],
    );
    // Other names of one node: through a symbolic link inside the store, or to the store. A
    // group named like a store, and a file inside the store replaced: the output holds them.
    std::os::unix::fs::symlink("g", d.join("s.zarr/lg")).unwrap();
    std::os::unix::fs::symlink("s.zarr", d.join("link.zarr")).unwrap();
    ok(d, &["convert", "F.npy", "t.zarr/in.zarr/a"]);
    std::fs::copy(d.join("F.npy"), d.join("s.zarr/F.npy")).unwrap();
    for (input, out) in [
        ("s.zarr/lg/a", "s.zarr/g/a"),
        ("s.zarr/g/a", "link.zarr/g"),
        ("t.zarr/in.zarr/a", "t.zarr/in.zarr"),
        ("s.zarr/F.npy", "s.zarr"),
        ("s.zarr/g/a", "new.zarr/../s.zarr"),
    ] {
        let x = format!("x={input}");
        let eval = ["eval", "x + 1", "--in", &x, "-o", out, "--overwrite"];
        fails(
            d,
            &eval,
            &[&format!("overlaps the input {input}"), "one holds"],
        );
    }
    let a: ArrayD<f64> = read_npy(d.join("F.npy")).unwrap();
    ok(d, &["convert", "s.zarr/h", "h.npy"]);
    let h: ArrayD<f64> = read_npy(d.join("h.npy")).unwrap();
    assert_eq!(h, (a + 1.0) * 2.0);
}

#[test]
fn bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["eval", "x", "--in", "x=missing.npy", "-o", "out.npy"],
            &["missing.npy", "no such .npy file"],
        ),
        (&["info", "missing.npy"], &["missing.npy"]),
        (
            &["eval", "x", "--in", "F.npy", "-o", "out.npy"],
            &["--in F.npy", "NAME=PATH"],
        ),
        (&["eval", "x", "--in", "=F.npy"], &["not a valid name"]),
        (
            &["eval", "x", "--in", "2x=F.npy"],
            &["\"2x\"", "not a valid name"],
        ),
        (
            &["eval", "x", "--in", "x=F.npy", "--in", "x=F.npy"],
            &["x", "twice"],
        ),
        (&["--threads", "0", "eval", "1"], &["--threads"]),
        (
            &["--threads", "9223372036854775808", "eval", "1"],
            &["--threads 9223372036854775808", "1 to 4096"],
        ),
        (
            &["eval", "ones((3,))", "--threads", "0", "-o", "out.npy"],
            &["--threads"],
        ),
        (&["--mem", "lots", "eval", "1"], &["invalid size", "lots"]),
        (&["--mem", "0", "eval", "1"], &["invalid size"]),
        (&["--mem", "12XB", "eval", "1"], &["invalid size", "12XB"]),
        (
            &["eval", "x", "--in", "x=data.csv"],
            &["data.csv", "format"],
        ),
        (
            &["eval", "x", "--in", "x=F.npy", "-o", "out.txt"],
            &["out.txt", "format"],
        ),
        (
            &["eval", "x", "--in", "x=F.npy", "-o", "nodir/out.npy"],
            &["nodir", "does not exist"],
        ),
        (&["eval", "x", "--in", "x=data.h5"], &["data.h5:/"]),
        (
            &["eval", "x.sum", "--in", "x=F.npy", "-o", "out.npy"],
            &["function"],
        ),
        (
            &["eval", "(x, 1)", "--in", "x=F.npy", "-o", "out.npy"],
            &["tuple"],
        ),
        (&["eval", "1 // 0"], &["division"]),
        (&["eval", "x[5]", "--in", "x=F.npy"], &["index 5", "size 3"]),
        (
            &["eval", "reshape(x, (5,))", "--in", "x=F.npy"],
            &["[3, 4]", "[5]"],
        ),
        (&["eval", "sum(x, axs=1)", "--in", "x=F.npy"], &["'axs'"]),
        (
            &["eval", "astype(x, float16)", "--in", "x=F.npy"],
            &["float16"],
        ),
        (
            &["eval", "x @ x", "--in", "x=F.npy"],
            &["not supported yet"],
        ),
        (&["eval", "random((3,), seed=1, dtype=int32)"], &["int32"]),
        (
            &["eval", "arange(3).astype('abc')"],
            &["'abc' is not a dtype"],
        ),
    ];
    for (args, needles) in cases {
        fails(d, args, needles);
    }
}

// -------------------------------------------------------------------------------------------
// Good paths
// -------------------------------------------------------------------------------------------

#[test]
fn eval_prints_a_scalar() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let r = run(
        d,
        &["eval", "sum(sqrt(ones((1000,), chunks=10) * 4.0) + 1.0)"],
    );
    assert!(r.status.success(), "{r:#?}");
    assert_eq!(r.stdout, "3000.0\n");
    assert!(r.stderr.is_empty(), "{r:#?}");
    assert_eq!(ok(d, &["eval", "1 + 2 * 3"]), "7\n");
    assert_eq!(
        ok(d, &["eval", "--threads", "1", "sum(arange(101))"]),
        "5050\n"
    );
    assert!(listing(d).is_empty(), "printing writes nothing");
}

#[test]
fn eval_prints_a_small_array() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(d, &["eval", "arange(6).reshape((2, 3)) * 10"]);
    assert_eq!(out.lines().count(), 2, "one line per row: {out:?}");
    let numbers: Vec<i64> = out
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(numbers, [0, 10, 20, 30, 40, 50], "{out}");
    // Empty along any axis: `[]`, as NumPy prints it.
    for expr in [
        "arange(6).reshape((2, 3))[1:0]",
        "ones((2, 0, 3))",
        "arange(0)",
    ] {
        assert_eq!(ok(d, &["eval", expr]), "[]\n", "{expr}");
    }
    // Larger than 1 MiB: described, not computed.
    let big = ok(d, &["eval", "ones((1000, 1000))"]);
    assert!(big.contains("[1000, 1000]") && big.contains("-o"), "{big}");
}

/// NumPy refuses integer arrays raised to a negative integer power, whether the exponent is a
/// scalar or an array (and wherever the negative element falls, here in the last chunk).
#[test]
fn integer_arrays_to_negative_powers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(d.join("z.npy"), &ndarray::arr1(&[3i64, 2, 0, 5, -2])).unwrap();
    write_npy(d.join("u.npy"), &ndarray::arr1(&[3u8, 2, 0, 1, 1])).unwrap();
    for expr in [
        "2 ** z",
        "z ** z",
        "z ** -1",
        "u ** z",
        "z.rechunk(2) ** z.rechunk(1)",
    ] {
        fails(
            d,
            &["eval", expr, "--in", "z=z.npy", "--in", "u=u.npy"],
            &["negative integer powers"],
        );
    }
    // Non-negative exponents, and float exponents, are computed.
    let args = |e: &'static str| ["eval", e, "--in", "z=z.npy", "--in", "u=u.npy"];
    assert_eq!(ok(d, &args("z ** u")), "[27, 4, 1, 5, -2]\n");
    assert_eq!(ok(d, &args("2 ** u")), "[8, 4, 1, 2, 2]\n");
    assert_eq!(ok(d, &args("2.0 ** z")), "[8.0, 4.0, 1.0, 32.0, 0.25]\n");
}

#[test]
fn eval_writes_an_npy_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    let stdout = ok(
        d,
        &[
            "eval",
            "(x - x.mean(axis=0)) / x.std(axis=0)",
            "--in",
            "x=F.npy",
            "-o",
            "z.npy",
        ],
    );
    assert!(stdout.contains("wrote float64 [3, 4]"), "{stdout}");
    assert!(stdout.contains("z.npy"), "{stdout}");
    let (descr, fortran, shape) = header(&d.join("z.npy"));
    assert_eq!((descr.as_str(), fortran, shape), ("<f8", false, vec![3, 4]));
    let z: ArrayD<f64> = read_npy(d.join("z.npy")).unwrap();
    let std = (32.0f64 / 3.0).sqrt();
    for ((i, j), v) in z
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        let want = (i as f64 - 1.0) * 4.0 / std;
        assert!((v - want).abs() < 1e-12, "z[{i}, {j}] = {v}, want {want}");
    }
    // Other dtypes keep theirs.
    ok(
        d,
        &[
            "eval",
            "astype(x, int16) - 3",
            "--in",
            "x=F.npy",
            "-o",
            "i.npy",
        ],
    );
    let (descr, shape, v) = read_values(&d.join("i.npy"));
    assert_eq!((descr.as_str(), shape), ("<i2", vec![3, 4]));
    assert_eq!(v, iota(12).iter().map(|v| v - 3.0).collect::<Vec<_>>());
}

#[test]
fn scalar_result_is_written_as_a_0d_array() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    ok(d, &["eval", "sum(x)", "--in", "x=F.npy", "-o", "s.npy"]);
    let (descr, _, shape) = header(&d.join("s.npy"));
    assert_eq!((descr.as_str(), shape), ("<f8", vec![]));
    let s: ArrayD<f64> = read_npy(d.join("s.npy")).unwrap();
    assert_eq!(s.ndim(), 0);
    assert_eq!(s.iter().copied().collect::<Vec<_>>(), [66.0]);
    // A literal too.
    ok(d, &["eval", "2 ** 10", "-o", "lit.npy"]);
    let (descr, shape, v) = read_values(&d.join("lit.npy"));
    assert_eq!((descr.as_str(), shape, v), ("<i8", vec![], vec![1024.0]));
}

#[test]
fn explain_prints_the_plan_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    let plan = ok(
        d,
        &["eval", "x - x.mean(axis=0)", "--in", "x=F.npy", "--explain"],
    );
    assert!(plan.contains("materialise"), "{plan}");
    assert!(plan.contains("mean"), "{plan}");
    assert!(plan.contains("F.npy"), "{plan}");
    // Nothing runs: neither the output nor a plan too large for the memory limit matters.
    let before = listing(d);
    let plan = ok(
        d,
        &[
            "--mem",
            "1KiB",
            "eval",
            "x[::2, 1:].T + ones((1000, 2, 1000))[0, :, 0]",
            "--in",
            "x=F.npy",
            "--explain",
            "-o",
            "out.npy",
        ],
    );
    assert!(!plan.is_empty());
    assert_eq!(listing(d), before, "--explain writes nothing");
}

#[test]
fn info_describes_an_npy_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    let out = ok(d, &["info", "F.npy"]);
    let field = |name: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in\n{out}"))[name.len()..]
            .trim()
            .to_string()
    };
    assert_eq!(field("path"), "F.npy");
    assert!(field("backend").starts_with("npy"), "{out}");
    assert!(field("backend").contains("Fortran"), "{out}");
    assert_eq!(field("shape"), "[3, 4]");
    assert_eq!(field("dtype"), "float64");
    assert!(field("chunks").starts_with("[3, 4]"), "{out}");
    assert!(field("blocks").starts_with('1'), "{out}");
    assert!(field("bytes").starts_with("96 B"), "{out}");

    // Big-endian, C order, int32.
    let data: Vec<u8> = (0..6i32).flat_map(i32::to_be_bytes).collect();
    std::fs::write(d.join("be.npy"), npy_bytes(">i4", false, "(2, 3)", &data)).unwrap();
    let out = ok(d, &["info", "be.npy"]);
    assert!(out.contains("big-endian"), "{out}");
    assert!(out.contains("C order"), "{out}");
    assert!(out.contains("int32"), "{out}");
    // ... and its values read right.
    ok(d, &["eval", "x", "--in", "x=be.npy", "-o", "le.npy"]);
    let (descr, shape, v) = read_values(&d.join("le.npy"));
    assert_eq!((descr.as_str(), shape, v), ("<i4", vec![2, 3], iota(6)));

    // The blocks shown are those a run with the same --mem reads: 1 MiB over 2 threads makes
    // blocks of 128 KiB (2048 rows of 8 float64), 10 of them for 20000 rows.
    let rows = ndarray::Array2::from_shape_fn((20000, 8), |(i, j)| (i * 8 + j) as f64);
    write_npy(d.join("rows.npy"), &rows).unwrap();
    let small = ["--mem", "1MiB", "--threads", "2"];
    let out = ok(d, &[&["info", "rows.npy"][..], &small].concat());
    assert!(out.contains("chunks     [2048, 8]"), "{out}");
    assert!(out.contains("blocks     10 ([10, 1] per axis)"), "{out}");
    let plan = ok(
        d,
        &[
            &["eval", "x.sum()", "--in", "x=rows.npy", "--explain"][..],
            &small,
        ]
        .concat(),
    );
    assert!(plan.contains("10 (10 x 1)  [2048, 8]"), "{plan}");
    assert!(ok(d, &["info", "rows.npy"]).contains("blocks     1 "));
}

#[test]
fn help_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, example) in [
        (&["eval", "--help"][..], "tessera eval '"),
        (&["help", "eval"], "tessera eval '"),
        (&["info", "--help"], "tessera info "),
        (&["help", "info"], "tessera info "),
        (&["verify", "--help"], "tessera verify dist.zarr"),
        (&["help", "verify"], "--task-index 1 --task-count 2"),
    ] {
        let out = ok(d, args);
        assert!(out.contains("Examples:"), "{args:?}:\n{out}");
        assert!(out.contains(example), "{args:?}:\n{out}");
    }
    let out = ok(d, &["--help"]);
    assert!(
        out.contains("eval") && out.contains("info") && out.contains("verify"),
        "{out}"
    );
}

/// Features of the language, each checked through a written `.npy` file: expression, dtype,
/// shape, values (in C order) over `x = arange(12).reshape(3, 4)` (float64, Fortran order).
#[test]
fn language_features_are_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    let x = iota(12);
    let map = |f: &dyn Fn(f64) -> f64| x.iter().map(|&v| f(v)).collect::<Vec<_>>();
    let cases: Vec<(&str, &str, Vec<usize>, Vec<f64>)> = vec![
        ("x", "<f8", vec![3, 4], x.clone()),
        ("np.sqrt(x)", "<f8", vec![3, 4], map(&f64::sqrt)),
        ("numpy.sqrt(x) ** 2 == x", "|b1", vec![3, 4], {
            map(&|v| f64::from(u8::from(v.sqrt() * v.sqrt() == v)))
        }),
        ("x.sum(axis=1)", "<f8", vec![3], vec![6.0, 22.0, 38.0]),
        ("x.mean(axis=0)", "<f8", vec![4], vec![4.0, 5.0, 6.0, 7.0]),
        ("np.mean(x)", "<f8", vec![], vec![5.5]),
        ("x.var(axis=0, ddof=1)", "<f8", vec![4], vec![16.0; 4]),
        (
            "x.max(axis=1, keepdims=True)",
            "<f8",
            vec![3, 1],
            vec![3.0, 7.0, 11.0],
        ),
        ("x.argmax(axis=0)", "<i8", vec![4], vec![2.0; 4]),
        (
            "x[::2, 1:]",
            "<f8",
            vec![2, 3],
            vec![1.0, 2.0, 3.0, 9.0, 10.0, 11.0],
        ),
        ("x[::-1, -1]", "<f8", vec![3], vec![11.0, 7.0, 3.0]),
        ("x[None, 1]", "<f8", vec![1, 4], vec![4.0, 5.0, 6.0, 7.0]),
        ("x[..., 0]", "<f8", vec![3], vec![0.0, 4.0, 8.0]),
        ("x.T", "<f8", vec![4, 3], {
            vec![0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
        }),
        ("where(x > 5, x, 0)", "<f8", vec![3, 4], {
            map(&|v| if v > 5.0 { v } else { 0.0 })
        }),
        (
            "clip(x, 2, 7)",
            "<f8",
            vec![3, 4],
            map(&|v| v.clamp(2.0, 7.0)),
        ),
        ("maximum(x, 6)", "<f8", vec![3, 4], map(&|v| v.max(6.0))),
        ("concatenate([x, x], axis=1)", "<f8", vec![3, 8], {
            (0..24).map(|k| ((k / 8) * 4 + k % 4) as f64).collect()
        }),
        (
            "stack([x, x])",
            "<f8",
            vec![2, 3, 4],
            [x.clone(), x.clone()].concat(),
        ),
        ("stack([x, x], axis=-1)", "<f8", vec![3, 4, 2], {
            x.iter().flat_map(|&v| [v, v]).collect()
        }),
        ("reshape(x, (4, 3))", "<f8", vec![4, 3], x.clone()),
        ("x.reshape(2, 6)", "<f8", vec![2, 6], x.clone()),
        ("x.reshape(-1)", "<f8", vec![12], x.clone()),
        ("rechunk(x, 2)", "<f8", vec![3, 4], x.clone()),
        ("sum(rechunk(x, (1, 3)), axis=0)", "<f8", vec![4], {
            vec![12.0, 15.0, 18.0, 21.0]
        }),
        ("astype(x, int32)", "<i4", vec![3, 4], x.clone()),
        ("x.astype('int16')", "<i2", vec![3, 4], x.clone()),
        ("x.astype('<f4') + 1", "<f4", vec![3, 4], map(&|v| v + 1.0)),
        ("rechunk(x, 'auto')", "<f8", vec![3, 4], x.clone()),
        (
            "ones((3, 4), chunks='auto') * x",
            "<f8",
            vec![3, 4],
            x.clone(),
        ),
        (
            "ones((3, 4), dtype=\"float32\") * x.astype('f4')",
            "<f4",
            vec![3, 4],
            x.clone(),
        ),
        ("x.astype(uint8) + 250", "|u1", vec![3, 4], {
            map(&|v| (v + 250.0) % 256.0)
        }),
        (
            "x >= 4",
            "|b1",
            vec![3, 4],
            map(&|v| f64::from(u8::from(v >= 4.0))),
        ),
        ("(x > 2) & (x < 9)", "|b1", vec![3, 4], {
            map(&|v| f64::from(u8::from(v > 2.0 && v < 9.0)))
        }),
        (
            "x != 5",
            "|b1",
            vec![3, 4],
            map(&|v| f64::from(u8::from(v != 5.0))),
        ),
        ("arange(5)", "<i8", vec![5], iota(5)),
        (
            "arange(1, 2, 0.25)",
            "<f8",
            vec![4],
            vec![1.0, 1.25, 1.5, 1.75],
        ),
        ("arange(10, 0, -3, dtype=int16)", "<i2", vec![4], {
            vec![10.0, 7.0, 4.0, 1.0]
        }),
        (
            "linspace(0, 1, 5)",
            "<f8",
            vec![5],
            vec![0.0, 0.25, 0.5, 0.75, 1.0],
        ),
        ("zeros((2, 3))", "<f8", vec![2, 3], vec![0.0; 6]),
        ("zeros((2,), dtype=int32)", "<i4", vec![2], vec![0.0; 2]),
        ("ones((2, 2), chunks=1)", "<f8", vec![2, 2], vec![1.0; 4]),
        ("ones((3,), dtype=bool)", "|b1", vec![3], vec![1.0; 3]),
        ("full((2, 2), 7)", "<i8", vec![2, 2], vec![7.0; 4]),
        (
            "full((3,), 2.5, dtype=float32)",
            "<f4",
            vec![3],
            vec![2.5; 3],
        ),
        ("x // 5 + x % 5", "<f8", vec![3, 4], {
            map(&|v| (v / 5.0).floor() + v % 5.0)
        }),
        ("2 ** 3 ** 2 - x[0, 0]", "<f8", vec![], vec![512.0]),
        ("abs(1 - x).min()", "<f8", vec![], vec![0.0]),
        ("x.ndim * x[0, 1]", "<f8", vec![], vec![2.0]),
        ("x.size + x.ndim", "<i8", vec![], vec![14.0]),
    ];
    let mut problems = Vec::new();
    for (k, (expr, descr, shape, values)) in cases.iter().enumerate() {
        let out = format!("out{k}.npy");
        let r = run(d, &["eval", expr, "--in", "x=F.npy", "-o", &out]);
        if !r.status.success() {
            problems.push(format!("{expr}: {}", r.stderr.trim()));
            continue;
        }
        let got = read_values(&d.join(&out));
        if (got.0.as_str(), &got.1, &got.2) != (*descr, shape, values) {
            problems.push(format!(
                "{expr}: got {got:?}, want ({descr:?}, {shape:?}, {values:?})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn random_values_do_not_depend_on_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut runs = Vec::new();
    for (k, expr) in [
        "random((5,), seed=1)",
        "random((5,), seed=1, chunks=1)",
        "random((5,), seed=1, chunks=2)",
        "random((5,), seed=1, chunks=((3, 2),))",
        "rechunk(random((5,), seed=1, chunks=4), 3)",
    ]
    .iter()
    .enumerate()
    {
        let out = format!("r{k}.npy");
        ok(d, &["eval", expr, "-o", &out]);
        runs.push((expr, read_values(&d.join(out))));
    }
    let (_, first) = &runs[0];
    assert_eq!((first.0.as_str(), &first.1), ("<f8", &vec![5]));
    assert!(first.2.iter().all(|v| (0.0..1.0).contains(v)), "{first:?}");
    let distinct: BTreeSet<u64> = first.2.iter().map(|v| v.to_bits()).collect();
    assert_eq!(distinct.len(), 5, "{first:?}");
    for (expr, r) in &runs[1..] {
        assert_eq!(r, first, "{expr}");
    }
    // Printing gives the same numbers as writing.
    let printed = ok(d, &["eval", "random((5,), seed=1, chunks=2)"]);
    for v in &first.2 {
        assert!(printed.contains(&format!("{v}")), "{v} in {printed}");
    }
    // Another seed, other values; float32 and normal are reachable.
    ok(d, &["eval", "random((5,), seed=2)", "-o", "s2.npy"]);
    assert_ne!(read_values(&d.join("s2.npy")).2, first.2);
    ok(
        d,
        &[
            "eval",
            "random((4,), seed=1, dtype=float32)",
            "-o",
            "f32.npy",
        ],
    );
    assert_eq!(read_values(&d.join("f32.npy")).0, "<f4");
    // NumPy's and Dask's signatures: normal(loc, scale, size), uniform(low, high, size),
    // positional or by keyword (`shape=` stands for `size=`); no size is one number (0-d).
    let moments = |expr: &str| {
        ok(d, &["eval", expr, "-o", "n.npy", "--overwrite"]);
        let (_, shape, n) = read_values(&d.join("n.npy"));
        let mean = n.iter().sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.len() as f64;
        (shape, mean, var.sqrt(), n)
    };
    for expr in [
        "normal(5.0, 0.1, (4000,), seed=3)",
        "normal(loc=5.0, scale=0.1, size=4000, seed=3)",
        "normal(shape=(4000,), seed=3, loc=5.0, scale=0.1)",
    ] {
        let (shape, mean, sd, _) = moments(expr);
        assert_eq!(shape, [4000], "{expr}");
        assert!(
            (mean - 5.0).abs() < 0.01 && (sd - 0.1).abs() < 0.01,
            "{expr}: {mean} {sd}"
        );
    }
    let (shape, _, _, n) = moments("uniform(-1, 1, (2, 3000), seed=4)");
    assert_eq!(shape, [2, 3000]);
    assert!(n.iter().all(|v| (-1.0..1.0).contains(v)) && n.iter().any(|&v| v < -0.9));
    let (shape, mean, _, _) = moments("normal(5, 0.001, seed=1)");
    assert_eq!((shape.len(), mean.round()), (0, 5.0), "one sample near 5");
    assert_eq!(moments("standard_normal(3)").0, [3]);
}

#[test]
fn an_expression_after_double_dash_may_start_with_minus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    ok(d, &["eval", "--in", "x=F.npy", "-o", "neg.npy", "--", "-x"]);
    let (_, shape, v) = read_values(&d.join("neg.npy"));
    assert_eq!(shape, [3, 4]);
    assert_eq!(v, iota(12).iter().map(|v| -v).collect::<Vec<_>>());
}

#[test]
fn an_expression_may_start_with_minus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_f(d);
    assert_eq!(ok(d, &["eval", "-1 + 3"]), "2\n");
    ok(d, &["eval", "-x", "--in", "x=F.npy", "-o", "neg.npy"]);
    let (_, _, v) = read_values(&d.join("neg.npy"));
    assert_eq!(v, iota(12).iter().map(|v| -v).collect::<Vec<_>>());
}

#[test]
fn overwriting_an_input_in_place_reads_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 100_000;
    let a = ndarray::Array1::from_iter((0..n).map(|i| i as f64)).into_dyn();
    write_npy(d.join("a.npy"), &a).unwrap();
    ok(
        d,
        &[
            "eval",
            "rechunk(x, 1000)[::-1] + 1",
            "--in",
            "x=a.npy",
            "-o",
            "a.npy",
            "--overwrite",
        ],
    );
    let got: ArrayD<f64> = read_npy(d.join("a.npy")).unwrap();
    let want: Vec<f64> = (0..n).rev().map(|i| i as f64 + 1.0).collect();
    assert_eq!(got.iter().copied().collect::<Vec<_>>(), want);
    assert_eq!(listing(d), BTreeSet::from(["a.npy".to_string()]));
}

#[test]
fn an_error_while_computing_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut z = ndarray::Array2::<f64>::ones((300, 40));
    z.row_mut(257).fill(f64::NAN);
    write_npy(d.join("z.npy"), &z).unwrap();
    for expr in [
        "nanargmax(rechunk(z, 10), axis=1)",
        "rechunk(z, 7) + nanargmin(rechunk(z, 10), axis=1)[:, None]",
    ] {
        fails(
            d,
            &["eval", expr, "--in", "z=z.npy", "-o", "out.npy"],
            &["All-NaN"],
        );
    }
}

#[test]
fn parse_error_caret_matches_the_column_after_trailing_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for expr in ["x +   ", "   ", "sum(x,  "] {
        let r = run(d, &["eval", expr]);
        assert!(
            !r.status.success() && !r.stderr.contains("panicked"),
            "{r:#?}"
        );
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{r:#?}");
        let col: usize = lines[0]
            .split("column ")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no column in {:?}", lines[0]));
        assert_eq!(lines[1], expr);
        assert_eq!(
            lines[2],
            format!("{}^", " ".repeat(col - 1)),
            "{expr:?}: {}",
            lines[0]
        );
    }
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    // `tessera ... | head -1`: the reader closes the pipe before tessera prints.
    use std::os::unix::process::ExitStatusExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for _ in 0..5 {
        let mut child = Command::new(TESSERA)
            .args(["eval", "arange(0, 200000, 1)"])
            .current_dir(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Ended by SIGPIPE (13), as `seq 1 1000000 | head -1` ends, or done before the close.
        assert!(
            out.status.signal() == Some(13) || out.status.success(),
            "{:?}: {stderr}",
            out.status
        );
    }
}

/// Automatic blocks shrink to the memory given: a 40 MB array converts and reduces under
/// `--mem 16MiB` (2 MiB blocks for two threads) where 128 MiB blocks would be refused, and the
/// copy is exact.
#[test]
fn automatic_blocks_fit_a_small_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = ndarray::Array2::from_shape_fn((5000, 1000), |(i, j)| (i * 1000 + j) as f64 * 0.25);
    write_npy(d.join("x.npy"), &data).unwrap();
    let small = ["--mem", "16MiB", "--threads", "2"];
    let mut args = vec!["convert", "x.npy", "y.zarr", "--codec", "none"];
    args.extend(small);
    let r = run(d, &args);
    assert!(r.status.success(), "{}", r.stderr);
    let y =
        tessera::ChunkedArray::<f64>::from_zarr(d.join("y.zarr"), tessera::Chunks::Auto).unwrap();
    assert_eq!(y.compute().unwrap(), data.clone().into_dyn());
    let info = tessera::store::zarr::info(&d.join("y.zarr")).unwrap();
    let chunk = info.chunk_shape.unwrap();
    assert!(chunk.iter().product::<usize>() * 8 <= 2 << 20, "{chunk:?}");
    let mut args = vec!["eval", "sum(x)", "--in", "x=x.npy"];
    args.extend(small);
    let r = run(d, &args);
    assert!(r.status.success(), "{}", r.stderr);
    let want: f64 = data.iter().sum();
    let got: f64 = r.stdout.trim().parse().unwrap();
    assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
    // Stored chunks of whole rows (64 x 1000) are no reason to exceed the blocks' share:
    // 256 rows, not 512 (which --mem refused for HDF5: 4 MiB blocks and a chunk decoding).
    let mut stores = vec!["rows.zarr"];
    if cfg!(feature = "hdf5") {
        stores.push("rows.h5:/x");
    }
    for src in stores {
        let r = run(d, &["convert", "x.npy", src, "--chunks", "64,1000"]);
        assert!(r.status.success(), "{}", r.stderr);
        let r = run(d, &[&["info", src][..], &small].concat());
        assert!(r.stdout.contains("[256, 1000]"), "{src}: {}", r.stdout);
        let out = format!("from-{}.npy", &src[5..7]);
        let mut args = vec!["convert", src, &out];
        args.extend(small);
        let r = run(d, &args);
        assert!(r.status.success(), "{src}: {}", r.stderr);
        let back: ndarray::Array2<f64> = ndarray_npy::read_npy(d.join(&out)).unwrap();
        assert_eq!(back, data, "{src}");
    }
    // The library's default blocks are still about 128 MiB: too large for this limit.
    let x = tessera::ChunkedArray::<f64>::from_npy(d.join("x.npy"), tessera::Chunks::Auto).unwrap();
    assert_eq!(x.nblocks(), 1);
    // Down to 64 KiB blocks: a 1 MiB limit on two threads (128 KiB blocks) still runs.
    let r = run(
        d,
        &[
            "eval",
            "sum(x + 1, axis=0)[:2]",
            "--in",
            "x=x.npy",
            "--mem",
            "1MiB",
            "--threads",
            "2",
        ],
    );
    assert!(r.status.success(), "{}", r.stderr);
    let col = |j: usize| (0..5000).map(|i| data[[i, j]] + 1.0).sum::<f64>();
    assert_eq!(r.stdout, format!("[{:?}, {:?}]\n", col(0), col(1)));
}

/// This machine's name as tessera writes it into hidden file names.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length.
    assert_eq!(
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) },
        0
    );
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).replace(['/', '\0'], "_")
}

#[test]
fn outputs_with_the_longest_names_are_written() {
    // A file name may have 255 bytes; the hidden name an output is written under until it is
    // complete is longer than the output's own, and is shortened to fit.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(
        d.join("x.npy"),
        &ndarray::arr1(&[1.0f64, 2.0, 4.0]).into_dyn(),
    )
    .unwrap();
    let mut outputs = vec![
        format!("{}.zarr", "z".repeat(250)),
        format!("{}.npy", "n".repeat(251)),
        format!("g.zarr/{}", "é".repeat(127)),
    ];
    if cfg!(feature = "hdf5") {
        outputs.push(format!("{}.h5:/x", "h".repeat(252)));
    }
    for out in &outputs {
        ok(d, &["convert", "x.npy", out]);
        // Written again: the output it replaces is kept aside under a shortened name too.
        ok(d, &["convert", "x.npy", out, "--overwrite"]);
        let sum = ok(d, &["eval", "sum(x)", "--in", &format!("x={out}")]);
        assert_eq!(sum.trim(), "7.0", "{out}");
    }
    let mut left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .chain(std::fs::read_dir(d.join("g.zarr")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tessera"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "{left:?}");
}

/// The hidden partial outputs that killed runs of this machine left beside an output are
/// removed when it is written again; those of running processes, of other machines, and a
/// replacement interrupted between its renames (its `old` beside it) are kept.
#[test]
#[cfg(unix)]
fn partial_outputs_of_killed_runs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(d.join("x.npy"), &ndarray::arr1(&[1.0f64, 2.0]).into_dyn()).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let (host, live) = (host_name(), std::process::id());
    let name = |leaf: &str, what: &str, host: &str, pid: u32| {
        format!(".{leaf}.tessera-{what}-{host}-{pid}")
    };
    let stale = [
        name("o.zarr", "partial", &host, dead),
        format!("{}.a1b2c3", name("o.npy", "partial", &host, dead)),
        name("o.h5", "partial", &host, dead),
        format!("g.zarr/{}", name("a", "partial", &host, dead)),
    ];
    let kept = [
        name("o.zarr", "partial", &host, live),
        name("o.zarr", "partial", "another-host", dead),
        name("p.zarr", "partial", &host, dead),
        name("p.zarr", "old", &host, dead),
        name("o.npy.x", "partial", &host, dead),
        // Only the exact names are tessera's: not with more after them, nor a leading zero.
        format!("{}.bak", name("o.zarr", "partial", &host, dead)),
        name("o.zarr", "partial", &host, 0).replace("-0", &format!("-0{dead}")),
        format!("{}.keep.me", name("o.npy", "partial", &host, dead)),
        name("o.npy", "partial", &host, dead),
    ];
    ok(d, &["convert", "x.npy", "g.zarr/b"]);
    for f in stale.iter().chain(&kept) {
        if f.contains("zarr") {
            std::fs::create_dir_all(d.join(f).join("c")).unwrap();
            std::fs::write(d.join(f).join("zarr.json"), b"{}").unwrap();
        } else {
            std::fs::write(d.join(f), b"half").unwrap();
        }
    }
    let mut outputs = vec!["o.zarr", "o.npy", "g.zarr/a", "p.zarr"];
    if cfg!(feature = "hdf5") {
        outputs.push("o.h5:/x");
    }
    for out in outputs {
        ok(d, &["convert", "x.npy", out]);
    }
    // A resumed run (in place) removes them as well.
    let resumed = name("r.zarr", "partial", &host, dead);
    std::fs::create_dir_all(d.join(&resumed).join("c")).unwrap();
    ok(d, &["convert", "x.npy", "r.zarr", "--resume"]);
    assert!(!d.join(&resumed).exists(), "{resumed} was left");
    for f in &stale {
        if f.contains(".h5") && !cfg!(feature = "hdf5") {
            continue;
        }
        assert!(!d.join(f).exists(), "{f} was left");
    }
    for f in &kept {
        assert!(d.join(f).exists(), "{f} was removed");
    }

    // A dataset a killed run left inside an HDF5 file goes when its group is written to.
    #[cfg(feature = "hdf5")]
    {
        let aside = name("a", "partial", &host, dead);
        ok(d, &["convert", "x.npy", &format!("f.h5:/grp/{aside}")]);
        // A group so named, and a dataset named with more after it, are the user's.
        let mut other = Command::new("true").spawn().unwrap();
        let group_named = name("a", "partial", &host, other.id());
        other.wait().unwrap();
        ok(d, &["convert", "x.npy", &format!("f.h5:/grp/{aside}.bak")]);
        ok(
            d,
            &[
                "convert",
                "x.npy",
                &format!("f.h5:/grp/{group_named}/inner"),
            ],
        );
        ok(d, &["convert", "x.npy", "f.h5:/grp/a"]);
        let file = hdf5::File::open(d.join("f.h5")).unwrap();
        let mut members = file.group("grp").unwrap().member_names().unwrap();
        members.sort();
        let mut want = vec![format!("{aside}.bak"), group_named, "a".to_string()];
        want.sort();
        assert_eq!(members, want);
    }
}
