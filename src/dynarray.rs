//! [`DynArray`]: a chunked array whose element type is known only at run time, with NumPy's
//! type promotion. The expression language and the command line work on it; the typed
//! [`ChunkedArray`] does the work.

use crate::array::ChunkedArray;
use crate::chunks::{ChunkGrid, Chunks};
use crate::element::{DType, Element, Float, Num};
use crate::error::{Error, Result};
use crate::exec::ExecOptions;
use crate::ops::elementwise::Operand;
use crate::ops::reduce::{ArgExtreme, ReduceOpts};
use crate::ops::slice::SliceItem;
use std::fmt;
use std::path::Path;

/// A chunked array of any supported element type.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum DynArray {
    Bool(ChunkedArray<bool>),
    I8(ChunkedArray<i8>),
    I16(ChunkedArray<i16>),
    I32(ChunkedArray<i32>),
    I64(ChunkedArray<i64>),
    U8(ChunkedArray<u8>),
    U16(ChunkedArray<u16>),
    U32(ChunkedArray<u32>),
    U64(ChunkedArray<u64>),
    F32(ChunkedArray<f32>),
    F64(ChunkedArray<f64>),
}

/// Runs `$body` with `$a` bound to the typed array inside a [`DynArray`].
macro_rules! dispatch {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            DynArray::Bool($a) => $body,
            DynArray::I8($a) => $body,
            DynArray::I16($a) => $body,
            DynArray::I32($a) => $body,
            DynArray::I64($a) => $body,
            DynArray::U8($a) => $body,
            DynArray::U16($a) => $body,
            DynArray::U32($a) => $body,
            DynArray::U64($a) => $body,
            DynArray::F32($a) => $body,
            DynArray::F64($a) => $body,
        }
    };
}

/// Like `dispatch!`, for the numeric types only (bool is an error naming `$what`).
macro_rules! dispatch_num {
    ($v:expr, $what:expr, $a:ident => $body:expr) => {
        match $v {
            DynArray::Bool(_) => Err(Error::DType(format!(
                "{} is not supported for bool arrays",
                $what
            ))),
            DynArray::I8($a) => $body,
            DynArray::I16($a) => $body,
            DynArray::I32($a) => $body,
            DynArray::I64($a) => $body,
            DynArray::U8($a) => $body,
            DynArray::U16($a) => $body,
            DynArray::U32($a) => $body,
            DynArray::U64($a) => $body,
            DynArray::F32($a) => $body,
            DynArray::F64($a) => $body,
        }
    };
}

/// Like `dispatch!`, for the integer types only (anything else is an error naming `$what`).
macro_rules! dispatch_int {
    ($v:expr, $what:expr, $a:ident => $body:expr) => {
        match $v {
            DynArray::I8($a) => $body,
            DynArray::I16($a) => $body,
            DynArray::I32($a) => $body,
            DynArray::I64($a) => $body,
            DynArray::U8($a) => $body,
            DynArray::U16($a) => $body,
            DynArray::U32($a) => $body,
            DynArray::U64($a) => $body,
            other => Err(Error::DType(format!(
                "{} is not supported for {}",
                $what,
                other.dtype()
            ))),
        }
    };
}

/// Like `dispatch!`, for two arrays of the same dtype.
macro_rules! dispatch2 {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr) => {
        match ($x, $y) {
            (DynArray::Bool($a), DynArray::Bool($b)) => $body,
            (DynArray::I8($a), DynArray::I8($b)) => $body,
            (DynArray::I16($a), DynArray::I16($b)) => $body,
            (DynArray::I32($a), DynArray::I32($b)) => $body,
            (DynArray::I64($a), DynArray::I64($b)) => $body,
            (DynArray::U8($a), DynArray::U8($b)) => $body,
            (DynArray::U16($a), DynArray::U16($b)) => $body,
            (DynArray::U32($a), DynArray::U32($b)) => $body,
            (DynArray::U64($a), DynArray::U64($b)) => $body,
            (DynArray::F32($a), DynArray::F32($b)) => $body,
            (DynArray::F64($a), DynArray::F64($b)) => $body,
            (x, y) => Err(Error::DType(format!(
                "internal: operands of {} and {} were not promoted",
                x.dtype(),
                y.dtype()
            ))),
        }
    };
}

/// Like `dispatch!`, for the float types only (callers cast first).
macro_rules! dispatch_float {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            DynArray::F32($a) => $body,
            DynArray::F64($a) => $body,
            other => Err(Error::DType(format!(
                "internal: expected a float array, got {}",
                other.dtype()
            ))),
        }
    };
}

macro_rules! impl_from {
    ($($t:ty => $v:ident),*) => {
        $(impl From<ChunkedArray<$t>> for DynArray {
            fn from(a: ChunkedArray<$t>) -> Self {
                DynArray::$v(a)
            }
        })*
    };
}

impl_from!(bool => Bool, i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16,
    u32 => U32, u64 => U64, f32 => F32, f64 => F64);

/// A Python-style scalar of the expression language: weakly typed, so that `x + 1` keeps the
/// dtype of `x` (NumPy 2's rules, NEP 50).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// `True` / `False`.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
}

impl Scalar {
    /// The value as `f64`.
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => f64::from(u8::from(b)),
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The dtype this scalar takes when it meets an array of dtype `d`.
    fn weak_dtype(self, d: DType) -> DType {
        match self {
            Scalar::Bool(_) => d,
            Scalar::Int(_) => {
                if d == DType::Bool {
                    DType::I64
                } else {
                    d
                }
            }
            Scalar::Float(_) => {
                if d.is_float() {
                    d
                } else {
                    DType::F64
                }
            }
        }
    }

    /// The dtype of the scalar alone.
    pub fn dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::I64,
            Scalar::Float(_) => DType::F64,
        }
    }

    fn cast<T: Element>(self) -> T {
        match self {
            Scalar::Bool(b) => T::from_bool(b),
            Scalar::Int(i) => T::from_i64(i),
            Scalar::Float(f) => T::from_f64(f),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// An operand of a dynamic operation: an array or a weak scalar.
#[derive(Clone, Debug)]
pub enum DynOperand {
    /// An array.
    Array(DynArray),
    /// A scalar.
    Scalar(Scalar),
}

/// Binary operations of the expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Fmod,
    Minimum,
    Maximum,
    Arctan2,
    BitAnd,
    BitOr,
    BitXor,
    LeftShift,
    RightShift,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

impl BinaryOp {
    /// NumPy's name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "subtract",
            BinaryOp::Mul => "multiply",
            BinaryOp::Div => "true_divide",
            BinaryOp::FloorDiv => "floor_divide",
            BinaryOp::Mod => "remainder",
            BinaryOp::Pow => "power",
            BinaryOp::Fmod => "fmod",
            BinaryOp::BitAnd => "bitwise_and",
            BinaryOp::BitOr => "bitwise_or",
            BinaryOp::BitXor => "bitwise_xor",
            BinaryOp::LeftShift => "left_shift",
            BinaryOp::RightShift => "right_shift",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Arctan2 => "arctan2",
            BinaryOp::Eq => "equal",
            BinaryOp::Ne => "not_equal",
            BinaryOp::Lt => "less",
            BinaryOp::Le => "less_equal",
            BinaryOp::Gt => "greater",
            BinaryOp::Ge => "greater_equal",
            BinaryOp::And => "logical_and",
            BinaryOp::Or => "logical_or",
            BinaryOp::Xor => "logical_xor",
        }
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }

    /// The dtype in which the operation runs on operands promoted to `common`.
    fn compute_dtype(self, common: DType) -> Result<DType> {
        use BinaryOp::*;
        Ok(match self {
            Div | Arctan2 => {
                if common.is_float() {
                    common
                } else if self == Div {
                    DType::F64
                } else {
                    common.float_result()
                }
            }
            And | Or | Xor => DType::Bool,
            Sub if common == DType::Bool => {
                return Err(Error::DType(
                    "boolean subtract, the `-` operator, is not supported; use `^` or logical_xor"
                        .into(),
                ))
            }
            FloorDiv | Mod | Fmod | Pow | LeftShift | RightShift if common == DType::Bool => {
                DType::I8
            }
            BitAnd | BitOr | BitXor | LeftShift | RightShift if common.is_float() => {
                return Err(Error::DType(format!(
                    "{} is not supported for {common}",
                    self.name()
                )))
            }
            _ => common,
        })
    }
}

/// Unary operations of the expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Not,
    Invert,
    IsNan,
    IsFinite,
    Sqrt,
    Exp,
    Log,
    Log1p,
    Expm1,
    Sin,
    Cos,
    Tan,
    Floor,
    Ceil,
    Round,
}

/// Reductions of the expression language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ReduceOp {
    Sum,
    Prod,
    Mean,
    Var,
    Std,
    Min,
    Max,
    Argmin,
    Argmax,
    Any,
    All,
    NanSum,
    NanProd,
    NanMean,
    NanVar,
    NanStd,
    NanMin,
    NanMax,
    NanArgmin,
    NanArgmax,
}

impl ReduceOp {
    /// Looks a reduction up by its NumPy name.
    pub fn from_name(name: &str) -> Option<ReduceOp> {
        use ReduceOp::*;
        Some(match name {
            "sum" => Sum,
            "prod" => Prod,
            "mean" => Mean,
            "var" => Var,
            "std" => Std,
            "min" | "amin" => Min,
            "max" | "amax" => Max,
            "argmin" => Argmin,
            "argmax" => Argmax,
            "any" => Any,
            "all" => All,
            "nansum" => NanSum,
            "nanprod" => NanProd,
            "nanmean" => NanMean,
            "nanvar" => NanVar,
            "nanstd" => NanStd,
            "nanmin" => NanMin,
            "nanmax" => NanMax,
            "nanargmin" => NanArgmin,
            "nanargmax" => NanArgmax,
            _ => return None,
        })
    }

    /// Whether the reduction takes at most one axis (the arg-reductions).
    pub fn single_axis(self) -> bool {
        use ReduceOp::*;
        matches!(self, Argmin | Argmax | NanArgmin | NanArgmax)
    }

    /// Whether the reduction takes `ddof`.
    pub fn takes_ddof(self) -> bool {
        use ReduceOp::*;
        matches!(self, Var | Std | NanVar | NanStd)
    }
}

fn num_binary<T: Num>(a: &ChunkedArray<T>, b: Operand<T>, op: BinaryOp) -> Result<DynArray>
where
    DynArray: From<ChunkedArray<T>>,
{
    use BinaryOp::*;
    Ok(match op {
        Add => a.add(b)?.into(),
        Sub => a.sub(b)?.into(),
        Mul => a.mul(b)?.into(),
        FloorDiv => a.floor_div(b)?.into(),
        Mod => a.rem(b)?.into(),
        Fmod => a.fmod(b)?.into(),
        // NumPy refuses integer arrays to negative integer powers, whatever the base: the
        // typed `pow` checks the exponent.
        Pow => a.pow(b)?.into(),
        Minimum => a.minimum(b)?.into(),
        Maximum => a.maximum(b)?.into(),
        _ => {
            return Err(Error::Invalid(format!(
                "internal: {} is not arithmetic",
                op.name()
            )))
        }
    })
}

fn float_binary<T: Float>(a: &ChunkedArray<T>, b: Operand<T>, op: BinaryOp) -> Result<DynArray>
where
    DynArray: From<ChunkedArray<T>>,
{
    match op {
        BinaryOp::Div => Ok(a.div(b)?.into()),
        BinaryOp::Arctan2 => Ok(a.arctan2(b)?.into()),
        _ => num_binary(a, b, op),
    }
}

fn compare<T: Element>(a: &ChunkedArray<T>, b: Operand<T>, op: BinaryOp) -> Result<DynArray> {
    use BinaryOp::*;
    Ok(DynArray::Bool(match op {
        Eq => a.eq(b)?,
        Ne => a.ne(b)?,
        Lt => a.lt(b)?,
        Le => a.le(b)?,
        Gt => a.gt(b)?,
        _ => a.ge(b)?,
    }))
}

/// Sum and product run in a wider type for small integers, as NumPy's do.
fn accumulate_dtype(d: DType) -> DType {
    match d {
        DType::Bool | DType::I8 | DType::I16 | DType::I32 => DType::I64,
        DType::U8 | DType::U16 | DType::U32 => DType::U64,
        other => other,
    }
}

impl DynArray {
    /// The element type.
    pub fn dtype(&self) -> DType {
        dispatch!(self, a => a.dtype())
    }

    /// The chunk grid.
    pub fn grid(&self) -> &ChunkGrid {
        dispatch!(self, a => a.grid())
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.grid().shape()
    }

    /// Bytes of the whole array.
    pub fn nbytes(&self) -> usize {
        self.grid().len() * self.dtype().size()
    }

    /// The plan with the default options, as text ([`ChunkedArray::explain`]).
    pub fn explain(&self) -> String {
        dispatch!(self, a => a.explain())
    }

    /// The plan as it would run with `opts` ([`ChunkedArray::explain_with`]).
    pub fn explain_with(&self, opts: &ExecOptions) -> crate::plan::explain::Explain {
        dispatch!(self, a => a.explain_with(opts))
    }

    /// The plan node behind the array, whatever its element type.
    pub fn node(&self) -> &dyn crate::plan::PlanNode {
        dispatch!(self, a => a.node().as_ref())
    }

    /// Opens a `.npy` file (memory-mapped) with its own dtype.
    ///
    /// # Errors
    /// As [`ChunkedArray::from_npy`].
    pub fn from_npy(path: &Path, chunks: impl Into<Chunks>) -> Result<Self> {
        let dtype = crate::store::npy::NpyMap::open(path)?.header().dtype;
        let chunks = chunks.into();
        Ok(match dtype {
            DType::Bool => ChunkedArray::<bool>::from_npy(path, chunks)?.into(),
            DType::I8 => ChunkedArray::<i8>::from_npy(path, chunks)?.into(),
            DType::I16 => ChunkedArray::<i16>::from_npy(path, chunks)?.into(),
            DType::I32 => ChunkedArray::<i32>::from_npy(path, chunks)?.into(),
            DType::I64 => ChunkedArray::<i64>::from_npy(path, chunks)?.into(),
            DType::U8 => ChunkedArray::<u8>::from_npy(path, chunks)?.into(),
            DType::U16 => ChunkedArray::<u16>::from_npy(path, chunks)?.into(),
            DType::U32 => ChunkedArray::<u32>::from_npy(path, chunks)?.into(),
            DType::U64 => ChunkedArray::<u64>::from_npy(path, chunks)?.into(),
            DType::F32 => ChunkedArray::<f32>::from_npy(path, chunks)?.into(),
            DType::F64 => ChunkedArray::<f64>::from_npy(path, chunks)?.into(),
        })
    }

    /// Opens a Zarr array with its own dtype.
    ///
    /// # Errors
    /// As [`ChunkedArray::from_zarr`].
    pub fn from_zarr(path: &Path, chunks: impl Into<Chunks>) -> Result<Self> {
        let dtype = crate::store::zarr::info(path)?.dtype;
        let chunks = chunks.into();
        Ok(match dtype {
            DType::Bool => ChunkedArray::<bool>::from_zarr(path, chunks)?.into(),
            DType::I8 => ChunkedArray::<i8>::from_zarr(path, chunks)?.into(),
            DType::I16 => ChunkedArray::<i16>::from_zarr(path, chunks)?.into(),
            DType::I32 => ChunkedArray::<i32>::from_zarr(path, chunks)?.into(),
            DType::I64 => ChunkedArray::<i64>::from_zarr(path, chunks)?.into(),
            DType::U8 => ChunkedArray::<u8>::from_zarr(path, chunks)?.into(),
            DType::U16 => ChunkedArray::<u16>::from_zarr(path, chunks)?.into(),
            DType::U32 => ChunkedArray::<u32>::from_zarr(path, chunks)?.into(),
            DType::U64 => ChunkedArray::<u64>::from_zarr(path, chunks)?.into(),
            DType::F32 => ChunkedArray::<f32>::from_zarr(path, chunks)?.into(),
            DType::F64 => ChunkedArray::<f64>::from_zarr(path, chunks)?.into(),
        })
    }

    /// Writes the array as Zarr (v3, or v2 on request).
    ///
    /// # Errors
    /// As [`ChunkedArray::to_zarr`].
    pub fn to_zarr(
        &self,
        path: &Path,
        zopts: &crate::store::zarr::ZarrWriteOptions,
        opts: &ExecOptions,
    ) -> Result<()> {
        dispatch!(self, a => a.to_zarr(path, zopts, opts))
    }

    /// As [`ChunkedArray::to_zarr_part`].
    ///
    /// # Errors
    /// As [`ChunkedArray::to_zarr_part`].
    pub fn to_zarr_part(
        &self,
        path: &Path,
        zopts: &crate::store::zarr::ZarrWriteOptions,
        part: &crate::store::zarr::PartOptions,
        opts: &ExecOptions,
    ) -> Result<crate::store::zarr::PartReport> {
        dispatch!(self, a => a.to_zarr_part(path, zopts, part, opts))
    }

    /// Opens an HDF5 dataset with its own dtype.
    ///
    /// # Errors
    /// As [`ChunkedArray::from_hdf5`].
    #[cfg(feature = "hdf5")]
    pub fn from_hdf5(path: &Path, dataset: &str, chunks: impl Into<Chunks>) -> Result<Self> {
        let dtype = crate::store::hdf5::info(path, dataset)?.dtype;
        let c = chunks.into();
        Ok(match dtype {
            DType::Bool => ChunkedArray::<bool>::from_hdf5(path, dataset, c)?.into(),
            DType::I8 => ChunkedArray::<i8>::from_hdf5(path, dataset, c)?.into(),
            DType::I16 => ChunkedArray::<i16>::from_hdf5(path, dataset, c)?.into(),
            DType::I32 => ChunkedArray::<i32>::from_hdf5(path, dataset, c)?.into(),
            DType::I64 => ChunkedArray::<i64>::from_hdf5(path, dataset, c)?.into(),
            DType::U8 => ChunkedArray::<u8>::from_hdf5(path, dataset, c)?.into(),
            DType::U16 => ChunkedArray::<u16>::from_hdf5(path, dataset, c)?.into(),
            DType::U32 => ChunkedArray::<u32>::from_hdf5(path, dataset, c)?.into(),
            DType::U64 => ChunkedArray::<u64>::from_hdf5(path, dataset, c)?.into(),
            DType::F32 => ChunkedArray::<f32>::from_hdf5(path, dataset, c)?.into(),
            DType::F64 => ChunkedArray::<f64>::from_hdf5(path, dataset, c)?.into(),
        })
    }

    /// Writes the array as an HDF5 dataset.
    ///
    /// # Errors
    /// As [`ChunkedArray::to_hdf5`].
    #[cfg(feature = "hdf5")]
    pub fn to_hdf5(
        &self,
        path: &Path,
        dataset: &str,
        hopts: &crate::store::hdf5::Hdf5WriteOptions,
        opts: &ExecOptions,
    ) -> Result<()> {
        dispatch!(self, a => a.to_hdf5(path, dataset, hopts, opts))
    }

    /// A constant array of `dtype`.
    ///
    /// # Errors
    /// Invalid chunks, or an integer `value` outside an integer `dtype`'s range (NumPy 2's
    /// `OverflowError`: `full(2, 300, dtype=uint8)` does not wrap to 44).
    pub fn full(shape: &[usize], value: Scalar, dtype: DType, chunks: Chunks) -> Result<Self> {
        if let Scalar::Int(v) = value {
            if !int_fits(v, dtype) {
                return Err(Error::DType(format!(
                    "Python integer {v} out of bounds for {dtype}"
                )));
            }
        }
        Self::with_dtype(dtype, |d| match d {
            DType::Bool => {
                Ok(ChunkedArray::full(shape, value.cast::<bool>(), chunks.clone())?.into())
            }
            DType::I8 => Ok(ChunkedArray::full(shape, value.cast::<i8>(), chunks.clone())?.into()),
            DType::I16 => {
                Ok(ChunkedArray::full(shape, value.cast::<i16>(), chunks.clone())?.into())
            }
            DType::I32 => {
                Ok(ChunkedArray::full(shape, value.cast::<i32>(), chunks.clone())?.into())
            }
            DType::I64 => {
                Ok(ChunkedArray::full(shape, value.cast::<i64>(), chunks.clone())?.into())
            }
            DType::U8 => Ok(ChunkedArray::full(shape, value.cast::<u8>(), chunks.clone())?.into()),
            DType::U16 => {
                Ok(ChunkedArray::full(shape, value.cast::<u16>(), chunks.clone())?.into())
            }
            DType::U32 => {
                Ok(ChunkedArray::full(shape, value.cast::<u32>(), chunks.clone())?.into())
            }
            DType::U64 => {
                Ok(ChunkedArray::full(shape, value.cast::<u64>(), chunks.clone())?.into())
            }
            DType::F32 => {
                Ok(ChunkedArray::full(shape, value.cast::<f32>(), chunks.clone())?.into())
            }
            DType::F64 => {
                Ok(ChunkedArray::full(shape, value.cast::<f64>(), chunks.clone())?.into())
            }
        })
    }

    fn with_dtype(dtype: DType, f: impl Fn(DType) -> Result<DynArray>) -> Result<DynArray> {
        f(dtype)
    }

    /// A 0-d array holding `value` in `dtype`.
    ///
    /// # Errors
    /// Never in practice (a 0-d grid is always valid).
    pub fn scalar(value: Scalar, dtype: DType) -> Result<Self> {
        Self::full(&[], value, dtype, Chunks::Size(1))
    }

    /// The typed array inside, when its element type is `T`.
    ///
    /// ```
    /// use tessera::dynarray::DynArray;
    /// use tessera::ChunkedArray;
    /// let a: DynArray = ChunkedArray::<f32>::ones(&[3], 3)?.into();
    /// assert!(a.typed::<f32>().is_ok());
    /// assert!(a.typed::<f64>().unwrap_err().to_string().contains("float32"));
    /// # Ok::<(), tessera::Error>(())
    /// ```
    ///
    /// # Errors
    /// Another element type (both named).
    pub fn typed<T: Element>(&self) -> Result<ChunkedArray<T>> {
        let mut out: Option<ChunkedArray<T>> = None;
        dispatch!(self, x => {
            if let Some(v) = (x as &dyn std::any::Any).downcast_ref::<ChunkedArray<T>>() {
                out = Some(v.clone());
            }
        });
        out.ok_or_else(|| {
            Error::DType(format!(
                "expected an array of {}, got {}",
                T::DTYPE,
                self.dtype()
            ))
        })
    }

    /// Casts to `dtype` as NumPy's `astype` does (no node when the dtype already matches).
    pub fn astype(&self, dtype: DType) -> DynArray {
        if self.dtype() == dtype {
            return self.clone();
        }
        dispatch!(self, a => match dtype {
            DType::Bool => a.astype::<bool>().into(),
            DType::I8 => a.astype::<i8>().into(),
            DType::I16 => a.astype::<i16>().into(),
            DType::I32 => a.astype::<i32>().into(),
            DType::I64 => a.astype::<i64>().into(),
            DType::U8 => a.astype::<u8>().into(),
            DType::U16 => a.astype::<u16>().into(),
            DType::U32 => a.astype::<u32>().into(),
            DType::U64 => a.astype::<u64>().into(),
            DType::F32 => a.astype::<f32>().into(),
            DType::F64 => a.astype::<f64>().into(),
        })
    }

    /// A binary operation with NumPy's promotion (arrays promote with `result_type`, scalars
    /// are weak) and broadcasting.
    ///
    /// # Errors
    /// Shapes that do not broadcast, or an operation the dtypes do not support.
    pub fn binary(op: BinaryOp, lhs: &DynOperand, rhs: &DynOperand) -> Result<DynArray> {
        // A Python integer outside an integer array's range: comparisons are decided by its
        // sign (NumPy 2 compares exactly); anything else is an error, as NumPy 2's OverflowError.
        // (Only where the operation runs in that integer dtype: a true division or arctan2 of
        // integers runs in floats, which hold the integer, as NumPy's `i8 / 300` does.)
        let out_of_range = |a: &DynArray, s: &Scalar| match s {
            Scalar::Int(v)
                if a.dtype().is_int()
                    && !int_fits(*v, a.dtype())
                    && (op.is_comparison()
                        || op.compute_dtype(a.dtype()).is_ok_and(|d| d.is_int())) =>
            {
                Some(*v)
            }
            _ => None,
        };
        match (lhs, rhs) {
            (DynOperand::Array(a), DynOperand::Scalar(s))
            | (DynOperand::Scalar(s), DynOperand::Array(a)) => {
                if let Some(v) = out_of_range(a, s) {
                    let scalar_left = matches!(lhs, DynOperand::Scalar(_));
                    return if op.is_comparison() {
                        let above = v > 0; // the scalar is above every value of the dtype
                        let (lt, gt) = if scalar_left {
                            (!above, above)
                        } else {
                            (above, !above)
                        };
                        // lt: array < scalar holds everywhere (with the operands as written).
                        let value = match op {
                            BinaryOp::Lt | BinaryOp::Le => lt,
                            BinaryOp::Gt | BinaryOp::Ge => gt,
                            BinaryOp::Ne => true,
                            _ => false,
                        };
                        Ok(DynArray::Bool(
                            dispatch!(a, x => x.map("constant", move |_| value)),
                        ))
                    } else {
                        Err(Error::DType(format!(
                            "Python integer {v} out of bounds for {} in {}",
                            a.dtype(),
                            op.name()
                        )))
                    };
                }
            }
            _ => {}
        }
        let (a, b) = match (lhs, rhs) {
            (DynOperand::Array(a), DynOperand::Array(b)) => {
                (a.clone(), DynOperand::Array(b.clone()))
            }
            (DynOperand::Array(a), DynOperand::Scalar(s)) => (a.clone(), DynOperand::Scalar(*s)),
            (DynOperand::Scalar(s), DynOperand::Array(b)) => {
                // A scalar on the left: make it a 0-d array of the weak dtype, or of the float
                // dtype the operation runs in for integers (`300 / int8` is a float64 division,
                // in which 300 is no integer out of range).
                let d = s.weak_dtype(b.dtype());
                let d = match op.compute_dtype(d) {
                    Ok(run) if d.is_int() && run.is_float() && !op.is_comparison() => run,
                    _ => d,
                };
                (Self::scalar(*s, d)?, DynOperand::Array(b.clone()))
            }
            (DynOperand::Scalar(x), DynOperand::Scalar(y)) => {
                let d = DType::promote(x.dtype(), y.dtype());
                (Self::scalar(*x, d)?, DynOperand::Scalar(*y))
            }
        };
        let common = match &b {
            DynOperand::Array(b) => DType::promote(a.dtype(), b.dtype()),
            DynOperand::Scalar(s) => s.weak_dtype(a.dtype()),
        };
        let run = op.compute_dtype(common)?;
        let run = if op.is_comparison() { common } else { run };
        let a = a.astype(run);
        match b {
            DynOperand::Array(b) => {
                let b = b.astype(run);
                Self::binary_same(op, &a, BOperand::Array(&b))
            }
            DynOperand::Scalar(s) => Self::binary_same(op, &a, BOperand::Scalar(s)),
        }
    }

    fn binary_same(op: BinaryOp, a: &DynArray, b: BOperand<'_>) -> Result<DynArray> {
        use BinaryOp::*;
        macro_rules! operand {
            ($a:ident, $b:expr) => {
                match $b {
                    BOperand::Scalar(s) => Operand::Scalar(s.cast()),
                    BOperand::Array(x) => Operand::Array(Self::same_as($a, x)?),
                }
            };
        }
        if op.is_comparison() {
            return dispatch!(a, x => compare(x, operand!(x, b), op));
        }
        match op {
            And | Or | Xor => match a {
                DynArray::Bool(x) => {
                    let o = operand!(x, b);
                    Ok(DynArray::Bool(match op {
                        And => x.and(o)?,
                        Or => x.or(o)?,
                        _ => x.xor(o)?,
                    }))
                }
                other => Err(Error::DType(format!(
                    "{} needs bool operands, got {}",
                    op.name(),
                    other.dtype()
                ))),
            },
            Div | Arctan2 => dispatch_float!(a, x => float_binary(x, operand!(x, b), op)),
            BitAnd | BitOr | BitXor => match a {
                DynArray::Bool(x) => {
                    let o = operand!(x, b);
                    Ok(DynArray::Bool(match op {
                        BitAnd => x.and(o)?,
                        BitOr => x.or(o)?,
                        _ => x.xor(o)?,
                    }))
                }
                other => dispatch_int!(other, op.name(), x => {
                    let o = operand!(x, b);
                    Ok(match op {
                        BitAnd => x.bitand(o)?,
                        BitOr => x.bitor(o)?,
                        _ => x.bitxor(o)?,
                    }
                    .into())
                }),
            },
            LeftShift | RightShift => dispatch_int!(a, op.name(), x => {
                let o = operand!(x, b);
                Ok(if op == LeftShift { x.left_shift(o)? } else { x.right_shift(o)? }.into())
            }),
            Add | Mul if a.dtype() == DType::Bool => match a {
                DynArray::Bool(x) => {
                    let o = operand!(x, b);
                    Ok(DynArray::Bool(if op == Add { x.or(o)? } else { x.and(o)? }))
                }
                _ => unreachable_dtype(),
            },
            Minimum | Maximum if a.dtype() == DType::Bool => match a {
                DynArray::Bool(x) => {
                    let o = operand!(x, b);
                    Ok(DynArray::Bool(if op == Minimum {
                        x.minimum(o)?
                    } else {
                        x.maximum(o)?
                    }))
                }
                _ => unreachable_dtype(),
            },
            _ => dispatch_num!(a, op.name(), x => num_binary(x, operand!(x, b), op)),
        }
    }

    /// The typed array inside `other`, which must have the element type of `like`.
    fn same_as<T: Element>(_like: &ChunkedArray<T>, other: &DynArray) -> Result<ChunkedArray<T>> {
        other.typed::<T>()
    }

    /// A unary operation; float functions of integers run in NumPy's float type for them.
    ///
    /// # Errors
    /// An operation the dtype does not support (negating a bool).
    pub fn unary(&self, op: UnaryOp) -> Result<DynArray> {
        use crate::element::FloatFn;
        use UnaryOp::*;
        let ff = |f: FloatFn| -> Result<DynArray> {
            let x = self.astype(self.dtype().float_result());
            dispatch_float!(&x, a => Ok(a.map_same(f.name(), move |v| v.apply(f)).into()))
        };
        let int_identity = |f: FloatFn| -> Result<DynArray> {
            if self.dtype().is_float() {
                ff(f)
            } else {
                Ok(self.clone())
            }
        };
        match op {
            Neg => match self {
                DynArray::Bool(_) => Err(Error::DType(
                    "boolean negative, the `-` operator, is not supported; use `~` or logical_not"
                        .into(),
                )),
                other => dispatch_num!(other, "negative", a => Ok(a.neg().into())),
            },
            Abs => match self {
                DynArray::Bool(_) => Ok(self.clone()),
                other => dispatch_num!(other, "absolute", a => Ok(a.abs().into())),
            },
            Sign => dispatch_num!(self, "sign", a => Ok(a.sign().into())),
            Invert => match self {
                DynArray::Bool(a) => Ok(DynArray::Bool(a.not())),
                other => dispatch_int!(other, "invert (~)", a => Ok(a.bitnot().into())),
            },
            Not => Ok(DynArray::Bool(match self {
                DynArray::Bool(a) => a.not(),
                other => dispatch!(other, a => a.map("logical_not", |v| !v.truthy())),
            })),
            IsNan => Ok(DynArray::Bool(dispatch!(self, a => a.isnan()))),
            IsFinite => Ok(DynArray::Bool(dispatch!(self, a => a.isfinite()))),
            Sqrt => ff(FloatFn::Sqrt),
            Exp => ff(FloatFn::Exp),
            Log => ff(FloatFn::Log),
            Log1p => ff(FloatFn::Log1p),
            Expm1 => ff(FloatFn::Expm1),
            Sin => ff(FloatFn::Sin),
            Cos => ff(FloatFn::Cos),
            Tan => ff(FloatFn::Tan),
            Floor => int_identity(FloatFn::Floor),
            Ceil => int_identity(FloatFn::Ceil),
            Round => int_identity(FloatFn::Round),
        }
    }

    /// `where(cond, a, b)`: `cond` is cast to bool, `a` and `b` promoted together.
    ///
    /// # Errors
    /// Shapes that do not broadcast.
    pub fn select(cond: &DynArray, a: &DynOperand, b: &DynOperand) -> Result<DynArray> {
        let c = match cond.astype(DType::Bool) {
            DynArray::Bool(c) => c,
            _ => return unreachable_dtype(),
        };
        let (da, db) = (operand_dtype(a), operand_dtype(b));
        let d = match (a, b) {
            (DynOperand::Scalar(s), DynOperand::Array(_)) => s.weak_dtype(db),
            (DynOperand::Array(_), DynOperand::Scalar(s)) => s.weak_dtype(da),
            _ => DType::promote(da, db),
        };
        let a = operand_array(a, d)?;
        let b = operand_array(b, d)?;
        dispatch2!(&a, &b, x, y => Ok(ChunkedArray::where_(&c, x, y)?.into()))
    }

    /// A reduction with NumPy's result types (`sum` of small integers in 64 bits, `mean` of
    /// integers in `float64`).
    ///
    /// # Errors
    /// An axis out of range, several axes for an arg-reduction, or an empty reduction without
    /// identity.
    pub fn reduce(&self, op: ReduceOp, opts: ReduceOpts, ddof: f64) -> Result<DynArray> {
        use ReduceOp::*;
        if op.single_axis() && opts.axis.as_ref().is_some_and(|a| a.len() != 1) {
            return Err(Error::Invalid(
                format!(
                    "{op:?} takes a single axis or none, got {:?}",
                    opts.axis.unwrap_or_default()
                )
                .to_lowercase(),
            ));
        }
        match op {
            Sum | Prod | NanSum | NanProd => {
                let x = self.astype(accumulate_dtype(self.dtype()));
                dispatch_num!(&x, "sum", a => Ok(match op {
                    Sum => a.sum(opts)?,
                    Prod => a.prod(opts)?,
                    NanSum => a.nansum(opts)?,
                    _ => a.nanprod(opts)?,
                }.into()))
            }
            Mean | Var | Std | NanMean | NanVar | NanStd => {
                let skip = matches!(op, NanMean | NanVar | NanStd);
                if self.dtype() == DType::F32 {
                    dispatch!(self, a => Ok(match op {
                        Mean | NanMean => a.mean_as::<f32>(opts, skip)?,
                        Var | NanVar => a.var_as::<f32>(opts, ddof, skip)?,
                        _ => a.std_as::<f32>(opts, ddof, skip)?,
                    }.into()))
                } else {
                    dispatch!(self, a => Ok(match op {
                        Mean | NanMean => a.mean_as::<f64>(opts, skip)?,
                        Var | NanVar => a.var_as::<f64>(opts, ddof, skip)?,
                        _ => a.std_as::<f64>(opts, ddof, skip)?,
                    }.into()))
                }
            }
            Min => dispatch!(self, a => Ok(a.min(opts)?.into())),
            Max => dispatch!(self, a => Ok(a.max(opts)?.into())),
            NanMin => dispatch!(self, a => Ok(a.nanmin(opts)?.into())),
            NanMax => dispatch!(self, a => Ok(a.nanmax(opts)?.into())),
            Argmin => {
                dispatch!(self, a => Ok(a.reduce(ArgExtreme::new(false, false), opts)?.into()))
            }
            Argmax => {
                dispatch!(self, a => Ok(a.reduce(ArgExtreme::new(true, false), opts)?.into()))
            }
            NanArgmin => {
                dispatch!(self, a => Ok(a.reduce(ArgExtreme::new(false, true), opts)?.into()))
            }
            NanArgmax => {
                dispatch!(self, a => Ok(a.reduce(ArgExtreme::new(true, true), opts)?.into()))
            }
            Any => dispatch!(self, a => Ok(a.any(opts)?.into())),
            All => dispatch!(self, a => Ok(a.all(opts)?.into())),
        }
    }

    /// NumPy's `cumsum`, `cumprod`, `nancumsum` and `nancumprod` along `axis` (`None`: over the
    /// array flattened in C order), accumulating as NumPy does: small integers and bools in
    /// int64 (unsigned in uint64), floats in their own type.
    ///
    /// # Errors
    /// An axis out of range.
    pub fn scan(&self, op: crate::ops::scan::ScanOp, axis: Option<isize>) -> Result<DynArray> {
        let x = self.astype(accumulate_dtype(self.dtype()));
        let (x, axis) = match axis {
            Some(a) => (x, a),
            None => (x.reshape(&[-1])?, 0),
        };
        dispatch_num!(&x, op.name(), a => Ok(a.scan(op, axis)?.into()))
    }

    /// NumPy basic indexing.
    ///
    /// # Errors
    /// As [`ChunkedArray::slice`].
    pub fn slice(&self, items: &[SliceItem]) -> Result<DynArray> {
        dispatch!(self, a => Ok(a.slice(items)?.into()))
    }

    /// Permutes the axes (reverses them when `axes` is `None`).
    ///
    /// # Errors
    /// As [`ChunkedArray::permute`].
    pub fn transpose(&self, axes: Option<&[isize]>) -> Result<DynArray> {
        match axes {
            None => Ok(dispatch!(self, a => a.t().into())),
            Some(ax) => dispatch!(self, a => Ok(a.permute(ax)?.into())),
        }
    }

    /// A new shape.
    ///
    /// # Errors
    /// As [`ChunkedArray::reshape`].
    pub fn reshape(&self, shape: &[isize]) -> Result<DynArray> {
        dispatch!(self, a => Ok(a.reshape(shape)?.into()))
    }

    /// A new chunk grid.
    ///
    /// # Errors
    /// Invalid chunks.
    pub fn rechunk(&self, chunks: Chunks) -> Result<DynArray> {
        dispatch!(self, a => Ok(a.rechunk(chunks)?.into()))
    }

    /// Joins arrays along an axis (promoted to a common dtype); with `stack`, along a new axis.
    ///
    /// # Errors
    /// As [`ChunkedArray::concatenate`] and [`ChunkedArray::stack`].
    pub fn concatenate(arrays: &[DynArray], axis: isize, stack: bool) -> Result<DynArray> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::Invalid("need at least one array to concatenate".into()))?;
        let d = arrays
            .iter()
            .fold(first.dtype(), |d, a| DType::promote(d, a.dtype()));
        let cast: Vec<DynArray> = arrays.iter().map(|a| a.astype(d)).collect();
        macro_rules! join {
            ($v:ident, $t:ty) => {{
                let typed: Vec<ChunkedArray<$t>> = cast
                    .iter()
                    .filter_map(|a| match a {
                        DynArray::$v(x) => Some(x.clone()),
                        _ => None,
                    })
                    .collect();
                Ok(if stack {
                    ChunkedArray::stack(&typed, axis)?
                } else {
                    ChunkedArray::concatenate(&typed, axis)?
                }
                .into())
            }};
        }
        match d {
            DType::Bool => join!(Bool, bool),
            DType::I8 => join!(I8, i8),
            DType::I16 => join!(I16, i16),
            DType::I32 => join!(I32, i32),
            DType::I64 => join!(I64, i64),
            DType::U8 => join!(U8, u8),
            DType::U16 => join!(U16, u16),
            DType::U32 => join!(U32, u32),
            DType::U64 => join!(U64, u64),
            DType::F32 => join!(F32, f32),
            DType::F64 => join!(F64, f64),
        }
    }

    /// Streams the array into a `.npy` file.
    ///
    /// # Errors
    /// As [`ChunkedArray::to_npy_with`].
    pub fn to_npy(&self, path: &Path, overwrite: bool, opts: &ExecOptions) -> Result<()> {
        dispatch!(self, a => a.to_npy_with(path, overwrite, opts))
    }

    /// Computes the array and formats it as NumPy's `array2string(a, separator=", ")` does
    /// with each element written as Python's `repr` writes it (`3000.0`, `1e-05`, `nan`,
    /// `True`; float32 as NumPy's `str`), without wrapping lines: nested lists, one row per
    /// line, a blank line between the blocks of three or more axes, `[]` for an empty array.
    /// An array of more than 1000 elements is summarized as NumPy summarizes it: an axis
    /// longer than 6 shows its first 3 and last 3 items, with `...` between.
    ///
    /// # Errors
    /// Any error of the plan.
    pub fn compute_to_string(&self, opts: &ExecOptions) -> Result<String> {
        dispatch!(self, a => {
            let v = a.compute_with(opts)?;
            let v = v.mapv(py_format);
            Ok(if v.ndim() == 0 {
                v.iter().next().cloned().unwrap_or_default()
            } else if v.is_empty() {
                // NumPy prints every empty array so, whatever its shape.
                "[]".to_string()
            } else {
                let mut out = String::new();
                nested(v.view(), v.len() > SUMMARY_THRESHOLD, 0, &mut out);
                out
            })
        })
    }

    /// Computes the array into memory as `f64` values (for tests and small results).
    ///
    /// # Errors
    /// Any error of the plan.
    pub fn compute_f64(&self, opts: &ExecOptions) -> Result<ndarray::ArrayD<f64>> {
        match self.astype(DType::F64) {
            DynArray::F64(a) => a.compute_with(opts),
            _ => unreachable_dtype(),
        }
    }
}

/// Elements above which NumPy prints an array summarized (its `threshold`).
const SUMMARY_THRESHOLD: usize = 1000;
/// Items NumPy prints at each end of a summarized axis (its `edgeitems`).
const EDGE_ITEMS: usize = 3;

/// Writes the formatted elements `v` (at least one axis, not empty) as nested lists at
/// `depth` brackets in, as [`DynArray::compute_to_string`] describes; `summarize`: only the
/// edges of long axes.
fn nested(v: ndarray::ArrayViewD<String>, summarize: bool, depth: usize, out: &mut String) {
    let n = v.len_of(ndarray::Axis(0));
    let shown: Vec<Option<usize>> = if summarize && n > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS)
            .map(Some)
            .chain([None])
            .chain((n - EDGE_ITEMS..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    let sep = if v.ndim() == 1 {
        ", ".to_string()
    } else {
        format!(",{}{}", "\n".repeat(v.ndim() - 1), " ".repeat(depth + 1))
    };
    out.push('[');
    for (k, i) in shown.into_iter().enumerate() {
        if k > 0 {
            out.push_str(&sep);
        }
        match i {
            None => out.push_str("..."),
            Some(i) => {
                let item = v.index_axis(ndarray::Axis(0), i);
                if item.ndim() == 0 {
                    out.push_str(item.iter().next().map_or("", String::as_str));
                } else {
                    nested(item, summarize, depth + 1, out);
                }
            }
        }
    }
    out.push(']');
}

/// Formats a value as Python does: `True`/`False` for bools, floats as `repr` writes them
/// ([`py_float`]), integers as they are.
fn py_format<T: Element>(x: T) -> String {
    match T::DTYPE {
        DType::Bool => if x.truthy() { "True" } else { "False" }.to_string(),
        DType::F64 => py_float(x.to_f64(), false),
        DType::F32 => py_float(x.to_f64(), true),
        _ => format!("{x}"),
    }
}

/// A float as Python's `repr` and NumPy's scalars write it: the shortest digits that read
/// back to the value (of float32 for `single`), always with a point or an exponent (`1.0`,
/// `0.0001`, `1e-05`, `1e+16`, `1.2345678901234568e+17`; float32 from `1e+06` on), and `nan`,
/// `inf`, `-inf`, `-0.0`.
fn py_float(v: f64, single: bool) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` writes the shortest digits that read back as `d.ddde-N`; where two such strings
    // are as near, it may take the upper one, while Python and NumPy take the even one (the
    // exact value 2033936915025564.25 is `...564.2` there). So the value is written again
    // correctly rounded to that many digits, which breaks ties to even, and that is kept if
    // it reads back (below a power of two, the nearest may not: 2^-24 is `...063e-08`).
    let shortest = if single {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    let digits = shortest
        .split('e')
        .next()
        .unwrap_or("")
        .bytes()
        .filter(u8::is_ascii_digit)
        .count()
        .max(1);
    let rounded = if single {
        format!("{:.*e}", digits - 1, v as f32)
    } else {
        format!("{:.*e}", digits - 1, v)
    };
    let reads_back = if single {
        rounded.parse::<f32>().is_ok_and(|r| r == v as f32)
    } else {
        rounded.parse::<f64>().is_ok_and(|r| r == v)
    };
    let sci = if reads_back { rounded } else { shortest };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Python writes positions -4 < exp + 1 <= 16 of the point in full, NumPy a float32 from
    // 1e-4 up to 1e6; the rest with an exponent of at least two digits.
    let positional = if single {
        v == 0.0 || (1e-4..1e6).contains(&v.abs())
    } else {
        (-4..16).contains(&exp)
    };
    if !positional {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let sign = if mantissa.starts_with('-') { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let (whole, frac) = if exp >= 0 {
        let point = exp as usize + 1;
        let whole = format!("{:0<point$}", &digits[..point.min(digits.len())]);
        let frac = digits.get(point..).unwrap_or("").to_string();
        (whole, frac)
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        ("0".to_string(), format!("{zeros}{digits}"))
    };
    let frac = if frac.is_empty() {
        "0".to_string()
    } else {
        frac
    };
    format!("{sign}{whole}.{frac}")
}

/// Borrowed right operand of a same-dtype binary operation.
enum BOperand<'a> {
    Array(&'a DynArray),
    Scalar(Scalar),
}

fn operand_dtype(o: &DynOperand) -> DType {
    match o {
        DynOperand::Array(a) => a.dtype(),
        DynOperand::Scalar(s) => s.dtype(),
    }
}

fn operand_array(o: &DynOperand, d: DType) -> Result<DynArray> {
    match o {
        DynOperand::Array(a) => Ok(a.astype(d)),
        DynOperand::Scalar(s) => DynArray::scalar(*s, d),
    }
}

/// Whether `v` is representable in the integer dtype `d` (always, for other dtypes).
pub(crate) fn int_fits(v: i64, d: DType) -> bool {
    int_range(d).is_none_or(|(lo, hi)| (lo..=hi).contains(&i128::from(v)))
}

/// Whether the integer part of the finite `v` is representable in the integer dtype `d`
/// (always, for other dtypes).
pub(crate) fn float_fits(v: f64, d: DType) -> bool {
    // The bounds are 0, -2^k or 2^k - 1: lo and hi + 1 are exact in f64.
    int_range(d).is_none_or(|(lo, hi)| {
        let t = v.trunc();
        t >= lo as f64 && t < (hi + 1) as f64
    })
}

/// The least and greatest values of an integer dtype; `None` for the others.
fn int_range(d: DType) -> Option<(i128, i128)> {
    Some(match d {
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::I32 => (i32::MIN.into(), i32::MAX.into()),
        DType::I64 => (i64::MIN.into(), i64::MAX.into()),
        DType::U8 => (0, u8::MAX.into()),
        DType::U16 => (0, u16::MAX.into()),
        DType::U32 => (0, u32::MAX.into()),
        DType::U64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

fn unreachable_dtype<T>() -> Result<T> {
    Err(Error::DType(
        "internal: unexpected dtype after promotion".into(),
    ))
}

impl fmt::Display for DynArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        dispatch!(self, a => fmt::Display::fmt(a, f))
    }
}

#[cfg(test)]
mod tests {
    use super::py_float;

    /// The strings Python's `repr` gives (NumPy's `repr(np.float32(v))` for the float32 ones).
    #[test]
    fn floats_print_as_python_writes_them() {
        for (v, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (268439426.954, "268439426.954"),
            (2033936915025564.0 + 0.25, "2033936915025564.2"),
            (-0.00125, "-0.00125"),
            (2f64.powi(-24), "5.960464477539063e-08"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(py_float(v, false), want, "{v:e}");
        }
        for (v, want) in [
            (1.0f32 / 3.0, "0.33333334"),
            (1e-5, "1e-05"),
            (3e38, "3e+38"),
            (16777216.0, "1.6777216e+07"),
            (999999.94, "999999.94"),
            (1e6, "1e+06"),
            (123456.7, "123456.7"),
            (1e-4, "1e-04"),
            (0.00012, "0.00012"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (2f32.powi(-12), "0.00024414062"),
            (341632.0 + 0.625, "341632.62"),
        ] {
            assert_eq!(py_float(f64::from(v), true), want, "{v:e}");
        }
    }
}
