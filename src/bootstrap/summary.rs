//! The lines printed after a bootstrap run: one per node, then a total.

use std::fmt::Write as _;

use super::NodeReport;

/// The summary lines of a bootstrap run.
pub fn render_report(reports: &[NodeReport]) -> String {
    let mut out = String::new();
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
    let removed = match removed {
        0 => String::new(),
        n => format!(", {n} file{} removed", crate::diagnostics::plural(n)),
    };
    let _ = writeln!(
        out,
        "Bootstrap: {files} file{} uploaded{removed}, {restarts} service{} restarted, {} node{} failed.",
        crate::diagnostics::plural(files),
        crate::diagnostics::plural(restarts),
        reports.iter().filter(|r| r.error.is_some()).count(),
        crate::diagnostics::plural(reports.iter().filter(|r| r.error.is_some()).count()),
    );
    out
}
