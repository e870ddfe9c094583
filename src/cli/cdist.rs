//! `tessera cdist` and `tessera knn`: distance matrices streamed to a store, and the k nearest
//! neighbours (or the counts within a radius) without building the matrix.

use super::shard::{input_path, write_part, Part, ShardArgs};
use super::{
    check_output, open, refuse_input_as_output, write_output, zarr_options, zarr_options_at,
    OutputArgs,
};
use clap::Args;
use ndarray::Axis;
use serde_json::{Map, Value};
use std::time::Instant;
use tessera::chunks::{AxisChunks, Chunks};
use tessera::distance::{self, DistFloat, Metric};
use tessera::dynarray::DynArray;
use tessera::error::fmt_bytes;
use tessera::exec::RunStats;
use tessera::ops::slice::SliceItem;
use tessera::store::zarr::{ChunkState, PartReport, ZarrTarget};
use tessera::{ChunkedArray, DType, Error, ExecOptions, Result};

pub(crate) const CDIST_EXAMPLES: &str = "Examples:
  tessera cdist data/points.npy --metric cityblock -o dist.zarr
  tessera cdist data/points.zarr data/points.h5:/points --metric euclidean -o dist.h5:/euclidean
  tessera cdist data/points.npy --metric minkowski --p 3 --chunk 500 --codec none --mem 1GiB -o d.zarr
  tessera cdist data/points.npy data/points.zarr --metric cosine --dtype f32 -o d.npy";

pub(crate) const KNN_EXAMPLES: &str = "Examples:
  tessera knn data/points.npy -k 8 --metric euclidean -o neighbours.zarr
  tessera eval 'x[:10]' --in x=data/points.npy -o queries.npy
  tessera knn queries.npy data/points.h5:/points -k 3 --metric cityblock -o nn.h5
  tessera knn data/points.zarr --radius 0.1 -o counts.zarr";

/// The points and the metric, shared by `cdist` and `knn`.
#[derive(Args, Debug)]
pub(crate) struct PointsArgs {
    /// Points as rows (n, d): file.npy, dir.zarr[/array] or file.h5:/dataset.
    x: String,
    /// Points to measure against (m, d); default X itself.
    y: Option<String>,
    /// Distance metric: euclidean, sqeuclidean, cityblock, chebyshev, minkowski, cosine,
    /// correlation, hamming, canberra or braycurtis (SciPy's definitions).
    #[arg(long, default_value = "euclidean")]
    metric: String,
    /// The exponent of the minkowski metric (default 2).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    p: Option<f64>,
    /// Element type of the computation: f32 or f64 (default: the inputs' float type, f64 for
    /// integer inputs).
    #[arg(long, value_name = "f32|f64")]
    dtype: Option<String>,
    /// Points per tile side (rows of X and Y per block); default: tiles of about 128 MiB or
    /// what the memory limit allows.
    #[arg(long, value_name = "ROWS")]
    chunk: Option<usize>,
    /// Replace the output if it exists.
    #[arg(long)]
    overwrite: bool,
}

/// Arguments of `tessera cdist`.
#[derive(Args, Debug)]
pub(crate) struct CdistArgs {
    #[command(flatten)]
    points: PointsArgs,
    /// The output: file.npy, dir.zarr[/array] or file.h5:/dataset.
    #[arg(short, long, value_name = "OUT")]
    output: String,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

/// Arguments of `tessera knn`.
#[derive(Args, Debug)]
pub(crate) struct KnnArgs {
    #[command(flatten)]
    points: PointsArgs,
    /// Number of neighbours per point.
    #[arg(short, long, value_name = "K", required_unless_present = "radius")]
    k: Option<usize>,
    /// Count the points of Y within this distance (<=) of each point of X instead.
    #[arg(
        long,
        value_name = "R",
        conflicts_with = "k",
        allow_hyphen_values = true
    )]
    radius: Option<f64>,
    /// The output: a Zarr group (dir.zarr, holding the arrays `indices` and `distances`, or
    /// `counts`) or an HDF5 file (file.h5 or file.h5:/group, the same as datasets).
    #[arg(short, long, value_name = "OUT")]
    output: String,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

/// The inputs, converted to the computation's float type.
enum Points {
    F32(ChunkedArray<f32>, Option<ChunkedArray<f32>>),
    F64(ChunkedArray<f64>, Option<ChunkedArray<f64>>),
}

fn float_type(a: &PointsArgs, x: &DynArray, y: Option<&DynArray>) -> Result<DType> {
    match a.dtype.as_deref() {
        Some("f32" | "float32") => Ok(DType::F32),
        Some("f64" | "float64") => Ok(DType::F64),
        Some(other) => Err(Error::Invalid(format!(
            "--dtype {other}: distances are computed in f32 or f64"
        ))),
        None => {
            let all_f32 = x.dtype() == DType::F32 && y.is_none_or(|y| y.dtype() == DType::F32);
            Ok(if all_f32 { DType::F32 } else { DType::F64 })
        }
    }
}

/// The fewest points per tile side chosen for the user (`--chunk` may ask for fewer).
const MIN_TILE_ROWS: usize = 16;

/// Points per tile side: `--chunk`, or tiles of about 128 MiB that fit the memory per thread
/// (a tile and its copy, with the rows), besides what a task of `metric` uses whatever its tile.
fn tile_rows(
    a: &PointsArgs,
    n: usize,
    d: usize,
    elem: usize,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<usize> {
    if let Some(c) = a.chunk {
        if c == 0 {
            return Err(Error::Invalid("--chunk must be at least 1".into()));
        }
        return Ok(c);
    }
    let threads = opts.worker_threads();
    let per_thread = opts.allowed_mem / threads;
    let slack = distance::task_slack(metric, d);
    let budget = (per_thread.saturating_sub(slack) / 3).min(128 << 20);
    // r^2 + 2 r d elements per tile and rows, times two copies: solve 2 (r^2 + 2 r d) e <= budget.
    let (ef, df) = (elem as f64, d as f64);
    let r = (-2.0 * df + (4.0 * df * df + budget as f64 / ef).sqrt()).max(0.0) as usize;
    // Tiles of a few rows would make a plan of millions of tasks; below this, ask for memory.
    let least = MIN_TILE_ROWS.min(n.max(1));
    if r < least {
        return Err(Error::MemoryLimit {
            op: format!("{metric} distance tiles of {least} x {least} (d={d})"),
            projected: (6 * (least * least + 2 * least * d))
                .saturating_mul(elem)
                .saturating_add(slack),
            limit: opts.allowed_mem,
            threads,
            shared: 0,
        });
    }
    // At least two row blocks per thread, so that every thread has tiles to compute.
    let spread = n.div_ceil(threads * 2).max(64);
    Ok(r.min(spread).clamp(1, n.max(1)))
}

fn open_points(a: &PointsArgs, opts: &ExecOptions) -> Result<Points> {
    let x = open(&a.x, opts)?;
    let y = a.y.as_deref().map(|y| open(y, opts)).transpose()?;
    // Points are rows of a 2-D array, at least one of at least one coordinate: checked here,
    // where the files' names are known.
    for (name, arr) in std::iter::once((&a.x, &x)).chain(a.y.as_ref().zip(y.as_ref())) {
        let shape = arr.shape();
        if shape.len() != 2 {
            return Err(Error::Shape(format!(
                "{name} must be a 2-D array (points by coordinates), got shape {shape:?}"
            )));
        }
        if shape.contains(&0) {
            return Err(Error::Shape(format!(
                "{name} is empty (shape {shape:?}): distances need at least one point of at \
                 least one coordinate"
            )));
        }
    }
    let dtype = float_type(a, &x, y.as_ref())?;
    Ok(match dtype {
        DType::F32 => Points::F32(
            x.astype(DType::F32).typed::<f32>()?,
            y.map(|y| y.astype(DType::F32).typed::<f32>()).transpose()?,
        ),
        _ => Points::F64(
            x.astype(DType::F64).typed::<f64>()?,
            y.map(|y| y.astype(DType::F64).typed::<f64>()).transpose()?,
        ),
    })
}

/// The array on row blocks of `rows` points, all coordinates in one block (`a` is 2-D:
/// [`open_points`] checked it).
fn by_rows<T: DistFloat>(a: &ChunkedArray<T>, rows: usize) -> Result<ChunkedArray<T>> {
    a.rechunk(Chunks::PerAxis(vec![
        AxisChunks::Size(rows.max(1)),
        AxisChunks::Whole,
    ]))
}

fn lazy_cdist<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: Option<&ChunkedArray<T>>,
    a: &PointsArgs,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<ChunkedArray<T>>
where
    DynArray: From<ChunkedArray<T>>,
{
    let rows = tile_rows(a, x.shape()[0], x.shape()[1], T::DTYPE.size(), metric, opts)?;
    let xr = by_rows(x, rows)?;
    match y {
        None => distance::pdist(&xr, metric),
        Some(y) => distance::cdist(&xr, &by_rows(y, rows)?, metric),
    }
}

pub(crate) fn run_cdist(args: &CdistArgs, opts: &ExecOptions) -> Result<()> {
    let a = &args.points;
    let metric = Metric::parse(&a.metric, a.p)?;
    let mut inputs = vec![a.x.as_str()];
    inputs.extend(a.y.as_deref());
    refuse_input_as_output(&inputs, &args.output)?;
    let part = args.shard.part()?;
    let dst = match &part {
        Some(p) => p.check_output(&args.output, a.overwrite)?,
        None => check_output(&args.output, a.overwrite)?,
    };
    let result: DynArray = match open_points(a, opts)? {
        Points::F32(x, y) => lazy_cdist(&x, y.as_ref(), a, metric, opts)?.into(),
        Points::F64(x, y) => lazy_cdist(&x, y.as_ref(), a, metric, opts)?.into(),
    };
    if let Some(p) = &part {
        let report = write_part(
            &result,
            &dst,
            &args.out,
            p,
            points_run("cdist", a, metric),
            opts,
        )?;
        println!("{}", p.summary(&dst, &report));
        return Ok(());
    }
    let t0 = Instant::now();
    write_output(&result, &args.output, &dst, &args.out, a.overwrite, opts)?;
    let secs = t0.elapsed().as_secs_f64();
    let tile = result.grid().max_chunk_shape();
    println!(
        "wrote {} {} {:?} {} to {} ({} tiles of {:?}, {:.2} s, {:.2} GB/s)",
        metric,
        result.dtype(),
        result.shape(),
        fmt_bytes(result.nbytes()),
        args.output,
        result.grid().nblocks(),
        tile,
        secs,
        result.nbytes() as f64 / secs.max(1e-9) / 1e9
    );
    Ok(())
}

/// The parameters a split or resumed run records with its output, so that every task (and a
/// later `--resume`) computes the same thing.
fn points_run(command: &str, a: &PointsArgs, metric: Metric) -> Map<String, Value> {
    let mut run = Map::new();
    run.insert("command".into(), command.into());
    run.insert("x".into(), input_path(&a.x));
    run.insert("y".into(), a.y.as_deref().map_or(Value::Null, input_path));
    run.insert("metric".into(), metric.to_string().into());
    run
}

/// Where the knn arrays go: `OUT/name` for a Zarr group, `file.h5:/[group/]name` for HDF5.
fn member(output: &str, name: &str) -> Result<String> {
    let lower = output.to_ascii_lowercase();
    if let Some((file, group)) = output.split_once(":/") {
        let g = group.trim_end_matches('/');
        return Ok(if g.is_empty() {
            format!("{file}:/{name}")
        } else {
            format!("{file}:/{g}/{name}")
        });
    }
    if lower.ends_with(".h5") || lower.ends_with(".hdf5") {
        return Ok(format!("{output}:/{name}"));
    }
    if lower.split('/').any(|p| p.ends_with(".zarr")) {
        return Ok(format!("{}/{name}", output.trim_end_matches('/')));
    }
    Err(Error::Invalid(format!(
        "{output}: knn writes several arrays: give a Zarr group (dir.zarr) or an HDF5 file (file.h5)"
    )))
}

fn write_members(
    members: Vec<(&str, DynArray)>,
    args: &KnnArgs,
    opts: &ExecOptions,
) -> Result<Vec<String>> {
    let specs: Vec<(String, DynArray)> = members
        .into_iter()
        .map(|(name, a)| Ok((member(&args.output, name)?, a)))
        .collect::<Result<_>>()?;
    let mut checked = Vec::new();
    for (spec, _) in &specs {
        checked.push(check_output(spec, args.points.overwrite)?);
    }
    for ((spec, array), path) in specs.iter().zip(&checked) {
        write_output(array, spec, path, &args.out, args.points.overwrite, opts)?;
    }
    Ok(specs.into_iter().map(|(s, _)| s).collect())
}

fn knn_typed<T: DistFloat>(
    x: ChunkedArray<T>,
    y: Option<ChunkedArray<T>>,
    args: &KnnArgs,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<Vec<(&'static str, DynArray)>>
where
    DynArray: From<ChunkedArray<T>>,
{
    let yy = y.as_ref().unwrap_or(&x);
    let n = x.shape().first().copied().unwrap_or(0);
    if let Some(r) = args.radius {
        let counts = distance::count_within(&x, yy, r, metric, opts)?;
        let counts = ChunkedArray::from_array(counts.into_dyn(), Chunks::Auto)?;
        return Ok(vec![("counts", counts.into())]);
    }
    let k = args.k.unwrap_or(1);
    let nn = distance::knn(&x, yy, k, metric, opts)?;
    let idx = ChunkedArray::from_array(nn.indices.into_dyn(), Chunks::Auto)?;
    let dist = ChunkedArray::from_array(nn.distances.into_dyn(), Chunks::Auto)?;
    debug_assert_eq!(idx.shape()[0], n);
    Ok(vec![("indices", idx.into()), ("distances", dist.into())])
}

pub(crate) fn run_knn(args: &KnnArgs, opts: &ExecOptions) -> Result<()> {
    let a = &args.points;
    let metric = Metric::parse(&a.metric, a.p)?;
    let part = args.shard.part()?;
    // Where the results go, checked before anything runs.
    let outputs = knn_outputs(args, |spec| match &part {
        Some(p) => p.check_output(spec, a.overwrite),
        None => check_output(spec, a.overwrite),
    })?;
    if let Some(part) = part {
        return knn_part(args, &part, metric, &outputs, opts);
    }
    let t0 = Instant::now();
    let members = match open_points(a, opts)? {
        Points::F32(x, y) => knn_typed(x, y, args, metric, opts)?,
        Points::F64(x, y) => knn_typed(x, y, args, metric, opts)?,
    };
    let shape = members[0].1.shape().to_vec();
    let written = write_members(members, args, opts)?;
    let what = match (args.radius, args.k) {
        (Some(r), _) => format!("counts within {r}"),
        (None, k) => format!("{} nearest", k.unwrap_or(1)),
    };
    println!(
        "{what} ({metric}) for {} points in {:.2} s:",
        shape[0],
        t0.elapsed().as_secs_f64()
    );
    for w in written {
        println!("  {w}");
    }
    Ok(())
}

/// The arrays of a knn output (`indices` and `distances`, or `counts`), each refused when it
/// is also an input, then checked by `check`.
fn knn_outputs(
    args: &KnnArgs,
    check: impl Fn(&str) -> Result<std::path::PathBuf>,
) -> Result<Vec<std::path::PathBuf>> {
    let a = &args.points;
    let names: &[&str] = if args.radius.is_some() {
        &["counts"]
    } else {
        &["indices", "distances"]
    };
    let mut inputs = vec![a.x.as_str()];
    inputs.extend(a.y.as_deref());
    names
        .iter()
        .map(|name| {
            let spec = member(&args.output, name)?;
            refuse_input_as_output(&inputs, &spec)?;
            check(&spec)
        })
        .collect()
}

/// A split or resumed knn: this task's share of the row blocks of X, each written as one chunk
/// (of `--chunk` rows) of every output array (`outputs`, checked), in place.
fn knn_part(
    args: &KnnArgs,
    part: &Part,
    metric: Metric,
    outputs: &[std::path::PathBuf],
    opts: &ExecOptions,
) -> Result<()> {
    let a = &args.points;
    let t0 = Instant::now();
    let report = match open_points(a, opts)? {
        Points::F32(x, y) => knn_part_typed(x, y, args, part, metric, outputs, opts)?,
        Points::F64(x, y) => knn_part_typed(x, y, args, part, metric, outputs, opts)?,
    };
    let root = std::path::PathBuf::from(args.output.trim_end_matches('/'));
    println!(
        "{} ({:.2} s)",
        part.summary(&root, &report),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn knn_part_typed<T: DistFloat>(
    x: ChunkedArray<T>,
    y: Option<ChunkedArray<T>>,
    args: &KnnArgs,
    part: &Part,
    metric: Metric,
    outputs: &[std::path::PathBuf],
    opts: &ExecOptions,
) -> Result<PartReport> {
    let a = &args.points;
    // x is 2-D and not empty: open_points checked it.
    let (n, d) = (x.shape()[0], x.shape()[1]);
    // No longer than the points: the outputs' chunks have this many rows, and a chunk of more
    // rows than there are would be padded (and allocated) whole.
    let rows = tile_rows(a, n, d, T::DTYPE.size(), metric, opts)?.min(n.max(1));
    let yy = y.as_ref().unwrap_or(&x);
    let k = args.k.unwrap_or(1);
    // Checked before the output is created.
    if k == 0 {
        return Err(Error::Invalid("k must be at least 1".into()));
    }
    distance::check_points(&x, yy)?;
    if args.radius.is_none() && k > yy.shape()[0] {
        return Err(Error::Invalid(format!(
            "k = {k} is more than the {} candidate points of y (shape {:?})",
            yy.shape()[0],
            yy.shape()
        )));
    }
    if args.radius.is_some_and(|r| r.is_nan() || r < 0.0) {
        return Err(Error::Invalid(format!(
            "--radius {} must be a distance (0 or more)",
            args.radius.unwrap_or_default()
        )));
    }
    let zopts = match outputs.first() {
        Some(first) => zarr_options_at(&args.out, false, first)?,
        None => zarr_options(&args.out, false)?,
    };
    let mut run = points_run("knn", a, metric);
    match args.radius {
        Some(r) => run.insert("radius".into(), r.into()),
        None => run.insert("k".into(), k.into()),
    };
    let run_options = part.options(run);
    // (shape, chunk, dtype) of each output, in the order of `outputs`.
    let layouts: Vec<(Vec<usize>, Vec<usize>, DType)> = if args.radius.is_some() {
        vec![(vec![n], vec![rows], DType::I64)]
    } else {
        vec![
            (vec![n, k], vec![rows, k], DType::I64),
            (vec![n, k], vec![rows, k], T::DTYPE),
        ]
    };
    let mut targets = Vec::new();
    let mut created = false;
    let mut complete = true;
    for (path, (shape, chunk, dtype)) in outputs.iter().zip(&layouts) {
        let (t, joined) =
            ZarrTarget::create_or_join(path, shape, chunk, *dtype, &zopts, &run_options.run)?;
        created |= joined.created;
        complete &= joined.complete;
        targets.push(t);
    }
    let all: Vec<&ZarrTarget> = targets.iter().collect();
    if complete && ZarrTarget::reopen_complete(&all, part.resume, &args.output)? {
        return Ok(PartReport {
            stats: RunStats::default(),
            created,
            complete,
        });
    }
    let chunk_index = |b: usize, ndim: usize| -> Vec<usize> {
        let mut idx = vec![0; ndim];
        idx[0] = b;
        idx
    };
    let mine = part.shard.range(n.div_ceil(rows.max(1)));
    let todo: Vec<usize> =
        mine.clone()
            .filter(|&b| {
                !part.resume
                    || targets.iter().zip(&layouts).any(|(t, l)| {
                        t.chunk_state(&chunk_index(b, l.0.len())) != ChunkState::Valid
                    })
            })
            .collect();
    // Contiguous runs of row blocks are computed together.
    let mut start = 0;
    while start < todo.len() {
        let mut end = start + 1;
        while end < todo.len() && todo[end] == todo[end - 1] + 1 {
            end += 1;
        }
        let (b0, b1) = (todo[start], todo[end - 1] + 1);
        let (r0, r1) = (b0 * rows, (b1 * rows).min(n));
        // Without Y, these rows of X are rows r0.. of the candidates: 0 to themselves.
        let own = y.is_none().then_some(r0);
        let xs = x.slice(&[SliceItem::Range {
            start: Some(r0 as isize),
            stop: Some(r1 as isize),
            step: 1,
        }])?;
        let blocks: Vec<(usize, std::ops::Range<usize>)> = (b0..b1)
            .map(|b| (b, b * rows - r0..((b + 1) * rows).min(n) - r0))
            .collect();
        match args.radius {
            Some(r) => {
                let counts = match own {
                    Some(r0) => distance::count_within_of_rows(&xs, yy, r0, r, metric, opts)?,
                    None => distance::count_within(&xs, yy, r, metric, opts)?,
                };
                let counts = counts.into_dyn();
                for (b, span) in &blocks {
                    let block = counts.slice_axis(Axis(0), span.clone().into());
                    targets[0].write_block(&[*b], block)?;
                }
            }
            None => {
                let nn = match own {
                    Some(r0) => distance::knn_of_rows(&xs, yy, r0, k, metric, opts)?,
                    None => distance::knn(&xs, yy, k, metric, opts)?,
                };
                let (ind, dist) = (nn.indices.into_dyn(), nn.distances.into_dyn());
                for (b, span) in &blocks {
                    let i = ind.slice_axis(Axis(0), span.clone().into());
                    targets[0].write_block(&[*b, 0], i)?;
                    let dd = dist.slice_axis(Axis(0), span.clone().into());
                    targets[1].write_block(&[*b, 0], dd)?;
                }
            }
        }
        start = end;
    }
    let whole = part.shard.is_whole();
    if whole {
        for t in &targets {
            t.mark_complete()?;
        }
    }
    Ok(PartReport {
        stats: RunStats {
            blocks: mine.len(),
            written: todo.len(),
            skipped: mine.len() - todo.len(),
        },
        created,
        complete: whole,
    })
}
