//! `tessera cdist` and `tessera knn` from the command line: the arrays they write to `.npy`,
//! Zarr and HDF5 against naive loops, and their errors (one `error: ` line, non-zero exit,
//! nothing written).

use ndarray::{Array2, ArrayD};
use ndarray_npy::{read_npy, write_npy};
use std::path::Path;
use tessera::{ChunkedArray, Chunks};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/points.rs"]
mod points;
use cli::{ok, run, run_env};
use points::points;

/// Runs a command that must fail with one `error:` line holding every needle, and leave the
/// directory as it was.
fn fails(dir: &Path, args: &[&str], needles: &[&str]) {
    let before = listing(dir);
    let (success, stdout, stderr) = run(dir, args);
    assert!(!success, "tessera {args:?} should fail; stdout {stdout}");
    assert!(stdout.is_empty(), "stdout of a failure: {stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:"));
    let line = line.unwrap_or_else(|| panic!("no error line in {stderr:?}"));
    for n in needles {
        assert!(line.contains(n), "error {line:?} should mention {n:?}");
    }
    assert_eq!(listing(dir), before, "a failed run changed the directory");
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn cityblock(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

fn reference(x: &Array2<f64>, y: &Array2<f64>, f: fn(&[f64], &[f64]) -> f64) -> Array2<f64> {
    Array2::from_shape_fn((x.nrows(), y.nrows()), |(i, j)| {
        f(x.row(i).as_slice().unwrap(), y.row(j).as_slice().unwrap())
    })
}

fn assert_close(got: &ArrayD<f64>, want: &Array2<f64>, rel: f64) {
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1.0);
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() <= rel * scale, "got {g}, want {w}");
    }
}

fn setup() -> (tempfile::TempDir, Array2<f64>, Array2<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let x = points(37, 5, 1);
    let y = points(23, 5, 2);
    write_npy(dir.path().join("x.npy"), &x).unwrap();
    write_npy(dir.path().join("y.npy"), &y).unwrap();
    (dir, x, y)
}

#[test]
fn cdist_writes_npy_zarr_and_hdf5_equal_to_a_naive_loop() {
    let (dir, x, y) = setup();
    let d = dir.path();
    let want = reference(&x, &y, cityblock);
    let out = ok(
        d,
        &[
            "cdist",
            "x.npy",
            "y.npy",
            "--metric",
            "cityblock",
            "--chunk",
            "7",
            "-o",
            "d.npy",
        ],
    );
    assert!(out.contains("[37, 23]") && out.contains("d.npy"), "{out}");
    let got: ArrayD<f64> = read_npy(d.join("d.npy")).unwrap();
    assert_close(&got, &want, 1e-12);

    ok(
        d,
        &[
            "cdist",
            "x.npy",
            "y.npy",
            "--metric",
            "cityblock",
            "--chunk",
            "7",
            "-o",
            "d.zarr",
        ],
    );
    let z = ChunkedArray::<f64>::from_zarr(d.join("d.zarr"), Chunks::Auto).unwrap();
    let meta = std::fs::read_to_string(d.join("d.zarr/zarr.json")).unwrap();
    let compact: String = meta.split_whitespace().collect();
    assert!(
        compact.contains("\"chunk_shape\":[7,7]"),
        "one Zarr chunk per tile: {meta}"
    );
    assert_close(&z.compute().unwrap(), &want, 1e-12);

    #[cfg(feature = "hdf5")]
    {
        let want = reference(&x, &y, euclidean);
        ok(
            d,
            &[
                "cdist",
                "x.npy",
                "y.npy",
                "--chunk",
                "10",
                "-o",
                "d.h5:/group/euclidean",
            ],
        );
        let h = ChunkedArray::<f64>::from_hdf5(d.join("d.h5"), "/group/euclidean", Chunks::Auto)
            .unwrap();
        assert_close(&h.compute().unwrap(), &want, 1e-9);
    }
}

#[test]
fn cdist_of_x_with_itself_is_symmetric_with_a_zero_diagonal() {
    let (dir, x, _) = setup();
    let d = dir.path();
    ok(d, &["cdist", "x.npy", "--chunk", "6", "-o", "p.npy"]);
    let got: ArrayD<f64> = read_npy(d.join("p.npy")).unwrap();
    assert_close(&got, &reference(&x, &x, euclidean), 1e-9);
    for i in 0..x.nrows() {
        assert_eq!(got[[i, i]], 0.0);
        for j in 0..x.nrows() {
            assert_eq!(got[[i, j]].to_bits(), got[[j, i]].to_bits());
        }
    }
}

#[test]
fn cdist_f32_stays_f32() {
    let (dir, x, y) = setup();
    let d = dir.path();
    ok(
        d,
        &[
            "cdist",
            "x.npy",
            "y.npy",
            "--dtype",
            "f32",
            "--metric",
            "chebyshev",
            "-o",
            "c.npy",
        ],
    );
    let got: ArrayD<f32> = read_npy(d.join("c.npy")).unwrap();
    let want = reference(&x, &y, |a, b| {
        a.iter().zip(b).fold(0f64, |m, (p, q)| m.max((p - q).abs()))
    });
    for (g, w) in got.iter().zip(want.iter()) {
        assert!(
            (f64::from(*g) - w).abs() <= 1e-5 * 10.0,
            "got {g}, want {w}"
        );
    }
}

/// Row `i` of the reference sorted by (distance, index).
fn sorted_row(m: &Array2<f64>, i: usize) -> Vec<(f64, i64)> {
    let mut v: Vec<(f64, i64)> = m
        .row(i)
        .iter()
        .enumerate()
        .map(|(j, &v)| (v, j as i64))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    v
}

#[test]
fn knn_writes_indices_and_distances_to_zarr_and_hdf5() {
    let (dir, x, y) = setup();
    let d = dir.path();
    let full = reference(&x, &y, cityblock);
    let out = ok(
        d,
        &[
            "knn",
            "x.npy",
            "y.npy",
            "-k",
            "4",
            "--metric",
            "cityblock",
            "-o",
            "nn.zarr",
        ],
    );
    assert!(
        out.contains("nn.zarr/indices") && out.contains("nn.zarr/distances"),
        "{out}"
    );
    let idx = ChunkedArray::<i64>::from_zarr(d.join("nn.zarr/indices"), Chunks::Auto)
        .unwrap()
        .compute()
        .unwrap();
    let dist = ChunkedArray::<f64>::from_zarr(d.join("nn.zarr/distances"), Chunks::Auto)
        .unwrap()
        .compute()
        .unwrap();
    assert_eq!(idx.shape(), &[37, 4]);
    for i in 0..37 {
        let want = sorted_row(&full, i);
        for q in 0..4 {
            assert_eq!(idx[[i, q]], want[q].1, "row {i}");
            assert!((dist[[i, q]] - want[q].0).abs() <= 1e-12 * want[q].0.max(1.0));
        }
    }
    #[cfg(feature = "hdf5")]
    {
        ok(d, &["knn", "x.npy", "-k", "3", "-o", "nn.h5"]);
        let idx = ChunkedArray::<i64>::from_hdf5(d.join("nn.h5"), "/indices", Chunks::Auto)
            .unwrap()
            .compute()
            .unwrap();
        let self_full = reference(&x, &x, euclidean);
        for i in 0..37 {
            assert_eq!(idx[[i, 0]], i as i64, "each point is its own nearest");
            let want = sorted_row(&self_full, i);
            assert_eq!(idx[[i, 1]], want[1].1);
        }
    }
}

#[test]
fn knn_radius_counts_the_points_within() {
    let (dir, x, y) = setup();
    let d = dir.path();
    ok(
        d,
        &["knn", "x.npy", "y.npy", "--radius", "4.5", "-o", "c.zarr"],
    );
    let counts = ChunkedArray::<i64>::from_zarr(d.join("c.zarr/counts"), Chunks::Auto)
        .unwrap()
        .compute()
        .unwrap();
    let full = reference(&x, &y, euclidean);
    for i in 0..37 {
        let want = full.row(i).iter().filter(|&&v| v <= 4.5).count() as i64;
        assert_eq!(counts[[i]], want);
    }
}

#[test]
fn bad_distance_inputs_are_named() {
    let (dir, _, _) = setup();
    let d = dir.path();
    write_npy(d.join("z.npy"), &points(5, 4, 3)).unwrap();
    write_npy(d.join("empty.npy"), &Array2::<f64>::zeros((0, 3))).unwrap();
    fails(
        d,
        &["cdist", "x.npy", "z.npy", "-o", "o.npy"],
        &["5", "4", "same d"],
    );
    fails(
        d,
        &["cdist", "x.npy", "--metric", "manhattan", "-o", "o.npy"],
        &["manhattan", "cityblock", "braycurtis"],
    );
    fails(
        d,
        &[
            "cdist",
            "x.npy",
            "--metric",
            "minkowski",
            "--p",
            "-1",
            "-o",
            "o.npy",
        ],
        &["p > 0"],
    );
    fails(
        d,
        &[
            "cdist",
            "x.npy",
            "--metric",
            "cityblock",
            "--p",
            "3",
            "-o",
            "o.npy",
        ],
        &["minkowski"],
    );
    fails(d, &["cdist", "empty.npy", "-o", "o.npy"], &["empty"]);
    // Empty points are named as empty, not as too few for k; a Y that is not 2-D is named.
    for args in [
        &["knn", "empty.npy", "-k", "1", "-o", "o.zarr"][..],
        &["knn", "x.npy", "empty.npy", "-k", "1", "-o", "o.zarr"],
    ] {
        fails(d, args, &["empty.npy", "is empty"]);
    }
    write_npy(d.join("flat.npy"), &ndarray::Array1::<f64>::zeros(5)).unwrap();
    fails(
        d,
        &["cdist", "x.npy", "flat.npy", "-o", "o.npy"],
        &["flat.npy must be a 2-D array", "[5]"],
    );
    fails(
        d,
        &[
            "cdist",
            "x.npy",
            "--metric",
            "cosine",
            "--mem",
            "1MB",
            "--threads",
            "2",
            "-o",
            "o.zarr",
        ],
        &[
            "cosine distance tiles of 16 x 16 (d=5)",
            "limit",
            "at least 9.0 MiB",
        ],
    );
    fails(
        d,
        &["cdist", "x.npy", "--dtype", "i32", "-o", "o.npy"],
        &["--dtype"],
    );
    fails(
        d,
        &["knn", "x.npy", "-k", "0", "-o", "o.zarr"],
        &["k must be at least 1"],
    );
    fails(
        d,
        &["knn", "x.npy", "y.npy", "-k", "24", "-o", "o.zarr"],
        &["24", "23"],
    );
    fails(
        d,
        &["knn", "x.npy", "-k", "2", "-o", "o.npy"],
        &["Zarr group", "HDF5"],
    );
    fails(
        d,
        &["knn", "x.npy", "--radius", "-1", "-o", "o.zarr"],
        &["radius"],
    );
    fails(
        d,
        &["knn", "x.npy", "z.npy", "-k", "1", "-o", "o.zarr"],
        &["same d"],
    );
}

/// A small `--mem`: the L1 metrics take tiles that fit it (the GEMM's packing space is not
/// counted for them), the GEMM metrics say how much memory they need, and knn says when its
/// rows of results alone do not fit. Each message's figures agree with each other.
#[test]
fn a_small_memory_limit_takes_small_tiles_or_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = points(300, 5, 4);
    write_npy(d.join("x.npy"), &x).unwrap();
    let args = ["--metric", "cityblock", "--mem", "1MiB", "--threads", "2"];
    let out = ok(
        d,
        &[&["cdist", "x.npy"][..], &args, &["-o", "c.npy"]].concat(),
    );
    // 512 KiB per thread: the panel loop's 256 KiB, and tiles of up to 95 rows (75 to spread
    // them over the threads). Counting 4 MiB for every metric refused this.
    assert!(out.contains("16 tiles of [75, 75]"), "{out}");
    let got: ArrayD<f64> = read_npy(d.join("c.npy")).unwrap();
    assert_close(&got, &reference(&x, &x, cityblock), 1e-12);
    let (_, want_knn) = (
        ok(
            d,
            &[
                "knn",
                "x.npy",
                "-k",
                "3",
                "--metric",
                "cityblock",
                "-o",
                "a.zarr",
            ],
        ),
        ok(
            d,
            &[&["knn", "x.npy", "-k", "3"][..], &args, &["-o", "b.zarr"]].concat(),
        ),
    );
    assert!(want_knn.contains("b.zarr"), "{want_knn}");
    for name in ["indices", "distances"] {
        for run in ["a", "b"] {
            let src = format!("{run}.zarr/{name}");
            ok(d, &["convert", &src, &format!("{run}_{name}.npy")]);
        }
        let a = std::fs::read(d.join(format!("a_{name}.npy"))).unwrap();
        let b = std::fs::read(d.join(format!("b_{name}.npy"))).unwrap();
        assert_eq!(
            a, b,
            "knn {name} with --mem 1MiB differs from the default run"
        );
    }
    // The GEMM metrics count 4 MiB per task for the gemm crate's packing: 9 MiB over 2 threads.
    // Euclidean with 5 coordinates takes the panel loop, not the GEMM, and fits 1 MiB.
    fails(
        d,
        &[
            "cdist",
            "x.npy",
            "--metric",
            "cosine",
            "--mem",
            "8MiB",
            "--threads",
            "2",
            "-o",
            "e.npy",
        ],
        &["cosine distance tiles of 16 x 16", "at least 9.0 MiB"],
    );
    ok(
        d,
        &[
            "cdist",
            "x.npy",
            "--mem",
            "1MiB",
            "--threads",
            "2",
            "-o",
            "e.npy",
        ],
    );
    let got: ArrayD<f64> = read_npy(d.join("e.npy")).unwrap();
    assert_close(&got, &reference(&x, &x, euclidean), 1e-12);
    // 20000 rows of 3 neighbours (indices, distances and a heap) hold more than half of 1 MiB.
    write_npy(d.join("many.npy"), &points(20000, 2, 5)).unwrap();
    fails(
        d,
        &[&["knn", "many.npy", "-k", "3"][..], &args, &["-o", "k.zarr"]].concat(),
        &[
            "the 20000 rows of results of knn(cityblock, d=2)",
            "needs about 1.1 MiB at once, more than the 512.0 KiB it may hold of the 1.0 MiB allowed",
        ],
    );
}

/// Progress: nothing on a redirected stderr or with --quiet; with TESSERA_PROGRESS=lines, lines
/// whose block counts rise to the number of tiles (cdist) or of row tasks (knn).
#[test]
fn progress_lines_count_the_blocks_and_stay_off_when_redirected() {
    let dir = tempfile::tempdir().unwrap();
    write_npy(dir.path().join("x.npy"), &points(300, 3, 7)).unwrap();
    let lines = [("TESSERA_PROGRESS", "lines")];
    let args = ["cdist", "x.npy", "--chunk", "50", "-o", "a.npy"];
    let (success, _, stderr) = run_env(dir.path(), &args, &[]);
    assert!(success && stderr.is_empty(), "{stderr}");
    let args = ["cdist", "x.npy", "--chunk", "50", "-o", "b.npy", "--quiet"];
    let (success, _, stderr) = run_env(dir.path(), &args, &lines);
    assert!(success && stderr.is_empty(), "{stderr}");
    let args = ["cdist", "x.npy", "--chunk", "50", "-o", "c.npy"];
    let (success, _, stderr) = run_env(dir.path(), &args, &lines);
    assert!(success, "{stderr}");
    let counts: Vec<(usize, usize)> = stderr
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("progress: ").expect(l);
            let (frac, _) = rest.split_once(" blocks").expect(l);
            let (done, total) = frac.split_once('/').expect(l);
            (done.parse().unwrap(), total.parse().unwrap())
        })
        .collect();
    // 6 x 6 tiles, the 15 above the diagonal written twice: every report counts both.
    assert!(counts.iter().all(|&(_, t)| t == 36), "{stderr}");
    assert!(counts.windows(2).all(|w| w[0].0 < w[1].0), "{stderr}");
    assert_eq!(counts.last(), Some(&(36, 36)), "{stderr}");
    assert!(counts.len() >= 5, "a line per tenth: {stderr}");
    let a: ArrayD<f64> = read_npy(dir.path().join("a.npy")).unwrap();
    let c: ArrayD<f64> = read_npy(dir.path().join("c.npy")).unwrap();
    assert_eq!(a, c);
    let args = ["knn", "x.npy", "-k", "2", "-o", "nn.zarr"];
    let (success, _, stderr) = run_env(dir.path(), &args, &lines);
    assert!(success, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_string();
    let frac = last.split_whitespace().nth(1).unwrap_or_default();
    let (done, total) = frac.split_once('/').expect(&last);
    assert_eq!(done, total, "{stderr}");
}
