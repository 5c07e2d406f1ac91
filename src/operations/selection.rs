//! `--blueprint NAME`: acting on part of a plan, as plumbery's `plumbery fittings.yaml deploy
//! swarm` does. A name is a blueprint or a blueprint group (`- swarm: queen bees`); the
//! selection is the nodes of those blueprints.
//!
//! - `plan` and `deploy` change only what the selected nodes are made of: the nodes and,
//!   following the graph's dependencies, their network, firewalls, key and tag. What the
//!   plan has beyond that, and what the state has that the plan no longer does, is left as
//!   it is (Terraform's `-target` works the same way).
//! - `dispose` destroys the selected nodes and what they need that no other node of the
//!   state needs: a shared network stays while another blueprint's nodes use it.
//! - bootstrap runs on the nodes deploy's scope has: the selected ones and the peers their
//!   configuration names (made with them, so they are configured with them too).
//!
//! `--target ADDRESS` (Terraform's `-target`, on `plan` and `deploy`) selects resources by
//! address, `node.web1` or `firewall.web`, and joins the same scope: each with everything it
//! needs, the rest left as it is.

use std::collections::BTreeSet;

use fitter_providers::did_you_mean;

use crate::fittings::Fittings;
use crate::graph::{ResourceGraph, StepKind};
use crate::plan::Plan;
use crate::state::State;

/// `--blueprint` or `--target` names nothing of the plan.
#[derive(Debug, thiserror::Error)]
#[error("no {what} `{name}`; {hint}")]
pub struct UnknownBlueprint {
    pub what: &'static str,
    pub name: String,
    pub hint: String,
}

/// The nodes `--blueprint` names and the resources `--target` names, as graph addresses
/// (`node.web1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub blueprints: BTreeSet<String>,
    pub nodes: BTreeSet<String>,
    /// `--target`: addresses of the plan's resources.
    pub targets: BTreeSet<String>,
}

/// Checks `--target` and `--replace` addresses against the graph's resources: an unknown one
/// is an error naming the nearest address, or saying what addresses look like.
pub fn known_addresses(
    graph: &ResourceGraph,
    addresses: &[String],
    what: &'static str,
) -> Result<BTreeSet<String>, UnknownBlueprint> {
    let known: Vec<&str> = graph.resources().map(|s| s.address.as_str()).collect();
    let mut out = BTreeSet::new();
    for address in addresses {
        if known.contains(&address.as_str()) {
            out.insert(address.clone());
            continue;
        }
        let hint = match did_you_mean(address, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!(
                "an address is a kind and a name, as `fitter plan` shows them: {}",
                known.iter().take(4).copied().collect::<Vec<_>>().join(", ")
            ),
        };
        return Err(UnknownBlueprint {
            what,
            name: address.clone(),
            hint,
        });
    }
    Ok(out)
}

impl Selection {
    /// The selection of `names` (blueprints or groups); `None` when no name is given. An
    /// unknown name is an error naming the nearest one, or listing them.
    pub fn resolve(
        fittings: &Fittings,
        graph: &ResourceGraph,
        names: &[String],
        targets: &[String],
    ) -> Result<Option<Selection>, UnknownBlueprint> {
        if names.is_empty() && targets.is_empty() {
            return Ok(None);
        }
        let targets = known_addresses(graph, targets, "resource")?;
        let mut blueprints = BTreeSet::new();
        for name in names {
            if let Some(members) = fittings.groups.get(name) {
                blueprints.extend(members.iter().map(|m| m.value.clone()));
            } else if fittings.blueprints.iter().any(|b| &b.name.value == name) {
                blueprints.insert(name.clone());
            } else {
                let known: Vec<&str> = fittings
                    .blueprints
                    .iter()
                    .map(|b| b.name.value.as_str())
                    .chain(fittings.groups.keys().map(String::as_str))
                    .collect();
                let hint = match did_you_mean(name, known.iter().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("the plan has: {}", known.join(", ")),
                };
                return Err(UnknownBlueprint {
                    what: "blueprint or group",
                    name: name.clone(),
                    hint,
                });
            }
        }
        let nodes = fittings
            .nodes
            .iter()
            .filter(|n| blueprints.contains(&fittings.blueprints[n.blueprint].name.value))
            .map(|n| format!("node.{}", n.name.value))
            .collect();
        Ok(Some(Selection {
            blueprints,
            nodes,
            targets,
        }))
    }

    /// What `deploy` may create or change: the selected nodes and everything they need,
    /// the peers their configuration names (`{{ bee1.private }}`) included.
    pub fn deploy_scope(&self, graph: &ResourceGraph) -> BTreeSet<String> {
        needs(graph, self.nodes.iter().chain(&self.targets).cloned())
    }

    /// What `dispose` destroys: the selected nodes recorded in the state (always, even when
    /// another node's configuration names them, as plumbery does), and what they need that
    /// no other recorded node needs.
    pub fn dispose_scope(&self, graph: &ResourceGraph, state: &State) -> BTreeSet<String> {
        let recorded_nodes = state.resources.keys().filter(|a| a.starts_with("node."));
        let (selected, others): (Vec<&String>, Vec<&String>) =
            recorded_nodes.partition(|a| self.nodes.contains(*a));
        let kept = needs(graph, others.into_iter().cloned());
        needs(graph, selected.into_iter().cloned())
            .into_iter()
            .filter(|a| self.nodes.contains(a) || !kept.contains(a))
            .filter(|a| state.resources.contains_key(a))
            .collect()
    }

    /// The nodes `deploy` creates and bootstraps: the selected ones and the peers they name.
    pub fn deployed_nodes(&self, graph: &ResourceGraph) -> BTreeSet<String> {
        let mut scope = self.deploy_scope(graph);
        scope.retain(|a| a.starts_with("node."));
        scope
    }

    /// The plan narrowed to the scope; bootstrap to the nodes in it.
    pub fn narrow(&self, plan: Plan, graph: &ResourceGraph) -> Plan {
        let scope = self.deploy_scope(graph);
        let mut plan = plan.only(&scope);
        for c in &mut plan.bootstrap {
            c.nodes.retain(|n| scope.contains(&format!("node.{n}")));
        }
        plan.bootstrap.retain(|c| !c.nodes.is_empty());
        plan
    }
}

/// The addresses and every step they depend on, through the graph: a node's own steps
/// (its bootstrap, whose references name its peers) count as the node's. The barrier
/// before bootstrap ("every node exists") is not followed: through it, one node would need
/// every other.
pub(super) fn needs(graph: &ResourceGraph, from: impl Iterator<Item = String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = from.collect();
    let own_steps = |node: &str| -> Vec<String> {
        graph
            .graph
            .node_weights()
            .filter(|s| matches!(&s.kind, StepKind::Bootstrap { node: n, .. } if n == node))
            .map(|s| s.address.clone())
            .collect()
    };
    while let Some(address) = todo.pop() {
        if !seen.insert(address.clone()) {
            continue;
        }
        if let Some(node) = address.strip_prefix("node.") {
            todo.extend(own_steps(node));
        }
        let deps = graph.dependencies(&address).into_iter();
        todo.extend(
            deps.filter(|d| {
                graph
                    .step(d)
                    .is_some_and(|s| !matches!(s.kind, StepKind::Barrier))
            })
            .map(str::to_string),
        );
    }
    seen
}
