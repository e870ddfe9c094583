//! One case of the benchmark, run in a child process (`tessera bench-case`, hidden): prepares
//! what is not timed, resets the peak resident set, times the case, reads the peak, and prints
//! one JSON line for the parent.

use super::{open_stored, store, sys, Backend, Measured, Workload, CDIST_DIM};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use tessera::chunks::{AxisChunks, Chunks};
use tessera::distance::{cdist, Metric};
use tessera::ops::creation::Distribution;
use tessera::ops::reduce::ReduceOpts;
use tessera::{ChunkedArray, Error, ExecOptions, Result};

/// Arguments of the hidden `tessera bench-case` command.
#[derive(Args, Debug)]
pub(crate) struct CaseArgs {
    /// What to compute.
    #[arg(long, value_enum)]
    workload: Workload,
    /// Where the array lives.
    #[arg(long, value_enum)]
    backend: Backend,
    /// The input (a `.npy` file for memory and npy, a Zarr array, an HDF5 file), or the
    /// output of cdist.
    #[arg(long)]
    path: PathBuf,
    /// Rows per block of the input, or points per side of a cdist tile.
    #[arg(long)]
    block: usize,
    /// Points per side of the cdist workload.
    #[arg(long, default_value_t = 0)]
    points: usize,
}

pub(crate) fn run(args: &CaseArgs, opts: &ExecOptions) -> Result<()> {
    if args.block == 0 {
        return Err(Error::Invalid("--block must be at least 1".into()));
    }
    let m = match args.workload {
        Workload::Cdist => cdist_case(args, opts)?,
        w => read_case(w, args, opts)?,
    };
    println!("{}", m.to_json());
    Ok(())
}

/// The rows of `x`, cut into blocks of `rows` rows.
fn by_rows(rows: usize) -> Chunks {
    Chunks::PerAxis(vec![AxisChunks::Size(rows), AxisChunks::Whole])
}

/// The sum of every element of a (small) result, as its checksum.
fn checksum(a: &ndarray::ArrayD<f64>) -> f64 {
    a.iter().sum()
}

/// Sum, mean or the elementwise chain over the input in `args.backend`.
fn read_case(w: Workload, args: &CaseArgs, opts: &ExecOptions) -> Result<Measured> {
    // Not timed: the memory backend's array, read from the .npy input into RAM.
    let resident = match args.backend {
        Backend::Memory => {
            Some(ChunkedArray::<f64>::from_npy(&args.path, Chunks::Auto)?.compute_with(opts)?)
        }
        _ => None,
    };
    let peak_reset = sys::reset_peak_rss();
    let t0 = Instant::now();
    let x = match resident {
        Some(data) => ChunkedArray::from_array(data, by_rows(args.block))?,
        None => open_stored(args.backend, &args.path, args.block)?,
    };
    let result = match w {
        Workload::Sum => x.sum(ReduceOpts::axis(0))?,
        Workload::Mean => x.mean(ReduceOpts::axis(1))?,
        // x * x as one unary step: `x.mul(&x)` would read every block twice.
        _ => x.map_same("square", |v| v * v).add(1.0)?.sqrt().sum_all()?,
    }
    .compute_with(opts)?;
    let seconds = t0.elapsed().as_secs_f64();
    let peak_rss = sys::peak_rss();
    Ok(Measured {
        seconds,
        bytes: x.nbytes(),
        blocks: x.nblocks(),
        peak_rss,
        peak_reset,
        check: checksum(&result),
    })
}

/// The euclidean distance matrix between two sets of `args.points` points, tiles of
/// `args.block` points a side, computed into memory or written to `args.path`.
fn cdist_case(args: &CaseArgs, opts: &ExecOptions) -> Result<Measured> {
    let n = args.points.max(1);
    let tile = args.block.min(n);
    let u = Distribution::Uniform {
        low: 0.0,
        high: 1.0,
    };
    // Not timed: the points, in memory (n x 16 float64, small beside the matrix).
    let p = ChunkedArray::<f64>::random(&[n, CDIST_DIM], u, 1, Chunks::Auto)?.compute_with(opts)?;
    let q = ChunkedArray::<f64>::random(&[n, CDIST_DIM], u, 2, Chunks::Auto)?.compute_with(opts)?;
    let peak_reset = sys::reset_peak_rss();
    let t0 = Instant::now();
    let x = ChunkedArray::from_array(p, by_rows(tile))?;
    let y = ChunkedArray::from_array(q, by_rows(tile))?;
    let d = cdist(&x, &y, Metric::Euclidean)?;
    let in_memory = match args.backend {
        Backend::Memory => Some(d.compute_with(opts)?),
        b => {
            store(&d, b, &args.path, opts)?;
            None
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let peak_rss = sys::peak_rss();
    // Not timed, after the peak is read: the checksum, from the file for the stores.
    let check = match in_memory {
        Some(m) => checksum(&m),
        None => checksum(
            &open_stored(args.backend, &args.path, tile)?
                .sum_all()?
                .compute_with(opts)?,
        ),
    };
    Ok(Measured {
        seconds,
        bytes: d.nbytes(),
        blocks: d.nblocks(),
        peak_rss,
        peak_reset,
        check,
    })
}
