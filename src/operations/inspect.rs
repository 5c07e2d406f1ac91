//! The read-only operations: `plan` (and `deploy --dry-run`), and what `information`,
//! `inventory` and `ssh` read. None of them writes the state or calls a provider's write.

use std::path::PathBuf;
use std::time::Duration;

use super::{Checked, OperationError, Workspace, catalog, connect_providers};
use crate::apply;
use crate::information::{self, Information};
use crate::plan::{self, Plan};
use crate::state;

/// A plan computed without changing anything, and what the refresh found gone.
pub struct DryRun {
    pub plan: Plan,
    /// Recorded resources their provider no longer has (deploy would create them again).
    pub gone: Vec<String>,
    /// The stored state's lineage and serial (`None`: never deployed), for a saved plan.
    pub against: Option<(String, u64)>,
    /// Recorded resources changed outside fitter, with what changed.
    pub drifted: std::collections::BTreeMap<String, Vec<String>>,
}

/// What `deploy` would do: the plan against the state, refreshed from the providers unless
/// `refresh` is false. Reads only; a plan against an empty state needs no credentials.
pub async fn dry_run(
    checked: &Checked,
    workspace: &Workspace,
    refresh: bool,
    allow_insecure_http: bool,
) -> Result<DryRun, OperationError> {
    let mut recorded = workspace.read_state(&checked.fittings.deployment)?;
    let against = recorded.as_ref().map(|s| (s.lineage.clone(), s.serial));
    let mut gone = Vec::new();
    let mut drifted = std::collections::BTreeMap::new();
    if let Some(state) = recorded.as_mut()
        && refresh
        && !state.resources.is_empty()
    {
        let providers = connect_providers(
            &checked.fittings,
            Duration::from_secs(600),
            allow_insecure_http,
        )
        .await?;
        gone = apply::gone(state, &providers).await?;
        for address in &gone {
            state.resources.remove(address);
        }
        drifted = apply::drifted(state, &providers, &[]).await?;
    }
    let key_change =
        workspace.key_change(recorded.as_ref().and_then(|s| s.operator.as_ref()), false)?;
    let empty = state::State::new(&checked.fittings.deployment);
    let replace = super::deploy::replacements(
        &checked.replace,
        key_change.as_ref(),
        recorded.as_ref().unwrap_or(&empty),
    );
    let mut the_plan = plan::diff_full(&checked.graph, recorded.as_ref(), &replace, &drifted);
    the_plan.bootstrap = plan::bootstrap_plan(&checked.fittings, &catalog()?);
    if let Some(s) = &checked.selection {
        the_plan = s.narrow(the_plan, &checked.graph);
    }
    the_plan.operator_key = key_change;
    Ok(DryRun {
        plan: the_plan,
        gone,
        against,
        drifted,
    })
}

/// What `information`, `inventory` and `ssh` show: the nodes from the state, with the
/// operator's key and the known_hosts file when they exist.
pub struct Report {
    pub information: Information,
    /// The state it was read from (`None`: never deployed).
    pub state: Option<state::State>,
    pub key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

/// Reads the state (never a provider). `absolute`: paths made absolute, for Ansible, which
/// may run from another directory.
pub fn report(
    checked: &Checked,
    workspace: &Workspace,
    absolute: bool,
) -> Result<Report, OperationError> {
    let recorded = workspace.read_state(&checked.fittings.deployment)?;
    let mut key = workspace.existing_key_path(recorded.as_ref().and_then(|s| s.operator.as_ref()));
    let mut known_hosts = Some(workspace.known_hosts.clone()).filter(|k| k.exists());
    if absolute {
        key = key.map(|k| std::fs::canonicalize(&k).unwrap_or(k));
        known_hosts = known_hosts.map(|k| std::fs::canonicalize(&k).unwrap_or(k));
    }
    let information = information::gather(
        &checked.fittings,
        &catalog()?,
        recorded.as_ref(),
        key.as_deref(),
        known_hosts.as_deref(),
    );
    Ok(Report {
        information,
        state: recorded,
        key,
        known_hosts,
    })
}

/// Asks the ready nodes over SSH what they run (`information` without `--offline`): each
/// service's state and its component's health checks, one round trip per node.
pub async fn ask_nodes(
    workspace: &Workspace,
    state: Option<&state::State>,
    information: &mut Information,
) -> Result<(), OperationError> {
    let Some(state) = state else {
        return Ok(());
    };
    match workspace
        .existing_operator_key(state.operator.as_ref())
        .await
    {
        Some(operator) => {
            information::live::survey(information, &catalog()?, state, &operator).await
        }
        None => {
            for n in &mut information.nodes {
                n.not_asked = Some("not asked: no operator key to log in with (--ssh-key)".into());
            }
        }
    }
    Ok(())
}

/// The known_hosts file, written again from the state when it is missing (`ssh`).
pub fn ensure_known_hosts(
    checked: &Checked,
    workspace: &Workspace,
) -> Result<PathBuf, OperationError> {
    if !workspace.known_hosts.exists() {
        let deployment = &checked.fittings.deployment;
        let recorded = workspace
            .store
            .read(deployment)?
            .unwrap_or_else(|| state::State::new(deployment));
        workspace.write_known_hosts(&recorded)?;
    }
    Ok(workspace.known_hosts.clone())
}
