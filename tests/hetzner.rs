//! fitter against Hetzner Cloud's API as `fitter-sim --api hetzner` fakes it, with Prism in
//! between checking every request and answer against the bundled spec
//! (`../shared/hetzner-cloud-openapi.json`): fittings/mesos-hetzner.yaml (3 masters, 9
//! agents) deployed, deployed again without a write, listed, disposed of; under faults, kills
//! and refusals. The tests share one simulator and one Prism, so they run one at a time,
//! each with the simulator reset.

use std::collections::BTreeSet;
use std::process::Output;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use fitter_sim::{Config, Fault, Matcher, Simulator, Snapshot};
use serde_json::Value as Json;

mod support;
use support::prism::{free_port, start_prism};
use support::spec::{check_keys, request_schema, template_of};
use support::{Workspace, killed_when, raw_call, root, text};

const PLAN: &str = "fittings/mesos-hetzner.yaml";
const DEPLOYMENT: &str = "mesos-hetzner";
const TOKEN: &str = "hcloud_fitter_test_token_0123456789";

struct Cloud {
    sim: Simulator,
    /// What fitter is pointed at (`HCLOUD_ENDPOINT`): Prism, in front of the simulator.
    endpoint: String,
}

fn spec_path() -> std::path::PathBuf {
    root().join("../shared/hetzner-cloud-openapi.json")
}

fn sim_config() -> Config {
    Config {
        active_delay: Duration::from_secs(2),
        delete_delay: Duration::from_millis(500),
        token: Some(TOKEN.to_string()),
        ..Config::hetzner()
    }
}

/// The shared simulator and Prism, for one test at a time.
fn cloud() -> MutexGuard<'static, Cloud> {
    static CLOUD: OnceLock<Mutex<Cloud>> = OnceLock::new();
    let cloud = CLOUD.get_or_init(|| {
        let sim = Simulator::start_background("127.0.0.1:0".parse().unwrap(), sim_config())
            .expect("the simulator starts");
        // Prism matches the spec's paths (`/servers`) and appends them to the upstream URL.
        let endpoint = start_prism(&spec_path(), &sim.hetzner_url());
        Mutex::new(Cloud { sim, endpoint })
    });
    let guard = cloud.lock().unwrap_or_else(|p| p.into_inner());
    guard.sim.reset();
    guard.sim.set_config(sim_config());
    guard
}

fn hetzner(ws: &Workspace, endpoint: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = ws.command_for(endpoint, &root().join(PLAN), args);
    cmd.env("HCLOUD_TOKEN", TOKEN)
        .env("HCLOUD_ENDPOINT", endpoint);
    cmd
}

fn run(ws: &Workspace, endpoint: &str, args: &[&str]) -> Output {
    hetzner(ws, endpoint, args).output().unwrap()
}

fn deploy(ws: &Workspace, endpoint: &str) -> Output {
    run(ws, endpoint, &["deploy", "--yes", "--skip-bootstrap"])
}

/// Whether a resource carries the deployment's label.
fn labelled(item: &Json) -> bool {
    item["labels"]["fitter/deployment"] == DEPLOYMENT
}

fn servers(snap: &Snapshot) -> Vec<&Json> {
    snap.hetzner
        .servers
        .iter()
        .filter(|s| labelled(s))
        .collect()
}

fn names(items: &[&Json]) -> Vec<String> {
    let mut n: Vec<String> = items
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn expected_names() -> Vec<String> {
    let mut n: Vec<String> = (1..=3)
        .map(|i| format!("master{i}"))
        .chain((1..=9).map(|i| format!("agent{i}")))
        .collect();
    n.sort();
    n
}

/// Exactly the plan: 12 servers with distinct names on one network, two firewalls, one
/// placement group holding the three masters, one key.
fn assert_exactly_the_plan(snap: &Snapshot) {
    let servers = servers(snap);
    assert_eq!(
        names(&servers),
        expected_names(),
        "servers of the deployment"
    );
    let networks: Vec<&Json> = snap
        .hetzner
        .networks
        .iter()
        .filter(|n| labelled(n))
        .collect();
    assert_eq!(networks.len(), 1, "networks: {networks:?}");
    assert_eq!(networks[0]["ip_range"], "10.10.0.0/24");
    assert_eq!(networks[0]["name"], format!("fitter-{DEPLOYMENT}-mesos"));
    for s in &servers {
        assert_eq!(
            s["private_net"][0]["network"], networks[0]["id"],
            "{} is on the deployment's network",
            s["name"]
        );
    }
    let mut firewalls: Vec<String> = snap
        .hetzner
        .firewalls
        .iter()
        .filter(|f| labelled(f))
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    firewalls.sort();
    assert_eq!(
        firewalls,
        [
            format!("fitter-{DEPLOYMENT}-agents"),
            format!("fitter-{DEPLOYMENT}-masters")
        ]
    );
    let groups: Vec<&Json> = snap
        .hetzner
        .placement_groups
        .iter()
        .filter(|g| labelled(g))
        .collect();
    assert_eq!(groups.len(), 1, "placement groups: {groups:?}");
    assert_eq!(groups[0]["type"], "spread");
    let mut in_group: Vec<String> = servers
        .iter()
        .filter(|s| s["placement_group"]["id"] == groups[0]["id"])
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    in_group.sort();
    assert_eq!(in_group, ["master1", "master2", "master3"]);
    assert_eq!(
        snap.hetzner.ssh_keys.iter().filter(|k| labelled(k)).count(),
        1,
        "the operator's key: {:?}",
        snap.hetzner.ssh_keys
    );
}

/// Nothing carries the deployment's label any more.
fn assert_nothing_left(snap: &Snapshot) {
    let h = &snap.hetzner;
    for (what, items) in [
        ("servers", &h.servers),
        ("networks", &h.networks),
        ("firewalls", &h.firewalls),
        ("placement groups", &h.placement_groups),
        ("keys", &h.ssh_keys),
    ] {
        let left: Vec<&Json> = items.iter().filter(|i| labelled(i)).collect();
        assert!(left.is_empty(), "{what} left: {left:?}");
    }
}

fn dispose_leaves_nothing(cloud: &Cloud, ws: &Workspace) {
    let out = run(ws, &cloud.endpoint, &["dispose", "--yes"]);
    assert!(out.status.success(), "dispose: {}", text(&out));
    assert_nothing_left(&cloud.sim.snapshot());
}

fn writes(snap: &Snapshot) -> u64 {
    snap.counts.post + snap.counts.put + snap.counts.patch + snap.counts.delete
}

fn matcher(method: &str, path: &str, skip: u32, times: u32) -> Matcher {
    Matcher {
        method: Some(method.to_string()),
        path_prefix: path.to_string(),
        skip,
        times,
    }
}

#[test]
fn deploy_redeploy_information_inventory_dispose_through_prism() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let snap = cloud.sim.snapshot();
    assert_exactly_the_plan(&snap);
    for s in servers(&snap) {
        assert_eq!(s["status"], "running", "{}", s["name"]);
        assert_eq!(s["server_type"]["name"], "cx22");
        assert_eq!(s["image"]["name"], "debian-12");
        let firewall = if s["name"].as_str().unwrap().starts_with("master") {
            "masters"
        } else {
            "agents"
        };
        assert_eq!(s["labels"]["fitter/firewall"], firewall);
    }
    // One create per server, each with its own host key in its user_data.
    let creates: Vec<Json> = cloud
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/servers")
        .filter_map(|r| r.body.clone())
        .collect();
    assert_eq!(creates.len(), 12, "server creates");
    let state = ws.state_json();
    for name in expected_names() {
        let r = &state["resources"][format!("node.{name}")];
        let public = r["outputs"]["host_key"].as_str().unwrap();
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
        let body = creates.iter().find(|b| b["name"] == name.as_str()).unwrap();
        assert!(
            body["user_data"].as_str().unwrap().contains(public),
            "{name}'s host key is in its user_data"
        );
    }
    // Readiness came from listings by label, not one GET per server.
    let gets_by_id = cloud
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/v1/servers/"))
        .count();
    assert_eq!(gets_by_id, 0, "servers read one by one");

    // A second deploy: no change, no write call, the state untouched.
    let before = cloud.sim.snapshot();
    let state_before = std::fs::read(ws.state()).unwrap();
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "second deploy: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "{}",
        text(&out)
    );
    assert_eq!(
        writes(&cloud.sim.snapshot()),
        writes(&before),
        "write calls"
    );
    assert_eq!(std::fs::read(ws.state()).unwrap(), state_before);

    // information and inventory list all twelve.
    let out = run(&ws, &cloud.endpoint, &["information", "--offline"]);
    assert!(out.status.success(), "information: {}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    for name in expected_names() {
        assert!(shown.contains(&name), "{name} in information:\n{shown}");
    }
    let out = run(&ws, &cloud.endpoint, &["inventory", "--format", "json"]);
    assert!(out.status.success(), "inventory: {}", text(&out));
    let list: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 12, "{list}");

    dispose_leaves_nothing(&cloud, &ws);
}

#[test]
fn faults_429_5xx_lost_creates_and_late_listings_still_give_exactly_the_plan() {
    let cloud = cloud();
    let ws = Workspace::new();
    let sim = &cloud.sim;
    sim.inject(Fault::Status {
        matcher: matcher("POST", "/v1/servers", 0, 1),
        status: 429,
    });
    sim.inject(Fault::Status {
        matcher: matcher("POST", "/v1/servers", 1, 1),
        status: 500,
    });
    sim.inject(Fault::LostResponse {
        matcher: matcher("POST", "/v1/servers", 2, 2),
    });
    sim.inject(Fault::LostResponse {
        matcher: matcher("POST", "/v1/networks", 0, 1),
    });
    sim.inject(Fault::LostResponse {
        matcher: matcher("POST", "/v1/firewalls", 0, 1),
    });
    sim.inject(Fault::Status {
        matcher: matcher("GET", "/v1/servers", 0, 2),
        status: 503,
    });
    sim.inject(Fault::Unlisted {
        name: "agent7".into(),
        delay: Duration::from_secs(4),
    });
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "deploy under faults: {}", text(&out));
    assert_exactly_the_plan(&sim.snapshot());
    let statuses: BTreeSet<u16> = sim.requests().iter().map(|r| r.status).collect();
    for code in [429u16, 500, 503] {
        assert!(
            statuses.contains(&code),
            "no {code} was served: {statuses:?}"
        );
    }
    sim.clear_faults();
    dispose_leaves_nothing(&cloud, &ws);
}

/// Runs a deploy and kills it (SIGKILL) once `when` holds.
fn deploy_killed_when(cloud: &Cloud, ws: &Workspace, what: &str, when: impl Fn() -> bool) {
    killed_when(
        hetzner(
            ws,
            &cloud.endpoint,
            &["deploy", "--yes", "--skip-bootstrap"],
        ),
        what,
        when,
    );
}

#[test]
fn a_deploy_killed_at_several_points_resumes_to_exactly_the_plan() {
    let cloud = cloud();
    let ws = Workspace::new();
    cloud.sim.set_config(Config {
        active_delay: Duration::from_secs(3),
        ..sim_config()
    });
    // Slow creates widen the windows between the kill points.
    cloud.sim.inject(Fault::Slow {
        matcher: matcher("POST", "/v1/servers", 0, 0),
        delay: Duration::from_millis(300),
    });
    deploy_killed_when(&cloud, &ws, "the network exists", || {
        cloud.sim.snapshot().hetzner.networks.iter().any(labelled)
    });
    deploy_killed_when(&cloud, &ws, "the first servers exist", || {
        !servers(&cloud.sim.snapshot()).is_empty()
    });
    deploy_killed_when(&cloud, &ws, "more servers exist", || {
        servers(&cloud.sim.snapshot()).len() >= 10
    });
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "resumed deploy: {}", text(&out));
    assert_exactly_the_plan(&cloud.sim.snapshot());
    let out = deploy(&ws, &cloud.endpoint);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("No changes."),
        "a deploy after the resume: {}",
        text(&out)
    );
    cloud.sim.clear_faults();
    dispose_leaves_nothing(&cloud, &ws);
}

/// The lines of a run that say something failed.
fn failure_lines(out: &Output) -> Vec<String> {
    text(out)
        .lines()
        .filter(|l| l.contains(": failed:") || l.starts_with("error:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_bad_token_and_an_unreachable_api_are_one_clear_line_and_keep_the_state() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = hetzner(
        &ws,
        &cloud.endpoint,
        &["deploy", "--yes", "--skip-bootstrap"],
    )
    .env("HCLOUD_TOKEN", "hcloud_wrong_token")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        !all.contains("hcloud_wrong_token") && !all.contains(TOKEN),
        "{all}"
    );
    let lines = failure_lines(&out);
    assert_eq!(lines.len(), 1, "one line: {all}");
    assert!(
        lines[0].contains("(HTTP 401)") && lines[0].contains("HCLOUD_TOKEN"),
        "{}",
        lines[0]
    );
    assert!(servers(&cloud.sim.snapshot()).is_empty());

    // On a deployment that exists: a wrong token, then an API that does not answer, each
    // one line, and the state stays as it was.
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let before = std::fs::read(ws.state()).unwrap();
    let bigger = [
        "deploy",
        "--yes",
        "--skip-bootstrap",
        "-p",
        "agentSize=cx32",
    ];
    let out = hetzner(&ws, &cloud.endpoint, &bigger)
        .env("HCLOUD_TOKEN", "hcloud_wrong_token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(failure_lines(&out).len(), 1, "{}", text(&out));
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = hetzner(&ws, &dead, &bigger).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = failure_lines(&out);
    assert_eq!(lines.len(), 1, "{}", text(&out));
    assert!(lines[0].contains("cannot be reached"), "{}", lines[0]);
    assert_eq!(
        std::fs::read(ws.state()).unwrap(),
        before,
        "the state is kept"
    );
    dispose_leaves_nothing(&cloud, &ws);
}

#[test]
fn a_resource_limit_names_the_servers_and_keeps_what_was_made() {
    let cloud = cloud();
    let ws = Workspace::new();
    cloud.sim.set_config(Config {
        droplet_limit: Some(5),
        ..sim_config()
    });
    let out = deploy(&ws, &cloud.endpoint);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed: Vec<String> = failure_lines(&out)
        .into_iter()
        .filter(|l| l.contains(": failed:"))
        .collect();
    assert_eq!(failed.len(), 7, "{}", text(&out));
    for line in &failed {
        assert!(line.starts_with("node."), "{line}");
        assert!(
            line.contains("resource_limit_exceeded") && line.contains("(HTTP 403)"),
            "{line}"
        );
    }
    // The five servers that fit are in the state, with their ids.
    let state = ws.state_json();
    let made = servers(&cloud.sim.snapshot()).len();
    assert_eq!(made, 5);
    let recorded = expected_names()
        .iter()
        .filter(|n| state["resources"][format!("node.{n}")]["id"].is_string())
        .count();
    assert_eq!(recorded, 5, "{state}");
    cloud.sim.set_config(sim_config());
    let out = deploy(&ws, &cloud.endpoint);
    assert!(
        out.status.success(),
        "deploy once the limit is raised: {}",
        text(&out)
    );
    assert_exactly_the_plan(&cloud.sim.snapshot());
    dispose_leaves_nothing(&cloud, &ws);
}

/// Every key of every JSON body fitter sent exists in the spec's schema for that request:
/// Prism cannot tell, because the spec allows additional properties.
#[test]
fn every_key_fitter_sends_is_in_the_spec() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "deploy: {}", text(&out));
    // Changed roles: servers relabelled, the firewall's rules set again.
    let plan = ws.dir.path().join("mesos-hetzner.yaml");
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
        .command_for(
            &cloud.endpoint,
            &plan,
            &["deploy", "--yes", "--skip-bootstrap"],
        )
        .env("HCLOUD_TOKEN", TOKEN)
        .env("HCLOUD_ENDPOINT", &cloud.endpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "roles: {}", text(&out));
    let out = run(&ws, &cloud.endpoint, &["dispose", "--yes"]);
    assert!(out.status.success(), "dispose: {}", text(&out));
    let requests = cloud.sim.requests();
    drop(cloud);

    let spec: Json = serde_json::from_str(&std::fs::read_to_string(spec_path()).unwrap()).unwrap();
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for r in &requests {
        let Some(body) = &r.body else { continue };
        let path = r.path.strip_prefix("/v1").unwrap_or(&r.path);
        let Some(schema) = request_schema(&spec, &r.method, path) else {
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
            template_of(&spec, path).unwrap_or_default()
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    for op in [
        "POST /servers",
        "PUT /servers/{id}",
        "POST /networks",
        "POST /firewalls",
        "POST /firewalls/{id}/actions/set_rules",
        "POST /firewalls/{id}/actions/remove_from_resources",
        "POST /ssh_keys",
        "POST /placement_groups",
    ] {
        assert!(checked.contains(op), "{op} was not exercised: {checked:?}");
    }
}

/// A server of a name the plan uses, made behind fitter's back without the deployment's
/// label: fitter neither adopts it nor makes a second one (the name is unique per project);
/// that node fails with a line naming the server, the others are made, and once the
/// stranger is gone the next deploy finishes the plan.
#[test]
fn a_name_taken_by_a_server_fitter_does_not_own_is_an_error_naming_it() {
    let cloud = cloud();
    let ws = Workspace::new();
    let made = raw_call(
        cloud.sim.addr(),
        TOKEN,
        "POST",
        "/v1/servers",
        Some(
            r#"{"name": "agent1", "server_type": "cx22", "image": "debian-12", "location": "fsn1"}"#,
        ),
    );
    assert!(made.starts_with("HTTP/1.1 201"), "{made}");
    let stranger = cloud
        .sim
        .snapshot()
        .hetzner
        .servers
        .iter()
        .find(|s| s["name"] == "agent1")
        .map(|s| s["id"].as_u64().unwrap())
        .unwrap();
    let out = deploy(&ws, &cloud.endpoint);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = failure_lines(&out);
    let failed: Vec<&String> = lines.iter().filter(|l| l.contains(": failed:")).collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert!(
        failed[0].starts_with("node.agent1")
            && failed[0].contains(&format!("server `agent1`, id {stranger}"))
            && failed[0].contains("does not belong to deployment `mesos-hetzner`"),
        "{}",
        failed[0]
    );
    let snap = cloud.sim.snapshot();
    assert_eq!(servers(&snap).len(), 11, "the other servers are made");
    assert_eq!(
        snap.hetzner
            .servers
            .iter()
            .filter(|s| s["name"] == "agent1")
            .count(),
        1,
        "no second agent1"
    );
    let gone = raw_call(
        cloud.sim.addr(),
        TOKEN,
        "DELETE",
        &format!("/v1/servers/{stranger}"),
        None,
    );
    assert!(gone.starts_with("HTTP/1.1 200"), "{gone}");
    // The stranger keeps its name while it is being deleted; wait until it is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cloud
        .sim
        .snapshot()
        .hetzner
        .servers
        .iter()
        .any(|s| s["id"] == stranger)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the stranger is never gone"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = deploy(&ws, &cloud.endpoint);
    assert!(
        out.status.success(),
        "deploy once the stranger is gone: {}",
        text(&out)
    );
    assert_exactly_the_plan(&cloud.sim.snapshot());
    dispose_leaves_nothing(&cloud, &ws);
}

/// Dispose with the state file lost finds everything by the deployment's label.
#[test]
fn dispose_without_the_state_file_finds_everything_by_label() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "deploy: {}", text(&out));
    std::fs::remove_file(ws.state()).unwrap();
    dispose_leaves_nothing(&cloud, &ws);
}

/// A firewall's removal from its servers is an action: dispose reads the actions it waits
/// for by id (`GET /actions?id=..`), as many as are pending in one call, until they end.
#[test]
fn firewall_actions_are_read_by_id_until_they_end() {
    let cloud = cloud();
    let ws = Workspace::new();
    let out = deploy(&ws, &cloud.endpoint);
    assert!(out.status.success(), "deploy: {}", text(&out));
    cloud.sim.inject(Fault::StuckActions);
    let before = cloud.sim.requests().len();
    let mut dispose = hetzner(&ws, &cloud.endpoint, &["dispose", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let read_by_id = loop {
        let seen = cloud.sim.requests()[before..]
            .iter()
            .find(|r| r.method == "GET" && r.path == "/v1/actions" && r.query.contains("id="))
            .map(|r| r.query.clone());
        if let Some(query) = seen {
            break query;
        }
        assert!(
            dispose.try_wait().unwrap().is_none(),
            "dispose ended without reading its actions"
        );
        assert!(std::time::Instant::now() < deadline, "no GET /actions?id=");
        std::thread::sleep(Duration::from_millis(20));
    };
    cloud.sim.clear_faults();
    let out = dispose.wait_with_output().unwrap();
    assert!(out.status.success(), "dispose: {}", text(&out));
    assert!(read_by_id.starts_with("id="), "{read_by_id}");
    assert_nothing_left(&cloud.sim.snapshot());
}
