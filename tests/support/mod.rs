//! What the DigitalOcean tests share: the example plan deployed from a scratch workspace by
//! the real `fitter` binary, and checks of what the simulator holds afterwards.
//!
//! Each test binary uses part of it, so unused items are expected.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use std::time::Duration;

use fitter_sim::{Config, Simulator, Snapshot};
use serde_json::Value as Json;

pub const TOKEN: &str = "dop_v1_fitter_test_token_0123456789";
pub const PLAN: &str = "fittings/mesos-digitalocean.yaml";
pub const TAG: &str = "fitter-mesos-digitalocean";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory with the plan's state and the operator's key in it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("do.state.json")
    }

    pub fn command(&self, api_url: &str, args: &[&str]) -> Command {
        self.command_for(api_url, &root().join(PLAN), args)
    }

    pub fn command_for(&self, api_url: &str, plan: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitter"));
        cmd.current_dir(root())
            .args(args)
            .arg("--state")
            .arg(self.state())
            .arg(plan)
            .env("DIGITALOCEAN_TOKEN", TOKEN)
            .env("DIGITALOCEAN_API_URL", api_url)
            .env("HOME", self.dir.path())
            .env_remove("DIGITALOCEAN_ACCESS_TOKEN")
            .env_remove("FITTER_SSH_KEY")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, api_url: &str, args: &[&str]) -> Output {
        self.command(api_url, args).output().unwrap()
    }

    pub fn deploy(&self, api_url: &str) -> Output {
        self.run(api_url, &["deploy", "--yes", "--skip-bootstrap"])
    }

    pub fn state_json(&self) -> Json {
        serde_json::from_str(&std::fs::read_to_string(self.state()).unwrap()).unwrap()
    }
}

/// The LXD tests' workspace is theirs; the rendering of a command's output is shared.
pub mod postgres;
pub mod prism;
pub mod spec;

#[path = "../common/mod.rs"]
mod common;
pub use common::text;

pub fn droplets_of(snap: &Snapshot) -> Vec<&Json> {
    snap.droplets
        .iter()
        .filter(|d| {
            d["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == TAG))
        })
        .collect()
}

/// A droplet's public IPv4 address, as the API lists it.
pub fn public_ip(droplet: &Json) -> String {
    droplet["networks"]["v4"]
        .as_array()
        .and_then(|nets| nets.iter().find(|n| n["type"] == "public"))
        .and_then(|n| n["ip_address"].as_str())
        .unwrap_or_else(|| panic!("no public address: {droplet}"))
        .to_string()
}

pub fn names(droplets: &[&Json]) -> Vec<String> {
    let mut n: Vec<String> = droplets
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

pub fn expected_names() -> Vec<String> {
    let mut n: Vec<String> = (1..=3)
        .map(|i| format!("master{i}"))
        .chain((1..=9).map(|i| format!("agent{i}")))
        .collect();
    n.sort();
    n
}

pub fn ours<'a>(items: &'a [Json], prefix: &str) -> Vec<&'a Json> {
    items
        .iter()
        .filter(|i| i["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// Exactly the plan: 12 droplets with distinct names, 1 VPC, 2 firewalls, the tag.
pub fn assert_exactly_the_plan(snap: &Snapshot) {
    let droplets = droplets_of(snap);
    assert_eq!(
        names(&droplets),
        expected_names(),
        "droplets of the deployment"
    );
    let vpcs = ours(&snap.vpcs, &format!("{TAG}-"));
    assert_eq!(vpcs.len(), 1, "VPCs: {vpcs:?}");
    assert_eq!(vpcs[0]["ip_range"], "10.10.0.0/24");
    for d in &droplets {
        assert_eq!(
            d["vpc_uuid"], vpcs[0]["id"],
            "{} is in the deployment's VPC",
            d["name"]
        );
    }
    let firewalls = ours(&snap.firewalls, &format!("{TAG}-"));
    let mut fw: Vec<&str> = firewalls
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    fw.sort();
    assert_eq!(fw, [format!("{TAG}-agents"), format!("{TAG}-masters")]);
    assert!(
        snap.tags.iter().any(|t| t["name"] == TAG),
        "the deployment tag exists"
    );
}

pub fn assert_nothing_left(snap: &Snapshot) {
    assert!(
        droplets_of(snap).is_empty(),
        "droplets left: {:?}",
        droplets_of(snap)
    );
    assert!(
        ours(&snap.vpcs, TAG).is_empty(),
        "VPCs left: {:?}",
        snap.vpcs
    );
    assert!(
        ours(&snap.firewalls, TAG).is_empty(),
        "firewalls left: {:?}",
        snap.firewalls
    );
    assert!(
        ours(&snap.tags, TAG).is_empty(),
        "tags left: {:?}",
        snap.tags
    );
    assert!(
        ours(&snap.ssh_keys, TAG).is_empty(),
        "keys left: {:?}",
        snap.ssh_keys
    );
}

/// `dispose --yes` succeeds and the simulator holds nothing of the deployment.
pub fn dispose_leaves_nothing(sim: &Simulator, ws: &Workspace, api_url: &str) {
    let out = ws.run(api_url, &["dispose", "--yes"]);
    assert!(out.status.success(), "dispose: {}", text(&out));
    assert_nothing_left(&sim.snapshot());
}

pub fn writes(snap: &Snapshot) -> u64 {
    snap.counts.post + snap.counts.put + snap.counts.patch + snap.counts.delete
}

/// A simulator of a test's own (no Prism), quick to boot droplets and without the rate
/// limit, which is not what such tests are about: several runs in a row would otherwise wait
/// for its window.
pub fn fast_simulator() -> Simulator {
    let config = Config {
        active_delay: Duration::from_millis(200),
        delete_delay: Duration::from_millis(100),
        action_delay: Duration::from_millis(200),
        rate_limit_per_minute: 100_000,
        rate_limit_per_hour: 1_000_000,
        token: Some(TOKEN.to_string()),
        ..Config::default()
    };
    Simulator::start_background("127.0.0.1:0".parse().unwrap(), config).unwrap()
}

/// Runs `command` and kills it (SIGKILL) once `when` holds: a deploy cut off at a chosen
/// point, as a crash or an operator's `kill -9` would.
pub fn killed_when(mut command: Command, what: &str, when: impl Fn() -> bool) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if when() {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the deploy ended ({status}) before the kill point `{what}`");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kill point `{what}` never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One HTTP/1.1 call to `addr` with a bearer token and, when given, a JSON body: the whole
/// answer (status line, headers, body) as text. For what a test does to a simulator behind
/// fitter's back.
pub fn raw_call(
    addr: std::net::SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// One call to the simulator's API behind fitter's back: the status and the body.
pub fn api(sim: &Simulator, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let answer = raw_call(sim.addr(), TOKEN, method, path, body);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// Deletes droplet `id` behind fitter's back and waits until it reads as gone: a deleted
/// droplet stays visible a moment, as DigitalOcean's do. A condition, not a duration.
pub fn delete_droplet(sim: &Simulator, id: &str) {
    let path = format!("/v2/droplets/{id}");
    let (status, body) = api(sim, "DELETE", &path, None);
    assert_eq!(status, 204, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while api(sim, "GET", &path, None).0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "droplet {id} never went"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
