//! Zarr arrays (v2 and v3) through `zarrs`: read any chunk layout and codec zarrs knows, write
//! v3 with a choice of codec. Output metadata is written first and a completion attribute last,
//! so an interrupted write never looks complete.

use crate::array::ChunkedArray;
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{plain_bytes_mut, DType, Element};
use crate::error::{Error, Result};
use crate::exec::{self, BlockSink, ExecContext, ExecOptions, PartWriter, RunStats, Shard};
use crate::plan::{Block, Node, PlanNode};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use unsafe_cell_slice::UnsafeCellSlice;
use zarrs::array::{
    data_type, Array, ArrayBuilder, ArrayBytes, ArrayBytesFixedDisjointView, ArraySubset, DataType,
};
use zarrs::filesystem::FilesystemStore;
use zarrs::storage::{ReadableWritableListableStorage, StoreKey};

/// The attribute tessera writes last, once every chunk of an output is stored.
pub const COMPLETE_ATTRIBUTE: &str = "tessera_complete";

mod consolidated;
mod direct;
mod numcodecs;
mod target;
pub(crate) use direct::drop_buffers as drop_chunk_buffers;
use direct::{raw_chunks, RawChunks};
pub use target::{ChunkState, Joined, VerifyReport, ZarrTarget, RUN_ATTRIBUTE};

type ZArray = Array<dyn zarrs::storage::ReadableWritableListableStorageTraits>;

/// A Zarr store: a directory on the file system, or object storage (`s3://bucket/x.zarr`).
#[derive(Clone)]
pub(crate) struct Store {
    pub(crate) storage: ReadableWritableListableStorage,
    /// The store's directory, for a store on the file system.
    pub(crate) dir: Option<PathBuf>,
}

impl Store {
    /// The store rooted at `root` (a directory, or an `s3://` URL). A local directory need not
    /// exist yet.
    pub(crate) fn at(root: &Path) -> Result<Store> {
        let url = root.to_string_lossy();
        if is_url(root) {
            #[cfg(feature = "s3")]
            if crate::store::object::is_object_url(&url) {
                return Ok(Store {
                    storage: crate::store::object::open(&url)?,
                    dir: None,
                });
            }
            return Err(Error::Unsupported(format!(
                "{url}: object storage {}",
                if cfg!(feature = "s3") {
                    "is reached through s3:// URLs only"
                } else {
                    "needs a build with the s3 feature"
                }
            )));
        }
        Ok(Store {
            storage: Arc::new(FilesystemStore::new(root).map_err(|e| zerr(root, e))?),
            dir: Some(root.to_owned()),
        })
    }

    /// The bytes under `key`, or `None`.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = store_key(key)?;
        self.storage
            .get(&k)
            .map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| Error::Invalid(format!("reading {key}: {e}")))
    }

    /// Stores `bytes` under `key` whole: on a file system written aside and renamed into place,
    /// in object storage by one request.
    pub(crate) fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        match &self.dir {
            Some(dir) => {
                let file = dir.join(key);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                target::write_atomic(&file, bytes)
            }
            None => {
                let k = store_key(key).map_err(std::io::Error::other)?;
                self.storage
                    .set(&k, bytes.to_vec().into())
                    .map_err(std::io::Error::other)
            }
        }
    }
}

/// Whether a store root is a URL (`s3://bucket/x.zarr`) rather than a local directory.
pub fn is_url(root: &Path) -> bool {
    root.to_string_lossy().contains("://")
}

fn store_key(key: &str) -> Result<StoreKey> {
    StoreKey::new(key).map_err(|e| Error::Invalid(format!("{key:?} is not a store key: {e}")))
}

/// The store key prefix of node `inner` (`/group/array` -> `group/array/`; the root -> ``).
fn node_prefix(inner: &str) -> String {
    let t = inner.trim_matches('/');
    if t.is_empty() {
        String::new()
    } else {
        format!("{t}/")
    }
}

/// Splits `x.zarr/group/array` into the store root (`x.zarr`) and the array path (`/group/array`).
pub fn split_path(path: &Path) -> Result<(PathBuf, String)> {
    let s = path.to_string_lossy();
    let parts: Vec<&str> = s.split('/').collect();
    let Some(k) = parts
        .iter()
        .rposition(|p| p.to_ascii_lowercase().ends_with(".zarr"))
    else {
        return Err(Error::Invalid(format!(
            "{}: not a Zarr path (one names a directory ending in .zarr: x.zarr, x.zarr/group/array)",
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
    if is_url(root) {
        return Store::at(root).is_ok_and(|s| store_has_node(&s, inner));
    }
    let d = node_dir(root, inner);
    ["zarr.json", ".zarray", ".zgroup"]
        .iter()
        .any(|m| d.join(m).is_file())
}

fn store_has_node(store: &Store, inner: &str) -> bool {
    let p = node_prefix(inner);
    ["zarr.json", ".zarray", ".zgroup"]
        .iter()
        .any(|m| store.get(&format!("{p}{m}")).is_ok_and(|b| b.is_some()))
}

/// Whether a Zarr array (v2 or v3) exists at `inner` in `store` (a `zarr.json` decides before
/// a `.zarray`, as in [`group_format`]).
fn store_has_array(store: &Store, inner: &str) -> bool {
    let p = node_prefix(inner);
    if let Ok(Some(b)) = store.get(&format!("{p}zarr.json")) {
        return serde_json::from_slice::<serde_json::Value>(&b)
            .is_ok_and(|v| v.get("node_type").and_then(|t| t.as_str()) == Some("array"));
    }
    store.get(&format!("{p}.zarray")).is_ok_and(|b| b.is_some())
}

/// The Zarr arrays at `path`: the array itself, or the arrays directly inside a group (a knn
/// output), sorted by name.
///
/// # Errors
/// Nothing at `path`, a group without arrays, or an unreadable store.
pub fn arrays_at(path: &Path) -> Result<Vec<PathBuf>> {
    let (root, inner) = split_path(path)?;
    let store = Store::at(&root)?;
    if store_has_array(&store, &inner) {
        return Ok(vec![path.to_owned()]);
    }
    if !store_has_node(&store, &inner) {
        return Err(Error::format(
            path,
            "no Zarr array or group here".to_string(),
        ));
    }
    let children = child_nodes(&store, &inner)
        .map_err(|e| Error::format(path, format!("listing the group: {e}")))?;
    let arrays: Vec<PathBuf> = children
        .iter()
        .filter(|name| store_has_array(&store, &format!("{}/{name}", inner.trim_end_matches('/'))))
        .map(|name| path.join(name))
        .collect();
    if arrays.is_empty() {
        let below = match array_below(&store, &inner, 8) {
            Some(a) => format!(
                " directly; name one below it, as {}",
                path.join(a).display()
            ),
            None => String::new(),
        };
        return Err(Error::format(
            path,
            format!("the group holds no arrays{below}"),
        ));
    }
    Ok(arrays)
}

/// The names of the Zarr nodes directly inside the group at `inner`, sorted.
fn child_nodes(store: &Store, inner: &str) -> std::result::Result<Vec<String>, String> {
    let prefix = zarrs::storage::StorePrefix::new(node_prefix(inner)).map_err(|e| e.to_string())?;
    let listed = store.storage.list_dir(&prefix).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = listed
        .prefixes()
        .iter()
        .filter_map(|p| {
            Some(
                p.as_str()
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()?
                    .to_string(),
            )
        })
        .filter(|name| store_has_node(store, &format!("{}/{name}", inner.trim_end_matches('/'))))
        .collect();
    names.sort();
    Ok(names)
}

/// The path (relative to the group at `inner`) of the first array in its subgroups, looking
/// at most `depth` groups down.
fn array_below(store: &Store, inner: &str, depth: usize) -> Option<String> {
    if depth == 0 {
        return None;
    }
    child_nodes(store, inner)
        .ok()?
        .into_iter()
        .find_map(|name| {
            let child = format!("{}/{name}", inner.trim_end_matches('/'));
            if store_has_array(store, &child) {
                Some(name)
            } else {
                array_below(store, &child, depth - 1).map(|rest| format!("{name}/{rest}"))
            }
        })
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

fn open_array(path: &Path) -> Result<(ZArray, Store, PathBuf, String)> {
    let (root, inner) = split_path(path)?;
    let store = Store::at(&root)?;
    if store.dir.is_some() && !root.is_dir() {
        return Err(Error::io(
            &root,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such Zarr store (directory)",
            ),
        ));
    }
    let array = numcodecs::open(&store.storage, &inner).map_err(|e| {
        if group_format(&store, &inner).is_none() {
            return Error::format(path, format!("not a readable Zarr array at {inner}: {e}"));
        }
        let example = match array_below(&store, &inner, 8) {
            Some(a) => format!(" (as {})", path.join(a).display()),
            None => String::new(),
        };
        Error::Invalid(format!(
            "{} is a Zarr group, not an array: name an array inside it{example}",
            path.display()
        ))
    })?;
    check_extent(path, &array)?;
    Ok((array, store, root, inner))
}

/// Refuses an array whose shape or chunk shape holds more than
/// [`MAX_ELEMENTS`](crate::chunks::MAX_ELEMENTS) elements: the metadata can say anything, and
/// every size computed from it must fit in an isize (the number of chunks is then at most the
/// number of elements).
fn check_extent(path: &Path, array: &ZArray) -> Result<()> {
    let shape = array.shape();
    let chunk: Vec<u64> = array
        .chunk_shape(&vec![0; array.dimensionality()])
        .map(|c| c.iter().map(|n| n.get()).collect())
        .unwrap_or_default();
    let fits = |dims: &[u64]| {
        dims.iter()
            .try_fold(1u64, |p, &n| p.checked_mul(n))
            .is_some_and(|e| e <= crate::chunks::MAX_ELEMENTS as u64)
    };
    let what = if !fits(shape) {
        format!("shape {shape:?}")
    } else if !fits(&chunk) {
        format!("chunk shape {chunk:?}")
    } else {
        return Ok(());
    };
    Err(Error::format(
        path,
        format!("the array's {what} is more than can be addressed"),
    ))
}

/// Reads the description of the Zarr array at `path`.
///
/// # Errors
/// A missing store, a path that is not a Zarr array, or an unsupported data type.
pub fn info(path: &Path) -> Result<ZarrInfo> {
    let (array, store, root, inner) = open_array(path)?;
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
        let chain = json
            .get("codecs")
            .map(|c| c.to_string())
            .unwrap_or_default();
        let renamed = numcodecs::read_as_core(&store.storage, &inner);
        if renamed.is_empty() {
            chain
        } else {
            format!("{chain} (read {})", renamed.join(", "))
        }
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
    /// Set when each chunk is one file holding its little-endian C-order bytes, as they are or
    /// through one zstd, Blosc, gzip or zlib codec.
    raw: Option<RawChunks>,
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
        // The decoded block, plus the encoded and decoded chunks being read: by zarrs, or by
        // tessera (a chunk file and a decoded chunk, in a worker's buffers).
        let block = self.grid.max_block_len();
        let chunks = self.raw.as_ref().map_or(0, |r| 2 * r.chunk_len());
        (block + block.max(chunks)) * T::DTYPE.size()
    }
}

impl<T: Element> ZarrSource<T> {
    /// The first chunk of `subset` that cannot be read or decoded, described with its key.
    fn failing_chunk(&self, subset: &ArraySubset) -> Option<String> {
        let chunks = self.array.chunks_in_array_subset(subset).ok()??;
        chunks.indices().into_iter().find_map(|idx| {
            self.array
                .retrieve_chunk::<ArrayBytes<'static>>(&idx)
                .err()
                .map(|e| {
                    format!(
                        "chunk {:?} (key {}) cannot be read: {e}",
                        idx.as_slice(),
                        self.array.chunk_key(&idx).as_str()
                    )
                })
        })
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
        // Name the chunk that failed: decode the region's chunks one by one.
        let failed = |e: zarrs::array::ArrayError| {
            let detail = self
                .failing_chunk(&subset)
                .unwrap_or_else(|| format!("reading region {region:?}: {e}"));
            Error::format(&self.path, detail)
        };
        // Every element is written below: from the chunk files, or by zarrs (fill values for
        // missing chunks); a block of another type is built apart.
        let mut out = exec::overwritten_block::<T>(&shape);
        if let Some(raw) = &self.raw {
            if direct::read_chunks(
                raw,
                &self.array,
                &self.path,
                self.grid.shape(),
                region,
                &mut out,
            )? {
                return Ok(out.into());
            }
        }
        let values = out
            .as_slice_mut()
            .ok_or_else(|| Error::Shape("internal: a new block is not contiguous".into()))?;
        if let Some(bytes) = plain_bytes_mut(values) {
            // Decode straight into the block: no intermediate buffer, no copy.
            let dims: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
            // SAFETY: this is the only view of `bytes`.
            let mut view = unsafe {
                ArrayBytesFixedDisjointView::new(
                    UnsafeCellSlice::new(bytes),
                    T::DTYPE.size(),
                    &dims,
                    ArraySubset::new_with_shape(dims.clone()),
                )
            }
            .map_err(|e| Error::Shape(format!("internal: Zarr region view: {e}")))?;
            self.array
                .retrieve_array_subset_into(&subset, (&mut view).into())
                .map_err(failed)?;
            return Ok(out.into());
        }
        let bytes: ArrayBytes<'static> =
            self.array.retrieve_array_subset(&subset).map_err(failed)?;
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
    if let Ok(values) = T::from_bytes(raw) {
        return Ok(values.to_vec());
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
    /// An unknown codec name (the error lists the known ones), a level out of the codec's
    /// range, or a level with `none`.
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
            "none" => match level {
                Some(l) => Err(Error::Invalid(format!(
                    "level {l} given with codec none: a level applies to zstd, blosc or gzip"
                ))),
                None => Ok(Codec::None),
            },
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
    /// Replace an existing array (only once the new one is complete).
    pub overwrite: bool,
    /// Zarr format version: 3 (default) or 2.
    pub zarr_format: u8,
}

impl Default for ZarrWriteOptions {
    fn default() -> Self {
        ZarrWriteOptions {
            codec: Codec::Zstd(3),
            overwrite: false,
            zarr_format: 3,
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

/// The bytes of a whole chunk of shape `full` holding `block` (in C order): the block's own
/// bytes, or for an edge chunk (stored whole in Zarr) the block padded with zeros.
fn chunk_bytes<'a, T: Element>(block: ArrayViewD<'a, T>, full: &[usize]) -> Result<Cow<'a, [u8]>> {
    if block.shape() == full {
        let values = block
            .to_slice()
            .ok_or_else(|| Error::Shape("internal: block not contiguous".into()))?;
        return Ok(Cow::Borrowed(T::to_bytes(values)));
    }
    let mut padded = ArrayD::from_elem(IxDyn(full), T::default());
    let local: Vec<Range<usize>> = block.shape().iter().map(|&n| 0..n).collect();
    padded
        .slice_mut(crate::plan::slice_info(&local).as_slice())
        .assign(&block);
    Ok(Cow::Owned(
        T::to_bytes(padded.as_slice().unwrap_or(&[])).to_vec(),
    ))
}

/// Stores each finished block as a chunk of a [`ZarrTarget`], atomically, and tells a resumed
/// run which chunks are already there.
struct TargetSink<'a> {
    target: &'a ZarrTarget,
}

impl TargetSink<'_> {
    fn chunk_index(&self, region: &[Range<usize>]) -> Vec<usize> {
        region
            .iter()
            .zip(self.target.chunk_shape())
            .map(|(r, &c)| r.start / c.max(1))
            .collect()
    }
}

impl<T: Element> BlockSink<T> for TargetSink<'_> {
    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()> {
        if region.iter().any(|r| r.is_empty()) {
            // The empty block of an empty axis: a Zarr array of that shape has no chunks.
            return Ok(());
        }
        self.target.write_block(&self.chunk_index(region), block)
    }

    fn stored(&self, region: &[Range<usize>]) -> Result<bool> {
        if region.iter().any(|r| r.is_empty()) {
            return Ok(true);
        }
        Ok(self.target.chunk_state(&self.chunk_index(region)) == ChunkState::Valid)
    }

    fn takes_parts(&self) -> bool {
        self.target.takes_parts()
    }

    fn parts(&self, region: &[Range<usize>]) -> Result<Option<Box<dyn PartWriter<T> + '_>>> {
        if region.iter().any(|r| r.is_empty()) {
            return Ok(None);
        }
        let writer = self
            .target
            .chunk_parts::<T>(&self.chunk_index(region), region)?;
        Ok(writer.map(|w| Box::new(w) as Box<dyn PartWriter<T>>))
    }
}

/// How one process takes part in writing a Zarr array in place
/// ([`ChunkedArray::to_zarr_part`]).
#[derive(Clone, Debug, Default)]
pub struct PartOptions {
    /// This process's share of the output blocks.
    pub shard: Shard,
    /// Skip the chunks already present and valid.
    pub resume: bool,
    /// The command and parameters that make the array, recorded as [`RUN_ATTRIBUTE`]; a worker
    /// or a resumed run with other parameters is refused.
    pub run: serde_json::Map<String, serde_json::Value>,
}

/// What [`ChunkedArray::to_zarr_part`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartReport {
    /// The blocks of this share: written, skipped as present.
    pub stats: RunStats,
    /// This process created the array's metadata.
    pub created: bool,
    /// The array is marked complete (a whole run that stored every chunk, or an array that was
    /// already complete).
    pub complete: bool,
}

/// Whether tessera writes the chunks of an array with `zopts` straight to their files (in a
/// local store): uncompressed chunks are the elements' little-endian bytes as they are in
/// memory.
fn raw_chunk_files(zopts: &ZarrWriteOptions) -> bool {
    zopts.codec == Codec::None && cfg!(target_endian = "little")
}

/// Whether a Zarr array written with `zopts` in the store at `root` stores its blocks piece by
/// piece: uncompressed chunks in a local directory. A node that computes its blocks in parts (a
/// distance tile) is then held to its parts, not whole blocks
/// ([`Explain::in_parts`](crate::plan::explain::Explain::in_parts)).
pub fn writes_in_parts(zopts: &ZarrWriteOptions, root: &Path) -> bool {
    raw_chunk_files(zopts) && !is_url(root)
}

/// Checks the memory of writing `data` as a Zarr array in the store at `root`: uncompressed
/// chunks in a directory are written part by part ([`BlockSink::parts`]), so a node that
/// computes its blocks in parts (a distance tile, strip by strip) is held to its parts.
fn check_memory<T: Element>(
    data: &ChunkedArray<T>,
    zopts: &ZarrWriteOptions,
    root: &Path,
    opts: &ExecOptions,
) -> Result<()> {
    if writes_in_parts(zopts, root) {
        exec::check_memory_parts(data.node().as_ref(), opts)
    } else {
        exec::check_memory(data.node().as_ref(), opts)
    }
}

/// Refuses a Zarr format tessera does not write.
fn check_format(zopts: &ZarrWriteOptions) -> Result<()> {
    if matches!(zopts.zarr_format, 2 | 3) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "Zarr format {} is not one tessera writes (2 or 3)",
        zopts.zarr_format
    )))
}

/// Stores each finished block as the Zarr chunk it is.
struct ChunkSink<'a> {
    array: &'a ZArray,
    chunk: Vec<usize>,
    path: &'a Path,
    /// For an uncompressed array, the store's root: each chunk's bytes are written straight
    /// to its file (what zarrs would write, without its encode pass and copy).
    raw: Option<&'a Path>,
    /// For a gzip array, the store's root and the level: each chunk is compressed by
    /// libdeflate and written to its file (the stream zarrs' gzip codec would write, at
    /// several times zlib's speed).
    gzip: Option<(&'a Path, u32)>,
}

impl ChunkSink<'_> {
    /// The index of the chunk holding the block covering `region`.
    fn chunk_index(&self, region: &[Range<usize>]) -> Vec<u64> {
        region
            .iter()
            .zip(&self.chunk)
            .map(|(r, &c)| (r.start / c.max(1)) as u64)
            .collect()
    }

    /// For chunk `idx` of an array written straight to its files under `root`: the chunk's
    /// file and what writing it is called in errors.
    fn chunk_file(&self, root: &Path, idx: &[u64]) -> (PathBuf, String) {
        let key = self.array.chunk_key(idx);
        (
            root.join(key.as_str()),
            format!("writing chunk {idx:?} (key {})", key.as_str()),
        )
    }
}

impl<T: Element> BlockSink<T> for ChunkSink<'_> {
    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()> {
        let idx = self.chunk_index(region);
        let std = block.as_standard_layout();
        let bytes = chunk_bytes(std.view(), &self.chunk)?;
        let file_bytes = match (self.raw, self.gzip) {
            (Some(root), _) => Some((root, std::borrow::Cow::Borrowed(&bytes[..]))),
            (None, Some((root, level))) => {
                let z = crate::store::raw_deflate::gzip(&bytes, level).map_err(|e| {
                    Error::format(self.path, format!("compressing chunk {idx:?}: {e}"))
                })?;
                Some((root, std::borrow::Cow::Owned(z)))
            }
            (None, None) => None,
        };
        if let Some((root, bytes)) = file_bytes {
            let (file, what) = self.chunk_file(root, &idx);
            let failed = |e: std::io::Error| Error::format(self.path, format!("{what}: {e}"));
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(failed)?;
            }
            return std::fs::write(&file, &bytes).map_err(failed);
        }
        self.array
            .store_chunk(&idx, ArrayBytes::new_flen(bytes))
            .map_err(|e| Error::format(self.path, format!("writing chunk {idx:?}: {e}")))
    }

    fn takes_parts(&self) -> bool {
        self.raw.is_some()
    }

    fn parts(&self, region: &[Range<usize>]) -> Result<Option<Box<dyn PartWriter<T> + '_>>> {
        let Some(root) = self.raw else {
            return Ok(None);
        };
        if region.iter().any(|r| r.is_empty()) {
            return Ok(None);
        }
        let (file, what) = self.chunk_file(root, &self.chunk_index(region));
        let writer = crate::store::parts::ChunkFile::<T>::create(
            file,
            None,
            region,
            &self.chunk,
            self.path,
            what,
        )?;
        Ok(Some(Box::new(writer)))
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
        let (array, store, _, _) = open_array(path)?;
        let dtype = dtype_of(path, array.data_type())?;
        if dtype != T::DTYPE {
            return Err(Error::DType(format!(
                "{} holds {dtype}, not {}",
                path.display(),
                T::DTYPE
            )));
        }
        if array.attributes().get(COMPLETE_ATTRIBUTE) == Some(&serde_json::Value::Bool(false)) {
            return Err(Error::format(
                path,
                format!("the array is incomplete: its write was interrupted ({COMPLETE_ATTRIBUTE} is false); write it again"),
            ));
        }
        let shape: Vec<usize> = array.shape().iter().map(|&n| n as usize).collect();
        let native: Option<Vec<usize>> = array
            .chunk_shape(&vec![0; array.dimensionality()])
            .ok()
            .map(|c| c.iter().map(|n| n.get() as usize).collect());
        let grid =
            ChunkGrid::new_aligned(&shape, &chunks.into(), T::DTYPE.size(), native.as_deref())?;
        // Chunk files are read straight from a local store.
        let raw = native
            .as_deref()
            .zip(store.dir.as_deref())
            .and_then(|(c, dir)| raw_chunks(&array, dir, dtype, c));
        Ok(Self::from_node(Arc::new(ZarrSource {
            raw,
            array,
            path: path.to_owned(),
            grid,
            _t: std::marker::PhantomData,
        })))
    }

    /// Writes the array as a Zarr array at `path` (v3, or v2 with
    /// [`ZarrWriteOptions::zarr_format`] = 2), one chunk per block (the blocks are first made
    /// regular if they are not). The array is written aside, metadata first and the completion
    /// attribute last, then moved into place: an existing array is replaced only once its
    /// successor is complete, and on failure the partial output is removed. A group above
    /// that keeps consolidated metadata (zarr-python's `consolidate_metadata`) has the new
    /// array and the groups created on the way entered in it, so zarr-python sees them.
    ///
    /// # Errors
    /// An existing path without `overwrite`, a group at `path` (only an array is replaced), an
    /// array or a group of the other Zarr format above it, a directory in the way that is not
    /// a Zarr node, an unwritable location, consolidated metadata above that cannot be read or
    /// updated, or any error of the plan.
    pub fn to_zarr(
        &self,
        path: impl AsRef<Path>,
        zopts: &ZarrWriteOptions,
        opts: &ExecOptions,
    ) -> Result<()> {
        let path = path.as_ref();
        check_format(zopts)?;
        let (root, inner) = split_path(path)?;
        if is_url(&root) {
            return self.to_zarr_object(path, zopts, opts);
        }
        let target = node_dir(&root, &inner);
        let replacing = node_exists(&root, &inner);
        if replacing && !zopts.overwrite {
            return Err(Error::Exists(path.to_owned()));
        }
        let store = Store::at(&root)?;
        not_a_group(&store, &inner, path)?;
        parents_are_groups(&store, &inner, zopts.zarr_format, path)?;
        if !replacing && target.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::Invalid(format!(
                "{}: the directory exists and is not a Zarr array or group; refusing to write into it",
                target.display()
            )));
        }
        // Stored chunks all have one shape: make the blocks regular first.
        let (data, chunk) = self.regular_blocks()?;
        check_memory(&data, zopts, &root, opts)?;
        // The first directory on the way to an array inside the store (the store's own, or a
        // group's) that does not exist yet: this run makes it, and removes it again if the
        // write fails. (An array at the root is written aside and renamed: none is made.)
        let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
        let first_new_dir = (0..parts.len())
            .map(|k| node_dir(&root, &parts[..k].join("/")))
            .find(|dir| !dir.exists());
        // Written aside, beside the final node, then renamed into place.
        let leaf = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "array.zarr".into());
        let aside_name = |what: &str| super::aside_name(&leaf, what);
        let (write_root, write_inner, aside) = if inner == "/" {
            let aside = root.with_file_name(aside_name("partial"));
            (aside.clone(), "/".to_string(), aside)
        } else {
            let parent = inner.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            let write_inner = format!("{parent}/{}", aside_name("partial"));
            let aside = node_dir(&root, &write_inner);
            (root.clone(), write_inner, aside)
        };
        super::remove_stale_asides(&target, false);
        let result = (|| -> Result<()> {
            let _ = std::fs::remove_dir_all(&aside);
            std::fs::create_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
            if inner != "/" {
                create_parent_groups(&Store::at(&root)?, &inner, zopts.zarr_format, path)?;
            }
            write_array(&data, &chunk, &write_root, &write_inner, zopts, opts, path)?;
            // Publish: the old node (if any) leaves, the new one takes its place.
            if replacing {
                let old = target.with_file_name(aside_name("old"));
                std::fs::rename(&target, &old).map_err(|e| Error::io(&target, e))?;
                if let Err(e) = std::fs::rename(&aside, &target) {
                    let _ = std::fs::rename(&old, &target);
                    return Err(Error::io(&target, e));
                }
                let _ = std::fs::remove_dir_all(&old);
            } else {
                // An empty directory may stand in the way (rename replaces it); anything made
                // there while this run wrote is not replaced.
                std::fs::rename(&aside, &target).map_err(|e| {
                    if target.read_dir().is_ok_and(|mut d| d.next().is_some()) {
                        Error::Invalid(format!(
                            "{}: something was written there while this run wrote the array; \
                             it is left as it is, and this run's output removed",
                            path.display()
                        ))
                    } else {
                        Error::io(&target, e)
                    }
                })?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&aside);
            if let Some(dir) = &first_new_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        result?;
        // Groups above that consolidate their nodes' metadata are told of the new array.
        consolidated::refresh(&store, &inner, path)
    }
}

impl<T: Element> ChunkedArray<T> {
    /// [`to_zarr`](Self::to_zarr) into object storage, where nothing can be renamed: the
    /// array is written in place, metadata first with the completion attribute false, each
    /// chunk by one request, and the completion attribute last. An existing array is removed
    /// first (with `overwrite`).
    fn to_zarr_object(
        &self,
        path: &Path,
        zopts: &ZarrWriteOptions,
        opts: &ExecOptions,
    ) -> Result<()> {
        let (root, inner) = split_path(path)?;
        let store = Store::at(&root)?;
        if store_has_node(&store, &inner) {
            if !zopts.overwrite {
                return Err(Error::Exists(path.to_owned()));
            }
            not_a_group(&store, &inner, path)?;
            let prefix = zarrs::storage::StorePrefix::new(node_prefix(&inner))
                .map_err(|e| Error::format(path, e.to_string()))?;
            store
                .storage
                .erase_prefix(&prefix)
                .map_err(|e| Error::format(path, format!("removing the old array: {e}")))?;
        }
        self.to_zarr_part(path, zopts, &PartOptions::default(), opts)
            .map(|_| ())
    }

    /// Writes this process's share of the array into the Zarr array at `path`, in place: the
    /// metadata is created if no other worker has (or must match theirs), each chunk is written
    /// aside and renamed into place, and with [`PartOptions::resume`] chunks already present
    /// and valid are skipped. A whole run ([`Shard::WHOLE`]) marks the array complete at the
    /// end; the workers of a sharded run leave that to [`ZarrTarget::verify`] and
    /// [`ZarrTarget::mark_complete`] (`tessera verify`) once all have finished.
    ///
    /// # Errors
    /// An array at `path` made with other metadata or another run (named), an array already
    /// complete when not resuming, an unwritable location, or any error of the plan.
    pub fn to_zarr_part(
        &self,
        path: impl AsRef<Path>,
        zopts: &ZarrWriteOptions,
        part: &PartOptions,
        opts: &ExecOptions,
    ) -> Result<PartReport> {
        let path = path.as_ref();
        check_format(zopts)?;
        let (data, chunk) = self.regular_blocks()?;
        let (root, inner) = split_path(path)?;
        check_memory(&data, zopts, &root, opts)?;
        // What a killed plain run of this output left aside cannot be continued in place.
        if !is_url(&root) {
            super::remove_stale_asides(&node_dir(&root, &inner), false);
        }
        let (target, joined) =
            ZarrTarget::create_or_join(path, data.shape(), &chunk, T::DTYPE, zopts, &part.run)?;
        let ctx = ExecContext::new(opts.clone())?;
        let output = path.display().to_string();
        if joined.complete
            && ctx.install(|| ZarrTarget::reopen_complete(&[&target], part.resume, &output))?
        {
            return Ok(PartReport {
                stats: RunStats::default(),
                created: false,
                complete: true,
            });
        }
        let sink = TargetSink { target: &target };
        let stats = exec::run_part(data.node().as_ref(), &sink, &ctx, part.shard, part.resume)?;
        let complete = part.shard.is_whole();
        if complete {
            target.mark_complete()?;
        }
        Ok(PartReport {
            stats,
            created: joined.created,
            complete,
        })
    }
}

/// Refuses a node `inner` below an existing array: only groups hold nodes (zarr-python
/// refuses the rest: "a parent ... is an array").
pub(super) fn parents_are_groups(
    store: &Store,
    inner: &str,
    format: u8,
    path: &Path,
) -> Result<()> {
    let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
    let above: Vec<(String, String)> = (0..parts.len())
        .map(|k| {
            let group = format!("/{}", parts[..k].join("/"));
            let what = if k == 0 {
                "the store's root".into()
            } else {
                group.clone()
            };
            (group, what)
        })
        .collect();
    for (group, what) in &above {
        if store_has_array(store, group) {
            return Err(Error::Invalid(format!(
                "{}: {what} is an array, and only groups may hold arrays; write {inner} elsewhere",
                path.display()
            )));
        }
    }
    for (group, what) in &above {
        // zarr-python does not see a node of the other format inside a group.
        if let Some(g) = group_format(store, group).filter(|&g| g != format) {
            return Err(Error::Invalid(format!(
                "{}: {what} is a Zarr v{g} group, and a v{format} array inside it would be \
                 invisible to zarr-python; write it as Zarr v{g} (--zarr-format {g})",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The Zarr format of the group at `group` in `store` (3 for a `zarr.json` of a group, 2 for
/// a `.zgroup`); `None` where no group is. A `zarr.json` decides before a `.zgroup`, as for
/// zarr-python, which opens a node of both formats as v3.
fn group_format(store: &Store, group: &str) -> Option<u8> {
    let p = node_prefix(group);
    if let Ok(Some(b)) = store.get(&format!("{p}zarr.json")) {
        return serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .filter(|v| v.get("node_type").and_then(|t| t.as_str()) == Some("group"))
            .map(|_| 3);
    }
    store
        .get(&format!("{p}.zgroup"))
        .is_ok_and(|b| b.is_some())
        .then_some(2)
}

/// The format of the group an array at `path` goes into: that of the deepest existing group
/// above it; `None` for an array at a store's root or where no group exists yet. The CLI
/// writes in it when not told a format, so that zarr-python finds the array in its group.
pub fn parent_group_format(path: &Path) -> Option<u8> {
    let (root, inner) = split_path(path).ok()?;
    let store = Store::at(&root).ok()?;
    let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
    (0..parts.len())
        .rev()
        .find_map(|k| group_format(&store, &format!("/{}", parts[..k].join("/"))))
}

/// Refuses to replace a Zarr group (and every node it holds) with an array: only an array
/// is replaced.
///
/// # Errors
/// A group at `path`.
pub fn refuse_group(path: &Path) -> Result<()> {
    let (root, inner) = split_path(path)?;
    match Store::at(&root) {
        Ok(store) => not_a_group(&store, &inner, path),
        Err(_) => Ok(()),
    }
}

fn not_a_group(store: &Store, inner: &str, path: &Path) -> Result<()> {
    if group_format(store, inner).is_some() {
        return Err(Error::Invalid(format!(
            "{} is a Zarr group: --overwrite replaces an array, never a group and what it \
             holds; remove the group first or name an array inside it",
            path.display()
        )));
    }
    Ok(())
}

/// Creates the groups from the store root down to the parent of `inner`, where missing, so other
/// tools can walk to the array. Callers first check with [`parents_are_groups`] that no array
/// stands on the way.
fn create_parent_groups(store: &Store, inner: &str, format: u8, path: &Path) -> Result<()> {
    if let Some(dir) = &store.dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
    for k in 0..parts.len() {
        let group = format!("/{}", parts[..k].join("/"));
        if store_has_node(store, &group) {
            continue;
        }
        let (file, meta) = if format == 2 {
            (".zgroup", serde_json::json!({ "zarr_format": 2 }))
        } else {
            (
                "zarr.json",
                serde_json::json!({ "zarr_format": 3, "node_type": "group", "attributes": {} }),
            )
        };
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| Error::format(path, format!("encoding metadata: {e}")))?;
        let key = format!("{}{file}", node_prefix(&group));
        store
            .put(&key, text.as_bytes())
            .map_err(|e| Error::format(path, format!("writing the group {group}: {e}")))?;
    }
    Ok(())
}

/// Writes JSON metadata, aside and then renamed into place, so a reader never sees half of it.
fn write_json(file: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::format(file, format!("encoding metadata: {e}")))?;
    target::write_atomic(file, text.as_bytes()).map_err(|e| Error::io(file, e))
}

/// The NumPy type string of a dtype, as Zarr v2 metadata spells it.
fn v2_dtype(d: DType) -> &'static str {
    match d {
        DType::Bool => "|b1",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
    }
}

/// The v2 `compressor` entry of a codec (numcodecs' names).
fn v2_compressor(codec: Codec) -> serde_json::Value {
    use serde_json::json;
    match codec {
        Codec::None => serde_json::Value::Null,
        Codec::Zstd(level) => json!({ "id": "zstd", "level": level }),
        Codec::Gzip(level) => json!({ "id": "gzip", "level": level }),
        Codec::Blosc(level) => {
            json!({ "id": "blosc", "cname": "zstd", "clevel": level, "shuffle": 1, "blocksize": 0 })
        }
    }
}

/// The v2 `.zarray` document of an array tessera writes: C order, no filters, `.` between the
/// chunk indices of a key, zero as the fill value.
fn v2_array_metadata(
    shape: &[u64],
    chunk: &[u64],
    dtype: DType,
    codec: Codec,
) -> serde_json::Value {
    let fill = match dtype {
        DType::Bool => serde_json::json!(false),
        DType::F32 | DType::F64 => serde_json::json!(0.0),
        _ => serde_json::json!(0),
    };
    serde_json::json!({
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunk,
        "dtype": v2_dtype(dtype),
        "compressor": v2_compressor(codec),
        "fill_value": fill,
        "order": "C",
        "filters": null,
        "dimension_separator": ".",
    })
}

/// The builder of a v3 array tessera writes (zero as the fill value), without attributes.
fn v3_builder(
    shape: Vec<u64>,
    chunk: Vec<u64>,
    dtype: DType,
    codec: Codec,
) -> Result<ArrayBuilder> {
    let mut builder = ArrayBuilder::new(
        shape,
        chunk,
        zarr_dtype(dtype),
        zarrs::array::FillValue::from(vec![0u8; dtype.size()]),
    );
    builder.bytes_to_bytes_codecs(build_codecs(codec, dtype.size())?);
    Ok(builder)
}

/// Writes `data` (blocks of exactly `chunk`) as a new array `inner` of the store at `root`:
/// metadata with `tessera_complete` = false, the chunks, then `tessera_complete` = true.
fn write_array<T: Element>(
    data: &ChunkedArray<T>,
    chunk: &[usize],
    root: &Path,
    inner: &str,
    zopts: &ZarrWriteOptions,
    opts: &ExecOptions,
    path: &Path,
) -> Result<()> {
    let store: ReadableWritableListableStorage =
        Arc::new(FilesystemStore::new(root).map_err(|e| zerr(root, e))?);
    let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
    let chunk_u64: Vec<u64> = chunk.iter().map(|&n| n as u64).collect();
    let run = |array: &ZArray| -> Result<()> {
        let raw = raw_chunk_files(zopts);
        let gzip = match zopts.codec {
            Codec::Gzip(level) if cfg!(target_endian = "little") => Some((root, level)),
            _ => None,
        };
        let sink = ChunkSink {
            array,
            chunk: chunk.to_vec(),
            path,
            raw: raw.then_some(root),
            gzip,
        };
        let ctx = ExecContext::new(opts.clone())?;
        exec::run(data.node().as_ref(), &sink, &ctx)
    };
    if zopts.zarr_format == 2 {
        let dir = node_dir(root, inner);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_json(
            &dir.join(".zarray"),
            &v2_array_metadata(&shape, &chunk_u64, T::DTYPE, zopts.codec),
        )?;
        let attrs = |done: bool| serde_json::json!({ COMPLETE_ATTRIBUTE: done });
        write_json(&dir.join(".zattrs"), &attrs(false))?;
        let array = ZArray::open(store, inner).map_err(|e| zerr(path, e))?;
        run(&array)?;
        write_json(&dir.join(".zattrs"), &attrs(true))
    } else {
        let mut builder = v3_builder(shape, chunk_u64, T::DTYPE, zopts.codec)?;
        builder
            .attributes_mut()
            .insert(COMPLETE_ATTRIBUTE.into(), serde_json::Value::Bool(false));
        let mut array = builder.build(store, inner).map_err(|e| zerr(path, e))?;
        array.store_metadata().map_err(|e| zerr(path, e))?;
        run(&array)?;
        array
            .attributes_mut()
            .insert(COMPLETE_ATTRIBUTE.into(), serde_json::Value::Bool(true));
        array.store_metadata().map_err(|e| zerr(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_into_a_dirty_spare_buffer_write_every_element() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.zarr");
        let (n, m) = (1100, 1024);
        let values = ndarray::Array2::from_shape_fn((n, m), |(i, j)| (i * m + j) as f64 * 0.25);
        // Chunks of whole rows: the uncompressed array's whole-array read takes the chunk
        // files straight (`read_raw`), the cut region goes through zarrs.
        let a = ChunkedArray::from_array(values.into_dyn(), vec![256, m])
            .unwrap_or_else(|e| panic!("{e}"));
        for codec in [Codec::Zstd(3), Codec::None] {
            let zopts = ZarrWriteOptions {
                codec,
                overwrite: true,
                ..Default::default()
            };
            a.to_zarr(&path, &zopts, &ExecOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            // The third chunk goes missing: zarrs fills it.
            std::fs::remove_file(path.join("c/2/0")).unwrap_or_else(|e| panic!("{e}"));
            let x =
                ChunkedArray::<f64>::from_zarr(&path, vec![n, m]).unwrap_or_else(|e| panic!("{e}"));
            // The whole array, and a region whose edges cut chunks.
            for region in [[0..n, 0..m], [3..n - 5, 7..m - 4]] {
                exec::drop_spare();
                let want = x
                    .node()
                    .region(&region)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .into_owned();
                assert!(want
                    .slice(ndarray::s![
                        512 - region[0].start..768 - region[0].start,
                        ..
                    ])
                    .iter()
                    .all(|&v| v == 0.0));
                let shape = [region[0].len(), region[1].len()];
                let mut dirty = exec::overwritten_block::<f64>(&shape);
                dirty.fill(f64::NAN);
                let ptr = dirty.as_ptr();
                exec::recycle(dirty.into());
                let block = x
                    .node()
                    .region(&region)
                    .unwrap_or_else(|e| panic!("{region:?}: {e}"));
                assert_eq!(block.as_ptr(), ptr, "the read did not take the spare");
                assert!(
                    block.view() == want.view(),
                    "{codec:?} {region:?}: stale values"
                );
            }
            exec::drop_spare();
        }
    }
}
