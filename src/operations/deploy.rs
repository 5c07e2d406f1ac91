//! `deploy`: open the deployment, plan, apply, bootstrap, report.
//!
//! Split where the operator decides: [`Deployment::open`] connects the providers, locks the
//! state and reads every recorded resource back; [`Deployment::plan`] says what would
//! change; the CLI shows it and asks; [`Deployment::deploy`] carries it out. The state stays
//! locked from `open` to the end, so what was shown is what is applied.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::keys;
use super::saved::Expected;
use super::{Checked, OperationError, Workspace, catalog, connect_providers};
use crate::apply::{self, Providers};
use crate::bootstrap;
use crate::information::{self, Information};
use crate::plan::{self, Plan};
use crate::report::{Phase, Reporter};
use crate::ssh::OperatorKey;
use crate::state::{LockedState, OperatorRecord, Status};

/// How `deploy` and `dispose` carry out their plan.
#[derive(Clone)]
pub struct ApplyOptions {
    /// Provider calls at once.
    pub parallelism: usize,
    /// Nodes bootstrapped at once.
    pub ssh_parallelism: usize,
    /// How long a new node may take to answer SSH.
    pub ssh_timeout: Duration,
    /// How long one remote command of the bootstrap may take.
    pub command_timeout: Duration,
    /// How long a new cloud server may take to become active.
    pub ready_timeout: Duration,
    /// How long the started services may take to pass their health checks.
    pub health_timeout: Duration,
    /// How many nodes restart services at once (`--serial`).
    pub serial: usize,
    /// Create the infrastructure only: no SSH probe, no bootstrap.
    pub skip_bootstrap: bool,
    /// `--allow-insecure-http`: a plain-http API endpoint on another machine is accepted.
    pub allow_insecure_http: bool,
    /// `--accept-vanished`: when every recorded resource reads as gone, forget them.
    pub accept_vanished: bool,
    /// `--limit`: bootstrap only these nodes (none: every node in scope).
    pub limit: Vec<String>,
    /// `--revoke-old-key`: a key rotation also removes the old key from the nodes.
    pub revoke_old_key: bool,
    /// Ctrl-C: no new work starts, running calls finish, the state is saved.
    pub cancel: CancellationToken,
    pub reporter: Arc<dyn Reporter>,
}

/// A deployment opened for change: providers connected, state locked and refreshed.
pub struct Deployment {
    pub workspace: Workspace,
    pub providers: Providers,
    pub state: LockedState,
    /// Recorded resources their provider no longer has, forgotten by the refresh.
    pub gone: Vec<String>,
    /// Recorded resources changed outside fitter, with what changed: the plan updates them.
    pub drifted: BTreeMap<String, Vec<String>>,
}

/// What `deploy` did.
pub struct DeployResult {
    /// The changes applied; `None` when there were none.
    pub applied: Option<apply::Report>,
    /// The bootstrap; `None` with `--skip-bootstrap`.
    pub bootstrap: Option<BootstrapResult>,
    pub information: Information,
}

impl DeployResult {
    /// Whether everything asked for was done.
    pub fn succeeded(&self) -> bool {
        self.applied.as_ref().is_none_or(|r| r.failed() == 0)
            && self
                .bootstrap
                .as_ref()
                .is_none_or(BootstrapResult::succeeded)
    }
}

pub struct BootstrapResult {
    /// Nodes that could not be bootstrapped because they are not ready.
    pub not_ready: Vec<String>,
    pub nodes: Vec<bootstrap::NodeReport>,
}

impl BootstrapResult {
    pub fn succeeded(&self) -> bool {
        self.not_ready.is_empty() && self.nodes.iter().all(|r| r.error.is_none())
    }
}

impl Deployment {
    /// Connects the plan's providers, locks the state and reads every recorded resource
    /// back from its provider, forgetting what is gone. With a saved plan's expectation, a
    /// state other than the one it was made against is refused before anything is written.
    /// `command` names the holder of the state's lock (`fitter deploy`), for whoever is
    /// blocked by it.
    pub async fn open(
        checked: &Checked,
        workspace: Workspace,
        command: &str,
        options: &ApplyOptions,
        saved: Option<&Expected>,
    ) -> Result<Deployment, OperationError> {
        let providers = connect_providers(
            &checked.fittings,
            options.ready_timeout,
            options.allow_insecure_http,
        )
        .await?;
        let mut state = workspace.open_state(&checked.fittings.deployment, command)?;
        // A saved plan: the state must be the one it was made against, before anything
        // (the refresh included) writes.
        if let Some(expected) = saved {
            expected.check_state(
                &checked.fittings.deployment,
                &state.state().lineage,
                state.stored_serial(),
            )?;
            state.take_lineage(&expected.lineage);
        }
        options.reporter.phase_started(Phase::Refresh);
        // A saved plan is checked against what deploy would do now before the refresh
        // writes anything (it forgets what is gone): a refusal leaves the state as it was.
        if let Some(expected) = saved {
            let gone = apply::gone(state.state(), &providers).await?;
            let mut now = state.state().clone();
            for a in &gone {
                now.resources.remove(a);
            }
            let drifted = apply::drifted(&now, &providers, &[]).await?;
            if workspace
                .key_change(now.operator.as_ref(), false)?
                .is_some()
            {
                return Err(OperationError::Usage(
                    "a saved plan carries no key rotation: apply it with the deployment's key, then rotate with `deploy --ssh-key`".into(),
                ));
            }
            let replace = replacements(&checked.replace, None, &now);
            expected.check_plan(&planned(checked, &now, &replace, &drifted))?;
        }
        let gone = apply::refresh(&mut state, &providers, options.accept_vanished).await;
        options.reporter.phase_finished(Phase::Refresh);
        Ok(Deployment {
            workspace,
            providers,
            state,
            gone: gone?,
            drifted: BTreeMap::new(),
        })
    }

    /// Reads what was changed outside fitter in the recorded resources, for the plan to put
    /// back (`deploy`; `dispose` needs none of it).
    pub async fn detect_drift(&mut self) -> Result<(), OperationError> {
        self.drifted = apply::drifted(self.state.state(), &self.providers, &[]).await?;
        Ok(())
    }

    /// What deploy would change: addresses assigned (and recorded), the plan against the
    /// refreshed state, and the bootstrap unless skipped.
    pub fn plan(
        &mut self,
        checked: &Checked,
        skip_bootstrap: bool,
        revoke_old_key: bool,
    ) -> Result<Plan, OperationError> {
        let key_change = self
            .workspace
            .key_change(self.state.state().operator.as_ref(), revoke_old_key)?;
        let replace = replacements(&checked.replace, key_change.as_ref(), self.state.state());
        apply::assign_addresses(&checked.graph, &mut self.state)?;
        let mut the_plan = planned(checked, self.state.state(), &replace, &self.drifted);
        if !skip_bootstrap {
            the_plan.bootstrap = plan::bootstrap_plan(&checked.fittings, &catalog()?);
            if let Some(s) = &checked.selection {
                // The bootstrap part narrowed as the resources were.
                the_plan = s.narrow(the_plan, &checked.graph);
            }
        }
        the_plan.operator_key = key_change;
        Ok(the_plan)
    }

    /// Applies the plan (confirmed by the caller), bootstraps every ready node, writes the
    /// known_hosts file and gathers `information`.
    pub async fn deploy(
        &mut self,
        checked: &Checked,
        the_plan: &Plan,
        options: &ApplyOptions,
    ) -> Result<DeployResult, OperationError> {
        // Found (or made) only when something needs it: a run with nothing to do and no
        // bootstrap makes no key.
        let recorded = self.state.state().operator.clone();
        let operator = if the_plan.has_changes() || !options.skip_bootstrap {
            Some(self.workspace.operator_key(recorded.as_ref()).await?)
        } else {
            None
        };
        // Recorded at the first deploy, as the nodes are made with it; a state from before
        // fitter recorded keys gets it once a login proves the nodes take it (bootstrap).
        let mut record_once_proven = false;
        if let Some(operator) = &operator {
            match (&recorded, &the_plan.operator_key) {
                (None, _) if self.reachable().is_empty() => self.record_operator(operator)?,
                (None, _) => record_once_proven = true,
                (Some(old), Some(change)) => {
                    self.rotate(the_plan, old, operator, change.revoke_old, options)
                        .await?
                }
                (Some(_), None) => {}
            }
        }
        let resources_change = !the_plan.changes.is_empty();
        let applied = if let Some(operator) = operator.as_ref().filter(|_| resources_change) {
            let host_keys = self.given_host_keys(checked, operator)?;
            let apply_options = apply::Options {
                host_keys,
                team_keys: team_keys(&checked.fittings)?,
                parallelism: options.parallelism,
                cancel: options.cancel.clone(),
                operator: operator.clone(),
                ssh_patience: options.ssh_timeout,
                probe_ssh: !options.skip_bootstrap,
                limit: options.limit.clone(),
                reporter: Arc::clone(&options.reporter),
            };
            Some(
                apply::apply(
                    the_plan,
                    &checked.graph,
                    &self.providers,
                    &mut self.state,
                    &apply_options,
                )
                .await,
            )
        } else {
            None
        };
        // After Ctrl-C nothing new starts, bootstrap included.
        let bootstrap = match operator
            .as_ref()
            .filter(|_| !options.skip_bootstrap && !options.cancel.is_cancelled())
        {
            Some(operator) => Some(self.bootstrap(checked, operator, options).await?),
            None => None,
        };
        if let (true, Some(operator), Some(b)) = (record_once_proven, &operator, &bootstrap)
            && b.nodes.iter().any(|n| n.error.is_none())
        {
            self.record_operator(operator)?;
        }
        self.workspace.write_known_hosts(self.state.state())?;
        let key = self
            .workspace
            .existing_key_path(self.state.state().operator.as_ref());
        let information = information::gather(
            &checked.fittings,
            &catalog()?,
            Some(self.state.state()),
            key.as_deref(),
            Some(&self.workspace.known_hosts),
        );
        Ok(DeployResult {
            applied,
            bootstrap,
            information,
        })
    }

    /// A key rotation (`keys`): the new key on every node that stays, proven by a login,
    /// then recorded, then (`revoke`) the old one removed.
    async fn rotate(
        &mut self,
        the_plan: &Plan,
        recorded: &OperatorRecord,
        new: &OperatorKey,
        revoke: bool,
        options: &ApplyOptions,
    ) -> Result<(), OperationError> {
        if let Some((address, _)) = self
            .state
            .state()
            .resources
            .iter()
            .find(|(a, r)| a.starts_with("node.") && r.status == Status::Creating)
        {
            return Err(OperationError::Usage(format!(
                "`{address}` is still being created: deploy without --ssh-key first, then rotate the key"
            )));
        }
        let old = self.workspace.recorded_key(recorded).await?;
        // A node the plan destroys (a replace of a broken one) is not asked for anything.
        let going: Vec<&str> = the_plan
            .changes
            .iter()
            .filter(|c| matches!(c.action, plan::Action::Delete | plan::Action::Replace))
            .map(|c| c.address.as_str())
            .collect();
        let mut nodes = self.reachable();
        nodes.retain(|n| !going.contains(&format!("node.{}", n.name).as_str()));
        // A node that stays but cannot be reached now would keep only the old key, which
        // the state would no longer record: refused, naming it.
        let recorded_nodes = self
            .state
            .state()
            .resources
            .keys()
            .filter(|a| a.starts_with("node.") && !going.contains(&a.as_str()));
        for address in recorded_nodes {
            let name = address.trim_start_matches("node.");
            if !nodes.iter().any(|n| n.name == name) {
                return Err(OperationError::Usage(format!(
                    "`{address}` has no address or pinned host key to log in with: the key rotation needs every node that stays; make it ready first (deploy without --ssh-key), or replace it"
                )));
            }
        }
        // The nodes are up: one connection attempt each; a node that does not answer stops
        // the rotation before anything is recorded, the old key still opening every node.
        let (patience, parallelism) = (Duration::ZERO, options.ssh_parallelism);
        keys::add(&nodes, &old, new, patience, parallelism).await?;
        self.record_operator(new)?;
        if revoke {
            keys::revoke(&nodes, &old, new, patience, parallelism).await?;
        }
        Ok(())
    }

    /// Records `operator` as the deployment's key.
    fn record_operator(&mut self, operator: &OperatorKey) -> Result<(), OperationError> {
        let record = OperatorRecord {
            public_key: operator.public_openssh.trim().to_string(),
            path: operator.path.display().to_string(),
        };
        Ok(self.state.update(|s| s.operator = Some(record))?)
    }

    /// The recorded nodes that are ready and have an address and a pinned host key.
    fn reachable(&self) -> Vec<keys::Reachable> {
        let state = self.state.state();
        state
            .resources
            .iter()
            .filter_map(|(address, r)| {
                let name = address.strip_prefix("node.")?;
                let (ip, key) = (r.outputs.address()?, r.outputs.host_key.clone()?);
                (r.status == Status::Ready).then(|| keys::Reachable {
                    name: name.to_string(),
                    address: SocketAddr::new(ip, 22),
                    host_key: key,
                })
            })
            .collect()
    }

    /// The host keys the plan gives its nodes (cloud-config `ssh_keys`), with the secrets
    /// their tokens made saved before any node is created with them.
    fn given_host_keys(
        &mut self,
        checked: &Checked,
        operator: &OperatorKey,
    ) -> Result<BTreeMap<String, crate::ssh::HostKey>, OperationError> {
        let mut secrets = self.state.state().secrets.clone();
        let keys = bootstrap::given_host_keys(
            &checked.fittings,
            &mut secrets,
            Some(&operator.public_openssh),
        )?;
        if secrets != self.state.state().secrets {
            self.state.update(|s| s.secrets = secrets)?;
        }
        Ok(keys)
    }

    /// Renders and applies every ready node's configuration.
    async fn bootstrap(
        &mut self,
        checked: &Checked,
        operator: &OperatorKey,
        options: &ApplyOptions,
    ) -> Result<BootstrapResult, OperationError> {
        let state = self.state.state().clone();
        let mut secrets = state.secrets.clone();
        let (mut targets, mut not_ready) =
            render_targets(checked, &state, &mut secrets, &operator.public_openssh)?;
        if secrets != state.secrets {
            // Saved before any node sees them, so a rerun renders the same values.
            self.state.update(|s| s.secrets = secrets)?;
        }
        let in_scope = checked
            .selection
            .as_ref()
            .map(|s| s.deployed_nodes(&checked.graph));
        let selected = |node: &str| {
            in_scope
                .as_ref()
                .is_none_or(|nodes| nodes.contains(&format!("node.{node}")))
                && (options.limit.is_empty() || options.limit.iter().any(|l| l == node))
        };
        targets.retain(|t| selected(&t.config.node));
        not_ready.retain(|n| selected(n));
        options.reporter.phase_started(Phase::Bootstrap);
        let walk = bootstrap::Walk {
            operator,
            parallelism: options.ssh_parallelism,
            patience: options.ssh_timeout,
            command_timeout: options.command_timeout,
            health_timeout: options.health_timeout,
            serial: options.serial,
            reporter: options.reporter.as_ref(),
            cancel: &options.cancel,
        };
        let nodes = bootstrap::apply(&checked.graph, &targets, &walk).await;
        options.reporter.phase_finished(Phase::Bootstrap);
        Ok(BootstrapResult { not_ready, nodes })
    }
}

/// The resource changes deploy would make against `state`, narrowed to `--blueprint` and
/// `--target`.
fn planned(
    checked: &Checked,
    state: &crate::state::State,
    replace: &BTreeMap<String, String>,
    drifted: &BTreeMap<String, Vec<String>>,
) -> Plan {
    let the_plan = plan::diff_full(&checked.graph, Some(state), replace, drifted);
    match &checked.selection {
        Some(s) => s.narrow(the_plan, &checked.graph),
        None => the_plan,
    }
}

/// What the plan replaces, and why: `--replace` as asked, and with a key rotation the
/// operator's key in the cloud account (`ssh_key.operator` on DigitalOcean and Hetzner), so
/// that the nodes made next are made with the new key.
pub(super) fn replacements(
    asked: &std::collections::BTreeSet<String>,
    rotation: Option<&plan::KeyChange>,
    state: &crate::state::State,
) -> BTreeMap<String, String> {
    let mut replace: BTreeMap<String, String> = asked
        .iter()
        .map(|a| (a.clone(), plan::REQUESTED.to_string()))
        .collect();
    const ACCOUNT_KEY: &str = "ssh_key.operator";
    if rotation.is_some() && state.resources.contains_key(ACCOUNT_KEY) {
        replace
            .entry(ACCOUNT_KEY.to_string())
            .or_insert_with(|| "the operator key changes".to_string());
    }
    replace
}

/// Every node's configuration rendered against `state` (its addresses; its secrets, new
/// ones added to `secrets`), split into the nodes that answer SSH (ready, with an address
/// and a pinned host key) and the names of those that do not.
pub(super) fn render_targets(
    checked: &Checked,
    state: &crate::state::State,
    secrets: &mut BTreeMap<String, String>,
    operator_public: &str,
) -> Result<(Vec<bootstrap::Target>, Vec<String>), OperationError> {
    let mut addresses = BTreeMap::new();
    let mut reachable = BTreeMap::new();
    for node in &checked.fittings.nodes {
        let Some(r) = state.resources.get(&format!("node.{}", node.name.value)) else {
            continue;
        };
        addresses.insert(
            node.name.value.clone(),
            bootstrap::Addresses {
                private: r.outputs.private_ip.map(|ip| ip.to_string()),
                public: r.outputs.public_ip.map(|ip| ip.to_string()),
            },
        );
        if r.status == Status::Ready
            && let (Some(ip), Some(key)) = (r.outputs.address(), r.outputs.host_key.clone())
        {
            reachable.insert(node.name.value.clone(), (SocketAddr::new(ip, 22), key));
        }
    }
    let configs = bootstrap::render(
        &checked.fittings,
        &catalog()?,
        &addresses,
        secrets,
        Some(operator_public),
    )?;
    let mut targets = Vec::new();
    let mut not_ready = Vec::new();
    for config in configs {
        match reachable.remove(&config.node) {
            Some((address, host_key)) => targets.push(bootstrap::Target {
                config,
                address,
                host_key,
            }),
            None => not_ready.push(config.node),
        }
    }
    Ok((targets, not_ready))
}

/// The plan's `keys:`, each a public key or the path of one (`~/.ssh/bob.pub`), as plumbery
/// takes them: authorised on every new node beside the key of the operator running deploy,
/// so that every member of the team reaches the nodes with their own key.
pub(crate) fn team_keys(
    fittings: &crate::fittings::Fittings,
) -> Result<Vec<String>, OperationError> {
    fittings
        .keys
        .iter()
        .map(|k| {
            let v = k.value.trim();
            if ["ssh-", "ecdsa-", "sk-"].iter().any(|p| v.starts_with(p)) {
                return Ok(v.to_string());
            }
            let path = match v.strip_prefix("~/") {
                Some(rest) => std::env::var_os("HOME")
                    .map(|h| std::path::Path::new(&h).join(rest))
                    .unwrap_or_else(|| v.into()),
                None => v.into(),
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|source| OperationError::ReadPlan { path: path.clone(), source })?;
            let text = text.trim();
            // A private key named by mistake (`~/.ssh/bob`) must not go out as user data.
            let public = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| text.starts_with(p));
            if !public || text.contains("PRIVATE KEY") {
                return Err(OperationError::Usage(format!(
                    "`keys:` names `{}`, which is not an OpenSSH public key (`ssh-ed25519 AAAA...`); \
                     name the `.pub` file",
                    path.display()
                )));
            }
            Ok(text.to_string())
        })
        .collect()
}
