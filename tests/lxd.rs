//! End to end on a real LXD: `fitter deploy fittings/mesos-local.yaml` makes 5 containers
//! reachable over SSH with their pinned host keys, `information` shows them, a second deploy
//! changes nothing, the firewall really refuses what the plan does not open, a deploy killed
//! with SIGKILL and run again converges without duplicates, and dispose leaves nothing.
//!
//! These tests need the LXD daemon and the node image that `scripts/local-cloud.sh` sets up,
//! so they are `#[ignore]`d in a plain `cargo test`; `scripts/test.sh` (and CI) runs the
//! script and then the whole suite with `--include-ignored`. They share one LXD, so they
//! take turns.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fitter::ssh::{OperatorKey, Session, SshError};
use fitter::state::{self, State};
use serde_json::Value as Json;

static LXD: Mutex<()> = Mutex::new(());

const DEPLOYMENT: &str = "mesos-local";

struct Workspace {
    _dir: tempfile::TempDir,
    plan: PathBuf,
    key: PathBuf,
}

impl Workspace {
    /// A copy of the example plan in a temporary folder, so its state lives there too.
    fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("mesos-local.yaml");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fittings/mesos-local.yaml"),
            &plan,
        )
        .unwrap();
        let key = dir.path().join("operator_ed25519");
        OperatorKey::create(&key).unwrap();
        Workspace {
            _dir: dir,
            plan,
            key,
        }
    }

    fn fitter(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitter"));
        cmd.args(args).arg(&self.plan);
        if matches!(args.first(), Some(&"deploy") | Some(&"dispose")) {
            cmd.arg("--yes").arg("--ssh-key").arg(&self.key);
        }
        cmd.output().unwrap()
    }

    fn state_path(&self) -> PathBuf {
        state::default_path(&self.plan)
    }

    fn state(&self) -> State {
        state::read(&self.state_path(), DEPLOYMENT)
            .unwrap()
            .expect("a state file")
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What LXD holds that carries the deployment's mark, by kind, from the `lxc` client (the
/// test checks the provider with another tool than the provider itself).
fn owned(list: &[&str]) -> Vec<String> {
    let out = Command::new("lxc")
        .args(list)
        .args(["--format", "json"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the lxc client runs");
    assert!(
        out.status.success(),
        "lxc {list:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = items
        .iter()
        .filter(|i| i["config"]["user.fitter.deployment"] == DEPLOYMENT)
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn running_instances() -> Vec<String> {
    let out = Command::new("lxc")
        .args(["list", "--format", "json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let items: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = items
        .iter()
        .filter(|i| i["config"]["user.fitter.deployment"] == DEPLOYMENT && i["status"] == "Running")
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn node_output(state: &State, node: &str, key: &str) -> String {
    state.resources[&format!("node.{node}")].outputs[key]
        .as_str()
        .unwrap()
        .to_string()
}

fn dispose_everything(ws: &Workspace) {
    let out = ws.fitter(&["dispose"]);
    assert!(out.status.success(), "dispose failed:\n{}", text(&out));
    assert!(
        owned(&["list"]).is_empty(),
        "containers left: {:?}",
        owned(&["list"])
    );
    assert!(
        owned(&["network", "list"]).is_empty(),
        "networks left: {:?}",
        owned(&["network", "list"])
    );
    let acls = owned(&["network", "acl", "list"]);
    assert!(acls.is_empty(), "ACLs left: {acls:?}");
}

fn expected_instances() -> Vec<String> {
    let mut v: Vec<String> = ["master1", "master2", "master3", "agent1", "agent2"]
        .iter()
        .map(|n| format!("{DEPLOYMENT}-{n}"))
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn deploy_inspect_redeploy_and_dispose() {
    let _turn = LXD.lock().unwrap_or_else(|e| e.into_inner());
    let ws = Workspace::new();

    let out = ws.fitter(&["deploy"]);
    assert!(out.status.success(), "deploy failed:\n{}", text(&out));
    assert_eq!(running_instances(), expected_instances());
    assert_eq!(owned(&["network", "list"]), ["fitter-mesos"]);

    // Every node answers SSH with the host key fitter generated for it.
    let state = ws.state();
    let operator = OperatorKey::load(&ws.key).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for node in ["master1", "master2", "master3", "agent1", "agent2"] {
        let ip: Ipv4Addr = node_output(&state, node, "private_ip").parse().unwrap();
        let key = node_output(&state, node, "host_key");
        let hostname = rt.block_on(async {
            let s = Session::connect(
                node,
                SocketAddr::from((ip, 22)),
                &key,
                &operator,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            let out = s.run("hostname").await.unwrap();
            s.close().await;
            out
        });
        assert_eq!(hostname.status, 0);
        assert_eq!(hostname.stdout.trim(), node);
    }
    // A node showing another key than the pinned one is refused.
    let master1: Ipv4Addr = node_output(&state, "master1", "private_ip")
        .parse()
        .unwrap();
    let wrong = node_output(&state, "master2", "host_key");
    let refused = rt.block_on(Session::connect(
        "master1",
        SocketAddr::from((master1, 22)),
        &wrong,
        &operator,
        Duration::from_secs(10),
    ));
    assert!(
        matches!(refused, Err(SshError::HostKeyMismatch { .. })),
        "a swapped host key must be refused, got {:?}",
        refused.err().map(|e| e.to_string())
    );
    // The masters have the fixed addresses of the plan.
    assert_eq!(master1, Ipv4Addr::new(10, 98, 0, 11));

    // information lists the nodes with their addresses.
    let info = ws.fitter(&["information", "--json"]);
    assert!(info.status.success(), "{}", text(&info));
    let info: Json = serde_json::from_slice(&info.stdout).unwrap();
    let nodes = info["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    for n in nodes {
        assert_eq!(n["status"], "ready", "{n}");
        assert!(
            n["private_ip"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10.98.0.")),
            "{n}"
        );
    }
    assert_eq!(
        info["endpoints"]["zookeeper"],
        "10.98.0.11:2181,10.98.0.12:2181,10.98.0.13:2181"
    );

    // A second deploy changes nothing: no write to the state, nothing in LXD.
    let serial = ws.state().serial;
    let again = ws.fitter(&["deploy"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("No changes."),
        "{}",
        text(&again)
    );
    assert_eq!(
        ws.state().serial,
        serial,
        "a no-change deploy must not write the state"
    );
    assert_eq!(running_instances(), expected_instances());

    firewall_refuses_what_the_plan_does_not_open(&ws);

    dispose_everything(&ws);
}

/// Starts a listener inside a container, on a port, through `lxc exec`.
fn listen(instance: &str, port: u16) {
    let status = Command::new("lxc")
        .args([
            "exec",
            instance,
            "--",
            "sh",
            "-c",
            &format!("nohup nc -lk -p {port} >/dev/null 2>&1 </dev/null & sleep 0.3; ss -ltn | grep -q ':{port} '"),
        ])
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "no listener on {instance}:{port}");
}

fn reachable(ip: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(2)).is_ok()
}

fn firewall_refuses_what_the_plan_does_not_open(ws: &Workspace) {
    let state = ws.state();
    let master1: Ipv4Addr = node_output(&state, "master1", "private_ip")
        .parse()
        .unwrap();
    let agent1: Ipv4Addr = node_output(&state, "agent1", "private_ip").parse().unwrap();
    // Masters open 5050 to anywhere; agents do not.
    listen(&format!("{DEPLOYMENT}-master1"), 5050);
    listen(&format!("{DEPLOYMENT}-master1"), 9999);
    listen(&format!("{DEPLOYMENT}-agent1"), 5050);
    assert!(
        reachable(master1, 5050),
        "master1:5050 is opened by the plan"
    );
    assert!(reachable(master1, 22), "master1:22 is opened by the plan");
    assert!(
        !reachable(master1, 9999),
        "master1:9999 is not opened by the plan"
    );
    assert!(
        !reachable(agent1, 5050),
        "agent1:5050 is not opened by the plan"
    );
    assert!(reachable(agent1, 22), "agent1:22 is opened by the plan");
}

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn a_deploy_killed_midway_converges_without_duplicates() {
    let _turn = LXD.lock().unwrap_or_else(|e| e.into_inner());
    let ws = Workspace::new();
    // Kill at different points: as soon as the state names a network, a firewall, a node.
    for (round, wanted) in ["network.", "firewall.", "node."].iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fitter"))
            .args(["deploy", "--yes", "--ssh-key"])
            .arg(&ws.key)
            .arg(&ws.plan)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let seen = state::read(&ws.state_path(), DEPLOYMENT)
                .ok()
                .flatten()
                .is_some_and(|s| s.resources.keys().any(|k| k.starts_with(wanted)));
            if seen || Instant::now() > deadline {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        eprintln!("round {round}: killed after `{wanted}` appeared in the state");
    }
    let out = ws.fitter(&["deploy"]);
    assert!(
        out.status.success(),
        "the resumed deploy failed:\n{}",
        text(&out)
    );
    assert_eq!(
        running_instances(),
        expected_instances(),
        "exactly the plan, no duplicate"
    );
    let again = ws.fitter(&["deploy"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("No changes."),
        "{}",
        text(&again)
    );
    dispose_everything(&ws);
}
