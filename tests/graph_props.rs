//! Property tests of the graph: random acyclic graphs give a deterministic topological order,
//! and graphs with a cycle give an error naming a real cycle. Checked twice: on bare petgraph
//! graphs through `topological_order`, and on whole plans whose nodes `depends_on` each other.

use std::collections::BTreeMap;

use fitter::components::Catalog;
use fitter::fittings::{self, LoadOptions};
use fitter::graph::{self, GraphError, topological_order};
use petgraph::graph::{DiGraph, NodeIndex};
use proptest::prelude::*;

/// A DAG on `n` vertices: edges go from a lower to a higher rank, and ranks are a shuffle of
/// the vertex indices so that edges do not simply run from low index to high.
fn dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (1usize..40).prop_flat_map(|n| {
        let ranks = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        let edges = proptest::collection::vec((0..n, 0..n), 0..(n * 3));
        (Just(n), ranks, edges).prop_map(|(n, ranks, edges)| {
            let edges = edges
                .into_iter()
                .filter(|(a, b)| a != b)
                .map(|(a, b)| {
                    if a < b {
                        (ranks[a], ranks[b])
                    } else {
                        (ranks[b], ranks[a])
                    }
                })
                .collect();
            (n, edges)
        })
    })
}

fn build(n: usize, edges: &[(usize, usize)]) -> DiGraph<(), ()> {
    let mut g = DiGraph::new();
    for _ in 0..n {
        g.add_node(());
    }
    for &(a, b) in edges {
        g.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
    }
    g
}

proptest! {
    #[test]
    fn acyclic_graphs_order_every_vertex_after_its_dependencies(
        (n, edges) in dag(),
        seed in any::<u64>(),
    ) {
        let g = build(n, &edges);
        let order = topological_order(&g).expect("a DAG has an order");
        prop_assert_eq!(order.len(), n);
        let mut position = vec![usize::MAX; n];
        for (p, v) in order.iter().enumerate() {
            prop_assert_eq!(position[v.index()], usize::MAX, "vertex listed twice");
            position[v.index()] = p;
        }
        for &(a, b) in &edges {
            prop_assert!(position[a] < position[b], "{} must come before {}", a, b);
        }
        // Deterministic: the same edges added in another order give the same order.
        let mut shuffled = edges.clone();
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(topological_order(&build(n, &shuffled)).unwrap(), order);
    }

    #[test]
    fn a_cycle_is_reported_as_a_real_cycle(
        (n, mut edges) in dag(),
        cycle in proptest::collection::vec(0usize..40, 2..6),
    ) {
        // Close a loop through distinct vertices.
        let mut members: Vec<usize> = cycle.into_iter().map(|c| c % n).collect();
        members.dedup();
        members.sort_unstable();
        members.dedup();
        prop_assume!(members.len() >= 2);
        for w in members.windows(2) {
            edges.push((w[0], w[1]));
        }
        edges.push((*members.last().unwrap(), members[0]));
        let g = build(n, &edges);
        let chain = topological_order(&g).expect_err("a cycle has no order");
        prop_assert!(chain.len() >= 3, "a chain names at least two vertices and returns");
        prop_assert_eq!(chain.first(), chain.last());
        let inner = &chain[..chain.len() - 1];
        let mut distinct = inner.to_vec();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(distinct.len(), inner.len(), "a simple cycle");
        for w in chain.windows(2) {
            // Each waits for the next: an edge runs from the next to each.
            prop_assert!(g.find_edge(w[1], w[0]).is_some(), "{:?} is not an edge", (w[1], w[0]));
        }
    }

    /// The same through a whole plan: node `nI` depends on the nodes the edges name.
    #[test]
    fn plans_with_depends_on_order_or_name_the_cycle(
        (n, mut edges) in dag(),
        back_edge in proptest::option::of((0usize..40, 0usize..40)),
    ) {
        if let Some((a, b)) = back_edge {
            edges.push((a % n, b % n));
        }
        let mut plan = String::from("---\ndefaults:\n  provider: lxd\n  ethernet: {name: prop, subnet: 10.40.0.0/16}\n---\nlocationId: local\nblueprints:\n  - prop:\n      nodes:\n");
        for v in 0..n {
            let deps: Vec<String> = edges.iter().filter(|(_, b)| *b == v).map(|(a, _)| format!("n{a}")).collect();
            plan.push_str(&format!("        - n{v}:\n            depends_on: [{}]\n", deps.join(", ")));
        }
        let catalog = Catalog::builtin().unwrap();
        let options = LoadOptions { parameters: BTreeMap::new(), provider: None, catalog: &catalog };
        let loaded = fittings::load("prop.yaml", &plan, &options);
        let f = loaded.fittings.expect("the generated plan is valid");
        let g = build(n, &edges);
        match (graph::build(&f, &catalog), topological_order(&g)) {
            (Ok(rg), Ok(_)) => {
                let again = graph::build(&f, &catalog).unwrap();
                let addresses = |r: &graph::ResourceGraph| r.order.iter().map(|i| r.graph[*i].address.clone()).collect::<Vec<_>>();
                prop_assert_eq!(addresses(&rg), addresses(&again));
                let pos: BTreeMap<String, usize> = addresses(&rg).into_iter().enumerate().map(|(i, a)| (a, i)).collect();
                for &(a, b) in &edges {
                    let (pa, pb) = (pos[&format!("node.n{}", a)], pos[&format!("node.n{}", b)]);
                    prop_assert!(pa < pb);
                }
            }
            (Err(GraphError::Cycle { chain, span }), Err(_)) => {
                prop_assert!(span.is_some(), "the cycle points at a depends_on");
                prop_assert_eq!(chain.first(), chain.last());
                for w in chain.windows(2) {
                    // `node.nA` waits for `node.nB` only if the plan says nA depends_on nB.
                    let a: usize = w[0].trim_start_matches("node.n").parse().unwrap();
                    let b: usize = w[1].trim_start_matches("node.n").parse().unwrap();
                    prop_assert!(edges.contains(&(b, a)), "{} -> {} is not in the plan", w[0], w[1]);
                }
            }
            (built, direct) => prop_assert!(false, "graph::build {:?} disagrees with the bare graph {:?}", built.map(|_| ()), direct.map(|_| ())),
        }
    }
}
