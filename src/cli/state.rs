//! `fitter state ...` and `fitter force-unlock`: look at and repair a deployment's state,
//! and move it between stores, Terraform's way.
//!
//! - `list` prints addresses, one a line (for scripts); `show` one resource as JSON with
//!   its private host key left out.
//! - `rm` forgets resources without destroying them; `mv` records one under another
//!   address. Both take the lock and save a new version, as any change does.
//! - `pull` prints the state as stored: its secrets stay sealed when they are. `push FILE`
//!   stores a pulled state (or an errored-state file) as the next version, keeping its
//!   serial and lineage; it refuses another lineage, an older serial, or an errored state
//!   written over since, unless `--force`. Moving a deployment from its file to
//!   PostgreSQL is `state pull --backend file > s.json` then `state push s.json --backend
//!   postgres://...`.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{Failure, PlanArgs, check, confirm};
use crate::operations::{Checked, OperationError, StoreChoice, Workspace};
use crate::state::{self, StateError};

/// Where the state is kept, and how it is opened: every command that reads or writes it.
#[derive(Debug, Clone, Args)]
pub(crate) struct StateArgs {
    /// State file (default: beside the plan, `NAME.state.json`).
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// Where the state is kept: `file`, or `postgres://USER@HOST[:PORT]/DB[?sslmode=verify-full]`
    /// (password from the URL, `PGPASSWORD` or `~/.pgpass`). Wins over the plan's `backend:`.
    #[arg(
        long,
        env = "FITTER_BACKEND",
        hide_env_values = true,
        value_name = "URL"
    )]
    backend: Option<String>,
    /// How long to wait when another command holds the state's lock (`30s`, `5m`, `0`:
    /// refuse at once).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    lock_timeout: Duration,
    /// A file holding the key that encrypts the state's secrets (default: the
    /// `FITTER_STATE_KEY` variable); at least 16 characters.
    #[arg(long, value_name = "PATH")]
    state_key_file: Option<PathBuf>,
    /// Let a shared store (PostgreSQL) keep the state's secrets unencrypted, without a key.
    #[arg(long)]
    allow_plaintext_secrets: bool,
}

impl StateArgs {
    fn choice(&self) -> StoreChoice {
        StoreChoice {
            state: self.state.clone(),
            backend: self.backend.clone().filter(|b| !b.is_empty()),
            lock_timeout: self.lock_timeout,
            key_file: self.state_key_file.clone(),
            allow_plaintext: self.allow_plaintext_secrets,
        }
    }

    /// The workspace of `checked`'s plan with this store.
    pub(super) fn workspace(
        &self,
        checked: &Checked,
        plan: &PlanArgs,
        ssh_key: Option<PathBuf>,
    ) -> Result<Workspace, OperationError> {
        let mut ws = Workspace::choose(
            &plan.fittings,
            checked.fittings.backend.as_ref().map(|b| b.value.as_str()),
            &self.choice(),
            ssh_key,
        )?;
        // A `keys:` entry that cannot be read is reported by deploy, which needs them.
        ws.team = crate::operations::deploy::team_keys(&checked.fittings).unwrap_or_default();
        Ok(ws)
    }
}

/// `30s`, `5m`, `1h`, `90` (seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: say `30s`, `5m` or `1h`"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{s}` is not a duration: say `30s`, `5m` or `1h`")),
    };
    Ok(Duration::from_secs(seconds))
}

#[derive(Debug, Subcommand)]
pub(crate) enum StateCommand {
    /// The recorded resources' addresses, one a line.
    List {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// One recorded resource, as JSON (its private host key left out).
    Show {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
        /// `node.master1`, `firewall.web`, ...
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Forget resources: fitter stops managing them; they are not destroyed.
    Rm {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
        #[arg(value_name = "ADDRESS", required = true)]
        addresses: Vec<String>,
    },
    /// Record a resource under another address (a node renamed in the plan).
    Mv {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
        #[arg(value_name = "FROM")]
        from: String,
        #[arg(value_name = "TO")]
        to: String,
    },
    /// Print the state as stored (secrets stay sealed) on standard output.
    Pull {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Store the state in FILE (from `state pull`, or an errored-state file) as the next
    /// version, keeping its serial and lineage.
    Push {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Store it even if it is another deployment history's or older than the stored one.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn run(command: StateCommand, quiet: bool) -> Result<ExitCode, Failure> {
    match command {
        StateCommand::List { plan, state } => {
            let (checked, ws) = open(&plan, &state, quiet)?;
            for address in stored(&checked, &ws)?.resources.keys() {
                outln!("{address}");
            }
        }
        StateCommand::Show {
            plan,
            state,
            address,
        } => {
            let (checked, ws) = open(&plan, &state, quiet)?;
            let stored = stored(&checked, &ws)?;
            let mut resource = known(&stored, &address)?.clone();
            resource.outputs.host_key_private = None;
            outln!(
                "{}",
                serde_json::to_string_pretty(&resource).expect("a resource serialises")
            );
        }
        StateCommand::Rm {
            plan,
            state,
            addresses,
        } => {
            let (checked, ws) = open(&plan, &state, quiet)?;
            let mut locked = ws.open_state(&checked.fittings.deployment, "fitter state rm")?;
            for a in &addresses {
                known(locked.state(), a)?;
            }
            locked
                .update(|s| {
                    for a in &addresses {
                        s.resources.remove(a);
                    }
                })
                .map_err(OperationError::from)?;
            for a in &addresses {
                outln!("Removed `{a}` from the state; it is no longer managed, not destroyed.");
            }
        }
        StateCommand::Mv {
            plan,
            state,
            from,
            to,
        } => {
            let (checked, ws) = open(&plan, &state, quiet)?;
            let mut locked = ws.open_state(&checked.fittings.deployment, "fitter state mv")?;
            known(locked.state(), &from)?;
            if locked.state().resources.contains_key(&to) {
                return Err(
                    format!("error: `{to}` is in the state already; `state rm` it first").into(),
                );
            }
            if from.split('.').next() != to.split('.').next() {
                return Err(format!(
                    "error: `{from}` and `{to}` are not the same kind of resource"
                )
                .into());
            }
            locked
                .update(|s| {
                    if let Some(r) = s.resources.remove(&from) {
                        s.resources.insert(to.clone(), r);
                    }
                })
                .map_err(OperationError::from)?;
            outln!("Moved `{from}` to `{to}`.");
        }
        StateCommand::Pull { plan, state } => {
            let (checked, ws) = open(&plan, &state, quiet)?;
            let deployment = &checked.fittings.deployment;
            let Some(stored) = ws.store.read(deployment).map_err(OperationError::from)? else {
                return Err(no_state(&checked, &ws).into());
            };
            outln!(
                "{}",
                serde_json::to_string_pretty(&stored).expect("the state serialises")
            );
        }
        StateCommand::Push {
            plan,
            state,
            file,
            force,
        } => {
            let (checked, mut ws) = open(&plan, &state, quiet)?;
            // The errored-state file is pushed by hand here, not by opening the state.
            let errored = ws.state_options.errored.take();
            let deployment = &checked.fittings.deployment;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("error: cannot read `{}`: {e}", file.display()))?;
            let mut given = state::parse(&text, &format!("`{}`", file.display()), deployment)
                .map_err(OperationError::from)?;
            state::seal::unseal(&mut given, ws.state_options.key.as_deref())
                .map_err(|e| OperationError::from(StateError::from(e)))?;
            let serial = given.serial;
            let mut locked = ws.open_state(deployment, "fitter state push")?;
            locked.replace(given, force).map_err(OperationError::from)?;
            // A pushed errored-state file has done its work.
            let same = |a: &std::path::Path| {
                a.canonicalize()
                    .ok()
                    .is_some_and(|a| file.canonicalize().ok() == Some(a))
            };
            if let Some(errored) = errored.filter(|e| same(e)) {
                let _ = std::fs::remove_file(errored);
            }
            outln!(
                "Pushed `{}` to {} (serial {}, lineage {}).",
                file.display(),
                ws.store.location(),
                locked.state().serial.max(serial),
                locked.state().lineage
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `fitter force-unlock`: says who holds the lock, asks, and frees it.
pub(crate) fn force_unlock(
    checked: &Checked,
    ws: &Workspace,
    yes: bool,
) -> Result<ExitCode, Failure> {
    let deployment = &checked.fittings.deployment;
    let Some(holder) = ws.store.holder(deployment).map_err(OperationError::from)? else {
        outln!(
            "The state of `{deployment}` in {} is not locked.",
            ws.store.location()
        );
        return Ok(ExitCode::SUCCESS);
    };
    errln!("The state of `{deployment}` is locked by {holder}.");
    if !confirm(yes, "end that command's session and free the lock")? {
        errln!("Nothing changed.");
        return Ok(ExitCode::from(1));
    }
    ws.store
        .force_unlock(deployment, &holder)
        .map_err(OperationError::from)?;
    outln!("The lock of `{deployment}` is free.");
    Ok(ExitCode::SUCCESS)
}

fn open(plan: &PlanArgs, state: &StateArgs, quiet: bool) -> Result<(Checked, Workspace), Failure> {
    let checked = check(plan, quiet)?;
    let ws = state.workspace(&checked, plan, None)?;
    Ok((checked, ws))
}

/// The state as stored, its secrets left sealed: `list` and `show` need no key.
fn stored(checked: &Checked, ws: &Workspace) -> Result<state::State, Failure> {
    ws.store
        .read(&checked.fittings.deployment)
        .map_err(OperationError::from)?
        .ok_or_else(|| no_state(checked, ws).into())
}

fn no_state(checked: &Checked, ws: &Workspace) -> String {
    format!(
        "error: no state of deployment `{}` in {}",
        checked.fittings.deployment,
        ws.store.location()
    )
}

fn known<'s>(state: &'s state::State, address: &str) -> Result<&'s state::ResourceState, Failure> {
    state.resources.get(address).ok_or_else(|| {
        let known: Vec<&str> = state.resources.keys().map(String::as_str).collect();
        Failure::Message(format!(
            "error: `{address}` is not in the state; it records: {}",
            if known.is_empty() {
                "nothing".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}
