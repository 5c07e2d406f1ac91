//! The provider's request for a change, with everything resolved that a provider cannot
//! know by itself: subnets, assigned addresses, firewall sources (as tags and as addresses),
//! the node's host key and the operator's key.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::str::FromStr as _;

use fitter_providers::ResourceKind;
use fitter_providers::api::{
    FirewallRequest, FirewallRule, Ipv4Net, Member, NetworkRequest, NodeRequest, Request,
    RuleSource, SshKeyRequest, TagRequest,
};
use serde_json::{Value as Json, json};

use super::{ApplyError, Context};
use crate::fittings::rules::{Protocol, Rule, Source};
use crate::graph::{StepKind, deployment_tag, firewall_tag, role_tag};

/// The provider's request for a change, with everything resolved: subnets, addresses,
/// firewall sources, keys.
pub(super) fn build_request(
    ctx: &Context<'_>,
    i: usize,
    state: &crate::state::State,
    outputs: &BTreeMap<String, Json>,
) -> Result<Request, ApplyError> {
    let change = &ctx.plan.changes[i];
    let a = change.after.clone().unwrap_or_default();
    let text = |k: &str| a.get(k).and_then(Json::as_str).map(str::to_string);
    let list = |k: &str| -> Vec<String> {
        a.get(k)
            .and_then(Json::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deployment = ctx.graph.deployment.clone();
    let subnet_of = |network: &str| -> Option<Ipv4Net> {
        ctx.graph
            .step(&format!("network.{network}"))?
            .attributes
            .get("subnet")
            .and_then(Json::as_str)
            .and_then(parse_net)
    };
    let node_address = |name: &str| -> Option<Ipv4Addr> {
        let step = ctx.graph.step(&format!("node.{name}"))?;
        step.attributes
            .get("private_ip")
            .and_then(Json::as_str)
            .or_else(|| state.addresses.get(name).map(String::as_str))
            .and_then(|s| s.parse().ok())
    };
    match change.kind {
        ResourceKind::Network => Ok(Request::Network(NetworkRequest {
            deployment,
            name: change.name.clone(),
            subnet: text("subnet")
                .as_deref()
                .and_then(parse_net)
                .ok_or_else(|| ApplyError::Request {
                    resource: change.address.clone(),
                    message: "it has no subnet".into(),
                })?,
            region: text("region"),
            firewalls: list("firewalls"),
        })),
        ResourceKind::Firewall => {
            let members: Vec<Member> = list("nodes")
                .into_iter()
                .map(|name| Member {
                    address: node_address(&name),
                    name,
                })
                .collect();
            let network = members.first().and_then(|m| {
                ctx.graph
                    .step(&format!("node.{}", m.name))?
                    .attributes
                    .get("network")?
                    .as_str()
                    .map(str::to_string)
            });
            let all_nodes: Vec<&crate::graph::Step> = ctx
                .graph
                .resources()
                .filter(|s| s.kind == StepKind::Resource(ResourceKind::Node))
                .collect();
            let mut rules = Vec::new();
            for line in list("inbound") {
                let rule = Rule::from_str(&line).map_err(|e| ApplyError::Request {
                    resource: change.address.clone(),
                    message: e.to_string(),
                })?;
                let source = match &rule.source {
                    Source::Anywhere => RuleSource::Anywhere,
                    Source::Cidr(c) => RuleSource::Cidr(c.clone()),
                    Source::Nodes => RuleSource::Group {
                        tag: deployment_tag(&deployment),
                        addresses: all_nodes
                            .iter()
                            .filter_map(|n| node_address(&n.name))
                            .collect(),
                    },
                    Source::Role(role) => RuleSource::Group {
                        tag: role_tag(&deployment, &role.value),
                        addresses: all_nodes
                            .iter()
                            .filter(|n| {
                                n.attributes
                                    .get("roles")
                                    .and_then(Json::as_array)
                                    .is_some_and(|r| r.iter().any(|x| x == &json!(role.value)))
                            })
                            .filter_map(|n| node_address(&n.name))
                            .collect(),
                    },
                };
                rules.push(FirewallRule {
                    protocol: match rule.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                        Protocol::Icmp => "icmp",
                    }
                    .to_string(),
                    ports: rule.ports.filter(|p| *p != (0, 0)),
                    source,
                });
            }
            Ok(Request::Firewall(FirewallRequest {
                member_tag: firewall_tag(&deployment, &change.name),
                deployment,
                name: change.name.clone(),
                network,
                rules,
                members,
            }))
        }
        ResourceKind::Node => {
            let network = text("network").and_then(|n| Some((n.clone(), subnet_of(&n)?)));
            let network_id = text("network").and_then(|n| {
                state
                    .resources
                    .get(&format!("network.{n}"))
                    .and_then(|r| r.id.clone())
            });
            // The plan's tags, plus one per role and one per firewall, which the cloud's
            // firewalls name (DigitalOcean filters by tag).
            let mut tags = list("tags");
            tags.extend(list("roles").iter().map(|r| role_tag(&deployment, r)));
            if let Some(fw) = text("firewall") {
                tags.push(firewall_tag(&deployment, &fw));
            }
            Ok(Request::Node(NodeRequest {
                network_id,
                address: node_address(&change.name),
                deployment,
                name: change.name.clone(),
                size: text("size").unwrap_or_default(),
                image: text("image").unwrap_or_default(),
                region: text("region"),
                network,
                host_key: outputs
                    .get("host_key_private")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                host_key_public: outputs
                    .get("host_key")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                authorized_keys: vec![ctx.options.operator.public_openssh.clone()],
                tags,
            }))
        }
        ResourceKind::SshKey => Ok(Request::SshKey(SshKeyRequest {
            key_name: text("name").unwrap_or_else(|| deployment_tag(&deployment)),
            deployment,
            name: change.name.clone(),
            public_key: ctx.options.operator.public_openssh.clone(),
        })),
        ResourceKind::Tag => Ok(Request::Tag(TagRequest {
            tag: text("name").unwrap_or_else(|| deployment_tag(&deployment)),
            deployment,
            name: change.name.clone(),
        })),
    }
}

pub(super) fn parse_net(s: &str) -> Option<Ipv4Net> {
    let (base, prefix) = s.split_once('/')?;
    Some(Ipv4Net {
        base: base.parse().ok()?,
        prefix: prefix.parse().ok()?,
    })
}
