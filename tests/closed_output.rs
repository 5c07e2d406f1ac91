//! Output into pipes. Output that closes before fitter is done (`fitter plan | head`, a deploy piped into a
//! pager the operator quits): every command used to panic on the closed pipe (exit 101), a
//! deploy after creating its droplets. Now the output stops and the work does not: no
//! panic, everything made is recorded, and the exit code is the work's own.
//!
//! The pipe's reading end is closed before fitter starts, so its first write already fails:
//! nothing depends on when fitter writes.

use std::process::{Command, Output, Stdio};

mod support;
use support::*;

/// A pipe nobody reads: writing to it fails with EPIPE.
fn closed() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

fn no_panic(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

#[test]
fn validate_and_plan_into_a_closed_pipe_end_with_their_own_exit_code() {
    let plan = root().join("fittings/mesos-local.yaml");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fitter"))
            .args(args)
            .arg(&plan)
            .stdin(Stdio::null())
            .stdout(closed())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let out = run(&["validate"]);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(0));
    // Changes to make: 2, as without the pipe.
    let out = run(&[
        "plan",
        "--detailed-exitcode",
        "--state",
        "/nonexistent/none.json",
    ]);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_deploy_whose_output_closes_finishes_and_records_everything() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws
        .command(&sim.url(), &["deploy", "--yes", "--skip-bootstrap"])
        .stdout(closed())
        .stderr(closed())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(101), "a panic");
    assert_eq!(out.status.code(), Some(0));
    assert_exactly_the_plan(&sim.snapshot());
    // Everything made is in the state: the next plan has nothing to do.
    let plan = ws.run(&sim.url(), &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
}

/// `-vv` into a pipe (or a file): the debug log, and no colour codes in it.
#[test]
fn the_debug_log_into_a_pipe_has_no_colour_codes() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws
        .command(&sim.url(), &["-vv", "deploy", "--yes", "--skip-bootstrap"])
        .env_remove("FITTER_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "a debug log: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}
