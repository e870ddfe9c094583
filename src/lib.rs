//! tessera
pub mod array;
pub mod chunks;
pub mod dynarray;
pub mod element;
pub mod error;
pub mod exec;
pub mod expr;
pub mod ops;
pub mod plan;
pub mod store;
pub use array::ChunkedArray;
pub use chunks::{ChunkGrid, Chunks};
pub use element::{DType, Element};
pub use error::{parse_bytes, Error, Result};
pub use exec::ExecOptions;
