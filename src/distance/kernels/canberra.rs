//! Canberra in f64 on AVX-512, past the divider's limit, with the division's bits.
//!
//! Each coordinate of a pair costs one quotient, `|x - y| / (|x| + |y|)`. The packed-panel
//! loop divides every one, and runs at the divider's rate while the multiply-add units idle.
//! Here a panel is four vectors of points: the divider forms the quotients of the first three,
//! and the multiply-add units those of the fourth, from the 14-bit reciprocal estimate
//! (`vrcp14`), then in the manner of Markstein (Muller et al., *Handbook of Floating-Point
//! Arithmetic*, on division with a fused multiply-add):
//! 1. two Newton steps `y = y + y (1 - den y)`: 28 bits, then within an ulp of `1 / den`;
//! 2. a third, which rounds to `RN(1 / den)` itself (for every denominator but those whose
//!    significand is all ones, which go to the divider);
//! 3. `q = num y` and one correction `q = q + y (num - den q)`: within an ulp of the quotient;
//! 4. the last correction `q + y (num - den q)`, with the remainder exact and `y` the rounded
//!    reciprocal, is the correctly rounded quotient: the bits the division gives.
//!
//! So every term, and every sum (added in the dividing loop's order), has the bits of the
//! dividing loop, whatever the panel a point falls in: results do not depend on the chunking.
//! The tests hold the estimated quotients to the division's bits on 2^18 vectors, among them
//! quotients within 2^-53 ulp of a midpoint between two doubles; a longer run,
//! `TESSERA_CANBERRA_VECTORS=200000000 cargo test --release --lib estimated_quotients`, found
//! no difference in 1.6e9. They cannot tell the third Newton step or the first correction
//! missing (either alone: the other then made up for it on every quotient tried); both stay,
//! because the argument above needs them.
//!
//! On a Zen 4 core (n = m = 10000, d = 64, both cores) that is 6.9 G pair-dims/s where
//! dividing alone gives 6.0; two vectors of three through the divider gave 6.6. The estimate
//! costs ten multiply-adds and a product, so it pays only beside the divider, never instead of
//! it. Without
//! steps 2 and 4 (a quotient within an ulp, not always the division's) the split reached 8.5,
//! but the same pair could then differ in its last bit with the panel it fell in, that is with
//! the chunking, and duplicate points could tie no more. In f32 the divider is fast enough
//! that the estimate gains nothing (17.1 against 17.3 dividing), so f32 keeps the dividing
//! loop.
//!
//! The steps need a denominator far from both ends of the exponent range, and remainders that
//! do not underflow: a tile whose inputs hold a non-zero magnitude outside `[2^-900, 2^1000]`
//! (subnormals, values near the largest) goes to the dividing loop. A zero denominator (both
//! coordinates zero) adds 0, as in SciPy; NaN and infinity give NaN, as the division does.

use super::TileOut;
use std::arch::x86_64::*;

/// Non-zero finite magnitudes in a tile this kernel takes lie in `[LO, HI]`: 2^-900 and 2^1000.
const LO: f64 = f64::from_bits((1023 - 900) << 52);
const HI: f64 = f64::from_bits((1023 + 1000) << 52);
/// Lanes per vector, vectors per panel, of which through the divider; points per panel.
const L: usize = 8;
const V: usize = 4;
const DIVIDED: usize = 3;
const P: usize = V * L;

/// `true` when every non-zero finite magnitude in `v` lies in `[LO, HI]`.
fn in_range(v: &[f64]) -> bool {
    v.iter().all(|&a| {
        let m = a.abs();
        m == 0.0 || !m.is_finite() || (LO..=HI).contains(&m)
    })
}

/// The `r x c` canberra tile of `x` (`r` rows of `d`) against `y` (`c` rows of `d`) into
/// `out`, if this CPU has AVX-512 and the inputs' magnitudes suit the reciprocal steps;
/// `false` (nothing written) otherwise.
pub(crate) fn tile_f64(
    x: &[f64],
    r: usize,
    y: &[f64],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, f64>,
) -> bool {
    if d == 0
        || super::detected_isa() != super::Isa::Avx512
        || !in_range(&x[..r * d])
        || !in_range(&y[..c * d])
    {
        return false;
    }
    let packed = super::pack::<f64, P>(y, c, d);
    let mut i = 0;
    // SAFETY: detected_isa found AVX-512 F, VL, DQ and BW; the row slices and the packed
    // panels are as long as the loops read.
    unsafe {
        while i + 4 <= r {
            rows::<4>(&x[i * d..(i + 4) * d], &packed, c, d, out, i);
            i += 4;
        }
        while i < r {
            rows::<1>(&x[i * d..(i + 1) * d], &packed, c, d, out, i);
            i += 1;
        }
    }
    true
}

/// `num / den`, correctly rounded, from the reciprocal estimate (`den` in `[LO, 2 HI]`, 0, or
/// not finite; `num <= den`). `None` when a lane's denominator has an all-ones significand,
/// the one case where the third step may miss `RN(1 / den)`.
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
#[inline]
unsafe fn estimated(num: __m512d, den: __m512d) -> Option<__m512d> {
    let ones = _mm512_set1_epi64(0x000f_ffff_ffff_ffff);
    if _mm512_cmpeq_epi64_mask(_mm512_and_si512(_mm512_castpd_si512(den), ones), ones) != 0 {
        return None;
    }
    let one = _mm512_set1_pd(1.0);
    // The estimate of 1 / 0 (infinity) is clamped to a finite value, so a zero denominator
    // gives 0 * finite = 0, not 0 * infinity = NaN (`min` keeps a NaN estimate, its second
    // operand; NaN and infinite denominators end in NaN, as the division does).
    let mut y = _mm512_min_pd(_mm512_set1_pd(HI * 2.0), _mm512_rcp14_pd(den));
    for _ in 0..3 {
        y = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(den, y, one), y);
    }
    let q = _mm512_mul_pd(num, y);
    let q = _mm512_fmadd_pd(y, _mm512_fnmadd_pd(den, q, num), q);
    Some(_mm512_fmadd_pd(y, _mm512_fnmadd_pd(den, q, num), q))
}

/// `R` rows of `x` against every panel: the quotients of the first `DIVIDED` vectors from the
/// divider, the others' from [`estimated`].
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
unsafe fn rows<const R: usize>(
    x: &[f64],
    packed: &[f64],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, f64>,
    i0: usize,
) {
    // Any value at or below the smallest non-zero denominator: 0 / tiny is 0. (A NaN
    // denominator becomes tiny too, as `max` returns its second operand then, but its
    // numerator is NaN as well.)
    let tiny = _mm512_set1_pd(f64::MIN_POSITIVE);
    let xs: [&[f64]; R] = std::array::from_fn(|rr| &x[rr * d..(rr + 1) * d]);
    for (pj, panel) in packed.chunks_exact(d * P).enumerate() {
        let mut acc = [[_mm512_setzero_pd(); V]; R];
        for k in 0..d {
            let base = panel[k * P..(k + 1) * P].as_ptr();
            let mut yv = [_mm512_setzero_pd(); V];
            let mut ay = [_mm512_setzero_pd(); V];
            for v in 0..V {
                yv[v] = _mm512_loadu_pd(base.add(v * L));
                ay[v] = _mm512_abs_pd(yv[v]);
            }
            for rr in 0..R {
                let xv = xs[rr][k];
                let (xb, axb) = (_mm512_set1_pd(xv), _mm512_set1_pd(xv.abs()));
                for v in 0..V {
                    let num = _mm512_abs_pd(_mm512_sub_pd(xb, yv[v]));
                    let den = _mm512_add_pd(axb, ay[v]);
                    let divided = || _mm512_div_pd(num, _mm512_max_pd(den, tiny));
                    let q = if v < DIVIDED {
                        divided()
                    } else {
                        estimated(num, den).unwrap_or_else(divided)
                    };
                    acc[rr][v] = _mm512_add_pd(acc[rr][v], q);
                }
            }
        }
        let j0 = pj * P;
        let n = P.min(c - j0);
        for (rr, a) in acc.iter().enumerate() {
            let dst = &mut out.row(i0 + rr)[j0..j0 + n];
            if n == P {
                // Straight to the row: at small d the stores set the pace.
                for (v, &s) in a.iter().enumerate() {
                    _mm512_storeu_pd(dst.as_mut_ptr().add(v * L), s);
                }
            } else {
                let mut done = [0.0; P];
                for (v, &s) in a.iter().enumerate() {
                    _mm512_storeu_pd(done.as_mut_ptr().add(v * L), s);
                }
                dst.copy_from_slice(&done[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{detected_isa, run_panels, Canberra, Isa, TileOut};
    use std::arch::x86_64::*;

    /// A small generator (an LCG's high bits).
    struct Gen(u64);
    impl Gen {
        fn bits(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn unit(&mut self) -> f64 {
            self.bits() as f64 / (1u64 << 53) as f64
        }
        /// Coordinates of every kind a tile meets: zeros of both signs, mixed signs and
        /// magnitudes, the ends of the range, and (when `special`) NaN and infinities.
        fn coordinate(&mut self, special: bool) -> f64 {
            let u = self.unit();
            match self.bits() % 20 {
                0 => 0.0,
                1 => -0.0,
                2 if special => f64::NAN,
                3 if special => f64::INFINITY,
                4 if special => f64::NEG_INFINITY,
                5 => -u,
                6 => u * 1e6,
                7 => u * 1e-6,
                8 => 1.0,
                9 => super::LO * (1.0 + u),
                10 => super::HI * (0.5 + u / 2.0),
                // The largest value below 1 and below 2: sums with an all-ones significand.
                11 => 1.0 - f64::EPSILON / 2.0,
                12 => 2.0 - f64::EPSILON,
                _ => u,
            }
        }
        /// `(num, den)` whose quotient, in [1/2, 1), lies within about 2^-53 ulp of a midpoint
        /// between two doubles: for an odd 54-bit `mid` and a small `delta`, `b = delta /
        /// mid mod 2^53` and `a = (b mid - delta) / 2^53` are whole, so that `a / 2b` is
        /// `mid / 2^54 - delta / (2^54 b)`; both scaled by a power of two across the range.
        fn near_midpoint(&mut self) -> (f64, f64) {
            loop {
                let mid = (1u64 << 53) | self.bits() | 1;
                let delta = 1 + self.bits() % 64;
                let minus = self.bits().is_multiple_of(2);
                // The inverse of mid modulo 2^64 (Newton's iteration doubles the bits).
                let mut inv = mid;
                for _ in 0..6 {
                    inv = inv.wrapping_mul(2u64.wrapping_sub(mid.wrapping_mul(inv)));
                }
                let mask = (1u64 << 53) - 1;
                let d = if minus { delta.wrapping_neg() } else { delta };
                let b = d.wrapping_mul(inv) & mask;
                if b < 1 << 52 {
                    continue;
                }
                let prod = u128::from(b) * u128::from(mid);
                let top = if minus {
                    prod + u128::from(delta)
                } else {
                    prod - u128::from(delta)
                };
                let a = top >> 53;
                if top & u128::from(mask) != 0 || a >= 1 << 53 {
                    continue;
                }
                let scale = 2f64.powi((self.bits() % 1800) as i32 - 900);
                return (a as f64 * scale, 2.0 * b as f64 * scale);
            }
        }

        /// A denominator with a significand of every kind: random, near all ones, near none.
        fn significand(&mut self) -> u64 {
            let m = (1u64 << 52) - 1;
            match self.bits() % 6 {
                0 => m - (self.bits() % 8),
                1 => self.bits() % 8,
                2 => m ^ (1 << (self.bits() % 52)),
                _ => self.bits() & m,
            }
        }
    }

    /// `estimated` against the division, lane by lane, on `vectors` vectors of quotients
    /// `num / den` with `den` across the range and `num <= den` (as `|x - y| <= |x| + |y|`).
    fn quotients_match(vectors: usize, seed: u64) {
        let mut g = Gen(seed);
        let (lo, hi) = (super::LO.log2() as i64, (2.0 * super::HI).log2() as i64);
        let mut estimated = 0usize;
        for _ in 0..vectors {
            let mut num = [0.0; 8];
            let mut den = [0.0; 8];
            for l in 0..8 {
                let e = lo + (g.bits() % (hi - lo) as u64) as i64;
                let d = f64::from_bits((((e + 1023) as u64) << 52) | g.significand());
                (num[l], den[l]) = match g.bits() % 12 {
                    // Quotients within a hair of a midpoint between two doubles, the hard
                    // cases of rounding (below).
                    10 | 11 => g.near_midpoint(),
                    0 => (d, d),
                    1 => (0.0, d),
                    2 => (super::LO * f64::EPSILON, d),
                    3 => (f64::from_bits(d.to_bits() - 1 - g.bits() % 4), d),
                    4..=6 => (d * g.unit(), d),
                    // As the kernel forms them, from two coordinates in range: near each
                    // other (a numerator of a few ulps), one far smaller, or unrelated.
                    _ => {
                        let e = lo + (g.bits() % (999 - lo) as u64) as i64;
                        let a = f64::from_bits((((e + 1023) as u64) << 52) | g.significand());
                        let b = match g.bits() % 4 {
                            0 => f64::from_bits(a.to_bits() + g.bits() % 8),
                            1 => f64::from_bits(a.to_bits() - g.bits() % 8),
                            2 => (a * g.unit()).max(super::LO),
                            _ => d / 4.0,
                        };
                        let b = if g.bits().is_multiple_of(4) { -b } else { b };
                        ((a - b).abs(), a.abs() + b.abs())
                    }
                };
            }
            // SAFETY: the caller checked for AVX-512; the arrays hold 8 lanes.
            let got = unsafe {
                let (n, d) = (_mm512_loadu_pd(num.as_ptr()), _mm512_loadu_pd(den.as_ptr()));
                super::estimated(n, d).map(|q| {
                    let mut out = [0.0; 8];
                    _mm512_storeu_pd(out.as_mut_ptr(), q);
                    out
                })
            };
            let all_ones = den
                .iter()
                .any(|d| d.to_bits() & ((1 << 52) - 1) == (1 << 52) - 1);
            assert_eq!(got.is_none(), all_ones, "denominators {den:?}");
            if let Some(q) = got {
                estimated += 1;
                for l in 0..8 {
                    let want = num[l] / den[l];
                    assert_eq!(
                        q[l].to_bits(),
                        want.to_bits(),
                        "{:e} / {:e}: {:e}, the division {want:e}",
                        num[l],
                        den[l],
                        q[l]
                    );
                }
            }
        }
        assert!(
            estimated > vectors / 2,
            "only {estimated} of {vectors} vectors estimated"
        );
    }

    #[test]
    fn estimated_quotients_have_the_division_s_bits() {
        if detected_isa() != Isa::Avx512 {
            return;
        }
        // TESSERA_CANBERRA_VECTORS raises the count for a longer run (in release).
        let vectors = std::env::var("TESSERA_CANBERRA_VECTORS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 18);
        quotients_match(vectors, 1);
    }

    /// The whole tile against the dividing panel loop: the same bits, NaN where it is NaN.
    #[test]
    fn tiles_have_the_dividing_loop_s_bits() {
        if detected_isa() != Isa::Avx512 {
            return;
        }
        let mut g = Gen(3);
        for special in [false, true] {
            for (r, c, d) in [
                (1, 1, 1),
                (5, 33, 3),
                (9, 17, 8),
                (4, 48, 64),
                (7, 70, 13),
                (3, 26, 200),
            ] {
                let x: Vec<f64> = (0..r * d).map(|_| g.coordinate(special)).collect();
                let y: Vec<f64> = (0..c * d).map(|_| g.coordinate(special)).collect();
                let (mut got, mut want) = (vec![0.0; r * c], vec![0.0; r * c]);
                assert!(super::tile_f64(
                    &x,
                    r,
                    &y,
                    c,
                    d,
                    &mut TileOut::from_slice(&mut got, r, c)
                ));
                run_panels(
                    Canberra,
                    &x,
                    r,
                    &y,
                    c,
                    d,
                    &mut TileOut::from_slice(&mut want, r, c),
                );
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                        "{r} x {c}, d = {d}, element {k}: {g:e} against the division's {w:e}"
                    );
                }
            }
        }
    }

    #[test]
    fn magnitudes_outside_the_range_are_left_to_the_division() {
        let mut out = [0.0f64; 8];
        let lo = super::LO;
        let hi = super::HI;
        for bad in [
            1e-310,
            lo / 2.0,
            lo * (1.0 - f64::EPSILON),
            hi * 2.0,
            f64::MAX,
        ] {
            let x = [1.0, bad];
            let y = [0.5, 0.25, 2.0, 1.0];
            assert!(!super::tile_f64(
                &x,
                2,
                &y,
                4,
                1,
                &mut TileOut::from_slice(&mut out, 2, 4)
            ));
            assert!(!super::tile_f64(
                &y,
                4,
                &x,
                2,
                1,
                &mut TileOut::from_slice(&mut out, 4, 2)
            ));
        }
        // Points without coordinates are not this kernel's.
        assert!(!super::tile_f64(
            &[],
            2,
            &[],
            4,
            0,
            &mut TileOut::from_slice(&mut out, 2, 4)
        ));
    }
}
