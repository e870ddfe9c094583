//! Criterion benches of the executor's per-block overhead: a lazy elementwise chain and a sum
//! over an in-memory array cut into many tiny blocks, so that the time is the plan's and the
//! scheduler's, not the arithmetic's. Throughput is in blocks (time per block = 1 / rate).
//!
//! `cargo bench --bench executor`; `cargo test --benches` runs each once, as a smoke test.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tessera::{ChunkedArray, ExecOptions};

/// Elements per block: small enough that the arithmetic is negligible.
const BLOCK: usize = 16;
/// Blocks of the array.
const BLOCKS: usize = 4096;

fn executor(c: &mut Criterion) {
    let data = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[BLOCK * BLOCKS]), |i| i[0] as f64);
    let x = ChunkedArray::from_array(data, BLOCK)
        .unwrap_or_else(|e| panic!("making the bench's array: {e}"));
    let mut group = c.benchmark_group("tiny_blocks");
    group.throughput(Throughput::Elements(BLOCKS as u64));
    for threads in [1usize, 2] {
        let opts = ExecOptions::default().threads(threads);
        group.bench_function(BenchmarkId::new("sum_sqrt_chain", threads), |b| {
            b.iter(|| {
                let y = x
                    .mul(2.0)
                    .and_then(|y| y.add(1.0))
                    .and_then(|y| y.sqrt().sum_all())
                    .and_then(|s| s.compute_with(&opts))
                    .unwrap_or_else(|e| panic!("running the plan: {e}"));
                black_box(y)
            })
        });
        group.bench_function(BenchmarkId::new("elementwise_into_memory", threads), |b| {
            b.iter(|| {
                let y = x
                    .mul(2.0)
                    .and_then(|y| y.add(1.0))
                    .and_then(|y| y.compute_with(&opts))
                    .unwrap_or_else(|e| panic!("running the plan: {e}"));
                black_box(y)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, executor);
criterion_main!(benches);
