//! `tessera convert`: any supported format to any other, streamed block by block.

use super::shard::{input_path, write_part, ShardArgs};
use super::{check_output, open, refuse_input_as_output, write_output, OutputArgs};
use clap::Args;
use tessera::chunks::{AxisChunks, Chunks};
use tessera::error::fmt_bytes;
use tessera::{Error, ExecOptions, Result};

pub(crate) const EXAMPLES: &str = "Examples:
  tessera convert data/points.npy points.zarr
  tessera convert data/points.npy points-500.zarr --chunks 500,-1 --codec blosc --level 5
  tessera convert points.zarr points-copy.npy
  tessera convert data/points.npy points-v2.zarr --zarr-format 2 --codec blosc
  tessera convert points.zarr points.h5:/results/x --codec gzip --level 4";

/// Arguments of `tessera convert`.
#[derive(Args, Debug)]
pub(crate) struct ConvertArgs {
    /// The source array: file.npy, dir.zarr[/array] or file.h5:/dataset.
    src: String,
    /// The destination: file.npy, dir.zarr[/array] or file.h5:/dataset.
    dst: String,
    /// Chunks of the destination, one size per axis separated by commas (-1 for a whole axis),
    /// or one size for every axis; default: the source's blocks.
    #[arg(long, value_name = "SIZES", allow_hyphen_values = true)]
    chunks: Option<String>,
    /// Replace DST if it exists.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

fn parse_chunks(spec: &str) -> Result<Chunks> {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let axis = |p: &str| -> Result<AxisChunks> {
        match p {
            "-1" => Ok(AxisChunks::Whole),
            "auto" => Ok(AxisChunks::Auto),
            n => n
                .parse::<usize>()
                .map(AxisChunks::Size)
                .map_err(|_| Error::Invalid(format!("--chunks {spec}: {n:?} is not a chunk size"))),
        }
    };
    if parts.len() == 1 {
        return Ok(match axis(parts[0])? {
            AxisChunks::Size(n) => Chunks::Size(n),
            AxisChunks::Auto => Chunks::Auto,
            other => Chunks::PerAxis(vec![other]),
        });
    }
    Ok(Chunks::PerAxis(
        parts.into_iter().map(axis).collect::<Result<_>>()?,
    ))
}

/// The chunks `--chunks SPEC` asks of an array of `ndim` axes (one size, `-1` or `auto`
/// applies to every axis).
pub(crate) fn chunks_for(spec: &str, ndim: usize) -> Result<Chunks> {
    let c = parse_chunks(spec)?;
    Ok(match c {
        Chunks::PerAxis(v) if v.len() == 1 && ndim != 1 => {
            Chunks::PerAxis(vec![v[0].clone(); ndim])
        }
        other => other,
    })
}

pub(crate) fn run(args: &ConvertArgs, opts: &ExecOptions) -> Result<()> {
    refuse_input_as_output(&[&args.src], &args.dst)?;
    let part = args.shard.part()?;
    let dst = match &part {
        Some(p) => p.check_output(&args.dst, args.overwrite)?,
        None => check_output(&args.dst, args.overwrite)?,
    };
    let mut array = open(&args.src, opts)?;
    if let Some(spec) = &args.chunks {
        array = array.rechunk(chunks_for(spec, array.shape().len())?)?;
    }
    if let Some(p) = &part {
        let mut run = serde_json::Map::new();
        run.insert("command".into(), "convert".into());
        run.insert("src".into(), input_path(&args.src));
        let report = write_part(&array, &dst, &args.out, p, run, opts)?;
        println!("{}", p.summary(&dst, &report));
        return Ok(());
    }
    write_output(&array, &args.dst, &dst, &args.out, args.overwrite, opts)?;
    println!(
        "wrote {} {:?} {} to {}",
        array.dtype(),
        array.shape(),
        fmt_bytes(array.nbytes()),
        args.dst
    );
    Ok(())
}
