//! Writing one Zarr array from several tasks (`ChunkedArray::to_zarr_part`, `exec::Shard`):
//! whatever the shape, the chunking (ragged edges, single elements, one block, empty axes) and
//! the number of tasks, the tasks' shares are disjoint and cover every chunk, and the array they
//! write together equals the dense reference; a task left out shows up in `verify` as exactly its
//! chunks, and a resumed run writes exactly those.

mod common;

use common::{assert_same, config, float_case, iota};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use std::path::Path;
use tessera::distance::{pdist, Metric};
use tessera::exec::Shard;
use tessera::store::zarr::{Codec, PartOptions, ZarrTarget, ZarrWriteOptions};
use tessera::{ChunkedArray, Chunks, ExecOptions};

fn zopts(codec: Codec, zarr_format: u8) -> ZarrWriteOptions {
    ZarrWriteOptions {
        codec,
        overwrite: false,
        zarr_format,
    }
}

fn part(index: usize, count: usize, resume: bool) -> PartOptions {
    PartOptions {
        shard: Shard::new(index, count).unwrap(),
        resume,
        run: serde_json::Map::new(),
    }
}

fn opts() -> ExecOptions {
    ExecOptions::default().threads(2)
}

fn read(path: &Path) -> ArrayD<f64> {
    ChunkedArray::<f64>::from_zarr(path, Chunks::Auto)
        .and_then(|a| a.compute())
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn shares_are_disjoint_contiguous_and_cover_every_task() {
    for ntasks in [0usize, 1, 2, 3, 7, 10, 49, 1000] {
        for count in [1usize, 2, 3, 4, 7, 64] {
            let mut next = 0;
            let mut sizes = Vec::new();
            for index in 0..count {
                let r = Shard::new(index, count).unwrap().range(ntasks);
                assert_eq!(r.start, next, "{ntasks} tasks, task {index} of {count}");
                next = r.end;
                sizes.push(r.len());
            }
            assert_eq!(next, ntasks, "{ntasks} tasks over {count}");
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{ntasks} over {count}: {sizes:?}");
        }
    }
    assert!(Shard::new(2, 2).is_err());
    assert!(Shard::new(0, 0).is_err());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tasks_together_write_the_whole_array((case, _) in float_case(), count in 1usize..6, v2 in any::<bool>(), zstd in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zarr");
        let x = case.chunked();
        let codec = if zstd { Codec::Zstd(1) } else { Codec::None };
        let zo = zopts(codec, if v2 { 2 } else { 3 });
        let mut written = 0;
        for i in 0..count {
            let r = x.to_zarr_part(&path, &zo, &part(i, count, false), &opts()).unwrap();
            prop_assert!(!r.complete || count == 1);
            written += r.stats.written;
        }
        let target = ZarrTarget::open(&path).unwrap();
        let report = target.verify();
        prop_assert!(report.is_complete(), "{report:?}");
        // (An empty array has one empty block and no chunk.)
        prop_assert!(written == report.chunks || case.data.is_empty());
        if count > 1 {
            // Not readable as complete until verified.
            prop_assert!(ChunkedArray::<f64>::from_zarr(&path, Chunks::Auto).is_err());
            target.mark_complete().unwrap();
        }
        assert_same(&read(&path), &case.data, &(&case.chunks, count));
    }

    #[test]
    fn a_missing_task_is_found_and_resumed((case, _) in float_case(), count in 2usize..6, skip in 0usize..6) {
        let skip = skip % count;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zarr");
        let x = case.chunked();
        let zo = zopts(Codec::Zstd(1), 3);
        let mut skipped_blocks = 0;
        for i in 0..count {
            if i == skip {
                // What it would have written: the other tasks' reports tell the total.
                continue;
            }
            x.to_zarr_part(&path, &zo, &part(i, count, false), &opts()).unwrap();
        }
        let target = ZarrTarget::open(&path).unwrap();
        let report = target.verify();
        skipped_blocks += report.missing.len();
        prop_assert!(report.corrupt.is_empty());
        let resumed = x.to_zarr_part(&path, &zo, &part(0, 1, true), &opts()).unwrap();
        if !case.data.is_empty() {
            prop_assert_eq!(resumed.stats.written, skipped_blocks);
            prop_assert_eq!(resumed.stats.skipped, report.chunks - skipped_blocks);
        }
        prop_assert!(resumed.complete);
        assert_same(&read(&path), &case.data, &(&case.chunks, count, skip));
    }
}

#[test]
fn mirrored_pdist_tiles_split_over_tasks() {
    let x = ChunkedArray::from_array(
        iota(&[23, 3]).mapv(|v| (v * 0.37).sin()),
        Chunks::PerAxis(vec![
            tessera::chunks::AxisChunks::Size(4),
            tessera::chunks::AxisChunks::Whole,
        ]),
    )
    .unwrap();
    let d = pdist(&x, Metric::Cityblock).unwrap();
    let want = d.compute().unwrap();
    for count in [1, 2, 5, 21, 40] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.zarr");
        let mut blocks = 0;
        for i in 0..count {
            let r = d
                .to_zarr_part(
                    &path,
                    &zopts(Codec::None, 3),
                    &part(i, count, false),
                    &opts(),
                )
                .unwrap();
            blocks += r.stats.blocks;
        }
        // 6 x 6 tiles: each written once, the ones off the diagonal with their mirror image.
        assert_eq!(blocks, 36, "{count} tasks");
        let t = ZarrTarget::open(&path).unwrap();
        assert!(t.verify().is_complete());
        t.mark_complete().unwrap();
        assert_same(&read(&path), &want, &count);
    }
}

#[test]
fn tasks_with_other_parameters_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let x = ChunkedArray::from_array(iota(&[10, 4]), Chunks::Size(3)).unwrap();
    let mut p = part(0, 2, false);
    p.run.insert("metric".into(), "cityblock".into());
    x.to_zarr_part(&path, &zopts(Codec::None, 3), &p, &opts())
        .unwrap();
    // Another run parameter.
    let mut q = part(1, 2, false);
    q.run.insert("metric".into(), "euclidean".into());
    let e = x
        .to_zarr_part(&path, &zopts(Codec::None, 3), &q, &opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tessera_run.metric: the store has \"cityblock\", this run \"euclidean\""),
        "{e}"
    );
    // Another chunking, another codec.
    let y = x.rechunk(Chunks::Size(5)).unwrap();
    let e = y
        .to_zarr_part(&path, &zopts(Codec::None, 3), &p, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("chunk_grid") && e.contains("[3,3]"), "{e}");
    let e = x
        .to_zarr_part(&path, &zopts(Codec::Zstd(3), 3), &p, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("codecs"), "{e}");
    // Another Zarr format in the way.
    let e = x
        .to_zarr_part(&path, &zopts(Codec::None, 2), &p, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("another kind or format"), "{e}");
}

#[test]
fn a_zero_length_array_needs_no_task() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.zarr");
    let x = ChunkedArray::from_array(ArrayD::<f64>::zeros(IxDyn(&[0, 3])), Chunks::Auto).unwrap();
    for i in 0..3 {
        x.to_zarr_part(&path, &zopts(Codec::None, 3), &part(i, 3, false), &opts())
            .unwrap();
    }
    let t = ZarrTarget::open(&path).unwrap();
    assert_eq!(t.verify().chunks, 0);
    assert!(t.verify().is_complete());
    assert_eq!(
        std::fs::read_dir(&path).unwrap().count(),
        1,
        "zarr.json only"
    );
    t.mark_complete().unwrap();
    assert_eq!(read(&path).shape(), &[0, 3]);
}
