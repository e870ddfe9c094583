//! Zarr stores in object storage (`s3://bucket/x.zarr`), against an S3-compatible server (moto,
//! from the oracle's Python environment) started on 127.0.0.1 by these tests: tessera reads what
//! zarr-python put there, and zarr-python reads what tessera wrote there (plain, split over
//! tasks, resumed), bit for bit equal to the same run on a local store
//! (`tests/python/s3_oracle.py`).
#![cfg(feature = "s3")]

#[path = "common/cli.rs"]
mod cli;
#[path = "common/python.rs"]
mod python;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORACLE: &str = "import sys, s3_oracle; sys.exit(s3_oracle.main(sys.argv[1:]))";

/// A moto server of the test's own, killed when the test ends.
struct Server {
    child: Child,
    endpoint: String,
    py: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server, or returns `None` when the oracle is missing (and not required).
fn server(test: &str) -> Option<Server> {
    let py = python::python(test)?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&py)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start moto's server (pip install 'moto[server]')");
    let server = Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        py,
    };
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "moto's server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

/// A bucket of its own for each test.
fn bucket(s: &Server, name: &str) -> String {
    oracle(s, &["bucket", name]);
    name.to_string()
}

fn oracle(s: &Server, args: &[&str]) -> String {
    let mut all = vec![args[0], s.endpoint.as_str()];
    all.extend_from_slice(&args[1..]);
    python::run_script(&s.py, ORACLE, &all)
}

/// The variables that point the S3 client at the test server.
fn env(s: &Server) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", s.endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

fn run(s: &Server, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let vars = env(s);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli::run_env(dir, args, &pairs)
}

#[track_caller]
fn ok(s: &Server, dir: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(s, dir, args);
    assert!(success, "tessera {args:?} failed:\n{stderr}{stdout}");
    stdout
}

fn points() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/points.npy")
        .to_string_lossy()
        .into_owned()
}

/// The values of an array file read by tessera (no S3 involved).
fn values(dir: &Path, file: &str) -> Vec<f64> {
    tessera::ChunkedArray::<f64>::from_npy(dir.join(file), tessera::Chunks::Auto)
        .and_then(|a| a.compute())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .iter()
        .copied()
        .collect()
}

#[test]
fn reads_what_zarr_python_put_in_a_bucket() {
    let Some(server) = server("reads_what_zarr_python_put_in_a_bucket") else {
        return;
    };
    let s = &server;
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(s, "zarr-python-wrote");
    let want = values(Path::new(""), &points());
    for format in ["2", "3"] {
        let url = format!("s3://{b}/inputs/points-v{format}.zarr");
        oracle(s, &["put", &url, &points(), format, "300"]);
        let out = format!("copy-v{format}.npy");
        ok(s, dir.path(), &["convert", &url, &out]);
        assert_eq!(
            values(dir.path(), &out),
            want,
            "Zarr v{format} read from {url}"
        );
        let info = ok(s, dir.path(), &["info", &url]);
        assert!(info.contains("[2000, 3]"), "{info}");
    }
}

#[test]
fn zarr_python_reads_what_tessera_wrote_in_a_bucket() {
    let Some(server) = server("zarr_python_reads_what_tessera_wrote_in_a_bucket") else {
        return;
    };
    let s = &server;
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(s, "tessera-wrote");
    let p = points();
    let local = dir.path().join("local.zarr");
    let local = local.to_string_lossy();
    ok(
        s,
        dir.path(),
        &[
            "cdist",
            &p,
            "--metric",
            "cityblock",
            "--chunk",
            "300",
            "-o",
            &local,
        ],
    );
    // A plain run: written in place, completion attribute last.
    let plain = format!("s3://{b}/plain.zarr");
    ok(
        s,
        dir.path(),
        &[
            "cdist",
            &p,
            "--metric",
            "cityblock",
            "--chunk",
            "300",
            "-o",
            &plain,
        ],
    );
    assert_eq!(oracle(s, &["same", &plain, &local]).trim(), "same");
    assert!(ok(s, dir.path(), &["info", &plain]).contains("complete"));
    // An existing array is refused, then replaced with --overwrite.
    let (success, _, stderr) = run(
        s,
        dir.path(),
        &[
            "cdist",
            &p,
            "--metric",
            "cityblock",
            "--chunk",
            "300",
            "-o",
            &plain,
        ],
    );
    assert!(!success && stderr.contains("already exists"), "{stderr}");
    ok(
        s,
        dir.path(),
        &[
            "cdist",
            &p,
            "--metric",
            "cityblock",
            "--chunk",
            "300",
            "--codec",
            "gzip",
            "--overwrite",
            "-o",
            &plain,
        ],
    );
    assert_eq!(oracle(s, &["same", &plain, &local]).trim(), "same");
    // Three tasks into one store, then verify.
    let split = format!("s3://{b}/split.zarr");
    for i in ["0", "1", "2"] {
        let out = ok(
            s,
            dir.path(),
            &[
                "cdist",
                &p,
                "--metric",
                "cityblock",
                "--chunk",
                "300",
                "-o",
                &split,
                "--task-index",
                i,
                "--task-count",
                "3",
            ],
        );
        assert!(out.contains(&format!("task {i} of 3")), "{out}");
    }
    let verified = ok(s, dir.path(), &["verify", &split]);
    assert!(
        verified.contains("49 of 49 chunks present and valid; marked complete"),
        "{verified}"
    );
    assert_eq!(oracle(s, &["same", &split, &local]).trim(), "same");
}

#[test]
fn a_lost_chunk_object_is_found_and_resumed() {
    let Some(server) = server("a_lost_chunk_object_is_found_and_resumed") else {
        return;
    };
    let s = &server;
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(s, "resumed");
    let p = points();
    let local = dir.path().join("nn.zarr");
    let local = local.to_string_lossy();
    let remote = format!("s3://{b}/nn.zarr");
    let knn = |out: &str, extra: &[&str]| {
        let mut args = vec!["knn", &p, "-k", "5", "--chunk", "300", "-o", out];
        args.extend_from_slice(extra);
        ok(s, dir.path(), &args)
    };
    knn(&local, &[]);
    knn(&remote, &["--task-index", "0", "--task-count", "2"]);
    knn(&remote, &["--task-index", "1", "--task-count", "2"]);
    ok(s, dir.path(), &["verify", &remote]);
    assert_eq!(oracle(s, &["same", &remote, &local]).trim(), "same");
    // A chunk object goes missing: verify names it and fails; --resume writes it again.
    oracle(s, &["delete", &format!("{remote}/distances/c/2/0")]);
    let (success, stdout, stderr) = run(s, dir.path(), &["verify", &remote]);
    assert!(!success, "verify passed with a chunk missing:\n{stdout}");
    assert!(stdout.contains("missing c/2/0"), "{stdout}");
    assert!(stderr.contains("incomplete"), "{stderr}");
    let resumed = knn(&remote, &["--resume"]);
    assert!(resumed.contains("wrote 1 of 7 blocks"), "{resumed}");
    ok(s, dir.path(), &["verify", &remote]);
    assert_eq!(oracle(s, &["same", &remote, &local]).trim(), "same");
}

#[test]
fn bad_object_store_paths_say_what_is_wrong() {
    let Some(server) = server("bad_object_store_paths_say_what_is_wrong") else {
        return;
    };
    let s = &server;
    let dir = tempfile::tempdir().unwrap();
    let b = bucket(s, "bad-paths");
    let (success, _, stderr) = run(s, dir.path(), &["info", &format!("s3://{b}/none.zarr")]);
    assert!(
        !success && stderr.contains("s3://bad-paths/none.zarr"),
        "{stderr}"
    );
    let (success, _, stderr) = run(s, dir.path(), &["info", "s3:///x.zarr"]);
    assert!(!success && stderr.contains("name the bucket"), "{stderr}");
    let (success, _, stderr) = run(s, dir.path(), &["info", "gs://bucket/x.zarr"]);
    assert!(!success && stderr.contains("s3://"), "{stderr}");
}
