//! Distance matrices: [`cdist`] and [`pdist`], lazy and blockwise, with SciPy's metrics; and
//! the row reductions of a distance matrix that never build it ([`knn`], [`nearest`],
//! [`count_within`]).
//!
//! Block `(i, j)` of `cdist(x, y)` is the tile between row block `i` of `x` and row block `j`
//! of `y`; the coordinates (axis 1) are never split. Nothing runs until the result is computed
//! or stored, and then tile by tile: a matrix far larger than memory streams into Zarr, HDF5
//! or `.npy`, one output chunk per tile.
//!
//! ```
//! use tessera::ChunkedArray;
//! use tessera::distance::{cdist, Metric};
//! use ndarray::array;
//!
//! let x = ChunkedArray::from_array(array![[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]].into_dyn(), 2)?;
//! let y = ChunkedArray::from_array(array![[0.0, 0.0], [6.0, 8.0]].into_dyn(), 1)?;
//! let d = cdist(&x, &y, Metric::Euclidean)?.compute()?;
//! assert_eq!(d[[1, 0]], 5.0);
//! assert_eq!(d[[1, 1]], 5.0);
//! let l1 = cdist(&x, &y, Metric::Cityblock)?.compute()?;
//! assert_eq!(l1[[2, 1]], 12.0);
//! # Ok::<(), tessera::Error>(())
//! ```

mod kernels;
mod metric;
mod rows;

pub use kernels::{
    detected_isa, pair, tile, tile_into, DistFloat, Isa, TileOut, DIRECT_EUCLIDEAN_MAX_D,
};
pub use metric::{Metric, METRIC_NAMES};
pub use rows::{count_within, count_within_of_rows, knn, knn_of_rows, nearest, Neighbours};

use crate::array::ChunkedArray;
use crate::chunks::{AxisChunks, ChunkGrid, Chunks};
use crate::element::DType;
use crate::error::{Error, Result};
use crate::plan::{by_blocks, Block, Node, PartFn, PlanNode};
use ndarray::{ArrayD, ArrayViewMutD, IxDyn};
use std::ops::Range;
use std::sync::Arc;

/// Extra bytes a task of a GEMM metric may use beyond its buffers: the `gemm` crate's packing
/// space (a per-thread slab the size of the L2 cache, and the packed right-hand side).
const GEMM_SLACK: usize = 4 << 20;

/// Extra bytes a task of the other metrics may use beyond its buffers (the panels' scratch):
/// they pack their inputs themselves, into buffers that are counted.
const PANEL_SLACK: usize = 256 << 10;

/// Bytes a distance task of `metric` over points of `d` coordinates is counted for beyond its
/// buffers, whatever its tile (the memory check adds them to every task of [`cdist`], [`pdist`]
/// and the row reductions): the GEMM's packing space when the tile goes through the GEMM (not
/// euclidean and sqeuclidean with few coordinates, which take the panel loop).
pub fn task_slack(metric: Metric, d: usize) -> usize {
    if kernels::tile_uses_gemm(metric, d) {
        GEMM_SLACK
    } else {
        PANEL_SLACK
    }
}

/// Up to this many coordinates, X against Y computed into memory runs a row of tiles at a time
/// (`PlanNode::row_bands`): each task then writes whole rows of the result, each fresh page of
/// it while the page is in the cache (10000 x 10000 points with d = 3, cityblock: 0.050 s
/// against 0.066-0.074 s in 1250 x 1250 tiles, on 2 cores).
const ROW_BAND_MAX_D: usize = 16;

/// Bytes of one strip of a tile computed in parts ([`Node::region_parts`]): large enough that
/// the kernels run at full speed and that a strip's mirror image goes to its chunk file in
/// runs of several pages (the kernel zero-fills the partial first and last page of each run:
/// at 16 MB that was a fifth of the run's CPU time), small enough that a task holds tens of
/// megabytes whatever the tile.
const STRIP_BYTES: usize = 32 << 20;

/// Checks that `a` is a non-empty `(n, d)` array of points and returns it with its coordinates
/// in one block (the row blocks kept).
pub(crate) fn points<T: DistFloat>(a: &ChunkedArray<T>, what: &str) -> Result<ChunkedArray<T>> {
    if a.ndim() != 2 {
        return Err(Error::Shape(format!(
            "{what} must be 2-D (points by coordinates), got shape {:?}",
            a.shape()
        )));
    }
    if a.shape()[0] == 0 || a.shape()[1] == 0 {
        return Err(Error::Shape(format!(
            "{what} is empty (shape {:?}): distances need at least one point of at least one coordinate",
            a.shape()
        )));
    }
    if a.chunks()[1].len() == 1 {
        return Ok(a.clone());
    }
    a.rechunk(Chunks::PerAxis(vec![
        AxisChunks::Explicit(a.chunks()[0].clone()),
        AxisChunks::Whole,
    ]))
}

/// Checks `x` and `y` as [`cdist`] and the row reductions do before any work: both 2-D and
/// non-empty, with the same number of coordinates, which it returns. For callers that must
/// refuse bad points before they create anything (an output store).
///
/// # Errors
/// As [`cdist`]'s: an input not 2-D or empty, or different numbers of coordinates (both named).
pub fn check_points<T: DistFloat>(x: &ChunkedArray<T>, y: &ChunkedArray<T>) -> Result<usize> {
    same_d(&points(x, "x")?, &points(y, "y")?)
}

/// Checks that `x` and `y` have the same number of coordinates.
pub(crate) fn same_d<T: DistFloat>(x: &ChunkedArray<T>, y: &ChunkedArray<T>) -> Result<usize> {
    let (dx, dy) = (x.shape()[1], y.shape()[1]);
    if dx != dy {
        return Err(Error::Shape(format!(
            "x has {dx} coordinates per point (shape {:?}) but y has {dy} (shape {:?}): both need the same d",
            x.shape(),
            y.shape()
        )));
    }
    Ok(dx)
}

/// The lazy distance matrix between the rows of `x` (`n x d`) and the rows of `y` (`m x d`):
/// an `(n, m)` array whose block `(i, j)` is the tile between row block `i` of `x` and row
/// block `j` of `y`.
///
/// When `y` is `x` itself (the same array, or a clone of it), the result is [`pdist`]'s: only
/// the tiles on and above the diagonal are computed, the others are their mirror images, and
/// the diagonal is exactly 0.
///
/// Computed into memory with few coordinates (`d` up to 16), writing the result sets the pace:
/// a row of tiles is then computed at a time, straight into the result, so that each task
/// writes whole rows of it (the same bits as tile by tile). Into a file, the tiles are the
/// file's chunks, computed one by one.
///
/// # Errors
/// `x` or `y` not 2-D or empty, different numbers of coordinates (both named), or an invalid
/// metric parameter (`minkowski` with `p <= 0`).
pub fn cdist<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    metric: Metric,
) -> Result<ChunkedArray<T>> {
    if Arc::ptr_eq(x.node(), y.node()) {
        return pdist(x, metric);
    }
    Ok(ChunkedArray::from_node(Arc::new(Cdist::new(
        x,
        Some(y),
        metric,
    )?)))
}

/// The square `(n, n)` distance matrix between the rows of `x`: SciPy's
/// `squareform(pdist(x))`. Only the tiles on and above the diagonal are computed; the tiles
/// below are their transposes (so the result is exactly symmetric, bit for bit), and the
/// diagonal is exactly 0, as in `squareform`, even for points with NaN coordinates.
///
/// ```
/// use tessera::ChunkedArray;
/// use tessera::distance::{pdist, Metric};
/// let x = ChunkedArray::<f64>::arange(0.0, 10.0, 1.0, 5)?.reshape(&[5, 2])?;
/// let d = pdist(&x, Metric::Cosine)?.compute()?;
/// assert!((0..5).all(|i| d[[i, i]] == 0.0));
/// assert_eq!(d[[1, 3]], d[[3, 1]]);
/// # Ok::<(), tessera::Error>(())
/// ```
///
/// # Errors
/// As [`cdist`].
pub fn pdist<T: DistFloat>(x: &ChunkedArray<T>, metric: Metric) -> Result<ChunkedArray<T>> {
    Ok(ChunkedArray::from_node(Arc::new(Cdist::new(
        x, None, metric,
    )?)))
}

impl<T: DistFloat> ChunkedArray<T> {
    /// [`cdist`] of `self` and `y`.
    ///
    /// # Errors
    /// As [`cdist`].
    pub fn cdist(&self, y: &ChunkedArray<T>, metric: Metric) -> Result<ChunkedArray<T>> {
        cdist(self, y, metric)
    }
}

/// The plan node of [`cdist`] and [`pdist`].
struct Cdist<T: DistFloat> {
    x: Arc<dyn Node<T>>,
    y: Arc<dyn Node<T>>,
    metric: Metric,
    d: usize,
    grid: ChunkGrid,
    /// `y` is `x`: tiles below the diagonal mirror those above, the diagonal is 0.
    same: bool,
    /// Bytes of a strip of a tile computed in parts ([`STRIP_BYTES`]).
    strip_bytes: usize,
}

impl<T: DistFloat> Cdist<T> {
    /// The node of `cdist(x, y)`, or of `pdist(x)` without `y`.
    fn new(x: &ChunkedArray<T>, y: Option<&ChunkedArray<T>>, metric: Metric) -> Result<Self> {
        metric.validate()?;
        let xp = points(x, "x")?;
        let yp = match y {
            Some(y) => points(y, "y")?,
            None => xp.clone(),
        };
        let d = same_d(&xp, &yp)?;
        let grid = ChunkGrid::from_chunks(
            &[xp.shape()[0], yp.shape()[0]],
            vec![xp.chunks()[0].clone(), yp.chunks()[0].clone()],
        )?;
        Ok(Cdist {
            x: Arc::clone(xp.node()),
            y: Arc::clone(yp.node()),
            metric,
            d,
            grid,
            same: y.is_none(),
            strip_bytes: STRIP_BYTES,
        })
    }
}

/// The rows `rows` of a points node, contiguous and row-major.
pub(crate) fn rows_of<'a, T: DistFloat>(
    node: &'a dyn Node<T>,
    rows: &Range<usize>,
    d: usize,
) -> Result<Block<'a, T>> {
    let block = node.region(&[rows.clone(), 0..d])?;
    Ok(if block.is_standard_layout() {
        block
    } else {
        block.as_standard_layout().into_owned().into()
    })
}

impl<T: DistFloat> Cdist<T> {
    /// The tile between rows `rows` of x and rows `cols` of y, computed into `dst` (of shape
    /// `rows x cols` with unit column stride and a row stride of at least `cols`).
    fn fill(
        &self,
        rows: &Range<usize>,
        cols: &Range<usize>,
        dst: &mut ArrayViewMutD<'_, T>,
    ) -> Result<()> {
        let (r, c) = (rows.len(), cols.len());
        let strides = dst.strides();
        if dst.shape() != [r, c] || strides[1] != 1 || strides[0] < c as isize {
            return Err(Error::Shape(format!(
                "internal: a {r} x {c} tile into a view of shape {:?}, strides {strides:?}",
                dst.shape()
            )));
        }
        let ldo = strides[0] as usize;
        let xb = rows_of(self.x.as_ref(), rows, self.d)?;
        let yb = rows_of(self.y.as_ref(), cols, self.d)?;
        let internal = || Error::Shape("internal: a tile's inputs are not contiguous".into());
        // SAFETY: dst is an r x c view with unit column stride and row stride ldo >= c
        // (checked above), so the elements ptr + i * ldo + j (i < r, j < c) are exactly its
        // elements, which it lets us write for as long as it is borrowed here.
        let mut out = unsafe { TileOut::from_raw(dst.as_mut_ptr(), r, c, ldo) };
        tile_into(
            self.metric,
            xb.as_slice().ok_or_else(internal)?,
            r,
            yb.as_slice().ok_or_else(internal)?,
            c,
            self.d,
            &mut out,
        );
        if self.same {
            mirror_diagonal(dst, rows, cols);
        }
        Ok(())
    }

    /// Elements a task holds for `r` rows of x against `c` rows of y besides its output: both
    /// row blocks with their packed or centred copies, and the norms.
    fn input_elements(&self, r: usize, c: usize) -> usize {
        2 * (r + c) * self.d + 2 * (r + c)
    }

    /// Rows of a strip of a tile `cols` wide: at least `strip_bytes`, rounded up to whole rows.
    /// With 64-bit glibc's default settings, a strip of 32 MiB or more is always allocated with
    /// `mmap` and returned to the system when freed; a smaller one would raise glibc's dynamic
    /// `mmap` threshold to its size, and the strips of later runs in the same process would
    /// stay in its arenas once freed. (A tile smaller than a strip is computed whole, and is
    /// small.)
    fn strip_rows(&self, cols: usize) -> usize {
        self.strip_bytes
            .div_ceil(cols.max(1) * T::DTYPE.size())
            .max(1)
    }

    /// The tile `(i, j)` holding the non-empty 2-D `region` when the region lies inside one
    /// tile that is computed rather than mirrored (for pdist, on or above the diagonal).
    fn computed_tile(&self, region: &[Range<usize>]) -> Option<(usize, usize)> {
        let [rows, cols] = region else {
            return None;
        };
        if rows.is_empty()
            || cols.is_empty()
            || self.grid.blocks_in(region).iter().any(|b| b.len() != 1)
        {
            return None;
        }
        let tile = (
            self.grid.block_at(0, rows.start),
            self.grid.block_at(1, cols.start),
        );
        (!self.same || tile.0 <= tile.1).then_some(tile)
    }

    /// The tile between rows `rows` of x and rows `cols` of y, in a new array.
    fn compute(&self, rows: &Range<usize>, cols: &Range<usize>) -> Result<ArrayD<T>> {
        let mut out = crate::exec::zeroed_block::<T>(&[rows.len(), cols.len()]);
        self.fill(rows, cols, &mut out.view_mut())?;
        Ok(out)
    }

    /// A region inside one tile.
    fn one(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let (rows, cols) = (&region[0], &region[1]);
        if rows.is_empty() || cols.is_empty() {
            return Ok(ArrayD::from_elem(IxDyn(&[rows.len(), cols.len()]), T::zero()).into());
        }
        if self.same {
            let bi = self.grid.block_at(0, rows.start);
            let bj = self.grid.block_at(1, cols.start);
            if bi > bj {
                // Below the diagonal: the mirror image of the tile above it.
                let t = self.compute(cols, rows)?;
                return Ok(t.reversed_axes().as_standard_layout().into_owned().into());
            }
        }
        Ok(self.compute(rows, cols)?.into())
    }
}

impl<T: DistFloat> PlanNode for Cdist<T> {
    fn op(&self) -> String {
        format!(
            "{}({}, d={})",
            if self.same { "pdist" } else { "cdist" },
            self.metric,
            self.d
        )
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        if self.same {
            vec![self.x.as_ref()]
        } else {
            vec![self.x.as_ref(), self.y.as_ref()]
        }
    }
    fn describe(&self) -> Option<String> {
        let shape = self.grid.max_chunk_shape();
        Some(if self.same {
            format!(
                "distance tiles of {} x {}: those on and above the diagonal computed, each written twice",
                shape[0], shape[1]
            )
        } else {
            format!("distance tiles of {} x {}", shape[0], shape[1])
        })
    }
    fn own_task_bytes(&self) -> usize {
        let shape = self.grid.max_chunk_shape();
        let (r, c) = (shape[0], shape[1]);
        let e = T::DTYPE.size();
        // The tile (and for pdist the sink's copy of its mirror image; a sink's own buffers
        // are counted by the sink), both row blocks, the packed or centred copies of them,
        // and the norms.
        let tiles = if self.same { 2 } else { 1 };
        (tiles * r * c + self.input_elements(r, c))
            .saturating_mul(e)
            .saturating_add(task_slack(self.metric, self.d))
    }
    fn expensive(&self) -> bool {
        true
    }
    fn mirrored(&self) -> bool {
        self.same
    }
    /// X against Y (not X against itself, whose tiles below the diagonal are mirrored) with
    /// few coordinates, when a row band's inputs (a row block of x, all of y, their packed
    /// copies and norms) fit in what a tile task is counted for.
    fn row_bands(&self) -> bool {
        let r = self.grid.max_chunk_shape()[0];
        let m = self.grid.shape()[1];
        let band = self.input_elements(r, m).saturating_mul(T::DTYPE.size());
        !self.same && self.d <= ROW_BAND_MAX_D && band <= self.own_task_bytes()
    }
    fn part_task_bytes(&self) -> Option<usize> {
        let shape = self.grid.max_chunk_shape();
        let (r, c) = (shape[0], shape[1]);
        // One strip, both row blocks with their packed or centred copies, and the norms.
        let strip = self.strip_rows(c).min(r) * c;
        Some(
            (strip + self.input_elements(r, c))
                .saturating_mul(T::DTYPE.size())
                .saturating_add(task_slack(self.metric, self.d)),
        )
    }
}

impl<T: DistFloat> Node<T> for Cdist<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        by_blocks(&self.grid, region, |piece| self.one(piece))
    }

    fn region_into(&self, region: &[Range<usize>], dst: &mut ArrayViewMutD<'_, T>) -> Result<bool> {
        let [rows, cols] = region else {
            return Ok(false);
        };
        let (r, c) = (rows.len(), cols.len());
        let strides = dst.strides();
        // One tile, or (`row_bands`) the whole width of one row of tiles.
        let band = || {
            self.row_bands()
                && *cols == (0..self.grid.shape()[1])
                && !rows.is_empty()
                && self.grid.block_at(0, rows.start) == self.grid.block_at(0, rows.end - 1)
        };
        if dst.shape() != [r, c]
            || strides[1] != 1
            || strides[0] < c as isize
            || (self.computed_tile(region).is_none() && !band())
        {
            return Ok(false);
        }
        self.fill(rows, cols, dst)?;
        Ok(true)
    }

    /// A tile in strips of rows (about [`STRIP_BYTES`] each), computed into one buffer. A tile
    /// on the diagonal of pdist is computed on and above the diagonal only, each strip from
    /// the diagonal rightwards, and its part beyond the strip's rows is handed again mirrored
    /// (below the diagonal), so that the tile is exactly symmetric as when computed whole.
    fn region_parts(&self, region: &[Range<usize>], emit: &mut PartFn<'_, T>) -> Result<bool> {
        let [rows, cols] = region else {
            return Ok(false);
        };
        let Some((bi, bj)) = self.computed_tile(region) else {
            return Ok(false);
        };
        let diagonal = self.same && bi == bj;
        if diagonal && rows != cols {
            return Ok(false);
        }
        let height = self.strip_rows(cols.len());
        let mut buf = vec![T::zero(); height.min(rows.len()) * cols.len()];
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = (r0 + height).min(rows.end);
            let strip_cols = if diagonal { r0..cols.end } else { cols.clone() };
            let shape = [r1 - r0, strip_cols.len()];
            let n = shape[0] * shape[1];
            let mut view = ArrayViewMutD::from_shape(IxDyn(&shape), &mut buf[..n])
                .map_err(|e| Error::Shape(format!("internal: a tile strip: {e}")))?;
            self.fill(&(r0..r1), &strip_cols, &mut view)?;
            let view = view.view();
            emit(&[r0..r1, strip_cols.clone()], view.view())?;
            if diagonal && r1 < cols.end {
                let beyond = view.slice_axis(ndarray::Axis(1), (r1 - r0..shape[1]).into());
                emit(&[r1..cols.end, r0..r1], beyond.reversed_axes())?;
            }
            r0 = r1;
        }
        Ok(true)
    }
}

/// Where a tile of pdist crosses the diagonal: the diagonal exactly 0 (as SciPy's
/// squareform(pdist)), and the pairs below it copied from their mirror images above, so that
/// the result is symmetric bit for bit (NaN signs included) whatever the kernel's order of
/// operations.
fn mirror_diagonal<T: DistFloat>(
    out: &mut ArrayViewMutD<'_, T>,
    rows: &Range<usize>,
    cols: &Range<usize>,
) {
    let lo = rows.start.max(cols.start);
    let hi = rows.end.min(cols.end);
    for g in lo..hi {
        out[[g - rows.start, g - cols.start]] = T::zero();
        for h in lo..g {
            out[[g - rows.start, h - cols.start]] = out[[h - rows.start, g - cols.start]];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{run, BlockSink, ExecContext, ExecOptions, PartWriter};
    use crate::plan::slice_info;
    use ndarray::{Array2, ArrayViewD};
    use std::sync::Mutex;

    /// A sink that takes blocks in parts only (a whole block is an error), assembling them into
    /// a dense array and counting the writes of every element.
    struct PartsOnly {
        out: Mutex<(ArrayD<f64>, ArrayD<u32>)>,
    }

    struct Collect<'a> {
        sink: &'a PartsOnly,
        region: Vec<Range<usize>>,
        parts: Vec<(Vec<Range<usize>>, ArrayD<f64>)>,
    }

    impl PartWriter<f64> for Collect<'_> {
        fn write(&mut self, part: &[Range<usize>], data: ArrayViewD<'_, f64>) -> Result<()> {
            let inside = part
                .iter()
                .zip(&self.region)
                .all(|(p, r)| p.start >= r.start && p.end <= r.end);
            assert!(inside, "part {part:?} outside the block {:?}", self.region);
            self.parts.push((part.to_vec(), data.to_owned()));
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<()> {
            let mut out = self.sink.out.lock().unwrap();
            for (part, data) in self.parts {
                out.0.slice_mut(slice_info(&part).as_slice()).assign(&data);
                out.1
                    .slice_mut(slice_info(&part).as_slice())
                    .mapv_inplace(|n| n + 1);
            }
            Ok(())
        }
    }

    impl BlockSink<f64> for PartsOnly {
        fn write_block(&self, region: &[Range<usize>], _: ArrayViewD<'_, f64>) -> Result<()> {
            Err(Error::Invalid(format!("a whole block {region:?}")))
        }
        fn parts(&self, region: &[Range<usize>]) -> Result<Option<Box<dyn PartWriter<f64> + '_>>> {
            Ok(Some(Box::new(Collect {
                sink: self,
                region: region.to_vec(),
                parts: Vec::new(),
            })))
        }
    }

    fn points(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut s = seed;
        Array2::from_shape_fn((n, d), |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        })
    }

    /// A sink that takes whole blocks only (no view of memory to compute into), so that the
    /// executor computes the blocks one by one.
    struct Blocks(Mutex<ArrayD<f64>>);

    impl BlockSink<f64> for Blocks {
        fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, f64>) -> Result<()> {
            let mut out = self
                .0
                .lock()
                .map_err(|_| Error::Invalid("poisoned".into()))?;
            out.slice_mut(slice_info(region).as_slice()).assign(&block);
            Ok(())
        }
    }

    /// X against Y with few coordinates, computed into memory, runs a row of tiles at a time,
    /// with the same bits as the tiles computed one by one (ragged edges, single-row blocks);
    /// not for X against itself, more coordinates, or a row band that would need more memory
    /// than a tile.
    #[test]
    fn rows_of_tiles_in_memory_equal_the_tiles() {
        let ctx = ExecContext::new(ExecOptions::default().threads(2)).unwrap();
        for d in [1, 3, 16] {
            let x = points(29, d, 3);
            let y = points(37, d, 4);
            for (xc, yc) in [(1, 1), (4, 5), (7, 37), (29, 6), (29, 37)] {
                let xa = ChunkedArray::from_array(x.clone().into_dyn(), xc).unwrap();
                let ya = ChunkedArray::from_array(y.clone().into_dyn(), yc).unwrap();
                for metric in [Metric::Cityblock, Metric::Euclidean, Metric::Canberra] {
                    let node = Cdist::new(&xa, Some(&ya), metric).unwrap();
                    let case = format!("{metric} d {d} chunks {xc} x {yc}");
                    assert!(node.row_bands(), "{case}");
                    let banded = cdist(&xa, &ya, metric).unwrap().compute().unwrap();
                    let sink = Blocks(Mutex::new(ArrayD::from_elem(IxDyn(&[29, 37]), f64::NAN)));
                    run(&node, &sink, &ctx).unwrap();
                    let tiles = sink.0.into_inner().unwrap();
                    let bits = |a: &ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&banded), bits(&tiles), "{case}");
                }
            }
        }
        let x = ChunkedArray::from_array(points(29, 17, 5).into_dyn(), 5).unwrap();
        let y = ChunkedArray::from_array(points(37, 17, 6).into_dyn(), 5).unwrap();
        assert!(!Cdist::new(&x, Some(&y), Metric::Cityblock)
            .unwrap()
            .row_bands());
        let x = ChunkedArray::from_array(points(29, 3, 5).into_dyn(), 5).unwrap();
        assert!(!Cdist::new(&x, None, Metric::Cityblock).unwrap().row_bands());
        // 300000 points of y against single rows of x: a band's inputs (77 MB) would be far
        // more than a single-element tile's task.
        let y = ChunkedArray::<f64>::zeros(&[300_000, 16], 1).unwrap();
        let x = ChunkedArray::<f64>::zeros(&[2, 16], 1).unwrap();
        assert!(!Cdist::new(&x, Some(&y), Metric::Cityblock)
            .unwrap()
            .row_bands());
    }

    /// Tiles computed in strips of every height (one row, a few rows, ragged, whole) and stored
    /// part by part, every element once, equal the tiles computed whole: bit for bit for the
    /// direct kernels, within 1e-14 of the largest distance for a GEMM metric (the GEMM's order
    /// of operations may follow the tile's shape). For cdist and for pdist, whose diagonal
    /// tiles are computed above the diagonal and mirrored and whose tiles above are written
    /// twice: exactly symmetric with a zero diagonal. Ragged edge tiles and single-row blocks.
    #[test]
    fn tiles_in_strips_equal_whole_tiles() {
        let ctx = ExecContext::new(ExecOptions::default().threads(2)).unwrap();
        let x = points(23, 4, 1);
        let y = points(17, 4, 2);
        for metric in [
            Metric::Euclidean,
            Metric::Cityblock,
            Metric::Cosine,
            Metric::Chebyshev,
        ] {
            for chunk in [1, 5, 7, 23] {
                let xa = ChunkedArray::from_array(x.clone().into_dyn(), chunk).unwrap();
                let ya = ChunkedArray::from_array(y.clone().into_dyn(), chunk).unwrap();
                for same in [false, true] {
                    let whole = if same {
                        pdist(&xa, metric).unwrap().compute().unwrap()
                    } else {
                        cdist(&xa, &ya, metric).unwrap().compute().unwrap()
                    };
                    for rows in [1, 2, 3, 8, 100] {
                        let mut node = Cdist::new(&xa, (!same).then_some(&ya), metric).unwrap();
                        // A strip of `rows` rows of the widest tile.
                        node.strip_bytes = rows * node.grid.max_chunk_shape()[1] * 8;
                        let shape = whole.shape().to_vec();
                        let sink = PartsOnly {
                            out: Mutex::new((
                                ArrayD::from_elem(IxDyn(&shape), f64::NAN),
                                ArrayD::zeros(IxDyn(&shape)),
                            )),
                        };
                        run(&node, &sink, &ctx).unwrap();
                        let (got, writes) = sink.out.into_inner().unwrap();
                        let case = format!("{metric} chunk {chunk} same {same} strip {rows}");
                        assert!(writes.iter().all(|&n| n == 1), "{case}: {writes:?}");
                        if metric == Metric::Cosine {
                            // A GEMM: its order of operations may follow the tile's shape.
                            let top = whole.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                            let close = got
                                .iter()
                                .zip(whole.iter())
                                .all(|(a, b)| (a - b).abs() <= 1e-14 * top);
                            assert!(close, "{case}:\n{got:?}\n{whole:?}");
                        } else {
                            let equal = got
                                .iter()
                                .zip(whole.iter())
                                .all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(equal, "{case}:\n{got:?}\n{whole:?}");
                        }
                        if same {
                            let symmetric = got
                                .t()
                                .iter()
                                .zip(got.iter())
                                .all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(symmetric, "{case}: not symmetric");
                            assert!(
                                (0..shape[0]).all(|i| got[[i, i]].to_bits() == 0),
                                "{case}: diagonal"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The parts of one tile: strips of the rows asked, and for a diagonal tile of pdist the
    /// strip's part beyond it handed again below the diagonal.
    #[test]
    fn a_diagonal_tile_is_handed_above_and_mirrored_below() {
        let xa = ChunkedArray::from_array(points(10, 3, 3).into_dyn(), 10).unwrap();
        let mut node = Cdist::new(&xa, None, Metric::Euclidean).unwrap();
        node.strip_bytes = 4 * 10 * 8;
        let mut parts = Vec::new();
        let done = node
            .region_parts(&[0..10, 0..10], &mut |p, _| {
                parts.push(p.to_vec());
                Ok(())
            })
            .unwrap();
        assert!(done);
        assert_eq!(
            parts,
            vec![
                vec![0..4, 0..10],
                vec![4..10, 0..4],
                vec![4..8, 4..10],
                vec![8..10, 4..8],
                vec![8..10, 8..10],
            ]
        );
        // A region across tiles is not made in parts.
        let two = ChunkedArray::from_array(points(10, 3, 3).into_dyn(), 5).unwrap();
        let node = Cdist::new(&two, None, Metric::Euclidean).unwrap();
        assert!(!node
            .region_parts(&[0..10, 0..10], &mut |_, _| Ok(()))
            .unwrap());
    }
}
