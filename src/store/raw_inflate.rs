//! libdeflate's decompressor, held directly for the calls `libdeflater` does not offer: how many
//! input bytes a stream took, so that a stream must end where its chunk does and gzip members
//! can follow one another.

#[cfg(feature = "hdf5")]
use libdeflate_sys::libdeflate_deflate_decompress_ex;
use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result, libdeflate_result_LIBDEFLATE_BAD_DATA,
    libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE, libdeflate_result_LIBDEFLATE_SUCCESS,
    libdeflate_zlib_decompress_ex,
};
use std::ffi::c_void;

/// The signature shared by libdeflate's `*_decompress_ex` calls.
type DecompressEx = unsafe extern "C" fn(
    *mut libdeflate_decompressor,
    *const c_void,
    usize,
    *mut c_void,
    usize,
    *mut usize,
    *mut usize,
) -> libdeflate_result;

/// A libdeflate decompressor (its state is allocated once; a worker keeps one).
pub(crate) struct RawInflater(std::ptr::NonNull<libdeflate_decompressor>);

/// How a call ended: `Ok((input bytes taken, output bytes written))`.
type Taken = std::result::Result<(usize, usize), libdeflate_result>;

impl RawInflater {
    /// A decompressor, or `None` if libdeflate could not allocate one.
    pub(crate) fn new() -> Option<Self> {
        // SAFETY: allocating a decompressor has no precondition; null is checked.
        std::ptr::NonNull::new(unsafe { libdeflate_alloc_decompressor() }).map(RawInflater)
    }

    /// One stream of the kind `f` decodes, from the start of `src` into `out` (at most all of
    /// it).
    fn call(&mut self, f: DecompressEx, src: &[u8], out: &mut [u8]) -> Taken {
        let (mut took, mut gave) = (0usize, 0usize);
        // SAFETY: the pointers and lengths are those of two live slices that do not overlap;
        // the decompressor is ours alone (`&mut self`); libdeflate writes only within `out` and
        // reads only within `src`.
        let result = unsafe {
            f(
                self.0.as_ptr(),
                src.as_ptr().cast(),
                src.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut took,
                &mut gave,
            )
        };
        if result == libdeflate_result_LIBDEFLATE_SUCCESS {
            Ok((took, gave))
        } else {
            Err(result)
        }
    }

    /// Inflates the raw deflate stream at the start of `src` into `out`, which it must fill
    /// exactly: the input bytes it took, or `None` if the stream is bad or of another length.
    #[cfg(feature = "hdf5")]
    pub(crate) fn deflate(&mut self, src: &[u8], out: &mut [u8]) -> Option<usize> {
        match self.call(libdeflate_deflate_decompress_ex, src, out) {
            Ok((took, gave)) if gave == out.len() => Some(took),
            _ => None,
        }
    }

    /// Inflates the zlib stream `src` (all of it) into `out`, which it must fill exactly.
    ///
    /// # Errors
    /// What did not match, as a message: a corrupt stream, more or fewer bytes than `out`
    /// holds, bytes after the stream.
    pub(crate) fn zlib(&mut self, src: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
        let (took, gave) = self
            .call(libdeflate_zlib_decompress_ex, src, out)
            .map_err(|e| failed("zlib", e, src.len(), out.len()))?;
        if gave != out.len() {
            return Err(wrong_size("zlib", gave, out.len()));
        }
        if took != src.len() {
            return Err(format!(
                "holds {} bytes after its zlib stream",
                src.len() - took
            ));
        }
        Ok(())
    }

    /// Inflates the gzip members of `src` (one or more, end to end, all of it) into `out`, which
    /// they must fill exactly.
    ///
    /// # Errors
    /// As [`RawInflater::zlib`].
    pub(crate) fn gzip(&mut self, src: &[u8], out: &mut [u8]) -> std::result::Result<(), String> {
        let (mut read, mut written) = (0, 0);
        while read < src.len() || read == 0 {
            let (took, gave) = self
                .call(
                    libdeflate_gzip_decompress_ex,
                    &src[read..],
                    &mut out[written..],
                )
                .map_err(|e| failed("gzip", e, src.len(), out.len()))?;
            read += took;
            written += gave;
            if took == 0 {
                break;
            }
        }
        if written != out.len() {
            return Err(wrong_size("gzip", written, out.len()));
        }
        Ok(())
    }
}

/// The message for a chunk whose `format` stream decodes to `got` bytes where it holds
/// `want`.
pub(crate) fn wrong_size(format: &str, got: usize, want: usize) -> String {
    format!("decodes ({format}) to {got} bytes; a chunk holds {want}")
}

/// The message for a failed `format` stream of `stored` bytes into `room`.
fn failed(format: &str, result: libdeflate_result, stored: usize, room: usize) -> String {
    if result == libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE {
        format!("decodes ({format}) to more than a chunk's {room} bytes")
    } else if result == libdeflate_result_LIBDEFLATE_BAD_DATA {
        format!("is not a {format} stream, or is corrupt or truncated ({stored} bytes)")
    } else {
        format!("cannot be decoded ({format}: libdeflate error {result})")
    }
}

impl Drop for RawInflater {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_decompressor`, freed once.
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}
