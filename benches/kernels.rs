//! Criterion benches of the distance kernels: one 256 x 256 tile of 64-dimensional float64
//! (and float32) points per metric, through the public `tessera::distance::tile`. Throughput is in
//! pair-dimensions (256 * 256 * 64 per tile).
//!
//! `cargo bench --bench kernels`; `cargo test --benches` runs each once, as a smoke test.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tessera::distance::{tile, DistFloat, Metric};
use tessera::ops::creation::Distribution;
use tessera::ChunkedArray;

const ROWS: usize = 256;
const DIM: usize = 64;

/// `ROWS x DIM` uniform points, seeded, as a flat row-major vector.
fn points(seed: u64) -> Vec<f64> {
    let u = Distribution::Uniform {
        low: 0.0,
        high: 1.0,
    };
    ChunkedArray::<f64>::random(&[ROWS, DIM], u, seed, ROWS)
        .and_then(|a| a.compute())
        .map(|a| a.iter().copied().collect())
        .unwrap_or_else(|e| panic!("making the bench's points: {e}"))
}

/// One group: a 256 x 256 tile of `x` against `y` for each metric.
fn group<T: DistFloat>(c: &mut Criterion, name: &str, x: &[T], y: &[T], metrics: &[Metric]) {
    let mut out = vec![T::zero(); ROWS * ROWS];
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements((ROWS * ROWS * DIM) as u64));
    for &metric in metrics {
        group.bench_function(BenchmarkId::from_parameter(metric.name()), |b| {
            b.iter(|| {
                tile(
                    metric,
                    black_box(x),
                    ROWS,
                    black_box(y),
                    ROWS,
                    DIM,
                    &mut out,
                );
                black_box(out[0])
            })
        });
    }
    group.finish();
}

fn kernels(c: &mut Criterion) {
    let x = points(1);
    let y = points(2);
    let l1 = [
        Metric::Cityblock,
        Metric::Chebyshev,
        Metric::Canberra,
        Metric::BrayCurtis,
        Metric::Minkowski(3.0),
    ];
    let gemm = [Metric::Euclidean, Metric::SqEuclidean, Metric::Cosine];
    let f64_metrics: Vec<Metric> = gemm.iter().chain(&l1).copied().collect();
    group(c, "tile_256x256_d64_f64", &x, &y, &f64_metrics);
    let narrow = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let f32_metrics: Vec<Metric> = [Metric::SqEuclidean].iter().chain(&l1).copied().collect();
    group(
        c,
        "tile_256x256_d64_f32",
        &narrow(&x),
        &narrow(&y),
        &f32_metrics,
    );
}

criterion_group!(benches, kernels);
criterion_main!(benches);
