//! # tessera: chunked, out-of-core N-dimensional arrays
//!
//! A [`ChunkedArray`] is a grid of `ndarray` blocks behind a lazy plan. Operations
//! (elementwise ufuncs with NumPy broadcasting, reductions, slicing, rechunking) only build the
//! plan; [`ChunkedArray::compute`] and [`ChunkedArray::to_npy`] run it block by block on a rayon
//! pool, within a memory budget checked before anything is read.
//!
//! ```
//! use tessera::{ChunkedArray, ExecOptions};
//! use tessera::ops::reduce::ReduceOpts;
//!
//! // 1000 x 3 random points in blocks of 100 rows: nothing is computed yet.
//! let u = tessera::ops::creation::Distribution::Uniform { low: 0.0, high: 1.0 };
//! let x = ChunkedArray::<f64>::random(&[1000, 3], u, 7, [100, 3])?;
//! // Distance of every point to the centroid (the mean is computed once and broadcast).
//! let centroid = x.mean(ReduceOpts::axis(0))?;
//! let d = x.sub(&centroid)?.pow(2.0)?.sum(ReduceOpts::axis(1))?.sqrt();
//! let far = d.max(ReduceOpts::all())?;
//! let v = far.compute_with(&ExecOptions::default().threads(2))?;
//! assert!(v.iter().all(|&m| m > 0.0 && m < 1.0));
//! # Ok::<(), tessera::Error>(())
//! ```
//!
//! The three primitives every operation is built from: blockwise
//! ([`ChunkedArray::map`], [`ChunkedArray::zip_map`]), reduction ([`ChunkedArray::reduce`]
//! with a [`ops::reduce::Reducer`] and a tree combine of fan-in `split_every`), and
//! [`ChunkedArray::rechunk`]. [`dynarray::DynArray`] adds run-time dtypes with NumPy's
//! promotion rules, and [`expr`] a NumPy-like expression language over named arrays (the
//! `tessera eval` command). [`distance`] holds SciPy's `cdist`/`pdist` as lazy tiles, and the
//! k-nearest-neighbour, nearest and radius-count reductions that never build the matrix.
//!
//! Coming from Dask? [`dask_users`] maps Dask's names to tessera's, with examples.

#[doc = include_str!("../docs/dask.md")]
pub mod dask_users {}

pub mod array;
pub mod chunks;
pub mod distance;
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
