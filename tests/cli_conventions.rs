//! What an operator who knows Terraform types: `apply` and `destroy` are deploy and dispose,
//! and disposing of what was never deployed says so, not "matches the plan" (issue 13).

use std::process::Command;

mod support;
use support::*;

#[test]
fn apply_and_destroy_are_deploy_and_dispose() {
    for (alias, command) in [("apply", "deploy"), ("destroy", "dispose")] {
        let out = Command::new(env!("CARGO_BIN_EXE_fitter"))
            .args([alias, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let own = Command::new(env!("CARGO_BIN_EXE_fitter"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, own.stdout, "`{alias}` is `{command}`");
    }
}

#[test]
fn destroying_what_was_never_deployed_says_there_is_nothing() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws.run(&sim.url(), &["destroy", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Nothing to dispose of: no resource of `mesos-digitalocean`"),
        "{stdout}"
    );
    assert!(!stdout.contains("matches the plan"), "{stdout}");
    assert_eq!(
        writes(&sim.snapshot()),
        0,
        "nothing was written to the cloud"
    );
}
