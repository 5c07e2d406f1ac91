//! Saved plans (issue 13): `fitter plan -o FILE`, then `fitter deploy FILE` applies exactly
//! that plan, or refuses when the state moved, the fittings changed, or it was applied
//! already. Against fitter-sim, each test with a simulator of its own.

use std::path::{Path, PathBuf};
use std::process::Output;

use fitter_sim::Simulator;

mod support;
use support::*;

/// The DigitalOcean example, copied into the workspace so that a test may edit it.
fn own_plan(ws: &Workspace) -> PathBuf {
    let plan = ws.dir.path().join("mesos-digitalocean.yaml");
    std::fs::copy(root().join(PLAN), &plan).unwrap();
    plan
}

fn fitter(sim: &Simulator, ws: &Workspace, plan: &Path, args: &[&str]) -> Output {
    ws.command_for(&sim.url(), plan, args).output().unwrap()
}

fn save(sim: &Simulator, ws: &Workspace, plan: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let saved = ws.dir.path().join(name);
    let args = [&["plan", "-o", saved.to_str().unwrap()][..], extra].concat();
    let out = fitter(sim, ws, plan, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Saved the plan to"),
        "{}",
        text(&out)
    );
    saved
}

fn refused(out: &Output, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(says),
        "expected `{says}`: {}",
        text(out)
    );
}

#[test]
fn a_saved_plan_is_applied_exactly_and_only_once_and_holds_no_secret() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = own_plan(&ws);
    let saved = save(&sim, &ws, &plan, "first.plan", &[]);
    assert_eq!(writes(&sim.snapshot()), 0, "planning writes nothing");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let planned: Vec<String> = file["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned.len(), 17, "{file}");

    // Applied as saved, unasked (standard input is no terminal, and no --yes).
    let out = fitter(&sim, &ws, &saved, &["deploy", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let state = ws.state_json();
    let mut recorded: Vec<String> = state["resources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut expected = planned.clone();
    recorded.sort();
    expected.sort();
    assert_eq!(recorded, expected, "exactly the saved plan was applied");
    assert_eq!(
        state["lineage"], file["lineage"],
        "the new state took the plan's lineage"
    );
    assert_exactly_the_plan(&sim.snapshot());
    let again = fitter(&sim, &ws, &plan, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    // Applying it a second time is refused, and writes nothing.
    let writes_before = writes(&sim.snapshot());
    let out = fitter(&sim, &ws, &saved, &["deploy", "--skip-bootstrap"]);
    refused(&out, "was saved against no state");
    assert_eq!(writes(&sim.snapshot()), writes_before);

    // No secret in the file: not the token, not a private key, not a generated secret.
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(!text.contains(TOKEN) && !text.contains("PRIVATE KEY"));
    for secret in state["secrets"].as_object().into_iter().flatten() {
        let value = secret.1.as_str().unwrap_or_default();
        assert!(
            value.len() < 8 || !text.contains(value),
            "secret {} in the file",
            secret.0
        );
    }
    dispose_leaves_nothing(&sim, &ws, &sim.url());
}

#[test]
fn a_saved_plan_is_refused_after_a_concurrent_change_or_an_edit_of_the_fittings() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = own_plan(&ws);
    let out = fitter(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Saved with a parameter: the file keeps its digest, so it must be given again, the same.
    let bigger = ["-p", "agentSize=s-2vcpu-4gb"];
    let saved = save(&sim, &ws, &plan, "bigger.plan", &bigger);
    let before = writes(&sim.snapshot());
    let out = fitter(&sim, &ws, &saved, &["deploy", "--skip-bootstrap"]);
    refused(&out, "give it again");
    let out = fitter(
        &sim,
        &ws,
        &saved,
        &["deploy", "--skip-bootstrap", "-p", "agentSize=s-4vcpu-8gb"],
    );
    refused(&out, "differs from the value");
    assert_eq!(writes(&sim.snapshot()), before, "nothing was written");

    // Someone else deploys in between: the state moves, the saved plan is refused.
    let out = fitter(
        &sim,
        &ws,
        &plan,
        &[
            "deploy",
            "--yes",
            "--skip-bootstrap",
            "-p",
            "agentSize=s-4vcpu-8gb",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let state_before = std::fs::read(ws.state()).unwrap();
    let before = writes(&sim.snapshot());
    let args = [&["deploy", "--skip-bootstrap"][..], &bigger].concat();
    let out = fitter(&sim, &ws, &saved, &args);
    refused(&out, "the state moved since");
    assert_eq!(writes(&sim.snapshot()), before, "nothing was written");
    assert_eq!(
        std::fs::read(ws.state()).unwrap(),
        state_before,
        "nor the state"
    );

    // Saved, then the fittings edited: refused.
    let saved = save(&sim, &ws, &plan, "edited.plan", &bigger);
    let mut text_now = std::fs::read_to_string(&plan).unwrap();
    text_now.push_str("# edited after the plan was saved\n");
    std::fs::write(&plan, text_now).unwrap();
    let out = fitter(&sim, &ws, &saved, &args);
    refused(&out, "changed since");
    assert_eq!(std::fs::read(ws.state()).unwrap(), state_before);

    // A fresh one is applied, exactly: the agents resized, nothing else.
    let saved = save(&sim, &ws, &plan, "fresh.plan", &bigger);
    let out = fitter(&sim, &ws, &saved, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sizes: Vec<String> = droplets_of(&sim.snapshot())
        .iter()
        .filter(|d| d["name"].as_str().unwrap().starts_with("agent"))
        .map(|d| d["size_slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sizes.len(), 9);
    assert!(sizes.iter().all(|s| s == "s-2vcpu-4gb"), "{sizes:?}");
    dispose_leaves_nothing(&sim, &ws, &sim.url());
}

/// Something deleted at the provider after the plan was saved: deploy would now make it
/// again, which the saved plan does not say, so it is refused, and before the refresh
/// forgets anything: the state is left exactly as it was.
#[test]
fn a_saved_plan_is_refused_without_a_write_when_the_cloud_changed_since() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = own_plan(&ws);
    let out = fitter(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bigger = ["-p", "agentSize=s-2vcpu-4gb"];
    let saved = save(&sim, &ws, &plan, "bigger.plan", &bigger);

    let id = ws.state_json()["resources"]["node.agent9"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    delete_droplet(&sim, &id);

    let state_before = std::fs::read(ws.state()).unwrap();
    let before = writes(&sim.snapshot());
    let args = [&["deploy", "--skip-bootstrap"][..], &bigger].concat();
    let out = fitter(&sim, &ws, &saved, &args);
    refused(&out, "the infrastructure changed since");
    assert_eq!(
        std::fs::read(ws.state()).unwrap(),
        state_before,
        "the state is untouched"
    );
    assert_eq!(
        writes(&sim.snapshot()),
        before,
        "nothing was written to the cloud"
    );
    dispose_leaves_nothing(&sim, &ws, &sim.url());
}
