//! Checks that need the whole plan: run-time tokens (`{{ master1.private }}`) collected
//! while reading and resolved once every node name is known (a token naming a peer makes
//! the node wait for it), duplicate names and fixed addresses, `depends_on` targets, roles
//! named by firewall sources, node classes never used.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use fitter_providers::did_you_mean;

use crate::diagnostics::Diagnostic;
use crate::yaml::{self, Node, Span, Value};

use super::rules::Source;
use super::schema::{Text, text_list};
use super::tokens::{self, Meaning};
use super::{Fittings, Loader, PendingToken, Reference, not_found};
use crate::components::COMMON;

impl Loader<'_> {
    pub(super) fn collect_node_tokens(&mut self, node: &Node, owner: usize) {
        match &node.value {
            Value::Str(s) => self.collect_tokens(s, node.span, Some(owner), true),
            Value::Seq(items) => items
                .iter()
                .for_each(|i| self.collect_node_tokens(i, owner)),
            Value::Map(entries) => {
                for (k, v) in entries {
                    self.collect_node_tokens(k, owner);
                    self.collect_node_tokens(v, owner);
                }
            }
            _ => {}
        }
    }

    pub(super) fn collect_tokens(
        &mut self,
        s: &str,
        span: Span,
        owner: Option<usize>,
        in_cloud_config: bool,
    ) {
        if !s.contains("{{") {
            return;
        }
        for token in tokens::scan(s) {
            let raw = &s[token.start..token.end];
            // Find the token's own position in the file; block and quoted scalars shift it.
            let window_end = (span.start + s.len() * 2 + 64).min(self.text.len());
            let token_span = self
                .text
                .get(span.start..window_end)
                .and_then(|w| w.find(raw))
                .map(|at| Span::new(span.start + at, span.start + at + raw.len()))
                .unwrap_or(span);
            self.pending_tokens.push(PendingToken {
                expr: token.expr.to_string(),
                span: token_span,
                node: owner,
                in_cloud_config,
            });
        }
    }

    /// `accept: [net, AU11::net]`: the named network's address range becomes rules of the
    /// accepting blueprint, as if its subnet had been written.
    fn resolve_accepts(&mut self, fittings: &mut Fittings) {
        for pending in std::mem::take(&mut self.pending_accepts) {
            let location = match &pending.in_location {
                None => Some(pending.location),
                Some(id) => fittings
                    .locations
                    .iter()
                    .position(|l| l.id.value.eq_ignore_ascii_case(id)),
            };
            let Some(location) = location else {
                let ids: Vec<&str> = fittings
                    .locations
                    .iter()
                    .map(|l| l.id.value.as_str())
                    .collect();
                let place = Text::new(
                    pending.in_location.clone().unwrap_or_default(),
                    pending.entry.span,
                );
                self.report
                    .push(not_found(&place, "location", &ids, "the plan"));
                continue;
            };
            let network = fittings
                .networks
                .iter()
                .find(|n| n.location == location && n.plan_name == pending.network);
            match network {
                Some(n) => {
                    let rules = super::networks::accept_rules(&n.subnet);
                    if let Some(b) = fittings.blueprints.get_mut(pending.blueprint) {
                        b.rules.extend(rules);
                    }
                }
                None => {
                    let names: Vec<&str> = fittings
                        .networks
                        .iter()
                        .filter(|n| n.location == location)
                        .map(|n| n.plan_name.as_str())
                        .collect();
                    let wanted = Text::new(pending.network.clone(), pending.entry.span);
                    let place = format!("location `{}`", fittings.locations[location].id.value);
                    self.report
                        .push(not_found(&wanted, "network", &names, &place));
                }
            }
        }
    }

    pub(super) fn cross_checks(&mut self, fittings: &mut Fittings) {
        self.resolve_accepts(fittings);
        // Duplicate names: one error per entry, however many names its range repeats.
        let mut first_seen: HashMap<&str, Span> = HashMap::with_capacity(fittings.nodes.len());
        let mut reported: HashSet<Span> = HashSet::new();
        for node in &fittings.nodes {
            if let Some(first) = first_seen.get(node.name.value.as_str()) {
                if reported.insert(node.name.span) {
                    let line = yaml::line_of(self.text, first.start);
                    self.report.error(
                        node.name.span,
                        format!(
                            "duplicate node name `{}` (first defined on line {line})",
                            node.name.value
                        ),
                    );
                }
            } else {
                first_seen.insert(&node.name.value, node.name.span);
            }
        }
        let names: HashSet<String> = first_seen.keys().map(|n| n.to_string()).collect();
        let mut sorted_names: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted_names.sort_unstable();

        // Fixed addresses must be unique on their network.
        let mut fixed: HashMap<(usize, Ipv4Addr), &str> = HashMap::new();
        for node in &fittings.nodes {
            if let (Some(ip), Some(n)) = (node.private_ip, node.network)
                && let Some(other) = fixed.insert((n, ip), &node.name.value)
                && other != node.name.value
            {
                self.report.error(
                    node.name.span,
                    format!(
                        "node `{}` has address {ip}, already given to `{other}`",
                        node.name.value
                    ),
                );
            }
        }

        // depends_on: node or blueprint names.
        let blueprint_names: HashSet<&str> = fittings
            .blueprints
            .iter()
            .map(|b| b.name.value.as_str())
            .collect();
        for node in &fittings.nodes {
            for dep in &node.depends_on {
                if !names.contains(&dep.value) && !blueprint_names.contains(dep.value.as_str()) {
                    let mut candidates = sorted_names.clone();
                    candidates.extend(blueprint_names.iter().copied());
                    self.report
                        .push(not_found(dep, "node or blueprint", &candidates, "the plan"));
                }
            }
        }

        // Roles named by firewall sources.
        let known_roles: Vec<&str> = self.catalog.role_names().collect();
        let rule_sets = fittings
            .nodes
            .iter()
            .map(|n| &n.rules)
            .chain(fittings.blueprints.iter().map(|b| &b.rules));
        for rules in rule_sets {
            for rule in rules {
                if let Source::Role(role) = &rule.source
                    && !known_roles.contains(&role.value.as_str())
                {
                    self.report.push(self.unknown_role(role));
                }
            }
        }

        // Run-time tokens.
        let pending = std::mem::take(&mut self.pending_tokens);
        for token in pending {
            match tokens::classify(&token.expr, |n| names.contains(n)) {
                Meaning::Peer { node, attribute } => {
                    if !names.contains(node) {
                        let d = Diagnostic::error(
                            token.span,
                            format!(
                                "`{{{{ {} }}}}` refers to node `{node}`, which the plan does not define",
                                token.expr
                            ),
                        );
                        self.report
                            .push(match did_you_mean(node, sorted_names.iter().copied()) {
                                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                                None => d,
                            });
                    } else if !tokens::NODE_ATTRIBUTES.contains(&attribute) {
                        self.report.push(not_found(
                            &Text::new(attribute, token.span),
                            "node attribute",
                            tokens::NODE_ATTRIBUTES,
                            "a node",
                        ));
                    } else if let (Some(owner), true) = (token.node, token.in_cloud_config)
                        && fittings.nodes[owner].name.value != node
                    {
                        fittings.nodes[owner].references.push(Reference {
                            node: node.to_string(),
                            attribute: attribute.to_string(),
                            span: token.span,
                        });
                    }
                }
                Meaning::SelfAttribute(_) if token.node.is_none() => {
                    self.report.error(token.span, format!("`{{{{ {} }}}}` means the node being configured, and there is none here", token.expr));
                }
                Meaning::UnknownSelfAttribute(attr) => {
                    self.report.push(not_found(
                        &Text::new(attr, token.span),
                        "node attribute",
                        tokens::NODE_ATTRIBUTES,
                        "a node",
                    ));
                }
                Meaning::SelfAttribute(_) | Meaning::Generated | Meaning::Verbatim => {}
            }
        }

        // Classes defined and never used are probably typos of a used one.
        let mut unused: Vec<(&String, &Node)> = self
            .classes
            .iter()
            .filter(|(k, _)| !self.used_classes.contains(*k))
            .collect();
        unused.sort_by_key(|(_, n)| n.span.start);
        let mut found: Vec<Diagnostic> = Vec::new();
        let mut unused_roles = Vec::new();
        let mut unused_checks = Vec::new();
        for (name, node) in unused {
            let span = self.classes_key_span(name).unwrap_or(node.span);
            found.push(Diagnostic::warning(
                span,
                format!("node class `{name}` is not used by any node"),
            ));
            // It is checked all the same, as a node of the first blueprint would be: every
            // problem at once, and the class is one `default:` away from being used.
            if let Some(roles) = node.get("roles") {
                unused_roles.push(roles.clone());
            }
            unused_checks.push((name.clone(), span));
        }
        for (name, span) in unused_checks {
            self.check_as_a_node(fittings, &name, span);
        }
        for roles in unused_roles {
            for role in text_list(&mut self.report, &roles, "roles") {
                if role.value != COMMON && self.catalog.get(&role.value).is_none() {
                    found.push(self.unknown_role(&role));
                }
            }
        }
        for d in found {
            self.report.push(d);
        }
    }

    /// Reads an unused node class as the settings of a node in the first blueprint, keeping
    /// only what it finds in the class's own text (its sizes, numbers, cloud-config and
    /// words), so that a mistake waits for no `default:` to be found.
    fn check_as_a_node(&mut self, fittings: &Fittings, class: &str, span: Span) {
        if fittings.blueprints.is_empty() {
            return;
        }
        let Some(body) = self.classes.get(class).map(extent) else {
            return;
        };
        let own = Node::new(
            Value::Map(vec![(
                Node::new(Value::Str("default".into()), span),
                Node::new(Value::Str(class.into()), span),
            )]),
            span,
        );
        let before = self.report.diagnostics.len();
        let merged = self.merged_settings(Some(&own), None);
        let _ = self.node(fittings, 0, Text::new("class".to_string(), span), &merged);
        // What the node's own context caused (its name, its blueprint's network) is not the
        // class's; what lies in the class's text is.
        let inside = |d: &Diagnostic| {
            d.span
                .is_some_and(|s| s.start >= body.start && s.end <= body.end.max(body.start))
        };
        let mut kept: Vec<Diagnostic> = self.report.diagnostics.drain(before..).collect();
        kept.retain(inside);
        self.report.diagnostics.extend(kept);
    }
}

/// The text a node and everything under it covers (a mapping's own span is its start).
fn extent(node: &Node) -> Span {
    let children: Vec<Span> = match &node.value {
        Value::Map(entries) => entries
            .iter()
            .flat_map(|(k, v)| [extent(k), extent(v)])
            .collect(),
        Value::Seq(items) => items.iter().map(extent).collect(),
        _ => Vec::new(),
    };
    children.into_iter().fold(node.span, |a, b| {
        Span::new(a.start.min(b.start), a.end.max(b.end))
    })
}
