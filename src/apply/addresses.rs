//! Private addresses on networks fitter addresses itself (LXD): assigned before anything is
//! created, kept across runs, recorded in the state.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use fitter_providers::ResourceKind;
use fitter_providers::api::Ipv4Net;
use serde_json::Value as Json;

use super::request::parse_net;
use crate::graph::{ResourceGraph, StepKind};
use crate::state::{LockedState, StateError};

/// Gives every node on a network fitter addresses itself (LXD) a private address, keeping the
/// one it had; fixed addresses (`glue: primary`) are respected. Recorded in the state.
pub fn assign_addresses(graph: &ResourceGraph, state: &mut LockedState) -> Result<(), StateError> {
    let mut subnets: HashMap<String, Ipv4Net> = HashMap::new();
    for step in graph.resources() {
        if step.kind == StepKind::Resource(ResourceKind::Network)
            && step.provider.is_some_and(|p| p.cloud().assigns_addresses())
            && let Some(net) = step
                .attributes
                .get("subnet")
                .and_then(|s| parse_net(s.as_str()?))
        {
            subnets.insert(step.name.clone(), net);
        }
    }
    let nodes: Vec<_> = graph
        .resources()
        .filter(|s| s.kind == StepKind::Resource(ResourceKind::Node))
        .collect();
    let mut taken: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    let mut assigned = state.state().addresses.clone();
    assigned.retain(|node, _| nodes.iter().any(|n| &n.name == node));
    for node in &nodes {
        let Some(network) = node.attributes.get("network").and_then(Json::as_str) else {
            continue;
        };
        if let Some(ip) = node.attributes.get("private_ip").and_then(Json::as_str) {
            assigned.remove(&node.name);
            if let Ok(ip) = ip.parse() {
                taken.entry(network.to_string()).or_default().push(ip);
            }
        }
    }
    for node in &nodes {
        let Some(network) = node.attributes.get("network").and_then(Json::as_str) else {
            continue;
        };
        let Some(subnet) = subnets.get(network) else {
            continue;
        };
        if node.attributes.contains_key("private_ip") {
            continue;
        }
        let used = taken.entry(network.to_string()).or_default();
        let kept = assigned
            .get(&node.name)
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .filter(|ip| in_subnet(*ip, subnet) && !used.contains(ip));
        let ip = match kept {
            Some(ip) => ip,
            None => {
                let Some(ip) = free_address(subnet, used, &assigned) else {
                    continue;
                };
                ip
            }
        };
        used.push(ip);
        assigned.insert(node.name.clone(), ip.to_string());
    }
    if assigned != state.state().addresses {
        state.update(|s| s.addresses = assigned)?;
    }
    Ok(())
}

fn in_subnet(ip: Ipv4Addr, net: &Ipv4Net) -> bool {
    let mask = u32::MAX << (32 - u32::from(net.prefix));
    u32::from(ip) & mask == u32::from(net.base)
}

/// The lowest free host address from `.10` up (the first ones are left for gateways and
/// fixed addresses).
fn free_address(
    net: &Ipv4Net,
    used: &[Ipv4Addr],
    assigned: &BTreeMap<String, String>,
) -> Option<Ipv4Addr> {
    let size = 1u32 << (32 - u32::from(net.prefix));
    let base = u32::from(net.base);
    (10..size - 1)
        .map(|h| Ipv4Addr::from(base + h))
        .find(|ip| !used.contains(ip) && !assigned.values().any(|a| a == &ip.to_string()))
}
