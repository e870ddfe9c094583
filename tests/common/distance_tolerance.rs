//! How the distance tests compare a result with its reference (the tolerances of issue 4):
//! shared by `tests/distance.rs` (naive references) and `tests/distance_scipy.rs` (SciPy).
#![allow(dead_code)]

use ndarray::ArrayD;
use tessera::distance::Metric;

/// The metrics computed from dot products (the others add non-negative terms).
pub(crate) fn gemm_metric(m: Metric) -> bool {
    matches!(
        m,
        Metric::Euclidean | Metric::SqEuclidean | Metric::Cosine | Metric::Correlation
    )
}

/// The largest finite magnitude of `a` (0 if none).
pub(crate) fn largest_finite(a: &ArrayD<f64>) -> f64 {
    a.iter()
        .filter(|v| v.is_finite())
        .fold(0.0, |m: f64, v| m.max(v.abs()))
}

/// The tolerance of each reference value `w` of the matrix `want`: f32 results within 1e-5 of
/// the largest finite distance, f64 GEMM metrics within 1e-9 of it, the f64 L1 family within
/// 1e-12 of each element.
pub(crate) fn tolerance(metric: Metric, f32: bool, want: &ArrayD<f64>) -> impl Fn(f64) -> f64 {
    let top = largest_finite(want);
    move |w: f64| {
        if f32 {
            1e-5 * top
        } else if gemm_metric(metric) {
            1e-9 * top
        } else {
            1e-12 * w.abs()
        }
    }
}

/// Whether `g` matches the reference `w`: both NaN, the same infinity, or finite and within
/// `tol`.
pub(crate) fn matches(g: f64, w: f64, tol: f64) -> bool {
    if g.is_nan() || w.is_nan() {
        g.is_nan() && w.is_nan()
    } else if g.is_infinite() || w.is_infinite() {
        g == w
    } else {
        (g - w).abs() <= tol
    }
}
