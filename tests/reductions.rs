//! Reductions against naive loops: every axis selection, keepdims, tree fan-ins and NaN
//! placements, over random shapes and chunkings.

mod common;

use common::*;
use ndarray::ArrayD;
use proptest::prelude::*;
use tessera::ops::reduce::ReduceOpts;
use tessera::{ChunkedArray, Chunks, Element, Error, ExecOptions};

// ---------------------------------------------------------------------------------------------
// Reduction specifications
// ---------------------------------------------------------------------------------------------

/// Which axes, keepdims and split_every, as a user would write them.
#[derive(Clone, Debug)]
struct Spec {
    axis: Option<Vec<isize>>,
    keepdims: bool,
    split_every: Option<usize>,
}

impl Spec {
    fn opts(&self) -> ReduceOpts {
        let mut o = match &self.axis {
            None => ReduceOpts::all(),
            Some(a) => ReduceOpts::axes(a),
        };
        o = o.keepdims(self.keepdims);
        if let Some(n) = self.split_every {
            o = o.split_every(n);
        }
        o
    }

    /// The reduced axes, non-negative and sorted.
    fn axes(&self, ndim: usize) -> Vec<usize> {
        let mut v: Vec<usize> = match &self.axis {
            None => (0..ndim).collect(),
            Some(a) => a
                .iter()
                .map(|&x| if x < 0 { x + ndim as isize } else { x } as usize)
                .collect(),
        };
        v.sort_unstable();
        v
    }
}

/// An axis selection for `ndim` axes: all, one (maybe negative), or a random subset in random
/// order (maybe empty), each axis maybe negative.
fn axis_choice(ndim: usize) -> BoxedStrategy<Option<Vec<isize>>> {
    let all: Vec<usize> = (0..ndim).collect();
    let subset = (
        Just(all).prop_shuffle(),
        0..=ndim,
        prop::collection::vec(any::<bool>(), ndim),
    )
        .prop_map(move |(order, k, neg)| {
            Some(
                order[..k]
                    .iter()
                    .map(|&a| {
                        if neg[a] {
                            a as isize - ndim as isize
                        } else {
                            a as isize
                        }
                    })
                    .collect(),
            )
        });
    if ndim == 0 {
        return prop_oneof![Just(None), Just(Some(vec![]))].boxed();
    }
    let one = (0..ndim, any::<bool>()).prop_map(move |(a, neg)| {
        Some(vec![if neg {
            a as isize - ndim as isize
        } else {
            a as isize
        }])
    });
    prop_oneof![Just(None), one, subset].boxed()
}

fn spec(ndim: usize) -> BoxedStrategy<Spec> {
    (
        axis_choice(ndim),
        any::<bool>(),
        prop::sample::select(vec![None, Some(2), Some(4), Some(1000)]),
    )
        .prop_map(|(axis, keepdims, split_every)| Spec {
            axis,
            keepdims,
            split_every,
        })
        .boxed()
}

/// A float case with NaNs and a reduction spec.
fn float_reduction() -> BoxedStrategy<(Case<f64>, NanMode, Spec)> {
    float_case()
        .prop_flat_map(|(c, m)| {
            let nd = c.data.ndim();
            (Just(c), Just(m), spec(nd))
        })
        .boxed()
}

fn int_reduction() -> BoxedStrategy<(Case<i64>, Spec)> {
    case(small_i64())
        .prop_flat_map(|c| {
            let nd = c.data.ndim();
            (Just(c), spec(nd))
        })
        .boxed()
}

/// A case and an axis for the arg-reductions (None, or one axis maybe negative).
fn arg_axis(ndim: usize) -> BoxedStrategy<Option<isize>> {
    if ndim == 0 {
        return Just(None).boxed();
    }
    let n = ndim as isize;
    prop_oneof![Just(None), (-n..n).prop_map(Some)].boxed()
}

// ---------------------------------------------------------------------------------------------
// Naive references over the values of one output element (C order over the reduced axes)
// ---------------------------------------------------------------------------------------------

fn sum_ref(v: &[f64]) -> f64 {
    v.iter().sum()
}

fn nansum_ref(v: &[f64]) -> f64 {
    v.iter().filter(|x| !x.is_nan()).sum()
}

fn prod_ref(v: &[f64]) -> f64 {
    v.iter().product()
}

fn nanprod_ref(v: &[f64]) -> f64 {
    v.iter().filter(|x| !x.is_nan()).product()
}

/// NaN-propagating min or max (the first NaN, as NumPy).
fn extreme_ref<T: Element>(v: &[T], max: bool) -> T {
    if let Some(n) = v.iter().find(|x| x.is_nan()) {
        return *n;
    }
    let mut best = v[0];
    for &x in &v[1..] {
        if (max && x > best) || (!max && x < best) {
            best = x;
        }
    }
    best
}

/// NaN-skipping min or max; NaN for an all-NaN slice.
fn nanextreme_ref(v: &[f64], max: bool) -> f64 {
    let kept: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if kept.is_empty() {
        f64::NAN
    } else {
        extreme_ref(&kept, max)
    }
}

/// Index of the first extreme; without `skip_nan` the first NaN wins. None for no candidate.
fn arg_ref<T: Element>(v: &[T], max: bool, skip_nan: bool) -> Option<i64> {
    if !skip_nan {
        if let Some(p) = v.iter().position(|x| x.is_nan()) {
            return Some(p as i64);
        }
    }
    let mut best: Option<(usize, T)> = None;
    for (i, &x) in v.iter().enumerate() {
        if x.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if !((max && x > b) || (!max && x < b)) => {}
            _ => best = Some((i, x)),
        }
    }
    best.map(|(i, _)| i as i64)
}

/// Count, mean and variance (two passes) of the values, optionally skipping NaN.
fn moments_ref(v: &[f64], skip_nan: bool, ddof: f64) -> (f64, f64) {
    let vals: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| !(skip_nan && x.is_nan()))
        .collect();
    let n = vals.len() as f64;
    if vals.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = vals.iter().sum::<f64>() / n;
    let m2: f64 = vals.iter().map(|x| (x - mean) * (x - mean)).sum();
    let var = if n - ddof > 0.0 {
        m2 / (n - ddof)
    } else {
        f64::NAN
    };
    (mean, var)
}

/// The tolerance of a float sum: 1e-12 relative to the sum of magnitudes.
fn sum_tol(a: &ArrayD<f64>, axes: &[usize], keepdims: bool) -> ArrayD<f64> {
    reduce_ref(a, axes, keepdims, |v| {
        1e-12
            * v.iter()
                .filter(|x| !x.is_nan())
                .map(|x| x.abs())
                .sum::<f64>()
    })
}

fn full_extent(shape: &[usize], axes: &[usize]) -> usize {
    axes.iter().map(|&a| shape[a]).product()
}

// ---------------------------------------------------------------------------------------------
// Differential properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn float_sums_and_products((c, mode, s) in float_reduction()) {
        let x = c.chunked();
        let (d, axes, keep) = (&c.data, s.axes(c.data.ndim()), s.keepdims);
        let ctx = (&c, mode, &s);
        let tol = sum_tol(d, &axes, keep);
        let t = |i: usize| tol.iter().nth(i).copied().unwrap_or(0.0);
        assert_close(&compute(&x.sum(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, sum_ref), t, &ctx);
        assert_close(&compute(&x.nansum(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, nansum_ref), t, &ctx);
        // Products of values of magnitude <= 4: relative 1e-12 of the reference.
        let want = reduce_ref(d, &axes, keep, prod_ref);
        let pt = |i: usize| 1e-12 * want.iter().nth(i).map_or(0.0, |w| w.abs());
        assert_close(&compute(&x.prod(s.opts()).unwrap()), &want, pt, &ctx);
        let want = reduce_ref(d, &axes, keep, nanprod_ref);
        let pt = |i: usize| 1e-12 * want.iter().nth(i).map_or(0.0, |w| w.abs());
        assert_close(&compute(&x.nanprod(s.opts()).unwrap()), &want, pt, &ctx);
    }

    #[test]
    fn int_sums_products_and_logicals((c, s) in int_reduction()) {
        let x = c.chunked();
        let (d, axes, keep) = (&c.data, s.axes(c.data.ndim()), s.keepdims);
        let ctx = (&c, &s);
        let sum = |v: &[i64]| v.iter().fold(0i64, |a, &b| a.wrapping_add(b));
        let prod = |v: &[i64]| v.iter().fold(1i64, |a, &b| a.wrapping_mul(b));
        assert_same(&compute(&x.sum(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, sum), &ctx);
        assert_same(&compute(&x.nansum(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, sum), &ctx);
        assert_same(&compute(&x.prod(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, prod), &ctx);
        let any = |v: &[i64]| v.iter().any(|&x| x != 0);
        let all = |v: &[i64]| v.iter().all(|&x| x != 0);
        assert_same(&compute(&x.any(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, any), &ctx);
        assert_same(&compute(&x.all(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, all), &ctx);
        let b = x.gt(0).unwrap();
        let pos = |v: &[i64]| v.iter().any(|&x| x > 0);
        let allpos = |v: &[i64]| v.iter().all(|&x| x > 0);
        assert_same(&compute(&b.any(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, pos), &ctx);
        assert_same(&compute(&b.all(s.opts()).unwrap()), &reduce_ref(d, &axes, keep, allpos), &ctx);
        let mean = |v: &[i64]| {
            if v.is_empty() { f64::NAN } else { v.iter().sum::<i64>() as f64 / v.len() as f64 }
        };
        let want = reduce_ref(d, &axes, keep, mean);
        let got = compute(&x.mean_as::<f64>(s.opts(), false).unwrap());
        assert_close(&got, &want, |_| 1e-12 * 4.0, &ctx);
    }

    #[test]
    fn float_min_and_max((c, mode, s) in float_reduction()) {
        let x = c.chunked();
        let (d, axes, keep) = (&c.data, s.axes(c.data.ndim()), s.keepdims);
        let ctx = (&c, mode, &s);
        if full_extent(d.shape(), &axes) == 0 {
            for r in [x.min(s.opts()), x.max(s.opts()), x.nanmin(s.opts()), x.nanmax(s.opts())] {
                let e = r.unwrap_err().to_string();
                prop_assert!(e.contains(&format!("{:?}", d.shape())), "{e}");
            }
            return Ok(());
        }
        let want = reduce_ref(d, &axes, keep, |v| extreme_ref(v, false));
        assert_same(&compute(&x.min(s.opts()).unwrap()), &want, &ctx);
        let want = reduce_ref(d, &axes, keep, |v| extreme_ref(v, true));
        assert_same(&compute(&x.max(s.opts()).unwrap()), &want, &ctx);
        let want = reduce_ref(d, &axes, keep, |v| nanextreme_ref(v, false));
        assert_same(&compute(&x.nanmin(s.opts()).unwrap()), &want, &ctx);
        let want = reduce_ref(d, &axes, keep, |v| nanextreme_ref(v, true));
        assert_same(&compute(&x.nanmax(s.opts()).unwrap()), &want, &ctx);
    }

    #[test]
    fn int_min_and_max((c, s) in int_reduction()) {
        let x = c.chunked();
        let (d, axes, keep) = (&c.data, s.axes(c.data.ndim()), s.keepdims);
        prop_assume!(full_extent(d.shape(), &axes) > 0);
        let ctx = (&c, &s);
        let want = reduce_ref(d, &axes, keep, |v| extreme_ref(v, false));
        assert_same(&compute(&x.min(s.opts()).unwrap()), &want, &ctx);
        let want = reduce_ref(d, &axes, keep, |v| extreme_ref(v, true));
        assert_same(&compute(&x.max(s.opts()).unwrap()), &want, &ctx);
    }

    #[test]
    fn arg_extremes_pick_the_first_occurrence(
        (c, mode, axis) in float_case().prop_flat_map(|(c, m)| {
            let nd = c.data.ndim();
            (Just(c), Just(m), arg_axis(nd))
        })
    ) {
        let x = c.chunked();
        let d = &c.data;
        let axes: Vec<usize> = match axis {
            None => (0..d.ndim()).collect(),
            Some(a) => vec![if a < 0 { a + d.ndim() as isize } else { a } as usize],
        };
        let ctx = (&c, mode, axis);
        if full_extent(d.shape(), &axes) == 0 {
            prop_assert!(x.argmin(axis).is_err() && x.nanargmax(axis).is_err());
            return Ok(());
        }
        for (max, got) in [(false, x.argmin(axis)), (true, x.argmax(axis))] {
            let want = reduce_ref(d, &axes, false, |v| arg_ref(v, max, false).unwrap());
            assert_same(&compute(&got.unwrap()), &want, &ctx);
        }
        for (max, got) in [(false, x.nanargmin(axis)), (true, x.nanargmax(axis))] {
            let want = reduce_ref(d, &axes, false, |v| arg_ref(v, max, true));
            let got = got.unwrap().compute();
            if want.iter().any(Option::is_none) {
                let e = got.unwrap_err().to_string();
                prop_assert!(e.contains("All-NaN"), "{e}");
            } else {
                assert_same(&got.unwrap(), &want.mapv(Option::unwrap), &ctx);
            }
        }
    }

    #[test]
    fn int_arg_extremes_with_many_ties(
        (c, axis) in case(0i64..=1).prop_flat_map(|c| {
            let nd = c.data.ndim();
            (Just(c), arg_axis(nd))
        })
    ) {
        let x = c.chunked();
        let d = &c.data;
        let axes: Vec<usize> = match axis {
            None => (0..d.ndim()).collect(),
            Some(a) => vec![if a < 0 { a + d.ndim() as isize } else { a } as usize],
        };
        prop_assume!(full_extent(d.shape(), &axes) > 0);
        let ctx = (&c, axis);
        for (max, got) in [(false, x.argmin(axis)), (true, x.argmax(axis))] {
            let want = reduce_ref(d, &axes, false, |v| arg_ref(v, max, false).unwrap());
            assert_same(&compute(&got.unwrap()), &want, &ctx);
        }
        // Flat indices over a transposed (non-contiguous) view follow the view's C order.
        if axis.is_none() {
            let dt = d.t().to_owned();
            for (max, got) in [(false, x.t().argmin(None)), (true, x.t().argmax(None))] {
                let want = reduce_ref(&dt, &axes, false, |v| arg_ref(v, max, false).unwrap());
                assert_same(&compute(&got.unwrap()), &want, &ctx);
            }
        }
    }

    #[test]
    fn moments_match_two_pass((c, mode, s) in float_reduction(), skip_nan in any::<bool>()) {
        let x = c.chunked();
        let (d, axes, keep) = (&c.data, s.axes(c.data.ndim()), s.keepdims);
        let ctx = (&c, mode, &s, skip_nan);
        // Values are at most 4 in magnitude.
        let mean_tol = |_| 1e-12 * 4.0;
        let var_tol = |_| 1e-12 * 16.0;
        let want = reduce_ref(d, &axes, keep, |v| moments_ref(v, skip_nan, 0.0).0);
        assert_close(&compute(&x.mean_as::<f64>(s.opts(), skip_nan).unwrap()), &want, mean_tol, &ctx);
        if !skip_nan {
            assert_close(&compute(&x.mean(s.opts()).unwrap()), &want, mean_tol, &ctx);
        }
        for ddof in [0.0, 1.0] {
            let want = reduce_ref(d, &axes, keep, |v| moments_ref(v, skip_nan, ddof).1);
            let var = compute(&x.var_as::<f64>(s.opts(), ddof, skip_nan).unwrap());
            assert_close(&var, &want, var_tol, &(&ctx, ddof));
            let std = compute(&x.std_as::<f64>(s.opts(), ddof, skip_nan).unwrap());
            prop_assert!(std.iter().all(|v| v.is_nan() || *v >= 0.0), "{std:?}");
            assert_close(&std.mapv(|v| v * v), &want, var_tol, &(&ctx, ddof, "std"));
            if !skip_nan {
                assert_close(&compute(&x.var(s.opts(), ddof).unwrap()), &want, var_tol, &(&ctx, ddof));
            }
        }
    }

    /// A reduction broadcast back against its input (materialised once, read by every block):
    /// the mean over axis 0 has the trailing shape, so only a leading axis is broadcast.
    #[test]
    fn centering_by_a_reduction(
        (c, _) in float_case().prop_filter("ndim >= 1", |(c, _)| c.data.ndim() >= 1)
    ) {
        let x = c.chunked();
        let d = &c.data;
        let m = x.mean(ReduceOpts::axis(0)).unwrap();
        let got = compute(&x.sub(&m).unwrap());
        let means = reduce_ref(d, &[0], false, |v| moments_ref(v, false, 0.0).0);
        let want = zip_ref(d, &means, |p, q| p - q);
        assert_close(&got, &want, |_| 1e-12 * 8.0, &c);
        // The reduction's own output, rechunked: regions across its blocks.
        let s = x.sum(ReduceOpts::axis(0)).unwrap();
        let re = s.rechunk(Chunks::Size(2)).unwrap();
        let want = reduce_ref(d, &[0], false, sum_ref);
        assert_close(&compute(&re), &want, |_| 1e-12 * 1e3, &c);
    }

    /// The same with keepdims along any axis: the reduced axis (length 1) is stretched.
    #[test]
    fn centering_by_a_keepdims_reduction(
        (c, _) in float_case().prop_filter("ndim >= 1", |(c, _)| c.data.ndim() >= 1),
        ax in 0usize..3,
    ) {
        let x = c.chunked();
        let d = &c.data;
        let ax = ax % d.ndim();
        let m = x.mean(ReduceOpts::axis(ax as isize).keepdims(true)).unwrap();
        let got = compute(&x.sub(&m).unwrap());
        let means = reduce_ref(d, &[ax], true, |v| moments_ref(v, false, 0.0).0);
        let want = zip_ref(d, &means, |p, q| p - q);
        assert_close(&got, &want, |_| 1e-12 * 8.0, &c);
    }

    /// One and two threads give bit-identical reductions.
    #[test]
    fn reductions_do_not_depend_on_threads((c, _, s) in float_reduction()) {
        let x = c.chunked();
        let y = x.sum(s.opts()).unwrap();
        let v = x.var_as::<f64>(s.opts(), 0.0, true).unwrap();
        let one = ExecOptions::default().threads(1);
        let two = ExecOptions::default().threads(2);
        for r in [&y, &v] {
            let (a, b) = (r.compute_with(&one).unwrap(), r.compute_with(&two).unwrap());
            prop_assert_eq!(a.shape(), b.shape());
            prop_assert!(a.iter().zip(b.iter()).all(|(p, q)| p.to_bits() == q.to_bits()), "{:?} {:?}", a, b);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------------------------

#[test]
fn min_of_an_empty_axis_is_an_error_naming_the_shape() {
    let x = ChunkedArray::<f64>::zeros(&[3, 0], 2).unwrap();
    for r in [
        x.min(ReduceOpts::axis(1)),
        x.max(ReduceOpts::all()),
        x.nanmin(ReduceOpts::axis(-1)),
        x.nanmax(ReduceOpts::axes(&[0, 1])),
    ] {
        let e = r.unwrap_err();
        assert!(e.to_string().contains("[3, 0]"), "{e}");
    }
    for r in [x.argmin(Some(1)), x.argmax(None), x.nanargmin(Some(-1))] {
        let e = r.unwrap_err();
        assert!(e.to_string().contains("[3, 0]"), "{e}");
    }
    // Reducing the non-empty axis is fine: an empty result.
    let y = ChunkedArray::<f64>::zeros(&[0, 3], 2).unwrap();
    assert_eq!(compute(&y.min(ReduceOpts::axis(1)).unwrap()).shape(), &[0]);
    assert_eq!(compute(&y.argmax(Some(1)).unwrap()).shape(), &[0]);
}

#[test]
fn empty_reductions_with_an_identity() {
    let x = ChunkedArray::<f64>::zeros(&[2, 0], 1).unwrap();
    assert_eq!(
        compute(&x.sum(ReduceOpts::axis(1)).unwrap()),
        arr1(vec![0.0, 0.0])
    );
    assert_eq!(
        compute(&x.prod(ReduceOpts::axis(1)).unwrap()),
        arr1(vec![1.0, 1.0])
    );
    assert_eq!(
        compute(&x.any(ReduceOpts::axis(1)).unwrap()),
        arr1(vec![false, false])
    );
    assert_eq!(
        compute(&x.all(ReduceOpts::axis(1)).unwrap()),
        arr1(vec![true, true])
    );
    let m = compute(&x.mean(ReduceOpts::axis(1)).unwrap());
    assert!(m.shape() == [2] && m.iter().all(|v| v.is_nan()), "{m:?}");
    let m = compute(&x.mean(ReduceOpts::all()).unwrap());
    assert!(m.shape().is_empty() && m[[]].is_nan(), "{m:?}");
    let v = compute(&x.var(ReduceOpts::all(), 0.0).unwrap());
    assert!(v[[]].is_nan(), "{v:?}");
    let k = compute(&x.sum(ReduceOpts::axis(1).keepdims(true)).unwrap());
    assert_eq!(k, arr(&[2, 1], vec![0.0, 0.0]));
    let i = ChunkedArray::<i64>::zeros(&[0], 1).unwrap();
    assert_eq!(compute(&i.sum(ReduceOpts::all()).unwrap())[[]], 0);
    assert_eq!(compute(&i.prod(ReduceOpts::all()).unwrap())[[]], 1);
}

#[test]
fn nan_rules_follow_numpy() {
    let nan = f64::NAN;
    // 2 x 4, chunks (1, 2): block (0, 1) is all NaN, row 1 has one NaN.
    let d = arr(&[2, 4], vec![3.0, 1.0, nan, nan, 2.0, nan, 1.0, 1.0]);
    let x = ChunkedArray::from_array(d, [1, 2]).unwrap();
    let row = |r: &ChunkedArray<f64>| compute(r);
    assert_same(
        &row(&x.min(ReduceOpts::axis(1)).unwrap()),
        &arr1(vec![nan, nan]),
        &"min",
    );
    assert_same(
        &row(&x.nanmin(ReduceOpts::axis(1)).unwrap()),
        &arr1(vec![1.0, 1.0]),
        &"nanmin",
    );
    assert_same(
        &row(&x.nanmax(ReduceOpts::axis(0)).unwrap()),
        &arr1(vec![3.0, 1.0, 1.0, 1.0]),
        &"nanmax",
    );
    assert_same(
        &row(&x.nansum(ReduceOpts::axis(1)).unwrap()),
        &arr1(vec![4.0, 4.0]),
        &"nansum",
    );
    assert_eq!(compute(&x.argmin(Some(1)).unwrap()), arr1(vec![2i64, 1]));
    assert_eq!(compute(&x.argmax(None).unwrap())[[]], 2);
    assert_eq!(compute(&x.nanargmin(Some(1)).unwrap()), arr1(vec![1i64, 2]));
    assert_eq!(compute(&x.nanargmax(None).unwrap())[[]], 0);
    let mean = compute(&x.mean_as::<f64>(ReduceOpts::axis(1), true).unwrap());
    assert_close(&mean, &arr1(vec![2.0, 4.0 / 3.0]), |_| 1e-15, &"nanmean");
    let var = compute(&x.var_as::<f64>(ReduceOpts::axis(1), 1.0, true).unwrap());
    assert_close(&var, &arr1(vec![2.0, 1.0 / 3.0]), |_| 1e-15, &"nanvar");
    let std = compute(&x.std_as::<f64>(ReduceOpts::axis(1), 0.0, true).unwrap());
    assert_close(
        &std,
        &arr1(vec![1.0, (2.0f64 / 9.0).sqrt()]),
        |_| 1e-15,
        &"nanstd",
    );

    // All NaN: nanmin is NaN, nanargmin an error at compute time (not when planned).
    let all = ChunkedArray::from_array(arr(&[2, 3], vec![nan; 6]), 2).unwrap();
    let m = compute(&all.nanmin(ReduceOpts::all()).unwrap());
    assert!(m[[]].is_nan());
    assert_eq!(compute(&all.nansum(ReduceOpts::all()).unwrap())[[]], 0.0);
    assert_eq!(compute(&all.nanprod(ReduceOpts::all()).unwrap())[[]], 1.0);
    assert_eq!(compute(&all.argmin(None).unwrap())[[]], 0);
    let planned = all.nanargmin(None).unwrap();
    let e = planned.compute().unwrap_err();
    assert!(e.to_string().contains("All-NaN"), "{e}");
    // Only one slice all NaN along the axis: still an error.
    let some = ChunkedArray::from_array(arr(&[2, 2], vec![1.0, nan, 2.0, nan]), 1).unwrap();
    assert!(some.nanargmax(Some(0)).unwrap().compute().is_err());
    assert_eq!(
        compute(&some.nanargmax(Some(1)).unwrap()),
        arr1(vec![0i64, 0])
    );
}

/// An infinity in one block and finite values in another: the mean is that of the sum (inf,
/// -inf, or NaN for both), the variance NaN, as NumPy gives, whatever the chunking and whether
/// the values are read in runs or one by one (a reversed view). Merging the blocks' means by
/// their difference gave inf - inf = NaN.
#[test]
fn infinities_give_numpys_mean_in_any_chunking() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    for (values, mean) in [
        (vec![inf, 1.0, 2.0, 3.0], inf),
        (vec![1.0, inf, inf, 3.0], inf),
        (vec![1.0, 2.0, 5.0, -inf], -inf),
        (vec![inf, -inf, 1.0, 2.0], nan),
        (vec![2.0, nan, inf, 1.0], nan),
    ] {
        let data = arr(&[4], values.clone());
        for chunk in [1, 2, 3, 4] {
            let x = ChunkedArray::from_array(data.clone(), chunk).unwrap();
            for (what, x) in [
                ("runs", x.clone()),
                (
                    "one by one",
                    x.slice(&[tessera::ops::slice::SliceItem::Range {
                        start: None,
                        stop: None,
                        step: -1,
                    }])
                    .unwrap(),
                ),
            ] {
                let m = compute(&x.mean(ReduceOpts::all()).unwrap())[[]];
                let v = compute(&x.var_as::<f64>(ReduceOpts::all(), 0.0, false).unwrap())[[]];
                let label = format!("{values:?} in chunks of {chunk}, {what}");
                assert!(
                    m.to_bits() == mean.to_bits() || (m.is_nan() && mean.is_nan()),
                    "mean {m}, want {mean}: {label}"
                );
                assert!(v.is_nan(), "var {v}, want NaN: {label}");
            }
        }
    }
    // nanmean along axis 0 of a C-order block adds whole rows one value at a time.
    let d = arr(&[2, 2], vec![inf, 1.0, 2.0, 3.0]);
    for chunks in [[1, 2], [2, 2]] {
        let x = ChunkedArray::from_array(d.clone(), chunks).unwrap();
        let m = compute(&x.mean_as::<f64>(ReduceOpts::axis(0), true).unwrap());
        assert_eq!(m, arr1(vec![inf, 2.0]), "{chunks:?}");
    }
    // Columns: [inf, 3], [1, 4], [2, -inf] in rows of one.
    let d = arr(&[2, 3], vec![inf, 1.0, 2.0, 3.0, 4.0, -inf]);
    for chunks in [[1, 3], [1, 1], [2, 2]] {
        let x = ChunkedArray::from_array(d.clone(), chunks).unwrap();
        assert_eq!(
            compute(&x.mean(ReduceOpts::axis(0)).unwrap()),
            arr1(vec![inf, 2.5, -inf]),
            "{chunks:?}"
        );
        let var = compute(&x.var_as::<f64>(ReduceOpts::axis(0), 0.0, false).unwrap());
        assert!(
            var[[0]].is_nan() && var[[1]] == 2.25 && var[[2]].is_nan(),
            "{var}"
        );
    }
}

/// Float sums are pairwise (NumPy's algorithm within every run of values, and the runs of a
/// strided, transposed or broadcast block merged pairwise too): a float32 sum of 10^7 values is
/// within a few 1e-7 of the exact sum in every layout, as NumPy's is. With eight running sums
/// over a block (before), `full(10^7, 0.1)` in blocks of 10^6 summed to 1009583.5 (1e-2 off)
/// and a transposed view was 2e-6 off.
#[test]
fn float32_sums_round_like_a_pairwise_sum() {
    let n = 10_000_000usize;
    let rel = |got: f32, exact: f64| (f64::from(got) - exact).abs() / exact;
    let constant = ChunkedArray::<f32>::full(&[n], 0.1, 1_000_000).unwrap();
    let got = compute(&constant.sum(ReduceOpts::all()).unwrap())[[]];
    let exact = n as f64 * f64::from(0.1f32);
    assert!(rel(got, exact) < 1e-6, "full: {got} against {exact}");
    // Values in [0, 1) from a linear congruential generator; the exact sum in float64 (exact
    // to about 1e-16 of it, far below what is tested).
    let mut state = 12345u64;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let sum64 = |vs: &mut dyn Iterator<Item = f32>| vs.map(f64::from).sum::<f64>();
    let x = ChunkedArray::from_array(arr(&[n], values.clone()), 1_000_000).unwrap();
    let strided = x
        .slice(&[tessera::ops::slice::SliceItem::Range {
            start: None,
            stop: None,
            step: 2,
        }])
        .unwrap();
    let square = ChunkedArray::from_array(arr(&[1000, 10_000], values.clone()), [500, 10_000])
        .unwrap()
        .t();
    for (what, array, exact) in [
        ("contiguous", &x, sum64(&mut values.iter().copied())),
        (
            "every other",
            &strided,
            sum64(&mut values.iter().copied().step_by(2)),
        ),
        ("transposed", &square, sum64(&mut values.iter().copied())),
    ] {
        let got = compute(&array.sum(ReduceOpts::all()).unwrap())[[]];
        assert!(rel(got, exact) < 3e-7, "{what}: {got} against {exact}");
    }
}

#[test]
fn argmin_ties_go_to_the_first_occurrence_across_blocks() {
    // 3 x 5 of repeated values in ragged blocks; minima at several places.
    let d = arr(
        &[3, 5],
        vec![2, 1, 1, 2, 1, 0, 3, 0, 0, 3, 1, 1, 1, 1, 1i64],
    );
    let chunks = Chunks::PerAxis(vec![
        tessera::chunks::AxisChunks::Explicit(vec![2, 1]),
        tessera::chunks::AxisChunks::Explicit(vec![1, 3, 1]),
    ]);
    let x = ChunkedArray::from_array(d, chunks).unwrap();
    assert_eq!(compute(&x.argmin(None).unwrap())[[]], 5);
    assert_eq!(compute(&x.argmax(None).unwrap())[[]], 6);
    assert_eq!(
        compute(&x.argmin(Some(0)).unwrap()),
        arr1(vec![1i64, 0, 1, 1, 0])
    );
    assert_eq!(compute(&x.argmin(Some(1)).unwrap()), arr1(vec![1i64, 0, 0]));
    assert_eq!(
        compute(&x.argmax(Some(-1)).unwrap()),
        arr1(vec![0i64, 1, 0])
    );
    assert_eq!(
        compute(&x.argmax(Some(0)).unwrap()),
        arr1(vec![0i64, 1, 0, 0, 1])
    );
    for split in [2, 4, 100] {
        let m = x.min(ReduceOpts::all().split_every(split)).unwrap();
        assert_eq!(compute(&m)[[]], 0, "split_every {split}");
    }
    // Many equal values in blocks of 1: index 0 wins.
    let x = ChunkedArray::<f64>::full(&[7, 3], 4.5, 1).unwrap();
    assert_eq!(compute(&x.argmin(None).unwrap())[[]], 0);
    assert_eq!(compute(&x.argmax(Some(0)).unwrap()), arr1(vec![0i64, 0, 0]));
}

#[test]
fn variance_stays_accurate_far_from_zero() {
    let n = 30_000;
    let d = arr1(
        (0..n)
            .map(|i| 1e8 + [1.0, 2.0, 3.0][i % 3])
            .collect::<Vec<f64>>(),
    );
    let x = ChunkedArray::from_array(d, 7).unwrap();
    let v = compute(&x.var(ReduceOpts::all(), 0.0).unwrap())[[]];
    assert!((v - 2.0 / 3.0).abs() < 1e-9, "var = {v}");
    let s = compute(&x.std(ReduceOpts::all(), 0.0).unwrap())[[]];
    assert!((s - (2.0f64 / 3.0).sqrt()).abs() < 1e-9, "std = {s}");
    let m = compute(&x.mean(ReduceOpts::all()).unwrap())[[]];
    assert!((m - (1e8 + 2.0)).abs() < 1e-6, "mean = {m}");
    for split in [2, 4, 1000] {
        let v = compute(&x.var(ReduceOpts::all().split_every(split), 1.0).unwrap())[[]];
        let want = 2.0 / 3.0 * n as f64 / (n - 1) as f64;
        assert!((v - want).abs() < 1e-9, "split {split}: var = {v}");
    }
}

#[test]
fn integer_sums_wrap() {
    let d = arr1(vec![i32::MAX, 1, i32::MAX, 5, i32::MIN]);
    let want = d.iter().fold(0i32, |a, &b| a.wrapping_add(b));
    for chunks in [1, 2, 5] {
        let x = ChunkedArray::from_array(d.clone(), chunks).unwrap();
        assert_eq!(compute(&x.sum(ReduceOpts::all()).unwrap())[[]], want);
        assert_eq!(compute(&x.max(ReduceOpts::all()).unwrap())[[]], i32::MAX);
        assert_eq!(compute(&x.argmin(None).unwrap())[[]], 4);
    }
    let u = ChunkedArray::from_array(arr1(vec![200u8, 100, 3]), 1).unwrap();
    assert_eq!(compute(&u.sum(ReduceOpts::all()).unwrap())[[]], 47);
    assert_eq!(
        compute(&u.mean_as::<f64>(ReduceOpts::all(), false).unwrap())[[]],
        101.0
    );
}

#[test]
fn any_and_all_on_bool() {
    let d = arr(&[2, 3], vec![true, false, true, false, false, false]);
    let x = ChunkedArray::from_array(d, [1, 2]).unwrap();
    assert_eq!(
        compute(&x.any(ReduceOpts::axis(1)).unwrap()),
        arr1(vec![true, false])
    );
    assert_eq!(
        compute(&x.all(ReduceOpts::axis(0)).unwrap()),
        arr1(vec![false, false, false])
    );
    assert!(compute(&x.any(ReduceOpts::all()).unwrap())[[]]);
    assert!(!compute(&x.all(ReduceOpts::all()).unwrap())[[]]);
    assert!(compute(&x.not().any(ReduceOpts::all()).unwrap())[[]]);
    let f = ChunkedArray::from_array(arr1(vec![0.0, f64::NAN]), 1).unwrap();
    assert!(
        compute(&f.any(ReduceOpts::all()).unwrap())[[]],
        "NaN is truthy"
    );
}

#[test]
fn invalid_reduction_arguments_are_refused() {
    let x = ChunkedArray::<f64>::zeros(&[3, 4], 2).unwrap();
    assert!(matches!(
        x.sum(ReduceOpts::axis(2)).unwrap_err(),
        Error::AxisOutOfRange { axis: 2, ndim: 2 }
    ));
    assert!(x.sum(ReduceOpts::axis(-3)).is_err());
    assert!(x.sum(ReduceOpts::axes(&[0, -2])).is_err());
    assert!(x.sum(ReduceOpts::all().split_every(1)).is_err());
    assert!(x.argmin(Some(5)).is_err());
}

#[test]
fn reductions_of_reductions_and_views() {
    let d = iota(&[4, 3, 5]);
    let x = ChunkedArray::from_array(d.clone(), [3, 2, 2]).unwrap();
    let ss = x
        .sum(ReduceOpts::axis(2))
        .unwrap()
        .sum(ReduceOpts::axis(0))
        .unwrap();
    let want = reduce_ref(&d, &[0, 2], false, sum_ref);
    assert_same(&compute(&ss), &want, &"sum of sum");
    // Over a transposed and a reversed view.
    let t = x.permute(&[2, 0, 1]).unwrap();
    let dt = d.clone().permuted_axes(vec![2, 0, 1]);
    for ax in 0..3 {
        let want = reduce_ref(&dt, &[ax], false, |v| arg_ref(v, true, false).unwrap());
        assert_same(&compute(&t.argmax(Some(ax as isize)).unwrap()), &want, &ax);
        let want = reduce_ref(&dt, &[ax], false, sum_ref);
        assert_same(
            &compute(&t.sum(ReduceOpts::axis(ax as isize)).unwrap()),
            &want,
            &ax,
        );
    }
    use tessera::ops::slice::SliceItem;
    let rev = x
        .slice(&[SliceItem::Range {
            start: None,
            stop: None,
            step: -1,
        }])
        .unwrap();
    let drev = d.slice(ndarray::s![..;-1, .., ..]).to_owned().into_dyn();
    let want = reduce_ref(&drev, &[0, 1, 2], false, |v| {
        arg_ref(v, false, false).unwrap()
    });
    assert_same(&compute(&rev.argmin(None).unwrap()), &want, &"reversed");
    let want = reduce_ref(&drev, &[0], false, |v| arg_ref(v, true, false).unwrap());
    assert_same(
        &compute(&rev.argmax(Some(0)).unwrap()),
        &want,
        &"reversed axis 0",
    );
}

#[test]
fn reductions_over_constant_blocks() {
    // Constant arrays hand out broadcast (zero-stride) views, never contiguous slices.
    let x = ChunkedArray::<f64>::full(&[4, 6], 1.5, [3, 4]).unwrap();
    let sum0 = compute(&x.sum(ReduceOpts::axis(0)).unwrap());
    assert_eq!(sum0, arr1(vec![6.0; 6]));
    let sum1 = compute(&x.sum(ReduceOpts::axis(-1).keepdims(true)).unwrap());
    assert_eq!(sum1, arr(&[4, 1], vec![9.0; 4]));
    assert_eq!(compute(&x.sum(ReduceOpts::all()).unwrap())[[]], 36.0);
    assert_eq!(compute(&x.argmax(None).unwrap())[[]], 0);
    assert_eq!(compute(&x.argmin(Some(1)).unwrap()), arr1(vec![0i64; 4]));
    assert_eq!(
        compute(&x.var(ReduceOpts::axes(&[0, 1]), 0.0).unwrap())[[]],
        0.0
    );
    assert_eq!(x.sum_all().unwrap().compute_scalar().unwrap(), 36.0);
    assert!(x
        .sum(ReduceOpts::axis(0))
        .unwrap()
        .compute_scalar()
        .is_err());
}

/// Whole-array reductions over blocks that are windows of a memory-mapped file (strided views,
/// contiguous only along the last axis), in ragged 2-D and 3-D tiles: the same answers as a
/// naive loop, argmin and argmax at the right flat index.
#[test]
fn whole_reductions_over_windows_of_a_mapped_file() {
    use tessera::chunks::AxisChunks;
    let dir = tempfile::tempdir().unwrap();
    for (shape, chunks) in [
        (
            vec![37usize, 23],
            vec![vec![10usize, 10, 10, 7], vec![5, 9, 9]],
        ),
        (vec![6, 7, 11], vec![vec![4, 2], vec![3, 3, 1], vec![6, 5]]),
        (vec![9, 1], vec![vec![2, 7], vec![1]]),
    ] {
        let n: usize = shape.iter().product();
        // Distinct values with the minimum and maximum inside (not at the corners).
        let v: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % n) as f64 - (n / 3) as f64)
            .collect();
        let data = arr(&shape, v.clone());
        let path = dir.path().join(format!("x{}.npy", shape.len()));
        ndarray_npy::write_npy(&path, &data).unwrap();
        let per_axis = chunks.iter().cloned().map(AxisChunks::Explicit).collect();
        let x = ChunkedArray::<f64>::from_npy(&path, Chunks::PerAxis(per_axis)).unwrap();
        let ctx = format!("{shape:?} {chunks:?}");
        let sum = compute(&x.sum(ReduceOpts::all()).unwrap())[[]];
        assert!((sum - sum_ref(&v)).abs() <= 1e-9 * n as f64, "{ctx}: {sum}");
        let amin = v
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        let amax = v
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert_eq!(
            compute(&x.min(ReduceOpts::all()).unwrap())[[]],
            *amin.1,
            "{ctx}"
        );
        assert_eq!(
            compute(&x.argmin(None).unwrap())[[]],
            amin.0 as i64,
            "{ctx}"
        );
        assert_eq!(
            compute(&x.argmax(None).unwrap())[[]],
            amax.0 as i64,
            "{ctx}"
        );
    }
}

/// A split_every larger than any tree (up to usize::MAX) merges every block in one level and
/// projects the memory of the blocks there are, not an overflowed or saturated figure.
#[test]
fn a_huge_split_every_is_one_level() {
    let data = ArrayD::from_shape_fn(ndarray::IxDyn(&[20, 3]), |i| (i[0] * 3 + i[1]) as f64);
    let x = ChunkedArray::from_array(data.clone(), [2, 3]).unwrap();
    let want = data.sum_axis(ndarray::Axis(0));
    let opts = ExecOptions::default().threads(2).allowed_mem(1 << 20);
    for n in [10, 1 << 40, usize::MAX] {
        let s = x
            .sum(ReduceOpts::axis(0).split_every(n))
            .unwrap()
            .compute_with(&opts)
            .unwrap_or_else(|e| panic!("split_every {n}: {e}"));
        assert_eq!(s, want, "split_every {n}");
    }
}
