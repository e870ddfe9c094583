//! Arrays read from memory-mapped `.npy` and raw files: every block is a zero-copy view of the
//! map (C or F order), copied only when the file's byte order or alignment demands it.

use super::mmap::{dense_span, Resident};
use super::npy::NpyMap;
use super::raw::{Order, RawMap};
use crate::array::{grid_for, ChunkedArray};
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::plan::{slice_info, Block, Node, PlanNode};
use ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The memory map behind a node.
enum Source {
    Npy(NpyMap),
    Raw(RawMap),
}

impl Source {
    fn data(&self) -> &[u8] {
        match self {
            Source::Npy(m) => m.data(),
            Source::Raw(m) => m.data(),
        }
    }

    fn populate(&self, range: Range<usize>) {
        match self {
            Source::Npy(m) => m.populate(range),
            Source::Raw(m) => m.populate(range),
        }
    }

    fn release(&self, range: Range<usize>) {
        match self {
            Source::Npy(m) => m.release(range),
            Source::Raw(m) => m.release(range),
        }
    }
}

struct Mapped<T: Element> {
    src: Source,
    path: PathBuf,
    shape: Vec<usize>,
    fortran: bool,
    big_endian: bool,
    grid: ChunkGrid,
    /// The ranges the latest blocks mapped in (older ones are released).
    resident: Resident,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> PlanNode for Mapped<T> {
    fn op(&self) -> String {
        format!("from_file({})", self.path.display())
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![]
    }
    fn describe(&self) -> Option<String> {
        Some(if self.big_endian && T::DTYPE.size() > 1 {
            "memory-mapped; big-endian, so each block is a byte-swapped copy".into()
        } else {
            "memory-mapped; blocks are views of the file".into()
        })
    }
    fn own_task_bytes(&self) -> usize {
        // Views cost nothing; a byte-swapped copy costs a block.
        if self.big_endian && T::DTYPE.size() > 1 {
            self.grid.max_block_len() * T::DTYPE.size()
        } else {
            0
        }
    }
}

impl<T: Element> Mapped<T> {
    /// The whole file as a typed view, or `None` when the data is not aligned for `T`.
    fn view(&self) -> Result<Option<ArrayViewD<'_, T>>> {
        let bytes = self.src.data();
        let Ok(values) = T::from_bytes(bytes) else {
            return Ok(None);
        };
        self.shaped(values).map(Some)
    }

    fn shaped<'a, U>(&self, values: &'a [U]) -> Result<ArrayViewD<'a, U>> {
        let shape = IxDyn(&self.shape);
        let view = if self.fortran {
            ArrayViewD::from_shape(shape.f(), values)
        } else {
            ArrayViewD::from_shape(shape, values)
        };
        view.map_err(|e| {
            Error::format(
                &self.path,
                format!("data does not fit shape {:?}: {e}", self.shape),
            )
        })
    }

    /// Maps the pages of a dense region in one go: one system call instead of a page fault per
    /// few pages, which is most of the cost of a reduction over a warm file. Sparse regions (a
    /// narrow column of a C-order file) are left to page faults.
    fn prefault(&self, region: &[Range<usize>]) {
        if let Some(bytes) = dense_span(region, &self.strides(), T::DTYPE.size()) {
            self.resident
                .touch(bytes, |r| self.src.populate(r), |r| self.src.release(r));
        }
    }

    /// Element strides of the file's layout.
    fn strides(&self) -> Vec<usize> {
        let nd = self.shape.len();
        let mut strides = vec![1usize; nd];
        if self.fortran {
            for ax in 1..nd {
                strides[ax] = strides[ax - 1] * self.shape[ax - 1];
            }
        } else {
            for ax in (0..nd.saturating_sub(1)).rev() {
                strides[ax] = strides[ax + 1] * self.shape[ax + 1];
            }
        }
        strides
    }

    /// Reads a region element by element (for unaligned data).
    fn read_unaligned(&self, region: &[Range<usize>]) -> Result<ArrayD<T>> {
        let bytes = self.src.data();
        let size = T::DTYPE.size();
        let nd = self.shape.len();
        let strides = self.strides();
        let rshape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        let mut buf = vec![0u8; size];
        let mut err = None;
        let out = ArrayD::from_shape_fn(IxDyn(&rshape), |idx| {
            let flat: usize = (0..nd)
                .map(|ax| (region[ax].start + idx[ax]) * strides[ax])
                .sum();
            buf.copy_from_slice(&bytes[flat * size..(flat + 1) * size]);
            match T::from_bytes(&buf) {
                Ok(v) => v[0],
                Err(e) => {
                    err.get_or_insert(e);
                    T::default()
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl<T: Element> Node<T> for Mapped<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let info = slice_info(region);
        if T::DTYPE == DType::Bool {
            // Check only the bytes of this region (a whole-file check per block would be
            // quadratic), then convert: bool blocks are copies.
            let bytes = self.shaped(self.src.data())?.slice_move(info.as_slice());
            if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                return Err(Error::format(
                    &self.path,
                    format!("byte value {b} in region {region:?} is not a valid bool (0 or 1)"),
                ));
            }
            return Ok(bytes.mapv(|b| T::from_bool(b != 0)).into());
        }
        self.prefault(region);
        let mut block: Block<'_, T> = match self.view()? {
            Some(v) => v.slice_move(info.as_slice()).into(),
            None => self.read_unaligned(region)?.into(),
        };
        if self.big_endian && T::DTYPE.size() > 1 {
            let mut owned = block.into_owned();
            owned.mapv_inplace(Element::swap_bytes);
            block = owned.into();
        }
        Ok(block)
    }
}

fn check_dtype<T: Element>(path: &Path, found: DType) -> Result<()> {
    if found != T::DTYPE {
        return Err(Error::DType(format!(
            "{} holds {found}, not {}",
            path.display(),
            T::DTYPE
        )));
    }
    Ok(())
}

impl<T: Element> ChunkedArray<T> {
    /// Opens a `.npy` file through a read-only memory map; blocks are zero-copy views of the
    /// file (C or Fortran order; big-endian files are byte-swapped block by block).
    ///
    /// # Errors
    /// A missing, truncated or malformed file, an unsupported dtype, a dtype other than `T`,
    /// or invalid chunks.
    pub fn from_npy(path: impl AsRef<Path>, chunks: impl Into<Chunks>) -> Result<Self> {
        let path = path.as_ref();
        let map = NpyMap::open(path)?;
        let h = map.header().clone();
        check_dtype::<T>(path, h.dtype)?;
        let grid = grid_for::<T>(&h.shape, chunks)?;
        Ok(Self::from_node(Arc::new(Mapped {
            src: Source::Npy(map),
            path: path.to_owned(),
            shape: h.shape,
            fortran: h.fortran_order,
            big_endian: h.big_endian,
            grid,
            resident: Resident::default(),
            _t: std::marker::PhantomData,
        })))
    }

    /// Opens a raw binary file holding one array of `shape` (elements of type `T`) in `order`,
    /// starting at byte `offset`, through a read-only memory map.
    ///
    /// # Errors
    /// A missing file, a file whose size does not match, or invalid chunks.
    pub fn from_raw(
        path: impl AsRef<Path>,
        shape: &[usize],
        order: Order,
        big_endian: bool,
        offset: usize,
        chunks: impl Into<Chunks>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let map = RawMap::open(path, T::DTYPE, shape, order, big_endian, offset)?;
        let grid = grid_for::<T>(shape, chunks)?;
        Ok(Self::from_node(Arc::new(Mapped {
            src: Source::Raw(map),
            path: path.to_owned(),
            shape: shape.to_vec(),
            fortran: order == Order::F,
            big_endian,
            grid,
            resident: Resident::default(),
            _t: std::marker::PhantomData,
        })))
    }
}
