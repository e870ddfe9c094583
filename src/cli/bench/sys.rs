//! What the benchmark asks of the operating system: the peak resident set of the process, and
//! the eviction of files from the page cache for cold reads (Linux; elsewhere both report that
//! they cannot).

use std::path::Path;
use tessera::{Error, Result};

/// Peak resident set of this process in bytes (`VmHWM` of `/proc/self/status`), if known.
pub(super) fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: usize = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The system's load average over the last minute (`/proc/loadavg`), if known: other work
/// sharing the cores shows here.
pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resets the peak resident set to the current resident set (Linux 4.0 and later, by writing
/// `5` to `/proc/self/clear_refs`); false when it cannot.
pub(super) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Writes back and drops from the page cache every file under `path` (a file or a directory
/// tree): `fdatasync`, then `posix_fadvise(POSIX_FADV_DONTNEED)`. Returns false where the
/// advice is not available (not Linux), in which case nothing was dropped.
///
/// # Errors
/// A file that cannot be opened or synced.
pub(super) fn evict(path: &Path) -> Result<bool> {
    if !cfg!(target_os = "linux") {
        return Ok(false);
    }
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            evict(&entry.path())?;
        }
        return Ok(true);
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.sync_data().map_err(|e| Error::io(path, e))?;
    drop_cached(&file);
    Ok(true)
}

#[cfg(target_os = "linux")]
fn drop_cached(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the length of the call; the advice only drops clean
    // cached pages of the file (offset 0, length 0: the whole file), never its contents.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(not(target_os = "linux"))]
fn drop_cached(_file: &std::fs::File) {}
