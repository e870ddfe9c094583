//! Element types: the [`Element`] trait, the runtime [`DType`] and the arithmetic traits.

use crate::error::{Error, Result};
use std::fmt;

/// The element type of an array, known at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// `bool`, one byte, 0 or 1.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl DType {
    /// Every dtype, in promotion order of kinds (bool, signed, unsigned, float).
    pub const ALL: [DType; 11] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
    ];

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// NumPy's name of the dtype (`float64`, `int32`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Parses a NumPy dtype name (`float64`, `f8`, `int32`, `i4`, `bool`, `u1`, ...).
    ///
    /// # Errors
    /// A name that is not one of the supported dtypes.
    pub fn from_name(name: &str) -> Result<DType> {
        let d = match name.trim() {
            "bool" | "b1" | "?" => DType::Bool,
            "int8" | "i1" => DType::I8,
            "int16" | "i2" => DType::I16,
            "int32" | "i4" => DType::I32,
            "int64" | "i8" | "int" => DType::I64,
            "uint8" | "u1" => DType::U8,
            "uint16" | "u2" => DType::U16,
            "uint32" | "u4" => DType::U32,
            "uint64" | "u8" => DType::U64,
            "float32" | "f4" | "single" => DType::F32,
            "float64" | "f8" | "double" | "float" => DType::F64,
            other => {
                return Err(Error::DType(format!(
                    "unknown dtype {other:?}; supported: bool, int8..int64, uint8..uint64, float32, float64"
                )))
            }
        };
        Ok(d)
    }

    /// Whether the dtype is `f32` or `f64`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Whether the dtype is a signed integer.
    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64)
    }

    /// Whether the dtype is an unsigned integer.
    pub fn is_unsigned_int(self) -> bool {
        matches!(self, DType::U8 | DType::U16 | DType::U32 | DType::U64)
    }

    /// Whether the dtype is any integer.
    pub fn is_int(self) -> bool {
        self.is_signed_int() || self.is_unsigned_int()
    }

    /// The `.npy` type character (`b`, `i`, `u`, `f`).
    pub fn kind_char(self) -> char {
        match self {
            DType::Bool => 'b',
            d if d.is_signed_int() => 'i',
            d if d.is_unsigned_int() => 'u',
            _ => 'f',
        }
    }

    /// NumPy's result type of a binary operation on arrays of dtypes `a` and `b`
    /// (`np.result_type`): bool < integers < floats; a signed and an unsigned integer meet in a
    /// signed integer wide enough for both, and `int64` with `uint64` gives `float64`.
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        if a == Bool {
            return b;
        }
        if b == Bool {
            return a;
        }
        if a.is_float() || b.is_float() {
            let fa = if a.is_float() {
                a.size()
            } else {
                int_float_size(a)
            };
            let fb = if b.is_float() {
                b.size()
            } else {
                int_float_size(b)
            };
            return if fa.max(fb) <= 4 { F32 } else { F64 };
        }
        let (s, u) = match (a.is_signed_int(), b.is_signed_int()) {
            (true, true) | (false, false) => {
                return if a.size() >= b.size() { a } else { b };
            }
            (true, false) => (a, b),
            (false, true) => (b, a),
        };
        if s.size() > u.size() {
            return s;
        }
        match u.size() {
            1 => I16,
            2 => I32,
            4 => I64,
            _ => F64,
        }
    }

    /// The float dtype NumPy uses for a float function (`sqrt`, `exp`, true division) of this
    /// dtype. Small integers go to `float32` (NumPy would use `float16`, which tessera lacks).
    pub fn float_result(self) -> DType {
        match self {
            DType::F32 => DType::F32,
            DType::Bool | DType::I8 | DType::U8 | DType::I16 | DType::U16 => DType::F32,
            _ => DType::F64,
        }
    }
}

fn int_float_size(d: DType) -> usize {
    // The float an integer promotes to when it meets a float: int8/16 fit float32, wider ints need float64.
    if d.size() <= 2 {
        4
    } else {
        8
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A type that can be an element of a [`ChunkedArray`](crate::ChunkedArray).
///
/// Implemented for `bool`, `i8..i64`, `u8..u64`, `f32` and `f64`. Conversions between elements
/// follow NumPy's `astype` wherever NumPy defines the result: integers wrap, floats truncate
/// toward zero. A float outside the target integer's range (or NaN) is undefined in NumPy,
/// which warns and gives what the processor gives (`-1.0` to `uint8` is 255 on x86-64); here
/// it saturates instead (0, `255`; NaN gives 0), as Rust's `as` does, the same on every
/// machine.
pub trait Element:
    Copy + Send + Sync + Default + PartialEq + PartialOrd + fmt::Debug + fmt::Display + 'static
{
    /// The runtime dtype of this type.
    const DTYPE: DType;
    /// Reinterprets native-endian bytes as elements, checking length, alignment and (for `bool`)
    /// that every byte is 0 or 1.
    ///
    /// # Errors
    /// Bytes whose length or alignment do not fit, or invalid bool bytes.
    fn from_bytes(bytes: &[u8]) -> Result<&[Self]>;
    /// The bytes of a slice of elements, native-endian.
    fn to_bytes(values: &[Self]) -> &[u8];
    /// Converts from `f64` as NumPy's `astype` does.
    fn from_f64(v: f64) -> Self;
    /// Converts from `i64` as NumPy's `astype` does.
    fn from_i64(v: i64) -> Self;
    /// Converts from `u64` as NumPy's `astype` does.
    fn from_u64(v: u64) -> Self;
    /// Converts from `bool`.
    fn from_bool(v: bool) -> Self;
    /// Converts to `f64` (exact for every type but the widest integers).
    fn to_f64(self) -> f64;
    /// Converts this value to another element type as NumPy's `astype` does.
    fn cast<U: Element>(self) -> U;
    /// Whether the value is NaN (always false for integers and bool).
    fn is_nan(self) -> bool;
    /// Whether the value is finite (always true for integers and bool).
    fn is_finite(self) -> bool;
    /// Whether the value is non-zero (its truth value).
    fn truthy(self) -> bool;
    /// The same value with its bytes swapped (for big-endian files).
    fn swap_bytes(self) -> Self;
    /// The smallest value of the type (negative infinity for floats).
    fn min_value() -> Self;
    /// The largest value of the type (infinity for floats).
    fn max_value() -> Self;
}

/// The bytes of a slice of elements, to fill in place, for every type but `bool` (`None`): a
/// reader can then write raw file bytes straight into a block, since every byte pattern is a
/// valid integer or float.
pub(crate) fn plain_bytes_mut<T: Element>(values: &mut [T]) -> Option<&mut [u8]> {
    if T::DTYPE == DType::Bool {
        return None;
    }
    // SAFETY: the bytes are exactly the elements' memory, borrowed mutably for as long as the
    // slice; T is a plain integer or float (bool was refused), for which every byte pattern is
    // a valid value.
    Some(unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(values),
        )
    })
}

macro_rules! impl_num_element {
    ($t:ty, $d:expr, $float:tt, $via:ident) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn from_bytes(bytes: &[u8]) -> Result<&[Self]> {
                bytemuck::try_cast_slice(bytes).map_err(|e| {
                    Error::DType(format!(
                        "cannot view {} bytes as {}: {e:?}",
                        bytes.len(),
                        $d.name()
                    ))
                })
            }
            fn to_bytes(values: &[Self]) -> &[u8] {
                bytemuck::cast_slice(values)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            fn from_bool(v: bool) -> Self {
                (v as u8) as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn cast<U: Element>(self) -> U {
                U::$via(self as _)
            }
            impl_num_element!(@float $float $t);
        }
    };
    (@float true $t:ty) => {
        fn is_nan(self) -> bool {
            self.is_nan()
        }
        fn is_finite(self) -> bool {
            self.is_finite()
        }
        fn truthy(self) -> bool {
            self != 0.0
        }
        fn swap_bytes(self) -> Self {
            <$t>::from_bits(self.to_bits().swap_bytes())
        }
        fn min_value() -> Self {
            <$t>::NEG_INFINITY
        }
        fn max_value() -> Self {
            <$t>::INFINITY
        }
    };
    (@float false $t:ty) => {
        fn is_nan(self) -> bool {
            false
        }
        fn is_finite(self) -> bool {
            true
        }
        fn truthy(self) -> bool {
            self != 0
        }
        fn swap_bytes(self) -> Self {
            <$t>::swap_bytes(self)
        }
        fn min_value() -> Self {
            <$t>::MIN
        }
        fn max_value() -> Self {
            <$t>::MAX
        }
    };
}

impl_num_element!(i8, DType::I8, false, from_i64);
impl_num_element!(i16, DType::I16, false, from_i64);
impl_num_element!(i32, DType::I32, false, from_i64);
impl_num_element!(i64, DType::I64, false, from_i64);
impl_num_element!(u8, DType::U8, false, from_u64);
impl_num_element!(u16, DType::U16, false, from_u64);
impl_num_element!(u32, DType::U32, false, from_u64);
impl_num_element!(u64, DType::U64, false, from_u64);
impl_num_element!(f32, DType::F32, true, from_f64);
impl_num_element!(f64, DType::F64, true, from_f64);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn from_bytes(bytes: &[u8]) -> Result<&[Self]> {
        if let Some(pos) = bytes.iter().position(|&b| b > 1) {
            return Err(Error::DType(format!(
                "byte {pos} holds {}, not a valid bool (0 or 1)",
                bytes[pos]
            )));
        }
        // SAFETY: every byte is 0 or 1, which are the two valid bit patterns of `bool`, and
        // `bool` has size and alignment 1.
        Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<bool>(), bytes.len()) })
    }
    fn to_bytes(values: &[Self]) -> &[u8] {
        // SAFETY: `bool` is one byte with no padding.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), values.len()) }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn from_u64(v: u64) -> Self {
        v != 0
    }
    fn from_bool(v: bool) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn cast<U: Element>(self) -> U {
        U::from_bool(self)
    }
    fn is_nan(self) -> bool {
        false
    }
    fn is_finite(self) -> bool {
        true
    }
    fn truthy(self) -> bool {
        self
    }
    fn swap_bytes(self) -> Self {
        self
    }
    fn min_value() -> Self {
        false
    }
    fn max_value() -> Self {
        true
    }
}

/// Numeric elements: everything but `bool`. Integer arithmetic wraps as NumPy's does; integer
/// division and remainder by zero give 0 (NumPy warns and gives 0).
pub trait Num: Element {
    /// Zero.
    fn zero() -> Self;
    /// One.
    fn one() -> Self;
    /// `a + b` (wrapping for integers).
    fn add(self, b: Self) -> Self;
    /// `a - b` (wrapping for integers).
    fn sub(self, b: Self) -> Self;
    /// `a * b` (wrapping for integers).
    fn mul(self, b: Self) -> Self;
    /// Python's floor division `a // b`.
    fn floor_div(self, b: Self) -> Self;
    /// Python's modulo `a % b` (the sign of the divisor).
    fn modulo(self, b: Self) -> Self;
    /// C's `fmod(a, b)`: the remainder with the sign of the dividend (0 for an integer division
    /// by zero, NaN for a float one).
    fn fmod(self, b: Self) -> Self;
    /// `a ** b`. Integer powers with a negative exponent give 0 unless the base is 1 or -1
    /// ([`ChunkedArray::pow`](crate::ChunkedArray::pow) refuses them, as NumPy does).
    fn pow(self, b: Self) -> Self;
    /// `-a` (wrapping for integers; unsigned wraps as NumPy's does).
    fn neg(self) -> Self;
    /// `|a|`.
    fn abs(self) -> Self;
    /// The sign: -1, 0, 1 (NaN for NaN).
    fn sign(self) -> Self;
}

macro_rules! impl_num_int {
    ($t:ty, $signed:tt) => {
        impl Num for $t {
            fn zero() -> Self {
                0
            }
            fn one() -> Self {
                1
            }
            fn add(self, b: Self) -> Self {
                self.wrapping_add(b)
            }
            fn sub(self, b: Self) -> Self {
                self.wrapping_sub(b)
            }
            fn mul(self, b: Self) -> Self {
                self.wrapping_mul(b)
            }
            fn floor_div(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let q = self.wrapping_div(b);
                impl_num_int!(@floor $signed self, b, q)
            }
            fn modulo(self, b: Self) -> Self {
                if b == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(b);
                impl_num_int!(@mod $signed r, b)
            }
            fn fmod(self, b: Self) -> Self {
                if b == 0 {
                    0
                } else {
                    self.wrapping_rem(b)
                }
            }
            fn pow(self, b: Self) -> Self {
                impl_num_int!(@pow $signed self, b)
            }
            fn neg(self) -> Self {
                (0 as $t).wrapping_sub(self)
            }
            fn abs(self) -> Self {
                impl_num_int!(@abs $signed self)
            }
            fn sign(self) -> Self {
                impl_num_int!(@sign $signed self)
            }
        }
    };
    (@floor true $a:ident, $b:ident, $q:ident) => {
        if ($a.wrapping_rem($b) != 0) && (($a < 0) != ($b < 0)) { $q - 1 } else { $q }
    };
    (@floor false $a:ident, $b:ident, $q:ident) => { $q };
    (@mod true $r:ident, $b:ident) => {
        if $r != 0 && (($r < 0) != ($b < 0)) { $r + $b } else { $r }
    };
    (@mod false $r:ident, $b:ident) => { $r };
    (@pow true $a:ident, $b:ident) => {
        if $b < 0 {
            match $a { 1 => 1, -1 => if $b % 2 == 0 { 1 } else { -1 }, _ => 0 }
        } else {
            wrapping_pow_u64($a, $b as u64, |x, y| x.wrapping_mul(y), 1)
        }
    };
    (@pow false $a:ident, $b:ident) => { wrapping_pow_u64($a, $b as u64, |x, y| x.wrapping_mul(y), 1) };
    (@abs true $a:ident) => { $a.wrapping_abs() };
    (@abs false $a:ident) => { $a };
    (@sign true $a:ident) => { $a.signum() };
    (@sign false $a:ident) => { if $a > 0 { 1 } else { 0 } };
}

/// `base ** exp` by squaring with wrapping multiplication, for any 64-bit exponent.
fn wrapping_pow_u64<T: Copy>(base: T, mut exp: u64, mul: impl Fn(T, T) -> T, one: T) -> T {
    let (mut acc, mut b) = (one, base);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, b);
        }
        b = mul(b, b);
        exp >>= 1;
    }
    acc
}

impl_num_int!(i8, true);
impl_num_int!(i16, true);
impl_num_int!(i32, true);
impl_num_int!(i64, true);
impl_num_int!(u8, false);
impl_num_int!(u16, false);
impl_num_int!(u32, false);
impl_num_int!(u64, false);

macro_rules! impl_num_float {
    ($t:ty) => {
        impl Num for $t {
            fn zero() -> Self {
                0.0
            }
            fn one() -> Self {
                1.0
            }
            fn add(self, b: Self) -> Self {
                self + b
            }
            fn sub(self, b: Self) -> Self {
                self - b
            }
            fn mul(self, b: Self) -> Self {
                self * b
            }
            fn floor_div(self, b: Self) -> Self {
                // NumPy's npy_divmod: derive the quotient from fmod so that a == b*q + r exactly.
                if b == 0.0 {
                    return self / b;
                }
                let m = self % b;
                let mut div = (self - m) / b;
                if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
                    div -= 1.0;
                }
                if div != 0.0 {
                    let fl = div.floor();
                    if div - fl > 0.5 {
                        fl + 1.0
                    } else {
                        fl
                    }
                } else {
                    (0.0 as $t).copysign(self / b)
                }
            }
            fn modulo(self, b: Self) -> Self {
                if b == 0.0 {
                    return self % b;
                }
                let m = self % b;
                if m != 0.0 {
                    if (b < 0.0) != (m < 0.0) {
                        m + b
                    } else {
                        m
                    }
                } else {
                    (0.0 as $t).copysign(b)
                }
            }
            fn fmod(self, b: Self) -> Self {
                self % b
            }
            fn pow(self, b: Self) -> Self {
                self.powf(b)
            }
            fn neg(self) -> Self {
                -self
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn sign(self) -> Self {
                if self > 0.0 {
                    1.0
                } else if self < 0.0 {
                    -1.0
                } else if self == 0.0 {
                    0.0 // NumPy's sign of -0.0 is 0.0
                } else {
                    self // NaN
                }
            }
        }
    };
}

impl_num_float!(f32);
impl_num_float!(f64);

/// Integer elements: the bitwise operations.
pub trait Integer: Num {
    /// `a & b`.
    fn bitand(self, b: Self) -> Self;
    /// `a | b`.
    fn bitor(self, b: Self) -> Self;
    /// `a ^ b`.
    fn bitxor(self, b: Self) -> Self;
    /// `!a` (`~a` in NumPy).
    fn bitnot(self) -> Self;
    /// `a << b` as NumPy's `left_shift`: 0 when `b` is negative or not less than the bits.
    fn shl(self, b: Self) -> Self;
    /// `a >> b` as NumPy's `right_shift` (arithmetic for signed types): when `b` is negative or
    /// not less than the bits, -1 for a negative `a` and 0 otherwise.
    fn shr(self, b: Self) -> Self;
}

macro_rules! impl_integer {
    ($($t:ty),*) => {
        $(impl Integer for $t {
            fn bitand(self, b: Self) -> Self {
                self & b
            }
            fn bitor(self, b: Self) -> Self {
                self | b
            }
            fn bitxor(self, b: Self) -> Self {
                self ^ b
            }
            fn bitnot(self) -> Self {
                !self
            }
            fn shl(self, b: Self) -> Self {
                match u32::try_from(b) {
                    Ok(s) if s < <$t>::BITS => self << s,
                    _ => 0,
                }
            }
            fn shr(self, b: Self) -> Self {
                match u32::try_from(b) {
                    Ok(s) if s < <$t>::BITS => self >> s,
                    // The sign, filling every bit: -1 or 0 (0 for unsigned types).
                    _ => self.min(0) >> (<$t>::BITS - 1),
                }
            }
        })*
    };
}

impl_integer!(i8, i16, i32, i64, u8, u16, u32, u64);

/// Floating-point elements: `f32` and `f64`.
pub trait Float: Num + std::ops::Div<Output = Self> {
    /// Applies a function computed in `f64` and stored back (used for the transcendental ufuncs;
    /// `f32` calls its own `f32` routines instead where they exist).
    fn apply(self, f: FloatFn) -> Self;
    /// `atan2(self, x)`.
    fn atan2(self, x: Self) -> Self;
    /// NaN.
    fn nan() -> Self;
}

/// The unary float functions of the elementwise layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FloatFn {
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

impl FloatFn {
    /// NumPy's name of the function (`sqrt`, `log1p`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FloatFn::Sqrt => "sqrt",
            FloatFn::Exp => "exp",
            FloatFn::Log => "log",
            FloatFn::Log1p => "log1p",
            FloatFn::Expm1 => "expm1",
            FloatFn::Sin => "sin",
            FloatFn::Cos => "cos",
            FloatFn::Tan => "tan",
            FloatFn::Floor => "floor",
            FloatFn::Ceil => "ceil",
            FloatFn::Round => "round",
        }
    }
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            fn apply(self, f: FloatFn) -> Self {
                match f {
                    FloatFn::Sqrt => self.sqrt(),
                    FloatFn::Exp => self.exp(),
                    FloatFn::Log => self.ln(),
                    FloatFn::Log1p => self.ln_1p(),
                    FloatFn::Expm1 => self.exp_m1(),
                    FloatFn::Sin => self.sin(),
                    FloatFn::Cos => self.cos(),
                    FloatFn::Tan => self.tan(),
                    FloatFn::Floor => self.floor(),
                    FloatFn::Ceil => self.ceil(),
                    // NumPy rounds half to even.
                    FloatFn::Round => self.round_ties_even(),
                }
            }
            fn atan2(self, x: Self) -> Self {
                <$t>::atan2(self, x)
            }
            fn nan() -> Self {
                <$t>::NAN
            }
        }
    };
}

impl_float!(f32);
impl_float!(f64);

/// Elements as bytes (a chunk's, read or decoded from a file) in a buffer aligned for any
/// element type.
#[derive(Clone, Default)]
pub(crate) struct ChunkBuf {
    words: Vec<u64>,
    len: usize,
}

impl ChunkBuf {
    /// Makes the buffer `len` bytes long, keeping its allocation when it is large enough.
    pub(crate) fn resize(&mut self, len: usize) {
        self.words.resize(len.div_ceil(8), 0);
        self.len = len;
    }
    /// The bytes, to fill.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[..self.len]
    }
    /// The bytes as elements (checked: a bool must be 0 or 1).
    pub(crate) fn elements<T: Element>(&self) -> Result<&[T]> {
        T::from_bytes(&bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_matches_numpy() {
        use DType::*;
        assert_eq!(DType::promote(I8, U8), I16);
        assert_eq!(DType::promote(I64, U64), F64);
        assert_eq!(DType::promote(I32, F32), F64);
        assert_eq!(DType::promote(I16, F32), F32);
        assert_eq!(DType::promote(Bool, U8), U8);
        assert_eq!(DType::promote(U32, I64), I64);
        assert_eq!(DType::promote(U32, I32), I64);
    }

    #[test]
    fn python_division_semantics() {
        assert_eq!((-7i64).floor_div(2), -4);
        assert_eq!((-7i64).modulo(2), 1);
        assert_eq!(7i64.modulo(-2), -1);
        assert_eq!(5i32.floor_div(0), 0);
        assert_eq!((-7.0f64).floor_div(2.0), -4.0);
        assert_eq!((-7.0f64).modulo(2.0), 1.0);
        assert_eq!(7.0f64.modulo(-2.0), -1.0);
        assert_eq!(Num::pow(2i64, -1), 0);
        assert_eq!(Num::pow(-1i64, -3), -1);
    }

    #[test]
    fn casts_follow_astype() {
        assert_eq!((-1.7f64).cast::<i32>(), -1);
        assert_eq!(300i32.cast::<u8>(), 44);
        assert!(f64::NAN.cast::<bool>());
        assert_eq!(true.cast::<f32>(), 1.0);
        assert_eq!(u64::MAX.cast::<f64>(), 18446744073709551615.0);
        assert_eq!(i64::MAX.cast::<i64>(), i64::MAX);
    }

    #[test]
    fn bool_bytes_are_checked() {
        assert!(bool::from_bytes(&[0, 1, 2]).is_err());
        assert_eq!(bool::from_bytes(&[0, 1]).unwrap(), &[false, true]);
    }
}
