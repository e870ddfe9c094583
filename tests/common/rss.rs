//! The process's peak resident set, for tests that bound memory (each alone in its binary, so
//! the peak belongs to the test).

/// Peak resident set of this process in bytes, from /proc (Linux).
pub(crate) fn peak_rss() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: usize = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident set to the current one (Linux 4.0 and later); false when it cannot.
#[allow(dead_code)]
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
