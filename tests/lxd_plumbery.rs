//! plumbery's plans on a real LXD (issue 11): the single Docker host and the swarm, whose
//! queen's configuration names her bees, deploy for real with their Dimension Data names
//! translated; their cloud-config (files with generated secrets and keys, commands, users,
//! authorised keys, sshd settings) is checked on the nodes with `lxc exec`, not with fitter;
//! the host keys are the ones fitter pinned; a second deploy changes nothing; dispose leaves
//! nothing.
//!
//! Like tests/lxd.rs these need the LXD daemon and image of `scripts/local-cloud.sh`, so they
//! are `#[ignore]`d in a plain `cargo test` and run by `scripts/test.sh`. They take turns.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use fitter::state::State;
use serde_json::Value as Json;

mod common;
use common::{Workspace, lxd_changes_during, text};

static LXD: Mutex<()> = Mutex::new(());

/// A plumbery case copied into a temporary folder under the deployment's name, deployed
/// with `--provider lxd`.
struct Deployment {
    ws: Workspace,
    name: String,
}

impl Deployment {
    fn new(case: &str, name: &str) -> Deployment {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/cases/{case}/fittings.yaml"));
        Deployment {
            ws: Workspace::copy_of(&source, name, Some("lxd")),
            name: name.to_string(),
        }
    }

    fn fitter(&self, args: &[&str]) -> Output {
        self.ws.fitter(args)
    }

    fn deploy(&self) -> String {
        let out = self.fitter(&["deploy"]);
        assert!(out.status.success(), "deploy {}: {}", self.name, text(&out));
        text(&out)
    }

    fn state(&self) -> State {
        self.ws.state()
    }

    /// A command's standard output on a node, through `lxc exec`.
    fn on(&self, node: &str, command: &str) -> String {
        let out = Command::new("lxc")
            .args([
                "exec",
                &format!("{}-{node}", self.name),
                "--",
                "sh",
                "-c",
                command,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{node}: `{command}`: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn private(&self, node: &str) -> String {
        let state = self.state();
        let outputs = &state.resources[&format!("node.{node}")].outputs;
        outputs.private_ip.expect("a private address").to_string()
    }

    /// The host key fitter recorded is the node's only one, of the type given.
    fn host_key_is_pinned(&self, node: &str, kind: &str) {
        let state = self.state();
        let recorded = state.resources[&format!("node.{node}")]
            .outputs
            .host_key
            .clone()
            .expect("a recorded host key");
        let keys = self.on(node, "ls /etc/ssh/ | grep '^ssh_host_.*_key$'");
        assert_eq!(
            keys.trim(),
            format!("ssh_host_{kind}_key"),
            "{node}'s host keys"
        );
        let on_node = self.on(node, &format!("cat /etc/ssh/ssh_host_{kind}_key.pub"));
        let key = |line: &str| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(key(&on_node), key(&recorded), "{node}'s host key");
    }

    /// A second deploy changes nothing, then dispose leaves nothing.
    fn converged_then_disposed(&self, nodes: &[&str]) {
        let secrets = self.state().secrets;
        let (again, changed) = lxd_changes_during(|| self.deploy());
        assert!(again.contains("No changes."), "{again}");
        assert!(
            changed.is_empty(),
            "a no-change deploy changed LXD: {changed:?}"
        );
        assert_eq!(
            self.state().secrets,
            secrets,
            "the secrets made once, reused"
        );
        for node in nodes {
            assert!(
                again.contains(&format!("bootstrap {node}: no change")),
                "{again}"
            );
        }
        let out = self.fitter(&["dispose"]);
        assert!(out.status.success(), "dispose: {}", text(&out));
        assert!(
            owned(&self.name).is_empty(),
            "left: {:?}",
            owned(&self.name)
        );
    }
}

/// Containers and networks carrying the deployment's mark, from the `lxc` client.
fn owned(deployment: &str) -> Vec<String> {
    let mut names = Vec::new();
    for list in [
        &["list"][..],
        &["network", "list"],
        &["network", "acl", "list"],
    ] {
        let out = Command::new("lxc")
            .args(list)
            .args(["--format", "json"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let items: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        names.extend(
            items
                .iter()
                .filter(|i| i["config"]["user.fitter.deployment"] == deployment)
                .filter_map(|i| i["name"].as_str().map(str::to_string)),
        );
    }
    names
}

fn hex_md5(text: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn the_plumbery_docker_host_deploys_for_real_with_its_cloud_config_on_the_node() {
    let _turn = LXD.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("plumbery-docker-host", "plumbery-docker");
    // At -vv: the debug log of every LXD call and SSH step is searched for secrets below.
    let out = d.fitter(&["deploy", "-vv"]);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let out = text(&out);
    assert!(out.contains("DEBUG"), "a debug log: {out}");
    assert!(
        out.contains("appliance `Ubuntu 14` runs as Debian 12"),
        "{out}"
    );
    // The plan's own host key (cloud-config `ssh_keys`, from a generated pair) is the one
    // installed and pinned: fitter connected with it for bootstrap and does again below.
    d.host_key_is_pinned("dockerhost", "rsa");
    let state = d.state();
    let pinned = state.resources["node.dockerhost"].outputs.host_key.clone();
    assert_eq!(
        pinned.as_deref().map(str::trim),
        Some(state.secrets["rsa_public.dockerhost"].trim())
    );
    // Files, with the secret, its digest, a uuid and the generated private key.
    let secret = &state.secrets["secret.admin"];
    let credentials = d.on("dockerhost", "cat /etc/docker-host/credentials");
    let expected = format!(
        "admin:{secret} md5:{} host:{}",
        hex_md5(secret),
        state.secrets["uuid.host"]
    );
    assert_eq!(credentials.trim(), expected);
    assert_eq!(
        d.on("dockerhost", "stat -c %a /etc/docker-host/credentials")
            .trim(),
        "600"
    );
    // No secret fitter made is in what the deploy printed (it is on the node, above).
    // (A pair's public half is not secret: it may show, as a host key does.)
    for (name, value) in state
        .secrets
        .iter()
        .filter(|(k, _)| !k.starts_with("rsa_public."))
    {
        let longest = value.lines().max_by_key(|l| l.len()).unwrap_or_default();
        assert!(
            !out.contains(value.trim()) && (longest.len() < 16 || !out.contains(longest)),
            "the deploy printed secret {name}"
        );
    }
    let id_rsa = d.on("dockerhost", "cat /root/.ssh/id_rsa");
    assert_eq!(id_rsa.trim(), state.secrets["rsa_private.docker"].trim());
    // The pair's public half is authorised for root; the user exists.
    let authorized = d.on("dockerhost", "cat /root/.ssh/authorized_keys");
    assert!(
        authorized.contains(state.secrets["rsa_public.docker"].trim()),
        "{authorized}"
    );
    d.on("dockerhost", "id dockerops");
    // The command ran with the node's own address.
    let motd = d.on("dockerhost", "cat /etc/motd");
    assert_eq!(
        motd.trim(),
        format!("docker host at {}", d.private("dockerhost"))
    );
    // sshd as the plan asks, and fitter still gets in (the second deploy below).
    let sshd = d.on("dockerhost", "sshd -T");
    assert!(
        sshd.lines().any(|l| l == "passwordauthentication no"),
        "{sshd}"
    );
    assert!(
        sshd.lines()
            .any(|l| l == "permitrootlogin without-password"),
        "{sshd}"
    );
    d.converged_then_disposed(&["dockerhost"]);
}

#[test]
#[ignore = "needs LXD: run scripts/test.sh"]
fn the_plumbery_swarm_deploys_for_real_and_the_queen_knows_her_bees() {
    let _turn = LXD.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new("plumbery-swarm", "plumbery-swarm");
    d.deploy();
    for node in ["queen", "bee1", "bee2", "monitor1"] {
        d.host_key_is_pinned(node, "ed25519");
    }
    let motd = d.on("queen", "cat /etc/motd");
    assert_eq!(
        motd.trim(),
        format!("queen of {} and {}", d.private("bee1"), d.private("bee2"))
    );
    assert_eq!(d.on("bee2", "cat /etc/motd").trim(), "bee of the swarm");
    d.converged_then_disposed(&["queen", "bee1", "bee2", "monitor1"]);
}
