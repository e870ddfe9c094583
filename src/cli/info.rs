//! `tessera info`: what an array file holds and how tessera would cut it into blocks.

use super::{locate, open, Location};
use clap::Args;
use tessera::error::fmt_bytes;
use tessera::{ExecOptions, Result};

pub(crate) const EXAMPLES: &str = "Examples:
  tessera info data/points.npy
  tessera info out.zarr
  tessera info out.h5:/group/x";

/// Arguments of `tessera info`.
#[derive(Args, Debug)]
pub(crate) struct InfoArgs {
    /// The array: file.npy, dir.zarr[/array] or file.h5:/dataset.
    path: String,
}

pub(crate) fn run(args: &InfoArgs, _opts: &ExecOptions) -> Result<()> {
    let array = open(&args.path)?;
    let backend = match locate(&args.path)? {
        Location::Npy(p) => {
            let map = tessera::store::npy::NpyMap::open(&p)?;
            let h = map.header();
            format!(
                "npy, memory-mapped ({} order{})",
                if h.fortran_order { "Fortran" } else { "C" },
                if h.big_endian { ", big-endian" } else { "" }
            )
        }
        Location::Zarr(p) => {
            let z = tessera::store::zarr::info(&p)?;
            format!(
                "zarr v{} (array {} in {}), chunks {:?}, codecs {}, {}",
                z.zarr_format,
                z.array_path,
                z.root.display(),
                z.chunk_shape.unwrap_or_default(),
                z.codecs,
                match z.complete {
                    Some(true) => "complete",
                    Some(false) => "INCOMPLETE (interrupted write)",
                    None => "not written by tessera",
                }
            )
        }
        #[cfg(feature = "hdf5")]
        Location::Hdf5(p, d) => {
            let h = tessera::store::hdf5::info(&p, &d)?;
            format!(
                "hdf5 (dataset {d} in {}), {}, filters {}, {}",
                p.display(),
                match h.chunk_shape {
                    Some(c) => format!("chunks {c:?}"),
                    None => "contiguous".into(),
                },
                h.filters,
                match h.complete {
                    Some(true) => "complete",
                    Some(false) => "INCOMPLETE (interrupted write)",
                    None => "not written by tessera",
                }
            )
        }
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5(..) => String::from("hdf5"),
    };
    let g = array.grid();
    let per_block = g.max_block_len() * array.dtype().size();
    let chunks: Vec<String> = g
        .chunks()
        .iter()
        .map(|c| {
            let max = c.iter().copied().max().unwrap_or(0);
            let last = c.last().copied().unwrap_or(0);
            if c.len() > 1 && last != max {
                format!("{} x {max} + {last}", c.len() - 1)
            } else {
                format!("{} x {max}", c.len())
            }
        })
        .collect();
    println!("path       {}", args.path);
    println!("backend    {backend}");
    println!("shape      {:?}", g.shape());
    println!("dtype      {}", array.dtype());
    println!(
        "chunks     {:?}  (per axis: {})",
        g.max_chunk_shape(),
        chunks.join(", ")
    );
    println!(
        "blocks     {} ({:?} per axis)",
        g.nblocks(),
        g.blocks_per_axis()
    );
    println!(
        "bytes      {} in total, {} per block",
        fmt_bytes(array.nbytes()),
        fmt_bytes(per_block)
    );
    Ok(())
}
