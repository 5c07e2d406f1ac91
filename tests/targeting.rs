//! `--target` and `--replace` (issue 13) against fitter-sim: what was and was not touched,
//! read from the simulator. `--limit` needs nodes that answer SSH: tests/lxd_cluster.rs.

mod support;
use support::*;

fn ids(ws: &Workspace) -> std::collections::BTreeMap<String, String> {
    ws.state_json()["resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(a, r)| (a.clone(), r["id"].as_str().unwrap_or_default().to_string()))
        .collect()
}

#[test]
fn a_target_makes_that_resource_and_what_it_needs_and_nothing_else() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = ws.run(&sim.url(), &["plan", "--target", "node.master1"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let planned = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        planned.contains("# node.master1 will be created"),
        "{planned}"
    );
    assert!(
        !planned.contains("node.master2") && !planned.contains("node.agent1"),
        "{planned}"
    );

    let out = ws.run(
        &sim.url(),
        &[
            "deploy",
            "--yes",
            "--skip-bootstrap",
            "--target",
            "node.master1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap = sim.snapshot();
    assert_eq!(names(&droplets_of(&snap)), ["master1"]);
    let recorded: Vec<String> = ids(&ws).into_keys().collect();
    assert!(
        recorded.contains(&"firewall.masters".to_string()),
        "{recorded:?}"
    );
    assert!(
        recorded.contains(&"network.mesos".to_string()),
        "{recorded:?}"
    );
    assert!(
        !recorded
            .iter()
            .any(|a| a.starts_with("node.agent") || a == "node.master2"),
        "{recorded:?}"
    );

    // An unknown address is an error naming the nearest one.
    let out = ws.run(&sim.url(), &["plan", "--target", "node.mastr2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `node.master2`?"),
        "{}",
        text(&out)
    );

    // Without a target, the rest follows; what the target made is left as it is.
    let before = ids(&ws);
    let out = ws.deploy(&sim.url());
    assert!(out.status.success(), "{}", text(&out));
    let after = ids(&ws);
    assert_eq!(after["node.master1"], before["node.master1"]);
    assert_exactly_the_plan(&sim.snapshot());
    dispose_leaves_nothing(&sim, &ws, &sim.url());
}

#[test]
fn replace_destroys_and_creates_that_resource_only() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws.deploy(&sim.url());
    assert!(out.status.success(), "{}", text(&out));
    let before = ids(&ws);
    let plan = ws.run(&sim.url(), &["plan", "--replace", "node.agent3"]);
    let planned = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        planned.contains("# node.agent3 must be replaced, as `--replace` asks"),
        "{planned}"
    );
    assert!(
        planned.contains("Plan: 1 to add, 0 to change, 1 to destroy."),
        "{planned}"
    );

    let out = ws.run(
        &sim.url(),
        &[
            "deploy",
            "--yes",
            "--skip-bootstrap",
            "--replace",
            "node.agent3",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    assert_eq!(last, "Deploy complete: 1 added, 0 changed, 1 destroyed.");
    let after = ids(&ws);
    for (address, id) in &before {
        if address == "node.agent3" {
            assert_ne!(&after[address], id, "agent3 is a new droplet");
        } else {
            assert_eq!(&after[address], id, "{address} was not touched");
        }
    }
    assert_exactly_the_plan(&sim.snapshot());
    let again = ws.run(&sim.url(), &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    dispose_leaves_nothing(&sim, &ws, &sim.url());
}
