//! Slicing, transposition, concatenation, stacking and reshaping: nodes that move elements
//! without computing them. Each maps a requested region to the source region that holds it.

use crate::array::ChunkedArray;
use crate::chunks::{normalize_axis, ChunkGrid};
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::plan::{max_block_bytes, region_shape, slice_info, Block, Node, PlanNode};
use ndarray::{ArrayD, Axis, IxDyn, Slice};
use std::ops::Range;
use std::sync::Arc;

/// One item of a NumPy index: `start:stop:step`, an integer (drops the axis), or `None`
/// (inserts an axis of length 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceItem {
    /// `start:stop:step`; negative bounds count from the end, `None` takes the default.
    Range {
        /// First index (default 0, or the end for a negative step).
        start: Option<isize>,
        /// End, excluded (default the end, or before the start for a negative step).
        stop: Option<isize>,
        /// Step, not 0 (default 1).
        step: isize,
    },
    /// A single position; the axis is dropped.
    Index(isize),
    /// A new axis of length 1 (`None` / `np.newaxis`).
    NewAxis,
}

impl SliceItem {
    /// The whole axis (`:`).
    pub const ALL: SliceItem = SliceItem::Range {
        start: None,
        stop: None,
        step: 1,
    };
}

/// NumPy's notation: `1:`, `::-2`, `3`, `None`.
impl std::fmt::Display for SliceItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            SliceItem::Range { start, stop, step } => {
                let opt = |v: Option<isize>| v.map(|v| v.to_string()).unwrap_or_default();
                write!(f, "{}:{}", opt(start), opt(stop))?;
                if step != 1 {
                    write!(f, ":{step}")?;
                }
                Ok(())
            }
            SliceItem::Index(i) => write!(f, "{i}"),
            SliceItem::NewAxis => f.write_str("None"),
        }
    }
}

/// One output axis of a slice: where it comes from.
#[derive(Clone, Debug)]
enum OutAxis {
    /// Source axis, first source position, step, length.
    Strided {
        src: usize,
        start: usize,
        step: isize,
    },
    NewAxis,
}

struct SliceNode<T: Element> {
    input: Arc<dyn Node<T>>,
    out: Vec<OutAxis>,
    /// Source axes fixed at one position (dropped), with that position.
    fixed: Vec<(usize, usize)>,
    grid: ChunkGrid,
    desc: String,
}

/// Python's `slice.indices`: normalised start and length for an axis of `n`.
fn resolve(start: Option<isize>, stop: Option<isize>, step: isize, n: usize) -> (usize, usize) {
    let n = n as isize;
    let clamp = |v: isize, lo: isize, hi: isize| v.max(lo).min(hi);
    let norm = |v: isize| if v < 0 { v + n } else { v };
    let (start, stop) = if step > 0 {
        (
            start.map_or(0, |s| clamp(norm(s), 0, n)),
            stop.map_or(n, |s| clamp(norm(s), 0, n)),
        )
    } else {
        (
            start.map_or(n - 1, |s| clamp(norm(s), -1, n - 1)),
            stop.map_or(-1, |s| clamp(norm(s), -1, n - 1)),
        )
    };
    // The positions start, start + step, ... before stop, counted without overflow for any
    // step (isize::MIN included): start and stop lie in -1..=n.
    let span = if step > 0 { stop - start } else { start - stop };
    let len = if span > 0 {
        (span - 1) as usize / step.unsigned_abs() + 1
    } else {
        0
    };
    (start.max(0) as usize, len)
}

/// Output chunks of a strided axis: a block boundary wherever the source block changes.
fn strided_chunks(
    grid: &ChunkGrid,
    ax: usize,
    start: usize,
    step: isize,
    len: usize,
) -> Vec<usize> {
    if len == 0 {
        return vec![0];
    }
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < len {
        let pos = (start as isize + i as isize * step) as usize;
        let b = grid.block_at(ax, pos);
        let (bs, be) = (grid.starts(ax)[b], grid.starts(ax)[b + 1]);
        // How many more output positions stay inside [bs, be)?
        let n = if step > 0 {
            (be - pos).div_ceil(step as usize)
        } else {
            (pos - bs) / step.unsigned_abs() + 1
        };
        let n = n.min(len - i).max(1);
        out.push(n);
        i += n;
    }
    out
}

impl<T: Element> PlanNode for SliceNode<T> {
    fn op(&self) -> String {
        self.desc.clone()
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        0
    }
}

impl<T: Element> Node<T> for SliceNode<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let nd_src = self.input.grid().ndim();
        let mut src: Vec<Range<usize>> = vec![0..0; nd_src];
        let mut steps: Vec<isize> = vec![1; nd_src];
        for &(ax, pos) in &self.fixed {
            src[ax] = pos..pos + 1;
        }
        for (o, r) in self.out.iter().zip(region) {
            if let OutAxis::Strided {
                src: ax,
                start,
                step,
            } = *o
            {
                steps[ax] = step;
                src[ax] = if r.is_empty() {
                    start..start
                } else if step > 0 {
                    let a = start + r.start * step as usize;
                    a..start + (r.end - 1) * step as usize + 1
                } else {
                    let s = step.unsigned_abs();
                    let a = start - (r.end - 1) * s;
                    a..start - r.start * s + 1
                };
            }
        }
        let block = self.input.region(&src)?;
        let mut b = block;
        for (ax, &step) in steps.iter().enumerate() {
            if step != 1 {
                b.slice_axis_inplace(Axis(ax), Slice::new(0, None, step));
            }
        }
        // Drop the fixed axes (highest first), then insert the new ones.
        let mut fixed: Vec<usize> = self.fixed.iter().map(|f| f.0).collect();
        fixed.sort_unstable();
        for &ax in fixed.iter().rev() {
            b.index_axis_inplace(Axis(ax), 0);
        }
        for (k, o) in self.out.iter().enumerate() {
            if matches!(o, OutAxis::NewAxis) {
                b.insert_axis_inplace(Axis(k));
                if region[k].is_empty() {
                    b.slice_axis_inplace(Axis(k), Slice::from(0..0));
                }
            }
        }
        Ok(b)
    }
}

struct Transpose<T: Element> {
    input: Arc<dyn Node<T>>,
    axes: Vec<usize>,
    grid: ChunkGrid,
}

impl<T: Element> PlanNode for Transpose<T> {
    fn op(&self) -> String {
        format!("transpose({:?})", self.axes)
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        0
    }
}

impl<T: Element> Node<T> for Transpose<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let mut src = vec![0..0; region.len()];
        for (k, &ax) in self.axes.iter().enumerate() {
            src[ax] = region[k].clone();
        }
        Ok(self.input.region(&src)?.permuted_axes(IxDyn(&self.axes)))
    }
}

struct Concat<T: Element> {
    inputs: Vec<Arc<dyn Node<T>>>,
    axis: usize,
    /// Start of each input along the axis, and the total at the end.
    offsets: Vec<usize>,
    grid: ChunkGrid,
}

impl<T: Element> PlanNode for Concat<T> {
    fn op(&self) -> String {
        format!("concatenate(axis={})", self.axis)
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        self.inputs
            .iter()
            .map(|i| i.as_ref() as &dyn PlanNode)
            .collect()
    }
    fn own_task_bytes(&self) -> usize {
        max_block_bytes(&self.grid, T::DTYPE)
    }
}

impl<T: Element> Node<T> for Concat<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let r = &region[self.axis];
        let pieces: Vec<usize> = (0..self.inputs.len())
            .filter(|&k| {
                let (s, e) = (self.offsets[k], self.offsets[k + 1]);
                s < e && r.start < e && s < r.end
            })
            .collect();
        let sub = |k: usize| -> Vec<Range<usize>> {
            let (s, e) = (self.offsets[k], self.offsets[k + 1]);
            let mut reg = region.to_vec();
            reg[self.axis] = r.start.max(s) - s..r.end.min(e) - s;
            reg
        };
        match pieces.as_slice() {
            [] => Ok(ArrayD::from_elem(IxDyn(&region_shape(region)), T::default()).into()),
            [k] => self.inputs[*k].region(&sub(*k)),
            _ => {
                let mut out = ArrayD::from_elem(IxDyn(&region_shape(region)), T::default());
                for &k in &pieces {
                    let reg = sub(k);
                    let part = self.inputs[k].region(&reg)?;
                    let s = self.offsets[k] + reg[self.axis].start - r.start;
                    let mut dst: Vec<Range<usize>> = region.iter().map(|x| 0..x.len()).collect();
                    dst[self.axis] = s..s + reg[self.axis].len();
                    out.slice_mut(slice_info(&dst).as_slice()).assign(&part);
                }
                Ok(out.into())
            }
        }
    }
}

/// How a group of input axes maps to a group of output axes in a reshape.
#[derive(Clone, Debug)]
struct Group {
    inp: Range<usize>,
    out: Range<usize>,
}

struct Reshape<T: Element> {
    input: Arc<dyn Node<T>>,
    groups: Vec<Group>,
    grid: ChunkGrid,
}

impl<T: Element> PlanNode for Reshape<T> {
    fn op(&self) -> String {
        format!("reshape({:?})", self.grid.shape())
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        2 * max_block_bytes(&self.grid, T::DTYPE)
    }
}

impl<T: Element> Node<T> for Reshape<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let ishape = self.input.grid().shape();
        let oshape = self.grid.shape();
        let mut src: Vec<Range<usize>> = Vec::with_capacity(ishape.len());
        let mut cover: Vec<Range<usize>> = Vec::with_capacity(oshape.len());
        for g in &self.groups {
            let (ni, no) = (g.inp.len(), g.out.len());
            if ni == 1 && no == 1 {
                src.push(region[g.out.start].clone());
                cover.push(region[g.out.start].clone());
            } else if no == 1 && ni > 1 {
                // Merged axes: whole trailing input axes, rows of the first that cover the range.
                let p: usize = ishape[g.inp.start + 1..g.inp.end].iter().product();
                let r = &region[g.out.start];
                let (a, b) = (r.start / p.max(1), r.end.div_ceil(p.max(1)));
                src.push(a..b);
                src.extend(ishape[g.inp.start + 1..g.inp.end].iter().map(|&n| 0..n));
                cover.push(a * p..b * p);
            } else if ni == 1 && no > 1 {
                // A split axis: whole trailing output axes.
                let q: usize = oshape[g.out.start + 1..g.out.end].iter().product();
                let r = &region[g.out.start];
                src.push(r.start * q..r.end * q);
                cover.push(r.clone());
                cover.extend(oshape[g.out.start + 1..g.out.end].iter().map(|&n| 0..n));
            } else {
                src.extend(ishape[g.inp.clone()].iter().map(|&n| 0..n));
                cover.extend(oshape[g.out.clone()].iter().map(|&n| 0..n));
            }
        }
        let block = self.input.region(&src)?;
        let cshape = region_shape(&cover);
        let data = block.as_standard_layout().into_owned();
        let shaped = data
            .into_shape_with_order(IxDyn(&cshape))
            .map_err(|e| Error::Shape(format!("internal: reshape of a block: {e}")))?;
        let local: Vec<Range<usize>> = region
            .iter()
            .zip(&cover)
            .map(|(r, c)| r.start - c.start..r.end - c.start)
            .collect();
        if local
            .iter()
            .zip(&cshape)
            .all(|(l, &n)| l.start == 0 && l.end == n)
        {
            return Ok(shaped.into());
        }
        Ok(shaped
            .slice(slice_info(&local).as_slice())
            .to_owned()
            .into())
    }
}

/// Splits two shapes with equal products into groups of axes with equal products.
fn reshape_groups(ishape: &[usize], oshape: &[usize]) -> Vec<Group> {
    let mut groups = Vec::new();
    let (mut i, mut o) = (0usize, 0usize);
    while i < ishape.len() || o < oshape.len() {
        let (si, so) = (i, o);
        let mut pi: usize = ishape.get(i).copied().unwrap_or(1);
        let mut po: usize = oshape.get(o).copied().unwrap_or(1);
        i += usize::from(i < ishape.len());
        o += usize::from(o < oshape.len());
        while pi != po {
            if pi < po && i < ishape.len() {
                pi *= ishape[i];
                i += 1;
            } else if o < oshape.len() {
                po *= oshape[o];
                o += 1;
            } else {
                break;
            }
        }
        groups.push(Group {
            inp: si..i,
            out: so..o,
        });
    }
    groups
}

impl<T: Element> ChunkedArray<T> {
    /// NumPy basic indexing: one [`SliceItem`] per axis (missing trailing axes are taken
    /// whole; `None` items insert axes). Output blocks follow the source's blocks.
    ///
    /// # Errors
    /// A step of 0, an integer index out of range, or more items than axes.
    ///
    /// ```
    /// use tessera::{ChunkedArray, ops::slice::SliceItem};
    /// let x = ChunkedArray::<i64>::arange(0.0, 10.0, 1.0, 3).unwrap();
    /// let y = x.slice(&[SliceItem::Range { start: Some(-2), stop: None, step: -3 }]).unwrap();
    /// assert_eq!(y.compute().unwrap().into_raw_vec_and_offset().0, vec![8, 5, 2]);
    /// ```
    pub fn slice(&self, items: &[SliceItem]) -> Result<Self> {
        let g = self.grid();
        let nd = g.ndim();
        let used = items
            .iter()
            .filter(|i| !matches!(i, SliceItem::NewAxis))
            .count();
        if used > nd {
            return Err(Error::Index(format!(
                "too many indices: {used} for an array of {nd} dimension(s) (shape {:?})",
                g.shape()
            )));
        }
        let mut items = items.to_vec();
        items.extend(std::iter::repeat_n(SliceItem::ALL, nd - used));
        let mut out = Vec::new();
        let mut fixed = Vec::new();
        let mut shape = Vec::new();
        let mut chunks = Vec::new();
        let mut ax = 0;
        for it in &items {
            match *it {
                SliceItem::NewAxis => {
                    out.push(OutAxis::NewAxis);
                    shape.push(1);
                    chunks.push(vec![1]);
                }
                SliceItem::Index(i) => {
                    let n = g.shape()[ax] as isize;
                    let p = if i < 0 { i + n } else { i };
                    if p < 0 || p >= n {
                        return Err(Error::Index(format!(
                            "index {i} is out of bounds for axis {ax} with size {n}"
                        )));
                    }
                    fixed.push((ax, p as usize));
                    ax += 1;
                }
                SliceItem::Range { start, stop, step } => {
                    if step == 0 {
                        return Err(Error::Index(format!(
                            "slice step cannot be zero (axis {ax})"
                        )));
                    }
                    let (s, len) = resolve(start, stop, step, g.shape()[ax]);
                    out.push(OutAxis::Strided {
                        src: ax,
                        start: s,
                        step,
                    });
                    shape.push(len);
                    chunks.push(strided_chunks(g, ax, s, step, len));
                    ax += 1;
                }
            }
        }
        Ok(Self::from_node(Arc::new(SliceNode {
            input: Arc::clone(self.node()),
            out,
            fixed,
            grid: ChunkGrid::from_parts(shape, chunks),
            desc: format!(
                "getitem[{}]",
                items
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })))
    }

    /// Permutes the axes: axis `i` of the result is axis `axes[i]` of `self`.
    ///
    /// # Errors
    /// `axes` that is not a permutation of the axes.
    pub fn permute(&self, axes: &[isize]) -> Result<Self> {
        let nd = self.ndim();
        let axes: Vec<usize> = axes
            .iter()
            .map(|&a| normalize_axis(a, nd))
            .collect::<Result<_>>()?;
        let mut seen = vec![false; nd];
        for &a in &axes {
            seen[a] = true;
        }
        if axes.len() != nd || seen.iter().any(|s| !s) {
            return Err(Error::Invalid(format!(
                "axes {axes:?} are not a permutation of the {nd} axes"
            )));
        }
        let grid = self.grid().permuted(&axes);
        Ok(Self::from_node(Arc::new(Transpose {
            input: Arc::clone(self.node()),
            axes,
            grid,
        })))
    }

    /// Reverses the axes (`.T`).
    pub fn t(&self) -> Self {
        let nd = self.ndim();
        let axes: Vec<usize> = (0..nd).rev().collect();
        let grid = self.grid().permuted(&axes);
        Self::from_node(Arc::new(Transpose {
            input: Arc::clone(self.node()),
            axes,
            grid,
        }))
    }

    /// Joins arrays along an existing axis. The other axes must match; their grids are unified.
    ///
    /// # Errors
    /// No arrays, different ranks, mismatched shapes (named), or an axis out of range.
    pub fn concatenate(arrays: &[Self], axis: isize) -> Result<Self> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::Invalid("need at least one array to concatenate".into()))?;
        let nd = first.ndim();
        if nd == 0 {
            return Err(Error::Shape(
                "zero-dimensional arrays cannot be concatenated".into(),
            ));
        }
        let axis = normalize_axis(axis, nd)?;
        for a in arrays {
            let ok =
                a.ndim() == nd && (0..nd).all(|k| k == axis || a.shape()[k] == first.shape()[k]);
            if !ok {
                return Err(Error::Shape(format!(
                    "cannot concatenate shapes {:?} and {:?} along axis {axis}",
                    first.shape(),
                    a.shape()
                )));
            }
        }
        let mut offsets: Vec<usize> = vec![0];
        let mut along = Vec::new();
        let too_large = || {
            Error::Shape(format!(
                "concatenating along axis {axis} gives more elements than can be addressed"
            ))
        };
        for a in arrays {
            let end = offsets
                .last()
                .copied()
                .unwrap_or(0)
                .checked_add(a.shape()[axis])
                .ok_or_else(too_large)?;
            offsets.push(end);
            along.extend(a.chunks()[axis].iter().copied().filter(|&c| c > 0));
        }
        let total = offsets.last().copied().unwrap_or(0);
        let elems = (0..nd)
            .filter(|&k| k != axis)
            .try_fold(total, |p, k| p.checked_mul(first.shape()[k]));
        if total > 0 && elems.is_none_or(|e| e > crate::chunks::MAX_ELEMENTS) {
            return Err(too_large());
        }
        // Unify the other axes as for broadcasting: the same shapes, merged breakpoints.
        let grids: Vec<ChunkGrid> = arrays
            .iter()
            .map(|a| {
                let mut c = a.chunks().to_vec();
                c[axis] = vec![1];
                let mut s = a.shape().to_vec();
                s[axis] = 1;
                ChunkGrid::from_parts(s, c)
            })
            .collect();
        let refs: Vec<&ChunkGrid> = grids.iter().collect();
        let unified = ChunkGrid::broadcast(&refs)?;
        let mut chunks = unified.chunks().to_vec();
        chunks[axis] = if total == 0 { vec![0] } else { along };
        let mut shape = first.shape().to_vec();
        shape[axis] = total;
        // Operands within the limits can join into a grid of more blocks than they allow.
        let grid = ChunkGrid::checked_parts(shape, chunks)
            .map_err(|reason| Error::Shape(format!("concatenating along axis {axis}: {reason}")))?;
        Ok(Self::from_node(Arc::new(Concat {
            inputs: arrays.iter().map(|a| Arc::clone(a.node())).collect(),
            axis,
            offsets,
            grid,
        })))
    }

    /// Joins arrays of equal shape along a new axis.
    ///
    /// # Errors
    /// No arrays, different shapes, or an axis out of range.
    pub fn stack(arrays: &[Self], axis: isize) -> Result<Self> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::Invalid("need at least one array to stack".into()))?;
        let axis = normalize_axis(axis, first.ndim() + 1)?;
        let mut expanded = Vec::with_capacity(arrays.len());
        for a in arrays {
            if a.shape() != first.shape() {
                return Err(Error::Shape(format!(
                    "all input arrays must have the same shape to stack: {:?} and {:?}",
                    first.shape(),
                    a.shape()
                )));
            }
            let mut items = vec![SliceItem::ALL; axis];
            items.push(SliceItem::NewAxis);
            expanded.push(a.slice(&items)?);
        }
        Self::concatenate(&expanded, axis as isize)
    }

    /// Gives the array a new shape with the same number of elements (one axis may be -1).
    /// Blocks are mapped group by group of axes: merging axes keeps whole rows of the trailing
    /// ones, splitting an axis keeps whole trailing output axes, so no block is copied twice
    /// when the chunks line up (merged trailing axes in one chunk).
    ///
    /// # Errors
    /// A shape with a different number of elements, or more than one -1.
    pub fn reshape(&self, shape: &[isize]) -> Result<Self> {
        let len = self.len();
        let neg: Vec<usize> = (0..shape.len()).filter(|&k| shape[k] < 0).collect();
        if neg.len() > 1 || shape.iter().any(|&n| n < -1) {
            return Err(Error::Shape(format!(
                "can only specify one unknown dimension (-1) in {shape:?}"
            )));
        }
        let too_large = || {
            Error::Shape(format!(
                "cannot reshape array of size {len} (shape {:?}) into shape {shape:?}: more \
                 elements than can be addressed",
                self.shape()
            ))
        };
        let known = shape
            .iter()
            .filter(|&&n| n >= 0)
            .try_fold(1usize, |p, &n| p.checked_mul(n as usize))
            .ok_or_else(too_large)?;
        let mut out: Vec<usize> = shape.iter().map(|&n| n.max(0) as usize).collect();
        if let Some(&k) = neg.first() {
            if known == 0 || !len.is_multiple_of(known) {
                return Err(Error::Shape(format!(
                    "cannot reshape array of size {len} (shape {:?}) into shape {shape:?}",
                    self.shape()
                )));
            }
            out[k] = len / known;
        }
        let product = out
            .iter()
            .try_fold(1usize, |p, &n| p.checked_mul(n))
            .ok_or_else(too_large)?;
        if product != len {
            return Err(Error::Shape(format!(
                "cannot reshape array of size {len} (shape {:?}) into shape {out:?}",
                self.shape()
            )));
        }
        if out == self.shape() {
            return Ok(self.clone());
        }
        let ishape = self.shape().to_vec();
        let groups = if len == 0 {
            vec![Group {
                inp: 0..ishape.len(),
                out: 0..out.len(),
            }]
        } else {
            reshape_groups(&ishape, &out)
        };
        let g = self.grid();
        let mut chunks: Vec<Vec<usize>> = Vec::with_capacity(out.len());
        if len == 0 {
            // No elements: one block per axis, as every empty grid has.
            chunks.extend(out.iter().map(|&n| vec![n]));
        }
        for grp in groups.iter().filter(|_| len > 0) {
            let (ni, no) = (grp.inp.len(), grp.out.len());
            if ni == 1 && no == 1 {
                chunks.push(g.chunks()[grp.inp.start].clone());
            } else if no == 1 && ni > 1 {
                let p: usize = ishape[grp.inp.start + 1..grp.inp.end].iter().product();
                chunks.push(g.chunks()[grp.inp.start].iter().map(|&c| c * p).collect());
            } else if ni == 1 && no > 1 {
                let q: usize = out[grp.out.start + 1..grp.out.end]
                    .iter()
                    .product::<usize>()
                    .max(1);
                let n0 = out[grp.out.start];
                let c0 = g.chunks()[grp.inp.start].iter().copied().max().unwrap_or(1);
                let size = (c0 / q).max(1);
                chunks.push(ChunkGrid::regular(&[n0], &[size])?.chunks()[0].clone());
                for &n in &out[grp.out.start + 1..grp.out.end] {
                    chunks.push(vec![n]);
                }
            } else {
                for &n in &out[grp.out.clone()] {
                    chunks.push(vec![n]);
                }
            }
        }
        let out_shape = out.clone();
        let grid = ChunkGrid::checked_parts(out, chunks).map_err(|reason| {
            Error::Shape(format!(
                "reshaping {:?} to {out_shape:?}: {reason}",
                self.shape()
            ))
        })?;
        Ok(Self::from_node(Arc::new(Reshape {
            input: Arc::clone(self.node()),
            groups,
            grid,
        })))
    }
}
