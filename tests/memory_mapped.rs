//! Memory bound of a pass over a memory-mapped `.npy` file: the pages of blocks already done
//! leave the process's resident set, so a pass over a file larger than memory keeps only the
//! blocks in flight resident. Alone in its test binary, so the process's peak resident set
//! (VmHWM) belongs to this test.

use tessera::ops::reduce::ReduceOpts;
use tessera::{ChunkedArray, ExecOptions};

#[path = "common/rss.rs"]
mod rss;
use rss::{peak_rss, reset_peak};

#[test]
fn a_sum_over_a_mapped_file_keeps_only_blocks_in_flight_resident() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    // 320 MB of float64 in 4 MB blocks.
    let n = 40_000_000usize;
    let opts = ExecOptions::default().threads(2).allowed_mem(256 << 20);
    ChunkedArray::<f64>::arange(0.0, n as f64, 1.0, 1_000_000)
        .unwrap()
        .to_npy_with(&path, false, &opts)
        .unwrap();
    if !reset_peak() {
        eprintln!("skipped: /proc/self/clear_refs cannot reset the peak resident set");
        return;
    }
    let before = peak_rss().expect("VmHWM is readable on Linux");
    let x = ChunkedArray::<f64>::from_npy(&path, 500_000).unwrap();
    let s = x
        .sum(ReduceOpts::all())
        .unwrap()
        .compute_with(&opts)
        .unwrap();
    let want = (n as f64 - 1.0) * n as f64 / 2.0;
    let got = s.iter().next().copied().unwrap();
    assert_eq!(got, want);
    let grown = peak_rss().unwrap().saturating_sub(before);
    // Three 4 MB blocks mapped at a time, plus the pool: far below the 320 MB of the file.
    assert!(grown < 96 << 20, "peak RSS grew by {grown} bytes");
}
