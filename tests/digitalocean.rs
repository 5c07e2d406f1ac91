//! fitter against DigitalOcean's API as `fitter-sim` fakes it, with Prism in between checking
//! every request and answer against DigitalOcean's official OpenAPI spec
//! (`../shared/digitalocean-openapi.yaml`): a request or an answer that breaks the spec makes
//! Prism answer 422 or 500, which fails the deploy and so the test.
//!
//! Prism comes from `scripts/prism.sh install` (run by `scripts/test.sh`); these tests fail,
//! rather than skip, when it is missing. They share one simulator and one Prism, so they run
//! one at a time, each on its own deployment with the simulator reset.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use fitter_sim::{Config, Fault, Matcher, Simulator, Snapshot};
use serde_json::{Value as Json, json};

mod support;
use support::prism::{free_port, start_prism};
use support::spec::{check_keys, request_schema, template_of};
use support::*;
const TAG: &str = "fitter-mesos-digitalocean";

struct Cloud {
    sim: Simulator,
    /// Prism's address: what fitter is pointed at.
    api_url: String,
}

/// A deploy that gives the agents a bigger size: a change made by resizing in place.
const BIGGER_AGENTS: &[&str] = &[
    "deploy",
    "--yes",
    "--skip-bootstrap",
    "-p",
    "agentSize=s-4vcpu-8gb",
];

fn spec_path() -> PathBuf {
    root().join("../shared/digitalocean-openapi.yaml")
}

fn sim_config() -> Config {
    Config {
        active_delay: Duration::from_secs(2),
        delete_delay: Duration::from_millis(500),
        token: Some(TOKEN.to_string()),
        ..Config::default()
    }
}

/// The shared simulator and Prism, for one test at a time.
fn cloud() -> MutexGuard<'static, Cloud> {
    static CLOUD: OnceLock<Mutex<Cloud>> = OnceLock::new();
    let cloud = CLOUD.get_or_init(|| {
        let sim = Simulator::start_background("127.0.0.1:0".parse().unwrap(), sim_config())
            .expect("the simulator starts");
        let api_url = start_prism(&spec_path(), &format!("http://{}", sim.addr()));
        Mutex::new(Cloud { sim, api_url })
    });
    let guard = cloud.lock().unwrap_or_else(|p| p.into_inner());
    guard.sim.reset();
    guard.sim.set_config(sim_config());
    guard
}

/// The shared cloud with the example plan deployed in a new workspace.
fn deployed() -> (MutexGuard<'static, Cloud>, Workspace) {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    (cloud, ws)
}

#[test]
fn deploy_redeploy_information_dispose_through_prism() {
    let cloud = cloud();
    let ws = Workspace::new();

    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let snap = cloud.sim.snapshot();
    assert_exactly_the_plan(&snap);
    for d in droplets_of(&snap) {
        assert_eq!(d["status"], "active");
    }
    // Batches of up to ten, decided by the graph, not by a clock: the 3 masters share one
    // spec and one call, the 9 agents another, on any machine however slow.
    let creates = cloud
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets")
        .count();
    assert_eq!(creates, 2, "droplet create calls for 12 droplets");
    // Every droplet knows its host key and the operator's key before its first boot.
    let state = ws.state_json();
    for name in expected_names() {
        let r = &state["resources"][format!("node.{name}")];
        // `creating` is recorded; `ready` is the default and left out.
        assert!(
            r["status"].is_null() || r["status"] == "ready",
            "{name}: {r}"
        );
        assert!(
            r["outputs"]["public_ip"]
                .as_str()
                .unwrap()
                .starts_with("127.")
        );
        assert!(
            r["outputs"]["private_ip"]
                .as_str()
                .unwrap()
                .starts_with("10.10.0.")
        );
    }
    let user_data: Vec<String> = cloud
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets")
        .filter_map(|r| r.body.as_ref()?["user_data"].as_str().map(str::to_string))
        .collect();
    for name in expected_names() {
        let public = state["resources"][format!("node.{name}")]["outputs"]["host_key"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            user_data
                .iter()
                .any(|u| u.contains(&format!("\"{name}\" %}}")) && u.contains(&public)),
            "{name}'s host key is in its batch's user_data"
        );
    }

    // A second deploy: no change, no write call, the state untouched.
    let before = cloud.sim.snapshot();
    let serial = ws.state_json()["serial"].clone();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "second deploy: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "{}",
        text(&out)
    );
    let after = cloud.sim.snapshot();
    assert_eq!(writes(&after), writes(&before), "the second deploy wrote");
    assert_eq!(ws.state_json()["serial"], serial);

    // information: every node with both addresses. The simulated droplets run nothing, so
    // each node it asks over SSH is shown with why it gave no answer (one attempt each,
    // all at once), and the command still succeeds.
    let out = ws.run(&cloud.api_url, &["information"]);
    assert!(out.status.success(), "information: {}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.matches("  no answer: `").count(), 12, "{shown}");
    for d in droplets_of(&after) {
        for net in d["networks"]["v4"].as_array().unwrap() {
            let ip = net["ip_address"].as_str().unwrap();
            assert!(
                shown.contains(ip),
                "{ip} of {} missing:\n{shown}",
                d["name"]
            );
        }
    }
    let out = ws.run(&cloud.api_url, &["information", "--json", "--offline"]);
    assert!(out.status.success(), "information --json: {}", text(&out));
    let info: Json = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = info["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 12);
    for n in nodes {
        assert!(
            n["public_ip"].is_string() && n["private_ip"].is_string(),
            "{n}"
        );
    }
    assert!(!shown.contains(TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(TOKEN));

    // inventory: an Ansible host line per node, with its address and the pinned host keys.
    let out = ws.run(&cloud.api_url, &["inventory"]);
    assert!(out.status.success(), "inventory: {}", text(&out));
    let ini = String::from_utf8_lossy(&out.stdout);
    for d in droplets_of(&after) {
        let public = public_ip(d);
        let line = format!("{} ansible_host={public} ", d["name"].as_str().unwrap());
        assert!(ini.contains(&line), "{line} missing:\n{ini}");
    }
    assert!(
        ini.contains("StrictHostKeyChecking=yes")
            && ini.contains("\n[mesos_master]\nmaster1\nmaster2\nmaster3\n"),
        "{ini}"
    );
    let out = ws.run(&cloud.api_url, &["inventory", "--format", "json"]);
    let list: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 12);

    // That no command prints the token or a secret: tests/no_secret_printed.rs.
    let before = cloud.sim.requests().len();
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
    // The twelve droplets go in one call, by a tag made for the deletion (never by the
    // deployment's own tag, which could cover a droplet not listed yet).
    let deletes: Vec<String> = cloud.sim.requests()[before..]
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.starts_with("/v2/droplets"))
        .map(|r| format!("{}?{}", r.path, r.query).replace("%3A", ":"))
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(
        deletes[0].starts_with(&format!("/v2/droplets?tag_name={TAG}:delete-")),
        "{deletes:?}"
    );
}

/// Removing part of the deployment deletes it in a few calls too: the droplets that go are
/// tagged with a tag made for the deletion (one call), deleted by it (one call), and the
/// tag is removed; the others stay untouched.
#[test]
fn nodes_removed_from_the_plan_go_by_a_tag_made_for_the_deletion() {
    let (cloud, ws) = deployed();
    // The same file name: the deployment is named after it.
    std::fs::create_dir(ws.dir.path().join("fewer")).unwrap();
    let fewer = ws.dir.path().join("fewer/mesos-digitalocean.yaml");
    let text_of_plan = std::fs::read_to_string(root().join(PLAN)).unwrap();
    assert!(text_of_plan.contains("agent[1..9]"));
    std::fs::write(&fewer, text_of_plan.replace("agent[1..9]", "agent[1..4]")).unwrap();
    let before = cloud.sim.requests().len();
    let out = ws
        .command_for(
            &cloud.api_url,
            &fewer,
            &["deploy", "--yes", "--skip-bootstrap"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy with fewer agents: {}",
        text(&out)
    );
    let snap = cloud.sim.snapshot();
    let mut left = names(&droplets_of(&snap));
    left.sort();
    let mut wanted: Vec<String> = (1..=3)
        .map(|i| format!("master{i}"))
        .chain((1..=4).map(|i| format!("agent{i}")))
        .collect();
    wanted.sort();
    assert_eq!(left, wanted);
    let calls: Vec<(String, String)> = cloud.sim.requests()[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method.clone(), format!("{}?{}", r.path, r.query)))
        .collect();
    let deletion_tag = calls
        .iter()
        .find_map(|(m, p)| (m == "DELETE").then(|| p.strip_prefix("/v2/droplets?tag_name="))?)
        .unwrap_or_else(|| panic!("no delete by tag: {calls:?}"))
        .replace("%3A", ":");
    assert!(
        deletion_tag.starts_with(&format!("{TAG}:delete-")),
        "{deletion_tag}"
    );
    let droplet_deletes = calls
        .iter()
        .filter(|(m, p)| m == "DELETE" && p.starts_with("/v2/droplets"))
        .count();
    assert_eq!(droplet_deletes, 1, "{calls:?}");
    assert!(
        !snap.tags.iter().any(|t| t["name"] == deletion_tag.as_str()),
        "the deletion's tag is removed"
    );
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

#[test]
fn faults_429_5xx_and_lost_creates_still_give_exactly_the_plan() {
    let cloud = cloud();
    let ws = Workspace::new();
    let m = |method: &str, path: &str, skip: u32, times: u32| Matcher {
        method: Some(method.to_string()),
        path_prefix: path.to_string(),
        skip,
        times,
    };
    let sim = &cloud.sim;
    sim.inject(Fault::Status {
        matcher: m("POST", "/v2/droplets", 0, 1),
        status: 429,
    });
    sim.inject(Fault::Status {
        matcher: m("POST", "/v2/droplets", 1, 1),
        status: 500,
    });
    sim.inject(Fault::LostResponse {
        matcher: m("POST", "/v2/droplets", 2, 1),
    });
    sim.inject(Fault::LostResponse {
        matcher: m("POST", "/v2/firewalls", 0, 1),
    });
    sim.inject(Fault::LostResponse {
        matcher: m("POST", "/v2/vpcs", 0, 1),
    });
    sim.inject(Fault::Status {
        matcher: m("GET", "/v2/droplets", 0, 2),
        status: 503,
    });
    sim.inject(Fault::Status {
        matcher: m("GET", "/v2/droplets", 3, 1),
        status: 429,
    });
    sim.inject(Fault::Status {
        matcher: m("POST", "/v2/tags", 0, 1),
        status: 502,
    });

    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy under faults: {}", text(&out));
    let snap = sim.snapshot();
    assert_exactly_the_plan(&snap);
    let statuses: BTreeMap<u16, usize> = sim.requests().iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.status).or_default() += 1;
        m
    });
    for code in [429u16, 500, 502, 503] {
        assert!(
            statuses.contains_key(&code),
            "no {code} was served: {statuses:?}"
        );
    }

    sim.clear_faults();
    let out = ws.run(&cloud.api_url, &["dispose", "--yes"]);
    assert!(out.status.success(), "dispose: {}", text(&out));
    assert_nothing_left(&sim.snapshot());
}

#[test]
fn dispose_without_the_state_file_finds_everything_by_tag() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    assert_exactly_the_plan(&cloud.sim.snapshot());
    std::fs::remove_file(ws.state()).unwrap();
    let out = ws.run(&cloud.api_url, &["dispose", "--yes"]);
    assert!(out.status.success(), "dispose: {}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("`node.agent9` carries the deployment's mark but was not in the state"),
        "{}",
        text(&out)
    );
    assert_nothing_left(&cloud.sim.snapshot());
}

#[test]
fn an_endpoint_that_says_404_to_everything_makes_fitter_forget_nothing() {
    let (cloud, ws) = deployed();
    let state_before = std::fs::read(ws.state()).unwrap();
    let backup = {
        let mut b = ws.state().into_os_string();
        b.push(".backup");
        std::path::PathBuf::from(b)
    };
    let backup_before = std::fs::read(&backup).ok();
    // Every read answers the API's own 404: the account check, first, says it is no
    // DigitalOcean API. Then, with the account answering (the first GET let through),
    // everything else reads as gone at once: the vanished guard.
    let dispose = &["dispose", "--yes"][..];
    let deploy = &["deploy", "--yes", "--skip-bootstrap"][..];
    for (skip, command, says) in [
        (0, dispose, "not a DigitalOcean API"),
        (0, deploy, "not a DigitalOcean API"),
        (1, dispose, "--accept-vanished"),
        (1, deploy, "--accept-vanished"),
    ] {
        cloud.sim.clear_faults();
        cloud.sim.inject(Fault::Status {
            matcher: Matcher {
                method: Some("GET".into()),
                path_prefix: "/v2/".into(),
                skip,
                times: 0,
            },
            status: 404,
        });
        let out = ws.run(&cloud.api_url, command);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{command:?}: {}", text(&out));
        assert_eq!(
            std::fs::read(ws.state()).unwrap(),
            state_before,
            "the state"
        );
        assert_eq!(std::fs::read(&backup).ok(), backup_before, "its backup");
    }
    cloud.sim.clear_faults();
    assert_exactly_the_plan(&cloud.sim.snapshot());
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

#[test]
fn a_deploy_with_its_state_lost_adopts_everything_and_duplicates_nothing() {
    let (cloud, ws) = deployed();
    std::fs::remove_file(ws.state()).unwrap();
    // The same plan again, from nothing: every droplet, the VPC and the firewalls exist
    // under the deployment's names and are taken in, not made twice (the firewalls were).
    let out = ws.deploy(&cloud.api_url);
    assert!(
        out.status.success(),
        "deploy without a state: {}",
        text(&out)
    );
    assert_exactly_the_plan(&cloud.sim.snapshot());
    let out = ws.deploy(&cloud.api_url);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "{}",
        text(&out)
    );
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

/// Behind Prism a dropped connection comes back as Prism's own 500; straight to the
/// simulator it is what a real network does: no answer at all. Both must converge.
#[test]
fn creates_whose_connection_drops_are_adopted_not_duplicated() {
    let cloud = cloud();
    let ws = Workspace::new();
    for path in [
        "/v2/droplets",
        "/v2/firewalls",
        "/v2/vpcs",
        "/v2/account/keys",
    ] {
        cloud.sim.inject(Fault::LostResponse {
            matcher: Matcher {
                method: Some("POST".into()),
                path_prefix: path.into(),
                skip: 0,
                times: 1,
            },
        });
    }
    let out = ws.deploy(&cloud.sim.url());
    assert!(out.status.success(), "deploy: {}", text(&out));
    let snap = cloud.sim.snapshot();
    assert_exactly_the_plan(&snap);
    assert_eq!(
        ours(&snap.ssh_keys, TAG).len(),
        1,
        "one key: {:?}",
        snap.ssh_keys
    );
    // fitter noticed, and looked before creating again.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("a droplet create got no answer")
            && said.contains("firewall create got no answer"),
        "{}",
        text(&out)
    );
    cloud.sim.clear_faults();
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.sim.url());
}

#[test]
fn a_droplet_that_stays_new_fails_alone_and_is_kept_in_the_state() {
    let cloud = cloud();
    let ws = Workspace::new();
    cloud.sim.inject(Fault::StuckNew {
        name: "agent3".into(),
    });
    let out = ws.run(
        &cloud.api_url,
        &[
            "deploy",
            "--yes",
            "--skip-bootstrap",
            // Long enough that the other droplets (2 s to boot here) are ready within it on
            // a loaded machine: only the stuck one may reach it.
            "--ready-timeout",
            "20",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed: Vec<String> = failure_lines(&out)
        .into_iter()
        .filter(|l| l.contains(": failed:"))
        .collect();
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert!(
        failed[0].starts_with("node.agent3: failed:") && failed[0].contains("not ready after 20 s"),
        "{}",
        failed[0]
    );
    let state = ws.state_json();
    assert_eq!(state["resources"]["node.agent3"]["status"], "creating");
    assert!(
        state["resources"]["node.agent3"]["id"].is_string(),
        "its id is kept"
    );
    assert!(state["resources"]["node.agent2"]["outputs"]["public_ip"].is_string());

    // Once it comes up, the next deploy adopts it: still 12, no duplicate.
    cloud.sim.clear_faults();
    let out = ws.deploy(&cloud.api_url);
    assert!(
        out.status.success(),
        "deploy after the droplet came up: {}",
        text(&out)
    );
    assert_exactly_the_plan(&cloud.sim.snapshot());
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

#[test]
fn ctrl_c_lets_running_calls_finish_saves_and_starts_nothing_new() {
    let cloud = cloud();
    let ws = Workspace::new();
    // One call at a time, each create slow: Ctrl-C lands while the masters' batch is in
    // flight and the agents' batch waits its turn.
    cloud.sim.inject(Fault::Slow {
        matcher: Matcher {
            method: Some("POST".into()),
            path_prefix: "/v2/droplets".into(),
            skip: 0,
            times: 0,
        },
        delay: Duration::from_millis(700),
    });
    let child = ws
        .command(
            &cloud.api_url,
            &["deploy", "--yes", "--skip-bootstrap", "--parallelism", "1"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let create_sent = || {
        cloud
            .sim
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/v2/droplets")
    };
    while !create_sent() {
        assert!(Instant::now() < deadline, "no droplet create was ever sent");
        std::thread::sleep(Duration::from_millis(10));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("Interrupted: letting running calls finish"),
        "{all}"
    );
    assert!(all.contains("not started (interrupted)"), "{all}");
    // What was created is in the state, with its id; nothing was left unrecorded.
    let state = ws.state_json();
    let snap = cloud.sim.snapshot();
    let made = droplets_of(&snap);
    assert!(made.len() < 12, "Ctrl-C came too late to test anything");
    for d in &made {
        let r = &state["resources"][format!("node.{}", d["name"].as_str().unwrap())];
        assert_eq!(r["id"].as_str(), Some(d["id"].to_string().as_str()), "{r}");
    }

    cloud.sim.clear_faults();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy after Ctrl-C: {}", text(&out));
    assert_exactly_the_plan(&cloud.sim.snapshot());
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

#[test]
fn an_action_the_api_does_not_know_ends_the_wait_with_an_error() {
    let (cloud, ws) = deployed();
    // Every action read answers 404: polled, the resize would wait for ever (it did, 1,242
    // polls in 11 minutes).
    cloud.sim.inject(Fault::Status {
        matcher: Matcher {
            method: Some("GET".into()),
            path_prefix: "/v2/actions".into(),
            skip: 0,
            times: 0,
        },
        status: 404,
    });
    let out = ws.run(&cloud.api_url, BIGGER_AGENTS);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is not known to the API"),
        "{}",
        text(&out)
    );
    let action_reads = cloud
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v2/actions"))
        .count();
    assert!(
        action_reads <= 9,
        "{action_reads} reads of actions the API does not know"
    );
    cloud.sim.clear_faults();
    let out = ws.run(&cloud.api_url, BIGGER_AGENTS);
    assert!(
        out.status.success(),
        "resize after the fault: {}",
        text(&out)
    );
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

#[test]
fn a_changed_size_resizes_the_droplets_in_place_and_touches_nothing_else() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let ids = |snap: &Snapshot| -> BTreeMap<String, Json> {
        droplets_of(snap)
            .iter()
            .map(|d| (d["name"].as_str().unwrap().to_string(), d["id"].clone()))
            .collect()
    };
    let before = cloud.sim.snapshot();
    let mark = cloud.sim.requests().len();

    let out = ws.run(&cloud.api_url, BIGGER_AGENTS);
    assert!(out.status.success(), "resize deploy: {}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Plan: 0 to add, 9 to change, 0 to destroy."),
        "{shown}"
    );
    let after = cloud.sim.snapshot();
    assert_eq!(ids(&after), ids(&before), "same droplets, resized in place");
    for d in droplets_of(&after) {
        let want = if d["name"].as_str().unwrap().starts_with("agent") {
            "s-4vcpu-8gb"
        } else {
            "s-2vcpu-4gb"
        };
        assert_eq!(d["size_slug"], want, "{}", d["name"]);
        assert_eq!(d["status"], "active", "{} is back on", d["name"]);
    }
    assert_eq!(
        after.firewalls, before.firewalls,
        "the firewalls as they were"
    );
    assert_eq!(after.vpcs, before.vpcs, "the networks as they were");
    // Every write of the resize is an action on an agent droplet: none went elsewhere.
    let agent_ids: Vec<String> = droplets_of(&after)
        .iter()
        .filter(|d| d["name"].as_str().unwrap().starts_with("agent"))
        .map(|d| d["id"].to_string())
        .collect();
    for r in &cloud.sim.requests()[mark..] {
        if r.method == "GET" {
            continue;
        }
        let on_an_agent = agent_ids
            .iter()
            .any(|id| r.path == format!("/v2/droplets/{id}/actions"));
        assert!(
            r.method == "POST" && on_an_agent,
            "the resize wrote elsewhere: {} {}",
            r.method,
            r.path
        );
    }
    let master_actions = cloud
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/actions") && r.method == "POST")
        .filter(|r| {
            let id: Option<u64> = r.path.split('/').nth(3).and_then(|i| i.parse().ok());
            droplets_of(&after).iter().any(|d| {
                d["id"].as_u64() == id && d["name"].as_str().unwrap().starts_with("master")
            })
        })
        .count();
    assert_eq!(master_actions, 0, "the masters were not touched");
    let actions = cloud
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/actions") && r.method == "POST")
        .count();
    assert_eq!(
        actions, 27,
        "power off, resize, power on for each of the 9 agents"
    );

    let quiet = cloud.sim.snapshot();
    let out = ws.run(&cloud.api_url, BIGGER_AGENTS);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "{}",
        text(&out)
    );
    assert_eq!(
        writes(&cloud.sim.snapshot()),
        writes(&quiet),
        "no write after the resize"
    );

    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

#[test]
fn changed_roles_retag_the_droplets_and_update_the_firewall_in_place() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let before = cloud.sim.snapshot();

    // The same deployment (same file name), agents now running Marathon instead of Docker.
    let plan = ws.dir.path().join("mesos-digitalocean.yaml");
    let original = std::fs::read_to_string(root().join(PLAN)).unwrap();
    let changed = original.replace(
        "roles: [mesos-agent, docker]",
        "roles: [mesos-agent, marathon]",
    );
    assert_ne!(changed, original);
    std::fs::write(&plan, changed).unwrap();
    let out = ws
        .command_for(
            &cloud.api_url,
            &plan,
            &["deploy", "--yes", "--skip-bootstrap"],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy with new roles: {}",
        text(&out)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("firewall.agents will be updated in place"),
        "{shown}"
    );
    assert!(
        shown.contains("0 to add,") && shown.contains("0 to destroy."),
        "{shown}"
    );

    let after = cloud.sim.snapshot();
    let role = |r: &str| format!("{TAG}:role:{r}");
    for d in droplets_of(&after) {
        let tags: Vec<&str> = d["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Json::as_str)
            .collect();
        if d["name"].as_str().unwrap().starts_with("agent") {
            assert!(
                tags.contains(&role("marathon").as_str()),
                "{}: {tags:?}",
                d["name"]
            );
            assert!(
                !tags.contains(&role("docker").as_str()),
                "{}: {tags:?}",
                d["name"]
            );
        }
    }
    let ids =
        |s: &Snapshot| -> Vec<Json> { droplets_of(s).iter().map(|d| d["id"].clone()).collect() };
    assert_eq!(ids(&after), ids(&before), "no droplet was replaced");
    let agents_fw = |s: &Snapshot| {
        s.firewalls
            .iter()
            .find(|f| f["name"] == format!("{TAG}-agents"))
            .cloned()
            .unwrap()
    };
    assert_eq!(
        agents_fw(&after)["id"],
        agents_fw(&before)["id"],
        "updated, not replaced"
    );
    assert_ne!(
        agents_fw(&after)["inbound_rules"],
        agents_fw(&before)["inbound_rules"]
    );
    assert!(
        cloud
            .sim
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.starts_with("/v2/firewalls/")),
        "the firewall was PUT"
    );

    let out = ws
        .command_for(&cloud.api_url, &plan, &["dispose", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "dispose: {}", text(&out));
    assert_nothing_left(&cloud.sim.snapshot());
}

/// Sends one DigitalOcean API call straight to the simulator, as another client would.
fn api_call(sim: &Simulator, method: &str, path: &str) -> String {
    raw_call(sim.addr(), method, path)
}

fn raw_call(addr: SocketAddr, method: &str, path: &str) -> String {
    support::raw_call(addr, TOKEN, method, path, None)
}

/// The canary: Prism is between fitter and the simulator and holds answers to the spec.
/// An answer the simulator breaks (a droplet id that is a string) must come out of Prism as
/// its refusal; were Prism run without `--errors`, or not at all, the broken answer would
/// pass and this test would fail. (fitter refuses such an answer itself as well, so a
/// failing fitter run would prove nothing: the test reads what Prism gives.)
#[test]
fn prism_refuses_an_answer_that_breaks_the_spec() {
    let (cloud, _ws) = deployed();
    let prism: SocketAddr = cloud.api_url.trim_start_matches("http://").parse().unwrap();
    let path = "/v2/droplets?per_page=200";
    let fine = raw_call(prism, "GET", path);
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
    cloud.sim.inject(Fault::Field {
        matcher: Matcher::new(Some("GET"), "/v2/droplets"),
        field: "id".into(),
        value: json!("abc"),
    });
    let direct = api_call(&cloud.sim, "GET", path);
    assert!(
        direct.starts_with("HTTP/1.1 200") && direct.contains(r#""id":"abc""#),
        "the simulator breaks the answer: {direct}"
    );
    let through = raw_call(prism, "GET", path);
    assert!(
        !through.starts_with("HTTP/1.1 200") && through.to_lowercase().contains("violation"),
        "Prism lets an answer against the spec through: {through}"
    );
    cloud.sim.clear_faults();
}

#[test]
fn plan_reads_the_cloud_and_never_writes() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let agent1 = droplets_of(&cloud.sim.snapshot())
        .into_iter()
        .find(|d| d["name"] == "agent1")
        .unwrap()["id"]
        .clone();
    // Someone deletes a droplet behind fitter's back.
    let answer = api_call(&cloud.sim, "DELETE", &format!("/v2/droplets/{agent1}"));
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while droplets_of(&cloud.sim.snapshot()).len() == 12 {
        assert!(Instant::now() < deadline, "the droplet never went");
        std::thread::sleep(Duration::from_millis(50));
    }
    let state_before = std::fs::read(ws.state()).unwrap();
    let writes_before = writes(&cloud.sim.snapshot());

    let out = ws.run(&cloud.api_url, &["plan"]);
    assert!(out.status.success(), "plan: {}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("# node.agent1 will be created"), "{shown}");
    assert!(
        shown.contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{shown}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`node.agent1` is gone from its provider"),
        "{}",
        text(&out)
    );
    let out = ws.run(&cloud.api_url, &["plan", "--no-refresh"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(ws.state()).unwrap(),
        state_before,
        "plan wrote the state"
    );
    assert_eq!(
        writes(&cloud.sim.snapshot()),
        writes_before,
        "plan wrote to the API"
    );

    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    assert_exactly_the_plan(&cloud.sim.snapshot());
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

/// Right after a create the API may not list the droplet, nor find it by id: "pending",
/// not "gone". Waited for, and after a kill resumed, never created a second time.
#[test]
fn a_droplet_the_api_lists_late_is_waited_for_not_created_twice() {
    let cloud = cloud();
    let ws = Workspace::new();
    let late = |name: &str, secs: u64| Fault::Unlisted {
        name: name.into(),
        delay: Duration::from_secs(secs),
    };
    cloud.sim.inject(late("agent5", 5));
    // agent6 stays unlisted until the faults are cleared below: no window to race.
    cloud.sim.inject(late("agent6", 3600));
    // Killed once agent6's id is in the state, while the API still answers 404 for it.
    deploy_killed_when(&cloud, &ws, "agent6 is recorded", || {
        std::fs::read_to_string(ws.state())
            .ok()
            .and_then(|t| serde_json::from_str::<Json>(&t).ok())
            .is_some_and(|s| s["resources"]["node.agent6"]["id"].is_string())
    });
    let agent6 = format!(
        "/v2/droplets/{}",
        ws.state_json()["resources"]["node.agent6"]["id"]
            .as_str()
            .unwrap()
    );
    let hidden = api_call(&cloud.sim, "GET", &agent6);
    assert!(
        hidden.starts_with("HTTP/1.1 404"),
        "agent6 is not found yet: {hidden}"
    );

    // The resumed deploy meets agent6 still unknown to the API (a listing without it, or a
    // 404 for its id); only once it has asked does the API list it.
    let mark = cloud.sim.requests().len();
    let resumed = ws
        .command(&cloud.api_url, &["deploy", "--yes", "--skip-bootstrap"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cloud.sim.requests()[mark..].iter().any(|r| {
        r.method == "GET" && (r.path == agent6 || r.path == "/v2/droplets") && r.status < 500
    }) {
        assert!(
            Instant::now() < deadline,
            "the resumed deploy never asked for agent6"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cloud.sim.clear_faults();
    let out = resumed.wait_with_output().unwrap();
    assert!(out.status.success(), "resumed deploy: {}", text(&out));
    assert_exactly_the_plan(&cloud.sim.snapshot());
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

/// Runs a deploy and kills it (SIGKILL) as soon as `when` holds.
fn deploy_killed_when(cloud: &Cloud, ws: &Workspace, what: &str, when: impl Fn() -> bool) {
    killed_when(
        ws.command(&cloud.api_url, &["deploy", "--yes", "--skip-bootstrap"]),
        what,
        when,
    );
}

#[test]
fn a_deploy_killed_at_several_points_resumes_without_duplicates() {
    let cloud = cloud();
    let ws = Workspace::new();
    // Slow creates widen the windows between the kill points.
    cloud.sim.set_config(Config {
        active_delay: Duration::from_secs(3),
        ..sim_config()
    });
    cloud.sim.inject(Fault::Slow {
        matcher: Matcher {
            method: Some("POST".into()),
            path_prefix: "/v2/droplets".into(),
            skip: 0,
            times: 0,
        },
        delay: Duration::from_millis(300),
    });

    deploy_killed_when(&cloud, &ws, "the VPC exists", || {
        let s = &cloud.sim.snapshot();
        !ours(&s.vpcs, TAG).is_empty()
    });
    deploy_killed_when(&cloud, &ws, "the first droplets exist", || {
        let s = &cloud.sim.snapshot();
        !droplets_of(s).is_empty()
    });
    deploy_killed_when(&cloud, &ws, "more droplets exist", || {
        let s = &cloud.sim.snapshot();
        droplets_of(s).len() >= 11
    });
    // The kills left droplets the state does not call ready: the next run must adopt them
    // rather than create them again.
    let snap = cloud.sim.snapshot();
    let state = ws.state_json();
    let unfinished = droplets_of(&snap)
        .iter()
        .filter(|d| {
            let r = &state["resources"][format!("node.{}", d["name"].as_str().unwrap())];
            r["status"] == "creating" || r.is_null()
        })
        .count();
    assert!(
        unfinished > 0,
        "every droplet was already recorded ready: {state}"
    );

    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "resumed deploy: {}", text(&out));
    assert_exactly_the_plan(&cloud.sim.snapshot());
    let out = ws.deploy(&cloud.api_url);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "a deploy after the resume: {}",
        text(&out)
    );

    cloud.sim.clear_faults();
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

/// The failure line of a report: `node.x: failed: ...`.
fn failure_lines(out: &Output) -> Vec<String> {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    all.lines()
        .filter(|l| l.contains(": failed:") || l.starts_with("error:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_bad_token_fails_with_one_clear_line_and_no_token_shown() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = ws
        .command(&cloud.api_url, &["deploy", "--yes", "--skip-bootstrap"])
        .env("DIGITALOCEAN_TOKEN", "dop_v1_wrong_token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        !all.contains("dop_v1_wrong_token") && !all.contains(TOKEN),
        "{all}"
    );
    // Checked once, before anything (GET /v2/account): one line, no plan, no per-resource
    // failure (issue 13).
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{all}");
    assert!(
        lines[0].contains("Unable to authenticate you")
            && lines[0].contains("(HTTP 401)")
            && lines[0].contains("DIGITALOCEAN_TOKEN")
            && lines[0].contains("nothing was changed"),
        "{all}"
    );
    assert_eq!(writes(&cloud.sim.snapshot()), 0, "{all}");

    // On a deployment that exists, a wrong token changes nothing: the state stays as it was.
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let before = std::fs::read(ws.state()).unwrap();
    let out = ws
        .command(&cloud.api_url, BIGGER_AGENTS)
        .env("DIGITALOCEAN_TOKEN", "dop_v1_wrong_token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        std::fs::read(ws.state()).unwrap(),
        before,
        "the state is kept"
    );
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

#[test]
fn a_droplet_limit_422_names_the_droplets_and_keeps_what_was_made() {
    let cloud = cloud();
    let ws = Workspace::new();
    cloud.sim.set_config(Config {
        droplet_limit: Some(5),
        ..sim_config()
    });
    let out = ws.deploy(&cloud.api_url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed: Vec<String> = failure_lines(&out)
        .into_iter()
        .filter(|l| l.contains(": failed:"))
        .collect();
    assert!(!failed.is_empty(), "{}", text(&out));
    for line in &failed {
        assert!(line.starts_with("node."), "{line}");
        assert!(
            line.contains("droplet limit") && line.contains("(HTTP 422)"),
            "{line}"
        );
    }
    // What was created is in the state: the VPC, the firewalls, the droplets that fit.
    let state = ws.state_json();
    let snap = cloud.sim.snapshot();
    let made = droplets_of(&snap);
    assert!(
        !made.is_empty() && made.len() <= 5,
        "{} droplets",
        made.len()
    );
    for d in made {
        let r = &state["resources"][format!("node.{}", d["name"].as_str().unwrap())];
        assert_eq!(r["id"].as_str(), Some(d["id"].to_string().as_str()), "{r}");
    }
    assert!(state["resources"]["network.mesos"]["id"].is_string());

    // An unreachable API: a clear line, and the state exactly as it was.
    let before = std::fs::read(ws.state()).unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = ws.deploy(&dead);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = failure_lines(&out);
    assert_eq!(lines.len(), 1, "{}", text(&out));
    assert!(
        lines[0].contains("cannot be reached") && lines[0].contains('`'),
        "{}",
        lines[0]
    );
    assert_eq!(
        std::fs::read(ws.state()).unwrap(),
        before,
        "the state changed"
    );

    cloud.sim.set_config(sim_config());
    dispose_leaves_nothing(&cloud.sim, &ws, &cloud.api_url);
}

/// Every key of every JSON body fitter sent exists in the spec's schema for that request:
/// Prism cannot tell, because the spec allows additional properties.
#[test]
fn every_key_fitter_sends_is_in_the_spec() {
    let cloud = cloud();
    // Four commands in a row exceed the 250 a minute that three processes cannot share a
    // limiter for; the limit is not what this test is about.
    cloud.sim.set_config(Config {
        rate_limit_per_minute: 2_000,
        ..sim_config()
    });
    let ws = Workspace::new();
    let out = ws.deploy(&cloud.api_url);
    assert!(out.status.success(), "deploy: {}", text(&out));
    // A changed size: droplet actions (power off, resize, power on).
    let out = ws.run(&cloud.api_url, BIGGER_AGENTS);
    assert!(out.status.success(), "resize: {}", text(&out));
    // Changed roles: droplets retagged, a firewall replaced in place (PUT).
    let plan = ws.dir.path().join("mesos-digitalocean.yaml");
    let original = std::fs::read_to_string(root().join(PLAN)).unwrap();
    std::fs::write(
        &plan,
        original.replace(
            "roles: [mesos-agent, docker]",
            "roles: [mesos-agent, marathon]",
        ),
    )
    .unwrap();
    let out = ws
        .command_for(&cloud.api_url, &plan, BIGGER_AGENTS)
        .output()
        .unwrap();
    assert!(out.status.success(), "roles: {}", text(&out));
    let out = ws.run(&cloud.api_url, &["dispose", "--yes"]);
    assert!(out.status.success(), "dispose: {}", text(&out));
    let requests = cloud.sim.requests();
    drop(cloud);

    // Through the positioned tree: serde_json refuses the spec's 2^64 - 1 maximums.
    let text = std::fs::read_to_string(spec_path()).unwrap();
    let docs = fitter::yaml::parse_documents(&text, Some(1));
    assert!(docs.syntax_error.is_none(), "{:?}", docs.syntax_error);
    let spec: Json = docs.docs[0].to_json();
    assert!(
        spec["paths"]["/v2/droplets"]["post"].is_object(),
        "the spec has its paths"
    );
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for r in &requests {
        let Some(body) = &r.body else { continue };
        let Some(schema) = request_schema(&spec, &r.method, &r.path) else {
            problems.push(format!("{} {}: no operation in the spec", r.method, r.path));
            continue;
        };
        let mut unknown = Vec::new();
        check_keys(&spec, schema, body, "", &mut unknown);
        for k in unknown {
            problems.push(format!("{} {}: `{k}` is not in the spec", r.method, r.path));
        }
        checked.insert(format!(
            "{} {}",
            r.method,
            template_of(&spec, &r.path).unwrap_or_default()
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for op in [
        "POST /v2/droplets",
        "POST /v2/firewalls",
        "POST /v2/vpcs",
        "POST /v2/tags",
        "POST /v2/account/keys",
        "POST /v2/droplets/{droplet_id}/actions",
        "POST /v2/tags/{tag_id}/resources",
        "DELETE /v2/tags/{tag_id}/resources",
        "PUT /v2/firewalls/{firewall_id}",
    ] {
        assert!(checked.contains(op), "{op} was not exercised: {checked:?}");
    }
}
