//! Split and resumed runs end to end, through the `tessera` binary: a run split over N tasks
//! (flags, launcher variables, `mpirun`) gives the single-process array bit for bit; runs killed
//! with SIGKILL and resumed never show a torn chunk and end with the same array; a full disk is a
//! clear error that `--resume` recovers from; `tessera verify` names missing and corrupt chunks;
//! bad input is refused with a message naming the problem.
//!
//! Arrays are compared twice: read back with tessera's reader, and with zarr-python (the
//! oracle named by `$TESSERA_PYTHON`, see `tests/python/README.md`; without it that half is
//! skipped, unless `TESSERA_REQUIRE_ORACLE=1`). The `mpirun` test needs Open MPI
//! (`bash scripts/system-deps.sh --test` installs it) and the full-disk test needs to mount a
//! tmpfs (as root, or in a user namespace with `unshare -rm`); they are skipped without, unless
//! `TESSERA_REQUIRE_ORACLE=1`.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/python.rs"]
mod python;

use cli::{command, data, ok, run, run_env};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tessera::{ChunkedArray, Chunks, Element};

// -------------------------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------------------------

/// The inputs the tests share, in `dir`: `x.npy` (the first 1000 sample points) and `y.npy`
/// (600 other points through a square root that makes some coordinates NaN).
fn inputs(dir: &Path) {
    let points = format!("p={}", data("points.npy"));
    ok(dir, &["eval", "p[:1000]", "--in", &points, "-o", "x.npy"]);
    ok(
        dir,
        &[
            "eval",
            "sqrt(p[1000:1600] - 0.05)",
            "--in",
            &points,
            "-o",
            "y.npy",
        ],
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `tessera ARGS` in `dir` with `env` set, its output captured.
fn spawn(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Child {
    let mut c = command(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the tessera binary")
}

/// Waits for a child started by [`spawn`], which must succeed; returns its stdout.
#[track_caller]
fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect("waiting for tessera");
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// The `A` and `B` of a task's summary line `... wrote A of B blocks ...`.
fn wrote(summary: &str) -> (usize, usize) {
    let rest = summary
        .split("wrote ")
        .nth(1)
        .unwrap_or_else(|| panic!("no `wrote A of B blocks` in {summary:?}"));
    let mut words = rest.split_whitespace();
    let a = words.next().and_then(|w| w.parse().ok());
    let b = words.nth(1).and_then(|w| w.parse().ok());
    match (a, b) {
        (Some(a), Some(b)) => (a, b),
        _ => panic!("no `wrote A of B blocks` in {summary:?}"),
    }
}

/// Runs `tessera ARGS` as tasks 0..n of n, all started at once (so they race to create the
/// metadata), then `tessera verify` on each of `outputs`. Every task must succeed, and their
/// shares (the blocks each says it wrote) must add up to `blocks`.
#[track_caller]
fn split(dir: &Path, args: &[&str], n: usize, outputs: &[&str], blocks: usize) {
    let count = n.to_string();
    let children: Vec<(Child, String)> = (0..n)
        .map(|i| {
            let index = i.to_string();
            let mut a = args.to_vec();
            a.extend(["--task-index", &index, "--task-count", &count]);
            (spawn(dir, &a, &[]), format!("task {i} of {n}: {a:?}"))
        })
        .collect();
    let mut total = 0;
    for (child, what) in children {
        let out = finish(child, &what);
        if n > 1 {
            let (written, share) = wrote(&out);
            assert_eq!(written, share, "{what}: a fresh task skipped blocks: {out}");
            total += share;
        }
    }
    if n > 1 {
        assert_eq!(total, blocks, "the shares of {n} tasks of {args:?}");
    }
    for o in outputs {
        let out = ok(dir, &["verify", o]);
        assert!(out.contains("present and valid; marked complete"), "{out}");
    }
}

/// The elements of a Zarr array, as tessera reads them, in C order, as bytes.
fn read_bytes<T: Element>(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let a: ArrayD<T> = ChunkedArray::<T>::from_zarr(path, Chunks::Auto)
        .and_then(|x| x.compute())
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let shape = a.shape().to_vec();
    let std = a.as_standard_layout();
    (shape, T::to_bytes(std.as_slice().unwrap()).to_vec())
}

/// The element type of the arrays compared.
#[derive(Clone, Copy, Debug)]
enum Kind {
    F64,
    I64,
}

/// Asserts that the Zarr arrays `a` and `b` hold the same shape and elements bit for bit (NaNs
/// included), as tessera reads them.
#[track_caller]
fn assert_same_array(dir: &Path, a: &str, b: &str, kind: Kind, ctx: &str) {
    let (pa, pb) = (dir.join(a), dir.join(b));
    let (x, y) = match kind {
        Kind::F64 => (read_bytes::<f64>(&pa), read_bytes::<f64>(&pb)),
        Kind::I64 => (read_bytes::<i64>(&pa), read_bytes::<i64>(&pb)),
    };
    assert_eq!(x.0, y.0, "{ctx}: shape of {a} against {b}");
    if x.1 != y.1 {
        let first = x.1.iter().zip(&y.1).position(|(p, q)| p != q).unwrap_or(0);
        panic!(
            "{ctx}: {a} differs from {b}, first at element {} (C order)",
            first / 8
        );
    }
}

/// zarr-python reads every pair `(a, b)` (paths under argv[1]) to arrays of the same dtype and
/// shape and the same bytes, and finds `tessera_complete` true in `a`.
const COMPARE: &str = r#"
import sys, numpy as np, zarr
root = sys.argv[1]
for pair in sys.argv[2:]:
    a, b = pair.split("|")
    za = zarr.open_array(f"{root}/{a}", mode="r")
    zb = zarr.open_array(f"{root}/{b}", mode="r")
    x, y = np.asarray(za[...]), np.asarray(zb[...])
    why = []
    if za.attrs.get("tessera_complete") is not True:
        why.append(f"tessera_complete is {za.attrs.get('tessera_complete')!r}")
    if x.dtype != y.dtype or x.shape != y.shape:
        why.append(f"{x.dtype}{x.shape} against {y.dtype}{y.shape}")
    else:
        bits = np.dtype(f"u{x.itemsize}")
        bad = np.flatnonzero(np.ascontiguousarray(x).view(bits) != np.ascontiguousarray(y).view(bits))
        if bad.size:
            why.append(f"{bad.size} elements differ in their bits, the first at flat index {bad[0]}")
    print(f"FAIL {a} | {b}: " + "; ".join(why) if why else f"OK {a}")
"#;

/// Checks with zarr-python (when there is one, see the module's documentation) that every
/// pair holds the same array, the first marked complete.
#[track_caller]
fn zarr_python_agrees(test: &str, dir: &Path, pairs: &[(String, String)]) {
    let Some(py) = python::python(test) else {
        return;
    };
    let mut args = vec![dir.to_string_lossy().into_owned()];
    args.extend(pairs.iter().map(|(a, b)| format!("{a}|{b}")));
    let out = python::run_script(&py, COMPARE, &args);
    let fails: Vec<&str> = out.lines().filter(|l| !l.starts_with("OK ")).collect();
    assert!(fails.is_empty(), "zarr-python:\n{}", fails.join("\n"));
    assert_eq!(out.lines().count(), pairs.len(), "zarr-python:\n{out}");
}

/// The task counts every equality test splits over: one task, a few, and more tasks than the
/// run has blocks (some tasks get nothing to do).
const COUNTS: [usize; 5] = [1, 2, 3, 7, 16];

/// Runs `tessera ARGS` (whose output is the `{out}` among them) in one process, then split
/// over each of [`COUNTS`] tasks, which together must write `blocks` blocks; every array of
/// `arrays` (`""` for the output itself, or a member of its group) must then be the
/// single-process one bit for bit, read by tessera and by zarr-python.
#[track_caller]
fn splits_equal_one_process(
    test: &str,
    dir: &Path,
    args: &[&str],
    arrays: &[(&str, Kind)],
    blocks: usize,
) {
    let with_output = |out: &str| -> Vec<String> {
        args.iter()
            .map(|a| a.replace("{out}", out))
            .collect::<Vec<_>>()
    };
    let reference = format!("{test}-one.zarr");
    let one = with_output(&reference);
    ok(dir, &one.iter().map(String::as_str).collect::<Vec<_>>());
    let mut pairs = Vec::new();
    for n in COUNTS {
        let out = format!("{test}-{n}.zarr");
        let a = with_output(&out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let members: Vec<String> = arrays
            .iter()
            .map(|(m, _)| {
                if m.is_empty() {
                    out.clone()
                } else {
                    format!("{out}/{m}")
                }
            })
            .collect();
        // A knn group is verified whole, which checks each array in it.
        split(dir, &a, n, &[&out], blocks);
        for ((m, kind), path) in arrays.iter().zip(&members) {
            let want = if m.is_empty() {
                reference.clone()
            } else {
                format!("{reference}/{m}")
            };
            assert_same_array(dir, path, &want, *kind, &format!("{n} tasks of {a:?}"));
            pairs.push((path.clone(), want));
        }
    }
    zarr_python_agrees(test, dir, &pairs);
}

/// Asserts that `tessera ARGS` (with `env`) fails cleanly: exit code 1, no panic, one
/// `error: ` line on stderr holding every one of `wants`. Returns that line.
#[track_caller]
fn fails(dir: &Path, args: &[&str], env: &[(&str, &str)], wants: &[&str]) -> String {
    let mut c = command(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out: Output = c.output().expect("cannot run the tessera binary");
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: exit status {}:\n{stderr}{}",
        out.status,
        text(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one stderr line:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{args:?}:\n{stderr}");
    for w in wants {
        assert!(
            lines[0].contains(w),
            "{args:?}: the error lacks {w:?}:\n{stderr}"
        );
    }
    lines[0].to_string()
}

/// Every file under `dir` whose name holds `part`.
fn files_named(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_named(&p, part));
        } else if e.file_name().to_string_lossy().contains(part) {
            out.push(p);
        }
    }
    out
}

// -------------------------------------------------------------------------------------------
// A split run equals a single-process run
// -------------------------------------------------------------------------------------------

/// `cdist` split over 1, 2, 3, 7 and 16 tasks: X against itself (mirrored tiles: 10 tasks of
/// a 4 x 4 grid, each below-diagonal tile written by the task of its mirror image) and X
/// against Y (ragged 300-row tiles, NaN distances), bit for bit the single-process array.
#[test]
fn split_cdist_equals_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let common = ["--chunk", "250", "--threads", "1", "-q", "-o", "{out}"];
    let mut pdist = vec!["cdist", "x.npy"];
    pdist.extend(common);
    splits_equal_one_process("pdist", d, &pdist, &[("", Kind::F64)], 16);
    let mut xy = vec![
        "cdist",
        "x.npy",
        "y.npy",
        "--metric",
        "cityblock",
        "--chunk",
        "300",
    ];
    xy.extend(["--threads", "1", "-q", "-o", "{out}"]);
    splits_equal_one_process("xy", d, &xy, &[("", Kind::F64)], 8);
}

/// `knn` split by row blocks (7 blocks of 150 rows, the last ragged): the indices and the
/// distances, and the counts within a radius, bit for bit the single-process arrays.
#[test]
fn split_knn_equals_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let args = [
        "knn",
        "x.npy",
        "-k",
        "5",
        "--chunk",
        "150",
        "--threads",
        "1",
        "-q",
        "-o",
        "{out}",
    ];
    splits_equal_one_process(
        "knn",
        d,
        &args,
        &[("indices", Kind::I64), ("distances", Kind::F64)],
        7,
    );
    let args = [
        "knn",
        "x.npy",
        "y.npy",
        "--radius",
        "0.2",
        "--chunk",
        "150",
        "--threads",
        "1",
        "-q",
        "-o",
        "{out}",
    ];
    splits_equal_one_process("radius", d, &args, &[("counts", Kind::I64)], 7);
}

/// `convert` split over ragged chunks (300 rows of 2000, and 300 x 2), in Zarr v3 and v2, with
/// zstd, gzip and no compression: the single-process array, and the source, bit for bit.
#[test]
fn split_convert_equals_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = data("points.npy");
    ok(d, &["convert", &src, "source.zarr"]);
    for (name, chunks, extra, blocks) in [
        ("zstd3", "300", &[][..], 7),
        ("v2", "300", &["--zarr-format", "2"][..], 7),
        ("gzip", "300", &["--codec", "gzip"][..], 7),
        ("none", "300,2", &["--codec", "none"][..], 14),
        (
            "v2none",
            "300,2",
            &["--zarr-format", "2", "--codec", "none"][..],
            14,
        ),
    ] {
        let mut args = vec!["convert", &src, "{out}", "--chunks", chunks, "-q"];
        args.extend(extra);
        splits_equal_one_process(name, d, &args, &[("", Kind::F64)], blocks);
        assert_same_array(d, &format!("{name}-7.zarr"), "source.zarr", Kind::F64, name);
    }
}

/// `eval -o` split over its output blocks (7 of 300 rows, NaN where the square root is of a
/// negative number): the single-process array bit for bit.
#[test]
fn split_eval_equals_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = format!("x={}", data("points.npy"));
    let args = [
        "eval",
        "sqrt(x.rechunk((300, 3)) - 0.05) * 2",
        "--in",
        &x,
        "-o",
        "{out}",
        "-q",
    ];
    splits_equal_one_process("eval", d, &args, &[("", Kind::F64)], 7);
}

// -------------------------------------------------------------------------------------------
// Launchers
// -------------------------------------------------------------------------------------------

/// The variables `launcher` sets for task `i` of `n` (a Slurm array numbered from 5).
fn launcher_env(launcher: &str, i: usize, n: usize) -> Vec<(&'static str, String)> {
    let (i, n) = (i.to_string(), n.to_string());
    match launcher {
        "ompi" => vec![("OMPI_COMM_WORLD_RANK", i), ("OMPI_COMM_WORLD_SIZE", n)],
        "slurm" => vec![
            (
                "SLURM_ARRAY_TASK_ID",
                (5 + i.parse::<usize>().unwrap()).to_string(),
            ),
            ("SLURM_ARRAY_TASK_MIN", "5".into()),
            ("SLURM_ARRAY_TASK_COUNT", n),
        ],
        "k8s" => vec![("JOB_COMPLETION_INDEX", i)],
        "pmi" => vec![("PMI_RANK", i), ("PMI_SIZE", n)],
        _ => unreachable!("{launcher}"),
    }
}

/// The task numbers of Open MPI, a Slurm job array (ids 5 to 8), a Kubernetes Indexed Job
/// (with --task-count) and PMI give the same split as the flags.
#[test]
fn launcher_variables_split_like_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let args = |out: &'static str| {
        vec![
            "cdist",
            "x.npy",
            "--chunk",
            "250",
            "--threads",
            "1",
            "-q",
            "-o",
            out,
        ]
    };
    ok(d, &args("one.zarr"));
    let launchers: [(&str, usize, &str, &[&str]); 4] = [
        ("ompi", 3, "$OMPI_COMM_WORLD_RANK of Open MPI's mpirun", &[]),
        ("slurm", 4, "$SLURM_ARRAY_TASK_ID of a Slurm job array", &[]),
        (
            "k8s",
            3,
            "$JOB_COMPLETION_INDEX of a Kubernetes Indexed Job",
            &["--task-count", "3"],
        ),
        ("pmi", 2, "$PMI_RANK of an MPI launcher (PMI)", &[]),
    ];
    for (launcher, n, source, extra) in launchers {
        let out = format!("{launcher}.zarr");
        let out = out.as_str();
        let mut a = vec![
            "cdist",
            "x.npy",
            "--chunk",
            "250",
            "--threads",
            "1",
            "-q",
            "-o",
            out,
        ];
        a.extend(extra);
        let children: Vec<Child> = (0..n)
            .map(|i| spawn(d, &a, &launcher_env(launcher, i, n)))
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let said = finish(child, &format!("{out} task {i}"));
            assert!(
                said.contains(&format!("task {i} of {n} (from {source})")),
                "{out} task {i}: {said}"
            );
        }
        ok(d, &["verify", out]);
        assert_same_array(d, out, "one.zarr", Kind::F64, out);
    }
    // Run by hand, the same variables: one task of the job array.
    let (success, said, err) = run_env(
        d,
        &args("by-hand.zarr"),
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    assert!(success, "{err}");
    assert!(said.contains("task 1 of 2"), "{said}");
}

/// `mpirun -np 4` starts four workers on one machine; `verify` then marks the array complete
/// and it is the single-process array bit for bit.
#[test]
fn mpirun_workers_equal_one_process() {
    let mpirun = Command::new("mpirun").arg("--version").output();
    if !mpirun.as_ref().is_ok_and(|o| o.status.success()) {
        let why = "no mpirun on PATH (Debian: apt-get install openmpi-bin, which \
                   `bash scripts/system-deps.sh --test` does)";
        assert!(
            !python::oracle_required(),
            "mpirun_workers_equal_one_process: mpirun is required (TESSERA_REQUIRE_ORACLE=1) but {why}"
        );
        eprintln!("skipped mpirun_workers_equal_one_process: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let args = ["x.npy", "--chunk", "250", "--threads", "1", "-q", "-o"];
    let mut one = vec!["cdist"];
    one.extend(args);
    one.push("one.zarr");
    ok(d, &one);
    let mut c = Command::new("mpirun");
    c.args(["-np", "4", "--oversubscribe", cli::TESSERA, "cdist"])
        .args(args)
        .arg("mpi.zarr")
        .current_dir(d)
        // Open MPI refuses to start as root without both.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("TESSERA_ALLOWED_MEM")
        .env_remove("TESSERA_THREADS");
    for v in cli::LAUNCHER_VARIABLES {
        c.env_remove(v);
    }
    let out = c.output().expect("cannot run mpirun");
    let said = text(&out.stdout);
    assert!(
        out.status.success(),
        "mpirun failed ({}):\n{}{said}",
        out.status,
        text(&out.stderr)
    );
    for i in 0..4 {
        assert!(
            said.contains(&format!(
                "task {i} of 4 (from $OMPI_COMM_WORLD_RANK of Open MPI's mpirun)"
            )),
            "task {i}:\n{said}"
        );
    }
    let total: usize = said.lines().map(|l| wrote(l).1).sum();
    assert_eq!(total, 16, "the shares of the 4 workers:\n{said}");
    let verified = ok(d, &["verify", "mpi.zarr"]);
    assert!(
        verified.contains("16 of 16 chunks present and valid"),
        "{verified}"
    );
    assert_same_array(d, "mpi.zarr", "one.zarr", Kind::F64, "mpirun -np 4");
    zarr_python_agrees(
        "mpirun_workers_equal_one_process",
        d,
        &[("mpi.zarr".into(), "one.zarr".into())],
    );
}

// -------------------------------------------------------------------------------------------
// Killed, full disk
// -------------------------------------------------------------------------------------------

/// A tiny xorshift generator: the kill delays follow from the printed seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0), near enough.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 20 times in a row, `cdist --resume` (alternately into a compressed and an uncompressed
/// store) is killed with SIGKILL after a random delay; after each kill `verify` may find
/// chunks missing but never a corrupt one. Then `--resume` completes both stores, which equal
/// the single-process array bit for bit, with no chunk file left half-written.
#[test]
fn killed_runs_resume_to_the_same_array() {
    let seed = std::env::var("TESSERA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |t| t.as_nanos() as u64)
        })
        .max(1);
    eprintln!("killed_runs_resume_to_the_same_array: seed {seed} (TESSERA_KILL_SEED={seed} repeats the delays)");
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let points = data("points.npy");
    let args = |out: &'static str, codec: &'static str| {
        vec![
            "cdist",
            points.as_str(),
            "--chunk",
            "100",
            "--codec",
            codec,
            "-q",
            "-o",
            out,
            "--resume",
        ]
    };
    let t0 = Instant::now();
    ok(d, &args("one.zarr", "zstd")[..9]);
    // Delays up to a sixth of a whole run: each run gets some way before it is killed, and
    // 10 kills per store leave work for the last run.
    let span = (t0.elapsed().as_millis() as u64 / 6).max(20);
    let stores = [("zstd.zarr", "zstd"), ("none.zarr", "none")];
    let mut kills = 0;
    for round in 0..20 {
        let (out, codec) = stores[round % 2];
        let delay = Duration::from_millis(rng.below(span));
        let mut child = command(d, &args(out, codec))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start tessera");
        std::thread::sleep(delay);
        // SAFETY: kill(2) on the id of our own child, which we have not yet waited for.
        let killed = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) } == 0;
        let status = child.wait().unwrap();
        kills += usize::from(killed && !status.success());
        let (_, said, err) = run(d, &["verify", out]);
        let ctx = format!("seed {seed}, round {round}, {out} killed after {delay:?}");
        assert!(!said.contains("corrupt "), "{ctx}: a torn chunk:\n{said}");
        assert!(
            said.contains("present and valid") || err.contains("no Zarr array"),
            "{ctx}: verify said:\n{said}{err}"
        );
    }
    eprintln!("killed {kills} of 20 runs before they finished (delays below {span} ms)");
    for (out, codec) in stores {
        ok(d, &args(out, codec));
        let said = ok(d, &["verify", out]);
        assert!(
            said.contains("400 of 400 chunks present and valid"),
            "{said}"
        );
        assert_same_array(
            d,
            out,
            "one.zarr",
            Kind::F64,
            &format!("seed {seed}, {out}"),
        );
        let left = files_named(&d.join(out), ".tessera-tmp-");
        assert!(left.is_empty(), "seed {seed}: left behind: {left:?}");
    }
}

/// Mounts a tmpfs of `size` at `dir` and unmounts it when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs: {}", text(&out.stderr).trim()));
        }
        Ok(Tmpfs(dir.to_owned()))
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {}", text(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The variable that tells the full-disk test it runs again inside `unshare -rm`.
const IN_NAMESPACE: &str = "TESSERA_TEST_IN_USER_NAMESPACE";

/// An output that does not fit on its disk (8 MB of uncompressed distances on a 3 MB tmpfs):
/// a plain run and a resumed run both stop with an error naming the chunk and "No space left
/// on device", without a panic; the plain run leaves nothing, the resumed run an array marked
/// incomplete (`info`, `verify`). Once the disk is larger, `--resume` completes it and it
/// equals the single-process array.
#[test]
fn a_full_disk_is_a_clear_error_and_resume_completes() {
    let test = "a_full_disk_is_a_clear_error_and_resume_completes";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mnt = d.join("mnt");
    let disk = match Tmpfs::mount(&mnt, "3m") {
        Ok(m) => m,
        Err(why) if std::env::var_os(IN_NAMESPACE).is_none() => {
            // Not root: run this test again as root of a user and mount namespace.
            let me = std::env::current_exe().unwrap();
            let status = Command::new("unshare")
                .args(["-rm"])
                .arg(&me)
                .args(["--exact", test, "--nocapture", "--test-threads", "1"])
                .env(IN_NAMESPACE, "1")
                .status();
            match status {
                Ok(s) if s.success() => return,
                Ok(s) => {
                    panic!("{test} inside `unshare -rm` failed ({s}); mounting outside: {why}")
                }
                Err(e) => {
                    let why = format!("{why}; unshare -rm: {e}");
                    assert!(
                        !python::oracle_required(),
                        "{test}: a tmpfs is required (TESSERA_REQUIRE_ORACLE=1) but {why}"
                    );
                    eprintln!("skipped {test}: {why}");
                    return;
                }
            }
        }
        Err(why) => {
            assert!(
                !python::oracle_required(),
                "{test}: a tmpfs is required (TESSERA_REQUIRE_ORACLE=1) but {why}"
            );
            eprintln!("skipped {test}: {why}");
            return;
        }
    };
    inputs(d);
    let args = |out: &'static str| {
        vec![
            "cdist", "x.npy", "--chunk", "100", "--codec", "none", "-q", "-o", out,
        ]
    };
    ok(d, &args("one.zarr"));
    // A plain run: a clear error, and nothing left behind.
    let err = fails(
        d,
        &args("mnt/plain.zarr"),
        &[],
        &["No space left on device"],
    );
    assert!(err.contains("mnt/plain.zarr"), "{err}");
    assert!(
        !mnt.join("plain.zarr").exists(),
        "a failed plain run left its output"
    );
    let left: Vec<_> = std::fs::read_dir(&mnt).unwrap().flatten().collect();
    assert!(left.is_empty(), "a failed plain run left {left:?}");
    // A resumed run: the chunks that fitted stay, the array marked incomplete.
    let mut resume = args("mnt/d.zarr");
    resume.push("--resume");
    let err = fails(d, &resume, &[], &["No space left on device", "chunk c/"]);
    assert!(err.contains("mnt/d.zarr"), "{err}");
    let info = ok(d, &["info", "mnt/d.zarr"]);
    assert!(info.contains("INCOMPLETE"), "{info}");
    let (complete, said, _) = run(d, &["verify", "mnt/d.zarr"]);
    assert!(!complete, "verify passed a full disk's output:\n{said}");
    assert!(
        said.contains("missing c/") && !said.contains("corrupt "),
        "{said}"
    );
    let (readable, _, err) = run(d, &["eval", "x.sum()", "--in", "x=mnt/d.zarr"]);
    assert!(!readable && err.contains("incomplete"), "{err}");
    // Space freed: the same command completes it.
    disk.resize("16m");
    let said = ok(d, &resume);
    assert!(said.contains("the array is complete"), "{said}");
    let (_, of) = wrote(&said);
    assert_eq!(of, 100, "{said}");
    let said = ok(d, &["verify", "mnt/d.zarr"]);
    assert!(
        said.contains("100 of 100 chunks present and valid"),
        "{said}"
    );
    assert_same_array(
        d,
        "mnt/d.zarr",
        "one.zarr",
        Kind::F64,
        "after the disk was full",
    );
    drop(disk);
}

// -------------------------------------------------------------------------------------------
// verify
// -------------------------------------------------------------------------------------------

/// A deleted chunk file is listed as missing and a truncated or overwritten one as corrupt,
/// by key, in a compressed Zarr v3 array and an uncompressed v2 one (`0.1` keys): `verify`
/// exits 1, `info` shows the array incomplete and readers refuse it; `--resume` recomputes
/// exactly those chunks, and `verify` then passes. In a knn group, a chunk missing from one of
/// its arrays is listed under that array.
#[test]
fn verify_lists_missing_and_corrupt_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    for (out, extra, keys) in [
        ("zstd.zarr", &[][..], ["c/0/1", "c/1/1", "c/2/0"]),
        (
            "none.zarr",
            &["--codec", "none", "--zarr-format", "2"][..],
            ["0.1", "1.1", "2.0"],
        ),
    ] {
        let mut args = vec!["cdist", "x.npy", "y.npy", "--chunk", "300", "-q", "-o", out];
        args.extend(extra);
        ok(d, &args);
        let mut split_args = args.clone();
        split_args[7] = "split.zarr";
        let _ = std::fs::remove_dir_all(d.join("split.zarr"));
        split(d, &split_args, 2, &["split.zarr"], 8);
        let arr = d.join("split.zarr");
        let [missing, truncated, garbage] = keys;
        std::fs::remove_file(arr.join(missing)).unwrap();
        let whole = std::fs::read(arr.join(truncated)).unwrap();
        std::fs::write(arr.join(truncated), &whole[..whole.len() / 2]).unwrap();
        std::fs::write(arr.join(garbage), b"not a chunk").unwrap();
        let (complete, said, err) = run(d, &["verify", "split.zarr"]);
        assert!(!complete, "{out}: verify passed:\n{said}");
        assert!(err.contains("incomplete"), "{out}: {err}");
        assert!(
            said.contains("5 of 8 chunks present and valid; 1 missing, 2 corrupt"),
            "{said}"
        );
        assert!(
            said.contains(&format!("  missing {missing}\n")),
            "{out}:\n{said}"
        );
        assert!(
            said.contains(&format!("  corrupt {truncated}: ")),
            "{out}:\n{said}"
        );
        assert!(
            said.contains(&format!("  corrupt {garbage}: ")),
            "{out}:\n{said}"
        );
        let info = ok(d, &["info", "split.zarr"]);
        assert!(info.contains("INCOMPLETE"), "{out}:\n{info}");
        let (readable, _, err) = run(d, &["eval", "x.sum()", "--in", "x=split.zarr"]);
        assert!(!readable && err.contains("incomplete"), "{out}: {err}");
        let mut resume = split_args.clone();
        resume.push("--resume");
        let said = ok(d, &resume);
        assert!(said.contains("wrote 3 of 8 blocks"), "{out}: {said}");
        assert!(said.contains("(5 already present)"), "{out}: {said}");
        let said = ok(d, &["verify", "split.zarr"]);
        assert!(
            said.contains("8 of 8 chunks present and valid; marked complete"),
            "{said}"
        );
        assert_same_array(d, "split.zarr", out, Kind::F64, out);
    }
    // A knn group: each array is checked.
    split(
        d,
        &[
            "knn", "x.npy", "-k", "3", "--chunk", "300", "-q", "-o", "nn.zarr",
        ],
        2,
        &["nn.zarr"],
        4,
    );
    std::fs::remove_file(d.join("nn.zarr/distances/c/2/0")).unwrap();
    let (complete, said, _) = run(d, &["verify", "nn.zarr"]);
    assert!(!complete, "{said}");
    assert!(
        said.contains("indices: 4 of 4 chunks present and valid"),
        "{said}"
    );
    assert!(
        said.contains("distances: 3 of 4 chunks present and valid"),
        "{said}"
    );
    assert!(said.contains("  missing c/2/0"), "{said}");
}

/// `verify` on a complete array that a plain run wrote passes, chunks left out because they
/// are all fill value (zarrs does not store them) included, and leaves it readable.
#[test]
fn verify_passes_a_plain_array_with_chunks_of_fill_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["eval", "zeros((10, 10), chunks=5)", "-o", "z.zarr"]);
    let said = ok(d, &["verify", "z.zarr"]);
    assert!(said.contains("the other 4 absent"), "{said}");
    let info = ok(d, &["info", "z.zarr"]);
    assert!(!info.contains("INCOMPLETE"), "{info}");
    assert_eq!(
        ok(d, &["eval", "x.sum()", "--in", "x=z.zarr"]).trim(),
        "0.0"
    );
}

// -------------------------------------------------------------------------------------------
// Bad input
// -------------------------------------------------------------------------------------------

#[test]
fn a_task_index_beyond_the_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = data("points.npy");
    let cdist = [
        "cdist",
        &x,
        "-o",
        "d.zarr",
        "--task-index",
        "2",
        "--task-count",
        "2",
    ];
    fails(
        d,
        &cdist,
        &[],
        &["task index 2 is out of range for 2 tasks (0 to 1)"],
    );
    let env = [
        ("SLURM_ARRAY_TASK_ID", "4"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ];
    fails(
        d,
        &["cdist", &x, "-o", "d.zarr"],
        &env,
        &[
            "task index 4 is out of range for 4 tasks",
            "$SLURM_ARRAY_TASK_ID",
        ],
    );
    assert!(!d.join("d.zarr").exists());
}

/// A resumable `knn` checks k and y's coordinates before it creates its outputs, and a
/// `--chunk` longer than the points gives chunks as long as the points (not chunks padded to
/// 100 million rows).
#[test]
fn resumable_knn_checks_k_first_and_clamps_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    inputs(d);
    let args = [
        "knn", "x.npy", "-k", "1001", "--resume", "-q", "-o", "nn.zarr",
    ];
    fails(
        d,
        &args,
        &[],
        &["k = 1001 is more than the 1000 candidate points"],
    );
    assert!(!d.join("nn.zarr").exists());
    // A y of other coordinates is refused before anything is created too.
    ok(d, &["eval", "x[:, :2]", "--in", "x=x.npy", "-o", "z.npy"]);
    let args = [
        "knn", "x.npy", "z.npy", "-k", "2", "--resume", "-q", "-o", "nn.zarr",
    ];
    fails(d, &args, &[], &["x has 3 coordinates", "y has 2"]);
    assert!(!d.join("nn.zarr").exists());
    let args = [
        "knn",
        "x.npy",
        "-k",
        "2",
        "--chunk",
        "100000000",
        "--resume",
        "-q",
        "-o",
        "nn.zarr",
    ];
    ok(d, &args);
    for name in ["indices", "distances"] {
        let meta = std::fs::read_to_string(d.join("nn.zarr").join(name).join("zarr.json")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        let chunk = &meta["chunk_grid"]["configuration"]["chunk_shape"];
        assert_eq!(chunk, &serde_json::json!([1000, 2]), "{name}: {meta}");
    }
}

#[test]
fn a_task_index_needs_a_task_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = data("points.npy");
    fails(
        d,
        &["cdist", &x, "-o", "d.zarr", "--task-index", "0"],
        &[],
        &["--task-index needs --task-count"],
    );
    fails(
        d,
        &["cdist", &x, "-o", "d.zarr"],
        &[("JOB_COMPLETION_INDEX", "0")],
        &["$JOB_COMPLETION_INDEX is set", "--task-count"],
    );
    assert!(!d.join("d.zarr").exists());
}

/// A worker started with another metric, tile size or codec than the store's first worker is
/// refused, naming the difference, and writes nothing.
#[test]
fn workers_with_other_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = data("points.npy");
    let task = |i: &'static str, extra: &[&'static str]| {
        let mut a = vec!["cdist", x.as_str(), "--chunk", "500", "-q", "-o", "d.zarr"];
        a.extend(["--task-index", i, "--task-count", "2"]);
        a.extend(extra);
        a
    };
    ok(d, &task("0", &[]));
    let before = files_named(&d.join("d.zarr"), "");
    fails(
        d,
        &task("1", &["--metric", "cityblock"]),
        &[],
        &["attributes.tessera_run.metric: the store has \"euclidean\", this run \"cityblock\""],
    );
    let mut other_chunk = task("1", &[]);
    other_chunk[3] = "400";
    fails(
        d,
        &other_chunk,
        &[],
        &["chunk_shape: the store has [500,500], this run [400,400]"],
    );
    fails(
        d,
        &task("1", &["--codec", "none"]),
        &[],
        &["codecs: the store has", "zstd"],
    );
    assert_eq!(files_named(&d.join("d.zarr"), ""), before);
}

/// `--resume` into a store another command wrote (split or plain) is refused.
#[test]
fn resume_on_a_store_of_another_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = data("points.npy");
    let args = ["cdist", &x, "--chunk", "500", "-o", "c.zarr", "--resume"];
    ok(
        d,
        &[
            "convert",
            &x,
            "c.zarr",
            "--task-index",
            "0",
            "--task-count",
            "1",
            "--resume",
        ],
    );
    fails(
        d,
        &args,
        &[],
        &["attributes.tessera_run.command: the store has \"convert\", this run \"cdist\""],
    );
    std::fs::remove_dir_all(d.join("c.zarr")).unwrap();
    ok(d, &["convert", &x, "c.zarr"]);
    fails(
        d,
        &args,
        &[],
        &["c.zarr was not written by a split or resumed run"],
    );
}

#[test]
fn split_runs_to_hdf5_or_npy_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = data("points.npy");
    for out in ["d.npy", "d.h5:/d"] {
        fails(
            d,
            &[
                "cdist",
                &x,
                "-o",
                out,
                "--task-index",
                "0",
                "--task-count",
                "2",
            ],
            &[],
            &[&format!("needs a Zarr output (dir.zarr), not {out}")],
        );
        fails(
            d,
            &["convert", &x, out, "--resume"],
            &[],
            &["--resume needs a Zarr output"],
        );
    }
    fails(
        d,
        &["knn", &x, "-k", "2", "-o", "nn.h5"],
        &[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "2")],
        &["needs a Zarr output"],
    );
    assert!(std::fs::read_dir(d).unwrap().next().is_none());
}

#[test]
fn overwrite_with_resume_or_a_split_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = data("points.npy");
    fails(
        d,
        &["cdist", &x, "-o", "d.zarr", "--resume", "--overwrite"],
        &[],
        &["--overwrite cannot be combined"],
    );
    fails(
        d,
        &[
            "convert",
            &x,
            "d.zarr",
            "--overwrite",
            "--task-index",
            "1",
            "--task-count",
            "2",
        ],
        &[],
        &["task 1 of 2", "--overwrite cannot be combined"],
    );
}

#[test]
fn a_split_eval_needs_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = format!("x={}", data("points.npy"));
    fails(
        d,
        &[
            "eval",
            "x * 2",
            "--in",
            &x,
            "--task-index",
            "0",
            "--task-count",
            "2",
        ],
        &[],
        &["needs an output: -o OUT.zarr"],
    );
}
