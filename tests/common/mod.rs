//! What the LXD test files share: a plan copied into a scratch folder (its state lives
//! there too) with an operator key of its own, the `fitter` binary run on it, and the
//! output of a command for an assertion message.
//!
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fitter::ssh::OperatorKey;
use fitter::state::{self, State};

pub struct Workspace {
    _dir: tempfile::TempDir,
    pub plan: PathBuf,
    pub key: PathBuf,
    pub deployment: String,
    /// `--provider` for every command, when the plan does not say LXD itself.
    provider: Option<&'static str>,
}

/// A failed test still disposes, so that the next test (or run) starts from nothing.
impl Drop for Workspace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.fitter(&["dispose"]);
        }
    }
}

impl Workspace {
    /// A copy of `source` named after the deployment (`<deployment>.yaml`).
    pub fn copy_of(source: &Path, deployment: &str, provider: Option<&'static str>) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join(format!("{deployment}.yaml"));
        std::fs::copy(source, &plan).unwrap();
        let key = dir.path().join("operator_ed25519");
        OperatorKey::create(&key).unwrap();
        Workspace {
            _dir: dir,
            plan,
            key,
            deployment: deployment.to_string(),
            provider,
        }
    }

    /// `fitter ARGS PLAN`; `deploy` and `dispose` with `--yes` and the workspace's key.
    pub fn fitter(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitter"));
        cmd.args(args).arg(&self.plan);
        if let Some(p) = self.provider {
            cmd.arg("--provider").arg(p);
        }
        if matches!(args.first(), Some(&"deploy") | Some(&"dispose")) {
            cmd.arg("--yes").arg("--ssh-key").arg(&self.key);
        }
        cmd.stdin(Stdio::null()).output().unwrap()
    }

    pub fn state_path(&self) -> PathBuf {
        state::default_path(&self.plan)
    }

    pub fn state(&self) -> State {
        state::read(&self.state_path(), &self.deployment)
            .unwrap()
            .expect("a state file")
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What LXD changed while `during` ran: its lifecycle events (`instance-updated`,
/// `network-acl-updated`, ...) from `lxc monitor`, LXD's own record, not fitter's. Two
/// sentinel changes (a network ACL made and removed) bracket the run, so no event is
/// missed and none is waited for on a clock: the monitor is known to listen once the first
/// sentinel's event arrives, and to have seen everything once the second's does.
pub fn lxd_changes_during<T>(during: impl FnOnce() -> T) -> (T, Vec<serde_json::Value>) {
    use std::io::BufRead as _;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let mut monitor = Command::new("lxc")
        .args(["monitor", "--type=lifecycle", "--format=json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lxc monitor runs");
    let stdout = monitor.stdout.take().unwrap();
    let (tx, events) = mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(event) = serde_json::from_str(&line)
                && tx.send(event).is_err()
            {
                break;
            }
        }
    });
    let sentinel = |name: &str, action: &str| {
        let ok = Command::new("lxc")
            .args(["network", "acl", action, name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "lxc network acl {action} {name}");
    };
    let is_sentinel = |event: &serde_json::Value, name: &str| {
        event["metadata"]["source"] == format!("/1.0/network-acls/{name}")
            && event["metadata"]["action"] == "network-acl-created"
    };
    let wait_for = |name: &str, patience: Duration| -> Option<Vec<serde_json::Value>> {
        let deadline = Instant::now() + patience;
        let mut before = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match events.recv_timeout(left) {
                Ok(e) if is_sentinel(&e, name) => return Some(before),
                Ok(e) => before.push(e),
                Err(_) => break,
            }
        }
        None
    };
    let id = std::process::id();
    // Until the monitor listens, a sentinel's event is lost: make one again until one is seen.
    let mut attempt = 0;
    loop {
        let name = format!("fitter-sentinel-{id}-{attempt}");
        sentinel(&name, "create");
        let seen = wait_for(&name, Duration::from_secs(2)).is_some();
        sentinel(&name, "delete");
        if seen {
            break;
        }
        attempt += 1;
        assert!(attempt < 30, "lxc monitor shows no event");
    }
    let result = during();
    let end = format!("fitter-sentinel-{id}-end");
    sentinel(&end, "create");
    let changes = wait_for(&end, Duration::from_secs(60)).expect("the closing sentinel's event");
    sentinel(&end, "delete");
    let _ = monitor.kill();
    let _ = monitor.wait();
    // The deletion of the opening sentinel may land after it: it is not the run's.
    let changes = changes
        .into_iter()
        .filter(|e| {
            !e["metadata"]["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("/1.0/network-acls/fitter-sentinel-"))
        })
        .collect();
    (result, changes)
}
