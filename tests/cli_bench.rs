//! `tessera bench`: a shrunken quick run (`--quick --size 4MiB`) gives a table row for every
//! workload, backend and block size with positive rates and a peak memory, a bench.md equal to
//! what it printed, and an SVG plot naming every backend; bad inputs give one `error:` line.

#[path = "common/cli.rs"]
mod cli;

use cli::tessera;
use std::collections::BTreeSet;
use std::path::Path;

const WORKLOADS: [&str; 4] = ["sum", "mean", "chain", "cdist"];

/// The backends this build measures (HDF5 only with the `hdf5` feature).
fn backends() -> Vec<&'static str> {
    let mut b = vec!["memory", "npy", "zarr-none", "zarr-zstd", "zarr-blosc"];
    if cfg!(feature = "hdf5") {
        b.extend(["hdf5-none", "hdf5-deflate"]);
    }
    b
}

/// A byte size as the table prints it (`36.6 MiB`, `512 B`), in bytes.
fn bytes(cell: &str) -> Option<f64> {
    let (num, unit) = cell.split_once(' ')?;
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(v * mult)
}

/// The table's data rows, split into trimmed cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| workload") && !l.starts_with("| ---"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn quick_run_reports_every_case_and_draws_the_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let out_s = out.to_str().unwrap();
    let run = tessera(
        tmp.path(),
        &[
            "bench",
            "--quick",
            "--size",
            "4MiB",
            "--out",
            out_s,
            "--threads",
            "2",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed:\n{stdout}\n{stderr}");

    // The header says what the run was and that the page cache is warm.
    let header = stdout.lines().next().unwrap_or("");
    assert!(header.contains("threads=2"), "{header}");
    assert!(header.contains("page cache warm"), "{header}");

    // One row per workload x backend x block size (--quick: 1 and 64 MiB).
    let table = rows(&stdout);
    let mut seen = BTreeSet::new();
    for r in &table {
        assert_eq!(r.len(), 10, "a row of 10 cells: {r:?}");
        let (workload, backend, block) = (&r[0], &r[1], &r[2]);
        assert!(
            seen.insert((workload.clone(), backend.clone(), block.clone())),
            "row {r:?} appears twice"
        );
        let gbps: f64 = r[4].parse().unwrap_or_else(|_| panic!("GB/s of {r:?}"));
        assert!(gbps > 0.0 && gbps.is_finite(), "{r:?}");
        let secs: f64 = r[6].parse().unwrap_or_else(|_| panic!("seconds of {r:?}"));
        assert!(secs > 0.0, "{r:?}");
        let blocks: usize = r[3].parse().unwrap_or_else(|_| panic!("blocks of {r:?}"));
        assert!(blocks >= 1, "{r:?}");
        let peak = bytes(&r[7]).unwrap_or_else(|| panic!("peak RSS of {r:?}"));
        assert!(peak > 0.0, "{r:?}");
        // Reads from disk have a cold run; memory and the cdist writes do not.
        if backend != "memory" && workload != "cdist" {
            let cold: f64 = r[5]
                .parse()
                .unwrap_or_else(|_| panic!("cold GB/s of {r:?}"));
            assert!(cold > 0.0, "{r:?}");
            assert!(bytes(&r[8]).is_some_and(|b| b > 0.0), "on disk of {r:?}");
        } else {
            assert_eq!(r[5], "–", "{r:?}");
        }
        assert_eq!(r[9], "ok", "checksums agree: {r:?}");
    }
    let mut expected = BTreeSet::new();
    for w in WORKLOADS {
        for b in backends() {
            for block in ["1 MiB", "64 MiB"] {
                expected.insert((w.to_string(), b.to_string(), block.to_string()));
            }
        }
    }
    assert_eq!(seen, expected);

    // bench.md holds what was printed; bench.svg is an SVG naming every backend.
    let md = std::fs::read_to_string(out.join("bench.md")).unwrap();
    assert_eq!(md, stdout);
    let svg = std::fs::read_to_string(out.join("bench.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80.min(svg.len())]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    for b in backends() {
        assert!(
            svg.contains(&format!(">\n{b}\n<")) || svg.contains(&format!(">{b}<")),
            "{b} in the plot"
        );
    }
    for w in WORKLOADS {
        assert!(svg.contains(&format!("{w}:")), "panel {w}");
    }
    // The data are gone: only the table and the plot are left.
    let left: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        BTreeSet::from(["bench.md".into(), "bench.svg".into()])
    );
}

/// Runs `tessera ARGS` in `dir` and checks for one `error:` line, no panic, nothing on stdout
/// and a non-zero exit; returns the line.
fn refused(dir: &Path, args: &[&str]) -> String {
    let run = tessera(dir, args);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{args:?} succeeded");
    assert_ne!(run.status.code(), Some(101), "{args:?} panicked: {stderr}");
    assert!(run.stdout.is_empty(), "{args:?} printed {:?}", run.stdout);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line for {args:?}: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

#[test]
fn bad_inputs_give_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("taken"), "a file").unwrap();
    let line = refused(tmp.path(), &["bench", "--quick", "--out", "taken"]);
    assert!(
        line.contains("taken") && line.contains("not a directory"),
        "{line}"
    );
    // Refused before anything is made: no output folder appears.
    let nothing_made = |args: &[&str]| {
        let tmp = tempfile::tempdir().unwrap();
        let line = refused(tmp.path(), args);
        assert!(
            !tmp.path().join("o").exists(),
            "{args:?} made its output folder"
        );
        line
    };
    let line = nothing_made(&["bench", "--quick", "--size", "lots", "--out", "o"]);
    assert!(line.contains("lots"), "{line}");
    let line = nothing_made(&["bench", "--quick", "--size", "1KiB", "--out", "o"]);
    assert!(line.contains("64 KiB"), "{line}");
    let line = nothing_made(&["bench", "--blocks", "1MiB,1KiB", "--out", "o"]);
    assert!(line.contains("one row"), "{line}");
    let line = nothing_made(&["bench", "--quick", "--threads", "0", "--out", "o"]);
    assert!(line.contains("--threads"), "{line}");
}
