//! `tessera info`: what an array file holds and how tessera would cut it into blocks.

use super::convert::chunks_for;
use super::{locate, open, Location};
use clap::Args;
use tessera::chunks::ChunkGrid;
use tessera::error::fmt_bytes;
use tessera::{Chunks, DType, ExecOptions, Result};

pub(crate) const EXAMPLES: &str = "Examples:
  tessera info data/points.npy
  tessera info data/points.zarr
  tessera info data/points.h5:/points
  tessera info data/points.npy --chunks 300,-1

The grid is drawn as a picture: one cell per block, sized by the block lengths (axis 0 down,
the last axis across; 3-D arrays show axes 1 and 2, with a note of axis 0). A Zarr array or
HDF5 dataset whose stored chunks differ from tessera's blocks has its stored chunks drawn too.";

/// Arguments of `tessera info`.
#[derive(Args, Debug)]
pub(crate) struct InfoArgs {
    /// The array: file.npy, dir.zarr[/array] or file.h5:/dataset.
    path: String,
    /// Describe the blocks tessera would use with these chunks (as `convert --chunks`: one size
    /// per axis separated by commas, -1 for a whole axis, or one size for every axis) instead
    /// of its automatic choice.
    #[arg(long, value_name = "SIZES", allow_hyphen_values = true)]
    chunks: Option<String>,
}

pub(crate) fn run(args: &InfoArgs, opts: &ExecOptions) -> Result<()> {
    // Zarr and HDF5 arrays are described from their metadata alone, so an interrupted write
    // (which reading refuses) can still be inspected.
    let grid_of = |shape: &[usize], dtype: DType, native: Option<&[usize]>| {
        let chunks = match &args.chunks {
            Some(spec) => chunks_for(spec, shape.len())?,
            // As reading makes them: smaller under a small --mem.
            None => Chunks::AutoBytes(super::auto_block_bytes(opts)),
        };
        ChunkGrid::new_aligned(shape, &chunks, dtype.size(), native).map(|g| (g, dtype))
    };
    // The stored chunk grid, when the file has one.
    let stored_of = |shape: &[usize], chunk: Option<&[usize]>| -> Result<Option<ChunkGrid>> {
        chunk.map(|c| ChunkGrid::regular(shape, c)).transpose()
    };
    let (backend, (g, dtype), stored) = match locate(&args.path)? {
        Location::Npy(p) => {
            let array = open(&args.path, opts)?;
            let map = tessera::store::npy::NpyMap::open(&p)?;
            let h = map.header();
            let backend = format!(
                "npy, memory-mapped ({} order{})",
                if h.fortran_order { "Fortran" } else { "C" },
                if h.big_endian { ", big-endian" } else { "" }
            );
            (backend, grid_of(array.shape(), array.dtype(), None)?, None)
        }
        Location::Zarr(p) => {
            let z = tessera::store::zarr::info(&p)?;
            let grid = grid_of(&z.shape, z.dtype, z.chunk_shape.as_deref())?;
            let stored = stored_of(&z.shape, z.chunk_shape.as_deref())?;
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
            (backend, grid, stored)
        }
        #[cfg(feature = "hdf5")]
        Location::Hdf5(p, d) => {
            let h = tessera::store::hdf5::info(&p, &d)?;
            // Automatic blocks as reading makes them (single chunks when whole-row chunks lie
            // out of order in the file); from the metadata alone when the dataset cannot be
            // opened (an interrupted write).
            let opened = match (&args.chunks, h.complete) {
                (None, Some(true) | None) => open(&args.path, opts).ok(),
                _ => None,
            };
            let grid = match opened {
                Some(a) => (a.grid().clone(), a.dtype()),
                None => grid_of(&h.shape, h.dtype, h.chunk_shape.as_deref())?,
            };
            let stored = stored_of(&h.shape, h.chunk_shape.as_deref())?;
            let backend = format!(
                "hdf5 (dataset {d} in {}), {}, filters {}, {}",
                p.display(),
                match &h.chunk_shape {
                    Some(c) => format!("chunks {c:?}"),
                    None => h.layout.into(),
                },
                h.filters,
                match h.complete {
                    Some(true) => "complete",
                    Some(false) => "INCOMPLETE (interrupted write)",
                    None => "not written by tessera",
                }
            );
            (backend, grid, stored)
        }
        #[cfg(not(feature = "hdf5"))]
        Location::Hdf5(..) => {
            let array = open(&args.path, opts)?;
            let grid = grid_of(array.shape(), array.dtype(), None)?;
            (String::from("hdf5"), grid, None)
        }
    };
    let per_block = g.max_block_len() * dtype.size();
    let chunks: Vec<String> = (0..g.ndim()).map(|ax| g.axis_summary(ax)).collect();
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
    print_picture("grid", &g);
    if let Some(s) = stored.filter(|s| s != &g) {
        println!(
            "stored     {} chunks of {:?} in the file",
            s.nblocks(),
            s.max_chunk_shape()
        );
        print_picture("", &s);
    }
    Ok(())
}

/// A grid's picture, its first line beside `label`.
fn print_picture(label: &str, g: &ChunkGrid) {
    for (k, line) in g.picture().lines().enumerate() {
        println!("{:11}{line}", if k == 0 { label } else { "" });
    }
}
