//! Reductions: one engine for every reduction. Each input block is reduced to a partial (an
//! accumulator per output element), and partials are combined in a tree of fan-in
//! `split_every` (Dask's `_tree_reduce`), in parallel, until one remains per output block.
//!
//! A reduction is described by a [`Reducer`]: how to start, add values, merge two partials
//! and finish. Variance merges counts, means and M2 (Chan et al.), so it stays accurate far
//! from zero; arg-reductions carry indices and break ties toward the first occurrence.

use crate::array::ChunkedArray;
use crate::chunks::{normalize_axes, ChunkGrid};
use crate::element::{DType, Element, Float, Num};
use crate::error::{Error, Result};
use crate::plan::{by_blocks, for_each_index, Block, Node, PlanNode};
use ndarray::{ArrayD, ArrayView1, ArrayViewD, Axis, IxDyn, Zip};
use rayon::prelude::*;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

/// Default fan-in of the combine tree, as in Dask.
pub const DEFAULT_SPLIT_EVERY: usize = 4;

/// How a reduction accumulates, merges and finishes. One implementation per reduction; the
/// engine does the rest.
pub trait Reducer<T: Element>: Send + Sync + 'static {
    /// The partial result for one output element.
    type Acc: Clone + Send + Sync;
    /// The element type of the result.
    type Out: Element;
    /// Whether the reducer needs each value's index along the reduced axes.
    const NEEDS_INDEX: bool = false;
    /// The name shown in plans and errors.
    fn name(&self) -> String;
    /// The empty partial.
    fn init(&self) -> Self::Acc;
    /// Adds value `v` found at flat index `idx` (C order over the reduced axes).
    fn push(&self, acc: &mut Self::Acc, v: T, idx: u64);
    /// Adds a run of values at consecutive indices starting at `first`.
    fn push_slice(&self, acc: &mut Self::Acc, vs: &[T], first: u64) {
        for (k, &v) in vs.iter().enumerate() {
            self.push(acc, v, first + k as u64);
        }
    }
    /// Merges `other` into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// The result of a partial.
    ///
    /// # Errors
    /// A result that does not exist (the arg-reduction of an all-NaN slice).
    fn finish(&self, acc: &Self::Acc) -> Result<Self::Out>;
    /// Reduces a whole block over `axes` into `acc` (the block's shape without the reduced
    /// axes) in a faster way than value by value, returning `false` to let the engine push
    /// the values one by one.
    fn push_slabs(
        &self,
        acc: &mut ndarray::ArrayViewMutD<'_, Self::Acc>,
        data: &ArrayViewD<'_, T>,
        axes: &[usize],
    ) -> bool {
        let _ = (acc, data, axes);
        false
    }
    /// Whether an empty reduction is an error (no identity: min, max, argmin, argmax).
    fn needs_values(&self) -> bool {
        false
    }
}

/// Which axes a reduction runs over, whether they are kept, and the tree's fan-in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReduceOpts {
    /// The axes (negative counts from the end); `None` reduces over all.
    pub axis: Option<Vec<isize>>,
    /// Keep the reduced axes with length 1.
    pub keepdims: bool,
    /// Fan-in of the combine tree (default 4).
    pub split_every: Option<usize>,
}

impl ReduceOpts {
    /// Over all axes.
    pub fn all() -> Self {
        Self::default()
    }
    /// Over one axis.
    pub fn axis(axis: isize) -> Self {
        ReduceOpts {
            axis: Some(vec![axis]),
            ..Self::default()
        }
    }
    /// Over several axes.
    pub fn axes(axes: &[isize]) -> Self {
        ReduceOpts {
            axis: Some(axes.to_vec()),
            ..Self::default()
        }
    }
    /// Sets `keepdims`.
    pub fn keepdims(mut self, keep: bool) -> Self {
        self.keepdims = keep;
        self
    }
    /// Sets the fan-in of the combine tree.
    pub fn split_every(mut self, n: usize) -> Self {
        self.split_every = Some(n);
        self
    }
}

impl From<isize> for ReduceOpts {
    fn from(axis: isize) -> Self {
        ReduceOpts::axis(axis)
    }
}

/// The reduction node.
struct Reduce<T: Element, R: Reducer<T>> {
    input: Arc<dyn Node<T>>,
    r: R,
    /// Reduced axes, sorted.
    axes: Vec<usize>,
    /// Kept axes, sorted.
    kept: Vec<usize>,
    keepdims: bool,
    split_every: usize,
    grid: ChunkGrid,
    /// C-order strides of the reduced axes within the input shape (for flat indices).
    red_strides: Vec<u64>,
    desc: String,
}

impl<T: Element, R: Reducer<T>> PlanNode for Reduce<T, R> {
    fn op(&self) -> String {
        self.desc.clone()
    }
    fn dtype(&self) -> DType {
        R::Out::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn describe(&self) -> Option<String> {
        let (nred, depth) = self.tree_shape();
        Some(format!(
            "tree reduction: {nred} input block{} per output block, fan-in {}, {depth} level{}",
            if nred == 1 { "" } else { "s" },
            self.split_every,
            if depth == 1 { "" } else { "s" }
        ))
    }
    fn own_task_bytes(&self) -> usize {
        // Partials in flight: up to `split_every` per level of the tree, plus the result.
        // At most every input block's partial is held at once, however large split_every is.
        let (nred, depth) = self.tree_shape();
        let part = self
            .grid
            .max_block_len()
            .max(1)
            .saturating_mul(std::mem::size_of::<R::Acc>());
        let held = self
            .split_every
            .min(nred.max(1))
            .saturating_mul(depth)
            .saturating_add(1);
        part.saturating_mul(held).saturating_add(
            self.grid
                .max_block_len()
                .saturating_mul(R::Out::DTYPE.size()),
        )
    }
    fn expensive(&self) -> bool {
        true
    }
}

impl<T: Element, R: Reducer<T>> Node<R::Out> for Reduce<T, R> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, R::Out>> {
        by_blocks(&self.grid, region, |r| self.one_block(r).map(Block::from))
    }
}

impl<T: Element, R: Reducer<T>> Reduce<T, R> {
    /// Input blocks read by one output block, and the levels of the tree that combines them.
    fn tree_shape(&self) -> (usize, usize) {
        let g = self.input.grid();
        let nred: usize = self.axes.iter().map(|&a| g.chunks()[a].len()).product();
        let mut depth = 1;
        let mut n = nred.max(1);
        while n > self.split_every {
            n = n.div_ceil(self.split_every);
            depth += 1;
        }
        (nred, depth)
    }

    /// The input region feeding an output region: kept axes as asked, reduced axes whole.
    fn input_region(&self, out: &[Range<usize>]) -> Vec<Range<usize>> {
        let shape = self.input.grid().shape();
        let mut reg: Vec<Range<usize>> = shape.iter().map(|&n| 0..n).collect();
        for (k, &ax) in self.kept.iter().enumerate() {
            reg[ax] = if self.keepdims {
                out[ax].clone()
            } else {
                out[k].clone()
            };
        }
        reg
    }

    fn one_block(&self, out: &[Range<usize>]) -> Result<ArrayD<R::Out>> {
        let in_region = self.input_region(out);
        let ranges = self.input.grid().blocks_in(&in_region);
        let mut blocks: Vec<Vec<usize>> = Vec::new();
        for_each_index(&ranges, |idx| {
            blocks.push(idx.to_vec());
            Ok(())
        })?;
        let part_shape: Vec<usize> = in_region
            .iter()
            .enumerate()
            .map(|(ax, r)| if self.axes.contains(&ax) { 1 } else { r.len() })
            .collect();
        let acc = if blocks.is_empty() {
            ArrayD::from_elem(IxDyn(&part_shape), self.r.init())
        } else {
            self.tree(&blocks, &in_region, &part_shape)?
        };
        let values = acc
            .iter()
            .map(|a| self.r.finish(a))
            .collect::<Result<Vec<_>>>()?;
        let out_shape: Vec<usize> = if self.keepdims {
            part_shape
        } else {
            self.kept.iter().map(|&ax| part_shape[ax]).collect()
        };
        ArrayD::from_shape_vec(IxDyn(&out_shape), values)
            .map_err(|e| Error::Shape(format!("internal: reduction result: {e}")))
    }

    /// Reduces `blocks` (contiguous in C order) to one partial: up to `split_every` at a time,
    /// groups in parallel, merged left to right.
    fn tree(
        &self,
        blocks: &[Vec<usize>],
        in_region: &[Range<usize>],
        part_shape: &[usize],
    ) -> Result<ArrayD<R::Acc>> {
        let parts: Vec<ArrayD<R::Acc>> = if blocks.len() <= self.split_every {
            blocks
                .par_iter()
                .map(|b| self.partial(b, in_region, part_shape))
                .collect::<Result<_>>()?
        } else {
            let group = blocks.len().div_ceil(self.split_every);
            blocks
                .par_chunks(group)
                .map(|g| self.tree(g, in_region, part_shape))
                .collect::<Result<_>>()?
        };
        let mut it = parts.into_iter();
        let mut acc = it
            .next()
            .ok_or_else(|| Error::Invalid("internal: empty reduction tree".into()))?;
        for p in it {
            Zip::from(&mut acc)
                .and(&p)
                .for_each(|a, b| self.r.merge(a, b));
        }
        Ok(acc)
    }

    /// The partial of one input block, restricted to `in_region`.
    fn partial(
        &self,
        block: &[usize],
        in_region: &[Range<usize>],
        part_shape: &[usize],
    ) -> Result<ArrayD<R::Acc>> {
        let breg = self.input.grid().block_region(block);
        let sub: Vec<Range<usize>> = breg
            .iter()
            .zip(in_region)
            .map(|(b, r)| b.start.max(r.start)..b.end.min(r.end))
            .collect();
        let data = self.input.region(&sub)?;
        let mut acc = ArrayD::from_elem(IxDyn(part_shape), self.r.init());
        self.accumulate(&mut acc, data.view(), &sub);
        crate::exec::recycle(data);
        Ok(acc)
    }

    /// Flat index (over the reduced axes of the whole input) of the first element of `sub`,
    /// offset by the local position `local` (one entry per reduced axis).
    fn flat_index(&self, sub: &[Range<usize>], local: &[usize]) -> u64 {
        self.axes
            .iter()
            .zip(local)
            .zip(&self.red_strides)
            .map(|((&ax, &l), &s)| (sub[ax].start + l) as u64 * s)
            .sum()
    }

    /// Pushes a run of consecutive values (flat indices `first`, `first + 1`, ...) into `a`:
    /// as one slice when it is contiguous.
    fn push_run(&self, a: &mut R::Acc, run: ArrayView1<'_, T>, first: u64) {
        match run.as_slice() {
            Some(s) => self.r.push_slice(a, s, first),
            None => self.push_gathered(a, run.iter().copied(), first),
        }
    }

    /// Pushes values (flat indices `first`, `first + 1`, ...) that are not contiguous in
    /// memory: as slices of up to [`GATHER`] copied values, each into a partial of its own,
    /// the partials merged pairwise in order (as a binary counter), then into `a`. A sum then
    /// rounds as a pairwise sum of the whole run (not NumPy's split of it into halves).
    fn push_gathered(&self, a: &mut R::Acc, values: impl Iterator<Item = T>, first: u64) {
        let mut buf = [T::default(); GATHER];
        let mut partials: Vec<(u32, R::Acc)> = Vec::new();
        let flush = |vs: &[T], at: u64, partials: &mut Vec<(u32, R::Acc)>| {
            let mut part = self.r.init();
            self.r.push_slice(&mut part, vs, at);
            let mut level = 0;
            while partials.last().is_some_and(|(l, _)| *l == level) {
                if let Some((_, mut earlier)) = partials.pop() {
                    self.r.merge(&mut earlier, &part);
                    part = earlier;
                }
                level += 1;
            }
            partials.push((level, part));
        };
        let (mut n, mut at) = (0, first);
        for v in values {
            buf[n] = v;
            n += 1;
            if n == GATHER {
                flush(&buf, at, &mut partials);
                at += GATHER as u64;
                n = 0;
            }
        }
        if n > 0 {
            flush(&buf[..n], at, &mut partials);
        }
        for (_, p) in &partials {
            self.r.merge(a, p);
        }
    }

    fn accumulate(&self, acc: &mut ArrayD<R::Acc>, data: ArrayViewD<'_, T>, sub: &[Range<usize>]) {
        if data.is_empty() {
            return;
        }
        let shape = self.input.grid().shape();
        // A whole-array reduction of a contiguous block: one run of values. Its indices are
        // consecutive when the block spans every reduced axis but the first.
        if self.kept.is_empty() {
            let consecutive = sub.iter().zip(shape).skip(1).all(|(r, &n)| r.len() == n);
            if let Some(s) = data.as_slice() {
                if !R::NEEDS_INDEX || consecutive {
                    let first = self.flat_index(sub, &vec![0; self.axes.len()]);
                    if let Some(a) = acc.iter_mut().next() {
                        self.r.push_slice(a, s, first);
                    }
                    return;
                }
            }
            // A window of a larger array (a block of a memory map, say), contiguous along its
            // last axis: one run per row, its indices consecutive.
            let last = data.ndim().saturating_sub(1);
            if data.ndim() > 0 && (data.strides()[last] == 1 || data.shape()[last] == 1) {
                let outer = data.shape()[..last].to_vec();
                let mut local = vec![0usize; data.ndim()];
                if let Some(a) = acc.iter_mut().next() {
                    for row in data.rows() {
                        let first = if R::NEEDS_INDEX {
                            self.flat_index(sub, &local)
                        } else {
                            0
                        };
                        self.push_run(a, row, first);
                        advance(&mut local[..last], &outer);
                    }
                }
                return;
            }
            // Any other layout (a transposed or strided view, a broadcast constant), when the
            // reducer needs no indices: the values in logical order, gathered into slices.
            if !R::NEEDS_INDEX {
                if let Some(a) = acc.iter_mut().next() {
                    self.push_gathered(a, data.iter().copied(), 0);
                }
                return;
            }
        }
        // One reduced axis that is contiguous in memory: a run per output element.
        if self.axes.len() == 1 {
            let ax = self.axes[0];
            if data.strides()[ax] == 1 || data.shape()[ax] == 1 {
                let base = sub[ax].start as u64;
                Zip::from(acc.lanes_mut(Axis(ax)))
                    .and(data.lanes(Axis(ax)))
                    .for_each(|mut a, lane| {
                        let a = &mut a[0];
                        self.push_run(a, lane, base);
                    });
                return;
            }
        }
        // General case: walk the positions along the reduced axes; at each, update every
        // output element from the slab of kept axes (rows of a C-order block for axis 0).
        let mut acc_view = acc.view_mut();
        // Remove the length-1 reduced axes of the partial so it matches each slab.
        for &ax in self.axes.iter().rev() {
            acc_view = acc_view.index_axis_move(Axis(ax), 0);
        }
        if !R::NEEDS_INDEX && self.r.push_slabs(&mut acc_view, &data, &self.axes) {
            return;
        }
        if let (Some((values, row)), Some(accs)) =
            (leading_rows(&data, &self.axes), acc_view.as_slice_mut())
        {
            // Reduced axes lead a C-order block: plain loops over whole rows.
            let red_shape: Vec<usize> = self.axes.iter().map(|&a| data.shape()[a]).collect();
            let mut local = vec![0usize; red_shape.len()];
            for vs in values.chunks_exact(row.max(1)) {
                let idx = if R::NEEDS_INDEX {
                    self.flat_index(sub, &local)
                } else {
                    0
                };
                for (a, &v) in accs.iter_mut().zip(vs) {
                    self.r.push(a, v, idx);
                }
                advance(&mut local, &red_shape);
            }
            return;
        }
        for_each_slab(&data, &self.axes, |local, slab| {
            let idx = self.flat_index(sub, local);
            Zip::from(&mut acc_view)
                .and(&slab)
                .for_each(|a, &v| self.r.push(a, v, idx));
        });
    }
}

/// When `axes` are the leading axes of a C-contiguous block: its values and the length of one
/// row (the product of the other axes).
fn leading_rows<'a, T>(data: &ArrayViewD<'a, T>, axes: &[usize]) -> Option<(&'a [T], usize)> {
    if !axes.iter().enumerate().all(|(k, &a)| k == a) {
        return None;
    }
    let row: usize = data.shape()[axes.len()..].iter().product();
    data.to_slice().map(|s| (s, row))
}

/// Steps a C-order multi-index within `shape`.
fn advance(local: &mut [usize], shape: &[usize]) {
    for k in (0..local.len()).rev() {
        local[k] += 1;
        if local[k] < shape[k] {
            return;
        }
        local[k] = 0;
    }
}

/// Calls `f` with every position along `axes` (C order) and the slab of `data` there: the
/// view over the other axes.
pub fn for_each_slab<'a, T>(
    data: &ArrayViewD<'a, T>,
    axes: &[usize],
    mut f: impl FnMut(&[usize], ArrayViewD<'_, T>),
) {
    let red_shape: Vec<usize> = axes.iter().map(|&a| data.shape()[a]).collect();
    let total: usize = red_shape.iter().product();
    let mut local = vec![0usize; red_shape.len()];
    for _ in 0..total {
        let mut slab = data.view();
        for (k, &ax) in axes.iter().enumerate().rev() {
            slab = slab.index_axis_move(Axis(ax), local[k]);
        }
        f(&local, slab);
        advance(&mut local, &red_shape);
    }
}

impl<T: Element> ChunkedArray<T> {
    /// Reduces with any [`Reducer`] (the reduction primitive).
    ///
    /// # Errors
    /// An axis out of range or repeated, `split_every` below 2, or an empty reduction of a
    /// reducer without identity.
    pub fn reduce<R: Reducer<T>>(
        &self,
        r: R,
        opts: impl Into<ReduceOpts>,
    ) -> Result<ChunkedArray<R::Out>> {
        let opts = opts.into();
        let g = self.grid();
        let nd = g.ndim();
        let axes = match &opts.axis {
            None => (0..nd).collect(),
            Some(a) => normalize_axes(a, nd)?,
        };
        let split_every = opts.split_every.unwrap_or(DEFAULT_SPLIT_EVERY);
        if split_every < 2 {
            return Err(Error::Invalid(format!(
                "split_every must be at least 2, got {split_every}"
            )));
        }
        let extent: usize = axes.iter().map(|&a| g.shape()[a]).product();
        if extent == 0 && r.needs_values() {
            return Err(Error::Invalid(format!(
                "zero-size array to reduction operation {} which has no identity (shape {:?}, axis {})",
                r.name(),
                g.shape(),
                opts.axis
                    .as_ref()
                    .map_or_else(|| "None".to_string(), |a| format!("{a:?}"))
            )));
        }
        let kept: Vec<usize> = (0..nd).filter(|a| !axes.contains(a)).collect();
        let (shape, chunks): (Vec<usize>, Vec<Vec<usize>>) = if opts.keepdims {
            (0..nd)
                .map(|a| {
                    if axes.contains(&a) {
                        (1, vec![1])
                    } else {
                        (g.shape()[a], g.chunks()[a].clone())
                    }
                })
                .unzip()
        } else {
            kept.iter()
                .map(|&a| (g.shape()[a], g.chunks()[a].clone()))
                .unzip()
        };
        let mut red_strides = vec![1u64; axes.len()];
        for k in (0..axes.len().saturating_sub(1)).rev() {
            red_strides[k] = red_strides[k + 1] * g.shape()[axes[k + 1]] as u64;
        }
        let desc = match &opts.axis {
            None => format!("{}()", r.name()),
            Some(_) => format!("{}(axis={:?})", r.name(), axes),
        };
        Ok(ChunkedArray::from_node(Arc::new(Reduce {
            input: Arc::clone(self.node()),
            r,
            axes,
            kept,
            keepdims: opts.keepdims,
            split_every,
            grid: ChunkGrid::from_chunks(&shape, chunks)?,
            red_strides,
            desc,
        })))
    }

    /// Minimum; NaN propagates.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn min(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Extreme::<T>::new(false, false), opts)
    }
    /// Maximum; NaN propagates.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn max(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Extreme::<T>::new(true, false), opts)
    }
    /// Minimum ignoring NaN (NaN where a slice is all NaN).
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn nanmin(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Extreme::<T>::new(false, true), opts)
    }
    /// Maximum ignoring NaN (NaN where a slice is all NaN).
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn nanmax(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Extreme::<T>::new(true, true), opts)
    }
    /// Index of the first minimum (flat over all axes, or along one axis); the first NaN wins.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`], and more than one axis.
    pub fn argmin(&self, axis: Option<isize>) -> Result<ChunkedArray<i64>> {
        self.reduce(ArgExtreme::<T>::new(false, false), arg_opts(axis))
    }
    /// Index of the first maximum; the first NaN wins.
    ///
    /// # Errors
    /// As [`ChunkedArray::argmin`].
    pub fn argmax(&self, axis: Option<isize>) -> Result<ChunkedArray<i64>> {
        self.reduce(ArgExtreme::<T>::new(true, false), arg_opts(axis))
    }
    /// Index of the first minimum ignoring NaN; an all-NaN slice is an error when computed.
    ///
    /// # Errors
    /// As [`ChunkedArray::argmin`].
    pub fn nanargmin(&self, axis: Option<isize>) -> Result<ChunkedArray<i64>> {
        self.reduce(ArgExtreme::<T>::new(false, true), arg_opts(axis))
    }
    /// Index of the first maximum ignoring NaN; an all-NaN slice is an error when computed.
    ///
    /// # Errors
    /// As [`ChunkedArray::argmin`].
    pub fn nanargmax(&self, axis: Option<isize>) -> Result<ChunkedArray<i64>> {
        self.reduce(ArgExtreme::<T>::new(true, true), arg_opts(axis))
    }
    /// Whether any element is true (non-zero).
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn any(&self, opts: impl Into<ReduceOpts>) -> Result<ChunkedArray<bool>> {
        self.reduce(Logical(true), opts)
    }
    /// Whether every element is true (non-zero).
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn all(&self, opts: impl Into<ReduceOpts>) -> Result<ChunkedArray<bool>> {
        self.reduce(Logical(false), opts)
    }
    /// Mean as `O` (`f64`, or `f32` for `f32` data) as NumPy's `mean` computes it: the sum of
    /// the values in `O` (added as [`ChunkedArray::sum`] adds, so with NumPy's bits over one
    /// axis or all of them, in one block) divided
    /// by their count in `f64`. Blocks merge their sums and counts (as Dask's `mean` does), not
    /// their means, so integer means do not depend on the chunking. With `skip_nan`, NumPy's
    /// `nanmean`: the sum and count of the values that are not NaN.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn mean_as<O: Float>(
        &self,
        opts: impl Into<ReduceOpts>,
        skip_nan: bool,
    ) -> Result<ChunkedArray<O>> {
        self.reduce(Mean::<O>::new(skip_nan), opts)
    }
    /// Variance with `ddof` as `O`, from counts, means and M2 combined as Chan et al.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn var_as<O: Float>(
        &self,
        opts: impl Into<ReduceOpts>,
        ddof: f64,
        skip_nan: bool,
    ) -> Result<ChunkedArray<O>> {
        self.reduce(Moments::<O>::var(ddof, skip_nan, false), opts)
    }
    /// Standard deviation with `ddof` as `O`.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn std_as<O: Float>(
        &self,
        opts: impl Into<ReduceOpts>,
        ddof: f64,
        skip_nan: bool,
    ) -> Result<ChunkedArray<O>> {
        self.reduce(Moments::<O>::var(ddof, skip_nan, true), opts)
    }
}

impl<T: Num> ChunkedArray<T> {
    /// Sum (in the element type; integers wrap).
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn sum(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Sum::<T>::new(false), opts)
    }
    /// Sum over every axis.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn sum_all(&self) -> Result<Self> {
        self.sum(ReduceOpts::all())
    }
    /// Sum treating NaN as zero.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn nansum(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Sum::<T>::new(true), opts)
    }
    /// Product.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn prod(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Prod::<T>::new(false), opts)
    }
    /// Product treating NaN as one.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn nanprod(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.reduce(Prod::<T>::new(true), opts)
    }
}

impl<T: Float> ChunkedArray<T> {
    /// Mean (in `T`).
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn mean(&self, opts: impl Into<ReduceOpts>) -> Result<Self> {
        self.mean_as::<T>(opts, false)
    }
    /// Variance with `ddof`.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn var(&self, opts: impl Into<ReduceOpts>, ddof: f64) -> Result<Self> {
        self.var_as::<T>(opts, ddof, false)
    }
    /// Standard deviation with `ddof`.
    ///
    /// # Errors
    /// As [`ChunkedArray::reduce`].
    pub fn std(&self, opts: impl Into<ReduceOpts>, ddof: f64) -> Result<Self> {
        self.std_as::<T>(opts, ddof, false)
    }
}

fn arg_opts(axis: Option<isize>) -> ReduceOpts {
    match axis {
        None => ReduceOpts::all(),
        Some(a) => ReduceOpts::axis(a),
    }
}

/// Sum, optionally skipping NaN.
pub struct Sum<T>(bool, PhantomData<fn() -> T>);

impl<T> Sum<T> {
    /// A sum; `skip_nan` makes it `nansum`.
    pub fn new(skip_nan: bool) -> Self {
        Sum(skip_nan, PhantomData)
    }
}

impl<T: Num> Reducer<T> for Sum<T> {
    type Acc = T;
    type Out = T;
    fn name(&self) -> String {
        if self.0 { "nansum" } else { "sum" }.into()
    }
    fn init(&self) -> T {
        T::zero()
    }
    fn push(&self, acc: &mut T, v: T, _: u64) {
        if !(self.0 && v.is_nan()) {
            *acc = acc.add(v);
        }
    }
    fn push_slice(&self, acc: &mut T, vs: &[T], _: u64) {
        let skip = self.0;
        *acc = acc.add(pairwise_sum(vs, &|v: T| {
            if skip && v.is_nan() {
                T::zero()
            } else {
                v
            }
        }));
    }
    fn merge(&self, acc: &mut T, other: &T) {
        *acc = acc.add(*other);
    }
    fn finish(&self, acc: &T) -> Result<T> {
        Ok(*acc)
    }
}

/// The sum of `f(v)` over `vs` by NumPy's pairwise summation (`pairwise_sum` of its loops):
/// fewer than 8 values in order; up to 128 in eight lanes (vectorised), added pairwise, then
/// the rest in order; more, the two halves (the first a multiple of 8) each so, then added.
/// Rounding error grows like the logarithm of the length, not the length.
pub(crate) fn pairwise_sum<T: Copy, A: Num>(vs: &[T], f: &impl Fn(T) -> A) -> A {
    let n = vs.len();
    if n < 8 {
        vs.iter().fold(A::zero(), |s, &v| s.add(f(v)))
    } else if n <= PAIRWISE_BLOCK {
        let mut r = [A::zero(); 8];
        for (lane, &v) in r.iter_mut().zip(vs) {
            *lane = f(v);
        }
        let whole = n - n % 8;
        for c in vs[8..whole].chunks_exact(8) {
            for k in 0..8 {
                r[k] = r[k].add(f(c[k]));
            }
        }
        let s = ((r[0].add(r[1])).add(r[2].add(r[3]))).add((r[4].add(r[5])).add(r[6].add(r[7])));
        vs[whole..].iter().fold(s, |s, &v| s.add(f(v)))
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise_sum(&vs[..half], f).add(pairwise_sum(&vs[half..], f))
    }
}

/// The leaf of [`pairwise_sum`], as NumPy's `PW_BLOCKSIZE`.
const PAIRWISE_BLOCK: usize = 128;

/// Values not contiguous in memory are gathered this many at a time, so that the slice path of
/// a reducer (the pairwise sum) takes them too.
const GATHER: usize = 512;

/// Product, optionally skipping NaN.
pub struct Prod<T>(bool, PhantomData<fn() -> T>);

impl<T> Prod<T> {
    /// A product; `skip_nan` makes it `nanprod`.
    pub fn new(skip_nan: bool) -> Self {
        Prod(skip_nan, PhantomData)
    }
}

impl<T: Num> Reducer<T> for Prod<T> {
    type Acc = T;
    type Out = T;
    fn name(&self) -> String {
        if self.0 { "nanprod" } else { "prod" }.into()
    }
    fn init(&self) -> T {
        T::one()
    }
    fn push(&self, acc: &mut T, v: T, _: u64) {
        if !(self.0 && v.is_nan()) {
            *acc = acc.mul(v);
        }
    }
    fn merge(&self, acc: &mut T, other: &T) {
        *acc = acc.mul(*other);
    }
    fn finish(&self, acc: &T) -> Result<T> {
        Ok(*acc)
    }
}

/// Minimum or maximum, NaN-propagating or NaN-skipping.
pub struct Extreme<T> {
    max: bool,
    skip_nan: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Extreme<T> {
    /// `max` picks the maximum; `skip_nan` ignores NaN.
    pub fn new(max: bool, skip_nan: bool) -> Self {
        Extreme {
            max,
            skip_nan,
            _t: PhantomData,
        }
    }
}

impl<T: Element> Extreme<T> {
    fn better(&self, v: T, than: T) -> bool {
        if self.max {
            v > than
        } else {
            v < than
        }
    }
}

impl<T: Element> Reducer<T> for Extreme<T> {
    /// The extreme so far, if any value was seen.
    type Acc = Option<T>;
    type Out = T;
    fn name(&self) -> String {
        format!(
            "{}{}",
            if self.skip_nan { "nan" } else { "" },
            if self.max { "max" } else { "min" }
        )
    }
    fn init(&self) -> Option<T> {
        None
    }
    fn push(&self, acc: &mut Option<T>, v: T, _: u64) {
        if v.is_nan() {
            if !self.skip_nan && !acc.is_some_and(|a| a.is_nan()) {
                *acc = Some(v);
            }
            return;
        }
        match acc {
            None => *acc = Some(v),
            Some(a) if !a.is_nan() && self.better(v, *a) => *a = v,
            _ => {}
        }
    }
    fn merge(&self, acc: &mut Option<T>, other: &Option<T>) {
        if let Some(v) = *other {
            if v.is_nan() && !self.skip_nan {
                *acc = Some(v);
            } else {
                self.push(acc, v, 0);
            }
        }
    }
    fn finish(&self, acc: &Option<T>) -> Result<T> {
        // An all-NaN slice skipped by nanmin has no value: NaN, as NumPy (for floats).
        Ok(acc.unwrap_or_else(|| T::from_f64(f64::NAN)))
    }
    fn needs_values(&self) -> bool {
        true
    }
}

/// Index of the minimum or maximum; ties go to the smallest index.
pub struct ArgExtreme<T> {
    max: bool,
    skip_nan: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> ArgExtreme<T> {
    /// `max` picks the maximum; `skip_nan` ignores NaN.
    pub fn new(max: bool, skip_nan: bool) -> Self {
        ArgExtreme {
            max,
            skip_nan,
            _t: PhantomData,
        }
    }
}

impl<T: Element> ArgExtreme<T> {
    /// Whether candidate `(v, i)` beats the current `(a, j)`.
    fn beats(&self, v: T, i: u64, a: T, j: u64) -> bool {
        match (v.is_nan(), a.is_nan()) {
            (true, true) => i < j,
            (true, false) => !self.skip_nan,
            (false, true) => self.skip_nan,
            (false, false) => {
                if self.max {
                    v > a || (v == a && i < j)
                } else {
                    v < a || (v == a && i < j)
                }
            }
        }
    }
}

impl<T: Element> Reducer<T> for ArgExtreme<T> {
    /// The best value and its index, if any value was seen.
    type Acc = Option<(T, u64)>;
    type Out = i64;
    const NEEDS_INDEX: bool = true;
    fn name(&self) -> String {
        format!(
            "{}arg{}",
            if self.skip_nan { "nan" } else { "" },
            if self.max { "max" } else { "min" }
        )
    }
    fn init(&self) -> Self::Acc {
        None
    }
    fn push(&self, acc: &mut Self::Acc, v: T, idx: u64) {
        match acc {
            None => *acc = Some((v, idx)),
            Some((a, j)) => {
                if self.beats(v, idx, *a, *j) {
                    *acc = Some((v, idx));
                }
            }
        }
    }
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        if let Some((v, i)) = *other {
            self.push(acc, v, i);
        }
    }
    fn finish(&self, acc: &Self::Acc) -> Result<i64> {
        match acc {
            Some((v, _)) if self.skip_nan && v.is_nan() => Err(Error::Invalid(format!(
                "{}: All-NaN slice encountered",
                self.name()
            ))),
            Some((_, i)) => Ok(*i as i64),
            None => Err(Error::Invalid(format!(
                "attempt to get {} of an empty sequence",
                self.name()
            ))),
        }
    }
    fn needs_values(&self) -> bool {
        true
    }
}

/// `any` (true) or `all` (false).
pub struct Logical(bool);

impl<T: Element> Reducer<T> for Logical {
    type Acc = bool;
    type Out = bool;
    fn name(&self) -> String {
        if self.0 { "any" } else { "all" }.into()
    }
    fn init(&self) -> bool {
        !self.0
    }
    fn push(&self, acc: &mut bool, v: T, _: u64) {
        if self.0 {
            *acc |= v.truthy();
        } else {
            *acc &= v.truthy();
        }
    }
    fn merge(&self, acc: &mut bool, other: &bool) {
        if self.0 {
            *acc |= *other;
        } else {
            *acc &= *other;
        }
    }
    fn finish(&self, acc: &bool) -> Result<bool> {
        Ok(*acc)
    }
}

/// Mean as NumPy's: the values summed in `O` as [`Sum`] sums them (pairwise within runs),
/// divided by their count; `skip_nan` leaves NaN out of both (`nanmean`).
pub struct Mean<O>(bool, PhantomData<fn() -> O>);

impl<O> Mean<O> {
    /// A mean; `skip_nan` makes it `nanmean`.
    pub fn new(skip_nan: bool) -> Self {
        Mean(skip_nan, PhantomData)
    }
}

impl<T: Element, O: Float> Reducer<T> for Mean<O> {
    /// The sum and the count.
    type Acc = (O, u64);
    type Out = O;
    fn name(&self) -> String {
        if self.0 { "nanmean" } else { "mean" }.into()
    }
    fn init(&self) -> (O, u64) {
        (O::zero(), 0)
    }
    fn push(&self, acc: &mut (O, u64), v: T, _: u64) {
        if !(self.0 && v.is_nan()) {
            acc.0 = acc.0.add(O::from_f64(v.to_f64()));
            acc.1 += 1;
        }
    }
    fn push_slice(&self, acc: &mut (O, u64), vs: &[T], _: u64) {
        let skip = self.0;
        acc.0 = acc.0.add(pairwise_sum(vs, &|v: T| {
            if skip && v.is_nan() {
                O::zero()
            } else {
                O::from_f64(v.to_f64())
            }
        }));
        acc.1 += if skip {
            vs.iter().filter(|v| !v.is_nan()).count()
        } else {
            vs.len()
        } as u64;
    }
    fn merge(&self, acc: &mut (O, u64), other: &(O, u64)) {
        acc.0 = acc.0.add(other.0);
        acc.1 += other.1;
    }
    fn finish(&self, acc: &(O, u64)) -> Result<O> {
        // NumPy divides by the count as an intp: in f64, rounded once to O.
        Ok(O::from_f64(acc.0.to_f64() / acc.1 as f64))
    }
}

/// Count, mean and M2 of the values seen (Welford, merged as Chan et al.).
#[derive(Clone, Copy, Debug, Default)]
pub struct MomentsAcc {
    n: f64,
    mean: f64,
    m2: f64,
}

impl MomentsAcc {
    fn merge(&mut self, o: &MomentsAcc) {
        if o.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        if !(self.mean.is_finite() && o.mean.is_finite()) {
            // An infinity or NaN among the values: the mean is that of their sum, as NumPy's
            // (inf stays inf, inf and -inf give NaN), and the variance is NaN. The update below
            // would give inf - inf = NaN for inf and any finite value.
            self.mean = self.mean * (self.n / n) + o.mean * (o.n / n);
            self.m2 = f64::NAN;
            self.n = n;
            return;
        }
        let delta = o.mean - self.mean;
        self.mean += delta * (o.n / n);
        self.m2 += o.m2 + delta * delta * (self.n * o.n / n);
        self.n = n;
    }
}

/// Variance or standard deviation, as output type `O` (the mean is [`Mean`]).
pub struct Moments<O> {
    kind: MomentKind,
    skip_nan: bool,
    _o: PhantomData<fn() -> O>,
}

#[derive(Clone, Copy, PartialEq)]
enum MomentKind {
    Var(f64),
    Std(f64),
}

impl<O> Moments<O> {
    /// The variance (or with `std`, the standard deviation) with `ddof`.
    pub fn var(ddof: f64, skip_nan: bool, std: bool) -> Self {
        Moments {
            kind: if std {
                MomentKind::Std(ddof)
            } else {
                MomentKind::Var(ddof)
            },
            skip_nan,
            _o: PhantomData,
        }
    }
}

impl<T: Element, O: Float> Reducer<T> for Moments<O> {
    type Acc = MomentsAcc;
    type Out = O;
    fn name(&self) -> String {
        let base = match self.kind {
            MomentKind::Var(_) => "var",
            MomentKind::Std(_) => "std",
        };
        format!("{}{base}", if self.skip_nan { "nan" } else { "" })
    }
    fn init(&self) -> MomentsAcc {
        MomentsAcc::default()
    }
    fn push(&self, acc: &mut MomentsAcc, v: T, _: u64) {
        if self.skip_nan && v.is_nan() {
            return;
        }
        let x = v.to_f64();
        if !(x.is_finite() && acc.mean.is_finite()) {
            let m2 = if x.is_finite() { 0.0 } else { f64::NAN };
            acc.merge(&MomentsAcc {
                n: 1.0,
                mean: x,
                m2,
            });
            return;
        }
        acc.n += 1.0;
        let d = x - acc.mean;
        acc.mean += d / acc.n;
        acc.m2 += d * (x - acc.mean);
    }
    fn push_slice(&self, acc: &mut MomentsAcc, vs: &[T], _: u64) {
        // Two passes over the run (exact mean first, then squared deviations), each a pairwise
        // sum (vectorised in eight lanes); then one Chan merge.
        let skip = self.skip_nan;
        let keep = |v: T| !(skip && v.is_nan());
        let n = if skip {
            vs.iter().filter(|v| keep(**v)).count() as f64
        } else {
            vs.len() as f64
        };
        if n == 0.0 {
            return;
        }
        let s = pairwise_sum(vs, &|v| if keep(v) { v.to_f64() } else { 0.0 });
        let mean = s / n;
        let m2 = pairwise_sum(vs, &|v| {
            if keep(v) {
                let d = v.to_f64() - mean;
                d * d
            } else {
                0.0
            }
        });
        acc.merge(&MomentsAcc { n, mean, m2 });
    }
    fn push_slabs(
        &self,
        acc: &mut ndarray::ArrayViewMutD<'_, MomentsAcc>,
        data: &ArrayViewD<'_, T>,
        axes: &[usize],
    ) -> bool {
        if self.skip_nan {
            return false;
        }
        // Two passes over the block, each a vectorisable sweep of whole slabs: the sums (so
        // the means), then the squared deviations from those means.
        let n: usize = axes.iter().map(|&a| data.shape()[a]).product();
        if n == 0 {
            return true;
        }
        let mut mean = ArrayD::<f64>::zeros(acc.raw_dim());
        let rows = leading_rows(data, axes);
        let sweep = |out: &mut ArrayD<f64>, centre: Option<&ArrayD<f64>>| {
            let term = |v: T, m: f64| {
                let d = v.to_f64() - m;
                if centre.is_some() {
                    d * d
                } else {
                    d
                }
            };
            match (rows, out.as_slice_mut()) {
                (Some((values, row)), Some(o)) => {
                    let c = centre.and_then(|c| c.as_slice());
                    for vs in values.chunks_exact(row.max(1)) {
                        match c {
                            Some(c) => {
                                for ((q, &v), &m) in o.iter_mut().zip(vs).zip(c) {
                                    *q += term(v, m);
                                }
                            }
                            None => {
                                for (q, &v) in o.iter_mut().zip(vs) {
                                    *q += term(v, 0.0);
                                }
                            }
                        }
                    }
                }
                _ => for_each_slab(data, axes, |_, slab| match centre {
                    Some(c) => Zip::from(&mut *out)
                        .and(c)
                        .and(&slab)
                        .for_each(|q, &m, &v| *q += term(v, m)),
                    None => Zip::from(&mut *out)
                        .and(&slab)
                        .for_each(|q, &v| *q += term(v, 0.0)),
                }),
            }
        };
        sweep(&mut mean, None);
        mean.mapv_inplace(|s| s / n as f64);
        let mut m2 = ArrayD::<f64>::zeros(acc.raw_dim());
        sweep(&mut m2, Some(&mean));
        Zip::from(acc)
            .and(&mean)
            .and(&m2)
            .for_each(|a, &mean, &m2| {
                a.merge(&MomentsAcc {
                    n: n as f64,
                    mean,
                    m2,
                })
            });
        true
    }
    fn merge(&self, acc: &mut MomentsAcc, other: &MomentsAcc) {
        acc.merge(other);
    }
    fn finish(&self, acc: &MomentsAcc) -> Result<O> {
        let (MomentKind::Var(ddof) | MomentKind::Std(ddof)) = self.kind;
        // NumPy's var divides by max(n - ddof, 0): inf (or NaN for 0/0) past the count;
        // nanvar gives NaN there.
        let var = if self.skip_nan && acc.n - ddof <= 0.0 {
            f64::NAN
        } else {
            acc.m2 / (acc.n - ddof).max(0.0)
        };
        let v = if matches!(self.kind, MomentKind::Std(_)) {
            var.sqrt()
        } else {
            var
        };
        Ok(O::from_f64(v))
    }
}
