//! The command line: parses arguments, runs the pipeline's stages, renders what they return.
//! Nothing here decides anything about plans; that belongs to the stage modules.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fitter_providers::ProviderKind;

use crate::components::Catalog;
use crate::diagnostics::{Diagnostic, SourceFile, plural};
use crate::fittings::{self, Fittings, LoadOptions};
use crate::graph::{self, GraphError, ResourceGraph};
use crate::{plan, state};

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
    },
    /// Print the resource and bootstrap graph in Graphviz DOT.
    Graph(PlanArgs),
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
    ProviderKind::parse(s).ok_or_else(|| {
        let names: Vec<&str> = ProviderKind::ALL.iter().map(|p| p.name()).collect();
        format!(
            "unknown provider `{s}`; expected one of: {}",
            names.join(", ")
        )
    })
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
        } => {
            let checked = check(&args, cli.quiet)?;
            let path = state_path.unwrap_or_else(|| state::default_path(&args.fittings));
            let recorded = state::read(&path, &checked.fittings.deployment)
                .map_err(|e| format!("error: {e}"))?;
            let plan = plan::diff(&checked.graph, recorded.as_ref());
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
    }
}
