//! Storage backends: the `.npy` and raw binary formats, memory-mapped.
pub mod mapped;
pub mod npy;
pub mod raw;
pub mod zarr;
