//! Creation: arrays from memory, constants, ranges and seeded random numbers.

use crate::array::{grid_for, ChunkedArray};
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element, Num};
use crate::error::{Error, Result};
use crate::plan::{slice_info, Block, Node, PlanNode};
use ndarray::{ArrayD, Dimension, IxDyn};
use std::ops::Range;
use std::sync::Arc;

/// An in-memory array split into views.
struct Memory<T: Element> {
    data: Arc<ArrayD<T>>,
    grid: ChunkGrid,
}

impl<T: Element> PlanNode for Memory<T> {
    fn op(&self) -> String {
        "from_array".into()
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![]
    }
    fn own_task_bytes(&self) -> usize {
        0
    }
}

impl<T: Element> Node<T> for Memory<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        Ok(self.data.slice(slice_info(region).as_slice()).into())
    }
}

/// A constant array: every region is a broadcast view of one value.
struct Full<T: Element> {
    value: ArrayD<T>,
    grid: ChunkGrid,
}

impl<T: Element> PlanNode for Full<T> {
    fn op(&self) -> String {
        format!(
            "full({})",
            self.value.iter().next().copied().unwrap_or_default()
        )
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![]
    }
    fn own_task_bytes(&self) -> usize {
        0
    }
}

impl<T: Element> Node<T> for Full<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let shape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        self.value
            .broadcast(IxDyn(&shape))
            .map(Block::from)
            .ok_or_else(|| Error::Shape(format!("cannot broadcast a constant to {shape:?}")))
    }
}

/// An array whose element at flat (C-order) index `i` is `f(i)`: ranges and random numbers.
struct Generated<T: Element, F> {
    name: String,
    grid: ChunkGrid,
    f: F,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Element, F: Fn(u64) -> T + Send + Sync> PlanNode for Generated<T, F> {
    fn op(&self) -> String {
        self.name.clone()
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![]
    }
    fn own_task_bytes(&self) -> usize {
        self.grid.max_block_len() * T::DTYPE.size()
    }
}

impl<T: Element, F: Fn(u64) -> T + Send + Sync> Node<T> for Generated<T, F> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let shape = self.grid.shape();
        let rshape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        let mut strides = vec![1u64; shape.len()];
        for ax in (0..shape.len().saturating_sub(1)).rev() {
            strides[ax] = strides[ax + 1] * shape[ax + 1] as u64;
        }
        let out = ArrayD::from_shape_fn(IxDyn(&rshape), |idx| {
            let flat: u64 = (0..idx.ndim())
                .map(|ax| (region[ax].start + idx[ax]) as u64 * strides[ax])
                .sum();
            (self.f)(flat)
        });
        Ok(out.into())
    }
}

fn generated<T: Element>(
    name: String,
    grid: ChunkGrid,
    f: impl Fn(u64) -> T + Send + Sync + 'static,
) -> ChunkedArray<T> {
    ChunkedArray::from_node(Arc::new(Generated {
        name,
        grid,
        f,
        _t: std::marker::PhantomData,
    }))
}

/// SplitMix64: a counter-based generator, so each element's value depends only on the seed and
/// its flat index, never on the chunking.
fn splitmix(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl<T: Num> ChunkedArray<T> {
    /// Evenly spaced values `start, start + step, ...` below `stop`, as NumPy's `arange` with
    /// float arguments makes them: `ceil((stop - start) / step)` values (none when `stop ==
    /// start`); the first two are `start` and `start + step` (in `f64`) cast to `T`, every later
    /// one `first + i * (second - first)` in `T`'s own arithmetic (wrapping for integers), so
    /// that float32 values have NumPy's bits.
    ///
    /// # Errors
    /// A zero or non-finite step, non-finite bounds, invalid chunks; for an integer `T`,
    /// `start` (or `start + step`, when there are two values or more) whose integer part is
    /// outside `T`'s range, as NumPy 2's `OverflowError`.
    ///
    /// ```
    /// use tessera::ChunkedArray;
    /// let x = ChunkedArray::<i64>::arange(2.0, 11.0, 3.0, 2).unwrap();
    /// assert_eq!(x.compute().unwrap().into_raw_vec_and_offset().0, vec![2, 5, 8]);
    /// // NumPy's float32 bits: 9 * 0.1f32, not 0.9 rounded to float32.
    /// let y = ChunkedArray::<f32>::arange(0.0, 1.0, 0.1, 4).unwrap().compute().unwrap();
    /// assert_eq!(y[[9]], 9.0 * 0.1f32);
    /// ```
    pub fn arange(start: f64, stop: f64, step: f64, chunks: impl Into<Chunks>) -> Result<Self> {
        if !stop.is_finite() {
            return Err(Error::Invalid(format!(
                "arange needs finite bounds and a non-zero step, got start={start}, stop={stop}, step={step}"
            )));
        }
        Self::arange_over(stop - start, start, step, chunks)
    }

    /// [`ChunkedArray::arange`] from `start` by `step` over `range`, the bounds' difference
    /// worked out by the caller (NumPy takes it exactly from Python int bounds, which `f64`
    /// bounds would round): `ceil(range / step)` values, none when `range` is 0.
    ///
    /// # Errors
    /// As [`ChunkedArray::arange`].
    pub fn arange_over(
        range: f64,
        start: f64,
        step: f64,
        chunks: impl Into<Chunks>,
    ) -> Result<Self> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !range.is_finite() {
            return Err(Error::Invalid(format!(
                "arange needs finite bounds and a non-zero step, got start={start}, a range of {range}, step={step}"
            )));
        }
        let n = if range == 0.0 {
            0
        } else {
            // Saturates for an absurd length, which the grid then refuses.
            (range / step).ceil().max(0.0) as usize
        };
        // NumPy casts the first two values as Python does: integer part, range-checked.
        let cast = |v: f64| -> Result<T> {
            if T::DTYPE.is_int() && !crate::dynarray::float_fits(v, T::DTYPE) {
                return Err(Error::DType(format!(
                    "Python integer {} out of bounds for {} in arange",
                    v.trunc(),
                    T::DTYPE
                )));
            }
            Ok(T::from_f64(v))
        };
        let first = cast(start)?;
        let second = if n > 1 { cast(start + step)? } else { first };
        Self::arange_from(
            n,
            first,
            second,
            format!("arange({start}, {}, {step})", start + range),
            chunks,
        )
    }

    /// [`ChunkedArray::arange`] of integer arguments (NumPy's `arange` of Python ints): the
    /// length `ceil((stop - start) / step)` exactly, and `start` and `start + step` exact.
    ///
    /// # Errors
    /// A zero step; for an integer `T`, `start` (or `start + step`, when there are two values
    /// or more) outside `T`'s range, as NumPy 2's `OverflowError`; invalid chunks.
    ///
    /// ```
    /// use tessera::ChunkedArray;
    /// let big = 1_000_000_000_000_000_000i64;
    /// let x = ChunkedArray::<i64>::arange_int(big, big + 3, 1, 2).unwrap();
    /// assert_eq!(x.compute().unwrap().into_raw_vec_and_offset().0, vec![big, big + 1, big + 2]);
    /// assert!(ChunkedArray::<u8>::arange_int(-3, 3, 1, 2).is_err());
    /// ```
    pub fn arange_int(start: i64, stop: i64, step: i64, chunks: impl Into<Chunks>) -> Result<Self> {
        if step == 0 {
            return Err(Error::Invalid(
                "arange needs a non-zero step, got step=0".into(),
            ));
        }
        let (range, st) = (i128::from(stop) - i128::from(start), i128::from(step));
        let n = if range != 0 && (range > 0) == (st > 0) {
            let (r, s) = (range.unsigned_abs(), st.unsigned_abs());
            usize::try_from(r.div_ceil(s)).unwrap_or(usize::MAX)
        } else {
            0
        };
        let second = i128::from(start) + st;
        let cast = |v: i128| -> Result<T> {
            let fits = i64::try_from(v)
                .ok()
                .filter(|&v| !T::DTYPE.is_int() || crate::dynarray::int_fits(v, T::DTYPE));
            match fits {
                Some(v) => Ok(T::from_i64(v)),
                None => Err(Error::DType(format!(
                    "Python integer {v} out of bounds for {} in arange",
                    T::DTYPE
                ))),
            }
        };
        let first = cast(i128::from(start))?;
        // NumPy sets the second value only when there are two.
        let second = if n > 1 { cast(second)? } else { first };
        Self::arange_from(
            n,
            first,
            second,
            format!("arange({start}, {stop}, {step})"),
            chunks,
        )
    }

    /// `n` values: `first`, `second`, then `first + i * (second - first)` in `T` (NumPy's
    /// `fill` of an arange).
    fn arange_from(
        n: usize,
        first: T,
        second: T,
        name: String,
        chunks: impl Into<Chunks>,
    ) -> Result<Self> {
        let grid = grid_for::<T>(&[n], chunks)?;
        let delta = second.sub(first);
        Ok(generated(name, grid, move |i| match i {
            0 => first,
            1 => second,
            _ => first.add(T::from_u64(i).mul(delta)),
        }))
    }
}

/// The distribution of [`ChunkedArray::random`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Uniform on `[low, high)`.
    Uniform {
        /// Lower bound (included).
        low: f64,
        /// Upper bound (excluded).
        high: f64,
    },
    /// Normal with mean `loc` and standard deviation `scale`.
    Normal {
        /// Mean.
        loc: f64,
        /// Standard deviation.
        scale: f64,
    },
}

impl<T: Element> ChunkedArray<T> {
    /// An array from an in-memory `ndarray`, cut into `chunks`. Blocks are views: no copy.
    ///
    /// # Errors
    /// Invalid chunks (a size of 0, explicit chunks that do not add up).
    ///
    /// ```
    /// use tessera::ChunkedArray;
    /// let a = ndarray::ArrayD::from_shape_vec(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
    /// let x = ChunkedArray::from_array(a.clone(), [1, 2]).unwrap();
    /// assert_eq!(x.chunks(), &[vec![1, 1], vec![2, 1]]);
    /// assert_eq!(x.compute().unwrap(), a);
    /// ```
    pub fn from_array(data: ArrayD<T>, chunks: impl Into<Chunks>) -> Result<Self> {
        let grid = grid_for::<T>(data.shape(), chunks)?;
        Ok(Self::from_node(Arc::new(Memory {
            data: Arc::new(data),
            grid,
        })))
    }

    /// An array of `shape` where every element is `value`.
    ///
    /// # Errors
    /// Invalid chunks.
    pub fn full(shape: &[usize], value: T, chunks: impl Into<Chunks>) -> Result<Self> {
        let grid = grid_for::<T>(shape, chunks)?;
        Ok(Self::from_node(Arc::new(Full {
            value: ArrayD::from_elem(IxDyn(&[]), value),
            grid,
        })))
    }

    /// An array of zeros.
    ///
    /// # Errors
    /// Invalid chunks.
    pub fn zeros(shape: &[usize], chunks: impl Into<Chunks>) -> Result<Self> {
        Self::full(shape, T::from_bool(false), chunks)
    }

    /// An array of ones.
    ///
    /// # Errors
    /// Invalid chunks.
    pub fn ones(shape: &[usize], chunks: impl Into<Chunks>) -> Result<Self> {
        Self::full(shape, T::from_bool(true), chunks)
    }

    /// `num` evenly spaced values from `start` to `stop` included (NumPy's `linspace`).
    ///
    /// # Errors
    /// Invalid chunks.
    pub fn linspace(start: f64, stop: f64, num: usize, chunks: impl Into<Chunks>) -> Result<Self> {
        let grid = grid_for::<T>(&[num], chunks)?;
        let div = num.saturating_sub(1).max(1) as f64;
        let step = (stop - start) / div;
        let last = num.saturating_sub(1) as u64;
        Ok(generated(
            format!("linspace({start}, {stop}, {num})"),
            grid,
            move |i| {
                if num > 1 && i == last {
                    T::from_f64(stop)
                } else {
                    T::from_f64(i as f64 * step + start)
                }
            },
        ))
    }

    /// Seeded random numbers whose values depend only on the seed and the element's position,
    /// never on the chunking (each element hashes its flat index with the seed).
    ///
    /// # Errors
    /// Invalid chunks or distribution parameters.
    ///
    /// ```
    /// use tessera::{ChunkedArray, ops::creation::Distribution};
    /// let u = Distribution::Uniform { low: 0.0, high: 1.0 };
    /// let a = ChunkedArray::<f64>::random(&[100], u, 42, 7).unwrap().compute().unwrap();
    /// let b = ChunkedArray::<f64>::random(&[100], u, 42, 100).unwrap().compute().unwrap();
    /// assert_eq!(a, b);
    /// ```
    pub fn random(
        shape: &[usize],
        dist: Distribution,
        seed: u64,
        chunks: impl Into<Chunks>,
    ) -> Result<Self> {
        let grid = grid_for::<T>(shape, chunks)?;
        match dist {
            Distribution::Uniform { low, high } => {
                if !(low.is_finite() && high.is_finite() && low <= high) {
                    return Err(Error::Invalid(format!(
                        "uniform needs finite low <= high, got low={low}, high={high}"
                    )));
                }
                Ok(generated(
                    format!("uniform({low}, {high}, seed={seed})"),
                    grid,
                    move |i| T::from_f64(low + (high - low) * unit(splitmix(seed, i))),
                ))
            }
            Distribution::Normal { loc, scale } => {
                if !(loc.is_finite() && scale.is_finite() && scale >= 0.0) {
                    return Err(Error::Invalid(format!(
                        "normal needs a finite loc and scale >= 0, got loc={loc}, scale={scale}"
                    )));
                }
                Ok(generated(
                    format!("normal({loc}, {scale}, seed={seed})"),
                    grid,
                    move |i| {
                        // Box-Muller on two independent streams of the same counter.
                        let u1 = 1.0 - unit(splitmix(seed, 2 * i));
                        let u2 = unit(splitmix(seed, 2 * i + 1));
                        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                        T::from_f64(loc + scale * z)
                    },
                ))
            }
        }
    }
}
