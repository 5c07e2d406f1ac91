//! Every plan under `fittings/` must validate and plan; the plan output of each is a
//! snapshot, so a change to what `fitter plan` says about the examples is always reviewed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fittings");
    let mut plans: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fittings/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    plans.sort();
    plans
}

fn fitter(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fitter"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("fitter runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_validates_and_plans() {
    let plans = examples();
    assert!(
        plans.len() >= 2,
        "expected the example plans, found {plans:?}"
    );
    for plan in plans {
        let rel = format!("fittings/{}", plan.file_name().unwrap().to_string_lossy());
        let name = plan.file_stem().unwrap().to_string_lossy().into_owned();
        // A state file a developer left beside the example must not change the snapshot.
        let empty_state = std::env::temp_dir().join(format!("fitter-examples-{name}-absent.json"));
        let _ = std::fs::remove_file(&empty_state);
        let state = empty_state.to_string_lossy().into_owned();

        let (code, stdout, stderr) = fitter(&["validate", &rel]);
        assert_eq!(code, 0, "{rel} does not validate:\n{stderr}");
        assert!(stdout.contains("is valid"), "{stdout}");
        assert!(stderr.is_empty(), "{rel} has warnings:\n{stderr}");

        let (code, stdout, stderr) = fitter(&["plan", &rel, "--state", &state]);
        assert_eq!(code, 0, "{rel} does not plan:\n{stderr}");
        insta::assert_snapshot!(format!("plan-{name}"), stdout);

        let (code, json, _) = fitter(&["plan", "--json", &rel, "--state", &state]);
        assert_eq!(code, 0);
        let plan: serde_json::Value = serde_json::from_str(&json).expect("plan --json is JSON");
        let changes = plan["changes"].as_array().expect("changes is a list");
        assert_eq!(plan["summary"]["add"].as_u64(), Some(changes.len() as u64));
        assert!(changes.iter().all(|c| c["action"] == "create"));

        let (code, _, _) = fitter(&["plan", "--detailed-exitcode", &rel, "--state", &state]);
        assert_eq!(code, 2, "an empty state means changes");

        let (code, dot, _) = fitter(&["graph", &rel]);
        assert_eq!(code, 0);
        check_graph(&rel, &dot, changes);
    }
}

/// The DOT graph is the plan's: a node per resource the plan creates, edges only between
/// declared nodes, no circle, and each machine after its network and before its bootstrap.
fn check_graph(rel: &str, dot: &str, changes: &[serde_json::Value]) {
    use std::collections::{BTreeMap, BTreeSet};
    assert!(
        dot.starts_with("digraph ") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
    let quoted = |s: &str| s.split('"').nth(1).map(str::to_string);
    let mut declared = BTreeSet::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for line in dot.lines().map(str::trim) {
        if let Some((from, to)) = line.split_once(" -> ") {
            edges.push((quoted(from).unwrap(), quoted(to).unwrap()));
        } else if line.starts_with('"') {
            declared.insert(quoted(line).unwrap());
        }
    }
    for c in changes {
        let address = c["address"].as_str().unwrap();
        assert!(
            declared.contains(address),
            "{rel}: {address} is not in the graph"
        );
    }
    for (from, to) in &edges {
        assert!(
            declared.contains(from) && declared.contains(to),
            "{rel}: {from} -> {to}"
        );
    }
    for node in declared.iter().filter_map(|n| n.strip_prefix("node.")) {
        let into = |to: &str| {
            edges
                .iter()
                .any(|(f, t)| f.starts_with("network.") && t == to)
        };
        assert!(
            into(&format!("node.{node}")),
            "{rel}: node.{node} comes after its network"
        );
        let this = format!("node.{node}");
        let own_bootstrap = format!("bootstrap.{node}.");
        let before = edges.iter().any(|(f, t)| {
            f == &this && (t.starts_with("barrier.") || t.starts_with(&own_bootstrap))
        });
        assert!(before, "{rel}: node.{node} comes before bootstrap");
    }
    // No circle: Kahn's algorithm removes every node.
    let mut incoming: BTreeMap<&str, usize> = declared.iter().map(|n| (n.as_str(), 0)).collect();
    for (_, to) in &edges {
        *incoming.get_mut(to.as_str()).unwrap() += 1;
    }
    let mut ready: Vec<&str> = incoming
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut removed = 0;
    while let Some(n) = ready.pop() {
        removed += 1;
        for (_, to) in edges.iter().filter(|(f, _)| f == n) {
            let count = incoming.get_mut(to.as_str()).unwrap();
            *count -= 1;
            if *count == 0 {
                ready.push(to);
            }
        }
    }
    assert_eq!(removed, declared.len(), "{rel}: the graph has a circle");
}

#[test]
fn the_digitalocean_example_has_the_promised_shape() {
    let (code, json, stderr) = fitter(&[
        "plan",
        "--json",
        "fittings/mesos-digitalocean.yaml",
        "--state",
        "/nonexistent/fitter-state.json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let changes = plan["changes"].as_array().unwrap();
    let of_kind = |k: &str| {
        changes
            .iter()
            .filter(|c| c["kind"] == k)
            .collect::<Vec<_>>()
    };
    let nodes = of_kind("node");
    assert_eq!(nodes.len(), 12);
    let masters: Vec<_> = nodes
        .iter()
        .filter(|n| {
            n["after"]["roles"] == serde_json::json!(["zookeeper", "mesos-master", "marathon"])
        })
        .collect();
    assert_eq!(masters.len(), 3);
    let agents = nodes
        .iter()
        .filter(|n| n["after"]["roles"] == serde_json::json!(["mesos-agent", "docker"]))
        .count();
    assert_eq!(agents, 9);
    assert_eq!(of_kind("network").len(), 1);
    let firewalls = of_kind("firewall");
    let inbound = |name: &str| {
        firewalls
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["after"]["inbound"].clone())
            .unwrap()
    };
    let masters_in = inbound("masters");
    for rule in [
        "tcp 22 from anywhere",
        "tcp 5050 from anywhere",
        "tcp 8080 from anywhere",
        "tcp all from nodes",
        "udp all from nodes",
        "icmp from nodes",
    ] {
        assert!(
            masters_in.as_array().unwrap().contains(&rule.into()),
            "{rule} missing in {masters_in}"
        );
    }
    let agents_in = inbound("agents");
    assert!(
        agents_in
            .as_array()
            .unwrap()
            .contains(&"tcp 22 from anywhere".into())
    );
    assert!(
        !agents_in
            .as_array()
            .unwrap()
            .contains(&"tcp 5050 from anywhere".into())
    );
    assert_eq!(of_kind("tag").len(), 1);
}

/// `--provider` overrides the plan's: the DigitalOcean example planned for LXD has every
/// resource on LXD; the LXD example planned for DigitalOcean stops at its location, which
/// DigitalOcean does not have.
#[test]
fn provider_on_the_command_line_overrides_the_plan() {
    let state = std::env::temp_dir().join("fitter-examples-override-absent.json");
    let _ = std::fs::remove_file(&state);
    let state = state.to_string_lossy().into_owned();
    let providers = |args: &[&str]| -> std::collections::BTreeSet<String> {
        let (code, json, stderr) = fitter(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["provider"].as_str().unwrap().to_string())
            .collect()
    };
    let plan = "fittings/mesos-digitalocean.yaml";
    assert_eq!(
        providers(&["plan", "--json", plan, "--state", &state]),
        ["digitalocean".to_string()].into()
    );
    assert_eq!(
        providers(&[
            "plan",
            "--json",
            "--provider",
            "lxd",
            plan,
            "--state",
            &state
        ]),
        ["lxd".to_string()].into()
    );
    // A plan moved to a cloud with regions whose own location is no region there (`local`,
    // another cloud's `nyc3`) goes to that cloud's default region, said as a warning.
    let (code, _, stderr) = fitter(&[
        "validate",
        "--provider",
        "digitalocean",
        "fittings/mesos-local.yaml",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("fittings/mesos-local.yaml:49:13: warning: `local` is not a region of digitalocean; --provider puts it in `nyc3`"),
        "{stderr}"
    );
    // Every example plan plans on Hetzner too (issue 14), DigitalOcean's sizes and images
    // translated by the provider.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fittings")).unwrap() {
        let path = entry.unwrap().path();
        let plan = format!("fittings/{}", path.file_name().unwrap().to_str().unwrap());
        let (code, _, stderr) = fitter(&["validate", "--provider", "hetzner", &plan]);
        assert_eq!(code, 0, "{plan}: {stderr}");
        assert_eq!(
            providers(&[
                "plan",
                "--json",
                "--provider",
                "hetzner",
                &plan,
                "--state",
                &state
            ]),
            ["hetzner".to_string()].into(),
            "{plan}"
        );
    }
}
