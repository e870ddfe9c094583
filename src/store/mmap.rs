//! Read-only memory maps shared by the file backends (`.npy`, raw binary and unfiltered HDF5):
//! mapping a file, populating and releasing byte ranges of the map, and keeping only the
//! blocks in flight resident.

use crate::error::{Error, Result};
use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::path::Path;

/// The bytes of `range` (relative to `offset`) inside a map, as a start and a length; `None`
/// when there is no map or the range is empty once clipped to it.
#[cfg(target_os = "linux")]
fn span(
    map: Option<&Mmap>,
    offset: usize,
    range: std::ops::Range<usize>,
) -> Option<(&Mmap, usize, usize)> {
    let m = map?;
    let start = offset.saturating_add(range.start);
    let end = offset.saturating_add(range.end).min(m.len());
    (start < end).then_some((m, start, end - start))
}

/// Best-effort `MADV_POPULATE_READ` of `range` (relative to `offset`) of a map.
pub(crate) fn populate(map: Option<&Mmap>, offset: usize, range: std::ops::Range<usize>) {
    #[cfg(target_os = "linux")]
    if let Some((m, start, len)) = span(map, offset, range) {
        let _ = m.advise_range(memmap2::Advice::PopulateRead, start, len);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, offset, range);
}

/// Best-effort `MADV_DONTNEED` of `range` (relative to `offset`) of a read-only map: its pages
/// leave this process's resident set (they stay in the page cache, and a later access maps them
/// again with the same contents).
pub(crate) fn release(map: Option<&Mmap>, offset: usize, range: std::ops::Range<usize>) {
    #[cfg(target_os = "linux")]
    if let Some((m, start, len)) = span(map, offset, range) {
        // SAFETY: the map is read-only and shared with the file, so dropping its pages loses
        // nothing: the next access reads the same bytes from the page cache.
        let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, offset, range);
}

/// The byte ranges of a read-only map that the latest blocks populated, oldest first. Once more
/// than one per worker (and one more) are held, the oldest are released, so a pass over a file
/// larger than memory keeps only the blocks in flight resident. A block still in use whose
/// pages are released only faults them back in, with the same bytes.
#[derive(Debug, Default)]
pub(crate) struct Resident {
    recent: std::sync::Mutex<std::collections::VecDeque<std::ops::Range<usize>>>,
}

impl Resident {
    /// Populates `bytes` (one system call instead of a page fault per few pages, most of the
    /// cost of a reduction over a warm file) and releases the oldest ranges held.
    pub(crate) fn touch(
        &self,
        bytes: std::ops::Range<usize>,
        populate: impl Fn(std::ops::Range<usize>),
        release: impl Fn(std::ops::Range<usize>),
    ) {
        populate(bytes.clone());
        let keep = rayon::current_num_threads() + 1;
        let old: Vec<std::ops::Range<usize>> = match self.recent.lock() {
            Ok(mut recent) => {
                recent.push_back(bytes);
                let n = recent.len().saturating_sub(keep);
                recent.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        };
        for r in old {
            release(r);
        }
    }
}

/// The byte range a region of an array in memory order spans, when it is dense (at most twice
/// its own size): the range worth populating for it. `strides` are in elements.
pub(crate) fn dense_span(
    region: &[std::ops::Range<usize>],
    strides: &[usize],
    elem: usize,
) -> Option<std::ops::Range<usize>> {
    let len: usize = region.iter().map(|r| r.len()).product();
    if len == 0 {
        return None;
    }
    let first: usize = region.iter().zip(strides).map(|(r, s)| r.start * s).sum();
    let last: usize = region
        .iter()
        .zip(strides)
        .map(|(r, s)| (r.end - 1) * s)
        .sum();
    ((last - first + 1) <= 2 * len).then(|| first * elem..(last + 1) * elem)
}

/// Opens `path` read-only and maps it whole; `None` for an empty file, which cannot be mapped
/// on every platform.
///
/// The mapping is only sound while no one truncates or rewrites the file; that is the caller's
/// documented contract.
pub(crate) fn map_readonly(path: &Path) -> Result<Option<Mmap>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::IsADirectory, "is a directory, not a file"),
        ));
    }
    if !meta.is_file() {
        return Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if usize::try_from(meta.len()).is_err() {
        return Err(Error::format(
            path,
            format!("file of {} bytes is too large to map", meta.len()),
        ));
    }
    if meta.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only; it stays valid as long as no process truncates or modifies
    // the file while it is mapped, which the public `open` functions document as a requirement.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Some(map))
}

/// Maps an open file read-only and whole, best effort: `None` when it is empty, too large for
/// the address space, or cannot be mapped (the caller then reads it another way).
///
/// As for [`map_readonly`], the map is only sound while no one truncates or rewrites the file.
#[cfg(feature = "hdf5")]
pub(crate) fn map_handle(file: &File) -> Option<Mmap> {
    let len = file.metadata().ok()?.len();
    if len == 0 || usize::try_from(len).is_err() {
        return None;
    }
    // SAFETY: the map is read-only; it stays valid as long as no process truncates or modifies
    // the file while it is mapped, which the public `from_*` functions document as a requirement.
    unsafe { Mmap::map(file) }.ok()
}
