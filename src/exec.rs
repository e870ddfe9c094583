//! The executor: runs a plan block by block on a rayon pool, within a memory budget checked
//! before anything is read, reporting progress through a callback.

use crate::element::Element;
use crate::error::{fmt_bytes, Error, Result};
use crate::plan::{task_bytes, Node, PlanNode};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn, ShapeBuilder};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Environment variable that sets the default allowed memory (like `2GiB`).
pub const ALLOWED_MEM_ENV: &str = "TESSERA_ALLOWED_MEM";
/// Environment variable that sets the default number of worker threads (a value above
/// [`MAX_THREADS`] counts as [`MAX_THREADS`]; one that is not a positive number is ignored).
pub const THREADS_ENV: &str = "TESSERA_THREADS";

/// The most worker threads a run may ask for ([`ExecOptions::threads`] clamps to it).
pub const MAX_THREADS: usize = 4096;

/// Progress of a run: blocks done out of the total, bytes of output written, time since the
/// run began. Reports of one run arrive one at a time, `done` increasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Output blocks finished.
    pub done: usize,
    /// Output blocks in all.
    pub total: usize,
    /// Bytes of output finished.
    pub bytes: usize,
    /// Time since the run began.
    pub elapsed: Duration,
}

/// Sends the progress of one run to the callback of its options, in order: the count and the
/// call happen under one lock, so `done` increases from one report to the next.
pub(crate) struct Reporter<'a> {
    callback: Option<&'a ProgressFn>,
    total: usize,
    start: Instant,
    counts: Mutex<(usize, usize)>,
}

impl<'a> Reporter<'a> {
    /// A reporter for a run of `total` blocks.
    pub(crate) fn new(opts: &'a ExecOptions, total: usize) -> Self {
        Reporter {
            callback: opts.progress.as_ref(),
            total,
            start: Instant::now(),
            counts: Mutex::new((0, 0)),
        }
    }

    /// Reports `blocks` more blocks finished, holding `bytes` more bytes.
    pub(crate) fn add(&self, blocks: usize, bytes: usize) {
        let Some(f) = self.callback else {
            return;
        };
        let Ok(mut c) = self.counts.lock() else {
            return;
        };
        c.0 += blocks;
        c.1 += bytes;
        f(Progress {
            done: c.0,
            total: self.total,
            bytes: c.1,
            elapsed: self.start.elapsed(),
        });
    }
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How a plan runs: threads, allowed memory, progress.
#[derive(Clone)]
pub struct ExecOptions {
    /// Worker threads: runs start [`worker_threads`](ExecOptions::worker_threads), this
    /// within 1..=[`MAX_THREADS`].
    pub threads: usize,
    /// Memory the run may use for its tasks, in bytes, shared by all threads (Cubed's
    /// `allowed_mem`).
    pub allowed_mem: usize,
    /// Called after every finished output block.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for ExecOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOptions")
            .field("threads", &self.threads)
            .field("allowed_mem", &fmt_bytes(self.allowed_mem))
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for ExecOptions {
    /// Threads: `TESSERA_THREADS` or every core, at most [`MAX_THREADS`]. Allowed memory:
    /// `TESSERA_ALLOWED_MEM` or a quarter of physical memory.
    fn default() -> Self {
        let threads = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .map(|n| n.min(MAX_THREADS))
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get().min(MAX_THREADS))
                    .unwrap_or(1)
            });
        let allowed_mem = std::env::var(ALLOWED_MEM_ENV)
            .ok()
            .and_then(|s| crate::error::parse_bytes(&s).ok())
            .unwrap_or_else(|| physical_memory() / 4);
        ExecOptions {
            threads,
            allowed_mem,
            progress: None,
        }
    }
}

impl ExecOptions {
    /// Sets the number of threads (clamped to 1..=[`MAX_THREADS`]).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.clamp(1, MAX_THREADS);
        self
    }

    /// The threads a run starts: [`threads`](ExecOptions::threads) within 1..=[`MAX_THREADS`]
    /// (the field is public, so it may hold anything).
    pub fn worker_threads(&self) -> usize {
        self.threads.clamp(1, MAX_THREADS)
    }

    /// Sets the allowed memory in bytes.
    pub fn allowed_mem(mut self, bytes: usize) -> Self {
        self.allowed_mem = bytes;
        self
    }

    /// Sets the progress callback.
    pub fn progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// A zero-filled block of `shape` for a reader to fill in place. Large blocks ask the kernel
/// for transparent huge pages: filling them then takes one page fault per 2 MiB instead of one
/// per 4 KiB, which is most of the cost of copying a file's bytes into a fresh block.
pub(crate) fn zeroed_block<T: Element>(shape: &[usize]) -> ArrayD<T> {
    let mut out = ArrayD::from_elem(IxDyn(shape), T::default());
    let bytes = out.len() * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    if bytes >= 4 << 20 {
        // The whole 2 MiB pages inside the allocation (madvise needs an aligned start).
        const HUGE: usize = 2 << 20;
        let start = out.as_mut_ptr() as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + bytes) / HUGE * HUGE;
        if end > first {
            // SAFETY: the range lies inside the block's allocation, which is live; the advice
            // changes only how the kernel backs the pages, never their contents (still zero).
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bytes;
    out
}

/// Blocks at least this large have their buffer kept by [`recycle`] for the next block read on
/// the same thread.
const SPARE_MIN: usize = 4 << 20;

thread_local! {
    /// The buffer of the last large block this thread consumed (a `Vec<T>` of some element
    /// type), for [`overwritten_block`] to fill again: a fresh buffer costs a page fault and
    /// the kernel's zeroing of every page, an eighth of the CPU time of reading a deflated
    /// HDF5 dataset. Dropped when the run that left it ends ([`run_part`]).
    static SPARE: std::cell::RefCell<Option<Box<dyn std::any::Any>>> =
        const { std::cell::RefCell::new(None) };
    /// The addresses and lengths in bytes of the last buffers [`overwritten_block`] handed out
    /// on this thread: only those become spares, so that a thread keeps a spare only where the
    /// next read will take it (a block made by any other node would sit beside a fresh one).
    /// More than one: a thread waiting for the chunks of its block steals the reading of
    /// another block.
    static HANDED: std::cell::Cell<[(usize, usize); 4]> =
        const { std::cell::Cell::new([(0, 0); 4]) };
}

/// Keeps the buffer of a consumed block as this thread's spare (in place of the one it held)
/// if [`overwritten_block`] made it, on this thread.
pub(crate) fn recycle<T: Element>(block: crate::plan::Block<'_, T>) {
    let this = (
        block.as_ptr() as usize,
        block.len() * std::mem::size_of::<T>(),
    );
    let mut handed = HANDED.get();
    let Some(i) = handed.iter().position(|&h| h == this) else {
        return;
    };
    if !block.is_owned() || this.1 < SPARE_MIN {
        return;
    }
    handed[i] = (0, 0);
    HANDED.set(handed);
    let (buffer, _) = block.into_owned().into_raw_vec_and_offset();
    SPARE.with_borrow_mut(|s| *s = Some(Box::new(buffer)));
}

/// Drops this thread's spare buffer, and the buffers its Zarr and HDF5 chunk reads kept.
pub(crate) fn drop_spare() {
    SPARE.with_borrow_mut(|s| *s = None);
    crate::store::zarr::drop_chunk_buffers();
    #[cfg(feature = "hdf5")]
    crate::store::hdf5::drop_chunk_buffers();
    HANDED.set([(0, 0); 4]);
}

/// A block of `shape` whose elements hold any values of `T`, for a reader that overwrites
/// every one: this thread's spare buffer when it has room for the block and at most an eighth
/// more, else a new zeroed block. A spare that does not fit is freed first, so that a thread
/// never holds two.
pub(crate) fn overwritten_block<T: Element>(shape: &[usize]) -> ArrayD<T> {
    let n: usize = shape.iter().product();
    let bytes = n * std::mem::size_of::<T>();
    let block = (bytes >= SPARE_MIN)
        .then(|| SPARE.with_borrow_mut(Option::take))
        .flatten()
        .and_then(|spare| spare.downcast::<Vec<T>>().ok())
        .filter(|v| v.capacity() >= n && v.capacity() - n <= n / 8)
        .and_then(|mut v| {
            v.resize(n, T::default());
            ArrayD::from_shape_vec(IxDyn(shape), *v).ok()
        })
        .unwrap_or_else(|| zeroed_block(shape));
    if bytes >= SPARE_MIN {
        // The newest first; the oldest is forgotten.
        let mut handed = HANDED.get();
        handed.rotate_right(1);
        handed[0] = (block.as_ptr() as usize, bytes);
        HANDED.set(handed);
    }
    block
}

/// Physical memory of the machine in bytes (8 GiB when it cannot be read).
pub fn physical_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

/// What a running plan can see of its run: the options and the thread pool.
pub struct ExecContext {
    opts: ExecOptions,
    pool: rayon::ThreadPool,
}

impl ExecContext {
    /// A context for a run with `opts`.
    ///
    /// # Errors
    /// The thread pool cannot be built.
    pub fn new(opts: ExecOptions) -> Result<Self> {
        let threads = opts.worker_threads();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))?;
        Ok(ExecContext { opts, pool })
    }

    /// The run's options.
    pub fn options(&self) -> &ExecOptions {
        &self.opts
    }

    /// Runs `f` on the context's pool.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let outermost = self.pool.current_thread_index().is_none();
        let result = self.pool.install(f);
        // The spare buffers the run's blocks left are not kept past it (by the outermost run:
        // a run nested in another, materialising a stage, leaves them to the next block).
        if outermost {
            self.drop_spares();
        }
        result
    }

    /// Drops the spare block buffers of the pool's threads.
    fn drop_spares(&self) {
        self.pool.broadcast(|_| drop_spare());
    }
}

/// Checks every task of the plan against the memory budget: a task must fit
/// `allowed_mem / threads`, and what a materialised stage holds must fit `allowed_mem`.
///
/// # Errors
/// [`Error::MemoryLimit`] naming the first node whose task does not fit, or
/// [`Error::MemoryHeld`] for a result held whole that does not.
pub fn check_memory(root: &dyn PlanNode, opts: &ExecOptions) -> Result<()> {
    check_memory_with(root, opts, 0, 0)
}

/// [`check_memory`] for a sink that holds `sink_per_task` bytes in each task writing a block
/// and `sink_shared` bytes in all (queued output, say).
///
/// # Errors
/// [`Error::MemoryLimit`] naming the first node that does not fit, or the sink;
/// [`Error::MemoryHeld`] for held results or queued output that do not.
pub fn check_memory_with(
    root: &dyn PlanNode,
    opts: &ExecOptions,
    sink_per_task: usize,
    sink_shared: usize,
) -> Result<()> {
    check(root, opts, sink_per_task, sink_shared, false)
}

/// [`check_memory`] for a sink that stores blocks in parts ([`BlockSink::parts`]): a root that
/// computes its blocks in parts ([`PlanNode::part_task_bytes`]) is held to the memory of its
/// parts, not of a whole block.
///
/// # Errors
/// As [`check_memory`].
pub fn check_memory_parts(root: &dyn PlanNode, opts: &ExecOptions) -> Result<()> {
    check(root, opts, 0, 0, true)
}

/// The memory check of every run: [`check_memory_with`], or with `parts` (a sink that stores
/// blocks piece by piece) [`check_memory_parts`] with the sink's own bytes added.
pub(crate) fn check(
    root: &dyn PlanNode,
    opts: &ExecOptions,
    sink_per_task: usize,
    sink_shared: usize,
    parts: bool,
) -> Result<()> {
    let threads = opts.worker_threads();
    if sink_shared > opts.allowed_mem / 2 {
        return Err(Error::MemoryHeld {
            what: format!("queueing output chunks of {}", root.op()),
            projected: sink_shared,
            limit: opts.allowed_mem / 2,
            allowed: opts.allowed_mem,
        });
    }
    let per_thread = (opts.allowed_mem - sink_shared) / threads;
    let fail = |node: &dyn PlanNode, projected: usize| Error::MemoryLimit {
        op: node.op(),
        projected,
        limit: opts.allowed_mem,
        threads,
        shared: sink_shared,
    };
    let check_task = |node: &dyn PlanNode| {
        let t = task_bytes(node);
        if t > per_thread {
            Err(fail(node, t))
        } else {
            Ok(())
        }
    };
    fn walk(node: &dyn PlanNode, visit: &mut dyn FnMut(&dyn PlanNode) -> Result<()>) -> Result<()> {
        for i in node.inputs() {
            walk(i, visit)?;
        }
        visit(node)
    }
    walk(root, &mut |node| {
        if node.is_stage() {
            if node.own_task_bytes() > opts.allowed_mem {
                return Err(Error::MemoryHeld {
                    what: format!(
                        "holding the result of {}",
                        node.inputs().first().map(|i| i.op()).unwrap_or_default()
                    ),
                    projected: node.own_task_bytes(),
                    limit: opts.allowed_mem,
                    allowed: opts.allowed_mem,
                });
            }
            for i in node.inputs() {
                check_task(i)?;
            }
        }
        Ok(())
    })?;
    let t = output_task_bytes(root, parts).saturating_add(sink_per_task);
    if t > per_thread {
        return Err(fail(root, t));
    }
    Ok(())
}

/// Projected bytes of one task of the output `root`, before the sink's own: with `parts` (a
/// sink that stores blocks piece by piece) and a root that computes its blocks in parts, its
/// parts and the inputs fused into it; otherwise its whole task, and at least one block (the
/// root's blocks are at least copied out, whatever the plan).
pub(crate) fn output_task_bytes(root: &dyn PlanNode, parts: bool) -> usize {
    match root.part_task_bytes().filter(|_| parts) {
        Some(own) => own.saturating_add(task_bytes(root) - root.own_task_bytes()),
        None => task_bytes(root).max(crate::plan::max_block_bytes(root.grid(), root.dtype())),
    }
}

/// Where the executor puts finished blocks.
pub trait BlockSink<T: Element>: Sync {
    /// Stores the block covering `region` of the output.
    ///
    /// # Errors
    /// Whatever the storage reports.
    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()>;
    /// The sink's own memory for `region`, for a node to compute into directly
    /// ([`Node::region_into`]), when the sink is memory.
    fn direct(&self, region: &[Range<usize>]) -> Option<ArrayViewMutD<'_, T>> {
        let _ = region;
        None
    }
    /// Whether the sink already holds a valid copy of the block covering `region` (a resumed
    /// run skips it). The default: never.
    ///
    /// # Errors
    /// Whatever the storage reports when it cannot tell.
    fn stored(&self, region: &[Range<usize>]) -> Result<bool> {
        let _ = region;
        Ok(false)
    }
    /// Whether the sink stores blocks piece by piece ([`BlockSink::parts`]): the memory check
    /// then holds a node that computes its blocks in parts to its parts
    /// ([`check_memory_parts`]). The default: false.
    fn takes_parts(&self) -> bool {
        false
    }
    /// A writer that stores the block covering `region` piece by piece, when the sink can
    /// (an uncompressed chunk file): a node that computes its blocks in parts
    /// ([`Node::region_parts`]) then never holds a whole block. `None` (the default): the sink
    /// takes whole blocks only.
    ///
    /// # Errors
    /// Whatever the storage reports when it cannot start the block.
    fn parts(&self, region: &[Range<usize>]) -> Result<Option<Box<dyn PartWriter<T> + '_>>> {
        let _ = region;
        Ok(None)
    }
}

/// One block of a sink being stored piece by piece ([`BlockSink::parts`]). A writer dropped
/// before [`PartWriter::finish`] leaves no block that looks complete.
pub trait PartWriter<T: Element> {
    /// Stores `data`, the values of `part` (a region of the output inside the block's).
    ///
    /// # Errors
    /// A part outside the block or of another shape than `data`, or the storage's error.
    fn write(&mut self, part: &[Range<usize>], data: ArrayViewD<'_, T>) -> Result<()>;
    /// Completes the block once every part of it has been written.
    ///
    /// # Errors
    /// The storage's error.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// One process's share of a run split over several processes (a Slurm array job, a Kubernetes
/// Indexed Job, an MPI launch): task `index` of `count`. The output blocks a run computes are
/// numbered in C order (for a mirrored `pdist`, only the blocks on and above the diagonal), and
/// each task takes one contiguous range of them, the ranges differing in length by at most one.
/// The shares are disjoint and cover every block, whatever the number of tasks.
///
/// ```
/// use tessera::exec::Shard;
/// let shares: Vec<_> = (0..3).map(|i| Shard::new(i, 3).unwrap().range(10)).collect();
/// assert_eq!(shares, vec![0..3, 3..6, 6..10]);
/// assert!(Shard::new(3, 3).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

impl Shard {
    /// The whole run, in one process.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Task `index` of `count` (counted from 0).
    ///
    /// # Errors
    /// A count of 0, or an index that is not below the count.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            return Err(Error::Invalid("the task count must be at least 1".into()));
        }
        if index >= count {
            return Err(Error::Invalid(format!(
                "task index {index} is out of range for {count} tasks (0 to {})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// This task's index, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of tasks.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether this is the whole run.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// This task's share of `ntasks` numbered tasks.
    pub fn range(&self, ntasks: usize) -> Range<usize> {
        let at = |i: usize| (ntasks as u128 * i as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

/// What a run over a share of the blocks did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Output blocks in this task's share (a mirrored tile counts twice).
    pub blocks: usize,
    /// Blocks computed and written.
    pub written: usize,
    /// Blocks skipped because the sink already held them ([`BlockSink::stored`]).
    pub skipped: usize,
}

/// Runs `root` block by block into `sink`: checks memory, prepares materialised stages, then
/// computes the output blocks in parallel, each written as soon as it is done.
///
/// # Errors
/// A memory projection over the limit (before any I/O), or the first error of any task.
pub fn run<T: Element>(
    root: &dyn Node<T>,
    sink: &dyn BlockSink<T>,
    ctx: &ExecContext,
) -> Result<()> {
    run_part(root, sink, ctx, Shard::WHOLE, false).map(|_| ())
}

/// As [`run`], for the blocks of one [`Shard`] only; with `resume`, a block the sink already
/// holds ([`BlockSink::stored`]) is not computed again.
///
/// # Errors
/// As [`run`], or the sink's error telling whether it holds a block.
pub fn run_part<T: Element>(
    root: &dyn Node<T>,
    sink: &dyn BlockSink<T>,
    ctx: &ExecContext,
    shard: Shard,
    resume: bool,
) -> Result<RunStats> {
    check(root, ctx.options(), 0, 0, sink.takes_parts())?;
    let stats = ctx.install(|| {
        let grid = root.grid();
        let mirrored = root.mirrored() && grid.ndim() == 2 && grid.chunks()[0] == grid.chunks()[1];
        // Blocks below the diagonal of a mirrored output are written with their mirror image.
        let tasks: Vec<usize> = (0..grid.nblocks())
            .filter(|&lin| {
                !mirrored || {
                    let idx = grid.block_index(lin);
                    idx[0] <= idx[1]
                }
            })
            .collect();
        let mine = &tasks[shard.range(tasks.len())];
        let weight = |idx: &[usize]| if mirrored && idx[0] < idx[1] { 2 } else { 1 };
        let blocks: usize = mine.iter().map(|&l| weight(&grid.block_index(l))).sum();
        if mine.is_empty() {
            return Ok(RunStats::default());
        }
        root.prepare(ctx)?;
        let reporter = Reporter::new(ctx.options(), blocks);
        let report = |nblocks: usize, nb: usize| reporter.add(nblocks, nb);
        let skipped = std::sync::atomic::AtomicUsize::new(0);
        let block = |lin: usize| -> Result<()> {
            let idx = grid.block_index(lin);
            let region = grid.block_region(&idx);
            let twice = weight(&idx) == 2;
            // The region of the mirror image (only for a mirrored 2-D output).
            let swapped: Vec<Range<usize>> = if twice {
                vec![region[1].clone(), region[0].clone()]
            } else {
                Vec::new()
            };
            if resume && sink.stored(&region)? && (!twice || sink.stored(&swapped)?) {
                skipped.fetch_add(weight(&idx), std::sync::atomic::Ordering::Relaxed);
                report(weight(&idx), 0);
                return Ok(());
            }
            // The block is stored once (and once more mirrored below the diagonal).
            let nb = region.iter().map(|r| r.len()).product::<usize>() * std::mem::size_of::<T>();
            let stored = || report(weight(&idx), weight(&idx) * nb);
            let written = |block: ArrayViewD<'_, T>| -> Result<()> {
                if twice {
                    sink.write_block(&swapped, block.reversed_axes())?;
                }
                stored();
                Ok(())
            };
            if let Some(mut dst) = sink.direct(&region) {
                if root.region_into(&region, &mut dst)? {
                    return written(dst.view());
                }
            }
            if root.part_task_bytes().is_some() && in_parts(root, sink, &region, &swapped)? {
                stored();
                return Ok(());
            }
            let block = root.region(&region)?;
            sink.write_block(&region, block.view())?;
            written(block.view())?;
            recycle(block);
            Ok(())
        };
        // A whole run of a 2-D node that asks for it, into memory, with rows of blocks enough
        // for two per thread: a task per row of blocks, each computed in one piece straight
        // into the result (block by block where the node cannot).
        let whole: Vec<Range<usize>> = grid.shape().iter().map(|&n| 0..n).collect();
        let bands = root.row_bands()
            && grid.ndim() == 2
            && !mirrored
            && !resume
            && shard.is_whole()
            && grid.chunks()[0].len() >= 2 * ctx.options().worker_threads()
            && sink.direct(&whole).is_some();
        if bands {
            let per_band = grid.chunks()[1].len();
            (0..grid.chunks()[0].len())
                .into_par_iter()
                .try_for_each(|bi| -> Result<()> {
                    let rows = grid.block_region(&[bi, 0])[0].clone();
                    let region = [rows, 0..grid.shape()[1]];
                    if let Some(mut dst) = sink.direct(&region) {
                        if root.region_into(&region, &mut dst)? {
                            let nb = region[0].len() * region[1].len() * std::mem::size_of::<T>();
                            report(per_band, nb);
                            return Ok(());
                        }
                    }
                    (bi * per_band..(bi + 1) * per_band).try_for_each(block)
                })?;
        } else {
            mine.par_iter().try_for_each(|&lin| block(lin))?;
        }
        let skipped = skipped.into_inner();
        Ok(RunStats {
            blocks,
            written: blocks - skipped,
            skipped,
        })
    });
    // A run nested in another (a stage materialised, the rows of a distance) leaves no spare
    // beside the memory the outer run was checked for.
    ctx.drop_spares();
    stats
}

/// Computes the block covering `region` in parts straight into the sink's part writers (and
/// each part mirrored into the block `swapped`, when given), and says whether it did: false
/// when the sink or the node cannot, and nothing was written.
fn in_parts<T: Element>(
    root: &dyn Node<T>,
    sink: &dyn BlockSink<T>,
    region: &[Range<usize>],
    swapped: &[Range<usize>],
) -> Result<bool> {
    let Some(mut block) = sink.parts(region)? else {
        return Ok(false);
    };
    let mut mirror = match swapped.is_empty() {
        true => None,
        false => match sink.parts(swapped)? {
            Some(w) => Some(w),
            None => return Ok(false),
        },
    };
    let done = root.region_parts(region, &mut |part, data| {
        block.write(part, data.view())?;
        if let Some(m) = mirror.as_mut() {
            m.write(&[part[1].clone(), part[0].clone()], data.reversed_axes())?;
        }
        Ok(())
    })?;
    if !done {
        return Ok(false);
    }
    block.finish()?;
    if let Some(m) = mirror {
        m.finish()?;
    }
    Ok(true)
}

/// Runs `root` into a new in-memory array.
///
/// # Errors
/// As [`run`].
pub fn compute<T: Element>(root: &dyn Node<T>, ctx: &ExecContext) -> Result<ArrayD<T>> {
    let shape = root.grid().shape().to_vec();
    // Filled once by the tasks: huge pages spare a large result most of its page faults.
    let mut out = zeroed_block::<T>(&shape);
    {
        let sink = RawSink::new(out.as_mut_ptr(), &shape);
        run(root, &sink, ctx)?;
    }
    Ok(out)
}

/// A sink writing into a C-ordered buffer through a raw pointer, so that parallel tasks can
/// fill disjoint regions.
pub(crate) struct RawSink<T> {
    ptr: *mut T,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

// SAFETY: the executor writes each region exactly once, and output regions of distinct blocks
// are disjoint, so concurrent writes never touch the same element.
unsafe impl<T: Send> Sync for RawSink<T> {}

impl<T> RawSink<T> {
    /// A sink over `shape` elements in C order starting at `ptr`. The buffer must stay alive and
    /// unaliased while the sink is used.
    pub(crate) fn new(ptr: *mut T, shape: &[usize]) -> Self {
        RawSink {
            ptr,
            shape: shape.to_vec(),
            strides: crate::plan::c_strides(shape),
        }
    }
}

impl<T> RawSink<T> {
    /// The start of the run of elements `offset..offset + len` of the buffer, as bytes to fill
    /// in place, or `None` when the run does not lie inside the buffer.
    pub(crate) fn run_ptr(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let total: usize = self.shape.iter().product();
        (offset.checked_add(len)? <= total).then(|| self.ptr.wrapping_add(offset).cast::<u8>())
    }
}

impl<T> RawSink<T> {
    /// The buffer's elements of `region`, as a strided view, or `None` for a region outside
    /// the buffer.
    fn region_view(&self, region: &[Range<usize>]) -> Option<ArrayViewMutD<'_, T>> {
        if region.len() != self.shape.len()
            || region
                .iter()
                .zip(&self.shape)
                .any(|(r, &n)| r.end > n || r.start > r.end)
        {
            return None;
        }
        let rshape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        if rshape.contains(&0) {
            return None;
        }
        let offset: usize = region
            .iter()
            .zip(&self.strides)
            .map(|(r, s)| r.start * s)
            .sum();
        // SAFETY: the region lies inside the buffer (checked above), the pointer and strides
        // describe that C-ordered buffer, and the executor hands out regions of distinct blocks,
        // which never overlap, so no two views alias.
        Some(unsafe {
            ArrayViewMutD::from_shape_ptr(
                IxDyn(&rshape).strides(IxDyn(&self.strides)),
                self.ptr.add(offset),
            )
        })
    }
}

impl<T: Element> BlockSink<T> for RawSink<T> {
    fn direct(&self, region: &[Range<usize>]) -> Option<ArrayViewMutD<'_, T>> {
        self.region_view(region)
    }

    fn write_block(&self, region: &[Range<usize>], block: ArrayViewD<'_, T>) -> Result<()> {
        let rshape: Vec<usize> = region.iter().map(|r| r.len()).collect();
        if block.shape() != rshape.as_slice()
            || region.len() != self.shape.len()
            || region.iter().zip(&self.shape).any(|(r, &n)| r.end > n)
        {
            return Err(Error::Shape(format!(
                "internal: block of shape {:?} for region {region:?}",
                block.shape()
            )));
        }
        if rshape.contains(&0) {
            return Ok(());
        }
        let mut dst = self.region_view(region).ok_or_else(|| {
            Error::Shape(format!("internal: region {region:?} outside the output"))
        })?;
        dst.assign(&block);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Block;

    fn spare_bytes() -> Option<usize> {
        SPARE.with_borrow(|s| {
            s.as_ref()
                .and_then(|b| b.downcast_ref::<Vec<f64>>())
                .map(|v| v.capacity() * 8)
        })
    }

    #[test]
    fn a_read_block_buffer_is_taken_again_by_the_next_read_on_its_thread() {
        drop_spare();
        let shape = [1024, 1024]; // 8 MiB
        let mut a = overwritten_block::<f64>(&shape);
        a.fill(7.0);
        let ptr = a.as_ptr();
        recycle(Block::from(a));
        assert_eq!(spare_bytes(), Some(8 << 20));
        // The next read of that size gets the buffer with its old values (it overwrites
        // them).
        let b = overwritten_block::<f64>(&shape);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b.shape(), &shape);
        assert!(b.iter().all(|&v| v == 7.0));
        assert_eq!(spare_bytes(), None);
        // A read up to an eighth smaller takes it too, with its own shape.
        recycle(Block::from(b));
        let c = overwritten_block::<f64>(&[920, 1024]);
        assert_eq!((c.as_ptr(), c.len()), (ptr, 920 * 1024));
        // Two reads outstanding on one thread (one stolen while the other waited): the later
        // one consumed first becomes the spare, then the earlier one replaces it.
        let mut first = overwritten_block::<f64>(&shape);
        first.fill(1.0);
        let second = overwritten_block::<f64>(&shape);
        let first_ptr = first.as_ptr();
        recycle(Block::from(second));
        assert_eq!(spare_bytes(), Some(8 << 20));
        recycle(Block::from(first));
        let c = overwritten_block::<f64>(&shape);
        assert_eq!(c.as_ptr(), first_ptr);
        // A block no read made is not kept, nor a view, nor a small block.
        recycle(Block::from(ArrayD::<f64>::zeros(IxDyn(&shape))));
        assert_eq!(spare_bytes(), None);
        recycle(Block::from(c.view()));
        assert_eq!(spare_bytes(), None);
        let small = overwritten_block::<f64>(&[10, 10]);
        recycle(Block::from(small));
        assert_eq!(spare_bytes(), None);
        recycle(Block::from(c));
        assert_eq!(spare_bytes(), Some(8 << 20));
        // A read more than an eighth smaller frees the spare and starts from zeros.
        let d = overwritten_block::<f64>(&[900, 1024]);
        assert_eq!(spare_bytes(), None);
        assert!(d.iter().all(|&v| v == 0.0));
        let mut d = d;
        d.fill(3.0);
        recycle(Block::from(d));
        // So does a read of another element type.
        let e = overwritten_block::<f32>(&[1100, 1024]);
        assert_eq!(spare_bytes(), None);
        assert!(e.iter().all(|&v| v == 0.0));
        drop_spare();
    }

    #[test]
    fn runs_leave_no_spare_on_their_threads() {
        let ctx = ExecContext::new(ExecOptions::default().threads(2)).unwrap();
        let held = |ctx: &ExecContext| -> usize {
            let counts = ctx.pool.broadcast(|_| usize::from(spare_bytes().is_some()));
            counts.into_iter().sum()
        };
        let leave_spares = || {
            rayon::broadcast(|_| {
                let a = overwritten_block::<f64>(&[1024, 1024]);
                recycle(Block::from(a));
            })
        };
        ctx.install(|| {
            leave_spares();
            assert_eq!(held(&ctx), 2);
            // A nested install leaves them to the outer one.
            ctx.install(|| ());
            assert_eq!(held(&ctx), 2);
            // A run, nested or not, drops them when it ends.
            let x = crate::array::ChunkedArray::<f64>::ones(&[4, 4], vec![2, 2]).unwrap();
            let _ = compute(x.node().as_ref(), &ctx).unwrap();
            assert_eq!(held(&ctx), 0);
            leave_spares();
        });
        assert_eq!(held(&ctx), 0);
    }
}
