//! Storage backends: `.npy` and raw binary files (memory-mapped), Zarr and HDF5.
#[cfg(feature = "hdf5")]
pub mod hdf5;
#[cfg(feature = "hdf5")]
mod hdf5_chunks;
pub mod mapped;
pub mod npy;
pub mod raw;
pub mod zarr;
