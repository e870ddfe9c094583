//! `tessera bench`: in-memory against on-disk chunking. Each workload (reductions over an axis,
//! an elementwise chain, a distance matrix streamed to a store) runs over each backend (memory,
//! memory-mapped `.npy`, Zarr, HDF5) at each block size; every case runs in a child process of
//! this binary (the hidden `bench-case` command), which times it and reports its peak resident
//! set. The results become a Markdown table and an SVG plot.

mod case;
mod plot;
mod report;
mod sys;

use clap::{Args, ValueEnum};
use report::Row;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tessera::chunks::{AxisChunks, Chunks};
use tessera::error::fmt_bytes;
use tessera::ops::creation::Distribution;
use tessera::store::zarr::{Codec, ZarrWriteOptions};
use tessera::{ChunkedArray, Error, ExecOptions, Result};

pub(crate) use case::{run as run_case, CaseArgs};

pub(crate) const EXAMPLES: &str = "Examples:
  tessera bench --quick
  tessera bench --out bench-out --threads 2
  tessera bench --size 512MiB --blocks 4MiB,32MiB --no-cold --out /tmp/bench

Writes DIR/bench.md (the table, also printed) and DIR/bench.svg (GB/s against block size, one
panel per workload, one line per backend). Needs about 7x --size of free disk in DIR.";

/// Columns of the benchmark's input array: rows of 8 KiB of float64.
const COLS: usize = 1024;
/// Coordinates per point of the cdist workload.
const CDIST_DIM: usize = 16;
/// Dataset of the HDF5 inputs and outputs.
#[cfg(feature = "hdf5")]
const H5_DATASET: &str = "/x";
const MIB: usize = 1 << 20;

/// Arguments of `tessera bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// A short run: a 256 MiB input and blocks of 1 and 64 MiB.
    #[arg(long)]
    quick: bool,
    /// Folder for bench.md and bench.svg (created if missing); the data are made in a temporary
    /// folder inside it and removed at the end.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    out: PathBuf,
    /// Bytes of the input array, and of the cdist output (like 512MiB): default 1GiB, 256MiB
    /// with --quick.
    #[arg(long, value_name = "SIZE")]
    size: Option<String>,
    /// Block sizes, separated by commas: default 1MiB,8MiB,64MiB,256MiB; 1MiB,64MiB with
    /// --quick.
    #[arg(long, value_name = "LIST")]
    blocks: Option<String>,
    /// Skip the cold-cache runs (inputs evicted from the page cache before a run).
    #[arg(long)]
    no_cold: bool,
}

/// What a case computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// `x.sum(axis=0)` into memory.
    Sum,
    /// `x.mean(axis=1)` into memory.
    Mean,
    /// `sqrt(x * x + 1).sum()`, fused block by block.
    Chain,
    /// `cdist(p, q)` (euclidean) written to the backend.
    Cdist,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::Sum,
        Workload::Mean,
        Workload::Chain,
        Workload::Cdist,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Sum => "sum",
            Workload::Mean => "mean",
            Workload::Chain => "chain",
            Workload::Cdist => "cdist",
        }
    }

    /// What the workload computes, as a title.
    fn title(self) -> &'static str {
        match self {
            Workload::Sum => "sum: x.sum(axis=0)",
            Workload::Mean => "mean: x.mean(axis=1)",
            Workload::Chain => "chain: sqrt(x*x + 1).sum()",
            Workload::Cdist => "cdist: euclidean matrix written to the store",
        }
    }
}

/// Where a case's array lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// An `ndarray` in memory.
    Memory,
    /// A `.npy` file, memory-mapped.
    Npy,
    /// Zarr v3, uncompressed.
    ZarrNone,
    /// Zarr v3, zstd level 3.
    ZarrZstd,
    /// Zarr v3, blosc (zstd level 5, byte shuffle).
    ZarrBlosc,
    /// HDF5, chunked, unfiltered.
    Hdf5None,
    /// HDF5, chunked, deflate level 4 with byte shuffle.
    Hdf5Deflate,
}

impl Backend {
    /// The backends of this build (HDF5 only with the `hdf5` feature).
    pub(super) fn available() -> Vec<Backend> {
        let mut all = vec![
            Backend::Memory,
            Backend::Npy,
            Backend::ZarrNone,
            Backend::ZarrZstd,
            Backend::ZarrBlosc,
        ];
        if cfg!(feature = "hdf5") {
            all.extend([Backend::Hdf5None, Backend::Hdf5Deflate]);
        }
        all
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Npy => "npy",
            Backend::ZarrNone => "zarr-none",
            Backend::ZarrZstd => "zarr-zstd",
            Backend::ZarrBlosc => "zarr-blosc",
            Backend::Hdf5None => "hdf5-none",
            Backend::Hdf5Deflate => "hdf5-deflate",
        }
    }

    /// Whether the array is in files (and so has a cold run).
    fn on_disk(self) -> bool {
        self != Backend::Memory
    }

    /// The Zarr codec, for the Zarr backends.
    fn zarr_codec(self) -> Option<Codec> {
        match self {
            Backend::ZarrNone => Some(Codec::None),
            Backend::ZarrZstd => Some(Codec::Zstd(3)),
            Backend::ZarrBlosc => Some(Codec::Blosc(5)),
            _ => None,
        }
    }

    /// The file of this backend's array in `dir`, named by `tag`; for HDF5 the file alone
    /// (the dataset is `/x`).
    pub(super) fn file(self, dir: &Path, tag: &str) -> PathBuf {
        let ext = match self {
            Backend::Memory | Backend::Npy => "npy",
            Backend::ZarrNone | Backend::ZarrZstd | Backend::ZarrBlosc => "zarr",
            Backend::Hdf5None | Backend::Hdf5Deflate => "h5",
        };
        dir.join(format!("{tag}-{}.{ext}", self.name()))
    }
}

/// Writes `x` to `path` in the format of `backend`, replacing what is there.
pub(super) fn store(
    x: &ChunkedArray<f64>,
    backend: Backend,
    path: &Path,
    opts: &ExecOptions,
) -> Result<()> {
    match backend {
        Backend::Memory => Err(Error::Invalid(
            "internal: the memory backend has no file".into(),
        )),
        Backend::Npy => x.to_npy_with(path, true, opts),
        Backend::ZarrNone | Backend::ZarrZstd | Backend::ZarrBlosc => {
            let zopts = ZarrWriteOptions {
                codec: backend.zarr_codec().unwrap_or(Codec::None),
                overwrite: true,
                zarr_format: 3,
            };
            x.to_zarr(path, &zopts, opts)
        }
        #[cfg(feature = "hdf5")]
        Backend::Hdf5None | Backend::Hdf5Deflate => {
            let deflate = (backend == Backend::Hdf5Deflate).then_some(4);
            let hopts = tessera::store::hdf5::Hdf5WriteOptions {
                deflate,
                shuffle: deflate.is_some(),
                overwrite: true,
            };
            x.to_hdf5(path, H5_DATASET, &hopts, opts)
        }
        #[cfg(not(feature = "hdf5"))]
        Backend::Hdf5None | Backend::Hdf5Deflate => Err(Error::Unsupported(
            "HDF5 in a build without the hdf5 feature".into(),
        )),
    }
}

/// Opens the array that [`store`] wrote, cut into blocks of `rows` rows (all columns).
fn open_stored(backend: Backend, path: &Path, rows: usize) -> Result<ChunkedArray<f64>> {
    let chunks = Chunks::PerAxis(vec![AxisChunks::Size(rows.max(1)), AxisChunks::Whole]);
    open_as(backend, path, chunks)
}

/// Opens the array that [`store`] wrote, in blocks of `chunks`.
pub(super) fn open_as(backend: Backend, path: &Path, chunks: Chunks) -> Result<ChunkedArray<f64>> {
    match backend {
        Backend::Memory => Err(Error::Invalid(
            "internal: the memory backend has no file".into(),
        )),
        Backend::Npy => ChunkedArray::from_npy(path, chunks),
        Backend::ZarrNone | Backend::ZarrZstd | Backend::ZarrBlosc => {
            ChunkedArray::from_zarr(path, chunks)
        }
        #[cfg(feature = "hdf5")]
        Backend::Hdf5None | Backend::Hdf5Deflate => {
            ChunkedArray::from_hdf5(path, H5_DATASET, chunks)
        }
        #[cfg(not(feature = "hdf5"))]
        Backend::Hdf5None | Backend::Hdf5Deflate => Err(Error::Unsupported(
            "HDF5 in a build without the hdf5 feature".into(),
        )),
    }
}

/// What one child run reports.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Measured {
    /// Seconds of the timed span.
    seconds: f64,
    /// Bytes the rate counts: the input read, or the output written.
    bytes: usize,
    /// Blocks (or tiles) of the array.
    blocks: usize,
    /// Peak resident set of the child, if known.
    peak_rss: Option<usize>,
    /// Whether the peak was reset once the input was ready (else it is the whole child's).
    peak_reset: bool,
    /// A checksum of the result, compared across backends and block sizes.
    check: f64,
}

impl Measured {
    fn gbps(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / 1e9
    }

    fn to_json(&self) -> String {
        serde_json::json!({
            "seconds": self.seconds,
            "bytes": self.bytes,
            "blocks": self.blocks,
            "peak_rss": self.peak_rss,
            "peak_reset": self.peak_reset,
            "check": self.check,
        })
        .to_string()
    }

    fn from_json(line: &str) -> Option<Measured> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        Some(Measured {
            seconds: v.get("seconds")?.as_f64()?,
            bytes: usize::try_from(v.get("bytes")?.as_u64()?).ok()?,
            blocks: usize::try_from(v.get("blocks")?.as_u64()?).ok()?,
            peak_rss: v
                .get("peak_rss")
                .and_then(|p| p.as_u64())
                .and_then(|p| usize::try_from(p).ok()),
            peak_reset: v.get("peak_reset")?.as_bool()?,
            check: v.get("check")?.as_f64()?,
        })
    }
}

/// One run of a case: its measurement, or why it failed.
pub(crate) type Outcome = std::result::Result<Measured, String>;

/// The sizes of a run.
struct Plan {
    size: usize,
    blocks: Vec<usize>,
    cold: bool,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Plan> {
        let default_size = if args.quick { 256 * MIB } else { 1024 * MIB };
        let size = match &args.size {
            Some(s) => tessera::parse_bytes(s)?,
            None => default_size,
        };
        if size < 64 << 10 {
            return Err(Error::Invalid(format!(
                "--size {}: the benchmark needs at least 64 KiB",
                fmt_bytes(size)
            )));
        }
        let blocks = match &args.blocks {
            Some(list) => list
                .split(',')
                .map(|b| tessera::parse_bytes(b.trim()))
                .collect::<Result<Vec<_>>>()?,
            None if args.quick => vec![MIB, 64 * MIB],
            None => vec![MIB, 8 * MIB, 64 * MIB, 256 * MIB],
        };
        let row = COLS * 8;
        if let Some(&b) = blocks.iter().find(|&&b| b < row) {
            return Err(Error::Invalid(format!(
                "--blocks: {} is less than one row of the input ({})",
                fmt_bytes(b),
                fmt_bytes(row)
            )));
        }
        let mut blocks = blocks;
        blocks.sort_unstable();
        blocks.dedup();
        Ok(Plan {
            size,
            blocks,
            cold: !args.no_cold,
        })
    }

    /// Rows of the input array.
    fn rows(&self) -> usize {
        (self.size / (COLS * 8)).max(1)
    }

    /// Points of each side of the cdist workload: an `n x n` float64 output of about `size`.
    fn points(&self) -> usize {
        ((self.size / 8) as f64).sqrt().floor().max(1.0) as usize
    }

    /// Rows per block of the input for a block of `bytes`.
    fn block_rows(&self, bytes: usize) -> usize {
        (bytes / (COLS * 8)).clamp(1, self.rows())
    }

    /// Points per side of a cdist tile of `bytes`.
    fn tile(&self, bytes: usize) -> usize {
        (((bytes / 8) as f64).sqrt().floor() as usize).clamp(1, self.points())
    }
}

/// Prints progress lines on stderr with the time since the start.
struct Log(Instant);

impl Log {
    fn say(&self, what: &str) {
        eprintln!("bench [{:6.1}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Checks `--out`: an existing directory, or a path where one can be made.
fn output_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::Invalid(format!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))
}

pub(crate) fn run(args: &BenchArgs, opts: &ExecOptions) -> Result<()> {
    let plan = Plan::from_args(args)?;
    output_dir(&args.out)?;
    let log = Log(Instant::now());
    let load_at_start = sys::load_average();
    let work = tempfile::Builder::new()
        .prefix(".tessera-bench-")
        .tempdir_in(&args.out)
        .map_err(|e| Error::io(&args.out, e))?;
    let dir = work.path();
    let npy = make_input(&plan, dir, opts, &log)?;
    let mut table: Vec<Row> = Vec::new();
    for &block in &plan.blocks {
        let inputs = chunked_inputs(&plan, block, &npy, dir, opts, &log);
        for w in [Workload::Sum, Workload::Mean, Workload::Chain] {
            for (b, input) in &inputs {
                let row = read_row(&plan, w, *b, block, input, opts);
                log.say(&row.summary());
                table.push(row);
            }
        }
        for b in Backend::available() {
            let row = cdist_row(&plan, b, block, dir, opts);
            log.say(&row.summary());
            table.push(row);
        }
        for (b, input) in &inputs {
            if let (false, Ok(path)) = (matches!(b, Backend::Memory | Backend::Npy), input) {
                remove(path);
            }
        }
    }

    report::check(&mut table);
    let header = report::Header {
        rows: plan.rows(),
        cols: COLS,
        points: plan.points(),
        dim: CDIST_DIM,
        threads: opts.threads,
        allowed_mem: opts.allowed_mem,
        cold: plan.cold,
        hdf5: cfg!(feature = "hdf5"),
        load: (load_at_start, sys::load_average()),
    };
    let md = report::markdown(&header, &table);
    print!("{md}");
    let md_path = args.out.join("bench.md");
    std::fs::write(&md_path, &md).map_err(|e| Error::io(&md_path, e))?;
    let svg_path = args.out.join("bench.svg");
    plot::draw(&svg_path, &table, &plan.blocks, &header.plot_title())?;
    let work_path = dir.to_path_buf();
    work.close().map_err(|e| Error::io(work_path, e))?;
    log.say(&format!(
        "wrote {} and {}",
        md_path.display(),
        svg_path.display()
    ));
    let failed = table.iter().filter(|r| r.failed()).count();
    if failed > 0 {
        return Err(Error::Invalid(format!(
            "{failed} of {} cases failed or disagree (see the table)",
            table.len()
        )));
    }
    Ok(())
}

/// Writes the input array as a `.npy` file in `dir`: uniform [0, 1) rounded to 3 decimals
/// (compressible a little, as measured data are).
fn make_input(plan: &Plan, dir: &Path, opts: &ExecOptions, log: &Log) -> Result<PathBuf> {
    let npy = Backend::Npy.file(dir, "input");
    let t0 = Instant::now();
    let u = Distribution::Uniform {
        low: 0.0,
        high: 1.0,
    };
    // Blocks of 8 MiB: small enough for any sensible --mem, large enough to stream quickly.
    let x = ChunkedArray::<f64>::random(&[plan.rows(), COLS], u, 42, [1024, COLS])?
        .mul(1000.0)?
        .round()
        .div(1000.0)?;
    store(&x, Backend::Npy, &npy, opts)?;
    log.say(&format!(
        "input float64 [{}, {COLS}] ({}) made in {:.1} s",
        plan.rows(),
        fmt_bytes(x.nbytes()),
        t0.elapsed().as_secs_f64()
    ));
    Ok(npy)
}

/// The input of every backend for blocks of `block` bytes: the `.npy` file for memory and
/// npy, and a copy with one chunk per block for each chunked format (or why it could not be
/// written).
fn chunked_inputs(
    plan: &Plan,
    block: usize,
    npy: &Path,
    dir: &Path,
    opts: &ExecOptions,
    log: &Log,
) -> Vec<(Backend, std::result::Result<PathBuf, String>)> {
    let rows = plan.block_rows(block);
    Backend::available()
        .into_iter()
        .map(|b| {
            if matches!(b, Backend::Memory | Backend::Npy) {
                return (b, Ok(npy.to_path_buf()));
            }
            let path = b.file(dir, &format!("input-b{block}"));
            let t0 = Instant::now();
            let written = open_stored(Backend::Npy, npy, rows)
                .and_then(|x| store(&x, b, &path, opts))
                .map(|()| path.clone())
                .map_err(|e| format!("writing the input: {e}"));
            log.say(&match &written {
                Ok(_) => format!(
                    "input {} in chunks of {}: {} on disk, written in {:.1} s",
                    b.name(),
                    fmt_bytes(rows * COLS * 8),
                    fmt_bytes(disk_usage(&path)),
                    t0.elapsed().as_secs_f64()
                ),
                Err(e) => format!("input {}: {e}", b.name()),
            });
            (b, written)
        })
        .collect()
}

/// Runs a read workload over `input`: cold first (its files dropped from the page cache),
/// then warm (the cold run has just read every byte back into the cache).
fn read_row(
    plan: &Plan,
    w: Workload,
    b: Backend,
    block: usize,
    input: &std::result::Result<PathBuf, String>,
    opts: &ExecOptions,
) -> Row {
    let path = match input {
        Ok(p) => p,
        Err(e) => return Row::new(w, b, block, Err(e.clone()), None, None),
    };
    let spec = Spec {
        workload: w,
        backend: b,
        path: path.clone(),
        block: plan.block_rows(block),
        points: 0,
    };
    let cold = (plan.cold && b.on_disk()).then(|| cold_case(&spec, opts));
    let warm = spawn_case(&spec, opts);
    let on_disk = b.on_disk().then(|| disk_usage(path));
    Row::new(w, b, block, warm, cold, on_disk)
}

/// Runs the cdist workload into backend `b` with tiles of about `block` bytes, then removes
/// its output.
fn cdist_row(plan: &Plan, b: Backend, block: usize, dir: &Path, opts: &ExecOptions) -> Row {
    let out = b.file(dir, "cdist");
    let spec = Spec {
        workload: Workload::Cdist,
        backend: b,
        path: out.clone(),
        block: plan.tile(block),
        points: plan.points(),
    };
    let warm = spawn_case(&spec, opts);
    let on_disk = (b.on_disk() && warm.is_ok()).then(|| disk_usage(&out));
    remove(&out);
    Row::new(Workload::Cdist, b, block, warm, None, on_disk)
}

/// One case, as the parent asks the child to run it.
struct Spec {
    workload: Workload,
    backend: Backend,
    path: PathBuf,
    block: usize,
    points: usize,
}

/// Runs one case in a child process of this binary, with the run's threads and memory.
fn spawn_case(spec: &Spec, opts: &ExecOptions) -> Outcome {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out = Command::new(exe)
        .arg("--quiet")
        .arg("--threads")
        .arg(opts.threads.to_string())
        .arg("--mem")
        .arg(opts.allowed_mem.to_string())
        .arg("bench-case")
        .arg("--workload")
        .arg(spec.workload.name())
        .arg("--backend")
        .arg(spec.backend.name())
        .arg("--path")
        .arg(&spec.path)
        .arg("--block")
        .arg(spec.block.to_string())
        .arg("--points")
        .arg(spec.points.to_string())
        .output()
        .map_err(|e| format!("cannot run a case: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        let msg = last.strip_prefix("error: ").unwrap_or(last);
        return Err(if msg.is_empty() {
            format!("the case ended with {}", out.status)
        } else {
            msg.to_string()
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find_map(Measured::from_json)
        .ok_or_else(|| "the case printed no result".to_string())
}

/// Runs one case after dropping its input from the page cache.
fn cold_case(spec: &Spec, opts: &ExecOptions) -> Outcome {
    match sys::evict(&spec.path) {
        Ok(true) => spawn_case(spec, opts),
        Ok(false) => Err("no page-cache eviction on this system".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Bytes in the files under `path`.
pub(super) fn disk_usage(path: &Path) -> usize {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => usize::try_from(m.len()).unwrap_or(usize::MAX),
        Err(_) => 0,
    }
}

/// Removes a file or a directory tree, if there.
fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}
