//! libdeflate's gzip compressor, for the chunk files of Zarr arrays written with the `gzip`
//! codec: the gzip stream zarr-python's `GzipCodec` and zarrs read, several times faster than
//! zlib at the same level.

use libdeflate_sys::{
    libdeflate_alloc_compressor, libdeflate_compressor, libdeflate_free_compressor,
    libdeflate_gzip_compress, libdeflate_gzip_compress_bound,
};
use std::cell::RefCell;

/// A libdeflate compressor at one level (its state is allocated once; a worker keeps one).
struct RawDeflater {
    state: std::ptr::NonNull<libdeflate_compressor>,
    level: u32,
}

impl Drop for RawDeflater {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_compressor`, freed once.
        unsafe { libdeflate_free_compressor(self.state.as_ptr()) }
    }
}

thread_local! {
    static DEFLATER: RefCell<Option<RawDeflater>> = const { RefCell::new(None) };
}

/// `src` as one gzip member, compressed at `level` (0 to 12; 0 stores, 1 to 9 are zlib's
/// levels in speed and ratio, give or take).
///
/// # Errors
/// A level libdeflate refuses, or a failure to compress within its own bound for the input
/// (which it documents as impossible), as a message.
pub(crate) fn gzip(src: &[u8], level: u32) -> Result<Vec<u8>, String> {
    DEFLATER.with_borrow_mut(|slot| {
        let d = match slot {
            Some(d) if d.level == level => d,
            _ => {
                let raw = i32::try_from(level).unwrap_or(i32::MAX);
                // SAFETY: allocating a compressor has no precondition; null (a level out of
                // range, or no memory) is checked.
                let state = std::ptr::NonNull::new(unsafe { libdeflate_alloc_compressor(raw) })
                    .ok_or_else(|| format!("libdeflate has no gzip level {level} (0 to 12)"))?;
                slot.insert(RawDeflater { state, level })
            }
        };
        // SAFETY: the compressor is this thread's alone; the bound has no other input.
        let bound = unsafe { libdeflate_gzip_compress_bound(d.state.as_ptr(), src.len()) };
        let mut out = Vec::<u8>::with_capacity(bound);
        // SAFETY: `src` is a live slice; `out` has room for `bound` bytes, which libdeflate
        // writes at most, and returns how many it wrote (0 if they did not fit).
        let n = unsafe {
            libdeflate_gzip_compress(
                d.state.as_ptr(),
                src.as_ptr().cast(),
                src.len(),
                out.as_mut_ptr().cast(),
                bound,
            )
        };
        if n == 0 {
            return Err(format!(
                "libdeflate could not compress {} bytes within its bound",
                src.len()
            ));
        }
        // SAFETY: libdeflate initialised the first `n <= bound` bytes.
        unsafe { out.set_len(n) };
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::gzip;
    use crate::store::raw_inflate::RawInflater;

    #[test]
    fn members_inflate_to_what_was_compressed_at_every_level() {
        let mut inflater = RawInflater::new().unwrap_or_else(|| panic!("no decompressor"));
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| ((i as f64).sin().round() * 1e3).to_le_bytes())
            .collect();
        for level in 0..=12 {
            for src in [&data[..], &data[..1], &[]] {
                let z = gzip(src, level).unwrap_or_else(|e| panic!("level {level}: {e}"));
                assert_eq!(&z[..2], &[0x1f, 0x8b], "a gzip header");
                let mut back = vec![0u8; src.len()];
                inflater
                    .gzip(&z, &mut back)
                    .unwrap_or_else(|e| panic!("level {level}: {e}"));
                assert_eq!(back, src, "level {level}");
            }
        }
        assert!(gzip(&data, 9).map(|z| z.len() < data.len() / 2) == Ok(true));
        assert!(gzip(&data, 13).is_err_and(|e| e.contains("no gzip level 13")));
    }
}
