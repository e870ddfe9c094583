//! [`ChunkGrid`]: how an array is cut into blocks. Normalising user chunk specifications,
//! automatic sizing, block index <-> region math, and the unification of operands' grids.

use crate::error::{Error, Result};
use std::ops::Range;

mod picture;
pub use picture::{PICTURE_COLS, PICTURE_ROWS};

/// Default target size of one block when chunks are chosen automatically (Dask's
/// `array.chunk-size`).
pub const AUTO_BLOCK_BYTES: usize = 128 << 20;

/// The most blocks a grid may have, 2^24 (16.8 million): a plan walks every block, and the
/// block lists of one axis cost 16 bytes a block, so a grid of 2^30 blocks on one axis would
/// take 16 GiB before any memory check. Dask's scheduler is slower than that per task.
pub const MAX_BLOCKS: usize = 1 << 24;

/// The most elements an array may have: isize::MAX / 8, so that its size in bytes, at up to 8
/// bytes an element, fits in an isize, as Rust's allocations and ndarray's shapes need.
pub const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// How the user asks for chunks along one axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AxisChunks {
    /// Blocks of this size, the last one possibly smaller.
    Size(usize),
    /// One block over the whole axis (Dask's `-1` or `None`).
    Whole,
    /// Chosen automatically to reach about [`AUTO_BLOCK_BYTES`] per block.
    Auto,
    /// Explicit block lengths that must add up to the axis length (Dask's tuple of sizes).
    Explicit(Vec<usize>),
}

/// How the user asks for chunks: the `chunks=` argument of Dask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunks {
    /// Automatic on every axis (`"auto"`).
    Auto,
    /// Automatic on every axis, aiming at about this many bytes per block instead of
    /// [`AUTO_BLOCK_BYTES`] (Dask's `chunks="32 MiB"`).
    ///
    /// ```
    /// use tessera::{ChunkGrid, Chunks};
    /// let g = ChunkGrid::new(&[100_000, 1000], &Chunks::AutoBytes(8 << 20), 8)?;
    /// assert!(g.max_chunk_shape().iter().product::<usize>() * 8 <= 8 << 20);
    /// # Ok::<(), tessera::Error>(())
    /// ```
    AutoBytes(usize),
    /// The same block size on every axis (`chunks=10`).
    Size(usize),
    /// One specification per axis (`chunks=(10, -1)`, `chunks=((5, 5), (3,))`).
    PerAxis(Vec<AxisChunks>),
}

impl From<usize> for Chunks {
    fn from(n: usize) -> Self {
        Chunks::Size(n)
    }
}

impl<const N: usize> From<[usize; N]> for Chunks {
    fn from(a: [usize; N]) -> Self {
        Chunks::PerAxis(a.iter().map(|&n| AxisChunks::Size(n)).collect())
    }
}

impl From<&[usize]> for Chunks {
    fn from(a: &[usize]) -> Self {
        Chunks::PerAxis(a.iter().map(|&n| AxisChunks::Size(n)).collect())
    }
}

impl From<Vec<usize>> for Chunks {
    fn from(a: Vec<usize>) -> Self {
        Chunks::from(a.as_slice())
    }
}

/// The grid of blocks of an array: its shape and the block lengths along every axis.
///
/// An axis of length 0 has one block of length 0, as in Dask, so every grid has at least one
/// block.
///
/// ```
/// use tessera::chunks::{ChunkGrid, Chunks};
/// let g = ChunkGrid::new(&[10, 7], &Chunks::from([4, 7]), 8).unwrap();
/// assert_eq!(g.chunks()[0], vec![4, 4, 2]);
/// assert_eq!(g.nblocks(), 3);
/// assert_eq!(g.block_region(&[2, 0]), vec![8..10, 0..7]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkGrid {
    shape: Vec<usize>,
    chunks: Vec<Vec<usize>>,
    /// Start of every block along each axis, plus the axis length at the end.
    starts: Vec<Vec<usize>>,
}

impl ChunkGrid {
    /// Normalises a chunk specification for an array of `shape` whose elements take `itemsize`
    /// bytes.
    ///
    /// # Errors
    /// A chunk size of 0, explicit chunks that do not add up to the axis, or a spec with the
    /// wrong number of axes.
    pub fn new(shape: &[usize], chunks: &Chunks, itemsize: usize) -> Result<Self> {
        Self::new_aligned(shape, chunks, itemsize, None)
    }

    /// Like [`ChunkGrid::new`], with automatic axes rounded to multiples of `native` (the
    /// source's own chunk shape), as Dask's `from_array` does for chunked files.
    ///
    /// # Errors
    /// As [`ChunkGrid::new`].
    pub fn new_aligned(
        shape: &[usize],
        chunks: &Chunks,
        itemsize: usize,
        native: Option<&[usize]>,
    ) -> Result<Self> {
        let err = |reason: String| Error::Chunks {
            shape: shape.to_vec(),
            reason,
        };
        let per_axis: Vec<AxisChunks> = match chunks {
            Chunks::Auto | Chunks::AutoBytes(_) => vec![AxisChunks::Auto; shape.len()],
            Chunks::Size(n) => vec![AxisChunks::Size(*n); shape.len()],
            Chunks::PerAxis(v) => {
                if v.len() != shape.len() {
                    return Err(err(format!(
                        "{} chunk specification(s) for {} axes",
                        v.len(),
                        shape.len()
                    )));
                }
                v.clone()
            }
        };
        // Fixed axes first, so the automatic ones know the bytes left to them.
        let mut sizes: Vec<Option<usize>> = vec![None; shape.len()];
        let mut explicit: Vec<Option<Vec<usize>>> = vec![None; shape.len()];
        for (ax, spec) in per_axis.iter().enumerate() {
            match spec {
                AxisChunks::Size(0) => {
                    return Err(err(format!(
                        "chunk size 0 on axis {ax}: chunks must be at least 1"
                    )))
                }
                AxisChunks::Size(n) => sizes[ax] = Some((*n).min(shape[ax]).max(1)),
                AxisChunks::Whole => sizes[ax] = Some(shape[ax].max(1)),
                AxisChunks::Explicit(v) => {
                    let total = v
                        .iter()
                        .try_fold(0usize, |t, &n| t.checked_add(n))
                        .ok_or_else(|| {
                            err(format!(
                                "explicit chunks on axis {ax} add up to more than can be addressed"
                            ))
                        })?;
                    if total != shape[ax] {
                        return Err(err(format!(
                            "explicit chunks {v:?} on axis {ax} add up to {total}, not {}",
                            shape[ax]
                        )));
                    }
                    if shape[ax] > 0 && v.contains(&0) {
                        return Err(err(format!(
                            "explicit chunks {v:?} on axis {ax} hold a chunk of length 0"
                        )));
                    }
                    sizes[ax] = Some(v.iter().copied().max().unwrap_or(0).max(1));
                    explicit[ax] = Some(v.clone());
                }
                AxisChunks::Auto => {}
            }
        }
        let auto_axes: Vec<usize> = (0..shape.len()).filter(|&a| sizes[a].is_none()).collect();
        if !auto_axes.is_empty() {
            let fixed: f64 = sizes.iter().flatten().map(|&s| s as f64).product();
            let target = match chunks {
                Chunks::AutoBytes(b) => (*b).max(1),
                _ => AUTO_BLOCK_BYTES,
            };
            let budget = (target as f64 / itemsize.max(1) as f64 / fixed).max(1.0);
            let auto = auto_sizes(shape, &auto_axes, budget, native);
            for (a, s) in auto_axes.iter().zip(auto) {
                sizes[*a] = Some(s);
            }
        }
        // Refuse grids whose element or block counts cannot be represented, before allocating
        // their block lists.
        let per_axis = shape
            .iter()
            .enumerate()
            .map(|(ax, &n)| n.div_ceil(sizes[ax].unwrap_or(1).max(1)));
        if let Some(reason) = too_large(shape, per_axis) {
            return Err(err(reason));
        }
        let chunks = (0..shape.len())
            .map(|ax| match explicit[ax].take() {
                Some(v) if shape[ax] == 0 => {
                    let _ = v;
                    vec![0]
                }
                Some(v) => v,
                None => regular(shape[ax], sizes[ax].unwrap_or(1)),
            })
            .collect();
        Ok(Self::from_parts(shape.to_vec(), chunks))
    }

    /// A grid of regular blocks of `chunk_shape` (the last block along an axis may be shorter).
    ///
    /// # Errors
    /// A zero chunk length or a rank mismatch.
    pub fn regular(shape: &[usize], chunk_shape: &[usize]) -> Result<Self> {
        Self::new(shape, &Chunks::from(chunk_shape), 1)
    }

    /// A grid from explicit block lengths per axis.
    ///
    /// # Errors
    /// Lengths that are zero on a non-empty axis, or that do not add up.
    pub fn from_chunks(shape: &[usize], chunks: Vec<Vec<usize>>) -> Result<Self> {
        Self::new(
            shape,
            &Chunks::PerAxis(chunks.into_iter().map(AxisChunks::Explicit).collect()),
            1,
        )
    }

    /// One block holding the whole array.
    pub fn single(shape: &[usize]) -> Self {
        Self::from_parts(shape.to_vec(), shape.iter().map(|&n| vec![n]).collect())
    }

    /// Builds a grid from parts that are consistent but may be too large to plan (joined or
    /// reshaped from grids that were each within the limits): why not, if not.
    pub(crate) fn checked_parts(
        shape: Vec<usize>,
        chunks: Vec<Vec<usize>>,
    ) -> std::result::Result<Self, String> {
        match too_large(&shape, chunks.iter().map(Vec::len)) {
            Some(reason) => Err(reason),
            None => Ok(Self::from_parts(shape, chunks)),
        }
    }

    /// Builds a grid from already valid parts.
    pub(crate) fn from_parts(shape: Vec<usize>, chunks: Vec<Vec<usize>>) -> Self {
        let starts = chunks
            .iter()
            .map(|c| {
                let mut s = Vec::with_capacity(c.len() + 1);
                let mut acc = 0;
                s.push(0);
                for &n in c {
                    acc += n;
                    s.push(acc);
                }
                s
            })
            .collect();
        ChunkGrid {
            shape,
            chunks,
            starts,
        }
    }

    /// The array shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements of the array.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block lengths along every axis (Dask's `.chunks`).
    pub fn chunks(&self) -> &[Vec<usize>] {
        &self.chunks
    }

    /// Start offsets of the blocks along `axis`, followed by the axis length.
    pub fn starts(&self, axis: usize) -> &[usize] {
        &self.starts[axis]
    }

    /// Number of blocks along every axis.
    pub fn blocks_per_axis(&self) -> Vec<usize> {
        self.chunks.iter().map(Vec::len).collect()
    }

    /// Total number of blocks.
    pub fn nblocks(&self) -> usize {
        self.chunks.iter().map(Vec::len).product()
    }

    /// The largest block length along every axis.
    pub fn max_chunk_shape(&self) -> Vec<usize> {
        self.chunks
            .iter()
            .map(|c| c.iter().copied().max().unwrap_or(0))
            .collect()
    }

    /// Elements in the largest block.
    pub fn max_block_len(&self) -> usize {
        self.max_chunk_shape().iter().product()
    }

    /// Shape of block `idx`.
    pub fn block_shape(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .enumerate()
            .map(|(ax, &i)| self.chunks[ax][i])
            .collect()
    }

    /// The region of the array covered by block `idx`.
    pub fn block_region(&self, idx: &[usize]) -> Vec<Range<usize>> {
        idx.iter()
            .enumerate()
            .map(|(ax, &i)| self.starts[ax][i]..self.starts[ax][i + 1])
            .collect()
    }

    /// The block along `axis` that holds position `pos` (the last block for `pos == len`).
    pub fn block_at(&self, axis: usize, pos: usize) -> usize {
        let s = &self.starts[axis];
        match s.binary_search(&pos) {
            Ok(i) => i.min(s.len().saturating_sub(2)),
            Err(i) => i - 1,
        }
    }

    /// The range of block indices along every axis that intersect `region`.
    pub fn blocks_in(&self, region: &[Range<usize>]) -> Vec<Range<usize>> {
        region
            .iter()
            .enumerate()
            .map(|(ax, r)| {
                if r.is_empty() {
                    let b = self.block_at(ax, r.start);
                    b..b + 1
                } else {
                    self.block_at(ax, r.start)..self.block_at(ax, r.end - 1) + 1
                }
            })
            .collect()
    }

    /// The linear (C-order) number of block `idx`.
    pub fn linear_index(&self, idx: &[usize]) -> usize {
        idx.iter()
            .zip(&self.chunks)
            .fold(0, |acc, (&i, c)| acc * c.len() + i)
    }

    /// The block index of linear block number `lin` (C order).
    pub fn block_index(&self, mut lin: usize) -> Vec<usize> {
        let mut idx = vec![0; self.ndim()];
        for ax in (0..self.ndim()).rev() {
            let n = self.chunks[ax].len();
            idx[ax] = lin % n;
            lin /= n;
        }
        idx
    }

    /// The grid of the array with the axes permuted (`axes[i]` is the old axis of new axis `i`).
    pub fn permuted(&self, axes: &[usize]) -> ChunkGrid {
        Self::from_parts(
            axes.iter().map(|&a| self.shape[a]).collect(),
            axes.iter().map(|&a| self.chunks[a].clone()).collect(),
        )
    }

    /// The common grid of operands broadcast together, as NumPy broadcasts shapes and Dask's
    /// `unify_chunks` unifies grids: along an axis where several operands have the full length,
    /// the block boundaries are the union of theirs; an operand of length 1 broadcasts.
    ///
    /// # Errors
    /// Shapes that do not broadcast (the error names both).
    pub fn broadcast(grids: &[&ChunkGrid]) -> Result<ChunkGrid> {
        let shapes: Vec<&[usize]> = grids.iter().map(|g| g.shape()).collect();
        let shape = broadcast_shapes(&shapes)?;
        let nd = shape.len();
        let mut chunks = Vec::with_capacity(nd);
        for (ax, &n) in shape.iter().enumerate() {
            let mut breaks: Vec<usize> = Vec::new();
            let mut any = false;
            for g in grids {
                let off = nd - g.ndim();
                if ax < off || g.shape[ax - off] != n || (n == 1 && g.shape[ax - off] == 1 && any) {
                    continue;
                }
                any = true;
                breaks.extend_from_slice(&g.starts[ax - off]);
            }
            breaks.sort_unstable();
            breaks.dedup();
            let c: Vec<usize> = if n == 0 {
                vec![0]
            } else if breaks.len() < 2 {
                vec![n]
            } else {
                breaks.windows(2).map(|w| w[1] - w[0]).collect()
            };
            chunks.push(c);
        }
        // Operands within the limits can broadcast to a result beyond them.
        if let Some(reason) = too_large(&shape, chunks.iter().map(Vec::len)) {
            return Err(Error::Shape(format!(
                "broadcasting shapes {shapes:?} gives shape {shape:?}: {reason}"
            )));
        }
        Ok(Self::from_parts(shape, chunks))
    }
}

/// Why a grid of `shape` with `blocks` blocks along each axis cannot be planned, if it cannot:
/// at most [`MAX_ELEMENTS`] elements and [`MAX_BLOCKS`] blocks.
fn too_large(shape: &[usize], blocks: impl Iterator<Item = usize>) -> Option<String> {
    let Some(elems) = shape.iter().try_fold(1usize, |p, &n| p.checked_mul(n)) else {
        return Some("more elements than can be addressed".into());
    };
    if elems > MAX_ELEMENTS {
        return Some(format!(
            "{elems} elements is more than can be addressed at 8 bytes each"
        ));
    }
    let blocks = blocks.fold(1usize, |p, b| p.saturating_mul(b.max(1)));
    (blocks > MAX_BLOCKS).then(|| {
        format!(
            "{blocks} blocks is more than the {MAX_BLOCKS} tessera plans for; use larger chunks"
        )
    })
}

/// Regular blocks of `size` over an axis of length `n` (one empty block when `n == 0`).
fn regular(n: usize, size: usize) -> Vec<usize> {
    if n == 0 {
        return vec![0];
    }
    let size = size.max(1);
    let mut v = vec![size; n / size];
    if !n.is_multiple_of(size) {
        v.push(n % size);
    }
    v
}

/// Sizes for the automatic axes: about `budget` elements per block, spread evenly over the
/// automatic axes, each a multiple of the native chunk where there is one (at least one
/// chunk, even where that exceeds the budget).
fn auto_sizes(
    shape: &[usize],
    axes: &[usize],
    budget: f64,
    native: Option<&[usize]>,
) -> Vec<usize> {
    let mut out = vec![0usize; axes.len()];
    let mut open: Vec<usize> = (0..axes.len()).collect();
    let mut budget = budget;
    let base = |ax: usize| native.and_then(|n| n.get(ax)).copied().unwrap_or(1).max(1);
    loop {
        let share = budget.powf(1.0 / open.len().max(1) as f64);
        // Axes whose stored chunks are longer than their share take one chunk (a block holds
        // whole chunks; the rounding below would take it anyway, and overshoot the budget by
        // that factor). Then axes shorter than their even share take their whole length. The
        // other axes share what is left. (Short axes first would take a whole axis of 400
        // rows beside chunks of 1 x 10000, and blocks of 4 million elements for 200 000.)
        let short = |i: &usize| shape[axes[*i]] as f64 <= share;
        let coarse = |i: &usize| base(axes[*i]) as f64 > share && !short(i);
        let mut fixed: Vec<usize> = open.iter().copied().filter(coarse).collect();
        if fixed.is_empty() {
            fixed = open.iter().copied().filter(short).collect();
        }
        if fixed.is_empty() {
            for &i in &open {
                let ax = axes[i];
                let base = base(ax);
                let mut s = (share.floor() as usize).max(1);
                if base > 1 {
                    s = ((s / base).max(1)) * base;
                }
                out[i] = s.min(shape[ax]).max(1);
            }
            break;
        }
        for &i in &fixed {
            let n = shape[axes[i]];
            out[i] = if short(&i) { n } else { base(axes[i]).min(n) }.max(1);
            budget /= out[i] as f64;
        }
        budget = budget.max(1.0);
        open.retain(|i| !fixed.contains(i));
        if open.is_empty() {
            break;
        }
    }
    out
}

/// NumPy's broadcast of several shapes.
///
/// # Errors
/// Shapes that do not broadcast; the error names the two that clash.
pub fn broadcast_shapes(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let nd = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; nd];
    let mut owner: Vec<Option<usize>> = vec![None; nd];
    for (k, s) in shapes.iter().enumerate() {
        let off = nd - s.len();
        for (i, &n) in s.iter().enumerate() {
            let ax = off + i;
            if n == out[ax] {
                continue;
            }
            if n == 1 {
                continue;
            }
            if out[ax] == 1 {
                out[ax] = n;
                owner[ax] = Some(k);
                continue;
            }
            let other = owner[ax].map(|o| shapes[o].to_vec()).unwrap_or_default();
            return Err(Error::Broadcast {
                left: other,
                right: s.to_vec(),
            });
        }
    }
    Ok(out)
}

/// Normalises a possibly negative axis for an array of `ndim` dimensions.
///
/// # Errors
/// An axis outside `-ndim..ndim`.
pub fn normalize_axis(axis: isize, ndim: usize) -> Result<usize> {
    let n = ndim as isize;
    if axis < -n || axis >= n {
        return Err(Error::AxisOutOfRange { axis, ndim });
    }
    Ok(if axis < 0 { axis + n } else { axis } as usize)
}

/// Normalises a list of axes (negative allowed), sorted, refusing repeats.
///
/// # Errors
/// An axis out of range or given twice.
pub fn normalize_axes(axes: &[isize], ndim: usize) -> Result<Vec<usize>> {
    let mut out = axes
        .iter()
        .map(|&a| normalize_axis(a, ndim))
        .collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Invalid(format!("repeated axis in {axes:?}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_specs() {
        let g = ChunkGrid::new(&[10, 5], &Chunks::Size(3), 8).unwrap();
        assert_eq!(g.chunks(), &[vec![3, 3, 3, 1], vec![3, 2]]);
        let g = ChunkGrid::new(
            &[10, 5],
            &Chunks::PerAxis(vec![AxisChunks::Whole, AxisChunks::Explicit(vec![1, 4])]),
            8,
        )
        .unwrap();
        assert_eq!(g.chunks(), &[vec![10], vec![1, 4]]);
        assert!(ChunkGrid::new(&[10], &Chunks::Size(0), 8).is_err());
        assert!(ChunkGrid::from_chunks(&[10], vec![vec![3, 3]]).is_err());
        let g = ChunkGrid::new(&[0, 4], &Chunks::Size(3), 8).unwrap();
        assert_eq!(g.chunks(), &[vec![0], vec![3, 1]]);
        assert_eq!(g.nblocks(), 2);
    }

    #[test]
    fn auto_targets_128_mib() {
        let g = ChunkGrid::new(&[100_000, 100_000], &Chunks::Auto, 8).unwrap();
        let bytes = g.max_block_len() * 8;
        assert!(
            bytes <= AUTO_BLOCK_BYTES && bytes > AUTO_BLOCK_BYTES / 2,
            "{bytes}"
        );
        let g = ChunkGrid::new(&[10, 100_000_000], &Chunks::Auto, 8).unwrap();
        assert_eq!(g.chunks()[0], vec![10]);
        assert_eq!(g.max_chunk_shape()[1], (AUTO_BLOCK_BYTES / 80));
        let g = ChunkGrid::new_aligned(&[100_000, 100_000], &Chunks::Auto, 8, Some(&[1000, 1000]))
            .unwrap();
        assert_eq!(g.max_chunk_shape()[0] % 1000, 0);
    }

    /// An axis whose stored chunks are longer than its share of the budget takes one chunk,
    /// and the other axes take less: blocks stay within the budget (they were rounded up to
    /// whole chunks at the end, over it by up to the chunk's length).
    #[test]
    fn auto_blocks_stay_within_the_budget_over_long_native_chunks() {
        let budget = 3 << 19; // 1.5 MiB
        let g = ChunkGrid::new_aligned(
            &[3000, 1000],
            &Chunks::AutoBytes(budget),
            8,
            Some(&[64, 1000]),
        )
        .unwrap();
        assert_eq!(g.max_chunk_shape(), vec![192, 1000]);
        // Rows stored one per chunk: 128 MiB blocks of whole rows, not 4096 of them (3.2 GB).
        let g = ChunkGrid::new_aligned(&[100_000, 100_000], &Chunks::Auto, 8, Some(&[1, 100_000]))
            .unwrap();
        assert_eq!(
            g.max_chunk_shape(),
            vec![AUTO_BLOCK_BYTES / 800_000, 100_000]
        );
        // An axis shorter than its share beside long chunks: split (19 rows), not whole.
        let g = ChunkGrid::new_aligned(
            &[400, 10_000],
            &Chunks::AutoBytes(budget),
            8,
            Some(&[1, 10_000]),
        )
        .unwrap();
        assert_eq!(g.max_chunk_shape(), vec![19, 10_000]);
        let g = ChunkGrid::new_aligned(
            &[1000, 20, 20],
            &Chunks::AutoBytes(256 << 10),
            8,
            Some(&[1000, 1, 1]),
        )
        .unwrap();
        assert_eq!(g.max_chunk_shape(), vec![1000, 5, 5]);
        // Every shape and chunking: whole chunks (or the whole axis), and within the budget
        // unless one chunk alone is larger.
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n + 1
        };
        for _ in 0..2000 {
            let nd = next(4) as usize;
            let longest = [5000, 5000, 500, 100][nd - 1];
            let shape: Vec<usize> = (0..nd).map(|_| next(longest) as usize).collect();
            let native: Vec<usize> = (0..nd).map(|_| next(600) as usize).collect();
            let bytes = next(1 << 22) as usize + (64 << 10);
            let g = ChunkGrid::new_aligned(&shape, &Chunks::AutoBytes(bytes), 8, Some(&native))
                .unwrap();
            let block = g.max_chunk_shape();
            let elems: usize = block.iter().product();
            for a in 0..nd {
                assert!(
                    block[a] == shape[a] || block[a].is_multiple_of(native[a]),
                    "{shape:?} chunks {native:?}: blocks {block:?}"
                );
                // A block spans several chunks of an axis only within the budget.
                if block[a] < shape[a] && block[a] > native[a] {
                    assert!(
                        elems * 8 <= bytes,
                        "{shape:?} chunks {native:?}, {bytes} bytes: blocks {block:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn block_math_round_trips() {
        let g = ChunkGrid::from_chunks(&[7, 5], vec![vec![2, 5], vec![1, 1, 3]]).unwrap();
        for lin in 0..g.nblocks() {
            assert_eq!(g.linear_index(&g.block_index(lin)), lin);
        }
        assert_eq!(g.block_region(&[1, 2]), vec![2..7, 2..5]);
        assert_eq!(g.block_at(0, 1), 0);
        assert_eq!(g.block_at(0, 2), 1);
        assert_eq!(g.blocks_in(&[1..3, 0..2]), vec![0..2, 0..2]);
    }

    #[test]
    fn broadcast_unifies_breakpoints() {
        let a = ChunkGrid::from_chunks(&[6, 1], vec![vec![2, 4], vec![1]]).unwrap();
        let b = ChunkGrid::from_chunks(&[4], vec![vec![3, 1]]).unwrap();
        let c = ChunkGrid::from_chunks(&[6, 4], vec![vec![3, 3], vec![4]]).unwrap();
        let g = ChunkGrid::broadcast(&[&a, &b, &c]).unwrap();
        assert_eq!(g.shape(), &[6, 4]);
        assert_eq!(g.chunks(), &[vec![2, 1, 3], vec![3, 1]]);
        let e = ChunkGrid::broadcast(&[&a, &ChunkGrid::single(&[5, 3])]).unwrap_err();
        assert!(
            e.to_string().contains("[6, 1]") && e.to_string().contains("[5, 3]"),
            "{e}"
        );
        let s = ChunkGrid::broadcast(&[&ChunkGrid::single(&[1]), &ChunkGrid::single(&[])]).unwrap();
        assert_eq!(s.shape(), &[1]);
    }

    #[test]
    fn axes_normalise() {
        assert_eq!(normalize_axis(-1, 3).unwrap(), 2);
        assert!(normalize_axis(3, 3).is_err());
        assert!(normalize_axes(&[0, -3], 3).is_err());
    }
}
