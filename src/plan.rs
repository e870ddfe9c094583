//! Plan nodes: the lazy graph behind every [`ChunkedArray`](crate::ChunkedArray).
//!
//! A node can produce any region of its array on request ([`Node::region`]); a consumer asks
//! its inputs for exactly the region it needs, so an elementwise chain runs block by block
//! with no intermediate array (fusion by construction). Each node also projects the memory of
//! one of its tasks, which the executor checks against `allowed_mem` before running anything.

use crate::chunks::ChunkGrid;
use crate::element::{DType, Element};
use crate::error::Result;
use crate::exec::ExecContext;
use ndarray::{ArrayD, ArrayViewMutD, CowArray, IxDyn, SliceInfoElem};
use std::ops::Range;

pub mod explain;

/// A block (or any region) produced by a node: borrowed from a source or cache when possible,
/// owned when computed.
pub type Block<'a, T> = CowArray<'a, T, IxDyn>;

/// What every plan node tells about itself, whatever its element type.
pub trait PlanNode: Send + Sync {
    /// A short description of the operation (`sqrt`, `sum(axis=(0,))`, `from_npy(x.npy)`).
    fn op(&self) -> String;
    /// How the node makes its blocks, in a few words for plans shown to users
    /// ([`explain::Explain`]), when there is more to say than [`PlanNode::op`]: the tree of a
    /// reduction, the source regions of a rechunk. `None` (the default) for elementwise steps.
    fn describe(&self) -> Option<String> {
        None
    }
    /// Element type of the node's output.
    fn dtype(&self) -> DType;
    /// The grid of the node's output.
    fn grid(&self) -> &ChunkGrid;
    /// The nodes this one reads.
    fn inputs(&self) -> Vec<&dyn PlanNode>;
    /// Bytes this node itself holds while producing its largest block (its output buffer and
    /// working space), not counting its inputs.
    fn own_task_bytes(&self) -> usize;
    /// Whether this node runs inside its consumer's task (an elementwise step) rather than
    /// being a stage of its own whose result is held (a materialised reduction).
    fn is_stage(&self) -> bool {
        false
    }
    /// Whether producing a block is costly enough that a consumer reading it many times (a
    /// broadcast) should materialise it first: true for reductions and anything built on one.
    fn expensive(&self) -> bool {
        self.inputs().iter().any(|i| i.expensive())
    }
    /// Whether the node is a square 2-D array whose block `(i, j)` is the transpose of block
    /// `(j, i)` (a distance matrix of a set of points with itself): the executor then computes
    /// only the blocks on and above the diagonal and writes each of them twice.
    fn mirrored(&self) -> bool {
        false
    }
    /// Bytes this node holds while producing one block in parts ([`Node::region_parts`]), when
    /// it can: a sink that stores blocks piece by piece then never needs a whole block in
    /// memory. `None` (the default): the node makes whole blocks only.
    fn part_task_bytes(&self) -> Option<usize> {
        None
    }
    /// Whether a 2-D node computed into memory should be computed a row of blocks at a time
    /// ([`Node::region_into`] over the whole width) rather than block by block: a distance
    /// matrix of few coordinates, whose pace is that of writing it. The executor does so when
    /// there are at least two rows of blocks per thread. One such task must need no more
    /// memory than [`PlanNode::own_task_bytes`] says.
    fn row_bands(&self) -> bool {
        false
    }
    /// Runs whatever must be computed before blocks of this node can be requested (materialised
    /// inputs), inputs first.
    fn prepare(&self, ctx: &ExecContext) -> Result<()> {
        for i in self.inputs() {
            i.prepare(ctx)?;
        }
        Ok(())
    }
}

/// A node that produces elements of type `T`.
pub trait Node<T: Element>: PlanNode {
    /// Computes `region` of the node's output (any region inside the array).
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>>;
    /// Computes `region` straight into `dst` (of the region's shape) when the node can, and
    /// says whether it did; otherwise the executor asks [`Node::region`] and copies. Nodes
    /// whose blocks are large and cheap per element (a distance tile) implement it, so that
    /// an in-memory result is written once, not allocated twice and copied.
    ///
    /// # Errors
    /// As [`Node::region`].
    fn region_into(&self, region: &[Range<usize>], dst: &mut ArrayViewMutD<'_, T>) -> Result<bool> {
        let _ = (region, dst);
        Ok(false)
    }
    /// Computes the block covering `region` piece by piece, handing each piece to `emit` as
    /// its region (in output coordinates) and its values, when the node can do so at no more
    /// cost than computing the block whole ([`PlanNode::part_task_bytes`] is then `Some`), and
    /// says whether it did. The pieces are disjoint and together cover `region`; each is
    /// valid only during its call.
    ///
    /// # Errors
    /// As [`Node::region`], or the first error of `emit`.
    fn region_parts(&self, region: &[Range<usize>], emit: &mut PartFn<'_, T>) -> Result<bool> {
        let _ = (region, emit);
        Ok(false)
    }
}

/// Where [`Node::region_parts`] hands each piece: its region and its values.
pub type PartFn<'a, T> = dyn FnMut(&[Range<usize>], ndarray::ArrayViewD<'_, T>) -> Result<()> + 'a;

/// Projected bytes of one task of `node`: its own buffers plus those of the inputs fused into
/// it (inputs that are stages of their own count nothing here: they are checked on their own).
pub fn task_bytes(node: &dyn PlanNode) -> usize {
    node.own_task_bytes()
        + node
            .inputs()
            .iter()
            .filter(|i| !i.is_stage())
            .map(|i| task_bytes(*i))
            .sum::<usize>()
}

/// Element strides of a C-ordered array of `shape` (a zero-length axis counted as one, so that
/// the strides stay distinct).
pub fn c_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for ax in (0..shape.len().saturating_sub(1)).rev() {
        strides[ax] = strides[ax + 1] * shape[ax + 1].max(1);
    }
    strides
}

/// Bytes of the largest block of a grid for elements of `dtype`.
pub fn max_block_bytes(grid: &ChunkGrid, dtype: DType) -> usize {
    grid.max_block_len().saturating_mul(dtype.size())
}

/// The ndarray slice description of a region.
pub fn slice_info(region: &[Range<usize>]) -> Vec<SliceInfoElem> {
    region
        .iter()
        .map(|r| SliceInfoElem::Slice {
            start: r.start as isize,
            end: Some(r.end as isize),
            step: 1,
        })
        .collect()
}

/// Shape of a region.
pub fn region_shape(region: &[Range<usize>]) -> Vec<usize> {
    region.iter().map(|r| r.len()).collect()
}

/// Produces `region` of a node whose natural unit is one block: when the region lies in one
/// block of `grid`, `one` computes it directly; otherwise the pieces are computed block by
/// block and assembled into one owned array.
pub fn by_blocks<'a, T: Element>(
    grid: &ChunkGrid,
    region: &[Range<usize>],
    one: impl Fn(&[Range<usize>]) -> Result<Block<'a, T>>,
) -> Result<Block<'a, T>> {
    let ranges = grid.blocks_in(region);
    if ranges.iter().all(|r| r.len() == 1) || region.iter().any(|r| r.is_empty()) {
        return one(region);
    }
    let mut out = ArrayD::from_elem(IxDyn(&region_shape(region)), T::default());
    for_each_index(&ranges, |idx| {
        let breg = grid.block_region(idx);
        let piece: Vec<Range<usize>> = breg
            .iter()
            .zip(region)
            .map(|(b, r)| b.start.max(r.start)..b.end.min(r.end))
            .collect();
        let local: Vec<Range<usize>> = piece
            .iter()
            .zip(region)
            .map(|(p, r)| p.start - r.start..p.end - r.start)
            .collect();
        let values = one(&piece)?;
        out.slice_mut(slice_info(&local).as_slice()).assign(&values);
        Ok(())
    })?;
    Ok(out.into())
}

/// The offset (in elements) of region `sub` of a C-ordered array of `shape`, when the region
/// is one contiguous run of its memory: after the first axis the region spans more than one
/// index of, every axis is whole.
pub(crate) fn contiguous_offset(sub: &[Range<usize>], shape: &[usize]) -> Option<usize> {
    let first = sub.iter().position(|r| r.len() > 1).unwrap_or(sub.len());
    let whole_after = sub
        .iter()
        .zip(shape)
        .skip(first + 1)
        .all(|(r, &n)| r.start == 0 && r.end == n);
    if !whole_after {
        return None;
    }
    let mut offset = 0;
    let mut stride = 1;
    for (r, &n) in sub.iter().zip(shape).rev() {
        offset += r.start * stride;
        stride *= n;
    }
    Some(offset)
}

/// The indices, in C order, of the chunks of shape `chunk` (none zero) that `region` touches.
pub(crate) fn chunks_touched(region: &[Range<usize>], chunk: &[usize]) -> Vec<Vec<usize>> {
    let ranges: Vec<Range<usize>> = region
        .iter()
        .zip(chunk)
        .map(|(r, &c)| r.start / c..r.end.div_ceil(c))
        .collect();
    let mut coords = Vec::new();
    let _ = for_each_index(&ranges, |c| {
        coords.push(c.to_vec());
        Ok(())
    });
    coords
}

/// Calls `f` for every multi-index in the product of `ranges`, in C order.
pub fn for_each_index(
    ranges: &[Range<usize>],
    mut f: impl FnMut(&[usize]) -> Result<()>,
) -> Result<()> {
    if ranges.iter().any(|r| r.is_empty()) {
        return Ok(());
    }
    let mut idx: Vec<usize> = ranges.iter().map(|r| r.start).collect();
    loop {
        f(&idx)?;
        let mut ax = ranges.len();
        loop {
            if ax == 0 {
                return Ok(());
            }
            ax -= 1;
            idx[ax] += 1;
            if idx[ax] < ranges[ax].end {
                break;
            }
            idx[ax] = ranges[ax].start;
        }
    }
}

/// A node whose whole output is computed once, before the tasks that read it, and held in
/// memory: used where many tasks read the same blocks of an expensive node (a reduction
/// broadcast against a larger array).
pub struct Materialize<T: Element> {
    input: std::sync::Arc<dyn Node<T>>,
    cache: std::sync::OnceLock<ArrayD<T>>,
}

impl<T: Element> Materialize<T> {
    /// Wraps `input` so that it is computed once per plan.
    pub fn new(input: std::sync::Arc<dyn Node<T>>) -> Self {
        Materialize {
            input,
            cache: std::sync::OnceLock::new(),
        }
    }
}

impl<T: Element> PlanNode for Materialize<T> {
    fn op(&self) -> String {
        "materialise".into()
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        self.input.grid()
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        self.grid().len().saturating_mul(T::DTYPE.size())
    }
    fn is_stage(&self) -> bool {
        true
    }
    fn expensive(&self) -> bool {
        false
    }
    fn prepare(&self, ctx: &ExecContext) -> Result<()> {
        if self.cache.get().is_none() {
            let value = crate::exec::compute(self.input.as_ref(), ctx)?;
            let _ = self.cache.set(value);
        }
        Ok(())
    }
}

impl<T: Element> Node<T> for Materialize<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let data = self.cache.get().ok_or_else(|| {
            crate::error::Error::Invalid(
                "internal: a materialised node was read before it was computed".into(),
            )
        })?;
        Ok(data.slice(slice_info(region).as_slice()).into())
    }
}

/// `node`, wrapped in a [`Materialize`] when it is expensive to recompute.
pub fn shared<T: Element>(node: &std::sync::Arc<dyn Node<T>>) -> std::sync::Arc<dyn Node<T>> {
    if node.expensive() {
        std::sync::Arc::new(Materialize::new(std::sync::Arc::clone(node)))
    } else {
        std::sync::Arc::clone(node)
    }
}
