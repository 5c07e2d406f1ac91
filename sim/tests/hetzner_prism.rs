//! The contract check of the Hetzner personality: Prism (`prism proxy --errors`) in front of
//! the simulator holds every request and answer of one full lifecycle to Hetzner's OpenAPI
//! spec (`../shared/hetzner-cloud-openapi.json`). A request or an answer that breaks it comes
//! back as Prism's `application/problem+json` with an `sl-violations` header.
//!
//! Prism's upstream is the simulator's `http://ADDR/v1`, and the client talks to Prism at
//! `http://127.0.0.1:PORT` with no `/v1`: the spec's paths have none, and Prism appends the
//! request's path to the upstream's.
//!
//! Prism comes from `scripts/prism.sh install` (or `FITTER_PRISM`). Without it the test says
//! so and passes, unless `CI` is set: then a missing Prism is a failure.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, ED25519, one, poll};
use fitter_sim::{Config, Fault, Matcher, Simulator};
use serde_json::{Value as Json, json};

/// The one token the simulator takes here.
const TOKEN: &str = "hcloud_prism_token";

/// The workspace root (`sim/..`).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec_path() -> PathBuf {
    root().join("../shared/hetzner-cloud-openapi.json")
}

/// Prism's binary: `FITTER_PRISM`, or where `scripts/prism.sh` installed it; `None` when it
/// is not installed.
fn prism_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FITTER_PRISM") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new(root().join("scripts/prism.sh"))
        .arg("path")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Prism in front of `upstream` (the simulator's `/v1`), under a watchdog shell that stops it
/// once this test process is gone. Returns Prism's base URL and its log file.
fn start_prism(prism: &PathBuf, upstream: SocketAddr) -> (String, PathBuf) {
    let port = free_port();
    let script = format!(
        "\"$0\" proxy -h 127.0.0.1 -p {port} --errors \"$1\" http://{upstream}/v1 >\"$2\" 2>&1 & p=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 1; done; kill $p 2>/dev/null",
        me = std::process::id()
    );
    let log = std::env::temp_dir().join(format!("fitter-prism-hetzner-{port}.log"));
    let mut watchdog: Child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(prism)
        .arg(spec_path())
        .arg(&log)
        .stdin(Stdio::null())
        .spawn()
        .expect("prism starts");
    std::thread::spawn(move || watchdog.wait());
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Prism did not listen on {port} within 90 s; its log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (format!("http://127.0.0.1:{port}"), log)
}

/// A client that talks to Prism.
struct Through {
    client: Client,
    log: PathBuf,
}

impl Through {
    /// Sends a request through Prism; the answer must be a success of the simulator's that
    /// Prism let through (no `sl-violations`, no problem+json).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
        let answer = self
            .client
            .try_send(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let violations = answer
            .headers
            .get("sl-violations")
            .map(|v| v.to_str().unwrap_or("?").to_owned());
        let problem = answer
            .headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").contains("problem"));
        if !(200..300).contains(&answer.status) || violations.is_some() || problem {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{method} {path} through Prism: {answer}, violations {violations:?}\n\
                 Prism's log, newest first:\n{}",
                tail.join("\n")
            );
        }
        answer.body
    }

    async fn get(&self, path: &str) -> Json {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Json) -> Json {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Json {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a resource and returns its id.
    async fn create(&self, path: &str, body: Json) -> u64 {
        self.post(path, body).await[one(path)]["id"]
            .as_u64()
            .unwrap()
    }

    /// `GET path` until `done` holds (every 200 ms, at most 60 s).
    async fn until(&self, path: &str, what: &str, done: impl Fn(&Json) -> bool) -> Json {
        let every = Duration::from_millis(200);
        poll(
            what,
            every,
            Duration::from_secs(60),
            || self.get(path),
            done,
        )
        .await
    }
}

fn ids(list: &Json, key: &str) -> Vec<u64> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_full_lifecycle_passes_prism() {
    let Some(prism) = prism_binary().filter(|p| p.exists()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Prism is not installed and CI is set: run `scripts/prism.sh install`"
        );
        eprintln!(
            "SKIPPED a_full_lifecycle_passes_prism: Prism is not installed \
             (run `scripts/prism.sh install`, or set FITTER_PRISM)"
        );
        return;
    };
    let config = Config {
        active_delay: Duration::from_secs(2),
        delete_delay: Duration::from_secs(1),
        token: Some(TOKEN.to_owned()),
        ..Config::hetzner()
    };
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let (base, log) = start_prism(&prism, sim.addr());
    let api = Through {
        client: Client {
            base,
            token: TOKEN.to_owned(),
            timeout: Duration::from_secs(30),
            ..Client::new(&sim)
        },
        log,
    };

    // A credentials check, and the catalogue.
    api.get("/locations").await;
    api.get("/server_types?name=cx22").await;
    api.get("/images?name=debian-12&architecture=x86").await;

    let key = api
        .create(
            "/ssh_keys",
            json!({"name": "op", "public_key": ED25519, "labels": {"plan": "p1"}}),
        )
        .await;
    let network = api
        .create(
            "/networks",
            json!({
                "name": "p1-net",
                "ip_range": "10.0.0.0/16",
                "subnets": [{"type": "cloud", "network_zone": "eu-central", "ip_range": "10.0.0.0/24"}],
                "labels": {"plan": "p1"},
            }),
        )
        .await;
    let group = api
        .create(
            "/placement_groups",
            json!({"name": "p1-masters", "type": "spread", "labels": {"plan": "p1"}}),
        )
        .await;
    let firewall = api
        .create(
            "/firewalls",
            json!({
                "name": "p1-fw",
                "labels": {"plan": "p1"},
                "rules": [
                    {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0", "::/0"], "description": "ssh"},
                    {"direction": "in", "protocol": "tcp", "port": "2181-2182", "source_ips": ["10.0.0.0/16"]},
                    {"direction": "in", "protocol": "icmp", "source_ips": ["0.0.0.0/0"]},
                    {"direction": "out", "protocol": "udp", "port": "53", "destination_ips": ["0.0.0.0/0"]},
                ],
                "apply_to": [{"type": "label_selector", "label_selector": {"selector": "plan=p1,role=master"}}],
            }),
        )
        .await;

    let mut create_actions = Vec::new();
    for n in 1..=3 {
        let created = api
            .post(
                "/servers",
                json!({
                    "name": format!("master{n}"),
                    "server_type": "cx22",
                    "image": "debian-12",
                    "location": "fsn1",
                    "ssh_keys": [key.to_string()],
                    "networks": [network],
                    "firewalls": [{"firewall": firewall}],
                    "placement_group": group,
                    "labels": {"plan": "p1", "role": "master"},
                    "user_data": "#cloud-config\nruncmd:\n- [touch, /root/ok]\n",
                    "public_net": {"enable_ipv4": true, "enable_ipv6": n != 2},
                    "start_after_create": true,
                }),
            )
            .await;
        assert_eq!(created["server"]["status"], "initializing");
        assert_eq!(created["root_password"], Json::Null);
        create_actions.push(created["action"]["id"].as_u64().unwrap());
    }

    let selected = "/servers?label_selector=plan%3Dp1%2Crole%3Dmaster";
    let running = api
        .until(selected, "the masters running", |list| {
            list["servers"].as_array().is_some_and(|servers| {
                servers.len() == 3 && servers.iter().all(|s| s["status"] == "running")
            })
        })
        .await;
    let servers = ids(&running, "servers");
    let query: Vec<String> = create_actions.iter().map(|id| format!("id={id}")).collect();
    let actions = api.get(&format!("/actions?{}", query.join("&"))).await;
    assert!(
        actions["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "success"),
        "{actions}"
    );
    api.get(&format!("/actions/{}", create_actions[0])).await;
    let shown = api.get(&format!("/firewalls/{firewall}")).await;
    assert_eq!(shown["firewall"]["applied_to"].as_array().unwrap().len(), 4);
    api.get(&format!("/networks/{network}")).await;
    api.get(&format!("/placement_groups/{group}")).await;
    api.get("/firewalls?label_selector=plan%3Dp1").await;
    api.get("/networks?name=p1-net").await;
    api.get("/ssh_keys?label_selector=plan").await;

    // Taking down: the firewall off its resources first, then the servers, then the rest.
    let mut remove_from = vec![
        json!({"type": "label_selector", "label_selector": {"selector": "plan=p1,role=master"}}),
    ];
    remove_from.extend(
        servers
            .iter()
            .map(|id| json!({"type": "server", "server": {"id": id}})),
    );
    let removed = api
        .post(
            &format!("/firewalls/{firewall}/actions/remove_from_resources"),
            json!({"remove_from": remove_from}),
        )
        .await;
    assert_eq!(removed["actions"][0]["command"], "remove_firewall");
    let mut delete_actions = Vec::new();
    for id in &servers {
        let deleted = api.delete(&format!("/servers/{id}")).await;
        delete_actions.push(deleted["action"]["id"].as_u64().unwrap());
    }
    let query: Vec<String> = delete_actions.iter().map(|id| format!("id={id}")).collect();
    api.until(
        &format!("/actions?{}", query.join("&")),
        "the masters deleted",
        |list| {
            list["actions"]
                .as_array()
                .is_some_and(|l| l.iter().all(|a| a["status"] == "success"))
        },
    )
    .await;
    api.until(selected, "the masters gone", |list| {
        list["servers"] == json!([])
    })
    .await;
    api.delete(&format!("/firewalls/{firewall}")).await;
    api.delete(&format!("/networks/{network}")).await;
    api.delete(&format!("/placement_groups/{group}")).await;
    api.delete(&format!("/ssh_keys/{key}")).await;
    let left = sim.snapshot().hetzner;
    assert!(
        left.servers.is_empty()
            && left.networks.is_empty()
            && left.firewalls.is_empty()
            && left.placement_groups.is_empty()
            && left.ssh_keys.is_empty(),
        "left behind: {left:?}"
    );

    // The canary: an answer that breaks the spec (a location id that is a string) comes out
    // of Prism as its refusal, so the successes above were checked.
    sim.inject(Fault::Field {
        matcher: Matcher::new(Some("GET"), "/v1/locations").times(1),
        field: "id".into(),
        value: json!("one"),
    });
    let refused = api.client.get("/locations").await;
    assert_eq!(refused.status, 500);
    let violations = refused.headers["sl-violations"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(violations.contains("must be integer"), "{violations}");
}
