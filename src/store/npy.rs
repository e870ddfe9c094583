//! `.npy` files, memory-mapped.
