//! `fitter information`: what a deployment is made of, from its plan and its state: nodes
//! with roles and addresses, the cluster's endpoints, the plan's `information:` lines with
//! their tokens rendered, and ssh commands that check the pinned host keys.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fittings::Fittings;
use crate::fittings::tokens::{self, Meaning};
use crate::state::{State, Status};

#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub provider: String,
    pub roles: Vec<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// `ready`, `creating` (an interrupted create), or `absent` (planned, not created).
    pub status: String,
    pub host_key_fingerprint: Option<String>,
    pub ssh: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Information {
    pub deployment: String,
    pub nodes: Vec<NodeInfo>,
    /// Mesos UI, Marathon, the ZooKeeper connection string, where the roles are deployed.
    pub endpoints: BTreeMap<String, String>,
    /// The plan's `information:` lines, tokens rendered.
    pub information: Vec<String>,
    pub known_hosts: Option<PathBuf>,
}

/// The known_hosts file of a deployment, beside its state: `web.state.json.known_hosts`.
pub fn known_hosts_path(state_path: &Path) -> PathBuf {
    let mut p = state_path.as_os_str().to_owned();
    p.push(".known_hosts");
    PathBuf::from(p)
}

/// The pinned host keys as a known_hosts file, for `ssh -o UserKnownHostsFile=...`.
pub fn known_hosts(state: &State) -> String {
    let mut out = String::new();
    for r in state.resources.values() {
        let (Some(ip), Some(key)) = (r.outputs.address(), r.outputs.host_key.as_deref()) else {
            continue;
        };
        let _ = writeln!(out, "{ip} {}", key.trim());
    }
    out
}

pub fn gather(
    fittings: &Fittings,
    state: Option<&State>,
    key_path: Option<&Path>,
    known_hosts: Option<&Path>,
) -> Information {
    let mut nodes = Vec::new();
    let mut addresses: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    for spec in &fittings.nodes {
        let recorded = state.and_then(|s| s.resources.get(&format!("node.{}", spec.name.value)));
        let outputs = recorded.map(|r| &r.outputs);
        let private_ip = outputs.and_then(|o| o.private_ip).map(|ip| ip.to_string());
        let public_ip = outputs.and_then(|o| o.public_ip).map(|ip| ip.to_string());
        addresses.insert(
            spec.name.value.clone(),
            (private_ip.clone(), public_ip.clone()),
        );
        let status = match recorded.map(|r| r.status) {
            Some(Status::Ready) => "ready",
            Some(Status::Creating) => "creating",
            None => "absent",
        };
        let ssh = public_ip.as_ref().or(private_ip.as_ref()).map(|ip| {
            let mut cmd = String::from("ssh");
            if let Some(k) = key_path {
                let _ = write!(cmd, " -i {}", k.display());
            }
            if let Some(kh) = known_hosts {
                let _ = write!(
                    cmd,
                    " -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                    kh.display()
                );
            }
            let _ = write!(cmd, " root@{ip}");
            cmd
        });
        nodes.push(NodeInfo {
            name: spec.name.value.clone(),
            provider: spec.provider.to_string(),
            roles: spec.roles.iter().map(|r| r.value.clone()).collect(),
            private_ip,
            public_ip,
            status: status.to_string(),
            host_key_fingerprint: outputs.and_then(|o| o.host_key_fingerprint.clone()),
            ssh,
        });
    }
    let with_role = |role: &str| -> Vec<&NodeInfo> {
        nodes
            .iter()
            .filter(|n| n.roles.iter().any(|r| r == role))
            .collect()
    };
    let reachable = |n: &NodeInfo| n.public_ip.clone().or_else(|| n.private_ip.clone());
    let mut endpoints = BTreeMap::new();
    if let Some(ip) = with_role("mesos-master").first().and_then(|n| reachable(n)) {
        endpoints.insert("mesos".to_string(), format!("http://{ip}:5050"));
    }
    if let Some(ip) = with_role("marathon").first().and_then(|n| reachable(n)) {
        endpoints.insert("marathon".to_string(), format!("http://{ip}:8080"));
    }
    let zk: Vec<String> = with_role("zookeeper")
        .iter()
        .filter_map(|n| n.private_ip.clone().map(|ip| format!("{ip}:2181")))
        .collect();
    if !zk.is_empty() {
        endpoints.insert("zookeeper".to_string(), zk.join(","));
    }
    let mut information: Vec<String> = fittings
        .information
        .iter()
        .chain(fittings.locations.iter().flat_map(|l| &l.information))
        .map(|line| render_line(&line.value, &addresses))
        .collect();
    information.retain(|l| !l.is_empty());
    Information {
        deployment: fittings.deployment.clone(),
        nodes,
        endpoints,
        information,
        known_hosts: known_hosts.map(Path::to_path_buf),
    }
}

/// Renders the node tokens of a line; a node without the address yet shows `(unknown)`.
fn render_line(
    line: &str,
    addresses: &BTreeMap<String, (Option<String>, Option<String>)>,
) -> String {
    let mut out = String::new();
    let mut last = 0;
    for token in tokens::scan(line) {
        out.push_str(&line[last..token.start]);
        let rendered = match tokens::classify(token.expr, |n| addresses.contains_key(n)) {
            Meaning::Peer { node, attribute } => match (addresses.get(node), attribute) {
                (Some((private, _)), "private" | "private_host") => {
                    Some(private.clone().unwrap_or_else(|| "(unknown)".into()))
                }
                (Some((_, public)), "public") => {
                    Some(public.clone().unwrap_or_else(|| "(none)".into()))
                }
                (Some(_), "name") => Some(node.to_string()),
                _ => None,
            },
            _ => None,
        };
        match rendered {
            Some(r) => out.push_str(&r),
            None => out.push_str(&line[token.start..token.end]),
        }
        last = token.end;
    }
    out.push_str(&line[last..]);
    out
}

impl Information {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ready = self.nodes.iter().filter(|n| n.status == "ready").count();
        let _ = writeln!(
            out,
            "Deployment `{}`: {ready} of {} nodes ready\n",
            self.deployment,
            self.nodes.len()
        );
        let width = |f: &dyn Fn(&NodeInfo) -> String, head: &str| {
            self.nodes
                .iter()
                .map(|n| f(n).len())
                .max()
                .unwrap_or(0)
                .max(head.len())
        };
        let name = |n: &NodeInfo| n.name.clone();
        let roles = |n: &NodeInfo| n.roles.join(",");
        let private = |n: &NodeInfo| n.private_ip.clone().unwrap_or_else(|| "-".into());
        let public = |n: &NodeInfo| n.public_ip.clone().unwrap_or_else(|| "-".into());
        let (w1, w2, w3, w4) = (
            width(&name, "NODE"),
            width(&roles, "ROLES"),
            width(&private, "PRIVATE"),
            width(&public, "PUBLIC"),
        );
        let _ = writeln!(
            out,
            "{:w1$}  {:w2$}  {:w3$}  {:w4$}  STATUS",
            "NODE", "ROLES", "PRIVATE", "PUBLIC"
        );
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "{:w1$}  {:w2$}  {:w3$}  {:w4$}  {}",
                name(n),
                roles(n),
                private(n),
                public(n),
                n.status
            );
        }
        if !self.endpoints.is_empty() {
            let _ = writeln!(out, "\nEndpoints:");
            for (k, v) in &self.endpoints {
                let _ = writeln!(out, "  {k:<10} {v}");
            }
        }
        if !self.information.is_empty() {
            let _ = writeln!(out, "\nInformation:");
            for line in &self.information {
                let _ = writeln!(out, "  {line}");
            }
        }
        let ssh: Vec<&NodeInfo> = self.nodes.iter().filter(|n| n.ssh.is_some()).collect();
        if !ssh.is_empty() {
            let _ = writeln!(out, "\nSSH (host keys pinned):");
            for n in ssh {
                let _ = writeln!(out, "  {}   # {}", n.ssh.as_deref().unwrap_or(""), n.name);
            }
        }
        out
    }
}
