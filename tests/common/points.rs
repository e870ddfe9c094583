//! Deterministic test points (an LCG), the same in every test binary that uses them.

use ndarray::Array2;

/// `n` points of `d` coordinates in [-5, 5), distinct, from `seed`.
pub(crate) fn points(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array2::from_shape_fn((n, d), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64) * 10.0 - 5.0
    })
}
