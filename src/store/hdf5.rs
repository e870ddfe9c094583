//! HDF5 datasets through `hdf5-metno` (the maintained fork of the `hdf5` crate): read chunked
//! and contiguous datasets with any filter the library has, write chunked datasets with
//! optional deflate and shuffle. The HDF5 library serialises its calls behind one lock, so
//! blocks are computed in parallel but read and written one at a time.
//!
//! Outputs get the attribute `tessera_complete` = false when the dataset is created and true
//! once every block is written; a failed write removes the dataset.

use crate::array::ChunkedArray;
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::exec::{self, BlockSink, ExecContext, ExecOptions};
use crate::plan::{slice_info, Block, Node, PlanNode};
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::{H5Type, Hyperslab, Selection};
use ndarray::{ArrayD, ArrayViewD, IxDyn, SliceInfo, SliceInfoElem};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The attribute written last, once every block of an output is stored.
pub const COMPLETE_ATTRIBUTE: &str = "tessera_complete";

/// Element types HDF5 can read and write directly.
pub trait H5Element: Element + H5Type {}
impl<T: Element + H5Type> H5Element for T {}

fn herr(path: &Path, what: &str, e: hdf5::Error) -> Error {
    Error::format(path, format!("{what}: {e}"))
}

/// What `info` shows of a dataset.
pub struct Hdf5Info {
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Chunk shape, `None` for a contiguous dataset.
    pub chunk_shape: Option<Vec<usize>>,
    /// The filters, as the library names them.
    pub filters: String,
    /// tessera's completion attribute, when present.
    pub complete: Option<bool>,
}

const SUPPORTED: &str = "bool, int8..int64, uint8..uint64, float32, float64 are";

fn dtype_of(path: &Path, ds: &hdf5::Dataset) -> Result<DType> {
    let name = ds.name();
    let desc = ds.dtype().and_then(|t| t.to_descriptor()).map_err(|e| {
        // The library describes no 2-byte float: name it as NumPy does.
        let size = ds.dtype().map(|t| t.size()).unwrap_or(0);
        let what = if size == 2 && e.to_string().contains("float") {
            "float16".to_string()
        } else {
            e.to_string()
        };
        Error::DType(format!(
            "{}:{name}: its HDF5 datatype ({what}) is not supported ({SUPPORTED})",
            path.display()
        ))
    })?;
    Ok(match desc {
        TypeDescriptor::Boolean => DType::Bool,
        TypeDescriptor::Integer(IntSize::U1) => DType::I8,
        TypeDescriptor::Integer(IntSize::U2) => DType::I16,
        TypeDescriptor::Integer(IntSize::U4) => DType::I32,
        TypeDescriptor::Integer(IntSize::U8) => DType::I64,
        TypeDescriptor::Unsigned(IntSize::U1) => DType::U8,
        TypeDescriptor::Unsigned(IntSize::U2) => DType::U16,
        TypeDescriptor::Unsigned(IntSize::U4) => DType::U32,
        TypeDescriptor::Unsigned(IntSize::U8) => DType::U64,
        TypeDescriptor::Float(FloatSize::U4) => DType::F32,
        TypeDescriptor::Float(FloatSize::U8) => DType::F64,
        other => {
            let kind = match other {
                TypeDescriptor::Compound(_) => "compound (complex numbers or records)".to_string(),
                TypeDescriptor::Enum(_) => "enum".to_string(),
                TypeDescriptor::FixedAscii(_)
                | TypeDescriptor::FixedUnicode(_)
                | TypeDescriptor::VarLenAscii
                | TypeDescriptor::VarLenUnicode => "string".to_string(),
                TypeDescriptor::Float(size) => format!("float of {size:?}"),
                _ => "this".to_string(),
            };
            return Err(Error::DType(format!(
                "{}:{name}: the {kind} HDF5 datatype is not supported ({SUPPORTED})",
                path.display()
            )));
        }
    })
}

fn open_dataset(path: &Path, dataset: &str) -> Result<(hdf5::File, hdf5::Dataset)> {
    if !path.is_file() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such HDF5 file"),
        ));
    }
    let file = hdf5::File::open(path).map_err(|e| herr(path, "not a readable HDF5 file", e))?;
    let ds = file
        .dataset(dataset)
        .map_err(|e| herr(path, &format!("no dataset {dataset}"), e))?;
    Ok((file, ds))
}

/// Describes the dataset `dataset` of the HDF5 file at `path`.
///
/// # Errors
/// A missing file or dataset, or an unsupported type.
pub fn info(path: &Path, dataset: &str) -> Result<Hdf5Info> {
    let (_file, ds) = open_dataset(path, dataset)?;
    let complete = ds
        .attr(COMPLETE_ATTRIBUTE)
        .ok()
        .and_then(|a| a.read_scalar::<bool>().ok());
    Ok(Hdf5Info {
        shape: ds.shape(),
        dtype: dtype_of(path, &ds)?,
        chunk_shape: ds.chunk(),
        filters: format!("{:?}", ds.filters()),
        complete,
    })
}

struct Hdf5Source<T: H5Element> {
    ds: hdf5::Dataset,
    _file: hdf5::File,
    path: PathBuf,
    name: String,
    grid: ChunkGrid,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: H5Element> PlanNode for Hdf5Source<T> {
    fn op(&self) -> String {
        format!("from_hdf5({}:{})", self.path.display(), self.name)
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
    fn own_task_bytes(&self) -> usize {
        2 * self.grid.max_block_len() * T::DTYPE.size()
    }
}

fn selection(region: &[Range<usize>]) -> Result<Selection> {
    let info = SliceInfo::<Vec<SliceInfoElem>, IxDyn, IxDyn>::try_from(slice_info(region))
        .map_err(|e| Error::Shape(format!("internal: HDF5 selection: {e}")))?;
    let slab = Hyperslab::try_from(info)
        .map_err(|e| Error::Shape(format!("internal: HDF5 selection: {e}")))?;
    Ok(Selection::from(slab))
}

impl<T: H5Element> Node<T> for Hdf5Source<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        if shape.contains(&0) {
            return Ok(ArrayD::from_elem(IxDyn(&shape), T::default()).into());
        }
        // HDF5 reports only the deepest error of its stack: name the filters, since a filter
        // the library lacks (lzf, a plugin) is the usual cause.
        let what = || {
            format!(
                "reading {} region {region:?} (dataset filters: {:?})",
                self.name,
                self.ds.filters()
            )
        };
        let data: ArrayD<T> = if region.is_empty() {
            self.ds
                .read_dyn::<T>()
                .map_err(|e| herr(&self.path, &what(), e))?
        } else {
            self.ds
                .read_slice::<T, _, IxDyn>(selection(region)?)
                .map_err(|e| herr(&self.path, &what(), e))?
        };
        Ok(data.into())
    }
}

/// Writes blocks into a dataset, one HDF5 call at a time (the library's lock).
struct DatasetSink<'a> {
    ds: &'a hdf5::Dataset,
    path: &'a Path,
}

impl<T: H5Element> BlockSink<T> for DatasetSink<'_> {
    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        let std = block.as_standard_layout();
        let r = if region.is_empty() {
            self.ds.write_raw(std.as_slice().unwrap_or(&[]))
        } else {
            self.ds.write_slice(&std, selection(region)?)
        };
        r.map_err(|e| herr(self.path, &format!("writing region {region:?}"), e))
    }
}

/// How to write an HDF5 dataset.
#[derive(Clone, Debug, Default)]
pub struct Hdf5WriteOptions {
    /// Deflate level (0-9), or none.
    pub deflate: Option<u8>,
    /// Byte shuffle before deflate.
    pub shuffle: bool,
    /// Replace an existing dataset.
    pub overwrite: bool,
}

impl<T: H5Element> ChunkedArray<T> {
    /// Opens dataset `dataset` (like `/group/x`) of the HDF5 file at `path`. With
    /// [`Chunks::Auto`], blocks are whole multiples of the dataset's own chunks, about 128 MiB.
    ///
    /// # Errors
    /// A missing file or dataset, another dtype than `T`, or invalid chunks.
    pub fn from_hdf5(
        path: impl AsRef<Path>,
        dataset: &str,
        chunks: impl Into<Chunks>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let (file, ds) = open_dataset(path, dataset)?;
        let dtype = dtype_of(path, &ds)?;
        if dtype != T::DTYPE {
            return Err(Error::DType(format!(
                "{}:{dataset} holds {dtype}, not {}",
                path.display(),
                T::DTYPE
            )));
        }
        let shape = ds.shape();
        let native = ds.chunk();
        let grid =
            ChunkGrid::new_aligned(&shape, &chunks.into(), T::DTYPE.size(), native.as_deref())?;
        Ok(Self::from_node(Arc::new(Hdf5Source {
            ds,
            _file: file,
            path: path.to_owned(),
            name: dataset.to_string(),
            grid,
            _t: std::marker::PhantomData,
        })))
    }

    /// Writes the array as a chunked dataset `dataset` of the HDF5 file at `path` (created if
    /// missing, with the groups on the way), one HDF5 chunk per block.
    ///
    /// # Errors
    /// An existing dataset without `overwrite`, an unwritable file, or any error of the plan.
    pub fn to_hdf5(
        &self,
        path: impl AsRef<Path>,
        dataset: &str,
        hopts: &Hdf5WriteOptions,
        opts: &ExecOptions,
    ) -> Result<()> {
        let path = path.as_ref();
        exec::check_memory(self.node().as_ref(), opts)?;
        let existed = path.exists();
        let file = if existed {
            hdf5::File::open_rw(path).map_err(|e| herr(path, "not a writable HDF5 file", e))?
        } else {
            hdf5::File::create(path).map_err(|e| herr(path, "cannot create the file", e))?
        };
        let name = dataset.trim_start_matches('/');
        if file.link_exists(name) {
            if !hopts.overwrite {
                return Err(Error::Exists(PathBuf::from(format!(
                    "{}:{dataset}",
                    path.display()
                ))));
            }
            file.unlink(name)
                .map_err(|e| herr(path, "removing the old dataset", e))?;
        }
        // Stored chunks all have one shape: make the blocks regular first.
        let (data, chunk) = self.regular_blocks()?;
        // The first group this write creates: removed with everything below it on failure.
        let mut created_group: Option<String> = None;
        let result = (|| -> Result<()> {
            // Groups on the way to the dataset.
            let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
            let mut group = file
                .as_group()
                .map_err(|e| herr(path, "opening the root group", e))?;
            for (k, p) in parts[..parts.len().saturating_sub(1)].iter().enumerate() {
                group = match group.group(p) {
                    Ok(g) => g,
                    Err(_) => {
                        if created_group.is_none() {
                            created_group = Some(parts[..=k].join("/"));
                        }
                        group
                            .create_group(p)
                            .map_err(|e| herr(path, &format!("creating group {p}"), e))?
                    }
                };
            }
            let leaf = parts.last().copied().unwrap_or("data");
            let builder = group.new_dataset::<T>().shape(self.shape().to_vec());
            let builder = if self.ndim() > 0 {
                builder.chunk(chunk.clone())
            } else {
                builder
            };
            // Filters need a chunked layout, which a 0-d dataset cannot have.
            let filtered = self.ndim() > 0;
            let builder = if hopts.shuffle && filtered {
                builder.shuffle()
            } else {
                builder
            };
            let builder = match hopts.deflate {
                Some(level) if filtered => builder.deflate(level),
                _ => builder,
            };
            let ds = builder
                .create(leaf)
                .map_err(|e| herr(path, &format!("creating {dataset}"), e))?;
            let attr = ds
                .new_attr::<bool>()
                .create(COMPLETE_ATTRIBUTE)
                .map_err(|e| herr(path, "creating the completion attribute", e))?;
            attr.write_scalar(&false)
                .map_err(|e| herr(path, "writing the completion attribute", e))?;
            {
                let sink = DatasetSink { ds: &ds, path };
                let ctx = ExecContext::new(opts.clone())?;
                exec::run(data.node().as_ref(), &sink, &ctx)?;
            }
            attr.write_scalar(&true)
                .map_err(|e| herr(path, "writing the completion attribute", e))?;
            file.flush().map_err(|e| herr(path, "flushing", e))
        })();
        if result.is_err() {
            let _ = file.unlink(name);
            if let Some(g) = &created_group {
                let _ = file.unlink(g);
            }
            drop(file);
            if !existed {
                let _ = std::fs::remove_file(path);
            }
        }
        result
    }
}
