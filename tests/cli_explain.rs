//! What the command shows before anything runs: `tessera info`'s picture of the chunk grid,
//! `tessera eval --explain`'s plan (checked against the library's own projection and memory
//! check), and the examples of every command's `--help`, each run as written.

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::write_npy;
use std::path::{Path, PathBuf};
use tessera::chunks::{ChunkGrid, Chunks};
use tessera::error::fmt_bytes;
use tessera::exec::check_memory;
use tessera::ops::reduce::ReduceOpts;
use tessera::plan::{max_block_bytes, task_bytes, PlanNode};
use tessera::{ChunkedArray, ExecOptions};

#[path = "common/cli.rs"]
mod cli;
use cli::{data, ok, run};

/// Writes zeros of `shape` as `name` in `dir`.
fn npy(dir: &Path, name: &str, shape: &[usize]) -> String {
    write_npy(dir.join(name), &ArrayD::<f64>::zeros(IxDyn(shape))).unwrap();
    name.to_string()
}

/// The picture `info` prints after `label` (the label column removed).
fn picture_after(info: &str, label: &str) -> String {
    let mut lines = info.lines().skip_while(|l| !l.starts_with(label));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no {label:?} line in\n{info}"));
    let mut out = vec![&first[11..]];
    out.extend(
        lines
            .take_while(|l| l.starts_with("           "))
            .map(|l| &l[11..]),
    );
    if label == "stored" {
        // The stored grid's first line names it; its picture starts below.
        out.remove(0);
    }
    out.join("\n") + "\n"
}

/// Column widths and row heights of the cells of a drawn box, read from its `|` borders and
/// the `_` bottom lines of its rows.
fn cells(picture: &str) -> (Vec<usize>, Vec<usize>) {
    let rows: Vec<&str> = picture.lines().filter(|l| l.starts_with('|')).collect();
    let first = rows.first().expect("no box in the picture");
    let borders: Vec<usize> = first
        .char_indices()
        .filter(|&(_, c)| c == '|')
        .map(|(i, _)| i)
        .collect();
    let widths = borders.windows(2).map(|w| w[1] - w[0]).collect();
    let mut heights = Vec::new();
    let mut run = 0;
    for r in &rows {
        run += 1;
        if r.as_bytes().get(1) == Some(&b'_') {
            heights.push(run);
            run = 0;
        }
    }
    assert_eq!(run, 0, "a row of cells without a bottom in\n{picture}");
    (widths, heights)
}

/// `tessera info --chunks CHUNKS` of zeros of `shape`: its output and the grid's picture,
/// which must be the library's picture of the same grid.
fn info_of(shape: &[usize], chunks: &[usize]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = npy(dir.path(), "a.npy", shape);
    let spec: Vec<String> = chunks.iter().map(usize::to_string).collect();
    let out = ok(dir.path(), &["info", &f, "--chunks", &spec.join(",")]);
    let pic = picture_after(&out, "grid");
    let grid = ChunkGrid::new(shape, &Chunks::from(chunks), 8).unwrap();
    assert_eq!(pic, grid.picture(), "{out}");
    (out, pic)
}

#[test]
fn info_draws_a_1d_grid() {
    let (_, pic) = info_of(&[10], &[4]);
    let (w, h) = cells(&pic);
    assert_eq!(h, vec![1], "one row of cells\n{pic}");
    assert_eq!(w.len(), 3, "{pic}");
    assert!(
        w[0] == w[1] && w[2] < w[0],
        "the last block (2 of 10) is smaller\n{pic}"
    );
    assert!(
        pic.lines().any(|l| l.trim() == "10"),
        "the length below\n{pic}"
    );
}

#[test]
fn info_draws_ragged_edges_of_a_2d_grid() {
    let (out, pic) = info_of(&[10, 7], &[4, 3]);
    assert!(out.contains("blocks     9 ([3, 3] per axis)"), "{out}");
    let (w, h) = cells(&pic);
    assert_eq!((w.len(), h.len()), (3, 3), "3 x 3 cells\n{pic}");
    assert!(w[0] == w[1] && w[2] < w[0], "last column smaller\n{pic}");
    assert!(h[0] == h[1] && h[2] < h[0], "last row smaller\n{pic}");
    // The lengths: 10 down (right of the box), 7 across (below it).
    assert!(pic.lines().any(|l| l.ends_with("| 10")), "{pic}");
    assert!(pic.lines().any(|l| l.trim() == "7"), "{pic}");

    // A Zarr array stored in chunks of 4 x 3: tessera reads it in one block, and info draws
    // the stored chunks as well.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = npy(d, "m.npy", &[10, 7]);
    ok(d, &["convert", &f, "m.zarr", "--chunks", "4,3"]);
    let out = ok(d, &["info", "m.zarr"]);
    assert!(
        out.contains("stored     9 chunks of [4, 3] in the file"),
        "{out}"
    );
    assert_eq!(picture_after(&out, "stored"), pic, "{out}");
    let (w, h) = cells(&picture_after(&out, "grid"));
    assert_eq!((w.len(), h.len()), (1, 1), "{out}");
}

#[test]
fn info_draws_a_3d_grid_as_its_last_two_axes() {
    let (_, pic) = info_of(&[6, 10, 7], &[2, 4, 3]);
    let (w, h) = cells(&pic);
    assert_eq!((w.len(), h.len()), (3, 3), "{pic}");
    let note = "axes 1 and 2 drawn; axis 0 (length 6) runs into the page in 3 block(s): 3 x 2\n";
    assert!(pic.ends_with(note), "{pic}");
}

#[test]
fn info_compresses_a_grid_of_many_blocks() {
    let (out, pic) = info_of(&[800, 800], &[10, 10]);
    assert!(out.contains("blocks     6400 ([80, 80] per axis)"), "{out}");
    let note = "80 x 80 blocks; each cell drawn holds 8 x 8 of them\n";
    assert!(pic.ends_with(note), "{pic}");
    let (w, h) = cells(&pic);
    assert_eq!((w.len(), h.len()), (10, 10), "{pic}");
    // The box keeps within 40 x 12 characters (the length 800 is written beside it).
    let boxed: Vec<&str> = pic.lines().filter(|l| l.starts_with(['|', ' '])).collect();
    assert!(boxed.len() <= 12, "{pic}");
    assert!(
        boxed
            .iter()
            .all(|l| l.trim_end_matches(" 800").trim_end().len() <= 40),
        "{pic}"
    );
}

#[test]
fn info_notes_what_it_cannot_draw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = npy(d, "e.npy", &[0, 7]);
    let out = ok(d, &["info", &empty]);
    assert!(
        out.contains("grid       no picture: axis 0 has length 0"),
        "{out}"
    );
    let four = npy(d, "four.npy", &[2, 2, 2, 2]);
    let out = ok(d, &["info", &four, "--chunks", "1"]);
    assert!(
        out.contains("grid       no picture for a 4-D array: 2 x 2 x 2 x 2 blocks"),
        "{out}"
    );
    let scalar = npy(d, "s.npy", &[]);
    let out = ok(d, &["info", &scalar]);
    assert!(out.contains("grid       no picture: a 0-d array"), "{out}");
}

/// The options the explain tests give the command and the library: 2 threads, 1 GiB.
const THREADS: usize = 2;
const MEM: usize = 1 << 30;

/// The sample points as the command opens them.
fn points() -> ChunkedArray<f64> {
    ChunkedArray::<f64>::from_npy(data("points.npy"), Chunks::Auto).unwrap()
}

/// `tessera --threads N --mem M eval EXPR --in x=data/points.npy --explain` (2 threads and 1
/// GiB unless given), run in a fresh directory.
fn explain(expr: &str, threads: usize, mem: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = format!("x={}", data("points.npy"));
    let (threads, mem) = (threads.to_string(), format!("{mem}B"));
    let args = [
        "--threads",
        &threads,
        "--mem",
        &mem,
        "eval",
        expr,
        "--in",
        &input,
        "--explain",
    ];
    ok(dir.path(), &args)
}

/// The library's plan of `a` with the options of the explain tests.
fn library_plan<T: tessera::Element>(a: &ChunkedArray<T>) -> String {
    let opts = ExecOptions::default().threads(THREADS).allowed_mem(MEM);
    a.explain_with(&opts).to_string()
}

/// The table's line for the node `op` at `depth`.
fn row<'a>(plan: &'a str, depth: usize, op: &str) -> &'a str {
    let start = format!("{:w$}{op} ", "", w = 2 * depth);
    plan.lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no {op:?} at depth {depth} in\n{plan}"))
}

/// The projection the executor checks for a task producing `node`'s blocks.
fn projection(node: &dyn PlanNode) -> usize {
    task_bytes(node).max(max_block_bytes(node.grid(), node.dtype()))
}

/// Whether a table row shows `node`'s task projection.
fn shows_task(row: &str, node: &dyn PlanNode) -> bool {
    row.contains(&format!("{}/task", fmt_bytes(projection(node))))
}

/// The exact byte count of the largest task, as the summary prints it.
fn largest(plan: &str) -> usize {
    let line = plan
        .lines()
        .find(|l| l.starts_with("memory "))
        .unwrap_or_else(|| panic!("no memory line in\n{plan}"));
    let open = line.rfind(" (").unwrap() + 2;
    line[open..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn explain_shows_a_fused_chain_with_the_librarys_projection() {
    let expr = "sqrt(x*x+1).sum(axis=0)";
    let plan = explain(expr, THREADS, MEM);
    // The same plan built with the library prints the same text.
    let x = points();
    let y = x.mul(&x).unwrap().add(1.0).unwrap().sqrt();
    let y = y.sum(ReduceOpts::axis(0)).unwrap();
    assert_eq!(plan, library_plan(&y));

    // The nodes, their grids and roles.
    let sum = row(&plan, 0, "sum(axis=[0])");
    assert!(sum.contains("output, 1 task"), "{plan}");
    assert!(sum.contains("tree reduction"), "{plan}");
    for (depth, op) in [(1, "sqrt"), (2, "add"), (3, "multiply")] {
        let r = row(&plan, depth, op);
        assert!(r.contains("fused"), "{op} runs fused\n{plan}");
        assert!(r.contains("[2000, 3]"), "{plan}");
    }
    let source = row(&plan, 4, &format!("from_file({})", data("points.npy")));
    assert!(
        source.contains("fused") && source.contains("1 (1 x 1)"),
        "{plan}"
    );
    let table = plan.lines().take_while(|l| !l.starts_with("tasks "));
    assert!(
        table.clone().all(|l| !l.contains("materialis")),
        "nothing is materialised\n{plan}"
    );
    assert!(table.count() == 7, "a header and 6 nodes\n{plan}");
    assert!(plan.contains("tasks     1: 1 for the output\n"), "{plan}");

    // The projected memory is the executor's: the figure the memory check compares.
    let projected = projection(y.node().as_ref());
    assert_eq!(largest(&plan), projected, "{plan}");
    assert!(shows_task(sum, y.node().as_ref()), "{plan}");
    assert!(plan.contains("fits      yes\n"), "{plan}");
    let one = ExecOptions::default().threads(1);
    assert!(check_memory(y.node().as_ref(), &one.clone().allowed_mem(projected)).is_ok());
    assert!(check_memory(y.node().as_ref(), &one.allowed_mem(projected - 1)).is_err());
    // ... and the command's verdict turns exactly there.
    for (mem, fits) in [(projected, true), (projected - 1, false)] {
        let plan = explain(expr, 1, mem);
        assert_eq!(
            plan.contains("fits      yes\n"),
            fits,
            "--mem {mem}B\n{plan}"
        );
        assert_eq!(
            plan.contains("fits      NO: "),
            !fits,
            "--mem {mem}B\n{plan}"
        );
    }
}

#[test]
fn explain_shows_a_materialised_reduction_under_a_broadcast() {
    let source = format!("from_file({})", data("points.npy"));
    let x = points();
    let plan = explain("x - x.mean(axis=0)", THREADS, MEM);
    let mean = x.mean(ReduceOpts::axis(0)).unwrap();
    let z = x.sub(&mean).unwrap();
    assert_eq!(plan, library_plan(&z));
    let out = row(&plan, 0, "subtract");
    assert!(out.contains("output, 1 task"), "{plan}");
    assert!(shows_task(out, z.node().as_ref()), "{plan}");
    assert_eq!(largest(&plan), projection(z.node().as_ref()), "{plan}");
    assert!(row(&plan, 1, &source).contains("fused"), "{plan}");
    let held = row(&plan, 1, "materialise");
    assert!(held.contains("materialised"), "{plan}");
    assert!(held.contains("24 B held"), "{plan}");
    let stage = row(&plan, 2, "mean(axis=[0])");
    assert!(stage.contains("stage, 1 task"), "{plan}");
    assert!(shows_task(stage, mean.node().as_ref()), "{plan}");
    assert!(row(&plan, 3, &source).contains("fused"), "{plan}");
    let tasks = "tasks     2: 1 for the output, 1 for 1 materialised stage\n";
    assert!(plan.contains(tasks), "{plan}");

    // In blocks of 500 rows: 4 output tasks, a mean over 4 blocks.
    let plan = explain(
        "x.rechunk((500, 3)) - x.rechunk((500, 3)).mean(axis=0)",
        THREADS,
        MEM,
    );
    let r = x.rechunk([500, 3]).unwrap();
    let z = r.sub(r.mean(ReduceOpts::axis(0)).unwrap()).unwrap();
    assert_eq!(plan, library_plan(&z));
    let out = row(&plan, 0, "subtract");
    assert!(
        out.contains("4 (4 x 1)") && out.contains("[500, 3]"),
        "{plan}"
    );
    assert!(out.contains("output, 4 tasks"), "{plan}");
    assert!(
        row(&plan, 1, "rechunk([500, 3])").contains("fused"),
        "{plan}"
    );
    let mean = row(&plan, 2, "mean(axis=[0])");
    assert!(mean.contains("4 input blocks per output block"), "{plan}");
    let tasks = "tasks     5: 4 for the output, 1 for 1 materialised stage\n";
    assert!(plan.contains(tasks), "{plan}");
    assert_eq!(largest(&plan), projection(z.node().as_ref()), "{plan}");
}

#[test]
fn explain_reports_a_plan_that_does_not_fit_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = format!("x={}", data("points.npy"));
    let eval = [
        "--mem",
        "1KiB",
        "eval",
        "x - x.mean(axis=0)",
        "--in",
        &input,
    ];
    let explain = [&eval[..], &["--explain", "-o", "out.npy"]].concat();
    let (success, plan, stderr) = run(d, &explain);
    assert!(success, "--explain reports, it does not fail: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let verdict = plan
        .lines()
        .find(|l| l.starts_with("fits "))
        .unwrap_or_else(|| panic!("no verdict in\n{plan}"));
    assert!(verdict.starts_with("fits      NO: "), "{plan}");
    assert!(
        verdict.contains("per task") && verdict.contains("1.0 KiB"),
        "{plan}"
    );
    assert!(plan.contains("memory    1.0 KiB allowed"), "{plan}");
    assert!(!d.join("out.npy").exists(), "--explain writes nothing");
    // The run itself refuses with the same message.
    let (success, _, stderr) = run(d, &eval);
    assert!(!success);
    assert_eq!(
        stderr.trim_end(),
        format!("error: {}", &verdict["fits      NO: ".len()..]),
    );
}

#[cfg(feature = "hdf5")]
#[test]
fn explain_counts_the_hdf5_writer_for_an_hdf5_output() {
    let dir = tempfile::tempdir().unwrap();
    let points = data("points.npy");
    let input = format!("x={points}");
    let args = [
        "--threads",
        "2",
        "eval",
        "x * 2.0",
        "--in",
        &input,
        "--explain",
        "-o",
        "y.h5:/y",
        "--codec",
        "gzip",
    ];
    let plan = ok(dir.path(), &args);
    let x = ChunkedArray::<f64>::from_npy(&points, Chunks::Auto).unwrap();
    let y = x.mul(2.0).unwrap();
    let opts = ExecOptions::default().threads(2);
    let gzip = tessera::store::hdf5::Hdf5WriteOptions {
        deflate: Some(4),
        shuffle: true,
        overwrite: false,
    };
    let (per_task, _) = tessera::store::hdf5::writer_bytes(
        &y.grid().max_chunk_shape(),
        tessera::DType::F64,
        &gzip,
        &opts,
    );
    assert!(per_task > 0);
    assert_eq!(
        largest(&plan),
        projection(y.node().as_ref()) + per_task,
        "{plan}"
    );
    assert!(
        plan.contains("HDF5 output's chunk writer is counted"),
        "{plan}"
    );
    assert!(!dir.path().join("y.h5").exists());
    // Unfiltered, the chunks are written in place: no writer is added to the tasks.
    let plan = ok(dir.path(), &args[..args.len() - 2]);
    assert_eq!(largest(&plan), projection(y.node().as_ref()), "{plan}");
    assert!(plan.contains("written in place"), "{plan}");
    assert!(!dir.path().join("y.h5").exists());
}

/// Shell words of an example line (single and double quotes, no escapes).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target: PathBuf = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn every_help_example_runs() {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    for cmd in ["info", "eval", "convert", "cdist", "knn"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        copy_dir(&data_dir, &d.join("data"));
        let help = ok(d, &[cmd, "--help"]);
        let examples: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.starts_with("Examples"))
            .filter_map(|l| l.strip_prefix("  tessera "))
            .collect();
        assert!(
            examples.len() >= 3,
            "{cmd} --help has too few examples:\n{help}"
        );
        assert!(
            examples.iter().any(|e| e.starts_with(cmd)),
            "{cmd} --help shows other commands only:\n{help}"
        );
        for e in examples {
            if !cfg!(feature = "hdf5") && e.contains(".h5") {
                continue;
            }
            let args = words(e);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (success, stdout, stderr) = run(d, &args);
            assert!(
                success,
                "example of {cmd} --help fails: tessera {e}\n{stderr}{stdout}"
            );
        }
    }
}
