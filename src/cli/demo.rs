//! `tessera demo`: the main job on the sample points of `data/`, start to finish. It opens the
//! points from Zarr and HDF5, builds cityblock and euclidean distance matrices lazily, writes
//! them to Zarr and HDF5 in a fresh folder, runs a k-nearest query, reads the results back and
//! checks them, and compares in-memory with on-disk chunking in a small table.

use super::bench::{self, Backend};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera::distance::{self, Metric};
use tessera::error::fmt_bytes;
use tessera::ops::slice::SliceItem;
use tessera::store::zarr::{Codec, ZarrWriteOptions};
use tessera::{ChunkedArray, Chunks, Error, ExecOptions, Result};

pub(crate) const EXAMPLES: &str = "Examples:
  tessera demo
  tessera demo --out my-demo -k 5 --chunk 250
  tessera demo --points 500 --quiet

Then, in Python:
  zarr.open_array(\"demo-out/run-1/euclidean.zarr\")[:]
  h5py.File(\"demo-out/run-1/euclidean.h5\")[\"euclidean\"][:]";

/// Arguments of `tessera demo`.
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// The folder holding points.zarr and points.h5 (the repository's data/).
    #[arg(long, default_value = "data", value_name = "DIR")]
    data: PathBuf,
    /// The output folder, created afresh (it must not exist); default demo-out/run-N with the
    /// next free N.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Neighbours per point in the k-nearest query.
    #[arg(short, long, default_value_t = 8, value_name = "K")]
    k: usize,
    /// Points per tile side of the distance matrices.
    #[arg(long, default_value_t = 500, value_name = "ROWS")]
    chunk: usize,
    /// Use only the first N points (default: all of them).
    #[arg(long, value_name = "N")]
    points: Option<usize>,
}

/// The first `n` rows of `a` (all of them when `n` is `None`).
fn first_rows(a: ChunkedArray<f64>, n: Option<usize>) -> Result<ChunkedArray<f64>> {
    match n {
        None => Ok(a),
        Some(n) => a.slice(&[
            SliceItem::Range {
                start: None,
                stop: Some(n.min(isize::MAX as usize) as isize),
                step: 1,
            },
            SliceItem::ALL,
        ]),
    }
}

/// Creates the output folder: `out`, which must not exist yet, or `demo-out/run-N`.
fn fresh_folder(out: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = out {
        if dir.exists() {
            return Err(Error::Exists(dir.to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        return Ok(dir.to_owned());
    }
    let parent = Path::new("demo-out");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    for n in 1.. {
        let dir = parent.join(format!("run-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Err(Error::Invalid("no free demo-out/run-N folder".into()))
}

fn secs_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn gbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs.max(1e-9) / 1e9
}

fn zarr_options(codec: Codec) -> ZarrWriteOptions {
    ZarrWriteOptions {
        codec,
        overwrite: false,
        zarr_format: 3,
    }
}

#[cfg(feature = "hdf5")]
fn hdf5_options(deflate: Option<u8>) -> tessera::store::hdf5::Hdf5WriteOptions {
    tessera::store::hdf5::Hdf5WriteOptions {
        deflate,
        shuffle: deflate.is_some(),
        overwrite: false,
    }
}

/// `bytes + zstd(level 3)` from the JSON codec chain of a Zarr array.
fn codec_names(json: &str) -> String {
    let Ok(serde_json::Value::Array(codecs)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return json.to_string();
    };
    codecs
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            match c.pointer("/configuration/level") {
                Some(level) => format!("{name}(level {level})"),
                None => name.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The same values bit for bit (NaN included), as `assert_eq` on the bits would say.
fn same_bits(a: &ndarray::ArrayD<f64>, b: &ndarray::ArrayD<f64>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(p, q)| p.to_bits() == q.to_bits())
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("demo check failed: {what}")))
    }
}

/// One row of the in-memory against on-disk table.
struct Row {
    backend: &'static str,
    tile: usize,
    write_secs: f64,
    read_secs: f64,
    on_disk: Option<usize>,
    sum: f64,
}

/// The on-disk backends of the table, by the names it shows (those of this build: HDF5 only
/// with the hdf5 feature); `tessera bench` writes and opens them.
fn backends() -> Vec<(&'static str, Backend)> {
    [
        (".npy (mmap)", Backend::Npy),
        ("Zarr none", Backend::ZarrNone),
        ("Zarr zstd", Backend::ZarrZstd),
        ("HDF5 none", Backend::Hdf5None),
        ("HDF5 gzip", Backend::Hdf5Deflate),
    ]
    .into_iter()
    .filter(|(_, b)| Backend::available().contains(b))
    .collect()
}

/// Writes the lazy euclidean matrix of `x` with tiles of `tile` points to memory and to each
/// backend, then reads it back and sums it.
fn chunking_table(
    x: &ChunkedArray<f64>,
    dir: &Path,
    opts: &ExecOptions,
    tiles: &[usize],
) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let sum_of = |a: &ChunkedArray<f64>| -> Result<f64> {
        Ok(a.sum_all()?.compute_with(opts)?.iter().sum())
    };
    let mut rows = Vec::new();
    for &tile in tiles {
        let xr = x.rechunk(Chunks::PerAxis(vec![
            tessera::chunks::AxisChunks::Size(tile),
            tessera::chunks::AxisChunks::Whole,
        ]))?;
        let dist = distance::pdist(&xr, Metric::Euclidean)?;
        // Memory: the matrix computed into RAM, then summed over blocks of the same tiles.
        let t = Instant::now();
        let held = dist.compute_with(opts)?;
        let write_secs = secs_since(t);
        let t = Instant::now();
        let sum = sum_of(&ChunkedArray::from_array(held, Chunks::Size(tile))?)?;
        rows.push(Row {
            backend: "memory",
            tile,
            write_secs,
            read_secs: secs_since(t),
            on_disk: None,
            sum,
        });
        for (name, b) in backends() {
            let path = b.file(dir, &format!("euclidean-{tile}"));
            let t = Instant::now();
            bench::store(&dist, b, &path, opts)?;
            let write_secs = secs_since(t);
            // A memory-mapped .npy is read in the tiles; the stores in their own chunks.
            let chunks = if b == Backend::Npy {
                Chunks::Size(tile)
            } else {
                Chunks::Auto
            };
            let t = Instant::now();
            let sum = sum_of(&bench::open_as(b, &path, chunks)?)?;
            rows.push(Row {
                backend: name,
                tile,
                write_secs,
                read_secs: secs_since(t),
                on_disk: Some(bench::disk_usage(&path)),
                sum,
            });
        }
    }
    Ok(rows)
}

/// Runs `tessera demo`.
pub(crate) fn run(args: &DemoArgs, opts: &ExecOptions) -> Result<()> {
    let started = Instant::now();
    // The demo prints its own lines: no progress bars between them.
    let opts = &ExecOptions {
        progress: None,
        ..opts.clone()
    };
    if args.k == 0 || args.chunk == 0 || args.points == Some(0) {
        return Err(Error::Invalid(
            "-k, --chunk and --points must be at least 1".into(),
        ));
    }
    let zarr_in = args.data.join("points.zarr");
    if !zarr_in.is_dir() {
        return Err(Error::io(
            &zarr_in,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no sample points here; run tessera demo in the repository's folder (where data/ is) or pass --data DIR",
            ),
        ));
    }
    let out = fresh_folder(args.out.as_deref())?;
    let mut written: Vec<String> = Vec::new();
    let shown = |p: &Path| p.display().to_string();

    // 1. The inputs, from Zarr and from HDF5.
    let zinfo = tessera::store::zarr::info(&zarr_in)?;
    let xz = ChunkedArray::<f64>::from_zarr(&zarr_in, Chunks::Auto)?;
    if xz.ndim() != 2 {
        return Err(Error::Shape(format!(
            "{}: the demo needs points as a 2-D array (points by coordinates), got shape {:?}",
            zarr_in.display(),
            xz.shape()
        )));
    }
    let xz = first_rows(xz, args.points)?;
    let (n, d) = (xz.shape()[0], xz.shape()[1]);
    println!(
        "tessera demo: {n} points in {d}-D from {}, results in {}",
        args.data.display(),
        out.display()
    );
    println!();
    println!("Inputs");
    println!(
        "  {:<28} float64 {:?}, Zarr v{}, chunks {:?}, {}",
        shown(&zarr_in),
        xz.shape(),
        zinfo.zarr_format,
        zinfo.chunk_shape.clone().unwrap_or_default(),
        codec_names(&zinfo.codecs)
    );
    #[cfg(feature = "hdf5")]
    let xh = {
        let points = xz.compute_with(opts)?;
        let h5_in = args.data.join("points.h5");
        let hinfo = tessera::store::hdf5::info(&h5_in, "/points")?;
        let xh = first_rows(
            ChunkedArray::<f64>::from_hdf5(&h5_in, "/points", Chunks::Auto)?,
            args.points,
        )?;
        let from_h5 = xh.compute_with(opts)?;
        println!(
            "  {:<28} float64 {:?}, HDF5, chunks {:?}, {}",
            format!("{}:/points", h5_in.display()),
            xh.shape(),
            hinfo.chunk_shape.unwrap_or_default(),
            hinfo.filters
        );
        check(
            same_bits(&points, &from_h5),
            "the Zarr and HDF5 copies of the points differ",
        )?;
        println!("  the two copies hold the same {n} x {d} values, bit for bit");
        xh
    };
    #[cfg(not(feature = "hdf5"))]
    let xh = {
        println!("  (HDF5 skipped: this build has no hdf5 feature)");
        xz.clone()
    };

    // 2. Distance matrices, lazy until written.
    let rows_of = |a: &ChunkedArray<f64>| {
        a.rechunk(Chunks::PerAxis(vec![
            tessera::chunks::AxisChunks::Size(args.chunk),
            tessera::chunks::AxisChunks::Whole,
        ]))
    };
    let x = rows_of(&xz)?;
    println!();
    println!("Distance matrices (lazy; each tile computed when it is written)");
    let mut matrices = Vec::new();
    for metric in [Metric::Cityblock, Metric::Euclidean] {
        let name = metric.to_string();
        let dist = distance::pdist(&x, metric)?;
        let zpath = out.join(format!("{metric}.zarr"));
        let t = Instant::now();
        dist.to_zarr(&zpath, &zarr_options(Codec::Zstd(3)), opts)?;
        let zsecs = secs_since(t);
        written.push(shown(&zpath));
        print!(
            "  {name:<10} {:?} float64 {}, {} tiles of {:?}: Zarr zstd {:.3} s",
            dist.shape(),
            fmt_bytes(dist.nbytes()),
            dist.nblocks(),
            dist.grid().max_chunk_shape(),
            zsecs
        );
        #[cfg(feature = "hdf5")]
        {
            let hpath = out.join(format!("{metric}.h5"));
            let t = Instant::now();
            dist.to_hdf5(&hpath, &format!("/{metric}"), &hdf5_options(Some(4)), opts)?;
            print!(", HDF5 gzip {:.3} s", secs_since(t));
            written.push(format!("{}:/{metric}", shown(&hpath)));
        }
        println!();
        matrices.push((metric, dist));
    }

    // 3. k nearest neighbours, from the HDF5 copy, without building the matrix.
    let k = args.k.min(n.max(1));
    let t = Instant::now();
    let nn = distance::knn(&rows_of(&xh)?, &rows_of(&xh)?, k, Metric::Euclidean, opts)?;
    let knn_secs = secs_since(t);
    let group = out.join("neighbours.zarr");
    let idx = ChunkedArray::from_array(nn.indices.clone().into_dyn(), Chunks::Auto)?;
    let dst = ChunkedArray::from_array(nn.distances.clone().into_dyn(), Chunks::Auto)?;
    idx.to_zarr(group.join("indices"), &zarr_options(Codec::Zstd(3)), opts)?;
    dst.to_zarr(group.join("distances"), &zarr_options(Codec::Zstd(3)), opts)?;
    written.push(shown(&group.join("indices")));
    written.push(shown(&group.join("distances")));
    println!();
    println!(
        "k nearest (k = {k}, euclidean, from the HDF5 copy): {n} x {k} indices and distances in {knn_secs:.3} s"
    );
    if n > 0 {
        let row = |i: usize| -> String {
            nn.indices
                .row(i)
                .iter()
                .zip(nn.distances.row(i))
                .take(4)
                .map(|(j, dd)| format!("{j} ({dd:.4})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  point 0: {}{}", row(0), if k > 4 { ", ..." } else { "" });
    }

    // 4. Read back and check.
    println!();
    println!("Read back");
    for (metric, dist) in &matrices {
        let name = metric.to_string();
        let t = Instant::now();
        let in_memory = dist.compute_with(opts)?;
        let mem_secs = secs_since(t);
        let zpath = out.join(format!("{metric}.zarr"));
        let from_zarr = ChunkedArray::<f64>::from_zarr(&zpath, Chunks::Auto)?.compute_with(opts)?;
        check(
            same_bits(&in_memory, &from_zarr),
            &format!(
                "{} differs from the matrix computed in memory",
                zpath.display()
            ),
        )?;
        #[cfg(feature = "hdf5")]
        {
            let hpath = out.join(format!("{metric}.h5"));
            let from_h5 =
                ChunkedArray::<f64>::from_hdf5(&hpath, &format!("/{metric}"), Chunks::Auto)?
                    .compute_with(opts)?;
            check(
                same_bits(&in_memory, &from_h5),
                &format!(
                    "{} differs from the matrix computed in memory",
                    hpath.display()
                ),
            )?;
        }
        let symmetric = in_memory
            .indexed_iter()
            .all(|(i, v)| v.to_bits() == in_memory[[i[1], i[0]]].to_bits());
        let zero_diagonal = (0..n).all(|i| in_memory[[i, i]] == 0.0);
        check(
            symmetric && zero_diagonal,
            "the matrix is not symmetric with a zero diagonal",
        )?;
        let mean = in_memory.iter().sum::<f64>() / (n * n).max(1) as f64;
        println!(
            "  {name:<10} Zarr and HDF5 equal the in-memory matrix ({mem_secs:.3} s) bit for bit; symmetric, zero diagonal, mean {mean:.4}"
        );
        if *metric == Metric::Euclidean {
            // knn agrees with the rows of the matrix, sorted.
            let agree = (0..n).all(|i| {
                let mut r: Vec<f64> = in_memory.row_of(i);
                r.sort_by(f64::total_cmp);
                r.iter()
                    .take(k)
                    .zip(nn.distances.row(i))
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            });
            check(
                agree,
                "knn distances differ from the sorted rows of the matrix",
            )?;
            println!("  knn        its distances equal the {k} smallest of each row of the matrix");
        }
    }

    // 5. In-memory against on-disk chunking.
    let table_dir = out.join("chunking");
    let tiles = [args.chunk, (args.chunk / 5).max(1)];
    let rows = chunking_table(&xz, &table_dir, opts, &tiles)?;
    let bytes = n * n * 8;
    println!();
    println!(
        "In-memory against on-disk chunking: the euclidean matrix ({}) written and read back (sum)",
        fmt_bytes(bytes)
    );
    println!(
        "| {:<11} | {:>5} | {:>7} | {:>12} | {:>7} | {:>11} | {:>10} |",
        "where", "tiles", "write s", "write GB/s", "read s", "read GB/s", "on disk"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|{}|",
        "-".repeat(13),
        "-".repeat(7),
        "-".repeat(9),
        "-".repeat(14),
        "-".repeat(9),
        "-".repeat(13),
        "-".repeat(12)
    );
    let reference = rows.first().map(|r| r.sum).unwrap_or(0.0);
    for r in &rows {
        check(
            (r.sum - reference).abs() <= 1e-9 * reference.abs().max(1.0),
            &format!("the sum read from {} differs", r.backend),
        )?;
        println!(
            "| {:<11} | {:>5} | {:>7.3} | {:>12.2} | {:>7.3} | {:>11.2} | {:>10} |",
            r.backend,
            r.tile,
            r.write_secs,
            gbps(bytes, r.write_secs),
            r.read_secs,
            gbps(bytes, r.read_secs),
            r.on_disk.map(fmt_bytes).unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "  (tiles: points per tile side; the sums agree to 1e-9; copies in {})",
        table_dir.display()
    );

    println!();
    println!("Wrote (open them with zarr-python and h5py):");
    for w in &written {
        println!("  {w}");
    }
    println!();
    println!("Done in {:.1} s.", secs_since(started));
    Ok(())
}

/// A row of a 2-D array as a vector.
trait RowOf {
    fn row_of(&self, i: usize) -> Vec<f64>;
}

impl RowOf for ndarray::ArrayD<f64> {
    fn row_of(&self, i: usize) -> Vec<f64> {
        self.index_axis(ndarray::Axis(0), i)
            .iter()
            .copied()
            .collect()
    }
}
