//! Networks: a blueprint's `ethernet` (name and private subnet, plumbery's `accept` of
//! another network's subnet). A network is shared by the blueprints of a location that
//! name it, and must neither change subnet nor overlap another network of its location.

use crate::yaml::Node;

use super::rules::{self, Rule, Source, Subnet};
use super::schema::{check_keys, text, text_list};
use super::{Fittings, Loader, Network, valid_hostname};

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
                    Ok(other) => {
                        for protocol in [rules::Protocol::Tcp, rules::Protocol::Udp] {
                            rules.push(Rule { protocol, ports: Some((0, 0)), source: Source::Cidr(other.to_string()) });
                        }
                        rules.push(Rule { protocol: rules::Protocol::Icmp, ports: None, source: Source::Cidr(other.to_string()) });
                    }
                    Err(_) => self.report.error(a.span, format!("`accept` takes the subnet of the other network (such as `10.1.0.0/24`), found `{}`", a.value)),
                }
            }
        }
        if let Some(d) = ethernet.get("destroy") {
            self.report.warning(d.span, "`destroy` on an ethernet is ignored: dispose removes the networks a deployment created");
        }
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
            .position(|n| n.name.value == name.value)
        {
            let n = &fittings.networks[existing];
            if n.location != location {
                self.report.error(
                    name.span,
                    format!(
                        "network `{}` is already defined in location `{}`; use another name",
                        name.value, fittings.locations[n.location].id.value
                    ),
                );
            } else if n.subnet != subnet {
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
        fittings.networks.push(Network {
            name,
            location,
            provider: location_ref.provider,
            region: location_ref.region.clone(),
            subnet,
        });
        Some(fittings.networks.len() - 1)
    }
}
