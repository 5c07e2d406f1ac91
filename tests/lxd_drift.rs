//! Drift in one report (issue 13): a plan with one location on a real LXD and one on the
//! DigitalOcean simulator. Behind fitter's back, a droplet is deleted and a firewall's rules
//! edited through the simulator's API, and on the LXD node a file fitter placed is changed
//! and the service it runs is stopped. `plan --refresh-only --detailed-exitcode` shows all
//! four and exits 2; `plan --diff` shows the file's diff; one `deploy` repairs everything;
//! the next report is clean.
//!
//! The simulated droplet runs no sshd, so the deploys that configure nodes name the LXD
//! node with `--limit`. Needs `scripts/local-cloud.sh` (run by `scripts/test.sh`), so it
//! is `#[ignore]`d in a plain `cargo test`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use fitter_sim::Simulator;

mod support;
use support::{TOKEN, api as call, delete_droplet, fast_simulator, text};
const DEPLOYMENT: &str = "fitter-drift";

const PLAN: &str = r#"---
information:
  - "One node on this machine's LXD, one droplet on the DigitalOcean simulator."
---
locationId: local
provider: lxd
blueprints:
  - box:
      ethernet:
        name: fitter-drift
        subnet: 10.97.0.0/24
      nodes:
        - drift1:
            roles: [zookeeper]
            glue: [internet 22]
---
locationId: nyc3
provider: digitalocean
blueprints:
  - web:
      ethernet:
        name: drift-web
        subnet: 10.96.0.0/24
      nodes:
        - web1:
            glue: [internet 22 80]
"#;

struct Run {
    dir: tempfile::TempDir,
    sim: Simulator,
    key: PathBuf,
}

impl Run {
    fn plan(&self) -> PathBuf {
        self.dir.path().join(format!("{DEPLOYMENT}.yaml"))
    }

    fn fitter(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitter"));
        cmd.args(args)
            .arg(self.plan())
            .env("DIGITALOCEAN_TOKEN", TOKEN)
            .env("DIGITALOCEAN_API_URL", self.sim.url())
            .env("FITTER_SSH_KEY", &self.key)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.fitter(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self) -> serde_json::Value {
        let path = self.dir.path().join(format!("{DEPLOYMENT}.state.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn id(&self, address: &str) -> String {
        self.state()["resources"][address]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// A failed test still disposes, so that the next run starts from nothing.
impl Drop for Run {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.fitter(&["dispose", "--yes"]);
        }
    }
}

/// A shell command in the LXD node, through `lxc exec` (not fitter's SSH).
fn on_node(command: &str) -> (i32, String) {
    let out = Command::new("lxc")
        .args([
            "exec",
            &format!("{DEPLOYMENT}-drift1"),
            "--",
            "sh",
            "-c",
            command,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), said)
}

fn start() -> Run {
    let sim = fast_simulator();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{DEPLOYMENT}.yaml")), PLAN).unwrap();
    let key = dir.path().join("operator_ed25519");
    fitter::ssh::OperatorKey::create(&key).unwrap();
    Run { dir, sim, key }
}

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn cloud_drift_and_node_drift_in_one_report_then_repaired() {
    let run = start();
    // Made, then the LXD node configured (the droplet answers no SSH).
    run.ok(&["deploy", "--yes", "--skip-bootstrap"]);
    run.ok(&["deploy", "--yes", "--limit", "drift1"]);
    let clean = run.fitter(&["plan", "--refresh-only", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    // Behind fitter's back: at the provider...
    let droplet = run.id("node.web1");
    let firewall = run.id("firewall.web");
    let (status, body) = call(&run.sim, "GET", &format!("/v2/firewalls/{firewall}"), None);
    assert_eq!(status, 200, "{body}");
    let mut fw: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fw = fw["firewall"].take();
    let mut inbound = fw["inbound_rules"].as_array().unwrap().clone();
    inbound.push(serde_json::json!({"protocol": "tcp", "ports": "3306", "sources": {"addresses": ["0.0.0.0/0"]}}));
    let edited = serde_json::json!({
        "name": fw["name"], "tags": fw["tags"], "inbound_rules": inbound,
        "outbound_rules": fw["outbound_rules"],
    });
    let (status, body) = call(
        &run.sim,
        "PUT",
        &format!("/v2/firewalls/{firewall}"),
        Some(&edited.to_string()),
    );
    assert_eq!(status, 200, "{body}");
    delete_droplet(&run.sim, &droplet);
    // ... and on the node.
    let (code, said) = on_node(
        "echo 'maxClientCnxns=1' >> /etc/zookeeper/conf/zoo.cfg && systemctl stop zookeeper",
    );
    assert_eq!(code, 0, "{said}");

    let out = run.fitter(&["plan", "--refresh-only", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    for expected in [
        "node.web1: deleted at its provider",
        "firewall.web: its rules are not the ones fitter set",
        "drift1: /etc/zookeeper/conf/zoo.cfg differs from what fitter renders",
        "drift1: service zookeeper is not running",
        "4 changes outside fitter.",
    ] {
        assert!(report.contains(expected), "`{expected}` in:\n{report}");
    }
    // The diff, as Ansible's --check --diff shows it.
    let diff = run.ok(&["plan", "--diff"]);
    assert!(
        diff.contains("--- drift1:/etc/zookeeper/conf/zoo.cfg (on the node)")
            && diff.contains("-maxClientCnxns=1"),
        "{diff}"
    );

    // One deploy repairs all of it.
    let out = run.ok(&["deploy", "--yes", "--limit", "drift1"]);
    assert!(
        out.contains("firewall.web will be updated in place; changed outside fitter"),
        "{out}"
    );
    assert!(
        // zoo.cfg, and /etc/hosts for the droplet made again with a new address.
        out.contains("bootstrap drift1: 2 files uploaded, restarted zookeeper"),
        "{out}"
    );
    let (code, said) = on_node(
        "systemctl is-active zookeeper; grep -c maxClientCnxns=1 /etc/zookeeper/conf/zoo.cfg",
    );
    assert!(said.starts_with("active\n0"), "{code} {said}");
    let clean = run.fitter(&["plan", "--refresh-only", "--detailed-exitcode"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(
        String::from_utf8_lossy(&clean.stdout).starts_with("No drift:"),
        "{}",
        text(&clean)
    );

    run.ok(&["dispose", "--yes"]);
    let left = Command::new("lxc")
        .args(["list", "--format", "csv", "-c", "n"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(DEPLOYMENT));
}
