//! The properties the fuzz targets check, one function per target: shared by the targets in
//! `fuzz/fuzz_targets/` (which panic when a check fails, so that libFuzzer records the input)
//! and by `tests/fuzz_corpus.rs` (which replays the kept corpus on stable Rust).
//!
//! Each check takes the raw input and returns `Err` with what went wrong. A panic inside
//! tessera is a failure too: the targets let it through, the replay test catches it.
#![allow(dead_code)]

use std::path::Path;
use tessera::error::Error;
use tessera::expr::parse::{parse, Expr, ExprKind, IndexItem, MAX_DEPTH, MAX_NESTING};
use tessera::store::npy::{header_bytes, parse_header, NpyHeader};

/// The file name given to [`parse_header`], to find in its error messages.
const NPY_PATH: &str = "fuzz-input.npy";

/// `tessera eval`'s parser on `data` (inputs that are not UTF-8 are skipped):
///
/// - an error is a value whose column is within the source (1 to one past its last character)
///   and whose caret rendering does not panic;
/// - an expression has its columns within the source and its tree at most [`MAX_DEPTH`]
///   deep;
/// - it prints (`Display`) to a text that parses back to the same tree, columns aside, and
///   prints again to the same text, whenever the tree is at most [`MAX_NESTING`] deep (as
///   `Display` promises; deeper trees print more nested parentheses than the parser accepts);
/// - trailing whitespace changes nothing.
pub(crate) fn check_eval_parse(data: &[u8]) -> Result<(), String> {
    let Ok(source) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let len = source.chars().count();
    let expr = match parse(source) {
        Ok(expr) => expr,
        Err(err) => {
            if !(1..=len + 1).contains(&err.col) {
                return Err(format!(
                    "{source:?}: error column {} outside 1..={}: {err}",
                    err.col,
                    len + 1
                ));
            }
            if err.message.is_empty() {
                return Err(format!("{source:?}: empty error message"));
            }
            let _ = err.render(source);
            return Ok(());
        }
    };
    let depth = depth(&expr);
    if depth > MAX_DEPTH {
        return Err(format!(
            "{source:?}: tree {depth} deep, more than MAX_DEPTH {MAX_DEPTH}"
        ));
    }
    if let Some(col) = first_column_outside(&expr, len) {
        return Err(format!(
            "{source:?}: column {col} outside the source's {len} characters"
        ));
    }
    let text = expr.to_string();
    match parse(&text) {
        Ok(again) => {
            if erase(&again) != erase(&expr) {
                return Err(format!(
                    "{source:?} prints as {text:?}, which parses to another tree:\n\
                     {expr:?}\nbecame\n{again:?}"
                ));
            }
            let twice = again.to_string();
            if twice != text {
                return Err(format!("{source:?} prints as {text:?}, then as {twice:?}"));
            }
        }
        Err(err) if depth <= MAX_NESTING => {
            return Err(format!(
                "{source:?} prints as {text:?}, which does not parse: {err}"
            ));
        }
        Err(_) => {}
    }
    let padded = format!("{source} \n\t");
    match parse(&padded) {
        Ok(same) if same == expr => Ok(()),
        other => Err(format!(
            "{source:?} parses to {expr:?} but with trailing whitespace to {other:?}"
        )),
    }
}

/// The `.npy` header reader on `data` (the first bytes of a file):
///
/// - an error is [`Error::Format`] naming the file;
/// - a header has its data offset within `data` and past the magic, version and length,
///   big-endian only for multi-byte dtypes, and a size in bytes within `isize::MAX`;
/// - the bytes after the header are not looked at: `data` cut at the data offset gives the
///   same header;
/// - the header that [`header_bytes`] writes for the parsed dtype, order and shape parses
///   back to them, in native byte order, with the data 64-byte aligned.
pub(crate) fn check_npy_header(data: &[u8]) -> Result<(), String> {
    let path = Path::new(NPY_PATH);
    let header = match parse_header(data, path) {
        Ok(header) => header,
        Err(Error::Format { path: p, reason }) if p == path && !reason.is_empty() => return Ok(()),
        Err(other) => {
            return Err(format!(
                "{data:?}: not a format error naming the file: {other}"
            ))
        }
    };
    let NpyHeader {
        dtype,
        big_endian,
        fortran_order,
        ref shape,
        data_offset,
    } = header;
    if !(10..=data.len()).contains(&data_offset) {
        return Err(format!(
            "{data:?}: data offset {data_offset} outside 10..={}",
            data.len()
        ));
    }
    if big_endian && dtype.size() == 1 {
        return Err(format!("{data:?}: big-endian {dtype}"));
    }
    let nbytes = shape
        .iter()
        .filter(|&&n| n != 0)
        .try_fold(dtype.size(), |acc, &n| acc.checked_mul(n))
        .and_then(|n| isize::try_from(n).ok());
    if nbytes.is_none() {
        return Err(format!(
            "{data:?}: accepted shape {shape:?} of {dtype}, whose size overflows isize"
        ));
    }
    match parse_header(&data[..data_offset], path) {
        Ok(cut) if cut == header => {}
        other => {
            return Err(format!(
                "{data:?}: cut at the data offset {data_offset}, parses to {other:?} \
                 instead of {header:?}"
            ))
        }
    }
    let written = header_bytes(dtype, fortran_order, shape);
    let back = parse_header(&written, path)
        .map_err(|e| format!("header_bytes({dtype}, {fortran_order}, {shape:?}) fails: {e}"))?;
    let want = NpyHeader {
        dtype,
        big_endian: dtype.size() > 1 && cfg!(target_endian = "big"),
        fortran_order,
        shape: shape.clone(),
        data_offset: written.len(),
    };
    if back != want || !written.len().is_multiple_of(64) {
        return Err(format!(
            "header_bytes({dtype}, {fortran_order}, {shape:?}) is {} bytes and parses to \
             {back:?}, not {want:?}",
            written.len()
        ));
    }
    Ok(())
}

/// The depth of the tree of `expr`, counted as the parser counts it: a leaf is 1 deep, a node
/// one more than its deepest child (the items of an index are children of the index).
fn depth(expr: &Expr) -> usize {
    let deepest = |xs: &mut dyn Iterator<Item = &Expr>| xs.map(depth).max().unwrap_or(0);
    1 + match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Str(_)
        | ExprKind::Name(_) => 0,
        ExprKind::Unary { operand, .. } => depth(operand),
        ExprKind::Binary { lhs, rhs, .. } => depth(lhs).max(depth(rhs)),
        ExprKind::Call { func, args, kwargs } => depth(func)
            .max(deepest(&mut args.iter()))
            .max(deepest(&mut kwargs.iter().map(|(_, v)| v))),
        ExprKind::Attr { value, .. } => depth(value),
        ExprKind::Index { value, items } => {
            depth(value).max(deepest(&mut items.iter().flat_map(item_exprs)))
        }
        ExprKind::Tuple(items) | ExprKind::List(items) => deepest(&mut items.iter()),
    }
}

/// The expressions inside an index item.
fn item_exprs(item: &IndexItem) -> Vec<&Expr> {
    match item {
        IndexItem::Index(e) => vec![e],
        IndexItem::Slice { start, stop, step } => {
            [start, stop, step].into_iter().flatten().collect()
        }
        IndexItem::NewAxis | IndexItem::Ellipsis => Vec::new(),
    }
}

/// The direct children of `expr`.
fn children(expr: &Expr) -> Vec<&Expr> {
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Str(_)
        | ExprKind::Name(_) => Vec::new(),
        ExprKind::Unary { operand, .. } => vec![operand],
        ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
        ExprKind::Call { func, args, kwargs } => std::iter::once(&**func)
            .chain(args)
            .chain(kwargs.iter().map(|(_, v)| v))
            .collect(),
        ExprKind::Attr { value, .. } => vec![value],
        ExprKind::Index { value, items } => std::iter::once(&**value)
            .chain(items.iter().flat_map(item_exprs))
            .collect(),
        ExprKind::Tuple(items) | ExprKind::List(items) => items.iter().collect(),
    }
}

/// The first column of a node of `expr` that is not within a source of `len` characters.
fn first_column_outside(expr: &Expr, len: usize) -> Option<usize> {
    if !(1..=len).contains(&expr.col) {
        return Some(expr.col);
    }
    children(expr)
        .into_iter()
        .find_map(|c| first_column_outside(c, len))
}

/// `expr` with every column set to 0, to compare trees whatever their layout.
fn erase(expr: &Expr) -> Expr {
    let all = |xs: &[Expr]| xs.iter().map(erase).collect::<Vec<_>>();
    let boxed = |e: &Expr| Box::new(erase(e));
    let opt = |e: &Option<Expr>| e.as_ref().map(erase);
    let kind = match &expr.kind {
        ExprKind::Unary { op, operand } => ExprKind::Unary {
            op: *op,
            operand: boxed(operand),
        },
        ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
            op: *op,
            lhs: boxed(lhs),
            rhs: boxed(rhs),
        },
        ExprKind::Call { func, args, kwargs } => ExprKind::Call {
            func: boxed(func),
            args: all(args),
            kwargs: kwargs.iter().map(|(k, v)| (k.clone(), erase(v))).collect(),
        },
        ExprKind::Attr { value, name } => ExprKind::Attr {
            value: boxed(value),
            name: name.clone(),
        },
        ExprKind::Index { value, items } => ExprKind::Index {
            value: boxed(value),
            items: items
                .iter()
                .map(|item| match item {
                    IndexItem::Index(e) => IndexItem::Index(erase(e)),
                    IndexItem::Slice { start, stop, step } => IndexItem::Slice {
                        start: opt(start),
                        stop: opt(stop),
                        step: opt(step),
                    },
                    other => other.clone(),
                })
                .collect(),
        },
        ExprKind::Tuple(items) => ExprKind::Tuple(all(items)),
        ExprKind::List(items) => ExprKind::List(all(items)),
        leaf => leaf.clone(),
    };
    Expr::new(kind, 0)
}
