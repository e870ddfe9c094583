//! The engine's infrastructure against naive definitions: chunk grids (normalisation, block
//! math, broadcasting), the executor (threads, progress, memory limit) and creation routines.

mod common;

use common::*;
use ndarray::ArrayD;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tessera::chunks::{AxisChunks, AUTO_BLOCK_BYTES};
use tessera::exec::Progress;
use tessera::ops::creation::Distribution;
use tessera::ops::reduce::ReduceOpts;
use tessera::ops::slice::SliceItem;
use tessera::{ChunkGrid, ChunkedArray, Chunks, Error, ExecOptions};

// ---------------------------------------------------------------------------------------------
// Strategies and naive definitions
// ---------------------------------------------------------------------------------------------

fn grid_of(shape: &[usize], chunks: &Chunks) -> ChunkGrid {
    ChunkGrid::new(shape, chunks, 8).unwrap_or_else(|e| panic!("{shape:?} {chunks:?}: {e}"))
}

/// A random grid (ndim 0..=3, lengths 0..=7).
fn grid() -> BoxedStrategy<ChunkGrid> {
    shape_chunks().prop_map(|(s, c)| grid_of(&s, &c)).boxed()
}

/// Up to three grids whose shapes broadcast: suffixes of one shape, some axes set to 1.
fn broadcastable_grids() -> BoxedStrategy<Vec<ChunkGrid>> {
    shape(3, 6)
        .prop_flat_map(|out| {
            let nd = out.len();
            let one =
                (0..=nd, prop::collection::vec(any::<bool>(), nd)).prop_map(move |(k, ones)| {
                    (nd - k..nd)
                        .map(|ax| if ones[ax] { 1 } else { out[ax] })
                        .collect::<Vec<usize>>()
                });
            prop::collection::vec(one, 1..=3)
        })
        .prop_flat_map(|shapes| {
            shapes
                .into_iter()
                .map(|s| {
                    let c = chunks_for(&s);
                    (Just(s), c).prop_map(|(s, c)| grid_of(&s, &c))
                })
                .collect::<Vec<_>>()
        })
        .boxed()
}

/// The broadcast grid, naively: the broadcast shape, and along each axis a block boundary at
/// every position where some operand with the full length has one.
fn broadcast_grid_ref(grids: &[ChunkGrid]) -> Option<(Vec<usize>, Vec<Vec<usize>>)> {
    let shapes: Vec<&[usize]> = grids.iter().map(ChunkGrid::shape).collect();
    let shape = broadcast_shape(&shapes)?;
    let nd = shape.len();
    let chunks = (0..nd)
        .map(|ax| {
            let n = shape[ax];
            if n == 0 {
                return vec![0];
            }
            let mut cuts: BTreeSet<usize> = [0, n].into_iter().collect();
            for g in grids {
                let Some(gax) = (ax + g.ndim()).checked_sub(nd) else {
                    continue;
                };
                if g.shape()[gax] != n {
                    continue;
                }
                let mut pos = 0;
                for &c in &g.chunks()[gax] {
                    pos += c;
                    cuts.insert(pos);
                }
            }
            let cuts: Vec<usize> = cuts.into_iter().collect();
            cuts.windows(2).map(|w| w[1] - w[0]).collect()
        })
        .collect();
    Some((shape, chunks))
}

/// Block indices in C order, by an odometer.
fn block_indices(blocks_per_axis: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &n in blocks_per_axis {
        out = out
            .into_iter()
            .flat_map(|p| {
                (0..n).map(move |i| {
                    let mut q = p.clone();
                    q.push(i);
                    q
                })
            })
            .collect();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Chunk grids
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn specs_normalise_as_documented((s, c) in shape_chunks()) {
        let g = grid_of(&s, &c);
        prop_assert_eq!(g.shape(), s.as_slice());
        let want = expected_chunks(&s, &c);
        prop_assert_eq!(g.chunks(), want.as_slice());
        let x = ChunkedArray::<f64>::zeros(&s, c.clone()).unwrap();
        prop_assert_eq!(x.chunks(), g.chunks());
        prop_assert_eq!(x.nblocks(), g.nblocks());
    }

    #[test]
    fn block_math_round_trips(g in grid()) {
        let per_axis: Vec<usize> = g.chunks().iter().map(Vec::len).collect();
        prop_assert_eq!(&g.blocks_per_axis(), &per_axis);
        prop_assert_eq!(g.nblocks(), per_axis.iter().product::<usize>());
        let indices = block_indices(&per_axis);
        let regions = block_regions(g.chunks());
        prop_assert_eq!(indices.len(), g.nblocks());
        let mut cover = ArrayD::<u32>::zeros(ndarray::IxDyn(g.shape()));
        for (lin, idx) in indices.iter().enumerate() {
            prop_assert_eq!(&g.block_index(lin), idx);
            prop_assert_eq!(g.linear_index(idx), lin);
            prop_assert_eq!(&g.block_region(idx), &regions[lin]);
            let lens: Vec<usize> = regions[lin].iter().map(Range::len).collect();
            prop_assert_eq!(&g.block_shape(idx), &lens);
            for (pos, c) in cover.indexed_iter_mut() {
                if regions[lin].iter().enumerate().all(|(ax, r)| r.contains(&pos[ax])) {
                    *c += 1;
                }
            }
        }
        // The blocks tile the array: every element in exactly one block.
        prop_assert!(cover.iter().all(|&c| c == 1), "{:?}", cover);
        for ax in 0..g.ndim() {
            let mut starts = vec![0];
            for &c in &g.chunks()[ax] {
                starts.push(starts.last().unwrap() + c);
            }
            prop_assert_eq!(g.starts(ax), starts.as_slice());
            let n = g.shape()[ax];
            for pos in 0..n {
                let b = g.block_at(ax, pos);
                prop_assert!(starts[b] <= pos && pos < starts[b + 1], "axis {} pos {} -> {}", ax, pos, b);
            }
            prop_assert_eq!(g.block_at(ax, n), g.chunks()[ax].len() - 1);
        }
        let max: Vec<usize> = g.chunks().iter().map(|c| *c.iter().max().unwrap()).collect();
        prop_assert_eq!(&g.max_chunk_shape(), &max);
        prop_assert_eq!(g.max_block_len(), max.iter().product::<usize>());
    }

    #[test]
    fn blocks_in_finds_the_intersecting_blocks(
        (g, region) in grid().prop_flat_map(|g| {
            let ranges: Vec<_> = g
                .shape()
                .iter()
                .map(|&n| (0..=n, 0..=n).prop_map(|(a, b)| a.min(b)..a.max(b)))
                .collect();
            (Just(g), ranges)
        })
    ) {
        let got = g.blocks_in(&region);
        for (ax, r) in region.iter().enumerate() {
            let starts = g.starts(ax);
            let hit: Vec<usize> = (0..g.chunks()[ax].len())
                .filter(|&b| starts[b] < r.end && r.start < starts[b + 1])
                .collect();
            if r.is_empty() {
                prop_assert_eq!(got[ax].len(), 1);
                prop_assert_eq!(got[ax].start, g.block_at(ax, r.start));
            } else {
                prop_assert_eq!(got[ax].clone(), hit[0]..hit[hit.len() - 1] + 1);
            }
        }
    }

    #[test]
    fn broadcast_unifies_as_defined(grids in broadcastable_grids()) {
        let refs: Vec<&ChunkGrid> = grids.iter().collect();
        let got = ChunkGrid::broadcast(&refs).unwrap();
        let (shape, chunks) = broadcast_grid_ref(&grids).unwrap();
        prop_assert_eq!(got.shape(), shape.as_slice());
        prop_assert_eq!(got.chunks(), chunks.as_slice());
    }

    #[test]
    fn broadcast_refuses_what_numpy_refuses(a in shape(3, 4), b in shape(3, 4)) {
        let (ga, gb) = (ChunkGrid::single(&a), ChunkGrid::single(&b));
        match (broadcast_shape(&[&a, &b]), ChunkGrid::broadcast(&[&ga, &gb])) {
            (Some(s), Ok(g)) => prop_assert_eq!(g.shape(), s.as_slice()),
            (None, Err(e)) => {
                let msg = e.to_string();
                prop_assert!(msg.contains(&format!("{a:?}")) && msg.contains(&format!("{b:?}")), "{}", msg);
            }
            (want, got) => prop_assert!(false, "{:?} vs {:?}: want {:?}, got {:?}", a, b, want, got),
        }
    }

    #[test]
    fn permuted_grid_moves_chunks(
        (g, perm) in grid().prop_flat_map(|g| {
            let p = Just((0..g.ndim()).collect::<Vec<_>>()).prop_shuffle();
            (Just(g), p)
        })
    ) {
        let p = g.permuted(&perm);
        for (k, &ax) in perm.iter().enumerate() {
            prop_assert_eq!(p.shape()[k], g.shape()[ax]);
            prop_assert_eq!(&p.chunks()[k], &g.chunks()[ax]);
        }
    }
}

#[test]
fn invalid_chunk_specs_are_errors() {
    let size0 = ChunkGrid::new(&[10, 4], &Chunks::Size(0), 8).unwrap_err();
    assert!(matches!(size0, Error::Chunks { .. }), "{size0:?}");
    assert!(ChunkGrid::new(&[0], &Chunks::Size(0), 8).is_err());
    let axis0 = Chunks::PerAxis(vec![AxisChunks::Whole, AxisChunks::Size(0)]);
    assert!(ChunkGrid::new(&[3, 4], &axis0, 8).is_err());
    // Explicit chunks that do not add up name the list, the axis and the length.
    let short = Chunks::PerAxis(vec![AxisChunks::Explicit(vec![3, 3])]);
    let e = ChunkGrid::new(&[10], &short, 8).unwrap_err().to_string();
    assert!(e.contains("[3, 3]") && e.contains("10"), "{e}");
    let long = Chunks::PerAxis(vec![AxisChunks::Explicit(vec![5, 6])]);
    assert!(ChunkGrid::new(&[10], &long, 8).is_err());
    assert!(ChunkGrid::from_chunks(&[4, 2], vec![vec![4], vec![1]]).is_err());
    // A zero-length block on a non-empty axis; the wrong number of axes.
    let zero = Chunks::PerAxis(vec![AxisChunks::Explicit(vec![0, 10])]);
    assert!(ChunkGrid::new(&[10], &zero, 8).is_err());
    let rank = Chunks::PerAxis(vec![AxisChunks::Whole]);
    assert!(ChunkGrid::new(&[2, 2], &rank, 8).is_err());
    // The same through the array constructors.
    let d = iota(&[4]);
    assert!(ChunkedArray::from_array(d.clone(), 0).is_err());
    assert!(
        ChunkedArray::from_array(d, Chunks::PerAxis(vec![AxisChunks::Explicit(vec![1, 2])]))
            .is_err()
    );
    assert!(ChunkedArray::<f64>::zeros(&[3], 0).is_err());
    assert!(ChunkedArray::<f64>::arange(0.0, 5.0, 1.0, 0).is_err());
}

#[test]
fn fixed_normalisations() {
    let g = grid_of(&[10, 5, 0], &Chunks::Size(3));
    assert_eq!(g.chunks(), &[vec![3, 3, 3, 1], vec![3, 2], vec![0]]);
    assert_eq!(g.nblocks(), 8);
    let g = grid_of(&[4], &Chunks::Size(100));
    assert_eq!(g.chunks(), &[vec![4]]);
    let g = grid_of(&[], &Chunks::Size(3));
    assert_eq!((g.nblocks(), g.len()), (1, 1));
    let g = ChunkGrid::single(&[3, 0]);
    assert_eq!(g.chunks(), &[vec![3], vec![0]]);
    // Automatic chunks: small arrays take one block, large ones stay under the target.
    let g = grid_of(&[100, 100], &Chunks::Auto);
    assert_eq!(g.chunks(), &[vec![100], vec![100]]);
    let g = grid_of(&[200_000, 200_000], &Chunks::Auto);
    assert!(
        g.max_block_len() * 8 <= AUTO_BLOCK_BYTES,
        "{:?}",
        g.max_chunk_shape()
    );
    assert_eq!(g.chunks()[0].iter().sum::<usize>(), 200_000);
}

// ---------------------------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------------------------

/// A pipeline touching most node kinds.
fn pipeline(x: &ChunkedArray<f64>) -> ChunkedArray<f64> {
    let y = x.mul(3.0).unwrap().add(x.sin()).unwrap();
    let rev: Vec<SliceItem> = (0..x.ndim())
        .map(|_| SliceItem::Range {
            start: None,
            stop: None,
            step: -1,
        })
        .collect();
    y.slice(&rev).unwrap().t().rechunk(Chunks::Size(2)).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn one_and_two_threads_agree((c, _) in float_case()) {
        let x = pipeline(&c.chunked());
        let a = x.compute_with(&ExecOptions::default().threads(1)).unwrap();
        let b = x.compute_with(&ExecOptions::default().threads(2)).unwrap();
        prop_assert_eq!(a.shape(), b.shape());
        prop_assert!(a.iter().zip(b.iter()).all(|(p, q)| p.to_bits() == q.to_bits()));
        let s = c.chunked().sum(ReduceOpts::all().split_every(2)).unwrap();
        let a = s.compute_with(&ExecOptions::default().threads(1)).unwrap();
        let b = s.compute_with(&ExecOptions::default().threads(2)).unwrap();
        prop_assert_eq!(a[[]].to_bits(), b[[]].to_bits());
    }

    #[test]
    fn progress_reaches_the_block_count((c, _) in float_case(), threads in 1usize..=2) {
        let x = pipeline(&c.chunked());
        let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
        let log = Arc::clone(&seen);
        let opts = ExecOptions::default()
            .threads(threads)
            .progress(move |p| log.lock().unwrap().push(p));
        let got = x.compute_with(&opts).unwrap();
        let seen = seen.lock().unwrap();
        prop_assert_eq!(seen.len(), x.nblocks());
        prop_assert!(seen.iter().all(|p| p.total == x.nblocks() && p.done >= 1 && p.done <= p.total));
        let max_done = seen.iter().map(|p| p.done).max().unwrap();
        prop_assert_eq!(max_done, x.nblocks());
        // Reports arrive in order, one per block, even from two threads.
        let dones: Vec<usize> = seen.iter().map(|p| p.done).collect();
        prop_assert_eq!(dones, (1..=x.nblocks()).collect::<Vec<_>>());
        prop_assert!(seen.windows(2).all(|w| w[0].elapsed <= w[1].elapsed && w[0].bytes <= w[1].bytes));
        let max_bytes = seen.iter().map(|p| p.bytes).max().unwrap();
        prop_assert_eq!(max_bytes, got.len() * 8);
    }
}

#[test]
fn plans_over_the_memory_limit_are_refused_before_running() {
    // One block of 1000 x 1000 f64 = 8 MB; multiplying needs an output block of that size.
    let x = ChunkedArray::<f64>::ones(&[1000, 1000], 1000).unwrap();
    let y = x.mul(2.0).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let opts = ExecOptions::default()
        .threads(1)
        .allowed_mem(1000)
        .progress(move |_| {
            c.fetch_add(1, Ordering::Relaxed);
        });
    let e = y.compute_with(&opts).unwrap_err();
    match &e {
        Error::MemoryLimit {
            op,
            projected,
            limit,
            threads,
            ..
        } => {
            assert!(op.contains("multiply"), "{op}");
            assert!(*projected >= 8_000_000, "{projected}");
            assert_eq!((*limit, *threads), (1000, 1));
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    assert!(e.to_string().contains("multiply"), "{e}");
    assert_eq!(calls.load(Ordering::Relaxed), 0, "nothing ran");
    // The budget is shared by the threads: 12 MB fits one 8 MB task, not two.
    let mb12 = ExecOptions::default().allowed_mem(12_000_000);
    assert!(matches!(
        y.compute_with(&mb12.clone().threads(2)),
        Err(Error::MemoryLimit { threads: 2, .. })
    ));
    let ok = y.compute_with(&mb12.threads(1)).unwrap();
    assert_eq!(ok.len(), 1_000_000);
    assert!(ok.iter().all(|&v| v == 2.0));
    // Smaller blocks fit the small budget.
    let small = ChunkedArray::<f64>::ones(&[1000, 1000], 10)
        .unwrap()
        .mul(2.0)
        .unwrap();
    let got = small
        .sum(ReduceOpts::all())
        .unwrap()
        .compute_with(&ExecOptions::default().threads(1).allowed_mem(64 << 20))
        .unwrap();
    assert_eq!(got[[]], 2_000_000.0);
}

/// A reduction that is broadcast back is computed once and held whole: when that alone does not
/// fit, the error says so (it is not a task that smaller chunks would shrink).
#[test]
fn a_held_result_over_the_memory_limit_is_named() {
    // Row sums of 10000 x 10 (80 KB held), subtracted from rows in blocks of 100 (8 KB).
    let x = ChunkedArray::<f64>::ones(&[10_000, 10], [100, 10]).unwrap();
    let s = x.sum(ReduceOpts::axis(1).keepdims(true)).unwrap();
    let y = x.sub(&s).unwrap();
    let e = y
        .compute_with(&ExecOptions::default().threads(1).allowed_mem(60_000))
        .unwrap_err();
    match &e {
        Error::MemoryHeld {
            what,
            projected,
            limit,
            allowed,
        } => {
            assert!(what.contains("holding the result of sum"), "{what}");
            assert_eq!((*projected, *limit, *allowed), (80_000, 60_000, 60_000));
        }
        other => panic!("expected MemoryHeld, got {other:?}"),
    }
    assert!(e.to_string().contains("at once"), "{e}");
    let got = y
        .compute_with(&ExecOptions::default().threads(1).allowed_mem(1 << 20))
        .unwrap();
    assert!(got.iter().all(|&v| v == -9.0));
}

// ---------------------------------------------------------------------------------------------
// Creation
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arange_follows_its_formula(
        start in -20i32..20,
        span in -40i32..40,
        step in prop_oneof![(1i32..=12), (-12i32..=-1)],
        chunks in 1usize..=9,
    ) {
        // Quarter steps: start + i * step is exact, so the reference is exact too.
        let (start, stop, step) = (f64::from(start) / 2.0, f64::from(start + span) / 2.0, f64::from(step) / 4.0);
        let n = ((stop - start) / step).ceil().max(0.0) as usize;
        let want: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        let x = ChunkedArray::<f64>::arange(start, stop, step, chunks).unwrap();
        prop_assert_eq!(x.shape(), &[n]);
        prop_assert_eq!(compute(&x), arr1(want.clone()));
        let below = |v: f64| if step > 0.0 { v < stop } else { v > stop };
        prop_assert!(want.iter().all(|&v| below(v)), "past the stop: {:?}", want);
        // Integer arange on integer arguments.
        let (s, e, st) = (start.floor(), stop.floor(), if step > 0.0 { step.ceil() } else { step.floor() });
        let ni = ((e - s) / st).ceil().max(0.0) as usize;
        let want: Vec<i64> = (0..ni).map(|i| s as i64 + i as i64 * st as i64).collect();
        let xi = ChunkedArray::<i64>::arange(s, e, st, chunks).unwrap();
        prop_assert_eq!(compute(&xi), arr1(want));
    }

    #[test]
    fn linspace_hits_both_ends(
        start in -100.0..100.0f64,
        stop in -100.0..100.0f64,
        num in 0usize..=40,
        chunks in 1usize..=9,
    ) {
        let got = compute(&ChunkedArray::<f64>::linspace(start, stop, num, chunks).unwrap());
        prop_assert_eq!(got.len(), num);
        if num >= 1 {
            prop_assert_eq!(got[[0]], start);
        }
        if num >= 2 {
            prop_assert_eq!(got[[num - 1]], stop, "endpoint exact");
            let step = (stop - start) / (num - 1) as f64;
            for (i, &v) in got.iter().enumerate() {
                let want = start + i as f64 * step;
                prop_assert!((v - want).abs() <= 1e-12 * (start.abs() + stop.abs() + 1.0), "{} {} {}", i, v, want);
            }
        }
    }

    #[test]
    fn random_values_do_not_depend_on_chunks(
        (s, c1) in shape_chunks(),
        c2 in 1usize..=8,
        seed in any::<u64>(),
    ) {
        let u = Distribution::Uniform { low: -2.0, high: 3.0 };
        let a = compute(&ChunkedArray::<f64>::random(&s, u, seed, c1.clone()).unwrap());
        let b = compute(&ChunkedArray::<f64>::random(&s, u, seed, c2).unwrap());
        prop_assert_eq!(&a, &b);
        prop_assert!(a.iter().all(|&v| (-2.0..3.0).contains(&v)), "{:?}", a);
        let n = Distribution::Normal { loc: 1.0, scale: 2.0 };
        let a = compute(&ChunkedArray::<f64>::random(&s, n, seed, c1).unwrap());
        let b = compute(&ChunkedArray::<f64>::random(&s, n, seed, c2).unwrap());
        prop_assert_eq!(&a, &b);
        prop_assert!(a.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn random_seeds_differ_and_distributions_look_right() {
    let u = Distribution::Uniform {
        low: 0.0,
        high: 1.0,
    };
    let a = compute(&ChunkedArray::<f64>::random(&[1000], u, 1, 100).unwrap());
    let b = compute(&ChunkedArray::<f64>::random(&[1000], u, 2, 100).unwrap());
    let same = a.iter().zip(b.iter()).filter(|(p, q)| p == q).count();
    assert!(same < 5, "{same} equal values for different seeds");
    let mean = a.iter().sum::<f64>() / 1000.0;
    assert!((mean - 0.5).abs() < 0.05, "uniform mean {mean}");
    let n = Distribution::Normal {
        loc: 5.0,
        scale: 2.0,
    };
    let z = compute(&ChunkedArray::<f64>::random(&[20_000], n, 7, 3000).unwrap());
    let m = z.iter().sum::<f64>() / 20_000.0;
    let sd = (z.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / 20_000.0).sqrt();
    assert!(
        (m - 5.0).abs() < 0.1 && (sd - 2.0).abs() < 0.1,
        "normal mean {m} sd {sd}"
    );
    let bad = Distribution::Uniform {
        low: 1.0,
        high: 0.0,
    };
    assert!(ChunkedArray::<f64>::random(&[3], bad, 0, 1).is_err());
    let bad = Distribution::Normal {
        loc: 0.0,
        scale: -1.0,
    };
    assert!(ChunkedArray::<f64>::random(&[3], bad, 0, 1).is_err());
}

#[test]
fn constants_and_arange_edge_cases() {
    let f = compute(&ChunkedArray::<i32>::full(&[2, 3], 7, 2).unwrap());
    assert_eq!(f, arr(&[2, 3], vec![7; 6]));
    assert_eq!(
        compute(&ChunkedArray::<f64>::zeros(&[0, 2], 1).unwrap()).shape(),
        &[0, 2]
    );
    assert_eq!(
        compute(&ChunkedArray::<bool>::ones(&[2], 1).unwrap()),
        arr1(vec![true, true])
    );
    assert_eq!(
        compute(&ChunkedArray::<u8>::ones(&[], Chunks::PerAxis(vec![])).unwrap())[[]],
        1
    );
    assert_eq!(
        compute(&ChunkedArray::<i64>::arange(2.0, 11.0, 3.0, 2).unwrap()),
        arr1(vec![2, 5, 8])
    );
    assert_eq!(
        compute(&ChunkedArray::<f64>::arange(5.0, 0.0, 1.0, 2).unwrap()).len(),
        0
    );
    assert_eq!(
        compute(&ChunkedArray::<f64>::arange(0.0, 1.0, 0.3, 2).unwrap()).len(),
        4
    );
    assert!(ChunkedArray::<f64>::arange(0.0, 1.0, 0.0, 1).is_err());
    assert!(ChunkedArray::<f64>::arange(0.0, f64::INFINITY, 1.0, 1).is_err());
    assert!(ChunkedArray::<f64>::arange(f64::NAN, 1.0, 1.0, 1).is_err());
    let one = compute(&ChunkedArray::<f64>::linspace(3.0, 9.0, 1, 1).unwrap());
    assert_eq!(one, arr1(vec![3.0]));
}

/// Grids past the limits are refused, whether asked for or reached by broadcasting operands
/// that are each within them: 2^80 elements (2^40 blocks) from two 2^40-element grids.
#[test]
fn grids_past_the_limits_are_refused_even_by_broadcasting() {
    let err = ChunkGrid::regular(&[1 << 61], &[1 << 50])
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than can be addressed"), "{err}");
    let col = ChunkGrid::regular(&[1 << 40, 1], &[1 << 20, 1]).unwrap();
    let row = ChunkGrid::regular(&[1, 1 << 40], &[1, 1 << 20]).unwrap();
    let err = ChunkGrid::broadcast(&[&col, &row]).unwrap_err().to_string();
    assert!(
        err.contains("broadcasting") && err.contains("more elements than can be addressed"),
        "{err}"
    );
    let a = ChunkedArray::<f64>::zeros(&[1 << 40, 1], [1 << 20, 1]).unwrap();
    let b = ChunkedArray::<f64>::zeros(&[1, 1 << 40], [1, 1 << 20]).unwrap();
    assert!(a.add(&b).is_err());
    // At most 2^24 blocks, checked before any block list is built.
    assert_eq!(
        ChunkGrid::regular(&[4096, 4096], &[1, 1])
            .unwrap()
            .nblocks(),
        1 << 24
    );
    let err = ChunkGrid::regular(&[4096, 4097], &[1, 1])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("16781312 blocks is more than the 16777216"),
        "{err}"
    );
    let err = ChunkGrid::regular(&[1 << 30], &[1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("use larger chunks"), "{err}");
    // Operands within the limits can join into a grid beyond them: 2^24 + 2^12 blocks.
    let a = ChunkedArray::<f64>::zeros(&[4096, 4096], [1, 1]).unwrap();
    let b = ChunkedArray::<f64>::zeros(&[1, 4096], [1, 1]).unwrap();
    let err = ChunkedArray::concatenate(&[a, b], 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("concatenating along axis 0: 16781312 blocks is more than the 16777216"),
        "{err}"
    );
    let half = ChunkedArray::<f64>::zeros(&[2048, 4096], [1, 1]).unwrap();
    assert_eq!(
        ChunkedArray::concatenate(&[half.clone(), half], 0)
            .unwrap()
            .shape(),
        &[4096, 4096]
    );
    // A reshape can give more blocks than its input: 3-element blocks split in pairs become
    // 1-row blocks, 4096 x 2732 blocks become 4096 x 4097.
    let x = ChunkedArray::<f64>::zeros(&[4096, 2 * 4097], [1, 3]).unwrap();
    let err = x.reshape(&[4096, 4097, 2]).unwrap_err().to_string();
    assert!(
        err.contains("reshaping [4096, 8194] to [4096, 4097, 2]: 16781312 blocks is more"),
        "{err}"
    );
    let fits = ChunkedArray::<f64>::zeros(&[4096, 2 * 4096], [1, 3]).unwrap();
    assert_eq!(
        fits.reshape(&[4096, 4096, 2]).unwrap().shape(),
        &[4096, 4096, 2]
    );
    // Within the limits, broadcasting still works.
    let small = ChunkGrid::regular(&[1 << 20, 1], &[1 << 10, 1]).unwrap();
    let wide = ChunkGrid::regular(&[1, 1 << 20], &[1, 1 << 10]).unwrap();
    assert_eq!(
        ChunkGrid::broadcast(&[&small, &wide]).unwrap().shape(),
        &[1 << 20, 1 << 20]
    );
}
