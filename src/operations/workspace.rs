//! Where a deployment's files live, worked out once per command.
//!
//! The state file is beside the plan (`web.yaml` -> `web.state.json`) unless `--state` says
//! otherwise; everything else a deployment keeps sits beside its state, named after it:
//! `<state>.known_hosts` (the pinned host keys, for OpenSSH and Ansible) and
//! `<state>.id_ed25519` (the deployment's own operator key, made only when the operator has
//! none). The lock and the backup are the state store's business ([`StateStore`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::OperationError;
use crate::information;
use crate::ssh::OperatorKey;
use crate::state::{self, FileStore, StateStore};

#[derive(Clone)]
pub struct Workspace {
    /// Where the state is kept: the file at `state` (the one store today).
    pub store: Arc<dyn StateStore>,
    pub state: PathBuf,
    pub known_hosts: PathBuf,
    /// Where the deployment's own operator key is, or goes when one has to be made.
    pub own_key: PathBuf,
    /// `--ssh-key`: the operator's choice, which wins over every other key.
    pub ssh_key: Option<PathBuf>,
}

impl Workspace {
    /// The workspace of the plan at `fittings`, with `--state` and `--ssh-key` if given.
    pub fn new(fittings: &Path, state: Option<PathBuf>, ssh_key: Option<PathBuf>) -> Workspace {
        let state = state.unwrap_or_else(|| state::default_path(fittings));
        Workspace {
            store: Arc::new(FileStore::new(&state)),
            known_hosts: information::known_hosts_path(&state),
            own_key: beside(&state, ".id_ed25519"),
            state,
            ssh_key,
        }
    }

    /// The operator's key, made for the deployment when there is none (`deploy`, `dispose`).
    pub async fn operator_key(&self) -> Result<OperatorKey, OperationError> {
        Ok(OperatorKey::find_or_create(self.ssh_key.as_deref(), &self.own_key).await?)
    }

    /// The path of the operator's key, if one exists (`information`, `inventory`, `ssh`).
    pub fn existing_key_path(&self) -> Option<PathBuf> {
        match &self.ssh_key {
            Some(k) => Some(k.clone()),
            None => OperatorKey::find_existing(None, &self.own_key).map(|k| k.path),
        }
    }

    /// Writes the known_hosts file from the state's pinned host keys.
    pub fn write_known_hosts(&self, state: &state::State) -> Result<(), OperationError> {
        std::fs::write(&self.known_hosts, information::known_hosts(state)).map_err(|source| {
            OperationError::Write {
                path: self.known_hosts.clone(),
                source,
            }
        })
    }
}

fn beside(state: &Path, suffix: &str) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_a_deployment_sits_beside_its_state() {
        let ws = Workspace::new(Path::new("plans/web.yaml"), None, None);
        assert_eq!(ws.state, Path::new("plans/web.state.json"));
        assert_eq!(
            ws.known_hosts,
            Path::new("plans/web.state.json.known_hosts")
        );
        assert_eq!(ws.own_key, Path::new("plans/web.state.json.id_ed25519"));
        let moved = Workspace::new(
            Path::new("plans/web.yaml"),
            Some("/srv/web.json".into()),
            None,
        );
        assert_eq!(moved.known_hosts, Path::new("/srv/web.json.known_hosts"));
    }
}
