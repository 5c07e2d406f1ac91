//! Deploys on a real LXD stopped midway, then run again: killed with SIGKILL at three
//! points (a network or firewall recorded, a container being created, bootstrap under way)
//! and interrupted with SIGINT as Ctrl-C does (while containers are made, while bootstrap
//! runs; exit 130). Each stop is checked to have happened where it was meant to, and the deploy run
//! after it converges to exactly the plan: no duplicate, nothing left undone.
//!
//! Needs the LXD daemon and image of `scripts/local-cloud.sh`: `#[ignore]`d in a plain
//! `cargo test`, run by `scripts/test.sh` (and CI) with `--include-ignored`. Uses the
//! example deployment, as tests/lxd.rs does; test binaries run one after another.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fitter::state;

mod common;
use common::{Workspace, text};
mod lxd_support;
use lxd_support::*;

static LXD: Mutex<()> = Mutex::new(());

/// Where a deploy is killed, as seen from outside: in the state, in LXD and in its progress
/// lines (plain lines on standard error, which is a pipe here).
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// The state records a network or a firewall: no container exists yet.
    NetworkOrFirewall,
    /// LXD has a container of the deployment that the state does not record as ready: a
    /// container being created, which the resume has to adopt.
    ContainerBeingCreated,
    /// A node's bootstrap has started: its files are not all there yet.
    Bootstrap,
}

/// The deployment's containers, by the `lxc` client.
fn containers() -> Vec<String> {
    owned(&["list"])
}

/// Nodes the state records as ready.
fn ready_nodes(ws: &Workspace) -> Vec<String> {
    state::read(&ws.state_path(), DEPLOYMENT)
        .ok()
        .flatten()
        .map(|s| {
            s.resources
                .iter()
                .filter(|(k, r)| k.starts_with("node.") && r.status == state::Status::Ready)
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// How a deploy is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: nothing is finished or saved beyond what already was.
    Kill,
    /// SIGINT, as Ctrl-C sends it: running calls finish and are saved, waits end, nothing
    /// new starts, and the command ends by itself.
    Interrupt,
}

/// Runs `fitter deploy` and stops it at `point`; fails when the deploy ends (or two minutes
/// pass) before the point is reached. A kill must leave work unfinished; an interrupted
/// deploy must end by itself, with exit 130 (128 + SIGINT, as shells give it).
fn deploy_stopped_at(ws: &Workspace, point: KillPoint, stop: Stop) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fitter"))
        .args(["deploy", "--yes", "--ssh-key"])
        .arg(&ws.key)
        .arg(&ws.plan)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        // Progress lines as they come; between them, the state and LXD are looked at again.
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
            seen.push(line);
        }
        let reached = match point {
            KillPoint::NetworkOrFirewall => state::read(&ws.state_path(), DEPLOYMENT)
                .ok()
                .flatten()
                .is_some_and(|s| {
                    s.resources
                        .keys()
                        .any(|k| k.starts_with("network.") || k.starts_with("firewall."))
                }),
            KillPoint::ContainerBeingCreated => {
                let ready = ready_nodes(ws);
                containers().iter().any(|c| {
                    let node = c.strip_prefix(&format!("{DEPLOYMENT}-")).unwrap_or(c);
                    !ready.contains(&format!("node.{node}"))
                })
            }
            KillPoint::Bootstrap => seen.iter().any(|l| l.ends_with(": bootstrapping...")),
        };
        if reached {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the deploy ended before {point:?}:\n{}",
            seen.join("\n")
        );
        assert!(
            Instant::now() < deadline,
            "{point:?} not reached in 120 s:\n{}",
            seen.join("\n")
        );
    }
    if stop == Stop::Interrupt {
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "an interrupted deploy did not end"
            );
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
                seen.push(line);
            }
        };
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
            seen.push(line);
        }
        assert_eq!(
            status.code(),
            Some(130),
            "interrupted at {point:?}:\n{}",
            seen.join("\n")
        );
        eprintln!(
            "interrupted at {point:?}; ready then: {:?}",
            ready_nodes(ws)
        );
        return;
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let ready = ready_nodes(ws);
    match point {
        KillPoint::NetworkOrFirewall => {
            assert!(containers().is_empty(), "killed before any container")
        }
        KillPoint::ContainerBeingCreated => assert!(
            ready.len() < expected_instances().len(),
            "killed with nodes still to create: {ready:?}"
        ),
        KillPoint::Bootstrap => assert_eq!(
            ready.len(),
            expected_instances().len(),
            "killed after every node was made"
        ),
    }
    eprintln!("killed at {point:?}; ready then: {ready:?}");
}

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn a_deploy_killed_midway_converges_without_duplicates() {
    let _turn = LXD.lock().unwrap_or_else(|e| e.into_inner());
    let ws = workspace();
    // Each deploy goes on from where the one before was killed.
    for point in [
        KillPoint::NetworkOrFirewall,
        KillPoint::ContainerBeingCreated,
        KillPoint::Bootstrap,
    ] {
        deploy_stopped_at(&ws, point, Stop::Kill);
    }
    let out = ws.fitter(&["deploy"]);
    assert!(
        out.status.success(),
        "the resumed deploy failed:\n{}",
        text(&out)
    );
    // The bootstrap the last kill cut short is finished now.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let uploaded = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Bootstrap: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        uploaded.is_some_and(|n| n > 0),
        "the resume uploaded what the killed bootstrap had not:\n{stdout}"
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

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn a_deploy_interrupted_while_creating_and_while_bootstrapping_converges() {
    let _turn = LXD.lock().unwrap_or_else(|e| e.into_inner());
    let ws = workspace();
    for point in [KillPoint::ContainerBeingCreated, KillPoint::Bootstrap] {
        deploy_stopped_at(&ws, point, Stop::Interrupt);
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
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("No changes."), "{}", text(&again));
    assert!(
        stdout.contains("Bootstrap: 0 files uploaded"),
        "everything in place after the resume:\n{stdout}"
    );
    dispose_everything(&ws);
}
