//! Memory bound of a distance matrix streamed to an uncompressed Zarr array or HDF5 dataset:
//! tiles far larger than the memory given are computed and written strip by strip, so the peak
//! stays at a few strips whatever the tile. Alone in its test binary, so the process's peak resident set
//! (VmHWM) belongs to this test.

use tessera::distance::{cdist, pdist, Metric};
use tessera::store::zarr::{Codec, PartOptions, ZarrWriteOptions};
use tessera::{ChunkedArray, Chunks, Error, ExecOptions};

#[path = "common/rss.rs"]
mod rss;
use rss::{peak_rss, reset_peak, resident};
use std::path::Path;
#[path = "common/points.rs"]
mod points;
use points::points;

/// pdist of 8000 points and cdist of 8000 against 4500, in 4000 x 4000 tiles (128 MB each,
/// the mirror image of pdist's tile above the diagonal beside it), under 192 MiB for two
/// threads: the run is allowed because the tiles are written in 32 MB strips, each run grows
/// the process by less than 96 MiB over its resident set before it (one whole tile per thread
/// would be 256 MB), and the arrays read back equal the in-memory results bit for bit. The same
/// holds for unfiltered HDF5 datasets, whose chunks are written in place in the file. Each
/// output is checked and deleted before the next is written, so the test needs at most 512 MB
/// of disk, and the peak is reset before each run (the check reads the whole array back, and
/// the allocator keeps some of that: 20-36 MB here). Measured from the resident set before the
/// first run, every peak stays under 160 MiB, so runs that each kept their strips (64 MB) in
/// the allocator would still show. With compression, chunks are encoded whole, and the same
/// plan is refused before anything is written.
#[test]
fn distance_tiles_stream_to_zarr_and_hdf5_in_strips() {
    let dir = tempfile::tempdir().unwrap();
    let x = ChunkedArray::from_array(points(8000, 3, 1).into_dyn(), 4000).unwrap();
    let y = ChunkedArray::from_array(points(4500, 3, 2).into_dyn(), 4000).unwrap();
    let p = pdist(&x, Metric::Euclidean).unwrap();
    let c = cdist(&x, &y, Metric::Cityblock).unwrap();
    let opts = ExecOptions::default().threads(2).allowed_mem(192 << 20);
    let roomy = ExecOptions::default().threads(2).allowed_mem(4 << 30);
    let none = ZarrWriteOptions {
        codec: Codec::None,
        ..ZarrWriteOptions::default()
    };
    // In place, as split and resumed runs write (chunks written aside and renamed).
    let v2 = ZarrWriteOptions {
        zarr_format: 2,
        ..none.clone()
    };
    #[cfg(feature = "hdf5")]
    let h5 = tessera::store::hdf5::Hdf5WriteOptions::default();
    type Write<'a> = Box<dyn Fn(&Path) -> Result<(), Error> + 'a>;
    #[cfg_attr(not(feature = "hdf5"), allow(unused_mut))]
    let mut outputs: Vec<(&str, &ChunkedArray<f64>, Write)> = vec![
        (
            "p.zarr",
            &p,
            Box::new(|path: &Path| p.to_zarr(path, &none, &opts).map(drop)),
        ),
        (
            "c.zarr",
            &c,
            Box::new(|path: &Path| {
                c.to_zarr_part(path, &v2, &PartOptions::default(), &opts)
                    .map(drop)
            }),
        ),
    ];
    #[cfg(feature = "hdf5")]
    {
        outputs.push((
            "p.h5",
            &p,
            Box::new(|path: &Path| p.to_hdf5(path, "/p", &h5, &opts).map(drop)),
        ));
        outputs.push((
            "c.h5",
            &c,
            Box::new(|path: &Path| c.to_hdf5(path, "/g/c", &h5, &opts).map(drop)),
        ));
    }

    let first = resident().expect("VmRSS is readable on Linux");
    for (i, (name, lazy, write)) in outputs.iter().enumerate() {
        let measured = i == 0 || reset_peak();
        let start = resident().expect("VmRSS is readable on Linux");
        let path = dir.path().join(name);
        write(&path).unwrap();
        if measured {
            let grown = peak_rss().unwrap().saturating_sub(start);
            eprintln!("{name}: peak RSS {grown} bytes over the resident set before");
            assert!(grown < 96 << 20, "{name}: peak RSS grew by {grown} bytes");
            let total = peak_rss().unwrap().saturating_sub(first);
            eprintln!("{name}: peak RSS {total} bytes over the resident set before the first run");
            assert!(
                total < 160 << 20,
                "{name}: peak RSS {total} bytes over the resident set before the first run"
            );
        } else {
            eprintln!("{name}: not measured, /proc/self/clear_refs cannot reset the peak");
        }
        let stored = match name.strip_suffix(".h5") {
            #[cfg(feature = "hdf5")]
            Some(_) => {
                let dataset = if name.starts_with('p') { "/p" } else { "/g/c" };
                ChunkedArray::<f64>::from_hdf5(&path, dataset, Chunks::Auto)
            }
            _ => ChunkedArray::<f64>::from_zarr(&path, Chunks::Auto),
        }
        .unwrap()
        .compute_with(&roomy)
        .unwrap();
        let want = lazy.compute_with(&roomy).unwrap();
        assert_eq!(stored.shape(), want.shape(), "{name}");
        let equal = stored
            .iter()
            .zip(want.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(equal, "{name} differs from the in-memory result");
        drop((stored, want));
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }

    let zstd = ZarrWriteOptions::default();
    let refused = p.to_zarr(dir.path().join("z.zarr"), &zstd, &opts);
    // Whole tiles per task (a compressed chunk is not written in parts), or their queue.
    assert!(
        matches!(
            refused,
            Err(Error::MemoryLimit { .. } | Error::MemoryHeld { .. })
        ),
        "{refused:?}"
    );
    assert!(!dir.path().join("z.zarr").exists());
    #[cfg(feature = "hdf5")]
    {
        let gzip = tessera::store::hdf5::Hdf5WriteOptions {
            deflate: Some(1),
            shuffle: true,
            overwrite: false,
        };
        let refused = p.to_hdf5(dir.path().join("z.h5"), "/p", &gzip, &opts);
        assert!(
            matches!(
                refused,
                Err(Error::MemoryLimit { .. } | Error::MemoryHeld { .. })
            ),
            "{refused:?}"
        );
        assert!(!dir.path().join("z.h5").exists());
    }
}
