//! fitter against a wrong or hostile DigitalOcean endpoint: `fitter-sim`'s hostile faults
//! (sim/README.md) answer with redirects, web pages, JSON of the wrong shape, hostile
//! addresses, endless listings, huge bodies and actions that never end. For each, the real
//! `fitter` binary must stop with a clear error naming the call or the resource and a
//! non-zero exit, send nothing to another host, leave the state and its backup as they were,
//! and, once the endpoint behaves, finish the plan with no duplicate.
//!
//! Prism is not in between: it would refuse these answers itself, which is the point of them.
//! Each test has a simulator of its own, so they run in parallel.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fitter_sim::{Fault, Matcher, Simulator};
use serde_json::json;

mod support;
use support::*;

/// A simulator with the example plan deployed from a new workspace, in two runs, so that
/// the state has a backup (the state before the second run) for the tests to watch.
fn deployed() -> (Simulator, Workspace) {
    let sim = fast_simulator();
    let ws = Workspace::new();
    sim.inject(Fault::StuckNew {
        name: "agent9".into(),
    });
    let first = &[
        "deploy",
        "--yes",
        "--skip-bootstrap",
        "--ready-timeout",
        "1",
    ];
    let out = ws.run(&sim.url(), first);
    assert_eq!(out.status.code(), Some(1), "first deploy: {}", text(&out));
    sim.clear_faults();
    let out = ws.deploy(&sim.url());
    assert!(out.status.success(), "deploy: {}", text(&out));
    assert!(backup(&ws).exists());
    (sim, ws)
}

fn every(method: Option<&str>, path_prefix: &str) -> Matcher {
    Matcher::new(method, path_prefix)
}

fn backup(ws: &Workspace) -> PathBuf {
    let mut b = ws.state().into_os_string();
    b.push(".backup");
    PathBuf::from(b)
}

/// The state file and its backup (none after a single deploy from nothing), byte for byte.
fn files(ws: &Workspace) -> (Vec<u8>, Option<Vec<u8>>) {
    (
        std::fs::read(ws.state()).unwrap(),
        std::fs::read(backup(ws)).ok(),
    )
}

/// Runs `command` against the misbehaving simulator: exit 1, every one of `expected` in the
/// output, the state and its backup untouched.
fn refused(sim: &Simulator, ws: &Workspace, command: &[&str], expected: &[&str]) -> String {
    let before = files(ws);
    let out = ws.run(&sim.url(), command);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{command:?}: {all}");
    for e in expected {
        assert!(all.contains(e), "{command:?} should say {e:?}: {all}");
    }
    assert!(!all.contains("panicked"), "{all}");
    let after = files(ws);
    assert!(after.0 == before.0, "{command:?} changed the state");
    assert!(
        after.1 == before.1,
        "{command:?} changed the state's backup"
    );
    all
}

/// Once the endpoint behaves: a deploy finishes the plan with no duplicate, and dispose
/// leaves nothing.
fn recovers(sim: &Simulator, ws: &Workspace) {
    sim.clear_faults();
    let out = ws.deploy(&sim.url());
    assert!(
        out.status.success(),
        "deploy after the fault: {}",
        text(&out)
    );
    assert_exactly_the_plan(&sim.snapshot());
    dispose_leaves_nothing(sim, ws, &sim.url());
}

/// A server on loopback that counts the connections made to it and answers none.
fn elsewhere() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = conn.read(&mut [0u8; 1024]);
        }
    });
    (addr, count)
}

#[test]
fn redirects_are_refused_and_nothing_reaches_the_other_host() {
    let (other, connections) = elsewhere();
    let redirect = |matcher| Fault::Answer {
        matcher,
        status: 307,
        headers: [(
            "location".to_string(),
            format!("http://{other}/v2/droplets"),
        )]
        .into(),
        body: String::new(),
    };
    // Everything redirected, on a deployed state: the foreign `200 {}` of old was taken as
    // a created tag.
    let (sim, ws) = deployed();
    sim.inject(redirect(every(None, "/v2/")));
    for command in [
        &["deploy", "--yes", "--skip-bootstrap"][..],
        &["dispose", "--yes"],
    ] {
        refused(
            &sim,
            &ws,
            command,
            &[&sim.addr().to_string(), &other, "redirect"],
        );
    }
    recovers(&sim, &ws);
    // Only the droplets' create redirected, from scratch: its body holds every node's host
    // private key.
    let ws = Workspace::new();
    sim.inject(redirect(every(Some("POST"), "/v2/droplets")));
    let out = ws.deploy(&sim.url());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&other), "{}", text(&out));
    assert!(sim.snapshot().droplets.is_empty());
    recovers(&sim, &ws);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a request went to {other}"
    );
}

#[test]
fn a_web_page_for_everything_makes_fitter_forget_nothing() {
    let (sim, ws) = deployed();
    for status in [404, 200] {
        sim.clear_faults();
        sim.inject(Fault::Answer {
            matcher: every(None, "/v2/"),
            status,
            headers: [("content-type".to_string(), "text/html".to_string())].into(),
            body: "<html><body><h1>Not Found</h1></body></html>".into(),
        });
        for command in [
            &["deploy", "--yes", "--skip-bootstrap"][..],
            &["dispose", "--yes"],
        ] {
            refused(&sim, &ws, command, &["is DIGITALOCEAN_API_URL the API?"]);
        }
    }
    recovers(&sim, &ws);
}

#[test]
fn answers_of_the_wrong_shape_are_errors_naming_the_call() {
    let (sim, ws) = deployed();
    // Droplet reads (one by one or listed) that are valid JSON but of the wrong shape: a
    // 200 of old counted as existence.
    sim.inject(Fault::Answer {
        matcher: every(Some("GET"), "/v2/droplets"),
        status: 200,
        headers: [("content-type".to_string(), "application/json".to_string())].into(),
        body: r#"{"droplet": {"id": "abc", "networks": 7}, "droplets": {"id": 1}}"#.into(),
    });
    refused(
        &sim,
        &ws,
        &["deploy", "--yes", "--skip-bootstrap"],
        &["GET /v2/droplets"],
    );
    // A listing whose ids are not numbers: skipped, it would read as "nothing exists" and
    // make duplicates.
    sim.clear_faults();
    sim.inject(Fault::Field {
        matcher: every(Some("GET"), "/v2/droplets"),
        field: "id".into(),
        value: json!("abc"),
    });
    refused(
        &sim,
        &ws,
        &["dispose", "--yes"],
        &["GET /v2/droplets", "id"],
    );
    recovers(&sim, &ws);
}

#[test]
fn hostile_addresses_never_reach_known_hosts() {
    for hostile in ["*", "10.0.0.1\nevil"] {
        let sim = fast_simulator();
        let ws = Workspace::new();
        sim.inject(Fault::Field {
            matcher: every(Some("GET"), "/v2/droplets"),
            field: "ip_address".into(),
            value: json!(hostile),
        });
        let out = ws.run(
            &sim.url(),
            &[
                "deploy",
                "--yes",
                "--skip-bootstrap",
                "--ready-timeout",
                "30",
            ],
        );
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{hostile:?}: {all}");
        assert!(all.contains("ip_address"), "{hostile:?}: {all}");
        let mut known_hosts = ws.state().into_os_string();
        known_hosts.push(".known_hosts");
        let written = std::fs::read_to_string(known_hosts).unwrap_or_default();
        assert!(
            !written.contains('*') && !written.contains("evil"),
            "{written}"
        );
        recovers(&sim, &ws);
    }
}

#[test]
fn endless_listings_and_huge_answers_end_with_an_error() {
    let (sim, ws) = deployed();
    sim.inject(Fault::EndlessPages {
        matcher: every(Some("GET"), "/v2/droplets"),
    });
    refused(
        &sim,
        &ws,
        &["dispose", "--yes"],
        &["had not ended after 100 pages"],
    );
    let pages = sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/droplets")
        .count();
    assert!(pages <= 2 * 100, "{pages} pages read");
    sim.clear_faults();
    sim.inject(Fault::Huge {
        matcher: every(Some("GET"), "/v2/"),
        bytes: 40 << 20,
    });
    refused(&sim, &ws, &["dispose", "--yes"], &["body over 32 MiB"]);
    recovers(&sim, &ws);
}

#[test]
fn an_action_that_never_ends_fails_at_the_ready_timeout() {
    let (sim, ws) = deployed();
    sim.inject(Fault::StuckActions);
    let bigger = [
        "deploy",
        "--yes",
        "--skip-bootstrap",
        "--ready-timeout",
        "3",
        "-p",
        "agentSize=s-4vcpu-8gb",
    ];
    let out = ws.run(&sim.url(), &bigger);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("was not ready after 3 s"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("node.agent"), "{}", text(&out));
    sim.clear_faults();
    let without_timeout: Vec<&str> = bigger[..3].iter().chain(&bigger[5..]).copied().collect();
    let out = ws.run(&sim.url(), &without_timeout);
    assert!(
        out.status.success(),
        "resize after the fault: {}",
        text(&out)
    );
    recovers(&sim, &ws);
}

/// Waits for the child to end, at most `limit`; a child still running then is killed and
/// the test fails.
fn ended_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running {} s after Ctrl-C", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_ends_a_wait_at_once() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    // agent9 never boots; the wait for it would last the hour the deploy allows.
    sim.inject(Fault::StuckNew {
        name: "agent9".into(),
    });
    let child = ws
        .command(
            &sim.url(),
            &[
                "deploy",
                "--yes",
                "--skip-bootstrap",
                "--ready-timeout",
                "3600",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until every other node is ready and agent9's id is saved: only its wait is left.
    let deadline = Instant::now() + Duration::from_secs(120);
    let waiting_for_agent9_only = || {
        let Ok(text) = std::fs::read_to_string(ws.state()) else {
            return false;
        };
        let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
            return false;
        };
        let nodes: Vec<_> = state["resources"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(a, _)| a.starts_with("node."))
            .collect();
        nodes.len() == 12
            && nodes.iter().all(|(a, r)| {
                r["id"].is_string() && (*a == "node.agent9") == (r["status"] == "creating")
            })
    };
    while !waiting_for_agent9_only() {
        assert!(
            Instant::now() < deadline,
            "the deploy never got to agent9's wait"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = ended_within(child, Duration::from_secs(60));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(130), "{all}");
    assert!(
        all.contains("`node.agent9`: interrupted while waiting until it is ready"),
        "{all}"
    );
    recovers(&sim, &ws);
}
