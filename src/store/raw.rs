//! Raw binary files (no header) holding one array, memory-mapped.
//!
//! The caller supplies what a `.npy` header would say: dtype, shape, memory order, byte order,
//! and the byte offset at which the data starts.

use super::mmap::map_readonly;
use super::npy::checked_nbytes;
use crate::element::DType;
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::path::{Path, PathBuf};

/// The memory order of a multi-dimensional array in a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// C (row-major) order: the last axis varies fastest.
    #[default]
    C,
    /// Fortran (column-major) order: the first axis varies fastest.
    F,
}

/// A read-only memory map of a raw binary file holding one array.
///
/// The file must not be truncated or modified by anyone while it is mapped (reading a page that
/// was truncated away kills the process with `SIGBUS`).
#[derive(Debug)]
pub struct RawMap {
    path: PathBuf,
    dtype: DType,
    shape: Vec<usize>,
    order: Order,
    big_endian: bool,
    offset: usize,
    nbytes: usize,
    map: Option<Mmap>,
}

impl RawMap {
    /// Memory-maps the raw binary file at `path` holding one array of `shape` and `dtype` in
    /// `order`, big-endian if `big_endian` (else little-endian), whose data starts at byte
    /// `offset` (bytes before it, such as a foreign header, are ignored).
    ///
    /// The file must be exactly `offset + nbytes` long, where `nbytes` is the product of the
    /// shape times the dtype size: a longer or shorter file means that the shape, dtype or offset
    /// is wrong.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or mapped; [`Error::Format`] stating both sizes
    /// if the file is not exactly `offset + nbytes` bytes long; [`Error::Shape`] if that size
    /// overflows (the data exceeds `isize::MAX` bytes, not counting axes of length 0).
    pub fn open(
        path: &Path,
        dtype: DType,
        shape: &[usize],
        order: Order,
        big_endian: bool,
        offset: usize,
    ) -> Result<RawMap> {
        let nbytes = checked_nbytes(dtype, shape);
        let expected = nbytes.and_then(|n| n.checked_add(offset));
        let (Some(nbytes), Some(expected)) = (nbytes, expected) else {
            return Err(Error::Shape(format!(
                "an array of shape {shape:?} and dtype {dtype} at offset {offset} is too large: \
                 its size in bytes overflows"
            )));
        };
        let map = map_readonly(path)?;
        let actual = map.as_ref().map_or(0, |m| m.len());
        if actual != expected {
            return Err(Error::format(
                path,
                format!(
                    "file is too {}: it has {actual} bytes, but offset {offset} + {nbytes} bytes \
                     of data (shape {shape:?}, dtype {dtype}) make {expected} bytes",
                    if actual < expected { "short" } else { "long" }
                ),
            ));
        }
        Ok(RawMap {
            path: path.to_owned(),
            dtype,
            shape: shape.to_vec(),
            order,
            big_endian,
            offset,
            nbytes,
            map,
        })
    }

    /// The element data: every byte of the file from the offset on.
    ///
    /// The slice starts at the mapping (page-aligned) plus the offset, so it is unaligned for
    /// the dtype when the offset is not a multiple of the dtype size; a typed view such as
    /// [`Element::from_bytes`](crate::Element::from_bytes) rejects it then.
    pub fn data(&self) -> &[u8] {
        let end = self.offset + self.nbytes;
        self.map
            .as_deref()
            .and_then(|m| m.get(self.offset..end))
            .unwrap_or(&[])
    }

    /// Maps the pages of `range` (byte offsets within [`data`](RawMap::data)) in one system
    /// call; a hint whose errors are ignored.
    pub fn populate(&self, range: std::ops::Range<usize>) {
        super::mmap::populate(self.map.as_ref(), self.offset, range);
    }

    /// Drops the pages of `range` from the process's resident set (a hint).
    pub(crate) fn release(&self, range: std::ops::Range<usize>) {
        super::mmap::release(self.map.as_ref(), self.offset, range);
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The memory order of the data.
    pub fn order(&self) -> Order {
        self.order
    }

    /// Whether the elements are stored big-endian.
    pub fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// The byte offset of the data in the file.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_exact_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let mut bytes = vec![0xAAu8; 3];
        let values: Vec<i16> = (0..6).collect();
        for v in &values {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let m = RawMap::open(&path, DType::I16, &[2, 3], Order::F, true, 3).unwrap();
        assert_eq!(m.data(), &bytes[3..]);
        assert_eq!(
            (m.dtype(), m.shape(), m.order(), m.big_endian()),
            (DType::I16, &[2, 3][..], Order::F, true)
        );
        assert_eq!((m.offset(), m.path()), (3, path.as_path()));
    }

    #[test]
    fn empty_arrays_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.bin");
        std::fs::write(&path, b"").unwrap();
        let m = RawMap::open(&path, DType::F64, &[0, 4], Order::C, false, 0).unwrap();
        assert!(m.data().is_empty());
        let err = RawMap::open(&path, DType::F64, &[], Order::C, false, 0).unwrap_err();
        assert!(
            err.to_string().contains("too short: it has 0 bytes"),
            "{err}"
        );

        std::fs::write(&path, b"HEADER").unwrap();
        let m = RawMap::open(&path, DType::U8, &[0], Order::C, false, 6).unwrap();
        assert!(m.data().is_empty());
    }

    #[test]
    fn size_mismatch_states_both_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let err = RawMap::open(&path, DType::F64, &[3, 4], Order::C, false, 0).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Format { .. }));
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("too long")
                && msg.contains("100 bytes")
                && msg.contains("96 bytes of data")
                && msg.contains("make 96"),
            "{msg}"
        );
        let err = RawMap::open(&path, DType::F64, &[3, 3], Order::C, false, 0).unwrap_err();
        assert!(
            err.to_string().contains("too long: it has 100 bytes")
                && err.to_string().contains("make 72"),
            "{err}"
        );
        let err = RawMap::open(&path, DType::F64, &[3, 4], Order::C, false, 8).unwrap_err();
        assert!(
            err.to_string().contains("too short: it has 100 bytes")
                && err.to_string().contains("make 104"),
            "{err}"
        );
        let err =
            RawMap::open(&path, DType::F64, &[usize::MAX, 2], Order::C, false, 0).unwrap_err();
        assert!(matches!(err, Error::Shape(_)), "{err}");
        let err = RawMap::open(
            &dir.path().join("missing.bin"),
            DType::F64,
            &[1],
            Order::C,
            false,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        let err = RawMap::open(dir.path(), DType::F64, &[1], Order::C, false, 0).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
