//! A node's `cloud-config`, as far as the loader is concerned: which keys fitter applies
//! (bootstrap renders them; the loader warns about any other), and entries that YAML read
//! as mappings where a command was meant. The keys are listed here, with the loader, so
//! that bootstrap depends on the loader and not the other way round.

use crate::diagnostics::Diagnostic;
use crate::yaml::Node;

use super::Loader;
use super::schema::map;

/// The cloud-config keys bootstrap applies over SSH.
pub const CLOUD_CONFIG_KEYS: &[&str] = &[
    "write_files",
    "runcmd",
    "bootcmd",
    "packages",
    "users",
    "ssh_authorized_keys",
    "hostname",
];

impl Loader<'_> {
    /// Checks a node's merged cloud-config and collects its run-time tokens.
    pub(super) fn cloud_config(&mut self, cc: &Node, index: usize) -> Option<Node> {
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
            if !CLOUD_CONFIG_KEYS.contains(&k.as_str()) {
                self.report.warning(
                    key.span,
                    format!(
                        "cloud-config key `{k}` is not applied by fitter (it applies {})",
                        CLOUD_CONFIG_KEYS.join(", ")
                    ),
                );
            }
        }
        self.collect_node_tokens(cc, index);
        Some(cc.clone())
    }
}
