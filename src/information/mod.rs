//! `fitter information`: what a deployment is made of, from its plan and its state: nodes
//! with roles and addresses, each node's components and services, the cluster's endpoints,
//! the plan's `information:` lines with their tokens rendered, and ssh commands that check
//! the pinned host keys.
//!
//! [`gather`] reads only the plan and the state (`--offline`, and the summary after a
//! deploy); [`live::survey`] then asks every ready node, in one SSH round trip each, what
//! its services are doing (`systemctl is-active`, the components' health checks: ZooKeeper's
//! mode, Docker's engine). An endpoint is listed only for a component that is installed,
//! and, when the nodes were asked, only where its service runs: a component that is only
//! configured (Mesos and Marathon by default) is shown as such, never as a URL.
//!
//! Files: `mod.rs` (what is shown, from the plan and the state), `live.rs` (the nodes
//! asked over SSH), `render.rs` (the text form; `--json` serialises [`Information`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::components::Catalog;
use crate::fittings::Fittings;
use crate::fittings::tokens::{self, Meaning};
use crate::state::{State, Status};

pub mod live;
mod render;

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
    /// The node's components (`common` aside), as the plan has them and, once the node
    /// was asked, as it runs them.
    pub components: Vec<ComponentInfo>,
    /// Why the node was not asked, or gave no answer (not created, unreachable, a refused
    /// key), when the nodes were asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_asked: Option<String>,
}

/// One component on one node.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    pub component: String,
    /// Whether fitter installs its packages and runs its services (`install:`); when false
    /// only its files are placed ("configured").
    pub installed: bool,
    /// Each service with its state (`active`, `inactive`, `failed`...; `null` when the
    /// node was not asked).
    pub services: Vec<ServiceInfo>,
    /// Each health check's verdict, when the node was asked.
    pub checks: Vec<CheckInfo>,
    /// For a quorum component (ZooKeeper): the member's role, `leader`, `follower` or
    /// `standalone`, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceInfo {
    pub name: String,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckInfo {
    pub name: String,
    pub healthy: bool,
    /// The check's answer, one line, capped (Docker's version, ZooKeeper's `srvr`...).
    pub answer: String,
}

impl ComponentInfo {
    /// Whether its services are known to run: `None` when the node was not asked.
    pub fn running(&self) -> Option<bool> {
        if !self.installed {
            return Some(false);
        }
        let states: Option<Vec<&String>> = self.services.iter().map(|s| s.state.as_ref()).collect();
        states.map(|s| s.iter().all(|s| *s == "active"))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Information {
    pub deployment: String,
    pub nodes: Vec<NodeInfo>,
    /// Whether the nodes were asked over SSH (`false`: `--offline`, the state alone).
    pub live: bool,
    /// Mesos UI, Marathon, the ZooKeeper connection string: only for components installed
    /// and, when the nodes were asked, running on at least one node.
    pub endpoints: BTreeMap<String, String>,
    /// Endpoints not listed, and why: `configured, not installed`, `installed, not
    /// running`, `installed, no member could be asked`.
    pub not_served: BTreeMap<String, String>,
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
    catalog: &Catalog,
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
            components: fittings
                .components_of(spec, catalog)
                .into_iter()
                .filter(|c| c.name != crate::components::COMMON)
                .map(|c| {
                    let installed = fittings.installs(c);
                    ComponentInfo {
                        component: c.name.clone(),
                        installed,
                        services: if installed {
                            c.services
                                .iter()
                                .map(|s| ServiceInfo {
                                    name: s.clone(),
                                    state: None,
                                })
                                .collect()
                        } else {
                            Vec::new()
                        },
                        checks: Vec::new(),
                        mode: None,
                    }
                })
                .collect(),
            not_asked: None,
        });
    }
    let mut information: Vec<String> = fittings
        .information
        .iter()
        .chain(fittings.locations.iter().flat_map(|l| &l.information))
        .map(|line| render_line(&line.value, &addresses))
        .collect();
    information.retain(|l| !l.is_empty());
    let mut info = Information {
        deployment: fittings.deployment.clone(),
        nodes,
        live: false,
        endpoints: BTreeMap::new(),
        not_served: BTreeMap::new(),
        information,
        known_hosts: known_hosts.map(Path::to_path_buf),
    };
    info.find_endpoints();
    info
}

/// The endpoints fitter knows: its name, the component that serves it, the port, and
/// whether it is a URL (else a `host:port` list of every member, for ZooKeeper clients).
const ENDPOINTS: &[(&str, &str, u16, bool)] = &[
    ("mesos", "mesos-master", 5050, true),
    ("marathon", "marathon", 8080, true),
    ("zookeeper", "zookeeper", 2181, false),
];

impl Information {
    /// Lists an endpoint for each component installed on some node and, when the nodes
    /// were asked, running there; says why for the others.
    fn find_endpoints(&mut self) {
        self.endpoints.clear();
        self.not_served.clear();
        for (name, component, port, url) in ENDPOINTS {
            let with: Vec<(&NodeInfo, &ComponentInfo)> = self
                .nodes
                .iter()
                .filter_map(|n| {
                    let c = n.components.iter().find(|c| c.component == *component)?;
                    Some((n, c))
                })
                .collect();
            if with.is_empty() {
                continue;
            }
            if with.iter().all(|(_, c)| !c.installed) {
                self.not_served
                    .insert(name.to_string(), "configured, not installed".into());
                continue;
            }
            // Asked: only where it was seen running. Offline: wherever it is installed.
            let live = self.live;
            let serving: Vec<&NodeInfo> = with
                .iter()
                .filter(|(_, c)| c.installed)
                .filter(|(_, c)| match c.running() {
                    Some(running) => running,
                    None => !live,
                })
                .map(|(n, _)| *n)
                .collect();
            if serving.is_empty() {
                let unknown = with
                    .iter()
                    .any(|(_, c)| c.installed && c.running().is_none());
                let why = if unknown {
                    "installed, no member could be asked"
                } else {
                    "installed, not running"
                };
                self.not_served.insert(name.to_string(), why.into());
                continue;
            }
            let value = if *url {
                let reachable = serving
                    .iter()
                    .find_map(|n| n.public_ip.clone().or_else(|| n.private_ip.clone()));
                reachable.map(|ip| format!("http://{ip}:{port}"))
            } else {
                let members: Vec<String> = serving
                    .iter()
                    .filter_map(|n| n.private_ip.clone().map(|ip| format!("{ip}:{port}")))
                    .collect();
                Some(members.join(",")).filter(|m| !m.is_empty())
            };
            if let Some(v) = value {
                self.endpoints.insert(name.to_string(), v);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, ip: &str, installed: bool, state: Option<&str>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            provider: "lxd".into(),
            roles: vec!["zookeeper".into(), "mesos-master".into()],
            private_ip: Some(ip.into()),
            public_ip: None,
            status: "ready".into(),
            host_key_fingerprint: None,
            ssh: None,
            components: vec![
                ComponentInfo {
                    component: "zookeeper".into(),
                    installed: true,
                    services: vec![ServiceInfo {
                        name: "zookeeper".into(),
                        state: state.map(str::to_string),
                    }],
                    checks: Vec::new(),
                    mode: None,
                },
                ComponentInfo {
                    component: "mesos-master".into(),
                    installed,
                    services: if installed {
                        vec![ServiceInfo {
                            name: "mesos-master".into(),
                            state: state.map(str::to_string),
                        }]
                    } else {
                        Vec::new()
                    },
                    checks: Vec::new(),
                    mode: None,
                },
            ],
            not_asked: None,
        }
    }

    fn info(nodes: Vec<NodeInfo>) -> Information {
        let mut i = Information {
            deployment: "d".into(),
            nodes,
            live: false,
            endpoints: BTreeMap::new(),
            not_served: BTreeMap::new(),
            information: Vec::new(),
            known_hosts: None,
        };
        i.find_endpoints();
        i
    }

    #[test]
    fn a_component_only_configured_has_no_endpoint() {
        let i = info(vec![member("m1", "10.0.0.11", false, None)]);
        assert!(!i.endpoints.contains_key("mesos"));
        assert_eq!(i.not_served["mesos"], "configured, not installed");
        // Offline, an installed component is listed where it is installed.
        assert_eq!(i.endpoints["zookeeper"], "10.0.0.11:2181");
        let i = info(vec![member("m1", "10.0.0.11", true, None)]);
        assert_eq!(i.endpoints["mesos"], "http://10.0.0.11:5050");
    }

    #[test]
    fn asked_nodes_list_an_endpoint_only_where_its_service_runs() {
        let i = info(vec![
            member("m1", "10.0.0.11", true, Some("failed")),
            member("m2", "10.0.0.12", true, Some("active")),
        ]);
        assert_eq!(i.endpoints["mesos"], "http://10.0.0.12:5050");
        assert_eq!(i.endpoints["zookeeper"], "10.0.0.12:2181");
        let i = info(vec![member("m1", "10.0.0.11", true, Some("inactive"))]);
        assert!(i.endpoints.is_empty(), "{:?}", i.endpoints);
        assert_eq!(i.not_served["mesos"], "installed, not running");
        assert_eq!(i.not_served["zookeeper"], "installed, not running");
        // Asked, and no member answered: nothing is claimed to serve.
        let mut i = info(vec![member("m1", "10.0.0.11", true, None)]);
        i.live = true;
        i.find_endpoints();
        assert!(i.endpoints.is_empty(), "{:?}", i.endpoints);
        assert_eq!(i.not_served["mesos"], "installed, no member could be asked");
    }
}
