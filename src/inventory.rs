//! `fitter inventory`: the deployment's nodes for other tools, from the state.
//!
//! - `ini` (default) and `yaml`: an Ansible inventory. Every node is a host in `all` with
//!   `ansible_host` (its public address, else its private one), `ansible_user=root`, the
//!   operator's key and ssh arguments that pin the host keys fitter recorded (the
//!   `known_hosts` file beside the state), and `private_ip`. One group per role, with
//!   Ansible's spelling: `mesos-master` becomes `mesos_master` (Ansible warns about dashes).
//! - `json`: a plain list of nodes: name, roles, addresses, status.
//! - `ansible-json`: what a dynamic inventory script prints for `--list`: one entry per
//!   group with its `hosts`, `all` with its `children`, and every host's variables under
//!   `_meta.hostvars` (so Ansible never calls the script again with `--host`). A two-line
//!   script that runs `fitter inventory --format ansible-json` makes the deployment a
//!   dynamic inventory (docs/cli.md).
//!
//! Nodes not created yet have no address and are left out of the Ansible inventories (an
//! inventory host must be reachable); the JSON list shows them with their status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::information::{Information, NodeInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ini,
    Yaml,
    Json,
    AnsibleJson,
}

/// The group name Ansible accepts for a role.
pub fn group_name(role: &str) -> String {
    role.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The variables of one host.
fn host_vars(
    node: &NodeInfo,
    key: Option<&Path>,
    known_hosts: Option<&Path>,
) -> Option<BTreeMap<&'static str, String>> {
    let address = node.public_ip.clone().or_else(|| node.private_ip.clone())?;
    let mut vars = BTreeMap::new();
    vars.insert("ansible_host", address);
    vars.insert("ansible_user", "root".to_string());
    if let Some(k) = key {
        vars.insert("ansible_ssh_private_key_file", k.display().to_string());
    }
    if let Some(kh) = known_hosts {
        vars.insert(
            "ansible_ssh_common_args",
            format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                kh.display()
            ),
        );
    }
    if let Some(p) = &node.private_ip {
        vars.insert("private_ip", p.clone());
    }
    Some(vars)
}

/// Role groups: group name -> the reachable nodes with that role, in plan order.
fn groups<'a>(nodes: &[&'a NodeInfo]) -> BTreeMap<String, Vec<&'a str>> {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for n in nodes {
        for role in &n.roles {
            groups.entry(group_name(role)).or_default().push(&n.name);
        }
    }
    groups
}

#[derive(Serialize)]
struct JsonNode<'a> {
    name: &'a str,
    roles: &'a [String],
    public_ip: Option<&'a str>,
    private_ip: Option<&'a str>,
    status: &'a str,
}

/// Renders the inventory of `info` in `format`.
pub fn render(
    info: &Information,
    format: Format,
    key: Option<&Path>,
    known_hosts: Option<&Path>,
) -> String {
    let reachable: Vec<(&NodeInfo, BTreeMap<&'static str, String>)> = info
        .nodes
        .iter()
        .filter_map(|n| Some((n, host_vars(n, key, known_hosts)?)))
        .collect();
    let nodes: Vec<&NodeInfo> = reachable.iter().map(|(n, _)| *n).collect();
    match format {
        Format::Json => {
            let list: Vec<JsonNode<'_>> = info
                .nodes
                .iter()
                .map(|n| JsonNode {
                    name: &n.name,
                    roles: &n.roles,
                    public_ip: n.public_ip.as_deref(),
                    private_ip: n.private_ip.as_deref(),
                    status: &n.status,
                })
                .collect();
            let mut out = serde_json::to_string_pretty(&list).expect("nodes serialise");
            out.push('\n');
            out
        }
        Format::AnsibleJson => {
            use serde_json::{Value, json};
            let mut root = serde_json::Map::new();
            let groups = groups(&nodes);
            let mut children: Vec<String> = groups.keys().cloned().collect();
            children.push("ungrouped".into());
            root.insert(
                "all".into(),
                json!({ "hosts": nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), "children": children }),
            );
            for (group, members) in groups {
                root.insert(group, json!({ "hosts": members }));
            }
            let hostvars: serde_json::Map<String, Value> = reachable
                .iter()
                .map(|(n, vars)| (n.name.clone(), json!(vars)))
                .collect();
            root.insert("_meta".into(), json!({ "hostvars": hostvars }));
            let mut out =
                serde_json::to_string_pretty(&Value::Object(root)).expect("inventory serialises");
            out.push('\n');
            out
        }
        Format::Ini => {
            let mut out = format!("# fitter inventory of deployment {}\n", info.deployment);
            out.push_str("[all]\n");
            for (n, vars) in &reachable {
                let _ = write!(out, "{}", n.name);
                for (k, v) in vars {
                    let _ = write!(out, " {k}={}", ini_value(v));
                }
                out.push('\n');
            }
            for (group, members) in groups(&nodes) {
                let _ = write!(out, "\n[{group}]\n");
                for m in members {
                    let _ = writeln!(out, "{m}");
                }
            }
            out
        }
        Format::Yaml => {
            #[derive(Serialize)]
            struct Group<'a> {
                hosts: BTreeMap<&'a str, BTreeMap<&'static str, String>>,
                #[serde(skip_serializing_if = "BTreeMap::is_empty")]
                children: BTreeMap<String, Group<'a>>,
            }
            let children = groups(&nodes)
                .into_iter()
                .map(|(g, members)| {
                    (
                        g,
                        Group {
                            hosts: members.into_iter().map(|m| (m, BTreeMap::new())).collect(),
                            children: BTreeMap::new(),
                        },
                    )
                })
                .collect();
            let all = Group {
                hosts: reachable
                    .iter()
                    .map(|(n, vars)| (n.name.as_str(), vars.clone()))
                    .collect(),
                children,
            };
            let mut root = BTreeMap::new();
            root.insert("all", all);
            format!(
                "# fitter inventory of deployment {}\n{}",
                info.deployment,
                crate::yaml::to_string(&root)
            )
        }
    }
}

/// A value in an INI inventory line: quoted when it has spaces.
fn ini_value(v: &str) -> String {
    if v.contains(char::is_whitespace) {
        format!("'{}'", v.replace('\'', "\\'"))
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, roles: &[&str], public: Option<&str>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            provider: "lxd".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            private_ip: public.map(|_| format!("10.0.0.{}", name.len())),
            public_ip: public.map(str::to_string),
            status: if public.is_some() { "ready" } else { "absent" }.into(),
            host_key_fingerprint: None,
            ssh: None,
            components: Vec::new(),
            not_asked: None,
        }
    }

    fn info() -> Information {
        Information {
            deployment: "demo".into(),
            nodes: vec![
                node("master1", &["zookeeper", "mesos-master"], Some("127.1.0.2")),
                node("agent1", &["mesos-agent"], Some("127.1.0.3")),
                node("agent2", &["mesos-agent"], None),
            ],
            live: false,
            endpoints: BTreeMap::new(),
            not_served: BTreeMap::new(),
            information: vec![],
            known_hosts: None,
        }
    }

    #[test]
    fn ini_has_every_reachable_host_and_a_group_per_role() {
        let text = render(
            &info(),
            Format::Ini,
            Some(Path::new("/k/id")),
            Some(Path::new("/k/known")),
        );
        insta::assert_snapshot!(text);
        assert!(
            !text.contains("agent2"),
            "a node with no address is left out"
        );
    }

    #[test]
    fn yaml_is_the_same_inventory() {
        let text = render(&info(), Format::Yaml, Some(Path::new("/k/id")), None);
        insta::assert_snapshot!(text);
        let parsed: serde_json::Value =
            crate::yaml::from_trusted_str(text.trim_start_matches(|c| c != '\n')).unwrap();
        assert_eq!(
            parsed["all"]["hosts"]["master1"]["ansible_host"],
            "127.1.0.2"
        );
        assert!(parsed["all"]["children"]["mesos_master"]["hosts"]["master1"].is_object());
    }

    #[test]
    fn json_lists_every_node_with_its_status() {
        let list: serde_json::Value =
            serde_json::from_str(&render(&info(), Format::Json, None, None)).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 3);
        assert_eq!(list[2]["status"], "absent");
        assert!(list[2]["public_ip"].is_null());
    }
}
