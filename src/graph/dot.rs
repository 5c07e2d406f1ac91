//! `fitter graph`: the resource graph in Graphviz DOT.

use std::fmt::Write as _;

use petgraph::visit::EdgeRef;

use petgraph::graph::NodeIndex;

use super::{Reason, ResourceGraph, StepKind};

impl ResourceGraph {
    /// Graphviz DOT. Boxes are resources, ellipses bootstrap steps, dots barriers; an edge
    /// points from what comes first to what waits for it.
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", escape(&self.deployment));
        let _ = writeln!(out, "  rankdir=LR;");
        let _ = writeln!(out, "  node [fontname=\"Helvetica\", fontsize=10];");
        for &i in &self.order {
            let step = &self.graph[i];
            let shape = match step.kind {
                StepKind::Resource(_) => "box",
                StepKind::Bootstrap { .. } => "ellipse",
                StepKind::Barrier => "point",
            };
            let _ = writeln!(
                out,
                "  \"{}\" [shape={shape}, label=\"{}\"];",
                escape(&step.address),
                escape(&step.address)
            );
        }
        let mut edges: Vec<(usize, usize, Reason)> = self
            .graph
            .edge_references()
            .map(|e| {
                let pos = |n: NodeIndex| self.position(n);
                (pos(e.source()), pos(e.target()), e.weight().reason)
            })
            .collect();
        edges.sort_by_key(|(a, b, _)| (*a, *b));
        edges.dedup_by_key(|(a, b, _)| (*a, *b));
        for (a, b, reason) in edges {
            let style = match reason {
                Reason::Needs | Reason::Sequence => "",
                Reason::Reference => " [style=dashed, label=\"reference\"]",
                Reason::DependsOn => " [style=bold, label=\"depends_on\"]",
                Reason::RoleOrder => " [color=gray40]",
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\"{style};",
                escape(&self.graph[self.order[a]].address),
                escape(&self.graph[self.order[b]].address)
            );
        }
        out.push_str("}\n");
        out
    }

    fn position(&self, n: NodeIndex) -> usize {
        self.positions()[n.index()]
    }

    fn positions(&self) -> &[usize] {
        self.positions.get_or_init(|| {
            let mut pos = vec![0; self.order.len()];
            for (p, i) in self.order.iter().enumerate() {
                pos[i.index()] = p;
            }
            pos
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
