//! Elementwise operations against dense references: broadcasting between operands with
//! different chunk grids, NumPy's integer and float semantics, NaN rules, `where` and casts.

mod common;

use common::*;
use ndarray::{ArrayD, Dimension};
use proptest::prelude::*;
use tessera::chunks::AxisChunks;
use tessera::{ChunkedArray, Chunks, DType, Element, Error};

// ---------------------------------------------------------------------------------------------
// Strategies and references
// ---------------------------------------------------------------------------------------------

/// An operand shape that broadcasts to `out`: a suffix of it, with some axes set to 1 when
/// `stretch` (a length-1 axis stretched against a longer one).
fn operand_shape(out: Vec<usize>, stretch: bool) -> BoxedStrategy<Vec<usize>> {
    let nd = out.len();
    (0..=nd, prop::collection::vec(any::<bool>(), nd))
        .prop_map(move |(k, ones)| {
            (nd - k..nd)
                .map(|ax| if stretch && ones[ax] { 1 } else { out[ax] })
                .collect()
        })
        .boxed()
}

/// `n` operands whose shapes broadcast together, each with values from `elem` and its own
/// random chunking. Without `stretch`, operands differ only by missing leading axes.
fn operands<T: Element, S: Strategy<Value = T> + Clone + 'static>(
    n: usize,
    elem: S,
    stretch: bool,
) -> BoxedStrategy<Vec<Case<T>>> {
    shape(3, 5)
        .prop_flat_map(move |out| vec![operand_shape(out, stretch); n])
        .prop_flat_map(move |shapes| {
            shapes
                .into_iter()
                .map(|s| array_of(s, elem.clone()).prop_flat_map(case_from))
                .collect::<Vec<_>>()
        })
        .boxed()
}

fn pair<T: Element, S: Strategy<Value = T> + Clone + 'static>(
    elem: S,
    stretch: bool,
) -> BoxedStrategy<(Case<T>, Case<T>)> {
    operands(2, elem, stretch)
        .prop_map(|mut v| {
            let b = v.pop().unwrap();
            (v.pop().unwrap(), b)
        })
        .boxed()
}

/// Python's `a // b` on i64, through i128 and Euclidean division (wrapping back to i64 as
/// NumPy does for `i64::MIN // -1`); 0 for a zero divisor.
fn py_floordiv(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let (a, b) = (i128::from(a), i128::from(b));
    let q = if b > 0 {
        a.div_euclid(b)
    } else {
        (-a).div_euclid(-b)
    };
    q as i64
}

/// Python's `a % b` on i64 (the sign of the divisor); 0 for a zero divisor.
fn py_mod(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let q = i128::from(py_floordiv(a, b));
    (i128::from(a) - i128::from(b) * q) as i64
}

/// `a ** b` by repeated wrapping multiplication (`b >= 0`).
fn int_pow(a: i64, b: i64) -> i64 {
    (0..b).fold(1i64, |acc, _| acc.wrapping_mul(a))
}

/// Float `a // b` for values whose quotient is far from rounding trouble (halves).
fn py_floordiv_f(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        a / b
    } else {
        (a / b).floor()
    }
}

fn py_mod_f(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a - b * (a / b).floor()
    }
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// Round half to even, written out.
fn round_half_even(v: f64) -> f64 {
    let fl = v.floor();
    let diff = v - fl;
    if diff < 0.5 {
        fl
    } else if diff > 0.5 {
        fl + 1.0
    } else if fl % 2.0 == 0.0 {
        fl
    } else {
        fl + 1.0
    }
}

fn f64_or_nan() -> BoxedStrategy<f64> {
    prop_oneof![5 => small_f64(), 1 => Just(f64::NAN)].boxed()
}

fn halves_or_nan() -> BoxedStrategy<f64> {
    prop_oneof![
        8 => (-16i32..=16).prop_map(|k| f64::from(k) * 0.5),
        1 => Just(f64::NAN),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Differential properties
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Checkers: one per family, run on broadcast operands by the properties below
// ---------------------------------------------------------------------------------------------

fn check_int_binary(a: &Case<i64>, b: &Case<i64>) {
    let (x, y) = (a.chunked(), b.chunked());
    let (da, db) = (&a.data, &b.data);
    let ctx = (a, b);
    assert_same(
        &compute(&x.add(&y).unwrap()),
        &zip_ref(da, db, i64::wrapping_add),
        &ctx,
    );
    assert_same(
        &compute(&x.sub(&y).unwrap()),
        &zip_ref(da, db, i64::wrapping_sub),
        &ctx,
    );
    assert_same(
        &compute(&x.mul(&y).unwrap()),
        &zip_ref(da, db, i64::wrapping_mul),
        &ctx,
    );
    assert_same(
        &compute(&x.floor_div(&y).unwrap()),
        &zip_ref(da, db, py_floordiv),
        &ctx,
    );
    assert_same(
        &compute(&x.rem(&y).unwrap()),
        &zip_ref(da, db, py_mod),
        &ctx,
    );
    assert_same(
        &compute(&x.minimum(&y).unwrap()),
        &zip_ref(da, db, i64::min),
        &ctx,
    );
    assert_same(
        &compute(&x.maximum(&y).unwrap()),
        &zip_ref(da, db, i64::max),
        &ctx,
    );
    let want = zip_ref(da, db, |p, q| int_pow(p, q.abs()));
    assert_same(&compute(&x.pow(y.abs()).unwrap()), &want, &ctx);
}

fn check_comparisons(a: &Case<f64>, b: &Case<f64>) {
    let (x, y) = (a.chunked(), b.chunked());
    let (da, db) = (&a.data, &b.data);
    let ctx = (a, b);
    let eq = x.eq(&y).unwrap();
    assert_eq!(eq.dtype(), DType::Bool);
    assert_same(&compute(&eq), &zip_ref(da, db, |p, q| p == q), &ctx);
    assert_same(
        &compute(&x.ne(&y).unwrap()),
        &zip_ref(da, db, |p, q| p != q),
        &ctx,
    );
    assert_same(
        &compute(&x.lt(&y).unwrap()),
        &zip_ref(da, db, |p, q| p < q),
        &ctx,
    );
    assert_same(
        &compute(&x.le(&y).unwrap()),
        &zip_ref(da, db, |p, q| p <= q),
        &ctx,
    );
    assert_same(
        &compute(&x.gt(&y).unwrap()),
        &zip_ref(da, db, |p, q| p > q),
        &ctx,
    );
    assert_same(
        &compute(&x.ge(&y).unwrap()),
        &zip_ref(da, db, |p, q| p >= q),
        &ctx,
    );
}

fn check_float_binary(a: &Case<f64>, b: &Case<f64>) {
    let (x, y) = (a.chunked(), b.chunked());
    let (da, db) = (&a.data, &b.data);
    let ctx = (a, b);
    assert_same(
        &compute(&x.add(&y).unwrap()),
        &zip_ref(da, db, |p, q| p + q),
        &ctx,
    );
    assert_same(
        &compute(&x.sub(&y).unwrap()),
        &zip_ref(da, db, |p, q| p - q),
        &ctx,
    );
    assert_same(
        &compute(&x.mul(&y).unwrap()),
        &zip_ref(da, db, |p, q| p * q),
        &ctx,
    );
    assert_same(
        &compute(&x.div(&y).unwrap()),
        &zip_ref(da, db, |p, q| p / q),
        &ctx,
    );
    assert_same(
        &compute(&x.pow(&y).unwrap()),
        &zip_ref(da, db, f64::powf),
        &ctx,
    );
    assert_same(
        &compute(&x.arctan2(&y).unwrap()),
        &zip_ref(da, db, f64::atan2),
        &ctx,
    );
    assert_same(
        &compute(&x.minimum(&y).unwrap()),
        &zip_ref(da, db, nan_min),
        &ctx,
    );
    assert_same(
        &compute(&x.maximum(&y).unwrap()),
        &zip_ref(da, db, nan_max),
        &ctx,
    );
}

fn check_float_floor_div(a: &Case<f64>, b: &Case<f64>) {
    let (x, y) = (a.chunked(), b.chunked());
    let (da, db) = (&a.data, &b.data);
    let ctx = (a, b);
    assert_same(
        &compute(&x.floor_div(&y).unwrap()),
        &zip_ref(da, db, py_floordiv_f),
        &ctx,
    );
    assert_same(
        &compute(&x.rem(&y).unwrap()),
        &zip_ref(da, db, py_mod_f),
        &ctx,
    );
}

/// Non-commutative operations with each operand owned (computed) or borrowed (a view of the
/// source), so that both in-place paths keep the operand order.
fn check_chained(a: &Case<i64>, b: &Case<i64>) {
    let (x, y) = (a.chunked(), b.chunked());
    let (da, db) = (&a.data, &b.data);
    let ctx = (a, b);
    let x1 = x.add(1).unwrap();
    let y2 = y.mul(2).unwrap();
    let want = zip_ref(da, db, |p, q| (p + 1) - q);
    assert_same(&compute(&x1.sub(&y).unwrap()), &want, &ctx);
    let want = zip_ref(da, db, |p, q| p - 2 * q);
    assert_same(&compute(&x.sub(&y2).unwrap()), &want, &ctx);
    let want = zip_ref(da, db, |p, q| py_floordiv(p + 1, 2 * q));
    assert_same(&compute(&x1.floor_div(&y2).unwrap()), &want, &ctx);
    let want = zip_ref(da, db, |p, q| py_mod(2 * q, p));
    assert_same(&compute(&y2.rem(&x).unwrap()), &want, &ctx);
    // x - y - x: the left operand is itself a broadcast result.
    let want = zip_ref(&zip_ref(da, db, |p, q| p - q), da, |r, p| r - p);
    assert_same(&compute(&x.sub(&y).unwrap().sub(&x).unwrap()), &want, &ctx);
}

fn check_bool_ops(a: &Case<bool>, b: &Case<bool>) {
    let (x, y) = (a.chunked(), b.chunked());
    let (da, db) = (&a.data, &b.data);
    let ctx = (a, b);
    assert_same(
        &compute(&x.and(&y).unwrap()),
        &zip_ref(da, db, |p, q| p && q),
        &ctx,
    );
    assert_same(
        &compute(&x.or(&y).unwrap()),
        &zip_ref(da, db, |p, q| p || q),
        &ctx,
    );
    assert_same(
        &compute(&x.xor(&y).unwrap()),
        &zip_ref(da, db, |p, q| p != q),
        &ctx,
    );
    assert_same(&compute(&x.not()), &da.mapv(|p| !p), &ctx);
    assert_same(&compute(&x.and(true).unwrap()), da, &ctx);
    assert_same(&compute(&x.or(true).unwrap()), &da.mapv(|_| true), &ctx);
}

fn check_where(ops: &[Case<i64>]) {
    let cond = ops[0].chunked().gt(0).unwrap();
    let (x, y) = (ops[1].chunked(), ops[2].chunked());
    let got = compute(&ChunkedArray::where_(&cond, &x, &y).unwrap());
    let shapes: Vec<&[usize]> = ops.iter().map(|c| c.data.shape()).collect();
    let shape = broadcast_shape(&shapes).unwrap();
    let want = ArrayD::from_shape_fn(ndarray::IxDyn(&shape), |idx| {
        let i = idx.slice();
        if bget(&ops[0].data, i) > 0 {
            bget(&ops[1].data, i)
        } else {
            bget(&ops[2].data, i)
        }
    });
    assert_same(&got, &want, &ops);
}

// ---------------------------------------------------------------------------------------------
// Differential properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Operands of different ranks and chunk grids (leading axes broadcast).
    #[test]
    fn int_binary_ops_match_dense((a, b) in pair(-7i64..=7, false)) {
        check_int_binary(&a, &b);
    }

    #[test]
    fn comparisons_give_bool_arrays((a, b) in pair(halves_or_nan(), false)) {
        check_comparisons(&a, &b);
    }

    #[test]
    fn float_binary_ops_match_dense((a, b) in pair(f64_or_nan(), false)) {
        check_float_binary(&a, &b);
    }

    #[test]
    fn float_floor_div_and_mod_follow_python((a, b) in pair(halves_or_nan(), false)) {
        check_float_floor_div(&a, &b);
    }

    #[test]
    fn chained_ops_keep_operand_order((a, b) in pair(-7i64..=7, false)) {
        check_chained(&a, &b);
    }

    #[test]
    fn bool_ops_match_dense((a, b) in pair(any::<bool>(), false)) {
        check_bool_ops(&a, &b);
    }

    #[test]
    fn where_broadcasts_all_three(ops in operands(3, -9i64..=9, false)) {
        check_where(&ops);
    }

    /// Every family again, with length-1 axes stretched against longer ones.
    #[test]
    fn broadcasting_length_one_axes_matches_dense(
        (ia, ib) in pair(-7i64..=7, true),
        (fa, fb) in pair(f64_or_nan(), true),
        (ha, hb) in pair(halves_or_nan(), true),
        (ba, bb) in pair(any::<bool>(), true),
        ops in operands(3, -9i64..=9, true),
    ) {
        check_int_binary(&ia, &ib);
        check_chained(&ia, &ib);
        check_float_binary(&fa, &fb);
        check_comparisons(&ha, &hb);
        check_float_floor_div(&ha, &hb);
        check_bool_ops(&ba, &bb);
        check_where(&ops);
    }

    #[test]
    fn scalar_on_the_right((a, _) in float_case(), s in small_f64()) {
        let x = a.chunked();
        let d = &a.data;
        let ctx = (&a, s);
        assert_same(&compute(&x.add(s).unwrap()), &d.mapv(|v| v + s), &ctx);
        assert_same(&compute(&x.sub(s).unwrap()), &d.mapv(|v| v - s), &ctx);
        assert_same(&compute(&x.mul(s).unwrap()), &d.mapv(|v| v * s), &ctx);
        assert_same(&compute(&x.div(s).unwrap()), &d.mapv(|v| v / s), &ctx);
        assert_same(&compute(&x.minimum(s).unwrap()), &d.mapv(|v| nan_min(v, s)), &ctx);
        assert_same(&compute(&x.maximum(s).unwrap()), &d.mapv(|v| nan_max(v, s)), &ctx);
        assert_same(&compute(&x.lt(s).unwrap()), &d.mapv(|v| v < s), &ctx);
        assert_same(&compute(&x.eq(s).unwrap()), &d.mapv(|v| v == s), &ctx);
        let want = d.mapv(|v| nan_min(nan_max(v, -1.0), 1.5));
        assert_same(&compute(&x.clip(-1.0, 1.5).unwrap()), &want, &ctx);
    }

    #[test]
    fn int_scalar_on_the_right(a in case(-20i64..=20), s in -4i64..=4) {
        let x = a.chunked();
        let d = &a.data;
        let ctx = (&a, s);
        assert_same(&compute(&x.add(s).unwrap()), &d.mapv(|v| v + s), &ctx);
        assert_same(&compute(&x.floor_div(s).unwrap()), &d.mapv(|v| py_floordiv(v, s)), &ctx);
        assert_same(&compute(&x.rem(s).unwrap()), &d.mapv(|v| py_mod(v, s)), &ctx);
        assert_same(&compute(&x.pow(s.abs()).unwrap()), &d.mapv(|v| int_pow(v, s.abs())), &ctx);
    }

    #[test]
    fn unary_float_ops_match_std((a, _) in float_case()) {
        let x = a.chunked();
        let d = &a.data;
        let ctx = &a;
        assert_same(&compute(&x.neg()), &d.mapv(|v| -v), ctx);
        assert_same(&compute(&x.abs()), &d.mapv(f64::abs), ctx);
        let sign = |v: f64| if v > 0.0 { 1.0 } else if v < 0.0 { -1.0 } else { v };
        assert_same(&compute(&x.sign()), &d.mapv(sign), ctx);
        assert_same(&compute(&x.sqrt()), &d.mapv(f64::sqrt), ctx);
        assert_same(&compute(&x.exp()), &d.mapv(f64::exp), ctx);
        assert_same(&compute(&x.log()), &d.mapv(f64::ln), ctx);
        assert_same(&compute(&x.log1p()), &d.mapv(f64::ln_1p), ctx);
        assert_same(&compute(&x.expm1()), &d.mapv(f64::exp_m1), ctx);
        assert_same(&compute(&x.sin()), &d.mapv(f64::sin), ctx);
        assert_same(&compute(&x.cos()), &d.mapv(f64::cos), ctx);
        assert_same(&compute(&x.tan()), &d.mapv(f64::tan), ctx);
        assert_same(&compute(&x.floor()), &d.mapv(f64::floor), ctx);
        assert_same(&compute(&x.ceil()), &d.mapv(f64::ceil), ctx);
        assert_same(&compute(&x.round()), &d.mapv(round_half_even), ctx);
        assert_same(&compute(&x.isnan()), &d.mapv(f64::is_nan), ctx);
        assert_same(&compute(&x.isfinite()), &d.mapv(f64::is_finite), ctx);
        // A chain of unary steps (in place after the first).
        let want = d.mapv(|v| (-v).abs().sqrt() * 3.0);
        assert_same(&compute(&x.neg().abs().sqrt().mul(3.0).unwrap()), &want, ctx);
    }

    #[test]
    fn astype_follows_c_casts(a in case(-1000.0..1000.0f64)) {
        let x = a.chunked();
        let d = &a.data;
        let to_i32 = x.astype::<i32>();
        assert_eq!(to_i32.dtype(), DType::I32);
        assert_same(&compute(&to_i32), &d.mapv(|v| v.trunc() as i32), &a);
        let to_bool = x.floor().astype::<bool>();
        assert_same(&compute(&to_bool), &d.mapv(|v| v.floor() != 0.0), &a);
        let round_trip = x.astype::<f32>().astype::<f64>();
        assert_same(&compute(&round_trip), &d.mapv(|v| f64::from(v as f32)), &a);
    }

    #[test]
    fn int_casts_wrap(a in case(-70_000i64..70_000)) {
        let x = a.chunked();
        let d = &a.data;
        assert_same(&compute(&x.astype::<u8>()), &d.mapv(|v| v.rem_euclid(256) as u8), &a);
        let wrap_i16 = |v: i64| {
            let r = v.rem_euclid(65_536);
            (if r >= 32_768 { r - 65_536 } else { r }) as i16
        };
        assert_same(&compute(&x.astype::<i16>()), &d.mapv(wrap_i16), &a);
        assert_same(&compute(&x.astype::<bool>()), &d.mapv(|v| v != 0), &a);
        assert_same(&compute(&x.gt(0).unwrap().astype::<f64>()), &d.mapv(|v| f64::from(u8::from(v > 0))), &a);
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------------------------

fn explicit(per_axis: &[&[usize]]) -> Chunks {
    Chunks::PerAxis(
        per_axis
            .iter()
            .map(|c| AxisChunks::Explicit(c.to_vec()))
            .collect(),
    )
}

/// `a op b` for every pair of chunkings given, against the dense reference.
fn check_broadcast(a: &ArrayD<f64>, b: &ArrayD<f64>, ca: &[Chunks], cb: &[Chunks]) {
    for chunks_a in ca {
        for chunks_b in cb {
            let x = ChunkedArray::from_array(a.clone(), chunks_a.clone()).unwrap();
            let y = ChunkedArray::from_array(b.clone(), chunks_b.clone()).unwrap();
            let ctx = (a.shape(), chunks_a, b.shape(), chunks_b);
            assert_same(
                &compute(&x.sub(&y).unwrap()),
                &zip_ref(a, b, |p, q| p - q),
                &ctx,
            );
            assert_same(
                &compute(&y.sub(&x).unwrap()),
                &zip_ref(b, a, |p, q| p - q),
                &ctx,
            );
            let want = zip_ref(a, b, |p, q| p * 10.0 + q);
            assert_same(
                &compute(&x.mul(10.0).unwrap().add(&y).unwrap()),
                &want,
                &ctx,
            );
        }
    }
}

#[test]
fn column_broadcasts_against_row() {
    // (n, 1) with (n,): the result is (n, n).
    let a = iota(&[5, 1]);
    let b = iota(&[5]).mapv(|v| v * 100.0);
    check_broadcast(
        &a,
        &b,
        &[Chunks::Size(1), Chunks::Size(2), explicit(&[&[3, 2], &[1]])],
        &[
            Chunks::Size(1),
            Chunks::Size(5),
            explicit(&[&[1, 4]]),
            explicit(&[&[2, 2, 1]]),
        ],
    );
}

#[test]
fn one_element_broadcasts_against_scalar_array() {
    // (1,) with (): the result is (1,).
    let a = arr1(vec![3.0]);
    let b = arr(&[], vec![-2.0]);
    check_broadcast(
        &a,
        &b,
        &[Chunks::Size(1)],
        &[Chunks::Size(1), Chunks::PerAxis(vec![])],
    );
    let x = ChunkedArray::from_array(a, 1).unwrap();
    let y = ChunkedArray::from_array(b, Chunks::PerAxis(vec![])).unwrap();
    assert_eq!(x.add(&y).unwrap().shape(), &[1]);
    assert_eq!(y.add(&x).unwrap().shape(), &[1]);
}

#[test]
fn three_d_broadcasts_against_two_d() {
    // (3, 1, 4) with (5, 4): the result is (3, 5, 4).
    let a = iota(&[3, 1, 4]);
    let b = iota(&[5, 4]).mapv(|v| v * 0.25);
    check_broadcast(
        &a,
        &b,
        &[
            Chunks::Size(4),
            Chunks::from([1, 1, 3]),
            explicit(&[&[2, 1], &[1], &[1, 3]]),
        ],
        &[
            Chunks::Size(1),
            Chunks::Size(5),
            explicit(&[&[2, 3], &[3, 1]]),
        ],
    );
}

#[test]
fn zero_length_axes_broadcast() {
    // (0, 1) with (3,) is (0, 3); (0,) with (1,) is (0,).
    let a = arr(&[0, 1], Vec::<f64>::new());
    let b = iota(&[3]);
    check_broadcast(
        &a,
        &b,
        &[Chunks::Size(1)],
        &[Chunks::Size(1), Chunks::Size(2)],
    );
    let c = arr(&[0], Vec::<f64>::new());
    let d = arr1(vec![7.0]);
    check_broadcast(&c, &d, &[Chunks::Size(3)], &[Chunks::Size(1)]);
}

#[test]
fn shapes_that_do_not_broadcast_are_refused_with_both_shapes() {
    let cases: [(&[usize], &[usize]); 4] = [
        (&[3], &[4]),
        (&[2, 3], &[3, 2]),
        (&[0], &[3]),
        (&[4, 1, 3], &[2, 5, 3]),
    ];
    for (sa, sb) in cases {
        let x = ChunkedArray::<f64>::zeros(sa, 2).unwrap();
        let y = ChunkedArray::<f64>::zeros(sb, 2).unwrap();
        for e in [x.add(&y).unwrap_err(), y.mul(&x).unwrap_err()] {
            let msg = e.to_string();
            assert!(matches!(e, Error::Broadcast { .. }), "{e:?}");
            assert!(
                msg.contains(&format!("{sa:?}")) && msg.contains(&format!("{sb:?}")),
                "{sa:?} vs {sb:?}: {msg}"
            );
        }
        let e = x.lt(&y).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{sa:?}")) && e.contains(&format!("{sb:?}")),
            "{e}"
        );
    }
    let c = ChunkedArray::<bool>::ones(&[3], 1).unwrap();
    let a = ChunkedArray::<f64>::zeros(&[3], 1).unwrap();
    let b = ChunkedArray::<f64>::zeros(&[2, 4], 1).unwrap();
    let e = ChunkedArray::where_(&c, &a, &b).unwrap_err().to_string();
    assert!(e.contains("[3]") && e.contains("[2, 4]"), "{e}");
}

#[test]
fn python_division_semantics_for_ints() {
    let a = arr1(vec![
        -7i64,
        7,
        -7,
        7,
        -8,
        0,
        9,
        -9,
        i64::MIN,
        i64::MIN,
        5,
        -5,
        0,
    ]);
    let b = arr1(vec![2i64, -2, -2, 2, 3, 5, 3, 3, -1, 1, 0, 0, 0]);
    let q = [-4i64, -4, 3, 3, -3, 0, 3, -3, i64::MIN, i64::MIN, 0, 0, 0];
    let r = [1i64, -1, -1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    for chunks in [1, 3, 13] {
        let x = ChunkedArray::from_array(a.clone(), chunks).unwrap();
        let y = ChunkedArray::from_array(b.clone(), [2]).unwrap();
        assert_same(
            &compute(&x.floor_div(&y).unwrap()),
            &arr1(q.to_vec()),
            &chunks,
        );
        assert_same(&compute(&x.rem(&y).unwrap()), &arr1(r.to_vec()), &chunks);
    }
    // The scalar forms.
    let x = ChunkedArray::from_array(arr1(vec![-7i64, 7]), 1).unwrap();
    assert_eq!(compute(&x.floor_div(2).unwrap()), arr1(vec![-4, 3]));
    assert_eq!(compute(&x.rem(2).unwrap()), arr1(vec![1, 1]));
    assert_eq!(compute(&x.floor_div(0).unwrap()), arr1(vec![0, 0]));
    assert_eq!(compute(&x.rem(0).unwrap()), arr1(vec![0, 0]));
    // Narrow and unsigned types.
    let x = ChunkedArray::from_array(arr1(vec![-7i8, -128, 127]), 2).unwrap();
    assert_eq!(compute(&x.floor_div(2).unwrap()), arr1(vec![-4i8, -64, 63]));
    assert_eq!(
        compute(&x.floor_div(-1).unwrap()),
        arr1(vec![7i8, -128, -127])
    );
    assert_eq!(compute(&x.rem(-3).unwrap()), arr1(vec![-1i8, -2, -2]));
    let x = ChunkedArray::from_array(arr1(vec![7u8, 200, 0]), 2).unwrap();
    assert_eq!(compute(&x.floor_div(3).unwrap()), arr1(vec![2u8, 66, 0]));
    assert_eq!(compute(&x.rem(3).unwrap()), arr1(vec![1u8, 2, 0]));
    assert_eq!(compute(&x.floor_div(0).unwrap()), arr1(vec![0u8, 0, 0]));
}

#[test]
fn python_division_semantics_for_floats() {
    // Values from NumPy 2.4: np.float64 floor_divide / remainder.
    let a = arr1(vec![
        -7.0, 7.0, -7.0, 7.0, -7.5, 7.5, -0.5, 0.5, 5.0, -5.0, 1.0, 1.0, 0.0,
    ]);
    let b = arr1(vec![
        2.0,
        -2.0,
        -2.0,
        2.0,
        2.0,
        -2.0,
        2.0,
        -2.0,
        f64::INFINITY,
        f64::INFINITY,
        0.0,
        -0.0,
        0.0,
    ]);
    let inf = f64::INFINITY;
    let q = arr1(vec![
        -4.0,
        -4.0,
        3.0,
        3.0,
        -4.0,
        -4.0,
        -1.0,
        -1.0,
        0.0,
        -1.0,
        inf,
        -inf,
        f64::NAN,
    ]);
    let r = arr1(vec![
        1.0,
        -1.0,
        -1.0,
        1.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        5.0,
        inf,
        f64::NAN,
        f64::NAN,
        f64::NAN,
    ]);
    for chunks in [1usize, 4, 13] {
        let x = ChunkedArray::from_array(a.clone(), chunks).unwrap();
        let y = ChunkedArray::from_array(b.clone(), [3]).unwrap();
        assert_same(&compute(&x.floor_div(&y).unwrap()), &q, &chunks);
        assert_same(&compute(&x.rem(&y).unwrap()), &r, &chunks);
    }
    // The remainder takes the sign of the divisor, also when it is zero.
    let x = ChunkedArray::from_array(arr1(vec![6.0, -6.0]), 1).unwrap();
    let pos: ArrayD<f64> = compute(&x.rem(3.0).unwrap());
    let neg: ArrayD<f64> = compute(&x.rem(-3.0).unwrap());
    assert!(
        pos.iter().all(|v| *v == 0.0 && v.is_sign_positive()),
        "{pos:?}"
    );
    assert!(
        neg.iter().all(|v| *v == 0.0 && v.is_sign_negative()),
        "{neg:?}"
    );
}

#[test]
fn integer_arithmetic_wraps() {
    let x = ChunkedArray::from_array(arr1(vec![127i8, -128, 100, -1]), 3).unwrap();
    assert_eq!(
        compute(&x.add(1).unwrap()),
        arr1(vec![-128i8, -127, 101, 0])
    );
    assert_eq!(compute(&x.sub(1).unwrap()), arr1(vec![126i8, 127, 99, -2]));
    assert_eq!(compute(&x.mul(2).unwrap()), arr1(vec![-2i8, 0, -56, -2]));
    assert_eq!(compute(&x.neg()), arr1(vec![-127i8, -128, -100, 1]));
    assert_eq!(compute(&x.abs()), arr1(vec![127i8, -128, 100, 1]));
    assert_eq!(compute(&x.sign()), arr1(vec![1i8, -1, 1, -1]));
    assert_eq!(
        compute(&x.pow(3).unwrap()),
        arr1(vec![127i8.wrapping_pow(3), 0, 64, -1])
    );
    let u = ChunkedArray::from_array(arr1(vec![0u8, 255, 3]), 2).unwrap();
    assert_eq!(compute(&u.sub(1).unwrap()), arr1(vec![255u8, 254, 2]));
    assert_eq!(compute(&u.add(1).unwrap()), arr1(vec![1u8, 0, 4]));
    assert_eq!(compute(&u.neg()), arr1(vec![0u8, 1, 253]));
    let w = ChunkedArray::from_array(arr1(vec![i64::MAX, i64::MIN]), 1).unwrap();
    assert_eq!(
        compute(&w.add(1).unwrap()),
        arr1(vec![i64::MIN, i64::MIN + 1])
    );
    assert_eq!(
        compute(&w.mul(3).unwrap()),
        arr1(vec![i64::MAX.wrapping_mul(3), i64::MIN])
    );
    // Negative integer powers are refused, as in NumPy:
    // `integer_arrays_to_negative_powers_are_refused`.
}

#[test]
fn minimum_and_maximum_propagate_nan() {
    let nan = f64::NAN;
    let a = arr1(vec![nan, 1.0, nan, 2.0, -0.5]);
    let b = arr1(vec![1.0, nan, nan, 3.0, -1.0]);
    for (ca, cb) in [(1, 5), (2, 3), (5, 1)] {
        let x = ChunkedArray::from_array(a.clone(), ca).unwrap();
        let y = ChunkedArray::from_array(b.clone(), cb).unwrap();
        let want_min = arr1(vec![nan, nan, nan, 2.0, -1.0]);
        let want_max = arr1(vec![nan, nan, nan, 3.0, -0.5]);
        assert_same(&compute(&x.minimum(&y).unwrap()), &want_min, &(ca, cb));
        assert_same(&compute(&y.minimum(&x).unwrap()), &want_min, &(ca, cb));
        assert_same(&compute(&x.maximum(&y).unwrap()), &want_max, &(ca, cb));
        assert_same(&compute(&y.maximum(&x).unwrap()), &want_max, &(ca, cb));
    }
    let x = ChunkedArray::from_array(a, 2).unwrap();
    assert_same(
        &compute(&x.minimum(nan).unwrap()),
        &arr1(vec![nan; 5]),
        &"scalar NaN",
    );
    assert_same(
        &compute(&x.clip(0.0, 1.5).unwrap()),
        &arr1(vec![nan, 1.0, nan, 1.5, 0.0]),
        &"clip",
    );
}

#[test]
fn where_with_broadcasting_fixed() {
    // cond (3, 1), a (4,), b () -> (3, 4).
    let cond = ChunkedArray::from_array(arr(&[3, 1], vec![true, false, true]), 2).unwrap();
    let a = ChunkedArray::from_array(arr1(vec![1.0, 2.0, 3.0, 4.0]), [1]).unwrap();
    let b = ChunkedArray::from_array(arr(&[], vec![-1.0]), Chunks::PerAxis(vec![])).unwrap();
    let got = compute(&ChunkedArray::where_(&cond, &a, &b).unwrap());
    let want = arr(
        &[3, 4],
        vec![
            1.0, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, -1.0, 1.0, 2.0, 3.0, 4.0,
        ],
    );
    assert_same(&got, &want, &"where");
}

#[test]
fn astype_truncates_toward_zero_and_tests_truth() {
    let nan = f64::NAN;
    let a = arr1(vec![1.7, -1.7, 2.9, -2.9, 0.0, -0.0, 0.1, -0.999]);
    for chunks in [1, 3, 8] {
        let x = ChunkedArray::from_array(a.clone(), chunks).unwrap();
        assert_eq!(
            compute(&x.astype::<i32>()),
            arr1(vec![1, -1, 2, -2, 0, 0, 0, 0])
        );
        assert_eq!(
            compute(&x.astype::<i64>()),
            arr1(vec![1i64, -1, 2, -2, 0, 0, 0, 0])
        );
    }
    let b = arr1(vec![1.7, -1.7, 0.0, -0.0, nan, 0.1]);
    let x = ChunkedArray::from_array(b, 4).unwrap();
    let got = x.astype::<bool>();
    assert_eq!(got.dtype(), DType::Bool);
    assert_eq!(
        compute(&got),
        arr1(vec![true, true, false, false, true, true])
    );
    let t = ChunkedArray::from_array(arr1(vec![true, false]), 1).unwrap();
    assert_eq!(compute(&t.astype::<f64>()), arr1(vec![1.0, 0.0]));
    assert_eq!(compute(&t.astype::<i8>()), arr1(vec![1i8, 0]));
}

#[test]
fn comparisons_with_nan_are_false_except_ne() {
    let x = ChunkedArray::from_array(arr1(vec![f64::NAN, 1.0]), 1).unwrap();
    let y = ChunkedArray::from_array(arr1(vec![f64::NAN, f64::NAN]), 2).unwrap();
    for c in [x.eq(&y), x.lt(&y), x.le(&y), x.gt(&y), x.ge(&y)] {
        assert_eq!(compute(&c.unwrap()), arr1(vec![false, false]));
    }
    assert_eq!(compute(&x.ne(&y).unwrap()), arr1(vec![true, true]));
    let i = ChunkedArray::from_array(arr1(vec![3i64, 4, 5]), 2).unwrap();
    assert_eq!(compute(&i.ge(4).unwrap()), arr1(vec![false, true, true]));
    assert_eq!(compute(&i.isnan()), arr1(vec![false, false, false]));
    assert_eq!(compute(&i.isfinite()), arr1(vec![true, true, true]));
}

#[test]
fn round_is_half_to_even() {
    let x = ChunkedArray::from_array(arr1(vec![0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -2.5001]), 3)
        .unwrap();
    let got: ArrayD<f64> = compute(&x.round());
    assert_same(
        &got,
        &arr1(vec![0.0, 2.0, 2.0, -0.0, -2.0, 2.0, -3.0]),
        &"round",
    );
    assert!(got[[3]].is_sign_negative(), "round(-0.5) is -0.0 in NumPy");
}

#[test]
fn sign_keeps_nan_and_zero() {
    let x = ChunkedArray::from_array(arr1(vec![-3.0, 0.0, f64::NAN, 2.0, f64::NEG_INFINITY]), 2)
        .unwrap();
    assert_same(
        &compute(&x.sign()),
        &arr1(vec![-1.0, 0.0, f64::NAN, 1.0, -1.0]),
        &"sign",
    );
    let u = ChunkedArray::from_array(arr1(vec![0u16, 7]), 1).unwrap();
    assert_eq!(compute(&u.sign()), arr1(vec![0u16, 1]));
}

#[test]
fn elementwise_keeps_unified_grid() {
    // The result's grid refines both operands' grids along the shared axes.
    let x = ChunkedArray::<f64>::zeros(&[6, 4], Chunks::from([4, 4])).unwrap();
    let y = ChunkedArray::<f64>::zeros(&[6, 1], explicit(&[&[1, 2, 3], &[1]])).unwrap();
    let z = x.add(&y).unwrap();
    assert_eq!(z.chunks(), &[vec![1, 2, 1, 2], vec![4]]);
    assert_eq!(z.shape(), &[6, 4]);
    assert_eq!(Element::to_f64(compute(&z.sum_all().unwrap())[[]]), 0.0);
}

/// Minimal reproduction: `(1,)` against `(4,)` in blocks of 1. Block 2 of the output asks the
/// length-1 operand for region `2..3`.
#[test]
fn stretched_axis_with_unit_output_blocks() {
    let y = ChunkedArray::<f64>::zeros(&[4], 1).unwrap();
    // Generated sources compute the out-of-range positions: silently wrong values
    // (got [5.0, 6.0, 7.0, 8.0]).
    let g = ChunkedArray::<f64>::arange(5.0, 6.0, 1.0, 1).unwrap();
    assert_eq!(compute(&g.add(&y).unwrap()), arr1(vec![5.0; 4]));
    // In memory: ndarray panics ("Slice begin 1 is past end of axis of length 1").
    let x = ChunkedArray::from_array(arr1(vec![5.0]), 1).unwrap();
    assert_eq!(compute(&x.add(&y).unwrap()), arr1(vec![5.0; 4]));
}

/// `a ** b` by squaring with wrapping products, for any non-negative exponent.
fn int_pow_by_squaring(a: i64, b: i64) -> i64 {
    let (mut base, mut e, mut acc) = (a, b as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    acc
}

/// Minimal reproduction: exponents of 2**32 and more are cast to `u32` before
/// `wrapping_pow`, so `2 ** 2**32` is `2 ** 0 = 1`. NumPy 2.4 gives
/// `[0, 2491309678558969857, -1, 1, 0]`.
#[test]
fn integer_power_with_huge_exponents() {
    let a = arr1(vec![2i64, 3, -1, 1, 0]);
    let b = arr1(vec![1i64 << 32, 1 << 32, (1 << 32) + 1, 1 << 40, 1 << 32]);
    let want = zip_ref(&a, &b, int_pow_by_squaring);
    assert_eq!(want, arr1(vec![0, 2491309678558969857, -1, 1, 0]));
    let x = ChunkedArray::from_array(a, 2).unwrap();
    let y = ChunkedArray::from_array(b, 3).unwrap();
    assert_eq!(compute(&x.pow(&y).unwrap()), want);
}

/// An integer array to a negative integer power is an error in the typed API too, as in NumPy
/// (it gave 0 for all but the bases 1 and -1): a scalar exponent when planned, an array
/// exponent when computed. Floats and non-negative exponents are unaffected.
#[test]
fn integer_arrays_to_negative_powers_are_refused() {
    let x = ChunkedArray::from_array(arr1(vec![2i64, -3, 1, 5]), 3).unwrap();
    let e = x.pow(-1i64).unwrap_err();
    assert!(e.to_string().contains("negative integer powers"), "{e}");
    let exps = ChunkedArray::from_array(arr1(vec![2i64, 0, 3, -2]), 2).unwrap();
    let planned = x.pow(&exps).unwrap();
    let e = planned.compute().unwrap_err();
    assert!(e.to_string().contains("(found -2)"), "{e}");
    let ok = ChunkedArray::from_array(arr1(vec![2i64, 0, 3, 2]), 2).unwrap();
    assert_eq!(compute(&x.pow(&ok).unwrap()), arr1(vec![4i64, 1, 1, 25]));
    let f = ChunkedArray::from_array(arr1(vec![2.0f64, 4.0]), 1).unwrap();
    assert_eq!(compute(&f.pow(-1.0).unwrap()), arr1(vec![0.5, 0.25]));
    let u = ChunkedArray::from_array(arr1(vec![3u8, 2]), 1).unwrap();
    assert_eq!(compute(&u.pow(3u8).unwrap()), arr1(vec![27u8, 8]));
}
