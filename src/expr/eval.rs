//! Evaluation of parsed expressions over named input arrays: NumPy's names and Dask's
//! keyword arguments (`axis=`, `keepdims=`, `ddof=`, `chunks=`, `split_every=`), building a
//! lazy plan. Nothing is computed here.

use super::parse::{self, BinOp, Expr, ExprKind, IndexItem, UnaryOp};
use crate::chunks::{AxisChunks, Chunks};
use crate::dynarray::{BinaryOp, DynArray, DynOperand, ReduceOp, Scalar, UnaryOp as DUnary};
use crate::element::DType;
use crate::error::{Error, Result};
use crate::ops::creation::Distribution;
use crate::ops::reduce::ReduceOpts;
use crate::ops::slice::SliceItem;
use std::collections::BTreeMap;

/// A value of the expression language.
#[derive(Clone, Debug)]
pub enum Value {
    /// A lazy array.
    Array(DynArray),
    /// A Python scalar.
    Scalar(Scalar),
    /// A tuple or list.
    Tuple(Vec<Value>),
    /// `None`.
    None,
    /// A dtype name such as `float32`.
    DType(DType),
    /// A function not yet called (`x.sum`, `np.sqrt`), with its receiver if a method.
    Function(String, Option<Box<Value>>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Array(_) => "an array",
            Value::Scalar(_) => "a number",
            Value::Tuple(_) => "a tuple",
            Value::None => "None",
            Value::DType(_) => "a dtype",
            Value::Function(..) => "a function",
        }
    }
}

/// Parses and evaluates `source` with the named inputs, returning the lazy result.
///
/// # Errors
/// A parse error (with the column and a caret), an unknown name, a wrong argument, or any error
/// of the operations (shapes that do not broadcast, an axis out of range, ...).
///
/// ```
/// use std::collections::BTreeMap;
/// use tessera::expr::eval::{evaluate, Value};
/// let v = evaluate("sum(sqrt(ones((1000,), chunks=10) * 4.0) + 1.0)", &BTreeMap::new()).unwrap();
/// let Value::Array(a) = v else { panic!() };
/// assert_eq!(a.compute_to_string(&Default::default()).unwrap(), "3000.0");
/// ```
pub fn evaluate(source: &str, inputs: &BTreeMap<String, DynArray>) -> Result<Value> {
    let expr =
        parse::parse(source).map_err(|e| Error::Parse(format!("{e}\n{}", e.render(source))))?;
    Evaluator { inputs }.eval(&expr)
}

struct Evaluator<'a> {
    inputs: &'a BTreeMap<String, DynArray>,
}

fn err<T>(col: usize, message: impl Into<String>) -> Result<T> {
    Err(Error::Eval {
        col,
        message: message.into(),
    })
}

/// Adds the column to errors that lack a location.
fn at<T>(col: usize, r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        Error::Eval { .. } | Error::Parse(_) => e,
        other => Error::Eval {
            col,
            message: other.to_string(),
        },
    })
}

const NAMESPACES: [&str; 5] = ["np", "numpy", "da", "dask", "tessera"];

/// Call arguments after evaluation.
struct Args {
    col: usize,
    func: String,
    pos: Vec<(usize, Value)>,
    kw: BTreeMap<String, (usize, Value)>,
}

impl Args {
    fn take(&mut self, i: usize, name: &str) -> Option<(usize, Value)> {
        if let Some(v) = self.kw.remove(name) {
            return Some(v);
        }
        if i < self.pos.len() {
            let v = std::mem::replace(&mut self.pos[i], (0, Value::None));
            if !matches!(v.1, Value::None) || v.0 != 0 {
                return Some(v);
            }
        }
        None
    }

    fn required(&mut self, i: usize, name: &str) -> Result<(usize, Value)> {
        self.take(i, name).map_or_else(
            || {
                err(
                    self.col,
                    format!("{}() missing required argument '{name}'", self.func),
                )
            },
            Ok,
        )
    }

    fn array(&mut self, i: usize, name: &str) -> Result<(usize, DynArray)> {
        let (c, v) = self.required(i, name)?;
        Ok((c, to_array(c, v)?))
    }

    fn done(&self, max_pos: usize) -> Result<()> {
        if self.pos.len() > max_pos {
            return err(
                self.pos[max_pos].0,
                format!(
                    "{}() takes at most {max_pos} positional argument(s), got {}",
                    self.func,
                    self.pos.len()
                ),
            );
        }
        if let Some((k, (c, _))) = self.kw.iter().next() {
            return err(
                *c,
                format!("{}() got an unexpected keyword argument '{k}'", self.func),
            );
        }
        Ok(())
    }
}

fn to_array(col: usize, v: Value) -> Result<DynArray> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Scalar(s) => DynArray::scalar(s, s.dtype()),
        other => err(col, format!("expected an array, got {}", other.kind())),
    }
}

fn to_operand(col: usize, v: Value) -> Result<DynOperand> {
    match v {
        Value::Array(a) => Ok(DynOperand::Array(a)),
        Value::Scalar(s) => Ok(DynOperand::Scalar(s)),
        other => err(
            col,
            format!("expected an array or a number, got {}", other.kind()),
        ),
    }
}

fn to_int(col: usize, v: &Value, what: &str) -> Result<i64> {
    match v {
        Value::Scalar(Scalar::Int(i)) => Ok(*i),
        Value::Scalar(Scalar::Bool(b)) => Ok(i64::from(*b)),
        other => err(
            col,
            format!("{what} must be an integer, got {}", other.kind()),
        ),
    }
}

fn to_f64(col: usize, v: &Value, what: &str) -> Result<f64> {
    match v {
        Value::Scalar(s) => Ok(s.as_f64()),
        other => err(
            col,
            format!("{what} must be a number, got {}", other.kind()),
        ),
    }
}

fn to_bool(col: usize, v: &Value, what: &str) -> Result<bool> {
    match v {
        Value::Scalar(Scalar::Bool(b)) => Ok(*b),
        Value::Scalar(Scalar::Int(i)) => Ok(*i != 0),
        other => err(
            col,
            format!("{what} must be True or False, got {}", other.kind()),
        ),
    }
}

fn to_shape(col: usize, v: &Value) -> Result<Vec<usize>> {
    let one = |x: &Value| -> Result<usize> {
        let n = to_int(col, x, "a shape entry")?;
        usize::try_from(n).or_else(|_| err(col, format!("negative dimension {n} in a shape")))
    };
    match v {
        Value::Tuple(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn to_isize_list(col: usize, v: &Value, what: &str) -> Result<Vec<isize>> {
    match v {
        Value::Tuple(items) => items
            .iter()
            .map(|x| to_int(col, x, what).map(|i| i as isize))
            .collect(),
        other => Ok(vec![to_int(col, other, what)? as isize]),
    }
}

fn to_axis(col: usize, v: &Value) -> Result<Option<Vec<isize>>> {
    match v {
        Value::None => Ok(None),
        other => to_isize_list(col, other, "axis").map(Some),
    }
}

fn to_chunks(col: usize, v: &Value) -> Result<Chunks> {
    fn axis(col: usize, v: &Value) -> Result<AxisChunks> {
        match v {
            Value::None => Ok(AxisChunks::Whole),
            Value::Function(name, None) if name == "auto" => Ok(AxisChunks::Auto),
            Value::Tuple(items) => Ok(AxisChunks::Explicit(
                items
                    .iter()
                    .map(|x| {
                        let n = to_int(col, x, "a chunk length")?;
                        usize::try_from(n)
                            .or_else(|_| err(col, format!("negative chunk length {n}")))
                    })
                    .collect::<Result<_>>()?,
            )),
            other => match to_int(col, other, "chunks")? {
                -1 => Ok(AxisChunks::Whole),
                n if n >= 0 => Ok(AxisChunks::Size(n as usize)),
                n => err(
                    col,
                    format!("invalid chunk size {n}: use a positive size, -1 or None"),
                ),
            },
        }
    }
    match v {
        Value::Function(name, None) if name == "auto" => Ok(Chunks::Auto),
        Value::Tuple(items) => Ok(Chunks::PerAxis(
            items.iter().map(|x| axis(col, x)).collect::<Result<_>>()?,
        )),
        Value::None => err(col, "chunks=None: give a size, a tuple, -1 or auto"),
        other => match axis(col, other)? {
            AxisChunks::Size(n) => Ok(Chunks::Size(n)),
            AxisChunks::Whole => Ok(Chunks::PerAxis(vec![])),
            a => Ok(Chunks::PerAxis(vec![a])),
        },
    }
}

/// A `chunks=` value for an array of `ndim` axes (`-1` alone means whole on every axis).
fn chunks_for(c: Chunks, ndim: usize) -> Chunks {
    match c {
        Chunks::PerAxis(v) if v.is_empty() && ndim > 0 => {
            Chunks::PerAxis(vec![AxisChunks::Whole; ndim])
        }
        Chunks::PerAxis(v) if v.is_empty() => Chunks::Size(1),
        other => other,
    }
}

fn to_dtype(col: usize, v: &Value) -> Result<DType> {
    match v {
        Value::DType(d) => Ok(*d),
        Value::Function(name, None) => at(col, DType::from_name(name)),
        other => err(
            col,
            format!("expected a dtype such as float32, got {}", other.kind()),
        ),
    }
}

/// Python semantics for operations between two scalars.
fn scalar_binary(col: usize, op: BinaryOp, a: Scalar, b: Scalar) -> Result<Value> {
    use BinaryOp::*;
    let ints = |a: Scalar| match a {
        Scalar::Bool(x) => Some(i64::from(x)),
        Scalar::Int(i) => Some(i),
        Scalar::Float(_) => None,
    };
    let zero = match b {
        Scalar::Float(f) => f == 0.0,
        other => ints(other) == Some(0),
    };
    if zero && matches!(op, Div | FloorDiv | Mod | Fmod) {
        return err(col, "division by zero");
    }
    if matches!(op, BitAnd | BitOr | BitXor) {
        return match (a, b) {
            (Scalar::Bool(x), Scalar::Bool(y)) => Ok(Value::Scalar(Scalar::Bool(match op {
                BitAnd => x & y,
                BitOr => x | y,
                _ => x ^ y,
            }))),
            _ => match (ints(a), ints(b)) {
                (Some(x), Some(y)) => Ok(Value::Scalar(Scalar::Int(match op {
                    BitAnd => x & y,
                    BitOr => x | y,
                    _ => x ^ y,
                }))),
                _ => err(col, format!("{} is not supported for floats", op.name())),
            },
        };
    }
    if matches!(op, LeftShift | RightShift) {
        // Python's shifts of integers (bools count as 0 and 1); the result must fit int64.
        let (Some(x), Some(y)) = (ints(a), ints(b)) else {
            return err(col, format!("{} is not supported for floats", op.name()));
        };
        let Ok(s) = u32::try_from(y) else {
            return err(col, "negative shift count");
        };
        let v = if op == RightShift {
            x >> s.min(63)
        } else if x == 0 {
            0
        } else {
            match x.checked_shl(s).filter(|v| s < 64 && v >> s == x) {
                Some(v) => v,
                None => return err(col, format!("{x} << {y} does not fit in int64")),
            }
        };
        return Ok(Value::Scalar(Scalar::Int(v)));
    }
    if let (Some(x), Some(y)) = (ints(a), ints(b)) {
        let v = match op {
            Add => x.checked_add(y),
            Sub => x.checked_sub(y),
            Mul => x.checked_mul(y),
            FloorDiv | Mod if y == 0 => return err(col, "integer division or modulo by zero"),
            // Python's floor division; i64::MIN // -1 does not fit and falls through to floats.
            FloorDiv => x
                .checked_div_euclid(y)
                .map(|d| d - i64::from(y < 0 && x.rem_euclid(y) != 0)),
            // Python's modulo takes the sign of y; C's (fmod) that of x.
            Mod | Fmod => {
                let r = if y == -1 { 0 } else { x % y };
                Some(if op == Mod && r != 0 && (r < 0) != (y < 0) {
                    r + y
                } else {
                    r
                })
            }
            Pow if y >= 0 => u32::try_from(y).ok().and_then(|e| x.checked_pow(e)),
            _ => None,
        };
        if let Some(v) = v {
            return Ok(Value::Scalar(Scalar::Int(v)));
        }
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    Ok(Value::Scalar(match op {
        Add => Scalar::Float(x + y),
        Sub => Scalar::Float(x - y),
        Mul => Scalar::Float(x * y),
        Div => Scalar::Float(x / y),
        FloorDiv => Scalar::Float((x / y).floor()),
        Mod => Scalar::Float(x - y * (x / y).floor()),
        Fmod => Scalar::Float(x % y),
        BitAnd | BitOr | BitXor | LeftShift | RightShift => {
            return err(col, format!("{} is not supported for floats", op.name()))
        }
        Pow => Scalar::Float(x.powf(y)),
        Minimum => Scalar::Float(x.min(y)),
        Maximum => Scalar::Float(x.max(y)),
        Arctan2 => Scalar::Float(x.atan2(y)),
        Eq => Scalar::Bool(x == y),
        Ne => Scalar::Bool(x != y),
        Lt => Scalar::Bool(x < y),
        Le => Scalar::Bool(x <= y),
        Gt => Scalar::Bool(x > y),
        Ge => Scalar::Bool(x >= y),
        And => Scalar::Bool(x != 0.0 && y != 0.0),
        Or => Scalar::Bool(x != 0.0 || y != 0.0),
        Xor => Scalar::Bool((x != 0.0) ^ (y != 0.0)),
    }))
}

fn binary_value(col: usize, op: BinaryOp, a: Value, b: Value) -> Result<Value> {
    if let (Value::Scalar(x), Value::Scalar(y)) = (&a, &b) {
        return scalar_binary(col, op, *x, *y);
    }
    let (a, b) = (to_operand(col, a)?, to_operand(col, b)?);
    Ok(Value::Array(at(col, DynArray::binary(op, &a, &b))?))
}

/// NumPy's `round(a, decimals)`: `a * 10**decimals` rounded half to even, divided back (for
/// negative `decimals`, divided then multiplied), in `a`'s float type. Integers are returned as
/// they are for `decimals >= 0`, and otherwise rounded through float64 and cast back as NumPy
/// casts: wrapping in the types narrower than 64 bits (`round(uint8 255, -1)` is 4), saturating
/// in int64 and uint64 (where NumPy's result is undefined).
fn round_to(col: usize, a: DynArray, decimals: i64) -> Result<Value> {
    let dtype = a.dtype();
    if dtype == DType::Bool {
        return err(
            col,
            "round(a, decimals) of a bool array is not supported (NumPy refuses decimals other \
             than 0, and gives float16 for 0); use astype first",
        );
    }
    let int = !dtype.is_float();
    if int && decimals >= 0 {
        return Ok(Value::Array(a));
    }
    let x = if int { a.astype(DType::F64) } else { a };
    let digits = i32::try_from(decimals.unsigned_abs()).unwrap_or(i32::MAX);
    let f = Value::Scalar(Scalar::Float(10f64.powi(digits)));
    let (first, then) = if decimals >= 0 {
        (BinaryOp::Mul, BinaryOp::Div)
    } else {
        (BinaryOp::Div, BinaryOp::Mul)
    };
    let scaled = binary_value(col, first, Value::Array(x), f.clone())?;
    let rounded = Value::Array(at(col, to_array(col, scaled)?.unary(DUnary::Round))?);
    let back = to_array(col, binary_value(col, then, rounded, f)?)?;
    Ok(Value::Array(match dtype {
        // NumPy's cast back wraps where the rounded value leaves a narrow integer type
        // (`round(uint8 255, -1)` is 4): through int64, which holds every such value exactly.
        DType::I8 | DType::I16 | DType::I32 | DType::U8 | DType::U16 | DType::U32 => {
            back.astype(DType::I64).astype(dtype)
        }
        _ if int => back.astype(dtype),
        _ => back,
    }))
}

const UNARY: [(&str, DUnary); 21] = [
    ("sqrt", DUnary::Sqrt),
    ("exp", DUnary::Exp),
    ("log", DUnary::Log),
    ("log1p", DUnary::Log1p),
    ("expm1", DUnary::Expm1),
    ("sin", DUnary::Sin),
    ("cos", DUnary::Cos),
    ("tan", DUnary::Tan),
    ("floor", DUnary::Floor),
    ("ceil", DUnary::Ceil),
    ("round", DUnary::Round),
    ("around", DUnary::Round),
    ("abs", DUnary::Abs),
    ("absolute", DUnary::Abs),
    ("sign", DUnary::Sign),
    ("negative", DUnary::Neg),
    ("isnan", DUnary::IsNan),
    ("isfinite", DUnary::IsFinite),
    ("logical_not", DUnary::Not),
    ("invert", DUnary::Invert),
    ("bitwise_not", DUnary::Invert),
];

const BINARY: [(&str, BinaryOp); 27] = [
    ("add", BinaryOp::Add),
    ("subtract", BinaryOp::Sub),
    ("multiply", BinaryOp::Mul),
    ("divide", BinaryOp::Div),
    ("true_divide", BinaryOp::Div),
    ("floor_divide", BinaryOp::FloorDiv),
    ("mod", BinaryOp::Mod),
    ("remainder", BinaryOp::Mod),
    ("power", BinaryOp::Pow),
    ("minimum", BinaryOp::Minimum),
    ("maximum", BinaryOp::Maximum),
    ("arctan2", BinaryOp::Arctan2),
    ("equal", BinaryOp::Eq),
    ("not_equal", BinaryOp::Ne),
    ("less", BinaryOp::Lt),
    ("less_equal", BinaryOp::Le),
    ("greater", BinaryOp::Gt),
    ("greater_equal", BinaryOp::Ge),
    ("logical_and", BinaryOp::And),
    ("logical_or", BinaryOp::Or),
    ("logical_xor", BinaryOp::Xor),
    ("fmod", BinaryOp::Fmod),
    ("bitwise_and", BinaryOp::BitAnd),
    ("bitwise_or", BinaryOp::BitOr),
    ("bitwise_xor", BinaryOp::BitXor),
    ("left_shift", BinaryOp::LeftShift),
    ("right_shift", BinaryOp::RightShift),
];

/// Every function the language knows, for error messages.
fn known_functions() -> String {
    let mut names: Vec<&str> = UNARY.iter().map(|u| u.0).collect();
    names.extend(BINARY.iter().map(|b| b.0));
    names.extend([
        "sum",
        "prod",
        "mean",
        "var",
        "std",
        "min",
        "max",
        "argmin",
        "argmax",
        "any",
        "all",
        "nansum",
        "nanprod",
        "nanmean",
        "nanvar",
        "nanstd",
        "nanmin",
        "nanmax",
        "nanargmin",
        "nanargmax",
        "clip",
        "where",
        "astype",
        "cumsum",
        "cumprod",
        "nancumsum",
        "nancumprod",
        "transpose",
        "reshape",
        "rechunk",
        "concatenate",
        "stack",
        "ones",
        "zeros",
        "full",
        "arange",
        "linspace",
        "random",
        "uniform",
        "normal",
        "standard_normal",
    ]);
    names.sort_unstable();
    names.join(", ")
}

impl Evaluator<'_> {
    fn eval(&self, e: &Expr) -> Result<Value> {
        let col = e.col;
        match &e.kind {
            ExprKind::Int(i) => Ok(Value::Scalar(Scalar::Int(*i))),
            ExprKind::Float(f) => Ok(Value::Scalar(Scalar::Float(*f))),
            ExprKind::Bool(b) => Ok(Value::Scalar(Scalar::Bool(*b))),
            ExprKind::None => Ok(Value::None),
            ExprKind::Name(n) => self.name(col, n),
            // Strings name dtypes, as in `x.astype('float32')`, `ones(3, dtype="int8")` or
            // NumPy's `'<f8'` (native order only), or Dask's automatic chunks (`chunks='auto'`).
            ExprKind::Str(text) if text == "auto" => Ok(Value::Function(text.clone(), None)),
            ExprKind::Str(text) => {
                let native = if cfg!(target_endian = "little") {
                    "<=|"
                } else {
                    ">=|"
                };
                let name = text.strip_prefix(|c| native.contains(c)).unwrap_or(text);
                DType::from_name(name).map(Value::DType).or_else(|_| {
                    err(
                        col,
                        format!(
                            "the string '{text}' is not a dtype nor 'auto' (strings name dtypes, as 'float32' or '<f8', and automatic chunks)"
                        ),
                    )
                })
            }
            ExprKind::Tuple(items) | ExprKind::List(items) => Ok(Value::Tuple(
                items.iter().map(|x| self.eval(x)).collect::<Result<_>>()?,
            )),
            ExprKind::Unary { op, operand } => {
                let v = self.eval(operand)?;
                match (op, v) {
                    (UnaryOp::Pos, v) => Ok(v),
                    (UnaryOp::Neg, Value::Scalar(Scalar::Int(i))) => {
                        Ok(Value::Scalar(match i.checked_neg() {
                            Some(n) => Scalar::Int(n),
                            None => Scalar::Float(-(i as f64)),
                        }))
                    }
                    (UnaryOp::Neg, Value::Scalar(s)) => {
                        Ok(Value::Scalar(Scalar::Float(-s.as_f64())))
                    }
                    (UnaryOp::Not, Value::Scalar(s)) => {
                        Ok(Value::Scalar(Scalar::Bool(s.as_f64() == 0.0)))
                    }
                    (UnaryOp::Neg, v) => self.unary(col, DUnary::Neg, v),
                    (UnaryOp::Invert, Value::Scalar(Scalar::Int(i))) => {
                        Ok(Value::Scalar(Scalar::Int(!i)))
                    }
                    (UnaryOp::Invert, Value::Scalar(Scalar::Bool(b))) => {
                        Ok(Value::Scalar(Scalar::Bool(!b)))
                    }
                    (UnaryOp::Invert, v) => self.unary(col, DUnary::Invert, v),
                    (UnaryOp::Not, v) => self.unary(col, DUnary::Not, v),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.eval(lhs)?;
                let b = self.eval(rhs)?;
                let bop = match op {
                    BinOp::Add => BinaryOp::Add,
                    BinOp::Sub => BinaryOp::Sub,
                    BinOp::Mul => BinaryOp::Mul,
                    BinOp::Div => BinaryOp::Div,
                    BinOp::FloorDiv => BinaryOp::FloorDiv,
                    BinOp::Mod => BinaryOp::Mod,
                    BinOp::Pow => BinaryOp::Pow,
                    BinOp::BitAnd => BinaryOp::BitAnd,
                    BinOp::BitOr => BinaryOp::BitOr,
                    BinOp::BitXor => BinaryOp::BitXor,
                    BinOp::Shl => BinaryOp::LeftShift,
                    BinOp::Shr => BinaryOp::RightShift,
                    BinOp::And => BinaryOp::And,
                    BinOp::Or => BinaryOp::Or,
                    BinOp::Lt => BinaryOp::Lt,
                    BinOp::Le => BinaryOp::Le,
                    BinOp::Gt => BinaryOp::Gt,
                    BinOp::Ge => BinaryOp::Ge,
                    BinOp::Eq => BinaryOp::Eq,
                    BinOp::Ne => BinaryOp::Ne,
                    BinOp::MatMul => {
                        return err(col, "matrix multiplication (@) is not supported yet")
                    }
                };
                binary_value(col, bop, a, b)
            }
            ExprKind::Attr { value, name } => {
                if let ExprKind::Name(ns) = &value.kind {
                    if NAMESPACES.contains(&ns.as_str()) && !self.inputs.contains_key(ns) {
                        return self.name(col, name);
                    }
                    if ns == "random" && !self.inputs.contains_key(ns) {
                        return Ok(Value::Function(name.clone(), None));
                    }
                }
                let v = self.eval(value)?;
                self.attr(col, v, name)
            }
            ExprKind::Call { func, args, kwargs } => {
                let f = self.eval(func)?;
                let Value::Function(name, recv) = f else {
                    return err(func.col, format!("{} is not callable", f.kind()));
                };
                let mut pos = Vec::new();
                if let Some(r) = recv {
                    pos.push((func.col, *r));
                }
                for a in args {
                    pos.push((a.col, self.eval(a)?));
                }
                let mut kw = BTreeMap::new();
                for (k, v) in kwargs {
                    kw.insert(k.clone(), (v.col, self.eval(v)?));
                }
                self.call(Args {
                    col,
                    func: name,
                    pos,
                    kw,
                })
            }
            ExprKind::Index { value, items } => {
                let v = self.eval(value)?;
                if let (Value::Tuple(t), [IndexItem::Index(i)]) = (&v, items.as_slice()) {
                    // `x.shape[0]`: Python indexing of a tuple.
                    let k = to_int(i.col, &self.eval(i)?, "a tuple index")?;
                    let n = t.len() as i64;
                    let p = if k < 0 { k + n } else { k };
                    return match usize::try_from(p).ok().and_then(|p| t.get(p)) {
                        Some(v) => Ok(v.clone()),
                        None => err(i.col, format!("tuple index {k} out of range for {n} items")),
                    };
                }
                let a = to_array(value.col, v)?;
                let items = self.index_items(col, items, a.shape().len())?;
                Ok(Value::Array(at(col, a.slice(&items))?))
            }
        }
    }

    fn name(&self, col: usize, n: &str) -> Result<Value> {
        if let Some(a) = self.inputs.get(n) {
            return Ok(Value::Array(a.clone()));
        }
        if let Ok(d) = DType::from_name(n) {
            return Ok(Value::DType(d));
        }
        match n {
            "nan" | "NaN" => return Ok(Value::Scalar(Scalar::Float(f64::NAN))),
            "inf" | "Inf" => return Ok(Value::Scalar(Scalar::Float(f64::INFINITY))),
            "pi" => return Ok(Value::Scalar(Scalar::Float(std::f64::consts::PI))),
            "e" => return Ok(Value::Scalar(Scalar::Float(std::f64::consts::E))),
            "newaxis" => return Ok(Value::None),
            _ => {}
        }
        let is_fn = UNARY.iter().any(|u| u.0 == n)
            || BINARY.iter().any(|b| b.0 == n)
            || ReduceOp::from_name(n).is_some()
            || known_functions().split(", ").any(|f| f == n)
            || n == "auto";
        if is_fn {
            return Ok(Value::Function(n.to_string(), None));
        }
        let inputs: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
        err(
            col,
            format!(
                "unknown name '{n}' (inputs: {}; pass arrays with --in NAME=PATH)",
                if inputs.is_empty() {
                    "none".to_string()
                } else {
                    inputs.join(", ")
                },
            ),
        )
    }

    fn attr(&self, col: usize, v: Value, name: &str) -> Result<Value> {
        let Value::Array(a) = v else {
            return err(col, format!("{} has no attribute '{name}'", v.kind()));
        };
        match name {
            "T" => Ok(Value::Array(at(col, a.transpose(None))?)),
            "shape" => Ok(Value::Tuple(
                a.shape()
                    .iter()
                    .map(|&n| Value::Scalar(Scalar::Int(n as i64)))
                    .collect(),
            )),
            "ndim" => Ok(Value::Scalar(Scalar::Int(a.shape().len() as i64))),
            "size" => Ok(Value::Scalar(Scalar::Int(
                a.shape().iter().product::<usize>() as i64,
            ))),
            "dtype" => Ok(Value::DType(a.dtype())),
            _ => Ok(Value::Function(
                name.to_string(),
                Some(Box::new(Value::Array(a))),
            )),
        }
    }

    fn unary(&self, col: usize, op: DUnary, v: Value) -> Result<Value> {
        let a = to_array(col, v)?;
        Ok(Value::Array(at(col, a.unary(op))?))
    }

    fn index_items(&self, col: usize, items: &[IndexItem], ndim: usize) -> Result<Vec<SliceItem>> {
        let opt = |e: &Option<Expr>, what: &str| -> Result<Option<isize>> {
            match e {
                None => Ok(None),
                Some(x) => match self.eval(x)? {
                    Value::None => Ok(None),
                    v => Ok(Some(to_int(x.col, &v, what)? as isize)),
                },
            }
        };
        let used = items
            .iter()
            .filter(|i| !matches!(i, IndexItem::NewAxis | IndexItem::Ellipsis))
            .count();
        if items
            .iter()
            .filter(|i| matches!(i, IndexItem::Ellipsis))
            .count()
            > 1
        {
            return err(col, "an index can only have a single ellipsis ('...')");
        }
        let mut out = Vec::new();
        for it in items {
            match it {
                IndexItem::NewAxis => out.push(SliceItem::NewAxis),
                IndexItem::Ellipsis => out.extend(std::iter::repeat_n(
                    SliceItem::ALL,
                    ndim.saturating_sub(used),
                )),
                IndexItem::Index(x) => match self.eval(x)? {
                    Value::None => out.push(SliceItem::NewAxis),
                    // NumPy reads a boolean scalar as a mask (x[True] adds an axis of 1, x[False]
                    // one of 0), not as the integer 1 or 0.
                    Value::Scalar(Scalar::Bool(b)) => {
                        return err(
                            x.col,
                            format!(
                                "a boolean index ({}) is a mask in NumPy, which is not supported; \
                                 use an integer, or None for a new axis",
                                if b { "True" } else { "False" }
                            ),
                        )
                    }
                    v => out.push(SliceItem::Index(to_int(x.col, &v, "an index")? as isize)),
                },
                IndexItem::Slice { start, stop, step } => {
                    let step = opt(step, "a slice step")?.unwrap_or(1);
                    out.push(SliceItem::Range {
                        start: opt(start, "a slice start")?,
                        stop: opt(stop, "a slice stop")?,
                        step,
                    });
                }
            }
        }
        Ok(out)
    }

    fn call(&self, mut a: Args) -> Result<Value> {
        let col = a.col;
        let name = a.func.clone();
        if matches!(name.as_str(), "round" | "around") {
            if let Some((cd, d)) = a.take(1, "decimals") {
                let decimals = to_int(cd, &d, "decimals")?;
                let (c, v) = a.required(0, "a")?;
                a.done(2)?;
                return round_to(col, to_array(c, v)?, decimals);
            }
        }
        if let Some((_, op)) = UNARY.iter().find(|u| u.0 == name) {
            let (c, v) = a.required(0, "x")?;
            a.done(1)?;
            if let Value::Scalar(s) = v {
                // Constant folding through a 0-d array keeps NumPy's semantics.
                let arr = at(c, DynArray::scalar(s, s.dtype()))?;
                return Ok(Value::Array(at(col, arr.unary(*op))?));
            }
            return self.unary(col, *op, v);
        }
        if let Some((_, op)) = BINARY.iter().find(|b| b.0 == name) {
            let (_, x) = a.required(0, "x1")?;
            let (_, y) = a.required(1, "x2")?;
            a.done(2)?;
            return binary_value(col, *op, x, y);
        }
        if let Some(op) = ReduceOp::from_name(&name) {
            return self.reduction(a, op);
        }
        match name.as_str() {
            "clip" => {
                let (c, x) = a.required(0, "a")?;
                let (_, lo) = a.required(1, "a_min")?;
                let (_, hi) = a.required(2, "a_max")?;
                a.done(3)?;
                let x = to_array(c, x)?;
                // As NumPy 2's clip: a Python int bound beyond an integer dtype's range on the
                // side it bounds (a_min below its least value, a_max above its greatest) leaves
                // the values as they are; on the other side it is an error, as in `minimum`.
                let dtype = x.dtype();
                let spare = |bound: &Value, below: bool| match bound {
                    Value::None => true,
                    Value::Scalar(Scalar::Int(i)) => {
                        !crate::dynarray::int_fits(*i, dtype) && (*i < 0) == below
                    }
                    _ => false,
                };
                // Of a value equal to its bound (0.0 and -0.0), NumPy keeps the value for a
                // scalar bound and takes the bound of an array: maximum and minimum take their
                // second operand on ties, so a scalar bound goes first.
                let mut v = Value::Array(x);
                let bound = |op, v: Value, b: Value| match b {
                    Value::Scalar(_) => binary_value(col, op, b, v),
                    _ => binary_value(col, op, v, b),
                };
                if !spare(&lo, true) {
                    v = bound(BinaryOp::Maximum, v, lo)?;
                }
                if !spare(&hi, false) {
                    v = bound(BinaryOp::Minimum, v, hi)?;
                }
                Ok(v)
            }
            "where" => {
                let (c, cond) = a.array(0, "condition")?;
                let (ca, x) = a.required(1, "x")?;
                let (cb, y) = a.required(2, "y")?;
                a.done(3)?;
                let _ = c;
                let (x, y) = (to_operand(ca, x)?, to_operand(cb, y)?);
                Ok(Value::Array(at(col, DynArray::select(&cond, &x, &y))?))
            }
            "astype" => {
                let (_, x) = a.array(0, "x")?;
                let (c, d) = a.required(1, "dtype")?;
                a.done(2)?;
                Ok(Value::Array(x.astype(to_dtype(c, &d)?)))
            }
            "transpose" => {
                let (_, x) = a.array(0, "x")?;
                let axes = if a.pos.len() > 2 {
                    // x.transpose(1, 0, 2)
                    let rest: Vec<Value> = a.pos.drain(1..).map(|p| p.1).collect();
                    Some(to_isize_list(col, &Value::Tuple(rest), "axes")?)
                } else {
                    match a.take(1, "axes") {
                        None | Some((_, Value::None)) => None,
                        Some((c, v)) => Some(to_isize_list(c, &v, "axes")?),
                    }
                };
                a.done(2)?;
                Ok(Value::Array(at(col, x.transpose(axes.as_deref()))?))
            }
            "cumsum" | "cumprod" | "nancumsum" | "nancumprod" => {
                use crate::ops::scan::ScanOp;
                let (_, x) = a.array(0, "a")?;
                let axis = match a.take(1, "axis") {
                    None | Some((_, Value::None)) => None,
                    Some((c, v)) => Some(to_int(c, &v, "axis")? as isize),
                };
                a.done(2)?;
                let op = match name.as_str() {
                    "cumsum" => ScanOp::Sum,
                    "cumprod" => ScanOp::Prod,
                    "nancumsum" => ScanOp::NanSum,
                    _ => ScanOp::NanProd,
                };
                Ok(Value::Array(at(col, x.scan(op, axis))?))
            }
            "reshape" => {
                let (_, x) = a.array(0, "x")?;
                let shape = if a.pos.len() > 2 {
                    let rest: Vec<Value> = a.pos.drain(1..).map(|p| p.1).collect();
                    to_isize_list(col, &Value::Tuple(rest), "shape")?
                } else {
                    let (c, v) = a.required(1, "shape")?;
                    to_isize_list(c, &v, "shape")?
                };
                a.done(2)?;
                Ok(Value::Array(at(col, x.reshape(&shape))?))
            }
            "rechunk" => {
                let (_, x) = a.array(0, "x")?;
                let (c, v) = a.required(1, "chunks")?;
                a.done(2)?;
                let ch = chunks_for(to_chunks(c, &v)?, x.shape().len());
                Ok(Value::Array(at(col, x.rechunk(ch))?))
            }
            "concatenate" | "stack" => {
                let (c, seq) = a.required(0, "arrays")?;
                let axis = match a.take(1, "axis") {
                    None => 0,
                    Some((c, v)) => to_int(c, &v, "axis")? as isize,
                };
                a.done(2)?;
                let Value::Tuple(items) = seq else {
                    return err(c, format!("{name}() needs a list of arrays"));
                };
                let arrays: Vec<DynArray> = items
                    .into_iter()
                    .map(|v| to_array(c, v))
                    .collect::<Result<_>>()?;
                Ok(Value::Array(at(
                    col,
                    DynArray::concatenate(&arrays, axis, name == "stack"),
                )?))
            }
            "ones" | "zeros" | "full" | "empty" => {
                let (c, s) = a.required(0, "shape")?;
                let shape = to_shape(c, &s)?;
                let fill = if name == "full" {
                    match a.required(1, "fill_value")? {
                        (_, Value::Scalar(s)) => s,
                        (c, v) => {
                            return err(c, format!("fill_value must be a number, got {}", v.kind()))
                        }
                    }
                } else if name == "ones" {
                    Scalar::Int(1)
                } else {
                    Scalar::Int(0)
                };
                let dpos = if name == "full" { 2 } else { 1 };
                let dtype = match a.take(dpos, "dtype") {
                    None => {
                        if name == "full" {
                            fill.dtype()
                        } else {
                            DType::F64
                        }
                    }
                    Some((c, v)) => to_dtype(c, &v)?,
                };
                let chunks = self.chunks_arg(&mut a, dpos + 1, shape.len())?;
                a.done(dpos + 2)?;
                Ok(Value::Array(at(
                    col,
                    DynArray::full(&shape, fill, dtype, chunks),
                )?))
            }
            "arange" => {
                let nums: Vec<(usize, Value)> = a.pos.drain(..).collect();
                let vals: Vec<f64> = nums
                    .iter()
                    .map(|(c, v)| to_f64(*c, v, "arange bound"))
                    .collect::<Result<_>>()?;
                // Python ints (and bools) are taken exactly, as NumPy takes them.
                let ints: Vec<Option<i64>> = nums
                    .iter()
                    .map(|(_, v)| match v {
                        Value::Scalar(Scalar::Int(i)) => Some(*i),
                        Value::Scalar(Scalar::Bool(b)) => Some(i64::from(*b)),
                        _ => None,
                    })
                    .collect();
                // [start,] stop[, step]: as f64, and exactly where a Python int.
                let ((start, stop, step), exact) = match (vals.as_slice(), ints.as_slice()) {
                    ([stop], [i]) => ((0.0, *stop, 1.0), (Some(0), *i, Some(1))),
                    ([start, stop], [i, j]) => ((*start, *stop, 1.0), (*i, *j, Some(1))),
                    ([start, stop, step], [i, j, k]) => ((*start, *stop, *step), (*i, *j, *k)),
                    _ => {
                        return err(
                            col,
                            "arange() takes 1 to 3 positional arguments: [start,] stop[, step]",
                        )
                    }
                };
                let all_int = matches!(exact, (Some(_), Some(_), Some(_)));
                let dtype = match a.take(usize::MAX, "dtype") {
                    None => {
                        if all_int {
                            DType::I64
                        } else {
                            DType::F64
                        }
                    }
                    Some((c, v)) => to_dtype(c, &v)?,
                };
                let chunks = self.chunks_arg(&mut a, usize::MAX, 1)?;
                a.done(0)?;
                let how = match exact {
                    (Some(i), Some(j), Some(k)) => Arange::Ints(i, j, k),
                    (i, j, _) => Arange::Floats {
                        // Int bounds with a float step: NumPy takes the length from the
                        // bounds' exact difference (f64 bounds past 2^53 would round it).
                        range: i.zip(j).map_or(stop - start, |(i, j)| {
                            (i128::from(j) - i128::from(i)) as f64
                        }),
                        start,
                        step,
                    },
                };
                let made = arange(&how, dtype, chunks);
                Ok(Value::Array(at(col, made)?))
            }
            "linspace" => {
                let (c0, s) = a.required(0, "start")?;
                let (c1, e) = a.required(1, "stop")?;
                let num = match a.take(2, "num") {
                    None => 50,
                    Some((c, v)) => usize::try_from(to_int(c, &v, "num")?)
                        .or_else(|_| err(c, "num must be >= 0"))?,
                };
                let dtype = match a.take(3, "dtype") {
                    None => DType::F64,
                    Some((c, v)) => to_dtype(c, &v)?,
                };
                let chunks = self.chunks_arg(&mut a, 4, 1)?;
                a.done(5)?;
                let (s, e) = (to_f64(c0, &s, "start")?, to_f64(c1, &e, "stop")?);
                Ok(Value::Array(at(col, linspace(s, e, num, dtype, chunks))?))
            }
            "random" | "uniform" | "normal" | "standard_normal" => {
                // NumPy's and Dask's signatures: random(size), standard_normal(size),
                // uniform(low=0, high=1, size), normal(loc=0, scale=1, size); `shape=` is
                // taken for `size=`, and no size is a 0-d array (NumPy: one number).
                let get = |a: &mut Args, i: usize, name: &str, d: f64| -> Result<f64> {
                    match a.take(i, name) {
                        None => Ok(d),
                        Some((c, v)) => to_f64(c, &v, name),
                    }
                };
                let (dist, size_at) = match name.as_str() {
                    "normal" => (
                        Distribution::Normal {
                            loc: get(&mut a, 0, "loc", 0.0)?,
                            scale: get(&mut a, 1, "scale", 1.0)?,
                        },
                        2,
                    ),
                    "uniform" => (
                        Distribution::Uniform {
                            low: get(&mut a, 0, "low", 0.0)?,
                            high: get(&mut a, 1, "high", 1.0)?,
                        },
                        2,
                    ),
                    "standard_normal" => (
                        Distribution::Normal {
                            loc: 0.0,
                            scale: 1.0,
                        },
                        0,
                    ),
                    _ => (
                        Distribution::Uniform {
                            low: 0.0,
                            high: 1.0,
                        },
                        0,
                    ),
                };
                let shape = match a
                    .take(size_at, "size")
                    .or_else(|| a.take(usize::MAX, "shape"))
                {
                    None => Vec::new(),
                    Some((c, s)) => to_shape(c, &s)?,
                };
                let seed = match a.take(usize::MAX, "seed") {
                    None => 0,
                    Some((c, v)) => u64::try_from(to_int(c, &v, "seed")?)
                        .or_else(|_| err(c, "seed must be >= 0, as NumPy's"))?,
                };
                let dtype = match a.take(usize::MAX, "dtype") {
                    None => DType::F64,
                    Some((c, v)) => to_dtype(c, &v)?,
                };
                let chunks = self.chunks_arg(&mut a, usize::MAX, shape.len())?;
                a.done(size_at + 1)?;
                Ok(Value::Array(at(
                    col,
                    random(&shape, dist, seed, dtype, chunks),
                )?))
            }
            other => err(
                col,
                format!("unknown function '{other}' (known: {})", known_functions()),
            ),
        }
    }

    fn chunks_arg(&self, a: &mut Args, i: usize, ndim: usize) -> Result<Chunks> {
        match a.take(i, "chunks") {
            None => Ok(Chunks::Auto),
            Some((c, v)) => Ok(chunks_for(to_chunks(c, &v)?, ndim)),
        }
    }

    fn reduction(&self, mut a: Args, op: ReduceOp) -> Result<Value> {
        let col = a.col;
        let (c, x) = a.required(0, "a")?;
        let x = to_array(c, x)?;
        let axis = match a.take(1, "axis") {
            None => None,
            Some((c, v)) => to_axis(c, &v)?,
        };
        let npos = 2;
        let ddof = if op.takes_ddof() {
            match a.take(usize::MAX, "ddof") {
                None => 0.0,
                Some((c, v)) => to_f64(c, &v, "ddof")?,
            }
        } else {
            0.0
        };
        let keepdims = match a.take(usize::MAX, "keepdims") {
            None => false,
            Some((c, v)) => to_bool(c, &v, "keepdims")?,
        };
        let split_every = match a.take(usize::MAX, "split_every") {
            None => None,
            Some((c, v)) => Some(
                usize::try_from(to_int(c, &v, "split_every")?)
                    .or_else(|_| err(c, "split_every must be >= 2"))?,
            ),
        };
        a.done(npos)?;
        let opts = ReduceOpts {
            axis,
            keepdims,
            split_every,
        };
        Ok(Value::Array(at(col, x.reduce(op, opts, ddof))?))
    }
}

/// The arguments of an `arange`: Python ints, taken exactly, or float bounds over a range.
enum Arange {
    Ints(i64, i64, i64),
    Floats { range: f64, start: f64, step: f64 },
}

fn arange(how: &Arange, dtype: DType, chunks: Chunks) -> Result<DynArray> {
    use crate::ChunkedArray;
    fn make<T: crate::element::Num>(how: &Arange, chunks: Chunks) -> Result<ChunkedArray<T>> {
        match *how {
            Arange::Ints(start, stop, step) => ChunkedArray::arange_int(start, stop, step, chunks),
            Arange::Floats { range, start, step } => {
                ChunkedArray::arange_over(range, start, step, chunks)
            }
        }
    }
    Ok(match dtype {
        DType::I8 => make::<i8>(how, chunks)?.into(),
        DType::I16 => make::<i16>(how, chunks)?.into(),
        DType::I32 => make::<i32>(how, chunks)?.into(),
        DType::I64 => make::<i64>(how, chunks)?.into(),
        DType::U8 => make::<u8>(how, chunks)?.into(),
        DType::U16 => make::<u16>(how, chunks)?.into(),
        DType::U32 => make::<u32>(how, chunks)?.into(),
        DType::U64 => make::<u64>(how, chunks)?.into(),
        DType::F32 => make::<f32>(how, chunks)?.into(),
        DType::F64 => make::<f64>(how, chunks)?.into(),
        DType::Bool => return Err(Error::DType("arange of bool is not supported".into())),
    })
}

/// NumPy 2's `linspace`: the values in float64, floored for an integer dtype, then cast.
fn linspace(start: f64, stop: f64, num: usize, dtype: DType, chunks: Chunks) -> Result<DynArray> {
    let values = crate::ChunkedArray::<f64>::linspace(start, stop, num, chunks)?;
    let values = if dtype.is_int() {
        values.map("floor", f64::floor)
    } else {
        values
    };
    Ok(DynArray::from(values).astype(dtype))
}

fn random(
    shape: &[usize],
    dist: Distribution,
    seed: u64,
    dtype: DType,
    chunks: Chunks,
) -> Result<DynArray> {
    Ok(match dtype {
        DType::F32 => crate::ChunkedArray::<f32>::random(shape, dist, seed, chunks)?.into(),
        DType::F64 => crate::ChunkedArray::<f64>::random(shape, dist, seed, chunks)?.into(),
        other => {
            return Err(Error::DType(format!(
                "random numbers of {other} are not supported; use float32 or float64"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(source: &str) -> Scalar {
        match evaluate(source, &BTreeMap::new()) {
            Ok(Value::Scalar(s)) => s,
            other => panic!("{source}: {other:?}"),
        }
    }

    /// Integer `//`, `%` and negation as Python computes them, `fmod` as NumPy's (the sign of
    /// x), with the results that do not fit in int64 as floats, not a panic or a wrapped value.
    #[test]
    fn integer_division_follows_python_at_the_edges() {
        let min = "(-9223372036854775807 - 1)";
        for (source, want) in [
            ("7 // 2", Scalar::Int(3)),
            ("7 // -2", Scalar::Int(-4)),
            ("-7 // 2", Scalar::Int(-4)),
            ("-7 // -2", Scalar::Int(3)),
            ("7 % -2", Scalar::Int(-1)),
            ("-7 % 2", Scalar::Int(1)),
            ("-7 % -2", Scalar::Int(-1)),
            ("6 % -2", Scalar::Int(0)),
            ("fmod(-7, 2)", Scalar::Int(-1)),
            (
                "9223372036854775806 % 9223372036854775807",
                Scalar::Int(9223372036854775806),
            ),
            ("-9223372036854775806 % 9223372036854775807", Scalar::Int(1)),
            (
                &format!("{min} // -1"),
                Scalar::Float(9223372036854775808.0),
            ),
            (&format!("{min} % -1"), Scalar::Int(0)),
            (&format!("{min} // 1"), Scalar::Int(i64::MIN)),
            (&format!("-{min}"), Scalar::Float(9223372036854775808.0)),
        ] {
            assert_eq!(scalar(source), want, "{source}");
        }
    }
}
