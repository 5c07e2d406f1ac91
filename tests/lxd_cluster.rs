//! The cluster at work, end to end on a real LXD (`fittings/mesos-local.yaml`): what
//! `information` finds when it asks the nodes (ZooKeeper's modes, Docker's engine, Mesos and
//! Marathon configured but not installed, so no URL), and its `--offline` form; a container
//! run by the agents' Docker engine, reached from a master through the deployment's
//! firewall and not from the host until the plan opens its port; and a ZooKeeper that fails
//! its health check on one master: that node fails with the answer, the others finish, the
//! exit code is 1, and the next deploy repairs it. `deploy --limit` configures only the
//! nodes it names.
//!
//! Health waits, rolling restarts and the ensemble serving when deploy returns are in
//! tests/lxd.rs. Like the other LXD tests these need `scripts/local-cloud.sh` (run by
//! `scripts/test.sh`), so they are `#[ignore]`d in a plain `cargo test`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value as Json;

mod common;
use common::{Workspace, text};
mod lxd_support;
use lxd_support::*;

const ZK_SERVERS: &str = "10.98.0.11:2181,10.98.0.12:2181,10.98.0.13:2181";

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn information_docker_and_a_failing_health_check_on_a_running_cluster() {
    let ws = workspace();
    let out = ws.fitter(&["deploy"]);
    assert!(out.status.success(), "deploy failed:\n{}", text(&out));

    information_asks_the_nodes(&ws);
    information_offline_reads_only_the_state(&ws);
    a_container_on_an_agent_is_reached_through_the_firewall(&ws);
    limit_configures_only_the_nodes_it_names(&ws);
    a_zookeeper_failing_its_check_fails_its_node_until_the_next_deploy(&ws);
    the_operator_key_is_rotated_and_the_old_one_revoked(&ws);
    a_node_that_does_not_answer_is_shown_with_why(&ws);

    dispose_everything(&ws);
}

/// `information --json` with the nodes asked over SSH.
/// `information --json`, logging in with the key the state records (the workspace's,
/// until it is rotated).
fn information(ws: &Workspace, extra: &[&str]) -> Json {
    let mut args = vec!["information", "--json"];
    args.extend_from_slice(extra);
    let out = ws.fitter(&args);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn node<'a>(info: &'a Json, name: &str) -> &'a Json {
    info["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {info}"))
}

fn component<'a>(info: &'a Json, node_name: &str, component: &str) -> &'a Json {
    let n = node(info, node_name);
    n["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == component)
        .unwrap_or_else(|| panic!("no component {component} on {node_name}: {n}"))
}

/// When a node's services last started: what `information` must leave as it found it.
fn started(node: &str, service: &str) -> String {
    let (code, out) = exec(
        node,
        &format!("systemctl show -p ExecMainStartTimestampMonotonic -p ExecMainPID {service}"),
    );
    assert_eq!(code, 0, "{out}");
    out
}

fn information_asks_the_nodes(ws: &Workspace) {
    let before = (started("master1", "zookeeper"), started("agent1", "docker"));
    let info = information(ws, &[]);
    // Asking changed nothing: the services run as they were.
    assert_eq!(
        (started("master1", "zookeeper"), started("agent1", "docker")),
        before
    );
    assert_eq!(info["live"], true, "{info}");
    // Each master's ZooKeeper mode, as `srvr` gives it: one leader, two followers.
    let mut modes: Vec<String> = ["master1", "master2", "master3"]
        .iter()
        .map(|m| {
            let zk = component(&info, m, "zookeeper");
            assert_eq!(zk["services"][0]["state"], "active", "{m}: {zk}");
            assert_eq!(zk["checks"][0]["healthy"], true, "{m}: {zk}");
            zk["mode"].as_str().unwrap_or("none").to_string()
        })
        .collect();
    modes.sort();
    assert_eq!(modes, ["follower", "follower", "leader"], "{info}");
    // Each agent's Docker engine: running, and its version as `docker info` gives it.
    for agent in ["agent1", "agent2"] {
        let docker = component(&info, agent, "docker");
        assert_eq!(docker["installed"], true, "{agent}: {docker}");
        assert_eq!(
            docker["services"][0]["state"], "active",
            "{agent}: {docker}"
        );
        assert_eq!(docker["checks"][0]["healthy"], true, "{agent}: {docker}");
        // The engine's own answer on its socket: `"Version":"20.10.24+dfsg1"`.
        let version = docker["checks"][0]["answer"].as_str().unwrap();
        let number = version.strip_prefix("\"Version\":\"").unwrap_or_default();
        assert!(
            number.split('.').next().unwrap().parse::<u32>().is_ok(),
            "{agent}: {version}"
        );
    }
    // Mesos and Marathon are configured, not installed: shown as such, with no URL.
    for (n, c) in [
        ("master1", "mesos-master"),
        ("master2", "marathon"),
        ("agent1", "mesos-agent"),
    ] {
        let configured = component(&info, n, c);
        assert_eq!(configured["installed"], false, "{n}: {configured}");
        assert_eq!(configured["services"], Json::Array(vec![]), "{configured}");
    }
    assert_eq!(info["endpoints"]["zookeeper"], ZK_SERVERS, "{info}");
    assert!(info["endpoints"].get("mesos").is_none(), "{info}");
    assert!(info["endpoints"].get("marathon").is_none(), "{info}");
    assert_eq!(info["not_served"]["mesos"], "configured, not installed");
    assert_eq!(info["not_served"]["marathon"], "configured, not installed");

    // The text form says the same, and has no URL at all.
    let key = ws.key.to_str().unwrap();
    let out = ws.fitter(&["information", "--ssh-key", key]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stdout.contains("http://"), "{stdout}");
    assert!(
        stdout.contains("Services (asked over SSH just now):"),
        "{stdout}"
    );
    assert!(
        stdout.contains("docker: healthy, sshd: healthy, mesos-agent: configured, not installed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mesos      (configured, not installed: no endpoint)"),
        "{stdout}"
    );
}

/// `--offline`: the plan and the state only, as a snapshot (the nodes' addresses are fixed
/// or assigned in order, so the text is the same on every run; the temporary folder is not).
fn information_offline_reads_only_the_state(ws: &Workspace) {
    let key = ws.key.to_str().unwrap();
    let out = ws.fitter(&["information", "--offline", "--ssh-key", key]);
    assert!(out.status.success(), "{}", text(&out));
    let folder = ws.plan.parent().unwrap().to_str().unwrap().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).replace(&folder, "[folder]");
    insta::assert_snapshot!("information-offline", stdout);

    let info = information(ws, &["--offline"]);
    assert_eq!(info["live"], false);
    let zk = component(&info, "master1", "zookeeper");
    assert!(zk["services"][0]["state"].is_null(), "not asked: {zk}");
}

/// `deploy --limit master1` (Ansible's `--limit`, issue 13): a file changed behind fitter's
/// back on master1 and on agent1 is put back on master1 only; the next deploy without it
/// puts agent1's back.
fn limit_configures_only_the_nodes_it_names(ws: &Workspace) {
    for node in ["master1", "agent1"] {
        let (code, said) = exec(node, "echo '# changed by hand' >> /etc/hosts");
        assert_eq!(code, 0, "{said}");
    }
    let tampered = |node: &str| exec(node, "grep -c 'changed by hand' /etc/hosts").0 == 0;
    let out = ws.fitter(&["deploy", "--limit", "master1"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("bootstrap master1: 1 file uploaded"),
        "{said}"
    );
    assert!(!said.contains("bootstrap agent1"), "{said}");
    assert!(!tampered("master1") && tampered("agent1"));
    let out = ws.fitter(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("bootstrap agent1: 1 file uploaded"), "{said}");
    assert!(said.contains("bootstrap master1: no change"), "{said}");
    assert!(!tampered("agent1"));
}

/// `deploy --ssh-key NEW --revoke-old-key` (issue 13): the plan shows the rotation, every
/// node's authorized_keys then holds the new key and not the old one, and the state records
/// the new key, which `information` logs in with.
fn the_operator_key_is_rotated_and_the_old_one_revoked(ws: &Workspace) {
    use fitter::ssh::OperatorKey;
    let new = ws.plan.parent().unwrap().join("rotated_ed25519");
    let new_key = OperatorKey::create(&new).unwrap();
    let old_key = OperatorKey::load(&ws.key).unwrap();
    let body = |k: &OperatorKey| {
        let mut w = k.public_openssh.split_whitespace();
        format!("{} {}", w.next().unwrap(), w.next().unwrap())
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fitter"))
        .args(["deploy", "--yes", "--revoke-old-key", "--ssh-key"])
        .arg(&new)
        .arg(&ws.plan)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("# the operator key changes (a rotation)"),
        "{said}"
    );
    for node in ["master1", "master2", "master3", "agent1", "agent2"] {
        let (code, keys) = exec(node, "cat /root/.ssh/authorized_keys");
        assert_eq!(code, 0, "{keys}");
        assert!(keys.contains(&body(&new_key)), "{node}: {keys}");
        assert!(!keys.contains(&body(&old_key)), "{node}: {keys}");
    }
    let state = ws.state();
    let recorded = state.operator.expect("a recorded operator key");
    assert_eq!(recorded.public_key.trim(), new_key.public_openssh.trim());
    // `information` (no --ssh-key) logs in with the recorded key: every node answers.
    let out = ws.fitter(&["information", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let info: Json = serde_json::from_slice(&out.stdout).unwrap();
    for n in info["nodes"].as_array().unwrap() {
        assert!(n.get("not_asked").is_none_or(|v| v.is_null()), "{n}");
    }
}

/// What the host outside the deployment gets from a node's port: the page, or nothing.
fn fetch_from_host(ip: Ipv4Addr, port: u16) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

const PAGE: &str = "served by a container on a fitter node";

/// Docker on agent1 runs an HTTP server in a container of an image imported from the root
/// file system the local image carries (no registry is reachable); it publishes port 8080.
/// master1 reaches it through the agents' firewall (`sources: [nodes]`); the host, outside
/// the deployment, does not, until the plan opens 8080 on the agents.
fn a_container_on_an_agent_is_reached_through_the_firewall(ws: &Workspace) {
    let (code, version) = exec("agent1", "docker info --format '{{.ServerVersion}}'");
    assert_eq!(code, 0, "docker info: {version}");
    let (code, out) = exec(
        "agent1",
        "docker import /usr/share/fitter/busybox-rootfs.tar fitter/busybox >/dev/null && \
         docker run -d --name web -p 8080:8080 fitter/busybox /bin/busybox httpd -f -p 8080 -h /www \
         && for i in $(seq 100); do busybox wget -q -O- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1",
    );
    assert_eq!(code, 0, "the container serves on agent1: {out}");
    assert!(out.contains(PAGE), "{out}");

    let agent1: Ipv4Addr = node_output(&ws.state(), "agent1", "private_ip")
        .parse()
        .unwrap();
    let (code, out) = exec(
        "master1",
        &format!(
            "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://{agent1}:8080/\", timeout=10).read().decode())'"
        ),
    );
    assert_eq!(code, 0, "master1 reaches agent1:8080: {out}");
    assert!(out.contains(PAGE), "{out}");
    assert!(
        fetch_from_host(agent1, 8080).is_none(),
        "the host is outside the deployment: agent1:8080 is not opened by the plan"
    );

    // The plan opens 8080 on the agents: the host reaches the container; closed again, not.
    let plan = std::fs::read_to_string(&ws.plan).unwrap();
    let agents_glue = "    glue:\n      - internet 22\n";
    assert_eq!(plan.matches(agents_glue).count(), 1, "the agents' glue");
    let opened = plan.replace(agents_glue, "    glue:\n      - internet 22 8080\n");
    std::fs::write(&ws.plan, &opened).unwrap();
    let out = ws.fitter(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = fetch_from_host(agent1, 8080);
    assert!(
        page.as_deref().is_some_and(|p| p.contains(PAGE)),
        "the plan opens agent1:8080: {page:?}"
    );
    std::fs::write(&ws.plan, &plan).unwrap();
    let out = ws.fitter(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !reachable(agent1, 8080),
        "closed again by the plan: agent1:8080"
    );
    // ... while the container still serves the deployment's own nodes.
    let (code, out) = exec(
        "master1",
        &format!("nc -z -w 5 {agent1} 8080 && echo reached"),
    );
    assert_eq!(
        (code, out.trim()),
        (0, "reached"),
        "master1 still reaches agent1:8080"
    );
}

/// A node that does not answer (its container stopped behind fitter's back) is shown with
/// why, and the others are still asked.
fn a_node_that_does_not_answer_is_shown_with_why(ws: &Workspace) {
    let status = std::process::Command::new("lxc")
        .args(["stop", "--force", &format!("{DEPLOYMENT}-agent2")])
        .status()
        .unwrap();
    assert!(status.success());
    let info = information(ws, &[]);
    let agent2 = node(&info, "agent2");
    let why = agent2["not_asked"].as_str().unwrap_or_default();
    assert!(why.starts_with("no answer: `agent2`"), "{agent2}");
    assert!(component(&info, "agent2", "docker")["services"][0]["state"].is_null());
    assert!(node(&info, "master1")["not_asked"].is_null(), "{info}");
    assert_eq!(
        component(&info, "agent1", "docker")["services"][0]["state"],
        "active"
    );
}

/// A process of its own holds ZooKeeper's client port on master3 (and its JVM is gone), a
/// break that fitter cannot repair by itself: a config file broken behind fitter's back is
/// put back by the same deploy, which compares every file's checksum. The check fails with
/// the impostor's answer; restarting ZooKeeper once does not help; master3 fails, the other
/// nodes finish, the exit code is 1. With the cause gone, the next deploy restarts it and
/// it serves.
fn a_zookeeper_failing_its_check_fails_its_node_until_the_next_deploy(ws: &Workspace) {
    let impostor = "import socket\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', 2181))\n\
         s.listen(8)\n\
         while True:\n    \
             c, _ = s.accept()\n    \
             c.sendall(b'not ZooKeeper: another process holds port 2181\\n')\n    \
             c.close()\n";
    std::fs::write(ws.plan.with_file_name("impostor.py"), impostor).unwrap();
    let status = std::process::Command::new("lxc")
        .args(["file", "push"])
        .arg(ws.plan.with_file_name("impostor.py"))
        .arg(format!("{DEPLOYMENT}-master3/root/impostor.py"))
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out) = exec(
        "master3",
        "pkill -9 -f '[Q]uorumPeerMain'; \
         for i in $(seq 100); do pgrep -f '[Q]uorumPeerMain' >/dev/null || break; sleep 0.1; done; \
         systemd-run --unit fitter-test-impostor python3 /root/impostor.py && \
         for i in $(seq 100); do echo srvr | nc -N -w 2 127.0.0.1 2181 | grep -q 'not ZooKeeper' && exit 0; sleep 0.1; done; exit 1",
    );
    assert_eq!(code, 0, "the impostor answers on master3: {out}");

    // Waited for 30 s: restarted once after 20 s of failing, then failing still.
    let out = ws.fitter(&["deploy", "--health-timeout", "30"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(
            "bootstrap master3: failed: `master3`: zookeeper is not healthy (serving): \
             its last answer: not ZooKeeper: another process holds port 2181"
        ),
        "{stdout}"
    );
    for other in ["master1", "master2", "agent1", "agent2"] {
        assert!(
            stdout.contains(&format!("bootstrap {other}: no change")),
            "{other} finished: {stdout}"
        );
    }
    assert!(stdout.contains(", 1 node failed."), "{stdout}");
    // information shows it too, with the answer.
    let info = information(ws, &[]);
    let zk = component(&info, "master3", "zookeeper");
    assert_eq!(zk["checks"][0]["healthy"], false, "{zk}");
    assert_eq!(
        zk["checks"][0]["answer"],
        "not ZooKeeper: another process holds port 2181"
    );

    // The cause gone, the next deploy restarts the ZooKeeper that still reads as active.
    let (code, out) = exec("master3", "systemctl stop fitter-test-impostor");
    assert_eq!(code, 0, "{out}");
    let out = ws.fitter(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("bootstrap master3: 0 files uploaded, restarted zookeeper"),
        "{stdout}"
    );
    let mode = zk_mode("master3");
    assert!(mode == "leader" || mode == "follower", "master3: {mode}");
}
