//! Whole-program scenarios: each folder under `tests/cases/` holds a `fittings.yaml`, an
//! optional `args` file (the command line before the plan's path; `validate` when absent),
//! optional inputs such as a `state.json`, and `output.snap`, the insta snapshot of the exit
//! code, standard output and standard error of the real `fitter` binary run in that folder.
//!
//! Add a case by adding a folder; `cargo insta review` (or `INSTA_UPDATE=always`) records it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/cases exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.join("fittings.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Runs the binary the way an operator would, from the case's folder.
pub fn run_case(dir: &Path) -> String {
    let args = std::fs::read_to_string(dir.join("args")).unwrap_or_else(|_| "validate".into());
    let mut words: Vec<&str> = args.split_whitespace().collect();
    words.push("fittings.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_fitter"))
        .args(&words)
        .current_dir(dir)
        .env_remove("FITTER_LOG")
        .env_remove("DIGITALOCEAN_TOKEN")
        .output()
        .expect("fitter runs");
    let code = output
        .status
        .code()
        .map_or_else(|| "killed by a signal".to_string(), |c| c.to_string());
    format!(
        "$ fitter {}\nexit code: {code}\n--- stdout\n{}--- stderr\n{}",
        words.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_case_matches_its_snapshot() {
    let cases = cases();
    assert!(
        cases.len() >= 10,
        "expected the scenario folders, found {}",
        cases.len()
    );
    let mut failed = Vec::new();
    for dir in &cases {
        let output = run_case(dir);
        // A panic is never an acceptable answer to a plan, whatever the plan.
        assert!(
            !output.contains("panicked at"),
            "fitter panicked on {}:\n{output}",
            dir.display()
        );
        let result = std::panic::catch_unwind(|| {
            insta::with_settings!({
                snapshot_path => dir,
                prepend_module_to_snapshot => false,
                omit_expression => true,
            }, {
                insta::assert_snapshot!("output", output);
            });
        });
        if result.is_err() {
            failed.push(dir.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(
        failed.is_empty(),
        "snapshots differ for: {}",
        failed.join(", ")
    );
}
