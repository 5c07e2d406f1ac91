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
//! Nothing here panics on any input and nothing stops at the first problem.

pub mod params;
pub mod rules;
pub mod schema;
pub mod tokens;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use fitter_providers::{ProviderKind, did_you_mean, registry};

use crate::components::{COMMON, Catalog};
use crate::diagnostics::{Diagnostic, Report, SourceFile};
use crate::yaml::{self, Node, Span, Value};

use rules::{Glue, Rule, Source, Subnet};
pub use schema::Text;
use schema::{boolean, check_keys, map, number, text, text_list, unknown_key, wrong_type};
use tokens::Meaning;

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
}

/// How a component is installed, when the plan says otherwise than `templates/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentSettings {
    /// Install packages and run services (`true`), or only place the configuration.
    pub install: Option<bool>,
    /// Extra APT source lines to add before installing the component's packages; the
    /// default is the node's own Debian archive.
    pub packages: Vec<String>,
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
    pub name: Text,
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

const SETTINGS_KEYS: &[&str] = &[
    "information",
    "links",
    "parameters",
    "defaults",
    "actions",
    "keys",
    "safeMode",
    "buildPolisher",
    "deployment",
    "components",
    "ssh",
];
const DEFAULTS_RESERVED: &[&str] = &[
    "provider",
    "domain",
    "ethernet",
    "cloud-config",
    "ipv4",
    "blueprints",
];
const LOCATION_KEYS: &[&str] = &[
    "locationId",
    "regionId",
    "provider",
    "information",
    "blueprints",
    "basement",
    "prepare",
    "apiHost",
];

/// The keys of a location document: fitter's and plumbery's, then one per provider that
/// takes settings from the plan (`lxd: {socket: ...}`).
fn location_keys() -> Vec<&'static str> {
    let providers = registry::all()
        .iter()
        .filter(|kind| !kind.cloud().location_settings().is_empty())
        .map(|kind| kind.name());
    LOCATION_KEYS.iter().copied().chain(providers).collect()
}

const BLUEPRINT_KEYS: &[&str] = &[
    "domain",
    "ethernet",
    "nodes",
    "firewall",
    "depends_on",
    "information",
    "balancers",
    "pool",
];
const ETHERNET_KEYS: &[&str] = &["name", "subnet", "accept", "reserved", "destroy"];
const NODE_KEYS: &[&str] = &[
    "default",
    "roles",
    "size",
    "image",
    "region",
    "cpu",
    "memory",
    "appliance",
    "glue",
    "firewall",
    "cloud-config",
    "information",
    "description",
    "monitoring",
    "running",
    "destroy",
    "depends_on",
    "attributes",
    "derive_firewall",
    "disks",
    "backup",
    "prepare",
    "windows",
];
/// plumbery keys fitter reads but does not act on yet: a warning, not an error.
const NODE_KEYS_IGNORED: &[&str] = &["disks", "backup", "prepare"];

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
    let text = params::substitute(&mut source, &defaults, &options.parameters, &mut report);
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

struct Loader<'a> {
    /// The parsed (substituted) text, to find tokens inside scalars.
    text: &'a str,
    report: Report,
    catalog: &'a Catalog,
    cli_provider: Option<ProviderKind>,
    classes: HashMap<String, Node>,
    used_classes: HashSet<String>,
    pending_tokens: Vec<PendingToken>,
}

impl Loader<'_> {
    fn fittings(
        &mut self,
        file_name: &str,
        docs: &[Node],
        given: &BTreeMap<String, String>,
    ) -> Fittings {
        let (settings, location_docs): (Option<&Node>, Vec<&Node>) = match docs {
            [] => (None, Vec::new()),
            [only] if only.get("locationId").is_some() || only.get("blueprints").is_some() => {
                (None, vec![only])
            }
            [first, rest @ ..] => (Some(first), rest.iter().filter(|d| !d.is_null()).collect()),
        };
        if let Some(s) = settings {
            if !s.is_null() && s.as_map().is_none() {
                self.report.error(
                    s.span,
                    format!(
                        "the settings document must be a mapping, found {}",
                        s.kind()
                    ),
                );
            }
            check_keys(&mut self.report, s, "the settings document", SETTINGS_KEYS);
        }
        let parameters = params::check_parameters(settings, given, &mut self.report);

        let mut fittings = Fittings {
            deployment: self.deployment_name(settings, file_name),
            information: Vec::new(),
            links: BTreeMap::new(),
            parameters,
            keys: Vec::new(),
            locations: Vec::new(),
            blueprints: Vec::new(),
            networks: Vec::new(),
            nodes: Vec::new(),
            components: BTreeMap::new(),
            harden_ssh: false,
        };

        let mut defaults_provider = None;
        let mut defaults_cloud_config = None;
        let mut defaults_ethernet = None;
        if let Some(s) = settings {
            if let Some(info) = s.get("information") {
                fittings.information = self.information(info, None);
            }
            if let Some(links) = s.get("links") {
                for (k, v) in map(&mut self.report, links, "links").unwrap_or_default() {
                    if let (Some(k), Some(v)) = (k.scalar_text(), text(&mut self.report, v, "link"))
                    {
                        fittings.links.insert(k, v.value);
                    }
                }
            }
            if let Some(ssh) = s.get("ssh") {
                check_keys(&mut self.report, ssh, "ssh", &["harden"]);
                fittings.harden_ssh = ssh
                    .get("harden")
                    .and_then(|h| boolean(&mut self.report, h, "harden"))
                    .unwrap_or(false);
            }
            if let Some(components) = s.get("components") {
                fittings.components = self.components(components);
            }
            if let Some(keys) = s.get("keys") {
                fittings.keys = text_list(&mut self.report, keys, "keys");
            }
            if let Some(safe) = s.get("safeMode")
                && boolean(&mut self.report, safe, "safeMode") == Some(true)
            {
                self.report.warning(
                    safe.span,
                    "`safeMode` is plumbery's dry run; with fitter run `fitter plan` instead",
                );
            }
            if let Some(d) = s.get("defaults") {
                for (key, value) in map(&mut self.report, d, "defaults").unwrap_or_default() {
                    let Some(k) = key.scalar_text() else {
                        wrong_type(&mut self.report, key, "defaults key", "a name");
                        continue;
                    };
                    match k.as_str() {
                        "provider" => defaults_provider = self.provider(value),
                        "cloud-config" => {
                            if map(&mut self.report, value, "cloud-config").is_some() {
                                defaults_cloud_config = Some(value.clone());
                            }
                        }
                        "ethernet" => {
                            check_keys(&mut self.report, value, "ethernet", ETHERNET_KEYS);
                            defaults_ethernet = Some(value.clone());
                        }
                        "domain" | "ipv4" | "blueprints" => {}
                        _ => {
                            // Any other key is a node class.
                            if value.as_map().is_none() {
                                let d = Diagnostic::error(
                                    key.span,
                                    format!("unknown key `{k}` in defaults"),
                                );
                                self.report.push(
                                    match did_you_mean(&k, DEFAULTS_RESERVED.iter().copied()) {
                                        Some(best) => {
                                            d.with_help(format!("did you mean `{best}`?"))
                                        }
                                        None => d.with_help(
                                            "a node class must be a mapping of node settings",
                                        ),
                                    },
                                );
                                continue;
                            }
                            check_keys(
                                &mut self.report,
                                value,
                                &format!("node class `{k}`"),
                                NODE_KEYS,
                            );
                            if let Some(inner) = value.get("default") {
                                self.report.error(
                                    inner.span,
                                    format!("node class `{k}` cannot itself have a `default`"),
                                );
                            }
                            self.classes.insert(k, value.clone());
                        }
                    }
                }
            }
        }

        if location_docs.is_empty() {
            self.report.warning(
                settings.map(|s| s.span),
                "the plan has no location document: there is nothing to deploy",
            );
        }
        for doc in location_docs {
            self.location(
                &mut fittings,
                doc,
                defaults_provider,
                defaults_cloud_config.as_ref(),
                defaults_ethernet.as_ref(),
            );
        }
        self.cross_checks(&mut fittings);
        fittings
    }

    /// `components: {docker: {install: true, packages: ["deb http://... main"]}}`.
    fn components(&mut self, node: &Node) -> BTreeMap<String, ComponentSettings> {
        let mut out = BTreeMap::new();
        for (key, value) in map(&mut self.report, node, "components").unwrap_or_default() {
            let Some(name) = text(&mut self.report, key, "component") else {
                continue;
            };
            if self.catalog.get(&name.value).is_none() {
                let known: Vec<&str> = self.catalog.role_names().collect();
                self.report
                    .push(not_found(&name, "component", &known, "templates/"));
                continue;
            }
            check_keys(
                &mut self.report,
                value,
                &format!("component `{}`", name.value),
                &["install", "packages"],
            );
            let settings = ComponentSettings {
                install: value
                    .get("install")
                    .and_then(|i| boolean(&mut self.report, i, "install")),
                packages: value
                    .get("packages")
                    .map(|p| text_list(&mut self.report, p, "packages"))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.value)
                    .collect(),
            };
            out.insert(name.value, settings);
        }
        out
    }

    fn deployment_name(&mut self, settings: Option<&Node>, file_name: &str) -> String {
        if let Some(node) = settings.and_then(|s| s.get("deployment"))
            && let Some(t) = text(&mut self.report, node, "deployment")
        {
            let valid = !t.value.is_empty()
                && t.value.len() <= 40
                && t.value.starts_with(|c: char| c.is_ascii_lowercase())
                && t.value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                self.report.error(t.span, format!("deployment name `{}` must be 1 to 40 lowercase letters, digits and dashes, starting with a letter", t.value));
            }
            return t.value;
        }
        let stem = std::path::Path::new(file_name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("fittings");
        let mut name: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        name.truncate(40);
        let name = name.trim_matches('-').to_string();
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            format!("fitter-{name}").trim_end_matches('-').to_string()
        } else {
            name
        }
    }

    fn provider(&mut self, node: &Node) -> Option<ProviderKind> {
        let t = text(&mut self.report, node, "provider")?;
        match registry::parse(&t.value) {
            Some(p) => Some(p),
            None => {
                let names = registry::names();
                self.report.push(
                    unknown_key(t.span, &t.value, "providers", &names)
                        .tap_message(format!("unknown provider `{}`", t.value)),
                );
                None
            }
        }
    }

    fn information(&mut self, node: &Node, owner: Option<usize>) -> Vec<Text> {
        let lines = text_list(&mut self.report, node, "information");
        for line in &lines {
            self.collect_tokens(&line.value, line.span, owner, false);
        }
        lines
    }

    fn location(
        &mut self,
        fittings: &mut Fittings,
        doc: &Node,
        defaults_provider: Option<ProviderKind>,
        defaults_cloud_config: Option<&Node>,
        defaults_ethernet: Option<&Node>,
    ) {
        if doc.as_map().is_none() {
            self.report.error(
                doc.span,
                format!(
                    "a location document must be a mapping, found {}",
                    doc.kind()
                ),
            );
            return;
        }
        check_keys(
            &mut self.report,
            doc,
            "a location document",
            &location_keys(),
        );
        let id = match doc.get("locationId") {
            Some(n) => text(&mut self.report, n, "locationId"),
            None => {
                self.report
                    .error(doc.span, "location document has no `locationId`");
                None
            }
        }
        .unwrap_or_else(|| Text::new("", doc.span));
        let own_provider = doc.get("provider").and_then(|p| self.provider(p));
        let provider = self
            .cli_provider
            .or(own_provider)
            .or(defaults_provider)
            .unwrap_or_else(registry::default_kind);
        let cloud = provider.cloud();
        let region = if cloud.has_regions() {
            let r = doc
                .get("regionId")
                .and_then(|n| text(&mut self.report, n, "regionId"))
                .unwrap_or_else(|| id.clone());
            if let Err(why) = cloud.check_region(&r.value) {
                self.report.error(r.span, why);
            }
            Some(r.value)
        } else {
            None
        };
        if let Some(api) = doc.get("apiHost") {
            self.report.error(api.span, "`apiHost` (a private Dimension Data cloud) is not supported; set `provider:` instead");
        }
        if let Some(prepare) = doc.get("prepare") {
            self.report.warning(prepare.span, "`prepare` (beachhead) is not supported and is ignored: fitter reaches nodes directly");
        }
        let mut settings = BTreeMap::new();
        for kind in registry::all() {
            let keys = kind.cloud().location_settings();
            let Some(block) = doc.get(kind.name()).filter(|_| !keys.is_empty()) else {
                continue;
            };
            check_keys(&mut self.report, block, kind.name(), keys);
            let values: BTreeMap<String, String> = keys
                .iter()
                .filter_map(|key| {
                    let value = text(&mut self.report, block.get(key)?, key)?;
                    Some((key.to_string(), value.value))
                })
                .collect();
            settings.insert(*kind, values);
        }
        let location_index = fittings.locations.len();
        let information = match doc.get("information") {
            Some(info) => self.information(info, None),
            None => Vec::new(),
        };
        fittings.locations.push(Location {
            id,
            provider,
            region,
            information,
            settings,
        });

        let basement: Vec<Text> = doc
            .get("basement")
            .map(|b| text_list(&mut self.report, b, "basement"))
            .unwrap_or_default();
        let Some(blueprints) = doc.get("blueprints") else {
            self.report.warning(
                doc.span,
                "location document has no `blueprints`: nothing to deploy there",
            );
            return;
        };
        let Some(items) = blueprints.as_seq() else {
            wrong_type(
                &mut self.report,
                blueprints,
                "blueprints",
                "a list of `- name: {...}` entries",
            );
            return;
        };
        let first_blueprint = fittings.blueprints.len();
        for item in items {
            match item.as_map() {
                Some([(key, value)]) => {
                    let Some(name) = text(&mut self.report, key, "blueprint name") else {
                        continue;
                    };
                    if value.as_str().is_some() {
                        self.report.warning(value.span, format!("blueprint group `{}` is ignored: fitter deploys every blueprint of the plan", name.value));
                        continue;
                    }
                    self.blueprint(
                        fittings,
                        location_index,
                        name,
                        value,
                        defaults_cloud_config,
                        defaults_ethernet,
                    );
                }
                _ => wrong_type(
                    &mut self.report,
                    item,
                    "blueprint",
                    "a mapping with one key, the blueprint's name",
                ),
            }
        }
        // plumbery's basement: built first, destroyed last.
        for b in &basement {
            if !fittings.blueprints[first_blueprint..]
                .iter()
                .any(|bp| bp.name.value == b.value)
            {
                let names: Vec<&str> = fittings.blueprints[first_blueprint..]
                    .iter()
                    .map(|bp| bp.name.value.as_str())
                    .collect();
                self.report
                    .push(not_found(b, "blueprint", &names, "basement"));
            }
        }
        for bp in &mut fittings.blueprints[first_blueprint..] {
            if !basement.iter().any(|b| b.value == bp.name.value) {
                bp.depends_on.extend(basement.iter().cloned());
            }
        }
    }

    fn blueprint(
        &mut self,
        fittings: &mut Fittings,
        location: usize,
        name: Text,
        value: &Node,
        defaults_cloud_config: Option<&Node>,
        defaults_ethernet: Option<&Node>,
    ) {
        if value.as_map().is_none() {
            wrong_type(
                &mut self.report,
                value,
                &format!("blueprint `{}`", name.value),
                "a mapping",
            );
            return;
        }
        check_keys(
            &mut self.report,
            value,
            &format!("blueprint `{}`", name.value),
            BLUEPRINT_KEYS,
        );
        for unsupported in ["balancers", "pool"] {
            if let Some(n) = value.get(unsupported) {
                self.report.warning(
                    n.span,
                    format!("`{unsupported}` (load balancers) is not supported yet and is ignored"),
                );
            }
        }
        let blueprint_index = fittings.blueprints.len();
        let mut rules = Vec::new();
        let ethernet = match (defaults_ethernet, value.get("ethernet")) {
            (Some(d), Some(own)) => Some(merge(d, own)),
            (d, own) => own.or(d).cloned(),
        };
        let network = match &ethernet {
            Some(e) => self.network(fittings, location, e, &mut rules),
            None => None,
        };
        if let Some(fw) = value.get("firewall") {
            rules::parse_firewall(&mut self.report, fw, &mut rules);
        }
        let depends_on = value
            .get("depends_on")
            .map(|d| text_list(&mut self.report, d, "depends_on"))
            .unwrap_or_default();
        let information = value
            .get("information")
            .map(|i| self.information(i, None))
            .unwrap_or_default();
        fittings.blueprints.push(Blueprint {
            name: name.clone(),
            location,
            network,
            ethernet_declared: ethernet.is_some(),
            rules,
            nodes: Vec::new(),
            depends_on,
            information,
        });
        let Some(nodes) = value.get("nodes") else {
            self.report.warning(
                name.span,
                format!("blueprint `{}` has no `nodes`", name.value),
            );
            return;
        };
        let Some(entries) = nodes.as_seq() else {
            wrong_type(
                &mut self.report,
                nodes,
                "nodes",
                "a list of node names or `- name: {...}` entries",
            );
            return;
        };
        for entry in entries {
            let (key, own) = match &entry.value {
                Value::Str(_) | Value::Int(_) => (entry, None),
                Value::Map(pairs) if pairs.len() == 1 => (&pairs[0].0, Some(&pairs[0].1)),
                _ => {
                    wrong_type(
                        &mut self.report,
                        entry,
                        "node",
                        "a name or a mapping with one key, the node's name",
                    );
                    continue;
                }
            };
            let Some(pattern) = text(&mut self.report, key, "node name") else {
                continue;
            };
            let names = match expand_range(&pattern.value) {
                Ok(names) => names,
                Err(why) => {
                    self.report.error(pattern.span, why);
                    continue;
                }
            };
            if fittings.nodes.len() + names.len() > MAX_NODES {
                self.report.error(
                    pattern.span,
                    format!("the plan would have more than {MAX_NODES} nodes"),
                );
                return;
            }
            let own = own.filter(|o| !o.is_null());
            if let Some(o) = own {
                if o.as_map().is_none() {
                    wrong_type(
                        &mut self.report,
                        o,
                        &format!("node `{}`", pattern.value),
                        "a mapping of node settings",
                    );
                    continue;
                }
                check_keys(
                    &mut self.report,
                    o,
                    &format!("node `{}`", pattern.value),
                    NODE_KEYS,
                );
            }
            let merged = self.merged_settings(own, defaults_cloud_config);
            for node_name in names {
                let node = self.node(
                    fittings,
                    blueprint_index,
                    Text::new(node_name, pattern.span),
                    &merged,
                );
                let index = fittings.nodes.len();
                fittings.nodes.push(node);
                fittings.blueprints[blueprint_index].nodes.push(index);
            }
        }
    }

    fn network(
        &mut self,
        fittings: &mut Fittings,
        location: usize,
        ethernet: &Node,
        rules: &mut Vec<Rule>,
    ) -> Option<usize> {
        check_keys(&mut self.report, ethernet, "ethernet", ETHERNET_KEYS);
        let name = match ethernet.get("name") {
            Some(n) => text(&mut self.report, n, "ethernet name")?,
            None => {
                self.report
                    .error(ethernet.span, "`ethernet` needs a `name`");
                return None;
            }
        };
        if !valid_hostname(&name.value) {
            self.report.error(name.span, format!("network name `{}` must be letters, digits and dashes, starting with a letter, at most 63 characters", name.value));
        }
        let subnet_node = match ethernet.get("subnet") {
            Some(s) => s,
            None => {
                self.report.error(
                    ethernet.span,
                    format!(
                        "ethernet `{}` needs a `subnet` such as `10.0.0.0/24`",
                        name.value
                    ),
                );
                return None;
            }
        };
        let subnet_text = text(&mut self.report, subnet_node, "subnet")?;
        let subnet = match Subnet::parse(&subnet_text.value) {
            Ok(s) => s,
            Err(why) => {
                self.report.error(subnet_text.span, why);
                return None;
            }
        };
        if let Some(accept) = ethernet.get("accept") {
            for a in text_list(&mut self.report, accept, "accept") {
                match Subnet::parse(&a.value) {
                    Ok(other) => {
                        for protocol in [rules::Protocol::Tcp, rules::Protocol::Udp] {
                            rules.push(Rule { protocol, ports: Some((0, 0)), source: Source::Cidr(other.to_string()) });
                        }
                        rules.push(Rule { protocol: rules::Protocol::Icmp, ports: None, source: Source::Cidr(other.to_string()) });
                    }
                    Err(_) => self.report.error(a.span, format!("`accept` takes the subnet of the other network (such as `10.1.0.0/24`), found `{}`", a.value)),
                }
            }
        }
        if let Some(d) = ethernet.get("destroy") {
            self.report.warning(d.span, "`destroy` on an ethernet is ignored: dispose removes the networks a deployment created");
        }
        let location_ref = &fittings.locations[location];
        if let Err(why) = location_ref
            .provider
            .cloud()
            .check_network_name(&name.value)
        {
            self.report.error(name.span, why);
        }
        if let Some(existing) = fittings
            .networks
            .iter()
            .position(|n| n.name.value == name.value)
        {
            let n = &fittings.networks[existing];
            if n.location != location {
                self.report.error(
                    name.span,
                    format!(
                        "network `{}` is already defined in location `{}`; use another name",
                        name.value, fittings.locations[n.location].id.value
                    ),
                );
            } else if n.subnet != subnet {
                self.report.error(
                    subnet_text.span,
                    format!(
                        "network `{}` already has subnet {}, here {}",
                        name.value, n.subnet, subnet
                    ),
                );
            }
            return Some(existing);
        }
        for other in &fittings.networks {
            if other.location == location && other.subnet.overlaps(&subnet) {
                self.report.error(
                    subnet_text.span,
                    format!(
                        "subnet {subnet} of network `{}` overlaps {} of network `{}`",
                        name.value, other.subnet, other.name.value
                    ),
                );
            }
        }
        fittings.networks.push(Network {
            name,
            location,
            provider: location_ref.provider,
            region: location_ref.region.clone(),
            subnet,
        });
        Some(fittings.networks.len() - 1)
    }

    /// A node's settings: its class, then its own keys; cloud-config starts from the
    /// defaults' (plumbery's order: defaults, class, node; lists concatenate).
    fn merged_settings(
        &mut self,
        own: Option<&Node>,
        defaults_cloud_config: Option<&Node>,
    ) -> Node {
        let empty = Node::new(Value::Map(Vec::new()), Span::default());
        let own = own.unwrap_or(&empty);
        let class = match own.get("default") {
            Some(d) => match text(&mut self.report, d, "default") {
                Some(name) => match self.classes.get(&name.value) {
                    Some(c) => {
                        self.used_classes.insert(name.value.clone());
                        Some(c.clone())
                    }
                    None => {
                        let known: Vec<&str> = self.classes.keys().map(String::as_str).collect();
                        self.report
                            .push(not_found(&name, "node class", &known, "defaults"));
                        None
                    }
                },
                None => None,
            },
            None => None,
        };
        let mut merged = match &class {
            Some(c) => merge(c, own),
            None => own.clone(),
        };
        if let Some(base) = defaults_cloud_config {
            let node_cc = merged.get("cloud-config").cloned();
            let cc = match node_cc {
                Some(cc) => merge(base, &cc),
                None => base.clone(),
            };
            set_key(&mut merged, "cloud-config", cc);
        }
        merged
    }

    fn node(
        &mut self,
        fittings: &Fittings,
        blueprint: usize,
        name: Text,
        settings: &Node,
    ) -> NodeSpec {
        let location = fittings.blueprints[blueprint].location;
        let loc = &fittings.locations[location];
        let provider = loc.provider;
        let cloud = provider.cloud();
        let index = fittings.nodes.len();
        if !valid_hostname(&name.value) {
            self.report.error(name.span, format!("node name `{}` is not a valid host name: use letters, digits and dashes, start with a letter, at most 63 characters", name.value));
        } else if tokens::RESERVED_NAMES.contains(&name.value.as_str()) {
            self.report.error(
                name.span,
                format!(
                    "`{}` cannot name a node: `{{{{ {}.x }}}}` already means something else",
                    name.value, name.value
                ),
            );
        }

        let size = match settings.get("size") {
            Some(s) => self.per_provider(s, "size", provider),
            None => None,
        };
        let size = match size {
            Some(s) => {
                if let Err(why) = cloud.check_size(&s.value) {
                    self.report.error(s.span, why);
                }
                s.value
            }
            None => self.size_from_cpu_memory(settings, provider),
        };
        let image = match settings.get("image") {
            Some(i) => self.per_provider(i, "image", provider),
            None => None,
        };
        let image = match image {
            Some(i) => {
                if let Err(why) = cloud.check_image(&i.value) {
                    self.report.error(i.span, why);
                }
                i.value
            }
            None => match settings
                .get("appliance")
                .and_then(|a| text(&mut self.report, a, "appliance"))
            {
                Some(a) => match cloud.image_for_appliance(&a.value) {
                    Ok(slug) => slug.to_string(),
                    Err(why) => {
                        self.report.error(a.span, why);
                        String::new()
                    }
                },
                None => cloud.default_image().to_string(),
            },
        };
        let region = match settings.get("region") {
            Some(r) => match self.per_provider(r, "region", provider) {
                Some(r) if cloud.has_regions() => {
                    if let Err(why) = cloud.check_region(&r.value) {
                        self.report.error(r.span, why);
                    }
                    let network = fittings.blueprints[blueprint].network;
                    if let Some(n) = network.map(|n| &fittings.networks[n])
                        && n.region.as_deref() != Some(r.value.as_str())
                    {
                        self.report.error(
                            r.span,
                            format!(
                                "node `{}` is in region `{}` but its network `{}` is in `{}`",
                                name.value,
                                r.value,
                                n.name.value,
                                n.region.as_deref().unwrap_or("")
                            ),
                        );
                    }
                    Some(r.value)
                }
                _ => loc.region.clone(),
            },
            None => loc.region.clone(),
        };

        let mut roles = Vec::new();
        if let Some(r) = settings.get("roles") {
            for role in text_list(&mut self.report, r, "roles") {
                if role.value == COMMON {
                    continue;
                }
                if self.catalog.get(&role.value).is_none() {
                    self.report.push(self.unknown_role(&role));
                } else if roles.iter().any(|r: &Text| r.value == role.value) {
                    continue;
                } else {
                    roles.push(role);
                }
            }
        }

        let mut glue = Glue::default();
        if let Some(g) = settings.get("glue") {
            rules::parse_glue(&mut self.report, g, &mut glue);
        }
        let mut rules = glue.rules;
        if let Some(fw) = settings.get("firewall") {
            rules::parse_firewall(&mut self.report, fw, &mut rules);
        }
        let derive = match settings.get("derive_firewall") {
            Some(d) => boolean(&mut self.report, d, "derive_firewall").unwrap_or(true),
            None => true,
        };
        if derive {
            rules.extend(self.derived_rules(&roles));
        }
        rules.sort();
        rules.dedup();

        let network = fittings.blueprints[blueprint].network;
        let private_ip = match (&glue.primary, network) {
            (Some(p), Some(n)) => match fittings.networks[n].subnet.host(&p.value) {
                Ok(ip) => Some(ip),
                Err(why) => {
                    self.report.error(p.span, why);
                    None
                }
            },
            (Some(p), None) => {
                if !fittings.blueprints[blueprint].ethernet_declared {
                    self.report.error(
                        p.span,
                        "`glue: primary` needs the blueprint to have an `ethernet`",
                    );
                }
                None
            }
            (None, _) => None,
        };
        if network.is_none()
            && cloud.requires_network()
            && !fittings.blueprints[blueprint].ethernet_declared
        {
            self.report.error(name.span, format!("node `{}` has no network: {provider} nodes need their blueprint to have an `ethernet` with a `subnet`", name.value));
        }

        let cloud_config = settings.get("cloud-config").and_then(|cc| {
            for (key, value) in map(&mut self.report, cc, "cloud-config")? {
                let k = key.scalar_text().unwrap_or_default();
                if k == "runcmd" || k == "bootcmd" {
                    for item in value.as_seq().unwrap_or_default() {
                        if item.as_map().is_some() {
                            self.report.push(
                                Diagnostic::error(
                                    item.span,
                                    format!("this `{k}` entry is a mapping, not a command"),
                                )
                                .with_help("a `: ` in an unquoted line makes YAML read a key; quote the whole line"),
                            );
                        }
                    }
                }
                if !crate::bootstrap::CLOUD_CONFIG_KEYS.contains(&k.as_str()) {
                    self.report.warning(
                        key.span,
                        format!(
                            "cloud-config key `{k}` is not applied by fitter (it applies {})",
                            crate::bootstrap::CLOUD_CONFIG_KEYS.join(", ")
                        ),
                    );
                }
            }
            self.collect_node_tokens(cc, index);
            Some(cc.clone())
        });
        let information = settings
            .get("information")
            .map(|i| self.information(i, Some(index)))
            .unwrap_or_default();
        let description = settings
            .get("description")
            .and_then(|d| text(&mut self.report, d, "description"))
            .map(|t| t.value);
        let monitoring = match settings.get("monitoring") {
            None => false,
            Some(m) => match &m.value {
                Value::Bool(b) => *b,
                Value::Str(s) if s == "essentials" || s == "advanced" => true,
                _ => {
                    wrong_type(
                        &mut self.report,
                        m,
                        "monitoring",
                        "`true`, `false`, `essentials` or `advanced`",
                    );
                    false
                }
            },
        };
        let running_always = self.word(settings, "running", "always");
        let destroy_never = self.word(settings, "destroy", "never");
        if let Some(w) = settings.get("windows") {
            self.report.error(w.span, "Windows nodes are not supported");
        }
        for key in NODE_KEYS_IGNORED {
            if let Some(n) = settings.get(key) {
                self.report.warning(
                    n.span,
                    format!("`{key}` is not supported yet and is ignored"),
                );
            }
        }
        let mut attributes = BTreeMap::new();
        if let Some(a) = settings.get("attributes") {
            for (k, v) in map(&mut self.report, a, "attributes").unwrap_or_default() {
                let (Some(k), Some(v)) = (k.scalar_text(), text(&mut self.report, v, "attribute"))
                else {
                    continue;
                };
                if k.is_empty()
                    || !k
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    self.report.error(
                        a.span,
                        format!("attribute name `{k}` must be letters, digits, `_` and `-`"),
                    );
                    continue;
                }
                attributes.insert(k, v.value);
            }
        }
        let mut depends_on = settings
            .get("depends_on")
            .map(|d| text_list(&mut self.report, d, "depends_on"))
            .unwrap_or_default();
        depends_on.extend(fittings.blueprints[blueprint].depends_on.iter().cloned());

        NodeSpec {
            name,
            blueprint,
            location,
            provider,
            region,
            size,
            image,
            roles,
            network,
            private_ip,
            rules,
            cloud_config,
            information,
            description,
            monitoring,
            running_always,
            destroy_never,
            depends_on,
            references: Vec::new(),
            attributes,
        }
    }

    /// plumbery's `running: always` / `destroy: never`: one accepted word.
    fn word(&mut self, settings: &Node, key: &str, word: &str) -> bool {
        match settings.get(key) {
            None => false,
            Some(n) => match n.as_str() {
                Some(w) if w == word => true,
                _ => {
                    wrong_type(&mut self.report, n, key, &format!("`{word}`"));
                    false
                }
            },
        }
    }

    /// `size: s-1vcpu-1gb`, or one value per provider: `size: {digitalocean: ..., lxd: ...}`.
    fn per_provider(&mut self, node: &Node, what: &str, provider: ProviderKind) -> Option<Text> {
        match &node.value {
            Value::Map(entries) => {
                let names = registry::names();
                check_keys(&mut self.report, node, &format!("`{what}`"), &names);
                let (_, v) = entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(provider.name()))?;
                text(&mut self.report, v, what)
            }
            _ => text(&mut self.report, node, what),
        }
    }

    fn size_from_cpu_memory(&mut self, settings: &Node, provider: ProviderKind) -> String {
        let cpu = settings.get("cpu").and_then(|c| {
            // plumbery: "8 [1|2] [standard|highperformance]": the first word is the count.
            let first = c.scalar_text()?.split_whitespace().next()?.to_string();
            match first.parse::<u32>() {
                Ok(n) if (1..=64).contains(&n) => Some(n),
                _ => {
                    self.report.error(
                        c.span,
                        format!(
                            "`cpu` must start with a number of CPUs from 1 to 64, found `{first}`"
                        ),
                    );
                    None
                }
            }
        });
        let memory = settings
            .get("memory")
            .and_then(|m| number(&mut self.report, m, "memory", 1, 512))
            .map(|m| m as u32);
        if cpu.is_none() && memory.is_none() {
            return provider.cloud().default_size().to_string();
        }
        let (cpu, memory) = (cpu.unwrap_or(1), memory.unwrap_or(1));
        match provider.cloud().size_for(cpu, memory) {
            Some(s) => s.to_string(),
            None => {
                let span = settings
                    .get("cpu")
                    .or(settings.get("memory"))
                    .map(|n| n.span);
                self.report.error(
                    span,
                    format!("no size has {cpu} CPUs and {memory} GB of memory"),
                );
                String::new()
            }
        }
    }

    fn collect_node_tokens(&mut self, node: &Node, owner: usize) {
        match &node.value {
            Value::Str(s) => self.collect_tokens(s, node.span, Some(owner), true),
            Value::Seq(items) => items
                .iter()
                .for_each(|i| self.collect_node_tokens(i, owner)),
            Value::Map(entries) => {
                for (k, v) in entries {
                    self.collect_node_tokens(k, owner);
                    self.collect_node_tokens(v, owner);
                }
            }
            _ => {}
        }
    }

    fn collect_tokens(&mut self, s: &str, span: Span, owner: Option<usize>, in_cloud_config: bool) {
        if !s.contains("{{") {
            return;
        }
        for token in tokens::scan(s) {
            let raw = &s[token.start..token.end];
            // Find the token's own position in the file; block and quoted scalars shift it.
            let window_end = (span.start + s.len() * 2 + 64).min(self.text.len());
            let token_span = self
                .text
                .get(span.start..window_end)
                .and_then(|w| w.find(raw))
                .map(|at| Span::new(span.start + at, span.start + at + raw.len()))
                .unwrap_or(span);
            self.pending_tokens.push(PendingToken {
                expr: token.expr.to_string(),
                span: token_span,
                node: owner,
                in_cloud_config,
            });
        }
    }

    fn cross_checks(&mut self, fittings: &mut Fittings) {
        // Duplicate names: one error per entry, however many names its range repeats.
        let mut first_seen: HashMap<&str, Span> = HashMap::with_capacity(fittings.nodes.len());
        let mut reported: HashSet<Span> = HashSet::new();
        for node in &fittings.nodes {
            if let Some(first) = first_seen.get(node.name.value.as_str()) {
                if reported.insert(node.name.span) {
                    let line = yaml::line_of(self.text, first.start);
                    self.report.error(
                        node.name.span,
                        format!(
                            "duplicate node name `{}` (first defined on line {line})",
                            node.name.value
                        ),
                    );
                }
            } else {
                first_seen.insert(&node.name.value, node.name.span);
            }
        }
        let names: HashSet<String> = first_seen.keys().map(|n| n.to_string()).collect();
        let mut sorted_names: Vec<&str> = names.iter().map(String::as_str).collect();
        sorted_names.sort_unstable();

        // Fixed addresses must be unique on their network.
        let mut fixed: HashMap<(usize, Ipv4Addr), &str> = HashMap::new();
        for node in &fittings.nodes {
            if let (Some(ip), Some(n)) = (node.private_ip, node.network)
                && let Some(other) = fixed.insert((n, ip), &node.name.value)
                && other != node.name.value
            {
                self.report.error(
                    node.name.span,
                    format!(
                        "node `{}` has address {ip}, already given to `{other}`",
                        node.name.value
                    ),
                );
            }
        }

        // depends_on: node or blueprint names.
        let blueprint_names: HashSet<&str> = fittings
            .blueprints
            .iter()
            .map(|b| b.name.value.as_str())
            .collect();
        for node in &fittings.nodes {
            for dep in &node.depends_on {
                if !names.contains(&dep.value) && !blueprint_names.contains(dep.value.as_str()) {
                    let mut candidates = sorted_names.clone();
                    candidates.extend(blueprint_names.iter().copied());
                    self.report
                        .push(not_found(dep, "node or blueprint", &candidates, "the plan"));
                }
            }
        }

        // Roles named by firewall sources.
        let known_roles: Vec<&str> = self.catalog.role_names().collect();
        let rule_sets = fittings
            .nodes
            .iter()
            .map(|n| &n.rules)
            .chain(fittings.blueprints.iter().map(|b| &b.rules));
        for rules in rule_sets {
            for rule in rules {
                if let Source::Role(role) = &rule.source
                    && !known_roles.contains(&role.value.as_str())
                {
                    self.report.push(self.unknown_role(role));
                }
            }
        }

        // Run-time tokens.
        let pending = std::mem::take(&mut self.pending_tokens);
        for token in pending {
            match tokens::classify(&token.expr, |n| names.contains(n)) {
                Meaning::Peer { node, attribute } => {
                    if !names.contains(node) {
                        let d = Diagnostic::error(
                            token.span,
                            format!(
                                "`{{{{ {} }}}}` refers to node `{node}`, which the plan does not define",
                                token.expr
                            ),
                        );
                        self.report
                            .push(match did_you_mean(node, sorted_names.iter().copied()) {
                                Some(best) => d.with_help(format!("did you mean `{best}`?")),
                                None => d,
                            });
                    } else if !tokens::NODE_ATTRIBUTES.contains(&attribute) {
                        self.report.push(not_found(
                            &Text::new(attribute, token.span),
                            "node attribute",
                            tokens::NODE_ATTRIBUTES,
                            "a node",
                        ));
                    } else if let (Some(owner), true) = (token.node, token.in_cloud_config)
                        && fittings.nodes[owner].name.value != node
                    {
                        fittings.nodes[owner].references.push(Reference {
                            node: node.to_string(),
                            attribute: attribute.to_string(),
                            span: token.span,
                        });
                    }
                }
                Meaning::SelfAttribute(_) if token.node.is_none() => {
                    self.report.error(token.span, format!("`{{{{ {} }}}}` means the node being configured, and there is none here", token.expr));
                }
                Meaning::UnknownSelfAttribute(attr) => {
                    self.report.push(not_found(
                        &Text::new(attr, token.span),
                        "node attribute",
                        tokens::NODE_ATTRIBUTES,
                        "a node",
                    ));
                }
                Meaning::SelfAttribute(_) | Meaning::Generated | Meaning::Verbatim => {}
            }
        }

        // Classes defined and never used are probably typos of a used one.
        let mut unused: Vec<(&String, &Node)> = self
            .classes
            .iter()
            .filter(|(k, _)| !self.used_classes.contains(*k))
            .collect();
        unused.sort_by_key(|(_, n)| n.span.start);
        let warnings: Vec<Diagnostic> = unused
            .into_iter()
            .map(|(name, node)| {
                let span = self.classes_key_span(name).unwrap_or(node.span);
                Diagnostic::warning(span, format!("node class `{name}` is not used by any node"))
            })
            .collect();
        for w in warnings {
            self.report.push(w);
        }
    }

    /// The inbound rules the node's components need (their `ports:`): ZooKeeper's among
    /// its members, Mesos between masters and agents, SSH for fitter itself.
    fn derived_rules(&self, roles: &[Text]) -> Vec<Rule> {
        let mut out = Vec::new();
        let names = std::iter::once(COMMON).chain(roles.iter().map(|r| r.value.as_str()));
        for component in names.filter_map(|n| self.catalog.get(n)) {
            for port in &component.ports {
                let protocol = match port.protocol.as_str() {
                    "udp" => rules::Protocol::Udp,
                    "icmp" => rules::Protocol::Icmp,
                    _ => rules::Protocol::Tcp,
                };
                let range = match &port.port {
                    crate::components::PortSpec::One(p) => Some((*p, *p)),
                    crate::components::PortSpec::Range(r) => r
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?))),
                };
                let Some(range) = range else { continue };
                for from in &port.from {
                    let source = if from == "anywhere" {
                        Source::Anywhere
                    } else {
                        Source::Role(Text::new(from.clone(), Span::default()))
                    };
                    out.push(Rule {
                        protocol,
                        ports: (protocol != rules::Protocol::Icmp).then_some(range),
                        source,
                    });
                }
            }
        }
        out
    }

    fn unknown_role(&self, role: &Text) -> Diagnostic {
        if let Some(new_name) = self.catalog.renamed(&role.value) {
            return Diagnostic::error(role.span, format!("unknown role `{}`", role.value))
                .with_help(format!("`{}` is now called `{new_name}`", role.value));
        }
        let known: Vec<&str> = self.catalog.role_names().collect();
        not_found(role, "role", &known, "templates/")
    }

    /// The span of a class's name: just before its mapping, found in the text.
    fn classes_key_span(&self, name: &str) -> Option<Span> {
        let node = self.classes.get(name)?;
        let before = self.text.get(..node.span.start)?;
        let at = before.rfind(&format!("{name}:"))?;
        Some(Span::new(at, at + name.len()))
    }
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

/// plumbery's merge: maps merge key by key, lists concatenate (base first), scalars and
/// anything of another type are replaced; an empty value keeps the base.
pub fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (_, Value::Null) => base.clone(),
        (Value::Map(b), Value::Map(o)) => {
            let mut entries = b.clone();
            for (k, v) in o {
                let key = k.scalar_text();
                match entries.iter().position(|(ek, _)| ek.scalar_text() == key) {
                    Some(pos) => {
                        let merged = merge(&entries[pos].1, v);
                        entries[pos] = (k.clone(), merged);
                    }
                    None => entries.push((k.clone(), v.clone())),
                }
            }
            Node::new(Value::Map(entries), over.span)
        }
        (Value::Seq(b), Value::Seq(o)) => {
            let mut items = b.clone();
            items.extend(o.iter().cloned());
            Node::new(Value::Seq(items), over.span)
        }
        _ => over.clone(),
    }
}

fn set_key(map: &mut Node, key: &str, value: Node) {
    if let Value::Map(entries) = &mut map.value {
        match entries.iter().position(|(k, _)| k.as_str() == Some(key)) {
            Some(pos) => entries[pos].1 = value,
            None => entries.push((Node::new(Value::Str(key.to_string()), value.span), value)),
        }
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

/// plumbery's name ranges: `node[1..9]` gives node1 ... node9; `web[01..10]` keeps the
/// zero padding; a name without brackets is itself.
pub fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        if pattern.contains(']') {
            return Err(format!("`{pattern}` has `]` without `[`"));
        }
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..].find(']').map(|c| open + c).ok_or_else(|| {
        format!("range in `{pattern}` is not closed: expected `name[first..last]`")
    })?;
    let (prefix, inner, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    if suffix.contains('[') || suffix.contains(']') {
        return Err(format!("`{pattern}` has more than one range"));
    }
    let (lo_text, hi_text) = inner.split_once("..").ok_or_else(|| {
        format!("bad range `[{inner}]` in `{pattern}`: expected `[first..last]`, such as `[1..9]`")
    })?;
    let parse = |s: &str| -> Result<u64, String> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 9 {
            return Err(format!(
                "bad range `[{inner}]` in `{pattern}`: `{s}` is not a number"
            ));
        }
        s.parse()
            .map_err(|_| format!("bad range `[{inner}]` in `{pattern}`: `{s}` is not a number"))
    };
    let (lo, hi) = (parse(lo_text)?, parse(hi_text)?);
    if lo > hi {
        return Err(format!(
            "bad range `[{inner}]` in `{pattern}`: {lo} is greater than {hi}"
        ));
    }
    let count = hi - lo + 1;
    if count > MAX_NODES as u64 {
        return Err(format!(
            "range `[{inner}]` in `{pattern}` gives {count} nodes, more than the limit of {MAX_NODES}"
        ));
    }
    let width = if lo_text.trim().starts_with('0') && lo_text.trim().len() > 1 {
        lo_text.trim().len()
    } else {
        0
    };
    Ok((lo..=hi)
        .map(|i| format!("{prefix}{i:0width$}{suffix}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand() {
        assert_eq!(
            expand_range("node[1..3]").unwrap(),
            ["node1", "node2", "node3"]
        );
        assert_eq!(
            expand_range("web[08..10]-a").unwrap(),
            ["web08-a", "web09-a", "web10-a"]
        );
        assert_eq!(expand_range("plain").unwrap(), ["plain"]);
        assert!(expand_range("node[3..1]").unwrap_err().contains("greater"));
        assert!(expand_range("node[1..x]").is_err());
        assert!(expand_range("node[1-3]").is_err());
        assert!(expand_range("node[1..3").is_err());
        assert!(
            expand_range("node[1..999999999]")
                .unwrap_err()
                .contains("limit")
        );
    }

    #[test]
    fn merge_follows_plumbery() {
        let docs = yaml::parse_documents(
            "a: {x: 1, l: [1], m: {p: 1}}\nb: {x: 2, l: [2], m: {q: 2}}\n",
            None,
        );
        let root = &docs.docs[0];
        let merged = merge(root.get("a").unwrap(), root.get("b").unwrap());
        assert_eq!(
            merged.to_json(),
            serde_json::json!({"x": 2, "l": [1, 2], "m": {"p": 1, "q": 2}})
        );
    }
}
