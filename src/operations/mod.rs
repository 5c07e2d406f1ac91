//! The operations: what each command does, as functions the CLI calls with typed options and
//! that return typed results. The CLI parses arguments, asks for confirmation and prints;
//! everything between is here, in the order a command runs it:
//!
//! - [`check`]: load and validate the plan, build its graph ([`Checked`]);
//! - [`Workspace`]: where the deployment's files live, worked out once;
//! - [`deploy`]: open the deployment (connect, lock, refresh), plan, apply, bootstrap;
//! - [`dispose`]: open it, adopt what carries its mark, destroy everything;
//! - [`inspect`]: the read-only commands' data (`plan`, `information`, `inventory`, `ssh`).
//!
//! Progress goes to the [`Reporter`](crate::report::Reporter) in the options; nothing here
//! prints.

pub mod deploy;
pub mod dispose;
pub mod drift;
pub mod import;
pub mod inspect;
mod keys;
pub mod saved;
mod selection;
mod workspace;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use fitter_providers::{ConnectOptions, ProviderKind};
use thiserror::Error;

use crate::apply::{ApplyError, Providers};
use crate::bootstrap::BootstrapError;
use crate::components::{Catalog, CatalogError};
use crate::diagnostics::{Diagnostic, SourceFile};
use crate::fittings::{self, Fittings, LoadOptions};
use crate::graph::{self, GraphError, ResourceGraph};
use crate::ssh::SshError;
use crate::state::StateError;

pub use selection::Selection;
pub use workspace::{StoreChoice, Workspace};

/// Why an operation stopped. Each variant carries what it is about; the CLI prints it with
/// its causes (`error: ...`, then `caused by: ...`).
#[derive(Debug, Error)]
pub enum OperationError {
    /// The plan does not load or check: every diagnostic, already rendered with its source.
    #[error("{0}")]
    Invalid(String),
    /// Options that contradict each other.
    #[error("{0}")]
    Usage(String),
    #[error("--region {region}: {why}")]
    Region { region: String, why: String },
    /// `--blueprint` names nothing in the plan.
    #[error(transparent)]
    Selection(#[from] selection::UnknownBlueprint),
    #[error("cannot read `{path}`")]
    ReadPlan {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not UTF-8 text (byte {byte})")]
    NotText { path: PathBuf, byte: usize },
    /// A provider the plan uses cannot be reached or set up.
    #[error("{0}")]
    Provider(String),
    #[error(transparent)]
    State(#[from] StateError),
    /// Reading, changing or adopting resources failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("the built-in templates are broken: {0}")]
    Templates(#[from] CatalogError),
    /// Rendering a node's configuration failed.
    #[error(transparent)]
    Render(#[from] BootstrapError),
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A saved plan that no longer describes what deploy would do.
    #[error(transparent)]
    Stale(#[from] saved::Stale),
}

/// A plan loaded, checked and turned into a graph.
pub struct Checked {
    pub source: SourceFile,
    pub fittings: Fittings,
    pub graph: ResourceGraph,
    pub warnings: Vec<Diagnostic>,
    /// `--blueprint`: the part of the plan to act on; `None`, all of it.
    pub selection: Option<Selection>,
    /// What it was loaded with.
    pub options: CheckOptions,
    /// The parameters given (`--parameters` files, then `-p`), merged.
    pub parameters: BTreeMap<String, String>,
    /// `--replace`: addresses of the plan's resources, checked.
    pub replace: std::collections::BTreeSet<String>,
}

/// What [`check`] is given.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The plan file; `-` reads standard input.
    pub path: PathBuf,
    /// `-p NAME=VALUE`; each wins over the same name in `parameter_files`.
    pub parameters: BTreeMap<String, String>,
    /// `--parameters FILE`: YAML maps of parameters, later files winning.
    pub parameter_files: Vec<PathBuf>,
    /// `--provider`: every location on this provider.
    pub provider: Option<ProviderKind>,
    /// `--blueprint`: blueprints or groups to act on (none: the whole plan).
    pub blueprints: Vec<String>,
    /// `--region`: every location of a cloud with regions in this one, whatever its
    /// `locationId` or `regionId` says.
    pub region: Option<String>,
    /// `--target`: resources to act on, with what they need (none: all).
    pub targets: Vec<String>,
    /// `--replace`: resources to destroy and create again even if unchanged.
    pub replace: Vec<String>,
}

/// Loads, checks and builds the plan's graph. Warnings are returned, not printed.
pub fn check(options: &CheckOptions) -> Result<Checked, OperationError> {
    let (name, text) = read_plan(&options.path)?;
    let catalog = catalog()?;
    let mut parameters = BTreeMap::new();
    for file in &options.parameter_files {
        parameters.extend(read_parameters(file)?);
    }
    parameters.extend(options.parameters.clone());
    let load = LoadOptions {
        parameters: parameters.clone(),
        provider: options.provider,
        catalog: &catalog,
    };
    let loaded = fittings::load(&name, &text, &load);
    let Some(mut fittings) = loaded.fittings else {
        return Err(OperationError::Invalid(
            loaded.source.render_all(&loaded.diagnostics),
        ));
    };
    if let Some(region) = &options.region {
        in_region(&mut fittings, region)?;
    }
    let graph = match graph::build(&fittings, &catalog) {
        Ok(g) => g,
        Err(err @ GraphError::Cycle { span, .. }) => {
            let mut all = loaded.diagnostics.clone();
            all.push(Diagnostic::error(span, err.to_string()));
            return Err(OperationError::Invalid(loaded.source.render_all(&all)));
        }
    };
    let selection = Selection::resolve(&fittings, &graph, &options.blueprints, &options.targets)?;
    let replace = selection::known_addresses(&graph, &options.replace, "resource")?;
    Ok(Checked {
        source: loaded.source,
        fittings,
        graph,
        warnings: loaded.diagnostics,
        selection,
        options: options.clone(),
        parameters,
        replace,
    })
}

/// `--region`: every location, network and node on a cloud with regions goes to `region`
/// (checked against each cloud's catalogue); the others (LXD) are left as they are.
fn in_region(fittings: &mut Fittings, region: &str) -> Result<(), OperationError> {
    for location in &mut fittings.locations {
        let cloud = location.provider.cloud();
        if !cloud.has_regions() {
            continue;
        }
        cloud
            .check_region(region)
            .map_err(|why| OperationError::Region {
                region: region.to_string(),
                why,
            })?;
        location.region = Some(region.to_string());
    }
    for network in fittings.networks.iter_mut().filter(|n| n.region.is_some()) {
        network.region = Some(region.to_string());
    }
    for node in fittings.nodes.iter_mut().filter(|n| n.region.is_some()) {
        node.region = Some(region.to_string());
    }
    Ok(())
}

fn read_plan(path: &std::path::Path) -> Result<(String, String), OperationError> {
    use std::io::Read as _;
    if path == std::path::Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| OperationError::ReadPlan {
                path: "standard input".into(),
                source,
            })?;
        return Ok(("<stdin>".to_string(), text));
    }
    let bytes = std::fs::read(path).map_err(|source| OperationError::ReadPlan {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| OperationError::NotText {
        path: path.to_path_buf(),
        byte: e.utf8_error().valid_up_to(),
    })?;
    Ok((path.display().to_string(), text))
}

/// `--parameters FILE`: a YAML mapping of parameter names to scalar values, as `-p` would
/// give them (numbers and booleans as written). Anything else is refused with its place,
/// not turned into text the plan would then carry.
fn read_parameters(path: &std::path::Path) -> Result<BTreeMap<String, String>, OperationError> {
    use serde_yaml_ng::Value;
    let (name, text) = read_plan(path)?;
    let bad = |why: String| OperationError::Usage(format!("--parameters {name}: {why}"));
    let parsed: Value = serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = match parsed {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Mapping(m) => m,
        _ => return Err(bad("not a mapping of `name: value`".into())),
    };
    let mut parameters = BTreeMap::new();
    for (key, value) in map {
        let Value::String(key) = key else {
            return Err(bad(format!("the key `{key:?}` is not a parameter name")));
        };
        let value = match value {
            Value::String(v) => v,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(bad(format!(
                    "`{key}` is not a single value (text, a number or true/false)"
                )));
            }
        };
        parameters.insert(key, value);
    }
    Ok(parameters)
}

/// The components and templates built into fitter.
pub fn catalog() -> Result<Catalog, OperationError> {
    Ok(Catalog::builtin()?)
}

/// The providers the plan's locations use, connected.
pub async fn connect_providers(
    fittings: &Fittings,
    ready_timeout: Duration,
    allow_insecure_http: bool,
) -> Result<Providers, OperationError> {
    let mut providers = Providers::default();
    let mut kinds: Vec<ProviderKind> = fittings.locations.iter().map(|l| l.provider).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let options = ConnectOptions {
            deployment: &fittings.deployment,
            ready_timeout,
            allow_insecure_http,
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
            .map_err(|e| OperationError::Provider(e.to_string()))?;
        providers.insert(provider);
    }
    Ok(providers)
}
