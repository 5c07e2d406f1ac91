//! The command line: parses arguments, calls the operations (`operations`), asks for
//! confirmation and prints what they return. Nothing here decides anything about plans,
//! states or providers.

#[macro_use]
mod output;
mod args;
mod change;
mod help;
mod logging;
mod planned;
mod state;

use args::{ApplyArgs, BootstrapArgs, PlanArgs, ScopeArgs};
use state::StateArgs;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::diagnostics::plural;
use crate::inventory;
use crate::operations::deploy::ApplyOptions;
use crate::operations::saved::SavedPlan;
use crate::operations::{self, CheckOptions, Checked, OperationError, inspect};
use crate::report::{ColorChoice, Display};

#[derive(Debug, Parser)]
#[command(
    name = "fitter",
    version = help::VERSION,
    about = "Declarative infrastructure from one fittings plan, in the spirit of plumbery",
    after_help = help::ENV_GLOBAL
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); logs go to standard error.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Also write the debug log to this file (appended, with timestamps, never coloured),
    /// whatever `-v` says of standard error.
    #[arg(long, global = true, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Only errors on standard error.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Plain progress lines, as when standard error is not a terminal, instead of the live
    /// display.
    #[arg(long, global = true)]
    no_progress: bool,
    /// Accept a plain `http://` API endpoint on another machine (the token then crosses the
    /// network unencrypted). Loopback endpoints (a simulator) need no flag.
    #[arg(long, global = true)]
    allow_insecure_http: bool,
    /// Colours on standard error (`auto`: on a terminal, unless `NO_COLOR` is set).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and check a plan: every problem at once, each at FILE:LINE:COLUMN.
    #[command(after_help = help::ENV_OFFLINE)]
    Validate(PlanArgs),
    /// Show what `deploy` would do, Terraform-style, without changing anything.
    #[command(after_help = help::ENV_PLAN)]
    Plan {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        state: StateArgs,
        /// Print the plan as JSON (schema: docs/plan-json.md).
        #[arg(long)]
        json: bool,
        /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Compare with the state file as it is, without reading the recorded resources
        /// back from their providers (offline; the default reads them, never writes).
        #[arg(long)]
        no_refresh: bool,
        /// Report only what changed outside fitter: resources deleted or changed at their
        /// provider, files on the nodes that differ from what fitter renders, services
        /// stopped (Terraform's `-refresh-only` and Ansible's `--check` in one report).
        /// With `--detailed-exitcode`, 2 when anything drifted.
        #[arg(long, conflicts_with_all = ["out", "no_refresh"])]
        refresh_only: bool,
        /// Show the unified diff of every file bootstrap would change on the nodes
        /// (Ansible's `--check --diff`); secrets are shown as `(secret)`.
        #[arg(long)]
        diff: bool,
        /// The operator's SSH private key, when it is to be another than the deployment's:
        /// the plan then shows the rotation deploy would carry out.
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        /// Save the plan to FILE: `fitter deploy FILE` then applies exactly it, or refuses
        /// if the fittings or the state changed since (Terraform's `plan -out`).
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the resource and bootstrap graph in Graphviz DOT.
    #[command(after_help = help::ENV_OFFLINE)]
    Graph(PlanArgs),
    /// Create what the plan asks for and is missing, then print `information`.
    #[command(visible_alias = "apply", after_help = help::ENV_CHANGE)]
    Deploy {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        #[command(flatten)]
        bootstrap: BootstrapArgs,
        /// Only show the plan (same as `fitter plan`).
        #[arg(long)]
        dry_run: bool,
    },
    /// Nodes, addresses, roles, what each node runs (asked over SSH), endpoints and ssh
    /// commands of a deployment.
    #[command(after_help = help::ENV_READ)]
    Information {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
        /// The operator's SSH key, shown in the ssh commands.
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// Show only what the plan and the state say: no node is asked what it runs.
        #[arg(long)]
        offline: bool,
    },
    /// The deployment's nodes as an Ansible inventory (INI or YAML) or a JSON list.
    #[command(after_help = help::ENV_READ)]
    Inventory {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
        /// The operator's SSH key, for `ansible_ssh_private_key_file`.
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = inventory::Format::Ini)]
        format: inventory::Format,
    },
    /// A shell, or a command, on one node: OpenSSH as root with the operator's key, checking
    /// the host key fitter recorded. `fitter ssh PLAN master1 -- zkServer.sh status`.
    #[command(after_help = help::ENV_READ)]
    Ssh {
        #[command(flatten)]
        plan: PlanArgs,
        /// The node, as the plan names it.
        #[arg(value_name = "NODE")]
        node: String,
        #[command(flatten)]
        state: StateArgs,
        /// The operator's SSH private key (default: as `deploy` finds it).
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        /// The command to run, after `--`; none for a shell.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Destroy everything the deployment owns: what the state records, and anything else
    /// carrying the deployment's mark.
    #[command(visible_alias = "destroy", after_help = help::ENV_CHANGE)]
    Dispose {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Only show what would be destroyed, with each resource's id and addresses.
        #[arg(long)]
        dry_run: bool,
    },
    /// Take an existing resource (a droplet, a firewall, an LXD container of this
    /// deployment) into the state under the plan's ADDRESS, checked against the plan; the
    /// next `plan` shows what differs (Terraform's `import`).
    #[command(after_help = help::ENV_PLAN)]
    Import {
        #[command(flatten)]
        plan: PlanArgs,
        /// The plan's address for it: `node.web1`, `firewall.web`, `network.front`.
        #[arg(value_name = "ADDRESS")]
        address: String,
        /// Its id at the provider (a droplet's number, a firewall's UUID, a container's name).
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        state: StateArgs,
        /// A node's SSH host key (`ssh-ed25519 AAAA...`, from the cloud's console or the
        /// node's `/etc/ssh`), pinned for bootstrap; without it the node is not configured.
        #[arg(long, value_name = "KEY")]
        host_key: Option<String>,
    },
    /// Look at and repair the state: list, show, rm, mv; pull and push it between stores.
    #[command(subcommand)]
    State(state::StateCommand),
    /// Free the state's lock when its holder cannot: ends the PostgreSQL session that holds
    /// it (a hung fitter, a machine gone). A file lock always frees itself.
    #[command(after_help = help::ENV_STATE)]
    ForceUnlock {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        state: StateArgs,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Print a shell completion script: `source <(fitter completions bash)`.
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `fitter man | man -l -`, `fitter man deploy | man -l -`.
    Man {
        /// One command's page (`fitter-deploy(1)`); none: fitter's own.
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
        /// Write every page to this directory instead (`fitter.1`, `fitter-deploy.1`, ...).
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        dir: Option<PathBuf>,
    },
}

/// Runs the command line; the binary's `main` is this and nothing more.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = logging::init(cli.verbose, cli.quiet, cli.log_file.as_deref()) {
        errln!("{message}");
        return ExitCode::from(1);
    }
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            let message = failure.render();
            err!("{message}");
            if !message.ends_with('\n') {
                errln!();
            }
            ExitCode::from(1)
        }
    }
}

/// What the global flags ask of every command.
struct Globals {
    display: Display,
    /// `--allow-insecure-http`.
    insecure: bool,
}

/// Why a command stopped, as the CLI prints it.
enum Failure {
    /// Boxed: an operation's error is large, and every CLI function returns this.
    Operation(Box<OperationError>),
    /// A message of the CLI's own (a refused confirmation, an unknown node).
    Message(String),
}

impl From<OperationError> for Failure {
    fn from(e: OperationError) -> Self {
        Failure::Operation(Box::new(e))
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Message(s)
    }
}

impl Failure {
    /// `error: ...`, then one `caused by: ...` line per cause. An invalid plan's
    /// diagnostics are already rendered with their sources.
    fn render(&self) -> String {
        match self {
            Failure::Message(m) => m.clone(),
            Failure::Operation(e) => match e.as_ref() {
                OperationError::Invalid(rendered) => rendered.clone(),
                e => error_chain(e),
            },
        }
    }
}

/// `error: {e}` and its causes, one a line; a cause the message above already quotes is
/// not repeated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = format!("error: {e}");
    let mut said = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !said.contains(&text) {
            out.push_str(&format!("\n  caused by: {text}"));
        }
        said = text;
        cause = c.source();
    }
    out
}

/// Loads and checks the plan; its warnings go to standard error unless `-q`.
fn check(args: &PlanArgs, quiet: bool) -> Result<Checked, OperationError> {
    check_scoped(args, &ScopeArgs::default(), quiet)
}

/// [`check`], narrowed by `--target` or forced by `--replace`.
fn check_scoped(
    args: &PlanArgs,
    scope: &ScopeArgs,
    quiet: bool,
) -> Result<Checked, OperationError> {
    check_with(
        &CheckOptions {
            path: args.fittings.clone(),
            parameters: args.parameters.iter().cloned().collect(),
            parameter_files: args.parameter_files.clone(),
            provider: args.provider,
            blueprints: args.blueprints.clone(),
            region: args.region.clone(),
            targets: scope.targets.clone(),
            replace: scope.replace.clone(),
        },
        quiet,
    )
}

fn check_with(options: &CheckOptions, quiet: bool) -> Result<Checked, OperationError> {
    let checked = operations::check(options)?;
    if !quiet && !checked.warnings.is_empty() {
        err!("{}", checked.source.render_all(&checked.warnings));
    }
    Ok(checked)
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let globals = Globals {
        display: Display {
            quiet: cli.quiet,
            no_progress: cli.no_progress,
            color: cli.color,
        },
        insecure: cli.allow_insecure_http,
    };
    let insecure = globals.insecure;
    match cli.command {
        Command::Validate(args) => {
            let checked = check(&args, cli.quiet)?;
            let f = &checked.fittings;
            let firewalls = checked
                .graph
                .resources()
                .filter(|s| s.address.starts_with("firewall."))
                .count();
            outln!(
                "`{}` is valid: deployment `{}`, {} node{}, {} network{}, {} firewall{}{}.",
                checked.source.name,
                f.deployment,
                f.nodes.len(),
                plural(f.nodes.len()),
                f.networks.len(),
                plural(f.networks.len()),
                firewalls,
                plural(firewalls),
                if checked.warnings.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} warning{}",
                        checked.warnings.len(),
                        plural(checked.warnings.len())
                    )
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            plan: args,
            scope,
            state,
            json,
            detailed_exitcode,
            no_refresh,
            out: save_to,
            ssh_key,
            refresh_only,
            diff,
        } => {
            if json && diff && !refresh_only {
                return Err(
                    "error: `--diff` prints text after the plan; with `--json`, use `--refresh-only --json --diff`, whose report carries each file's diff"
                        .to_string()
                        .into(),
                );
            }
            let checked = check_scoped(&args, &scope, cli.quiet)?;
            let ws = state.workspace(&checked, &args, ssh_key)?;
            if refresh_only {
                let report = runtime()?.block_on(operations::drift::refresh_only(
                    &checked, &ws, insecure, diff,
                ))?;
                if json {
                    outln!(
                        "{}",
                        serde_json::to_string_pretty(&report).expect("a drift report serialises")
                    );
                } else {
                    out!("{}", report.render());
                }
                return Ok(if detailed_exitcode && report.count() > 0 {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                });
            }
            let (the_plan, against) = planned::dry_run(&checked, &ws, !no_refresh, insecure)?;
            if let Some(path) = &save_to {
                SavedPlan::new(&checked, &the_plan, against).write(path)?;
                errln!(
                    "Saved the plan to `{}`: `fitter deploy {}` applies exactly it (with the same `-p`/`--parameters`).",
                    path.display(),
                    path.display()
                );
            }
            if json {
                out!("{}", the_plan.to_json());
            } else {
                out!("{}", the_plan.render());
            }
            if diff {
                out!("{}", planned::file_diffs(&checked, &ws)?);
            }
            Ok(if detailed_exitcode && the_plan.has_changes() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Graph(args) => {
            let checked = check(&args, cli.quiet)?;
            out!("{}", checked.graph.to_dot());
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            plan: args,
            scope,
            apply,
            bootstrap,
            dry_run: only_plan,
        } => {
            let (checked, saved) = match SavedPlan::read(&args.fittings)? {
                None => (check_scoped(&args, &scope, cli.quiet)?, None),
                Some(saved) => {
                    if args.provider.is_some()
                        || args.region.is_some()
                        || !args.blueprints.is_empty()
                        || !scope.targets.is_empty()
                        || !scope.replace.is_empty()
                    {
                        return Err(format!(
                            "error: `{}` is a saved plan: it carries its own --provider, --region, --blueprint, --target and --replace",
                            args.fittings.display()
                        )
                        .into());
                    }
                    let given = args.parameters.iter().cloned().collect();
                    let options = saved.check_options(&given, args.parameter_files.clone())?;
                    let checked = check_with(&options, cli.quiet)?;
                    let expected = saved.check_inputs(&checked, &args.fittings)?;
                    (checked, Some(expected))
                }
            };
            // The workspace is the fittings' (a saved plan names them).
            let args = PlanArgs {
                fittings: checked.options.path.clone(),
                ..args
            };
            let ws = apply
                .state
                .workspace(&checked, &args, apply.ssh_key.clone())?;
            if only_plan {
                out!(
                    "{}",
                    planned::dry_run(&checked, &ws, true, insecure)?.0.render()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let runtime = runtime()?;
            // Ctrl-C is watched by a task of this runtime.
            let _entered = runtime.enter();
            let options = apply_options(&apply, &bootstrap, &globals);
            let how = change::Deploying {
                yes: apply.yes,
                force_protected: apply.force_protected,
                saved,
            };
            runtime.block_on(change::deploy(checked, ws, how, options))
        }
        Command::Inventory {
            plan: args,
            state,
            ssh_key,
            format,
        } => {
            let checked = check(&args, cli.quiet)?;
            let ws = state.workspace(&checked, &args, ssh_key)?;
            // Absolute paths, so that Ansible finds them from any directory.
            let r = inspect::report(&checked, &ws, true)?;
            out!(
                "{}",
                inventory::render(
                    &r.information,
                    format,
                    r.key.as_deref(),
                    r.known_hosts.as_deref()
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ssh {
            plan: args,
            node,
            state,
            ssh_key,
            command,
        } => {
            let checked = check(&args, cli.quiet)?;
            let ws = state.workspace(&checked, &args, ssh_key)?;
            let r = inspect::report(&checked, &ws, true)?;
            let info = &r.information;
            let Some(n) = info.nodes.iter().find(|n| n.name == node) else {
                let names: Vec<&str> = info.nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(format!(
                    "error: no node `{node}` in deployment `{}`; its nodes: {}",
                    info.deployment,
                    names.join(", ")
                )
                .into());
            };
            let Some(ip) = n.public_ip.as_ref().or(n.private_ip.as_ref()) else {
                return Err(format!(
                    "error: `{node}` has no address ({}): deploy it first",
                    n.status
                )
                .into());
            };
            let known = match r.known_hosts {
                Some(k) => k,
                None => inspect::ensure_known_hosts(&checked, &ws)?,
            };
            let mut ssh = std::process::Command::new("ssh");
            if let Some(k) = &r.key {
                ssh.arg("-i").arg(k).args(["-o", "IdentitiesOnly=yes"]);
            }
            ssh.arg("-o")
                .arg(format!("UserKnownHostsFile={}", known.display()))
                .args(["-o", "StrictHostKeyChecking=yes"])
                .arg(format!("root@{ip}"));
            if !command.is_empty() {
                ssh.arg("--").args(&command);
            }
            use std::os::unix::process::CommandExt as _;
            let err = ssh.exec();
            Err(format!(
                "error: cannot run the OpenSSH client `ssh`: {err}; install openssh-client"
            )
            .into())
        }
        Command::Information {
            plan: args,
            state,
            ssh_key,
            json,
            offline,
        } => {
            let checked = check(&args, cli.quiet)?;
            let ws = state.workspace(&checked, &args, ssh_key)?;
            let report = inspect::report(&checked, &ws, false)?;
            let mut info = report.information;
            if !offline {
                runtime()?.block_on(inspect::ask_nodes(&ws, report.state.as_ref(), &mut info))?;
            }
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&info).expect("information serialises")
                );
            } else {
                out!("{}", info.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dispose {
            plan: args,
            apply,
            dry_run,
        } => {
            let checked = check(&args, cli.quiet)?;
            let ws = apply
                .state
                .workspace(&checked, &args, apply.ssh_key.clone())?;
            let runtime = runtime()?;
            let _entered = runtime.enter();
            let options = apply_options(&apply, &BootstrapArgs::defaults(), &globals);
            let how = change::Disposing {
                yes: apply.yes,
                dry_run,
                force_protected: apply.force_protected,
            };
            runtime.block_on(change::dispose(checked, ws, how, options))
        }
        Command::Completions { shell } => Ok(help::completions(shell)),
        Command::Man { command, dir } => Ok(help::man(command.as_deref(), dir.as_deref())),
        Command::Import {
            plan: args,
            address,
            id,
            state,
            host_key,
        } => {
            let checked = check(&args, cli.quiet)?;
            let ws = state.workspace(&checked, &args, None)?;
            let runtime = runtime()?;
            let _entered = runtime.enter();
            let options =
                apply_options(&ApplyArgs::defaults(), &BootstrapArgs::defaults(), &globals);
            runtime.block_on(change::import(
                checked,
                ws,
                &address,
                &id,
                host_key.as_deref(),
                options,
            ))
        }
        Command::State(command) => state::run(command, cli.quiet),
        Command::ForceUnlock { plan, state, yes } => {
            let checked = check(&plan, cli.quiet)?;
            let ws = state.workspace(&checked, &plan, None)?;
            state::force_unlock(&checked, &ws, yes)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, OperationError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(OperationError::Runtime)
}

/// How `deploy` and `dispose` carry out their plan: the limits, the display, Ctrl-C.
fn apply_options(args: &ApplyArgs, boot: &BootstrapArgs, globals: &Globals) -> ApplyOptions {
    ApplyOptions {
        parallelism: args.parallelism,
        ssh_parallelism: boot.ssh_parallelism,
        ssh_timeout: Duration::from_secs(boot.ssh_timeout),
        command_timeout: Duration::from_secs(boot.command_timeout),
        ready_timeout: Duration::from_secs(boot.ready_timeout),
        health_timeout: Duration::from_secs(boot.health_timeout),
        serial: boot.serial.unwrap_or(boot.ssh_parallelism),
        skip_bootstrap: boot.skip_bootstrap,
        allow_insecure_http: globals.insecure,
        accept_vanished: args.accept_vanished,
        limit: boot.limit.clone(),
        revoke_old_key: boot.revoke_old_key,
        cancel: cancel_on_ctrl_c(),
        reporter: globals.display.reporter(),
    }
}

/// Asks before changing anything, unless `--yes`; refuses when nobody can answer.
fn confirm(yes: bool, what: &str) -> Result<bool, Failure> {
    use std::io::IsTerminal as _;
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "error: refusing to {what} without confirmation: standard input is not a terminal; pass `--yes`"
        )
        .into());
    }
    err!("Do you want to {what}? Only `yes` will be accepted: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| format!("error: {e}"))?;
    Ok(answer.trim() == "yes")
}

/// The exit code of a command Ctrl-C interrupted: 128 + SIGINT, as shells give it, so that
/// a script can tell an interruption from a failure.
pub(crate) const INTERRUPTED: u8 = 130;

fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            crate::report::live::write_log(
                b"\nInterrupted: letting running calls finish and saving the state; Ctrl-C again to abort.\n",
            );
            token.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(i32::from(INTERRUPTED));
            }
        }
    });
    cancel
}
