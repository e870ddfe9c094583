//! HDF5 chunks read and written directly, around the library's filter path.
//!
//! The HDF5 library runs every call behind one process-wide lock, compression included, so a
//! dataset read or written through it uses one core however many threads ask. Here the library
//! keeps only what must be serial: finding a chunk (`H5Dget_chunk_info_by_coord`, under the lock)
//! and appending its bytes (`H5Dwrite_chunk`, from a single writer thread fed through a bounded
//! channel). The raw bytes of a chunk are read with `pread` on our own file handle, and shuffle,
//! deflate and h5py's LZF (read only) run in the worker threads. (Unfiltered outputs need no appending: their chunks
//! are allocated up front and written in place with `pwrite`; see `store::hdf5`.) Pipelines with any other filter (fletcher32, szip,
//! scale-offset, plugins) go through the library as before.

use crate::error::{Error, Result};
use hdf5::filters::Filter;
use hdf5_sys::h5::{haddr_t, hsize_t, HADDR_UNDEF};
use hdf5_sys::h5d::{H5Dget_chunk_info_by_coord, H5Dwrite_chunk};
use hdf5_sys::h5p::H5P_DEFAULT;
use std::path::Path;

/// One filter of a pipeline this module runs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// HDF5's byte shuffle (filter 2).
    Shuffle,
    /// zlib deflate at a level (filter 1).
    Deflate(u8),
    /// h5py's LZF (filter 32000): read only.
    Lzf,
}

/// A filter pipeline made only of shuffle, deflate and LZF, in the dataset's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pipeline {
    steps: Vec<Step>,
}

impl Pipeline {
    /// The pipeline of `filters`, or `None` when one of them is not ours to run.
    pub(crate) fn of(filters: &[Filter]) -> Option<Self> {
        let steps = filters
            .iter()
            .map(|f| match f {
                Filter::Shuffle => Some(Step::Shuffle),
                Filter::Deflate(level) => Some(Step::Deflate(*level)),
                Filter::LZF => Some(Step::Lzf),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Pipeline { steps })
    }

    /// The filters, in the dataset's order, as `explain` names them (`shuffle, LZF`).
    pub(crate) fn names(&self) -> String {
        let name = |s: &Step| match s {
            Step::Shuffle => "shuffle",
            Step::Deflate(_) => "deflate",
            Step::Lzf => "LZF",
        };
        self.steps.iter().map(name).collect::<Vec<_>>().join(", ")
    }

    /// How many filters the pipeline has.
    pub(crate) fn len(&self) -> usize {
        self.steps.len()
    }

    /// Filters `raw` (a whole chunk of elements of `elem` bytes) as the library would store it.
    ///
    /// # Errors
    /// The compressor's failure, as a message.
    pub(crate) fn encode(&self, raw: &[u8], elem: usize) -> std::result::Result<Vec<u8>, String> {
        let mut cur: Option<Vec<u8>> = None;
        // Byte planes of the input to each step: the element size right after a shuffle.
        let mut planes = 1;
        for step in &self.steps {
            let input = cur.as_deref().unwrap_or(raw);
            let next = match *step {
                Step::Shuffle => shuffle(input, elem),
                Step::Deflate(level) => deflate(input, level, planes)?,
                Step::Lzf => return Err("LZF chunks are read here, not written".into()),
            };
            // `shuffle` leaves elements of other sizes as they are.
            let shuffled = *step == Step::Shuffle && matches!(elem, 2 | 4 | 8);
            planes = if shuffled { elem } else { 1 };
            cur = Some(next);
        }
        Ok(cur.unwrap_or_else(|| raw.to_vec()))
    }

    /// Undoes the pipeline on a stored chunk into `out` (exactly the chunk's bytes), skipping
    /// the filters whose bit is set in `mask` (the library sets one when an optional filter
    /// could not shrink the chunk). The last step writes straight into `out`; the steps before
    /// it use `scratch`, which a caller keeps from chunk to chunk so that no buffer is allocated
    /// (and page-faulted) per chunk.
    pub(crate) fn decode(
        &self,
        stored: &[u8],
        mask: u32,
        elem: usize,
        scratch: &mut Scratch,
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        let active: Vec<Step> = self
            .steps
            .iter()
            .enumerate()
            .rev()
            .filter(|&(pos, _)| pos >= 32 || mask & (1 << pos) == 0)
            .map(|(_, s)| *s)
            .collect();
        // Step k reads `stored` (k = 0) or buffer (k - 1) % 2, and writes buffer k % 2, or
        // `out` when it is the last.
        for (k, step) in active.iter().enumerate() {
            let [even, odd] = &mut scratch.bufs;
            let (input, target) = if k % 2 == 0 { (odd, even) } else { (even, odd) };
            let input: &[u8] = if k == 0 { stored } else { input };
            let target: &mut [u8] = if k + 1 == active.len() {
                &mut *out
            } else {
                let inner_compressed = active[k + 1..]
                    .iter()
                    .any(|s| matches!(s, Step::Deflate(_) | Step::Lzf));
                let cap = 2 * out.len() + 65536;
                match step {
                    // An inner compressor's stream: its length is known only once decoded.
                    Step::Deflate(_) if inner_compressed => {
                        inflate_vec(input, target, cap)?;
                        continue;
                    }
                    Step::Lzf if inner_compressed => {
                        target.resize(cap, 0);
                        let n = super::lzf::decompress(input, target)?;
                        target.truncate(n);
                        continue;
                    }
                    // Only shuffles follow, which keep the length: the chunk's.
                    Step::Deflate(_) | Step::Lzf => target.resize(out.len(), 0),
                    Step::Shuffle => target.resize(input.len(), 0),
                }
                target
            };
            match step {
                Step::Deflate(_) => inflate_into(input, target)?,
                Step::Lzf => {
                    let n = super::lzf::decompress(input, target)?;
                    if n != target.len() {
                        return Err(wrong_size(n, target.len()));
                    }
                }
                Step::Shuffle => {
                    if input.len() != target.len() {
                        return Err(wrong_size(input.len(), out.len()));
                    }
                    unshuffle(input, elem, target);
                }
            }
        }
        if active.is_empty() {
            if stored.len() != out.len() {
                return Err(wrong_size(stored.len(), out.len()));
            }
            out.copy_from_slice(stored);
        }
        Ok(())
    }
}

fn wrong_size(n: usize, want: usize) -> String {
    format!("decodes to {n} bytes, expected {want} (the chunk shape times the element size)")
}

/// Buffers for the intermediate steps of [`Pipeline::decode`], kept by a thread between chunks.
#[derive(Default)]
pub(crate) struct Scratch {
    bufs: [Vec<u8>; 2],
}

/// HDF5's shuffle: byte `j` of every element goes into the `j`-th plane. Bytes past the last
/// whole element stay where they are.
fn shuffle(src: &[u8], elem: usize) -> Vec<u8> {
    let mut out = vec![0u8; src.len()];
    match elem {
        2 => shuffle_n::<2>(src, &mut out),
        4 => shuffle_n::<4>(src, &mut out),
        8 => shuffle_8(src, &mut out),
        _ => out.copy_from_slice(src),
    }
    out
}

/// Transposes an 8x8 byte matrix held as eight little-endian rows: byte `k` of row `j` becomes
/// byte `j` of row `k`. Three rounds swap 4x4, then 2x2, then 1x1 blocks.
fn transpose8(r: &mut [u64; 8]) {
    const LOW32: u64 = 0x0000_0000_FFFF_FFFF;
    const M16: u64 = 0x0000_FFFF_0000_FFFF;
    const M8: u64 = 0x00FF_00FF_00FF_00FF;
    for j in 0..4 {
        let (a, b) = (r[j], r[j + 4]);
        r[j] = (a & LOW32) | (b << 32);
        r[j + 4] = (a >> 32) | (b & !LOW32);
    }
    for j in [0, 1, 4, 5] {
        let (a, b) = (r[j], r[j + 2]);
        r[j] = (a & M16) | ((b & M16) << 16);
        r[j + 2] = ((a >> 16) & M16) | (b & !M16);
    }
    for j in [0, 2, 4, 6] {
        let (a, b) = (r[j], r[j + 1]);
        r[j] = (a & M8) | ((b & M8) << 8);
        r[j + 1] = ((a >> 8) & M8) | (b & !M8);
    }
}

fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// [`shuffle_n`] for 8-byte elements, eight elements at a time through [`transpose8`].
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn shuffle_8_swar(src: &[u8], out: &mut [u8]) {
    let n = src.len() / 8;
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        let mut r = [0u64; 8];
        for (k, w) in r.iter_mut().enumerate() {
            *w = word(&src[(i + k) * 8..]);
        }
        transpose8(&mut r);
        for (j, w) in r.iter().enumerate() {
            out[j * n + i..j * n + i + 8].copy_from_slice(&w.to_le_bytes());
        }
    }
    for i in whole..n {
        for j in 0..8 {
            out[j * n + i] = src[i * 8 + j];
        }
    }
    out[n * 8..].copy_from_slice(&src[n * 8..]);
}

/// [`unshuffle_n`] for 8-byte elements, eight elements at a time through [`transpose8`].
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn unshuffle_8_swar(src: &[u8], out: &mut [u8]) {
    let n = src.len() / 8;
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        let mut r = [0u64; 8];
        for (j, w) in r.iter_mut().enumerate() {
            *w = word(&src[j * n + i..]);
        }
        transpose8(&mut r);
        for (k, w) in r.iter().enumerate() {
            out[(i + k) * 8..(i + k) * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
    }
    for i in whole..n {
        for j in 0..8 {
            out[i * 8 + j] = src[j * n + i];
        }
    }
    out[n * 8..].copy_from_slice(&src[n * 8..]);
}

/// [`shuffle_n`] for 8-byte elements.
fn shuffle_8(src: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    sse2::transpose_8::<false>(src, out);
    #[cfg(not(target_arch = "x86_64"))]
    shuffle_8_swar(src, out);
}

/// [`unshuffle_n`] for 8-byte elements.
fn unshuffle_8(src: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    sse2::transpose_8::<true>(src, out);
    #[cfg(not(target_arch = "x86_64"))]
    unshuffle_8_swar(src, out);
}

/// The shuffle of 8-byte elements sixteen at a time in SSE2 registers (part of every x86-64).
///
/// Sixteen elements are 128 bytes: eight registers of sixteen bytes, each byte addressed by
/// seven bits (three for the register, four for the byte in it). One [`round`](sse2::round)
/// of byte unpacks rotates that address left by one bit. In element order the address is
/// (element, byte of the element); in plane order it is (byte of the element, element): four
/// rotations take the one to the other (shuffle) and three the other way back (unshuffle).
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_setzero_si128, _mm_storeu_si128, _mm_unpackhi_epi8,
        _mm_unpacklo_epi8,
    };

    /// Register `2k` takes the low halves of registers `k` and `k + 4` interleaved byte by
    /// byte, register `2k + 1` their high halves.
    #[inline(always)]
    fn round(r: [__m128i; 8]) -> [__m128i; 8] {
        // SAFETY: SSE2 is part of the x86-64 baseline; the unpacks only move register bytes.
        unsafe {
            [
                _mm_unpacklo_epi8(r[0], r[4]),
                _mm_unpackhi_epi8(r[0], r[4]),
                _mm_unpacklo_epi8(r[1], r[5]),
                _mm_unpackhi_epi8(r[1], r[5]),
                _mm_unpacklo_epi8(r[2], r[6]),
                _mm_unpackhi_epi8(r[2], r[6]),
                _mm_unpacklo_epi8(r[3], r[7]),
                _mm_unpackhi_epi8(r[3], r[7]),
            ]
        }
    }

    /// Shuffles (`INVERSE` false) or unshuffles `src` into `out` (as long), for 8-byte
    /// elements; the elements past the last sixteen and the bytes past the last element go
    /// through the scalar definition.
    pub(super) fn transpose_8<const INVERSE: bool>(src: &[u8], out: &mut [u8]) {
        assert_eq!(src.len(), out.len(), "shuffle buffers differ in length");
        let n = src.len() / 8;
        let whole = n / 16 * 16;
        // Byte offset of register k of the sixteen elements from element i, in element order
        // (two elements per register) or in plane order (plane k).
        let elements = |i: usize, k: usize| i * 8 + 16 * k;
        let planes = |i: usize, k: usize| k * n + i;
        for i in (0..whole).step_by(16) {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            let mut r = [unsafe { _mm_setzero_si128() }; 8];
            for (k, reg) in r.iter_mut().enumerate() {
                let at = if INVERSE {
                    planes(i, k)
                } else {
                    elements(i, k)
                };
                // SAFETY: `at + 16 <= 8 * n <= src.len()`: in element order `i + 16 <= n`, in
                // plane order `k <= 7` and `i + 16 <= n`; unaligned loads are allowed.
                *reg = unsafe { _mm_loadu_si128(src.as_ptr().add(at).cast::<__m128i>()) };
            }
            r = if INVERSE {
                round(round(round(r)))
            } else {
                round(round(round(round(r))))
            };
            for (k, reg) in r.iter().enumerate() {
                let at = if INVERSE {
                    elements(i, k)
                } else {
                    planes(i, k)
                };
                // SAFETY: as for the loads, in `out`, which is as long as `src`.
                unsafe { _mm_storeu_si128(out.as_mut_ptr().add(at).cast::<__m128i>(), *reg) };
            }
        }
        for i in whole..n {
            for j in 0..8 {
                if INVERSE {
                    out[i * 8 + j] = src[j * n + i];
                } else {
                    out[j * n + i] = src[i * 8 + j];
                }
            }
        }
        out[n * 8..].copy_from_slice(&src[n * 8..]);
    }
}

fn shuffle_n<const N: usize>(src: &[u8], out: &mut [u8]) {
    const TILE: usize = 64;
    let n = src.len() / N;
    let (body, tail) = out.split_at_mut(n * N);
    let mut planes: Vec<&mut [u8]> = body.chunks_exact_mut(n.max(1)).collect();
    let whole = n / TILE * TILE;
    let mut tile = [[0u8; TILE]; N];
    for (t, run) in src[..whole * N].chunks_exact(TILE * N).enumerate() {
        for (i, e) in run.chunks_exact(N).enumerate() {
            for j in 0..N {
                tile[j][i] = e[j];
            }
        }
        for (row, plane) in tile.iter().zip(planes.iter_mut()) {
            plane[t * TILE..(t + 1) * TILE].copy_from_slice(row);
        }
    }
    for i in whole..n {
        for (j, plane) in planes.iter_mut().enumerate() {
            plane[i] = src[i * N + j];
        }
    }
    tail.copy_from_slice(&src[n * N..]);
}

/// The inverse of [`shuffle`], into `out` (as long as `src`).
fn unshuffle(src: &[u8], elem: usize, out: &mut [u8]) {
    match elem {
        2 => unshuffle_n::<2>(src, out),
        4 => unshuffle_n::<4>(src, out),
        8 => unshuffle_8(src, out),
        _ => out.copy_from_slice(src),
    }
}

fn unshuffle_n<const N: usize>(src: &[u8], out: &mut [u8]) {
    const TILE: usize = 64;
    let n = src.len() / N;
    let planes: Vec<&[u8]> = src[..n * N].chunks_exact(n.max(1)).collect();
    let whole = n / TILE * TILE;
    // Whole tiles through fixed-size buffers, which the compiler turns into byte shuffles.
    let mut tile = [[0u8; TILE]; N];
    for (t, dst) in out[..whole * N].chunks_exact_mut(TILE * N).enumerate() {
        for (row, plane) in tile.iter_mut().zip(&planes) {
            row.copy_from_slice(&plane[t * TILE..(t + 1) * TILE]);
        }
        for (i, e) in dst.chunks_exact_mut(N).enumerate() {
            for j in 0..N {
                e[j] = tile[j][i];
            }
        }
    }
    for i in whole..n {
        for (j, plane) in planes.iter().enumerate() {
            out[i * N + j] = plane[i];
        }
    }
    out[n * N..].copy_from_slice(&src[n * N..]);
}

/// A worker's libdeflate compressors (one per level used) and decompressor: their state
/// tables are allocated once per thread, not once per chunk.
#[derive(Default)]
struct Deflaters {
    compressors: Vec<(u8, libdeflater::Compressor)>,
    decompressor: Option<libdeflater::Decompressor>,
    /// The table of literal-only blocks (see `super::inflate`).
    literal: Option<Box<super::inflate::LiteralTable>>,
}

thread_local! {
    static DEFLATERS: std::cell::RefCell<Deflaters> = Default::default();
}

/// A zlib stream (what HDF5's deflate filter stores) at `level` (0-9), of `src` in `planes`
/// byte planes (see [`super::deflate::zlib`]).
fn deflate(src: &[u8], level: u8, planes: usize) -> std::result::Result<Vec<u8>, String> {
    let level = level.min(9);
    DEFLATERS.with_borrow_mut(|Deflaters { compressors, .. }| {
        let c = match compressors.iter().position(|(l, _)| *l == level) {
            Some(i) => &mut compressors[i].1,
            None => {
                let lvl = libdeflater::CompressionLvl::new(i32::from(level))
                    .unwrap_or_else(|_| libdeflater::CompressionLvl::default());
                compressors.push((level, libdeflater::Compressor::new(lvl)));
                let last = compressors.len() - 1;
                &mut compressors[last].1
            }
        };
        super::deflate::zlib(c, level, src, planes)
    })
}

/// Inflates a zlib stream into `out`, which it must fill exactly.
fn inflate_into(src: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
    DEFLATERS.with_borrow_mut(
        |Deflaters {
             decompressor,
             literal,
             ..
         }| {
            let d = decompressor.get_or_insert_with(libdeflater::Decompressor::new);
            let t = literal.get_or_insert_with(Default::default);
            if super::inflate::literal_zlib(t, src, out) {
                return Ok(());
            }
            match d.zlib_decompress(src, out) {
                Ok(n) if n == out.len() => Ok(()),
                Ok(n) => Err(format!(
                    "deflate stream holds {n} bytes, expected {} (the chunk shape times the \
                     element size)",
                    out.len()
                )),
                Err(libdeflater::DecompressionError::InsufficientSpace) => Err(format!(
                    "deflate stream holds more than the chunk's {} bytes",
                    out.len()
                )),
                Err(libdeflater::DecompressionError::BadData) => Err(format!(
                    "deflate stream is corrupt or truncated ({} stored bytes)",
                    src.len()
                )),
            }
        },
    )
}

/// Inflates a whole zlib stream into `out` (cleared first, grown as needed, at most `limit`
/// bytes: the stream of an inner filter, whose length the chunk does not give).
fn inflate_vec(src: &[u8], out: &mut Vec<u8>, limit: usize) -> std::result::Result<(), String> {
    out.clear();
    let mut d = flate2::Decompress::new(true);
    loop {
        if out.capacity() == out.len() {
            out.reserve((src.len() * 4).clamp(4096, limit.max(4096)));
        }
        let consumed = d.total_in() as usize;
        let produced = out.len();
        let status = d
            .decompress_vec(&src[consumed..], out, flate2::FlushDecompress::Finish)
            .map_err(|e| format!("deflate stream is corrupt: {e}"))?;
        if status == flate2::Status::StreamEnd {
            return Ok(());
        }
        if out.len() > limit {
            return Err(format!("deflate stream holds more than {limit} bytes"));
        }
        let stuck = d.total_in() as usize == consumed && out.len() == produced;
        if stuck || (d.total_in() as usize == src.len() && out.len() < out.capacity()) {
            return Err(format!(
                "deflate stream is truncated ({} stored bytes give {} bytes)",
                src.len(),
                out.len()
            ));
        }
    }
}

/// Where a stored chunk is: its file offset and size and its skipped-filter mask.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkLoc {
    pub(crate) addr: u64,
    pub(crate) size: u64,
    pub(crate) mask: u32,
}

/// Finds the chunk whose first element is at `offset`: `None` when it was never written (its
/// elements are the fill value) or the library cannot say.
pub(crate) fn locate(ds: &hdf5::Dataset, offset: &[usize]) -> Option<ChunkLoc> {
    let off: Vec<hsize_t> = offset.iter().map(|&o| o as hsize_t).collect();
    let mut mask: u32 = 0;
    let mut addr: haddr_t = HADDR_UNDEF;
    let mut size: hsize_t = 0;
    let status = hdf5::sync::sync(|| {
        // SAFETY: `off` has one entry per dimension of the dataset (the caller's region has the
        // dataset's rank) and the out-pointers are valid for one value each.
        unsafe {
            H5Dget_chunk_info_by_coord(ds.id(), off.as_ptr(), &mut mask, &mut addr, &mut size)
        }
    });
    if status < 0 || addr == HADDR_UNDEF || size == 0 {
        return None;
    }
    Some(ChunkLoc { addr, size, mask })
}

/// Appends one filtered chunk at element offset `offset` (the single writer calls this); errors
/// name the dataset `name`.
pub(crate) fn write_chunk(
    ds: &hdf5::Dataset,
    name: &str,
    path: &Path,
    offset: &[usize],
    bytes: &[u8],
) -> Result<()> {
    let off: Vec<hsize_t> = offset.iter().map(|&o| o as hsize_t).collect();
    let status = hdf5::sync::sync(|| {
        // SAFETY: `off` has the dataset's rank, `bytes` is valid for its length and the library
        // copies it before returning.
        unsafe {
            H5Dwrite_chunk(
                ds.id(),
                H5P_DEFAULT,
                0,
                off.as_ptr(),
                bytes.len(),
                bytes.as_ptr().cast(),
            )
        }
    });
    if status < 0 {
        let detail = hdf5::h5check(status)
            .err()
            .map(|e| super::hdf5::plain_message(&e.to_string()));
        return Err(Error::format(
            path,
            format!(
                "{name}: writing the chunk at {offset:?}: {}",
                detail.unwrap_or_else(|| "the HDF5 library refused it".into())
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lzf::tests::liblzf as lzf;

    /// LZF steps undone in every position a pipeline can hold them: alone, after a shuffle,
    /// inside a deflate (an inner stream of unknown length), and skipped by the chunk's mask.
    #[test]
    fn lzf_pipelines_decode_to_the_chunk() {
        let chunk: Vec<u8> = (0..4096u32)
            .flat_map(|i| (f64::from(i % 97) * 0.5).to_le_bytes())
            .collect();
        let mut scratch = Scratch::default();
        let decode = |p: &Pipeline, stored: &[u8], mask: u32, scratch: &mut Scratch| {
            let mut out = vec![0u8; chunk.len()];
            p.decode(stored, mask, 8, scratch, &mut out).map(|()| out)
        };
        let only = Pipeline::of(&[Filter::LZF]).unwrap_or_else(|| panic!("lzf"));
        assert_eq!(
            decode(&only, &lzf(&chunk), 0, &mut scratch),
            Ok(chunk.clone())
        );
        // Stored as it is (the filter is optional and did not shrink it): mask bit 0.
        assert_eq!(decode(&only, &chunk, 1, &mut scratch), Ok(chunk.clone()));
        let shuffled = Pipeline::of(&[Filter::Shuffle, Filter::LZF]).unwrap_or_else(|| panic!());
        let stored = lzf(&shuffle(&chunk, 8));
        assert_eq!(
            decode(&shuffled, &stored, 0, &mut scratch),
            Ok(chunk.clone())
        );
        assert_eq!(shuffled.names(), "shuffle, LZF");
        let inner = Pipeline::of(&[Filter::LZF, Filter::Deflate(4)]).unwrap_or_else(|| panic!());
        let stored = deflate(&lzf(&chunk), 4, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode(&inner, &stored, 0, &mut scratch), Ok(chunk.clone()));
        // A block one byte short: the size is named, not a short chunk returned.
        let short = lzf(&chunk[..chunk.len() - 1]);
        let e = decode(&only, &short, 0, &mut scratch).unwrap_err();
        assert!(e.contains("decodes to 32767 bytes"), "{e}");
        // LZF is read here, never written.
        assert!(only.encode(&chunk, 8).is_err());
    }

    #[test]
    fn transposed_shuffles_match_the_generic_ones() {
        let big: Vec<u8> = (0..80_021u32).map(|v| (v * 37 % 253) as u8).collect();
        let mut a = vec![0u8; big.len()];
        let mut b = vec![0u8; big.len()];
        shuffle_n::<8>(&big, &mut a);
        shuffle_8(&big, &mut b);
        assert_eq!(a, b);
        shuffle_8_swar(&big, &mut b);
        assert_eq!(a, b);
        unshuffle_n::<8>(&a, &mut b);
        assert_eq!(b, big);
        unshuffle_8(&a, &mut b);
        assert_eq!(b, big);
        unshuffle_8_swar(&a, &mut b);
        assert_eq!(b, big);
        // Every length up to three runs of sixteen elements, with and without trailing bytes.
        for len in 0..(3 * 16 * 8 + 9) {
            let src = &big[..len];
            let (mut want, mut got) = (vec![0u8; len], vec![0u8; len]);
            shuffle_n::<8>(src, &mut want);
            shuffle_8(src, &mut got);
            assert_eq!(got, want, "shuffle of {len} bytes");
            unshuffle_n::<8>(src, &mut want);
            unshuffle_8(src, &mut got);
            assert_eq!(got, want, "unshuffle of {len} bytes");
        }
    }

    #[test]
    fn shuffle_matches_the_definition_and_inverts() {
        // Three 4-byte elements and two trailing bytes.
        let src: Vec<u8> = (0..14).collect();
        let s = shuffle(&src, 4);
        assert_eq!(s, vec![0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 13]);
        let mut back = vec![0u8; src.len()];
        unshuffle(&s, 4, &mut back);
        assert_eq!(back, src);
        assert_eq!(shuffle(&src, 1), src);
        // Larger than one run, every element size.
        let big: Vec<u8> = (0..40_003u32).map(|v| (v * 31 % 251) as u8).collect();
        for elem in [1, 2, 4, 8] {
            let s = shuffle(&big, elem);
            let n = big.len() / elem;
            for i in (0..n).step_by(97) {
                for j in 0..elem {
                    assert_eq!(s[j * n + i], big[i * elem + j]);
                }
            }
            let mut back = vec![0u8; big.len()];
            unshuffle(&s, elem, &mut back);
            assert_eq!(back, big, "elem {elem}");
        }
    }

    #[test]
    fn pipelines_round_trip_and_honour_the_mask() {
        // 6000 elements: planes of 6000 bytes, which `deflate::zlib` tests; the two low
        // bytes of each element are noise (literal blocks), the two high ones a slow count.
        let raw: Vec<u8> = (0..6000u32)
            .flat_map(|v| (v.wrapping_mul(2_654_435_761) >> 16 | (v / 7) << 16).to_le_bytes())
            .collect();
        let mut scratch = Scratch::default();
        for steps in [
            vec![],
            vec![Step::Shuffle],
            vec![Step::Deflate(4)],
            vec![Step::Shuffle, Step::Deflate(1)],
            vec![
                Step::Shuffle,
                Step::Deflate(1),
                Step::Shuffle,
                Step::Deflate(3),
            ],
        ] {
            let p = Pipeline { steps };
            let stored = p.encode(&raw, 4).unwrap();
            let mut out = vec![0u8; raw.len()];
            // One scratch for every pipeline, as a worker thread keeps it.
            p.decode(&stored, 0, 4, &mut scratch, &mut out).unwrap();
            assert_eq!(out, raw, "{p:?}");
        }
        // Deflate (position 1) skipped for this chunk: only the shuffle is undone.
        let p = Pipeline {
            steps: vec![Step::Shuffle, Step::Deflate(4)],
        };
        let mut out = vec![0u8; raw.len()];
        p.decode(&shuffle(&raw, 4), 0b10, 4, &mut scratch, &mut out)
            .unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let raw = vec![5u8; 10000];
        let p = Pipeline {
            steps: vec![Step::Deflate(6)],
        };
        let stored = p.encode(&raw, 1).unwrap();
        let mut out = vec![0u8; raw.len()];
        let cut = stored[..stored.len() / 2].to_vec();
        let mut scratch = Scratch::default();
        assert!(p.decode(&cut, 0, 1, &mut scratch, &mut out).is_err());
        let mut bad = stored.clone();
        bad[0] ^= 0xff;
        assert!(p.decode(&bad, 0, 1, &mut scratch, &mut out).is_err());
        let mut short = vec![0u8; 100];
        assert!(p.decode(&stored, 0, 1, &mut scratch, &mut short).is_err());
    }
}
