//! What the tests of the example LXD deployment (`fittings/mesos-local.yaml`, deployment
//! `mesos-local`) share: its workspace, what LXD holds of it by the `lxc` client (another
//! tool than fitter's provider), and dispose leaving nothing. The test binaries that use it
//! run one after another, so they may all use the one deployment name.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fitter::state::State;
use serde_json::Value as Json;

use super::common::{Workspace, text};

pub const DEPLOYMENT: &str = "mesos-local";

/// A copy of the example plan in a temporary folder, so its state lives there too.
pub fn workspace() -> Workspace {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("fittings/mesos-local.yaml");
    Workspace::copy_of(&example, DEPLOYMENT, None)
}

/// What LXD holds that carries the deployment's mark, by kind, from the `lxc` client (the
/// test checks the provider with another tool than the provider itself).
pub fn owned(list: &[&str]) -> Vec<String> {
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

pub fn running_instances() -> Vec<String> {
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

/// One of a node's recorded outputs, as the state file has it.
pub fn node_output(state: &State, node: &str, key: &str) -> String {
    let outputs = serde_json::to_value(&state.resources[&format!("node.{node}")].outputs).unwrap();
    outputs[key].as_str().unwrap().to_string()
}

pub fn dispose_everything(ws: &Workspace) {
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

pub fn expected_instances() -> Vec<String> {
    let mut v: Vec<String> = ["master1", "master2", "master3", "agent1", "agent2"]
        .iter()
        .map(|n| format!("{DEPLOYMENT}-{n}"))
        .collect();
    v.sort();
    v
}

/// Runs a shell command in a container through `lxc exec` (the test's own view, independent
/// of fitter's SSH).
pub fn exec(instance: &str, command: &str) -> (i32, String) {
    // The lxc client itself failing without a word (seen once in CI under load: no output
    // at all from `...; echo $?`) is tried again, twice at most; a command's own answer,
    // whatever it is, is returned as it came.
    let mut tries = 0;
    loop {
        tries += 1;
        let out = Command::new("lxc")
            .args([
                "exec",
                &format!("{DEPLOYMENT}-{instance}"),
                "--",
                "sh",
                "-c",
                command,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if code == 0 || !text.is_empty() || tries == 3 {
            return (code, text);
        }
    }
}

/// `Mode:` of a ZooKeeper server, from `srvr` on port 2181.
pub fn zk_mode(instance: &str) -> String {
    let (_, out) = exec(
        instance,
        // `-N`: the answer is read until ZooKeeper closes the connection after it, not for
        // one second after sending (a loaded node answered later than that and read as
        // "not serving"); `-w 10` only bounds a server that never answers.
        "echo srvr | nc -N -w 10 127.0.0.1 2181 2>/dev/null || true",
    );
    out.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .unwrap_or("not serving")
        .trim()
        .to_string()
}

/// Whether the host (outside every deployment) can open a TCP connection to `ip:port`.
pub fn reachable(ip: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(2)).is_ok()
}
