//! The process's peak resident set, for tests that bound memory (each alone in its binary, so
//! the peak belongs to the test).

/// Peak resident set of this process in bytes, from /proc (Linux).
pub(crate) fn peak_rss() -> Option<usize> {
    status_kb("VmHWM:").map(|kb| kb * 1024)
}

/// The value in kB of the line of /proc/self/status that starts with `key`.
fn status_kb(key: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident set of this process now, in bytes, from /proc (Linux).
#[allow(dead_code)]
pub(crate) fn resident() -> Option<usize> {
    status_kb("VmRSS:").map(|kb| kb * 1024)
}

/// Resets the peak resident set to the current one (Linux 4.0 and later); false when it cannot.
#[allow(dead_code)]
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
