//! Memory bound of a distance matrix streamed to an uncompressed Zarr array or HDF5 dataset:
//! tiles far larger than the memory given are computed and written strip by strip, so the peak
//! stays at a few strips whatever the tile. Alone in its test binary, so the process's peak resident set
//! (VmHWM) belongs to this test.

use tessera::distance::{cdist, pdist, Metric};
use tessera::store::zarr::{Codec, PartOptions, ZarrWriteOptions};
use tessera::{ChunkedArray, Chunks, Error, ExecOptions};

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss;
#[path = "common/points.rs"]
mod points;
use points::points;

/// pdist of 8000 points and cdist of 8000 against 4500, in 4000 x 4000 tiles (128 MB each,
/// the mirror image of pdist's tile above the diagonal beside it), under 192 MiB for two
/// threads: the run is allowed because the tiles are written in 32 MB strips, the process
/// grows by less than 96 MiB (one whole tile per thread would be 256 MB), and the arrays read
/// back equal the in-memory results bit for bit. The same holds for unfiltered HDF5 datasets,
/// whose chunks are written in place in the file. The four runs share one process, so a run
/// that kept its strips in the allocator after it ended would show here too. With compression,
/// chunks are encoded whole, and the same plan is refused before anything is written.
#[test]
fn distance_tiles_stream_to_zarr_and_hdf5_in_strips() {
    let dir = tempfile::tempdir().unwrap();
    let x = ChunkedArray::from_array(points(8000, 3, 1).into_dyn(), 4000).unwrap();
    let y = ChunkedArray::from_array(points(4500, 3, 2).into_dyn(), 4000).unwrap();
    let p = pdist(&x, Metric::Euclidean).unwrap();
    let c = cdist(&x, &y, Metric::Cityblock).unwrap();
    let opts = ExecOptions::default().threads(2).allowed_mem(192 << 20);
    let none = ZarrWriteOptions {
        codec: Codec::None,
        ..ZarrWriteOptions::default()
    };
    let before = peak_rss().expect("VmHWM is readable on Linux");
    p.to_zarr(dir.path().join("p.zarr"), &none, &opts).unwrap();
    // In place, as split and resumed runs write (chunks written aside and renamed).
    let v2 = ZarrWriteOptions {
        zarr_format: 2,
        ..none.clone()
    };
    c.to_zarr_part(
        dir.path().join("c.zarr"),
        &v2,
        &PartOptions::default(),
        &opts,
    )
    .unwrap();
    #[cfg(feature = "hdf5")]
    {
        let h5 = tessera::store::hdf5::Hdf5WriteOptions::default();
        p.to_hdf5(dir.path().join("d.h5"), "/p", &h5, &opts)
            .unwrap();
        c.to_hdf5(dir.path().join("d.h5"), "/g/c", &h5, &opts)
            .unwrap();
    }
    let grown = peak_rss().unwrap().saturating_sub(before);
    assert!(grown < 96 << 20, "peak RSS grew by {grown} bytes");

    let zstd = ZarrWriteOptions::default();
    let refused = p.to_zarr(dir.path().join("z.zarr"), &zstd, &opts);
    assert!(
        matches!(refused, Err(Error::MemoryLimit { .. })),
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
            matches!(refused, Err(Error::MemoryLimit { .. })),
            "{refused:?}"
        );
        assert!(!dir.path().join("z.h5").exists());
    }

    let roomy = ExecOptions::default().threads(2).allowed_mem(4 << 30);
    let mut outputs = vec![("p.zarr", &p), ("c.zarr", &c)];
    if cfg!(feature = "hdf5") {
        outputs.extend([("d.h5:/p", &p), ("d.h5:/g/c", &c)]);
    }
    for (name, lazy) in outputs {
        let stored = match name.split_once(':') {
            #[cfg(feature = "hdf5")]
            Some((file, dataset)) => {
                ChunkedArray::<f64>::from_hdf5(dir.path().join(file), dataset, Chunks::Auto)
            }
            _ => ChunkedArray::<f64>::from_zarr(dir.path().join(name), Chunks::Auto),
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
    }
}
