//! The provider's request for a change, with everything resolved that a provider cannot
//! know by itself: subnets, assigned addresses, firewall sources (as tags and as addresses),
//! the node's host key and the operator's key. It reads the graph's typed [`Desired`]
//! resources: nothing the loader parsed is parsed again.

use std::net::Ipv4Addr;

use fitter_providers::api::{
    FirewallRequest, FirewallRule, Ipv4Net, Member, NetworkRequest, NodeRequest, Outputs, Request,
    RuleSource, SshKeyRequest, TagRequest,
};

use super::{ApplyError, Context};
use crate::fittings::rules::{Protocol, Source, Subnet};
use crate::graph::{Desired, DesiredNode, deployment_tag, firewall_tag, role_tag};

/// The provider's request for a change, with everything resolved: subnets, addresses,
/// firewall sources, keys.
pub(super) fn build_request(
    ctx: &Context<'_>,
    i: usize,
    state: &crate::state::State,
    outputs: &Outputs,
) -> Result<Request, ApplyError> {
    let change = &ctx.plan.changes[i];
    let desired = ctx
        .graph
        .step(&change.address)
        .and_then(|s| s.desired.as_ref())
        .ok_or_else(|| ApplyError::Request {
            resource: change.address.clone(),
            message: "the plan does not describe it".into(),
        })?;
    let deployment = ctx.graph.deployment.clone();
    let name = change.name.clone();
    let nodes = || {
        ctx.graph.resources().filter_map(|s| match &s.desired {
            Some(Desired::Node(n)) => Some((s.name.as_str(), n)),
            _ => None,
        })
    };
    let node = |name: &str| match ctx.graph.step(&format!("node.{name}"))?.desired.as_ref()? {
        Desired::Node(n) => Some(n),
        _ => None,
    };
    // A fixed address, else the one apply assigned (LXD), else none (the cloud's DHCP).
    let address_of = |name: &str, n: &DesiredNode| -> Option<Ipv4Addr> {
        n.private_ip
            .or_else(|| state.addresses.get(name).and_then(|a| a.parse().ok()))
    };
    let subnet_of = |network: &str| match ctx
        .graph
        .step(&format!("network.{network}"))?
        .desired
        .as_ref()?
    {
        Desired::Network { subnet, .. } => Some(net(subnet)),
        _ => None,
    };
    Ok(match desired {
        Desired::SshKey { key_name } => Request::SshKey(SshKeyRequest {
            key_name: key_name.clone(),
            deployment,
            name,
            public_key: ctx.options.operator.public_openssh.clone(),
        }),
        Desired::Tag { tag } => Request::Tag(TagRequest {
            tag: tag.clone(),
            deployment,
            name,
        }),
        Desired::Network {
            subnet,
            region,
            firewalls,
        } => Request::Network(NetworkRequest {
            deployment,
            name,
            subnet: net(subnet),
            region: region.clone(),
            firewalls: firewalls.clone(),
        }),
        Desired::Firewall {
            inbound,
            nodes: members,
        } => {
            let members: Vec<Member> = members
                .iter()
                .map(|m| Member {
                    address: node(m).and_then(|n| address_of(m, n)),
                    name: m.clone(),
                })
                .collect();
            let network = members.first().and_then(|m| node(&m.name)?.network.clone());
            let rules = inbound
                .iter()
                .map(|rule| FirewallRule {
                    protocol: match rule.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                        Protocol::Icmp => "icmp",
                    }
                    .to_string(),
                    ports: rule.ports.filter(|p| *p != (0, 0)),
                    source: match &rule.source {
                        Source::Anywhere => RuleSource::Anywhere,
                        Source::Cidr(c) => RuleSource::Cidr(c.clone()),
                        Source::Nodes => RuleSource::Group {
                            tag: deployment_tag(&deployment),
                            addresses: nodes().filter_map(|(m, n)| address_of(m, n)).collect(),
                        },
                        Source::Role(role) => RuleSource::Group {
                            tag: role_tag(&deployment, &role.value),
                            addresses: nodes()
                                .filter(|(_, n)| n.roles.contains(&role.value))
                                .filter_map(|(m, n)| address_of(m, n))
                                .collect(),
                        },
                    },
                })
                .collect();
            Request::Firewall(FirewallRequest {
                member_tag: firewall_tag(&deployment, &name),
                deployment,
                name,
                network_range: network.as_deref().and_then(subnet_of),
                network,
                rules,
                members,
            })
        }
        Desired::Node(n) => {
            let network = n
                .network
                .as_ref()
                .and_then(|net| Some((net.clone(), subnet_of(net)?)));
            let network_id = n.network.as_ref().and_then(|net| {
                state
                    .resources
                    .get(&format!("network.{net}"))
                    .and_then(|r| r.id.clone())
            });
            // The plan's tags, plus one per role and one per firewall, which the cloud's
            // firewalls name (DigitalOcean filters by tag).
            let mut tags = n.tags.clone();
            tags.extend(n.roles.iter().map(|r| role_tag(&deployment, r)));
            if let Some(fw) = &n.firewall {
                tags.push(firewall_tag(&deployment, fw));
            }
            Request::Node(NodeRequest {
                network_id,
                address: address_of(&name, n),
                deployment,
                size: n.size.clone(),
                image: n.image.clone(),
                region: n.region.clone(),
                network,
                host_key: outputs.host_key_private.clone().unwrap_or_default(),
                host_key_public: outputs.host_key.clone().unwrap_or_default(),
                authorized_keys: std::iter::once(ctx.options.operator.public_openssh.clone())
                    .chain(ctx.options.team_keys.iter().cloned())
                    .collect(),
                tags,
                roles: n.roles.clone(),
                firewall: n.firewall.clone(),
                spread: n.spread,
                nesting: n.nesting,
                name,
            })
        }
    })
}

/// The loader's subnet as the provider boundary has it.
pub(super) fn net(subnet: &Subnet) -> Ipv4Net {
    Ipv4Net {
        base: subnet.base,
        prefix: subnet.prefix,
    }
}
