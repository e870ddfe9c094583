//! Uncompressed chunks written piece by piece: a block that its node computes in parts (a
//! distance tile, strip by strip) goes to its chunk part by part, with positioned writes, so the
//! block is never whole in memory. An uncompressed chunk is its elements in C order (an edge
//! chunk stored whole, padded), so every part has a known place in the file: in a Zarr chunk
//! file of its own ([`ChunkFile`]), or at the chunk's address inside an HDF5 file
//! ([`ChunkPlacer`] with the chunk's base offset).

use crate::element::Element;
use crate::error::{Error, Result};
use crate::exec::PartWriter;
use crate::plan::{c_strides, for_each_index};
use ndarray::{s, ArrayViewD, ArrayViewMut2, Axis, Ix2};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Elements of a part gathered at a time when its rows are not contiguous (512 KiB of f64).
const GATHER_ELEMENTS: usize = 1 << 16;

/// Places the parts of one block in its uncompressed chunk, stored in C order from byte `base`
/// of a file: each part goes to its place with positioned writes.
pub(crate) struct ChunkPlacer<T> {
    /// The output region of the block the chunk holds.
    region: Vec<Range<usize>>,
    /// The chunk's element strides (C order over its full shape).
    strides: Vec<usize>,
    /// Where the chunk starts in the file, in bytes.
    base: u64,
    /// Rows of a part that are not contiguous, gathered.
    lane: Vec<T>,
}

impl<T: Element> ChunkPlacer<T> {
    /// A placer for the block covering `region` in a chunk of shape `chunk` at byte `base`.
    ///
    /// # Errors
    /// A region of another rank than the chunk, empty, or larger than the chunk.
    pub(crate) fn new(region: &[Range<usize>], chunk: &[usize], base: u64) -> Result<Self> {
        if region.len() != chunk.len()
            || region.is_empty()
            || region.iter().zip(chunk).any(|(r, &c)| r.len() > c)
        {
            return Err(Error::Shape(format!(
                "internal: a block of region {region:?} for a chunk of shape {chunk:?}"
            )));
        }
        Ok(ChunkPlacer {
            region: region.to_vec(),
            strides: c_strides(chunk),
            base,
            lane: Vec::new(),
        })
    }

    /// Writes `data`, the values of `part` (a region of the output inside the block's), to
    /// `file` at its place; `fail` turns an I/O error into the caller's error naming the chunk.
    ///
    /// # Errors
    /// A part outside the block or of another shape than `data`, or `fail`'s error.
    pub(crate) fn write(
        &mut self,
        file: &std::fs::File,
        part: &[Range<usize>],
        data: ArrayViewD<'_, T>,
        fail: &dyn Fn(std::io::Error) -> Error,
    ) -> Result<()> {
        let n = self.region.len();
        let inside = part.len() == n
            && part
                .iter()
                .zip(&self.region)
                .all(|(p, r)| p.start >= r.start && p.end <= r.end && p.start <= p.end)
            && data.shape().iter().zip(part).all(|(&s, p)| s == p.len());
        if !inside || data.ndim() != n {
            return Err(Error::Shape(format!(
                "internal: a part {part:?} of shape {:?} for the block {:?}",
                data.shape(),
                self.region
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        let base = self.base;
        let write_at = |values: &[T], element: usize| -> Result<()> {
            let offset = base + (element * std::mem::size_of::<T>()) as u64;
            file.write_all_at(T::to_bytes(values), offset).map_err(fail)
        };
        let local: Vec<usize> = part
            .iter()
            .zip(&self.region)
            .map(|(p, r)| p.start - r.start)
            .collect();
        let at = |idx: &[usize]| -> usize {
            idx.iter()
                .zip(&local)
                .zip(&self.strides)
                .map(|((i, l), s)| (i + l) * s)
                .sum()
        };
        // Whole rows of the chunk, contiguous in memory: one write.
        let full_rows = (1..n)
            .all(|ax| local[ax] == 0 && part[ax].len() * self.strides[ax] == self.strides[ax - 1]);
        if full_rows {
            if let Some(values) = data.as_slice() {
                return write_at(values, at(&vec![0; n]));
            }
        }
        // Otherwise row by row (the lanes along the last axis): each row straight from the
        // part when its elements are contiguous, else gathered a batch of rows at a time into
        // a contiguous buffer (a transposed strip is read across its rows).
        let v = if n == 1 {
            data.insert_axis(Axis(0))
        } else {
            data
        };
        let m = v.ndim();
        let outer: Vec<Range<usize>> = v.shape()[..m - 2].iter().map(|&s| 0..s).collect();
        let (rows, width) = (v.shape()[m - 2], v.shape()[m - 1]);
        // Elements between the starts of consecutive rows in the chunk.
        let row_stride = if n == 1 { 0 } else { self.strides[n - 2] };
        let batch = (GATHER_ELEMENTS / width).clamp(1, rows);
        let mut buf = std::mem::take(&mut self.lane);
        let result = for_each_index(&outer, |idx| {
            let mut plane = v.view();
            for &i in idx {
                plane.index_axis_inplace(Axis(0), i);
            }
            let plane = plane
                .into_dimensionality::<Ix2>()
                .map_err(|e| Error::Shape(format!("internal: a part's rows: {e}")))?;
            // Where the plane's first row starts in the chunk.
            let first: Vec<usize> = idx.iter().copied().chain([0, 0]).take(n).collect();
            let start = at(&first);
            if width == 1 || plane.strides()[1] == 1 {
                for (r, row) in plane.outer_iter().enumerate() {
                    let values = row
                        .to_slice()
                        .ok_or_else(|| Error::Shape("internal: a part's row".into()))?;
                    write_at(values, start + r * row_stride)?;
                }
                return Ok(());
            }
            if buf.len() < batch * width {
                buf.resize(batch * width, T::default());
            }
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + batch).min(rows);
                let gathered = &mut buf[..(r1 - r0) * width];
                ArrayViewMut2::from_shape((r1 - r0, width), &mut *gathered)
                    .map_err(|e| Error::Shape(format!("internal: a part's rows: {e}")))?
                    .assign(&plane.slice(s![r0..r1, ..]));
                for (k, row) in gathered.chunks_exact(width).enumerate() {
                    write_at(row, start + (r0 + k) * row_stride)?;
                }
                r0 = r1;
            }
            Ok(())
        });
        self.lane = buf;
        result
    }
}

/// One uncompressed chunk file being written part by part. A file dropped before
/// [`PartWriter::finish`] is removed, so a failed block never leaves a chunk behind.
pub(crate) struct ChunkFile<T> {
    file: std::fs::File,
    /// The file written.
    path: PathBuf,
    /// Where the file is renamed once complete (a chunk written aside); `None`: in place.
    dest: Option<PathBuf>,
    /// The array, and what is being written, for errors.
    array: PathBuf,
    what: String,
    finished: bool,
    placer: ChunkPlacer<T>,
}

impl<T: Element> ChunkFile<T> {
    /// Starts chunk `path` (of shape `chunk`) for the block covering `region`: the file is
    /// created at its full length, then filled by the parts; with `dest`, it is renamed there
    /// by [`PartWriter::finish`]. `array` and `what` ("chunk c/0/1: writing PATH") name it
    /// in errors.
    pub(crate) fn create(
        path: PathBuf,
        dest: Option<PathBuf>,
        region: &[Range<usize>],
        chunk: &[usize],
        array: &Path,
        what: String,
    ) -> Result<Self> {
        let fail = |e| Self::error(array, &what, e);
        let placer = ChunkPlacer::new(region, chunk, 0)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let file = std::fs::File::create(&path).map_err(fail)?;
        let bytes = chunk.iter().product::<usize>() * std::mem::size_of::<T>();
        let writer = ChunkFile {
            file,
            path,
            dest,
            array: array.to_owned(),
            what,
            finished: false,
            placer,
        };
        // The whole length at once: an edge chunk's padding reads as zeros.
        writer
            .file
            .set_len(bytes as u64)
            .map_err(|e| writer.fail(e))?;
        Ok(writer)
    }

    fn fail(&self, e: std::io::Error) -> Error {
        Self::error(&self.array, &self.what, e)
    }

    /// An I/O error on the chunk `what` of the array `array`.
    fn error(array: &Path, what: &str, e: std::io::Error) -> Error {
        Error::format(array, format!("{what}: {e}"))
    }
}

impl<T: Element> PartWriter<T> for ChunkFile<T> {
    fn write(&mut self, part: &[Range<usize>], data: ArrayViewD<'_, T>) -> Result<()> {
        let (array, what) = (&self.array, &self.what);
        self.placer
            .write(&self.file, part, data, &|e| Self::error(array, what, e))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        if let Some(dest) = &self.dest {
            std::fs::rename(&self.path, dest).map_err(|e| self.fail(e))?;
        }
        self.finished = true;
        Ok(())
    }
}

impl<T> Drop for ChunkFile<T> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    fn read(path: &Path) -> Vec<f64> {
        let bytes = std::fs::read(path).unwrap();
        bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// An edge block (3 x 4 of a 5 x 6 chunk, at output rows 10.., columns 6..) written as a
    /// row strip, a transposed column strip and a lone element: the file is the chunk in C
    /// order, the block's values in place and zeros around them, renamed once finished.
    #[test]
    fn parts_land_at_their_place_in_the_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, dest) = (dir.path().join("c/1/.1.tmp"), dir.path().join("c/1/1"));
        let region = [10..13, 6..10];
        let mut w = ChunkFile::<f64>::create(
            tmp.clone(),
            Some(dest.clone()),
            &region,
            &[5, 6],
            dir.path(),
            "chunk c/1/1".into(),
        )
        .unwrap();
        let value = |i: usize, j: usize| (100 * i + j) as f64;
        // Row 10, all four columns.
        let row = ArrayD::from_shape_fn(IxDyn(&[1, 4]), |ix| value(10, 6 + ix[1]));
        PartWriter::write(&mut w, &[10..11, 6..10], row.view()).unwrap();
        // Rows 11..13 of columns 6..9, from a transposed (column-major) view.
        let t = ArrayD::from_shape_fn(IxDyn(&[3, 2]), |ix| value(11 + ix[1], 6 + ix[0]));
        PartWriter::write(&mut w, &[11..13, 6..9], t.view().reversed_axes()).unwrap();
        // The last column, rows 11..13.
        let col = ArrayD::from_shape_fn(IxDyn(&[2, 1]), |ix| value(11 + ix[0], 9));
        PartWriter::write(&mut w, &[11..13, 9..10], col.view()).unwrap();
        // A part outside the block is refused.
        let out = ArrayD::<f64>::zeros(IxDyn(&[1, 1]));
        assert!(PartWriter::write(&mut w, &[13..14, 6..7], out.view()).is_err());
        assert!(!dest.exists());
        Box::new(w).finish().unwrap();
        assert!(!tmp.exists());
        let got = read(&dest);
        let mut want = vec![0.0; 30];
        for i in 0..3 {
            for j in 0..4 {
                want[i * 6 + j] = value(10 + i, 6 + j);
            }
        }
        assert_eq!(got, want);
    }

    /// A writer dropped before it finished removes its file; an error names the chunk.
    #[test]
    fn an_unfinished_chunk_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".c.tmp");
        let mut w = ChunkFile::<f64>::create(
            tmp.clone(),
            Some(dir.path().join("c")),
            &[0..2, 0..2, 0..3],
            &[2, 2, 3],
            dir.path(),
            "chunk c/0/0/0".into(),
        )
        .unwrap();
        let a = ArrayD::from_shape_fn(IxDyn(&[1, 2, 3]), |ix| (ix[1] * 3 + ix[2]) as f64);
        PartWriter::write(&mut w, &[1..2, 0..2, 0..3], a.view()).unwrap();
        assert_eq!(read(&tmp)[6..], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        drop(w);
        assert!(!tmp.exists());
        std::fs::write(dir.path().join("a-file"), b"").unwrap();
        let again = ChunkFile::<f64>::create(
            dir.path().join("a-file/inside"),
            None,
            &[0..1, 0..1],
            &[1, 1],
            dir.path(),
            "chunk c/0".into(),
        );
        let again = again.err().expect("a file in the way").to_string();
        assert!(again.contains("chunk c/0"), "{again}");
    }
}
