//! The Python oracle for the interop tests: finding the interpreter named by `$TESSERA_PYTHON`
//! and running scripts with it.
//!
//! When `TESSERA_PYTHON` is unset, or names an interpreter that cannot import NumPy, a test
//! prints a line saying it was skipped and returns, unless `TESSERA_REQUIRE_ORACLE=1` (as in CI,
//! see `scripts/test.sh`), in which case it fails with a message saying how to set one up.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Whether missing oracles must fail the tests instead of skipping them.
pub(crate) fn oracle_required() -> bool {
    std::env::var("TESSERA_REQUIRE_ORACLE").is_ok_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    })
}

/// The interpreter, or why there is none (checked once per test binary).
fn probe() -> &'static Result<PathBuf, String> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        let py = match std::env::var_os("TESSERA_PYTHON") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => return Err("TESSERA_PYTHON is not set".to_string()),
        };
        let out = Command::new(&py)
            .args(["-c", "import numpy; print(numpy.__version__)"])
            .output()
            .map_err(|e| format!("TESSERA_PYTHON={} does not run: {e}", py.display()))?;
        if !out.status.success() {
            return Err(format!(
                "TESSERA_PYTHON={} cannot import numpy: {}",
                py.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 2 {
            return Err(format!(
                "TESSERA_PYTHON={} has NumPy {version}; the oracle needs NumPy 2",
                py.display()
            ));
        }
        Ok(py)
    })
}

/// The oracle's interpreter for `test`, or `None` after printing that `test` is skipped.
///
/// # Panics
/// When there is no usable interpreter and `TESSERA_REQUIRE_ORACLE=1`.
pub(crate) fn python(test: &str) -> Option<PathBuf> {
    match probe() {
        Ok(p) => Some(p.clone()),
        Err(why) if oracle_required() => panic!(
            "{test}: the NumPy oracle is required (TESSERA_REQUIRE_ORACLE=1) but {why}; run \
             `bash scripts/python-env.sh` and set TESSERA_PYTHON=.venv/bin/python \
             (`bash scripts/test.sh` does both)"
        ),
        Err(why) => {
            eprintln!(
                "skipped {test}: {why} (set TESSERA_PYTHON=.venv/bin/python after \
                 `bash scripts/python-env.sh`)"
            );
            None
        }
    }
}

/// The folder of the project's oracle scripts (`tests/python`).
pub(crate) fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// Runs `script` (Python source) with `args` in `sys.argv[1:]`, and returns its stdout.
///
/// # Panics
/// When the script fails: the message holds its stderr.
#[track_caller]
pub(crate) fn run_script<S: AsRef<OsStr>>(py: &Path, script: &str, args: &[S]) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", oracle_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the Python oracle failed ({}):\n--- stderr\n{}\n--- stdout\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
