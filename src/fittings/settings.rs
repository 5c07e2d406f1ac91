//! The settings document, the plan's first: `information`, `links`, `parameters`,
//! `defaults` (with the node classes and the `cloud-config` every node gets), `components`,
//! `keys` and `ssh`, and the deployment's name. It is the loader's entry: once it is read,
//! each location document is read in turn, then the checks that need the whole plan run.

use std::collections::BTreeMap;

use fitter_providers::{ProviderKind, did_you_mean, registry};

use crate::diagnostics::Diagnostic;
use crate::yaml::Node;

use super::networks::ETHERNET_KEYS;
use super::nodes::NODE_KEYS;
use super::params;
use super::schema::{Text, boolean, check_keys, map, text, text_list, unknown_key, wrong_type};
use super::{ComponentSettings, Fittings, Loader, TapMessage, not_found};

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
    "backend",
];
const DEFAULTS_RESERVED: &[&str] = &[
    "provider",
    "domain",
    "ethernet",
    "cloud-config",
    "ipv4",
    "blueprints",
];

impl Loader<'_> {
    pub(super) fn fittings(
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
            groups: BTreeMap::new(),
            backend: None,
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
            if let Some(backend) = s.get("backend") {
                fittings.backend = self.backend(backend);
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

    /// A setting no template of the component reads would change nothing: an error, with
    /// the names it does read.
    fn check_setting_names(&mut self, component: &str, settings: &Node) {
        let read = self.catalog.settings_read(component);
        let read: Vec<&str> = read.iter().map(String::as_str).collect();
        let context = format!("the settings of component `{component}`");
        if !read.is_empty() {
            check_keys(&mut self.report, settings, &context, &read);
            return;
        }
        for (key, _) in settings.as_map().into_iter().flatten() {
            self.report.push(
                Diagnostic::error(
                    key.span,
                    format!("component `{component}` has no settings: its templates read none"),
                )
                .with_help(format!("see templates/{component}/ for what it renders")),
            );
        }
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
                &["install", "packages", "settings"],
            );
            let mut values = BTreeMap::new();
            if let Some(v) = value.get("settings") {
                self.check_setting_names(&name.value, v);
                for (k, v) in map(&mut self.report, v, "settings").unwrap_or_default() {
                    let (Some(k), Some(t)) =
                        (k.scalar_text(), text(&mut self.report, v, "setting"))
                    else {
                        continue;
                    };
                    // Values go into configuration files: one plain word each, so that none
                    // can add a line of its own.
                    let plain = t
                        .value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._:/,-".contains(c));
                    if plain && !t.value.is_empty() {
                        values.insert(k, t.value);
                    } else {
                        self.report.error(
                            t.span,
                            format!(
                                "`{k}`: a component setting is one word of letters, digits and `._:/,-`"
                            ),
                        );
                    }
                }
            }
            let settings = ComponentSettings {
                settings: values,
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

    pub(super) fn provider(&mut self, node: &Node) -> Option<ProviderKind> {
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

    pub(super) fn information(&mut self, node: &Node, owner: Option<usize>) -> Vec<Text> {
        let lines = text_list(&mut self.report, node, "information");
        for line in &lines {
            self.collect_tokens(&line.value, line.span, owner, false);
        }
        lines
    }
}

impl Loader<'_> {
    /// `backend: {type: postgres, url: postgres://user@host/db}` or `{type: file}`. The
    /// password never belongs in a plan: libpq's `PGPASSWORD` and `~/.pgpass` give it.
    fn backend(&mut self, node: &Node) -> Option<Text> {
        check_keys(&mut self.report, node, "backend", &["type", "url"]);
        map(&mut self.report, node, "backend")?;
        let kind = node
            .get("type")
            .and_then(|t| text(&mut self.report, t, "type"));
        let url = node
            .get("url")
            .and_then(|u| text(&mut self.report, u, "url"));
        match kind.as_ref().map(|k| k.value.as_str()) {
            Some("file") => None,
            Some("postgres") => {
                let Some(url) = url else {
                    self.report.error(
                        node.span,
                        "a `postgres` backend needs its `url`".to_string(),
                    );
                    return None;
                };
                match crate::state::postgres::Url::parse(&url.value) {
                    Ok(u) if u.has_password() => {
                        // Pointed at the mapping, not the URL: the excerpt would print it.
                        self.report.error(
                            node.span,
                            "`backend.url` carries a password, which does not belong in the \
                             plan: give it with `PGPASSWORD` or `~/.pgpass`, as for psql"
                                .to_string(),
                        );
                        None
                    }
                    Ok(_) => Some(url),
                    Err(e) => {
                        self.report.error(url.span, e.to_string());
                        None
                    }
                }
            }
            Some(other) => {
                let at = node.get("type").map_or(node.span, |t| t.span);
                self.report.error(
                    at,
                    format!("`{other}` is no state backend: `file` or `postgres`"),
                );
                None
            }
            None => {
                self.report.error(
                    node.span,
                    "`backend` needs a `type`: `file` or `postgres`".to_string(),
                );
                None
            }
        }
    }
}
