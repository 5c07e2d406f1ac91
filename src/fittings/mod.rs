//! Loading a fittings plan: YAML text in, a checked [`Fittings`] value out, or every problem
//! found, each at its file position.
//!
//! The format is plumbery's (see docs/fittings.md): a settings document (`information`,
//! `links`, `parameters`, `defaults` with node classes and a `cloud-config` for every node),
//! then one document per location with `blueprints`, each holding an `ethernet` and `nodes`.
//! fitter adds `provider:`, node `roles:`, per-provider `size`/`image`/`region`, an explicit
//! `firewall:` form and `depends_on:`.
//!
//! The stages inside the loader:
//! 1. read the settings document alone to learn the parameters' defaults;
//! 2. substitute `{{ parameter.x }}` in the text (positions are mapped back, see
//!    [`SourceFile`]);
//! 3. parse every document into a positioned tree;
//! 4. walk the tree: unknown keys, wrong types, ranges, merges of `default:` classes
//!    (scalars override, lists concatenate, maps merge), roles, rules, networks;
//! 5. cross-checks that need the whole plan: duplicate names, references to peers in
//!    run-time tokens, `depends_on` targets, roles named by firewall sources.
//!
//! Stages 1 to 3 are [`load`] here (with [`params`] and [`crate::yaml`]). Stage 4 follows
//! the plan's shape, one file per level: `settings.rs` (the first document), `locations.rs`,
//! `blueprints.rs`, `networks.rs`, `nodes.rs` (with `classes.rs` for the merge and
//! `cloud_config.rs`), and the small parsers `ranges.rs`, [`rules`] and [`params`]. Stage 5
//! is `cross_checks.rs`. All of them are `impl Loader` blocks sharing one [`Report`].
//!
//! Nothing here panics on any input and nothing stops at the first problem.

mod blueprints;
mod classes;
pub mod cloud_config;
mod cross_checks;
mod locations;
mod networks;
mod nodes;
pub mod params;
mod ranges;
pub mod rules;
pub mod schema;
mod settings;
pub mod tokens;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use fitter_providers::{ProviderKind, did_you_mean};

use crate::components::{COMMON, Catalog, Component, SSHD};
use crate::diagnostics::{Diagnostic, Report, SourceFile};
use crate::yaml::{self, Node, Span};

pub use classes::merge;
pub use cloud_config::CLOUD_CONFIG_KEYS;
pub use ranges::{RangeError, expand_range};
use rules::{Rule, Subnet};
pub use schema::Text;

/// A checked plan.
#[derive(Debug, Clone)]
pub struct Fittings {
    /// Name of the deployment: the `deployment:` setting, else the plan's file name.
    pub deployment: String,
    pub information: Vec<Text>,
    pub links: BTreeMap<String, String>,
    /// Final value of every parameter.
    pub parameters: BTreeMap<String, String>,
    /// Extra public keys to authorise on every node (plumbery's `keys:`).
    pub keys: Vec<Text>,
    pub locations: Vec<Location>,
    pub blueprints: Vec<Blueprint>,
    pub networks: Vec<Network>,
    /// Every node, ranges expanded, in plan order.
    pub nodes: Vec<NodeSpec>,
    /// Per-component settings (`components:` in the settings document).
    pub components: BTreeMap<String, ComponentSettings>,
    /// `ssh: {harden: true}`: every node gets the `sshd` component (no passwords, root by
    /// key only).
    pub harden_ssh: bool,
    /// plumbery's blueprint groups (`- swarm: queen bees`): a name for several blueprints,
    /// which `--blueprint` accepts.
    pub groups: BTreeMap<String, Vec<Text>>,
    /// `backend: {type: postgres, url: ...}`: where the state is kept (a URL without its
    /// password), `--backend` and `FITTER_BACKEND` aside. `None`: the file beside the plan.
    pub backend: Option<Text>,
}

impl Fittings {
    /// The components `node` gets, in the catalogue's order (each after those it comes
    /// after): `common`, `sshd` when the plan hardens SSH, then its roles. The one answer
    /// the graph, the plan and bootstrap all use.
    pub fn components_of<'c>(&self, node: &NodeSpec, catalog: &'c Catalog) -> Vec<&'c Component> {
        catalog
            .ordered()
            .into_iter()
            .filter(|c| {
                c.name == COMMON
                    || (c.name == SSHD && self.harden_ssh)
                    || node.roles.iter().any(|r| r.value == c.name)
            })
            .collect()
    }

    /// Whether `component`'s packages are installed and its services run: the plan's
    /// `components:` setting, else the component's own default.
    pub fn installs(&self, component: &Component) -> bool {
        self.components
            .get(&component.name)
            .and_then(|s| s.install)
            .unwrap_or(component.install)
    }
}

/// How a component is installed, when the plan says otherwise than `templates/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentSettings {
    /// Install packages and run services (`true`), or only place the configuration.
    pub install: Option<bool>,
    /// Extra APT source lines to add before installing the component's packages; the
    /// default is the node's own Debian archive.
    pub packages: Vec<String>,
    /// Values the component's templates read as `settings.NAME` (ZooKeeper's `tickTime`).
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Location {
    pub id: Text,
    pub provider: ProviderKind,
    /// The region (`regionId`, else `locationId`), when the provider has regions.
    pub region: Option<String>,
    pub information: Vec<Text>,
    /// What the location gives a provider under its name (`lxd: {socket: ...}`), by
    /// provider; the keys are the provider's [`location_settings`](fitter_providers::Cloud::location_settings).
    pub settings: BTreeMap<ProviderKind, BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct Blueprint {
    pub name: Text,
    pub location: usize,
    pub network: Option<usize>,
    /// Whether the blueprint has an `ethernet` at all (even one with errors).
    pub ethernet_declared: bool,
    /// Rules from the blueprint's `firewall:` and `ethernet.accept`, for all its nodes.
    pub rules: Vec<Rule>,
    pub nodes: Vec<usize>,
    /// Node or blueprint names whose nodes must exist before this blueprint's nodes.
    pub depends_on: Vec<Text>,
    pub information: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct Network {
    /// The network's name in the deployment: the plan's, or, when another location already
    /// has a network of that name, the plan's with the location's id (`mesos-au11`).
    pub name: Text,
    /// The name as the plan writes it, which the blueprints of its location use.
    pub plan_name: String,
    /// `destroy: never`: dispose keeps it.
    pub destroy_never: bool,
    pub location: usize,
    pub provider: ProviderKind,
    pub region: Option<String>,
    pub subnet: Subnet,
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: Text,
    pub blueprint: usize,
    pub location: usize,
    pub provider: ProviderKind,
    pub region: Option<String>,
    pub size: String,
    pub image: String,
    /// Components from `templates/`, in the plan's order (`common` not included).
    pub roles: Vec<Text>,
    pub network: Option<usize>,
    /// A fixed address from `glue: primary .N`.
    pub private_ip: Option<Ipv4Addr>,
    /// Inbound rules of the node itself (its `glue: internet ...` and `firewall:`), sorted.
    pub rules: Vec<Rule>,
    /// The merged cloud-config: `defaults.cloud-config`, then the class's, then the node's.
    pub cloud_config: Option<Node>,
    pub information: Vec<Text>,
    pub description: Option<String>,
    pub monitoring: bool,
    /// plumbery's `running: always`: never stopped by fitter.
    pub running_always: bool,
    /// plumbery's `destroy: never`: dispose leaves it alone.
    pub destroy_never: bool,
    pub depends_on: Vec<Text>,
    /// Peers named by run-time tokens in the node's cloud-config.
    pub references: Vec<Reference>,
    /// Agent attributes (`rack: rack-1`), for Mesos agents.
    pub attributes: BTreeMap<String, String>,
}

/// `{{ master1.private }}` in a node's cloud-config: the node must wait for `master1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub node: String,
    pub attribute: String,
    pub span: Span,
}

/// What the command line adds to a plan.
#[derive(Debug, Clone)]
pub struct LoadOptions<'a> {
    /// `-p name=value`.
    pub parameters: BTreeMap<String, String>,
    /// `--provider`: overrides every location's provider.
    pub provider: Option<ProviderKind>,
    pub catalog: &'a Catalog,
}

/// The outcome of loading: the plan if it has no error, and every diagnostic either way.
#[derive(Debug)]
pub struct Loaded {
    pub source: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
    pub fittings: Option<Fittings>,
}

/// Range expansion is capped so a typo such as `node[1..99999999]` is an error, not an OOM.
pub const MAX_NODES: usize = 100_000;

/// Loads and checks a plan. `name` is how the file is named in messages.
pub fn load(name: &str, original: &str, options: &LoadOptions) -> Loaded {
    let mut source = SourceFile::new(name, original);
    let mut report = Report::default();

    // 1. The settings document alone, for the parameters' defaults.
    let first = yaml::parse_documents(original, Some(1));
    let settings_guess = first
        .docs
        .first()
        .filter(|d| d.get("locationId").is_none() && d.get("blueprints").is_none());
    let defaults = params::prescan_defaults(settings_guess);

    // 2. Substitution.
    let Some(text) = params::substitute(&mut source, &defaults, &options.parameters, &mut report)
    else {
        return Loaded {
            source,
            diagnostics: report.finish(),
            fittings: None,
        };
    };
    // A token left unsubstituted would make every check of the value it sits in fail too;
    // the operator needs to hear about the parameter only.
    let unsubstituted: Vec<Span> = report.diagnostics.iter().filter_map(|d| d.span).collect();

    // 3. Parsing.
    let docs = yaml::parse_documents(&text, None);
    for problem in &docs.problems {
        report.error(problem.span, problem.message.clone());
    }
    if let Some(err) = &docs.syntax_error {
        let d = Diagnostic::error(err.span, err.message.clone());
        report.push(match &err.help {
            Some(help) => d.with_help(help.clone()),
            None => d,
        });
        return Loaded {
            source,
            diagnostics: report.finish(),
            fittings: None,
        };
    }

    // 4. and 5.
    let mut loader = Loader {
        text: &text,
        report,
        catalog: options.catalog,
        cli_provider: options.provider,
        classes: HashMap::new(),
        used_classes: HashSet::new(),
        pending_tokens: Vec::new(),
        pending_accepts: Vec::new(),
    };
    let fittings = loader.fittings(name, &docs.docs, &options.parameters);
    let mut report = loader.report;
    report.diagnostics.retain(|d| {
        let Some(span) = d.span else { return true };
        unsubstituted.contains(&span)
            || !unsubstituted
                .iter()
                .any(|u| u.start < span.end && span.start < u.end)
    });
    let fittings = if report.has_errors() {
        None
    } else {
        Some(fittings)
    };
    Loaded {
        source,
        diagnostics: report.finish(),
        fittings,
    }
}

/// A token found in a string, checked once every node name is known.
struct PendingToken {
    expr: String,
    span: Span,
    /// The node whose cloud-config holds it; `None` for plan or location `information`.
    node: Option<usize>,
    in_cloud_config: bool,
}

/// The loader's working state while it walks the tree: the report every problem goes to,
/// and what a later check needs from an earlier one. Each file of this folder adds the
/// `impl Loader` for its level of the plan.
struct Loader<'a> {
    /// The parsed (substituted) text, to find tokens inside scalars.
    text: &'a str,
    report: Report,
    catalog: &'a Catalog,
    cli_provider: Option<ProviderKind>,
    classes: HashMap<String, Node>,
    used_classes: HashSet<String>,
    pending_tokens: Vec<PendingToken>,
    /// `ethernet.accept` entries that name a network (`net`, `AU11::net`), resolved once
    /// every location is read.
    pending_accepts: Vec<PendingAccept>,
}

/// An `accept` of another network by name, for the blueprint at `blueprint`.
struct PendingAccept {
    blueprint: usize,
    location: usize,
    /// `AU11` of `AU11::net`; `None`: the blueprint's own location.
    in_location: Option<String>,
    network: String,
    entry: Text,
}

trait TapMessage {
    fn tap_message(self, message: String) -> Self;
}

impl TapMessage for Diagnostic {
    fn tap_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

/// "unknown role `zookeepr`; did you mean `zookeeper`?"
fn not_found(name: &Text, what: &str, candidates: &[&str], place: &str) -> Diagnostic {
    let d = Diagnostic::error(name.span, format!("unknown {what} `{}`", name.value));
    match did_you_mean(&name.value, candidates.iter().copied()) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None if candidates.is_empty() => d.with_help(format!("there is none in {place}")),
        None if candidates.len() <= 12 => {
            d.with_help(format!("expected one of: {}", candidates.join(", ")))
        }
        None => d,
    }
}

/// Host-name rules that both DigitalOcean and LXD accept.
fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
