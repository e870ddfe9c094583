//! A Zarr array written in place by one or several processes at once: the metadata is created
//! once (idempotently, so workers may race to create it), every chunk is written aside and
//! renamed into place (a killed worker never leaves a torn chunk), and the completion attribute
//! is set only once every chunk is present and decodes ([`ZarrTarget::verify`]).
//!
//! This is what sharded runs (`--task-index`/`--task-count`) and resumed runs (`--resume`) write
//! to; a plain run writes the whole array aside and renames it instead.

use super::{
    node_dir, node_prefix, split_path, store_has_node, v2_array_metadata, v3_builder, zerr, Store,
    ZArray, ZarrWriteOptions, COMPLETE_ATTRIBUTE,
};
use crate::element::{DType, Element};
use crate::error::{Error, Result};
use ndarray::ArrayViewD;
use rayon::prelude::*;
use serde_json::{Map, Value};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use zarrs::array::{ArrayBytes, ArrayToBytesCodecTraits, CodecOptions};

/// The attribute that records which command, with which parameters, writes an array in place;
/// a worker or a resumed run with other parameters is refused.
pub const RUN_ATTRIBUTE: &str = "tessera_run";

/// The mark in the names of chunk files being written (`.KEY.tessera-tmp-PID-N`), renamed to
/// `KEY` once whole.
const TMP_MARK: &str = ".tessera-tmp-";

/// The state of one stored chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkState {
    /// The chunk file is present and decodes to a whole chunk.
    Valid,
    /// No chunk file.
    Missing,
    /// The chunk file is present but does not decode (the reason).
    Corrupt(String),
}

/// What [`ZarrTarget::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Chunks in the array.
    pub chunks: usize,
    /// Keys of the chunks with no file.
    pub missing: Vec<String>,
    /// Keys of the chunks that do not decode, with the reason.
    pub corrupt: Vec<(String, String)>,
    /// Chunks absent from an array that no split or resumed run wrote (no [`RUN_ATTRIBUTE`]):
    /// Zarr reads them as the fill value (zarrs and zarr-python do not store a chunk that is all
    /// fill value), so they are not missing.
    pub absent: usize,
}

impl VerifyReport {
    /// Whether every chunk is present and valid.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }
}

/// A Zarr array that several processes may write at once, chunk by chunk.
pub struct ZarrTarget {
    array: ZArray,
    /// The store (chunk keys are relative to it).
    store: Store,
    /// The path as the user gave it, for messages.
    path: PathBuf,
    /// The key prefix of the array's node (`group/array/`, or empty at the root).
    prefix: String,
    format: u8,
    dtype: DType,
    chunk: Vec<usize>,
    /// Uncompressed: chunk files hold the element bytes as they are.
    raw: bool,
}

/// How a worker came to its target: whether it created the metadata, and whether the array
/// was already marked complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Joined {
    /// This process wrote the metadata.
    pub created: bool,
    /// The array was already marked complete.
    pub complete: bool,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new name beside `file` to write it under before renaming it into place
/// (`.NAME.tessera-tmp-PID-N`).
fn aside(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.with_file_name(format!(
        ".{name}{TMP_MARK}{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `bytes` to `file` aside, then renames it into place.
pub(super) fn write_atomic(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = aside(file);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, file));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(super) fn read_json(store: &Store, key: &str) -> Result<Option<Value>> {
    store
        .get(key)?
        .map(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| Error::Invalid(format!("{key}: not valid JSON metadata: {e}")))
        })
        .transpose()
}

pub(super) fn write_json(store: &Store, key: &str, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Invalid(format!("{key}: encoding metadata: {e}")))?;
    store
        .put(key, text.as_bytes())
        .map_err(|e| Error::Invalid(format!("writing {key}: {e}")))
}

/// The first difference between the metadata a store holds and the metadata this run would
/// write, as `what: the store has A, this run B`; the completion attribute is not compared.
fn difference(stored: &Value, ours: &Value, at: &str) -> Option<String> {
    match (stored, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| k.as_str() != COMPLETE_ATTRIBUTE)
                .find_map(|k| {
                    let path = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match (a.get(k), b.get(k)) {
                        (Some(x), Some(y)) => difference(x, y, &path),
                        (x, y) => Some(format!(
                            "{path}: the store has {}, this run {}",
                            x.map_or("nothing".into(), Value::to_string),
                            y.map_or("nothing".into(), Value::to_string)
                        )),
                    }
                })
        }
        (a, b) if a != b => Some(format!("{at}: the store has {a}, this run {b}")),
        _ => None,
    }
}

impl ZarrTarget {
    /// Creates the array at `path` (`x.zarr` or `x.zarr/group/array`) with `shape`, `chunk`,
    /// `dtype` and the codec and format of `zopts`, recording `run` (the command and its
    /// parameters) as the attribute [`RUN_ATTRIBUTE`]; or joins the array another worker
    /// created, when its metadata is the same.
    ///
    /// # Errors
    /// An array at `path` whose metadata or recorded run differs (the error names the first
    /// difference), something else in the way, or an unwritable location.
    pub fn create_or_join(
        path: &Path,
        shape: &[usize],
        chunk: &[usize],
        dtype: DType,
        zopts: &ZarrWriteOptions,
        run: &Map<String, Value>,
    ) -> Result<(ZarrTarget, Joined)> {
        let (root, inner) = split_path(path)?;
        let store = Store::at(&root)?;
        super::not_a_group(&store, &inner, path)?;
        super::parents_are_groups(&store, &inner, zopts.zarr_format, path)?;
        if inner != "/" || store.dir.is_some() {
            super::create_parent_groups(&store, &inner, zopts.zarr_format, path)?;
        }
        let prefix = node_prefix(&inner);
        let mut attrs = Map::new();
        attrs.insert(COMPLETE_ATTRIBUTE.into(), Value::Bool(false));
        attrs.insert(RUN_ATTRIBUTE.into(), Value::Object(run.clone()));
        let shape_u64: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
        let chunk_u64: Vec<u64> = chunk.iter().map(|&n| n.max(1) as u64).collect();
        // The metadata files this run would write: (file, JSON).
        let files: Vec<(String, Value)> = if zopts.zarr_format == 2 {
            // The attributes first: a worker that finds `.zarray` (the file that makes the node
            // an array) finds its `.zattrs` too, never an array of another tool half made.
            vec![
                (format!("{prefix}.zattrs"), Value::Object(attrs)),
                (
                    format!("{prefix}.zarray"),
                    v2_array_metadata(&shape_u64, &chunk_u64, dtype, zopts.codec),
                ),
            ]
        } else {
            let mut builder = v3_builder(shape_u64, chunk_u64, dtype, zopts.codec)?;
            *builder.attributes_mut() = attrs;
            let array = builder
                .build(store.storage.clone(), &inner)
                .map_err(|e| zerr(path, e))?;
            let meta = serde_json::to_value(array.metadata())
                .map_err(|e| Error::format(path, format!("encoding metadata: {e}")))?;
            vec![(format!("{prefix}zarr.json"), meta)]
        };
        // Another kind of node, or an array of the other Zarr format, is in the way. The node
        // is looked for before our files: a racing worker may write them in between, and a
        // node found first is then seen as ours (looked the other way round, a worker that
        // missed our files but then found the node they make refused its own array).
        let has_node = store_has_node(&store, &inner);
        let ours_exist = files
            .iter()
            .all(|(k, _)| store.get(k).is_ok_and(|b| b.is_some()));
        if has_node && !ours_exist {
            return Err(Error::Invalid(format!(
                "{}: a Zarr node of another kind or format is already there (this run writes a Zarr v{} array)",
                path.display(),
                zopts.zarr_format
            )));
        }
        let mut created = false;
        for (key, ours) in &files {
            if read_json(&store, key)?.is_none() {
                write_json(&store, key, ours)?;
                created = true;
            }
        }
        // Read back what is there now: ours, or what a racing worker wrote first.
        let mut complete = false;
        for (key, ours) in &files {
            let stored = read_json(&store, key)?.unwrap_or(Value::Null);
            let attrs = if zopts.zarr_format == 2 {
                Some(&stored)
            } else {
                stored.get("attributes")
            };
            let holds_attrs = zopts.zarr_format != 2 || key.ends_with(".zattrs");
            if holds_attrs && attrs.and_then(|a| a.get(RUN_ATTRIBUTE)).is_none() {
                return Err(Error::Invalid(format!(
                    "{} was not written by a split or resumed run (it records no {RUN_ATTRIBUTE}: \
                     a plain run or another tool made it), so it cannot be continued in place; \
                     write to another path, or remove it first",
                    path.display()
                )));
            }
            if let Some(diff) = difference(&stored, ours, "") {
                return Err(Error::Invalid(format!(
                    "{} was made by another run and differs from this one ({diff}); \
                     give the same parameters as its other workers, or write to another path",
                    path.display()
                )));
            }
            complete |= attrs
                .and_then(|a| a.get(COMPLETE_ATTRIBUTE))
                .and_then(Value::as_bool)
                == Some(true);
        }
        let target = ZarrTarget::open(path)?;
        Ok((target, Joined { created, complete }))
    }

    /// Opens an existing Zarr array to check or complete it.
    ///
    /// # Errors
    /// A missing store or array, or a data type tessera does not handle.
    pub fn open(path: &Path) -> Result<ZarrTarget> {
        let (array, store, _, inner) = super::open_array(path)?;
        let dtype = super::dtype_of(path, array.data_type())?;
        let meta = serde_json::to_value(array.metadata()).unwrap_or_default();
        let format = meta.get("zarr_format").and_then(Value::as_u64).unwrap_or(3) as u8;
        let chunk: Vec<usize> = array
            .chunk_shape(&vec![0; array.dimensionality()])
            .map_err(|e| zerr(path, e))?
            .iter()
            .map(|n| n.get() as usize)
            .collect();
        let raw = super::raw_chunks(&array, Path::new(""), dtype, &chunk)
            .is_some_and(|r| r.codec.is_none());
        Ok(ZarrTarget {
            prefix: node_prefix(&inner),
            array,
            store,
            path: path.to_owned(),
            format,
            dtype,
            chunk,
            raw,
        })
    }

    /// The array's shape.
    pub fn shape(&self) -> Vec<usize> {
        self.array.shape().iter().map(|&n| n as usize).collect()
    }

    /// The chunk shape.
    pub fn chunk_shape(&self) -> &[usize] {
        &self.chunk
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The run recorded in the array's attributes ([`RUN_ATTRIBUTE`]), if any.
    pub fn run(&self) -> Option<&Map<String, Value>> {
        self.array
            .attributes()
            .get(RUN_ATTRIBUTE)
            .and_then(Value::as_object)
    }

    /// The number of chunks along each axis.
    pub fn grid_shape(&self) -> Vec<usize> {
        self.shape()
            .iter()
            .zip(&self.chunk)
            .map(|(&n, &c)| n.div_ceil(c.max(1)))
            .collect()
    }

    /// The key of chunk `idx` (as `c/0/1`, or `0.1` in Zarr v2), relative to the array.
    pub fn chunk_key(&self, idx: &[usize]) -> String {
        let key = self.store_key(idx);
        key.strip_prefix(&self.prefix).unwrap_or(&key).to_string()
    }

    /// The key of chunk `idx` in the store.
    fn store_key(&self, idx: &[usize]) -> String {
        let idx: Vec<u64> = idx.iter().map(|&i| i as u64).collect();
        self.array.chunk_key(&idx).as_str().to_string()
    }

    fn chunk_shape_nz(&self) -> Vec<NonZeroU64> {
        self.chunk
            .iter()
            .map(|&c| NonZeroU64::new(c.max(1) as u64).unwrap_or(NonZeroU64::MIN))
            .collect()
    }

    fn chunk_nbytes(&self) -> usize {
        self.chunk.iter().product::<usize>() * self.dtype.size()
    }

    /// Whether chunk `idx` is present and decodes to a whole chunk.
    pub fn chunk_state(&self, idx: &[usize]) -> ChunkState {
        let bytes = match self.store.get(&self.store_key(idx)) {
            Ok(Some(b)) => b,
            Ok(None) => return ChunkState::Missing,
            Err(e) => return ChunkState::Corrupt(format!("unreadable: {e}")),
        };
        if self.raw {
            return if bytes.len() == self.chunk_nbytes() {
                ChunkState::Valid
            } else {
                ChunkState::Corrupt(format!(
                    "{} bytes, an uncompressed chunk has {}",
                    bytes.len(),
                    self.chunk_nbytes()
                ))
            };
        }
        let decoded = self.array.codecs().decode(
            bytes.into(),
            &self.chunk_shape_nz(),
            self.array.data_type(),
            self.array.fill_value(),
            &CodecOptions::default(),
        );
        match decoded.map(|d| d.size()) {
            Ok(n) if n == self.chunk_nbytes() => ChunkState::Valid,
            Ok(n) => ChunkState::Corrupt(format!(
                "decodes to {n} bytes, a chunk has {}",
                self.chunk_nbytes()
            )),
            Err(e) => ChunkState::Corrupt(format!("does not decode: {e}")),
        }
    }

    /// Encodes a whole chunk (`bytes`: its elements in C order, as stored in memory) and writes
    /// it aside, then renames it into place as chunk `idx`.
    ///
    /// # Errors
    /// A buffer of the wrong size, an encoding error, or the file system's error (a full disk,
    /// say), naming the chunk key.
    pub fn write_chunk(&self, idx: &[usize], bytes: &[u8]) -> Result<()> {
        let key = self.chunk_key(idx);
        let fail = |what: String| Error::format(&self.path, format!("chunk {key}: {what}"));
        if bytes.len() != self.chunk_nbytes() {
            return Err(fail(format!(
                "internal: {} bytes given, a chunk has {}",
                bytes.len(),
                self.chunk_nbytes()
            )));
        }
        let encoded = if self.raw {
            std::borrow::Cow::Borrowed(bytes)
        } else {
            self.array
                .codecs()
                .encode(
                    ArrayBytes::new_flen(bytes),
                    &self.chunk_shape_nz(),
                    self.array.data_type(),
                    self.array.fill_value(),
                    &CodecOptions::default(),
                )
                .map_err(|e| fail(format!("encoding: {e}")))?
        };
        let key = self.store_key(idx);
        let shown = match &self.store.dir {
            Some(d) => d.join(&key).display().to_string(),
            None => key.clone(),
        };
        self.store
            .put(&key, &encoded)
            .map_err(|e| fail(format!("writing {shown}: {e}")))
    }

    /// Refuses blocks of another element type than the array's.
    fn check_dtype<E: Element>(&self) -> Result<()> {
        if E::DTYPE == self.dtype {
            return Ok(());
        }
        Err(Error::DType(format!(
            "{}: a block of {} for an array of {}",
            self.path.display(),
            E::DTYPE,
            self.dtype
        )))
    }

    /// Whether chunks can be written part by part ([`ZarrTarget::chunk_parts`]).
    pub(super) fn takes_parts(&self) -> bool {
        self.raw && self.store.dir.is_some()
    }

    /// A writer of chunk `idx` (holding the block covering `region`) part by part, written
    /// aside and renamed into place when finished, for an uncompressed array in a local
    /// directory; `None` for other arrays (a chunk there is encoded or sent whole).
    ///
    /// # Errors
    /// An element type other than the array's, or the file system's error naming the chunk.
    pub(super) fn chunk_parts<E: Element>(
        &self,
        idx: &[usize],
        region: &[std::ops::Range<usize>],
    ) -> Result<Option<crate::store::parts::ChunkFile<E>>> {
        let Some(dir) = self.store.dir.as_ref().filter(|_| self.raw) else {
            return Ok(None);
        };
        self.check_dtype::<E>()?;
        let file = dir.join(self.store_key(idx));
        let what = format!("chunk {}: writing {}", self.chunk_key(idx), file.display());
        let tmp = aside(&file);
        crate::store::parts::ChunkFile::create(
            tmp,
            Some(file),
            region,
            &self.chunk,
            &self.path,
            what,
        )
        .map(Some)
    }

    /// Pads `block` (the elements of chunk `idx`, fewer at the array's edge) to a whole chunk
    /// and writes it, as [`write_chunk`](Self::write_chunk) does.
    ///
    /// # Errors
    /// An element type other than the array's, or as [`write_chunk`](Self::write_chunk).
    pub fn write_block<E: Element>(&self, idx: &[usize], block: ArrayViewD<'_, E>) -> Result<()> {
        self.check_dtype::<E>()?;
        let std = block.as_standard_layout();
        let bytes = super::chunk_bytes(std.view(), &self.chunk)?;
        self.write_chunk(idx, &bytes)
    }

    /// Before a run writes in place into `targets` (the arrays of one output, `output`), all
    /// marked complete: refused unless `resume`; when resuming, every chunk is checked.
    /// `Ok(true)`: all are valid, nothing is left to do. `Ok(false)`: a chunk has gone, and the
    /// arrays are marked incomplete while the run repairs them.
    ///
    /// # Errors
    /// A complete output without `resume`, or unwritable metadata.
    pub fn reopen_complete(targets: &[&ZarrTarget], resume: bool, output: &str) -> Result<bool> {
        if !resume {
            return Err(Error::Invalid(format!(
                "{output} is already complete; --resume checks it, --overwrite replaces it"
            )));
        }
        if targets.iter().all(|t| t.verify().is_complete()) {
            return Ok(true);
        }
        for t in targets {
            t.mark_incomplete()?;
        }
        Ok(false)
    }

    /// Checks every chunk (in parallel): present, and decoding to a whole chunk. A split or
    /// resumed run writes every chunk, so in its array an absent chunk is missing; in another
    /// array (a plain run's, zarr-python's) it is the fill value, counted in
    /// [`VerifyReport::absent`].
    pub fn verify(&self) -> VerifyReport {
        let absent_is_fill = self.run().is_none();
        let grid = self.grid_shape();
        let n: usize = grid.iter().product();
        let index = |mut lin: usize| -> Vec<usize> {
            let mut idx = vec![0; grid.len()];
            for ax in (0..grid.len()).rev() {
                idx[ax] = lin % grid[ax];
                lin /= grid[ax];
            }
            idx
        };
        let states: Vec<(usize, ChunkState)> = (0..n)
            .into_par_iter()
            .map(|lin| (lin, self.chunk_state(&index(lin))))
            .filter(|(_, s)| *s != ChunkState::Valid)
            .collect();
        let mut report = VerifyReport {
            chunks: n,
            ..VerifyReport::default()
        };
        for (lin, state) in states {
            let key = self.chunk_key(&index(lin));
            match state {
                ChunkState::Missing if absent_is_fill => report.absent += 1,
                ChunkState::Missing => report.missing.push(key),
                ChunkState::Corrupt(why) => report.corrupt.push((key, why)),
                ChunkState::Valid => {}
            }
        }
        report
    }

    /// Whether the completion attribute says the array is complete.
    ///
    /// # Errors
    /// Unreadable metadata.
    pub fn is_complete(&self) -> Result<bool> {
        let (key, nested) = self.attrs_key();
        let stored = read_json(&self.store, &key)?.unwrap_or(Value::Null);
        let attrs = if nested {
            stored.get("attributes")
        } else {
            Some(&stored)
        };
        Ok(attrs
            .and_then(|a| a.get(COMPLETE_ATTRIBUTE))
            .and_then(Value::as_bool)
            == Some(true))
    }

    /// The key of the document holding the attributes, and whether they sit under
    /// `attributes` in it (v3).
    fn attrs_key(&self) -> (String, bool) {
        if self.format == 2 {
            (format!("{}.zattrs", self.prefix), false)
        } else {
            (format!("{}zarr.json", self.prefix), true)
        }
    }

    /// Sets the completion attribute to true (atomically: the metadata file is replaced), and
    /// removes chunk files left half-written by killed workers.
    ///
    /// # Errors
    /// Unreadable or unwritable metadata.
    pub fn mark_complete(&self) -> Result<()> {
        if let Some(dir) = &self.store.dir {
            remove_tmp_files(&node_dir(dir, &self.prefix));
        }
        self.set_complete(true)
    }

    /// Sets the completion attribute to false: chunks are missing or corrupt.
    ///
    /// # Errors
    /// Unreadable or unwritable metadata.
    pub fn mark_incomplete(&self) -> Result<()> {
        self.set_complete(false)
    }

    fn set_complete(&self, done: bool) -> Result<()> {
        let (key, nested) = self.attrs_key();
        let mut stored = read_json(&self.store, &key)?.unwrap_or_else(|| Value::Object(Map::new()));
        let attrs = if nested {
            stored.as_object_mut().map(|o| {
                o.entry("attributes")
                    .or_insert_with(|| Value::Object(Map::new()))
            })
        } else {
            Some(&mut stored)
        };
        match attrs.and_then(Value::as_object_mut) {
            Some(a) => {
                a.insert(COMPLETE_ATTRIBUTE.into(), Value::Bool(done));
            }
            None => {
                return Err(Error::format(
                    &self.path,
                    format!("{key}: the attributes are not a JSON object"),
                ))
            }
        }
        write_json(&self.store, &key, &stored)?;
        let inner = format!("/{}", self.prefix.trim_end_matches('/'));
        super::consolidated::refresh(&self.store, &inner, &self.path)
    }
}

/// Removes the `*.tessera-tmp-*` files under `dir`: chunks whose writer was killed before it
/// renamed them into place.
fn remove_tmp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tmp_files(&p);
        } else if e.file_name().to_string_lossy().contains(TMP_MARK) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_names_the_first_differing_key() {
        let a = serde_json::json!({"shape": [4, 4], "attributes": {"tessera_complete": true, "tessera_run": {"metric": "cityblock"}}});
        let b = serde_json::json!({"shape": [4, 4], "attributes": {"tessera_complete": false, "tessera_run": {"metric": "euclidean"}}});
        assert_eq!(
            difference(&a, &b, "").as_deref(),
            Some("attributes.tessera_run.metric: the store has \"cityblock\", this run \"euclidean\"")
        );
        assert_eq!(difference(&a, &a, ""), None);
        let c = serde_json::json!({"shape": [4, 5]});
        let d = serde_json::json!({"shape": [4, 4]});
        assert_eq!(
            difference(&c, &d, "").as_deref(),
            Some("shape: the store has [4,5], this run [4,4]")
        );
    }
}
