//! Storage backends: the `.npy` and raw binary formats, memory-mapped.
#[cfg(feature = "hdf5")]
pub mod hdf5;
pub mod mapped;
pub mod npy;
pub mod raw;
pub mod zarr;
