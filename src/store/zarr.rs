//! Zarr arrays (v2 and v3) through `zarrs`: read any chunk layout and codec zarrs knows, write
//! v3 with a choice of codec. Output metadata is written first and a completion attribute last,
//! so an interrupted write never looks complete.

use crate::array::ChunkedArray;
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use crate::exec::{self, BlockSink, ExecContext, ExecOptions};
use crate::plan::{Block, Node, PlanNode};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zarrs::array::{data_type, Array, ArrayBuilder, ArrayBytes, ArraySubset, DataType};
use zarrs::filesystem::FilesystemStore;

/// The attribute tessera writes last, once every chunk of an output is stored.
pub const COMPLETE_ATTRIBUTE: &str = "tessera_complete";

type ZArray = Array<FilesystemStore>;

/// Splits `x.zarr/group/array` into the store root (`x.zarr`) and the array path (`/group/array`).
pub fn split_path(path: &Path) -> Result<(PathBuf, String)> {
    let s = path.to_string_lossy();
    let parts: Vec<&str> = s.split('/').collect();
    let Some(k) = parts
        .iter()
        .rposition(|p| p.to_ascii_lowercase().ends_with(".zarr"))
    else {
        return Err(Error::Invalid(format!(
            "{}: a Zarr path names a directory ending in .zarr",
            path.display()
        )));
    };
    let root = parts[..=k].join("/");
    let inner: Vec<&str> = parts[k + 1..]
        .iter()
        .copied()
        .filter(|p| !p.is_empty())
        .collect();
    Ok((
        PathBuf::from(if root.is_empty() { "/".into() } else { root }),
        format!("/{}", inner.join("/")),
    ))
}

/// The directory of node `inner` (`/group/array`) in the store at `root`.
fn node_dir(root: &Path, inner: &str) -> PathBuf {
    inner
        .split('/')
        .filter(|p| !p.is_empty())
        .fold(root.to_path_buf(), |d, p| d.join(p))
}

/// Whether a Zarr node (array or group, v2 or v3) exists at `inner` in the store at `root`.
pub fn node_exists(root: &Path, inner: &str) -> bool {
    let d = node_dir(root, inner);
    ["zarr.json", ".zarray", ".zgroup"]
        .iter()
        .any(|m| d.join(m).is_file())
}

fn zerr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, e.to_string())
}

/// The dtype of a zarrs data type.
fn dtype_of(path: &Path, d: &DataType) -> Result<DType> {
    let table = [
        (data_type::bool(), DType::Bool),
        (data_type::int8(), DType::I8),
        (data_type::int16(), DType::I16),
        (data_type::int32(), DType::I32),
        (data_type::int64(), DType::I64),
        (data_type::uint8(), DType::U8),
        (data_type::uint16(), DType::U16),
        (data_type::uint32(), DType::U32),
        (data_type::uint64(), DType::U64),
        (data_type::float32(), DType::F32),
        (data_type::float64(), DType::F64),
    ];
    table
        .into_iter()
        .find(|(z, _)| z == d)
        .map(|(_, t)| t)
        .ok_or_else(|| {
            Error::DType(format!(
                "{}: Zarr data type {d} is not supported (bool, int8..int64, uint8..uint64, float32, float64 are)",
                path.display()
            ))
        })
}

fn zarr_dtype(d: DType) -> DataType {
    match d {
        DType::Bool => data_type::bool(),
        DType::I8 => data_type::int8(),
        DType::I16 => data_type::int16(),
        DType::I32 => data_type::int32(),
        DType::I64 => data_type::int64(),
        DType::U8 => data_type::uint8(),
        DType::U16 => data_type::uint16(),
        DType::U32 => data_type::uint32(),
        DType::U64 => data_type::uint64(),
        DType::F32 => data_type::float32(),
        DType::F64 => data_type::float64(),
    }
}

/// An opened Zarr array: what `info` shows and what a source node reads.
pub struct ZarrInfo {
    /// The `.zarr` directory.
    pub root: PathBuf,
    /// The array's path inside the store.
    pub array_path: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: DType,
    /// The regular chunk shape, if the grid is regular.
    pub chunk_shape: Option<Vec<usize>>,
    /// Zarr format (2 or 3).
    pub zarr_format: u8,
    /// The codec chain, as zarrs describes it.
    pub codecs: String,
    /// Whether tessera's completion attribute says the array is complete (`None` when the array
    /// was not written by tessera).
    pub complete: Option<bool>,
}

fn open_array(path: &Path) -> Result<(ZArray, PathBuf, String)> {
    let (root, inner) = split_path(path)?;
    if !root.is_dir() {
        return Err(Error::io(
            &root,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such Zarr store (directory)",
            ),
        ));
    }
    let store = Arc::new(FilesystemStore::new(&root).map_err(|e| zerr(&root, e))?);
    let array = ZArray::open(store, &inner)
        .map_err(|e| Error::format(path, format!("not a readable Zarr array at {inner}: {e}")))?;
    Ok((array, root, inner))
}

/// Reads the description of the Zarr array at `path`.
///
/// # Errors
/// A missing store, a path that is not a Zarr array, or an unsupported data type.
pub fn info(path: &Path) -> Result<ZarrInfo> {
    let (array, root, inner) = open_array(path)?;
    let dtype = dtype_of(path, array.data_type())?;
    let meta = array.metadata();
    let json = serde_json::to_value(meta).unwrap_or_default();
    let zarr_format = json
        .get("zarr_format")
        .and_then(|v| v.as_u64())
        .unwrap_or(3) as u8;
    let codecs = if zarr_format == 2 {
        format!(
            "compressor {}, filters {}",
            json.get("compressor")
                .map(|c| c.to_string())
                .unwrap_or_else(|| "null".into()),
            json.get("filters")
                .map(|c| c.to_string())
                .unwrap_or_else(|| "null".into())
        )
    } else {
        json.get("codecs")
            .map(|c| c.to_string())
            .unwrap_or_default()
    };
    let complete = array
        .attributes()
        .get(COMPLETE_ATTRIBUTE)
        .and_then(|v| v.as_bool());
    let chunk_shape = array
        .chunk_shape(&vec![0; array.dimensionality()])
        .ok()
        .map(|c| c.iter().map(|n| n.get() as usize).collect());
    Ok(ZarrInfo {
        root,
        array_path: inner,
        shape: array.shape().iter().map(|&n| n as usize).collect(),
        dtype,
        chunk_shape,
        zarr_format,
        codecs,
        complete,
    })
}

/// Reads regions of a Zarr array, decoding the chunks they touch.
struct ZarrSource<T: Element> {
    array: ZArray,
    path: PathBuf,
    grid: ChunkGrid,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element> PlanNode for ZarrSource<T> {
    fn op(&self) -> String {
        format!("from_zarr({})", self.path.display())
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
        // The decoded block, plus the encoded and decoded chunks being read.
        2 * self.grid.max_block_len() * T::DTYPE.size()
    }
}

impl<T: Element> Node<T> for ZarrSource<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        let n: usize = shape.iter().product();
        if n == 0 {
            return Ok(ArrayD::from_elem(IxDyn(&shape), T::default()).into());
        }
        let ranges: Vec<Range<u64>> = region
            .iter()
            .map(|r| r.start as u64..r.end as u64)
            .collect();
        let subset = ArraySubset::new_with_ranges(&ranges);
        let bytes: ArrayBytes<'static> = self
            .array
            .retrieve_array_subset(&subset)
            .map_err(|e| Error::format(&self.path, format!("reading region {region:?}: {e}")))?;
        let raw = bytes
            .into_fixed()
            .map_err(|e| Error::format(&self.path, e.to_string()))?;
        let values =
            bytes_to_vec::<T>(&raw, n).map_err(|e| Error::format(&self.path, e.to_string()))?;
        ArrayD::from_shape_vec(IxDyn(&shape), values)
            .map(Block::from)
            .map_err(|e| Error::Shape(format!("internal: Zarr region: {e}")))
    }
}

/// Copies `n` native-endian elements out of bytes of any alignment.
fn bytes_to_vec<T: Element>(raw: &[u8], n: usize) -> Result<Vec<T>> {
    let size = T::DTYPE.size();
    if raw.len() != n * size {
        return Err(Error::Shape(format!(
            "decoded {} bytes, expected {} ({n} x {})",
            raw.len(),
            n * size,
            T::DTYPE
        )));
    }
    let mut out = Vec::with_capacity(n);
    for c in raw.chunks_exact(size) {
        out.push(T::from_bytes(c).map(|v| v[0]).or_else(|_| {
            // Unaligned: go through an aligned copy of one element.
            let mut tmp = [0u64; 2];
            let b = bytemuck::cast_slice_mut::<u64, u8>(&mut tmp);
            b[..size].copy_from_slice(c);
            T::from_bytes(&b[..size]).map(|v| v[0])
        })?);
    }
    Ok(out)
}

/// The compression of a Zarr output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// No compression.
    None,
    /// Zstandard at a level (default 3).
    Zstd(i32),
    /// Blosc with zstd and byte shuffle at a level (default 5).
    Blosc(u8),
    /// Gzip at a level (default 5).
    Gzip(u32),
}

impl Codec {
    /// Parses `none`, `zstd`, `blosc` or `gzip`, with an optional level.
    ///
    /// # Errors
    /// An unknown codec name (the error lists the known ones).
    pub fn parse(name: &str, level: Option<i32>) -> Result<Codec> {
        let ranged = |lo: i32, hi: i32, default: i32| -> Result<i32> {
            let l = level.unwrap_or(default);
            if (lo..=hi).contains(&l) {
                Ok(l)
            } else {
                Err(Error::Invalid(format!(
                    "level {l} is out of range for {name} ({lo} to {hi})"
                )))
            }
        };
        match name {
            "none" => Ok(Codec::None),
            "zstd" => Ok(Codec::Zstd(ranged(-7, 22, 3)?)),
            "blosc" => Ok(Codec::Blosc(ranged(0, 9, 5)? as u8)),
            "gzip" => Ok(Codec::Gzip(ranged(0, 9, 5)? as u32)),
            other => Err(Error::Invalid(format!(
                "unknown codec {other:?}; known: none, zstd, blosc, gzip"
            ))),
        }
    }
}

/// How to write a Zarr array.
#[derive(Clone, Debug)]
pub struct ZarrWriteOptions {
    /// Compression.
    pub codec: Codec,
    /// Replace an existing array.
    pub overwrite: bool,
}

impl Default for ZarrWriteOptions {
    fn default() -> Self {
        ZarrWriteOptions {
            codec: Codec::Zstd(3),
            overwrite: false,
        }
    }
}

fn build_codecs(
    codec: Codec,
    typesize: usize,
) -> Result<Vec<Arc<dyn zarrs::array::BytesToBytesCodecTraits>>> {
    use zarrs::array::codec::{
        BloscCodec, BloscCompressionLevel, BloscCompressor, BloscShuffleMode, GzipCodec, ZstdCodec,
    };
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("codec {codec:?}: {e}"));
    Ok(match codec {
        Codec::None => vec![],
        Codec::Zstd(level) => vec![Arc::new(ZstdCodec::new(level, false))],
        Codec::Gzip(level) => vec![Arc::new(GzipCodec::new(level).map_err(|e| bad(&e))?)],
        Codec::Blosc(level) => {
            let lvl = BloscCompressionLevel::try_from(level).map_err(|e| bad(&e))?;
            vec![Arc::new(
                BloscCodec::new(
                    BloscCompressor::Zstd,
                    lvl,
                    None,
                    BloscShuffleMode::Shuffle,
                    Some(typesize),
                )
                .map_err(|e| bad(&e))?,
            )]
        }
    })
}

/// Stores each finished block as the Zarr chunk it is.
struct ChunkSink<'a> {
    array: &'a ZArray,
    chunk: Vec<usize>,
    path: &'a Path,
}

impl<T: Element> BlockSink<T> for ChunkSink<'_> {
    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()> {
        let idx: Vec<u64> = region
            .iter()
            .zip(&self.chunk)
            .map(|(r, &c)| (r.start / c.max(1)) as u64)
            .collect();
        let std = block.as_standard_layout();
        let values = std
            .as_slice()
            .ok_or_else(|| Error::Shape("internal: block not contiguous".into()))?;
        // Edge chunks are stored whole in Zarr: pad the block to the chunk shape.
        let full: Vec<usize> = self.chunk.clone();
        let bytes: Cow<'_, [u8]> = if block.shape() == full.as_slice() {
            Cow::Borrowed(T::to_bytes(values))
        } else {
            let mut padded = ArrayD::from_elem(IxDyn(&full), T::default());
            let local: Vec<Range<usize>> = block.shape().iter().map(|&n| 0..n).collect();
            padded
                .slice_mut(crate::plan::slice_info(&local).as_slice())
                .assign(&block);
            Cow::Owned(T::to_bytes(padded.as_slice().unwrap_or(&[])).to_vec())
        };
        self.array
            .store_chunk(&idx, ArrayBytes::new_flen(bytes))
            .map_err(|e| Error::format(self.path, format!("writing chunk {idx:?}: {e}")))
    }
}

impl<T: Element> ChunkedArray<T> {
    /// Opens the Zarr array at `path` (`x.zarr`, or `x.zarr/group/array`). With
    /// [`Chunks::Auto`], blocks are whole multiples of the array's own chunks, about 128 MiB.
    ///
    /// # Errors
    /// A missing store or array, another dtype than `T`, or invalid chunks.
    pub fn from_zarr(path: impl AsRef<Path>, chunks: impl Into<Chunks>) -> Result<Self> {
        let path = path.as_ref();
        let (array, _, _) = open_array(path)?;
        let dtype = dtype_of(path, array.data_type())?;
        if dtype != T::DTYPE {
            return Err(Error::DType(format!(
                "{} holds {dtype}, not {}",
                path.display(),
                T::DTYPE
            )));
        }
        let shape: Vec<usize> = array.shape().iter().map(|&n| n as usize).collect();
        let native: Option<Vec<usize>> = array
            .chunk_shape(&vec![0; array.dimensionality()])
            .ok()
            .map(|c| c.iter().map(|n| n.get() as usize).collect());
        let grid =
            ChunkGrid::new_aligned(&shape, &chunks.into(), T::DTYPE.size(), native.as_deref())?;
        Ok(Self::from_node(Arc::new(ZarrSource {
            array,
            path: path.to_owned(),
            grid,
            _t: std::marker::PhantomData,
        })))
    }

    /// Writes the array as a Zarr v3 array at `path`, one chunk per block (the blocks are first
    /// made regular if they are not). Metadata is written first and the completion attribute
    /// last; on failure the partial output is removed.
    ///
    /// # Errors
    /// An existing path without `overwrite`, an unwritable location, or any error of the plan.
    pub fn to_zarr(
        &self,
        path: impl AsRef<Path>,
        zopts: &ZarrWriteOptions,
        opts: &ExecOptions,
    ) -> Result<()> {
        let path = path.as_ref();
        exec::check_memory(self.node().as_ref(), opts)?;
        let (root, inner) = split_path(path)?;
        // Only the array's own node is replaced: other arrays and groups of the store stay.
        let node_dir = node_dir(&root, &inner);
        let created_root = !root.exists();
        if node_exists(&root, &inner) {
            if !zopts.overwrite {
                return Err(Error::Exists(path.to_owned()));
            }
            std::fs::remove_dir_all(&node_dir).map_err(|e| Error::io(&node_dir, e))?;
        }
        // Regular blocks: Zarr chunks all have one shape.
        // Stored chunks all have one shape: make the blocks regular first.
        let (data, chunk) = self.regular_blocks()?;
        let result = (|| -> Result<()> {
            std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
            let store = Arc::new(FilesystemStore::new(&root).map_err(|e| zerr(&root, e))?);
            // Groups from the root down to the array's parent, so other tools can walk to it.
            let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
            for k in 0..parts.len() {
                let group = format!("/{}", parts[..k].join("/"));
                if node_exists(&root, &group) {
                    continue;
                }
                zarrs::group::GroupBuilder::new()
                    .build(store.clone(), &group)
                    .map_err(|e| zerr(path, e))?
                    .store_metadata()
                    .map_err(|e| zerr(path, e))?;
            }
            let mut builder = ArrayBuilder::new(
                self.shape().iter().map(|&n| n as u64).collect::<Vec<_>>(),
                chunk.iter().map(|&n| n as u64).collect::<Vec<_>>(),
                zarr_dtype(T::DTYPE),
                zarrs::array::FillValue::from(vec![0u8; T::DTYPE.size()]),
            );
            builder.bytes_to_bytes_codecs(build_codecs(zopts.codec, T::DTYPE.size())?);
            builder
                .attributes_mut()
                .insert(COMPLETE_ATTRIBUTE.into(), serde_json::Value::Bool(false));
            let mut array = builder.build(store, &inner).map_err(|e| zerr(path, e))?;
            array.store_metadata().map_err(|e| zerr(path, e))?;
            {
                let sink = ChunkSink {
                    array: &array,
                    chunk: chunk.clone(),
                    path,
                };
                let ctx = ExecContext::new(opts.clone())?;
                exec::run(data.node().as_ref(), &sink, &ctx)?;
            }
            array
                .attributes_mut()
                .insert(COMPLETE_ATTRIBUTE.into(), serde_json::Value::Bool(true));
            array.store_metadata().map_err(|e| zerr(path, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(if created_root { &root } else { &node_dir });
        }
        result
    }
}
