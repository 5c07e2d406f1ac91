//! What `plan` prints beyond the plan itself: the dry run with its refresh messages, and
//! `--diff`'s file diffs.

use super::{Failure, error_chain, runtime};
use crate::operations::{self, Checked, OperationError, Workspace, inspect};
use crate::plan;

/// `plan` and `deploy --dry-run`: what deploy would do, reading only, and the stored state's
/// lineage and serial it was made against. A refresh that cannot reach a provider points at
/// `--no-refresh`.
pub(super) fn dry_run(
    checked: &Checked,
    ws: &Workspace,
    refresh: bool,
    insecure: bool,
) -> Result<(plan::Plan, Option<(String, u64)>), Failure> {
    let result = runtime()?
        .block_on(inspect::dry_run(checked, ws, refresh, insecure))
        .map_err(|e| match e {
            e @ (OperationError::Provider(_) | OperationError::Apply(_)) => {
                Failure::Message(format!(
                    "{}\n  = help: `plan --no-refresh` compares with the state file alone, offline",
                    error_chain(&e)
                ))
            }
            e => e.into(),
        })?;
    for address in &result.gone {
        errln!("{}", gone(checked, address, "deploy will create it again"));
    }
    Ok((result.plan, result.against))
}

/// `plan --diff`: what bootstrap would change in each node's files, as unified diffs.
pub(super) fn file_diffs(checked: &Checked, ws: &Workspace) -> Result<String, Failure> {
    use std::fmt::Write as _;
    let Some(state) = ws.read_state(&checked.fittings.deployment)? else {
        return Ok(String::new());
    };
    let mut not_asked = Vec::new();
    let nodes = runtime()?.block_on(operations::drift::nodes(
        checked,
        ws,
        &state,
        true,
        &mut not_asked,
    ))?;
    let mut out = String::from(
        "\nFiles bootstrap would change (as on the node, then as fitter renders it):\n",
    );
    let mut any = false;
    for n in &nodes {
        for f in &n.files {
            any = true;
            out.push_str(f.diff.as_deref().unwrap_or(""));
        }
        if let Some(e) = &n.error {
            let _ = writeln!(out, "{}: not read: {e}", n.node);
        }
    }
    for (node, why) in &not_asked {
        let _ = writeln!(out, "{node}: not asked: {why}");
    }
    if !any {
        out.push_str("  none: every file on the nodes asked is as fitter renders it.\n");
    }
    Ok(out)
}

/// What a refresh that found `address` gone from its provider means: created again if the
/// plan still has it, else only forgotten (it was on its way out anyway).
pub(super) fn gone(checked: &Checked, address: &str, again: &str) -> String {
    if checked.graph.resources().any(|r| r.address == address) {
        format!("`{address}` is gone from its provider; {again}.")
    } else {
        format!("`{address}` is gone from its provider and no longer in the plan: it is forgotten.")
    }
}
