//! [`ChunkedArray`]: the user-facing handle, its constructors and outputs.

use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element};
use crate::error::{fmt_bytes, Error, Result};
use crate::exec::{self, ExecContext, ExecOptions};
use crate::plan::{self, Node};
use ndarray::ArrayD;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A lazy N-dimensional array cut into blocks.
///
/// A cheap, immutable handle: a [`ChunkGrid`] and an `Arc` to the plan node that can produce
/// any of its blocks. Operations build new plan nodes; nothing is read or computed until
/// [`compute`](ChunkedArray::compute), [`to_npy`](ChunkedArray::to_npy) or another output runs
/// the plan, block by block, in parallel, within the allowed memory.
///
/// ```
/// use tessera::ChunkedArray;
/// let x = ChunkedArray::<f64>::ones(&[1000], 100).unwrap();
/// let y = x.mul(4.0).unwrap().sqrt().add(1.0).unwrap();
/// assert_eq!(y.sum_all().unwrap().compute_scalar().unwrap(), 3000.0);
/// ```
pub struct ChunkedArray<T: Element> {
    node: Arc<dyn Node<T>>,
}

impl<T: Element> Clone for ChunkedArray<T> {
    fn clone(&self) -> Self {
        ChunkedArray {
            node: Arc::clone(&self.node),
        }
    }
}

impl<T: Element> ChunkedArray<T> {
    /// Wraps a plan node.
    pub fn from_node(node: Arc<dyn Node<T>>) -> Self {
        ChunkedArray { node }
    }

    /// The plan node behind the array.
    pub fn node(&self) -> &Arc<dyn Node<T>> {
        &self.node
    }

    /// The chunk grid.
    pub fn grid(&self) -> &ChunkGrid {
        self.node.grid()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.grid().shape()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.grid().ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.grid().len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Block lengths along every axis (Dask's `.chunks`).
    pub fn chunks(&self) -> &[Vec<usize>] {
        self.grid().chunks()
    }

    /// Number of blocks.
    pub fn nblocks(&self) -> usize {
        self.grid().nblocks()
    }

    /// Bytes of the whole array.
    pub fn nbytes(&self) -> usize {
        self.len() * T::DTYPE.size()
    }

    /// Runs the plan with default options and returns the result in memory.
    ///
    /// # Errors
    /// A plan over the memory limit, or any error of the sources.
    pub fn compute(&self) -> Result<ArrayD<T>> {
        self.compute_with(&ExecOptions::default())
    }

    /// Runs the plan with `opts` and returns the result in memory.
    ///
    /// # Errors
    /// As [`ChunkedArray::compute`].
    pub fn compute_with(&self, opts: &ExecOptions) -> Result<ArrayD<T>> {
        let ctx = ExecContext::new(opts.clone())?;
        exec::compute(self.node.as_ref(), &ctx)
    }

    /// Computes a 0-d array (a full reduction) and returns its value.
    ///
    /// # Errors
    /// An array that is not 0-d, or any error of [`ChunkedArray::compute`].
    pub fn compute_scalar(&self) -> Result<T> {
        if self.ndim() != 0 {
            return Err(Error::Shape(format!(
                "compute_scalar needs a 0-d array, this one has shape {:?}",
                self.shape()
            )));
        }
        self.compute()?
            .iter()
            .next()
            .copied()
            .ok_or_else(|| Error::Shape("empty 0-d array".into()))
    }

    /// Streams the array into a `.npy` file block by block through a memory map, never holding
    /// the whole array in memory. The file appears at `path` only once every block is written.
    ///
    /// # Errors
    /// An existing `path` without `overwrite`, an unwritable location, or any error of the plan.
    pub fn to_npy(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        self.to_npy_with(path, overwrite, &ExecOptions::default())
    }

    /// [`ChunkedArray::to_npy`] with explicit options.
    ///
    /// # Errors
    /// As [`ChunkedArray::to_npy`].
    pub fn to_npy_with(
        &self,
        path: impl AsRef<Path>,
        overwrite: bool,
        opts: &ExecOptions,
    ) -> Result<()> {
        let path = path.as_ref();
        // Refuse what cannot run before creating anything.
        exec::check_memory(self.node.as_ref(), opts)?;
        let writer = crate::store::npy::NpyWriter::create(path, T::DTYPE, self.shape(), overwrite)?;
        {
            let ptr = writer.data_ptr();
            if writer.data_len() > 0 && !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
                return Err(Error::format(path, "internal: unaligned .npy data section"));
            }
            let sink = exec::RawSink::new(ptr.cast::<T>(), self.shape());
            let ctx = ExecContext::new(opts.clone())?;
            exec::run(self.node.as_ref(), &sink, &ctx)?;
        }
        writer.finish()
    }

    /// The array on regular blocks of its largest block shape (no new node when its blocks
    /// already are regular), and that shape: what chunked stores (Zarr, HDF5) write.
    ///
    /// # Errors
    /// Never in practice (the shape comes from a valid grid).
    pub(crate) fn regular_blocks(&self) -> Result<(Self, Vec<usize>)> {
        let chunk: Vec<usize> = self
            .grid()
            .max_chunk_shape()
            .iter()
            .map(|&c| c.max(1))
            .collect();
        Ok((self.rechunk(chunk.clone())?, chunk))
    }

    /// The plan as it would run with `opts`: every node with its grid, what runs fused in
    /// which task and what is materialised, the projected memory of every task (the figures
    /// the executor checks before running) and whether the run fits. Nothing is computed.
    ///
    /// ```
    /// use tessera::{ChunkedArray, ExecOptions};
    /// use tessera::ops::reduce::ReduceOpts;
    /// let x = ChunkedArray::<f64>::ones(&[1000, 4], [250, 4])?;
    /// let s = x.mul(2.0)?.sqrt().sum(ReduceOpts::axis(0))?;
    /// let roomy = s.explain_with(&ExecOptions::default().threads(2).allowed_mem(1 << 30));
    /// assert!(roomy.fits());
    /// let tight = s.explain_with(&ExecOptions::default().threads(2).allowed_mem(1024));
    /// assert!(!tight.fits());
    /// assert!(tight.to_string().contains("fits      NO"));
    /// # Ok::<(), tessera::Error>(())
    /// ```
    pub fn explain_with(&self, opts: &ExecOptions) -> plan::explain::Explain {
        plan::explain::Explain::new(self.node.as_ref(), opts)
    }

    /// [`ChunkedArray::explain_with`] the default options, as text.
    pub fn explain(&self) -> String {
        self.explain_with(&ExecOptions::default()).to_string()
    }
}

impl<T: Element> fmt::Display for ChunkedArray<T> {
    /// A summary like Dask's repr: shape, dtype, chunk size, block count and bytes. The
    /// alternate form (`{:#}`) adds the picture of the chunk grid
    /// ([`ChunkGrid::picture`]) below, as Dask's notebook repr shows it beside the table.
    ///
    /// ```
    /// use tessera::ChunkedArray;
    /// let x = ChunkedArray::<f32>::zeros(&[10, 7], [4, 3])?;
    /// assert_eq!(
    ///     x.to_string(),
    ///     "ChunkedArray<shape=[10, 7], dtype=float32, chunksize=[4, 3], blocks=9, bytes=280 B>"
    /// );
    /// let long = format!("{x:#}");
    /// assert!(long.starts_with(&x.to_string()));
    /// assert!(long.ends_with(&x.grid().picture()));
    /// # Ok::<(), tessera::Error>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.grid();
        write!(
            f,
            "ChunkedArray<shape={:?}, dtype={}, chunksize={:?}, blocks={}, bytes={}>",
            g.shape(),
            T::DTYPE,
            g.max_chunk_shape(),
            g.nblocks(),
            fmt_bytes(self.nbytes())
        )?;
        if f.alternate() {
            write!(f, "\n{}", g.picture())?;
        }
        Ok(())
    }
}

impl<T: Element> fmt::Debug for ChunkedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Normalises `chunks` for an array of `shape` and element type `T`.
pub(crate) fn grid_for<T: Element>(
    shape: &[usize],
    chunks: impl Into<Chunks>,
) -> Result<ChunkGrid> {
    ChunkGrid::new(shape, &chunks.into(), T::DTYPE.size())
}
