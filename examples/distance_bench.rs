//! Times `cdist` computed into memory, for the distance benchmark (`benches/distance.sh`).
//!
//! ```text
//! cargo run --release --example distance_bench -- --x X.npy --y Y.npy --metric cityblock \
//!     [--p P] [--threads T] [--repeat R] [--chunk ROWS] [--ychunk ROWS]
//! ```
//!
//! Tiles are `--chunk` rows of x by `--ychunk` rows of y (both by default n / (4 threads),
//! from 64 to 2048). With d up to 16, `cdist` computes a row of tiles at a time into memory
//! whatever `--ychunk` is.
//!
//! Prints one JSON line: `{"impl": "tessera", "metric", "dtype", "n", "m", "d", "seconds",
//! "isa"}` with the best of R runs. The inputs are read into memory first (not timed), as the
//! Python peers' `np.load`.

use std::time::Instant;
use tessera::distance::{cdist, detected_isa, DistFloat, Metric};
use tessera::dynarray::DynArray;
use tessera::{ChunkedArray, Chunks, ExecOptions, Result};

struct Args {
    x: String,
    y: String,
    metric: String,
    p: Option<f64>,
    threads: Option<usize>,
    repeat: usize,
    chunk: Option<usize>,
    ychunk: Option<usize>,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        x: String::new(),
        y: String::new(),
        metric: "euclidean".into(),
        p: None,
        threads: None,
        repeat: 3,
        chunk: None,
        ychunk: None,
    };
    let mut it = std::env::args().skip(1);
    let bad = |m: String| tessera::Error::Invalid(m);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| bad(format!("{flag} needs a value")))
        };
        let num = |s: String| {
            s.parse::<f64>()
                .map_err(|_| bad(format!("bad number {s:?}")))
        };
        match flag.as_str() {
            "--x" => a.x = val()?,
            "--y" => a.y = val()?,
            "--metric" => a.metric = val()?,
            "--p" => a.p = Some(num(val()?)?),
            "--threads" => a.threads = Some(num(val()?)? as usize),
            "--repeat" => a.repeat = num(val()?)? as usize,
            "--chunk" => a.chunk = Some(num(val()?)? as usize),
            "--ychunk" => a.ychunk = Some(num(val()?)? as usize),
            other => return Err(bad(format!("unknown argument {other:?}"))),
        }
    }
    if a.x.is_empty() {
        return Err(bad("--x is required".into()));
    }
    if a.y.is_empty() {
        a.y = a.x.clone();
    }
    Ok(a)
}

fn run<T: DistFloat>(
    x: ChunkedArray<T>,
    y: ChunkedArray<T>,
    args: &Args,
    opts: &ExecOptions,
) -> Result<()> {
    let metric = Metric::parse(&args.metric, args.p)?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let m = y.shape()[0];
    // In memory, as the peers have them.
    let x = ChunkedArray::from_array(x.compute_with(opts)?, Chunks::Auto)?;
    let y = ChunkedArray::from_array(y.compute_with(opts)?, Chunks::Auto)?;
    // Tiles: by default enough for every thread to have several.
    let rows = args.chunk.unwrap_or_else(|| {
        let t = opts.threads.max(1);
        n.div_ceil(4 * t).clamp(64, 2048)
    });
    let x = x.rechunk(vec![rows, d])?;
    let y = y.rechunk(vec![args.ychunk.unwrap_or(rows).clamp(1, m.max(1)), d])?;
    let mut best = f64::INFINITY;
    for _ in 0..args.repeat.max(1) {
        let t0 = Instant::now();
        let out = cdist(&x, &y, metric)?.compute_with(opts)?;
        best = best.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(&out);
    }
    println!(
        "{{\"impl\": \"tessera\", \"metric\": \"{}\", \"dtype\": \"{}\", \"n\": {n}, \"m\": {m}, \"d\": {d}, \"seconds\": {best}, \"isa\": \"{:?}\"}}",
        metric.name(),
        T::DTYPE,
        detected_isa()
    );
    Ok(())
}

fn main() {
    let result = parse().and_then(|args| {
        let mut opts = ExecOptions::default();
        if let Some(t) = args.threads {
            opts = opts.threads(t);
        }
        let x = DynArray::from_npy(args.x.as_ref(), Chunks::Auto)?;
        let y = DynArray::from_npy(args.y.as_ref(), Chunks::Auto)?;
        match (x, y) {
            (DynArray::F64(x), DynArray::F64(y)) => run(x, y, &args, &opts),
            (DynArray::F32(x), DynArray::F32(y)) => run(x, y, &args, &opts),
            (x, y) => Err(tessera::Error::DType(format!(
                "distance_bench needs two f64 or two f32 files, got {} and {}",
                x.dtype(),
                y.dtype()
            ))),
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
