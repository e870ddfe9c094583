//! HDF5 datasets through `hdf5-metno` (the maintained fork of the `hdf5` crate): read chunked
//! and contiguous datasets with any filter the library has, write chunked datasets with
//! optional deflate and shuffle.
//!
//! The HDF5 library serialises its calls behind one lock, compression included. Chunked
//! datasets whose filters are only shuffle, deflate and h5py's LZF therefore bypass its filter
//! path (module
//! `store::hdf5_chunks`): chunks are located under the lock, read with `pread`
//! and decoded in parallel; written chunks are filtered in the workers and appended by one
//! writer thread fed through a bounded channel. An unfiltered output is created with every
//! chunk allocated, and the workers write their blocks (or a distance tile's strips) at the
//! chunks' file offsets with `pwrite`. Unfiltered chunks and contiguous datasets are read as
//! views of a memory map of the file where a block's elements lie there in one piece. Other
//! layouts and filters go through the library.
//!
//! Outputs get the attribute `tessera_complete` = false when the dataset is created and true
//! once every block is written; a failed write removes the dataset.

use crate::array::ChunkedArray;
use crate::chunks::{AxisChunks, ChunkGrid, Chunks};
use crate::element::{plain_bytes_mut, ChunkBuf, DType, Element};
use crate::error::{Error, Result};
use crate::exec::{self, BlockSink, ExecContext, ExecOptions, PartWriter, RawSink};
use crate::plan::{slice_info, Block, Node, PlanNode};
use crate::store::hdf5_chunks::{self, Pipeline, Scratch};
use crate::store::mmap::{self, dense_span, map_handle, Resident};
use crate::store::parts::ChunkPlacer;
use hdf5::dataset::{AllocTime, FillTime};
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
    let text = plain_message(&e.to_string());
    // A library older than the file's format knows only that a version is wrong.
    let hint = if text.contains("bad version number") {
        let (major, minor, release) = hdf5::library_version();
        format!(
            " (the file may use a newer HDF5 format than the HDF5 library tessera was built with, {major}.{minor}.{release}, can read; h5py writes such files with libver=\"latest\")"
        )
    } else if text.contains("unable to lock file") {
        " (another process has the file open for writing, or is writing it: h5py locks a \
         file while it is open in mode 'a' or 'w'; close it there and run again)"
            .to_string()
    } else {
        String::new()
    };
    Error::format(path, format!("{what}: {text}{hint}"))
}

/// The HDF5 library's message without its dump of a failed system call (time, file name,
/// descriptor, buffer address, sizes over several lines): `file write failed: No space left
/// on device (os error 28)`.
pub(crate) fn plain_message(text: &str) -> String {
    let Some((head, dump)) = text.split_once(": time = ") else {
        return text.to_string();
    };
    let errno = dump
        .split_once("errno = ")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|n| !n.is_empty());
    let said = dump
        .split_once("error message = '")
        .and_then(|(_, r)| r.split_once('\''))
        .map(|(m, _)| m);
    match (said, errno) {
        (Some(m), Some(n)) => format!("{head}: {m} (os error {n})"),
        (Some(m), None) => format!("{head}: {m}"),
        _ => head.to_string(),
    }
}

/// What `info` shows of a dataset.
pub struct Hdf5Info {
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// Chunk shape, `None` for a dataset that is not chunked.
    pub chunk_shape: Option<Vec<usize>>,
    /// The storage layout: `chunked`, `contiguous`, `compact` (in the object header) or
    /// `virtual (mapped from other datasets)`.
    pub layout: &'static str,
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
                TypeDescriptor::VarLenArray(_) => "variable-length".to_string(),
                TypeDescriptor::FixedArray(..) => "array".to_string(),
                _ => "reference".to_string(),
            };
            return Err(Error::DType(format!(
                "{}:{name}: its {kind} HDF5 datatype is not supported ({SUPPORTED})",
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
    // A null dataspace (h5py's `h5py.Empty`) holds no array at all, not even a 0-d one.
    if ds.space().is_ok_and(|s| s.is_null()) {
        return Err(Error::format(
            path,
            format!(
                "{dataset} has a null dataspace (h5py.Empty): it holds no array, not even a \
                 0-d one"
            ),
        ));
    }
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
        layout: match ds.layout() {
            hdf5::dataset::Layout::Chunked => "chunked",
            hdf5::dataset::Layout::Contiguous => "contiguous",
            hdf5::dataset::Layout::Compact => "compact",
            #[allow(unreachable_patterns)]
            _ => "virtual (mapped from other datasets)",
        },
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
    /// Set when the dataset is one contiguous run of raw elements in the file.
    contiguous: Option<Contiguous>,
    /// The file mapped read-only, when its raw elements can be read as views: a contiguous
    /// dataset, or a chunked one without filters.
    map: Option<FileMap>,
    _t: std::marker::PhantomData<fn() -> T>,
}

/// Whether the chunks of `ds` are whole rows (they span every axis but the first) of at least
/// 8 MiB, all written, at most 65536 of them, and not laid end to end in the order of their
/// rows: blocks of several such chunks cannot be views of the file.
fn rows_out_of_order(ds: &hdf5::Dataset, chunk: &[usize], shape: &[usize], elem: usize) -> bool {
    let Some(bytes) = chunk.iter().try_fold(elem, |acc, &c| acc.checked_mul(c)) else {
        return false;
    };
    if shape.is_empty() || chunk[1..] != shape[1..] || bytes < 8 << 20 {
        return false;
    }
    let n = shape[0].div_ceil(chunk[0]);
    if !(2..=65536).contains(&n) {
        return false;
    }
    let origin = vec![0; shape.len()];
    matches!(chunk_run(ds, chunk, &origin, 0..n, bytes), Run::Scattered)
}

/// Where a run of chunks lies in the file.
enum Run {
    /// One of them was never written.
    Unwritten,
    /// All written, but not each stored whole and unfiltered right after the one before.
    Scattered,
    /// Stored whole and unfiltered, end to end in order, from this file address.
    EndToEnd(u64),
}

/// Where the chunks `rows` (chunk indices along the first axis; the other axes start at
/// `origin`) of `bytes` each lie in the file of `ds`. Every chunk is located, so that a chunk
/// never written is told from chunks out of order.
fn chunk_run(
    ds: &hdf5::Dataset,
    chunk: &[usize],
    origin: &[usize],
    rows: Range<usize>,
    bytes: usize,
) -> Run {
    let mut start = origin.to_vec();
    let mut first = None;
    let mut end_to_end = true;
    for (k, i) in rows.enumerate() {
        start[0] = i * chunk[0];
        let Some(loc) = hdf5_chunks::locate(ds, &start) else {
            return Run::Unwritten;
        };
        let step = k.checked_mul(bytes).and_then(|b| u64::try_from(b).ok());
        let want = step.and_then(|b| first.get_or_insert(loc.addr).checked_add(b));
        end_to_end &= loc.size == bytes as u64 && loc.mask == 0 && want == Some(loc.addr);
    }
    match first {
        Some(addr) if end_to_end => Run::EndToEnd(addr),
        _ => Run::Scattered,
    }
}

/// A read-only map of an HDF5 file and the ranges the latest blocks populated.
struct FileMap {
    map: memmap2::Mmap,
    resident: Resident,
}

/// What reading chunks directly needs: our own handle on the file, the chunk shape and the
/// filters to undo.
struct Direct {
    file: std::fs::File,
    /// The file's length when it was opened: no chunk may end past it.
    len: u64,
    chunk: Vec<usize>,
    pipeline: Pipeline,
}

impl Direct {
    /// Whether the chunks are stored without filters (their bytes are the elements).
    fn unfiltered(&self) -> bool {
        self.pipeline.len() == 0
    }
}

/// Whether the chunks of `ds` can be read directly as elements of `T`: a chunked dataset of
/// rank >= 1 whose stored type is `T` in this machine's byte order, with only shuffle, deflate
/// and LZF filters, in a file without a user block (chunk addresses are then file offsets).
fn direct_reader<T: H5Element>(
    path: &Path,
    file: &hdf5::File,
    ds: &hdf5::Dataset,
) -> Option<Direct> {
    let chunk = ds.chunk()?;
    if chunk.is_empty() || chunk.contains(&0) {
        return None;
    }
    if !raw_elements_at_file_offsets::<T>(file, ds) {
        return None;
    }
    let pipeline = Pipeline::of(&ds.filters())?;
    let handle = std::fs::File::open(path).ok()?;
    let len = handle.metadata().ok()?.len();
    Some(Direct {
        file: handle,
        len,
        chunk,
        pipeline,
    })
}

/// Whether the stored elements of `ds` are `T` in this machine's byte order, at addresses that
/// are offsets into `file` ([`addresses_are_file_offsets`]): what reading them around the
/// library needs. A dataset reached through an external link lives in another file, whose
/// offsets these are not: it is read through the library.
fn raw_elements_at_file_offsets<T: H5Element>(file: &hdf5::File, ds: &hdf5::Dataset) -> bool {
    let native = hdf5::Datatype::from_type::<T>().ok();
    native.is_some_and(|n| ds.dtype().is_ok_and(|d| d == n))
        && addresses_are_file_offsets(file)
        && ds.filename() == file.filename()
}

/// Whether the addresses of `file` are offsets into the one file at its path: the library's
/// default single-file driver (not one chosen through `HDF5_DRIVER`, such as family or split)
/// and no user block.
fn addresses_are_file_offsets(file: &hdf5::File) -> bool {
    file.create_plist().is_ok_and(|p| p.userblock() == 0)
        && file.access_plist().is_ok_and(|p| {
            matches!(
                p.get_driver(),
                Ok(hdf5::plist::file_access::FileDriver::Sec2)
            )
        })
}

/// A contiguous dataset's raw elements: our own handle on the file and their file offset.
struct Contiguous {
    file: std::fs::File,
    addr: u64,
}

/// Whether `ds` can be read directly with `pread`: a contiguous (unfiltered) dataset of rank
/// one or more whose stored type is `T` (not bool) in this machine's byte order, with its
/// storage allocated inside a file without a user block.
fn contiguous_reader<T: H5Element>(
    path: &Path,
    file: &hdf5::File,
    ds: &hdf5::Dataset,
) -> Option<Contiguous> {
    if T::DTYPE == DType::Bool
        || ds.ndim() == 0
        || ds.layout() != hdf5::dataset::Layout::Contiguous
        || !ds.filters().is_empty()
    {
        return None;
    }
    if !raw_elements_at_file_offsets::<T>(file, ds) {
        return None;
    }
    let addr = ds.offset()?;
    let handle = std::fs::File::open(path).ok()?;
    Some(Contiguous { file: handle, addr })
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
    fn describe(&self) -> Option<String> {
        Some(match (&self.map, &self.contiguous, &self.direct) {
            (Some(_), Some(_), _) => {
                "contiguous; blocks are views of a memory map of the file".into()
            }
            (Some(_), None, _) => "unfiltered chunks; a block in one piece in the file is a view \
                of a memory map, others are read with pread"
                .into(),
            (None, Some(_), _) => "contiguous; read with pread".into(),
            (None, None, Some(d)) if d.unfiltered() => "chunks read with pread".into(),
            (None, None, Some(d)) => format!(
                "chunks read with pread and decoded in parallel ({})",
                d.pipeline.names()
            ),
            (None, None, None) => "read through the HDF5 library".into(),
        })
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

    /// Reads `region` of a contiguous dataset with `pread`, one run of its memory at a time,
    /// straight into the block; `None` when the runs are too short to beat the library.
    fn contiguous_read(
        &self,
        c: &Contiguous,
        region: &[Range<usize>],
    ) -> Option<Result<ArrayD<T>>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        let dims = self.grid.shape();
        // Axis `k` is the last one the region does not span whole (or the first): a run of
        // memory is region[k] times the whole later axes, one run per index of the earlier.
        let k = (0..region.len())
            .rev()
            .find(|&j| region[j].start != 0 || region[j].end != dims[j])
            .unwrap_or(0);
        let inner: usize = dims[k + 1..].iter().product();
        let elem = T::DTYPE.size();
        let run = region[k].len() * inner;
        if run * elem < 64 * 1024 && shape.iter().product::<usize>() != run {
            return None;
        }
        let mut out = exec::zeroed_block::<T>(&shape);
        let Some(values) = out.as_slice_mut() else {
            return Some(Err(Error::Shape(
                "internal: a new block is not contiguous".into(),
            )));
        };
        let outer = &region[..k];
        let result = values
            .par_chunks_mut(run.max(1))
            .enumerate()
            .try_for_each(|(n, piece)| -> Result<()> {
                // The dataset index of this run's first element: unravel `n` over `outer`.
                let mut rest = n;
                let mut index = vec![0usize; region.len()];
                for (j, r) in outer.iter().enumerate().rev() {
                    index[j] = r.start + rest % r.len();
                    rest /= r.len();
                }
                index[k] = region[k].start;
                let mut at = 0usize;
                for (i, d) in index.iter().zip(dims) {
                    at = at * d + i;
                }
                let offset = c.addr + (at * elem) as u64;
                let bytes = plain_bytes_mut(piece).ok_or_else(|| {
                    Error::DType("internal: bool read as raw bytes".into())
                })?;
                c.file.read_exact_at(bytes, offset).map_err(|e| {
                    Error::format(
                        &self.path,
                        format!(
                            "{}: reading {} bytes of elements from {index:?} at file offset {offset}: {e}",
                            self.name,
                            bytes.len()
                        ),
                    )
                })
            });
        Some(result.map(|()| out))
    }

    /// Reads `region` chunk by chunk around the library: each chunk is located under the
    /// library's lock, then read and decoded in parallel. Chunks never written (fill values)
    /// are read through the library.
    fn direct_read(&self, direct: &Direct, region: &[Range<usize>]) -> Result<ArrayD<T>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        let chunk = &direct.chunk;
        let coords = crate::plan::chunks_touched(region, chunk);
        let elem = T::DTYPE.size();
        let chunk_len: usize = chunk.iter().product();
        // Every element is written below: by a chunk, or by the library for chunks never
        // written.
        let mut out = exec::overwritten_block::<T>(&shape);
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
            // A chunk the index places past the end of the file (a corrupt or truncated file)
            // is refused before a buffer of its claimed size is allocated.
            within_file(loc.addr, loc.size, direct.len).map_err(|e| fail(&e))?;
            let stored_len = usize::try_from(loc.size).unwrap_or(usize::MAX);
            let all_skipped =
                (0..direct.pipeline.len()).all(|p| p < 32 && loc.mask & (1 << p) != 0);
            // A chunk wholly inside the region that is one run of the output's memory is
            // decoded in place (not bool: its bytes are checked before they become elements).
            let inside = inter
                .iter()
                .zip(start.iter().zip(chunk))
                .all(|(r, (&s, &n))| r.start == s && r.end == s + n);
            let in_place = crate::plan::contiguous_offset(&in_out, &shape)
                .filter(|_| inside && T::DTYPE != DType::Bool)
                .and_then(|offset| sink.run_ptr(offset, chunk_len));
            BUFFERS.with_borrow_mut(|(stored, scratch, buf)| -> Result<()> {
                let target: &mut [u8] = match in_place {
                    // SAFETY: the run of `chunk_len` elements lies inside `out` (checked by
                    // `run_ptr`); chunks are disjoint, so no other task touches it; `out` is
                    // initialised and outlives the tasks; every byte pattern is a valid element
                    // of a type other than bool.
                    Some(ptr) => unsafe { std::slice::from_raw_parts_mut(ptr, chunk_len * elem) },
                    None => {
                        buf.resize(chunk_len * elem);
                        buf.bytes_mut()
                    }
                };
                if all_skipped && stored_len == target.len() {
                    direct
                        .file
                        .read_exact_at(target, loc.addr)
                        .map_err(|e| fail(&e))?;
                } else {
                    stored.resize(stored_len, 0);
                    direct
                        .file
                        .read_exact_at(stored, loc.addr)
                        .map_err(|e| fail(&e))?;
                    direct
                        .pipeline
                        .decode(stored, loc.mask, elem, scratch, target)
                        .map_err(|e| fail(&e))?;
                }
                if in_place.is_some() {
                    return Ok(());
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
            })
        })?;
        Ok(out)
    }
}

/// Checks that `size` bytes at `addr` lie inside a file of `len` bytes (the addresses and
/// sizes come from the file's chunk index, which a corrupt file can fill with anything).
fn within_file(addr: u64, size: u64, len: u64) -> std::result::Result<(), String> {
    match addr.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        _ => Err(format!("runs past the end of the file ({len} bytes)")),
    }
}

thread_local! {
    /// A worker's buffers for reading chunks directly (stored bytes, decode scratch, decoded
    /// chunk), kept from chunk to chunk: no allocation, page faults or zeroing per chunk.
    /// Dropped with the block spares at the end of a run ([`drop_chunk_buffers`]).
    static BUFFERS: std::cell::RefCell<(Vec<u8>, Scratch, ChunkBuf)> = Default::default();
}

/// Drops this thread's chunk buffers.
pub(crate) fn drop_chunk_buffers() {
    BUFFERS.with_borrow_mut(|b| *b = Default::default());
}

impl<T: H5Element> Hdf5Source<T> {
    /// `region` as a view of the mapped file, when its elements lie there in one piece: a
    /// contiguous dataset; the chunk holding the whole region; or chunks that span every axis
    /// but the first and lie end to end in the file, in order. `None` otherwise (and for chunks
    /// never written, which hold fill values): the region is then read with `pread`.
    fn mapped_view(&self, region: &[Range<usize>]) -> Option<ArrayViewD<'_, T>> {
        let fm = self.map.as_ref()?;
        let dims = self.grid.shape();
        if T::DTYPE == DType::Bool || region.is_empty() {
            return None;
        }
        let elem = T::DTYPE.size();
        // The run of elements that holds the region: its file offset, its shape and the
        // dataset index of its first element.
        let (addr, shape, origin) = if let Some(c) = &self.contiguous {
            (c.addr, dims.to_vec(), vec![0; dims.len()])
        } else {
            let direct = self.direct.as_ref().filter(|d| d.unfiltered())?;
            let chunk = &direct.chunk;
            let lo: Vec<usize> = region
                .iter()
                .zip(chunk)
                .map(|(r, &c)| r.start / c)
                .collect();
            let hi: Vec<usize> = region
                .iter()
                .zip(chunk)
                .map(|(r, &c)| (r.end - 1) / c)
                .collect();
            if lo[1..] != hi[1..] || (lo[0] != hi[0] && chunk[1..] != dims[1..]) {
                return None;
            }
            let chunk_bytes = chunk.iter().try_fold(elem, |acc, &c| acc.checked_mul(c))?;
            let origin: Vec<usize> = lo.iter().zip(chunk).map(|(&i, &c)| i * c).collect();
            let Run::EndToEnd(first) =
                chunk_run(&self.ds, chunk, &origin, lo[0]..hi[0] + 1, chunk_bytes)
            else {
                return None;
            };
            let mut shape = chunk.clone();
            shape[0] *= hi[0] - lo[0] + 1;
            (first, shape, origin)
        };
        let start = usize::try_from(addr).ok()?;
        let len = shape.iter().try_fold(elem, |acc, &n| acc.checked_mul(n))?;
        let end = start.checked_add(len)?;
        // A file shorter than its chunks say is left to `pread`, which names the chunk.
        let values = T::from_bytes(fm.map.get(start..end)?).ok()?;
        let run = ArrayViewD::from_shape(IxDyn(&shape), values).ok()?;
        let local: Vec<Range<usize>> = region
            .iter()
            .zip(&origin)
            .map(|(r, &o)| r.start - o..r.end - o)
            .collect();
        let strides: Vec<usize> = run.strides().iter().map(|&s| s as usize).collect();
        if let Some(bytes) = dense_span(&local, &strides, elem) {
            // File offsets: the ranges outlive this block's run.
            let map = Some(&fm.map);
            fm.resident.touch(
                start + bytes.start..start + bytes.end,
                |r| mmap::populate(map, 0, r),
                |r| mmap::release(map, 0, r),
            );
        }
        Some(run.slice_move(slice_info(&local).as_slice()))
    }
}

impl<T: H5Element> Node<T> for Hdf5Source<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        if shape.contains(&0) {
            return Ok(ArrayD::from_elem(IxDyn(&shape), T::default()).into());
        }
        if let Some(view) = self.mapped_view(region) {
            return Ok(view.into());
        }
        if let Some(c) = self.contiguous.as_ref().filter(|_| !region.is_empty()) {
            if let Some(data) = self.contiguous_read(c, region) {
                return Ok(data?.into());
            }
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
        }
        .map_err(|e| {
            Error::format(
                self.path,
                format!("compressing the chunk at {offset:?}: {e}"),
            )
        })?;
        self.tx
            .send((offset, bytes))
            .map_err(|_| Error::format(self.path, "the HDF5 writer stopped"))
    }
}

/// Writes blocks of an unfiltered dataset whose chunks were allocated when it was created (each
/// chunk then has its file address) straight into the file with positioned writes, from every
/// worker at once: no copy, no queue, and the library's lock only to find a chunk. A block
/// whose node computes it in parts (a distance tile) is written part by part, so it is never
/// whole in memory.
struct PlacedSink<'a> {
    /// Our own handle on the file, for writing.
    file: std::fs::File,
    ds: &'a hdf5::Dataset,
    chunk: &'a [usize],
    path: &'a Path,
    name: &'a str,
}

impl<'a> PlacedSink<'a> {
    /// Opens the file at `file_at` (where the bytes are; `path` names it in messages).
    fn open(
        path: &'a Path,
        file_at: &Path,
        ds: &'a hdf5::Dataset,
        chunk: &'a [usize],
        name: &'a str,
    ) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(file_at)
            .map_err(|e| Error::format(path, format!("opening the file to write {name}: {e}")))?;
        Ok(PlacedSink {
            file,
            ds,
            chunk,
            path,
            name,
        })
    }

    /// Closes our handle on the file, reporting the error a file system may keep for the close
    /// (a network file system's delayed write error), so a dataset is never marked complete
    /// over a failed write.
    fn close(self) -> Result<()> {
        use std::os::fd::IntoRawFd;
        let fd = self.file.into_raw_fd();
        // SAFETY: `fd` was just taken from the `File`, which no longer owns it; it is closed
        // exactly once here.
        if unsafe { libc::close(fd) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::format(
                self.path,
                format!("{}: closing the file after writing: {e}", self.name),
            ));
        }
        Ok(())
    }

    /// An error writing the chunk of the block covering `region`.
    fn fail(&self, region: &[Range<usize>], e: &dyn std::fmt::Display) -> Error {
        let start: Vec<usize> = region.iter().map(|r| r.start).collect();
        Error::format(
            self.path,
            format!("{}: writing the chunk at {start:?}: {e}", self.name),
        )
    }

    /// The placer of the block covering `region` (exactly one chunk) at its chunk's address.
    fn placer<T: H5Element>(&self, region: &[Range<usize>]) -> Result<ChunkPlacer<T>> {
        let start: Vec<usize> = region.iter().map(|r| r.start).collect();
        let bytes = self.chunk.iter().product::<usize>() * T::DTYPE.size();
        let loc = hdf5_chunks::locate(self.ds, &start)
            .ok_or_else(|| self.fail(region, &"the library allocated no storage for it"))?;
        if loc.size != bytes as u64 {
            return Err(self.fail(
                region,
                &format!("its storage is {} bytes, not {bytes}", loc.size),
            ));
        }
        ChunkPlacer::new(region, self.chunk, loc.addr)
    }
}

impl<T: H5Element> BlockSink<T> for PlacedSink<'_> {
    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        self.placer::<T>(region)?
            .write(&self.file, region, block, &|e| self.fail(region, &e))
    }

    fn takes_parts(&self) -> bool {
        true
    }

    fn parts(&self, region: &[Range<usize>]) -> Result<Option<Box<dyn PartWriter<T> + '_>>> {
        if region.iter().any(|r| r.is_empty()) {
            return Ok(None);
        }
        Ok(Some(Box::new(PlacedChunk {
            placer: self.placer::<T>(region)?,
            sink: self,
            region: region.to_vec(),
        })))
    }
}

/// One block of a [`PlacedSink`] being written part by part. A block left unfinished needs no
/// undoing: the dataset is not marked complete, and a failed write removes it.
struct PlacedChunk<'a, T> {
    sink: &'a PlacedSink<'a>,
    placer: ChunkPlacer<T>,
    region: Vec<Range<usize>>,
}

impl<T: H5Element> PartWriter<T> for PlacedChunk<'_, T> {
    fn write(&mut self, part: &[Range<usize>], data: ArrayViewD<'_, T>) -> Result<()> {
        let (sink, region) = (self.sink, &self.region);
        self.placer
            .write(&sink.file, part, data, &|e| sink.fail(region, &e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
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

impl Hdf5WriteOptions {
    /// Whether the dataset is stored without filters (no deflate, no shuffle).
    pub fn unfiltered(&self) -> bool {
        self.deflate.is_none() && !self.shuffle
    }
}

/// Whether a dataset of `ndim` dimensions written with `hopts` has its chunks written in place
/// in the file, piece by piece ([`BlockSink::parts`]): unfiltered, of rank one or more (a 0-d
/// dataset has no chunks), in a file whose addresses are file offsets (as every file tessera
/// creates; one with a user block or another driver falls back to the single writer). A node
/// that computes its blocks in parts (a distance tile) is then held to its parts
/// ([`Explain::in_parts`](crate::plan::explain::Explain::in_parts)).
pub fn writes_in_parts(hopts: &Hdf5WriteOptions, ndim: usize) -> bool {
    hopts.unfiltered() && ndim > 0
}

impl<T: H5Element> ChunkedArray<T> {
    /// Opens dataset `dataset` (like `/group/x`) of the HDF5 file at `path`. With
    /// [`Chunks::Auto`], blocks are whole multiples of the dataset's own chunks, about 128 MiB.
    ///
    /// A contiguous dataset, or a chunked one without filters, is read through a read-only
    /// memory map of the file: a block whose elements lie in the file in one piece is a view of
    /// it, as with [`from_npy`](ChunkedArray::from_npy). As there, the file must not be
    /// truncated or modified while the array is in use.
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
        let chunks = chunks.into();
        let mut grid = ChunkGrid::new_aligned(&shape, &chunks, T::DTYPE.size(), native.as_deref())?;
        let direct = direct_reader::<T>(path, &file, &ds);
        let contiguous = contiguous_reader::<T>(path, &file, &ds);
        let unfiltered = direct.as_ref().is_some_and(Direct::unfiltered);
        if let Some(d) = direct.as_ref().filter(|_| unfiltered) {
            // Blocks of several chunks are views of the map only when their chunks lie end to
            // end in order; when the writer left them in another order (Dask's threads do),
            // automatic blocks are single chunks instead, each a view.
            if matches!(chunks, Chunks::Auto | Chunks::AutoBytes(_))
                && grid.nblocks() < shape[0].div_ceil(d.chunk[0])
                && rows_out_of_order(&ds, &d.chunk, &shape, T::DTYPE.size())
            {
                let per_axis = d.chunk.iter().map(|&c| AxisChunks::Size(c)).collect();
                grid = ChunkGrid::new(&shape, &Chunks::PerAxis(per_axis), T::DTYPE.size())?;
            }
        }
        // The map is of the very handle `pread` reads (not the path again, which another
        // file could have replaced meanwhile). Without a map (an empty file, one that cannot be
        // mapped), every region is read with `pread`.
        let handle = match (&contiguous, &direct) {
            (Some(c), _) => Some(&c.file),
            (None, Some(d)) if unfiltered => Some(&d.file),
            _ => None,
        };
        let map = handle.and_then(map_handle).map(|map| FileMap {
            map,
            resident: Resident::default(),
        });
        Ok(Self::from_node(Arc::new(Hdf5Source {
            direct,
            contiguous,
            map,
            ds,
            _file: file,
            path: path.to_owned(),
            name: dataset.to_string(),
            grid,
            _t: std::marker::PhantomData,
        })))
    }

    /// Writes the array as a chunked dataset `dataset` of the HDF5 file at `path` (created if
    /// missing, with the groups on the way), one HDF5 chunk per block. A new file is written
    /// beside `path` under a hidden name and renamed onto it once complete; in an existing
    /// file the dataset is written under a hidden name and renamed once complete.
    ///
    /// # Errors
    /// A `dataset` that names the root group, an existing dataset without `overwrite`, an
    /// unwritable file, or any error of the plan.
    pub fn to_hdf5(
        &self,
        path: impl AsRef<Path>,
        dataset: &str,
        hopts: &Hdf5WriteOptions,
        opts: &ExecOptions,
    ) -> Result<()> {
        let path = path.as_ref();
        if dataset.split('/').all(str::is_empty) {
            return Err(Error::Invalid(format!(
                "{}:{dataset} is the file's root group: name a dataset (as {}:/data)",
                path.display(),
                path.display()
            )));
        }
        if let Some(level) = hopts.deflate.filter(|&l| l > 9) {
            return Err(Error::Invalid(format!(
                "deflate level {level} for {}:{dataset}: HDF5's deflate takes levels 0 to 9",
                path.display()
            )));
        }
        // Stored chunks all have one shape: make the blocks regular first.
        let (data, chunk) = self.regular_blocks()?;
        // An unfiltered dataset is written in place, straight into the file; filtered chunks go
        // through the single writer. Either is checked before anything is written.
        let mut placed = writes_in_parts(hopts, self.ndim());
        let check = |placed: bool| {
            let node = data.node();
            if placed {
                return exec::check_memory_parts(node.as_ref(), opts);
            }
            let (per_task, shared) = queued_bytes(&chunk, T::DTYPE, opts);
            exec::check_memory_with(node.as_ref(), opts, per_task, shared)
        };
        check(placed)?;
        let existed = path.exists();
        // A new file is made aside and renamed into place once complete: an interrupted run
        // leaves no file at `path` that looks like an HDF5 file and is not a readable one.
        let file_at = if existed {
            path.to_owned()
        } else {
            aside_file(path)
        };
        let file = if existed {
            hdf5::File::open_rw(path).map_err(|e| herr(path, "not a writable HDF5 file", e))?
        } else {
            let _ = std::fs::remove_file(&file_at);
            // The library may leave an empty file behind when it cannot create one (a full
            // disk): removed too.
            hdf5::File::create(&file_at).map_err(|e| {
                let _ = std::fs::remove_file(&file_at);
                herr(path, "cannot create the file", e)
            })?
        };
        let name = dataset.trim_start_matches('/');
        let replacing = file.link_exists(name);
        if replacing && !hopts.overwrite {
            return Err(Error::Exists(PathBuf::from(format!(
                "{}:{dataset}",
                path.display()
            ))));
        }
        if replacing && file.group(name).is_ok() {
            return Err(Error::Invalid(format!(
                "{}:{dataset} is a group: --overwrite replaces a dataset, never a group and what it holds; remove the group first or name a dataset",
                path.display()
            )));
        }
        // The first group this write creates: removed with everything below it on failure.
        let mut created_group: Option<String> = None;
        // Written aside under a temporary name in the same group, then renamed over the old one.
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        let leaf = parts.last().copied().unwrap_or_default();
        let aside = super::aside_name(leaf, "partial");
        let aside_path = match name.rsplit_once('/') {
            Some((parent, _)) => format!("{parent}/{aside}"),
            None => aside.clone(),
        };
        let result = (|| -> Result<()> {
            // Placed writes need chunk addresses that are offsets into this one file.
            if placed && !addresses_are_file_offsets(&file) {
                placed = false;
                check(placed)?;
            }
            // Groups on the way to the dataset.
            let mut group = file
                .as_group()
                .map_err(|e| herr(path, "opening the root group", e))?;
            for (k, p) in parts[..parts.len().saturating_sub(1)].iter().enumerate() {
                group = match group.group(p) {
                    Ok(g) => g,
                    // Something else of that name (a dataset): never created here, so never
                    // removed on the way out either.
                    Err(_) if group.link_exists(p) => {
                        return Err(Error::Invalid(format!(
                            "{}:/{} is not a group (a dataset?), so it cannot hold {dataset}",
                            path.display(),
                            parts[..=k].join("/")
                        )));
                    }
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
            // A group reached through an external link lives in another file, whose chunk
            // offsets are not this file's: no placed writes there (the library's chunk writer
            // writes into the right file).
            if placed && group.filename() != file.filename() {
                placed = false;
                check(placed)?;
            }
            // Datasets that killed runs of this machine left in the group go too (datasets
            // only, named exactly so).
            for member in group.member_names().unwrap_or_default() {
                let stale = super::is_stale_aside(&member, leaf, "partial", false)
                    && group.dataset(&member).is_ok();
                if member == aside || stale {
                    let _ = group.unlink(&member);
                }
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
            // Placed writes need every chunk's storage from the start; the chunks are filled by
            // the run, so the library need not write fill values first.
            let builder = if placed {
                builder
                    .alloc_time(Some(AllocTime::Early))
                    .fill_time(FillTime::Never)
            } else {
                builder
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
                _ if placed => {
                    let sink = PlacedSink::open(path, &file_at, &ds, &chunk, dataset)?;
                    exec::run(data.node().as_ref(), &sink, &ctx)?;
                    sink.close()?;
                }
                Some(pipeline) => write_chunks(&data, &ds, dataset, &chunk, &pipeline, path, &ctx)?,
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
                let _ = std::fs::remove_file(&file_at);
            }
            return result;
        }
        if !existed {
            // Every handle on the new file is closed: it is complete on disk. It takes its
            // name only if nothing took it meanwhile.
            drop(file);
            let placed = publish_new(&file_at, path);
            let _ = std::fs::remove_file(&file_at);
            placed?;
        }
        result
    }
}

/// Where a new HDF5 file at `path` is written until it is complete: a hidden name beside it.
/// Hidden files that killed runs left there are removed first.
fn aside_file(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.h5".into());
    super::remove_stale_asides(path, false);
    path.with_file_name(super::aside_name(&name, "partial"))
}

/// Gives the complete file `aside` the name `path` unless something has it: a hard link, which
/// fails where a file exists (where the file system has none, a rename). The caller removes
/// `aside`.
fn publish_new(aside: &Path, path: &Path) -> Result<()> {
    match std::fs::hard_link(aside, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Invalid(format!(
            "{}: a file was made there while this run wrote a new one; it is left as it is, \
             and this run's output removed",
            path.display()
        ))),
        Err(_) => std::fs::rename(aside, path).map_err(|e| Error::io(path, e)),
    }
}

/// Chunks the single writer may have queued: one per worker thread.
fn writer_queue(opts: &ExecOptions) -> usize {
    opts.worker_threads()
}

/// Memory the chunk writer of [`ChunkedArray::to_hdf5`] adds to a run writing chunks of
/// `chunk` elements of `dtype` with the filters of `hopts`. Returns `(per task, shared)`, what
/// [`check_memory_with`](crate::exec::check_memory_with) and
/// [`Explain::with_sink`](crate::plan::explain::Explain::with_sink) take. Filtered chunks go
/// through the single writer: per task, a padded copy, its shuffle and its deflate output;
/// shared, the queued chunks and the one being written. An unfiltered dataset of rank one or
/// more is written in place and adds nothing (unless its file has a user block or another
/// driver than the default one: it then goes through the single writer too).
pub fn writer_bytes(
    chunk: &[usize],
    dtype: DType,
    hopts: &Hdf5WriteOptions,
    opts: &ExecOptions,
) -> (usize, usize) {
    if writes_in_parts(hopts, chunk.len()) {
        return (0, 0);
    }
    queued_bytes(chunk, dtype, opts)
}

/// What the single writer of filtered chunks holds: see [`writer_bytes`].
fn queued_bytes(chunk: &[usize], dtype: DType, opts: &ExecOptions) -> (usize, usize) {
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

/// Runs `data` (blocks of exactly `chunk`) into `ds` (the user's `dataset`, written under a
/// hidden name): workers filter each block, one writer thread appends the chunks in whatever
/// order they finish.
fn write_chunks<T: H5Element>(
    data: &ChunkedArray<T>,
    ds: &hdf5::Dataset,
    dataset: &str,
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
                hdf5_chunks::write_chunk(ds, dataset, path, &offset, &bytes)?;
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

#[cfg(test)]
mod tests {
    use super::{plain_message, publish_new, within_file};
    use crate::array::ChunkedArray;
    use crate::plan::contiguous_offset;
    use ndarray::{s, Array2};
    use std::ops::Range;

    /// A new file takes its name only if nothing took it while it was written.
    #[test]
    fn a_new_file_never_replaces_one_made_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let (aside, path) = (dir.path().join(".o.h5.aside"), dir.path().join("o.h5"));
        std::fs::write(&aside, b"new").unwrap();
        publish_new(&aside, &path).unwrap();
        std::fs::remove_file(&aside).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::write(&aside, b"newer").unwrap();
        let e = publish_new(&aside, &path).unwrap_err().to_string();
        assert!(e.contains("o.h5") && e.contains("made there"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn the_librarys_dump_of_a_failed_call_is_left_out() {
        let dump = "H5Dwrite_chunk(): can't write unprocessed chunk data: file write failed: \
                    time = Mon Dec  7 18:18:48 2026\n, filename = 'tiny/.o.h5.tessera-partial-1', \
                    file descriptor = 3, errno = 28, error message = 'No space left on device', \
                    buf = 0x7f6b039b9008, total write size = 4625955, offset = 0";
        assert_eq!(
            plain_message(dump),
            "H5Dwrite_chunk(): can't write unprocessed chunk data: file write failed: No space \
             left on device (os error 28)"
        );
        assert_eq!(
            plain_message("H5Fopen(): unable to open file"),
            "H5Fopen(): unable to open file"
        );
    }

    /// 10 x 6 values, distinct.
    fn values() -> Array2<f64> {
        Array2::from_shape_fn((10, 6), |(i, j)| (i * 6 + j) as f64 + 0.5)
    }

    /// Reads `region` of `path:name` through the node; whether the block was a view of the
    /// map, after checking its values against `values()` (`fill` where a chunk was never
    /// written, from row `fill_from` on).
    fn read(
        path: &std::path::Path,
        name: &str,
        region: [Range<usize>; 2],
        fill_from: usize,
    ) -> bool {
        let a = ChunkedArray::<f64>::from_hdf5(path, name, vec![10, 6])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let block = a
            .node()
            .region(&region)
            .unwrap_or_else(|e| panic!("{name} {region:?}: {e}"));
        let want = values();
        let want = want.slice(s![region[0].clone(), region[1].clone()]);
        for ((i, j), &w) in want.indexed_iter() {
            let row = region[0].start + i;
            let w = if row >= fill_from { -1.0 } else { w };
            assert_eq!(block[[i, j]], w, "{name} {region:?} at {:?}", [i, j]);
        }
        block.is_view()
    }

    #[test]
    fn chunks_past_the_end_of_the_file_are_refused() {
        assert_eq!(within_file(0, 100, 100), Ok(()));
        assert_eq!(within_file(100, 0, 100), Ok(()));
        for (addr, size) in [(1, 100), (0, u64::from(u32::MAX)), (u64::MAX, 2)] {
            let e = within_file(addr, size, 100).unwrap_err();
            assert_eq!(e, "runs past the end of the file (100 bytes)");
        }
    }

    #[test]
    fn reads_into_a_dirty_spare_buffer_write_every_element() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.h5");
        let (n, m) = (1100, 1024);
        // Rows 512-767 (one row of chunks) never written: fill values.
        let want = Array2::from_shape_fn((n, m), |(i, j)| match i {
            512..768 => -1.0,
            _ => (i * m + j) as f64 * 0.25,
        });
        {
            let f = hdf5::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
            let ds = f
                .new_dataset::<f64>()
                .shape([n, m])
                .chunk([256, 1000])
                .fill_value(-1.0)
                .shuffle()
                .deflate(4)
                .create("x")
                .unwrap_or_else(|e| panic!("{e}"));
            for r in [0..512, 768..n] {
                ds.write_slice(&want.slice(s![r.clone(), ..]), s![r, ..])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let a = ChunkedArray::<f64>::from_hdf5(&path, "x", vec![n, m])
            .unwrap_or_else(|e| panic!("{e}"));
        // The whole array, and a region whose edges cut chunks (ragged on both axes).
        for region in [[0..n, 0..m], [3..n - 5, 7..m - 4]] {
            let shape = [region[0].len(), region[1].len()];
            let mut dirty = crate::exec::overwritten_block::<f64>(&shape);
            dirty.fill(f64::NAN);
            let ptr = dirty.as_ptr();
            crate::exec::recycle(dirty.into());
            let block = a
                .node()
                .region(&region)
                .unwrap_or_else(|e| panic!("{region:?}: {e}"));
            assert_eq!(block.as_ptr(), ptr, "the read did not take the spare");
            let want = want.slice(s![region[0].clone(), region[1].clone()]);
            assert!(block.view() == want.into_dyn(), "{region:?}: stale values");
            crate::exec::recycle(block);
        }
    }

    #[test]
    fn unfiltered_regions_in_one_piece_are_views_of_the_map() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("v.h5");
        let v = values();
        {
            let f = hdf5::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
            let make = |name: &str, chunk: Option<[usize; 2]>, deflate: bool| {
                let b = f.new_dataset::<f64>().shape([10, 6]).fill_value(-1.0);
                let b = match chunk {
                    Some(c) => b.chunk(c),
                    None => b,
                };
                let b = if deflate { b.deflate(4) } else { b };
                b.create(name).unwrap_or_else(|e| panic!("{name}: {e}"))
            };
            // Chunks of whole rows, written in order: laid end to end.
            make("rows", Some([3, 6]), false)
                .write(&v)
                .unwrap_or_else(|e| panic!("{e}"));
            // The same chunks written last first: each after the one before it in the file.
            let back = make("back", Some([3, 6]), false);
            for c in (0..4).rev() {
                let r = c * 3..(c * 3 + 3).min(10);
                back.write_slice(&v.slice(s![r.clone(), ..]), s![r, ..])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            // Chunks of part of a row.
            make("cols", Some([3, 4]), false)
                .write(&v)
                .unwrap_or_else(|e| panic!("{e}"));
            // Rows 6 and later never written: fill values.
            make("part", Some([3, 6]), false)
                .write_slice(&v.slice(s![0..6, ..]), s![0..6, ..])
                .unwrap_or_else(|e| panic!("{e}"));
            make("flat", None, false)
                .write(&v)
                .unwrap_or_else(|e| panic!("{e}"));
            make("gzip", Some([3, 6]), true)
                .write(&v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let all = 10;
        // Several chunks of whole rows in order, with a ragged last chunk, and a column strip.
        assert!(read(&path, "rows", [1..10, 0..6], all));
        assert!(read(&path, "rows", [2..7, 2..5], all));
        // In the other order, only one chunk at a time is a view.
        assert!(!read(&path, "back", [1..8, 0..6], all));
        assert!(read(&path, "back", [3..6, 1..6], all));
        // Chunks of part of a row: one chunk is a view, more are read.
        assert!(read(&path, "cols", [0..3, 0..4], all));
        assert!(read(&path, "cols", [9..10, 4..6], all));
        assert!(!read(&path, "cols", [0..6, 0..4], all));
        assert!(!read(&path, "cols", [0..3, 2..6], all));
        // A chunk never written is read (fill values).
        assert!(read(&path, "part", [0..6, 0..6], 6));
        assert!(!read(&path, "part", [3..9, 0..6], 6));
        // A contiguous dataset: every region.
        assert!(read(&path, "flat", [0..10, 0..6], all));
        assert!(read(&path, "flat", [3..8, 1..2], all));
        // Filtered chunks are decoded.
        assert!(!read(&path, "gzip", [0..3, 0..6], all));
        // What the plan says of each.
        let says = |name: &str| {
            ChunkedArray::<f64>::from_hdf5(&path, name, vec![10, 6])
                .map(|a| a.node().describe().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert!(
            says("rows").contains("view of a memory map"),
            "{}",
            says("rows")
        );
        assert!(
            says("flat").starts_with("contiguous; blocks are views"),
            "{}",
            says("flat")
        );
        assert!(
            says("gzip").contains("decoded in parallel"),
            "{}",
            says("gzip")
        );
    }

    #[test]
    fn three_axes_of_integers_are_views_too() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("i.h5");
        let v =
            ndarray::Array3::from_shape_fn((7, 4, 5), |(i, j, k)| (i * 100 + j * 10 + k) as i32);
        {
            let f = hdf5::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
            f.new_dataset::<i32>()
                .shape([7, 4, 5])
                .chunk([2, 4, 5])
                .create("x")
                .and_then(|ds| ds.write(&v))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let a = ChunkedArray::<i32>::from_hdf5(&path, "x", vec![7, 4, 5])
            .unwrap_or_else(|e| panic!("{e}"));
        for region in [[1..7, 0..4, 0..5], [1..6, 1..3, 2..5], [6..7, 3..4, 4..5]] {
            let block = a.node().region(&region).unwrap_or_else(|e| panic!("{e}"));
            assert!(block.is_view(), "{region:?}");
            let want = v.slice(s![region[0].clone(), region[1].clone(), region[2].clone()]);
            assert_eq!(block, want.into_dyn(), "{region:?}");
        }
    }

    #[test]
    fn chunks_out_of_order_make_single_chunk_blocks() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("o.h5");
        // Three chunks of 8 MiB (whole rows), written in order and last first.
        let v = Array2::from_shape_fn((3072, 1024), |(i, j)| (i * 1024 + j) as f64);
        {
            let f = hdf5::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
            for (name, order) in [("inorder", [0, 1, 2]), ("back", [2, 1, 0])] {
                let ds = f
                    .new_dataset::<f64>()
                    .shape([3072, 1024])
                    .chunk([1024, 1024])
                    .create(name)
                    .unwrap_or_else(|e| panic!("{e}"));
                for c in order {
                    let r = c * 1024..(c + 1) * 1024;
                    ds.write_slice(&v.slice(s![r.clone(), ..]), s![r, ..])
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
        }
        for (name, blocks) in [("inorder", 1), ("back", 3)] {
            let a = ChunkedArray::<f64>::from_hdf5(&path, name, crate::Chunks::Auto)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(a.grid().nblocks(), blocks, "{name}");
            let rows = 3072 / blocks;
            for b in 0..blocks {
                let region = [b * rows..(b + 1) * rows, 0..1024];
                let block = a.node().region(&region).unwrap_or_else(|e| panic!("{e}"));
                assert!(block.is_view(), "{name} block {b}");
                assert_eq!(block, v.slice(s![b * rows..(b + 1) * rows, ..]).into_dyn());
            }
            // As the command line opens it.
            let a = ChunkedArray::<f64>::from_hdf5(&path, name, crate::Chunks::AutoBytes(64 << 20))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(a.grid().nblocks(), blocks, "{name}");
            // Chunks the caller chose are kept.
            let a = ChunkedArray::<f64>::from_hdf5(&path, name, vec![3072, 1024])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(a.grid().nblocks(), 1, "{name}");
        }
    }

    #[test]
    fn contiguous_offset_finds_runs_of_memory() {
        let shape = [4, 5, 6];
        // Whole rows of the last two axes: one run.
        assert_eq!(contiguous_offset(&[1..3, 0..5, 0..6], &shape), Some(30));
        // One index of the first axes, then a run of the next.
        assert_eq!(contiguous_offset(&[2..3, 1..4, 0..6], &shape), Some(66));
        assert_eq!(contiguous_offset(&[2..3, 4..5, 1..5], &shape), Some(85));
        // Single elements and empty regions.
        assert_eq!(contiguous_offset(&[3..4, 4..5, 5..6], &shape), Some(119));
        assert_eq!(contiguous_offset(&[0..4, 0..5, 0..6], &shape), Some(0));
        // A part of a later axis after a range of more than one: strided.
        assert_eq!(contiguous_offset(&[0..2, 0..5, 0..3], &shape), None);
        assert_eq!(contiguous_offset(&[0..1, 0..2, 1..6], &shape), None);
    }
}
