//! LXD firewalls changed on a running deployment: fitter updates the network ACLs in place
//! (LXD 5.0 once lost such later updates), and their destinations are node addresses, so a
//! node added to a live deployment goes through the same update. The test opens a port and
//! adds a node, then checks with real connections, from the host and between containers,
//! that what the new plan opens is open and what it does not stays closed.
//!
//! Needs the LXD daemon and image of `scripts/local-cloud.sh`: `#[ignore]`d in a plain
//! `cargo test`, run by `scripts/test.sh` (and CI) with `--include-ignored`.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{Workspace, text};

const DEPLOYMENT: &str = "fitter-fw-update";

fn plan(web1_glue: &str, web2: bool) -> String {
    let mut plan = format!(
        "---\ndefaults:\n  provider: lxd\n  ethernet:\n    name: fwupdate\n    subnet: 10.96.0.0/24\n\
         ---\nlocationId: local\nblueprints:\n  - web:\n      firewall:\n        - protocol: all\n          sources: [nodes]\n\
         \x20     nodes:\n        - web1:\n            glue: [{web1_glue}]\n"
    );
    if web2 {
        plan.push_str("        - web2:\n            glue: [internet 22]\n");
    }
    plan
}

/// Runs a command in one of the deployment's containers; its exit status.
fn on(node: &str, command: &str) -> bool {
    Command::new("lxc")
        .args([
            "exec",
            &format!("{DEPLOYMENT}-{node}"),
            "--",
            "sh",
            "-c",
            command,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A listener on `port` in the node, there once `ss` shows it.
fn listen(node: &str, port: u16) {
    assert!(
        on(
            node,
            &format!(
                "nohup nc -lk -p {port} >/dev/null 2>&1 </dev/null & \
                 for i in $(seq 50); do ss -ltn | grep -q ':{port} ' && exit 0; sleep 0.1; done; exit 1"
            )
        ),
        "no listener on {node}:{port}"
    );
}

fn from_host(ip: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(2)).is_ok()
}

fn between(from: &str, ip: Ipv4Addr, port: u16) -> bool {
    on(from, &format!("nc -z -w 2 {ip} {port}"))
}

fn address(ws: &Workspace, node: &str) -> Ipv4Addr {
    let state = ws.state();
    let ip = state.resources[&format!("node.{node}")].outputs.private_ip;
    match ip.expect("a private address") {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("{node}: {other}"),
    }
}

fn deploy(ws: &Workspace) {
    let out = ws.fitter(&["deploy"]);
    assert!(out.status.success(), "deploy: {}", text(&out));
}

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn a_rule_changed_and_a_node_added_on_a_running_deployment_reach_the_firewall() {
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), plan("internet 22", false)).unwrap();
    let ws = Workspace::copy_of(source.path(), DEPLOYMENT, None);
    deploy(&ws);
    let web1 = address(&ws, "web1");
    listen("web1", 8080);
    assert!(from_host(web1, 22), "web1:22 is open");
    assert!(!from_host(web1, 8080), "web1:8080 is not open yet");

    // Open 8080 on web1 and add web2, on the running deployment.
    std::fs::write(&ws.plan, plan("internet 22 8080", true)).unwrap();
    let planned = ws.fitter(&["plan"]);
    assert!(planned.status.success(), "plan: {}", text(&planned));
    deploy(&ws);
    let web2 = address(&ws, "web2");
    listen("web2", 9999);
    assert!(from_host(web1, 8080), "web1:8080 is open now");
    assert!(
        between("web2", web1, 8080),
        "web2 reaches web1 (all among the nodes)"
    );
    assert!(between("web1", web2, 9999), "web1 reaches the new node");
    assert!(!from_host(web2, 9999), "web2:9999 is not open to the host");
    assert!(from_host(web2, 22), "web2:22 is open");

    let out = ws.fitter(&["dispose"]);
    assert!(out.status.success(), "dispose: {}", text(&out));
    let left = Command::new("lxc")
        .args(["list", "--format", "csv", "-c", "n"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(!left.contains(DEPLOYMENT), "containers left: {left}");
}
