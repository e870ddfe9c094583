//! Elementwise operations: the blockwise primitive for one, two and three operands with NumPy
//! broadcasting, and the ufuncs built on it.
//!
//! A node computes the region asked of it by asking each operand for the matching region
//! (an axis of length 1 asks for its single element and is broadcast as a view), so chains of
//! elementwise operations run block by block with no intermediate array. A unary step or a
//! binary step whose operand block is owned and already of the output shape works in place.

use crate::array::ChunkedArray;
use crate::chunks::ChunkGrid;
use crate::element::{DType, Element, Float, FloatFn, Integer, Num};
use crate::error::{Error, Result};
use crate::plan::{max_block_bytes, shared, Block, Node, PlanNode};
use ndarray::{IxDyn, Zip};
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

/// The right-hand side of a binary operation: another array or a scalar.
pub enum Operand<T: Element> {
    /// An array, broadcast against the left-hand side.
    Array(ChunkedArray<T>),
    /// A scalar.
    Scalar(T),
}

impl<T: Element> From<T> for Operand<T> {
    fn from(v: T) -> Self {
        Operand::Scalar(v)
    }
}

impl<T: Element> From<&ChunkedArray<T>> for Operand<T> {
    fn from(a: &ChunkedArray<T>) -> Self {
        Operand::Array(a.clone())
    }
}

impl<T: Element> From<ChunkedArray<T>> for Operand<T> {
    fn from(a: ChunkedArray<T>) -> Self {
        Operand::Array(a)
    }
}

/// The region of an operand of shape `shape` that feeds `region` of a broadcast output of
/// `ndim` axes: right-aligned, with axes of length 1 read at their single element.
fn operand_region(shape: &[usize], ndim: usize, region: &[Range<usize>]) -> Vec<Range<usize>> {
    let off = ndim - shape.len();
    shape
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let r = &region[off + i];
            if n == 1 {
                0..1
            } else {
                r.clone()
            }
        })
        .collect()
}

fn rshape(region: &[Range<usize>]) -> Vec<usize> {
    region.iter().map(|r| r.len()).collect()
}

fn broadcast_block<'a, 'b, T: Element>(
    b: &'b Block<'a, T>,
    shape: &[usize],
) -> Result<ndarray::ArrayViewD<'b, T>> {
    b.broadcast(IxDyn(shape)).ok_or_else(|| {
        Error::Shape(format!(
            "internal: block of shape {:?} does not broadcast to {shape:?}",
            b.shape()
        ))
    })
}

/// `U = f(T)` over one operand.
struct Map<T: Element, U: Element, F> {
    name: String,
    input: Arc<dyn Node<T>>,
    f: F,
    _u: PhantomData<fn() -> U>,
}

impl<T: Element, U: Element, F: Fn(T) -> U + Send + Sync> PlanNode for Map<T, U, F> {
    fn op(&self) -> String {
        self.name.clone()
    }
    fn dtype(&self) -> DType {
        U::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        self.input.grid()
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        max_block_bytes(self.grid(), U::DTYPE)
    }
}

impl<T: Element, U: Element, F: Fn(T) -> U + Send + Sync> Node<U> for Map<T, U, F> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, U>> {
        let x = self.input.region(region)?;
        Ok(x.mapv(&self.f).into())
    }
}

/// `T = f(T)` over one operand, in place when the input block is owned.
struct MapSame<T: Element, F> {
    name: String,
    input: Arc<dyn Node<T>>,
    f: F,
}

impl<T: Element, F: Fn(T) -> T + Send + Sync> PlanNode for MapSame<T, F> {
    fn op(&self) -> String {
        self.name.clone()
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        self.input.grid()
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        max_block_bytes(self.grid(), T::DTYPE)
    }
}

impl<T: Element, F: Fn(T) -> T + Send + Sync> Node<T> for MapSame<T, F> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let x = self.input.region(region)?;
        if x.is_owned() {
            let mut x = x.into_owned();
            x.mapv_inplace(&self.f);
            Ok(x.into())
        } else {
            Ok(x.mapv(&self.f).into())
        }
    }
}

/// The input's blocks unchanged, once every element passes `ok`: an error naming `what` for
/// the first block that holds one that does not (NumPy raises for such values, where a
/// kernel would have to make up a result).
struct Checked<T: Element, F> {
    input: Arc<dyn Node<T>>,
    what: String,
    ok: F,
}

impl<T: Element, F: Fn(T) -> bool + Send + Sync> PlanNode for Checked<T, F> {
    fn op(&self) -> String {
        "check".into()
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        self.input.grid()
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.input.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        // The input's block passes through.
        0
    }
}

impl<T: Element, F: Fn(T) -> bool + Send + Sync> Node<T> for Checked<T, F> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let x = self.input.region(region)?;
        match x.view().iter().find(|&&v| !(self.ok)(v)) {
            Some(v) => Err(Error::Invalid(format!("{} (found {v})", self.what))),
            None => Ok(x),
        }
    }
}

/// `V = f(T, U)` over two broadcast operands.
struct Zip2<T: Element, U: Element, V: Element, F> {
    name: String,
    a: Arc<dyn Node<T>>,
    b: Arc<dyn Node<U>>,
    grid: ChunkGrid,
    f: F,
    _v: PhantomData<fn() -> V>,
}

impl<T: Element, U: Element, V: Element, F: Fn(T, U) -> V + Send + Sync> PlanNode
    for Zip2<T, U, V, F>
{
    fn op(&self) -> String {
        self.name.clone()
    }
    fn dtype(&self) -> DType {
        V::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.a.as_ref(), self.b.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        max_block_bytes(&self.grid, V::DTYPE)
    }
}

impl<T: Element, U: Element, V: Element, F: Fn(T, U) -> V + Send + Sync> Node<V>
    for Zip2<T, U, V, F>
{
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, V>> {
        let nd = region.len();
        let shape = rshape(region);
        let a = self
            .a
            .region(&operand_region(self.a.grid().shape(), nd, region))?;
        let b = self
            .b
            .region(&operand_region(self.b.grid().shape(), nd, region))?;
        let (av, bv) = (broadcast_block(&a, &shape)?, broadcast_block(&b, &shape)?);
        Ok(Zip::from(&av)
            .and(&bv)
            .map_collect(|&x, &y| (self.f)(x, y))
            .into())
    }
}

/// `T = f(T, T)` over two broadcast operands, in place in an owned operand block when it has
/// the output's shape.
struct ZipSame<T: Element, F> {
    name: String,
    a: Arc<dyn Node<T>>,
    b: Arc<dyn Node<T>>,
    grid: ChunkGrid,
    f: F,
}

impl<T: Element, F: Fn(T, T) -> T + Send + Sync> PlanNode for ZipSame<T, F> {
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
        vec![self.a.as_ref(), self.b.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        max_block_bytes(&self.grid, T::DTYPE)
    }
}

impl<T: Element, F: Fn(T, T) -> T + Send + Sync> Node<T> for ZipSame<T, F> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let nd = region.len();
        let shape = rshape(region);
        let a = self
            .a
            .region(&operand_region(self.a.grid().shape(), nd, region))?;
        let b = self
            .b
            .region(&operand_region(self.b.grid().shape(), nd, region))?;
        if a.is_owned() && a.shape() == shape.as_slice() {
            let mut a = a.into_owned();
            let bv = broadcast_block(&b, &shape)?;
            Zip::from(&mut a)
                .and(&bv)
                .for_each(|x, &y| *x = (self.f)(*x, y));
            return Ok(a.into());
        }
        if b.is_owned() && b.shape() == shape.as_slice() {
            let mut b = b.into_owned();
            let av = broadcast_block(&a, &shape)?;
            Zip::from(&mut b)
                .and(&av)
                .for_each(|y, &x| *y = (self.f)(x, *y));
            return Ok(b.into());
        }
        let (av, bv) = (broadcast_block(&a, &shape)?, broadcast_block(&b, &shape)?);
        Ok(Zip::from(&av)
            .and(&bv)
            .map_collect(|&x, &y| (self.f)(x, y))
            .into())
    }
}

/// `where(cond, a, b)` with broadcasting of all three.
struct Select<T: Element> {
    cond: Arc<dyn Node<bool>>,
    a: Arc<dyn Node<T>>,
    b: Arc<dyn Node<T>>,
    grid: ChunkGrid,
}

impl<T: Element> PlanNode for Select<T> {
    fn op(&self) -> String {
        "where".into()
    }
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn inputs(&self) -> Vec<&dyn PlanNode> {
        vec![self.cond.as_ref(), self.a.as_ref(), self.b.as_ref()]
    }
    fn own_task_bytes(&self) -> usize {
        max_block_bytes(&self.grid, T::DTYPE)
    }
}

impl<T: Element> Node<T> for Select<T> {
    fn region(&self, region: &[Range<usize>]) -> Result<Block<'_, T>> {
        let nd = region.len();
        let shape = rshape(region);
        let c = self
            .cond
            .region(&operand_region(self.cond.grid().shape(), nd, region))?;
        let a = self
            .a
            .region(&operand_region(self.a.grid().shape(), nd, region))?;
        let b = self
            .b
            .region(&operand_region(self.b.grid().shape(), nd, region))?;
        let (cv, av, bv) = (
            broadcast_block(&c, &shape)?,
            broadcast_block(&a, &shape)?,
            broadcast_block(&b, &shape)?,
        );
        Ok(Zip::from(&cv)
            .and(&av)
            .and(&bv)
            .map_collect(|&c, &x, &y| if c { x } else { y })
            .into())
    }
}

impl<T: Element> ChunkedArray<T> {
    /// Applies `f` to every element, producing another element type (the blockwise primitive
    /// for one operand).
    pub fn map<U: Element>(
        &self,
        name: &str,
        f: impl Fn(T) -> U + Send + Sync + 'static,
    ) -> ChunkedArray<U> {
        ChunkedArray::from_node(Arc::new(Map {
            name: name.to_string(),
            input: Arc::clone(self.node()),
            f,
            _u: PhantomData,
        }))
    }

    /// Applies `f` to every element, keeping the element type (in place where it can).
    pub fn map_same(&self, name: &str, f: impl Fn(T) -> T + Send + Sync + 'static) -> Self {
        ChunkedArray::from_node(Arc::new(MapSame {
            name: name.to_string(),
            input: Arc::clone(self.node()),
            f,
        }))
    }

    /// The same array, whose computation fails with `what` (and the first offending value) if
    /// an element does not pass `ok`: for inputs NumPy refuses by their values, such as
    /// negative integer exponents.
    pub(crate) fn checked(
        &self,
        what: &str,
        ok: impl Fn(T) -> bool + Send + Sync + 'static,
    ) -> Self {
        ChunkedArray::from_node(Arc::new(Checked {
            input: Arc::clone(self.node()),
            what: what.to_string(),
            ok,
        }))
    }

    /// Combines two arrays elementwise with NumPy broadcasting (the blockwise primitive for two
    /// operands). The chunk grids are unified.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn zip_map<U: Element, V: Element>(
        &self,
        other: &ChunkedArray<U>,
        name: &str,
        f: impl Fn(T, U) -> V + Send + Sync + 'static,
    ) -> Result<ChunkedArray<V>> {
        let grid = ChunkGrid::broadcast(&[self.grid(), other.grid()])?;
        Ok(ChunkedArray::from_node(Arc::new(Zip2 {
            name: name.to_string(),
            a: shared(self.node()),
            b: shared(other.node()),
            grid,
            f,
            _v: PhantomData,
        })))
    }

    /// Combines two arrays of the same element type elementwise with broadcasting, in place
    /// where it can.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn zip_same(
        &self,
        other: &Self,
        name: &str,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
    ) -> Result<Self> {
        let grid = ChunkGrid::broadcast(&[self.grid(), other.grid()])?;
        Ok(ChunkedArray::from_node(Arc::new(ZipSame {
            name: name.to_string(),
            a: shared(self.node()),
            b: shared(other.node()),
            grid,
            f,
        })))
    }

    /// A binary operation against an array or a scalar on the right.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn binary(
        &self,
        rhs: impl Into<Operand<T>>,
        name: &str,
        f: impl Fn(T, T) -> T + Copy + Send + Sync + 'static,
    ) -> Result<Self> {
        match rhs.into() {
            Operand::Scalar(s) => Ok(self.map_same(name, move |a| f(a, s))),
            Operand::Array(b) => self.zip_same(&b, name, f),
        }
    }

    /// A comparison-like operation with a boolean result against an array or a scalar.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn predicate(
        &self,
        rhs: impl Into<Operand<T>>,
        name: &str,
        f: impl Fn(T, T) -> bool + Copy + Send + Sync + 'static,
    ) -> Result<ChunkedArray<bool>> {
        match rhs.into() {
            Operand::Scalar(s) => Ok(self.map(name, move |a| f(a, s))),
            Operand::Array(b) => self.zip_map(&b, name, f),
        }
    }

    /// `where(cond, a, b)`: elements of `a` where `cond` is true, of `b` elsewhere, all three
    /// broadcast together.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn where_(cond: &ChunkedArray<bool>, a: &Self, b: &Self) -> Result<Self> {
        let grid = ChunkGrid::broadcast(&[cond.grid(), a.grid(), b.grid()])?;
        Ok(ChunkedArray::from_node(Arc::new(Select {
            cond: shared(cond.node()),
            a: shared(a.node()),
            b: shared(b.node()),
            grid,
        })))
    }

    /// Casts to another element type as NumPy's `astype` does.
    pub fn astype<U: Element>(&self) -> ChunkedArray<U> {
        self.map(&format!("astype({})", U::DTYPE), |v| v.cast::<U>())
    }

    /// NaN test (always false for integers).
    pub fn isnan(&self) -> ChunkedArray<bool> {
        self.map("isnan", |v: T| v.is_nan())
    }
    /// Finite test (always true for integers).
    pub fn isfinite(&self) -> ChunkedArray<bool> {
        self.map("isfinite", |v: T| v.is_finite())
    }
    /// Elementwise minimum; NaN propagates, and of two equal values (0.0 and -0.0) the second
    /// is taken, as NumPy's `minimum` does.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn minimum(&self, rhs: impl Into<Operand<T>>) -> Result<Self> {
        self.binary(
            rhs,
            "minimum",
            |a, b| {
                if a.is_nan() || a < b {
                    a
                } else {
                    b
                }
            },
        )
    }
    /// Elementwise maximum; NaN propagates, and of two equal values (0.0 and -0.0) the second
    /// is taken, as NumPy's `maximum` does.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn maximum(&self, rhs: impl Into<Operand<T>>) -> Result<Self> {
        self.binary(
            rhs,
            "maximum",
            |a, b| {
                if a.is_nan() || a > b {
                    a
                } else {
                    b
                }
            },
        )
    }
    /// `minimum(maximum(self, lo), hi)` (NumPy's `clip`).
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn clip(&self, lo: impl Into<Operand<T>>, hi: impl Into<Operand<T>>) -> Result<Self> {
        self.maximum(lo)?.minimum(hi)
    }
}

impl<T: Num> ChunkedArray<T> {
    /// `-self`.
    pub fn neg(&self) -> Self {
        self.map_same("negative", Num::neg)
    }
    /// `|self|`.
    pub fn abs(&self) -> Self {
        self.map_same("absolute", Num::abs)
    }
    /// The sign of every element: -1, 0 or 1 (NaN stays NaN).
    pub fn sign(&self) -> Self {
        self.map_same("sign", Num::sign)
    }
}

impl<T: Integer> ChunkedArray<T> {
    /// Bitwise not (`~`).
    pub fn bitnot(&self) -> Self {
        self.map_same("invert", Integer::bitnot)
    }
}

macro_rules! float_ufuncs {
    ($($name:ident => $f:ident, $doc:literal;)*) => {
        impl<T: Float> ChunkedArray<T> {
            $(
                #[doc = $doc]
                pub fn $name(&self) -> Self {
                    self.map_same(stringify!($name), |v: T| v.apply(FloatFn::$f))
                }
            )*
        }
    };
}

float_ufuncs! {
    sqrt => Sqrt, "Square root.";
    exp => Exp, "Exponential.";
    log => Log, "Natural logarithm.";
    log1p => Log1p, "`log(1 + x)`, accurate near 0.";
    expm1 => Expm1, "`exp(x) - 1`, accurate near 0.";
    sin => Sin, "Sine.";
    cos => Cos, "Cosine.";
    tan => Tan, "Tangent.";
    floor => Floor, "Largest integer not above.";
    ceil => Ceil, "Smallest integer not below.";
    round => Round, "Round half to even, as NumPy's `round`.";
}

/// Binary methods against an array or a scalar on the right, each a ufunc on [`ChunkedArray::binary`]
/// (same element type out) or [`ChunkedArray::predicate`] (bool out).
macro_rules! binary_methods {
    ($bound:path => $out:ty, $via:ident; $($name:ident => $ufunc:literal, $f:expr, $doc:literal;)*) => {
        impl<T: $bound> ChunkedArray<T> {
            $(
                #[doc = $doc]
                ///
                /// # Errors
                /// Shapes that do not broadcast.
                pub fn $name(&self, rhs: impl Into<Operand<T>>) -> Result<$out> {
                    self.$via(rhs, $ufunc, $f)
                }
            )*
        }
    };
}

binary_methods! { Element => ChunkedArray<bool>, predicate;
    eq => "equal", |a, b| a == b, "`self == rhs`.";
    ne => "not_equal", |a, b| a != b, "`self != rhs`.";
    lt => "less", |a, b| a < b, "`self < rhs`.";
    le => "less_equal", |a, b| a <= b, "`self <= rhs`.";
    gt => "greater", |a, b| a > b, "`self > rhs`.";
    ge => "greater_equal", |a, b| a >= b, "`self >= rhs`.";
}

binary_methods! { Num => Self, binary;
    add => "add", Num::add, "`self + rhs` (wrapping for integers).";
    sub => "subtract", Num::sub, "`self - rhs`.";
    mul => "multiply", Num::mul, "`self * rhs`.";
    floor_div => "floor_divide", Num::floor_div, "`self // rhs` (Python's floor division).";
    rem => "remainder", Num::modulo, "`self % rhs` (Python's modulo: the sign of the divisor).";
    fmod => "fmod", Num::fmod, "C's `fmod`: the remainder with the sign of the dividend.";
}

impl<T: Num> ChunkedArray<T> {
    /// `self ** rhs`. An integer array to a negative integer power is an error, as in NumPy:
    /// a scalar exponent when the plan is built, an array exponent when its blocks are
    /// computed.
    ///
    /// # Errors
    /// Shapes that do not broadcast; a negative scalar exponent of an integer array.
    pub fn pow(&self, rhs: impl Into<Operand<T>>) -> Result<Self> {
        const NEGATIVE: &str = "integers to negative integer powers are not allowed";
        let rhs = match rhs.into() {
            Operand::Scalar(e) if T::DTYPE.is_int() && e < T::zero() => {
                return Err(Error::Invalid(format!("{NEGATIVE} (exponent {e})")))
            }
            Operand::Array(e) if T::DTYPE.is_int() => {
                Operand::Array(e.checked(NEGATIVE, |v| v >= T::zero()))
            }
            b => b,
        };
        self.binary(rhs, "power", Num::pow)
    }
}

binary_methods! { Integer => Self, binary;
    bitand => "bitwise_and", Integer::bitand, "Bitwise and.";
    bitor => "bitwise_or", Integer::bitor, "Bitwise or.";
    bitxor => "bitwise_xor", Integer::bitxor, "Bitwise exclusive or.";
    left_shift => "left_shift", Integer::shl, "`self << rhs`, as NumPy's `left_shift`.";
    right_shift => "right_shift", Integer::shr, "`self >> rhs`, as NumPy's `right_shift`.";
}

binary_methods! { Float => Self, binary;
    div => "true_divide", |a, b| a / b, "`self / rhs` (true division).";
    arctan2 => "arctan2", Float::atan2, "`atan2(self, rhs)` (NumPy's `arctan2`).";
}

impl ChunkedArray<bool> {
    /// Elementwise logical and.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn and(&self, rhs: impl Into<Operand<bool>>) -> Result<Self> {
        self.binary(rhs, "logical_and", |a, b| a & b)
    }
    /// Elementwise logical or.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn or(&self, rhs: impl Into<Operand<bool>>) -> Result<Self> {
        self.binary(rhs, "logical_or", |a, b| a | b)
    }
    /// Elementwise logical exclusive or.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn xor(&self, rhs: impl Into<Operand<bool>>) -> Result<Self> {
        self.binary(rhs, "logical_xor", |a, b| a ^ b)
    }
    /// Elementwise logical not.
    pub fn not(&self) -> Self {
        self.map_same("logical_not", |a| !a)
    }
}
