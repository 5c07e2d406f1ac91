//! `dispose`: destroy everything the deployment owns, what the state records and anything
//! else its providers find carrying the deployment's mark; and `dispose --dry-run`, the
//! same list read without changing anything.
//!
//! **Protection.** `destroy: never` (plumbery's key; Terraform's `prevent_destroy`) keeps
//! a node or network, and everything it needs, from being destroyed by dispose or replaced
//! by deploy; `running: always` keeps deploy from stopping a node (a resize that powers a
//! droplet off, a container restarted to change its nesting, a replace).
//! `--force-protected` overrides both for one command. To give up a resource for good,
//! take the key out of the plan.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fitter_providers::ProviderKind;

use super::deploy::{ApplyOptions, Deployment};
use super::selection::needs;
use super::{Checked, OperationError, Workspace, connect_providers};
use crate::apply;
use crate::plan::{self, Action, Plan};
use crate::state::State;

/// What `dispose` will do.
pub struct Disposal {
    /// Found carrying the deployment's mark though the state did not know them.
    pub adopted: Vec<String>,
    /// Recorded and protected by `destroy: never`: kept, unless forced.
    pub protected: BTreeSet<String>,
    /// `--force-protected`: the protected are in the plan too.
    pub forced: bool,
    pub plan: Plan,
    /// The state the plan was made from, adopted resources included: the ids and addresses
    /// `--dry-run` shows.
    pub state: State,
}

impl Disposal {
    /// What stays although dispose was asked for everything.
    pub fn kept(&self) -> BTreeSet<String> {
        if self.forced {
            BTreeSet::new()
        } else {
            self.protected.clone()
        }
    }
}

/// The recorded resources `destroy: never` protects: each node or network that says so, and
/// everything it needs (its network, firewall, key, tag), which cannot go while it stays.
pub fn protected(checked: &Checked, state: &State) -> BTreeSet<String> {
    let fittings = &checked.fittings;
    let nodes = fittings.nodes.iter().filter(|n| n.destroy_never);
    let networks = fittings.networks.iter().filter(|n| n.destroy_never);
    let never = nodes
        .map(|n| format!("node.{}", n.name.value))
        .chain(networks.map(|n| format!("network.{}", n.name.value)));
    let mut kept = needs(&checked.graph, never);
    kept.retain(|a| state.resources.contains_key(a));
    kept
}

/// The changes of a deploy plan that would destroy a protected resource (a replace, or a
/// delete), with why each is replaced, and those that would stop a node that says
/// `running: always` (a resize that powers a droplet off, a container restarted, a
/// replace). Deploy refuses such a plan without `--force-protected`.
pub fn destroys_protected(checked: &Checked, state: &State, the_plan: &Plan) -> Vec<String> {
    let protected = protected(checked, state);
    let always_running: BTreeSet<String> = checked
        .fittings
        .nodes
        .iter()
        .filter(|n| n.running_always)
        .map(|n| format!("node.{}", n.name.value))
        .collect();
    let destroyed = |c: &&plan::Change| {
        matches!(c.action, Action::Replace | Action::Delete) && protected.contains(&c.address)
    };
    let mut refused: Vec<String> = the_plan
        .changes
        .iter()
        .filter(destroyed)
        .map(|c| match c.action {
            Action::Replace => format!(
                "`{}` would be replaced (destroyed, then created again): {} cannot change in place",
                c.address,
                c.replace_because.join(", ")
            ),
            _ => format!("`{}` would be destroyed", c.address),
        })
        .collect();
    for c in the_plan
        .changes
        .iter()
        .filter(|c| always_running.contains(&c.address))
    {
        let stops = match (c.action, &c.disruption) {
            (Action::Update, Some(d)) => Some(d.clone()),
            (Action::Replace, _) => Some("it would be replaced".to_string()),
            _ => None,
        };
        if let Some(why) = stops.filter(|_| !destroyed(&c)) {
            refused.push(format!("`{}` says `running: always`, but {why}", c.address));
        }
    }
    refused
}

/// The destroy plan for `state` (with what was adopted or would be): everything but what
/// is protected (unless `forced`) and what `--blueprint` leaves out.
fn disposal(checked: &Checked, state: State, adopted: Vec<String>, forced: bool) -> Disposal {
    let protected = protected(checked, &state);
    let mut untouched = if forced {
        BTreeSet::new()
    } else {
        protected.clone()
    };
    // `--blueprint`: what the selection does not dispose of stays too, unsaid.
    if let Some(selection) = &checked.selection {
        let scope = selection.dispose_scope(&checked.graph, &state);
        let outside = state.resources.keys().filter(|a| !scope.contains(*a));
        untouched.extend(outside.cloned());
    }
    let the_plan = plan::destroy_all(&checked.fittings.deployment, &state, &untouched);
    Disposal {
        adopted,
        protected,
        forced,
        plan: the_plan,
        state,
    }
}

fn provider_kinds(checked: &Checked) -> Vec<ProviderKind> {
    let mut kinds: Vec<ProviderKind> = checked
        .fittings
        .locations
        .iter()
        .map(|l| l.provider)
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// `dispose --dry-run`: what dispose would destroy, read from the state and the providers
/// (refreshed, orphans found) without writing either, and without taking the lock.
pub async fn dry_run(
    checked: &Checked,
    workspace: &Workspace,
    forced: bool,
    allow_insecure_http: bool,
) -> Result<Disposal, OperationError> {
    let deployment = &checked.fittings.deployment;
    let mut state = workspace
        .read_state(deployment)?
        .unwrap_or_else(|| State::new(deployment));
    let providers = connect_providers(
        &checked.fittings,
        Duration::from_secs(600),
        allow_insecure_http,
    )
    .await?;
    for address in apply::gone(&state, &providers).await? {
        state.resources.remove(&address);
    }
    let mut adopted = Vec::new();
    for (address, record) in apply::orphans(&state, &providers, &provider_kinds(checked)).await? {
        state.resources.insert(address.clone(), record);
        adopted.push(address);
    }
    Ok(disposal(checked, state, adopted, forced))
}

impl Deployment {
    /// Takes into the state what carries the deployment's mark but is not recorded, and
    /// plans the destruction of everything but what `destroy: never` protects (unless
    /// `forced`).
    pub async fn plan_dispose(
        &mut self,
        checked: &Checked,
        forced: bool,
    ) -> Result<Disposal, OperationError> {
        let adopted =
            apply::adopt_orphans(&mut self.state, &self.providers, &provider_kinds(checked))
                .await?;
        Ok(disposal(
            checked,
            self.state.state().clone(),
            adopted,
            forced,
        ))
    }

    /// Destroys what the plan says (confirmed by the caller). Once nothing is left (nothing
    /// kept by `destroy: never`), the known_hosts file goes too.
    pub async fn dispose(
        &mut self,
        checked: &Checked,
        the_plan: &Plan,
        options: &ApplyOptions,
    ) -> Result<apply::Report, OperationError> {
        let apply_options = apply::Options {
            parallelism: options.parallelism,
            cancel: options.cancel.clone(),
            // Deletes log into no node: the deployment's key if it is at hand, else one of
            // this run only (never a key made and left behind for dispose).
            operator: match self
                .workspace
                .existing_operator_key(self.state.state().operator.as_ref())
                .await
            {
                Some(key) => key,
                None => crate::ssh::OperatorKey::ephemeral()?,
            },
            ssh_patience: options.ssh_timeout,
            probe_ssh: false,
            limit: Vec::new(),
            reporter: Arc::clone(&options.reporter),
            host_keys: Default::default(),
            team_keys: Vec::new(),
        };
        let report = apply::apply(
            the_plan,
            &checked.graph,
            &self.providers,
            &mut self.state,
            &apply_options,
        )
        .await;
        if report.failed() == 0 && self.state.state().resources.is_empty() {
            let _ = std::fs::remove_file(&self.workspace.known_hosts);
        }
        Ok(report)
    }
}
