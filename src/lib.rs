//! tessera
pub mod element;
pub mod error;
pub mod expr;
pub mod store;
pub use element::{DType, Element};
pub use error::{parse_bytes, Error, Result};
