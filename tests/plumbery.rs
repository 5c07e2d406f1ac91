//! plumbery's plans against `fitter-sim` (issue 11): a plan written for Dimension Data deploys
//! with its names translated (docs/plumbery.md), `destroy: never` is honoured by dispose and
//! deploy, and `running: always` by deploy.
//! Each test has a simulator of its own (no Prism: the answers are the simulator's own, which
//! tests/digitalocean.rs holds to the spec), so they run in parallel.

use std::path::{Path, PathBuf};

use fitter_sim::{Simulator, Snapshot};
use serde_json::Value as Json;

mod support;
use support::*;

/// Runs fitter on `plan` and asserts it succeeded.
fn ok(sim: &Simulator, ws: &Workspace, plan: &Path, args: &[&str]) -> String {
    let out = ws.command_for(&sim.url(), plan, args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    text(&out)
}

/// `ok` with `--provider digitalocean`: plumbery's plans name no provider.
fn on_do(sim: &Simulator, ws: &Workspace, plan: &Path, args: &[&str]) -> String {
    ok(
        sim,
        ws,
        plan,
        &[args, &["--provider", "digitalocean"]].concat(),
    )
}

/// The droplets whose name starts with `prefix`, by name.
fn droplets<'s>(snap: &'s Snapshot, prefix: &str) -> Vec<&'s Json> {
    let mut d: Vec<&Json> = snap
        .droplets
        .iter()
        .filter(|d| d["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect();
    d.sort_by_key(|d| d["name"].as_str().unwrap_or("").to_string());
    d
}

#[test]
fn a_plumbery_plan_deploys_with_its_dimension_data_names_translated() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = root().join("tests/cases/plumbery-mesosphere/fittings.yaml");
    let args = [
        "deploy",
        "--yes",
        "--skip-bootstrap",
        "--provider",
        "digitalocean",
        "-p",
        "slaves=2",
    ];
    let out = ok(&sim, &ws, &plan, &args);
    assert!(
        out.contains("`EU6` is a Dimension Data data centre (Frankfurt)"),
        "{out}"
    );
    let snap = sim.snapshot();
    let masters = droplets(&snap, "master");
    let slaves = droplets(&snap, "slave");
    assert_eq!((masters.len(), slaves.len()), (3, 2), "{:?}", snap.droplets);
    for d in masters.iter().chain(&slaves) {
        assert_eq!(d["region"]["slug"], "fra1", "{}", d["name"]);
        assert_eq!(d["image"]["slug"], "ubuntu-22-04-x64", "{}", d["name"]);
    }
    // cpu: 2, memory: 8 -> the smallest basic size with both; 32 and 256 -> past the basic
    // sizes, the memory-optimised one.
    assert!(masters.iter().all(|d| d["size_slug"] == "s-4vcpu-8gb"));
    assert!(slaves.iter().all(|d| d["size_slug"] == "m-32vcpu-256gb"));
    // `glue: internet 22 5050 8080` on the masters.
    let fw = snap
        .firewalls
        .iter()
        .find(|f| f["inbound_rules"].to_string().contains("5050"))
        .expect("the masters' firewall");
    for port in ["22", "5050", "8080"] {
        assert!(
            fw["inbound_rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["ports"] == port
                    && r["sources"]["addresses"].to_string().contains("0.0.0.0/0")),
            "port {port} open to the internet: {fw}"
        );
    }
    // A second run changes nothing.
    let out = ok(&sim, &ws, &plan, &args);
    assert!(out.contains("No changes"), "{out}");
    ok(
        &sim,
        &ws,
        &plan,
        &["dispose", "--yes", "--provider", "digitalocean"],
    );
    let snap = sim.snapshot();
    assert!(
        snap.droplets.is_empty() && snap.firewalls.is_empty(),
        "{snap:?}"
    );
}

/// The DigitalOcean example with `destroy: never` on the masters, in the workspace.
fn protected_plan(ws: &Workspace) -> PathBuf {
    let text = std::fs::read_to_string(root().join(PLAN)).unwrap();
    let marked = "            description: \"#mesos #master\"\n";
    assert!(text.contains(marked));
    let text = text.replace(marked, &format!("{marked}            destroy: never\n"));
    let plan = ws.dir.path().join("mesos-digitalocean.yaml");
    std::fs::write(&plan, text).unwrap();
    plan
}

#[test]
fn destroy_never_keeps_the_node_and_what_it_needs_until_the_plan_lets_go() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = protected_plan(&ws);
    ok(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);
    let out = ok(&sim, &ws, &plan, &["dispose", "--yes"]);
    assert!(
        out.contains("`node.master1` is kept: `destroy: never`"),
        "{out}"
    );
    let snap = sim.snapshot();
    let names: Vec<&str> = droplets(&snap, "")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["master1", "master2", "master3"]);
    // What the masters need stays: their VPC (and the firewalls the VPC's creation waited
    // for), their firewall, the tag, the key.
    let vpcs = snap
        .vpcs
        .iter()
        .filter(|v| v["name"].as_str().is_some_and(|n| n.starts_with(TAG)));
    assert_eq!(vpcs.count(), 1);
    let masters_firewall = format!("{TAG}-masters");
    assert!(
        snap.firewalls
            .iter()
            .any(|f| f["name"] == masters_firewall.as_str()),
        "{:?}",
        snap.firewalls
    );
    assert!(snap.tags.iter().any(|t| t["name"] == TAG));
    let state = ws.state_json();
    assert!(state["resources"].get("node.master1").is_some());
    assert!(state["resources"].get("node.agent1").is_none());
    // Without the key, dispose takes the rest.
    dispose_leaves_nothing(&sim, &ws, &sim.url());
}

/// `destroy: never` also stops a deploy whose plan would replace the protected node, and
/// `--force-protected` overrides it for dispose and deploy alike; `dispose --dry-run` shows
/// ids and addresses and writes nothing (issue 13).
#[test]
fn force_protected_overrides_destroy_never_and_a_dry_run_writes_nothing() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = protected_plan(&ws);
    ok(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);
    let state_before = ws.state_json();
    let writes_before = writes(&sim.snapshot());

    // The dry run: every resource with its id, a node with its addresses; nothing written.
    let out = ok(
        &sim,
        &ws,
        &plan,
        &["dispose", "--dry-run", "--force-protected"],
    );
    let master1 = &state_before["resources"]["node.master1"];
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("- node.master1 "))
        .unwrap_or_else(|| panic!("no line for node.master1: {out}"));
    assert!(line.contains(master1["id"].as_str().unwrap()), "{line}");
    assert!(
        line.contains(master1["outputs"]["public_ip"].as_str().unwrap()),
        "{line}"
    );
    assert!(out.contains("destroys 17 resources"), "{out}");
    assert_eq!(
        writes(&sim.snapshot()),
        writes_before,
        "a dry run writes nothing"
    );
    assert_eq!(ws.state_json(), state_before, "nor does it touch the state");
    let without_force = ok(&sim, &ws, &plan, &["dispose", "--dry-run"]);
    assert!(
        without_force.contains("destroys 9 resources"),
        "{without_force}"
    );
    assert!(
        !without_force.contains("- node.master1 "),
        "{without_force}"
    );

    // A plan that replaces the masters (a new image) is refused, and changes nothing.
    let written = std::fs::read_to_string(&plan).unwrap();
    // Same file name, so the same deployment.
    let replaced = ws.dir.path().join("replaced/mesos-digitalocean.yaml");
    std::fs::create_dir_all(replaced.parent().unwrap()).unwrap();
    std::fs::write(
        &replaced,
        written.replace("image: debian-12-x64", "image: ubuntu-24-04-x64"),
    )
    .unwrap();
    let refused = ws
        .command_for(
            &sim.url(),
            &replaced,
            &["deploy", "--yes", "--skip-bootstrap"],
        )
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("`destroy: never` protects what this plan would destroy")
            && said.contains("`node.master1` would be replaced")
            && said.contains("--force-protected"),
        "{said}"
    );
    assert_eq!(
        writes(&sim.snapshot()),
        writes_before,
        "nothing was replaced"
    );

    // Forced: replaced, then disposed of entirely.
    ok(
        &sim,
        &ws,
        &replaced,
        &["deploy", "--yes", "--skip-bootstrap", "--force-protected"],
    );
    let replaced_id = ws.state_json()["resources"]["node.master1"]["id"].clone();
    assert_ne!(replaced_id, master1["id"], "master1 was replaced");
    let out = ok(
        &sim,
        &ws,
        &replaced,
        &["dispose", "--yes", "--force-protected"],
    );
    assert!(out.contains("nothing left"), "{out}");
    assert_nothing_left(&sim.snapshot());
}

/// `running: always` (plumbery's) is no longer a mere warning: a deploy whose plan would
/// stop such a node, here a resize that powers the masters' droplets off, is refused and
/// says why, until `--force-protected` (issue 13).
#[test]
fn running_always_refuses_a_resize_that_powers_the_node_off() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let written = std::fs::read_to_string(root().join(PLAN)).unwrap();
    let marked = "            description: \"#mesos #master\"\n";
    assert!(written.contains(marked) && written.contains("size: s-2vcpu-4gb"));
    let always = written.replace(marked, &format!("{marked}            running: always\n"));
    let plan = ws.dir.path().join("mesos-digitalocean.yaml");
    std::fs::write(&plan, &always).unwrap();
    ok(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);

    let resized = ws.dir.path().join("resized/mesos-digitalocean.yaml");
    std::fs::create_dir_all(resized.parent().unwrap()).unwrap();
    std::fs::write(
        &resized,
        always.replace("size: s-2vcpu-4gb", "size: s-4vcpu-8gb"),
    )
    .unwrap();
    let before = writes(&sim.snapshot());
    let out = ws
        .command_for(
            &sim.url(),
            &resized,
            &["deploy", "--yes", "--skip-bootstrap"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(
            "# node.master1 will be updated in place; the droplet is powered off to resize"
        ) && said.contains("`node.master1` says `running: always`, but the droplet is powered off"),
        "{said}"
    );
    assert_eq!(writes(&sim.snapshot()), before, "nothing was resized");

    ok(
        &sim,
        &ws,
        &resized,
        &["deploy", "--yes", "--skip-bootstrap", "--force-protected"],
    );
    let sizes: Vec<String> = droplets(&sim.snapshot(), "master")
        .iter()
        .map(|d| d["size_slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sizes, ["s-4vcpu-8gb"; 3]);
    dispose_leaves_nothing(&sim, &ws, &sim.url());
}

#[test]
fn one_network_name_in_two_locations_is_two_networks_that_accept_each_other() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = root().join("tests/cases/plumbery-two-locations/fittings.yaml");
    on_do(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);
    let snap = sim.snapshot();
    let mut vpcs: Vec<(String, String, String)> = snap
        .vpcs
        .iter()
        .filter(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("fitter-fittings-"))
        })
        .map(|v| {
            let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
            (text("name"), text("region"), text("ip_range"))
        })
        .collect();
    vpcs.sort();
    assert_eq!(
        vpcs,
        [
            (
                "fitter-fittings-mynetwork".into(),
                "fra1".into(),
                "10.0.0.0/24".into()
            ),
            (
                "fitter-fittings-mynetwork-au11".into(),
                "syd1".into(),
                "10.1.0.0/24".into()
            ),
        ]
    );
    // Each side's firewall lets the other network's range in.
    for (firewall, other) in [
        ("fitter-fittings-web", "10.1.0.0/24"),
        ("fitter-fittings-db", "10.0.0.0/24"),
    ] {
        let fw = snap
            .firewalls
            .iter()
            .find(|f| f["name"] == firewall)
            .unwrap_or_else(|| panic!("no firewall {firewall}: {:?}", snap.firewalls));
        let from_other = fw["inbound_rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["sources"]["addresses"].to_string().contains(other))
            .count();
        assert_eq!(from_other, 3, "tcp, udp and icmp from {other}: {fw}");
    }
    on_do(&sim, &ws, &plan, &["dispose", "--yes"]);
    let snap = sim.snapshot();
    assert!(
        snap.droplets.is_empty() && snap.firewalls.is_empty(),
        "{snap:?}"
    );
}

/// The names of the droplets the simulator has, sorted.
fn droplet_names(sim: &Simulator) -> Vec<String> {
    droplets(&sim.snapshot(), "")
        .iter()
        .filter_map(|d| d["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn blueprint_acts_on_part_of_the_plan_following_what_it_needs() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let plan = root().join("tests/cases/plumbery-swarm/fittings.yaml");
    let run = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend_from_slice(&["--provider", "digitalocean"]);
        ok(&sim, &ws, &plan, &args)
    };
    let deploy = ["deploy", "--yes", "--skip-bootstrap"];
    // The bees alone.
    run(&[&deploy[..], &["--blueprint", "bees"]].concat());
    assert_eq!(droplet_names(&sim), ["bee1", "bee2"]);
    // The queen names the bees in her configuration: they are what she needs, and exist
    // (as do her firewall and network, which the bees' network needed).
    let out = run(&["plan", "--blueprint", "queen"]);
    assert!(
        out.contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{out}"
    );
    assert!(out.contains("node.queen will be created"), "{out}");
    // The group names both; the monitor is still left out.
    run(&[&deploy[..], &["--blueprint", "swarm"]].concat());
    assert_eq!(droplet_names(&sim), ["bee1", "bee2", "queen"]);
    // The whole plan.
    run(&deploy);
    assert_eq!(droplet_names(&sim), ["bee1", "bee2", "monitor1", "queen"]);
    // Disposing of the monitor takes its network with it, and leaves the swarm's.
    let out = run(&["dispose", "--yes", "--blueprint", "monitor"]);
    assert!(
        out.contains("Blueprint(s) monitor of `fittings` disposed of"),
        "{out}"
    );
    assert_eq!(droplet_names(&sim), ["bee1", "bee2", "queen"]);
    let vpcs: Vec<String> = sim
        .snapshot()
        .vpcs
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .filter(|n| n.starts_with("fitter-fittings-"))
        .collect();
    assert_eq!(vpcs, ["fitter-fittings-swarm"]);
    // An unknown name is an error that suggests the nearest.
    let out = ws
        .command_for(
            &sim.url(),
            &plan,
            &["plan", "--provider", "digitalocean", "--blueprint", "swam"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("did you mean `swarm`?"),
        "{}",
        text(&out)
    );
    run(&["dispose", "--yes"]);
    assert!(droplet_names(&sim).is_empty());
}

/// The plumbery-style plans of tests/cases, written as plumbery's users write theirs.
const PLUMBERY_PLANS: &[&str] = &[
    "plumbery-docker-host",
    "plumbery-swarm",
    "plumbery-web-database",
    "plumbery-mesosphere",
    "plumbery-two-locations",
];

#[test]
fn every_plumbery_plan_validates_with_warnings_only_on_each_provider() {
    // Hetzner since issue 14: validate is what `plan --no-refresh` checks first.
    for case in PLUMBERY_PLANS {
        let plan = root().join(format!("tests/cases/{case}/fittings.yaml"));
        for provider in ["digitalocean", "hetzner", "lxd"] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_fitter"))
                .args(["validate", "--provider", provider])
                .arg(&plan)
                .output()
                .unwrap();
            let all = text(&out);
            assert!(out.status.success(), "{case} on {provider}: {all}");
            assert!(!all.contains("error:"), "{case} on {provider}: {all}");
            assert!(
                all.contains("warning:"),
                "{case} on {provider} says what it translated: {all}"
            );
            // And plans, offline, against no state.
            let state = tempfile::tempdir().unwrap();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_fitter"))
                .args(["plan", "--no-refresh", "--provider", provider, "--state"])
                .arg(state.path().join("state.json"))
                .arg(&plan)
                .output()
                .unwrap();
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && shown.contains(" to add, 0 to change, 0 to destroy."),
                "plan of {case} on {provider}: {}",
                text(&out)
            );
        }
    }
}

/// A droplet as a plan should make it: name, region, size, image.
type Droplet = (&'static str, &'static str, &'static str, &'static str);

#[test]
fn a_docker_host_and_a_web_database_pair_deploy_with_their_names_translated() {
    let sim = fast_simulator();
    let expected: &[(&str, &[Droplet])] = &[
        (
            "plumbery-docker-host",
            &[("dockerhost", "fra1", "s-2vcpu-4gb", "ubuntu-22-04-x64")],
        ),
        (
            "plumbery-web-database",
            &[
                ("db01", "sfo3", "s-4vcpu-8gb", "centos-stream-9-x64"),
                ("web01", "sfo3", "s-2vcpu-2gb", "rockylinux-9-x64"),
            ],
        ),
    ];
    for (case, nodes) in expected {
        let ws = Workspace::new();
        let plan = root().join(format!("tests/cases/{case}/fittings.yaml"));
        on_do(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);
        let snap = sim.snapshot();
        for (name, region, size, image) in *nodes {
            let d = droplets(&snap, name);
            assert_eq!(d.len(), 1, "{case}: {name}");
            assert_eq!(d[0]["region"]["slug"], *region, "{case}: {name}");
            assert_eq!(d[0]["size_slug"], *size, "{case}: {name}");
            assert_eq!(d[0]["image"]["slug"], *image, "{case}: {name}");
        }
        if *case == "plumbery-docker-host" {
            // The plan's own host key (cloud-config `ssh_keys`) is the one fitter pins; the
            // droplet's cloud-init gets it as `rsa_private` (digitalocean/body.rs's test).
            let state = ws.state_json();
            let pinned = &state["resources"]["node.dockerhost"]["outputs"]["host_key"];
            let given = &state["secrets"]["rsa_public.dockerhost"];
            assert!(
                pinned.as_str().is_some_and(|k| k.starts_with("ssh-rsa ")),
                "{pinned}"
            );
            assert_eq!(
                pinned.as_str().map(str::trim),
                given.as_str().map(str::trim)
            );
        }
        on_do(&sim, &ws, &plan, &["dispose", "--yes"]);
        assert!(sim.snapshot().droplets.is_empty(), "{case}");
    }
}

#[test]
fn region_overrides_where_a_plumbery_location_goes() {
    let plan = root().join("tests/cases/plumbery-docker-host/fittings.yaml");
    let fitter = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fitter"))
            .args(args)
            .arg(&plan)
            .env_remove("DIGITALOCEAN_TOKEN")
            .output()
            .unwrap()
    };
    let out = fitter(&["plan", "--provider", "digitalocean", "--region", "ams3"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r#"region     = "ams3""#), "{stdout}");
    assert!(!stdout.contains("fra1"), "{stdout}");
    // A region the cloud does not have is an error naming the flag.
    let out = fitter(&["plan", "--provider", "digitalocean", "--region", "mars1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--region mars1: unknown region"),
        "{}",
        text(&out)
    );
}

#[test]
fn destroy_never_on_an_ethernet_keeps_the_network() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let text_of =
        std::fs::read_to_string(root().join("tests/cases/plumbery-two-locations/fittings.yaml"))
            .unwrap();
    let marked = "        subnet: 10.0.0.0\n";
    assert!(text_of.contains(marked));
    let plan = ws.dir.path().join("fittings.yaml");
    std::fs::write(
        &plan,
        text_of.replacen(marked, &format!("{marked}        destroy: never\n"), 1),
    )
    .unwrap();
    on_do(&sim, &ws, &plan, &["deploy", "--yes", "--skip-bootstrap"]);
    let out = on_do(&sim, &ws, &plan, &["dispose", "--yes"]);
    assert!(out.contains("`network.mynetwork` is kept"), "{out}");
    let snap = sim.snapshot();
    assert!(snap.droplets.is_empty(), "{:?}", snap.droplets);
    let vpcs: Vec<&str> = snap
        .vpcs
        .iter()
        .filter_map(|v| v["name"].as_str())
        .filter(|n| n.starts_with("fitter-fittings-"))
        .collect();
    assert_eq!(vpcs, ["fitter-fittings-mynetwork"]);
    // Without the key, dispose takes the rest.
    let plain = root().join("tests/cases/plumbery-two-locations/fittings.yaml");
    on_do(&sim, &ws, &plain, &["dispose", "--yes"]);
    let snap = sim.snapshot();
    assert!(
        snap.vpcs.iter().all(|v| !v["name"]
            .as_str()
            .unwrap_or("")
            .starts_with("fitter-fittings-")),
        "{:?}",
        snap.vpcs
    );
}
