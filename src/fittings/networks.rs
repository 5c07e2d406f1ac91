//! Networks: a blueprint's `ethernet` (name and private subnet, plumbery's `accept` of
//! another network's subnet). A network is shared by the blueprints of a location that
//! name it, and must neither change subnet nor overlap another network of its location.

use crate::yaml::Node;

use super::rules::{self, Rule, Source, Subnet};
use super::schema::{check_keys, text, text_list};
use super::{Fittings, Loader, Network, PendingAccept, valid_hostname};

pub(super) const ETHERNET_KEYS: &[&str] = &["name", "subnet", "accept", "reserved", "destroy"];

impl Loader<'_> {
    pub(super) fn network(
        &mut self,
        fittings: &mut Fittings,
        location: usize,
        ethernet: &Node,
        rules: &mut Vec<Rule>,
    ) -> Option<usize> {
        check_keys(&mut self.report, ethernet, "ethernet", ETHERNET_KEYS);
        let name = match ethernet.get("name") {
            Some(n) => text(&mut self.report, n, "ethernet name")?,
            None => {
                self.report
                    .error(ethernet.span, "`ethernet` needs a `name`");
                return None;
            }
        };
        if !valid_hostname(&name.value) {
            self.report.error(name.span, format!("network name `{}` must be letters, digits and dashes, starting with a letter, at most 63 characters", name.value));
        }
        let subnet_node = match ethernet.get("subnet") {
            Some(s) => s,
            None => {
                self.report.error(
                    ethernet.span,
                    format!(
                        "ethernet `{}` needs a `subnet` such as `10.0.0.0/24`",
                        name.value
                    ),
                );
                return None;
            }
        };
        let subnet_text = text(&mut self.report, subnet_node, "subnet")?;
        let subnet = match Subnet::parse(&subnet_text.value) {
            Ok(s) => s,
            Err(why) => {
                self.report.error(subnet_text.span, why.to_string());
                return None;
            }
        };
        if let Some(accept) = ethernet.get("accept") {
            for a in text_list(&mut self.report, accept, "accept") {
                match Subnet::parse(&a.value) {
                    Ok(other) => rules.extend(accept_rules(&other)),
                    // plumbery names the other network, `net` or `LOC::net`: resolved
                    // once every location is read (cross_checks.rs).
                    Err(_) => match accepted_network(&a.value) {
                        Some((in_location, network)) => self.pending_accepts.push(PendingAccept {
                            blueprint: fittings.blueprints.len(),
                            location,
                            in_location,
                            network,
                            entry: a.clone(),
                        }),
                        None => self.report.error(a.span, format!("`accept` takes another network's name (`net`, `EU6::net`) or subnet (`10.1.0.0/24`), found `{}`", a.value)),
                    },
                }
            }
        }
        // plumbery's `destroy: never` on an ethernet: dispose keeps the network (and what it
        // needs), as it keeps such a node.
        let destroy_never = self.word(ethernet, "destroy", "never");
        let location_ref = &fittings.locations[location];
        if let Err(why) = location_ref
            .provider
            .cloud()
            .check_network_name(&name.value)
        {
            self.report.error(name.span, why);
        }
        if let Some(existing) = fittings
            .networks
            .iter()
            .position(|n| n.plan_name == name.value && n.location == location)
        {
            let n = &fittings.networks[existing];
            if n.subnet != subnet {
                self.report.error(
                    subnet_text.span,
                    format!(
                        "network `{}` already has subnet {}, here {}",
                        name.value, n.subnet, subnet
                    ),
                );
            }
            return Some(existing);
        }
        for other in &fittings.networks {
            if other.location == location && other.subnet.overlaps(&subnet) {
                self.report.error(
                    subnet_text.span,
                    format!(
                        "subnet {subnet} of network `{}` overlaps {} of network `{}`",
                        name.value, other.subnet, other.name.value
                    ),
                );
            }
        }
        // The same name in another location is a network of its own (plumbery's plans use
        // one name in every data centre): it takes the location's id.
        let plan_name = name.value.clone();
        let mut name = name;
        if let Some(other) = fittings
            .networks
            .iter()
            .find(|n| n.name.value == name.value)
        {
            let own = format!(
                "{}-{}",
                name.value,
                location_ref.id.value.to_ascii_lowercase()
            );
            self.report.warning(
                name.span,
                format!(
                    "network `{}` is also a network of location `{}`: this one, of location `{}`, is `{own}`",
                    name.value, fittings.locations[other.location].id.value, location_ref.id.value
                ),
            );
            name.value = own;
        }
        fittings.networks.push(Network {
            name,
            plan_name,
            destroy_never,
            location,
            provider: location_ref.provider,
            region: location_ref.region.clone(),
            subnet,
        });
        Some(fittings.networks.len() - 1)
    }
}

/// `net` or `LOC::net` (plumbery also wrote `dd-ap::AP5::net`, a region prefix fitter
/// ignores): the location, if given, and the network's name.
fn accepted_network(entry: &str) -> Option<(Option<String>, String)> {
    let parts: Vec<&str> = entry.trim().split("::").collect();
    let (network, location) = match parts.as_slice() {
        [network] => (*network, None),
        [.., location, network] => (*network, Some(location.to_string())),
        [] => return None,
    };
    valid_hostname(network).then(|| (location, network.to_string()))
}

/// What `accept` of another network opens: every TCP and UDP port, and ICMP, from its
/// address range.
pub(super) fn accept_rules(other: &Subnet) -> Vec<Rule> {
    let from = || Source::Cidr(other.to_string());
    vec![
        Rule {
            protocol: rules::Protocol::Tcp,
            ports: Some((0, 0)),
            source: from(),
        },
        Rule {
            protocol: rules::Protocol::Udp,
            ports: Some((0, 0)),
            source: from(),
        },
        Rule {
            protocol: rules::Protocol::Icmp,
            ports: None,
            source: from(),
        },
    ]
}
