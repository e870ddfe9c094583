//! Running the `tessera` binary from a test.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
pub(crate) const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera` with `args` in `dir` (without the environment's memory and thread settings).
pub(crate) fn tessera<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new(TESSERA)
        .args(args)
        .current_dir(dir)
        .env_remove("TESSERA_ALLOWED_MEM")
        .env_remove("TESSERA_THREADS")
        .output()
        .expect("cannot run the tessera binary")
}
