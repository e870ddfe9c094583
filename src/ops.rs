//! Operations on chunked arrays, one module per concern.
pub mod creation;
pub mod elementwise;
pub mod rechunk;
pub mod reduce;
pub mod scan;
pub mod slice;
