//! `tessera info`: what an array file holds and how tessera would cut it into blocks.

use super::{locate, open, Location};
use clap::Args;
use tessera::chunks::ChunkGrid;
use tessera::error::fmt_bytes;
use tessera::{Chunks, DType, ExecOptions, Result};

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
    // Zarr and HDF5 arrays are described from their metadata alone, so an interrupted write
    // (which reading refuses) can still be inspected.
    let grid_of = |shape: &[usize], dtype: DType, native: Option<&[usize]>| {
        ChunkGrid::new_aligned(shape, &Chunks::Auto, dtype.size(), native).map(|g| (g, dtype))
    };
    let (backend, (g, dtype)) = match locate(&args.path)? {
        Location::Npy(p) => {
            let array = open(&args.path)?;
            let map = tessera::store::npy::NpyMap::open(&p)?;
            let h = map.header();
            let backend = format!(
                "npy, memory-mapped ({} order{})",
                if h.fortran_order { "Fortran" } else { "C" },
                if h.big_endian { ", big-endian" } else { "" }
            );
            (backend, (array.grid().clone(), array.dtype()))
        }
        Location::Zarr(p) => {
            let z = tessera::store::zarr::info(&p)?;
            let grid = grid_of(&z.shape, z.dtype, z.chunk_shape.as_deref())?;
            let backend = format!(
                "zarr v{} (array {} in {}), chunks {:?}, codecs {}, {}",
                z.zarr_format,
                z.array_path,
                z.root.display(),
                z.chunk_shape.clone().unwrap_or_default(),
                z.codecs,
                match z.complete {
                    Some(true) => "complete",
                    Some(false) => "INCOMPLETE (interrupted write)",
                    None => "not written by tessera",
                }
            );
            (backend, grid)
        }
        #[cfg(feature = "hdf5")]
        Location::Hdf5(p, d) => {
            let h = tessera::store::hdf5::info(&p, &d)?;
            let grid = grid_of(&h.shape, h.dtype, h.chunk_shape.as_deref())?;
            let backend = format!(
                "hdf5 (dataset {d} in {}), {}, filters {}, {}",
                p.display(),
                match &h.chunk_shape {
                    Some(c) => format!("chunks {c:?}"),
                    None => "contiguous".into(),
                },
                h.filters,
                match h.complete {
                    Some(true) => "complete",
                    Some(false) => "INCOMPLETE (interrupted write)",
                    None => "not written by tessera",
                }
            );
            (backend, grid)
        }
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5(..) => {
            let array = open(&args.path)?;
            (String::from("hdf5"), (array.grid().clone(), array.dtype()))
        }
    };
    let per_block = g.max_block_len() * dtype.size();
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
    println!("dtype      {dtype}");
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
        fmt_bytes(g.shape().iter().product::<usize>() * dtype.size()),
        fmt_bytes(per_block)
    );
    Ok(())
}
