//! Zarr chunk files read by tessera itself, not through `zarrs`.
//!
//! An unsharded array on the local disk whose chunks are little-endian C-order bytes, stored as
//! they are or compressed by one zstd, Blosc, gzip or zlib codec and nothing else, has its chunks
//! read here for every block whose edges fall on chunk edges. zarrs decodes each chunk into a new
//! buffer (for a 32 MiB chunk: fresh pages, faulted in and zeroed by the kernel, every chunk) and
//! then copies it into the block. Here the chunks of a block are read in parallel, each one decoded
//! in place when its part of the block is one run of the block's memory and the chunk lies wholly
//! inside the array, else into a worker's buffer (kept from chunk to chunk) and copied to its
//! place. A chunk never written is the fill value, as zarrs would give it.

use super::ZArray;
use crate::element::{ChunkBuf, DType, Element};
use crate::error::{Error, Result};
use crate::exec::{BlockSink, RawSink};
use crate::plan::{chunks_touched, contiguous_offset, slice_info};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// An array whose chunk files are read here (see the module's documentation).
#[derive(Clone)]
pub(super) struct RawChunks {
    /// The store's root directory (chunk keys are relative to it).
    root: PathBuf,
    /// The regular chunk shape.
    chunk: Vec<usize>,
    /// What compressed the chunk files, or `None`: each file holds its chunk's bytes as
    /// they lie in memory.
    pub(super) codec: Option<Compressor>,
    /// The fill value's bytes (one element), for chunks never written.
    fill: ChunkBuf,
}

impl RawChunks {
    /// Elements of a chunk.
    pub(super) fn chunk_len(&self) -> usize {
        self.chunk.iter().product()
    }
}

/// The compressors whose chunk files a [`RawChunks`] array decodes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compressor {
    /// zstd: one frame, or several end to end.
    Zstd,
    /// A Blosc (version 1) buffer: any inner compressor, byte or bit shuffle or none.
    Blosc,
    /// gzip (RFC 1952): one member, or several end to end; inflated by libdeflate.
    Gzip,
    /// zlib (RFC 1950; Zarr v2's `zlib` compressor); inflated by libdeflate.
    Zlib,
}

impl Compressor {
    /// The compressor that a Zarr codec (v3) or compressor (v2) name stands for, when its
    /// chunks are read here. `numcodecs.zlib` is how zarr-python names numcodecs' `Zlib` in
    /// a v3 array (`numcodecs.zarr3.Zlib`): the same zlib streams. (Its gzip, zstd and Blosc
    /// arrive here by their core names: see the `numcodecs` module.)
    fn named(name: Option<&str>) -> Option<Compressor> {
        match name? {
            "zstd" => Some(Compressor::Zstd),
            "blosc" => Some(Compressor::Blosc),
            "gzip" => Some(Compressor::Gzip),
            "zlib" | "numcodecs.zlib" => Some(Compressor::Zlib),
            _ => None,
        }
    }
}

/// The most bytes a chunk file can hold for a chunk of `n` bytes: `n` uncompressed; with room
/// to spare when compressed (zstd's bound is `n + n/256` and a few hundred bytes; Blosc's
/// `n + 16`; deflate's, stored blocks, `n + 5 n/65535` and the header and trailer).
fn max_encoded(codec: Option<Compressor>, n: usize) -> usize {
    match codec {
        None => n,
        Some(_) => n + n / 64 + (64 << 10),
    }
}

/// How the chunks of `array` (local, under `root`, of element type `dtype` and regular chunk
/// shape `chunk`) are read here, or `None` when they are left to zarrs.
pub(super) fn raw_chunks(
    array: &ZArray,
    root: &Path,
    dtype: DType,
    chunk: &[usize],
) -> Option<RawChunks> {
    if !cfg!(target_endian = "little") || dtype == DType::Bool {
        return None;
    }
    let json = serde_json::to_value(array.metadata()).ok()?;
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let empty = |v: Option<&serde_json::Value>| {
        v.is_none_or(|v| v.is_null() || v.as_array().is_some_and(|a| a.is_empty()))
    };
    let codec = match json.get("zarr_format")?.as_u64()? {
        3 => {
            let codecs = json.get("codecs")?.as_array()?;
            let bytes = codecs.first()?;
            let plain = text(bytes.get("name")).as_deref() == Some("bytes")
                && text(bytes.pointer("/configuration/endian")).is_none_or(|e| e == "little")
                && empty(json.get("storage_transformers"))
                && text(json.pointer("/chunk_grid/name")).as_deref() == Some("regular");
            match (plain, &codecs[1..]) {
                (true, []) => None,
                (true, [c]) => Some(Compressor::named(text(c.get("name")).as_deref())?),
                _ => return None,
            }
        }
        2 => {
            let dt = text(json.get("dtype")).unwrap_or_default();
            let plain = text(json.get("order")).as_deref() == Some("C")
                && empty(json.get("filters"))
                && (dt.starts_with('<') || dt.starts_with('|'));
            let compressor = json.get("compressor");
            match (plain, empty(compressor)) {
                (true, true) => None,
                (true, false) => Some(Compressor::named(
                    text(compressor.and_then(|c| c.get("id"))).as_deref(),
                )?),
                _ => return None,
            }
        }
        _ => return None,
    };
    let bytes = array.fill_value().as_ne_bytes();
    let mut fill = ChunkBuf::default();
    fill.resize(bytes.len());
    fill.bytes_mut().copy_from_slice(bytes);
    (bytes.len() == dtype.size() && !chunk.contains(&0)).then(|| RawChunks {
        root: root.to_owned(),
        chunk: chunk.to_vec(),
        codec,
        fill,
    })
}

/// A worker's buffers for reading chunks: the bytes of the chunk file being read, a chunk that
/// is not read or decoded in place, a zstd decompression context and a libdeflate
/// decompressor. Kept from chunk to chunk, like the HDF5 reader's (no allocation, page faults
/// or zeroing per chunk), and dropped with the block spares at the end of a run
/// ([`drop_buffers`]).
#[derive(Default)]
struct ChunkBuffers {
    encoded: Vec<u8>,
    decoded: ChunkBuf,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    inflater: Option<crate::store::raw_inflate::RawInflater>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<ChunkBuffers> = Default::default();
}

/// Drops this thread's chunk buffers.
pub(crate) fn drop_buffers() {
    BUFFERS.with_borrow_mut(|b| *b = ChunkBuffers::default());
}

/// Reads `region` of the array (of `shape`; opened from `path`, named in errors) into `out`
/// (a C-order block of the region's shape, whose values are all overwritten) from the chunk
/// files. `Ok(false)`, with `out` holding anything, when the region does not start on chunk
/// edges or a chunk file is larger than any encoding of a chunk (left to zarrs).
///
/// # Errors
/// A chunk file that cannot be read, or does not decode to exactly one chunk: the error names
/// the chunk and its key.
pub(super) fn read_chunks<T: Element>(
    raw: &RawChunks,
    array: &ZArray,
    path: &Path,
    shape: &[usize],
    region: &[Range<usize>],
    out: &mut ArrayD<T>,
) -> Result<bool> {
    let c = &raw.chunk;
    let block: Vec<usize> = region.iter().map(|r| r.len()).collect();
    let fits = c.len() == region.len()
        && shape.len() == region.len()
        && out.shape() == block.as_slice()
        && out.is_standard_layout()
        && region.iter().zip(shape).all(|(r, &n)| r.end <= n);
    if region.is_empty()
        || !fits
        || !region
            .iter()
            .zip(c)
            .all(|(r, &k)| r.start.is_multiple_of(k))
    {
        return Ok(false);
    }
    if block.contains(&0) {
        return Ok(true);
    }
    let size = T::DTYPE.size();
    let chunk_bytes = c.iter().product::<usize>() * size;
    let max_encoded = max_encoded(raw.codec, chunk_bytes);
    let coords = chunks_touched(region, c);
    let too_large = AtomicBool::new(false);
    let fill = *raw
        .fill
        .elements::<T>()?
        .first()
        .ok_or_else(|| Error::DType(format!("{}: no fill value", path.display())))?;
    // Chunks fill disjoint parts of `out` from parallel tasks.
    let sink = RawSink::new(out.as_mut_ptr(), &block);
    coords.par_iter().try_for_each(|idx| -> Result<()> {
        // The chunk's part inside the array: where it lies in the block, and its extent.
        let at: Vec<usize> = idx
            .iter()
            .zip(c)
            .zip(region)
            .map(|((&i, &k), r)| i * k - r.start)
            .collect();
        let extent: Vec<usize> = at
            .iter()
            .zip(c)
            .zip(&block)
            .map(|((&a, &k), &b)| k.min(b - a))
            .collect();
        let key_idx: Vec<u64> = idx.iter().map(|&i| i as u64).collect();
        let key = array.chunk_key(&key_idx);
        let named = |what: &dyn std::fmt::Display| {
            Error::format(path, format!("chunk {idx:?} (key {}) {what}", key.as_str()))
        };
        let in_out: Vec<Range<usize>> = at.iter().zip(&extent).map(|(&a, &e)| a..a + e).collect();
        let mut file = match std::fs::File::open(raw.root.join(key.as_str())) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let one = [fill];
                let internal = || Error::Shape("internal: a fill value's view".into());
                let base = ArrayViewD::from_shape(IxDyn(&vec![1; c.len()]), &one[..])
                    .map_err(|_| internal())?;
                let fills = base.broadcast(IxDyn(&extent)).ok_or_else(internal)?;
                return sink.write_block(&in_out, fills);
            }
            Err(e) => return Err(named(&format_args!("cannot be opened: {e}"))),
        };
        let len = file
            .metadata()
            .map_err(|e| named(&format_args!("cannot be read: {e}")))?
            .len();
        if raw.codec.is_none() && len != chunk_bytes as u64 {
            return Err(named(&format_args!(
                "holds {len} bytes; an uncompressed chunk of shape {c:?} holds {chunk_bytes}"
            )));
        }
        if len > max_encoded as u64 {
            too_large.store(true, Ordering::Relaxed);
            return Ok(());
        }
        // The chunk's part of the block as one run of its memory, when it is one and is the
        // chunk's first elements (the chunk lies whole in the block after axis 0).
        let n: usize = extent.iter().product();
        let run = contiguous_offset(&in_out, &block)
            .filter(|_| extent[1..] == c[1..])
            .and_then(|offset| sink.run_ptr(offset, n));
        let whole = extent == *c;
        if let (Some(ptr), true) = (run, raw.codec.is_none() || whole) {
            // SAFETY: the run of `n` elements lies inside `out` (checked by `run_ptr`); chunks
            // are disjoint, so no other task touches it; `out` outlives the tasks; every byte
            // pattern is a valid element (bool arrays are not read here).
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr, n * size) };
            let Some(compressor) = raw.codec else {
                // The file holds the chunk as it lies in memory: its first rows are the run.
                return file
                    .read_exact(dst)
                    .map_err(|e| named(&format_args!("cannot be read: {e}")));
            };
            return BUFFERS.with_borrow_mut(|b| {
                read_file(&mut file, &mut b.encoded).map_err(|e| named(&e))?;
                decode(compressor, &mut b.zstd, &mut b.inflater, &b.encoded, dst)
                    .map_err(|e| named(&e))
            });
        }
        BUFFERS.with_borrow_mut(|b| {
            b.decoded.resize(chunk_bytes);
            match raw.codec {
                None => file
                    .read_exact(b.decoded.bytes_mut())
                    .map_err(|e| named(&format_args!("cannot be read: {e}")))?,
                Some(compressor) => {
                    read_file(&mut file, &mut b.encoded).map_err(|e| named(&e))?;
                    decode(
                        compressor,
                        &mut b.zstd,
                        &mut b.inflater,
                        &b.encoded,
                        b.decoded.bytes_mut(),
                    )
                    .map_err(|e| named(&e))?;
                }
            }
            // The chunk's part inside the block: its first `extent` elements along each axis.
            let chunk = ArrayViewD::from_shape(IxDyn(c), b.decoded.elements::<T>()?)
                .map_err(|e| Error::Shape(format!("internal: a Zarr chunk's view: {e}")))?;
            let part: Vec<Range<usize>> = extent.iter().map(|&e| 0..e).collect();
            sink.write_block(&in_out, chunk.slice(slice_info(&part).as_slice()))
        })
    })?;
    Ok(!too_large.load(Ordering::Relaxed))
}

/// Reads the whole of `file` into `buf`.
fn read_file(file: &mut std::fs::File, buf: &mut Vec<u8>) -> std::result::Result<(), String> {
    buf.clear();
    file.read_to_end(buf)
        .map(drop)
        .map_err(|e| format!("cannot be read: {e}"))
}

/// Decodes `src` (a chunk file's bytes, compressed by `compressor`) into `dst`, which it must
/// fill exactly: the error says what did not match.
fn decode(
    compressor: Compressor,
    zstd_ctx: &mut Option<zstd::bulk::Decompressor<'static>>,
    inflater: &mut Option<crate::store::raw_inflate::RawInflater>,
    src: &[u8],
    dst: &mut [u8],
) -> std::result::Result<(), String> {
    let n = match compressor {
        Compressor::Gzip | Compressor::Zlib => {
            let d = match inflater {
                Some(d) => d,
                None => inflater.insert(
                    crate::store::raw_inflate::RawInflater::new()
                        .ok_or("cannot start a deflate decoder (out of memory)")?,
                ),
            };
            if compressor == Compressor::Gzip {
                d.gzip(src, dst)?;
            } else {
                d.zlib(src, dst)?;
            }
            dst.len()
        }
        Compressor::Zstd => {
            let ctx = match zstd_ctx {
                Some(ctx) => ctx,
                None => zstd_ctx.insert(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| format!("cannot start a zstd decoder: {e}"))?,
                ),
            };
            ctx.decompress_to_buffer(src, dst).map_err(|e| {
                format!(
                    "is not a zstd stream of a chunk of {} bytes: {e}",
                    dst.len()
                )
            })?
        }
        Compressor::Blosc => {
            let mut nbytes = 0usize;
            // SAFETY: `src` is valid for `src.len()` bytes and `nbytes` for one write; c-blosc
            // (1.21, as built by blosc-src) reads at most `src.len()` bytes here.
            let valid = unsafe {
                blosc_src::blosc_cbuffer_validate(src.as_ptr().cast(), src.len(), &mut nbytes)
            };
            if valid != 0 {
                return Err(format!(
                    "is not a Blosc buffer ({} bytes: its header or sizes are invalid)",
                    src.len()
                ));
            }
            if nbytes != dst.len() {
                return Err(crate::store::raw_inflate::wrong_size(
                    "Blosc",
                    nbytes,
                    dst.len(),
                ));
            }
            // SAFETY: `dst` is valid for `dst.len()` writes and does not overlap `src`. c-blosc
            // 1.21 writes at most `destsize` bytes and checks the block sizes and offsets of a
            // buffer that `blosc_cbuffer_validate` accepted against `src`'s length before it
            // reads them. One internal thread: the caller is a worker already.
            let n = unsafe {
                blosc_src::blosc_decompress_ctx(
                    src.as_ptr().cast(),
                    dst.as_mut_ptr().cast(),
                    dst.len(),
                    1,
                )
            };
            usize::try_from(n).map_err(|_| {
                format!(
                    "cannot be decoded (Blosc error {n}: corrupt, or compressed with a codec \
                     this build lacks)"
                )
            })?
        }
    };
    if n != dst.len() {
        return Err(format!("decodes to {n} bytes; a chunk holds {}", dst.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{open_array, Codec, ZarrWriteOptions};
    use super::*;
    use crate::array::ChunkedArray;
    use crate::exec::ExecOptions;
    use ndarray::IxDyn;

    /// A region's values read here into a block of stale values, or `None` when left to zarrs.
    type Read = Result<Option<ArrayD<f64>>>;

    /// The f64 Zarr array at `path`, how its chunks are read here (a panic if they are not),
    /// and a reader of its regions.
    fn direct(path: &Path) -> (RawChunks, impl Fn(&[Range<usize>]) -> Read) {
        let (array, store, _, _) = open_array(path).unwrap_or_else(|e| panic!("{e}"));
        let chunk: Vec<usize> = array
            .chunk_shape(&vec![0; array.dimensionality()])
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|n| n.get() as usize)
            .collect();
        let root = store.dir.clone().unwrap_or_else(|| panic!("not local"));
        let raw = raw_chunks(&array, &root, DType::F64, &chunk)
            .unwrap_or_else(|| panic!("{}: not read from the chunk files", path.display()));
        let again = raw.clone();
        let shape: Vec<usize> = array.shape().iter().map(|&n| n as usize).collect();
        let path = path.to_owned();
        let read = move |region: &[Range<usize>]| {
            let lens: Vec<usize> = region.iter().map(|r| r.len()).collect();
            // Stale values: every one must be overwritten.
            let mut out = ArrayD::from_elem(IxDyn(&lens), f64::NAN);
            read_chunks(&again, &array, &path, &shape, region, &mut out)
                .map(|taken| taken.then_some(out))
        };
        (raw, read)
    }

    fn bits(a: &ndarray::ArrayViewD<'_, f64>) -> Vec<u64> {
        a.iter().map(|v| v.to_bits()).collect()
    }

    fn write(path: &Path, values: &ArrayD<f64>, chunk: &[usize], codec: Codec, format: u8) {
        let zopts = ZarrWriteOptions {
            codec,
            zarr_format: format,
            overwrite: true,
        };
        ChunkedArray::from_array(values.clone(), chunk.to_vec())
            .and_then(|a| a.to_zarr(path, &zopts, &ExecOptions::default()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// zstd, Blosc and gzip chunks, v2 and v3, are read here (including the ragged edge chunk)
    /// to the values written; a chunk that is truncated, garbage, or a valid stream of a chunk
    /// of another size (larger or smaller) is an error naming its key, whether the chunk is
    /// decoded in place or copied. A gzip chunk of two members reads as one; bytes after a
    /// gzip member that are not one are an error.
    #[test]
    fn compressed_chunks_decode_to_the_values_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (n, m, rows) = (23, 6, 5);
        let values = |m: usize| {
            ndarray::Array2::from_shape_fn((n, m), |(i, j)| ((i * m + j) as f64).sin() * 1e3)
                .into_dyn()
        };
        let want = values(m);
        for format in [2u8, 3] {
            for (codec, expect) in [
                (Codec::Zstd(3), Compressor::Zstd),
                (Codec::Blosc(5), Compressor::Blosc),
                (Codec::Gzip(5), Compressor::Gzip),
            ] {
                let what = format!("v{format} {codec:?}");
                let path = dir.path().join(format!("v{format}-{codec:?}.zarr"));
                write(&path, &want, &[rows, m], codec, format);
                // The same codec, a column more and a column less: valid chunks of the wrong
                // size.
                let other = |m: usize| {
                    let p = dir.path().join(format!("v{format}-{codec:?}-{m}.zarr"));
                    write(&p, &values(m), &[rows, m], codec, format);
                    p
                };
                let (wider, narrower) = (other(m + 1), other(m - 1));
                let (raw, read) = direct(&path);
                assert_eq!(raw.codec, Some(expect), "{what}");
                // Rows `r` read here to the values written (`how`: the chunk files' state).
                let reads_as_written = |r: Range<usize>, how: &str| {
                    let got = read(&[r.clone(), 0..m])
                        .unwrap_or_else(|e| panic!("{what} {how}: {e}"))
                        .unwrap_or_else(|| panic!("{what} {how} {r:?}: left to zarrs"));
                    let expected = want.slice(ndarray::s![r.clone(), ..]);
                    assert_eq!(
                        bits(&got.view()),
                        bits(&expected.into_dyn()),
                        "{what} {how} {r:?}"
                    );
                };
                for r in [0..5, 0..10, 5..20, 20..23, 15..23, 0..23, 0..7, 10..13] {
                    reads_as_written(r, "as written");
                }
                // A region that starts inside a chunk is left to zarrs.
                assert!(read(&[1..5, 0..m])
                    .unwrap_or_else(|e| panic!("{e}"))
                    .is_none());

                let key = if format == 2 { "1.0" } else { "c/1/0" };
                let file = path.join(key);
                let good = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
                let read_other = |p: &Path| std::fs::read(p.join(key)).unwrap_or_default();
                let mut bads = vec![
                    (good[..good.len() / 2].to_vec(), "truncated"),
                    (b"not a compressed chunk, just text".to_vec(), "garbage"),
                    (read_other(&wider), "a wider chunk"),
                    (read_other(&narrower), "a narrower chunk"),
                ];
                if codec == Codec::Gzip(5) {
                    let mut trailing = good.clone();
                    trailing.extend_from_slice(b"trailing");
                    bads.push((trailing, "a member and bytes after it"));
                    // Rows 5..10 as two members, then one: the same values (flate2 comes with
                    // the HDF5 feature).
                    #[cfg(feature = "hdf5")]
                    {
                        let rows = want.slice(ndarray::s![5..10, ..]);
                        let raw: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
                        let member = |b: &[u8]| {
                            let mut e = flate2::write::GzEncoder::new(
                                Vec::new(),
                                flate2::Compression::new(6),
                            );
                            std::io::Write::write_all(&mut e, b).unwrap_or_else(|e| panic!("{e}"));
                            e.finish().unwrap_or_else(|e| panic!("{e}"))
                        };
                        let two = [member(&raw[..100]), member(&raw[100..])].concat();
                        for (file_bytes, how) in
                            [(two, "two members"), (member(&raw), "one member")]
                        {
                            std::fs::write(&file, file_bytes).unwrap_or_else(|e| panic!("{e}"));
                            for r in [0..10, 0..7, 5..10] {
                                reads_as_written(r, how);
                            }
                        }
                    }
                }
                for (bad, what_bad) in bads {
                    std::fs::write(&file, bad).unwrap_or_else(|e| panic!("{e}"));
                    // In place (rows 5..10 of the block) and copied (the block cuts the chunk).
                    for r in [0..10, 0..7] {
                        let e = read(&[r.clone(), 0..m])
                            .expect_err(&format!("{what}: {what_bad} chunk read ({r:?})"));
                        let msg = e.to_string();
                        assert!(
                            msg.contains(&format!("(key {key})")) && msg.contains(".zarr"),
                            "{what}: {what_bad} chunk: the error names no key: {msg}"
                        );
                    }
                    // The chunk before it still reads.
                    assert!(read(&[0..5, 0..m]).is_ok(), "{what}");
                }
                std::fs::write(&file, &good).unwrap_or_else(|e| panic!("{e}"));
                // A chunk never written is the fill value (0).
                std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
                let got = read(&[0..23, 0..m])
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("{what}: left to zarrs"));
                let mut expected = want.clone();
                expected.slice_mut(ndarray::s![5..10, ..]).fill(0.0);
                assert_eq!(
                    bits(&got.view()),
                    bits(&expected.view()),
                    "{what}: missing chunk"
                );
            }
        }
    }

    /// Chunks narrower than the block (split along several axes, ragged at every far edge), of
    /// each codec, v2 and v3: every region that
    /// starts on chunk edges is read here, the chunks copied to their places, to the values
    /// written; an uncompressed chunk of the wrong size is an error naming its key.
    #[test]
    fn chunks_split_along_several_axes_are_copied_to_their_places() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            (vec![23, 17], vec![5, 4]),
            (vec![3, 17], vec![5, 4]),
            (vec![23, 2], vec![5, 4]),
            (vec![7, 9, 5], vec![3, 4, 2]),
            (vec![11], vec![4]),
        ];
        for (shape, chunk) in cases {
            let len: usize = shape.iter().product();
            let want = ndarray::Array1::from_shape_fn(len, |i| (i as f64 * 0.7).cos() * 1e3 + 2e3)
                .into_shape_with_order(IxDyn(&shape))
                .unwrap_or_else(|e| panic!("{e}"));
            for format in [2u8, 3] {
                for codec in [Codec::None, Codec::Zstd(3), Codec::Blosc(5), Codec::Gzip(1)] {
                    let what = format!("v{format} {shape:?}/{chunk:?} {codec:?}");
                    let path = dir.path().join("a.zarr");
                    write(&path, &want, &chunk, codec, format);
                    let (raw, read) = direct(&path);
                    // Per axis: the first chunk, the next two, the last (ragged) one, part of
                    // a chunk, all of it.
                    let spans: Vec<Vec<Range<usize>>> = shape
                        .iter()
                        .zip(&raw.chunk)
                        .map(|(&n, &c)| {
                            let spans = [
                                0..c.min(n),
                                c.min(n)..(3 * c).min(n),
                                (n - 1) / c * c..n,
                                0..(c + 1).min(n),
                                0..n,
                            ];
                            spans.into_iter().filter(|r| !r.is_empty()).collect()
                        })
                        .collect();
                    let mut regions: Vec<Vec<Range<usize>>> = vec![vec![]];
                    for axis in &spans {
                        let mut longer = Vec::new();
                        for r in &regions {
                            for s in axis {
                                longer.push([r.as_slice(), std::slice::from_ref(s)].concat());
                            }
                        }
                        regions = longer;
                    }
                    for region in &regions {
                        let got = read(region)
                            .unwrap_or_else(|e| panic!("{what} {region:?}: {e}"))
                            .unwrap_or_else(|| panic!("{what} {region:?}: left to zarrs"));
                        let expected = want.slice_each_axis(|ax| {
                            ndarray::Slice::from(region[ax.axis.index()].clone())
                        });
                        assert_eq!(bits(&got.view()), bits(&expected), "{what} {region:?}");
                    }
                    if codec == Codec::None {
                        let key = if format == 2 {
                            vec!["0"; shape.len()].join(".")
                        } else {
                            format!("c/{}", vec!["0"; shape.len()].join("/"))
                        };
                        let file = path.join(&key);
                        let good = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
                        std::fs::write(&file, &good[..good.len() - 8])
                            .unwrap_or_else(|e| panic!("{e}"));
                        let all: Vec<Range<usize>> = shape.iter().map(|&n| 0..n).collect();
                        let msg = read(&all).expect_err(&what).to_string();
                        assert!(msg.contains(&format!("(key {key})")), "{what}: {msg}");
                    }
                }
            }
        }
    }

    /// Which metadata has its chunks read here: plain, zstd or Blosc chunks of little-endian
    /// C-order data, whatever the chunk key encoding; not big-endian, F order, filters, other
    /// or more codecs, or sharding.
    #[test]
    fn only_plain_chunks_of_one_compressor_are_read_here() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let v3 = |codecs: &str, extra: &str| {
            format!(
                r#"{{"zarr_format": 3, "node_type": "array", "shape": [10, 4],
                "data_type": "float64", "chunk_grid": {{"name": "regular",
                "configuration": {{"chunk_shape": [5, 4]}}}}, "chunk_key_encoding":
                {{"name": "default", "configuration": {{"separator": "/"}}}},
                "fill_value": 0.0, "codecs": {codecs}{extra}}}"#
            )
        };
        let v2 = |dtype: &str, order: &str, compressor: &str, filters: &str| {
            format!(
                r#"{{"zarr_format": 2, "shape": [10, 4], "chunks": [5, 4], "dtype": "{dtype}",
                "order": "{order}", "compressor": {compressor}, "filters": {filters},
                "fill_value": 0.0, "dimension_separator": "/"}}"#
            )
        };
        let bytes = r#"{"name": "bytes", "configuration": {"endian": "little"}}"#;
        let zstd = r#"{"name": "zstd", "configuration": {"level": 3, "checksum": true}}"#;
        let blosc = r#"{"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
            "shuffle": "bitshuffle", "typesize": 8, "blocksize": 0}}"#;
        let gzip = r#"{"name": "gzip", "configuration": {"level": 5}}"#;
        let crc = r#"{"name": "crc32c"}"#;
        // numcodecs' Zlib as zarr-python writes it into v3 metadata (`numcodecs.zarr3`).
        let nc_zlib = r#"{"name": "numcodecs.zlib", "configuration": {"level": 6}}"#;
        let transpose = r#"{"name": "transpose", "configuration": {"order": [1, 0]}}"#;
        let big = r#"{"name": "bytes", "configuration": {"endian": "big"}}"#;
        let shard = format!(
            r#"{{"name": "sharding_indexed", "configuration": {{"chunk_shape": [5, 2],
            "codecs": [{bytes}], "index_codecs": [{bytes}, {crc}]}}}}"#
        );
        let v2_blosc = r#"{"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1}"#;
        let v2_zstd = r#"{"id": "zstd", "level": 1}"#;
        let v2_zlib = r#"{"id": "zlib", "level": 1}"#;
        // What `raw_chunks` says of each: not read here, or read with this codec.
        const PLAIN: Option<Option<Compressor>> = Some(None);
        const ZSTD: Option<Option<Compressor>> = Some(Some(Compressor::Zstd));
        const BLOSC: Option<Option<Compressor>> = Some(Some(Compressor::Blosc));
        const GZIP: Option<Option<Compressor>> = Some(Some(Compressor::Gzip));
        const ZLIB: Option<Option<Compressor>> = Some(Some(Compressor::Zlib));
        let cases: Vec<(String, bool, Option<Option<Compressor>>)> = vec![
            (v3(&format!("[{bytes}]"), ""), true, PLAIN),
            (v3(&format!("[{bytes}, {zstd}]"), ""), true, ZSTD),
            (v3(&format!("[{bytes}, {blosc}]"), ""), true, BLOSC),
            (v3(&format!("[{bytes}, {gzip}]"), ""), true, GZIP),
            (v3(&format!("[{bytes}, {nc_zlib}]"), ""), true, ZLIB),
            (v3(&format!("[{bytes}, {zstd}, {crc}]"), ""), true, None),
            (
                v3(&format!("[{transpose}, {bytes}, {zstd}]"), ""),
                true,
                None,
            ),
            (v3(&format!("[{big}, {zstd}]"), ""), true, None),
            (v3(&format!("[{shard}]"), ""), true, None),
            (v2("<f8", "C", "null", "null"), false, PLAIN),
            (v2("<f8", "C", v2_zstd, "null"), false, ZSTD),
            (v2("<f8", "C", v2_blosc, "[]"), false, BLOSC),
            (v2("<f8", "C", v2_zlib, "null"), false, ZLIB),
            (v2(">f8", "C", v2_zstd, "null"), false, None),
            (v2("<f8", "F", v2_zstd, "null"), false, None),
            (
                v2("<f8", "C", v2_zstd, r#"[{"id": "delta", "dtype": "<f8"}]"#),
                false,
                None,
            ),
        ];
        for (k, (meta, is_v3, want)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("{k}.zarr"));
            std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{e}"));
            let name = if *is_v3 { "zarr.json" } else { ".zarray" };
            std::fs::write(path.join(name), meta).unwrap_or_else(|e| panic!("{e}"));
            // An array zarrs cannot open is not read here either.
            let Ok((array, _, _, _)) = open_array(&path) else {
                assert_eq!(*want, None, "case {k}: zarrs cannot open\n{meta}");
                continue;
            };
            let got = raw_chunks(&array, &path, DType::F64, &[5, 4]).map(|r| r.codec);
            assert_eq!(got, *want, "case {k}:\n{meta}");
        }
    }
}
