//! The resource graph: every cloud resource a plan asks for and every bootstrap step, with an
//! edge from each step to the steps that must wait for it.
//!
//! Built by small passes, each with one job (as Terraform's graph builders are):
//! account resources, networks, firewalls, nodes, bootstrap steps with their role order,
//! references from run-time tokens, `depends_on`, and finally the cycle check, which also
//! fixes the one deterministic order in which steps are listed and planned.
//!
//! Layout: this file holds the types and the passes; `dot.rs` draws the graph for `fitter
//! graph`; `tests.rs` holds the unit tests.
//!
//! Edges read "before": `network.mesos -> node.master1` means the network exists before the
//! node is created. Ordering across many nodes goes through barrier steps (`barrier.nodes`,
//! `barrier.zookeeper`) so that the number of edges grows with the number of nodes, not its
//! square.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::Ipv4Addr;

use fitter_providers::{ProviderKind, ResourceKind};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde_json::Value as Json;
use thiserror::Error;

mod dot;

use crate::components::{COMMON, Catalog};
use crate::fittings::rules::{Rule, Subnet};
use crate::fittings::{Fittings, NodeSpec};
use crate::yaml::Span;

/// What a vertex of the graph stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// A cloud resource the provider creates.
    Resource(ResourceKind),
    /// Rendering and applying one component on one node over SSH.
    Bootstrap { node: String, component: String },
    /// A join point: everything before it is done.
    Barrier,
}

#[derive(Debug, Clone)]
pub struct Step {
    /// `node.master1`, `network.mesos`, `bootstrap.master1.zookeeper`, `barrier.nodes`.
    pub address: String,
    pub kind: StepKind,
    pub name: String,
    pub provider: Option<ProviderKind>,
    /// Desired attributes of a resource, compared with the state by the plan and shown by
    /// it; the same facts as `desired`, as the state records them.
    pub attributes: BTreeMap<String, Json>,
    /// What the resource should be, typed: what apply turns into a provider request, with
    /// nothing parsed again. `None` for bootstrap steps and barriers.
    pub desired: Option<Desired>,
    /// Where the plan declares it.
    pub span: Option<Span>,
}

/// A resource as the plan wants it, typed, from the loader's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// The operator's key in the account, under this name.
    SshKey {
        key_name: String,
    },
    /// The deployment's tag.
    Tag {
        tag: String,
    },
    Network {
        subnet: Subnet,
        region: Option<String>,
        /// The firewalls of the nodes on it, for clouds that attach them to a network.
        firewalls: Vec<String>,
    },
    Firewall {
        /// Sorted, without duplicates.
        inbound: Vec<Rule>,
        /// The nodes it protects.
        nodes: Vec<String>,
    },
    Node(DesiredNode),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredNode {
    pub size: String,
    pub image: String,
    pub region: Option<String>,
    pub network: Option<String>,
    /// A fixed address (`glue: primary`); others are assigned by apply or the cloud.
    pub private_ip: Option<Ipv4Addr>,
    pub roles: Vec<String>,
    pub firewall: Option<String>,
    /// The plan's tags (the deployment's), before role and firewall tags are added.
    pub tags: Vec<String>,
    /// A role of the node forms a quorum (its component says `quorum: true`).
    pub spread: bool,
    /// A role of the node runs containers itself (its component says `nesting: true`).
    pub nesting: bool,
}

/// Why an edge exists; shown by `fitter graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A node needs its network, key, tag and firewall.
    Needs,
    /// `{{ peer.private }}` in a node's cloud-config.
    Reference,
    /// `depends_on` or plumbery's `basement`.
    DependsOn,
    /// A component's `after:` (ZooKeeper before Mesos masters before Marathon).
    RoleOrder,
    /// Bootstrap on one node: common first, cloud-config last.
    Sequence,
}

#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub reason: Reason,
    pub span: Option<Span>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("dependency cycle: {} (each waits for the next)", chain.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        chain: Vec<String>,
        span: Option<Span>,
    },
}

#[derive(Debug)]
pub struct ResourceGraph {
    pub graph: DiGraph<Step, Edge>,
    index: HashMap<String, NodeIndex>,
    /// Every step in a topological order, deterministic for a given plan.
    pub order: Vec<NodeIndex>,
    pub deployment: String,
    /// Position of each vertex in `order`, computed on first use.
    positions: std::sync::OnceLock<Vec<usize>>,
}

impl ResourceGraph {
    pub fn step(&self, address: &str) -> Option<&Step> {
        self.index.get(address).map(|i| &self.graph[*i])
    }

    /// Resources (not bootstrap steps or barriers) in dependency order.
    pub fn resources(&self) -> impl Iterator<Item = &Step> {
        self.order
            .iter()
            .map(|i| &self.graph[*i])
            .filter(|s| matches!(s.kind, StepKind::Resource(_)))
    }

    /// Addresses of the steps that must finish before `address`.
    pub fn dependencies(&self, address: &str) -> Vec<&str> {
        let Some(&i) = self.index.get(address) else {
            return Vec::new();
        };
        let mut deps: Vec<&str> = self
            .graph
            .neighbors_directed(i, Direction::Incoming)
            .map(|d| self.graph[d].address.as_str())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        deps
    }
}

/// The deployment's tag, carried by every resource it owns.
pub fn deployment_tag(deployment: &str) -> String {
    format!("fitter-{deployment}")
}

/// The tag of the deployment's nodes with a role, which firewall rules `from role:x` name.
/// Deployment names have no `:`, so `fitter-a:...` never belongs to a deployment `a-b`.
pub fn role_tag(deployment: &str, role: &str) -> String {
    format!("{}:role:{role}", deployment_tag(deployment))
}

/// The tag of the nodes a firewall protects, which the cloud firewall is applied to.
pub fn firewall_tag(deployment: &str, firewall: &str) -> String {
    format!("{}:fw:{firewall}", deployment_tag(deployment))
}

struct Builder {
    graph: DiGraph<Step, Edge>,
    index: HashMap<String, NodeIndex>,
}

impl Builder {
    fn add(&mut self, step: Step) -> NodeIndex {
        if let Some(&i) = self.index.get(&step.address) {
            return i;
        }
        let address = step.address.clone();
        let i = self.graph.add_node(step);
        self.index.insert(address, i);
        i
    }

    fn edge(&mut self, before: NodeIndex, after: NodeIndex, reason: Reason, span: Option<Span>) {
        self.graph.add_edge(before, after, Edge { reason, span });
    }

    fn get(&self, address: &str) -> Option<NodeIndex> {
        self.index.get(address).copied()
    }
}

fn resource(kind: ResourceKind, name: &str, provider: ProviderKind, span: Option<Span>) -> Step {
    Step {
        address: format!("{kind}.{name}"),
        kind: StepKind::Resource(kind),
        name: name.to_string(),
        provider: Some(provider),
        attributes: BTreeMap::new(),
        desired: None,
        span,
    }
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Json {
    Json::Array(
        items
            .into_iter()
            .map(|s| Json::String(s.to_string()))
            .collect(),
    )
}

/// Builds the graph of a checked plan.
pub fn build(fittings: &Fittings, catalog: &Catalog) -> Result<ResourceGraph, GraphError> {
    let mut b = Builder {
        graph: DiGraph::new(),
        index: HashMap::new(),
    };
    let tag = deployment_tag(&fittings.deployment);
    add_account_resources(&mut b, fittings, &tag);
    add_networks(&mut b, fittings);
    let firewall_of = add_firewalls(&mut b, fittings);
    add_nodes(&mut b, fittings, catalog, &tag, &firewall_of);
    add_bootstrap(&mut b, fittings, catalog);
    add_references(&mut b, fittings);
    add_depends_on(&mut b, fittings);
    let order = match topological_order(&b.graph) {
        Ok(order) => order,
        Err(cycle) => {
            let span = cycle
                .windows(2)
                .filter_map(|w| b.graph.find_edge(w[1], w[0]))
                .find_map(|e| b.graph[e].span);
            return Err(GraphError::Cycle {
                chain: cycle.iter().map(|i| b.graph[*i].address.clone()).collect(),
                span,
            });
        }
    };
    Ok(ResourceGraph {
        graph: b.graph,
        index: b.index,
        order,
        deployment: fittings.deployment.clone(),
        positions: Default::default(),
    })
}

fn add_account_resources(b: &mut Builder, fittings: &Fittings, tag: &str) {
    let Some(provider) = fittings
        .locations
        .iter()
        .map(|l| l.provider)
        .find(|p| p.cloud().has_account_resources())
    else {
        return;
    };
    let mut key = resource(ResourceKind::SshKey, "operator", provider, None);
    key.desired = Some(Desired::SshKey {
        key_name: tag.to_string(),
    });
    key.attributes
        .insert("name".into(), Json::String(tag.to_string()));
    key.attributes
        .insert("provider".into(), Json::String(provider.to_string()));
    b.add(key);
    let mut t = resource(ResourceKind::Tag, "deployment", provider, None);
    t.desired = Some(Desired::Tag {
        tag: tag.to_string(),
    });
    t.attributes
        .insert("name".into(), Json::String(tag.to_string()));
    t.attributes
        .insert("provider".into(), Json::String(provider.to_string()));
    b.add(t);
}

fn add_networks(b: &mut Builder, fittings: &Fittings) {
    for network in &fittings.networks {
        let mut step = resource(
            ResourceKind::Network,
            &network.name.value,
            network.provider,
            Some(network.name.span),
        );
        step.attributes.insert(
            "provider".into(),
            Json::String(network.provider.to_string()),
        );
        step.attributes
            .insert("subnet".into(), Json::String(network.subnet.to_string()));
        if let Some(region) = &network.region {
            step.attributes
                .insert("region".into(), Json::String(region.clone()));
        }
        step.desired = Some(Desired::Network {
            subnet: network.subnet,
            region: network.region.clone(),
            firewalls: Vec::new(),
        });
        b.add(step);
    }
}

/// One firewall per blueprint and distinct rule set; returns the firewall name of each node.
fn add_firewalls(b: &mut Builder, fittings: &Fittings) -> Vec<Option<String>> {
    let mut firewall_of = vec![None; fittings.nodes.len()];
    for blueprint in &fittings.blueprints {
        let mut groups: Vec<(Vec<&Rule>, Vec<usize>)> = Vec::new();
        for &n in &blueprint.nodes {
            let mut rules: Vec<&Rule> = blueprint
                .rules
                .iter()
                .chain(&fittings.nodes[n].rules)
                .collect();
            rules.sort();
            rules.dedup();
            if rules.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(r, _)| *r == rules) {
                Some((_, members)) => members.push(n),
                None => groups.push((rules, vec![n])),
            }
        }
        for (g, (rules, members)) in groups.iter().enumerate() {
            let name = if g == 0 {
                blueprint.name.value.clone()
            } else {
                format!("{}-{}", blueprint.name.value, g + 1)
            };
            let provider = fittings.nodes[members[0]].provider;
            let mut step = resource(
                ResourceKind::Firewall,
                &name,
                provider,
                Some(blueprint.name.span),
            );
            step.attributes
                .insert("provider".into(), Json::String(provider.to_string()));
            let inbound: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            step.attributes.insert(
                "inbound".into(),
                strings(inbound.iter().map(String::as_str)),
            );
            step.attributes
                .insert("outbound".into(), strings(["all to anywhere"]));
            step.attributes.insert(
                "nodes".into(),
                strings(
                    members
                        .iter()
                        .map(|&m| fittings.nodes[m].name.value.as_str()),
                ),
            );
            step.desired = Some(Desired::Firewall {
                inbound: rules.iter().map(|r| (*r).clone()).collect(),
                nodes: members
                    .iter()
                    .map(|&m| fittings.nodes[m].name.value.clone())
                    .collect(),
            });
            let i = b.add(step);
            // The network lists the firewalls of its nodes (LXD attaches ACLs to a network
            // when it creates it), so a firewall comes before its nodes' network.
            let network = members
                .iter()
                .find_map(|&m| fittings.nodes[m].network)
                .map(|n| format!("network.{}", fittings.networks[n].name.value));
            if let Some(nw) = network.and_then(|n| b.get(&n)) {
                b.edge(i, nw, Reason::Needs, None);
                if let Json::Array(list) = b.graph[nw]
                    .attributes
                    .entry("firewalls".to_string())
                    .or_insert_with(|| Json::Array(Vec::new()))
                {
                    list.push(Json::String(name.clone()));
                }
                if let Some(Desired::Network { firewalls, .. }) = &mut b.graph[nw].desired {
                    firewalls.push(name.clone());
                }
            }
            if provider.cloud().has_account_resources()
                && let Some(t) = b.get("tag.deployment")
            {
                b.edge(t, i, Reason::Needs, None);
            }
            for &m in members {
                firewall_of[m] = Some(name.clone());
            }
        }
    }
    firewall_of
}

fn add_nodes(
    b: &mut Builder,
    fittings: &Fittings,
    catalog: &Catalog,
    tag: &str,
    firewall_of: &[Option<String>],
) {
    for (i, node) in fittings.nodes.iter().enumerate() {
        let components = fittings.components_of(node, catalog);
        let needs = MachineNeeds {
            spread: components.iter().any(|c| c.quorum),
            // Only where the cloud's nodes are containers, and only for what runs.
            nesting: node.provider.cloud().nests_containers()
                && components.iter().any(|c| c.nesting && fittings.installs(c)),
        };
        let step = node_step(fittings, node, tag, firewall_of[i].as_deref(), needs);
        let n = b.add(step);
        if node.provider.cloud().has_account_resources() {
            for account in ["ssh_key.operator", "tag.deployment"] {
                if let Some(a) = b.get(account) {
                    b.edge(a, n, Reason::Needs, None);
                }
            }
        }
        if let Some(net) = node.network
            && let Some(nw) = b.get(&format!("network.{}", fittings.networks[net].name.value))
        {
            b.edge(nw, n, Reason::Needs, None);
        }
        if let Some(fw) = &firewall_of[i]
            && let Some(f) = b.get(&format!("firewall.{fw}"))
        {
            b.edge(f, n, Reason::Needs, None);
        }
    }
}

/// What a node's components ask of the machine it runs on.
struct MachineNeeds {
    spread: bool,
    nesting: bool,
}

fn node_step(
    fittings: &Fittings,
    node: &NodeSpec,
    tag: &str,
    firewall: Option<&str>,
    needs: MachineNeeds,
) -> Step {
    let mut step = resource(
        ResourceKind::Node,
        &node.name.value,
        node.provider,
        Some(node.name.span),
    );
    let a = &mut step.attributes;
    a.insert("provider".into(), Json::String(node.provider.to_string()));
    a.insert("size".into(), Json::String(node.size.clone()));
    a.insert("image".into(), Json::String(node.image.clone()));
    a.insert(
        "roles".into(),
        strings(node.roles.iter().map(|r| r.value.as_str())),
    );
    match &node.region {
        Some(region) => a.insert("region".into(), Json::String(region.clone())),
        None => a.insert(
            "location".into(),
            Json::String(fittings.locations[node.location].id.value.clone()),
        ),
    };
    if let Some(net) = node.network {
        a.insert(
            "network".into(),
            Json::String(fittings.networks[net].name.value.clone()),
        );
    }
    if let Some(ip) = node.private_ip {
        a.insert("private_ip".into(), Json::String(ip.to_string()));
    }
    if let Some(fw) = firewall {
        a.insert("firewall".into(), Json::String(fw.to_string()));
    }
    if node.monitoring {
        a.insert("monitoring".into(), Json::Bool(true));
    }
    if needs.nesting {
        // An attribute, so that a node gaining or losing it is an update the plan shows.
        a.insert("nesting".into(), Json::Bool(true));
    }
    a.insert("tags".into(), strings([tag]));
    step.desired = Some(Desired::Node(DesiredNode {
        size: node.size.clone(),
        image: node.image.clone(),
        region: node.region.clone(),
        network: node
            .network
            .map(|net| fittings.networks[net].name.value.clone()),
        private_ip: node.private_ip,
        roles: node.roles.iter().map(|r| r.value.clone()).collect(),
        firewall: firewall.map(str::to_string),
        tags: vec![tag.to_string()],
        spread: needs.spread,
        nesting: needs.nesting,
    }));
    step
}

fn add_bootstrap(b: &mut Builder, fittings: &Fittings, catalog: &Catalog) {
    if fittings.nodes.is_empty() {
        return;
    }
    let all_nodes = b.add(barrier("nodes"));
    // Components in use, and a barrier for each one some other component comes after.
    let mut users: BTreeMap<&str, Vec<NodeIndex>> = BTreeMap::new();
    let mut steps: Vec<(usize, &str, NodeIndex)> = Vec::new();
    for (i, node) in fittings.nodes.iter().enumerate() {
        let n = b
            .get(&format!("node.{}", node.name.value))
            .expect("node added before");
        b.edge(n, all_nodes, Reason::Sequence, None);
        let common = b.add(bootstrap_step(node, COMMON));
        b.edge(all_nodes, common, Reason::Sequence, None);
        users.entry(COMMON).or_default().push(common);
        let mut last = vec![common];
        // The same components bootstrap applies and the plan lists.
        for component in fittings.components_of(node, catalog) {
            let name = component.name.as_str();
            if name == COMMON {
                continue;
            }
            let s = b.add(bootstrap_step(node, name));
            b.edge(common, s, Reason::Sequence, None);
            users.entry(name).or_default().push(s);
            steps.push((i, name, s));
            last.push(s);
        }
        let has_cloud_config = node
            .cloud_config
            .as_ref()
            .and_then(|c| c.as_map())
            .is_some_and(|m| !m.is_empty());
        if has_cloud_config {
            let cc = b.add(bootstrap_step(node, "cloud-config"));
            for s in last {
                b.edge(s, cc, Reason::Sequence, None);
            }
        }
    }
    let mut barriers: HashMap<&str, NodeIndex> = HashMap::new();
    for (_, component, step) in &steps {
        let Some(c) = catalog.get(component) else {
            continue;
        };
        for before in &c.after {
            let Some(members) = users.get(before.as_str()) else {
                continue;
            };
            let barrier_index = match barriers.get(before.as_str()) {
                Some(&x) => x,
                None => {
                    let x = b.add(barrier(before));
                    for &m in members {
                        b.edge(m, x, Reason::RoleOrder, None);
                    }
                    barriers.insert(before.as_str(), x);
                    x
                }
            };
            b.edge(barrier_index, *step, Reason::RoleOrder, None);
        }
    }
}

fn barrier(name: &str) -> Step {
    Step {
        address: format!("barrier.{name}"),
        kind: StepKind::Barrier,
        name: name.to_string(),
        provider: None,
        attributes: BTreeMap::new(),
        desired: None,
        span: None,
    }
}

fn bootstrap_step(node: &NodeSpec, component: &str) -> Step {
    Step {
        address: format!("bootstrap.{}.{component}", node.name.value),
        kind: StepKind::Bootstrap {
            node: node.name.value.clone(),
            component: component.to_string(),
        },
        name: format!("{}.{component}", node.name.value),
        provider: Some(node.provider),
        attributes: BTreeMap::new(),
        desired: None,
        span: Some(node.name.span),
    }
}

fn add_references(b: &mut Builder, fittings: &Fittings) {
    for node in &fittings.nodes {
        let Some(cc) = b.get(&format!("bootstrap.{}.cloud-config", node.name.value)) else {
            continue;
        };
        for r in &node.references {
            if let Some(peer) = b.get(&format!("node.{}", r.node)) {
                b.edge(peer, cc, Reason::Reference, Some(r.span));
            }
        }
    }
}

fn add_depends_on(b: &mut Builder, fittings: &Fittings) {
    for node in &fittings.nodes {
        let Some(n) = b.get(&format!("node.{}", node.name.value)) else {
            continue;
        };
        for dep in &node.depends_on {
            let targets: Vec<&str> = match fittings
                .blueprints
                .iter()
                .find(|bp| bp.name.value == dep.value)
            {
                Some(bp) if !fittings.nodes.iter().any(|x| x.name.value == dep.value) => bp
                    .nodes
                    .iter()
                    .map(|&m| fittings.nodes[m].name.value.as_str())
                    .collect(),
                _ => vec![dep.value.as_str()],
            };
            for t in targets {
                if let Some(ti) = b.get(&format!("node.{t}")) {
                    b.edge(ti, n, Reason::DependsOn, Some(dep.span));
                }
            }
        }
    }
}

/// Kahn's algorithm, always taking the ready vertex with the smallest index, so the order
/// depends only on the vertices and the set of edges, never on the order edges were added.
///
/// On a cycle, returns one real cycle as a chain `[a, b, ..., a]` in which each vertex waits
/// for the next (an edge runs from each to the one before it).
pub fn topological_order<N, E>(graph: &DiGraph<N, E>) -> Result<Vec<NodeIndex>, Vec<NodeIndex>> {
    let count = graph.node_count();
    let mut in_degree = vec![0usize; count];
    for e in graph.edge_references() {
        in_degree[e.target().index()] += 1;
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count)
        .filter(|&i| in_degree[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(NodeIndex::new(i));
        for next in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
            let d = &mut in_degree[next.index()];
            *d -= 1;
            if *d == 0 {
                ready.push(Reverse(next.index()));
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }
    // Every vertex left has a predecessor that is also left: walk back until one repeats.
    let start = (0..count)
        .find(|&i| in_degree[i] > 0)
        .expect("a vertex is left");
    let mut seen = vec![usize::MAX; count];
    let mut chain = Vec::new();
    let mut at = start;
    while seen[at] == usize::MAX {
        seen[at] = chain.len();
        chain.push(NodeIndex::new(at));
        at = graph
            .neighbors_directed(NodeIndex::new(at), Direction::Incoming)
            .map(|p| p.index())
            .filter(|&p| in_degree[p] > 0)
            .min()
            .expect("a vertex left in a cycle has a predecessor left");
    }
    let mut cycle = chain.split_off(seen[at]);
    cycle.push(NodeIndex::new(at));
    Err(cycle)
}

#[cfg(test)]
mod tests;
