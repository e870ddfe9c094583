//! Storage backends: the `.npy` and raw binary formats, memory-mapped.
pub mod npy;
