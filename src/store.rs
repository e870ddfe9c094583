//! Storage backends: `.npy` and raw binary files (memory-mapped), Zarr (on a file system or in
//! object storage) and HDF5.
#[cfg(feature = "hdf5")]
mod deflate;
#[cfg(feature = "hdf5")]
pub mod hdf5;
#[cfg(feature = "hdf5")]
mod hdf5_chunks;
#[cfg(feature = "hdf5")]
mod inflate;
#[cfg(feature = "hdf5")]
mod lzf;
pub mod mapped;
mod mmap;
pub mod npy;
#[cfg(feature = "s3")]
pub mod object;
mod parts;
pub mod raw;
mod raw_deflate;
mod raw_inflate;
pub mod zarr;

use std::path::Path;

/// The hidden name beside `leaf` under which this process writes an output until it is
/// complete (`what` = `partial`), or keeps the output it replaces meanwhile (`old`):
/// `.leaf.tessera-partial-HOST-PID`. The machine's name and the process id tell a later run
/// whether the process that wrote it is gone ([`remove_stale_asides`]).
pub(crate) fn aside_name(leaf: &str, what: &str) -> String {
    format!("{}{}", aside_prefix(leaf, what), std::process::id())
}

/// `.leaf.tessera-WHAT-HOST-`: the start of the hidden names of this machine's processes.
/// A leaf too long for the whole name to fit in a file name's 255 bytes is shortened
/// ([`short_leaf`]).
fn aside_prefix(leaf: &str, what: &str) -> String {
    let host = host_name();
    // `.`, `.tessera-`, WHAT (`partial` the longest), `-`, HOST, `-`, the process id (10
    // digits at most) and a `.npy` temporary's `.XXXXXX`. The same for every WHAT: the names
    // of one output's `partial` and `old` differ only there.
    let room = NAME_MAX.saturating_sub(1 + 9 + 7 + 1 + host.len() + 1 + 10 + 7);
    format!(".{}.tessera-{what}-{host}-", short_leaf(leaf, room))
}

/// The bytes a file name may have (Linux's and macOS's file systems).
const NAME_MAX: usize = 255;

/// `leaf` if it has at most `room` bytes; otherwise its start, `~` and a hash of the whole
/// (in `room` bytes, 17 at least), so that two long names that begin alike stay apart. The
/// hash (FNV-1a) is the same in every build and run: a later run finds the name again.
fn short_leaf(leaf: &str, room: usize) -> std::borrow::Cow<'_, str> {
    if leaf.len() <= room {
        return leaf.into();
    }
    let hash = leaf.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut end = room.saturating_sub(17);
    while !leaf.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~{hash:016x}", &leaf[..end]).into()
}

/// This machine's name, as it goes into file names (`/` and NUL replaced by `_`); `host`
/// where it cannot be had. Read once per process: every hidden name of a run, and every
/// directory entry a tidy-up checks, use the same.
fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that many
        // bytes.
        #[cfg(unix)]
        let name = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).replace(['/', '\0'], "_")
        } else {
            String::new()
        };
        #[cfg(not(unix))]
        let name = {
            let _ = &mut buf;
            String::new()
        };
        if name.is_empty() {
            "host".into()
        } else {
            name
        }
    })
}

/// Whether `name` is exactly a hidden output (`what`) that a process of this machine, no longer
/// running, wrote for `leaf`: [`aside_name`]'s form with the process id as it writes it, or
/// (with `random`) that followed by `.` and six letters or digits, a `.npy` output's temporary
/// file. Anything else, however alike (`.bak` after it, a leading zero), is not tessera's.
pub(crate) fn is_stale_aside(name: &str, leaf: &str, what: &str, random: bool) -> bool {
    let Some(rest) = name.strip_prefix(&aside_prefix(leaf, what)) else {
        return false;
    };
    let (pid, tail) = match rest.split_once('.') {
        Some((pid, tail)) if random => (pid, Some(tail)),
        Some(_) => return false,
        None => (rest, None),
    };
    if random != tail.is_some()
        || tail.is_some_and(|t| t.len() != 6 || !t.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(id) if id.to_string() == pid => id != std::process::id() && !process_alive(id),
        _ => false,
    }
}

/// Whether process `pid` of this machine is running (or may be: whenever unsure, yes).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(id) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(id, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes beside `output` (a file or directory) the hidden partial outputs for it that runs
/// of this machine left when they were killed (files or directories named by [`aside_name`]
/// with `partial`, of processes no longer running; with `random`, as `.npy` temporaries are
/// named: see [`is_stale_aside`]), so that they do not fill the disk unseen. A replacement
/// killed between its two renames, whose process also left the output it replaced (`old`),
/// is left alone for the user. Errors are ignored: this is tidying, not the write.
pub(crate) fn remove_stale_asides(output: &Path, random: bool) {
    let Some(leaf) = output.file_name() else {
        return;
    };
    let leaf = leaf.to_string_lossy();
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_stale_aside(&name, &leaf, "partial", random) {
            continue;
        }
        let old = name.replacen(".tessera-partial-", ".tessera-old-", 1);
        if dir.join(old).exists() {
            continue;
        }
        let path = entry.path();
        let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_of_long_outputs_fit_and_stay_apart() {
        let long = format!("{}.zarr", "é".repeat(100) + &"a".repeat(40));
        let other = format!("{}.zarr", "é".repeat(100) + &"a".repeat(39) + "b");
        for (leaf, what) in [
            (&long, "partial"),
            (&other, "old"),
            (&"x".repeat(255), "partial"),
        ] {
            // The longest process id and a `.npy` temporary's suffix still fit.
            let name = format!("{}4294967295.XXXXXX", aside_prefix(leaf, what));
            assert!(name.len() <= NAME_MAX, "{} bytes: {name}", name.len());
            assert!(name.starts_with(&format!(".{}", &leaf[..50])), "{name}");
        }
        assert_ne!(aside_name(&long, "partial"), aside_name(&other, "partial"));
        assert_eq!(
            aside_name(&long, "partial").replacen(".tessera-partial-", ".tessera-old-", 1),
            aside_name(&long, "old")
        );
        // The same leaf gives the same name in every run and build, which a later run
        // recognises: FNV-1a, whose hash of "abc" is known.
        assert_eq!(short_leaf("abc", 2), "~e71fa2190541574b");
        assert_eq!(short_leaf("abc", 20), "abc");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = format!("{}{pid}", aside_prefix(&long, "partial"));
        assert!(is_stale_aside(&dead, &long, "partial", false));
        assert!(!is_stale_aside(&dead, &other, "partial", false));
        // Short leaves are kept whole.
        assert!(aside_name("o.zarr", "partial").starts_with(".o.zarr.tessera-partial-"));
    }
}
