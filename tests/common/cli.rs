//! Running the `tessera` binary from the command-line tests, with the environment variables
//! that set its defaults removed.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The binary under test.
pub(crate) const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera ARGS` in `dir`: whether it succeeded, its stdout and its stderr.
pub(crate) fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(TESSERA)
        .args(args)
        .current_dir(dir)
        .env_remove("TESSERA_ALLOWED_MEM")
        .env_remove("TESSERA_THREADS")
        .output()
        .expect("cannot run the tessera binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `tessera ARGS` in `dir`, which must succeed, and returns its stdout.
pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(dir, args);
    assert!(success, "tessera {args:?} failed:\n{stderr}{stdout}");
    stdout
}
