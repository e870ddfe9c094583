//! Storage backends: `.npy` and raw binary files (memory-mapped), Zarr (on a file system or in
//! object storage) and HDF5.
#[cfg(feature = "hdf5")]
mod deflate;
#[cfg(feature = "hdf5")]
pub mod hdf5;
#[cfg(feature = "hdf5")]
mod hdf5_chunks;
#[cfg(feature = "hdf5")]
mod inflate;
#[cfg(feature = "hdf5")]
mod lzf;
pub mod mapped;
mod mmap;
pub mod npy;
#[cfg(feature = "s3")]
pub mod object;
mod parts;
pub mod raw;
mod raw_deflate;
mod raw_inflate;
pub mod zarr;

/// The hidden name beside `leaf` under which this process writes an output until it is
/// complete (`what` = `partial`), or keeps the output it replaces meanwhile (`old`):
/// `.leaf.tessera-partial-PID`.
pub(crate) fn aside_name(leaf: &str, what: &str) -> String {
    format!(".{leaf}.tessera-{what}-{}", std::process::id())
}
