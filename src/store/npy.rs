//! `.npy` files, memory-mapped.
//!
//! The [NumPy `.npy` format](https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html)
//! is a magic string, a version, a header length, a Python dict literal describing the array
//! (`{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`) padded with spaces and a
//! newline, then the raw element data.
//!
//! * [`parse_header`] validates a header and [`header_bytes`] writes one.
//! * [`NpyMap`] maps an existing file read-only and exposes its data bytes.
//! * [`NpyWriter`] creates a file through a temporary file and a writable map, and renames it into
//!   place only when [`NpyWriter::finish`] succeeds.

use super::mmap::{map_readonly, populate, release};
use crate::element::DType;
use crate::error::{Error, Result};
use memmap2::{Mmap, MmapMut};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The data of a written file starts at a multiple of this many bytes (as NumPy writes it).
const ALIGN: usize = 64;

/// Nesting depth beyond which a header dict is rejected (real headers nest at most 3 deep).
const MAX_DEPTH: usize = 32;

/// What tessera can read, for error messages.
const SUPPORTED: &str = "supported dtypes are bool (b1), int8/int16/int32/int64 (i1/i2/i4/i8), \
     uint8/uint16/uint32/uint64 (u1/u2/u4/u8), float32 (f4) and float64 (f8), \
     little- or big-endian";

/// The parsed header of a `.npy` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// The element type.
    pub dtype: DType,
    /// Whether the elements are stored big-endian (always `false` for one-byte dtypes).
    pub big_endian: bool,
    /// Whether the data is in Fortran (column-major) order rather than C (row-major) order.
    pub fortran_order: bool,
    /// The shape; empty for a 0-d array.
    pub shape: Vec<usize>,
    /// Byte offset of the element data from the start of the file (the total header length).
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (the product of the shape; 1 for a 0-d array).
    ///
    /// Saturates at `usize::MAX` for a hand-built header whose shape overflows; headers from
    /// [`parse_header`] never do.
    pub fn len(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .unwrap_or(usize::MAX)
    }

    /// Whether the array has no elements (some axis has length 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of bytes of element data (`len() * dtype.size()`).
    ///
    /// Saturates at `usize::MAX` for a hand-built header whose size overflows; headers from
    /// [`parse_header`] never do.
    pub fn nbytes(&self) -> usize {
        self.shape
            .iter()
            .try_fold(self.dtype.size(), |acc, &n| acc.checked_mul(n))
            .unwrap_or(usize::MAX)
    }
}

/// The number of bytes of an array of `dtype` and `shape`, or `None` if the product of its
/// non-zero axis lengths times the dtype size exceeds `isize::MAX` (the most a slice can hold).
///
/// Axes of length 0 are skipped in the check, as NumPy does, so that any partial product of the
/// shape (a stride, a chunk's size) is known not to overflow either.
pub(crate) fn checked_nbytes(dtype: DType, shape: &[usize]) -> Option<usize> {
    let nonzero = shape
        .iter()
        .filter(|&&n| n != 0)
        .try_fold(dtype.size(), |acc, &n| acc.checked_mul(n))
        .filter(|&n| isize::try_from(n).is_ok())?;
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

/// Parses and validates the header of a `.npy` file from its first bytes.
///
/// `bytes` must hold at least the whole header (the whole file, or its first
/// [`data_offset`](NpyHeader::data_offset) bytes); the data is not looked at, so its length is
/// not checked here ([`NpyMap::open`] checks it). `path` is used only in error messages.
///
/// Accepts format versions 1.0, 2.0 and 3.0; the header dict in Python literal syntax with its
/// keys in any order; `descr` of `bool`, `int8..int64`, `uint8..uint64`, `float32` or `float64`
/// with byte order `<`, `>`, `=` (native) or `|` (not applicable).
///
/// # Errors
/// [`Error::Format`] naming `path` and the problem: too short or bad magic (not a `.npy`
/// file), an unknown version, a header length past the end of `bytes`, a malformed header dict
/// (which key is missing or malformed), an unsupported dtype (strings, objects, complex, float16,
/// structured, ...), or a shape whose size in bytes overflows (exceeds `isize::MAX`, not
/// counting axes of length 0, as NumPy checks it).
pub fn parse_header(bytes: &[u8], path: &Path) -> Result<NpyHeader> {
    let err = |reason: String| Error::format(path, reason);
    if bytes.len() < MAGIC.len() {
        return Err(err(format!(
            "not a .npy file: too short ({} bytes)",
            bytes.len()
        )));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(err("not a .npy file (bad magic)".into()));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => {
            return Err(err(format!(
                "truncated .npy header: the file ends after {} bytes, inside the version number",
                bytes.len()
            )))
        }
    };
    let len_size = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"
            )))
        }
    };
    let prefix = 8 + len_size;
    let header_len = match bytes.get(8..prefix) {
        Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
        Some(&[a, b, c, d]) => {
            let n = u32::from_le_bytes([a, b, c, d]);
            usize::try_from(n)
                .map_err(|_| err(format!("header length {n} does not fit in memory")))?
        }
        _ => {
            return Err(err(format!(
                "truncated .npy header: the file ends after {} bytes, inside the header length",
                bytes.len()
            )))
        }
    };
    let data_offset = prefix
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            err(format!(
                "header length {header_len} extends past the end of the file \
                 (header would end at byte {}, file has {} bytes)",
                prefix as u128 + header_len as u128,
                bytes.len()
            ))
        })?;
    let raw = &bytes[prefix..data_offset];
    // Versions 1.0 and 2.0 are latin-1, 3.0 is UTF-8.
    let text: String = if major == 3 {
        std::str::from_utf8(raw)
            .map_err(|e| err(format!("malformed header: not valid UTF-8 ({e})")))?
            .to_owned()
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let fields = parse_dict(&text).map_err(|reason| {
        // A well-formed header of a dtype tessera does not hold is not called malformed.
        let what = if reason.starts_with(UNSUPPORTED) {
            ""
        } else {
            "malformed header: "
        };
        err(format!(
            "{what}{reason}; header is {}",
            abbreviate(text.trim_end())
        ))
    })?;
    let (dtype, big_endian, fortran_order, shape) = fields;
    if checked_nbytes(dtype, &shape).is_none() {
        return Err(err(format!(
            "shape {shape:?} of {dtype} is too large: its size in bytes overflows \
             (more than isize::MAX, ignoring axes of length 0)"
        )));
    }
    Ok(NpyHeader {
        dtype,
        big_endian,
        fortran_order,
        shape,
        data_offset,
    })
}

/// The header of a `.npy` file for a native-endian (little-endian on every common platform)
/// array: the magic, version 1.0 (or 2.0 when the dict needs more than 65535 bytes), the header
/// length and the dict `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`, padded
/// with spaces and a final `'\n'` so that the data starts at a multiple of 64 bytes, as NumPy
/// writes it.
///
/// # Panics
/// If the header would exceed 4 GiB, which takes a shape of hundreds of millions of axes.
/// [`NpyWriter::create`] returns an error instead.
pub fn header_bytes(dtype: DType, fortran_order: bool, shape: &[usize]) -> Vec<u8> {
    match try_header_bytes(dtype, fortran_order, shape) {
        Some(h) => h,
        None => panic!("a .npy header for {} axes exceeds 4 GiB", shape.len()),
    }
}

/// [`header_bytes`], or `None` if the header does not fit in a version 2.0 header.
fn try_header_bytes(dtype: DType, fortran_order: bool, shape: &[usize]) -> Option<Vec<u8>> {
    use fmt::Write as _;
    let order = if dtype.size() == 1 {
        '|'
    } else if cfg!(target_endian = "big") {
        '>'
    } else {
        '<'
    };
    let mut dict = format!(
        "{{'descr': '{order}{}{}', 'fortran_order': {}, 'shape': (",
        dtype.kind_char(),
        dtype.size(),
        if fortran_order { "True" } else { "False" }
    );
    for (i, n) in shape.iter().enumerate() {
        if i > 0 {
            dict.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(dict, "{n}");
    }
    if shape.len() == 1 {
        dict.push(',');
    }
    dict.push_str("), }");
    // As NumPy: the dict, at least one space, and a '\n' that ends the header at a multiple of
    // 64 bytes; version 1.0 if the header length fits in its u16, else 2.0 with a u32.
    let (major, prefix, header_len) = [
        (1u8, 10usize, u16::MAX as usize),
        (2, 12, u32::MAX as usize),
    ]
    .into_iter()
    .find_map(|(major, prefix, max)| {
        let unpadded = prefix.checked_add(dict.len())?.checked_add(1)?;
        let total = (unpadded / ALIGN).checked_add(1)?.checked_mul(ALIGN)?;
        let header_len = total - prefix;
        (header_len <= max).then_some((major, prefix, header_len))
    })?;
    let total = prefix + header_len;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&u16::try_from(header_len).ok()?.to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(header_len).ok()?.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    Some(out)
}

/// Shortens a header for an error message.
fn abbreviate(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}... ({} characters)", text.chars().count())
    }
}

/// A Python literal, as far as `.npy` headers use them.
#[derive(Clone, Debug, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    None,
    /// An integer, as its decimal digits with an optional leading `-`.
    Int(String),
    Tuple(Vec<PyValue>),
    List(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
}

impl fmt::Display for PyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, items: &[PyValue]) -> fmt::Result {
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v}")?;
            }
            Ok(())
        }
        match self {
            PyValue::Str(s) => write!(f, "'{}'", s.escape_debug()),
            PyValue::Bool(true) => f.write_str("True"),
            PyValue::Bool(false) => f.write_str("False"),
            PyValue::None => f.write_str("None"),
            PyValue::Int(s) => f.write_str(s),
            PyValue::Tuple(items) => {
                f.write_str("(")?;
                seq(f, items)?;
                f.write_str(if items.len() == 1 { ",)" } else { ")" })
            }
            PyValue::List(items) => {
                f.write_str("[")?;
                seq(f, items)?;
                f.write_str("]")
            }
            PyValue::Dict(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A recursive-descent parser of the Python literals found in `.npy` headers.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')) {
            self.pos += 1;
        }
    }

    fn describe_here(&self) -> String {
        match self.text[self.pos..].chars().next() {
            Some(c) => format!("{c:?} at character {}", self.pos),
            None => "the end of the header".to_owned(),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {:?}, found {}",
                char::from(c),
                self.describe_here()
            ))
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyValue, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".to_owned());
        }
        self.skip_ws();
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        return Ok(PyValue::Dict(items));
                    }
                    let k = self.value(depth + 1)?;
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => {
                            return Err(format!(
                                "expected ',' or '}}' in dict, found {}",
                                self.describe_here()
                            ))
                        }
                    }
                }
            }
            Some(open @ (b'(' | b'[')) => {
                self.pos += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                let mut trailing_comma = false;
                loop {
                    self.skip_ws();
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => {
                            self.pos += 1;
                            trailing_comma = true;
                        }
                        Some(c) if c == close => trailing_comma = false,
                        _ => {
                            return Err(format!(
                                "expected ',' or {:?}, found {}",
                                char::from(close),
                                self.describe_here()
                            ))
                        }
                    }
                }
                if open == b'[' {
                    Ok(PyValue::List(items))
                } else if items.len() == 1 && !trailing_comma {
                    // `(x)` is a parenthesized value, not a tuple.
                    Ok(items.pop().unwrap_or(PyValue::None))
                } else {
                    Ok(PyValue::Tuple(items))
                }
            }
            Some(b'\'' | b'"') => self.string(),
            Some(b'u' | b'U' | b'b' | b'B')
                if matches!(self.text.as_bytes().get(self.pos + 1), Some(b'\'' | b'"')) =>
            {
                self.pos += 1;
                self.string()
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                if self.peek() == Some(b'-') {
                    self.pos += 1;
                }
                let digits = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                if self.pos == digits {
                    return Err(format!(
                        "expected a digit after '-', found {}",
                        self.describe_here()
                    ));
                }
                let s = self.text[start..self.pos].to_owned();
                // Python 2 wrote long integers with an `L` suffix.
                if matches!(self.peek(), Some(b'L' | b'l')) {
                    self.pos += 1;
                }
                if matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
                {
                    return Err(format!(
                        "expected an integer, found {}",
                        self.describe_here()
                    ));
                }
                Ok(PyValue::Int(s))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
                    self.pos += 1;
                }
                match &self.text[start..self.pos] {
                    "True" => Ok(PyValue::Bool(true)),
                    "False" => Ok(PyValue::Bool(false)),
                    "None" => Ok(PyValue::None),
                    other => Err(format!(
                        "unexpected name {other:?} at character {start} (not a literal)"
                    )),
                }
            }
            _ => Err(format!("expected a value, found {}", self.describe_here())),
        }
    }

    fn string(&mut self) -> Result<PyValue, String> {
        let start = self.pos;
        let quote = self.peek();
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.text[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        other => other,
                    });
                }
                c if Some(c as u32) == quote.map(u32::from) => {
                    self.pos += i + c.len_utf8();
                    return Ok(PyValue::Str(out));
                }
                c => out.push(c),
            }
        }
        Err(format!("unterminated string starting at character {start}"))
    }
}

/// Parses the header dict into `(dtype, big_endian, fortran_order, shape)`; the error is the
/// reason only.
fn parse_dict(text: &str) -> Result<(DType, bool, bool, Vec<usize>), String> {
    let mut parser = Parser { text, pos: 0 };
    let value = parser.value(0)?;
    parser.skip_ws();
    if parser.pos != text.len() {
        return Err(format!(
            "unexpected {} after the header dict",
            parser.describe_here()
        ));
    }
    let PyValue::Dict(items) = value else {
        return Err(format!("the header is not a dict but {value}"));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in items {
        let slot = match &k {
            PyValue::Str(s) if s == "descr" => &mut descr,
            PyValue::Str(s) if s == "fortran_order" => &mut fortran,
            PyValue::Str(s) if s == "shape" => &mut shape,
            _ => {
                return Err(format!(
                    "unexpected key {k} in the header dict (expected 'descr', 'fortran_order' and 'shape')"
                ))
            }
        };
        if slot.is_some() {
            return Err(format!("duplicate key {k} in the header dict"));
        }
        *slot = Some(v);
    }
    let missing = |key: &str| format!("the header dict has no '{key}' key");
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = fortran.ok_or_else(|| missing("fortran_order"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;

    let (dtype, big_endian) = parse_descr(&descr)?;
    let PyValue::Bool(fortran_order) = fortran else {
        return Err(format!(
            "malformed 'fortran_order': expected True or False, found {fortran}"
        ));
    };
    let bad_shape =
        || format!("malformed 'shape': expected a tuple of non-negative integers, found {shape}");
    let PyValue::Tuple(axes) = &shape else {
        return Err(bad_shape());
    };
    let mut dims = Vec::with_capacity(axes.len());
    for axis in axes {
        let PyValue::Int(digits) = axis else {
            return Err(bad_shape());
        };
        if digits.starts_with('-') {
            return Err(format!(
                "malformed 'shape': axis length {digits} is negative in {shape}"
            ));
        }
        let n: usize = digits.parse().map_err(|_| {
            format!("malformed 'shape': axis length {digits} does not fit in usize in {shape}")
        })?;
        dims.push(n);
    }
    Ok((dtype, big_endian, fortran_order, dims))
}

/// How [`parse_descr`] begins the reason for a dtype tessera does not hold.
const UNSUPPORTED: &str = "unsupported dtype";

/// Parses a `descr` into the dtype and whether it is big-endian.
fn parse_descr(descr: &PyValue) -> Result<(DType, bool), String> {
    let s = match descr {
        PyValue::Str(s) => s.as_str(),
        PyValue::List(_) => {
            return Err(format!(
                "{UNSUPPORTED}: structured dtype {descr} is not supported; {SUPPORTED}"
            ))
        }
        other => {
            return Err(format!(
                "malformed 'descr': expected a dtype string such as '<f8', found {other}"
            ))
        }
    };
    let (order, code) = match s.as_bytes().first() {
        Some(&c @ (b'<' | b'>' | b'=' | b'|')) => (Some(c), &s[1..]),
        _ => (None, s),
    };
    let dtype = match code {
        "b1" | "?" => Some(DType::Bool),
        "i1" => Some(DType::I8),
        "i2" => Some(DType::I16),
        "i4" => Some(DType::I32),
        "i8" => Some(DType::I64),
        "u1" => Some(DType::U8),
        "u2" => Some(DType::U16),
        "u4" => Some(DType::U32),
        "u8" => Some(DType::U64),
        "f4" => Some(DType::F32),
        "f8" => Some(DType::F64),
        // A bare NumPy name such as 'float64'.
        name if order.is_none() => DType::from_name(name).ok(),
        _ => None,
    };
    let Some(dtype) = dtype else {
        let kind = match code.as_bytes().first() {
            Some(b'U') => " (unicode strings)",
            Some(b'S' | b'a') => " (byte strings)",
            Some(b'O') => " (Python objects)",
            Some(b'c') => " (complex numbers)",
            Some(b'V') => " (raw void data)",
            Some(b'M') => " (datetimes)",
            Some(b'm') => " (timedeltas)",
            Some(b'e') => " (float16)",
            Some(b'f') if code == "f2" => " (float16)",
            Some(b'g') => " (long double)",
            Some(b'f') if code == "f12" || code == "f16" => " (long double)",
            _ => "",
        };
        return Err(format!(
            "{UNSUPPORTED} '{}'{kind}; {SUPPORTED}",
            s.escape_debug()
        ));
    };
    let big_endian = dtype.size() > 1
        && match order {
            Some(b'>') => true,
            Some(b'<') => false,
            _ => cfg!(target_endian = "big"),
        };
    Ok((dtype, big_endian))
}

/// A read-only memory map of a `.npy` file.
///
/// [`open`](NpyMap::open) validates the header and that the file holds all the data the
/// header promises; [`data`](NpyMap::data) then gives exactly those bytes. Bytes after the data
/// are ignored, as NumPy ignores them.
///
/// The file must not be truncated or modified by anyone while it is mapped (reading a page that
/// was truncated away kills the process with `SIGBUS`).
#[derive(Debug)]
pub struct NpyMap {
    path: PathBuf,
    header: NpyHeader,
    map: Option<Mmap>,
}

impl NpyMap {
    /// Maps the `.npy` file at `path` and validates it.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or mapped; [`Error::Format`] for anything
    /// [`parse_header`] rejects, and for a data section shorter than the shape needs
    /// (`truncated: expected N bytes of data, found M`).
    pub fn open(path: &Path) -> Result<NpyMap> {
        let map = map_readonly(path)?;
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let header = parse_header(bytes, path)?;
        let found = bytes.len() - header.data_offset;
        let expected = header.nbytes();
        if found < expected {
            return Err(Error::format(
                path,
                format!(
                    "truncated: expected {expected} bytes of data, found {found} \
                     (shape {:?}, dtype {})",
                    header.shape, header.dtype
                ),
            ));
        }
        Ok(NpyMap {
            path: path.to_owned(),
            header,
            map,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Maps the pages of `range` (byte offsets within [`data`](NpyMap::data)) into the process
    /// in one system call (`MADV_POPULATE_READ`) instead of one page fault per few pages. A hint:
    /// errors (old kernels) are ignored.
    pub fn populate(&self, range: std::ops::Range<usize>) {
        populate(self.map.as_ref(), self.header.data_offset, range);
    }

    /// Drops the pages of `range` from the process's resident set (a hint; see
    /// [`populate`](NpyMap::populate)).
    pub(crate) fn release(&self, range: std::ops::Range<usize>) {
        release(self.map.as_ref(), self.header.data_offset, range);
    }

    /// The element data: exactly [`nbytes`](NpyHeader::nbytes) bytes starting at
    /// [`data_offset`](NpyHeader::data_offset), in the file's byte order
    /// ([`big_endian`](NpyHeader::big_endian)) and memory order
    /// ([`fortran_order`](NpyHeader::fortran_order)).
    ///
    /// The slice starts at the mapping (page-aligned) plus `data_offset`: NumPy writes offsets
    /// that are multiples of 64 (16 in old versions), but a file with an odd offset gives an
    /// unaligned slice, which a typed view such as
    /// [`Element::from_bytes`](crate::Element::from_bytes) rejects.
    pub fn data(&self) -> &[u8] {
        let start = self.header.data_offset;
        let end = start + self.header.nbytes();
        self.map
            .as_deref()
            .and_then(|m| m.get(start..end))
            .unwrap_or(&[])
    }
}

/// Allocates the file's blocks up front where the file system can: the data is written
/// through a memory map, where a disk that fills up would stop the process with a bus error
/// instead of an error the writer can report. File systems that cannot (`EOPNOTSUPP`) keep the
/// file sparse.
fn reserve(file: &fs::File, len: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if len == 0 {
            return Ok(());
        }
        let len =
            libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::FileTooLarge))?;
        loop {
            // SAFETY: a plain system call on an open descriptor this function borrows.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => return Ok(()),
                _ => return Err(e),
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, len);
        Ok(())
    }
}

/// A `.npy` file being written through a writable memory map.
///
/// [`create`](NpyWriter::create) makes a hidden temporary file next to the target
/// (`.name.npy.tessera-partial-HOST-PID.XXXXXX` in the same directory; those of killed runs
/// are removed first), sizes it for the header and the data (its blocks allocated where the
/// file system can, so that a full disk is an error here and not a bus error later; unwritten
/// data reads as zeros) and writes the header. The data is
/// then written through [`data_mut`](NpyWriter::data_mut) or, from several threads,
/// [`data_ptr`](NpyWriter::data_ptr). [`finish`](NpyWriter::finish) flushes the file and renames
/// it onto the target in one atomic step. Dropping the writer without finishing (an error, a
/// panic, an interrupted run) removes the temporary file, so a file at the target path is always
/// complete.
///
/// The data is written native-endian in C order, as [`header_bytes`] describes it.
#[derive(Debug)]
pub struct NpyWriter {
    path: PathBuf,
    overwrite: bool,
    header: NpyHeader,
    /// Start of the element data inside `map`.
    data: NonNull<u8>,
    // Field order matters: the map is dropped (unmapped) before the temporary file is removed.
    map: MmapMut,
    tmp: tempfile::NamedTempFile,
}

// SAFETY: `data` points into `map`, which the writer owns and which is itself `Send` and `Sync`.
// The safe API only hands out access to the data through `&mut self` (`data_mut`); `data_ptr`
// returns a raw pointer whose every use is `unsafe` and subject to its documented contract.
unsafe impl Send for NpyWriter {}
// SAFETY: see `Send`; `&NpyWriter` gives no safe access to the data.
unsafe impl Sync for NpyWriter {}

impl NpyWriter {
    /// Creates a writer for an array of `dtype` and `shape` (C order) that will be renamed onto
    /// `path` by [`finish`](NpyWriter::finish).
    ///
    /// # Errors
    /// [`Error::Exists`] if `path` exists and `overwrite` is false (the existing file is left
    /// untouched); [`Error::Io`] naming `path` if it is a directory, its parent directory is
    /// missing, the location is not writable or has no room for the file; [`Error::Shape`] if
    /// the array's size overflows `usize`.
    pub fn create(
        path: &Path,
        dtype: DType,
        shape: &[usize],
        overwrite: bool,
    ) -> Result<NpyWriter> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::io(
                    path,
                    io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
                ))
            }
            Ok(_) if !overwrite => return Err(Error::Exists(path.to_owned())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        let Some(name) = path.file_name() else {
            return Err(Error::io(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
            ));
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let nbytes = checked_nbytes(dtype, shape);
        let header = try_header_bytes(dtype, false, shape);
        let (Some(nbytes), Some(header)) = (nbytes, header) else {
            return Err(Error::Shape(format!(
                "an array of shape {shape:?} and dtype {dtype} is too large to write"
            )));
        };
        let Some(total) = header.len().checked_add(nbytes) else {
            return Err(Error::Shape(format!(
                "an array of shape {shape:?} and dtype {dtype} is too large to write"
            )));
        };

        // `.NAME.tessera-partial-HOST-PID.XXXXXX`; those of killed runs are removed first.
        let leaf = name.to_string_lossy();
        super::remove_stale_asides(path, true);
        let prefix = format!("{}.", super::aside_name(&leaf, "partial"));
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).rand_bytes(6);
        #[cfg(unix)]
        {
            // tempfile's default is 0o600; give the result the usual permissions (umask applies).
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(dir).map_err(|e| Error::io(path, e))?;
        tmp.as_file()
            .set_len(total as u64)
            .map_err(|e| Error::io(path, e))?;
        reserve(tmp.as_file(), total).map_err(|e| {
            Error::io(
                path,
                io::Error::new(
                    e.kind(),
                    format!("reserving {total} bytes for the output: {e}"),
                ),
            )
        })?;
        // SAFETY: the file was just created with a fresh random name and is owned by this
        // writer; nothing else is expected to truncate it while it is mapped.
        let mut map = unsafe { MmapMut::map_mut(tmp.as_file()) }.map_err(|e| Error::io(path, e))?;
        map[..header.len()].copy_from_slice(&header);
        // SAFETY: `header.len() <= total == map.len()`, so the offset stays within (or one past
        // the end of) the mapping, and a mapping's pointer is never null.
        let data = unsafe { NonNull::new_unchecked(map.as_mut_ptr().add(header.len())) };
        Ok(NpyWriter {
            path: path.to_owned(),
            overwrite,
            header: NpyHeader {
                dtype,
                big_endian: dtype.size() > 1 && cfg!(target_endian = "big"),
                fortran_order: false,
                shape: shape.to_vec(),
                data_offset: header.len(),
            },
            data,
            map,
            tmp,
        })
    }

    /// The header being written.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// The target path (where [`finish`](NpyWriter::finish) puts the file).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Start of the element data: [`data_len`](NpyWriter::data_len) bytes, native-endian, C
    /// order, 64-byte aligned, initially zero.
    ///
    /// This is for parallel writes of disjoint parts of the data (one block per thread).
    ///
    /// # Safety (for the caller)
    /// Obtaining the pointer is safe; using it is not. A caller that writes through it must
    /// ensure that:
    /// * it only accesses `ptr..ptr + data_len()`;
    /// * it stops using the pointer before the writer is finished or dropped (the mapping goes
    ///   away then), i.e. every write happens-before [`finish`](NpyWriter::finish);
    /// * no two threads access the same byte at the same time unless all of them only read, and
    ///   no reference from [`data_mut`](NpyWriter::data_mut) is alive during the writes.
    pub fn data_ptr(&self) -> *mut u8 {
        self.data.as_ptr()
    }

    /// Number of bytes of element data (`shape` product times the dtype size).
    pub fn data_len(&self) -> usize {
        self.map.len() - self.header.data_offset
    }

    /// The element data as a mutable slice, for writing from one thread.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let start = self.header.data_offset;
        &mut self.map[start..]
    }

    /// Flushes the data to disk and atomically renames the temporary file onto the target path.
    ///
    /// # Errors
    /// [`Error::Io`] naming the target path if flushing or renaming fails;
    /// [`Error::Exists`] if `overwrite` was false and a file appeared at the path meanwhile.
    /// The temporary file is removed on error.
    pub fn finish(self) -> Result<()> {
        let NpyWriter {
            path,
            overwrite,
            map,
            tmp,
            ..
        } = self;
        map.flush().map_err(|e| Error::io(&path, e))?;
        drop(map);
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        let persisted = if overwrite {
            tmp.persist(&path)
        } else {
            match tmp.persist_noclobber(&path) {
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(Error::Exists(path))
                }
                // A file system without atomic no-replace renames or hard links (FAT, some
                // network file systems): fall back to a plain rename if the path is still free.
                Err(e)
                    if matches!(
                        fs::symlink_metadata(&path),
                        Err(m) if m.kind() == io::ErrorKind::NotFound
                    ) =>
                {
                    e.file.persist(&path)
                }
                other => other,
            }
        };
        match persisted {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::io(&path, e.error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.npy")
    }

    /// A version 1.0 file prefix around `dict`, padded like NumPy.
    fn v1(dict: &str) -> Vec<u8> {
        let mut h = dict.to_owned();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out
    }

    fn reason(bytes: &[u8]) -> String {
        match parse_header(bytes, p()) {
            Err(Error::Format { path, reason }) => {
                assert_eq!(path, p());
                reason
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn numpy_style_headers() {
        let h = parse_header(
            &v1("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }"),
            p(),
        )
        .unwrap();
        assert_eq!(h.dtype, DType::F64);
        assert_eq!(h.shape, vec![3, 4]);
        assert!(!h.fortran_order && !h.big_endian);
        assert_eq!(h.data_offset, 128);
        assert_eq!(h.nbytes(), 96);

        let h = parse_header(
            &v1("{\"shape\": (5L,), 'fortran_order' : True ,'descr':'>i4'}"),
            p(),
        )
        .unwrap();
        assert_eq!(h.dtype, DType::I32);
        assert_eq!(h.shape, vec![5]);
        assert!(h.fortran_order && h.big_endian);

        let h = parse_header(
            &v1("{'descr': '|b1', 'fortran_order': False, 'shape': ()}"),
            p(),
        )
        .unwrap();
        assert_eq!((h.dtype, h.len(), h.nbytes()), (DType::Bool, 1, 1));

        let h = parse_header(
            &v1("{'descr': '=u2', 'fortran_order': False, 'shape': (2, 0)}"),
            p(),
        )
        .unwrap();
        assert_eq!(h.big_endian, cfg!(target_endian = "big"));
        assert!(h.is_empty());

        // One-byte dtypes are never "big-endian".
        let h = parse_header(
            &v1("{'descr': '>u1', 'fortran_order': False, 'shape': (2,)}"),
            p(),
        )
        .unwrap();
        assert!(!h.big_endian);
    }

    #[test]
    fn dict_errors_name_the_key() {
        let cases = [
            ("{'descr': '<f8', 'fortran_order': False}", "no 'shape' key"),
            ("{'shape': (1,), 'fortran_order': False}", "no 'descr' key"),
            ("{'shape': (1,), 'descr': '<f8'}", "no 'fortran_order' key"),
            (
                "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}",
                "malformed 'fortran_order'",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1.5,)}",
                "malformed",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': [1, 2]}",
                "malformed 'shape'",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (5)}",
                "malformed 'shape'",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
                "negative",
            ),
            (
                "{'descr': 8, 'fortran_order': False, 'shape': (1,)}",
                "malformed 'descr'",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "unexpected key 'x'",
            ),
            (
                "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
                "duplicate key",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)",
                "expected",
            ),
            (
                "{'descr': '<f8, 'fortran_order': False, 'shape': (1,)}",
                "malformed header",
            ),
            ("['descr']", "not a dict"),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "does not fit",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} junk",
                "after the header dict",
            ),
            (
                "{'descr': '<f8', 'fortran_order': Flase, 'shape': (1,)}",
                "Flase",
            ),
        ];
        for (dict, want) in cases {
            let r = reason(&v1(dict));
            assert!(r.contains(want), "{dict}: {r}");
            assert!(r.contains("header"), "{dict}: {r}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let dict = format!("{}{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(reason(&v1(&dict)).contains("nested too deeply"));
    }

    #[test]
    fn pyvalue_display_round_trips() {
        let text = "{'a': [('x', '<f8'), ('y', '<i4', (2,))], 'b': None, 'c': (), 'd': -3}";
        let mut parser = Parser { text, pos: 0 };
        let v = parser.value(0).unwrap();
        assert_eq!(v.to_string(), text);
    }

    #[test]
    fn header_is_aligned_and_padded() {
        for ndim in 0..40 {
            let shape: Vec<usize> = (0..ndim)
                .map(|i| if i % 8 == 0 { 1000 + i } else { i % 2 })
                .collect();
            let h = header_bytes(DType::F32, ndim % 2 == 0, &shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(h.last(), Some(&b'\n'));
            assert_eq!(&h[6..8], &[1, 0]);
            let parsed = parse_header(&h, p()).unwrap();
            assert_eq!(parsed.shape, shape);
            assert_eq!(parsed.data_offset, h.len());
        }
    }
}
