//! The engine: runs the steps of a graph in dependency order, many at a time.
//!
//! A ready queue and a limit, as cargo's `DependencyQueue` and Terraform's graph walk have it:
//! a step starts once every step it waits for has succeeded, at most `parallelism` run at
//! once, and ready steps start in a fixed order (smallest vertex first) so that a run is
//! repeatable. When a step fails, every step that waits for it, directly or not, is skipped
//! and names the failure as its cause; steps on independent branches carry on. When the
//! cancellation token fires (Ctrl-C), no new step starts, the running ones finish, and the
//! rest are reported as not started.
//!
//! The engine knows nothing of clouds: the caller's closure does the work of a step and
//! saves what it created before it returns.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef as _;
use tokio_util::sync::CancellationToken;

/// What became of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<E> {
    Succeeded,
    Failed(E),
    /// A step it waits for failed: that one, not this one, is the cause to report.
    Skipped {
        failed: NodeIndex,
    },
    /// The run was cancelled before this step could start.
    NotStarted,
    /// The caller asked for a subset of the graph and this step was not in it.
    NotSelected,
}

impl<E> Outcome<E> {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded | Outcome::NotSelected)
    }
}

/// Runs `step` for every selected vertex of `graph`, after the vertices it waits for.
///
/// `selected[v]` says whether vertex `v` has work to do; an unselected vertex counts as
/// already done (a resource with no change). Returns one outcome per vertex.
pub async fn walk<N, W, E, F, Fut>(
    graph: &DiGraph<N, W>,
    selected: &[bool],
    parallelism: usize,
    cancel: &CancellationToken,
    mut step: F,
) -> Vec<Outcome<E>>
where
    F: FnMut(NodeIndex) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    walk_rounds(
        graph,
        selected,
        parallelism,
        cancel,
        |round: &[NodeIndex]| round.iter().map(|&v| step(v)).collect(),
    )
    .await
}

/// [`walk`], with the steps that become ready together handed over together.
///
/// Each time the engine starts work it calls `start` once with every step it starts in that
/// round (in vertex order) and expects one future per step, in the same order. A round is
/// decided by the graph alone: the steps whose last prerequisite has just finished (or, at
/// the start, those with none), so the same plan gives the same rounds on any machine,
/// however fast or slow its calls are. The apply stage uses this to give a batching
/// provider every create that is ready at once (DigitalOcean: ten droplets a call) without
/// waiting on a clock.
pub async fn walk_rounds<N, W, E, F, Fut>(
    graph: &DiGraph<N, W>,
    selected: &[bool],
    parallelism: usize,
    cancel: &CancellationToken,
    mut start: F,
) -> Vec<Outcome<E>>
where
    F: FnMut(&[NodeIndex]) -> Vec<Fut>,
    Fut: Future<Output = Result<(), E>>,
{
    let count = graph.node_count();
    let parallelism = parallelism.max(1);
    let mut outcome: Vec<Option<Outcome<E>>> = (0..count)
        .map(|i| {
            if selected.get(i).copied().unwrap_or(false) {
                None
            } else {
                Some(Outcome::NotSelected)
            }
        })
        .collect();
    // Only selected predecessors hold a step back.
    let mut waiting_on = vec![0usize; count];
    for e in graph.edge_references() {
        if outcome[e.source().index()].is_none() {
            waiting_on[e.target().index()] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count)
        .filter(|&i| outcome[i].is_none() && waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut running = FuturesUnordered::new();

    loop {
        let mut round = Vec::new();
        while running.len() + round.len() < parallelism && !cancel.is_cancelled() {
            let Some(Reverse(i)) = ready.pop() else { break };
            round.push(NodeIndex::new(i));
        }
        if !round.is_empty() {
            let futures = start(&round);
            debug_assert_eq!(
                futures.len(),
                round.len(),
                "the engine's caller must give one future per step of a round"
            );
            for (v, fut) in round.into_iter().zip(futures) {
                running.push(async move { (v, fut.await) });
            }
        }
        let Some((v, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(()) => {
                outcome[v.index()] = Some(Outcome::Succeeded);
                for next in graph.neighbors_directed(v, Direction::Outgoing) {
                    let w = &mut waiting_on[next.index()];
                    *w = w.saturating_sub(1);
                    if *w == 0 && outcome[next.index()].is_none() {
                        ready.push(Reverse(next.index()));
                    }
                }
            }
            Err(e) => {
                outcome[v.index()] = Some(Outcome::Failed(e));
                skip_dependents(graph, v, &mut outcome);
            }
        }
    }
    outcome
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::NotStarted))
        .collect()
}

/// Marks everything downstream of `failed` as skipped because of it.
fn skip_dependents<N, W, E>(
    graph: &DiGraph<N, W>,
    failed: NodeIndex,
    outcome: &mut [Option<Outcome<E>>],
) {
    let mut todo: Vec<NodeIndex> = graph
        .neighbors_directed(failed, Direction::Outgoing)
        .collect();
    while let Some(v) = todo.pop() {
        if outcome[v.index()].is_none() {
            outcome[v.index()] = Some(Outcome::Skipped { failed });
            todo.extend(graph.neighbors_directed(v, Direction::Outgoing));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn failures_skip_dependents_and_spare_other_branches() {
        // 0 -> 1 -> 2, 3 -> 4; 1 fails.
        let mut g: DiGraph<(), ()> = DiGraph::new();
        let n: Vec<_> = (0..5).map(|_| g.add_node(())).collect();
        g.add_edge(n[0], n[1], ());
        g.add_edge(n[1], n[2], ());
        g.add_edge(n[3], n[4], ());
        let ran = Mutex::new(Vec::new());
        let out = walk(&g, &[true; 5], 2, &CancellationToken::new(), |v| {
            ran.lock().unwrap().push(v.index());
            async move { if v.index() == 1 { Err("boom") } else { Ok(()) } }
        })
        .await;
        assert_eq!(out[1], Outcome::Failed("boom"));
        assert_eq!(out[2], Outcome::Skipped { failed: n[1] });
        assert_eq!(out[4], Outcome::Succeeded);
        assert!(!ran.lock().unwrap().contains(&2));
    }

    #[tokio::test]
    async fn steps_ready_together_start_in_one_round_whatever_the_timing() {
        // 0 -> {2, 3, 4}, 1 -> {2, 3, 4}: 2, 3 and 4 become ready together once both 0 and 1
        // are done, whichever finishes first and however long it takes.
        let mut g: DiGraph<(), ()> = DiGraph::new();
        let n: Vec<_> = (0..5).map(|_| g.add_node(())).collect();
        for from in [n[0], n[1]] {
            for to in [n[2], n[3], n[4]] {
                g.add_edge(from, to, ());
            }
        }
        for slow in [0usize, 1] {
            let rounds = Mutex::new(Vec::new());
            let out = walk_rounds(&g, &[true; 5], 8, &CancellationToken::new(), |round| {
                rounds
                    .lock()
                    .unwrap()
                    .push(round.iter().map(|v| v.index()).collect::<Vec<_>>());
                round
                    .iter()
                    .map(|v| {
                        let yields = if v.index() == slow { 20 } else { 0 };
                        async move {
                            for _ in 0..yields {
                                tokio::task::yield_now().await;
                            }
                            Ok::<(), ()>(())
                        }
                    })
                    .collect()
            })
            .await;
            assert!(out.iter().all(|o| *o == Outcome::Succeeded));
            assert_eq!(*rounds.lock().unwrap(), vec![vec![0, 1], vec![2, 3, 4]]);
        }
    }

    #[tokio::test]
    async fn cancellation_lets_running_steps_finish_and_starts_nothing_new() {
        let mut g: DiGraph<(), ()> = DiGraph::new();
        for _ in 0..6 {
            g.add_node(());
        }
        let cancel = CancellationToken::new();
        let started = AtomicUsize::new(0);
        let out = walk(&g, &[true; 6], 2, &cancel, |_| {
            started.fetch_add(1, Ordering::SeqCst);
            let cancel = cancel.clone();
            async move {
                cancel.cancel();
                tokio::task::yield_now().await;
                Ok::<(), ()>(())
            }
        })
        .await;
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert_eq!(out.iter().filter(|o| **o == Outcome::Succeeded).count(), 2);
        assert_eq!(out.iter().filter(|o| **o == Outcome::NotStarted).count(), 4);
    }
}
