//! The command line: parses arguments, runs the pipeline's stages, renders what they return.
//! Nothing here decides anything about plans; that belongs to the stage modules.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fitter_providers::{ConnectOptions, ProviderKind, registry};

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::apply::{self, Providers};
use crate::components::Catalog;
use crate::diagnostics::{Diagnostic, SourceFile, plural};
use crate::fittings::{self, Fittings, LoadOptions};
use crate::graph::{self, GraphError, ResourceGraph};
use crate::{bootstrap, information, inventory, plan, ssh, state};

#[derive(Debug, Parser)]
#[command(
    name = "fitter",
    version,
    about = "Declarative infrastructure from one fittings plan, in the spirit of plumbery"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); logs go to standard error.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on standard error.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and check a plan: every problem at once, each at FILE:LINE:COLUMN.
    Validate(PlanArgs),
    /// Show what `deploy` would do, Terraform-style, without changing anything.
    Plan {
        #[command(flatten)]
        plan: PlanArgs,
        /// State file (default: beside the plan, `NAME.state.json`).
        #[arg(long, value_name = "PATH")]
        state: Option<PathBuf>,
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
    },
    /// Print the resource and bootstrap graph in Graphviz DOT.
    Graph(PlanArgs),
    /// Create what the plan asks for and is missing, then print `information`.
    Deploy {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        apply: ApplyArgs,
        /// Only show the plan (same as `fitter plan`).
        #[arg(long)]
        dry_run: bool,
    },
    /// Nodes, addresses, roles, endpoints and ssh commands of a deployment.
    Information {
        #[command(flatten)]
        plan: PlanArgs,
        /// State file (default: beside the plan, `NAME.state.json`).
        #[arg(long, value_name = "PATH")]
        state: Option<PathBuf>,
        /// The operator's SSH key, shown in the ssh commands.
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The deployment's nodes as an Ansible inventory (INI or YAML) or a JSON list.
    Inventory {
        #[command(flatten)]
        plan: PlanArgs,
        /// State file (default: beside the plan, `NAME.state.json`).
        #[arg(long, value_name = "PATH")]
        state: Option<PathBuf>,
        /// The operator's SSH key, for `ansible_ssh_private_key_file`.
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = inventory::Format::Ini)]
        format: inventory::Format,
    },
    /// A shell, or a command, on one node: OpenSSH as root with the operator's key, checking
    /// the host key fitter recorded. `fitter ssh PLAN master1 -- zkServer.sh status`.
    Ssh {
        #[command(flatten)]
        plan: PlanArgs,
        /// The node, as the plan names it.
        #[arg(value_name = "NODE")]
        node: String,
        /// State file (default: beside the plan, `NAME.state.json`).
        #[arg(long, value_name = "PATH")]
        state: Option<PathBuf>,
        /// The operator's SSH private key (default: as `deploy` finds it).
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        /// The command to run, after `--`; none for a shell.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Destroy everything the deployment owns: what the state records, and anything else
    /// carrying the deployment's mark.
    Dispose {
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        apply: ApplyArgs,
    },
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// State file (default: beside the plan, `NAME.state.json`).
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// How many provider calls may run at once.
    #[arg(long, default_value_t = 10, value_name = "N")]
    parallelism: usize,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// The operator's SSH private key (default: `FITTER_SSH_KEY`, `~/.ssh/id_ed25519`,
    /// `~/.ssh/id_rsa`, else one made for the deployment beside its state).
    #[arg(long, value_name = "PATH")]
    ssh_key: Option<PathBuf>,
    /// Seconds a new node may take to answer SSH.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    ssh_timeout: u64,
    /// How many nodes bootstrap works on at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    ssh_parallelism: usize,
    /// Create the infrastructure and stop before configuring the nodes over SSH.
    #[arg(long)]
    skip_bootstrap: bool,
    /// Seconds a new cloud server may take to become active.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    ready_timeout: u64,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// The fittings plan (YAML); `-` reads standard input.
    #[arg(value_name = "FITTINGS")]
    fittings: PathBuf,
    /// Set a plan parameter: `-p name=value` (repeatable).
    #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE", value_parser = parse_parameter)]
    parameters: Vec<(String, String)>,
    /// Deploy every location with this provider, whatever the plan says.
    #[arg(long, value_parser = parse_provider)]
    provider: Option<ProviderKind>,
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

/// Runs the command line; the binary's `main` is this and nothing more.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprint!("{message}");
            if !message.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(1)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FITTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// A plan loaded, checked and turned into a graph, or the rendered reasons why not.
struct Checked {
    source: SourceFile,
    fittings: Fittings,
    graph: ResourceGraph,
    warnings: Vec<Diagnostic>,
}

fn check(args: &PlanArgs, quiet: bool) -> Result<Checked, String> {
    let (name, text) = read_plan(&args.fittings)?;
    let catalog =
        Catalog::builtin().map_err(|e| format!("error: the built-in templates are broken: {e}"))?;
    let options = LoadOptions {
        parameters: args.parameters.iter().cloned().collect::<BTreeMap<_, _>>(),
        provider: args.provider,
        catalog: &catalog,
    };
    let loaded = fittings::load(&name, &text, &options);
    let Some(fittings) = loaded.fittings else {
        return Err(loaded.source.render_all(&loaded.diagnostics));
    };
    let graph = match graph::build(&fittings, &catalog) {
        Ok(g) => g,
        Err(err @ GraphError::Cycle { span, .. }) => {
            let mut all = loaded.diagnostics.clone();
            all.push(Diagnostic::error(span, err.to_string()));
            return Err(loaded.source.render_all(&all));
        }
    };
    let warnings = loaded.diagnostics;
    if !quiet && !warnings.is_empty() {
        eprint!("{}", loaded.source.render_all(&warnings));
    }
    Ok(Checked {
        source: loaded.source,
        fittings,
        graph,
        warnings,
    })
}

fn read_plan(path: &Path) -> Result<(String, String), String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("error: cannot read the plan from standard input: {e}"))?;
        return Ok(("<stdin>".to_string(), text));
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("error: cannot read `{}`: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "error: `{}` is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((path.display().to_string(), text))
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Validate(args) => {
            let checked = check(&args, cli.quiet)?;
            let f = &checked.fittings;
            let firewalls = checked
                .graph
                .resources()
                .filter(|s| s.address.starts_with("firewall."))
                .count();
            println!(
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
            state: state_path,
            json,
            detailed_exitcode,
            no_refresh,
        } => {
            let checked = check(&args, cli.quiet)?;
            let path = state_path.unwrap_or_else(|| state::default_path(&args.fittings));
            let plan = dry_run_plan(&checked, &path, !no_refresh)?;
            if json {
                print!("{}", plan.to_json());
            } else {
                print!("{}", plan.render());
            }
            Ok(if detailed_exitcode && plan.has_changes() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Graph(args) => {
            let checked = check(&args, cli.quiet)?;
            print!("{}", checked.graph.to_dot());
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            plan: args,
            apply,
            dry_run,
        } => {
            let checked = check(&args, cli.quiet)?;
            if dry_run {
                let path = apply
                    .state
                    .clone()
                    .unwrap_or_else(|| state::default_path(&args.fittings));
                let the_plan = dry_run_plan(&checked, &path, true)?;
                print!("{}", the_plan.render());
                return Ok(ExitCode::SUCCESS);
            }
            runtime()?.block_on(deploy(&args, &apply, checked))
        }
        Command::Inventory {
            plan: args,
            state: state_path,
            ssh_key,
            format,
        } => {
            // Absolute paths, so that Ansible finds them from any directory.
            let (info, key, known) = report(&args, state_path, ssh_key, true, cli.quiet)?;
            print!(
                "{}",
                inventory::render(&info, format, key.as_deref(), known.as_deref())
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ssh {
            plan: args,
            node,
            state: state_path,
            ssh_key,
            command,
        } => {
            let path = state_path
                .clone()
                .unwrap_or_else(|| state::default_path(&args.fittings));
            let (info, key, known) = report(&args, state_path, ssh_key, true, cli.quiet)?;
            let Some(n) = info.nodes.iter().find(|n| n.name == node) else {
                let names: Vec<&str> = info.nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(format!(
                    "error: no node `{node}` in deployment `{}`; its nodes: {}",
                    info.deployment,
                    names.join(", ")
                ));
            };
            let Some(ip) = n.public_ip.as_ref().or(n.private_ip.as_ref()) else {
                return Err(format!(
                    "error: `{node}` has no address ({}): deploy it first",
                    n.status
                ));
            };
            // The known_hosts file is derived from the state: written again if it is gone.
            let known = match known {
                Some(k) => k,
                None => {
                    let state = state::read(&path, &info.deployment)
                        .map_err(|e| format!("error: {e}"))?
                        .unwrap_or_else(|| state::State::new(&info.deployment));
                    let k = information::known_hosts_path(&path);
                    std::fs::write(&k, information::known_hosts(&state))
                        .map_err(|e| format!("error: cannot write `{}`: {e}", k.display()))?;
                    k
                }
            };
            let mut ssh = std::process::Command::new("ssh");
            if let Some(k) = &key {
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
            ))
        }
        Command::Information {
            plan: args,
            state: state_path,
            ssh_key,
            json,
        } => {
            let (info, _, _) = report(&args, state_path, ssh_key, false, cli.quiet)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&info).expect("information serialises")
                );
            } else {
                print!("{}", info.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dispose { plan: args, apply } => {
            let checked = check(&args, cli.quiet)?;
            runtime()?.block_on(dispose(&args, &apply, checked))
        }
    }
}

/// What `deploy` would do: the plan against the state, refreshed from the providers unless
/// `refresh` is false. Reads only; the state file is left as it is, and a plan against an
/// empty state needs no credentials.
fn dry_run_plan(checked: &Checked, path: &Path, refresh: bool) -> Result<plan::Plan, String> {
    let mut recorded =
        state::read(path, &checked.fittings.deployment).map_err(|e| format!("error: {e}"))?;
    if let Some(state) = recorded.as_mut()
        && refresh
        && !state.resources.is_empty()
    {
        let gone = runtime()?
            .block_on(async {
                let providers =
                    connect_providers(&checked.fittings, Duration::from_secs(600)).await?;
                apply::gone(state, &providers)
                    .await
                    .map_err(|e| format!("error: {e}"))
            })
            .map_err(|e| {
                format!(
                    "{e}\n  = help: `plan --no-refresh` compares with the state file alone, offline"
                )
            })?;
        for address in gone {
            eprintln!("`{address}` is gone from its provider; deploy will create it again.");
            state.resources.remove(&address);
        }
    }
    let mut the_plan = plan::diff(&checked.graph, recorded.as_ref());
    the_plan.bootstrap = plan::bootstrap_plan(&checked.fittings, &catalog()?);
    Ok(the_plan)
}

/// What `information` and `inventory` report: the nodes from the state, the operator's key
/// and the known_hosts file when they exist (`absolute`: as absolute paths).
fn report(
    args: &PlanArgs,
    state_path: Option<PathBuf>,
    ssh_key: Option<PathBuf>,
    absolute: bool,
    quiet: bool,
) -> Result<(information::Information, Option<PathBuf>, Option<PathBuf>), String> {
    let checked = check(args, quiet)?;
    let path = state_path.unwrap_or_else(|| state::default_path(&args.fittings));
    let recorded =
        state::read(&path, &checked.fittings.deployment).map_err(|e| format!("error: {e}"))?;
    let mut key = ssh_key.or_else(|| {
        ssh::OperatorKey::find_existing(None, &operator_key_fallback(&path)).map(|k| k.path)
    });
    let mut known = Some(information::known_hosts_path(&path)).filter(|k| k.exists());
    if absolute {
        key = key.map(|k| std::fs::canonicalize(&k).unwrap_or(k));
        known = known.map(|k| std::fs::canonicalize(&k).unwrap_or(k));
    }
    let info = information::gather(
        &checked.fittings,
        recorded.as_ref(),
        key.as_deref(),
        known.as_deref(),
    );
    Ok((info, key, known))
}

fn catalog() -> Result<Catalog, String> {
    Catalog::builtin().map_err(|e| format!("error: the built-in templates are broken: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("error: cannot start the async runtime: {e}"))
}

/// Where a deployment's own SSH key goes when the operator has none: beside its state.
fn operator_key_fallback(state_path: &Path) -> PathBuf {
    let mut p = state_path.as_os_str().to_owned();
    p.push(".id_ed25519");
    PathBuf::from(p)
}

/// The providers the plan's locations use, connected.
async fn connect_providers(
    fittings: &Fittings,
    ready_timeout: Duration,
) -> Result<Providers, String> {
    let mut providers = Providers::default();
    let mut kinds: Vec<ProviderKind> = fittings.locations.iter().map(|l| l.provider).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let options = ConnectOptions {
            deployment: &fittings.deployment,
            ready_timeout,
            settings: fittings
                .locations
                .iter()
                .filter_map(|l| l.settings.get(&kind))
                .collect(),
        };
        let provider = kind
            .cloud()
            .connect(&options)
            .await
            .map_err(|e| format!("error: {e}"))?;
        providers.insert(provider);
    }
    Ok(providers)
}

/// How `deploy` and `dispose` carry out their plan: the operator's key, the limits, Ctrl-C.
async fn apply_options(args: &ApplyArgs, state_path: &Path) -> Result<apply::Options, String> {
    let operator = ssh::OperatorKey::find_or_create(
        args.ssh_key.as_deref(),
        &operator_key_fallback(state_path),
    )
    .await
    .map_err(|e| format!("error: {e}"))?;
    Ok(apply::Options {
        parallelism: args.parallelism,
        cancel: cancel_on_ctrl_c(),
        operator,
        ssh_patience: Duration::from_secs(args.ssh_timeout),
        probe_ssh: !args.skip_bootstrap,
    })
}

/// Asks before changing anything, unless `--yes`; refuses when nobody can answer.
fn confirm(yes: bool, what: &str) -> Result<bool, String> {
    use std::io::IsTerminal as _;
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "error: refusing to {what} without confirmation: standard input is not a terminal; pass `--yes`"
        ));
    }
    eprint!("Do you want to {what}? Only `yes` will be accepted: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| format!("error: {e}"))?;
    Ok(answer.trim() == "yes")
}

fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\nInterrupted: letting running calls finish and saving the state; Ctrl-C again to abort."
            );
            token.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    cancel
}

async fn deploy(
    args: &PlanArgs,
    apply_args: &ApplyArgs,
    checked: Checked,
) -> Result<ExitCode, String> {
    let path = apply_args
        .state
        .clone()
        .unwrap_or_else(|| state::default_path(&args.fittings));
    let providers = connect_providers(
        &checked.fittings,
        Duration::from_secs(apply_args.ready_timeout),
    )
    .await?;
    let mut state_file = state::StateFile::open(&path, &checked.fittings.deployment)
        .map_err(|e| format!("error: {e}"))?;
    let gone = apply::refresh(&mut state_file, &providers)
        .await
        .map_err(|e| format!("error: {e}"))?;
    for address in gone {
        eprintln!("`{address}` is gone from its provider; it will be created again.");
    }
    apply::assign_addresses(&checked.graph, &mut state_file).map_err(|e| format!("error: {e}"))?;
    let mut the_plan = plan::diff(&checked.graph, Some(state_file.state()));
    if !apply_args.skip_bootstrap {
        the_plan.bootstrap = plan::bootstrap_plan(&checked.fittings, &catalog()?);
    }
    print!("{}", the_plan.render());
    let mut code = ExitCode::SUCCESS;
    if the_plan.has_changes() {
        if !confirm(apply_args.yes, "perform these actions")? {
            eprintln!("Nothing changed.");
            return Ok(ExitCode::from(1));
        }
        let options = apply_options(apply_args, &path).await?;
        let report = apply::apply(
            &the_plan,
            &checked.graph,
            &providers,
            &mut state_file,
            &options,
        )
        .await;
        println!();
        print!("{}", report.render());
        if report.failed() > 0 {
            eprintln!(
                "error: {} of {} changes did not complete; what was created is recorded in `{}`; run deploy again to finish",
                report.failed(),
                report.steps.len(),
                path.display()
            );
            code = ExitCode::from(1);
        }
    }
    if !apply_args.skip_bootstrap {
        let operator = ssh::OperatorKey::find_or_create(
            apply_args.ssh_key.as_deref(),
            &operator_key_fallback(&path),
        )
        .await
        .map_err(|e| format!("error: {e}"))?;
        if !bootstrap_nodes(&checked, &mut state_file, &operator, apply_args).await? {
            code = ExitCode::from(1);
        }
    }
    let known = information::known_hosts_path(&path);
    std::fs::write(&known, information::known_hosts(state_file.state()))
        .map_err(|e| format!("error: cannot write `{}`: {e}", known.display()))?;
    let key = ssh::OperatorKey::find_existing(
        apply_args.ssh_key.as_deref(),
        &operator_key_fallback(&path),
    )
    .map(|k| k.path);
    let info = information::gather(
        &checked.fittings,
        Some(state_file.state()),
        key.as_deref(),
        Some(&known),
    );
    println!();
    print!("{}", info.render());
    Ok(code)
}

/// Renders and applies every ready node's configuration; false when a node failed.
async fn bootstrap_nodes(
    checked: &Checked,
    state_file: &mut state::StateFile,
    operator: &ssh::OperatorKey,
    args: &ApplyArgs,
) -> Result<bool, String> {
    let state = state_file.state().clone();
    let state = &state;
    use std::collections::BTreeMap;
    let catalog = Catalog::builtin().map_err(|e| format!("error: {e}"))?;
    let mut addresses = BTreeMap::new();
    let mut reachable = BTreeMap::new();
    for node in &checked.fittings.nodes {
        let Some(r) = state.resources.get(&format!("node.{}", node.name.value)) else {
            continue;
        };
        let get = |k: &str| {
            r.outputs
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        addresses.insert(
            node.name.value.clone(),
            bootstrap::Addresses {
                private: get("private_ip"),
                public: get("public_ip"),
            },
        );
        if r.status == state::Status::Ready
            && let (Some(ip), Some(key)) = (get("public_ip").or(get("private_ip")), get("host_key"))
            && let Ok(ip) = ip.parse::<std::net::IpAddr>()
        {
            reachable.insert(
                node.name.value.clone(),
                (std::net::SocketAddr::new(ip, 22), key),
            );
        }
    }
    let mut secrets = state.secrets.clone();
    let configs = bootstrap::render(&checked.fittings, &catalog, &addresses, &mut secrets)
        .map_err(|e| format!("error: {e}"))?;
    if secrets != state.secrets {
        // Saved before any node sees them, so a rerun renders the same values.
        state_file
            .update(|s| s.secrets = secrets)
            .map_err(|e| format!("error: {e}"))?;
    }
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for config in configs {
        match reachable.remove(&config.node) {
            Some((address, host_key)) => targets.push(bootstrap::Target {
                config,
                address,
                host_key,
            }),
            None => missing.push(config.node),
        }
    }
    let reports = bootstrap::apply(
        targets,
        operator,
        args.ssh_parallelism,
        Duration::from_secs(args.ssh_timeout),
    )
    .await;
    println!();
    for node in &missing {
        println!("bootstrap {node}: skipped: the node is not ready");
    }
    print!("{}", bootstrap::render_report(&reports));
    Ok(missing.is_empty() && reports.iter().all(|r| r.error.is_none()))
}

async fn dispose(
    args: &PlanArgs,
    apply_args: &ApplyArgs,
    checked: Checked,
) -> Result<ExitCode, String> {
    let path = apply_args
        .state
        .clone()
        .unwrap_or_else(|| state::default_path(&args.fittings));
    let providers = connect_providers(
        &checked.fittings,
        Duration::from_secs(apply_args.ready_timeout),
    )
    .await?;
    let mut state_file = state::StateFile::open(&path, &checked.fittings.deployment)
        .map_err(|e| format!("error: {e}"))?;
    apply::refresh(&mut state_file, &providers)
        .await
        .map_err(|e| format!("error: {e}"))?;
    let mut kinds: Vec<ProviderKind> = checked
        .fittings
        .locations
        .iter()
        .map(|l| l.provider)
        .collect();
    kinds.sort();
    kinds.dedup();
    let adopted = apply::adopt_orphans(&mut state_file, &providers, &kinds)
        .await
        .map_err(|e| format!("error: {e}"))?;
    for a in &adopted {
        eprintln!(
            "`{a}` carries the deployment's mark but was not in the state; it will be destroyed too."
        );
    }
    let the_plan = plan::destroy_all(&checked.fittings.deployment, state_file.state());
    print!("{}", the_plan.render());
    if !the_plan.has_changes() {
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(apply_args.yes, "destroy all of these")? {
        eprintln!("Nothing changed.");
        return Ok(ExitCode::from(1));
    }
    let options = apply_options(apply_args, &path).await?;
    let report = apply::apply(
        &the_plan,
        &checked.graph,
        &providers,
        &mut state_file,
        &options,
    )
    .await;
    print!("{}", report.render());
    if report.failed() > 0 {
        eprintln!(
            "error: {} of {} deletions did not complete; run dispose again",
            report.failed(),
            report.steps.len()
        );
        return Ok(ExitCode::from(1));
    }
    let _ = std::fs::remove_file(information::known_hosts_path(&path));
    println!(
        "Deployment `{}` disposed of: nothing left.",
        checked.fittings.deployment
    );
    Ok(ExitCode::SUCCESS)
}
