//! The one error type of tessera and its `Result` alias.

use std::path::PathBuf;

/// Everything that can go wrong in tessera. Each variant carries what a user needs to fix the
/// problem: the shape, axis, dtype, path or chunk involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that NumPy's broadcasting rules cannot reconcile.
    #[error("shapes {left:?} and {right:?} do not broadcast")]
    Broadcast {
        /// Shape of the left operand.
        left: Vec<usize>,
        /// Shape of the right operand.
        right: Vec<usize>,
    },
    /// An axis outside `-ndim..ndim`.
    #[error("axis {axis} is out of range for an array of {ndim} dimension(s)")]
    AxisOutOfRange {
        /// The axis as given (possibly negative).
        axis: isize,
        /// Number of dimensions of the array.
        ndim: usize,
    },
    /// A chunk specification that cannot describe the array.
    #[error("invalid chunks for shape {shape:?}: {reason}")]
    Chunks {
        /// Shape of the array being chunked.
        shape: Vec<usize>,
        /// What is wrong with the chunks.
        reason: String,
    },
    /// A shape that does not fit an operation.
    #[error("shape error: {0}")]
    Shape(String),
    /// A dtype that an operation or a file cannot handle.
    #[error("dtype error: {0}")]
    DType(String),
    /// An index or slice outside the array.
    #[error("index error: {0}")]
    Index(String),
    /// A plan whose tasks do not fit the allowed memory.
    #[error(
        "{op} needs about {} per task, more than the limit of {} per thread ({} allowed in total over {threads} thread(s){}); use smaller chunks, fewer threads or allow more memory (at least {} with these chunks and threads)",
        fmt_bytes(*projected),
        fmt_bytes(limit.saturating_sub(*shared) / (*threads).max(1)),
        fmt_bytes(*limit),
        if *shared > 0 { format!(", {} of it held by the whole run", fmt_bytes(*shared)) } else { String::new() },
        fmt_bytes(round_up_mib(projected.saturating_mul(*threads).saturating_add(*shared)))
    )]
    MemoryLimit {
        /// The operation whose task does not fit.
        op: String,
        /// Projected bytes for one of its tasks.
        projected: usize,
        /// The allowed memory for the whole run.
        limit: usize,
        /// Number of worker threads sharing the limit.
        threads: usize,
        /// Bytes the whole run holds besides its tasks (queued output, a search's results),
        /// taken from the limit before it is shared by the threads.
        shared: usize,
    },
    /// Memory a run holds at once, whatever its tasks (a result held whole, queued output, the
    /// rows of a k-nearest search), that does not fit its share of the allowed memory.
    #[error(
        "{what} needs about {} at once, more than the {} it may hold of the {} allowed; allow more memory",
        fmt_bytes(*projected),
        fmt_bytes(*limit),
        fmt_bytes(*allowed)
    )]
    MemoryHeld {
        /// What is held.
        what: String,
        /// Projected bytes.
        projected: usize,
        /// The bytes it may hold.
        limit: usize,
        /// The allowed memory for the whole run.
        allowed: usize,
    },
    /// A file that is not what it claims to be.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O failure on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An output path that already exists.
    #[error("{0}: output already exists (pass --overwrite to replace it)")]
    Exists(PathBuf),
    /// A feature that is planned but not available yet.
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// An expression that does not parse; the message shows the source and a caret.
    #[error("{0}")]
    Parse(String),
    /// An expression that parses but cannot be evaluated, with the column of the culprit.
    #[error("at column {col}: {message}")]
    Eval {
        /// 1-based column of the sub-expression at fault.
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// An invalid argument to an operation.
    #[error("{0}")]
    Invalid(String),
}

/// The result type of tessera.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `bytes` rounded up to whole MiB (from 1 MiB up), for a memory limit to suggest.
fn round_up_mib(bytes: usize) -> usize {
    const MIB: usize = 1 << 20;
    if bytes < MIB {
        bytes
    } else {
        bytes.div_ceil(MIB).saturating_mul(MIB)
    }
}

/// Formats a byte count with binary units (`1.5 GiB`).
pub fn fmt_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a byte size such as `2GiB`, `512MB`, `1.5G` or `1000000`.
///
/// Binary (`KiB`, `MiB`, `GiB`, `TiB`) and decimal (`KB`, `MB`, `GB`, `TB`) units are accepted;
/// a bare `K`, `M`, `G` or `T` is binary.
///
/// # Errors
/// A size that is not a positive number with a known unit.
///
/// ```
/// assert_eq!(tessera::parse_bytes("2GiB").unwrap(), 2 << 30);
/// assert_eq!(tessera::parse_bytes("1.5k").unwrap(), 1536);
/// ```
pub fn parse_bytes(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::Invalid(format!(
            "invalid size {s:?}: expected a number with an optional unit such as 512MiB or 2GB"
        ))
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = v * mult;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(bad());
    }
    Ok(bytes as usize)
}
