//! Command-line interface: argument parsing, input opening, output writing, and the one-line
//! error convention (`error: ...` on stderr, non-zero exit, never a panic).

mod bench;
mod cdist;
mod convert;
mod demo;
mod eval;
mod info;
mod progress;
mod shard;

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use tessera::dynarray::DynArray;
use tessera::{Chunks, Error, ExecOptions, Result};

/// Chunked, out-of-core N-dimensional arrays: lazy plans run block by block in bounded memory.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command shares.
#[derive(Args, Debug, Clone)]
pub(crate) struct RunArgs {
    /// Memory the run may use, shared by all threads (like 2GiB or 512MB); default a quarter of
    /// physical memory, or $TESSERA_ALLOWED_MEM.
    #[arg(long, global = true, value_name = "SIZE")]
    mem: Option<String>,
    /// Worker threads (default: every core, or $TESSERA_THREADS).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// No progress bar (it is shown on stderr when stderr is a terminal; $TESSERA_PROGRESS=lines
    /// prints plain progress lines instead, for logs).
    #[arg(long, short, global = true)]
    quiet: bool,
}

impl RunArgs {
    pub(crate) fn options(&self) -> Result<ExecOptions> {
        let mut o = ExecOptions::default();
        if let Some(m) = &self.mem {
            o = o.allowed_mem(tessera::parse_bytes(m)?);
        }
        if let Some(t) = self.threads {
            if t == 0 || t > tessera::exec::MAX_THREADS {
                return Err(Error::Invalid(format!(
                    "--threads {t}: must be from 1 to {}",
                    tessera::exec::MAX_THREADS
                )));
            }
            o = o.threads(t);
        }
        Ok(progress::attach(o, self.quiet))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job on the sample points in data/: distance matrices to Zarr and HDF5, k
    /// nearest neighbours, read back and checked, in-memory against on-disk chunking.
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
    /// Evaluate a NumPy-like expression over named inputs.
    #[command(after_help = eval::EXAMPLES)]
    Eval(eval::EvalArgs),
    /// Convert an array from one format to another, block by block in bounded memory.
    #[command(after_help = convert::EXAMPLES)]
    Convert(convert::ConvertArgs),
    /// Distance matrix between the rows of X and Y (or X and itself), streamed tile by tile.
    #[command(after_help = cdist::CDIST_EXAMPLES)]
    Cdist(cdist::CdistArgs),
    /// The k nearest points of Y (or X) to each point of X, or the counts within a radius,
    /// without building the distance matrix.
    #[command(after_help = cdist::KNN_EXAMPLES)]
    Knn(cdist::KnnArgs),
    /// Describe an array file: shape, dtype, chunk grid, blocks, bytes, backend.
    #[command(after_help = info::EXAMPLES)]
    Info(info::InfoArgs),
    /// Check a Zarr output written by several tasks (or resumed): every chunk present and
    /// decoding. Lists the missing or corrupt chunk keys and exits 1, or marks the array
    /// complete and exits 0.
    #[command(after_help = shard::VERIFY_EXAMPLES)]
    Verify(shard::VerifyArgs),
    /// Benchmark in-memory against on-disk chunking: GB/s and peak memory, a table and a plot.
    ///
    /// Reductions over an axis, an elementwise chain and a distance matrix streamed to a store,
    /// over memory, memory-mapped .npy, Zarr (none, zstd, blosc) and HDF5 (none, deflate), at
    /// several block sizes. Each case runs in a child process, which reports its time and its
    /// peak resident set.
    #[command(after_help = bench::EXAMPLES)]
    Bench(bench::BenchArgs),
    /// One case of `tessera bench`, run in a child process (internal).
    #[command(hide = true)]
    BenchCase(bench::CaseArgs),
}

/// Runs the command line and returns the process exit code.
pub(crate) fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = cli.run.options().and_then(|opts| match &cli.command {
        Command::Demo(a) => demo::run(a, &opts),
        Command::Eval(a) => eval::run(a, &opts),
        Command::Info(a) => info::run(a, &opts),
        Command::Verify(a) => shard::run_verify(a, &opts),
        Command::Convert(a) => convert::run(a, &opts),
        Command::Cdist(a) => cdist::run_cdist(a, &opts),
        Command::Knn(a) => cdist::run_knn(a, &opts),
        Command::Bench(a) => bench::run(a, &opts),
        Command::BenchCase(a) => bench::run_case(a, &opts),
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// What kind of array a path names.
pub(crate) enum Location {
    Npy(PathBuf),
    Zarr(PathBuf),
    Hdf5(PathBuf, String),
}

/// Classifies a path: `file.npy`, `dir.zarr[/array]`, `file.h5:/dataset`.
pub(crate) fn locate(spec: &str) -> Result<Location> {
    if let Some((file, ds)) = spec.split_once(":/") {
        let lower = file.to_ascii_lowercase();
        if lower.ends_with(".h5") || lower.ends_with(".hdf5") {
            return Ok(Location::Hdf5(PathBuf::from(file), format!("/{ds}")));
        }
    }
    let lower = spec.to_ascii_lowercase();
    if lower.ends_with(".npy") {
        return Ok(Location::Npy(PathBuf::from(spec)));
    }
    if lower.split('/').any(|part| part.ends_with(".zarr")) {
        return Ok(Location::Zarr(PathBuf::from(spec)));
    }
    if lower.ends_with(".h5") || lower.ends_with(".hdf5") {
        return Err(Error::Invalid(format!(
            "{spec}: name the dataset inside the HDF5 file, as {spec}:/path/to/dataset"
        )));
    }
    Err(Error::Invalid(format!(
        "{spec}: unknown array format; expected file.npy, dir.zarr or file.h5:/dataset"
    )))
}

/// Bytes per automatic block of an input: about 128 MiB (Dask's default), less when the memory
/// per thread is small, so that a task's input block, its output and the decode buffers fit
/// (`convert big.npy out.zarr --mem 64MiB` then runs in 8 MiB blocks), down to 64 KiB (a
/// `--mem` of 1 MiB on 2 threads: 128 KiB blocks).
pub(crate) fn auto_block_bytes(opts: &ExecOptions) -> usize {
    let per_thread = opts.allowed_mem / opts.worker_threads();
    (per_thread / 4).clamp(64 << 10, tessera::chunks::AUTO_BLOCK_BYTES)
}

/// Opens an input array, in automatic blocks sized by [`auto_block_bytes`].
pub(crate) fn open(spec: &str, opts: &ExecOptions) -> Result<DynArray> {
    let auto = Chunks::AutoBytes(auto_block_bytes(opts));
    match locate(spec)? {
        Location::Npy(p) => {
            if !p.exists() {
                return Err(Error::io(
                    &p,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such .npy file"),
                ));
            }
            DynArray::from_npy(&p, auto)
        }
        Location::Zarr(p) => DynArray::from_zarr(&p, auto),
        #[cfg(feature = "hdf5")]
        Location::Hdf5(p, d) => DynArray::from_hdf5(&p, &d, auto),
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5(p, d) => Err(Error::Unsupported(format!(
            "reading HDF5 ({}:{d}) in a build without the hdf5 feature",
            p.display()
        ))),
    }
}

/// Checks an output path before anything runs: a known format, and no existing file unless
/// `overwrite`.
pub(crate) fn check_output(spec: &str, overwrite: bool) -> Result<PathBuf> {
    match locate(spec)? {
        Location::Npy(p) => {
            if p.exists() && !overwrite {
                return Err(Error::Exists(p));
            }
            let parent = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(Error::io(
                    parent,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "output directory does not exist",
                    ),
                ));
            }
            Ok(p)
        }
        Location::Zarr(p) => {
            let (root, inner) = tessera::store::zarr::split_path(&p)?;
            if tessera::store::zarr::node_exists(&root, &inner) {
                if !overwrite {
                    return Err(Error::Exists(p));
                }
                tessera::store::zarr::refuse_group(&p)?;
            }
            Ok(p)
        }
        #[cfg(feature = "hdf5")]
        Location::Hdf5(p, d) => {
            if !overwrite && p.is_file() {
                if let Ok(f) = hdf5::File::open(&p) {
                    if f.link_exists(d.trim_start_matches('/')) {
                        return Err(Error::Exists(PathBuf::from(format!("{}:{d}", p.display()))));
                    }
                }
            }
            Ok(p)
        }
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5(p, d) => Err(Error::Unsupported(format!(
            "writing HDF5 ({}:{d}) in a build without the hdf5 feature",
            p.display()
        ))),
    }
}

/// How outputs are written: `--codec` and `--level` for Zarr and HDF5, `--zarr-format`.
#[derive(Args, Debug, Clone)]
pub(crate) struct OutputArgs {
    /// Compression: none, zstd, blosc or gzip for Zarr (default zstd); none or gzip (deflate
    /// with byte shuffle) for HDF5 (default none).
    #[arg(long, value_name = "CODEC")]
    codec: Option<String>,
    /// Compression level of the codec (Zarr: zstd default 3, blosc and gzip default 5; HDF5:
    /// gzip default 4, as h5py's).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    level: Option<i32>,
    /// Zarr format of a Zarr output: 3 (default) or 2 (what zarr-python 2 and older tools read).
    #[arg(long, value_name = "2|3")]
    zarr_format: Option<u8>,
}

/// The Zarr write options of `--codec`, `--level` and `--zarr-format`.
pub(crate) fn zarr_options(
    out: &OutputArgs,
    overwrite: bool,
) -> Result<tessera::store::zarr::ZarrWriteOptions> {
    Ok(tessera::store::zarr::ZarrWriteOptions {
        codec: tessera::store::zarr::Codec::parse(
            out.codec.as_deref().unwrap_or("zstd"),
            out.level,
        )?,
        overwrite,
        zarr_format: match out.zarr_format.unwrap_or(3) {
            f @ (2 | 3) => f,
            f => {
                return Err(Error::Invalid(format!(
                    "--zarr-format {f}: Zarr formats 2 and 3 can be written"
                )))
            }
        },
    })
}

/// [`zarr_options`] for an array at `path`: without `--zarr-format`, the format of the group
/// it goes into, so that zarr-python finds it there.
pub(crate) fn zarr_options_at(
    out: &OutputArgs,
    overwrite: bool,
    path: &Path,
) -> Result<tessera::store::zarr::ZarrWriteOptions> {
    let mut zopts = zarr_options(out, overwrite)?;
    if out.zarr_format.is_none() {
        if let Some(f) = tessera::store::zarr::parent_group_format(path) {
            zopts.zarr_format = f;
        }
    }
    Ok(zopts)
}

/// The HDF5 write options of `--codec` (none or gzip) and `--level`.
#[cfg(feature = "hdf5")]
pub(crate) fn hdf5_options(
    out: &OutputArgs,
    overwrite: bool,
) -> Result<tessera::store::hdf5::Hdf5WriteOptions> {
    let deflate = match out.codec.as_deref().unwrap_or("none") {
        "none" => {
            if let Some(l) = out.level {
                return Err(Error::Invalid(format!(
                    "level {l} given without compression: a level applies to --codec gzip"
                )));
            }
            None
        }
        "gzip" | "deflate" => match out.level.unwrap_or(4) {
            l @ 0..=9 => Some(l as u8),
            l => {
                return Err(Error::Invalid(format!(
                    "level {l} is out of range for gzip (0 to 9)"
                )))
            }
        },
        other => {
            return Err(Error::Invalid(format!(
                "codec {other:?} is not available for HDF5; use none or gzip"
            )))
        }
    };
    Ok(tessera::store::hdf5::Hdf5WriteOptions {
        deflate,
        shuffle: deflate.is_some(),
        overwrite,
    })
}

/// Writes `array` to an output path checked by [`check_output`].
pub(crate) fn write_output(
    array: &DynArray,
    spec: &str,
    path: &Path,
    out: &OutputArgs,
    overwrite: bool,
    opts: &ExecOptions,
) -> Result<()> {
    match locate(spec)? {
        Location::Zarr(_) => {
            let zopts = zarr_options_at(out, overwrite, path)?;
            array.to_zarr(path, &zopts, opts)
        }
        #[cfg(feature = "hdf5")]
        Location::Hdf5(_, d) => {
            if out.zarr_format.is_some() {
                return Err(Error::Invalid(
                    "--zarr-format applies to Zarr outputs, not HDF5".into(),
                ));
            }
            let hopts = hdf5_options(out, overwrite)?;
            array.to_hdf5(path, &d, &hopts, opts)
        }
        _ => {
            if out.zarr_format.is_some() {
                return Err(Error::Invalid(
                    "--zarr-format applies to Zarr outputs, not .npy".into(),
                ));
            }
            if out.codec.as_deref().is_some_and(|c| c != "none") || out.level.is_some() {
                return Err(Error::Invalid(
                    "a .npy output is never compressed: --codec and --level apply to Zarr and \
                     HDF5"
                        .into(),
                ));
            }
            array.to_npy(path, overwrite, opts)
        }
    }
}

/// Refuses a Zarr or HDF5 output that overlaps an input: replacing a store or a dataset
/// deletes it before the plan reads it, and HDF5 will not open a file for writing that is open
/// for reading. In one Zarr store, nodes beside each other do not overlap (`x.zarr/g/b` may be
/// written from `x.zarr/g/a`); a node and anything inside it do. (A `.npy` output is written
/// aside and renamed over its input once complete, and the input's memory map keeps the old
/// file, so it may replace its own input.)
pub(crate) fn refuse_input_as_output(inputs: &[&str], output: &str) -> Result<()> {
    // Where a spec's file or node is: with symbolic links resolved, so that two names of one
    // node compare equal (object storage URLs as text, without trailing '/'); and whether it is
    // an HDF5 file.
    let place = |spec: &str| -> Option<(PathBuf, bool)> {
        let (p, hdf5) = match locate(spec).ok()? {
            Location::Npy(p) | Location::Zarr(p) => (p, false),
            Location::Hdf5(p, _) => (p, true),
        };
        let at = if tessera::store::zarr::is_url(&p) {
            PathBuf::from(p.to_string_lossy().trim_end_matches('/'))
        } else {
            resolved(&p)?
        };
        Some((at, hdf5))
    };
    if matches!(locate(output), Ok(Location::Npy(_)) | Err(_)) {
        return Ok(());
    }
    let Some((out, out_hdf5)) = place(output) else {
        return Ok(());
    };
    for input in inputs {
        let Some((at, hdf5)) = place(input) else {
            continue;
        };
        // A Zarr node holds the nodes and files under it; an HDF5 output is one file.
        if !(at.starts_with(&out) || out.starts_with(&at)) {
            continue;
        }
        let why = if hdf5 || out_hdf5 {
            "HDF5 cannot open a file for writing while it reads it"
        } else {
            "one holds the other, and writing it would replace what is read"
        };
        return Err(Error::Invalid(format!(
            "{output} overlaps the input {input} ({why}); write the result to another path"
        )));
    }
    Ok(())
}

/// `path` absolute with its symbolic links resolved, whether or not all of it exists yet: the
/// deepest part that exists, canonicalised, then the names after it (which, not existing, are
/// no links: a `..` among them takes the name before it off). `None` when the path cannot be
/// resolved.
fn resolved(path: &std::path::Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut missing = Vec::new();
    let mut cur = path.to_path_buf();
    loop {
        let at = if cur.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            cur.as_path()
        };
        if let Ok(mut found) = std::fs::canonicalize(at) {
            for name in missing.iter().rev() {
                match name {
                    None => {
                        found.pop();
                    }
                    Some(n) => found.push(n),
                }
            }
            return Some(found);
        }
        // `Some(name)`, or `None` for `..`.
        let last: Option<std::ffi::OsString> = match cur.components().next_back()? {
            Component::ParentDir => None,
            Component::Normal(n) => Some(n.to_owned()),
            Component::CurDir => Some(".".into()),
            _ => return None,
        };
        missing.push(last);
        if !cur.pop() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refuse_input_as_output;

    /// Object storage URLs are compared as text (there is no file to resolve): an output that
    /// holds or is held by an input is refused, nodes beside each other and other buckets pass.
    #[test]
    fn object_store_outputs_overlapping_an_input_are_refused() {
        let input = ["s3://b/s.zarr/g/a"];
        for out in [
            "s3://b/s.zarr/g/a",
            "s3://b/s.zarr/g/a/",
            "s3://b/s.zarr/g",
            "s3://b/s.zarr",
        ] {
            let e = refuse_input_as_output(&input, out)
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.contains("overlaps the input s3://b/s.zarr/g/a")),
                "{out}: {e:?}"
            );
        }
        for out in [
            "s3://b/s.zarr/g/b",
            "s3://c/s.zarr/g/a",
            "s3://b/t.zarr/g/a",
        ] {
            assert!(refuse_input_as_output(&input, out).is_ok(), "{out}");
        }
    }
}
