//! The benchmark's results: one row per workload, backend and block size; the agreement of
//! their checksums; the Markdown table with its notes.

use super::{Backend, Outcome, Workload, MIB};
use tessera::error::fmt_bytes;

/// Relative difference under which two checksums agree (they differ only by the order of the
/// additions, which follows the blocks).
const CHECK_TOLERANCE: f64 = 1e-9;

/// The results of one case.
pub(super) struct Row {
    pub(super) workload: Workload,
    pub(super) backend: Backend,
    /// The block size asked for, in bytes.
    pub(super) block: usize,
    /// The run with the page cache as the previous step left it (warm for reads).
    pub(super) warm: Outcome,
    /// The run after the input was dropped from the page cache, for inputs on disk.
    pub(super) cold: Option<Outcome>,
    /// Bytes on disk of the input (or of the cdist output).
    pub(super) on_disk: Option<usize>,
    /// Whether the checksums agree with the workload's first row, once compared.
    pub(super) agrees: Option<bool>,
}

impl Row {
    pub(super) fn new(
        workload: Workload,
        backend: Backend,
        block: usize,
        warm: Outcome,
        cold: Option<Outcome>,
        on_disk: Option<usize>,
    ) -> Row {
        Row {
            workload,
            backend,
            block,
            warm,
            cold,
            on_disk,
            agrees: None,
        }
    }

    /// Whether a run failed or its result disagrees with the others.
    pub(super) fn failed(&self) -> bool {
        self.warm.is_err() || matches!(self.cold, Some(Err(_))) || self.agrees == Some(false)
    }

    /// The warm rate, if the run succeeded.
    pub(super) fn gbps(&self) -> Option<f64> {
        self.warm.as_ref().ok().map(|m| m.gbps())
    }

    /// The peak resident set over the row's runs.
    fn peak(&self) -> Option<usize> {
        let runs = std::iter::once(&self.warm).chain(self.cold.as_ref());
        runs.filter_map(|r| r.as_ref().ok().and_then(|m| m.peak_rss))
            .max()
    }

    /// One line for the progress log.
    pub(super) fn summary(&self) -> String {
        let rate = |o: &Outcome| match o {
            Ok(m) => format!("{:.2} GB/s", m.gbps()),
            Err(e) => format!("failed: {e}"),
        };
        let mut s = format!(
            "{} {} {}: {}",
            self.workload.name(),
            self.backend.name(),
            block_label(self.block),
            rate(&self.warm)
        );
        if let Some(c) = &self.cold {
            s.push_str(&format!(", cold {}", rate(c)));
        }
        if let Some(p) = self.peak() {
            s.push_str(&format!(", peak RSS {}", fmt_bytes(p)));
        }
        s
    }
}

/// A block size as asked: whole MiB without decimals.
pub(super) fn block_label(bytes: usize) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        fmt_bytes(bytes)
    }
}

/// Compares every run's checksum with the first successful run of its workload.
pub(super) fn check(rows: &mut [Row]) {
    for w in Workload::ALL {
        let reference = rows
            .iter()
            .filter(|r| r.workload == w)
            .find_map(|r| r.warm.as_ref().ok().map(|m| m.check));
        let Some(reference) = reference else { continue };
        for r in rows.iter_mut().filter(|r| r.workload == w) {
            let runs = std::iter::once(&r.warm).chain(r.cold.as_ref());
            let checks: Vec<f64> = runs
                .filter_map(|o| o.as_ref().ok().map(|m| m.check))
                .collect();
            if !checks.is_empty() {
                r.agrees = Some(checks.iter().all(|&c| {
                    let scale = c.abs().max(reference.abs()).max(f64::MIN_POSITIVE);
                    (c - reference).abs() <= CHECK_TOLERANCE * scale
                }));
            }
        }
    }
}

/// What the table's header says about the run.
pub(super) struct Header {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) points: usize,
    pub(super) dim: usize,
    pub(super) threads: usize,
    pub(super) allowed_mem: usize,
    pub(super) cold: bool,
    pub(super) hdf5: bool,
    /// The one-minute load average at the start and at the end of the run.
    pub(super) load: (Option<f64>, Option<f64>),
}

impl Header {
    /// The plot's title.
    pub(super) fn plot_title(&self) -> String {
        format!(
            "tessera bench: GB/s against block size (warm page cache; input {} float64, {} thread(s))",
            fmt_bytes(self.rows * self.cols * 8),
            self.threads
        )
    }
}

/// The processor's model name and the machine's cores and memory.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown processor".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{cores} cores ({cpu}), {} RAM",
        fmt_bytes(tessera::exec::physical_memory())
    )
}

/// A load average, or `?`.
fn load(l: Option<f64>) -> String {
    l.map_or("?".into(), |l| format!("{l:.2}"))
}

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown table, with its header line and notes.
pub(super) fn markdown(h: &Header, rows: &[Row]) -> String {
    let mut out = format!(
        "tessera bench: input float64 [{}, {}] ({}), cdist {} x {} points of {} coordinates ({} output); {}; threads={}, allowed memory {}; load average {} at the start, {} at the end; page cache warm unless in the cold column\n\n",
        h.rows,
        h.cols,
        fmt_bytes(h.rows * h.cols * 8),
        h.points,
        h.points,
        h.dim,
        fmt_bytes(h.points * h.points * 8),
        machine(),
        h.threads,
        fmt_bytes(h.allowed_mem),
        load(h.load.0),
        load(h.load.1),
    );
    out.push_str("| workload | backend | block | blocks | GB/s | GB/s cold | seconds | peak RSS | on disk | check |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for r in rows {
        let (rate, blocks, secs) = match &r.warm {
            Ok(m) => (
                format!("{:.3}", m.gbps()),
                m.blocks.to_string(),
                format!("{:.3}", m.seconds),
            ),
            Err(_) => ("failed".into(), "–".into(), "–".into()),
        };
        let cold = match &r.cold {
            Some(Ok(m)) => format!("{:.3}", m.gbps()),
            Some(Err(_)) => "failed".into(),
            None => "–".into(),
        };
        let check = match (&r.warm, &r.cold, r.agrees) {
            (Err(e), _, _) | (_, Some(Err(e)), _) => format!("failed: {}", cell(e)),
            (_, _, Some(true)) => "ok".into(),
            (Ok(m), _, Some(false)) => format!("differs ({:.12e})", m.check),
            _ => "–".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.workload.name(),
            r.backend.name(),
            block_label(r.block),
            blocks,
            rate,
            cold,
            secs,
            r.peak().map_or("–".into(), fmt_bytes),
            r.on_disk.map_or("–".into(), fmt_bytes),
            check
        ));
    }
    let reset = rows
        .iter()
        .filter_map(|r| r.warm.as_ref().ok())
        .all(|m| m.peak_reset);
    out.push('\n');
    out.push_str("Workloads: `sum` = `x.sum(axis=0)` and `mean` = `x.mean(axis=1)` into memory; `chain` = `sqrt(x * x + 1).sum()` (three elementwise steps fused block by block, each block read once, no intermediate array); `cdist` = the euclidean distance matrix between two sets of points (uniform [0, 1)), tiles of about the block size, computed into memory (`memory`) or written to the backend. Input: uniform [0, 1) rounded to 3 decimals, written once per block size with one chunk per block (`.npy`: one file, read in blocks of that size).\n\n");
    out.push_str("Backends: `memory` = an `ndarray` in RAM (loaded before the timed span); `npy` = memory-mapped `.npy`; `zarr-none`, `zarr-zstd` (level 3), `zarr-blosc` (blosc-zstd level 5, byte shuffle): Zarr v3; `hdf5-none`, `hdf5-deflate` (level 4, byte shuffle): chunked HDF5 datasets.");
    if !h.hdf5 {
        out.push_str(" HDF5 backends skipped: built without the `hdf5` feature.");
    }
    out.push_str("\n\n");
    out.push_str("GB/s = bytes of the input array (uncompressed), or of the cdist output, / seconds (1 GB = 10^9 bytes). Seconds: one run per column, nothing dropped and no warm-up run, timed inside a child process from opening the array to the result in memory or the output complete in its files (outputs are not synced to disk). `GB/s`: the page cache holds the input (read by the cold run just before, or just written); `GB/s cold`: the input's files were synced and dropped from the page cache (`posix_fadvise(DONTNEED)`) before the run");
    out.push_str(if h.cold {
        ".\n\n"
    } else {
        " (skipped: --no-cold).\n\n"
    });
    out.push_str(if reset {
        "Peak RSS: each case runs in its own child process of the same binary; its peak resident set (`VmHWM`) is reset (`/proc/self/clear_refs`) once the input is ready and read when the case ends, the larger of the row's runs. It counts what the process holds: the whole input for `memory`, the pages of the mapped file in use for `npy`."
    } else {
        "Peak RSS: each case runs in its own child process of the same binary; the peak resident set (`VmHWM`) of the whole child (it could not be reset once the input was ready), the larger of the row's runs. It counts what the process holds: the whole input for `memory`, the pages of the mapped file in use for `npy`."
    });
    out.push_str(" On disk: bytes of the input's (or the output's) files. Check: the result's checksum agrees with the workload's first row (relative 1e-9).\n");
    out
}
