//! Slicing, transposition, concatenation, stacking, reshaping and rechunking against dense
//! references built with naive index arithmetic or ndarray's own (independent) routines.

mod common;

use common::*;
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use tessera::ops::slice::SliceItem;
use tessera::{ChunkedArray, Chunks, Element, Error};

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

/// The positions `list(range(n))[start:stop:step]` selects, by Python's rules: negative bounds
/// count from the end, bounds clamp to the axis, and `None` means "from the first (last) end".
fn py_indices(n: usize, start: Option<isize>, stop: Option<isize>, step: isize) -> Vec<usize> {
    let n = n as isize;
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let adjust = |v: isize| (if v < 0 { v + n } else { v }).clamp(lo, hi);
    let start = start.map_or(if step > 0 { 0 } else { n - 1 }, adjust);
    let stop = stop.map_or(if step > 0 { n } else { -1 }, adjust);
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < stop) || (step < 0 && i > stop) {
        out.push(i as usize);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    out
}

/// Where one output axis of a slice comes from.
enum OutAxis {
    Source(usize, Vec<usize>),
    New,
}

/// NumPy basic indexing, element by element.
fn slice_ref<T: Copy>(a: &ArrayD<T>, items: &[SliceItem]) -> ArrayD<T> {
    let mut items = items.to_vec();
    let used = items
        .iter()
        .filter(|i| !matches!(i, SliceItem::NewAxis))
        .count();
    items.extend(std::iter::repeat_n(SliceItem::ALL, a.ndim() - used));
    let mut outs = Vec::new();
    let mut fixed = vec![0usize; a.ndim()];
    let mut ax = 0;
    for it in items {
        match it {
            SliceItem::NewAxis => outs.push(OutAxis::New),
            SliceItem::Index(i) => {
                let n = a.shape()[ax] as isize;
                fixed[ax] = if i < 0 { i + n } else { i } as usize;
                ax += 1;
            }
            SliceItem::Range { start, stop, step } => {
                outs.push(OutAxis::Source(
                    ax,
                    py_indices(a.shape()[ax], start, stop, step),
                ));
                ax += 1;
            }
        }
    }
    let shape: Vec<usize> = outs
        .iter()
        .map(|o| match o {
            OutAxis::Source(_, idx) => idx.len(),
            OutAxis::New => 1,
        })
        .collect();
    ArrayD::from_shape_fn(IxDyn(&shape), |out| {
        let mut src = fixed.clone();
        for (k, o) in outs.iter().enumerate() {
            if let OutAxis::Source(ax, idx) = o {
                src[*ax] = idx[out[k]];
            }
        }
        a[IxDyn(&src)]
    })
}

/// Axis `k` of the result is axis `axes[k]` of `a`.
fn permute_ref<T: Copy>(a: &ArrayD<T>, axes: &[usize]) -> ArrayD<T> {
    let shape: Vec<usize> = axes.iter().map(|&ax| a.shape()[ax]).collect();
    ArrayD::from_shape_fn(IxDyn(&shape), |out| {
        let mut src = vec![0; a.ndim()];
        for (k, &ax) in axes.iter().enumerate() {
            src[ax] = out[k];
        }
        a[IxDyn(&src)]
    })
}

/// Every axis has blocks that add up to its length, none empty unless the axis is.
#[track_caller]
fn assert_grid_ok<T: Element>(x: &ChunkedArray<T>) {
    for (ax, (c, &n)) in x.chunks().iter().zip(x.shape()).enumerate() {
        assert_eq!(
            c.iter().sum::<usize>(),
            n,
            "axis {ax} of {:?}: {c:?}",
            x.shape()
        );
        if n == 0 {
            assert_eq!(c, &vec![0], "empty axis {ax}");
        } else {
            assert!(c.iter().all(|&b| b > 0), "empty block on axis {ax}: {c:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn distinct() -> BoxedStrategy<f64> {
    (-1000i32..1000).prop_map(f64::from).boxed()
}

fn item_for(n: usize) -> BoxedStrategy<SliceItem> {
    let bound = prop::option::of(-10isize..=10);
    let step = prop_oneof![1isize..=4, -4isize..=-1];
    let range = (bound.clone(), bound, step).prop_map(|(start, stop, step)| SliceItem::Range {
        start,
        stop,
        step,
    });
    if n == 0 {
        return range.boxed();
    }
    let n = n as isize;
    prop_oneof![3 => range, 1 => (-n..n).prop_map(SliceItem::Index)].boxed()
}

/// Items for an array of `shape`: one per axis (the trailing ones maybe left out), with up to
/// two new axes inserted anywhere.
fn items_for(shape: &[usize]) -> BoxedStrategy<Vec<SliceItem>> {
    let per: Vec<_> = shape.iter().map(|&n| item_for(n)).collect();
    (
        per,
        0..=shape.len(),
        prop::collection::vec(0usize..=3, 0..=2),
    )
        .prop_map(|(mut items, keep, new_axes)| {
            items.truncate(keep);
            for p in new_axes {
                items.insert(p.min(items.len()), SliceItem::NewAxis);
            }
            items
        })
        .boxed()
}

fn slice_case() -> BoxedStrategy<(Case<f64>, Vec<SliceItem>)> {
    case(distinct())
        .prop_flat_map(|c| {
            let items = items_for(c.data.shape());
            (Just(c), items)
        })
        .boxed()
}

/// A permutation of `ndim` axes, each maybe written negative.
fn permutation(ndim: usize) -> BoxedStrategy<(Vec<usize>, Vec<isize>)> {
    (
        Just((0..ndim).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec(any::<bool>(), ndim),
    )
        .prop_map(move |(p, neg)| {
            let written = p
                .iter()
                .zip(&neg)
                .map(|(&a, &n)| {
                    if n {
                        a as isize - ndim as isize
                    } else {
                        a as isize
                    }
                })
                .collect();
            (p, written)
        })
        .boxed()
}

/// Inputs to concatenate: ndim 1..=3, the same lengths off `axis`, own length along it
/// (maybe 0), own chunking each.
fn concat_case() -> BoxedStrategy<(Vec<Case<f64>>, usize)> {
    (1usize..=3, prop::collection::vec(0usize..=4, 3))
        .prop_flat_map(|(nd, base)| {
            (
                0..nd,
                Just(base[..nd].to_vec()),
                prop::collection::vec(0usize..=4, 1..=3),
            )
        })
        .prop_flat_map(|(axis, base, lens)| {
            let inputs: Vec<_> = lens
                .iter()
                .map(|&l| {
                    let mut s = base.clone();
                    s[axis] = l;
                    array_of(s, distinct()).prop_flat_map(case_from)
                })
                .collect();
            (inputs, Just(axis))
        })
        .boxed()
}

fn stack_case() -> BoxedStrategy<(Vec<Case<f64>>, usize)> {
    (shape(2, 4), 1usize..=3)
        .prop_flat_map(|(s, k)| {
            let nd = s.len();
            let one = array_of(s, distinct()).prop_flat_map(case_from);
            (prop::collection::vec(one, k), 0..=nd)
        })
        .boxed()
}

fn prime_factors(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = 2;
    while n > 1 {
        while n.is_multiple_of(p) {
            out.push(p);
            n /= p;
        }
        p += 1;
    }
    out
}

/// A shape with the same number of elements as `shape` (its prime factors dealt at random to
/// 0..=4 axes, so axes merge, split, appear and vanish), maybe with one axis written -1.
fn reshape_target(shape: &[usize]) -> BoxedStrategy<Vec<isize>> {
    let len: usize = shape.iter().product();
    if len == 0 {
        return (
            prop::collection::vec(0usize..=4, 1..=3),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut s, i)| {
                let k = i.index(s.len());
                s[k] = 0;
                s.iter().map(|&n| n as isize).collect()
            })
            .boxed();
    }
    let f = prime_factors(len);
    let nf = f.len();
    (
        Just(f).prop_shuffle(),
        0usize..=4,
        prop::collection::vec(0usize..4, nf),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(move |(f, k, deal, neg)| {
            let k = if nf == 0 { k } else { 1 + k % 4 };
            let mut out = vec![1usize; k];
            for (p, d) in f.iter().zip(deal) {
                out[d % k] *= p;
            }
            let mut out: Vec<isize> = out.iter().map(|&n| n as isize).collect();
            if let (Some(i), false) = (neg, out.is_empty()) {
                let at = i.index(out.len());
                out[at] = -1;
            }
            out
        })
        .boxed()
}

fn resolved(target: &[isize], len: usize) -> Vec<usize> {
    let known: usize = target
        .iter()
        .filter(|&&n| n >= 0)
        .map(|&n| n as usize)
        .product();
    target
        .iter()
        .map(|&n| if n < 0 { len / known } else { n as usize })
        .collect()
}

/// `x * 2` sliced by `items`, then every axis reversed with the first one started at `start`
/// in steps of 2.
fn check_slice_of_slice(c: &Case<f64>, items: &[SliceItem], start: usize) {
    let x = c.chunked();
    let y = x.mul(2.0).unwrap().slice(items).unwrap();
    let first = slice_ref(&c.data.mapv(|v| v * 2.0), items);
    assert_same(&compute(&y), &first, &(c, items));
    let mut again: Vec<SliceItem> = (0..y.ndim())
        .map(|_| SliceItem::Range {
            start: None,
            stop: None,
            step: -1,
        })
        .collect();
    if let Some(first_axis) = again.first_mut() {
        *first_axis = SliceItem::Range {
            start: Some(start as isize),
            stop: None,
            step: 2,
        };
    }
    let z = y.slice(&again).unwrap();
    assert_grid_ok(&z);
    assert_same(
        &compute(&z),
        &slice_ref(&first, &again),
        &(c, items, &again),
    );
}

// ---------------------------------------------------------------------------------------------
// Differential properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn slices_match_python_indexing((c, items) in slice_case()) {
        let x = c.chunked();
        let y = x.slice(&items).unwrap();
        assert_grid_ok(&y);
        let want = slice_ref(&c.data, &items);
        prop_assert_eq!(y.shape(), want.shape());
        assert_same(&compute(&y), &want, &(&c, &items));
    }

    /// A slice of a computed (owned) block, and a slice of a slice (no new axes: see the
    /// ignored test below).
    #[test]
    fn slices_compose((c, items) in slice_case(), start in 0usize..3) {
        let items: Vec<SliceItem> =
            items.into_iter().filter(|i| !matches!(i, SliceItem::NewAxis)).collect();
        check_slice_of_slice(&c, &items, start);
    }

    #[test]
    fn slices_of_new_axes_compose((c, items) in slice_case(), start in 0usize..3) {
        check_slice_of_slice(&c, &items, start);
    }

    /// Slices of a transposed array (strided, non-contiguous source regions).
    #[test]
    fn slices_of_a_transpose(
        (c, items) in case(distinct()).prop_flat_map(|c| {
            let mut s = c.data.shape().to_vec();
            s.reverse();
            let items = items_for(&s);
            (Just(c), items)
        })
    ) {
        let y = c.chunked().t().slice(&items).unwrap();
        assert_grid_ok(&y);
        let dt = c.data.t().to_owned();
        assert_same(&compute(&y), &slice_ref(&dt, &items), &(&c, &items));
    }

    #[test]
    fn permute_and_transpose(
        (c, (perm, written)) in case(distinct()).prop_flat_map(|c| {
            let nd = c.data.ndim();
            (Just(c), permutation(nd))
        })
    ) {
        let x = c.chunked();
        let y = x.permute(&written).unwrap();
        assert_grid_ok(&y);
        for (k, &ax) in perm.iter().enumerate() {
            prop_assert_eq!(&y.chunks()[k], &x.chunks()[ax]);
        }
        assert_same(&compute(&y), &permute_ref(&c.data, &perm), &(&c, &perm));
        let rev: Vec<usize> = (0..c.data.ndim()).rev().collect();
        assert_same(&compute(&x.t()), &permute_ref(&c.data, &rev), &c);
        assert_same(&compute(&x.t()), &c.data.t().to_owned(), &c);
        // Elementwise on permuted computed blocks (owned, non-standard layout), in place.
        let z = x.mul(2.0).unwrap().permute(&written).unwrap().sub(&y).unwrap();
        assert_same(&compute(&z), &permute_ref(&c.data, &perm), &(&c, &perm, "2x - x"));
        // Permuting back gives the original.
        let mut inverse = vec![0isize; perm.len()];
        for (k, &ax) in perm.iter().enumerate() {
            inverse[ax] = k as isize;
        }
        assert_same(&compute(&y.permute(&inverse).unwrap()), &c.data, &c);
    }

    #[test]
    fn concatenate_matches_ndarray((inputs, axis) in concat_case(), negative in any::<bool>()) {
        let arrays: Vec<ChunkedArray<f64>> = inputs.iter().map(Case::chunked).collect();
        let views: Vec<_> = inputs.iter().map(|c| c.data.view()).collect();
        let want = ndarray::concatenate(Axis(axis), &views).unwrap();
        let nd = inputs[0].data.ndim() as isize;
        let ax = if negative { axis as isize - nd } else { axis as isize };
        let y = ChunkedArray::concatenate(&arrays, ax).unwrap();
        assert_grid_ok(&y);
        assert_same(&compute(&y), &want, &(&inputs, axis));
    }

    #[test]
    fn stack_matches_ndarray((inputs, axis) in stack_case()) {
        let arrays: Vec<ChunkedArray<f64>> = inputs.iter().map(Case::chunked).collect();
        let views: Vec<_> = inputs.iter().map(|c| c.data.view()).collect();
        let want = ndarray::stack(Axis(axis), &views).unwrap();
        let y = ChunkedArray::stack(&arrays, axis as isize).unwrap();
        assert_grid_ok(&y);
        assert_same(&compute(&y), &want, &(&inputs, axis));
    }

    #[test]
    fn reshape_matches_ndarray(
        (c, target) in case(distinct()).prop_flat_map(|c| {
            let t = reshape_target(c.data.shape());
            (Just(c), t)
        })
    ) {
        let x = c.chunked();
        let shape = resolved(&target, c.data.len());
        let want = c.data.clone().into_shape_with_order(IxDyn(&shape)).unwrap();
        let y = x.reshape(&target).unwrap();
        assert_same(&compute(&y), &want, &(&c, &target));
        if !c.data.is_empty() {
            // Size-0 arrays: see the ignored test `reshape_of_an_empty_array_has_one_empty_block`.
            assert_grid_ok(&y);
        }
        // Back to the original shape.
        let back: Vec<isize> = c.data.shape().iter().map(|&n| n as isize).collect();
        assert_same(&compute(&y.reshape(&back).unwrap()), &c.data, &(&c, &target));
        // From a transposed (non-contiguous) view: C order of the view.
        let dt = c.data.t().as_standard_layout().into_owned();
        let want_t = dt.into_shape_with_order(IxDyn(&shape)).unwrap();
        assert_same(&compute(&x.t().reshape(&target).unwrap()), &want_t, &(&c, &target, "t"));
    }

    #[test]
    fn rechunk_keeps_values(
        (c, new) in case(distinct()).prop_flat_map(|c| {
            let n = chunks_for(c.data.shape());
            (Just(c), n)
        })
    ) {
        let x = c.chunked();
        let y = x.rechunk(new.clone()).unwrap();
        let want_chunks = expected_chunks(c.data.shape(), &new);
        prop_assert_eq!(y.chunks(), want_chunks.as_slice());
        assert_same(&compute(&y), &c.data, &(&c, &new));
        // Rechunking a computed array, and back.
        let z = x.add(1.0).unwrap().rechunk(new).unwrap().rechunk(c.chunks.clone()).unwrap();
        assert_same(&compute(&z), &c.data.mapv(|v| v + 1.0), &c);
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------------------------

/// `(n, start, stop, step, list(range(n))[start:stop:step])`.
type PySlice = (usize, Option<isize>, Option<isize>, isize, &'static [usize]);

#[rustfmt::skip]
const PYTHON_SLICES: &[PySlice] = &[
    // (n, start, stop, step, list(range(n))[start:stop:step]) from CPython.
    (0, None, None, 1, &[]),
    (0, None, None, -1, &[]),
    (0, None, None, 2, &[]),
    (0, None, None, -2, &[]),
    (0, Some(1), None, 1, &[]),
    (0, Some(-2), None, 1, &[]),
    (0, None, Some(-1), 1, &[]),
    (0, None, Some(-1), -1, &[]),
    (0, Some(-1), None, -3, &[]),
    (0, Some(10), None, -1, &[]),
    (0, Some(-10), None, 1, &[]),
    (0, Some(-10), None, -1, &[]),
    (0, Some(2), Some(1), 1, &[]),
    (0, Some(1), Some(2), -1, &[]),
    (0, Some(3), Some(-8), -2, &[]),
    (0, Some(-100), Some(100), 3, &[]),
    (0, Some(100), Some(-100), -3, &[]),
    (0, Some(4), Some(0), -1, &[]),
    (0, Some(0), Some(4), -1, &[]),
    (0, None, Some(2), -1, &[]),
    (0, Some(2), None, -2, &[]),
    (0, Some(-3), Some(-1), 1, &[]),
    (0, Some(-1), Some(-3), -1, &[]),
    (1, None, None, -1, &[0]),
    (1, None, Some(-1), -1, &[]),
    (1, Some(10), None, -1, &[0]),
    (1, Some(-10), None, -1, &[]),
    (1, Some(0), Some(4), -1, &[]),
    (5, None, None, 1, &[0, 1, 2, 3, 4]),
    (5, None, None, -1, &[4, 3, 2, 1, 0]),
    (5, None, None, 2, &[0, 2, 4]),
    (5, None, None, -2, &[4, 2, 0]),
    (5, Some(1), None, 1, &[1, 2, 3, 4]),
    (5, Some(-2), None, 1, &[3, 4]),
    (5, None, Some(-1), 1, &[0, 1, 2, 3]),
    (5, None, Some(-1), -1, &[]),
    (5, Some(-1), None, -3, &[4, 1]),
    (5, Some(10), None, -1, &[4, 3, 2, 1, 0]),
    (5, Some(-10), None, 1, &[0, 1, 2, 3, 4]),
    (5, Some(-10), None, -1, &[]),
    (5, Some(2), Some(1), 1, &[]),
    (5, Some(1), Some(2), -1, &[]),
    (5, Some(3), Some(-8), -2, &[3, 1]),
    (5, Some(-100), Some(100), 3, &[0, 3]),
    (5, Some(100), Some(-100), -3, &[4, 1]),
    (5, Some(4), Some(0), -1, &[4, 3, 2, 1]),
    (5, Some(0), Some(4), -1, &[]),
    (5, None, Some(2), -1, &[4, 3]),
    (5, Some(2), None, -2, &[2, 0]),
    (5, Some(-3), Some(-1), 1, &[2, 3]),
    (5, Some(-1), Some(-3), -1, &[4, 3]),
];

#[test]
fn slices_agree_with_a_table_from_python() {
    for &(n, start, stop, step, want) in PYTHON_SLICES {
        assert_eq!(
            py_indices(n, start, stop, step),
            want,
            "reference, n={n} {start:?}:{stop:?}:{step}"
        );
        let data = arr1((0..n).map(|i| i as i64).collect());
        for chunks in [1, 2, n.max(1)] {
            let x = ChunkedArray::from_array(data.clone(), chunks).unwrap();
            let y = x.slice(&[SliceItem::Range { start, stop, step }]).unwrap();
            let got: Vec<usize> = compute(&y).iter().map(|&v| v as usize).collect();
            assert_eq!(
                got, want,
                "n={n} {start:?}:{stop:?}:{step}, chunks {chunks}"
            );
        }
    }
}

/// Steps near the ends of isize (isize::MIN included, whose negation overflows) select one
/// position, as in Python, whatever the start.
#[test]
fn extreme_steps_select_one_position() {
    let data = arr1((0..5).map(|i| i as i64).collect());
    let x = ChunkedArray::from_array(data, 2).unwrap();
    for step in [isize::MAX, isize::MAX - 1, isize::MIN, isize::MIN + 1] {
        for start in [
            None,
            Some(0),
            Some(2),
            Some(-1),
            Some(isize::MIN),
            Some(isize::MAX),
        ] {
            for stop in [None, Some(isize::MIN), Some(isize::MAX)] {
                let want = py_indices(5, start, stop, step);
                assert!(want.len() <= 1);
                let y = x.slice(&[SliceItem::Range { start, stop, step }]).unwrap();
                let got: Vec<usize> = compute(&y).iter().map(|&v| v as usize).collect();
                assert_eq!(got, want, "{start:?}:{stop:?}:{step}");
            }
        }
    }
    let first = py_indices(5, None, None, isize::MAX);
    let last = py_indices(5, None, None, isize::MIN);
    assert_eq!((first, last), (vec![0], vec![4]));
}

#[test]
fn integer_index_drops_an_axis_and_new_axis_adds_one() {
    let d = iota(&[3, 4, 5]);
    let x = ChunkedArray::from_array(d.clone(), [2, 3, 2]).unwrap();
    let y = x
        .slice(&[
            SliceItem::Index(-1),
            SliceItem::NewAxis,
            SliceItem::ALL,
            SliceItem::Index(2),
        ])
        .unwrap();
    assert_eq!(y.shape(), &[1, 4]);
    let want = d
        .slice(ndarray::s![2, .., 2])
        .insert_axis(Axis(0))
        .to_owned();
    assert_same(&compute(&y), &want.into_dyn(), &"x[-1, None, :, 2]");
    // A 0-d result from indexing every axis, and new axes on a 0-d array.
    let s = x
        .slice(&[
            SliceItem::Index(1),
            SliceItem::Index(0),
            SliceItem::Index(-5),
        ])
        .unwrap();
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(compute(&s)[[]], d[[1, 0, 0]]);
    let e = s.slice(&[SliceItem::NewAxis, SliceItem::NewAxis]).unwrap();
    assert_eq!(compute(&e), arr(&[1, 1], vec![d[[1, 0, 0]]]));
}

#[test]
fn invalid_slices_are_refused() {
    let x = ChunkedArray::<f64>::zeros(&[3, 4], 2).unwrap();
    for bad in [
        vec![SliceItem::Index(3)],
        vec![SliceItem::Index(-4)],
        vec![SliceItem::ALL, SliceItem::Index(4)],
        vec![SliceItem::Range {
            start: None,
            stop: None,
            step: 0,
        }],
        vec![SliceItem::ALL, SliceItem::ALL, SliceItem::ALL],
    ] {
        assert!(matches!(x.slice(&bad), Err(Error::Index(_))), "{bad:?}");
    }
    let e = x.slice(&[SliceItem::Index(3)]).unwrap_err().to_string();
    assert!(e.contains("3") && e.contains("axis 0"), "{e}");
    let empty = ChunkedArray::<f64>::zeros(&[0], 1).unwrap();
    assert!(empty.slice(&[SliceItem::Index(0)]).is_err());
    assert!(x.permute(&[0, 0]).is_err());
    assert!(x.permute(&[0]).is_err());
    assert!(x.permute(&[0, 2]).is_err());
}

#[test]
fn concatenate_with_empty_inputs_and_errors() {
    let a = ChunkedArray::from_array(iota(&[2, 3]), [1, 2]).unwrap();
    let e = ChunkedArray::<f64>::zeros(&[0, 3], 1).unwrap();
    let b = ChunkedArray::from_array(iota(&[1, 3]).mapv(|v| -v), [1, 1]).unwrap();
    let y = ChunkedArray::concatenate(&[e.clone(), a.clone(), e.clone(), b.clone(), e.clone()], 0)
        .unwrap();
    assert_grid_ok(&y);
    let (da, db) = (iota(&[2, 3]), iota(&[1, 3]).mapv(|v| -v));
    let want = ndarray::concatenate(Axis(0), &[da.view(), db.view()]).unwrap();
    assert_same(&compute(&y), &want, &"with empties");
    let all_empty = ChunkedArray::concatenate(&[e.clone(), e.clone()], 0).unwrap();
    assert_eq!(all_empty.shape(), &[0, 3]);
    assert_eq!(all_empty.chunks()[0], vec![0]);
    assert_eq!(compute(&all_empty).shape(), &[0, 3]);
    // Mismatched shapes name both; no inputs; 0-d inputs; axis out of range.
    let err = ChunkedArray::concatenate(&[a.clone(), b.t()], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[2, 3]") && err.contains("[3, 1]"), "{err}");
    assert!(ChunkedArray::<f64>::concatenate(&[], 0).is_err());
    let s = ChunkedArray::<f64>::zeros(&[], Chunks::PerAxis(vec![])).unwrap();
    assert!(ChunkedArray::concatenate(&[s.clone(), s.clone()], 0).is_err());
    assert!(ChunkedArray::concatenate(&[a.clone(), a.clone()], 2).is_err());
    assert!(ChunkedArray::stack(&[a.clone(), b.clone()], 0).is_err());
    assert!(ChunkedArray::stack(&[a.clone(), a.clone()], 3).is_err());
    let st = ChunkedArray::stack(&[s.clone(), s], -1).unwrap();
    assert_eq!(compute(&st), arr1(vec![0.0, 0.0]));
    // Lengths whose sum, or whose bytes, cannot be addressed: an error, not a wrapped shape.
    let huge = ChunkedArray::<f64>::zeros(&[1 << 59], 1usize << 50).unwrap();
    let err = ChunkedArray::concatenate(&[huge.clone(), huge.clone(), huge.clone()], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more elements than can be addressed"), "{err}");
    let err = ChunkedArray::<f64>::zeros(&[1 << 61], 1usize << 50)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than can be addressed"), "{err}");
}

#[test]
fn reshape_errors_and_fixed_cases() {
    let d = iota(&[2, 3, 4]);
    let x = ChunkedArray::from_array(d.clone(), [1, 2, 3]).unwrap();
    assert!(x.reshape(&[5, 5]).is_err());
    assert!(x.reshape(&[-1, -1]).is_err());
    assert!(x.reshape(&[-1, 5]).is_err());
    assert!(x.reshape(&[-2, 12]).is_err());
    let e = x.reshape(&[7]).unwrap_err().to_string();
    assert!(e.contains("24") && e.contains("[2, 3, 4]"), "{e}");
    for target in [
        vec![24isize],
        vec![6, 4],
        vec![2, 12],
        vec![4, 3, 2],
        vec![1, 2, 1, 3, 4, 1],
        vec![2, -1],
        vec![-1, 1],
        vec![3, 8],
    ] {
        let shape = resolved(&target, 24);
        let want = d.clone().into_shape_with_order(IxDyn(&shape)).unwrap();
        assert_same(&compute(&x.reshape(&target).unwrap()), &want, &target);
    }
    // Size-0 arrays: -1 resolves when the known axes are non-zero.
    let z = ChunkedArray::<f64>::zeros(&[0, 3], 2).unwrap();
    assert_eq!(z.reshape(&[-1, 3]).unwrap().shape(), &[0, 3]);
    assert_eq!(z.reshape(&[3, 0, 2]).unwrap().shape(), &[3, 0, 2]);
    assert!(z.reshape(&[0, -1]).is_err());
    let one = ChunkedArray::<f64>::full(&[1, 1], 2.5, 1).unwrap();
    assert_eq!(compute(&one.reshape(&[]).unwrap())[[]], 2.5);
    // A shape whose product wraps around to the array's size is refused, not accepted.
    let wraps = [1, 4294967297, 4294967295, 4294967297, 4294967295];
    let err = one.reshape(&wraps).unwrap_err().to_string();
    assert!(err.contains("more elements than can be addressed"), "{err}");
    let err = one.reshape(&[-1, 4294967297, 4294967295, 4294967297, 4294967295]);
    assert!(err.is_err(), "{err:?}");
}

#[test]
fn rechunk_to_fixed_grids() {
    let d = iota(&[5, 7]);
    let x = ChunkedArray::from_array(d.clone(), [2, 3]).unwrap();
    let y = x.rechunk([5, 1]).unwrap();
    assert_eq!(y.chunks(), &[vec![5], vec![1; 7]]);
    assert_same(&compute(&y), &d, &"rechunk");
    assert!(x.rechunk(Chunks::Size(0)).is_err());
    let bad = Chunks::PerAxis(vec![
        tessera::chunks::AxisChunks::Explicit(vec![2, 2]),
        tessera::chunks::AxisChunks::Whole,
    ]);
    assert!(x.rechunk(bad).is_err());
}

/// Minimal reproduction: `zeros(3)[None][1:]` has shape (0, 3); computing it asks the NewAxis
/// node for region `[1..1, 0..3]`, which answers with a block of shape [1, 3].
#[test]
fn empty_slice_of_a_new_axis() {
    let x = ChunkedArray::<f64>::zeros(&[3], 3).unwrap();
    let y = x.slice(&[SliceItem::NewAxis]).unwrap();
    let z = y
        .slice(&[SliceItem::Range {
            start: Some(1),
            stop: None,
            step: 1,
        }])
        .unwrap();
    assert_eq!(z.shape(), &[0, 3]);
    // Err: "shape error: internal: block of shape [1, 3] for region [0..0, 0..3]"
    assert_eq!(z.compute().unwrap().shape(), &[0, 3]);
}

/// Minimal reproduction: merging axes of a size-0 array whose leading axis has several
/// blocks gives the empty output axis several empty blocks (the grid rule is one).
#[test]
fn reshape_of_an_empty_array_has_one_empty_block() {
    let x = ChunkedArray::<f64>::zeros(&[3, 0], 1).unwrap();
    let y = x.reshape(&[0]).unwrap();
    assert_eq!(compute(&y).shape(), &[0]);
    // Got [[0, 0, 0]] and 3 blocks.
    assert_eq!(y.chunks(), &[vec![0]]);
    assert_eq!(y.nblocks(), 1);
}

/// Slices are shown in NumPy's notation (in plans and in errors that name a node).
#[test]
fn slices_print_in_numpys_notation() {
    let items = [
        (SliceItem::ALL, ":"),
        (
            SliceItem::Range {
                start: Some(1),
                stop: None,
                step: 1,
            },
            "1:",
        ),
        (
            SliceItem::Range {
                start: None,
                stop: Some(-2),
                step: -3,
            },
            ":-2:-3",
        ),
        (SliceItem::Index(-1), "-1"),
        (SliceItem::NewAxis, "None"),
    ];
    for (item, want) in items {
        assert_eq!(item.to_string(), want);
    }
    let x = ChunkedArray::<f64>::zeros(&[4, 5], Chunks::Auto).unwrap();
    let s = x
        .slice(&[
            SliceItem::Index(1),
            SliceItem::Range {
                start: Some(1),
                stop: None,
                step: 2,
            },
        ])
        .unwrap();
    let plan = s.explain();
    assert!(plan.contains("getitem[1, 1::2]"), "{plan}");
}
