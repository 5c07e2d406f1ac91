//! Private addresses on networks fitter addresses itself (LXD): assigned before anything is
//! created, kept across runs, recorded in the state.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use fitter_providers::ResourceKind;
use fitter_providers::api::Ipv4Net;

use super::request::net;
use crate::graph::{Desired, ResourceGraph, StepKind};
use crate::state::{LockedState, StateError};

/// Gives every node on a network fitter addresses itself (LXD) a private address, keeping the
/// one it had; fixed addresses (`glue: primary`) are respected. Recorded in the state.
pub fn assign_addresses(graph: &ResourceGraph, state: &mut LockedState) -> Result<(), StateError> {
    let mut subnets: HashMap<String, Ipv4Net> = HashMap::new();
    for step in graph.resources() {
        if let Some(Desired::Network { subnet, .. }) = &step.desired
            && step.provider.is_some_and(|p| p.cloud().assigns_addresses())
        {
            subnets.insert(step.name.clone(), net(subnet));
        }
    }
    // Every node on a network: its name, its network and its fixed address if it has one.
    let nodes: Vec<(&str, &str, Option<Ipv4Addr>)> = graph
        .resources()
        .filter_map(|s| match &s.desired {
            Some(Desired::Node(n)) => Some((s.name.as_str(), n.network.as_deref()?, n.private_ip)),
            _ => None,
        })
        .collect();
    let mut taken: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    let mut assigned = state.state().addresses.clone();
    assigned.retain(|node, _| {
        graph
            .step(&format!("node.{node}"))
            .is_some_and(|s| s.kind == StepKind::Resource(ResourceKind::Node))
    });
    for (name, network, fixed) in &nodes {
        if let Some(ip) = fixed {
            assigned.remove(*name);
            taken.entry(network.to_string()).or_default().push(*ip);
        }
    }
    for (name, network, fixed) in &nodes {
        let Some(subnet) = subnets.get(*network) else {
            continue;
        };
        if fixed.is_some() {
            continue;
        }
        let used = taken.entry(network.to_string()).or_default();
        let kept = assigned
            .get(*name)
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
        assigned.insert(name.to_string(), ip.to_string());
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
