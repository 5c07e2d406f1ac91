//! Property tests of the engine: on random graphs with random failures, every step runs at
//! most once, only after everything it waits for has succeeded, never while more than
//! `parallelism` steps run, and exactly the steps downstream of a failure are skipped.

use std::cell::RefCell;

use fitter::engine::{Outcome, walk};
use petgraph::graph::{DiGraph, NodeIndex};
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Log {
    running: usize,
    max_running: usize,
    /// Every start and finish, in the order they happened.
    started: Vec<usize>,
    finished: Vec<usize>,
    clock: usize,
    started_at: Vec<Option<usize>>,
    finished_at: Vec<Option<usize>>,
}

/// Vertices, edges (low to high index), which steps fail, how long each takes, parallelism.
type Case = (usize, Vec<(usize, usize)>, Vec<bool>, Vec<u8>, usize);

fn dag() -> impl Strategy<Value = Case> {
    (1usize..30).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::vec((0..n, 0..n), 0..n * 2),
            proptest::collection::vec(proptest::bool::weighted(0.15), n),
            proptest::collection::vec(0u8..4, n),
            1usize..5,
        )
            .prop_map(|(n, edges, fails, yields, parallelism)| {
                let edges = edges
                    .into_iter()
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| (a.min(b), a.max(b)))
                    .collect();
                (n, edges, fails, yields, parallelism)
            })
    })
}

/// Walks the graph of `n` vertices and `edges`; step `i` yields `yields[i]` times, then
/// fails when `fails[i]`. Returns the outcomes and the log of starts and finishes.
fn run_walk(
    n: usize,
    edges: &[(usize, usize)],
    fails: &[bool],
    yields: &[u8],
    parallelism: usize,
    selected: &[bool],
) -> (Vec<Outcome<usize>>, Log) {
    let mut g: DiGraph<(), ()> = DiGraph::new();
    for _ in 0..n {
        g.add_node(());
    }
    for &(a, b) in edges {
        g.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
    }
    let log = RefCell::new(Log {
        started_at: vec![None; n],
        finished_at: vec![None; n],
        ..Log::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = rt.block_on(walk(
        &g,
        selected,
        parallelism,
        &CancellationToken::new(),
        |v| {
            let i = v.index();
            {
                let mut l = log.borrow_mut();
                l.started.push(i);
                l.clock += 1;
                l.started_at[i] = Some(l.clock);
                l.running += 1;
                l.max_running = l.max_running.max(l.running);
            }
            let (log, yields, fail) = (&log, yields[i], fails[i]);
            async move {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
                let mut l = log.borrow_mut();
                l.running -= 1;
                l.finished.push(i);
                l.clock += 1;
                l.finished_at[i] = Some(l.clock);
                if fail { Err(i) } else { Ok(()) }
            }
        },
    ));
    (out, log.into_inner())
}

proptest! {
    #[test]
    fn steps_run_once_in_order_within_the_limit((n, edges, fails, yields, parallelism) in dag()) {
        let (out, l) = run_walk(n, &edges, &fails, &yields, parallelism, &vec![true; n]);
        prop_assert!(l.max_running <= parallelism);
        let mut seen = vec![false; n];
        for &s in &l.started {
            prop_assert!(!seen[s], "step {} ran twice", s);
            seen[s] = true;
        }
        // Which steps should have been skipped: those with a failed ancestor.
        let mut doomed = vec![false; n];
        for v in 0..n {
            // Edges go from lower to higher index, so ancestors come first.
            doomed[v] = edges.iter().any(|&(a, b)| b == v && (doomed[a] || fails[a]));
        }
        for v in 0..n {
            match &out[v] {
                // A step that succeeded or failed did run: once, to its end.
                Outcome::Succeeded => prop_assert!(!fails[v] && !doomed[v] && seen[v] && l.finished_at[v].is_some()),
                Outcome::Failed(e) => prop_assert!(fails[v] && !doomed[v] && *e == v && seen[v] && l.finished_at[v].is_some()),
                Outcome::Skipped { failed } => {
                    prop_assert!(doomed[v] && !seen[v]);
                    prop_assert!(fails[failed.index()], "the named cause really failed");
                }
                other => prop_assert!(false, "unexpected outcome {:?}", other),
            }
            if let Some(start) = l.started_at[v] {
                for &(a, b) in &edges {
                    if b == v {
                        let done = l.finished_at[a];
                        prop_assert!(done.is_some_and(|d| d < start), "{} started before {} finished", v, a);
                    }
                }
            }
        }
    }
}

proptest! {
    /// A step with no work (unselected) counts as done: it never runs, holds nothing back,
    /// and a failure does not skip through it (what lies beyond it waits only for work that
    /// is selected). Steps that must hold others back are selected: apply selects its
    /// barriers for that reason.
    #[test]
    fn unselected_steps_never_run_and_hold_nothing_back(
        (n, edges, fails, yields, parallelism) in dag(),
        mask in proptest::collection::vec(proptest::bool::weighted(0.7), 30),
    ) {
        let selected: Vec<bool> = mask[..n].to_vec();
        let (out, l) = run_walk(n, &edges, &fails, &yields, parallelism, &selected);
        // Doomed: a selected step with a selected parent that failed or is doomed.
        let mut doomed = vec![false; n];
        for v in 0..n {
            doomed[v] = selected[v]
                && edges.iter().any(|&(a, b)| b == v && selected[a] && (doomed[a] || fails[a]));
        }
        for v in 0..n {
            if !selected[v] {
                prop_assert_eq!(&out[v], &Outcome::NotSelected);
                prop_assert!(l.started_at[v].is_none(), "unselected step {} ran", v);
                continue;
            }
            match &out[v] {
                Outcome::Succeeded => prop_assert!(!fails[v] && !doomed[v] && l.started_at[v].is_some() && l.finished_at[v].is_some()),
                Outcome::Failed(e) => prop_assert!(fails[v] && !doomed[v] && *e == v && l.started_at[v].is_some() && l.finished_at[v].is_some()),
                Outcome::Skipped { failed } => {
                    prop_assert!(doomed[v] && l.started_at[v].is_none());
                    prop_assert!(selected[failed.index()] && fails[failed.index()]);
                }
                other => prop_assert!(false, "unexpected outcome {:?}", other),
            }
            if let Some(start) = l.started_at[v] {
                for &(a, b) in &edges {
                    if b == v && selected[a] {
                        let done = l.finished_at[a];
                        prop_assert!(done.is_some_and(|d| d < start), "{} started before {} finished", v, a);
                    }
                }
            }
        }
    }
}
