//! The host keys a plan gives its nodes: cloud-config `ssh_keys`, as plumbery plans write
//! it, most often from generated pairs:
//!
//! ```yaml
//! ssh_keys:
//!   rsa_private: |
//!     {{ rsa_private.web }}
//!   rsa_public: "{{ rsa_public.web }}"
//! ```
//!
//! Rendered before anything is created, not at bootstrap with the rest of the
//! cloud-config: a node's host key goes in with the node (LXD's file push, cloud-init's
//! `ssh_keys` on a cloud) and fitter pins it from the very first connection, so the plan's
//! key replaces the one fitter would make. One key per node: when a plan gives several
//! types, the first of [`HOST_KEY_TYPES`] is installed and pinned (the loader warns that
//! the others are not). A node without `ssh_keys` keeps fitter's own Ed25519 key.

use std::collections::BTreeMap;

use crate::fittings::Fittings;
use crate::fittings::cloud_config::HOST_KEY_TYPES;
use fitter_providers::api::host_key_type;

use crate::ssh::{HostKey, SshError, given_host_key};

use super::BootstrapError;
use super::cloud_config::{render_tokens, resolve_token};

/// The plan's host key of every node that has one, by node name. `secrets` gets the pairs
/// that `{{ rsa_private.x }}` tokens generate: the caller saves them before any node is
/// made, so that the key installed and the tokens rendered later agree.
pub fn given_host_keys(
    fittings: &Fittings,
    secrets: &mut BTreeMap<String, String>,
    local_key: Option<&str>,
) -> Result<BTreeMap<String, HostKey>, BootstrapError> {
    let no_addresses = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for node in &fittings.nodes {
        let Some(given) = node.cloud_config.as_ref().and_then(|cc| cc.get("ssh_keys")) else {
            continue;
        };
        let name = &node.name.value;
        let mut resolve =
            |expr: &str| resolve_token(expr, fittings, node, &no_addresses, secrets, local_key);
        let given = render_tokens(given, &mut resolve);
        let Some(kind) = HOST_KEY_TYPES
            .iter()
            .find(|t| given[format!("{t}_private")].is_string())
        else {
            continue;
        };
        let what = format!("node.{name} cloud-config ssh_keys.{kind}_private");
        let private = given[format!("{kind}_private")]
            .as_str()
            .unwrap_or_default();
        let public = given[format!("{kind}_public")].as_str();
        let key = given_host_key(&what, private, public).map_err(BootstrapError::GivenHostKey)?;
        let actual = host_key_type(&key.public_openssh);
        if actual != *kind {
            return Err(BootstrapError::GivenHostKey(SshError::Key {
                path: what.into(),
                message: format!("it holds an {actual} key, not an {kind} one"),
            }));
        }
        keys.insert(name.clone(), key);
    }
    Ok(keys)
}
