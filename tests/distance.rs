//! Distances against naive references written here from SciPy's definitions: every metric, f64
//! and f32, every chunking (ragged, single rows, one block, split coordinates), both sides of
//! the direct/GEMM switch, NaN and infinities, near-duplicate points; `pdist` symmetry and its
//! zero diagonal through `compute` and `.npy`; `knn`, `nearest` and `count_within` against a
//! sorted reference; memory limits; bad input; and the portable kernel path, forced with
//! `TESSERA_ISA=baseline` in a subprocess that reruns the `isa_` tests of this binary.
//!
//! Tolerances (from the issue): relative 1e-12 of each element for the L1 family (cityblock,
//! chebyshev, minkowski, canberra, braycurtis, hamming), whose kernels add non-negative terms;
//! 1e-9 of the largest finite distance of the matrix for the GEMM metrics (euclidean,
//! sqeuclidean, cosine, correlation), whose dot products cancel. f32 results are compared with
//! the f64 reference of the same (exactly widened) inputs at 1e-5 of the largest finite
//! distance: f32's unit roundoff is 6e-8, a sum of at most 64 non-negative terms loses at most
//! 64 of them (4e-6) and typically far fewer, and the GEMM kernel recomputes any pair whose
//! identity kept less than 5% of its magnitude, so at most a factor 20 is lost there.
//! NaN and infinities must sit exactly where the reference puts them.

mod common;
#[path = "common/distance_tolerance.rs"]
mod distance_tolerance;

use common::*;
use distance_tolerance::{gemm_metric, largest_finite, matches, tolerance};
use ndarray::ArrayD;
use proptest::prelude::*;
use std::fmt::Debug;
use std::process::Command;
use tessera::chunks::AxisChunks;
use tessera::distance::{
    cdist, count_within, detected_isa, knn, nearest, pdist, DistFloat, Isa, Metric, Neighbours,
    DIRECT_EUCLIDEAN_MAX_D, METRIC_NAMES,
};
use tessera::ops::reduce::ReduceOpts;
use tessera::plan::explain::Explain;
use tessera::store::zarr::{Codec, ZarrWriteOptions};
use tessera::{ChunkedArray, Chunks, Error, ExecOptions};

// ---------------------------------------------------------------------------------------------
// The reference: SciPy's definitions, one pair at a time, in f64
// ---------------------------------------------------------------------------------------------

/// Every metric, minkowski with p = 1, 2, 3, 4 (whole p: multiplications), 2.5, 0.5 and
/// infinity.
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

/// `|u_k - v_k|` for every coordinate (NaN for NaN and for `inf - inf`).
fn abs_diffs<'a>(u: &'a [f64], v: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
    u.iter().zip(v).map(|(a, b)| (a - b).abs())
}

/// `u` minus its mean.
fn centred(u: &[f64]) -> Vec<f64> {
    let mean = u.iter().fold(0.0, |s, v| s + v) / u.len() as f64;
    u.iter().map(|v| v - mean).collect()
}

/// The distance between `u` and `v` as `scipy.spatial.distance` defines it (SciPy 1.17's NaN
/// behaviour: NaN propagates but for chebyshev, which skips NaN coordinates, and hamming,
/// where `NaN != NaN` counts as a difference).
fn ref_pair(metric: Metric, u: &[f64], v: &[f64]) -> f64 {
    assert_eq!(u.len(), v.len());
    let d = u.len() as f64;
    match metric {
        Metric::Euclidean => ref_pair(Metric::SqEuclidean, u, v).sqrt(),
        Metric::SqEuclidean => abs_diffs(u, v).fold(0.0, |s, t| s + t * t),
        Metric::Cityblock => abs_diffs(u, v).fold(0.0, |s, t| s + t),
        // `t > m` is false for a NaN `t`: NaN coordinates are skipped; no coordinate left is 0.
        Metric::Chebyshev => abs_diffs(u, v).fold(0.0, |m, t| if t > m { t } else { m }),
        Metric::Minkowski(p) if p == f64::INFINITY => ref_pair(Metric::Chebyshev, u, v),
        Metric::Minkowski(p) => abs_diffs(u, v)
            .fold(0.0, |s, t| s + t.powf(p))
            .powf(1.0 / p),
        Metric::Cosine => {
            let dot = u.iter().zip(v).fold(0.0, |s, (a, b)| s + a * b);
            let nu = u.iter().fold(0.0, |s, a| s + a * a).sqrt();
            let nv = v.iter().fold(0.0, |s, b| s + b * b).sqrt();
            // clamp keeps NaN (a zero vector, a NaN or infinite coordinate).
            1.0 - (dot / (nu * nv)).clamp(-1.0, 1.0)
        }
        Metric::Correlation => ref_pair(Metric::Cosine, &centred(u), &centred(v)),
        Metric::Hamming => u.iter().zip(v).filter(|(a, b)| a != b).count() as f64 / d,
        Metric::Canberra => u.iter().zip(v).fold(0.0, |s, (a, b)| {
            let den = a.abs() + b.abs();
            if den == 0.0 {
                s
            } else {
                s + (a - b).abs() / den
            }
        }),
        Metric::BrayCurtis => {
            let num = abs_diffs(u, v).fold(0.0, |s, t| s + t);
            let den = u.iter().zip(v).fold(0.0, |s, (a, b)| s + (a + b).abs());
            num / den
        }
        other => panic!("no reference for {other}"),
    }
}

/// The rows of a 2-D array, widened to f64.
fn rows_f64<T: Real>(a: &ArrayD<T>) -> Vec<Vec<f64>> {
    a.outer_iter()
        .map(|r| r.iter().map(|&v| v.into()).collect())
        .collect()
}

/// The `(n, m)` reference matrix between the rows of `x` and those of `y`.
fn reference<T: Real>(metric: Metric, x: &ArrayD<T>, y: &ArrayD<T>) -> ArrayD<f64> {
    let (xr, yr) = (rows_f64(x), rows_f64(y));
    let mut out = Vec::with_capacity(xr.len() * yr.len());
    for u in &xr {
        for v in &yr {
            out.push(ref_pair(metric, u, v));
        }
    }
    arr(&[xr.len(), yr.len()], out)
}

// ---------------------------------------------------------------------------------------------
// Element types, data and chunkings
// ---------------------------------------------------------------------------------------------

/// f32 and f64, with what the tests need of them.
trait Real: DistFloat + Into<f64> + Debug + ndarray_npy::ReadableElement {
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

fn cast<T: Real>(a: &ArrayD<f64>) -> ArrayD<T> {
    a.mapv(T::narrow)
}

/// A small deterministic generator (splitmix64), so that every run sees the same points.
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
    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f64 {
        2.0 * self.unit() - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` points of `d` coordinates, uniform in [-1, 1).
fn uniform(rng: &mut Rng, n: usize, d: usize) -> ArrayD<f64> {
    arr(&[n, d], (0..n * d).map(|_| rng.sym()).collect())
}

/// Random ragged chunk lengths adding up to `n`.
fn ragged_lengths(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let c = 1 + rng.below(left.min(9));
        out.push(c);
        left -= c;
    }
    out
}

/// The chunkings every distance must be independent of, for an `(n, d)` array of points.
fn layouts(rng: &mut Rng, n: usize, d: usize) -> Vec<(&'static str, Chunks)> {
    use AxisChunks::*;
    vec![
        (
            "ragged rows",
            Chunks::PerAxis(vec![Explicit(ragged_lengths(rng, n)), Whole]),
        ),
        ("single-row chunks", Chunks::PerAxis(vec![Size(1), Whole])),
        ("one chunk", Chunks::PerAxis(vec![Whole, Whole])),
        ("split coordinates", Chunks::PerAxis(vec![Size(5), Size(2)])),
        (
            "ragged rows and coordinates",
            Chunks::PerAxis(vec![
                Explicit(ragged_lengths(rng, n)),
                Explicit(ragged_lengths(rng, d)),
            ]),
        ),
    ]
}

fn chunked<T: Real>(a: &ArrayD<T>, chunks: &Chunks) -> ChunkedArray<T> {
    ChunkedArray::from_array(a.clone(), chunks.clone())
        .unwrap_or_else(|e| panic!("from_array({:?}, {chunks:?}): {e}", a.shape()))
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------

/// `got` (any float type) against the f64 reference, with the metric's tolerance; the message
/// lists the first mismatches by position.
#[track_caller]
fn check<T: Real>(got: &ArrayD<T>, want: &ArrayD<f64>, metric: Metric, ctx: &dyn Debug) {
    assert_eq!(got.shape(), want.shape(), "shape; {metric}; {ctx:?}");
    let tol = tolerance(metric, T::NAME == "f32", want);
    let mut bad = Vec::new();
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let g: f64 = g.into();
        if !matches(g, w, tol(w)) {
            bad.push(format!(
                "  [{}, {}]: got {g:e}, want {w:e} (tolerance {:e})",
                idx[0],
                idx[1],
                tol(w)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{metric} ({}): {} of {} distances differ from the reference; {ctx:?}\n{}",
        T::NAME,
        bad.len(),
        want.len(),
        bad.iter().take(12).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Computes, panicking with the plan on an error.
#[track_caller]
fn run<T: Real>(a: &ChunkedArray<T>) -> ArrayD<T> {
    a.compute()
        .unwrap_or_else(|e| panic!("compute failed: {e}\nplan:\n{}", a.explain()))
}

// ---------------------------------------------------------------------------------------------
// cdist: every metric, d, chunking and element type (rerun on the baseline path)
// ---------------------------------------------------------------------------------------------

/// The dimensions: 1, 3, the last one of the direct euclidean loop and the first of the GEMM,
/// and 64.
fn dims() -> [usize; 5] {
    [1, 3, DIRECT_EUCLIDEAN_MAX_D, DIRECT_EUCLIDEAN_MAX_D + 1, 64]
}

fn every_metric_and_chunking<T: Real>(seed: u64) {
    let mut rng = Rng(seed);
    // n and m are not multiples of any panel width (4 to 64) or row count (2 to 4); m holds
    // a full panel of every width and a partial one.
    let (n, m) = (23, 71);
    for d in dims() {
        let x64 = uniform(&mut rng, n, d);
        let y64 = uniform(&mut rng, m, d);
        let (x, y) = (cast::<T>(&x64), cast::<T>(&y64));
        let (xl, yl) = (layouts(&mut rng, n, d), layouts(&mut rng, m, d));
        for metric in METRICS {
            let want = reference(metric, &x, &y);
            for (k, (xname, xc)) in xl.iter().enumerate() {
                let (yname, yc) = &yl[(k + 2) % yl.len()];
                let (cx, cy) = (chunked(&x, xc), chunked(&y, yc));
                let got = if k == 0 {
                    run(&cx.cdist(&cy, metric).unwrap())
                } else {
                    run(&cdist(&cx, &cy, metric).unwrap())
                };
                check(&got, &want, metric, &(T::NAME, d, xname, yname));
                // x against y and y against x are transposes of each other.
                if k == 1 {
                    let back = run(&cdist(&cy, &cx, metric).unwrap());
                    let want_t = want.t().to_owned();
                    check(&back, &want_t, metric, &(T::NAME, d, "y against x", yname));
                }
            }
        }
    }
}

#[test]
fn isa_every_metric_d_and_chunking_f64() {
    every_metric_and_chunking::<f64>(1);
}

#[test]
fn isa_every_metric_d_and_chunking_f32() {
    every_metric_and_chunking::<f32>(2);
}

#[test]
fn results_keep_the_element_type_and_the_row_chunks() {
    let mut rng = Rng(3);
    let x = chunked(&cast::<f32>(&uniform(&mut rng, 10, 4)), &Chunks::Size(3));
    let y = chunked(&cast::<f32>(&uniform(&mut rng, 7, 4)), &Chunks::Size(4));
    let d: ChunkedArray<f32> = cdist(&x, &y, Metric::Euclidean).unwrap();
    assert_eq!(d.shape(), &[10, 7]);
    assert_eq!(d.chunks(), &[vec![3, 3, 3, 1], vec![4, 3]]);
    let p = pdist(&x, Metric::Cityblock).unwrap();
    assert_eq!(p.shape(), &[10, 10]);
    assert_eq!(p.chunks(), &[vec![3, 3, 3, 1], vec![3, 3, 3, 1]]);
}

// ---------------------------------------------------------------------------------------------
// NaN, infinities, zero vectors
// ---------------------------------------------------------------------------------------------

/// One pair through tessera's cdist (two different one-row arrays).
fn one_pair<T: Real>(metric: Metric, u: &[f64], v: &[f64]) -> f64 {
    let a = |p: &[f64]| {
        let data = arr(&[1, p.len()], p.iter().map(|&e| T::narrow(e)).collect());
        ChunkedArray::from_array(data, 1).unwrap()
    };
    run(&cdist(&a(u), &a(v), metric).unwrap())[[0, 0]].into()
}

/// SciPy's documented and measured (1.17) values, checked against the reference and tessera,
/// at d = 3 and padded with zeros to d = 24 (the GEMM side).
#[test]
fn isa_scipy_special_values() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    #[rustfmt::skip]
    let cases: [(Metric, [f64; 3], [f64; 3], f64); 22] = [
        // inf - inf is NaN; inf - 0 is inf.
        (Metric::Euclidean, [inf, 1., 1.], [inf, 1., 2.], nan),
        (Metric::Euclidean, [inf, 1., 1.], [0., 0., 0.], inf),
        (Metric::SqEuclidean, [-inf, 1., 1.], [inf, 1., 2.], inf),
        (Metric::Cityblock, [inf, 1., 1.], [inf, 1., 2.], nan),
        (Metric::Euclidean, [nan, 1., 1.], [1., 1., 1.], nan),
        // Chebyshev skips NaN coordinates (and inf - inf); none left is 0.
        (Metric::Chebyshev, [inf, 1., 1.], [inf, 1., 2.], 1.0),
        (Metric::Chebyshev, [nan, 1., 2.], [1., 2., 3.], 1.0),
        (Metric::Chebyshev, [nan, nan, nan], [1., 2., 3.], 0.0),
        (Metric::Minkowski(f64::INFINITY), [nan, 1., 5.], [1., 2., 3.], 2.0),
        (Metric::Minkowski(3.0), [nan, 1., 5.], [1., 2., 3.], nan),
        // Hamming: NaN != NaN counts (the fraction of 3 coordinates).
        (Metric::Hamming, [nan, 1., 2.], [nan, 1., 2.], 1.0 / 3.0),
        (Metric::Hamming, [nan, 1., 2.], [0., 1., 3.], 2.0 / 3.0),
        // Cosine and correlation of a zero (or centred-to-zero) vector are NaN.
        (Metric::Cosine, [0., 0., 0.], [1., 2., 3.], nan),
        (Metric::Cosine, [1., 2., 3.], [-2., -4., -6.], 2.0),
        (Metric::Cosine, [1., 2., 3.], [inf, 0., 0.], nan),
        (Metric::Correlation, [nan, 2., 3.], [1., 2., 4.], nan),
        // Bray-Curtis: 0 / 0 and x / 0.
        (Metric::BrayCurtis, [0., 0., 0.], [0., 0., 0.], nan),
        (Metric::BrayCurtis, [1., 2., 3.], [-1., -2., -3.], inf),
        (Metric::BrayCurtis, [1., 2., 3.], [3., 2., 1.], 4.0 / 12.0),
        // Canberra skips 0 / 0 terms; inf / inf is NaN.
        (Metric::Canberra, [0., 0., 1.], [0., 0., 3.], 0.5),
        (Metric::Canberra, [inf, 0., 1.], [0., 0., 1.], nan),
        (Metric::Canberra, [nan, 0., 1.], [0., 0., 1.], nan),
    ];
    for d in [3usize, 24] {
        let pad = |p: &[f64; 3]| {
            let mut v = p.to_vec();
            v.resize(d, 0.0);
            v
        };
        for (metric, u, v, want) in cases {
            let (u, v) = (pad(&u), pad(&v));
            // Zero padding changes only hamming's fraction.
            let want = if metric == Metric::Hamming {
                want * 3.0 / d as f64
            } else {
                want
            };
            let r = ref_pair(metric, &u, &v);
            assert!(
                matches(r, want, 1e-15),
                "the reference itself: {metric} of {u:?} and {v:?} is {r}, SciPy says {want}"
            );
            for (name, got) in [
                ("f64", one_pair::<f64>(metric, &u, &v)),
                ("f32", one_pair::<f32>(metric, &u, &v)),
            ] {
                assert!(
                    matches(got, want, 1e-6 * want.abs()),
                    "{metric} ({name}, d = {d}) of {u:?} and {v:?}: got {got}, SciPy gives {want}"
                );
            }
        }
    }
}

/// Points with NaN, infinities, zeros, duplicates and negations of each other.
fn with_special_rows(rng: &mut Rng, n: usize, d: usize, y: bool) -> ArrayD<f64> {
    let mut a = uniform(rng, n, d);
    let last = d - 1;
    let k = rng.below(d);
    let mut set = |i: usize, f: &dyn Fn(usize) -> Option<f64>| {
        for j in 0..d {
            if let Some(v) = f(j) {
                a[[i, j]] = v;
            }
        }
    };
    set(0, &|j| (j == k).then_some(f64::NAN));
    set(3, &|_| Some(f64::NAN));
    set(5, &|j| (j == 0).then_some(f64::INFINITY));
    set(7, &|j| (j == last).then_some(f64::NEG_INFINITY));
    set(9, &|j| {
        (j == 0)
            .then_some(f64::INFINITY)
            .or((j == last).then_some(f64::NEG_INFINITY))
    });
    set(11, &|_| Some(0.0));
    set(13, &|_| Some(0.25));
    if y {
        // More infinities (inf - inf against x's rows 5 and 9) and NaN.
        set(15, &|j| (j == 0).then_some(f64::INFINITY));
        set(16, &|j| (j == k).then_some(f64::NAN));
        set(17, &|j| (j == 0).then_some(f64::NEG_INFINITY));
    }
    a
}

fn nan_and_inf_rows<T: Real>(seed: u64) {
    let mut rng = Rng(seed);
    let (n, m) = (21, 30);
    for d in [3usize, 17, 64] {
        let x64 = with_special_rows(&mut rng, n, d, false);
        let mut y64 = with_special_rows(&mut rng, m, d, true);
        // y's row 20 is minus x's row 1 (Bray-Curtis divides by 0), row 21 a copy of x's row 2.
        for j in 0..d {
            y64[[20, j]] = -x64[[1, j]];
            y64[[21, j]] = x64[[2, j]];
        }
        let (x, y) = (cast::<T>(&x64), cast::<T>(&y64));
        every_metric_over_layouts(&mut rng, &x, &y, 1);
    }
}

/// Every metric of `x` against `y` against the reference, over random layouts of both: each
/// layout of `x` beside the layout of `y` `shift` places on.
fn every_metric_over_layouts<T: Real>(rng: &mut Rng, x: &ArrayD<T>, y: &ArrayD<T>, shift: usize) {
    let (n, m, d) = (x.shape()[0], y.shape()[0], x.shape()[1]);
    let (xl, yl) = (layouts(rng, n, d), layouts(rng, m, d));
    for metric in METRICS {
        let want = reference(metric, x, y);
        for (k, (xname, xc)) in xl.iter().enumerate() {
            let (yname, yc) = &yl[(k + shift) % yl.len()];
            let got = run(&cdist(&chunked(x, xc), &chunked(y, yc), metric).unwrap());
            check(&got, &want, metric, &(T::NAME, d, xname, yname));
        }
    }
}

#[test]
fn isa_nan_and_inf_rows_f64() {
    nan_and_inf_rows::<f64>(4);
}

#[test]
fn isa_nan_and_inf_rows_f32() {
    nan_and_inf_rows::<f32>(5);
}

/// Points without a negative coordinate (the kernels take a shorter path for Bray-Curtis
/// there): magnitudes of the uniform points, with zeros of both signs, and an infinite
/// coordinate in the last row.
fn non_negative(rng: &mut Rng, n: usize, d: usize) -> ArrayD<f64> {
    let mut a = uniform(rng, n, d).mapv(f64::abs);
    for (k, v) in a.iter_mut().enumerate() {
        match rng.below(8) {
            0 => *v = 0.0,
            1 => *v = -0.0,
            _ if k == n * d - 1 => *v = f64::INFINITY,
            _ => {}
        }
    }
    a
}

fn non_negative_points<T: Real>(seed: u64) {
    let mut rng = Rng(seed);
    let (n, m) = (23, 37);
    for d in [1usize, 3, 17, 64] {
        let x = cast::<T>(&non_negative(&mut rng, n, d));
        let y = cast::<T>(&non_negative(&mut rng, m, d));
        every_metric_over_layouts(&mut rng, &x, &y, 3);
    }
}

#[test]
fn isa_non_negative_points_f64() {
    non_negative_points::<f64>(6);
}

#[test]
fn isa_non_negative_points_f32() {
    non_negative_points::<f32>(7);
}

// ---------------------------------------------------------------------------------------------
// Near-duplicate points: the GEMM identity cancels, the kernel must recompute
// ---------------------------------------------------------------------------------------------

/// `y` plus noise of `scale`.
fn jitter(rng: &mut Rng, y: &ArrayD<f64>, scale: f64) -> ArrayD<f64> {
    y.mapv(|v| v + scale * rng.sym())
}

/// Checks the matrix and, more tightly, the pairs `(i, i)` of near-duplicates: each within
/// 1e-6 of its own value (a recomputed pair is a direct loop, as the reference is; the
/// identity `|x|^2 + |y|^2 - 2 x.y` would keep no correct digit of them).
#[track_caller]
fn check_near_duplicates<T: Real>(
    x: &ArrayD<T>,
    y: &ArrayD<T>,
    metric: Metric,
    chunks: &Chunks,
    ctx: &dyn Debug,
) {
    let want = reference(metric, x, y);
    let got = run(&cdist(&chunked(x, chunks), &chunked(y, chunks), metric).unwrap());
    check(&got, &want, metric, ctx);
    if matches!(metric, Metric::Euclidean | Metric::SqEuclidean) {
        let rel = if T::NAME == "f32" { 1e-3 } else { 1e-6 };
        for i in 0..x.shape()[0].min(y.shape()[0]) {
            let (g, w): (f64, f64) = (got[[i, i]].into(), want[[i, i]]);
            assert!(
                (g - w).abs() <= rel * w,
                "{metric} ({}) of near-duplicates {i}: got {g:e}, want {w:e}; {ctx:?}",
                T::NAME
            );
        }
    }
}

#[test]
fn isa_near_duplicates_keep_their_digits() {
    let mut rng = Rng(6);
    let chunks = Chunks::PerAxis(vec![AxisChunks::Size(7), AxisChunks::Whole]);
    for d in [3usize, DIRECT_EUCLIDEAN_MAX_D + 1, 64] {
        // x = y + 1e-9 noise, around the origin: every metric.
        let y = uniform(&mut rng, 40, d);
        let x = jitter(&mut rng, &y, 1e-9);
        for metric in METRICS {
            check_near_duplicates(&x, &y, metric, &chunks, &("y + 1e-9 noise", d));
        }
        // Far from the origin: 1e6 + noise of 1e-3, and near-duplicates of those. Cosine is left
        // out: its distances there are below f64's resolution of 1 - cos (about 1e-16), so
        // they are rounding noise in any implementation.
        let far = uniform(&mut rng, 40, d).mapv(|v| 1e6 + 1e-3 * v);
        let near = jitter(&mut rng, &far, 1e-9);
        let other = uniform(&mut rng, 33, d).mapv(|v| 1e6 + 1e-3 * v);
        for metric in [Metric::Euclidean, Metric::SqEuclidean, Metric::Correlation] {
            check_near_duplicates(&near, &far, metric, &chunks, &("1e6 + 1e-9 noise", d));
            check_near_duplicates(&other, &far, metric, &chunks, &("1e6 + 1e-3 noise", d));
        }
        // f32: 1000 + noise of 0.01.
        let y32 = cast::<f32>(&uniform(&mut rng, 40, d).mapv(|v| 1000.0 + 0.01 * v));
        let x32 = cast::<f32>(&jitter(&mut rng, &y32.mapv(f64::from), 1e-3));
        for metric in [Metric::Euclidean, Metric::SqEuclidean] {
            check_near_duplicates(&x32, &y32, metric, &chunks, &("f32 1000 + noise", d));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pdist and cdist(x, x): symmetric bit for bit, zero diagonal, compute() = to_npy()
// ---------------------------------------------------------------------------------------------

fn bits<T: Real>(v: T) -> u64 {
    let f: f64 = v.into();
    f.to_bits()
}

/// A square result: exactly symmetric, exactly 0 on the whole diagonal, the reference
/// everywhere else.
#[track_caller]
fn check_square<T: Real>(got: &ArrayD<T>, x: &ArrayD<T>, metric: Metric, ctx: &dyn Debug) {
    let n = x.shape()[0];
    assert_eq!(got.shape(), &[n, n], "{ctx:?}");
    let want = reference(metric, x, x);
    let mut off = want.clone();
    for i in 0..n {
        // The diagonal is exactly 0 for every point, NaN ones included (squareform(pdist)).
        let g: f64 = got[[i, i]].into();
        assert!(
            g == 0.0,
            "{metric} ({}) diagonal {i}: got {g:e}, want exactly 0; {ctx:?}",
            T::NAME
        );
        off[[i, i]] = 0.0;
        for j in 0..i {
            let (a, b) = (got[[i, j]], got[[j, i]]);
            assert!(
                bits(a) == bits(b),
                "{metric} ({}) not symmetric bit for bit: [{i}, {j}] = {a:?} ({:#018x}) but \
                 [{j}, {i}] = {b:?} ({:#018x}); {ctx:?}",
                T::NAME,
                bits(a),
                bits(b)
            );
        }
    }
    check(got, &off, metric, ctx);
}

fn same_bits<T: Real>(a: &ArrayD<T>, b: &ArrayD<T>) -> bool {
    a.shape() == b.shape() && a.iter().zip(b).all(|(&p, &q)| bits(p) == bits(q))
}

fn square_results<T: Real>(seed: u64) {
    let mut rng = Rng(seed);
    let n = 33;
    let dir = tempfile::tempdir().unwrap();
    for d in [3usize, DIRECT_EUCLIDEAN_MAX_D + 1, 64] {
        let x64 = uniform(&mut rng, n, d);
        let x = cast::<T>(&x64);
        for (name, chunks) in layouts(&mut rng, n, d) {
            // One tile per pair of points is slow: at d = 3 only.
            if name == "single-row chunks" && d > 3 {
                continue;
            }
            let cx = chunked(&x, &chunks);
            for metric in METRICS {
                let ctx = (T::NAME, d, name, metric);
                let p = run(&pdist(&cx, metric).unwrap());
                check_square(&p, &x, metric, &ctx);
                // cdist of an array and itself (a clone: the same node) is pdist.
                let c = run(&cdist(&cx, &cx.clone(), metric).unwrap());
                assert!(same_bits(&p, &c), "cdist(x, x) != pdist(x); {ctx:?}");
                // Through a .npy file: the executor writes each mirrored tile twice.
                let path = dir.path().join(format!("{}_{d}_{metric}.npy", T::NAME));
                pdist(&cx, metric).unwrap().to_npy(&path, true).unwrap();
                let f: ArrayD<T> = ndarray_npy::read_npy(&path).unwrap();
                assert!(same_bits(&p, &f), ".npy != compute(); {ctx:?}");
                // As the input of another node: regions across tiles and the diagonal, each
                // computed on its own (GEMM metrics may then differ from compute() in the last
                // bits, within the tolerance).
                if name == "single-row chunks" {
                    continue;
                }
                let re = pdist(&cx, metric)
                    .unwrap()
                    .rechunk(Chunks::Size(7))
                    .unwrap();
                check_square(&run(&re), &x, metric, &(ctx, "rechunked to 7"));
                let one = pdist(&cx, metric)
                    .unwrap()
                    .compute_with(&ExecOptions::default().threads(1))
                    .unwrap();
                assert!(same_bits(&p, &one), "1 thread != compute(); {ctx:?}");
            }
        }
    }
}

#[test]
fn pdist_is_symmetric_with_a_zero_diagonal_f64() {
    square_results::<f64>(7);
}

#[test]
fn pdist_is_symmetric_with_a_zero_diagonal_f32() {
    square_results::<f32>(8);
}

/// Rows with NaN and infinities: the diagonal is 0 for every row, as SciPy's
/// `squareform(pdist(x))`, and the rest symmetric bit for bit (NaN signs included).
#[test]
fn pdist_of_nan_and_inf_rows() {
    let mut rng = Rng(9);
    for d in [3usize, 17] {
        let x = with_special_rows(&mut rng, 26, d, true);
        let chunks = Chunks::PerAxis(vec![
            AxisChunks::Explicit(ragged_lengths(&mut rng, 26)),
            AxisChunks::Whole,
        ]);
        let cx = chunked(&x, &chunks);
        for metric in METRICS {
            let p = run(&pdist(&cx, metric).unwrap());
            check_square(&p, &x, metric, &(d, metric, "special rows"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property: random shapes, chunkings and values (with NaN and infinities)
// ---------------------------------------------------------------------------------------------

fn element() -> BoxedStrategy<f64> {
    prop_oneof![
        60 => small_f64(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
    .boxed()
}

fn metric() -> BoxedStrategy<Metric> {
    prop::sample::select(METRICS.to_vec()).boxed()
}

/// Points `(n, d)` with a random chunking.
fn points_case(n: usize, d: usize) -> BoxedStrategy<Case<f64>> {
    (array_of(vec![n, d], element()), chunks_for(&[n, d]))
        .prop_map(|(data, chunks)| Case { data, chunks })
        .boxed()
}

fn cdist_case() -> BoxedStrategy<(Case<f64>, Case<f64>, Metric)> {
    (1..=9usize, 1..=9usize, 1..=20usize)
        .prop_flat_map(|(n, m, d)| (points_case(n, d), points_case(m, d), metric()))
        .boxed()
}

fn pdist_case() -> BoxedStrategy<(Case<f64>, Metric)> {
    (1..=12usize, 1..=20usize)
        .prop_flat_map(|(n, d)| (points_case(n, d), metric()))
        .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cdist_matches_the_reference_for_random_chunkings((xc, yc, metric) in cdist_case()) {
        let got = run(&cdist(&xc.chunked(), &yc.chunked(), metric).unwrap());
        check(&got, &reference(metric, &xc.data, &yc.data), metric, &(&xc, &yc));
    }

    #[test]
    fn pdist_matches_the_reference_for_random_chunkings((xc, metric) in pdist_case()) {
        let got = run(&pdist(&xc.chunked(), metric).unwrap());
        check_square(&got, &xc.data, metric, &xc);
    }
}

// ---------------------------------------------------------------------------------------------
// knn, nearest, count_within
// ---------------------------------------------------------------------------------------------

/// Each row's column indices sorted by (distance, index), NaN last.
fn sorted_rows(dist: &ArrayD<f64>) -> Vec<Vec<usize>> {
    dist.outer_iter()
        .map(|row| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|&a, &b| {
                let (da, db) = (row[a], row[b]);
                let key = |v: f64| (v.is_nan(), if v.is_nan() { 0.0 } else { v });
                let (ka, kb) = (key(da), key(db));
                ka.0.cmp(&kb.0)
                    .then(ka.1.partial_cmp(&kb.1).unwrap())
                    .then(a.cmp(&b))
            });
            idx
        })
        .collect()
}

/// `got` against the reference matrix `want`: each row's indices those of the sorted reference
/// (a swap allowed only between distances within the tolerance of each other, unless `exact`),
/// distinct, and with distances matching the reference at those indices.
#[track_caller]
fn check_knn<T: Real>(
    got: &Neighbours<T>,
    want: &ArrayD<f64>,
    k: usize,
    metric: Metric,
    exact: bool,
    ctx: &dyn Debug,
) {
    let n = want.shape()[0];
    assert_eq!(got.indices.shape(), &[n, k], "{ctx:?}");
    assert_eq!(got.distances.shape(), &[n, k], "{ctx:?}");
    let order = sorted_rows(want);
    let tol = tolerance(metric, T::NAME == "f32", want);
    for i in 0..n {
        let row: Vec<i64> = got.indices.row(i).to_vec();
        let mut seen = row.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), k, "row {i}: repeated indices {row:?}; {ctx:?}");
        for p in 0..k {
            let (gi, wi) = (row[p], order[i][p]);
            assert!(
                gi >= 0 && (gi as usize) < want.shape()[1],
                "row {i}: index {gi} out of range; {ctx:?}"
            );
            let gi = gi as usize;
            let (dg, dw) = (want[[i, gi]], want[[i, wi]]);
            assert!(
                gi == wi || (!exact && matches(dg, dw, tol(dw))),
                "{metric} ({}) row {i}, neighbour {p}: got index {gi} (reference distance {dg:e}), want {wi} ({dw:e})\n got  {row:?}\n want {:?}; {ctx:?}",
                T::NAME,
                &order[i][..k]
            );
            let gd: f64 = got.distances[[i, p]].into();
            let tol_d = if exact { 0.0 } else { tol(dg) };
            assert!(
                matches(gd, dg, tol_d),
                "{metric} ({}) row {i}, neighbour {p} (index {gi}): got distance {gd:e}, want {dg:e}; {ctx:?}",
                T::NAME
            );
        }
    }
}

fn knn_against_reference<T: Real>(seed: u64) {
    let mut rng = Rng(seed);
    let (n, m) = (37, 29);
    let opts = ExecOptions::default();
    for d in [3usize, DIRECT_EUCLIDEAN_MAX_D + 1] {
        let x = cast::<T>(&uniform(&mut rng, n, d));
        let y = cast::<T>(&uniform(&mut rng, m, d));
        let (xl, yl) = (layouts(&mut rng, n, d), layouts(&mut rng, m, d));
        for (mi, metric) in METRICS.into_iter().enumerate() {
            let (xname, xchunks) = &xl[mi % xl.len()];
            let (yname, ychunks) = &yl[(mi + 3) % yl.len()];
            let (cx, cy) = (chunked(&x, xchunks), chunked(&y, ychunks));
            let want = reference(metric, &x, &y);
            let want_xx = reference(metric, &x, &x);
            for k in [1, 4, m] {
                let ctx = (T::NAME, d, metric, k, xname, yname);
                let nn = knn(&cx, &cy, k, metric, &opts).unwrap();
                check_knn(&nn, &want, k, metric, false, &ctx);
                // x against itself: each point is its own nearest, at distance 0.
                let nn = knn(&cx, &cx, k, metric, &opts).unwrap();
                check_knn(&nn, &want_xx, k, metric, false, &(ctx, "x = y"));
                for i in 0..n {
                    assert_eq!(nn.indices[[i, 0]], i as i64, "x = y row {i}; {ctx:?}");
                    let d0: f64 = nn.distances[[i, 0]].into();
                    if matches!(metric, Metric::Cosine | Metric::Correlation) {
                        // 1 - cos of a point with itself: 0 up to rounding.
                        assert!(d0.abs() <= 1e-6, "x = y row {i}: {d0:e}; {ctx:?}");
                    } else {
                        assert_eq!(d0, 0.0, "x = y row {i}; {ctx:?}");
                    }
                }
            }
            // nearest: the first column of knn with k = 1.
            let (idx, dist) = nearest(&cx, &cy, metric, &opts).unwrap();
            let nn1 = knn(&cx, &cy, 1, metric, &opts).unwrap();
            assert_eq!(idx, nn1.indices.column(0), "{metric}");
            let same_d = dist
                .iter()
                .zip(nn1.distances.column(0))
                .all(|(a, b)| bits(*a) == bits(*b));
            assert!(
                same_d,
                "{metric}: nearest {dist:?} vs knn {:?}",
                nn1.distances
            );
        }
    }
}

#[test]
fn isa_knn_matches_the_sorted_reference_f64() {
    knn_against_reference::<f64>(10);
}

#[test]
fn isa_knn_matches_the_sorted_reference_f32() {
    knn_against_reference::<f32>(11);
}

/// Small integers: many exact ties (broken by the lower index) and NaN rows (last, by index).
fn tie_data(rng: &mut Rng, n: usize, nan_rows: &[usize]) -> ArrayD<f64> {
    let mut a = arr(
        &[n, 3],
        (0..n * 3).map(|_| rng.below(5) as f64 - 2.0).collect(),
    );
    for &i in nan_rows {
        a[[i, rng.below(3)]] = f64::NAN;
    }
    a
}

/// Metrics exact on small integers at d = 3 (sums of integers, integer square roots aside).
const EXACT_METRICS: [Metric; 5] = [
    Metric::Cityblock,
    Metric::Chebyshev,
    Metric::SqEuclidean,
    Metric::Euclidean,
    Metric::Hamming,
];

#[test]
fn knn_breaks_ties_by_index_and_puts_nan_last() {
    let mut rng = Rng(12);
    let x = tie_data(&mut rng, 13, &[4]);
    let y = tie_data(&mut rng, 40, &[0, 17, 39]);
    let cx = chunked(&x, &Chunks::Size(4));
    let cy = chunked(
        &y,
        &Chunks::PerAxis(vec![AxisChunks::Size(6), AxisChunks::Size(2)]),
    );
    let opts = ExecOptions::default();
    for metric in EXACT_METRICS {
        let want = reference(metric, &x, &y);
        for k in [1, 5, 40] {
            let nn = knn(&cx, &cy, k, metric, &opts).unwrap();
            check_knn(&nn, &want, k, metric, true, &(metric, k));
        }
        let (idx, dist) = nearest(&cx, &cy, metric, &opts).unwrap();
        let order = sorted_rows(&want);
        for i in 0..13 {
            assert_eq!(idx[i], order[i][0] as i64, "{metric} nearest of row {i}");
            assert!(same(dist[i], want[[i, order[i][0]]]), "{metric} row {i}");
        }
        // The NaN row of x: every distance NaN (but chebyshev's), so neighbours 0, 1, 2...
        if metric != Metric::Chebyshev && metric != Metric::Hamming {
            let nn = knn(&cx, &cy, 5, metric, &opts).unwrap();
            assert_eq!(nn.indices.row(4).to_vec(), vec![0, 1, 2, 3, 4], "{metric}");
            assert!(nn.distances.row(4).iter().all(|v| v.is_nan()), "{metric}");
        }
    }
}

/// The reference counts: distances `<= r`, exactly; or, with a tolerance, bounds.
fn count_bounds(want: &ArrayD<f64>, r: f64, tol: f64) -> Vec<(i64, i64)> {
    want.outer_iter()
        .map(|row| {
            let lo = row.iter().filter(|&&v| v <= r - tol).count() as i64;
            let hi = row.iter().filter(|&&v| v <= r + tol).count() as i64;
            (lo, hi)
        })
        .collect()
}

#[test]
fn count_within_matches_the_reference() {
    let mut rng = Rng(13);
    let opts = ExecOptions::default();
    // Exact on small integers (NaN never counts; chebyshev skips NaN coordinates).
    let x = tie_data(&mut rng, 13, &[4]);
    let y = tie_data(&mut rng, 40, &[0, 17, 39]);
    let (cx, cy) = (chunked(&x, &Chunks::Size(5)), chunked(&y, &Chunks::Size(7)));
    for metric in [Metric::Cityblock, Metric::Chebyshev, Metric::SqEuclidean] {
        for (a, ca, b, cb) in [(&x, &cx, &y, &cy), (&x, &cx, &x, &cx)] {
            let mut want = reference(metric, a, b);
            if std::ptr::eq(a, b) {
                // x against itself: pdist's matrix, each point 0 from itself (NaN ones too).
                for i in 0..a.shape()[0] {
                    want[[i, i]] = 0.0;
                }
            }
            for r in [0.0, 1.0, 2.5, 4.0, 1e300, f64::INFINITY] {
                let got = count_within(ca, cb, r, metric, &opts).unwrap();
                let bounds = count_bounds(&want, r, 0.0);
                let want_c: Vec<i64> = bounds.iter().map(|b| b.0).collect();
                assert_eq!(got.to_vec(), want_c, "{metric} radius {r}");
            }
        }
    }
    // Random points, every metric: within the tolerance band of the radius.
    for d in [3usize, 24] {
        let x = uniform(&mut rng, 31, d);
        let y = uniform(&mut rng, 45, d);
        let cx = chunked(
            &x,
            &Chunks::PerAxis(vec![AxisChunks::Size(4), AxisChunks::Whole]),
        );
        let cy = chunked(&y, &Chunks::Size(9));
        for metric in METRICS {
            for (b, cb) in [(&y, &cy), (&x, &cx)] {
                let want = reference(metric, &x, b);
                let tol = if gemm_metric(metric) {
                    1e-9 * largest_finite(&want)
                } else {
                    1e-12 * largest_finite(&want)
                };
                let mut vals: Vec<f64> = want.iter().copied().filter(|v| v.is_finite()).collect();
                vals.sort_by(|a, b| a.partial_cmp(b).unwrap());
                for r in [0.0, vals[vals.len() / 3], vals[vals.len() / 2], 1e300] {
                    let got = count_within(&cx, cb, r, metric, &opts).unwrap();
                    for (i, ((lo, hi), g)) in
                        count_bounds(&want, r, tol).iter().zip(&got).enumerate()
                    {
                        assert!(
                            lo <= g && g <= hi,
                            "{metric} d = {d} radius {r} row {i}: got {g}, want {lo}..={hi}"
                        );
                    }
                }
            }
        }
    }
    // f32 too.
    let x = cast::<f32>(&tie_data(&mut rng, 9, &[]));
    let y = cast::<f32>(&tie_data(&mut rng, 20, &[3]));
    let want = reference(Metric::Cityblock, &x, &y);
    let got = count_within(
        &chunked(&x, &Chunks::Size(2)),
        &chunked(&y, &Chunks::Size(3)),
        3.0,
        Metric::Cityblock,
        &opts,
    )
    .unwrap();
    let want_c: Vec<i64> = count_bounds(&want, 3.0, 0.0).iter().map(|b| b.0).collect();
    assert_eq!(got.to_vec(), want_c);
    // A radius between two f32 values counts the f32 distances not above it: 0.1, 0.2 and 0.3
    // in f32 are each a little above the decimal, which rounded to the nearest f32 would count.
    let origin = ChunkedArray::from_array(ndarray::array![[0.0f32]].into_dyn(), 1).unwrap();
    let pts = ndarray::array![[0.1f32], [0.2], [0.3]].into_dyn();
    let pts = ChunkedArray::from_array(pts, 2).unwrap();
    for metric in [Metric::Cityblock, Metric::Chebyshev] {
        for (r, want) in [
            (0.1, 0),
            (f64::from(0.1f32), 1),
            (0.2, 1),
            (0.3, 2),
            (f64::from(0.3f32), 3),
            (1e300, 3),
        ] {
            let got = count_within(&origin, &pts, r, metric, &opts).unwrap();
            assert_eq!(got.to_vec(), vec![want], "{metric} radius {r:e} in f32");
        }
    }
}

/// x against itself in knn and count_within is pdist's matrix: each point exactly 0 from
/// itself, for every metric (the GEMM identity leaves a few ulp there, and the cosine of a
/// point with itself does not always round to 1), NaN points included; so also for rows of x
/// given as a slice of it (`knn_of_rows`, what a split run's task computes), whose L1
/// distances are those of the whole run bit for bit.
#[test]
fn points_against_themselves_are_at_distance_zero() {
    let mut rng = Rng(31);
    let mut x = uniform(&mut rng, 40, 30);
    for j in 0..30 {
        // A point and a multiple of it (cosine 0 apart), and a point with a NaN coordinate.
        x[[7, j]] = 3.0 * x[[6, j]];
        x[[9, j]] = if j == 4 { f64::NAN } else { x[[9, j]] };
    }
    let opts = ExecOptions::default();
    let cx = chunked(
        &x,
        &Chunks::PerAxis(vec![AxisChunks::Size(6), AxisChunks::Whole]),
    );
    let rows = |a: usize, b: usize| {
        cx.slice(&[tessera::ops::slice::SliceItem::Range {
            start: Some(a as isize),
            stop: Some(b as isize),
            step: 1,
        }])
        .unwrap()
    };
    for metric in METRICS {
        let whole = knn(&cx, &cx, 40, metric, &opts).unwrap();
        let near = knn(&cx, &cx, 1, metric, &opts).unwrap();
        let within = count_within(&cx, &cx, 0.0, metric, &opts).unwrap();
        for i in 0..40 {
            let at = (0..40)
                .find(|&p| whole.indices[[i, p]] == i as i64)
                .unwrap();
            assert_eq!(
                whole.distances[[i, at]],
                0.0,
                "{metric}: point {i} to itself"
            );
            assert_eq!(
                near.distances[[i, 0]],
                0.0,
                "{metric}: nearest of point {i}"
            );
            assert!(within[i] >= 1, "{metric}: point {i} not within 0 of itself");
        }
        // Point 6 is first among its own neighbours (7 ties with it under cosine).
        assert_eq!(near.indices[[6, 0]], 6, "{metric}");
        // Rows 10..25 as a slice of x, placed at offset 10.
        let part =
            tessera::distance::knn_of_rows(&rows(10, 25), &cx, 10, 40, metric, &opts).unwrap();
        let counts =
            tessera::distance::count_within_of_rows(&rows(10, 25), &cx, 10, 0.0, metric, &opts)
                .unwrap();
        for i in 10..25 {
            let at = (0..40)
                .find(|&p| part.indices[[i - 10, p]] == i as i64)
                .unwrap();
            assert_eq!(
                part.distances[[i - 10, at]],
                0.0,
                "{metric}: row {i} of a slice"
            );
            assert!(counts[i - 10] >= 1, "{metric}: row {i} of a slice");
            if !gemm_metric(metric) {
                assert_eq!(
                    part.indices.row(i - 10),
                    whole.indices.row(i),
                    "{metric} {i}"
                );
                let bits = |r: ndarray::ArrayView1<f64>| r.mapv(f64::to_bits);
                let (got, want) = (part.distances.row(i - 10), whole.distances.row(i));
                assert_eq!(bits(got), bits(want), "{metric} {i}");
            }
        }
    }
}

/// y larger than a quarter of the allowed memory is read block by block for each block of x,
/// and more than 4096 points of it make several y tiles per task.
#[test]
fn knn_and_count_within_stream_a_large_y() {
    let mut rng = Rng(14);
    let (n, m, d) = (10, 6000, 64);
    let x = uniform(&mut rng, n, d);
    let y = uniform(&mut rng, m, d);
    let cx = chunked(&x, &Chunks::Size(3));
    let cy = chunked(
        &y,
        &Chunks::PerAxis(vec![AxisChunks::Size(1000), AxisChunks::Whole]),
    );
    let opts = ExecOptions::default().threads(1).allowed_mem(10 << 20);
    for metric in [Metric::Euclidean, Metric::Cityblock] {
        let want = reference(metric, &x, &y);
        let nn = knn(&cx, &cy, 5, metric, &opts).unwrap();
        check_knn(&nn, &want, 5, metric, false, &(metric, "large y"));
        let r = 0.5 * largest_finite(&want);
        let tol = 1e-9 * largest_finite(&want);
        let got = count_within(&cx, &cy, r, metric, &opts).unwrap();
        for (i, ((lo, hi), g)) in count_bounds(&want, r, tol).iter().zip(&got).enumerate() {
            assert!(
                lo <= g && g <= hi,
                "{metric} row {i}: got {g}, want {lo}..={hi}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory limits
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn memory_error<T>(r: Result<T, Error>, name: &str) {
    match r {
        Err(e @ Error::MemoryLimit { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "the message should name {name}: {msg}");
            if let Error::MemoryLimit { op, .. } = &e {
                assert!(op.starts_with(name), "op {op:?} should be {name}");
            }
        }
        Err(e) => panic!("want a memory limit error naming {name}, got: {e}"),
        Ok(_) => panic!("want a memory limit error naming {name}, got a result"),
    }
}

#[test]
fn too_little_memory_is_a_clear_error() {
    let mut rng = Rng(15);
    let x = chunked(&uniform(&mut rng, 50, 3), &Chunks::Size(10));
    let y = chunked(&uniform(&mut rng, 60, 3), &Chunks::Size(10));
    for metric in [Metric::Cosine, Metric::Cityblock] {
        // A task of a GEMM metric is counted 4 MiB for the gemm crate's packing, one of the
        // other metrics 256 KiB (their own panels are counted with the inputs; so is euclidean
        // with these 3 coordinates, which takes the panel loop).
        let limit = if metric.uses_gemm() {
            1 << 20
        } else {
            200 << 10
        };
        let tiny = ExecOptions::default().threads(1).allowed_mem(limit);
        memory_error(knn(&x, &y, 3, metric, &tiny), "knn");
        memory_error(nearest(&x, &y, metric, &tiny), "knn");
        memory_error(count_within(&x, &y, 1.0, metric, &tiny), "count_within");
        memory_error(cdist(&x, &y, metric).unwrap().compute_with(&tiny), "cdist");
        memory_error(pdist(&x, metric).unwrap().compute_with(&tiny), "pdist");
        // Refused before the output file is created.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npy");
        memory_error(
            cdist(&x, &y, metric)
                .unwrap()
                .to_npy_with(&path, false, &tiny),
            "cdist",
        );
        assert!(!path.exists(), "a refused run left {}", path.display());
    }
}

/// The plan of a distance matrix written to an output that stores tiles in strips (uncompressed
/// Zarr in a directory) is explained as the run checks it: 4000 x 4000 tiles (128 MB) under
/// 192 MiB for two threads do not fit whole ([`Explain::new`], what an in-memory or compressed
/// output needs) but fit in strips ([`Explain::in_parts`]), and the output's projection is the
/// strip's. Under 64 MiB even the strips are refused, with the run's own message, before
/// anything is written.
#[test]
fn explain_in_parts_agrees_with_the_run() {
    let pts = ndarray::Array2::from_shape_fn((8000, 3), |(i, j)| ((i * 7 + j * 13) % 101) as f64);
    let x = ChunkedArray::from_array(pts.into_dyn(), 4000).unwrap();
    let d = pdist(&x, Metric::Euclidean).unwrap();
    let roomy = ExecOptions::default().threads(2).allowed_mem(192 << 20);
    let whole = Explain::new(d.node().as_ref(), &roomy);
    let strips = Explain::in_parts(d.node().as_ref(), &roomy);
    assert!(!whole.fits(), "{whole}");
    assert!(strips.fits(), "{strips}");
    let output = |e: &Explain| e.nodes[0].bytes;
    assert!(output(&whole) >= 128 << 20, "{whole}");
    assert!(output(&strips) < 48 << 20, "{strips}");
    assert!(output(&strips) >= 32 << 20, "{strips}");

    let tight = ExecOptions::default().threads(2).allowed_mem(64 << 20);
    let refused = Explain::in_parts(d.node().as_ref(), &tight);
    let dir = tempfile::tempdir().unwrap();
    let none = ZarrWriteOptions {
        codec: Codec::None,
        ..ZarrWriteOptions::default()
    };
    let path = dir.path().join("d.zarr");
    let run = d
        .to_zarr(&path, &none, &tight)
        .expect_err("strips of 32 MiB do not fit");
    assert_eq!(refused.refusal, Some(run.to_string()));
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn err_with<T>(r: Result<T, Error>, wants: &[&str]) -> String {
    let msg = match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("want an error mentioning {wants:?}, got a result"),
    };
    for w in wants {
        assert!(msg.contains(w), "the message should mention {w:?}: {msg}");
    }
    msg
}

fn pts(shape: &[usize]) -> ChunkedArray<f64> {
    let n: usize = shape.iter().product();
    ChunkedArray::from_array(arr(shape, (0..n).map(|i| i as f64).collect()), 2).unwrap()
}

#[test]
fn mismatched_dimensions_name_both() {
    let (x, y) = (pts(&[5, 3]), pts(&[4, 7]));
    let opts = ExecOptions::default();
    let wants = ["3", "7", "[5, 3]", "[4, 7]"];
    err_with(cdist(&x, &y, Metric::Euclidean), &wants);
    err_with(x.cdist(&y, Metric::Cosine), &wants);
    err_with(knn(&x, &y, 1, Metric::Euclidean, &opts), &wants);
    err_with(nearest(&x, &y, Metric::Cityblock, &opts), &wants);
    err_with(count_within(&x, &y, 1.0, Metric::Euclidean, &opts), &wants);
}

#[test]
fn points_must_be_2d_and_non_empty() {
    let good = pts(&[4, 3]);
    let opts = ExecOptions::default();
    for (shape, what) in [
        (vec![6], "must be 2-D"),
        (vec![2, 3, 3], "must be 2-D"),
        (vec![0, 3], "is empty"),
        (vec![4, 0], "is empty"),
    ] {
        let bad = pts(&shape);
        let shape_s = format!("{shape:?}");
        let (as_x, as_y) = (format!("x {what}"), format!("y {what}"));
        let wx = [as_x.as_str(), shape_s.as_str()];
        let wy = [as_y.as_str(), shape_s.as_str()];
        err_with(cdist(&bad, &good, Metric::Euclidean), &wx);
        err_with(bad.cdist(&good, Metric::Hamming), &wx);
        err_with(pdist(&bad, Metric::Cityblock), &wx);
        err_with(knn(&bad, &good, 1, Metric::Euclidean, &opts), &wx);
        err_with(nearest(&bad, &good, Metric::Euclidean, &opts), &wx);
        err_with(
            count_within(&bad, &good, 1.0, Metric::Euclidean, &opts),
            &wx,
        );
        err_with(cdist(&good, &bad, Metric::Euclidean), &wy);
        err_with(count_within(&good, &bad, 1.0, Metric::Cosine, &opts), &wy);
        // Empty candidates are named as empty before k is compared with them.
        err_with(knn(&good, &bad, 1, Metric::Euclidean, &opts), &wy);
    }
}

#[test]
fn metric_names_and_parameters_are_checked() {
    // Every SciPy name parses.
    for (name, want) in METRIC_NAMES.iter().zip([
        Metric::Euclidean,
        Metric::SqEuclidean,
        Metric::Cityblock,
        Metric::Chebyshev,
        Metric::Minkowski(2.0),
        Metric::Cosine,
        Metric::Correlation,
        Metric::Hamming,
        Metric::Canberra,
        Metric::BrayCurtis,
    ]) {
        assert_eq!(Metric::parse(name, None).unwrap(), want);
        assert_eq!(name.parse::<Metric>().unwrap(), want);
    }
    assert_eq!(
        Metric::parse("minkowski", Some(3.0)).unwrap(),
        Metric::Minkowski(3.0)
    );
    assert_eq!(
        Metric::parse("minkowski", Some(f64::INFINITY)).unwrap(),
        Metric::Minkowski(f64::INFINITY)
    );
    // An unknown name lists the known ones.
    let mut wants: Vec<&str> = METRIC_NAMES.to_vec();
    wants.push("manhattan");
    err_with(Metric::parse("manhattan", None), &wants);
    err_with("l2".parse::<Metric>(), &["l2", "euclidean", "braycurtis"]);
    err_with(Metric::parse("", None), &["euclidean"]);
    // minkowski's p must be > 0.
    for p in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
        err_with(Metric::parse("minkowski", Some(p)), &["minkowski", "p"]);
        let x = pts(&[4, 3]);
        let opts = ExecOptions::default();
        err_with(
            cdist(&x, &pts(&[3, 3]), Metric::Minkowski(p)),
            &["minkowski", "p"],
        );
        err_with(pdist(&x, Metric::Minkowski(p)), &["minkowski", "p"]);
        err_with(
            knn(&x, &x, 1, Metric::Minkowski(p), &opts),
            &["minkowski", "p"],
        );
        err_with(
            count_within(&x, &x, 1.0, Metric::Minkowski(p), &opts),
            &["minkowski", "p"],
        );
    }
    // p for a metric that takes none.
    for name in ["euclidean", "cosine", "chebyshev"] {
        err_with(Metric::parse(name, Some(3.0)), &["p", name]);
    }
}

#[test]
fn k_and_radius_are_checked() {
    let (x, y) = (pts(&[5, 3]), pts(&[4, 3]));
    let opts = ExecOptions::default();
    err_with(knn(&x, &y, 0, Metric::Euclidean, &opts), &["k"]);
    err_with(knn(&x, &y, 5, Metric::Euclidean, &opts), &["k = 5", "4"]);
    assert!(knn(&x, &y, 4, Metric::Euclidean, &opts).is_ok());
    for r in [-1.0, -f64::MIN_POSITIVE, f64::NAN, f64::NEG_INFINITY] {
        err_with(
            count_within(&x, &y, r, Metric::Euclidean, &opts),
            &["radius"],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Instruction sets: the baseline path, forced in a subprocess
// ---------------------------------------------------------------------------------------------

/// In the subprocesses that force an instruction set (`TESSERA_ISA=baseline` or `avx2`), the
/// kernels must say so; otherwise a CPU with AVX2 and FMA must not be running the baseline.
#[test]
fn isa_detection_follows_the_environment() {
    let forced = std::env::var("TESSERA_ISA").ok();
    let isa = detected_isa();
    eprintln!("detected_isa() = {isa:?} (TESSERA_ISA: {forced:?})");
    match forced.as_deref() {
        Some("baseline") => assert_eq!(isa, Isa::Baseline),
        Some("avx2") => assert_eq!(isa, Isa::Avx2),
        _ => {
            if has_avx2_fma() {
                assert_ne!(isa, Isa::Baseline);
            }
        }
    }
}

/// Whether this CPU has AVX2 and FMA (what the AVX2 path needs).
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Reruns every `isa_` test of this binary with `TESSERA_ISA` set to `isa` (read once per
/// process, hence the subprocess): that path's kernels against the same references.
fn isa_tests_pass_with(isa: &str) {
    let exe = std::env::current_exe().unwrap();
    let listed = Command::new(&exe)
        .args(["isa_", "--list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&listed.stdout).into_owned();
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .collect();
    assert!(names.len() >= 8, "the isa_ tests: {list}");
    let out = Command::new(&exe)
        .args(["isa_", "--test-threads=2"])
        .env("TESSERA_ISA", isa)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the isa_ tests fail on the {isa} path:\n{stdout}\n{stderr}"
    );
    let summary = format!("test result: ok. {} passed; 0 failed", names.len());
    assert!(stdout.contains(&summary), "want {summary:?}:\n{stdout}");
    for name in names {
        assert!(
            stdout.contains(&format!("test {name} ... ok")),
            "{name} did not pass on the {isa} path:\n{stdout}"
        );
    }
}

/// The portable kernels (`TESSERA_ISA=baseline`) pass the `isa_` tests.
#[test]
fn forced_baseline_path_passes_the_same_tests() {
    isa_tests_pass_with("baseline");
}

/// The AVX2 kernels pass the `isa_` tests, on a CPU that would otherwise run AVX-512 (or
/// AVX2 anyway): without this, an AVX-512 machine (CI's) never runs them.
#[test]
fn forced_avx2_path_passes_the_same_tests() {
    if has_avx2_fma() {
        isa_tests_pass_with("avx2");
    } else {
        eprintln!("no AVX2 with FMA on this CPU: nothing to force");
    }
}

/// knn reports its row tasks in order, and the bytes of the distances it computed.
#[test]
fn knn_reports_progress_per_row_task() {
    use std::sync::{Arc, Mutex};
    use tessera::exec::Progress;
    let mut rng = Rng(21);
    let x = uniform(&mut rng, 700, 3);
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let log = Arc::clone(&seen);
    let opts = ExecOptions::default()
        .threads(2)
        .progress(move |p| log.lock().unwrap().push(p));
    let xs = chunked(&x, &Chunks::Size(100));
    knn(&xs, &xs, 3, Metric::Cityblock, &opts).unwrap();
    let seen = seen.lock().unwrap();
    let total = seen.last().map(|p| p.total).unwrap_or(0);
    assert!(total >= 2, "{seen:?}");
    let dones: Vec<usize> = seen.iter().map(|p| p.done).collect();
    assert_eq!(dones, (1..=total).collect::<Vec<_>>());
    assert_eq!(seen.last().unwrap().bytes, 700 * 700 * 8);
}

/// The row reductions read their inputs' regions themselves: inputs with a stage computed first
/// (the carries of a cumsum, a broadcast reduction) are prepared before, x always, y when it is
/// streamed rather than held. They failed with "read before its carries were computed".
#[test]
fn knn_of_inputs_that_need_preparing() {
    let mut rng = Rng(21);
    let x = chunked(&uniform(&mut rng, 40, 3), &Chunks::Size(7));
    let small = chunked(&uniform(&mut rng, 30, 3), &Chunks::Size(9));
    // 2.4 MB of points: more than a quarter of 1 MiB, so they are streamed, not held.
    let big = chunked(&uniform(&mut rng, 100_000, 3), &Chunks::Size(30_000));
    let held = |a: &ChunkedArray<f64>| ChunkedArray::from_array(a.compute().unwrap(), 7).unwrap();
    let roomy = ExecOptions::default().threads(2);
    let tight = roomy.clone().allowed_mem(1 << 20);
    let xs = x.cumsum(0).unwrap();
    for (y, opts, what) in [
        (small.cumsum(0).unwrap(), &roomy, "x and y cumsum, y held"),
        (big.cumsum(0).unwrap(), &tight, "x and y cumsum, y streamed"),
        (
            big.sub(big.mean(ReduceOpts::axis(0)).unwrap()).unwrap(),
            &tight,
            "y centred, streamed",
        ),
    ] {
        let got = knn(&xs, &y, 3, Metric::Cityblock, opts).unwrap();
        let want = knn(&held(&xs), &held(&y), 3, Metric::Cityblock, &roomy).unwrap();
        assert_eq!(got.indices, want.indices, "{what}");
        assert_eq!(got.distances, want.distances, "{what}");
    }
}
