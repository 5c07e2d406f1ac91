//! The JSON bodies fitter sends to DigitalOcean, built in one place so that a test can check
//! every key against the official spec (`tests/digitalocean_contract.rs`).
//!
//! Absent options are left out, never sent as `null`: the API (and Prism) rejects
//! `"ssh_keys": null`. Firewall rules always carry `ports`, `"0"` for every port and for ICMP,
//! which the API requires even where godo leaves it out.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::api::{FirewallRule, RuleSource, host_key_type};

pub fn ssh_key(name: &str, public_key: &str) -> Json {
    json!({ "name": name, "public_key": public_key })
}

pub fn tag(name: &str) -> Json {
    json!({ "name": name })
}

/// The resources to tag, as `POST /v2/tags/{tag}/resources` takes them.
pub fn tag_resources(droplet_ids: &[u64]) -> Json {
    json!({
        "resources": droplet_ids
            .iter()
            .map(|id| json!({ "resource_id": id.to_string(), "resource_type": "droplet" }))
            .collect::<Vec<_>>()
    })
}

pub fn vpc(name: &str, region: &str, ip_range: &str, description: &str) -> Json {
    json!({
        "name": name,
        "region": region,
        "ip_range": ip_range,
        "description": description,
    })
}

/// A VPC update: the name and description (the range and region cannot change).
pub fn vpc_update(name: &str, description: &str) -> Json {
    json!({ "name": name, "description": description })
}

/// A cloud firewall. Rules with the same protocol and ports are merged, sources sorted, so
/// the body is the same whatever the order of the plan's lines.
pub fn firewall(name: &str, rules: &[FirewallRule], member_tag: &str) -> Json {
    let mut merged: BTreeMap<(String, String), (Vec<String>, Vec<String>)> = BTreeMap::new();
    for rule in rules {
        let ports = ports(rule);
        let (addresses, tags) = merged.entry((rule.protocol.clone(), ports)).or_default();
        match &rule.source {
            RuleSource::Anywhere => {
                addresses.push("0.0.0.0/0".to_string());
                addresses.push("::/0".to_string());
            }
            RuleSource::Cidr(c) => addresses.push(c.clone()),
            RuleSource::Group { tag, .. } => tags.push(tag.clone()),
        }
    }
    let inbound: Vec<Json> = merged
        .into_iter()
        .map(|((protocol, ports), (mut addresses, mut tags))| {
            addresses.sort();
            addresses.dedup();
            tags.sort();
            tags.dedup();
            let mut sources = serde_json::Map::new();
            if !addresses.is_empty() {
                sources.insert("addresses".into(), json!(addresses));
            }
            if !tags.is_empty() {
                sources.insert("tags".into(), json!(tags));
            }
            json!({ "protocol": protocol, "ports": ports, "sources": sources })
        })
        .collect();
    // Outbound: everything, as the plan's `all to anywhere` says; a DigitalOcean firewall
    // with no outbound rule would cut the nodes off (no package mirror, no NTP).
    let anywhere = json!({ "addresses": ["0.0.0.0/0", "::/0"] });
    let outbound: Vec<Json> = ["icmp", "tcp", "udp"]
        .iter()
        .map(|p| json!({ "protocol": p, "ports": "0", "destinations": anywhere }))
        .collect();
    json!({
        "name": name,
        "inbound_rules": inbound,
        "outbound_rules": outbound,
        "tags": [member_tag],
    })
}

/// `"22"`, `"8000-9000"`, or `"0"` for every port and for ICMP.
fn ports(rule: &FirewallRule) -> String {
    match rule.ports {
        _ if rule.protocol == "icmp" => "0".to_string(),
        None => "0".to_string(),
        Some((a, b)) if a == b => a.to_string(),
        Some((a, b)) => format!("{a}-{b}"),
    }
}

/// A droplet action without parameters: `power_off`, `power_on`.
pub fn action(kind: &str) -> Json {
    json!({ "type": kind })
}

/// A resize of CPU and memory; the disk stays, so it can be undone.
pub fn resize(size: &str) -> Json {
    json!({ "type": "resize", "size": size, "disk": false })
}

/// What droplets of one batch share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DropletSpec {
    pub size: String,
    pub image: String,
    pub region: String,
    pub vpc_uuid: Option<String>,
    /// Sorted.
    pub tags: Vec<String>,
    /// Fingerprints of account keys allowed to log in as root.
    pub ssh_keys: Vec<String>,
}

/// One create call: `name` for a single droplet, `names` for a batch (up to 10).
pub fn droplets(spec: &DropletSpec, names: &[String], user_data: &str) -> Json {
    let mut body = serde_json::Map::new();
    if let [one] = names {
        body.insert("name".into(), json!(one));
    } else {
        body.insert("names".into(), json!(names));
    }
    body.insert("region".into(), json!(spec.region));
    body.insert("size".into(), json!(spec.size));
    body.insert("image".into(), image(&spec.image));
    if !spec.ssh_keys.is_empty() {
        body.insert("ssh_keys".into(), json!(spec.ssh_keys));
    }
    if let Some(v) = &spec.vpc_uuid {
        body.insert("vpc_uuid".into(), json!(v));
    }
    body.insert("tags".into(), json!(spec.tags));
    body.insert("user_data".into(), json!(user_data));
    Json::Object(body)
}

/// An image is a slug, or a number for a custom image or snapshot.
fn image(image: &str) -> Json {
    match image.parse::<u64>() {
        Ok(id) => json!(id),
        Err(_) => json!(image),
    }
}

/// One node's part of a batch's cloud-init: its name, host key pair.
pub struct HostKey<'a> {
    pub name: &'a str,
    pub private_openssh: &'a str,
    pub public_openssh: &'a str,
}

/// cloud-init `user_data` for a batch. A batch shares one `user_data`, so each node picks its
/// own host key by name, with cloud-init's Jinja templating on `v1.local_hostname` (the droplet
/// name). `ssh_genkeytypes: []` leaves fitter's key as sshd's only host key, so the first
/// connection already checks the fingerprint fitter recorded. A node can read the batch's
/// `user_data` from the metadata service and so its batch mates' host keys: batches only hold
/// nodes with the same size, image, region, network and tags, i.e. the same role.
pub fn user_data(deployment: &str, authorized_keys: &[String], hosts: &[HostKey<'_>]) -> String {
    let mut out = String::from("## template: jinja\n#cloud-config\n");
    out.push_str(&format!(
        "# Written by fitter for deployment {deployment}: each node installs the host key fitter generated for it.\n"
    ));
    out.push_str("disable_root: false\nssh_deletekeys: true\nssh_genkeytypes: []\n");
    if !authorized_keys.is_empty() {
        out.push_str("ssh_authorized_keys:\n");
        for k in authorized_keys {
            out.push_str(&format!("  - {}\n", k.trim()));
        }
    }
    for (i, h) in hosts.iter().enumerate() {
        let keyword = if i == 0 { "if" } else { "elif" };
        out.push_str(&format!(
            "{{% {keyword} v1.local_hostname == \"{}\" %}}\n",
            h.name
        ));
        let kind = host_key_type(h.public_openssh);
        out.push_str(&format!("ssh_keys:\n  {kind}_private: |\n"));
        for line in h.private_openssh.trim().lines() {
            out.push_str(&format!("    {line}\n"));
        }
        out.push_str(&format!("  {kind}_public: {}\n", h.public_openssh.trim()));
    }
    if !hosts.is_empty() {
        out.push_str("{% endif %}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FirewallRule;

    fn rule(protocol: &str, ports: Option<(u16, u16)>, source: RuleSource) -> FirewallRule {
        FirewallRule {
            protocol: protocol.into(),
            ports,
            source,
        }
    }

    #[test]
    fn firewall_rules_always_carry_ports_and_merge_sources() {
        let body = firewall(
            "fitter-d-masters",
            &[
                rule("tcp", Some((22, 22)), RuleSource::Anywhere),
                rule("icmp", None, group("fitter-d")),
                rule("tcp", Some((2181, 2181)), group("fitter-d:role:zookeeper")),
                rule("tcp", Some((2181, 2181)), group("fitter-d:role:marathon")),
                rule("tcp", None, group("fitter-d")),
                rule(
                    "udp",
                    Some((31000, 32000)),
                    RuleSource::Cidr("10.0.0.0/8".into()),
                ),
            ],
            "fitter-d:fw:masters",
        );
        let inbound = body["inbound_rules"].as_array().unwrap();
        assert_eq!(inbound.len(), 5);
        for r in inbound {
            assert!(r["ports"].is_string(), "{r}");
        }
        let icmp = inbound.iter().find(|r| r["protocol"] == "icmp").unwrap();
        assert_eq!(icmp["ports"], "0");
        let zk = inbound.iter().find(|r| r["ports"] == "2181").unwrap();
        assert_eq!(
            zk["sources"]["tags"],
            json!(["fitter-d:role:marathon", "fitter-d:role:zookeeper"])
        );
        assert!(
            zk["sources"].get("addresses").is_none(),
            "no empty or null lists"
        );
        let udp = inbound.iter().find(|r| r["protocol"] == "udp").unwrap();
        assert_eq!(udp["ports"], "31000-32000");
        assert_eq!(body["tags"], json!(["fitter-d:fw:masters"]));
        assert!(!body.to_string().contains("null"));
    }

    fn group(tag: &str) -> RuleSource {
        RuleSource::Group {
            tag: tag.into(),
            addresses: vec![],
        }
    }

    #[test]
    fn a_batch_uses_names_and_one_droplet_uses_name_and_nothing_is_null() {
        let spec = DropletSpec {
            size: "s-1vcpu-1gb".into(),
            image: "debian-12-x64".into(),
            region: "nyc3".into(),
            vpc_uuid: None,
            tags: vec!["fitter-d".into()],
            ssh_keys: vec![],
        };
        let one = droplets(&spec, &["a".into()], "x");
        assert_eq!(one["name"], "a");
        assert!(one.get("names").is_none());
        assert!(one.get("ssh_keys").is_none() && one.get("vpc_uuid").is_none());
        let two = droplets(&spec, &["a".into(), "b".into()], "x");
        assert_eq!(two["names"], json!(["a", "b"]));
        assert!(!two.to_string().contains("null"));
    }

    #[test]
    fn user_data_gives_each_node_its_own_host_key() {
        let text = user_data(
            "d",
            &["ssh-ed25519 AAAAop operator".into()],
            &[
                HostKey {
                    name: "agent1",
                    private_openssh: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAA1\n-----END OPENSSH PRIVATE KEY-----\n",
                    public_openssh: "ssh-ed25519 PUB1",
                },
                HostKey {
                    name: "agent2",
                    private_openssh: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAA2\n-----END OPENSSH PRIVATE KEY-----\n",
                    // A plan's own key (cloud-config `ssh_keys`) may be RSA.
                    public_openssh: "ssh-rsa PUB2",
                },
            ],
        );
        assert!(text.starts_with("## template: jinja\n#cloud-config\n"));
        assert!(text.contains("{% if v1.local_hostname == \"agent1\" %}\nssh_keys:\n  ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    AAA1\n"));
        assert!(text.contains("{% elif v1.local_hostname == \"agent2\" %}"));
        assert!(text.contains("{% elif v1.local_hostname == \"agent2\" %}\nssh_keys:\n  rsa_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    AAA2\n"));
        assert!(text.contains("  rsa_public: ssh-rsa PUB2\n{% endif %}\n"));
        assert!(text.contains("ssh_authorized_keys:\n  - ssh-ed25519 AAAAop operator\n"));
    }
}
