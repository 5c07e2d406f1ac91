//! The flags several commands share, as clap reads them: the plan and its parameters, the
//! scope (`--target`, `--replace`), the store and the provider calls of a change, and what
//! only `deploy` takes (SSH, bootstrap, health checks).

use std::path::PathBuf;

use clap::Args;
use fitter_providers::{ProviderKind, registry};

use super::state::StateArgs;

/// What `deploy` and `dispose` both take: the store, the provider calls, confirmation.
#[derive(Debug, Args)]
pub(super) struct ApplyArgs {
    #[command(flatten)]
    pub(super) state: StateArgs,
    /// How many provider calls may run at once.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(super) parallelism: usize,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(super) yes: bool,
    /// The operator's SSH private key (default: the one the state records; at the first
    /// deploy `FITTER_SSH_KEY`, `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`, the agent, else one
    /// made for the deployment beside its state). Another key than the recorded one is a
    /// rotation the plan shows.
    #[arg(long, value_name = "PATH")]
    pub(super) ssh_key: Option<PathBuf>,
    /// Forget the recorded resources even when every one of them reads as gone (refused by
    /// default: a wrong endpoint answers like that).
    #[arg(long)]
    pub(super) accept_vanished: bool,
    /// Destroy or replace also what `destroy: never` protects (refused by default).
    #[arg(long)]
    pub(super) force_protected: bool,
}

/// What only `deploy` takes: new servers, SSH, bootstrap, health checks. The defaults are
/// also what `dispose` works with, which boots nothing.
#[derive(Debug, Args)]
pub(super) struct BootstrapArgs {
    /// Seconds a new node may take to answer SSH.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub(super) ssh_timeout: u64,
    /// How many nodes bootstrap works on at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub(super) ssh_parallelism: usize,
    /// Create the infrastructure and stop before configuring the nodes over SSH.
    #[arg(long)]
    pub(super) skip_bootstrap: bool,
    /// Seconds one remote command of the bootstrap (a cloud-config included) may take,
    /// start to end.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub(super) command_timeout: u64,
    /// Seconds a new cloud server may take to become active.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub(super) ready_timeout: u64,
    /// Seconds the started services may take, after bootstrap, to pass their health checks
    /// (a ZooKeeper ensemble to elect its leader); a node still failing one then fails.
    /// 0 runs no check: deploy returns once the services are (re)started, and a rolled
    /// quorum member is not waited for before the next.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub(super) health_timeout: u64,
    /// At most this many nodes restart services at once (Ansible's `serial`; default: as
    /// many as `--ssh-parallelism`). A running quorum member (ZooKeeper) is always
    /// restarted one node at a time, each serving again before the next.
    #[arg(long, value_name = "N")]
    pub(super) serial: Option<usize>,
    /// Bootstrap only this node (repeatable; Ansible's `--limit`). The infrastructure is
    /// planned and changed as without it; the other nodes are not configured this run.
    #[arg(long = "limit", value_name = "NODE")]
    pub(super) limit: Vec<String>,
    /// When `--ssh-key` names another key than the deployment's, also remove the old key
    /// from the nodes once they accept the new one (the rotation adds it by default).
    #[arg(long)]
    pub(super) revoke_old_key: bool,
}

impl ApplyArgs {
    /// The defaults, for a command that changes the state but makes nothing (`import`).
    pub(super) fn defaults() -> ApplyArgs {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            args: ApplyArgs,
        }
        <Only as clap::Parser>::parse_from(["fitter"]).args
    }
}

impl BootstrapArgs {
    /// The defaults, for `dispose`: parsed from nothing, so they are the flags' own.
    pub(super) fn defaults() -> BootstrapArgs {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            args: BootstrapArgs,
        }
        <Only as clap::Parser>::parse_from(["fitter"]).args
    }
}

/// What `plan` and `deploy` may narrow to, or force.
#[derive(Debug, Clone, Default, Args)]
pub(super) struct ScopeArgs {
    /// Act on this resource (`node.web1`, `firewall.web`) and what it needs, nothing else
    /// (repeatable; Terraform's `-target`).
    #[arg(long = "target", value_name = "ADDRESS")]
    pub(super) targets: Vec<String>,
    /// Destroy this resource and create it again, even if nothing about it changed
    /// (repeatable; Terraform's `-replace`).
    #[arg(long = "replace", value_name = "ADDRESS")]
    pub(super) replace: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    /// The fittings plan (YAML); `-` reads standard input.
    #[arg(value_name = "FITTINGS")]
    pub(super) fittings: PathBuf,
    /// Set a plan parameter: `-p name=value` (repeatable; wins over `--parameters`).
    #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE", value_parser = parse_parameter)]
    pub(super) parameters: Vec<(String, String)>,
    /// Plan parameters from a YAML file of `name: value` (Terraform's `-var-file`;
    /// repeatable, later files win).
    #[arg(long = "parameters", value_name = "FILE")]
    pub(super) parameter_files: Vec<PathBuf>,
    /// Deploy every location with this provider, whatever the plan says.
    #[arg(long, value_parser = parse_provider)]
    pub(super) provider: Option<ProviderKind>,
    /// Act on this blueprint or blueprint group only, and what it needs (repeatable;
    /// plumbery's `plumbery fittings.yaml deploy NAME`).
    #[arg(long = "blueprint", value_name = "NAME")]
    pub(super) blueprints: Vec<String>,
    /// Deploy every location of a cloud with regions to this region (`fra1`), whatever its
    /// `locationId` says (plumbery's Dimension Data ids included).
    #[arg(long, value_name = "REGION")]
    pub(super) region: Option<String>,
}

fn parse_parameter(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    registry::lookup(s).map_err(|e| e.to_string())
}
