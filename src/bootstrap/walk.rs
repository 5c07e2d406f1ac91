//! The bootstrap walks the plan's graph: the same bootstrap steps and role order that
//! `fitter graph` shows and `plan` counts. One step is one component on one node
//! (`bootstrap.master1.zookeeper`); the graph orders a node's components (`common` first,
//! cloud-config last) and, across nodes, each component after every step of the components
//! it comes after (`barrier.zookeeper`: ZooKeeper on every master before any Mesos master).
//!
//! The engine hands over, each round, the steps whose prerequisites have all finished; the
//! steps of one node in one round become one [`NodeRun::apply`] (one or two round trips),
//! `--ssh-parallelism` nodes at a time. A node's first round also opens its session and does
//! what concerns the whole node ([`NodeRun::begin`]).
//!
//! A failure stops its node only: the node's later components are not applied, and it is
//! reported failed. Across nodes the role order means "after it finished", not "after it
//! succeeded": with ZooKeeper failing on one master of three the others still form a quorum,
//! and the Mesos masters are still configured. So every step returns success to the engine
//! and failures are kept per node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{LocalBoxFuture, Shared};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef as _;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use super::apply::NodeRun;
use super::{NodeReport, Target};
use crate::engine;
use crate::graph::{ResourceGraph, StepKind};
use crate::report::{Activity, Finish, Reporter};
use crate::ssh::OperatorKey;

/// What the walk is given besides the nodes.
pub struct Walk<'a> {
    pub operator: &'a OperatorKey,
    /// Nodes worked on at once.
    pub parallelism: usize,
    /// How long a node may take to answer SSH.
    pub patience: Duration,
    /// How long one remote command may take (`--command-timeout`).
    pub command_timeout: Duration,
    pub reporter: &'a dyn Reporter,
    /// How long the health checks of a node's started services may take to pass, from the
    /// end of the walk (`--health-timeout`); and a restarted quorum member to serve again.
    pub health_timeout: Duration,
    /// `--serial`: how many nodes restart services at once.
    pub serial: usize,
    /// Ctrl-C: the steps running finish (a node's files are never left half-written), no
    /// step starts after it, and every node not through all of its steps fails as
    /// interrupted, so that the command's outcome says so.
    pub cancel: &'a CancellationToken,
}

/// One node's progress through the walk.
struct Node<'t> {
    run: NodeRun<'t>,
    /// Its components not yet handed over.
    left: BTreeSet<String>,
    failed: bool,
}

/// Brings every target in line with its config, along the graph's bootstrap steps. Nodes
/// not among the targets (not ready) are left out and hold nothing back. Returns one report
/// per target, in the targets' order.
pub async fn apply(graph: &ResourceGraph, targets: &[Target], walk: &Walk<'_>) -> Vec<NodeReport> {
    let (dag, steps) = bootstrap_dag(graph);
    let index: HashMap<&str, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.config.node.as_str(), i))
        .collect();
    // A step is selected when its node is a target; barriers always, as join points.
    let selected: Vec<bool> = steps
        .iter()
        .map(|s| match s {
            Some((node, _)) => index.contains_key(node.as_str()),
            None => true,
        })
        .collect();
    let nodes: Vec<Mutex<Node<'_>>> = targets
        .iter()
        .map(|t| {
            let mut left: BTreeSet<String> = steps
                .iter()
                .flatten()
                .filter(|(node, _)| *node == t.config.node)
                .map(|(_, component)| component.clone())
                .collect();
            // What the config has and the graph does not name is applied with the last step.
            left.extend(t.config.files.iter().map(|f| f.component.clone()));
            left.extend(t.config.services.iter().map(|s| s.component.clone()));
            Mutex::new(Node {
                run: NodeRun::new(t),
                left,
                failed: false,
            })
        })
        .collect();
    let remaining: Vec<std::sync::Mutex<usize>> = targets
        .iter()
        .map(|t| {
            let n = steps
                .iter()
                .flatten()
                .filter(|(node, _)| *node == t.config.node)
                .count();
            std::sync::Mutex::new(n)
        })
        .collect();
    let slots = Semaphore::new(walk.parallelism.max(1));
    let rolling = super::apply::Rolling {
        quorum: targets
            .iter()
            .flat_map(|t| t.config.health.iter().filter(|h| h.quorum))
            .map(|h| (h.component.clone(), Mutex::new(())))
            .collect(),
        serial: Semaphore::new(walk.serial.max(1)),
        patience: walk.health_timeout,
        turns: Default::default(),
        stopped: Default::default(),
        cancel: walk.cancel.clone(),
    };
    let rolling = &rolling;
    let count = steps.len();
    let (all, slots, remaining, steps, index) = (&nodes, &slots, &remaining, &steps, &index);
    engine::walk_rounds(&dag, &selected, count, walk.cancel, |round| {
        // The steps of one node in this round: one piece of work, shared by its steps.
        let mut by_node: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for v in round {
            if let Some((node, component)) = &steps[v.index()]
                && let Some(&i) = index.get(node.as_str())
            {
                by_node.entry(i).or_default().insert(component.clone());
            }
        }
        let mut work: HashMap<usize, Shared<LocalBoxFuture<'_, ()>>> = HashMap::new();
        for (i, components) in by_node {
            let future = async move {
                let count = components.len();
                let _slot = slots.acquire().await;
                let mut node = all[i].lock().await;
                let last = {
                    let mut left = remaining[i].lock().unwrap_or_else(|e| e.into_inner());
                    *left = left.saturating_sub(count);
                    *left == 0
                };
                round_of(&mut node, components, last, rolling, walk).await;
            };
            work.insert(i, future.boxed_local().shared());
        }
        round
            .iter()
            .map(|v| {
                let shared = steps[v.index()]
                    .as_ref()
                    .and_then(|(node, _)| index.get(node.as_str()))
                    .and_then(|i| work.get(i).cloned());
                async move {
                    if let Some(w) = shared {
                        w.await;
                    }
                    Ok::<(), ()>(())
                }
            })
            .collect()
    })
    .await;
    let mut nodes: Vec<Node<'_>> = nodes.into_iter().map(Mutex::into_inner).collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        let unfinished = *remaining[i].lock().unwrap_or_else(|e| e.into_inner()) > 0;
        if unfinished && !node.failed && walk.cancel.is_cancelled() {
            let subject = format!("node.{}", node.run.report.node);
            let left = node.left.iter().cloned().collect::<Vec<_>>().join(", ");
            let error = format!(
                "`{}`: interrupted before its bootstrap finished ({left} not applied); deploy again to finish",
                node.run.report.node
            );
            fail(node, &subject, error, walk);
        }
    }
    // `--health-timeout 0`: no check at all (the operator takes "started" for "done").
    if !walk.cancel.is_cancelled() && !walk.health_timeout.is_zero() {
        check_health(&mut nodes, &members_in_plan(steps), rolling, walk).await;
    }
    let mut reports = Vec::with_capacity(targets.len());
    for node in nodes {
        if !node.failed && node.run.begun() {
            let r = &node.run.report;
            let unchanged = r.uploaded.is_empty() && r.restarted.is_empty() && r.removed.is_empty();
            walk.reporter.finished(
                &format!("node.{}", r.node),
                if unchanged {
                    Finish::Unchanged
                } else {
                    Finish::Done { id: None }
                },
            );
        }
        reports.push(node.run.end().await);
    }
    reports
}

/// Every node that went through its walk, its health checks until they pass; then every
/// quorum component's members together, until they make one ensemble. A node that stays
/// unhealthy past `--health-timeout` fails with the last answer.
async fn check_health(
    nodes: &mut [Node<'_>],
    in_plan: &HashMap<String, usize>,
    rolling: &super::apply::Rolling,
    walk: &Walk<'_>,
) {
    let deadline = std::time::Instant::now() + walk.health_timeout;
    let results = futures::future::join_all(nodes.iter_mut().filter(|n| !n.failed).map(|n| {
        let subject = format!("node.{}", n.run.report.node);
        async move {
            let step = |detail: &str| walk.reporter.step(&subject, detail);
            let result = n
                .run
                .check_health(deadline, rolling, walk.cancel, &step)
                .await;
            (n, subject, result)
        }
    }))
    .await;
    for (n, subject, result) in results {
        match result {
            Ok(answers) => {
                for a in &answers {
                    let seen = a.role.clone().unwrap_or_else(|| "healthy".into());
                    n.run.report.health.push(format!("{}: {seen}", a.component));
                }
            }
            Err(e) => fail(n, &subject, e.to_string(), walk),
        }
    }
    // Quorum components: their healthy members, by component, with the role each answered.
    let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut roles: HashMap<(usize, String), String> = HashMap::new();
    for (i, n) in nodes.iter().enumerate().filter(|(_, n)| !n.failed) {
        let quorum = n.run.quorum_components();
        for line in &n.run.report.health {
            if let Some((component, role)) = line.split_once(": ")
                && quorum.iter().any(|c| c == component)
            {
                members.entry(component.to_string()).or_default().push(i);
                roles.insert((i, component.to_string()), role.to_string());
            }
        }
    }
    for (component, idx) in members {
        // Every member the plan has answered: the leader must be among them. A member left
        // out (`--blueprint`, a node not ready) or failed may be the leader.
        let complete = idx.len() >= in_plan.get(&component).copied().unwrap_or(0);
        loop {
            let list: Vec<(String, String)> = idx
                .iter()
                .map(|&i| {
                    let role = roles
                        .get(&(i, component.clone()))
                        .cloned()
                        .unwrap_or_default();
                    (nodes[i].run.report.node.clone(), role)
                })
                .collect();
            let Some(why) = super::health::ensemble_problem(&list, complete) else {
                break;
            };
            if std::time::Instant::now() >= deadline || walk.cancel.is_cancelled() {
                for &i in &idx {
                    let subject = format!("node.{}", nodes[i].run.report.node);
                    let error = format!(
                        "`{}`: the {component} ensemble is not whole after {} s: {why}",
                        nodes[i].run.report.node,
                        walk.health_timeout.as_secs()
                    );
                    fail(&mut nodes[i], &subject, error, walk);
                }
                break;
            }
            // Still electing: look again in a second.
            tokio::time::sleep(Duration::from_secs(1)).await;
            for &i in &idx {
                if let Ok(answers) = nodes[i].run.quorum_answers().await
                    && let Some(a) = answers.iter().find(|a| a.component == component)
                {
                    roles.insert(
                        (i, component.clone()),
                        a.role.clone().unwrap_or_else(|| "not serving".into()),
                    );
                }
            }
        }
    }
}

/// One round of one node: its session opened on the first, the components applied, and on
/// the last (`last`) whatever is left, the session closed and the outcome reported.
async fn round_of(
    node: &mut Node<'_>,
    components: BTreeSet<String>,
    last: bool,
    rolling: &super::apply::Rolling,
    walk: &Walk<'_>,
) {
    let subject = format!("node.{}", node.run.report.node);
    let step = |detail: &str| walk.reporter.step(&subject, detail);
    if !node.failed && !node.run.begun() {
        walk.reporter.started(&subject, Activity::Bootstrapping);
        if let Err(e) = node
            .run
            .begin(
                walk.operator,
                walk.patience,
                walk.command_timeout,
                !walk.health_timeout.is_zero(),
                &step,
            )
            .await
        {
            fail(node, &subject, e.to_string(), walk);
        }
    }
    if node.failed {
        return;
    }
    let mut now: BTreeSet<String> = components;
    if last {
        now.extend(std::mem::take(&mut node.left));
    } else {
        node.left.retain(|c| !now.contains(c));
    }
    if let Err(e) = node.run.apply(&now, rolling, &step).await {
        fail(node, &subject, e.to_string(), walk);
    }
}

fn fail(node: &mut Node<'_>, subject: &str, error: String, walk: &Walk<'_>) {
    node.failed = true;
    walk.reporter
        .finished(subject, Finish::Failed { error: &error });
    node.run.report.error = Some(error);
}

/// How many nodes of the plan have each component: the members of a quorum, whether this
/// run bootstraps them all or not.
fn members_in_plan(steps: &Steps) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for (_, component) in steps.iter().flatten() {
        *count.entry(component.clone()).or_insert(0) += 1;
    }
    count
}

/// The graph's bootstrap steps and barriers, with the edges among them; for each vertex its
/// node and component, `None` for a barrier. Resources are left out: they exist by now.
type Steps = Vec<Option<(String, String)>>;

fn bootstrap_dag(graph: &ResourceGraph) -> (DiGraph<(), ()>, Steps) {
    let mut dag = DiGraph::new();
    let mut steps = Vec::new();
    let mut map: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    for &v in &graph.order {
        let step = match &graph.graph[v].kind {
            StepKind::Bootstrap { node, component } => Some((node.clone(), component.clone())),
            StepKind::Barrier => None,
            StepKind::Resource(_) => continue,
        };
        map.insert(v, dag.add_node(()));
        steps.push(step);
    }
    for e in graph.graph.edge_references() {
        if let (Some(&a), Some(&b)) = (map.get(&e.source()), map.get(&e.target())) {
            dag.add_edge(a, b, ());
        }
    }
    (dag, steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::{CheckOptions, check};

    /// The local example's bootstrap order, as the walk reads it from the graph.
    #[test]
    fn zookeeper_everywhere_comes_before_any_mesos_master() {
        let checked = check(&CheckOptions {
            path: concat!(env!("CARGO_MANIFEST_DIR"), "/fittings/mesos-local.yaml").into(),
            targets: Vec::new(),
            replace: Vec::new(),
            parameter_files: Vec::new(),
            parameters: BTreeMap::new(),
            provider: None,
            blueprints: Vec::new(),
            region: None,
        })
        .unwrap();
        let (dag, steps) = bootstrap_dag(&checked.graph);
        let find = |node: &str, component: &str| {
            steps
                .iter()
                .position(|s| s.as_ref().is_some_and(|(n, c)| n == node && c == component))
                .map(NodeIndex::new)
                .unwrap_or_else(|| panic!("no bootstrap.{node}.{component}"))
        };
        let masters = ["master1", "master2", "master3"];
        for m in masters {
            for other in masters {
                let zk = find(other, "zookeeper");
                let mesos = find(m, "mesos-master");
                assert!(
                    petgraph::algo::has_path_connecting(&dag, zk, mesos, None),
                    "mesos-master on {m} does not wait for zookeeper on {other}"
                );
            }
            assert!(petgraph::algo::has_path_connecting(
                &dag,
                find(m, "common"),
                find(m, "zookeeper"),
                None
            ));
        }
        // The hardened sshd is a step too: the graph has what bootstrap applies.
        find("agent1", "sshd");
        // The ensemble's members, whichever of them a run bootstraps.
        let members = members_in_plan(&steps);
        assert_eq!(members["zookeeper"], 3);
        assert_eq!(members["docker"], 2);
        assert!(petgraph::algo::has_path_connecting(
            &dag,
            find("master2", "mesos-master"),
            find("agent1", "mesos-agent"),
            None
        ));
    }
}
