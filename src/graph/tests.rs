use super::*;

#[test]
fn order_ignores_edge_insertion_order() {
    let mut a: DiGraph<(), ()> = DiGraph::new();
    let n: Vec<_> = (0..4).map(|_| a.add_node(())).collect();
    a.add_edge(n[3], n[0], ());
    a.add_edge(n[1], n[2], ());
    let mut b: DiGraph<(), ()> = DiGraph::new();
    let m: Vec<_> = (0..4).map(|_| b.add_node(())).collect();
    b.add_edge(m[1], m[2], ());
    b.add_edge(m[3], m[0], ());
    assert_eq!(topological_order(&a), topological_order(&b));
    let order: Vec<usize> = topological_order(&a)
        .unwrap()
        .iter()
        .map(|i| i.index())
        .collect();
    assert_eq!(order, [1, 2, 3, 0]);
}

#[test]
fn cycle_is_reported_as_a_chain() {
    let mut g: DiGraph<(), ()> = DiGraph::new();
    let n: Vec<_> = (0..4).map(|_| g.add_node(())).collect();
    // 1 waits for 2, 2 waits for 3, 3 waits for 1; 0 waits for 1.
    g.add_edge(n[2], n[1], ());
    g.add_edge(n[3], n[2], ());
    g.add_edge(n[1], n[3], ());
    g.add_edge(n[1], n[0], ());
    let chain: Vec<usize> = topological_order(&g)
        .unwrap_err()
        .iter()
        .map(|i| i.index())
        .collect();
    assert_eq!(chain.first(), chain.last());
    assert_eq!(chain.len(), 4);
    for w in chain.windows(2) {
        assert!(
            g.find_edge(NodeIndex::new(w[1]), NodeIndex::new(w[0]))
                .is_some()
        );
    }
}
