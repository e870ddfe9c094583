//! Row reductions of a distance matrix that never build it: the k nearest neighbours, the
//! nearest one, and the count within a radius. Each task takes a block of rows of `x`, runs
//! the tile kernel against the blocks of `y` one after the other, and folds every tile into
//! its rows' state at once: memory holds a few tiles per thread and the result.

use super::{points, rows_of, same_d, tile, DistFloat, Metric};
use crate::array::ChunkedArray;
use crate::chunks::{AxisChunks, Chunks};
use crate::error::{Error, Result};
use crate::exec::{ExecContext, ExecOptions, Reporter};
use crate::plan::Node;
use ndarray::{Array1, Array2, ArrayD};
use rayon::prelude::*;
use std::ops::Range;

/// The `k` nearest points of `y` for each point of `x`, nearest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours<T> {
    /// `(n, k)` row indices into `y`.
    pub indices: Array2<i64>,
    /// `(n, k)` distances, ascending along each row.
    pub distances: Array2<T>,
}

/// Rows of `x` per task (small, so that a tile stays in cache and every thread has work).
const X_ROWS: usize = 256;
/// Rows of `y` per tile.
const Y_ROWS: usize = 4096;

/// Candidates of a tile row rejected together when all are farther than the k-th best.
const SKIP_RUN: usize = 16;

/// `(d1, i1)` comes strictly before `(d2, i2)`: by distance, NaN last, ties by index.
#[inline(always)]
fn before<T: DistFloat>(d1: T, i1: i64, d2: T, i2: i64) -> bool {
    match (d1.is_nan(), d2.is_nan()) {
        (false, false) => d1 < d2 || (d1 == d2 && i1 < i2),
        (false, true) => true,
        (true, false) => false,
        (true, true) => i1 < i2,
    }
}

/// Per-row sorted lists of the best `k` (distance, index) pairs seen so far.
struct TopK<T> {
    k: usize,
    dist: Vec<T>,
    idx: Vec<i64>,
    len: Vec<usize>,
}

impl<T: DistFloat> TopK<T> {
    fn new(rows: usize, k: usize) -> Self {
        TopK {
            k,
            dist: vec![T::zero(); rows * k],
            idx: vec![0; rows * k],
            len: vec![0; rows],
        }
    }

    fn absorb(&mut self, tile: &[T], r: usize, c: usize, col0: usize) {
        let k = self.k;
        for i in 0..r {
            let row = &tile[i * c..(i + 1) * c];
            let ds = &mut self.dist[i * k..(i + 1) * k];
            let is = &mut self.idx[i * k..(i + 1) * k];
            let mut len = self.len[i];
            let mut j = 0;
            while j < c {
                if len == k {
                    // Most candidates are farther than the k-th best: a run of them is rejected
                    // by one vectorised comparison (a NaN distance or a tie fails it and goes on
                    // to the exact test below).
                    let worst = ds[k - 1];
                    let end = (j + SKIP_RUN).min(c);
                    if row[j..end].iter().fold(true, |all, &v| all & (v > worst)) {
                        j = end;
                        continue;
                    }
                }
                let (v, jj) = (row[j], (col0 + j) as i64);
                j += 1;
                if len == k && !before(v, jj, ds[k - 1], is[k - 1]) {
                    continue;
                }
                let mut p = if len == k { k - 1 } else { len };
                while p > 0 && before(v, jj, ds[p - 1], is[p - 1]) {
                    ds[p] = ds[p - 1];
                    is[p] = is[p - 1];
                    p -= 1;
                }
                ds[p] = v;
                is[p] = jj;
                len = (len + 1).min(k);
            }
            self.len[i] = len;
        }
    }
}

/// Where the points of `x` are among those of `y`: `Some(offset)` when row `i` of `x` is row
/// `offset + i` of `y` (`x` is `y`, or rows of it), whose distance to itself is then exactly 0,
/// as on the diagonal of SciPy's `squareform(pdist(x))` (the GEMM identity leaves a few ulp
/// there, and cosine or correlation of a point with itself may not round to 0).
type Own = Option<usize>;

/// `Some(0)` when `x` and `y` are the same array (the same plan node), else `None`.
fn own_of<T: DistFloat>(x: &ChunkedArray<T>, y: &ChunkedArray<T>) -> Own {
    std::sync::Arc::ptr_eq(x.node(), y.node()).then_some(0)
}

/// The shared driver: checks the inputs and the memory, then folds the tiles of each block of
/// `x` rows into a state made by `make` (for that many rows) with `absorb`, in parallel over the
/// blocks. Returns the states in row order.
#[allow(clippy::too_many_arguments)]
fn fold_rows<T: DistFloat, S: Send>(
    what: &str,
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    own: Own,
    metric: Metric,
    opts: &ExecOptions,
    state_bytes_per_row: usize,
    make: impl Fn(usize) -> S + Sync,
    absorb: impl Fn(&mut S, &[T], usize, usize, usize) + Sync,
) -> Result<Vec<S>> {
    metric.validate()?;
    let xp = points(x, "x")?;
    let yp = points(y, "y")?;
    let d = same_d(&xp, &yp)?;
    let (n, m) = (xp.shape()[0], yp.shape()[0]);
    let threads = opts.worker_threads();
    // Enough x blocks for every thread, each small enough for its tile to stay in cache.
    let rx = n.div_ceil(threads * 4).clamp(1, X_ROWS);
    let e = T::DTYPE.size();
    let op = format!("{what}({metric}, d={d})");
    // y is held in memory when it is small; otherwise its blocks are read for every x block.
    let y_bytes = m.saturating_mul(d).saturating_mul(e);
    let states = n.saturating_mul(state_bytes_per_row);
    let hold_y =
        y_bytes <= opts.allowed_mem / 4 && states.saturating_add(y_bytes) <= opts.allowed_mem / 2;
    let shared = states.saturating_add(if hold_y { y_bytes } else { 0 });
    if shared > opts.allowed_mem / 2 {
        return Err(Error::MemoryHeld {
            what: format!("the {n} rows of results of {op}, with the points it holds,"),
            projected: shared,
            limit: opts.allowed_mem / 2,
            allowed: opts.allowed_mem,
        });
    }
    // A task: its x block, a y tile and its packed copy, the tile of distances, the rows'
    // states. The y tiles shrink from Y_ROWS to what fits the memory per thread.
    let per_thread = (opts.allowed_mem - shared) / threads;
    let fixed = (rx * d)
        .saturating_mul(e)
        .saturating_add(rx.saturating_mul(state_bytes_per_row))
        .saturating_add(super::task_slack(metric, d));
    let per_y_row = (2 * d + rx).saturating_mul(e);
    let cy = (per_thread.saturating_sub(fixed) / per_y_row).min(m.min(Y_ROWS));
    if cy == 0 {
        return Err(Error::MemoryLimit {
            op,
            projected: fixed.saturating_add(per_y_row),
            limit: opts.allowed_mem,
            threads,
            shared,
        });
    }
    let xr = xp.rechunk(Chunks::PerAxis(vec![
        AxisChunks::Size(rx),
        AxisChunks::Whole,
    ]))?;
    // Reading y is part of this one run: its blocks are not reported as a run of their own.
    let quiet = ExecOptions {
        progress: None,
        ..opts.clone()
    };
    let ctx = ExecContext::new(quiet)?;
    ctx.install(|| -> Result<Vec<S>> {
        // Materialised inputs (a broadcast reduction, the carries of a cumsum) before any
        // region of them is read.
        xr.node().prepare(&ctx)?;
        if !hold_y {
            yp.node().prepare(&ctx)?;
        }
        let y_all: Option<ArrayD<T>> = if hold_y {
            Some(
                crate::exec::compute(yp.node().as_ref(), &ctx)?
                    .as_standard_layout()
                    .into_owned(),
            )
        } else {
            None
        };
        let y_blocks: Vec<Range<usize>> = (0..m.div_ceil(cy))
            .map(|b| b * cy..((b + 1) * cy).min(m))
            .collect();
        let starts: Vec<usize> = xr.grid().starts(0).to_vec();
        let lens: Vec<usize> = xr.chunks()[0].clone();
        let internal = || Error::Shape("internal: rows of points are not contiguous".into());
        // Progress: row tasks done, and the bytes of distances computed (as if written).
        let reporter = Reporter::new(opts, lens.len());
        let report = |len: usize| reporter.add(1, len * m * std::mem::size_of::<T>());
        starts
            .par_iter()
            .zip(lens.par_iter())
            .map(|(&s, &len)| -> Result<S> {
                let rows = s..s + len;
                let xb = rows_of(xr.node().as_ref() as &dyn Node<T>, &rows, d)?;
                let xs = xb.as_slice().ok_or_else(internal)?;
                let mut state = make(len);
                let mut buf = vec![T::zero(); len * cy];
                for cols in &y_blocks {
                    let c = cols.len();
                    let held;
                    let ys: &[T] = match &y_all {
                        Some(all) => {
                            let flat = all.as_slice().ok_or_else(internal)?;
                            &flat[cols.start * d..cols.end * d]
                        }
                        None => {
                            held = rows_of(yp.node().as_ref() as &dyn Node<T>, cols, d)?;
                            held.as_slice().ok_or_else(internal)?
                        }
                    };
                    tile(metric, xs, len, ys, c, d, &mut buf[..len * c]);
                    if let Some(off) = own {
                        // The points of these rows that are among these columns: 0 to themselves.
                        for i in 0..len {
                            let j = off + s + i;
                            if cols.contains(&j) {
                                buf[i * c + (j - cols.start)] = T::zero();
                            }
                        }
                    }
                    absorb(&mut state, &buf[..len * c], len, c, cols.start);
                }
                report(len);
                Ok(state)
            })
            .collect()
    })
}

/// The `k` nearest points of `y` to each point of `x` under `metric`, nearest first (ties by
/// the lower index, NaN distances last), computed tile by tile without building the distance
/// matrix: memory holds a few tiles per thread and the `(n, k)` result.
///
/// When `y` is `x` (the same array), the distances are those of `squareform(pdist(x))`, as
/// [`pdist`](super::pdist) writes them: each point is at distance exactly 0 from itself, for
/// every metric (cosine and correlation included) and even with NaN coordinates, so it is
/// among its nearest neighbours; it comes first unless the point occurs more than once, when
/// the ties go to the lower index and its earlier copy comes first (SciPy's `cKDTree.query`
/// makes no promise either way). To drop each point itself from `knn(x, x, k + 1)`, drop its
/// own index from each row rather than the first column. Given as two different arrays with
/// the same points, `x` and `y` are compared as SciPy's `cdist` compares them.
///
/// ```
/// use tessera::ChunkedArray;
/// use tessera::distance::{knn, Metric};
/// use ndarray::array;
/// let pts = ChunkedArray::from_array(array![[0.0], [10.0], [1.0], [4.0]].into_dyn(), 2)?;
/// let nn = knn(&pts, &pts, 2, Metric::Euclidean, &Default::default())?;
/// assert_eq!(nn.indices.row(3).to_vec(), vec![3, 2]);
/// assert_eq!(nn.distances.row(3).to_vec(), vec![0.0, 3.0]);
/// # Ok::<(), tessera::Error>(())
/// ```
///
/// # Errors
/// `k = 0` or more than the points of `y`, inputs that [`cdist`](super::cdist) refuses, or a
/// memory limit too small for one task's tiles.
pub fn knn<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    k: usize,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<Neighbours<T>> {
    knn_own(x, y, own_of(x, y), k, metric, opts)
}

/// [`knn`] of points that are rows `offset..offset + n` of `y`, given as `x` (such as a slice
/// of `y`): the rows of `knn(y, y, k)` for those points, each at distance exactly 0 from
/// itself. A task of a split run computes its rows this way.
///
/// # Errors
/// As [`knn`].
pub fn knn_of_rows<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    offset: usize,
    k: usize,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<Neighbours<T>> {
    knn_own(x, y, Some(offset), k, metric, opts)
}

/// [`knn`] with the rows of `x` placed among those of `y` by `own` (see [`Own`]).
fn knn_own<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    own: Own,
    k: usize,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<Neighbours<T>> {
    if k == 0 {
        return Err(Error::Invalid("k must be at least 1".into()));
    }
    // An empty or misshapen input is named as such before k is compared with its points.
    super::check_points(x, y)?;
    if y.ndim() == 2 && k > y.shape()[0] {
        return Err(Error::Invalid(format!(
            "k = {k} is more than the {} candidate points of y (shape {:?})",
            y.shape()[0],
            y.shape()
        )));
    }
    let per_row = k * (T::DTYPE.size() + 8) + 8;
    let states = fold_rows(
        "knn",
        x,
        y,
        own,
        metric,
        opts,
        per_row,
        |rows| TopK::new(rows, k),
        |s: &mut TopK<T>, t, r, c, col0| s.absorb(t, r, c, col0),
    )?;
    let n = x.shape()[0];
    let mut dist = Vec::with_capacity(n * k);
    let mut idx = Vec::with_capacity(n * k);
    for s in states {
        dist.extend_from_slice(&s.dist);
        idx.extend_from_slice(&s.idx);
    }
    let shape_err = |e: ndarray::ShapeError| Error::Shape(format!("internal: knn result: {e}"));
    Ok(Neighbours {
        indices: Array2::from_shape_vec((n, k), idx).map_err(shape_err)?,
        distances: Array2::from_shape_vec((n, k), dist).map_err(shape_err)?,
    })
}

/// The nearest point of `y` to each point of `x`: its index (the lower one on ties) and its
/// distance, the row `argmin` and `min` of the distance matrix without building it.
///
/// # Errors
/// As [`knn`].
pub fn nearest<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<(Array1<i64>, Array1<T>)> {
    let nn = knn(x, y, 1, metric, opts)?;
    Ok((
        nn.indices.column(0).to_owned(),
        nn.distances.column(0).to_owned(),
    ))
}

/// For each point of `x`, how many points of `y` lie within `radius` (distance `<= radius`,
/// as SciPy's `query_ball_point`), without building the distance matrix.
///
/// ```
/// use tessera::ChunkedArray;
/// use tessera::distance::{count_within, Metric};
/// use ndarray::array;
/// let pts = ChunkedArray::from_array(array![[0.0], [10.0], [1.0], [4.0]].into_dyn(), 3)?;
/// let counts = count_within(&pts, &pts, 3.0, Metric::Cityblock, &Default::default())?;
/// assert_eq!(counts.to_vec(), vec![2, 1, 3, 2]);
/// # Ok::<(), tessera::Error>(())
/// ```
///
/// # Errors
/// A negative or NaN radius, or as [`knn`].
pub fn count_within<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    radius: f64,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<Array1<i64>> {
    count_within_own(x, y, own_of(x, y), radius, metric, opts)
}

/// [`count_within`] of points that are rows `offset..offset + n` of `y`, given as `x`: the
/// counts of `count_within(y, y, radius)` for those points, each within any radius of itself.
///
/// # Errors
/// As [`count_within`].
pub fn count_within_of_rows<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    offset: usize,
    radius: f64,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<Array1<i64>> {
    count_within_own(x, y, Some(offset), radius, metric, opts)
}

/// [`count_within`] with the rows of `x` placed among those of `y` by `own` (see [`Own`]).
fn count_within_own<T: DistFloat>(
    x: &ChunkedArray<T>,
    y: &ChunkedArray<T>,
    own: Own,
    radius: f64,
    metric: Metric,
    opts: &ExecOptions,
) -> Result<Array1<i64>> {
    if radius.is_nan() || radius < 0.0 {
        return Err(Error::Invalid(format!(
            "the radius must be a number >= 0, got {radius}"
        )));
    }
    // In f32, rounded down: 0.1 rounded to the nearest f32 (0.10000000149) would count a
    // distance of 0.1f32, which is more than 0.1.
    let rad = T::at_most(radius);
    let states = fold_rows(
        "count_within",
        x,
        y,
        own,
        metric,
        opts,
        8,
        |rows| vec![0i64; rows],
        |s: &mut Vec<i64>, t: &[T], r, c, _| {
            for (i, count) in s.iter_mut().enumerate().take(r) {
                *count += t[i * c..(i + 1) * c].iter().filter(|&&v| v <= rad).count() as i64;
            }
        },
    )?;
    Ok(Array1::from(states.concat()))
}
