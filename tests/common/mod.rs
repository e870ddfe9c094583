//! Shared proptest strategies, dense references and comparisons for the differential tests.
//!
//! Every reference here is computed directly on an `ndarray` (or with naive loops), never
//! with tessera, so a tessera result that depends on its chunking shows up as a mismatch.
#![allow(dead_code)]

use ndarray::{ArrayD, Dimension, IxDyn};
use proptest::prelude::*;
use std::fmt::Debug;
use tessera::chunks::AxisChunks;
use tessera::{ChunkedArray, Chunks, Element};

/// A modest number of cases (64, or `PROPTEST_CASES` for a deeper run), and no regression
/// files written next to the tests.
pub(crate) fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Ragged explicit chunk lengths adding up to `n` (random cut points).
pub(crate) fn ragged(n: usize) -> BoxedStrategy<Vec<usize>> {
    if n == 0 {
        return prop::sample::select(vec![vec![], vec![0]]).boxed();
    }
    prop::collection::vec(any::<bool>(), n - 1)
        .prop_map(|cuts| {
            let mut out = Vec::new();
            let mut len = 1;
            for cut in cuts {
                if cut {
                    out.push(len);
                    len = 1;
                } else {
                    len += 1;
                }
            }
            out.push(len);
            out
        })
        .boxed()
}

/// A chunk specification for an axis of length `n`: size 1, one block, a random size, or a
/// ragged explicit list.
pub(crate) fn axis_chunks(n: usize) -> BoxedStrategy<AxisChunks> {
    prop_oneof![
        Just(AxisChunks::Size(1)),
        Just(AxisChunks::Whole),
        (1..=8usize).prop_map(AxisChunks::Size),
        ragged(n).prop_map(AxisChunks::Explicit),
    ]
    .boxed()
}

/// A chunk specification for an array of `shape`.
pub(crate) fn chunks_for(shape: &[usize]) -> BoxedStrategy<Chunks> {
    let per: Vec<_> = shape.iter().map(|&n| axis_chunks(n)).collect();
    prop_oneof![
        3 => per.prop_map(Chunks::PerAxis),
        1 => (1..=8usize).prop_map(Chunks::Size),
    ]
    .boxed()
}

/// A shape of `0..=max_ndim` axes of lengths `0..=max_len`.
pub(crate) fn shape(max_ndim: usize, max_len: usize) -> BoxedStrategy<Vec<usize>> {
    prop::collection::vec(0..=max_len, 0..=max_ndim).boxed()
}

/// A shape (ndim 0..=3, lengths 0..=7) and a chunking of it.
pub(crate) fn shape_chunks() -> BoxedStrategy<(Vec<usize>, Chunks)> {
    shape(3, 7)
        .prop_flat_map(|s| (Just(s.clone()), chunks_for(&s)))
        .boxed()
}

/// A dense array of `shape` with elements drawn from `elem`.
pub(crate) fn array_of<T: Debug + Clone + 'static>(
    shape: Vec<usize>,
    elem: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<ArrayD<T>> {
    let n: usize = shape.iter().product();
    prop::collection::vec(elem, n)
        .prop_map(move |v| ArrayD::from_shape_vec(IxDyn(&shape), v).unwrap())
        .boxed()
}

/// A dense array and a chunking of it.
#[derive(Clone, Debug)]
pub(crate) struct Case<T> {
    pub(crate) data: ArrayD<T>,
    pub(crate) chunks: Chunks,
}

impl<T: Element> Case<T> {
    /// The chunked array (panics on chunks the strategy should never produce).
    pub(crate) fn chunked(&self) -> ChunkedArray<T> {
        ChunkedArray::from_array(self.data.clone(), self.chunks.clone()).unwrap_or_else(|e| {
            panic!(
                "from_array({:?}, {:?}): {e}",
                self.data.shape(),
                self.chunks
            )
        })
    }
}

/// A random array (ndim 0..=3, lengths 0..=7) with a random chunking.
pub(crate) fn case<T: Element, S: Strategy<Value = T> + Clone + 'static>(
    elem: S,
) -> BoxedStrategy<Case<T>> {
    shape_chunks()
        .prop_flat_map(move |(s, c)| (array_of(s, elem.clone()), Just(c)))
        .prop_map(|(data, chunks)| Case { data, chunks })
        .boxed()
}

/// A random chunking of `data`.
pub(crate) fn case_from<T: Element>(data: ArrayD<T>) -> BoxedStrategy<Case<T>> {
    chunks_for(data.shape())
        .prop_map(move |chunks| Case {
            data: data.clone(),
            chunks,
        })
        .boxed()
}

/// Floats that tie often and sum exactly (halves in -2..=2), mixed with arbitrary ones.
pub(crate) fn small_f64() -> BoxedStrategy<f64> {
    prop_oneof![
        2 => (-4i32..=4).prop_map(|k| f64::from(k) * 0.5),
        1 => -4.0..4.0f64,
    ]
    .boxed()
}

/// Small integers, so that ties and zeros are common.
pub(crate) fn small_i64() -> BoxedStrategy<i64> {
    (-3i64..=3).boxed()
}

/// Where NaNs go in a float array.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NanMode {
    /// No NaN.
    None,
    /// About one element in four, chosen by hashing the flat index with a seed.
    Some(u64),
    /// Every element of one block (the `k`-th modulo the number of blocks).
    Block(usize),
    /// Every element.
    All,
}

pub(crate) fn nan_mode() -> BoxedStrategy<NanMode> {
    prop_oneof![
        Just(NanMode::None),
        any::<u64>().prop_map(NanMode::Some),
        any::<usize>().prop_map(NanMode::Block),
        Just(NanMode::All),
    ]
    .boxed()
}

fn hash(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 29)
}

/// Block regions of a chunking, from the chunk lengths by running sums (C order of blocks).
pub(crate) fn block_regions(chunks: &[Vec<usize>]) -> Vec<Vec<std::ops::Range<usize>>> {
    let mut regions = vec![Vec::new()];
    for axis in chunks {
        let mut ranges = Vec::new();
        let mut start = 0;
        for &c in axis {
            ranges.push(start..start + c);
            start += c;
        }
        regions = regions
            .into_iter()
            .flat_map(|prefix| {
                ranges.iter().map(move |r| {
                    let mut p = prefix.clone();
                    p.push(r.clone());
                    p
                })
            })
            .collect();
    }
    regions
}

/// Puts NaNs into `case` as `mode` says.
pub(crate) fn with_nans(mut case: Case<f64>, mode: NanMode) -> Case<f64> {
    match mode {
        NanMode::None => {}
        NanMode::Some(seed) => {
            for (i, v) in case.data.iter_mut().enumerate() {
                if hash(seed, i as u64).is_multiple_of(4) {
                    *v = f64::NAN;
                }
            }
        }
        NanMode::Block(k) => {
            let chunks = case.chunked().chunks().to_vec();
            let regions = block_regions(&chunks);
            let region = &regions[k % regions.len()];
            for (idx, v) in case.data.indexed_iter_mut() {
                if region
                    .iter()
                    .enumerate()
                    .all(|(ax, r)| r.contains(&idx[ax]))
                {
                    *v = f64::NAN;
                }
            }
        }
        NanMode::All => case.data.fill(f64::NAN),
    }
    case
}

/// A float case with NaNs placed by a random [`NanMode`].
pub(crate) fn float_case() -> BoxedStrategy<(Case<f64>, NanMode)> {
    (case(small_f64()), nan_mode())
        .prop_map(|(c, m)| (with_nans(c, m), m))
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Dense references
// ---------------------------------------------------------------------------------------------

/// NumPy's broadcast of shapes, naively: right-aligned, 1 stretches, anything else must match.
pub(crate) fn broadcast_shape(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let nd = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; nd];
    for s in shapes {
        for (k, &n) in s.iter().rev().enumerate() {
            let o = &mut out[nd - 1 - k];
            if *o == 1 {
                *o = n;
            } else if n != 1 && n != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// The element of `a` that feeds position `out` of a broadcast result.
pub(crate) fn bget<T: Copy>(a: &ArrayD<T>, out: &[usize]) -> T {
    let off = out.len() - a.ndim();
    let idx: Vec<usize> = a
        .shape()
        .iter()
        .enumerate()
        .map(|(k, &n)| if n == 1 { 0 } else { out[off + k] })
        .collect();
    a[IxDyn(&idx)]
}

/// `f(a, b)` elementwise with broadcasting.
pub(crate) fn zip_ref<A: Copy, B: Copy, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> C,
) -> ArrayD<C> {
    let shape = broadcast_shape(&[a.shape(), b.shape()]).expect("shapes broadcast");
    ArrayD::from_shape_fn(IxDyn(&shape), |idx| {
        f(bget(a, idx.slice()), bget(b, idx.slice()))
    })
}

/// A reduction over `axes` (sorted, non-negative) computed naively: the values of every output
/// element are gathered in C order over the reduced axes and handed to `f`.
pub(crate) fn reduce_ref<T: Copy, U>(
    a: &ArrayD<T>,
    axes: &[usize],
    keepdims: bool,
    f: impl Fn(&[T]) -> U,
) -> ArrayD<U> {
    let kept: Vec<usize> = (0..a.ndim()).filter(|ax| !axes.contains(ax)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&ax| a.shape()[ax]).collect();
    let nout: usize = kept_shape.iter().product();
    let mut groups: Vec<Vec<T>> = (0..nout).map(|_| Vec::new()).collect();
    for (idx, &v) in a.indexed_iter() {
        let mut flat = 0;
        for (&ax, &n) in kept.iter().zip(&kept_shape) {
            flat = flat * n + idx[ax];
        }
        groups[flat].push(v);
    }
    let shape: Vec<usize> = if keepdims {
        (0..a.ndim())
            .map(|ax| if axes.contains(&ax) { 1 } else { a.shape()[ax] })
            .collect()
    } else {
        kept_shape
    };
    let values: Vec<U> = groups.iter().map(|g| f(g)).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------

/// Equal, or both NaN.
pub(crate) fn same<T: Element>(a: T, b: T) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Same shape and every element [`same`].
#[track_caller]
pub(crate) fn assert_same<T: Element>(got: &ArrayD<T>, want: &ArrayD<T>, ctx: &dyn Debug) {
    assert_eq!(got.shape(), want.shape(), "shape; {ctx:?}");
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        assert!(
            same(*g, *w),
            "element {i} (C order): got {g:?}, want {w:?}\n got  {got:?}\n want {want:?}\n {ctx:?}"
        );
    }
}

/// Same shape, and every element [`same`] or within `tol(i)` of the reference.
#[track_caller]
pub(crate) fn assert_close(
    got: &ArrayD<f64>,
    want: &ArrayD<f64>,
    tol: impl Fn(usize) -> f64,
    ctx: &dyn Debug,
) {
    assert_eq!(got.shape(), want.shape(), "shape; {ctx:?}");
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        assert!(
            same(*g, *w) || (g - w).abs() <= tol(i),
            "element {i} (C order): got {g:?}, want {w:?} (tolerance {})\n got  {got:?}\n want {want:?}\n {ctx:?}",
            tol(i)
        );
    }
}

/// Computes, panicking with the plan on an error.
#[track_caller]
pub(crate) fn compute<T: Element>(x: &ChunkedArray<T>) -> ArrayD<T> {
    x.compute()
        .unwrap_or_else(|e| panic!("compute failed: {e}\nplan:\n{}", x.explain()))
}

/// A 1-d array from a vector.
pub(crate) fn arr1<T>(v: Vec<T>) -> ArrayD<T> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(&[n]), v).unwrap()
}

/// An array of `shape` from a vector in C order.
pub(crate) fn arr<T>(shape: &[usize], v: Vec<T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

/// `0, 1, 2, ...` as an array of `shape`.
pub(crate) fn iota(shape: &[usize]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    arr(shape, (0..n).map(|i| i as f64).collect())
}

/// The block lengths a chunk specification should give, by the documented rules: blocks of
/// `n` with a shorter last one, one block, or the explicit list; one empty block on an empty
/// axis.
pub(crate) fn expected_chunks(shape: &[usize], chunks: &Chunks) -> Vec<Vec<usize>> {
    shape
        .iter()
        .enumerate()
        .map(|(ax, &n)| {
            let spec = match chunks {
                Chunks::Size(k) => AxisChunks::Size(*k),
                Chunks::PerAxis(v) => v[ax].clone(),
                Chunks::Auto | Chunks::AutoBytes(_) => AxisChunks::Auto,
            };
            if n == 0 {
                return vec![0];
            }
            match spec {
                AxisChunks::Size(k) => {
                    let mut out = Vec::new();
                    let mut left = n;
                    while left > 0 {
                        out.push(k.min(left));
                        left -= k.min(left);
                    }
                    out
                }
                AxisChunks::Whole => vec![n],
                AxisChunks::Explicit(v) => v,
                AxisChunks::Auto => panic!("no expectation for automatic chunks"),
            }
        })
        .collect()
}
