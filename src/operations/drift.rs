//! `plan --refresh-only`: what changed outside fitter, in one report. At the providers: a
//! recorded resource deleted, or changed (a firewall's rules edited: each provider says
//! what it can tell, [`fitter_providers::api::Provider::drift`]). On the nodes: a file fitter
//! placed that differs from what it renders, a service it runs that is not running (the
//! bootstrap probe, read-only). Terraform's `-refresh-only` shows the first half and
//! Ansible's `--check` the second; `deploy` repairs both.
//!
//! Reads only: the state is not locked or written, nothing is changed anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::deploy::render_targets;
use super::{Checked, OperationError, Workspace, connect_providers};
use crate::apply;
use crate::bootstrap::drift::{self, NodeDrift};

/// How long a node may take to accept the connection: one attempt, no retry (a node that is
/// down is reported as not read, not waited for); and how many are asked at once.
const PATIENCE: Duration = Duration::ZERO;
const AT_ONCE: usize = 16;

/// What changed outside fitter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriftReport {
    pub deployment: String,
    /// Recorded resources their provider no longer has.
    pub gone: Vec<String>,
    /// Recorded resources changed at their provider, with what changed.
    pub changed: BTreeMap<String, Vec<String>>,
    /// The nodes asked, with what differs on each.
    pub nodes: Vec<NodeDrift>,
    /// Nodes not asked, with why.
    pub not_asked: Vec<(String, String)>,
}

impl DriftReport {
    /// How many differences it found. A node that could not be read is not one: it is
    /// shown as not read, its state unknown.
    pub fn count(&self) -> usize {
        self.gone.len()
            + self.changed.len()
            + self
                .nodes
                .iter()
                .map(|n| n.files.len() + n.stopped.len())
                .sum::<usize>()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.count() == 0 {
            let _ = writeln!(
                out,
                "No drift: the resources of `{}` and the nodes read are as fitter left them.",
                self.deployment
            );
        } else {
            let _ = writeln!(
                out,
                "Changed outside fitter in `{}` (deploy repairs all of it):\n",
                self.deployment
            );
        }
        for a in &self.gone {
            let _ = writeln!(
                out,
                "  {a}: deleted at its provider; deploy creates it again"
            );
        }
        for (a, what) in &self.changed {
            let _ = writeln!(out, "  {a}: {}; deploy puts it back", what.join("; "));
        }
        for n in &self.nodes {
            if let Some(e) = &n.error {
                let _ = writeln!(out, "  {}: not read: {e}", n.node);
            }
            for f in &n.files {
                let what = if f.missing {
                    "is missing"
                } else {
                    "differs from what fitter renders"
                };
                let _ = writeln!(
                    out,
                    "  {}: {} {what}; deploy uploads it again",
                    n.node, f.path
                );
                if let Some(d) = &f.diff {
                    for line in d.lines() {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
            for (service, state) in &n.stopped {
                let _ = writeln!(
                    out,
                    "  {}: service {service} is not running ({state}); deploy starts it",
                    n.node
                );
            }
        }
        for (node, why) in &self.not_asked {
            let _ = writeln!(out, "  {node}: not asked: {why}");
        }
        if self.count() > 0 {
            let _ = writeln!(
                out,
                "\n{} change{} outside fitter.",
                self.count(),
                crate::diagnostics::plural(self.count())
            );
        }
        out
    }
}

/// Reads the providers and the nodes. `diff`: each differing file's unified diff too.
pub async fn refresh_only(
    checked: &Checked,
    workspace: &Workspace,
    allow_insecure_http: bool,
    diff: bool,
) -> Result<DriftReport, OperationError> {
    let deployment = &checked.fittings.deployment;
    let mut report = DriftReport {
        deployment: deployment.clone(),
        ..DriftReport::default()
    };
    let Some(state) = workspace.read_state(deployment)? else {
        return Ok(report);
    };
    if !state.resources.is_empty() {
        let providers = connect_providers(
            &checked.fittings,
            Duration::from_secs(600),
            allow_insecure_http,
        )
        .await?;
        report.gone = apply::gone(&state, &providers).await?;
        report.changed = apply::drifted(&state, &providers, &report.gone).await?;
    }
    // The nodes' files are compared with what fitter renders from the state as recorded: a
    // node gone is reported above, not again as a changed `/etc/hosts` on the others.
    let mut nodes = nodes(checked, workspace, &state, diff, &mut report.not_asked).await?;
    nodes.retain(|n| !report.gone.contains(&format!("node.{}", n.node)));
    report.nodes = nodes;
    Ok(report)
}

/// On-node drift of the ready nodes; the others go to `not_asked` with why.
pub async fn nodes(
    checked: &Checked,
    workspace: &Workspace,
    state: &crate::state::State,
    diff: bool,
    not_asked: &mut Vec<(String, String)>,
) -> Result<Vec<NodeDrift>, OperationError> {
    let recorded_nodes = state.resources.keys().filter(|a| a.starts_with("node."));
    if recorded_nodes.count() == 0 {
        return Ok(Vec::new());
    }
    let Some(operator) = workspace
        .existing_operator_key(state.operator.as_ref())
        .await
    else {
        not_asked.push((
            "every node".into(),
            "no operator key to log in with (--ssh-key)".into(),
        ));
        return Ok(Vec::new());
    };
    // Rendered with the secrets as recorded; a new one made here is never saved.
    let mut secrets = state.secrets.clone();
    let (targets, not_ready) =
        render_targets(checked, state, &mut secrets, &operator.public_openssh)?;
    for node in not_ready {
        if state.resources.contains_key(&format!("node.{node}")) {
            not_asked.push((node, "not ready, or no address or pinned host key".into()));
        }
    }
    // Never shown in a diff: every secret fitter made, in every form its tokens give, and
    // the parameters given on the command line (a `-p` may be a password).
    let hidden: Vec<String> = secrets
        .values()
        .flat_map(|v| crate::bootstrap::secret_forms(v))
        .chain(checked.parameters.values().cloned())
        .collect();
    Ok(drift::survey(&targets, &operator, PATIENCE, AT_ONCE, diff, &hidden).await)
}
