//! Blueprints: a group of nodes in one location, with its network (`ethernet`), the
//! firewall rules all its nodes share and what it depends on; its `nodes` list is where
//! name ranges expand and each node's settings are merged before the node is read.

use crate::yaml::{Node, Value};

use super::nodes::NODE_KEYS;
use super::rules;
use super::schema::{Text, check_keys, text, text_list, wrong_type};
use super::{Blueprint, Fittings, Loader, MAX_NODES, expand_range, merge};

const BLUEPRINT_KEYS: &[&str] = &[
    "domain",
    "ethernet",
    "nodes",
    "firewall",
    "depends_on",
    "information",
    "balancers",
    "pool",
];

impl Loader<'_> {
    pub(super) fn blueprint(
        &mut self,
        fittings: &mut Fittings,
        location: usize,
        name: Text,
        value: &Node,
        defaults_cloud_config: Option<&Node>,
        defaults_ethernet: Option<&Node>,
    ) {
        if value.as_map().is_none() {
            wrong_type(
                &mut self.report,
                value,
                &format!("blueprint `{}`", name.value),
                "a mapping",
            );
            return;
        }
        check_keys(
            &mut self.report,
            value,
            &format!("blueprint `{}`", name.value),
            BLUEPRINT_KEYS,
        );
        for unsupported in ["balancers", "pool"] {
            if let Some(n) = value.get(unsupported) {
                self.report.warning(
                    n.span,
                    format!("`{unsupported}` (load balancers) is not supported yet and is ignored"),
                );
            }
        }
        // Dimension Data's network domain (its service level, its public IPv4 block): the
        // clouds fitter drives have none; the ethernet is the network.
        if let Some(d) = value.get("domain") {
            let parts: Vec<&str> = ["service", "ipv4"]
                .into_iter()
                .filter(|k| d.get(k).is_some())
                .collect();
            let what = if parts.is_empty() {
                "`domain`".to_string()
            } else {
                format!("`domain` (with `{}`)", parts.join("`, `"))
            };
            self.report.warning(
                d.span,
                format!("{what}, Dimension Data's network domain, has no meaning here and is ignored: the `ethernet` is the network"),
            );
        }
        let blueprint_index = fittings.blueprints.len();
        let mut rules = Vec::new();
        let ethernet = match (defaults_ethernet, value.get("ethernet")) {
            (Some(d), Some(own)) => Some(merge(d, own)),
            (d, own) => own.or(d).cloned(),
        };
        let network = match &ethernet {
            Some(e) => self.network(fittings, location, e, &mut rules),
            None => None,
        };
        if let Some(fw) = value.get("firewall") {
            rules::parse_firewall(&mut self.report, fw, &mut rules);
        }
        let depends_on = value
            .get("depends_on")
            .map(|d| text_list(&mut self.report, d, "depends_on"))
            .unwrap_or_default();
        let information = value
            .get("information")
            .map(|i| self.information(i, None))
            .unwrap_or_default();
        fittings.blueprints.push(Blueprint {
            name: name.clone(),
            location,
            network,
            ethernet_declared: ethernet.is_some(),
            rules,
            nodes: Vec::new(),
            depends_on,
            information,
        });
        let Some(nodes) = value.get("nodes") else {
            self.report.warning(
                name.span,
                format!("blueprint `{}` has no `nodes`", name.value),
            );
            return;
        };
        let Some(entries) = nodes.as_seq() else {
            wrong_type(
                &mut self.report,
                nodes,
                "nodes",
                "a list of node names or `- name: {...}` entries",
            );
            return;
        };
        for entry in entries {
            let (key, own) = match &entry.value {
                Value::Str(_) | Value::Int(_) => (entry, None),
                Value::Map(pairs) if pairs.len() == 1 => (&pairs[0].0, Some(&pairs[0].1)),
                _ => {
                    wrong_type(
                        &mut self.report,
                        entry,
                        "node",
                        "a name or a mapping with one key, the node's name",
                    );
                    continue;
                }
            };
            let Some(pattern) = text(&mut self.report, key, "node name") else {
                continue;
            };
            let names = match expand_range(&pattern.value) {
                Ok(names) => names,
                Err(why) => {
                    self.report.error(pattern.span, why.to_string());
                    continue;
                }
            };
            if fittings.nodes.len() + names.len() > MAX_NODES {
                self.report.error(
                    pattern.span,
                    format!("the plan would have more than {MAX_NODES} nodes"),
                );
                return;
            }
            let own = own.filter(|o| !o.is_null());
            if let Some(o) = own {
                if o.as_map().is_none() {
                    wrong_type(
                        &mut self.report,
                        o,
                        &format!("node `{}`", pattern.value),
                        "a mapping of node settings",
                    );
                    continue;
                }
                check_keys(
                    &mut self.report,
                    o,
                    &format!("node `{}`", pattern.value),
                    NODE_KEYS,
                );
            }
            let merged = self.merged_settings(own, defaults_cloud_config);
            for node_name in names {
                let node = self.node(
                    fittings,
                    blueprint_index,
                    Text::new(node_name, pattern.span),
                    &merged,
                );
                let index = fittings.nodes.len();
                fittings.nodes.push(node);
                fittings.blueprints[blueprint_index].nodes.push(index);
            }
        }
    }
}
