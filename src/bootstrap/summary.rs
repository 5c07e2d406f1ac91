//! The lines printed after a bootstrap run: one per node, then a total.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::NodeReport;

/// The summary lines of a bootstrap run.
pub fn render_report(reports: &[NodeReport], not_ready: &[String]) -> String {
    let mut out = String::new();
    for node in not_ready {
        let _ = writeln!(out, "bootstrap {node}: skipped: the node is not ready");
    }
    let (mut files, mut removed, mut restarts) = (0, 0, 0);
    for r in reports {
        let health = if r.health.is_empty() || r.error.is_some() {
            String::new()
        } else {
            format!(" ({})", r.health.join(", "))
        };
        match &r.error {
            Some(e) => {
                let _ = writeln!(out, "bootstrap {}: failed: {e}", r.node);
            }
            None if r.uploaded.is_empty() && r.restarted.is_empty() && r.removed.is_empty() => {
                let _ = writeln!(out, "bootstrap {}: no change{health}", r.node);
            }
            None => {
                let removed = match r.removed.len() {
                    0 => String::new(),
                    n => format!(", {n} file{} removed", crate::diagnostics::plural(n)),
                };
                let _ = writeln!(
                    out,
                    "bootstrap {}: {} file{} uploaded{removed}{}{}{health}",
                    r.node,
                    r.uploaded.len(),
                    crate::diagnostics::plural(r.uploaded.len()),
                    if r.restarted.is_empty() {
                        ""
                    } else {
                        ", restarted "
                    },
                    r.restarted.join(", ")
                );
            }
        }
        files += r.uploaded.len();
        removed += r.removed.len();
        restarts += r.restarted.len();
    }
    // Quorum components restarted one node at a time: in which order.
    let mut rolled: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
    for r in reports {
        for (component, turn) in &r.rolled {
            rolled
                .entry(component.as_str())
                .or_default()
                .push((*turn, r.node.as_str()));
        }
    }
    for (component, mut order) in rolled {
        order.sort();
        let names: Vec<&str> = order.iter().map(|(_, n)| *n).collect();
        let _ = writeln!(
            out,
            "{component} restarted one node at a time, each serving again before the next: {}",
            names.join(", then ")
        );
    }
    let removed = match removed {
        0 => String::new(),
        n => format!(", {n} file{} removed", crate::diagnostics::plural(n)),
    };
    // Nodes that could not even be reached are not "0 failed": they count, apart.
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    let skipped = match not_ready.len() {
        0 => String::new(),
        n => format!(", {n} not ready (not bootstrapped)"),
    };
    let _ = writeln!(
        out,
        "Bootstrap: {files} file{} uploaded{removed}, {restarts} service{} restarted, {failed} node{} failed{skipped}.",
        crate::diagnostics::plural(files),
        crate::diagnostics::plural(restarts),
        crate::diagnostics::plural(failed),
    );
    out
}
