//! Memory bounds: a plan over an array far larger than its blocks runs in memory proportional to
//! the blocks in flight, never to the array. Alone in its test binary, so the process's peak
//! resident set (VmHWM) belongs to this test.

use tessera::ops::reduce::ReduceOpts;
use tessera::{ChunkedArray, ExecOptions};

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss;

#[test]
fn a_chain_over_800_mb_peaks_at_a_few_blocks() {
    let before = peak_rss().expect("VmHWM is readable on Linux");
    // 100 million f64 (800 MB if it were materialised) in 2 MB blocks.
    let n = 100_000_000usize;
    let x = ChunkedArray::<f64>::ones(&[n], 250_000).unwrap();
    let y = x.mul(2.0).unwrap().sqrt().add(1.0).unwrap();
    let opts = ExecOptions::default().threads(2).allowed_mem(64 << 20);
    let s = y
        .sum(ReduceOpts::all())
        .unwrap()
        .compute_with(&opts)
        .unwrap();
    let expected = n as f64 * (2f64.sqrt() + 1.0);
    let got = s.iter().next().copied().unwrap();
    assert!(
        (got - expected).abs() <= 1e-9 * expected,
        "{got} vs {expected}"
    );
    let grown = peak_rss().unwrap().saturating_sub(before);
    // Two threads, a few 2 MB blocks each, plus the pool: far below the 800 MB of the array.
    assert!(grown < 64 << 20, "peak RSS grew by {grown} bytes");
}
