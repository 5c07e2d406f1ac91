//! `dispose`: destroy everything the deployment owns, what the state records and anything
//! else its providers find carrying the deployment's mark.

use std::collections::BTreeSet;
use std::sync::Arc;

use fitter_providers::ProviderKind;

use super::deploy::{ApplyOptions, Deployment};
use super::selection::needs;
use super::{Checked, OperationError};
use crate::apply;
use crate::plan::{self, Plan};
use crate::state::State;

/// What `dispose` will do.
pub struct Disposal {
    /// Found carrying the deployment's mark though the state did not know them.
    pub adopted: Vec<String>,
    /// Recorded, and kept: a node with `destroy: never` in the plan and what it needs.
    pub kept: BTreeSet<String>,
    pub plan: Plan,
}

/// The recorded resources `destroy: never` keeps: each node that says so, and everything it
/// needs (its network, firewall, key, tag), which cannot go while it stays. plumbery skips
/// such nodes on dispose; Terraform's `prevent_destroy` is the same promise. To remove one,
/// take the key out of the plan and dispose again.
fn protected(checked: &Checked, state: &State) -> BTreeSet<String> {
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

impl Deployment {
    /// Takes into the state what carries the deployment's mark but is not recorded, and
    /// plans the destruction of everything but what `destroy: never` protects.
    pub async fn plan_dispose(&mut self, checked: &Checked) -> Result<Disposal, OperationError> {
        let mut kinds: Vec<ProviderKind> = checked
            .fittings
            .locations
            .iter()
            .map(|l| l.provider)
            .collect();
        kinds.sort();
        kinds.dedup();
        let adopted = apply::adopt_orphans(&mut self.state, &self.providers, &kinds).await?;
        let kept = protected(checked, self.state.state());
        // `--blueprint`: what the selection does not dispose of stays too, unsaid.
        let mut untouched = kept.clone();
        if let Some(selection) = &checked.selection {
            let scope = selection.dispose_scope(&checked.graph, self.state.state());
            let outside = self
                .state
                .state()
                .resources
                .keys()
                .filter(|a| !scope.contains(*a));
            untouched.extend(outside.cloned());
        }
        let the_plan =
            plan::destroy_all(&checked.fittings.deployment, self.state.state(), &untouched);
        Ok(Disposal {
            adopted,
            kept,
            plan: the_plan,
        })
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
            operator: self.workspace.operator_key().await?,
            ssh_patience: options.ssh_timeout,
            probe_ssh: false,
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
