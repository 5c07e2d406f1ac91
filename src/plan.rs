//! The plan: the desired resources of a [`ResourceGraph`] against the recorded [`State`].
//!
//! A [`Plan`] is a value. `fitter plan` prints it, `deploy` will execute it, and `dispose` is
//! the plan against an empty desired state. Its [`Action`] is a small enum whose symbols are
//! the user interface, as in Terraform: `+` create, `~` update in place, `-/+` replace,
//! `-` delete. The JSON form is documented in docs/plan-json.md and is stable within a
//! `format_version`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use fitter_providers::{ProviderKind, ResourceKind, registry};
use serde::Serialize;
use serde_json::Value as Json;

use crate::graph::{ResourceGraph, StepKind};
use crate::state::{State, Status};

/// Version of the `--json` schema.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Action::Create => "will be created",
            Action::Update => "will be updated in place",
            Action::Replace => "must be replaced",
            Action::Delete => "will be destroyed",
        }
    }
}

/// One resource to change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub address: String,
    pub kind: ResourceKind,
    pub name: String,
    pub provider: ProviderKind,
    pub action: Action,
    /// Attributes as recorded in the state; `null` for a create.
    pub before: Option<BTreeMap<String, Json>>,
    /// Attributes as the plan wants them; `null` for a delete.
    pub after: Option<BTreeMap<String, Json>>,
    /// Attributes only known once the provider has acted (`id`, `public_ip`, ...).
    pub after_unknown: Vec<String>,
    /// For a replace: the changed attributes that cannot be updated in place.
    pub replace_because: Vec<String>,
    /// For an update: what it does to the resource beyond the change, when a running
    /// service would notice (`the droplet is powered off to resize, then powered on`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disruption: Option<String>,
    /// For an update: what was changed outside fitter, which the update puts back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Addresses this resource waits for.
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub unchanged: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub deployment: String,
    /// Creates and updates in dependency order, then deletes in reverse dependency order.
    pub changes: Vec<Change>,
    /// What bootstrap will configure on the nodes, per component (empty for dispose).
    pub bootstrap: Vec<ComponentPlan>,
    pub summary: Summary,
    /// Another operator key than the recorded one: a rotation deploy carries out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_key: Option<KeyChange>,
}

/// The operator key changing: the nodes get the new one, logging in with the old one, which
/// stays authorised unless `revoke_old`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    /// `SHA256:...` of the recorded key, and where it is.
    pub from: String,
    pub from_path: String,
    pub to: String,
    pub to_path: String,
    pub revoke_old: bool,
}

/// One component as bootstrap will apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentPlan {
    pub component: String,
    pub nodes: Vec<String>,
    /// Whether its packages are installed and services run, or only its files placed.
    pub install: bool,
    pub services: Vec<String>,
    /// Files per node, as bootstrap renders them (an `each:` entry is one file per item of
    /// the node's, none when it has none): the fewest any of its nodes gets, and the most.
    pub files_min: usize,
    pub files: usize,
}

/// Per component: which nodes get it and whether it is installed or only configured.
pub fn bootstrap_plan(
    fittings: &crate::fittings::Fittings,
    catalog: &crate::components::Catalog,
) -> Vec<ComponentPlan> {
    let mut out = Vec::new();
    for c in catalog.ordered() {
        let with: Vec<&crate::fittings::NodeSpec> = fittings
            .nodes
            .iter()
            .filter(|n| {
                fittings
                    .components_of(n, catalog)
                    .iter()
                    .any(|x| x.name == c.name)
            })
            .collect();
        let nodes: Vec<String> = with.iter().map(|n| n.name.value.clone()).collect();
        let files_of = |n: &crate::fittings::NodeSpec| -> usize {
            c.files
                .iter()
                .map(|f| match f.each.as_deref() {
                    Some("attributes") => n.attributes.len(),
                    _ => 1,
                })
                .sum()
        };
        let counts: Vec<usize> = with.iter().map(|n| files_of(n)).collect();
        if nodes.is_empty() {
            continue;
        }
        let install = fittings.installs(c);
        out.push(ComponentPlan {
            component: c.name.clone(),
            nodes,
            install,
            services: if install {
                c.services.clone()
            } else {
                Vec::new()
            },
            files_min: counts.iter().copied().min().unwrap_or(0),
            files: counts.iter().copied().max().unwrap_or(0),
        });
    }
    out
}

/// Compares the graph's resources with the state.
pub fn diff(graph: &ResourceGraph, state: Option<&State>) -> Plan {
    diff_replacing(graph, state, &BTreeSet::new())
}

/// What `replace_because` says of a resource `--replace` asked for.
pub const REQUESTED: &str = "--replace";

/// [`diff`], with the recorded resources of `replace` destroyed and created again even
/// when nothing about them changed (Terraform's `-replace`): a node whose disk went bad, a
/// droplet to move to fresh hardware. Their `replace_because` holds [`REQUESTED`].
pub fn diff_replacing(
    graph: &ResourceGraph,
    state: Option<&State>,
    replace: &BTreeSet<String>,
) -> Plan {
    let replace = replace
        .iter()
        .map(|a| (a.clone(), REQUESTED.to_string()))
        .collect();
    diff_full(graph, state, &replace, &BTreeMap::new())
}

/// [`diff`], with the recorded resources of `replace` replaced whatever changed, each for
/// the reason given (held in its `replace_because`: [`REQUESTED`] for `--replace`, `the
/// operator key changes` for the account key of a rotation), and `drifted` resources (changed outside fitter, by address, with
/// what changed) updated to the plan's attributes even when their recorded attributes are
/// the plan's: the update puts back what was changed.
pub fn diff_full(
    graph: &ResourceGraph,
    state: Option<&State>,
    replace: &BTreeMap<String, String>,
    drifted: &BTreeMap<String, Vec<String>>,
) -> Plan {
    let empty = BTreeMap::new();
    let recorded = state.map_or(&empty, |s| &s.resources);
    let mut changes = Vec::new();
    let mut unchanged = 0;
    let mut desired = BTreeSet::new();
    for step in graph.resources() {
        let StepKind::Resource(kind) = step.kind else {
            continue;
        };
        let provider = step.provider.unwrap_or_else(registry::default_kind);
        desired.insert(step.address.as_str());
        let unknown: Vec<String> = kind
            .computed_attributes(provider)
            .iter()
            .chain(
                if kind == ResourceKind::Node && !step.attributes.contains_key("private_ip") {
                    &["private_ip"][..]
                } else {
                    &[][..]
                },
            )
            .map(|s| s.to_string())
            .collect();
        let depends_on = graph
            .dependencies(&step.address)
            .into_iter()
            .map(String::from)
            .collect();
        let mut disruption = None;
        let mut outside = Vec::new();
        let (action, before, replace_because) = match recorded.get(&step.address) {
            None => (Action::Create, None, Vec::new()),
            // A create that a crash interrupted: finish it (the provider adopts what exists).
            Some(old) if old.status == Status::Creating => (Action::Create, None, Vec::new()),
            Some(old) => {
                let mut changed: Vec<&String> = step
                    .attributes
                    .keys()
                    .chain(old.attributes.keys())
                    .filter(|k| step.attributes.get(*k) != old.attributes.get(*k))
                    .collect();
                changed.sort();
                changed.dedup();
                let mut forcing: Vec<String> = changed
                    .iter()
                    .filter(|k| kind.replaces_on_change(k) || old.provider != provider)
                    .map(|k| k.to_string())
                    .collect();
                if let Some(why) = replace.get(&step.address) {
                    forcing.push(why.clone());
                }
                let drift = drifted.get(&step.address).cloned().unwrap_or_default();
                if changed.is_empty() && forcing.is_empty() && drift.is_empty() {
                    unchanged += 1;
                    continue;
                } else if !forcing.is_empty() || old.kind != kind {
                    (Action::Replace, Some(old.attributes.clone()), forcing)
                } else {
                    let keys: Vec<&str> = changed.iter().map(|k| k.as_str()).collect();
                    disruption = provider
                        .cloud()
                        .update_disruption(kind, &keys)
                        .map(str::to_string);
                    outside = drift;
                    (Action::Update, Some(old.attributes.clone()), Vec::new())
                }
            }
        };
        changes.push(Change {
            address: step.address.clone(),
            kind,
            name: step.name.clone(),
            provider,
            action,
            before,
            after: Some(step.attributes.clone()),
            after_unknown: if action == Action::Update {
                Vec::new()
            } else {
                unknown
            },
            replace_because,
            disruption,
            drift: outside,
            depends_on,
        });
    }
    let mut deletes: Vec<Change> = recorded
        .iter()
        .filter(|(address, _)| !desired.contains(address.as_str()))
        .map(|(address, old)| delete_change(address, old))
        .collect();
    deletes.sort_by(|a, b| {
        (Reverse(a.kind.rank()), &a.address).cmp(&(Reverse(b.kind.rank()), &b.address))
    });
    changes.extend(deletes);
    let summary = Summary::of(&changes, unchanged);
    Plan {
        format_version: FORMAT_VERSION,
        deployment: graph.deployment.clone(),
        changes,
        bootstrap: Vec::new(),
        summary,
        operator_key: None,
    }
}

use std::cmp::Reverse;

fn delete_change(address: &str, old: &crate::state::ResourceState) -> Change {
    Change {
        address: address.to_string(),
        kind: old.kind,
        name: address
            .split_once('.')
            .map_or(address, |(_, n)| n)
            .to_string(),
        provider: old.provider,
        action: Action::Delete,
        before: Some(old.attributes.clone()),
        after: None,
        after_unknown: Vec::new(),
        replace_because: Vec::new(),
        disruption: None,
        drift: Vec::new(),
        depends_on: Vec::new(),
    }
}

/// The plan that destroys everything the state records: `dispose`.
/// The plan that destroys every recorded resource but those in `keep` (a node with
/// `destroy: never` and what it needs).
pub fn destroy_all(deployment: &str, state: &State, keep: &BTreeSet<String>) -> Plan {
    let mut changes: Vec<Change> = state
        .resources
        .iter()
        .filter(|(address, _)| !keep.contains(*address))
        .map(|(address, old)| delete_change(address, old))
        .collect();
    changes.sort_by(|a, b| {
        (Reverse(a.kind.rank()), &a.address).cmp(&(Reverse(b.kind.rank()), &b.address))
    });
    let destroy = changes.len();
    Plan {
        format_version: FORMAT_VERSION,
        deployment: deployment.to_string(),
        changes,
        bootstrap: Vec::new(),
        summary: Summary {
            add: 0,
            change: 0,
            destroy,
            unchanged: 0,
        },
        operator_key: None,
    }
}

impl Summary {
    fn of(changes: &[Change], unchanged: usize) -> Summary {
        let count = |f: fn(Action) -> bool| changes.iter().filter(|c| f(c.action)).count();
        Summary {
            add: count(|a| matches!(a, Action::Create | Action::Replace)),
            change: count(|a| a == Action::Update),
            destroy: count(|a| matches!(a, Action::Delete | Action::Replace)),
            unchanged,
        }
    }
}

impl Plan {
    /// The plan with only the changes whose address is in `scope` (`--blueprint`); what is
    /// left out counts as neither changed nor unchanged.
    pub fn only(mut self, scope: &BTreeSet<String>) -> Plan {
        self.changes.retain(|c| scope.contains(&c.address));
        for c in &mut self.changes {
            c.depends_on.retain(|d| scope.contains(d));
        }
        self.summary = Summary::of(&self.changes, self.summary.unchanged);
        self
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty() || self.operator_key.is_some()
    }

    pub fn summary_line(&self) -> String {
        format!(
            "Plan: {} to add, {} to change, {} to destroy.{}",
            self.summary.add,
            self.summary.change,
            self.summary.destroy,
            if self.operator_key.is_some() {
                " The operator key changes."
            } else {
                ""
            }
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan is always serialisable") + "\n"
    }

    /// Terraform-style text: one block per resource, then the summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.has_changes() {
            let _ = writeln!(
                out,
                "No changes. The infrastructure of `{}` matches the plan.\n",
                self.deployment
            );
            self.render_bootstrap(&mut out);
            let _ = writeln!(out, "{}", self.summary_line());
            return out;
        }
        let _ = writeln!(
            out,
            "fitter will perform the following actions on `{}`:\n",
            self.deployment
        );
        for change in &self.changes {
            render_change(&mut out, change);
            out.push('\n');
        }
        if let Some(k) = &self.operator_key {
            let _ = writeln!(out, "  # the operator key changes (a rotation)");
            let _ = writeln!(
                out,
                "  ~ operator key {} ({}) -> {} ({})",
                k.from, k.from_path, k.to, k.to_path
            );
            let _ = writeln!(
                out,
                "      every node gets the new key in its authorized_keys, logging in with the old one; {}\n",
                if k.revoke_old {
                    "then the old one is removed (--revoke-old-key)"
                } else {
                    "the old one stays authorised (`--revoke-old-key` removes it)"
                }
            );
        }
        self.render_bootstrap(&mut out);
        let _ = writeln!(out, "{}", self.summary_line());
        out
    }

    fn render_bootstrap(&self, out: &mut String) {
        if self.bootstrap.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "Then, over SSH on every deploy (only changed files are uploaded, only their services restarted):"
        );
        let width = self
            .bootstrap
            .iter()
            .map(|c| c.component.len())
            .max()
            .unwrap_or(0);
        for c in &self.bootstrap {
            let files = if c.files_min == c.files {
                format!("{} file{}", c.files, crate::diagnostics::plural(c.files))
            } else {
                format!("{} to {} files", c.files_min, c.files)
            };
            let what = match (c.install, c.services.is_empty()) {
                (true, true) => files,
                (true, false) => format!("{files}, service {}", c.services.join(", ")),
                (false, _) => format!("{files} only: install: false, no service started"),
            };
            let _ = writeln!(
                out,
                "  {:width$}  {} node{}: {what}",
                c.component,
                c.nodes.len(),
                crate::diagnostics::plural(c.nodes.len())
            );
        }
        out.push('\n');
    }
}

fn render_change(out: &mut String, c: &Change) {
    // A reason to replace that is no attribute was given, not found in a difference.
    let given = c.replace_because.iter().find(|r| {
        let attribute =
            |m: &Option<BTreeMap<String, Json>>| m.as_ref().is_some_and(|m| m.contains_key(*r));
        !attribute(&c.before) && !attribute(&c.after)
    });
    let requested = match given {
        Some(r) if r == REQUESTED => ", as `--replace` asks".to_string(),
        Some(r) => format!(": {r}"),
        None => String::new(),
    };
    let mut disruption = match &c.disruption {
        Some(d) => format!("; {d}"),
        None => String::new(),
    };
    if !c.drift.is_empty() {
        disruption.push_str(&format!("; changed outside fitter: {}", c.drift.join("; ")));
    }
    let _ = writeln!(
        out,
        "  # {} {}{requested}{disruption}",
        c.address,
        c.action.phrase()
    );
    let _ = writeln!(out, "{:>3} {} \"{}\" {{", c.action.symbol(), c.kind, c.name);
    let empty = BTreeMap::new();
    let before = c.before.as_ref().unwrap_or(&empty);
    let after = c.after.as_ref().unwrap_or(&empty);
    let mut keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let unknown: BTreeSet<&String> = c.after_unknown.iter().collect();
    keys.extend(unknown.iter().copied());
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    let mut hidden = 0;
    for key in keys {
        let (old, new) = (before.get(key), after.get(key));
        let forces = if c.replace_because.contains(key) {
            " # forces replacement"
        } else {
            ""
        };
        let line = match c.action {
            Action::Create => match new {
                Some(v) => whole_value("+", key, width, v),
                None => attr_line("+", key, width, "(known after apply)", ""),
            },
            Action::Delete => match old {
                Some(v) => whole_value("-", key, width, v),
                None => continue,
            },
            Action::Update | Action::Replace => match (old, new) {
                (Some(o), Some(n)) if o == n => {
                    if unknown.contains(key) && c.action == Action::Replace {
                        attr_line(
                            "~",
                            key,
                            width,
                            &format!("{} -> (known after apply)", value(o)),
                            "",
                        )
                    } else {
                        hidden += 1;
                        continue;
                    }
                }
                (Some(Json::Array(o)), Some(Json::Array(n))) => list_diff(key, width, o, n, forces),
                (Some(o), Some(n)) => attr_line(
                    "~",
                    key,
                    width,
                    &format!("{} -> {}", value(o), value(n)),
                    forces,
                ),
                (None, Some(n)) => attr_line("+", key, width, &value(n), forces),
                (Some(o), None) if unknown.contains(key) => attr_line(
                    "~",
                    key,
                    width,
                    &format!("{} -> (known after apply)", value(o)),
                    forces,
                ),
                (Some(o), None) => attr_line("-", key, width, &value(o), forces),
                (None, None) => attr_line("+", key, width, "(known after apply)", ""),
            },
        };
        out.push_str(&line);
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "        # ({hidden} unchanged attribute{} hidden)",
            crate::diagnostics::plural(hidden)
        );
    }
    let _ = writeln!(out, "    }}");
}

fn attr_line(symbol: &str, key: &str, width: usize, value: &str, note: &str) -> String {
    format!("      {symbol} {key:<width$} = {value}{note}\n")
}

/// A created or destroyed value; long lists get one element per line.
fn whole_value(symbol: &str, key: &str, width: usize, v: &Json) -> String {
    match v {
        Json::Array(items) if items.len() > 1 && value(v).len() > 60 => {
            let mut out = format!("      {symbol} {key:<width$} = [\n");
            for item in items {
                let _ = writeln!(out, "          {},", value(item));
            }
            let _ = writeln!(out, "        ]");
            out
        }
        _ => attr_line(symbol, key, width, &value(v), ""),
    }
}

/// A changed list, one element per line, marking what is added and removed.
fn list_diff(key: &str, width: usize, old: &[Json], new: &[Json], note: &str) -> String {
    let mut out = format!("      ~ {key:<width$} = [{note}\n");
    for item in old {
        let mark = if new.contains(item) { " " } else { "-" };
        let _ = writeln!(out, "          {mark} {},", value(item));
    }
    for item in new {
        if !old.contains(item) {
            let _ = writeln!(out, "          + {},", value(item));
        }
    }
    let _ = writeln!(out, "        ]");
    out
}

fn value(v: &Json) -> String {
    match v {
        Json::Array(items) => {
            let inner: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", inner.join(", "))
        }
        other => other.to_string(),
    }
}
