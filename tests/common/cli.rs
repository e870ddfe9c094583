//! Running the `tessera` binary from the command-line tests, with the environment variables
//! that set its defaults removed.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// The binary under test.
pub(crate) const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

/// A file of the repository's sample data (`data/NAME`), as an absolute path.
pub(crate) fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The variables from which `tessera` takes its task in a split run (Slurm, Kubernetes, MPI
/// launchers): removed, so tests run inside such a job still start whole runs.
pub(crate) const LAUNCHER_VARIABLES: [&str; 11] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_RANK",
    "PMI_SIZE",
    "SLURM_PROCID",
    "SLURM_NTASKS",
];

/// `tessera ARGS` to run in `dir`, without the environment's memory, thread and progress
/// settings or a launcher's task numbers.
pub(crate) fn command<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Command {
    let mut c = Command::new(TESSERA);
    c.args(args)
        .current_dir(dir)
        .env_remove("TESSERA_ALLOWED_MEM")
        .env_remove("TESSERA_THREADS")
        .env_remove("TESSERA_PROGRESS");
    for v in LAUNCHER_VARIABLES {
        c.env_remove(v);
    }
    c
}

/// Runs `tessera` with `args` in `dir` and returns what it gave.
pub(crate) fn tessera<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    command(dir, args)
        .output()
        .expect("cannot run the tessera binary")
}

/// Runs `tessera ARGS` in `dir`: whether it succeeded, its stdout and its stderr.
pub(crate) fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    run_env(dir, args, &[])
}

/// [`run`] with environment variables set.
pub(crate) fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut c = command(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("cannot run the tessera binary");
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
