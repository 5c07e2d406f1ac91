//! A node's `cloud-config`, as far as the loader is concerned: which keys fitter applies
//! (bootstrap renders them; the loader warns about any other), and entries that YAML read
//! as mappings where a command was meant. The keys are listed here, with the loader, so
//! that bootstrap depends on the loader and not the other way round.
//!
//! Values that reach a node's shell or file system are checked by shape here, at their
//! position in the plan, and checked again by bootstrap once run-time tokens are filled in
//! ([`check_file_path`], [`check_permissions`], [`check_user_name`]): a `write_files` path
//! must be absolute and normalised and outside fitter's own `/var/lib/fitter/`;
//! `permissions` octal; `owner` is refused (files are root's; a silently ignored owner
//! would be worse); user names POSIX names. Bootstrap also quotes every value it puts in a
//! script.

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
    "ssh_pwauth",
    "disable_root",
    "ssh_keys",
];

/// The host key types `ssh_keys` may give (`rsa_private`, `rsa_public`, ...), in the order
/// fitter picks the one it installs and pins when a plan gives several.
pub const HOST_KEY_TYPES: &[&str] = &["ed25519", "ecdsa", "rsa"];

/// Where fitter keeps what it needs on a node (its manifest, the cloud-config script): no
/// plan may write there.
pub const RESERVED: &str = "/var/lib/fitter/";

/// A value whose shape would make it unsafe on a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeValue {
    #[error(
        "`write_files` path `{0}` must be absolute and normalised (`/etc/app/app.conf`: no `.`, `..`, `//` or trailing `/`)"
    )]
    NotNormal(String),
    #[error("`write_files` path `{0}` is under `{RESERVED}`, where fitter keeps its own files")]
    Reserved(String),
    #[error("`permissions` `{0}` is not an octal mode such as `0644`")]
    NotOctal(String),
    #[error(
        "user name `{0}` is not a POSIX user name (a lower-case letter or `_`, then letters, digits, `_` or `-`, at most 32)"
    )]
    NotAUserName(String),
}

/// A `write_files` path: absolute, normalised (no `.`, `..` or empty part), not fitter's.
pub fn check_file_path(path: &str) -> Result<(), UnsafeValue> {
    let normal = path.starts_with('/')
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !path.chars().any(char::is_control);
    if !normal {
        return Err(UnsafeValue::NotNormal(path.to_string()));
    }
    if path.starts_with(RESERVED) || path == RESERVED.trim_end_matches('/') {
        return Err(UnsafeValue::Reserved(path.to_string()));
    }
    Ok(())
}

/// `permissions`: octal, three or four digits, an optional `0o` or leading `0`.
pub fn check_permissions(mode: &str) -> Result<(), UnsafeValue> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    if (3..=4).contains(&digits.len()) && digits.chars().all(|c| ('0'..='7').contains(&c)) {
        Ok(())
    } else {
        Err(UnsafeValue::NotOctal(mode.to_string()))
    }
}

/// A user name as POSIX (and `useradd`) take it: a lower-case letter or `_`, then letters,
/// digits, `_` and `-`, at most 32 characters.
pub fn check_user_name(name: &str) -> Result<(), UnsafeValue> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= 32 {
        Ok(())
    } else {
        Err(UnsafeValue::NotAUserName(name.to_string()))
    }
}

impl Loader<'_> {
    /// One `write_files` entry: its path, its permissions, no `owner`.
    fn check_write_file(&mut self, file: &Node) {
        let checked = |node: Option<&Node>| {
            let node = node?;
            let text = node.scalar_text()?;
            (!text.contains("{{")).then_some((node.span, text))
        };
        if let Some((span, path)) = checked(file.get("path"))
            && let Err(why) = check_file_path(&path)
        {
            self.report.error(span, why.to_string());
        }
        if let Some((span, mode)) = checked(file.get("permissions"))
            && let Err(why) = check_permissions(&mode)
        {
            self.report.error(span, why.to_string());
        }
        if let Some(owner) = file.get("owner") {
            self.report.push(
                Diagnostic::error(
                    owner.span,
                    "`owner` is not supported: fitter writes files as root:root",
                )
                .with_help(
                    "remove `owner`, and `chown` the file in `runcmd` if another owner is needed",
                ),
            );
        }
    }

    /// `ssh_keys`: the node's host key (bootstrap/host_keys.rs installs and pins it). What
    /// fitter does not install is a warning at its key, never silently dropped.
    fn check_ssh_keys(&mut self, keys: &Node) {
        let Some(entries) = map(&mut self.report, keys, "ssh_keys") else {
            return;
        };
        let mut installed: Option<&str> = None;
        for kind in HOST_KEY_TYPES {
            let private = format!("{kind}_private");
            if entries
                .iter()
                .any(|(k, _)| k.scalar_text().as_deref() == Some(&private))
            {
                installed = Some(kind);
                break;
            }
        }
        for (key, _) in entries {
            let k = key.scalar_text().unwrap_or_default();
            let kind = k
                .strip_suffix("_private")
                .or_else(|| k.strip_suffix("_public"));
            let why = match kind {
                Some(kind) if Some(kind) == installed => continue,
                Some("dsa") => {
                    "DSA host keys are not installed: OpenSSH no longer loads them".to_string()
                }
                Some(kind) if HOST_KEY_TYPES.contains(&kind) => match installed {
                    Some(first) => format!(
                        "`{k}` is not installed: fitter installs and pins one host key per node, here the {first} one"
                    ),
                    None => format!("`{k}` is not installed without `{kind}_private`"),
                },
                _ => format!(
                    "`ssh_keys.{k}` is not a host key fitter knows (it takes {})",
                    HOST_KEY_TYPES
                        .iter()
                        .map(|t| format!("{t}_private/{t}_public"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            self.report.warning(key.span, why);
        }
    }

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
            if k == "write_files" {
                for file in value.as_seq().unwrap_or_default() {
                    self.check_write_file(file);
                }
            }
            if k == "users" {
                for user in value.as_seq().unwrap_or_default() {
                    if let Some(name) = user.get("name")
                        && let Some(login) = name.scalar_text()
                        && !login.contains("{{")
                        && let Err(why) = check_user_name(&login)
                    {
                        self.report.error(name.span, why.to_string());
                    }
                }
            }
            if k == "ssh_keys" {
                self.check_ssh_keys(value);
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
