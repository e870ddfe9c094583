//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/`) through the properties the fuzz
//! targets check (`common/fuzz_properties.rs`), on stable Rust: an input that once crashed
//! or broke a property and was fixed stays fixed. `docs/fuzzing.md` tells how to fuzz.

#[path = "common/fuzz_properties.rs"]
mod fuzz_properties;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The files of `fuzz/corpus/<target>`, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file of the corpus of `target` and fails with every file whose
/// check failed or panicked.
fn replay(target: &str, check: fn(&[u8]) -> Result<(), String>) {
    let files = corpus(target);
    assert!(
        files.len() >= 10,
        "fuzz/corpus/{target} has only {} files",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match catch_unwind(AssertUnwindSafe(|| check(&data))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failures.push(format!("{name}: {why}")),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failures.push(format!("{name}: panicked: {msg}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of fuzz/corpus/{target} fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn eval_parse_corpus_holds() {
    replay("eval_parse", fuzz_properties::check_eval_parse);
}

#[test]
fn npy_header_corpus_holds() {
    replay("npy_header", fuzz_properties::check_npy_header);
}
