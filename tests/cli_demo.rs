//! `tessera demo`, the README's main job: what it writes is read back by zarr-python and h5py
//! and checked against SciPy's `cdist` and NumPy's stable `argsort` of the sample points
//! (`tests/python/demo_oracle.py`); it fills a fresh folder and refuses bad input with one
//! error line.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/python.rs"]
mod python;

use std::path::{Path, PathBuf};

const ORACLE: &str = "import sys, demo_oracle; sys.exit(demo_oracle.main(sys.argv[1:]))";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

fn demo(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["demo"];
    all.extend_from_slice(args);
    cli::run(dir, &all)
}

/// The paths of the "Wrote" list, one per line after its heading.
fn written(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Wrote"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn demo_results_are_what_scipy_zarr_and_h5py_say() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir();
    let data = data.to_str().unwrap();
    let (ok, stdout, stderr) = demo(
        tmp.path(),
        &[
            "--data", data, "--points", "300", "-k", "5", "--chunk", "70",
        ],
    );
    assert!(ok, "demo failed: {stderr}\n{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
    // A fresh folder under demo-out; every written path on its own line and present.
    let run1 = tmp.path().join("demo-out/run-1");
    assert!(run1.is_dir(), "{stdout}");
    let paths = written(&stdout);
    let want = [
        "demo-out/run-1/cityblock.zarr",
        "demo-out/run-1/euclidean.zarr",
        "demo-out/run-1/neighbours.zarr/indices",
        "demo-out/run-1/neighbours.zarr/distances",
    ];
    for w in want {
        assert!(paths.iter().any(|p| p == w), "{w} not in {paths:?}");
    }
    #[cfg(feature = "hdf5")]
    for w in [
        "demo-out/run-1/cityblock.h5:/cityblock",
        "demo-out/run-1/euclidean.h5:/euclidean",
    ] {
        assert!(paths.iter().any(|p| p == w), "{w} not in {paths:?}");
    }
    for p in &paths {
        let file = p.split(":/").next().unwrap();
        assert!(tmp.path().join(file).exists(), "{p} was not written");
    }
    for needle in [
        "300 points in 3-D",
        "tiles of [70, 70]",
        "bit for bit",
        "| memory",
        "| Zarr zstd",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }
    // A second run takes the next folder and leaves the first alone.
    let (ok, stdout2, stderr2) = demo(tmp.path(), &["--data", data, "--points", "50"]);
    assert!(ok, "{stderr2}");
    assert!(
        written(&stdout2)[0].starts_with("demo-out/run-2/"),
        "{stdout2}"
    );

    let Some(py) = python::python("demo_results_are_what_scipy_zarr_and_h5py_say") else {
        return;
    };
    let mut args = vec![
        format!("{data}/points.npy"),
        "300".to_string(),
        "5".to_string(),
    ];
    args.extend(
        paths
            .iter()
            .map(|p| tmp.path().join(p).to_string_lossy().into_owned()),
    );
    let out = python::run_script(&py, ORACLE, &args);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert_eq!(v["errors"], serde_json::json!([]), "{out}");
    assert_eq!(
        v["checked"].as_array().map(|a| a.len()),
        Some(paths.len()),
        "{out}"
    );
}

#[test]
fn demo_refuses_bad_input_with_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir();
    let data = data.to_str().unwrap();
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--data", data, "--out", "taken"], &["taken", "exists"]),
        (&["--data", "nowhere"], &["nowhere/points.zarr", "--data"]),
        (&["--data", data, "-k", "0"], &["-k"]),
        (&["--data", data, "--points", "0"], &["--points"]),
    ];
    for (args, needles) in cases {
        let (ok, stdout, stderr) = demo(tmp.path(), args);
        assert!(!ok, "demo {args:?} should fail: {stdout}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        for n in needles {
            assert!(lines[0].contains(n), "{:?} should mention {n:?}", lines[0]);
        }
    }
    // Nothing was created by the failed runs but the folder made above.
    let entries: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}
