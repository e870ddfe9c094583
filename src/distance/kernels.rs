//! Tile kernels: the distances between a block of rows of `x` and a block of rows of `y`.
//!
//! Two families:
//! - the GEMM metrics (`euclidean`, `sqeuclidean`, `cosine`, `correlation`) from the dot
//!   products of the `gemm` crate and the row norms, `|x|^2 + |y|^2 - 2 x.y`, clamped at 0; a
//!   pair whose result lost most of its digits to cancellation (near-duplicate points), or whose
//!   inputs are not finite, is recomputed directly, so it is as exact as a direct loop;
//! - every other metric (and the euclidean ones for small `d`, where a GEMM is all overhead)
//!   through one register-blocked loop over `y` packed into panels of `P` points
//!   (`[panel][dimension][point]`): `R` rows of `x` against one panel at a time, `R * P`
//!   accumulators in registers, one broadcast of an `x` coordinate per `P` pairs.
//!
//! The loop is written once, generically, and compiled three times (AVX-512, AVX2 with FMA,
//! and the baseline), the right one picked at run time, so a portable build runs at the speed
//! of a `-C target-cpu=native` one.

use super::Metric;
use crate::element::Float;

#[cfg(target_arch = "x86_64")]
mod canberra;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// Where a tile goes: `r` rows of `c` elements, row `i` starting `i * ldo` elements after the
/// first (a block of a larger row-major array, or a contiguous buffer when `ldo = c`).
pub struct TileOut<'a, T> {
    ptr: *mut T,
    r: usize,
    c: usize,
    ldo: usize,
    _life: std::marker::PhantomData<&'a mut [T]>,
}

impl<'a, T> TileOut<'a, T> {
    /// A contiguous `r x c` buffer.
    ///
    /// # Panics
    /// A slice shorter than `r * c`.
    pub fn from_slice(out: &'a mut [T], r: usize, c: usize) -> Self {
        assert!(
            out.len() >= r * c,
            "a tile buffer of {} for {r} x {c}",
            out.len()
        );
        TileOut {
            ptr: out.as_mut_ptr(),
            r,
            c,
            ldo: c,
            _life: std::marker::PhantomData,
        }
    }

    /// `r` rows of `c` elements at `ptr`, `ldo` apart.
    ///
    /// # Safety
    /// Every element `ptr + i * ldo + j` (`i < r`, `j < c`) must be valid for writes for `'a`,
    /// and no one else may read or write those elements meanwhile (other elements between the
    /// rows may belong to others).
    pub(crate) unsafe fn from_raw(ptr: *mut T, r: usize, c: usize, ldo: usize) -> Self {
        TileOut {
            ptr,
            r,
            c,
            ldo,
            _life: std::marker::PhantomData,
        }
    }

    /// Row `i`.
    #[inline(always)]
    fn row(&mut self, i: usize) -> &mut [T] {
        assert!(i < self.r);
        // SAFETY: row i lies inside the region the constructor vouched for, and the returned
        // borrow of self keeps any other row slice from being alive at the same time.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.ldo), self.c) }
    }
}

/// The element types distances are computed in: `f32` and `f64`.
pub trait DistFloat:
    Float
    + sealed::Sealed
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    /// Below this share of `|x|^2 + |y|^2`, a squared distance from the GEMM identity has lost
    /// too many digits and is recomputed directly.
    #[doc(hidden)]
    const CANCELLATION: f64;
    /// Below this `|x|^2 + |y|^2` (2^-970 in f64, 2^-103 in f32), products of coordinates fall
    /// among the subnormal numbers and lose digits the cancellation test does not see: such
    /// squared distances are recomputed directly too.
    #[doc(hidden)]
    const TINY: f64;
    #[doc(hidden)]
    fn fabs(self) -> Self;
    #[doc(hidden)]
    fn fsqrt(self) -> Self;
    #[doc(hidden)]
    fn fpow(self, p: Self) -> Self;
    #[doc(hidden)]
    fn fma(self, a: Self, b: Self) -> Self;
    /// The cube root of a non-negative value (or NaN, or infinity), branch-free so that a
    /// loop over a panel vectorises; within 2 epsilon (relative) of the library's `cbrt`.
    #[doc(hidden)]
    fn fcbrt(self) -> Self;
    #[doc(hidden)]
    fn of(v: f64) -> Self;
    /// The largest value not above `v` (`v` rounded down, not to the nearest): a distance of
    /// this type is `<= v` exactly when it is `<=` this.
    #[doc(hidden)]
    fn at_most(v: f64) -> Self;
    /// The sum of `row` by NumPy's pairwise summation.
    #[doc(hidden)]
    fn row_sum(row: &[Self]) -> Self;
    /// `out (r x c) = x (r x d) . y (c x d)^T`, the inputs row-major and contiguous.
    #[doc(hidden)]
    fn dot_tile(x: &[Self], y: &[Self], r: usize, c: usize, d: usize, out: &mut TileOut<'_, Self>);
    /// The canberra tile through a faster kernel than the panel loop, where this CPU and these
    /// inputs have one: `true` when it wrote the tile, `false` (nothing written) otherwise.
    #[doc(hidden)]
    fn canberra_tile(
        x: &[Self],
        r: usize,
        y: &[Self],
        c: usize,
        d: usize,
        out: &mut TileOut<'_, Self>,
    ) -> bool;
}

macro_rules! impl_dist_float {
    ($t:ty, $cancel:expr, $seed:expr, $up:expr, $down:expr, $canberra:path) => {
        impl DistFloat for $t {
            const CANCELLATION: f64 = $cancel;
            const TINY: f64 = (<$t>::MIN_POSITIVE / <$t>::EPSILON) as f64;
            #[inline(always)]
            fn fabs(self) -> Self {
                self.abs()
            }
            #[inline(always)]
            fn fsqrt(self) -> Self {
                self.sqrt()
            }
            #[inline(always)]
            fn fpow(self, p: Self) -> Self {
                self.powf(p)
            }
            #[inline(always)]
            fn fma(self, a: Self, b: Self) -> Self {
                self.mul_add(a, b)
            }
            #[inline(always)]
            fn fcbrt(self) -> Self {
                // Zero and subnormal values are scaled up by 2^(3k) first, the root scaled
                // back by 2^-k, so that the seed below sees a normal number.
                let small = self < <$t>::MIN_POSITIVE;
                let a = if small { self * $up } else { self };
                // The seed: a third of the exponent (and of the leading mantissa bits, read as
                // one integer) plus the bias's share, within about 6% of the root (the
                // estimate of fdlibm's cbrt); four Newton steps then square the error each:
                // 6e-2, 4e-3, 1e-5, 2e-10, 3e-20.
                let seed = ($seed)(a.to_bits());
                let mut r = <$t>::from_bits(seed);
                for _ in 0..4 {
                    r = r - (r - a / (r * r)) * (1.0 / 3.0);
                }
                let r = if small { r * $down } else { r };
                // 0, infinity and NaN are their own roots.
                if self == 0.0 || !self.is_finite() {
                    self
                } else {
                    r
                }
            }
            #[inline(always)]
            fn of(v: f64) -> Self {
                v as $t
            }
            fn at_most(v: f64) -> Self {
                let r = v as $t;
                if f64::from(r) > v {
                    r.next_down()
                } else {
                    r
                }
            }
            fn row_sum(row: &[Self]) -> Self {
                crate::ops::reduce::pairwise_sum(row, &|v: $t| v)
            }
            fn dot_tile(
                x: &[Self],
                y: &[Self],
                r: usize,
                c: usize,
                d: usize,
                out: &mut TileOut<'_, Self>,
            ) {
                assert!(x.len() >= r * d && y.len() >= c * d && out.r >= r && out.c >= c);
                if r == 0 || c == 0 {
                    return;
                }
                if d == 0 {
                    for i in 0..r {
                        out.row(i).fill(0.0);
                    }
                    return;
                }
                // SAFETY: the assert above checks that every element the strides reach lies in
                // its slice or in the output region: dst is r x c with row stride ldo, lhs
                // r x d with row stride d, and rhs is y transposed (d x c: element (k, j) at
                // j * d + k).
                unsafe {
                    gemm::gemm(
                        r,
                        c,
                        d,
                        out.ptr,
                        1,
                        out.ldo as isize,
                        false,
                        x.as_ptr(),
                        1,
                        d as isize,
                        y.as_ptr(),
                        d as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
            fn canberra_tile(
                x: &[Self],
                r: usize,
                y: &[Self],
                c: usize,
                d: usize,
                out: &mut TileOut<'_, Self>,
            ) -> bool {
                #[cfg(target_arch = "x86_64")]
                {
                    $canberra(x, r, y, c, d, out)
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (x, r, y, c, d, out);
                    false
                }
            }
        }
    };
}
impl_dist_float!(
    f64,
    1e-3,
    |bits: u64| u64::from((bits >> 32) as u32 / 3 + 0x2a9f_7893) << 32,
    18014398509481984.0, // 2^54
    1.0 / 262144.0,      // 2^-18
    canberra::tile_f64
);
impl_dist_float!(
    f32,
    5e-2,
    |bits: u32| bits / 3 + 0x2a51_19f2,
    16777216.0,  // 2^24
    1.0 / 256.0, // 2^-8
    dividing_only
);

/// No faster canberra kernel: f32's divider keeps up (see `canberra`).
#[cfg(target_arch = "x86_64")]
fn dividing_only(
    _: &[f32],
    _: usize,
    _: &[f32],
    _: usize,
    _: usize,
    _: &mut TileOut<'_, f32>,
) -> bool {
    false
}

/// One metric's arithmetic for the packed-panel loop: what each coordinate adds to the
/// accumulators of a pair, and how the accumulators become the distance.
trait Op<T: DistFloat>: Copy {
    /// How many sums a pair keeps (1, or 2 for Bray-Curtis): the accumulators the panel loop
    /// must fit in registers.
    const SUMS: usize = 1;
    /// Initial accumulator value.
    fn init(self) -> T {
        T::zero()
    }
    /// Adds the coordinate pair `(x, y)` to the accumulators `a` (and `b`, for metrics that
    /// need two sums).
    fn step<const FMA: bool>(self, a: &mut T, b: &mut T, x: T, y: T);
    /// The distance from the accumulators, for dimension `d`.
    fn finish(self, a: T, b: T, d: usize) -> T;
    /// The distances of row `i` of the tile against the panel of points `j0..j0 + P`, from
    /// their accumulators: [`Op::finish`] lane by lane, unless the metric needs more than the
    /// sums (Bray-Curtis without negatives: each point's total).
    #[inline(always)]
    fn finish_panel<const P: usize>(
        self,
        a: &[T; P],
        b: &[T; P],
        d: usize,
        _ij: (usize, usize),
        done: &mut [T; P],
    ) {
        for l in 0..P {
            done[l] = self.finish(a[l], b[l], d);
        }
    }
}

/// 1, as a value the optimiser cannot see through (it would turn `t * 1 + a` back into an
/// add).
fn opaque_one<T: DistFloat>() -> T {
    std::hint::black_box(T::one())
}

/// `*a += v`.
#[inline(always)]
fn acc<T: DistFloat>(a: &mut T, v: T) {
    *a = *a + v;
}

#[derive(Clone, Copy)]
struct Cityblock<T> {
    one: T,
}
impl<T: DistFloat> Op<T> for Cityblock<T> {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        let t = (x - y).fabs();
        // With FMA, the sum goes through the multiply-add units (t * 1 + a rounds once, the
        // same bits as t + a), leaving the adders to x - y alone: on a core with separate
        // add and multiply-add pipes (AMD Zen), 4% faster at d = 64.
        *a = if FMA { t.fma(self.one, *a) } else { *a + t };
    }
    #[inline(always)]
    fn finish(self, a: T, _: T, _: usize) -> T {
        a
    }
}

#[derive(Clone, Copy)]
struct SqDiff {
    root: bool,
}
impl<T: DistFloat> Op<T> for SqDiff {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        let t = x - y;
        *a = if FMA { t.fma(t, *a) } else { *a + t * t };
    }
    #[inline(always)]
    fn finish(self, a: T, _: T, _: usize) -> T {
        if self.root {
            a.fsqrt()
        } else {
            a
        }
    }
}

#[derive(Clone, Copy)]
struct Chebyshev;
impl<T: DistFloat> Op<T> for Chebyshev {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        let t = (x - y).fabs();
        // As SciPy's: a NaN coordinate is never the largest, so it is skipped.
        *a = if t > *a { t } else { *a };
    }
    #[inline(always)]
    fn finish(self, a: T, _: T, _: usize) -> T {
        a
    }
}

#[derive(Clone, Copy)]
struct Minkowski<T> {
    p: T,
    inv: T,
}
impl<T: DistFloat> Op<T> for Minkowski<T> {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        acc(a, (x - y).fabs().fpow(self.p));
    }
    #[inline(always)]
    fn finish(self, a: T, _: T, _: usize) -> T {
        a.fpow(self.inv)
    }
}

/// Minkowski with a small whole `p`: `|x - y|^p` by `p - 1` multiplications, which vectorise,
/// instead of `powf` per coordinate (about 100 times slower). The terms may differ from
/// `powf`'s in the last bit or two, far inside the 1e-12 the L1 family promises.
#[derive(Clone, Copy)]
struct MinkowskiInt<T, const P: u32> {
    inv: T,
}
impl<T: DistFloat, const P: u32> Op<T> for MinkowskiInt<T, P> {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        let t = (x - y).fabs();
        let mut v = t;
        for _ in 1..P {
            v = v * t;
        }
        acc(a, v);
    }
    #[inline(always)]
    fn finish(self, a: T, _: T, _: usize) -> T {
        // The root, vectorised for the p this type is built for; `powf` (a call per pair,
        // which keeps the panel's finish scalar) for the others.
        match P {
            3 => a.fcbrt(),
            4 => a.fsqrt().fsqrt(),
            _ => a.fpow(self.inv),
        }
    }
}

#[derive(Clone, Copy)]
struct Canberra;
impl<T: DistFloat> Op<T> for Canberra {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        let num = (x - y).fabs();
        let den = x.fabs() + y.fabs();
        let q = num / den;
        // SciPy skips the terms whose denominator is 0 (0/0 counts as 0); NaN propagates.
        acc(a, if den != T::zero() { q } else { T::zero() });
    }
    #[inline(always)]
    fn finish(self, a: T, _: T, _: usize) -> T {
        a
    }
}

/// Bray-Curtis, `sum |x - y| / sum |x + y|`, with both sums over the coordinates.
#[derive(Clone, Copy)]
struct BrayCurtis<T> {
    one: T,
}
impl<T: DistFloat> Op<T> for BrayCurtis<T> {
    const SUMS: usize = 2;
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, b: &mut T, x: T, y: T) {
        let s = (x - y).fabs();
        let t = (x + y).fabs();
        if FMA {
            // The sums through the multiply-add units (exact: s * 1 + a rounds once, as
            // s + a), so that the adders only form x - y and x + y.
            *a = s.fma(self.one, *a);
            *b = t.fma(self.one, *b);
        } else {
            acc(a, s);
            acc(b, t);
        }
    }
    #[inline(always)]
    fn finish(self, a: T, b: T, _: usize) -> T {
        a / b
    }
}

/// Bray-Curtis for points without a negative coordinate (nor NaN): there `sum |x + y|` is
/// `sum x + sum y`, each point's total, summed once per tile ([`point_totals`]) instead of
/// once per pair. A pair then costs what cityblock costs: `|x - y|` and its sum.
///
/// The numerator has the bits of SciPy's loop (the same sum in the same order); the
/// denominator is the totals' sum, compensated, so it is closer to the exact value than a
/// sum in order, and may differ from SciPy's in the last bits (by at most about `d` units
/// of roundoff, SciPy's own error bound). It is a function of the two points alone, so the
/// result does not depend on the chunking, duplicate points tie and `pdist` is symmetric.
#[derive(Clone, Copy)]
struct BrayCurtisTotals<'a, T> {
    one: T,
    /// Totals of the tile's rows of `x` and of its points of `y` (padded to a whole panel).
    x: &'a [T],
    y: &'a [T],
}
impl<T: DistFloat> Op<T> for BrayCurtisTotals<'_, T> {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        Cityblock { one: self.one }.step::<FMA>(a, &mut T::zero(), x, y);
    }
    #[inline(always)]
    fn finish_panel<const P: usize>(
        self,
        a: &[T; P],
        _: &[T; P],
        _: usize,
        (i, j0): (usize, usize),
        done: &mut [T; P],
    ) {
        let xi = self.x[i];
        if let Some(Ok(y)) = self.y.get(j0..j0 + P).map(<&[T; P]>::try_from) {
            // A fixed-length loop: vector adds and divisions.
            for l in 0..P {
                done[l] = a[l] / (xi + y[l]);
            }
        } else {
            // Not reached: the totals of y are padded by the widest panel.
            for l in 0..P {
                done[l] = a[l] / (xi + self.y.get(j0 + l).copied().unwrap_or(T::one()));
            }
        }
    }
    #[inline(always)]
    fn finish(self, a: T, b: T, _: usize) -> T {
        a / b
    }
}

/// The coordinate sum of each of the `n` rows of `rows` (`d` each), compensated (Neumaier),
/// then `pad` more entries of 1 (for a packed panel's empty lanes). A sum that overflows is
/// infinite, as the plain sum is (the compensation would make it NaN).
fn point_totals<T: DistFloat>(rows: &[T], n: usize, d: usize, pad: usize) -> Vec<T> {
    let mut totals = Vec::with_capacity(n + pad);
    for row in rows.chunks_exact(d).take(n) {
        let (mut s, mut c) = (T::zero(), T::zero());
        for &v in row {
            let t = s + v;
            // Neumaier's test is |s| >= |v|; here neither is negative.
            c = c + if s >= v { (s - t) + v } else { (v - t) + s };
            s = t;
        }
        totals.push(if s.is_finite() { s + c } else { s });
    }
    totals.resize(n + pad, T::one());
    totals
}

/// `true` when no element of `v` is negative or NaN (-0 passes: `|-0 + -0|` and `-0 + -0`
/// add the same to a sum that starts at +0).
fn non_negative<T: DistFloat>(v: &[T]) -> bool {
    v.iter().all(|&a| a >= T::zero())
}

#[derive(Clone, Copy)]
struct Hamming;
impl<T: DistFloat> Op<T> for Hamming {
    #[inline(always)]
    fn step<const FMA: bool>(self, a: &mut T, _: &mut T, x: T, y: T) {
        acc(a, if x != y { T::one() } else { T::zero() });
    }
    #[inline(always)]
    fn finish(self, a: T, _: T, d: usize) -> T {
        a / T::of(d as f64)
    }
}

/// `y` (`c` rows of `d`) packed into panels of `P` points: `[panel][dimension][point]`, the
/// last panel padded with zeros.
fn pack<T: DistFloat, const P: usize>(y: &[T], c: usize, d: usize) -> Vec<T> {
    let panels = c.div_ceil(P);
    let mut packed = vec![T::zero(); panels * d * P];
    for (j, row) in y.chunks_exact(d.max(1)).take(c).enumerate() {
        let (panel, lane) = (j / P, j % P);
        let base = panel * d * P + lane;
        for (k, &v) in row.iter().enumerate() {
            packed[base + k * P] = v;
        }
    }
    packed
}

/// `RR` rows of `x` against every panel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_against_panels<T: DistFloat, O: Op<T>, const P: usize, const RR: usize, const FMA: bool>(
    op: O,
    x: &[T],
    packed: &[T],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, T>,
    i0: usize,
) {
    let xs: [&[T]; RR] = std::array::from_fn(|rr| &x[rr * d..(rr + 1) * d]);
    for (pj, panel) in packed.chunks_exact(d * P).enumerate() {
        let mut a = [[op.init(); P]; RR];
        let mut b = [[T::zero(); P]; RR];
        for k in 0..d {
            let Ok(yv) = <&[T; P]>::try_from(&panel[k * P..(k + 1) * P]) else {
                return;
            };
            for rr in 0..RR {
                let xv = xs[rr][k];
                for l in 0..P {
                    op.step::<FMA>(&mut a[rr][l], &mut b[rr][l], xv, yv[l]);
                }
            }
        }
        let j0 = pj * P;
        let n = P.min(c - j0);
        for rr in 0..RR {
            // Finished over the whole panel at once, a fixed-length loop the compiler turns
            // into vector instructions (square roots of 8 or 16 lanes), then stored as one
            // fixed-size copy: at small d this step, not the sums, sets the speed.
            let mut done = [T::zero(); P];
            op.finish_panel(&a[rr], &b[rr], d, (i0 + rr, j0), &mut done);
            let dst = &mut out.row(i0 + rr)[j0..j0 + n];
            match <&mut [T; P]>::try_from(&mut *dst) {
                Ok(full) => *full = done,
                Err(_) => dst.copy_from_slice(&done[..n]),
            }
        }
    }
}

/// The packed-panel loop over a whole tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn panel_tile<T: DistFloat, O: Op<T>, const P: usize, const R: usize, const FMA: bool>(
    op: O,
    x: &[T],
    r: usize,
    packed: &[T],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, T>,
) {
    let mut i = 0;
    while i + R <= r {
        rows_against_panels::<T, O, P, R, FMA>(op, &x[i * d..(i + R) * d], packed, c, d, out, i);
        i += R;
    }
    while i < r {
        rows_against_panels::<T, O, P, 1, FMA>(op, &x[i * d..(i + 1) * d], packed, c, d, out, i);
        i += 1;
    }
}

/// The instruction sets the panel loop is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 (F, VL, DQ, BW) with FMA.
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    /// Whatever the build targets (SSE2 on a default x86-64 build).
    Baseline,
}

/// The best instruction set of this CPU, detected once. The environment variable
/// `TESSERA_ISA=baseline` (or `avx2`, on a CPU with AVX2 and FMA) asks for a lesser one, to
/// test or compare the kernels of that path.
pub fn detected_isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let asked = std::env::var_os("TESSERA_ISA");
            if asked.as_ref().is_some_and(|v| v == "baseline") {
                return Isa::Baseline;
            }
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            if avx2 && asked.is_some_and(|v| v == "avx2") {
                return Isa::Avx2;
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_avx512<T: DistFloat, O: Op<T>, const P: usize, const R: usize>(
    op: O,
    x: &[T],
    r: usize,
    packed: &[T],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, T>,
) {
    panel_tile::<T, O, P, R, true>(op, x, r, packed, c, d, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_avx2<T: DistFloat, O: Op<T>, const P: usize, const R: usize>(
    op: O,
    x: &[T],
    r: usize,
    packed: &[T],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, T>,
) {
    panel_tile::<T, O, P, R, true>(op, x, r, packed, c, d, out)
}

/// Runs the panel loop for `op` with the panel width and row count that suit the element
/// size and the instruction set.
fn run_panels<T: DistFloat, O: Op<T>>(
    op: O,
    x: &[T],
    r: usize,
    y: &[T],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, T>,
) {
    // The panel widths and row counts measured fastest (`cargo bench --bench kernels`, one
    // 256 x 256 tile, d = 64, on AMD Zen 4). AVX-512 (32 registers): panels of 4 vectors, 3
    // rows, 12 accumulators per sum; against 2 vectors and 4 rows, half the broadcasts and
    // a fifth fewer loads per vector of pair-dimensions: cityblock 13.6 to 15.5 G pair-dims/s per core
    // in f64, braycurtis 8.3 to 9.5, chebyshev 12.5 to 13.6, minkowski (p = 3) 6.8 to 8.0;
    // in f32 cityblock 27.8 to 30.0, braycurtis 16.4 to 18.1. AVX2 (16 registers): 2 vectors
    // and 4 rows, but 2 rows for Bray-Curtis, whose two sums would otherwise not fit in the
    // registers (6.9 to 7.8 in f64, 13.5 to 16.4 in f32).
    macro_rules! go {
        ($p:literal, $r:literal, $f:ident) => {{
            let packed = pack::<T, $p>(y, c, d);
            // SAFETY: the function is compiled for features `detected_isa` found on this CPU.
            unsafe { $f::<T, O, $p, $r>(op, x, r, &packed, c, d, out) }
        }};
        ($p:literal, $r:literal) => {{
            let packed = pack::<T, $p>(y, c, d);
            panel_tile::<T, O, $p, $r, false>(op, x, r, &packed, c, d, out)
        }};
    }
    let wide = T::DTYPE.size() == 4;
    match detected_isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            if wide {
                go!(64, 3, panel_avx512)
            } else {
                go!(32, 3, panel_avx512)
            }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => match (wide, O::SUMS == 2) {
            (true, false) => go!(16, 4, panel_avx2),
            (true, true) => go!(16, 2, panel_avx2),
            (false, false) => go!(8, 4, panel_avx2),
            (false, true) => go!(8, 2, panel_avx2),
        },
        _ => {
            if wide {
                go!(8, 4)
            } else {
                go!(4, 4)
            }
        }
    }
}

/// Computes the `r x c` tile of `metric` between `x` (`r` rows of `d`) and `y` (`c` rows of
/// `d`), all contiguous and row-major, into `out` (`r * c`).
///
/// # Panics
/// Slices shorter than the sizes say (an internal error: callers size them).
pub fn tile<T: DistFloat>(
    metric: Metric,
    x: &[T],
    r: usize,
    y: &[T],
    c: usize,
    d: usize,
    out: &mut [T],
) {
    tile_into(metric, x, r, y, c, d, &mut TileOut::from_slice(out, r, c));
}

/// [`tile`] into rows that need not be contiguous (a block of the final array).
///
/// # Panics
/// Inputs shorter than the sizes say, or an output smaller than `r x c`.
pub fn tile_into<T: DistFloat>(
    metric: Metric,
    x: &[T],
    r: usize,
    y: &[T],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, T>,
) {
    assert!(x.len() >= r * d && y.len() >= c * d && out.r >= r && out.c >= c);
    if r == 0 || c == 0 {
        return;
    }
    if d == 0 {
        // Points without coordinates (never reached through cdist, which refuses them).
        for i in 0..r {
            out.row(i)[..c].fill(T::zero());
        }
        return;
    }
    match metric {
        Metric::Euclidean | Metric::SqEuclidean if !tile_uses_gemm(metric, d) => run_panels(
            SqDiff {
                root: metric == Metric::Euclidean,
            },
            x,
            r,
            y,
            c,
            d,
            out,
        ),
        Metric::Euclidean | Metric::SqEuclidean | Metric::Cosine | Metric::Correlation => {
            gemm_tile(metric, x, r, y, c, d, out)
        }
        Metric::Cityblock | Metric::Minkowski(1.0) => {
            run_panels(Cityblock { one: opaque_one() }, x, r, y, c, d, out)
        }
        Metric::Minkowski(2.0) => run_panels(SqDiff { root: true }, x, r, y, c, d, out),
        Metric::Chebyshev => run_panels(Chebyshev, x, r, y, c, d, out),
        Metric::Minkowski(p) if p.is_infinite() => run_panels(Chebyshev, x, r, y, c, d, out),
        Metric::Minkowski(3.0) => run_panels(
            MinkowskiInt::<T, 3> {
                inv: T::of(1.0 / 3.0),
            },
            x,
            r,
            y,
            c,
            d,
            out,
        ),
        Metric::Minkowski(4.0) => run_panels(
            MinkowskiInt::<T, 4> { inv: T::of(0.25) },
            x,
            r,
            y,
            c,
            d,
            out,
        ),
        Metric::Minkowski(p) => run_panels(
            Minkowski {
                p: T::of(p),
                inv: T::of(1.0 / p),
            },
            x,
            r,
            y,
            c,
            d,
            out,
        ),
        Metric::Canberra => {
            if !T::canberra_tile(x, r, y, c, d, out) {
                run_panels(Canberra, x, r, y, c, d, out)
            }
        }
        Metric::BrayCurtis if non_negative(&x[..r * d]) && non_negative(&y[..c * d]) => {
            // Padded by the widest panel (64 points), whichever run_panels takes.
            let (tx, ty) = (point_totals(x, r, d, 0), point_totals(y, c, d, 64));
            let op = BrayCurtisTotals {
                one: opaque_one(),
                x: &tx,
                y: &ty,
            };
            run_panels(op, x, r, y, c, d, out)
        }
        Metric::BrayCurtis => {
            let op = BrayCurtis::<T> { one: opaque_one() };
            run_panels(op, x, r, y, c, d, out)
        }
        Metric::Hamming => run_panels(Hamming, x, r, y, c, d, out),
    }
}

/// Up to this dimension the euclidean metrics run the direct loop rather than a GEMM.
pub const DIRECT_EUCLIDEAN_MAX_D: usize = 16;

/// Whether a tile of `metric` over `d` coordinates goes through the GEMM (and so needs the
/// `gemm` crate's packing space): cosine and correlation always, euclidean and sqeuclidean
/// above [`DIRECT_EUCLIDEAN_MAX_D`] coordinates.
pub(crate) fn tile_uses_gemm(metric: Metric, d: usize) -> bool {
    match metric {
        Metric::Euclidean | Metric::SqEuclidean => d > DIRECT_EUCLIDEAN_MAX_D,
        other => other.uses_gemm(),
    }
}

/// The squared norm of each of the `n` rows of `rows`, and whether the row is finite.
fn norms<T: DistFloat>(rows: &[T], n: usize, d: usize) -> (Vec<T>, Vec<bool>) {
    (0..n)
        .map(|i| {
            let row = &rows[i * d..(i + 1) * d];
            let s = sq_norm(row);
            // A non-finite coordinate makes the sum infinite or NaN; a finite row may still
            // overflow it, so only a non-finite sum looks at the coordinates.
            (s, s.is_finite() || row.iter().all(|v| v.is_finite()))
        })
        .unzip()
}

/// `sum(v * v)` in eight running sums (the compiler vectorises them), added pairwise.
fn sq_norm<T: DistFloat>(row: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a = *a + v * v;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for &v in rest {
        s = s + v * v;
    }
    s
}

/// Each row minus its mean (SciPy's `correlation` is the cosine of the centred points). The
/// mean is NumPy's `mean(axis=1)`, which SciPy takes: the row's pairwise sum over `d`. A
/// running sum lost the digits of points far from the origin (1e6 plus noise of 1e-6, d =
/// 1000: distances 1e-6 off).
fn centred<T: DistFloat>(rows: &[T], n: usize, d: usize) -> Vec<T> {
    let mut out = rows[..n * d].to_vec();
    for row in out.chunks_exact_mut(d.max(1)) {
        let mean = T::row_sum(row) / T::of(d as f64);
        for v in row {
            *v = *v - mean;
        }
    }
    out
}

fn direct_sq<T: DistFloat>(x: &[T], y: &[T]) -> T {
    x.iter().zip(y).fold(T::zero(), |s, (&a, &b)| {
        let t = a - b;
        s + t * t
    })
}

fn direct_cosine<T: DistFloat>(x: &[T], y: &[T]) -> T {
    let (mut dot, mut xx, mut yy) = (T::zero(), T::zero(), T::zero());
    for (&a, &b) in x.iter().zip(y) {
        dot = dot + a * b;
        xx = xx + a * a;
        yy = yy + b * b;
    }
    cosine_from(dot, xx, yy)
}

/// SciPy's cosine distance from a dot product and two squared norms: `1 - cos`, with the
/// cosine clipped to [-1, 1].
#[inline(always)]
fn cosine_from<T: DistFloat>(dot: T, xx: T, yy: T) -> T {
    cosine_clip(dot / (xx.fsqrt() * yy.fsqrt()))
}

/// `1 - cos` with the cosine clipped to [-1, 1] (NaN stays NaN).
#[inline(always)]
fn cosine_clip<T: DistFloat>(cos: T) -> T {
    let one = T::one();
    let cos = if cos > one {
        one
    } else if cos < T::zero() - one {
        T::zero() - one
    } else {
        cos
    };
    one - cos
}

/// Whether a squared distance `v` from the GEMM identity kept enough digits of
/// `s = |x|^2 + |y|^2` (false for NaN): otherwise it is recomputed directly.
#[inline(always)]
fn kept_digits<T: DistFloat>(v: T, s: T, cancel: T, tiny: T) -> bool {
    v > cancel * s && s > tiny
}

fn gemm_tile<T: DistFloat>(
    metric: Metric,
    x: &[T],
    r: usize,
    y: &[T],
    c: usize,
    d: usize,
    out: &mut TileOut<'_, T>,
) {
    let (xc, yc);
    let (x, y) = if metric == Metric::Correlation {
        xc = centred(x, r, d);
        yc = centred(y, c, d);
        (&xc[..], &yc[..])
    } else {
        (&x[..r * d], &y[..c * d])
    };
    let (nx, fx) = norms(x, r, d);
    let (ny, fy) = norms(y, c, d);
    let ry: Vec<T> = match metric {
        Metric::Cosine | Metric::Correlation => ny.iter().map(|v| v.fsqrt()).collect(),
        _ => Vec::new(),
    };
    T::dot_tile(x, y, r, c, d, out);
    let side = Side {
        y,
        ny: &ny,
        fy: &fy,
        ry: &ry,
        all_finite: fy.iter().all(|&f| f),
    };
    for i in 0..r {
        finish_row(
            metric,
            &x[i * d..(i + 1) * d],
            nx[i],
            fx[i],
            &side,
            out.row(i),
        );
    }
}

/// The columns of a GEMM tile: the points of `y`, their squared norms, whether each is
/// finite, and for cosine and correlation the norms' roots.
struct Side<'a, T> {
    y: &'a [T],
    ny: &'a [T],
    fy: &'a [bool],
    ry: &'a [T],
    all_finite: bool,
}

/// Turns a row of inner products `x_i . y_j` into the metric's distances.
fn finish_row<T: DistFloat>(
    metric: Metric,
    xi: &[T],
    nxi: T,
    fxi: bool,
    side: &Side<'_, T>,
    row: &mut [T],
) {
    let d = xi.len();
    let c = side.ny.len();
    let row = &mut row[..c];
    if matches!(metric, Metric::Euclidean | Metric::SqEuclidean) {
        if metric == Metric::Euclidean {
            finish_squares::<T, true>(xi, nxi, fxi, side, row);
        } else {
            finish_squares::<T, false>(xi, nxi, fxi, side, row);
        }
        return;
    }
    if fxi && side.all_finite {
        // Every pair finite: one branch-free pass, with the norms' roots taken once (the same
        // values `cosine_from` takes per pair).
        let rx = nxi.fsqrt();
        for (o, &ryj) in row.iter_mut().zip(side.ry) {
            *o = cosine_clip(*o / (rx * ryj));
        }
        return;
    }
    for (j, o) in row.iter_mut().enumerate() {
        *o = if fxi && side.fy[j] {
            cosine_from(*o, nxi, side.ny[j])
        } else {
            direct_cosine(xi, &side.y[j * d..(j + 1) * d])
        };
    }
}

/// Euclidean (`ROOT`) or squared euclidean distances from a row of inner products.
fn finish_squares<T: DistFloat, const ROOT: bool>(
    xi: &[T],
    nxi: T,
    fxi: bool,
    side: &Side<'_, T>,
    row: &mut [T],
) {
    let d = xi.len();
    let cancel = T::of(T::CANCELLATION);
    // Pairs of points near 1e-160 (subnormal products) were 1e-4 off through the identity:
    // computed directly too, as SciPy computes them.
    let tiny = T::of(T::TINY);
    let two = T::of(2.0);
    // A distance is never negative: this marks the pairs that lost too many digits.
    let lost_mark = T::of(-1.0);
    // One pass the compiler vectorises: the identity, its square root where it kept enough
    // digits, and the count of those that did not (NaN included) ...
    let mut lost = 0u32;
    for (o, &nyj) in row.iter_mut().zip(side.ny) {
        let s = nxi + nyj;
        let v = s - two * *o;
        let kept = kept_digits(v, s, cancel, tiny);
        lost += u32::from(!kept);
        let dist = if ROOT { v.fsqrt() } else { v };
        *o = if kept { dist } else { lost_mark };
    }
    // ... then, only where needed, those pairs and the ones with a non-finite coordinate
    // computed directly.
    if lost > 0 || !fxi || !side.all_finite {
        for (j, o) in row.iter_mut().enumerate() {
            if !(fxi && side.fy[j]) || *o == lost_mark {
                let sq = direct_sq(xi, &side.y[j * d..(j + 1) * d]);
                *o = if ROOT { sq.fsqrt() } else { sq };
            }
        }
    }
}

/// The distance between two points, computed directly (the reference the tests compare the
/// tile kernels with, and what a tile recomputes for hard pairs).
pub fn pair<T: DistFloat>(metric: Metric, x: &[T], y: &[T]) -> T {
    let mut out = [T::zero()];
    let d = x.len().min(y.len());
    match metric {
        Metric::Euclidean => direct_sq(&x[..d], &y[..d]).fsqrt(),
        Metric::SqEuclidean => direct_sq(&x[..d], &y[..d]),
        Metric::Cosine => direct_cosine(&x[..d], &y[..d]),
        Metric::Correlation => direct_cosine(&centred(&x[..d], 1, d), &centred(&y[..d], 1, d)),
        _ => {
            tile(metric, &x[..d], 1, &y[..d], 1, d, &mut out);
            out[0]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DistFloat;

    /// Values across the whole range: zero, subnormals, the normal range from end to end
    /// (a spread of mantissas at every 7th power of two), the largest value, and the
    /// non-finite ones.
    fn probes<T: DistFloat>(min_exp: i32, max_exp: i32, specials: &[T]) -> Vec<T> {
        let mut v = specials.to_vec();
        let mut e = min_exp;
        while e < max_exp {
            for j in 0..16 {
                // 2^e in two steps below 2^-1000: `powi` alone gives 0 below 2^-1023.
                let m = 1.0 + j as f64 / 16.0;
                let p = if e < -1000 {
                    2f64.powi(e + 200) * 2f64.powi(-200)
                } else {
                    2f64.powi(e)
                };
                v.push(T::of(m * p));
            }
            e += 7;
        }
        v
    }

    /// `fcbrt` within 2 units in the last place of the library's cube root on every value.
    fn close_to_cbrt<T: DistFloat + std::fmt::LowerExp>(values: &[T], eps: T, cbrt: fn(T) -> T) {
        for &a in values {
            let (got, want) = (a.fcbrt(), cbrt(a));
            assert!(
                (got - want).fabs() <= T::of(2.0) * eps * want,
                "fcbrt({a:e}) = {got:e}, cbrt = {want:e}"
            );
        }
    }

    /// Bray-Curtis. Where an input has a negative coordinate or NaN, `tile` gives the bits of
    /// the loop that sums both `|x - y|` and `|x + y|`. Where none has, it takes the points'
    /// totals for the denominator: within 1e-12 of that loop (NaN, infinities and zeros where
    /// it has them), with bits that do not depend on the tile a pair falls in.
    #[test]
    fn bray_curtis_totals_agree_with_the_summing_loop() {
        use super::{opaque_one, run_panels, BrayCurtis, TileOut};
        let mut state = 7u64;
        let mut next = |neg: bool| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            match (state >> 5) % 24 {
                0 => 0.0,
                1 => -0.0,
                2 => u * 1e300,
                3 => u * 1e-300,
                4 if neg => -u,
                5 if neg => f64::NAN,
                6 => f64::INFINITY,
                7 => f64::MAX * (0.5 + u / 2.0),
                8 => 5e-324,
                _ => u * (1.0 + (state >> 60) as f64),
            }
        };
        let tiled = |x: &[f64], y: &[f64], r: usize, c: usize, d: usize| {
            let mut out = vec![0.0; r * c];
            super::tile(super::Metric::BrayCurtis, x, r, y, c, d, &mut out);
            out
        };
        // The loop that sums both `|x - y|` and `|x + y|`.
        let summing = |x: &[f64], y: &[f64], r: usize, c: usize, d: usize| {
            let mut out = vec![0.0; r * c];
            let op = BrayCurtis::<f64> { one: opaque_one() };
            run_panels(op, x, r, y, c, d, &mut TileOut::from_slice(&mut out, r, c));
            out
        };
        let bits = |v: &[f64]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
        for (r, c, d) in [(1, 1, 1), (6, 35, 3), (9, 17, 64), (5, 70, 2), (4, 3, 300)] {
            for neg in [false, true] {
                let x: Vec<f64> = (0..r * d).map(|_| next(neg)).collect();
                let y: Vec<f64> = (0..c * d).map(|_| next(neg)).collect();
                let full = summing(&x, &y, r, c, d);
                let got = tiled(&x, &y, r, c, d);
                let negative = x.iter().chain(&y).any(|v| v.is_nan() || *v < 0.0);
                if negative {
                    assert_eq!(bits(&got), bits(&full), "{r} x {c}, d = {d}");
                    continue;
                }
                for (k, (g, w)) in got.iter().zip(&full).enumerate() {
                    let close = g == w || (g - w).abs() <= 1e-12 * w.abs();
                    assert!(
                        close || (g.is_nan() && w.is_nan()),
                        "{r} x {c}, d = {d}, element {k}: {g:e} against the loop's {w:e}"
                    );
                }
                // Each pair alone, as a 1 x 1 tile: the same bits.
                for i in 0..r {
                    for j in 0..c {
                        let one = tiled(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d], 1, 1, d);
                        assert_eq!(one[0].to_bits(), got[i * c + j].to_bits(), "({i}, {j})");
                    }
                }
            }
        }
        // Totals that overflow are infinite, as the loop's sum is: 0 / inf, not NaN.
        let big = [f64::MAX, f64::MAX];
        assert_eq!(tiled(&big, &big, 1, 1, 2), [0.0]);
        // Finite totals whose sum overflows: a finite numerator over infinity.
        let (half, mixed) = ([f64::MAX / 2.0; 2], [f64::MAX / 2.0, f64::MAX / 4.0]);
        let want = summing(&half, &mixed, 1, 1, 2);
        assert_eq!(want, [0.0]);
        assert_eq!(tiled(&half, &mixed, 1, 1, 2), want);
    }

    #[test]
    fn fcbrt_agrees_with_the_library_cube_root() {
        let specials = [
            0.0,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 3.0,
            5e-324,
            1e-320,
            1.0,
            8.0,
            27.0,
            0.125,
            f64::MAX,
        ];
        close_to_cbrt(&probes(-1070, 1023, &specials), f64::EPSILON, f64::cbrt);
        let specials32 = [
            0.0f32,
            f32::MIN_POSITIVE,
            f32::MIN_POSITIVE / 3.0,
            1e-45,
            1.0,
            8.0,
            27.0,
            f32::MAX,
        ];
        close_to_cbrt(&probes(-145, 127, &specials32), f32::EPSILON, f32::cbrt);
        assert_eq!(f64::INFINITY.fcbrt(), f64::INFINITY);
        assert!(f64::NAN.fcbrt().is_nan());
        assert_eq!(f32::INFINITY.fcbrt(), f32::INFINITY);
        assert!(f32::NAN.fcbrt().is_nan());
        assert_eq!(0.0f64.fcbrt().to_bits(), 0);
    }
}
