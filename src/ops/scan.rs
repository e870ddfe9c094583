//! Cumulative sums and products along an axis: NumPy's `cumsum`, `cumprod`, `nancumsum` and
//! `nancumprod`, with NumPy's bits whatever the chunking.
//!
//! NumPy accumulates in order: `out[i] = out[i - 1] + x[i]`. Dask adds each block's total to the
//! next block's own running sums, which rounds differently. Here every block continues the
//! running values where the block before it along the axis left them (its *carry*), so each
//! element is the same sequence of additions as NumPy's. The carries are computed first, once
//! per run (each lane of blocks along the axis in turn, the lanes in parallel), and held: one
//! hyperplane of the array per block boundary. Each block is then computed from its input
//! block and its carry, in parallel, so the input is read twice.

use crate::array::ChunkedArray;
use crate::chunks::{normalize_axis, ChunkGrid};
use crate::element::{DType, Num};
use crate::error::{Error, Result};
use crate::exec::ExecContext;
use crate::plan::{for_each_index, slice_info, Block, Node, PlanNode};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// The accumulation of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanOp {
    /// `cumsum`.
    Sum,
    /// `cumprod`.
    Prod,
    /// `nancumsum`: NaN counts as 0.
    NanSum,
    /// `nancumprod`: NaN counts as 1.
    NanProd,
}

impl ScanOp {
    /// NumPy's name of the scan.
    pub fn name(self) -> &'static str {
        match self {
            ScanOp::Sum => "cumsum",
            ScanOp::Prod => "cumprod",
            ScanOp::NanSum => "nancumsum",
            ScanOp::NanProd => "nancumprod",
        }
    }

    /// `x` as the scan takes it: NaN replaced by the identity in the NaN-skipping scans.
    fn term<T: Num>(self, x: T) -> T {
        match self {
            ScanOp::NanSum if x.is_nan() => T::zero(),
            ScanOp::NanProd if x.is_nan() => T::one(),
            _ => x,
        }
    }

    fn step<T: Num>(self, acc: T, x: T) -> T {
        match self {
            ScanOp::Sum | ScanOp::NanSum => acc.add(self.term(x)),
            ScanOp::Prod | ScanOp::NanProd => acc.mul(self.term(x)),
        }
    }
}

/// Scans `block` along `axis` in place: the first slice continues from `carry` (or starts the
/// array when there is none), every later slice from the one before it.
fn scan_in_place<T: Num>(
    block: &mut ArrayD<T>,
    axis: usize,
    carry: Option<ArrayViewD<'_, T>>,
    op: ScanOp,
) {
    if block.len_of(Axis(axis)) == 0 {
        return;
    }
    {
        let mut first = block.index_axis_mut(Axis(axis), 0);
        match carry {
            Some(c) => first.zip_mut_with(&c, |x, &acc| *x = op.step(acc, *x)),
            None => first.mapv_inplace(|x| op.term(x)),
        }
    }
    block.accumulate_axis_inplace(Axis(axis), |&prev, cur| *cur = op.step(prev, *cur));
}

/// The plan node of a scan.
struct Scan<T: Num> {
    input: Arc<dyn Node<T>>,
    axis: usize,
    op: ScanOp,
    /// `carries[k]`: the running values at the end of block `k` along the axis, over the whole
    /// hyperplane (the array's shape without the axis), for every block but the last.
    carries: OnceLock<Vec<ArrayD<T>>>,
}

impl<T: Num> Scan<T> {
    /// Block boundaries along the axis: the carries held.
    fn boundaries(&self) -> usize {
        self.input.grid().chunks()[self.axis]
            .len()
            .saturating_sub(1)
    }

    /// Elements of the held carries.
    fn carry_elements(&self) -> usize {
        let shape = self.input.grid().shape();
        let plane: usize = shape
            .iter()
            .enumerate()
            .filter(|&(a, _)| a != self.axis)
            .map(|(_, &n)| n)
            .product();
        plane.saturating_mul(self.boundaries())
    }

    /// The carry into block `k` along the axis over the other axes' `region`, `None` for the
    /// first block.
    fn carry(&self, k: usize, region: &[Range<usize>]) -> Result<Option<ArrayViewD<'_, T>>> {
        if k == 0 {
            return Ok(None);
        }
        let carries = self.carries.get().ok_or_else(|| {
            Error::Invalid(format!(
                "internal: {} was read before its carries were computed",
                self.op.name()
            ))
        })?;
        let plane: Vec<Range<usize>> = region
            .iter()
            .enumerate()
            .filter(|&(a, _)| a != self.axis)
            .map(|(_, r)| r.clone())
            .collect();
        Ok(Some(carries[k - 1].slice(slice_info(&plane).as_slice())))
    }

    /// Computes the carries: each lane of blocks along the axis in order, the lanes in
    /// parallel.
    fn compute_carries(&self) -> Result<Vec<ArrayD<T>>> {
        let grid = self.input.grid();
        let axis = self.axis;
        let nb = grid.chunks()[axis].len();
        let mut plane_shape: Vec<usize> = grid.shape().to_vec();
        plane_shape.remove(axis);
        if nb <= 1 {
            return Ok(Vec::new());
        }
        // Every lane: the block index of each other axis (the axis itself at 0).
        let mut per_axis: Vec<Range<usize>> =
            grid.blocks_per_axis().into_iter().map(|n| 0..n).collect();
        per_axis[axis] = 0..1;
        let mut lanes = Vec::new();
        for_each_index(&per_axis, |idx| {
            lanes.push(idx.to_vec());
            Ok(())
        })?;
        let ends: Vec<(Vec<usize>, Vec<ArrayD<T>>)> = lanes
            .par_iter()
            .map(|lane| -> Result<(Vec<usize>, Vec<ArrayD<T>>)> {
                let mut ends: Vec<ArrayD<T>> = Vec::with_capacity(nb - 1);
                for k in 0..nb - 1 {
                    let mut idx = lane.clone();
                    idx[axis] = k;
                    let region = grid.block_region(&idx);
                    let mut block = self.input.region(&region)?.into_owned();
                    scan_in_place(&mut block, axis, ends.last().map(|e| e.view()), self.op);
                    let len = block.len_of(Axis(axis));
                    ends.push(block.index_axis(Axis(axis), len - 1).to_owned());
                }
                Ok((lane.clone(), ends))
            })
            .collect::<Result<_>>()?;
        let mut carries: Vec<ArrayD<T>> = (0..nb - 1)
            .map(|_| ArrayD::from_elem(IxDyn(&plane_shape), T::zero()))
            .collect();
        for (lane, lane_ends) in ends {
            let mut idx = lane;
            idx[axis] = 0;
            let mut plane = grid.block_region(&idx);
            plane.remove(axis);
            for (carry, end) in carries.iter_mut().zip(lane_ends) {
                carry.slice_mut(slice_info(&plane).as_slice()).assign(&end);
            }
        }
        Ok(carries)
    }
}

impl<T: Num> PlanNode for Scan<T> {
    fn op(&self) -> String {
        format!("{}(axis={})", self.op.name(), self.axis)
    }
    fn describe(&self) -> Option<String> {
        let boundaries = self.boundaries();
        Some(format!(
            "in order along axis {}: the running values at {boundaries} block boundaries computed first and held ({} elements), then every block from its own",
            self.axis,
            self.carry_elements()
        ))
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
        // The block being scanned (its input owned), and the held carries, counted with every
        // task (they are shared, so this is an overestimate).
        let block = self
            .input
            .grid()
            .max_chunk_shape()
            .iter()
            .product::<usize>();
        block
            .saturating_add(self.carry_elements())
            .saturating_mul(T::DTYPE.size())
    }
    fn expensive(&self) -> bool {
        true
    }
    fn prepare(&self, ctx: &ExecContext) -> Result<()> {
        self.input.prepare(ctx)?;
        if self.carries.get().is_none() {
            let carries = ctx.install(|| self.compute_carries())?;
            let _ = self.carries.set(carries);
        }
        Ok(())
    }
}

impl<T: Num> Node<T> for Scan<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let axis = self.axis;
        let r = region[axis].clone();
        if region.iter().any(|r| r.is_empty()) {
            return Ok(
                ArrayD::from_elem(IxDyn(&crate::plan::region_shape(region)), T::zero()).into(),
            );
        }
        // The block holding the region's start along the axis: scan from its start.
        let starts = self.input.grid().starts(axis);
        let k = starts.partition_point(|&s| s <= r.start) - 1;
        let mut from = region.to_vec();
        from[axis] = starts[k]..r.end;
        let mut block = self.input.region(&from)?.into_owned();
        scan_in_place(&mut block, axis, self.carry(k, region)?, self.op);
        let skip = r.start - starts[k];
        if skip > 0 {
            block.slice_axis_inplace(Axis(axis), Slice::from(skip..));
        }
        Ok(block.into())
    }
}

impl<T: Num> ChunkedArray<T> {
    /// Cumulative `op` along `axis` (negative counts from the end), NumPy's bits whatever the
    /// chunking: see the [module](self). The result keeps the element type and the chunks
    /// (NumPy's `cumsum` of small integers accumulates in int64: [`crate::dynarray::DynArray`]
    /// casts first).
    ///
    /// ```
    /// use tessera::ChunkedArray;
    /// use tessera::ops::scan::ScanOp;
    ///
    /// let x = ChunkedArray::<f64>::from_array(ndarray::arr1(&[0.1, 0.2, 0.3, 0.4]).into_dyn(), 3)?;
    /// let c = x.scan(ScanOp::Sum, 0)?.compute()?;
    /// // The same additions in the same order as NumPy's cumsum.
    /// assert_eq!(c[[3]], ((0.1 + 0.2) + 0.3) + 0.4);
    /// # Ok::<(), tessera::Error>(())
    /// ```
    ///
    /// A 0-d array is scanned as one element along axis 0 or -1, as NumPy does.
    ///
    /// # Errors
    /// An axis out of range.
    pub fn scan(&self, op: ScanOp, axis: isize) -> Result<Self> {
        if self.ndim() == 0 {
            normalize_axis(axis, 1)?;
            return self.reshape(&[1])?.scan(op, 0);
        }
        let axis = normalize_axis(axis, self.ndim())?;
        Ok(ChunkedArray::from_node(Arc::new(Scan {
            input: Arc::clone(self.node()),
            axis,
            op,
            carries: OnceLock::new(),
        })))
    }

    /// Cumulative sum along `axis`, as NumPy's `cumsum`.
    ///
    /// # Errors
    /// As [`ChunkedArray::scan`].
    pub fn cumsum(&self, axis: isize) -> Result<Self> {
        self.scan(ScanOp::Sum, axis)
    }

    /// Cumulative product along `axis`, as NumPy's `cumprod`.
    ///
    /// # Errors
    /// As [`ChunkedArray::scan`].
    pub fn cumprod(&self, axis: isize) -> Result<Self> {
        self.scan(ScanOp::Prod, axis)
    }
}
