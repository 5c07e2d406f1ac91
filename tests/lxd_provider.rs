//! The LXD provider on its own, against a real LXD, in the states a killed fitter leaves
//! behind: LXD goes on with an operation after the process that asked for it is gone, and
//! the next run meets the instance half made (it reads as `Stopped` while LXD still
//! unpacks it). Each test starts LXD's create itself, the way the killed run did (asked for,
//! not waited for), then asks the provider to create or delete the same node.
//!
//! Needs the LXD daemon and the node image of `scripts/local-cloud.sh`: `#[ignore]`d in a
//! plain `cargo test`, run by `scripts/test.sh` (and CI) with `--include-ignored`.

use std::process::Command;

use fitter::ssh::generate_host_key;
use fitter_providers::ResourceKind;
use fitter_providers::api::{NodeRequest, Provider, Request};
use fitter_providers::lxd::{Lxd, find_socket, instance_name};
use serde_json::{Value as Json, json};

/// `lxc` with its answer, failing the test when it fails.
fn lxc(args: &[&str]) -> String {
    let out = Command::new("lxc")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the lxc client runs");
    assert!(
        out.status.success(),
        "lxc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts LXD's create of the node's container with fitter's marks, as `create_node` sends
/// it, and returns as soon as LXD has taken it (`lxc query` without `--wait`).
fn start_create_as_a_killed_run_did(deployment: &str, node: &str) {
    let body = json!({
        "name": instance_name(deployment, node),
        "type": "container",
        "source": {"type": "image", "alias": "fitter-debian-12"},
        "profiles": ["fitter"],
        "config": {"user.fitter.deployment": deployment, "user.fitter.name": node},
    });
    let op: Json = serde_json::from_str(&lxc(&[
        "query",
        "-X",
        "POST",
        "-d",
        &body.to_string(),
        "/1.0/instances",
    ]))
    .expect("LXD answers an operation");
    assert_eq!(op["status"], "Running", "the create is under way: {op}");
}

fn request(deployment: &str, node: &str) -> (Request, String) {
    let key = generate_host_key().expect("a host key");
    let request = NodeRequest {
        deployment: deployment.to_string(),
        name: node.to_string(),
        size: "s-1vcpu-1gb".to_string(),
        image: "fitter-debian-12".to_string(),
        region: None,
        network: None,
        network_id: None,
        address: None,
        host_key: key.private_openssh,
        host_key_public: key.public_openssh.clone(),
        authorized_keys: vec![],
        tags: vec![],
        roles: vec![],
        firewall: None,
        spread: false,
        nesting: false,
    };
    (Request::Node(request), key.public_openssh)
}

/// The deployment's containers, from `lxc` (another view than the provider's own).
fn containers(deployment: &str) -> Vec<(String, String)> {
    let items: Vec<Json> =
        serde_json::from_str(&lxc(&["list", "--format", "json"])).expect("lxc lists JSON");
    items
        .iter()
        .filter(|i| i["config"]["user.fitter.deployment"] == deployment)
        .map(|i| {
            (
                i["name"].as_str().unwrap_or_default().to_string(),
                i["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The provider for a deployment of this test's own, with what an earlier failed run of the
/// test left removed first.
fn provider(deployment: &str) -> Lxd {
    for (name, _) in containers(deployment) {
        lxc(&["delete", "--force", &name]);
    }
    let socket = find_socket(None).expect("the LXD socket (scripts/local-cloud.sh)");
    Lxd::new(&socket, deployment)
}

#[tokio::test]
#[ignore = "needs LXD: run scripts/test.sh"]
async fn a_container_a_killed_run_left_being_created_is_adopted() {
    let deployment = "fitter-adopt-creating";
    let lxd = provider(deployment);
    let (node, host_key) = request(deployment, "n1");
    start_create_as_a_killed_run_did(deployment, "n1");

    let created = lxd.create(&node).await;
    let id = instance_name(deployment, "n1");
    let seen = containers(deployment);
    let pushed = Command::new("lxc")
        .args([
            "exec",
            &id,
            "--",
            "cat",
            "/etc/ssh/ssh_host_ed25519_key.pub",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    lxd.delete(ResourceKind::Node, &id)
        .await
        .expect("the node is deleted");

    assert_eq!(created.expect("the half-made container is adopted"), id);
    assert_eq!(
        seen,
        vec![(id.clone(), "Running".to_string())],
        "one container, running"
    );
    assert_eq!(
        pushed.expect("lxc exec runs").trim(),
        host_key.trim(),
        "the host key fitter holds is the one installed"
    );
    assert!(containers(deployment).is_empty(), "nothing left");
}

#[tokio::test]
#[ignore = "needs LXD: run scripts/test.sh"]
async fn a_container_still_being_created_can_be_disposed() {
    let deployment = "fitter-adopt-disposing";
    let lxd = provider(deployment);
    start_create_as_a_killed_run_did(deployment, "n1");

    let id = instance_name(deployment, "n1");
    let deleted = lxd.delete(ResourceKind::Node, &id).await;
    let left = containers(deployment);
    if !left.is_empty() {
        lxc(&["delete", "--force", &id]);
    }
    deleted.expect("the half-made container is deleted");
    assert!(left.is_empty(), "containers left: {left:?}");
}

/// Nesting follows the node's roles: a node that gains one that runs containers (Docker) is
/// given nesting by an update, and restarted so that it takes effect (LXD applies it at
/// start); one that loses it has it taken away.
#[tokio::test]
#[ignore = "needs LXD: run scripts/test.sh"]
async fn an_update_gives_and_takes_nesting_with_a_restart() {
    let deployment = "fitter-nesting";
    let lxd = provider(deployment);
    let (mut node, _) = request(deployment, "n1");
    let id = lxd.create(&node).await.expect("the node is created");
    let nesting = || {
        lxc(&["config", "get", &id, "security.nesting"])
            .trim()
            .to_string()
    };
    // `lxc info` gives the host's PID of the container's init: a restart gives another.
    let pid_one = || lxc(&["info", &id]);
    let before = (nesting(), pid_one());
    let Request::Node(r) = &mut node else {
        unreachable!()
    };
    r.nesting = true;
    lxd.update(&node, &id).await.expect("the node is updated");
    let given = (nesting(), containers(deployment), pid_one());
    let Request::Node(r) = &mut node else {
        unreachable!()
    };
    r.nesting = false;
    lxd.update(&node, &id).await.expect("the node is updated");
    let taken = nesting();
    lxd.delete(ResourceKind::Node, &id)
        .await
        .expect("the node is deleted");

    assert_ne!(before.0, "true", "created without nesting");
    assert_eq!(given.0, "true", "given by the update");
    assert_eq!(given.1, vec![(id.clone(), "Running".to_string())]);
    let pid = |info: &str| {
        info.lines()
            .find(|l| l.trim_start().starts_with("PID:"))
            .map(str::to_string)
    };
    assert!(pid(&before.1).is_some(), "{}", before.1);
    assert_ne!(
        pid(&before.1),
        pid(&given.2),
        "restarted: its init is another process"
    );
    assert_eq!(taken, "false", "taken away by the next update");
}
