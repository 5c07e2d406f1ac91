//! `dispose`: destroy everything the deployment owns, what the state records and anything
//! else its providers find carrying the deployment's mark.

use std::sync::Arc;

use fitter_providers::ProviderKind;

use super::deploy::{ApplyOptions, Deployment};
use super::{Checked, OperationError};
use crate::apply;
use crate::plan::{self, Plan};

impl Deployment {
    /// Takes into the state what carries the deployment's mark but is not recorded, and
    /// returns their addresses with the plan that destroys everything.
    pub async fn plan_dispose(
        &mut self,
        checked: &Checked,
    ) -> Result<(Vec<String>, Plan), OperationError> {
        let mut kinds: Vec<ProviderKind> = checked
            .fittings
            .locations
            .iter()
            .map(|l| l.provider)
            .collect();
        kinds.sort();
        kinds.dedup();
        let adopted = apply::adopt_orphans(&mut self.state, &self.providers, &kinds).await?;
        let the_plan = plan::destroy_all(&checked.fittings.deployment, self.state.state());
        Ok((adopted, the_plan))
    }

    /// Destroys what the plan says (confirmed by the caller). Once nothing is left, the
    /// known_hosts file goes too.
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
        };
        let report = apply::apply(
            the_plan,
            &checked.graph,
            &self.providers,
            &mut self.state,
            &apply_options,
        )
        .await;
        if report.failed() == 0 {
            let _ = std::fs::remove_file(&self.workspace.known_hosts);
        }
        Ok(report)
    }
}
