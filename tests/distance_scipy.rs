//! Distances against SciPy: `cdist` for every metric (minkowski with p = 1, 2, 3, 4, 2.5, 0.5
//! and infinity), f64 and f32 points (SciPy computes in f64), on both sides of the direct/GEMM
//! switch and with NaN, infinite, zero, constant, duplicate and opposite points mixed in;
//! `pdist` against `squareform(pdist(x))`; `knn` against NumPy's stable `argsort` of SciPy's
//! matrix.
//!
//! The oracle is `tests/python/distance_oracle.py`, run once per test on a batch of jobs by the
//! interpreter named by `$TESSERA_PYTHON` (see `tests/python/README.md`); without one the tests
//! print that they were skipped, unless `TESSERA_REQUIRE_ORACLE=1`.
//!
//! Tolerances (from the issue, as in `tests/distance.rs`): f64 results within 1e-12 of each
//! element for the L1 family (cityblock, chebyshev, minkowski, canberra, braycurtis, hamming)
//! and within 1e-9 of the largest finite distance of the matrix for the GEMM metrics
//! (euclidean, sqeuclidean, cosine, correlation); f32 results within 1e-5 of the largest finite
//! distance (f32's unit roundoff is 6e-8; sums of at most 40 terms and the GEMM's recomputation
//! below 5% cancellation keep the error well under that). NaN and infinities must sit exactly
//! where SciPy puts them.

#[path = "common/distance_tolerance.rs"]
mod distance_tolerance;
#[path = "common/python.rs"]
mod python;

use distance_tolerance::{matches, tolerance};
use ndarray::{ArrayD, IxDyn};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use tessera::chunks::AxisChunks;
use tessera::distance::{cdist, knn, pdist, DistFloat, Metric, DIRECT_EUCLIDEAN_MAX_D};
use tessera::{ChunkedArray, Chunks, ExecOptions};

/// Every metric, minkowski with p = 1, 2, 3, 4, 2.5, 0.5 and infinity.
const METRICS: [Metric; 16] = [
    Metric::Euclidean,
    Metric::SqEuclidean,
    Metric::Cityblock,
    Metric::Chebyshev,
    Metric::Minkowski(1.0),
    Metric::Minkowski(2.0),
    Metric::Minkowski(3.0),
    Metric::Minkowski(4.0),
    Metric::Minkowski(2.5),
    Metric::Minkowski(0.5),
    Metric::Minkowski(f64::INFINITY),
    Metric::Cosine,
    Metric::Correlation,
    Metric::Hamming,
    Metric::Canberra,
    Metric::BrayCurtis,
];

/// Runs the oracle's `main` on `sys.argv[1:]`.
const ORACLE: &str = "import sys, distance_oracle; sys.exit(distance_oracle.main(sys.argv[1:]))";

// ---------------------------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------------------------

/// f32 and f64, with what the tests need of them.
trait Real: DistFloat + Into<f64> + ndarray_npy::WritableElement {
    const NAME: &'static str;
    fn narrow(v: f64) -> Self;
}
impl Real for f64 {
    const NAME: &'static str = "f64";
    fn narrow(v: f64) -> Self {
        v
    }
}
impl Real for f32 {
    const NAME: &'static str = "f32";
    fn narrow(v: f64) -> Self {
        v as f32
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ty {
    F64,
    F32,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::F64 => "f64",
            Ty::F32 => "f32",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` points of `d` coordinates, uniform in `[lo, lo + 2)`.
fn uniform(rng: &mut Rng, n: usize, d: usize, lo: f64) -> ArrayD<f64> {
    ArrayD::from_shape_vec(
        IxDyn(&[n, d]),
        (0..n * d).map(|_| lo + 2.0 * rng.unit()).collect(),
    )
    .unwrap()
}

/// Two sets of points, written for the oracle as `.npy` files of both element types.
struct Data {
    name: &'static str,
    x: ArrayD<f64>,
    y: ArrayD<f64>,
    /// Chunk lengths of x's rows (ragged).
    x_rows: Vec<usize>,
}

impl Data {
    fn new(rng: &mut Rng, name: &'static str, x: ArrayD<f64>, y: ArrayD<f64>) -> Data {
        let mut x_rows = Vec::new();
        let mut left = x.shape()[0];
        while left > 0 {
            let c = 1 + rng.below(left.min(40));
            x_rows.push(c);
            left -= c;
        }
        Data { name, x, y, x_rows }
    }

    /// Writes `x` and `y` as `ty` into `dir`; returns their paths.
    fn save(&self, dir: &Path, ty: Ty) -> (PathBuf, PathBuf) {
        let px = dir.join(format!("{}_{}_x.npy", self.name, ty.name()));
        let py = dir.join(format!("{}_{}_y.npy", self.name, ty.name()));
        match ty {
            Ty::F64 => {
                ndarray_npy::write_npy(&px, &self.x).unwrap();
                ndarray_npy::write_npy(&py, &self.y).unwrap();
            }
            Ty::F32 => {
                ndarray_npy::write_npy(&px, &self.x.mapv(|v| v as f32)).unwrap();
                ndarray_npy::write_npy(&py, &self.y.mapv(|v| v as f32)).unwrap();
            }
        }
        (px, py)
    }

    /// Whether `metric` is compared on this set. Not cosine on the points far from the origin:
    /// they are nearly parallel, so their cosine distances are `1 - cos` within an epsilon of
    /// 1, rounding noise in SciPy's as in ours (correlation centres them first).
    fn compares(&self, metric: Metric) -> bool {
        !(self.name == "offset_d600" && metric == Metric::Cosine)
    }

    /// x with ragged row chunks and coordinate chunks of 7 (which cdist merges).
    fn cx<T: Real>(&self) -> ChunkedArray<T> {
        let chunks = Chunks::PerAxis(vec![
            AxisChunks::Explicit(self.x_rows.clone()),
            AxisChunks::Size(7),
        ]);
        ChunkedArray::from_array(self.x.mapv(T::narrow), chunks).unwrap()
    }

    /// y in blocks of 32 rows.
    fn cy<T: Real>(&self) -> ChunkedArray<T> {
        let chunks = Chunks::PerAxis(vec![AxisChunks::Size(32), AxisChunks::Whole]);
        ChunkedArray::from_array(self.y.mapv(T::narrow), chunks).unwrap()
    }
}

/// Puts NaN, infinities, a zero and a constant row into `a`; when `a` is y, also NaN where
/// x's row 0 has it, infinities against x's, the opposite of x's row 1 and a copy of its row 2.
fn special_rows(rng: &mut Rng, a: &mut ArrayD<f64>, x: Option<&ArrayD<f64>>) {
    let d = a.shape()[1];
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    let k = rng.below(d);
    let mut row = |i: usize, f: &dyn Fn(usize, f64) -> f64| {
        for j in 0..d {
            a[[i, j]] = f(j, a[[i, j]]);
        }
    };
    row(0, &|j, v| if j == k { nan } else { v });
    row(3, &|_, _| nan);
    row(5, &|j, v| if j == 0 { inf } else { v });
    row(7, &|j, v| if j == d - 1 { -inf } else { v });
    row(9, &|j, v| match j {
        0 => inf,
        j if j == d - 1 => -inf,
        _ => v,
    });
    row(11, &|_, _| 0.0);
    row(13, &|_, _| 0.25);
    if let Some(x) = x {
        let k0 = (0..d).find(|&j| x[[0, j]].is_nan()).unwrap_or(0);
        row(15, &|j, v| if j == k0 { nan } else { v });
        row(16, &|j, v| if j == 0 { inf } else { v });
        row(17, &|j, _| -x[[1, j]]);
        row(18, &|j, _| x[[2, j]]);
        row(19, &|j, v| if j == 0 { -inf } else { v });
    }
}

/// The data sets: random points at d = 3, the last d of the direct euclidean loop (positive
/// coordinates, as Bray-Curtis and Canberra are mostly used), a d of the GEMM, points far from
/// the origin and close together, and points with special rows on both sides of the switch;
/// `n` points in x and `m` in y.
fn datasets(n: usize, m: usize) -> Vec<Data> {
    let mut rng = Rng(20);
    let mut sets = Vec::new();
    for (name, d, lo) in [
        ("d3", 3, -1.0),
        ("positive", DIRECT_EUCLIDEAN_MAX_D, 0.0),
        ("d40", 40, -1.0),
    ] {
        let x = uniform(&mut rng, n, d, lo);
        let y = uniform(&mut rng, m, d, lo);
        sets.push(Data::new(&mut rng, name, x, y));
    }
    // Points far from the origin, close to each other: the row means of correlation must be
    // NumPy's (pairwise sums), or the centred points lose their digits.
    let offset = |rng: &mut Rng, n: usize| {
        ArrayD::from_shape_vec(
            IxDyn(&[n, 600]),
            (0..n * 600).map(|_| 1e6 + 2e-6 * rng.unit()).collect(),
        )
        .unwrap()
    };
    let (x, y) = (offset(&mut rng, n), offset(&mut rng, m));
    sets.push(Data::new(&mut rng, "offset_d600", x, y));
    // Points near 1e-160, whose squares and products are subnormal: the GEMM identity loses
    // digits there that its cancellation test does not see.
    let x = uniform(&mut rng, n, 24, -1.0).mapv(|v| v * 1e-160);
    let y = uniform(&mut rng, m, 24, -1.0).mapv(|v| v * 1e-160);
    sets.push(Data::new(&mut rng, "tiny_d24", x, y));
    for (name, d) in [("special_d5", 5), ("special_d24", 24)] {
        let mut x = uniform(&mut rng, n, d, -1.0);
        let mut y = uniform(&mut rng, m, d, -1.0);
        special_rows(&mut rng, &mut x, None);
        special_rows(&mut rng, &mut y, Some(&x));
        sets.push(Data::new(&mut rng, name, x, y));
    }
    sets
}

// ---------------------------------------------------------------------------------------------
// The oracle's jobs
// ---------------------------------------------------------------------------------------------

/// SciPy's name and p argument of a metric.
fn scipy_args(m: Metric) -> (String, String) {
    let p = match m {
        Metric::Minkowski(p) => format!("{p}"),
        _ => "-".to_string(),
    };
    (m.name().to_string(), p)
}

/// A batch of oracle jobs, run with one Python call.
struct Jobs {
    dir: PathBuf,
    lines: Vec<String>,
}

impl Jobs {
    fn new(dir: &Path) -> Jobs {
        Jobs {
            dir: dir.to_path_buf(),
            lines: Vec::new(),
        }
    }

    /// A path for an output file.
    fn out(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.npy"))
    }

    fn push(&mut self, fields: Vec<String>) {
        self.lines.push(fields.join("\t"));
    }

    fn run(&self, py: &Path) {
        let file = self.dir.join("jobs.tsv");
        std::fs::write(&file, self.lines.join("\n") + "\n").unwrap();
        let out = python::run_script(py, ORACLE, &[OsStr::new("batch"), file.as_os_str()]);
        assert_eq!(
            out.trim(),
            format!("ok {}", self.lines.len()),
            "the oracle's answer"
        );
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn read(p: &Path) -> ArrayD<f64> {
    ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------

/// The mismatches of `got` against SciPy's `want`, as lines (at most a few, then a count);
/// positions where `skip` holds are left out.
fn mismatches<T: Real>(
    got: &ArrayD<T>,
    want: &ArrayD<f64>,
    metric: Metric,
    what: &str,
    skip: impl Fn(usize, usize) -> bool,
) -> Vec<String> {
    if got.shape() != want.shape() {
        return vec![format!(
            "{what}: shape {:?}, SciPy's {:?}",
            got.shape(),
            want.shape()
        )];
    }
    let tol = tolerance(metric, T::NAME == "f32", want);
    let mut bad = Vec::new();
    let mut count = 0;
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let (i, j) = (idx[0], idx[1]);
        let g: f64 = g.into();
        if skip(i, j) || matches(g, w, tol(w)) {
            continue;
        }
        count += 1;
        if bad.len() < 4 {
            bad.push(format!(
                "{what}: [{i}, {j}] got {g:e}, SciPy {w:e} (tolerance {:e})",
                tol(w)
            ));
        }
    }
    if count > bad.len() {
        bad.push(format!(
            "{what}: ... {count} of {} elements differ",
            want.len()
        ));
    }
    bad
}

#[track_caller]
fn assert_none(problems: Vec<String>, jobs: usize) {
    assert!(
        problems.is_empty(),
        "{} mismatches with SciPy over {jobs} matrices:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// cdist
// ---------------------------------------------------------------------------------------------

fn cdist_problems<T: Real>(set: &Data, metric: Metric, want: &ArrayD<f64>) -> Vec<String> {
    let what = format!("cdist {} {} {metric}", set.name, T::NAME);
    match cdist(&set.cx::<T>(), &set.cy::<T>(), metric).and_then(|d| d.compute()) {
        Ok(got) => mismatches(&got, want, metric, &what, |_, _| false),
        Err(e) => vec![format!("{what}: error {e}")],
    }
}

#[test]
fn cdist_matches_scipy_for_every_metric() {
    let Some(py) = python::python("cdist_matches_scipy_for_every_metric") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sets = datasets(130, 100);
    let mut jobs = Jobs::new(dir.path());
    let mut checks = Vec::new();
    for (si, set) in sets.iter().enumerate() {
        for ty in [Ty::F64, Ty::F32] {
            let (xf, yf) = set.save(dir.path(), ty);
            for (mi, metric) in METRICS.into_iter().enumerate() {
                if !set.compares(metric) {
                    continue;
                }
                let out = jobs.out(&format!("cdist_{}_{}_{mi}", set.name, ty.name()));
                let (name, p) = scipy_args(metric);
                jobs.push(vec![
                    "cdist".into(),
                    name,
                    p,
                    path(&xf),
                    path(&yf),
                    path(&out),
                ]);
                checks.push((si, ty, metric, out));
            }
        }
    }
    jobs.run(&py);
    let mut problems = Vec::new();
    let (mut nan, mut inf) = (0, 0);
    for (si, ty, metric, out) in &checks {
        let want = read(out);
        nan += want.iter().filter(|v| v.is_nan()).count();
        inf += want.iter().filter(|v| v.is_infinite()).count();
        problems.extend(match ty {
            Ty::F64 => cdist_problems::<f64>(&sets[*si], *metric, &want),
            Ty::F32 => cdist_problems::<f32>(&sets[*si], *metric, &want),
        });
    }
    assert_none(problems, checks.len());
    // The special rows did give SciPy NaN and infinite distances to compare.
    assert!(nan > 1000 && inf > 1000, "NaN: {nan}, inf: {inf}");
}

// ---------------------------------------------------------------------------------------------
// pdist
// ---------------------------------------------------------------------------------------------

/// tessera's pdist against `squareform(pdist(x))`, whose diagonal is 0 for every point (NaN
/// ones included).
fn pdist_problems<T: Real>(
    set: &Data,
    metric: Metric,
    square: &ArrayD<f64>,
    _self_cdist: &ArrayD<f64>,
) -> Vec<String> {
    let what = format!("pdist {} {} {metric}", set.name, T::NAME);
    let got = match pdist(&set.cx::<T>(), metric).and_then(|d| d.compute()) {
        Ok(got) => got,
        Err(e) => return vec![format!("{what}: error {e}")],
    };
    let mut problems = mismatches(&got, square, metric, &what, |i, j| i == j);
    for i in 0..got.shape()[0] {
        let g: f64 = got[[i, i]].into();
        if g != 0.0 {
            problems.push(format!("{what}: diagonal [{i}, {i}]: got {g:e}, want 0"));
        }
    }
    problems
}

#[test]
fn pdist_matches_scipy_squareform() {
    let Some(py) = python::python("pdist_matches_scipy_squareform") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sets = datasets(130, 100);
    let mut jobs = Jobs::new(dir.path());
    let mut checks = Vec::new();
    for (si, set) in sets.iter().enumerate() {
        if set.name == "positive" {
            continue;
        }
        for ty in [Ty::F64, Ty::F32] {
            let (xf, _) = set.save(dir.path(), ty);
            for (mi, metric) in METRICS.into_iter().enumerate() {
                if !set.compares(metric) {
                    continue;
                }
                let stem = format!("{}_{}_{mi}", set.name, ty.name());
                let (sq, xx) = (
                    jobs.out(&format!("pdist_{stem}")),
                    jobs.out(&format!("xx_{stem}")),
                );
                let (name, p) = scipy_args(metric);
                jobs.push(vec![
                    "pdist".into(),
                    name.clone(),
                    p.clone(),
                    path(&xf),
                    path(&sq),
                ]);
                jobs.push(vec![
                    "cdist".into(),
                    name,
                    p,
                    path(&xf),
                    path(&xf),
                    path(&xx),
                ]);
                checks.push((si, ty, metric, sq, xx));
            }
        }
    }
    jobs.run(&py);
    let mut problems = Vec::new();
    for (si, ty, metric, sq, xx) in &checks {
        let (square, self_cdist) = (read(sq), read(xx));
        problems.extend(match ty {
            Ty::F64 => pdist_problems::<f64>(&sets[*si], *metric, &square, &self_cdist),
            Ty::F32 => pdist_problems::<f32>(&sets[*si], *metric, &square, &self_cdist),
        });
    }
    assert_none(problems, checks.len());
}

// ---------------------------------------------------------------------------------------------
// knn
// ---------------------------------------------------------------------------------------------

/// tessera's knn (k = 1, 10 and every point) against the first k columns of NumPy's stable
/// argsort of SciPy's matrix `d`. A swap of two neighbours is allowed only where SciPy's own
/// distances are within the tolerance of each other (rounding can order near-ties either way).
fn knn_problems<T: Real>(
    set: &Data,
    same: bool,
    metric: Metric,
    d: &ArrayD<f64>,
    order: &ArrayD<i64>,
) -> Vec<String> {
    let (cx, cy) = (set.cx::<T>(), set.cy::<T>());
    let y = if same { &cx } else { &cy };
    let m = d.shape()[1];
    let tol = tolerance(metric, T::NAME == "f32", d);
    let mut problems = Vec::new();
    for k in [1, 10, m] {
        let what = format!(
            "knn {} {} {metric} k = {k}{}",
            set.name,
            T::NAME,
            if same { " (x = y)" } else { "" }
        );
        let nn = match knn(&cx, y, k, metric, &ExecOptions::default()) {
            Ok(nn) => nn,
            Err(e) => {
                problems.push(format!("{what}: error {e}"));
                continue;
            }
        };
        let mut bad = 0;
        for i in 0..d.shape()[0] {
            for p in 0..k {
                let (gi, wi) = (nn.indices[[i, p]], order[[i, p]]);
                let gd: f64 = nn.distances[[i, p]].into();
                let ok = gi >= 0 && (gi as usize) < m && {
                    let (dg, dw) = (d[[i, gi as usize]], d[[i, wi as usize]]);
                    (gi == wi || matches(dg, dw, tol(dw))) && matches(gd, dg, tol(dg))
                };
                if !ok {
                    bad += 1;
                    if bad <= 3 {
                        problems.push(format!(
                            "{what}: row {i} neighbour {p}: got index {gi} at {gd:e}, NumPy's \
                             argsort {wi} at {:e}",
                            d[[i, wi as usize]]
                        ));
                    }
                }
            }
        }
        if bad > 3 {
            problems.push(format!("{what}: ... {bad} neighbours differ"));
        }
    }
    problems
}

#[test]
fn knn_matches_numpy_argsort_of_scipy() {
    let Some(py) = python::python("knn_matches_numpy_argsort_of_scipy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Fewer points: each knn sorts every row for k = m.
    let sets: Vec<Data> = datasets(70, 55)
        .into_iter()
        .filter(|s| s.name == "d3" || s.name == "d40")
        .collect();
    let mut jobs = Jobs::new(dir.path());
    let mut checks = Vec::new();
    for (si, set) in sets.iter().enumerate() {
        for ty in [Ty::F64, Ty::F32] {
            let (xf, yf) = set.save(dir.path(), ty);
            for (mi, metric) in METRICS.into_iter().enumerate() {
                if !set.compares(metric) {
                    continue;
                }
                for same in [false, true] {
                    let stem = format!("{}_{}_{mi}_{same}", set.name, ty.name());
                    let (idx, dist) = (
                        jobs.out(&format!("idx_{stem}")),
                        jobs.out(&format!("dist_{stem}")),
                    );
                    let other = if same { &xf } else { &yf };
                    let m = if same {
                        set.x.shape()[0]
                    } else {
                        set.y.shape()[0]
                    };
                    let (name, p) = scipy_args(metric);
                    jobs.push(vec![
                        "knn".into(),
                        name,
                        p,
                        path(&xf),
                        path(other),
                        m.to_string(),
                        path(&idx),
                        path(&dist),
                    ]);
                    checks.push((si, ty, metric, same, idx, dist));
                }
            }
        }
    }
    jobs.run(&py);
    let mut problems = Vec::new();
    for (si, ty, metric, same, idx, dist) in &checks {
        let order: ArrayD<i64> = ndarray_npy::read_npy(idx).unwrap();
        let sorted = read(dist);
        // SciPy's full matrix, back from the sorted one.
        let mut d = ArrayD::from_elem(sorted.raw_dim(), f64::NAN);
        for ((ix, &j), &v) in order.indexed_iter().zip(sorted.iter()) {
            d[[ix[0], j as usize]] = v;
        }
        problems.extend(match ty {
            Ty::F64 => knn_problems::<f64>(&sets[*si], *same, *metric, &d, &order),
            Ty::F32 => knn_problems::<f32>(&sets[*si], *same, *metric, &d, &order),
        });
    }
    assert_none(problems, checks.len());
}
