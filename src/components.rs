//! The catalogue of components under `templates/`: what a role in a plan may name, what each
//! component installs and runs, which ports it opens, and which components it must follow.
//!
//! The folder is compiled into the binary, so an installed `fitter` needs no files beside it.

use std::collections::BTreeMap;

use include_dir::{Dir, include_dir};
use serde::Deserialize;
use thiserror::Error;

use crate::yaml::{self, TrustedYamlError};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The component every node gets before its roles.
pub const COMMON: &str = "common";
/// The component every node gets when the plan hardens SSH (`ssh: {harden: true}`).
pub const SSHD: &str = "sshd";

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Component {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    /// Components that must be bootstrapped on every node that has them first.
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortUse>,
    /// Former names, so that a plan using one is told the new name.
    #[serde(default)]
    pub renamed_from: Vec<String>,
    /// Whether fitter installs the packages and runs the services by default; when false the
    /// files are still rendered and placed (a plan can turn it on: `components:`).
    #[serde(default = "yes")]
    pub install: bool,
    /// Services to stop and disable on a node with this role (the Mesos packages enable
    /// both master and agent).
    #[serde(default)]
    pub disable: Vec<String>,
    /// Files rendered from the component's Tera templates.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Whether the component's members form a quorum (ZooKeeper): clouds that can put
    /// machines on different hosts do so for its nodes (Hetzner's spread placement group).
    #[serde(default)]
    pub quorum: bool,
    /// Whether the component's services run containers themselves (Docker): clouds of
    /// system containers (LXD) give such nodes nesting, and only those.
    #[serde(default)]
    pub nesting: bool,
    /// How to tell that the component's services work, once they run: deploy waits until
    /// every check of every started service passes (`--health-timeout`).
    #[serde(default)]
    pub health: Vec<HealthCheck>,
}

fn yes() -> bool {
    true
}

/// A check run on the node over SSH, as root.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// What it checks, for messages: `serving`.
    pub name: String,
    /// A shell command; its standard output (and error) is the answer.
    pub command: String,
    /// A regular expression the answer must match (`(?m)` for lines). For a component
    /// that forms a quorum, its first group is the member's role, and the members must
    /// have exactly one `leader` (or be one `standalone`).
    pub expect: String,
    /// Seconds one attempt may take.
    #[serde(default = "five")]
    pub timeout: u64,
}

fn five() -> u64 {
    5
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// A template in the component's folder.
    pub template: String,
    /// Where it goes on the node; with `each`, `{name}` is replaced per item.
    pub path: String,
    pub mode: String,
    /// Render once per item of this collection of the node (`attributes`).
    #[serde(default)]
    pub each: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortUse {
    pub protocol: String,
    /// `2181` or a range `31000-32000`.
    pub port: PortSpec,
    /// Components (or `anywhere`) whose nodes connect to this port.
    #[serde(default)]
    pub from: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PortSpec {
    One(u16),
    Range(String),
}

/// Why the catalogue compiled into fitter does not load: a bug in `templates/`, found by
/// the tests before any release. Each message names the component and the file.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("component folder without a UTF-8 name")]
    FolderName,
    #[error("templates/{component} has no component.yaml")]
    NoManifest { component: String },
    #[error("templates/{component}/component.yaml is not UTF-8")]
    ManifestNotText { component: String },
    /// The manifest does not read; serde's reason and position are part of the message.
    #[error("templates/{component}/component.yaml: {error}")]
    Manifest {
        component: String,
        error: TrustedYamlError,
    },
    #[error("the components' `after` lists form a cycle")]
    Cycle,
    #[error(
        "component `{component}` names template `{template}`, which templates/{component}/ lacks"
    )]
    MissingTemplate { component: String, template: String },
    #[error("component `{component}` comes after unknown component `{after}`")]
    UnknownAfter { component: String, after: String },
    #[error("component `{component}`: health check `{check}` expects no valid pattern: {error}")]
    HealthPattern {
        component: String,
        check: String,
        error: String,
    },
}

#[derive(Debug, Clone)]
pub struct Catalog {
    components: BTreeMap<String, Component>,
}

impl Catalog {
    /// The catalogue compiled into the binary from `templates/`.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        let mut components = BTreeMap::new();
        for dir in TEMPLATES.dirs() {
            let name = dir
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or(CatalogError::FolderName)?
                .to_string();
            let manifest = dir
                .get_file(dir.path().join("component.yaml"))
                .ok_or_else(|| CatalogError::NoManifest {
                    component: name.clone(),
                })?;
            let text = manifest
                .contents_utf8()
                .ok_or_else(|| CatalogError::ManifestNotText {
                    component: name.clone(),
                })?;
            let mut component: Component =
                yaml::from_trusted_str(text).map_err(|error| CatalogError::Manifest {
                    component: name.clone(),
                    error,
                })?;
            component.name = name.clone();
            components.insert(name, component);
        }
        let catalog = Catalog { components };
        catalog.check()?;
        Ok(catalog)
    }

    fn check(&self) -> Result<(), CatalogError> {
        if self.ordered().len() != self.components.len() {
            return Err(CatalogError::Cycle);
        }
        for c in self.components.values() {
            for f in &c.files {
                if self.template(&c.name, &f.template).is_none() {
                    return Err(CatalogError::MissingTemplate {
                        component: c.name.clone(),
                        template: f.template.clone(),
                    });
                }
            }
            for h in &c.health {
                if let Err(e) = regex::Regex::new(&h.expect) {
                    return Err(CatalogError::HealthPattern {
                        component: c.name.clone(),
                        check: h.name.clone(),
                        error: e.to_string(),
                    });
                }
            }
            for dep in &c.after {
                if !self.components.contains_key(dep) {
                    return Err(CatalogError::UnknownAfter {
                        component: c.name.clone(),
                        after: dep.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The text of a component's template.
    pub fn template(&self, component: &str, template: &str) -> Option<&'static str> {
        TEMPLATES
            .get_file(format!("{component}/{template}"))
            .and_then(|f| f.contents_utf8())
    }

    /// The `settings.NAME` a component's templates read, sorted: what a plan may set in
    /// `components: {NAME: {settings: ...}}` (anything else would be ignored, so the loader
    /// refuses it).
    pub fn settings_read(&self, component: &str) -> Vec<String> {
        let Some(c) = self.get(component) else {
            return Vec::new();
        };
        let read =
            regex::Regex::new(r"\bsettings\.([A-Za-z_][A-Za-z0-9_]*)").expect("a valid pattern");
        let mut names: Vec<String> = c
            .files
            .iter()
            .filter_map(|f| self.template(component, &f.template))
            .flat_map(|text| read.captures_iter(text).map(|m| m[1].to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Components in an order where each comes after those it names in `after`.
    pub fn ordered(&self) -> Vec<&Component> {
        let mut done: Vec<&Component> = Vec::new();
        while done.len() < self.components.len() {
            let before = done.len();
            for c in self.components.values() {
                let ready = c.after.iter().all(|a| done.iter().any(|d| &d.name == a));
                if ready && !done.iter().any(|d| d.name == c.name) {
                    done.push(c);
                }
            }
            if done.len() == before {
                break; // a cycle; `check` refuses it at load
            }
        }
        done
    }

    pub fn get(&self, name: &str) -> Option<&Component> {
        self.components.get(name)
    }

    /// The current name of a component that used to be called `old`.
    pub fn renamed(&self, old: &str) -> Option<&str> {
        self.components
            .values()
            .find(|c| c.renamed_from.iter().any(|r| r == old))
            .map(|c| c.name.as_str())
    }

    /// Names a plan may use in `roles:` (every component but `common`, which every node has).
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.components
            .keys()
            .map(String::as_str)
            .filter(|n| *n != COMMON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_loads_and_orders_the_stack() {
        let catalog = Catalog::builtin().unwrap();
        let roles: Vec<&str> = catalog.role_names().collect();
        for expected in [
            "zookeeper",
            "mesos-master",
            "mesos-agent",
            "marathon",
            "docker",
        ] {
            assert!(
                roles.contains(&expected),
                "{expected} missing from {roles:?}"
            );
        }
        assert!(!roles.contains(&COMMON));
        assert_eq!(catalog.get("mesos-master").unwrap().after, ["zookeeper"]);
        assert!(
            catalog
                .get("marathon")
                .unwrap()
                .after
                .contains(&"mesos-master".to_string())
        );
    }
}
