//! `fitter import PLAN ADDRESS ID`: take an existing resource into the state under one of
//! the plan's addresses (Terraform's `import`), checked against the plan.
//!
//! - The address must be a node, firewall or network of the plan, not recorded yet; the id
//!   must be one its provider knows, and no other recorded resource's.
//! - What the provider can tell of it is compared with the plan (a droplet's `size`, `image`
//!   and `region`) and recorded as it is, so that the next `plan` shows every difference as
//!   the change `deploy` would make: a smaller droplet is an update, another image a
//!   replace (which `destroy: never` can refuse). A firewall is recorded with no rules of
//!   fitter's, so the next `deploy` sets the plan's rules on it.
//! - A node's SSH host key cannot be learned over a channel fitter trusts: `--host-key`
//!   pins it (from the cloud's console, or the node's own `/etc/ssh`). Without one, deploy
//!   does not bootstrap the node, and says why.
//! - Nothing is changed at the provider. On LXD, fitter only takes containers that carry the
//!   deployment's mark (one forgotten by `state rm`, or a lost state): it never takes over
//!   what it did not make, as it would then delete it on `dispose`.

use fitter_providers::ResourceKind;
use serde_json::Value as Json;

use super::deploy::Deployment;
use super::selection::known_addresses;
use super::{Checked, OperationError};
use crate::graph::StepKind;
use crate::state::{ResourceState, Status};

/// What was imported, for the operator.
pub struct Imported {
    pub address: String,
    pub id: String,
    /// The name the cloud gives it.
    pub name: Option<String>,
    /// `size: s-1vcpu-1gb here, s-2vcpu-4gb in the plan`, one per attribute that differs.
    pub differences: Vec<String>,
    /// A node imported without a host key.
    pub no_host_key: bool,
}

impl Deployment {
    /// Records the resource `id` as `address` (see the module).
    pub async fn import(
        &mut self,
        checked: &Checked,
        address: &str,
        id: &str,
        host_key: Option<&str>,
    ) -> Result<Imported, OperationError> {
        known_addresses(&checked.graph, &[address.to_string()], "resource")?;
        let step = checked
            .graph
            .step(address)
            .expect("a known address has a step");
        let StepKind::Resource(kind) = step.kind else {
            return Err(OperationError::Usage(format!(
                "`{address}` is not a resource"
            )));
        };
        if matches!(kind, ResourceKind::SshKey | ResourceKind::Tag) {
            return Err(OperationError::Usage(format!(
                "`{address}` is made by deploy on its own (the operator's key, the deployment's tag): there is nothing to import"
            )));
        }
        let provider_kind = step
            .provider
            .unwrap_or_else(fitter_providers::registry::default_kind);
        let state = self.state.state();
        if let Some(r) = state.resources.get(address) {
            return Err(OperationError::Usage(format!(
                "`{address}` is in the state already (id {}): `fitter state rm {address}` first to take another in its place",
                r.id.as_deref().unwrap_or("none yet")
            )));
        }
        if let Some((other, _)) = state
            .resources
            .iter()
            .find(|(_, r)| r.provider == provider_kind && r.id.as_deref() == Some(id))
        {
            return Err(OperationError::Usage(format!(
                "{provider_kind} `{id}` is recorded already, as `{other}`"
            )));
        }
        let provider = self.providers.get(provider_kind, address)?;
        let described = provider
            .describe(kind, id)
            .await
            .map_err(|e| OperationError::Provider(e.to_string()))?
            .ok_or_else(|| {
                OperationError::Usage(format!("{provider_kind} has no {} `{id}`", kind.name()))
            })?;
        let mut differences = Vec::new();
        let mut attributes = step.attributes.clone();
        for (key, found) in &described.attributes {
            let planned = step.attributes.get(key).unwrap_or(&Json::Null);
            if planned != found {
                differences.push(format!(
                    "{key}: {} at {provider_kind}, {} in the plan",
                    shown(found),
                    shown(planned)
                ));
            }
            attributes.insert(key.clone(), found.clone());
        }
        if kind == ResourceKind::Firewall {
            // Its rules are not known to be the plan's: recorded as none, so that the next
            // deploy sets them (an update; what would force a replace is kept).
            for rules in ["inbound", "outbound"] {
                attributes.insert(rules.to_string(), Json::Array(Vec::new()));
            }
        }
        let mut outputs = described.outputs;
        if let Some(key) = host_key {
            let fingerprint = crate::ssh::fingerprint(key).ok_or_else(|| {
                OperationError::Usage(
                    "--host-key is not an OpenSSH public key (`ssh-ed25519 AAAA...`)".into(),
                )
            })?;
            outputs.host_key = Some(key.trim().to_string());
            outputs.host_key_fingerprint = Some(fingerprint);
        }
        let no_host_key = kind == ResourceKind::Node && outputs.host_key.is_none();
        let record = ResourceState {
            kind,
            provider: provider_kind,
            id: Some(id.to_string()),
            attributes,
            outputs,
            status: Status::Ready,
        };
        self.state.update(|s| {
            s.resources.insert(address.to_string(), record);
        })?;
        Ok(Imported {
            address: address.to_string(),
            id: id.to_string(),
            name: described.name,
            differences,
            no_host_key,
        })
    }
}

fn shown(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => "nothing".to_string(),
        other => other.to_string(),
    }
}
