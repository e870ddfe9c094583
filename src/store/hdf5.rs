//! HDF5 datasets through `hdf5-metno` (the maintained fork of the `hdf5` crate): read chunked
//! and contiguous datasets with any filter the library has, write chunked datasets with
//! optional deflate and shuffle.
//!
//! The HDF5 library serialises its calls behind one lock, compression included. Chunked
//! datasets whose filters are only shuffle and deflate therefore bypass its filter path (module
//! `store::hdf5_chunks`): chunks are located under the lock, read with `pread`
//! and decoded in parallel; written chunks are filtered in the workers and appended by one
//! writer thread fed through a bounded channel. Other layouts and filters go through the
//! library.
//!
//! Outputs get the attribute `tessera_complete` = false when the dataset is created and true
//! once every block is written; a failed write removes the dataset.

use crate::array::ChunkedArray;
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::exec::{self, BlockSink, ExecContext, ExecOptions, RawSink};
use crate::plan::{for_each_index, slice_info, Block, Node, PlanNode};
use crate::store::hdf5_chunks::{self, ChunkBuf, Pipeline};
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::{H5Type, Hyperslab, Selection};
use ndarray::{ArrayD, ArrayViewD, IxDyn, SliceInfo, SliceInfoElem};
use rayon::prelude::*;
use std::ops::Range;
use std::os::unix::fs::FileExt;
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
    /// Set when chunks can be read around the library's filter path.
    direct: Option<Direct>,
    _t: std::marker::PhantomData<fn() -> T>,
}

/// What reading chunks directly needs: our own handle on the file, the chunk shape and the
/// filters to undo.
struct Direct {
    file: std::fs::File,
    chunk: Vec<usize>,
    pipeline: Pipeline,
}

/// Whether the chunks of `ds` can be read directly as elements of `T`: a chunked dataset of
/// rank >= 1 whose stored type is `T` in this machine's byte order, with only shuffle and
/// deflate filters, in a file without a user block (chunk addresses are then file offsets).
fn direct_reader<T: H5Element>(
    path: &Path,
    file: &hdf5::File,
    ds: &hdf5::Dataset,
) -> Option<Direct> {
    let chunk = ds.chunk()?;
    if chunk.is_empty() || chunk.contains(&0) {
        return None;
    }
    let native = hdf5::Datatype::from_type::<T>().ok()?;
    if ds.dtype().ok()? != native {
        return None;
    }
    if file.create_plist().ok()?.userblock() != 0 {
        return None;
    }
    let pipeline = Pipeline::of(&ds.filters())?;
    let handle = std::fs::File::open(path).ok()?;
    Some(Direct {
        file: handle,
        chunk,
        pipeline,
    })
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
        // The block and the pieces it is assembled from, plus a chunk being decoded (stored,
        // inflated, unshuffled) when chunks are read directly.
        let chunk = self
            .direct
            .as_ref()
            .map_or(0, |d| 3 * d.chunk.iter().product::<usize>());
        (2 * self.grid.max_block_len() + chunk) * T::DTYPE.size()
    }
}

fn selection(region: &[Range<usize>]) -> Result<Selection> {
    let info = SliceInfo::<Vec<SliceInfoElem>, IxDyn, IxDyn>::try_from(slice_info(region))
        .map_err(|e| Error::Shape(format!("internal: HDF5 selection: {e}")))?;
    let slab = Hyperslab::try_from(info)
        .map_err(|e| Error::Shape(format!("internal: HDF5 selection: {e}")))?;
    Ok(Selection::from(slab))
}

impl<T: H5Element> Hdf5Source<T> {
    /// Reads `region` through the library (any layout, any filter it has).
    fn library_read(&self, region: &[Range<usize>]) -> Result<ArrayD<T>> {
        // HDF5 reports only the deepest error of its stack: name the filters, since a filter
        // the library lacks (lzf, a plugin) is the usual cause.
        let what = || {
            format!(
                "reading {} region {region:?} (dataset filters: {:?})",
                self.name,
                self.ds.filters()
            )
        };
        if region.is_empty() {
            self.ds
                .read_dyn::<T>()
                .map_err(|e| herr(&self.path, &what(), e))
        } else {
            self.ds
                .read_slice::<T, _, IxDyn>(selection(region)?)
                .map_err(|e| herr(&self.path, &what(), e))
        }
    }

    /// Reads `region` chunk by chunk around the library: each chunk is located under the
    /// library's lock, then read and decoded in parallel. Chunks never written (fill values)
    /// are read through the library.
    fn direct_read(&self, direct: &Direct, region: &[Range<usize>]) -> Result<ArrayD<T>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        let chunk = &direct.chunk;
        let chunk_ranges: Vec<Range<usize>> = region
            .iter()
            .zip(chunk)
            .map(|(r, &c)| r.start / c..r.end.div_ceil(c))
            .collect();
        let mut coords = Vec::new();
        for_each_index(&chunk_ranges, |c| {
            coords.push(c.to_vec());
            Ok(())
        })?;
        let elem = T::DTYPE.size();
        let chunk_len: usize = chunk.iter().product();
        let mut out = ArrayD::from_elem(IxDyn(&shape), T::default());
        // Chunks fill disjoint parts of `out` from parallel tasks.
        let sink = RawSink::new(out.as_mut_ptr(), &shape);
        coords.par_iter().try_for_each(|c| -> Result<()> {
            let start: Vec<usize> = c.iter().zip(chunk).map(|(&i, &n)| i * n).collect();
            // The part of the chunk inside `region`, in dataset, output and chunk coordinates.
            let inter: Vec<Range<usize>> = region
                .iter()
                .zip(start.iter().zip(chunk))
                .map(|(r, (&s, &n))| r.start.max(s)..r.end.min(s + n))
                .collect();
            let in_out: Vec<Range<usize>> = inter
                .iter()
                .zip(region)
                .map(|(r, o)| r.start - o.start..r.end - o.start)
                .collect();
            let Some(loc) = hdf5_chunks::locate(&self.ds, &start) else {
                let values = self.library_read(&inter)?;
                return sink.write_block(&in_out, values.view());
            };
            let fail = |e: &dyn std::fmt::Display| {
                Error::format(
                    &self.path,
                    format!(
                        "{}: chunk {c:?} (elements from {start:?}, {} bytes at file offset {}): {e}",
                        self.name, loc.size, loc.addr
                    ),
                )
            };
            let mut buf = ChunkBuf::zeroed(chunk_len * elem);
            let stored_len = usize::try_from(loc.size).unwrap_or(usize::MAX);
            let all_skipped =
                (0..direct.pipeline.len()).all(|p| p < 32 && loc.mask & (1 << p) != 0);
            if all_skipped && stored_len == chunk_len * elem {
                direct
                    .file
                    .read_exact_at(buf.bytes_mut(), loc.addr)
                    .map_err(|e| fail(&e))?;
            } else {
                let mut stored = vec![0u8; stored_len];
                direct
                    .file
                    .read_exact_at(&mut stored, loc.addr)
                    .map_err(|e| fail(&e))?;
                direct
                    .pipeline
                    .decode(stored, loc.mask, elem, buf.bytes_mut())
                    .map_err(|e| fail(&e))?;
            }
            let values = buf.elements::<T>().map_err(|e| fail(&e))?;
            let view = ndarray::ArrayViewD::from_shape(IxDyn(chunk), values)
                .map_err(|e| Error::Shape(format!("internal: {e}")))?;
            let in_chunk: Vec<Range<usize>> = inter
                .iter()
                .zip(&start)
                .map(|(r, &s)| r.start - s..r.end - s)
                .collect();
            sink.write_block(&in_out, view.slice(slice_info(&in_chunk).as_slice()))
        })?;
        Ok(out)
    }
}

impl<T: H5Element> Node<T> for Hdf5Source<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        if shape.contains(&0) {
            return Ok(ArrayD::from_elem(IxDyn(&shape), T::default()).into());
        }
        let data = match &self.direct {
            Some(direct) if !region.is_empty() => self.direct_read(direct, region)?,
            _ => self.library_read(region)?,
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

/// Filters blocks (each one whole chunk) in the workers and hands them to the single writer
/// thread through a bounded channel.
struct ChunkSink<'a> {
    tx: std::sync::mpsc::SyncSender<(Vec<usize>, Vec<u8>)>,
    chunk: &'a [usize],
    pipeline: &'a Pipeline,
    path: &'a Path,
}

impl<T: H5Element> BlockSink<T> for ChunkSink<'_> {
    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        let offset: Vec<usize> = region.iter().map(|r| r.start).collect();
        let internal = || Error::Shape(format!("internal: block {region:?} is not contiguous"));
        let elem = T::DTYPE.size();
        let bytes = if block.shape() == self.chunk {
            let std = block.as_standard_layout();
            self.pipeline
                .encode(T::to_bytes(std.as_slice().ok_or_else(internal)?), elem)
        } else {
            // An edge block: stored chunks are always whole, padded past the dataset's end.
            let mut padded = ArrayD::from_elem(IxDyn(self.chunk), T::default());
            let local: Vec<Range<usize>> = region.iter().map(|r| 0..r.len()).collect();
            padded
                .slice_mut(slice_info(&local).as_slice())
                .assign(&block);
            self.pipeline
                .encode(T::to_bytes(padded.as_slice().ok_or_else(internal)?), elem)
        };
        self.tx
            .send((offset, bytes))
            .map_err(|_| Error::format(self.path, "the HDF5 writer stopped"))
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
        if ds
            .attr(COMPLETE_ATTRIBUTE)
            .and_then(|a| a.read_scalar::<bool>())
            .is_ok_and(|done| !done)
        {
            return Err(Error::format(
                path,
                format!("{dataset} is incomplete: its write was interrupted ({COMPLETE_ATTRIBUTE} is false); write it again"),
            ));
        }
        let shape = ds.shape();
        let native = ds.chunk();
        let grid =
            ChunkGrid::new_aligned(&shape, &chunks.into(), T::DTYPE.size(), native.as_deref())?;
        let direct = direct_reader::<T>(path, &file, &ds);
        Ok(Self::from_node(Arc::new(Hdf5Source {
            direct,
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
        let (per_task, shared) = writer_bytes(&self.grid().max_chunk_shape(), T::DTYPE, opts);
        exec::check_memory_with(self.node().as_ref(), opts, per_task, shared)?;
        let existed = path.exists();
        let file = if existed {
            hdf5::File::open_rw(path).map_err(|e| herr(path, "not a writable HDF5 file", e))?
        } else {
            hdf5::File::create(path).map_err(|e| herr(path, "cannot create the file", e))?
        };
        let name = dataset.trim_start_matches('/');
        let replacing = file.link_exists(name);
        if replacing && !hopts.overwrite {
            return Err(Error::Exists(PathBuf::from(format!(
                "{}:{dataset}",
                path.display()
            ))));
        }
        // Stored chunks all have one shape: make the blocks regular first.
        let (data, chunk) = self.regular_blocks()?;
        // The first group this write creates: removed with everything below it on failure.
        let mut created_group: Option<String> = None;
        // Written aside under a temporary name in the same group, then renamed over the old one.
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        let leaf = parts.last().copied().unwrap_or("data");
        let aside = format!(".{leaf}.tessera-partial-{}", std::process::id());
        let aside_path = match name.rsplit_once('/') {
            Some((parent, _)) => format!("{parent}/{aside}"),
            None => aside.clone(),
        };
        let result = (|| -> Result<()> {
            // Groups on the way to the dataset.
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
            if group.link_exists(&aside) {
                let _ = group.unlink(&aside);
            }
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
                .create(aside.as_str())
                .map_err(|e| herr(path, &format!("creating {dataset}"), e))?;
            let attr = ds
                .new_attr::<bool>()
                .create(COMPLETE_ATTRIBUTE)
                .map_err(|e| herr(path, "creating the completion attribute", e))?;
            attr.write_scalar(&false)
                .map_err(|e| herr(path, "writing the completion attribute", e))?;
            let ctx = ExecContext::new(opts.clone())?;
            match Pipeline::of(&ds.filters()).filter(|_| self.ndim() > 0) {
                Some(pipeline) => write_chunks(&data, &ds, &chunk, &pipeline, path, &ctx)?,
                None => {
                    let sink = DatasetSink { ds: &ds, path };
                    exec::run(data.node().as_ref(), &sink, &ctx)?;
                }
            }
            attr.write_scalar(&true)
                .map_err(|e| herr(path, "writing the completion attribute", e))?;
            drop(attr);
            drop(ds);
            // Publish: the complete dataset takes the old one's name.
            if replacing {
                group
                    .unlink(leaf)
                    .map_err(|e| herr(path, "removing the old dataset", e))?;
            }
            group
                .relink(&aside, leaf)
                .map_err(|e| herr(path, &format!("renaming the new dataset to {dataset}"), e))?;
            file.flush().map_err(|e| herr(path, "flushing", e))
        })();
        if result.is_err() {
            let _ = file.unlink(&aside_path);
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

/// Chunks the single writer may have queued: one per worker thread.
fn writer_queue(opts: &ExecOptions) -> usize {
    opts.threads.max(1)
}

/// Memory the chunk writer adds: per task, a padded copy, its shuffle and its deflate output;
/// shared, the queued chunks and the one being written.
fn writer_bytes(chunk: &[usize], dtype: DType, opts: &ExecOptions) -> (usize, usize) {
    let bytes = chunk
        .iter()
        .map(|&c| c.max(1))
        .product::<usize>()
        .saturating_mul(dtype.size());
    (
        bytes.saturating_mul(3),
        bytes.saturating_mul(writer_queue(opts) + 1),
    )
}

/// Runs `data` (blocks of exactly `chunk`) into `ds`: workers filter each block, one writer
/// thread appends the chunks in whatever order they finish.
fn write_chunks<T: H5Element>(
    data: &ChunkedArray<T>,
    ds: &hdf5::Dataset,
    chunk: &[usize],
    pipeline: &Pipeline,
    path: &Path,
    ctx: &ExecContext,
) -> Result<()> {
    let (tx, rx) =
        std::sync::mpsc::sync_channel::<(Vec<usize>, Vec<u8>)>(writer_queue(ctx.options()));
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            for (offset, bytes) in rx {
                hdf5_chunks::write_chunk(ds, path, &offset, &bytes)?;
            }
            Ok(())
        });
        let sink = ChunkSink {
            tx,
            chunk,
            pipeline,
            path,
        };
        let computed = exec::run(data.node().as_ref(), &sink, ctx);
        // Closing the channel ends the writer once the queue is drained.
        drop(sink);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::format(path, "the HDF5 writer thread panicked")));
        // A writer error explains why the workers' sends failed: report it first.
        written.and(computed)
    })
}
