//! Where a deployment's state and files live, worked out once per command.
//!
//! **The store**: `--backend URL`, else `FITTER_BACKEND`, else the plan's `backend:`, else
//! the file beside the plan (`web.yaml` -> `web.state.json`, or `--state`). `--backend
//! file` names the file store explicitly (to move a deployment out of PostgreSQL).
//!
//! **Local files**, for this operator only, sit beside the state file's path whatever the
//! store: `<state>.known_hosts` (the pinned host keys, written from the state, for OpenSSH
//! and Ansible) and `<state>.id_ed25519` (the deployment's own operator key, made only when
//! the operator has none). With a shared store, a state the store could not take goes to
//! `<plan>.errored.state.json`. The lock and the backup are the store's business
//! ([`StateStore`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::OperationError;
use crate::information;
use crate::plan::KeyChange;
use crate::ssh::OperatorKey;
use crate::state::postgres::{PgStore, Url};
use crate::state::seal::StateKey;
use crate::state::{
    self, FileStore, Holder, LockedState, OperatorRecord, StateOptions, StateStore,
};

/// What the command line says of the store.
#[derive(Debug, Clone, Default)]
pub struct StoreChoice {
    /// `--state PATH`.
    pub state: Option<PathBuf>,
    /// `--backend` or `FITTER_BACKEND`: `file` or a `postgres://` URL.
    pub backend: Option<String>,
    /// `--lock-timeout`: how long to wait for a lock another command holds.
    pub lock_timeout: Duration,
    /// `--state-key-file`; `FITTER_STATE_KEY` otherwise.
    pub key_file: Option<PathBuf>,
    /// `--allow-plaintext-secrets`.
    pub allow_plaintext: bool,
}

#[derive(Clone)]
pub struct Workspace {
    /// Where the state is kept.
    pub store: Arc<dyn StateStore>,
    /// The state file's path: the file store's, and where local files go beside it.
    pub state: PathBuf,
    /// The state key, the plaintext leave and the errored-state file.
    pub state_options: StateOptions,
    pub known_hosts: PathBuf,
    /// Where the deployment's own operator key is, or goes when one has to be made.
    pub own_key: PathBuf,
    /// `--ssh-key`: the operator's choice, which wins over every other key.
    pub ssh_key: Option<PathBuf>,
    /// The plan's `keys:`: teammates' public keys, authorised on every node, so that a
    /// teammate's own key is an operator key of the deployment, not a rotation.
    pub team: Vec<String>,
}

impl Workspace {
    /// The workspace of the plan at `fittings` with only a file store: `--state` and
    /// `--ssh-key` if given.
    pub fn new(fittings: &Path, state: Option<PathBuf>, ssh_key: Option<PathBuf>) -> Workspace {
        let state = state.unwrap_or_else(|| state::default_path(fittings));
        Workspace {
            store: Arc::new(FileStore::new(&state)),
            known_hosts: information::known_hosts_path(&state),
            own_key: beside(&state, ".id_ed25519"),
            state,
            state_options: StateOptions::default(),
            ssh_key,
            team: Vec::new(),
        }
    }

    /// The workspace of the plan at `fittings`, its store chosen as the module says;
    /// `planned` is the plan's `backend:` URL.
    pub fn choose(
        fittings: &Path,
        planned: Option<&str>,
        choice: &StoreChoice,
        ssh_key: Option<PathBuf>,
    ) -> Result<Workspace, OperationError> {
        let mut ws = Workspace::new(fittings, choice.state.clone(), ssh_key);
        let key = StateKey::from_env_or_file(choice.key_file.as_deref())
            .map_err(state::StateError::from)?;
        ws.state_options.key = key.map(Arc::new);
        ws.state_options.allow_plaintext = choice.allow_plaintext;
        let backend = choice.backend.as_deref().or(planned);
        match backend {
            None | Some("file") => {
                ws.store =
                    Arc::new(FileStore::new(&ws.state).with_lock_timeout(choice.lock_timeout));
            }
            Some(url) => {
                if choice.state.is_some() {
                    return Err(OperationError::Usage(format!(
                        "`--state` names a state file, but the state is kept in {}; \
                         `--backend file` uses the file instead",
                        crate::state::postgres::redact(url)
                    )));
                }
                let url = Url::parse(url).map_err(state::StateError::from)?;
                ws.store = Arc::new(PgStore::new(url, choice.lock_timeout));
                ws.state_options.errored = Some(fittings.with_extension("errored.state.json"));
            }
        }
        Ok(ws)
    }

    /// Locks the deployment's state for `command` (`fitter deploy`) and opens it.
    pub fn open_state(
        &self,
        deployment: &str,
        command: &str,
    ) -> Result<LockedState, OperationError> {
        Ok(LockedState::open(
            self.store.as_ref(),
            deployment,
            &Holder::this_process(command),
            self.state_options.clone(),
        )?)
    }

    /// The deployment's state as stored, its secrets opened, without taking the lock.
    pub fn read_state(&self, deployment: &str) -> Result<Option<state::State>, OperationError> {
        let Some(mut s) = self.store.read(deployment)? else {
            return Ok(None);
        };
        state::seal::unseal(&mut s, self.state_options.key.as_deref())
            .map_err(state::StateError::from)?;
        Ok(Some(s))
    }

    /// The key the operator names: `--ssh-key`, else `FITTER_SSH_KEY`.
    fn explicit_key(&self) -> Option<PathBuf> {
        self.ssh_key
            .clone()
            .or_else(|| std::env::var_os("FITTER_SSH_KEY").map(PathBuf::from))
    }

    /// The operator's key for a deployment whose state records `recorded`: the key the
    /// operator names if any (a rotation when it is another), else the recorded one, which
    /// must still be there, else the first found, or one made for the deployment.
    pub async fn operator_key(
        &self,
        recorded: Option<&OperatorRecord>,
    ) -> Result<OperatorKey, OperationError> {
        if let Some(path) = self.explicit_key() {
            return Ok(OperatorKey::load(&path)?);
        }
        match recorded {
            Some(r) => recorded_key(r).await,
            None => Ok(OperatorKey::find_or_create(None, &self.own_key).await?),
        }
    }

    /// The rotation the key the operator names means for a deployment whose state records
    /// `recorded`: none when no key is named, when it is the recorded one, or when nothing
    /// is recorded yet (the first deploy records it).
    pub fn key_change(
        &self,
        recorded: Option<&OperatorRecord>,
        revoke_old: bool,
    ) -> Result<Option<KeyChange>, OperationError> {
        let (Some(path), Some(old)) = (self.explicit_key(), recorded) else {
            return Ok(None);
        };
        let new = OperatorKey::load(&path)?;
        // The same key (whatever its comment), or a teammate's the plan's `keys:` already
        // authorises on every node: an operator of the deployment, not a rotation.
        let teammate = self
            .team
            .iter()
            .any(|k| crate::ssh::same_key(k, &new.public_openssh));
        if crate::ssh::same_key(&new.public_openssh, &old.public_key) || teammate {
            return Ok(None);
        }
        Ok(Some(KeyChange {
            from: old.fingerprint(),
            from_path: old.path.clone(),
            to: crate::ssh::fingerprint(&new.public_openssh).unwrap_or_default(),
            to_path: path.display().to_string(),
            revoke_old,
        }))
    }

    /// The recorded key, loaded, for a rotation away from it.
    pub async fn recorded_key(
        &self,
        recorded: &OperatorRecord,
    ) -> Result<OperatorKey, OperationError> {
        recorded_key(recorded).await
    }

    /// The path of the operator's key, if one exists (`information`, `inventory`, `ssh`):
    /// the one named, else the recorded one, else the first found.
    pub fn existing_key_path(&self, recorded: Option<&OperatorRecord>) -> Option<PathBuf> {
        if let Some(path) = self.explicit_key() {
            return Some(path);
        }
        match recorded {
            Some(r) if r.path == AGENT => None,
            Some(r) if Path::new(&r.path).exists() => Some(PathBuf::from(&r.path)),
            _ => OperatorKey::find_existing(None, &self.own_key).map(|k| k.path),
        }
    }

    /// The operator's key if one exists, from a file or the SSH agent (never made).
    pub async fn existing_operator_key(
        &self,
        recorded: Option<&OperatorRecord>,
    ) -> Option<OperatorKey> {
        // The recorded key when it is at hand; else (a teammate's machine) the first found,
        // which only reads: a key the nodes refuse is reported by each node.
        if let Some(r) = recorded.filter(|_| self.explicit_key().is_none())
            && let Ok(key) = recorded_key(r).await
        {
            return Some(key);
        }
        match OperatorKey::find_existing(self.ssh_key.as_deref(), &self.own_key) {
            Some(key) => Some(key),
            // An agent that accepts the connection and never answers must not hold the
            // command: a few seconds, then no key.
            None if self.ssh_key.is_none() => {
                tokio::time::timeout(Duration::from_secs(5), OperatorKey::from_agent())
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
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

/// How a key the SSH agent holds is recorded.
const AGENT: &str = "ssh-agent";

/// The recorded operator key, loaded from its file or found in the agent; an error saying
/// what to do when it is gone or is another key now.
async fn recorded_key(recorded: &OperatorRecord) -> Result<OperatorKey, OperationError> {
    let fingerprint = recorded.fingerprint();
    let key = if recorded.path == AGENT {
        let wanted = OperatorKey::from_agent_matching(Some(&recorded.public_key));
        tokio::time::timeout(Duration::from_secs(5), wanted)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                OperationError::Usage(format!(
                    "the deployment's operator key ({fingerprint}) was in the SSH agent, which does not hold it now: \
                     add it (`ssh-add`), or pass `--ssh-key` with it"
                ))
            })?
    } else {
        OperatorKey::load(Path::new(&recorded.path)).map_err(|e| {
            OperationError::Usage(format!(
                "the deployment's operator key ({fingerprint}), recorded as `{}`, cannot be used: {e}; \
                 pass `--ssh-key` with it (or, to rotate, with the old one still at its place, with the new one)",
                recorded.path
            ))
        })?
    };
    if !crate::ssh::same_key(&key.public_openssh, &recorded.public_key) {
        return Err(OperationError::Usage(format!(
            "`{}` is no longer the deployment's operator key ({fingerprint}): pass `--ssh-key` with that key",
            recorded.path
        )));
    }
    Ok(key)
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
