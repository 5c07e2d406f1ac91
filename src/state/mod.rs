//! The state: what a deployment has created, as last recorded, and where it is kept.
//!
//! [`State`] is the value: JSON, maps sorted so that it diffs well, with a `serial` that grows
//! with every write and a `lineage` that names the deployment's history, so that two writers
//! cannot silently overwrite each other.
//!
//! Where it is kept is behind the [`StateStore`] seam, as Terraform's `statemgr` has it:
//! read (for commands that only look), lock (for commands that change things: who holds it,
//! since when), and write through the lock, each write a compare-and-swap on the serial.
//! [`LockedState`] is what the apply stage works with: the state in memory, saved through the
//! store after every change, the lock held for as long as it lives. Two stores: the file
//! beside the plan ([`file::FileStore`], the default) and PostgreSQL for a team
//! ([`postgres::PgStore`]); apply does not know which it has. Secrets are sealed
//! ([`seal`]) on their way to either when a state key is given.

pub mod file;
mod locked;
pub mod memory;
pub mod postgres;
pub mod seal;

pub use file::{FileStore, read};
pub use locked::{LockedState, PendingWrite, StateOptions};
pub use memory::MemoryStore;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fitter_providers::api::Outputs;
use fitter_providers::{ProviderKind, ResourceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use thiserror::Error;

/// The state format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    pub serial: u64,
    pub lineage: String,
    pub deployment: String,
    /// By address (`node.master1`).
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceState>,
    /// Private addresses fitter gave nodes (LXD), by node name: kept across runs so a node
    /// keeps its address, and recorded before the node exists.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, String>,
    /// Values of the plan's `{{ x.secret }}` and `{{ uuid.x }}` tokens, generated once and
    /// the same on every run (plumbery kept them in a `.secrets` file).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// The operator key the nodes accept: recorded at the first deploy and kept, so that a
    /// key appearing later in `~/.ssh` does not silently take its place; changed only by a
    /// rotation the plan shows (`deploy --ssh-key NEW`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorRecord>,
    /// The secrets above and the private host keys of nodes being created, encrypted
    /// ([`seal`]): set only in the stored form, when a state key is given; in memory the
    /// state is always open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<seal::Sealed>,
    /// Set only in an errored-state file: the serial of the last version the store took
    /// before it failed, so that a push can tell whether anyone wrote since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errored_after: Option<u64>,
}

/// The operator key of a deployment: its public half (what the nodes' authorized_keys
/// hold) and where its private half was (a file, or `ssh-agent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorRecord {
    pub public_key: String,
    pub path: String,
}

impl OperatorRecord {
    /// `SHA256:...`, as OpenSSH shows it.
    pub fn fingerprint(&self) -> String {
        crate::ssh::fingerprint(&self.public_key).unwrap_or_else(|| "(unreadable key)".into())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceState {
    pub kind: ResourceKind,
    pub provider: ProviderKind,
    /// The provider's id, recorded as soon as the provider accepted the create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The desired attributes this resource was created or last updated with.
    #[serde(default)]
    pub attributes: BTreeMap<String, Json>,
    /// What is known of it once it exists: addresses, host key, fingerprints.
    #[serde(default, skip_serializing_if = "Outputs::is_empty")]
    pub outputs: Outputs,
    /// `creating` from just before the create call until the resource is ready: a crash in
    /// between leaves the mark, and the next run looks the resource up instead of creating it
    /// again.
    #[serde(default, skip_serializing_if = "Status::is_ready")]
    pub status: Status,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ready,
    Creating,
}

impl Status {
    pub fn is_ready(&self) -> bool {
        *self == Status::Ready
    }
}

impl State {
    /// A new, empty history for `deployment`.
    pub fn new(deployment: &str) -> State {
        State {
            version: STATE_VERSION,
            serial: 0,
            lineage: random_uuid(),
            deployment: deployment.to_string(),
            resources: BTreeMap::new(),
            addresses: BTreeMap::new(),
            secrets: BTreeMap::new(),
            operator: None,
            sealed: None,
            errored_after: None,
        }
    }
}

/// A random version-4 UUID (a lineage, a `{{ uuid.x }}` token).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    // Without the OS's randomness a lineage still only has to differ between deployments.
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = (nanos ^ u128::from(std::process::id())).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot read the state file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `location` is the store's own words: `` `web.state.json` ``, or the deployment's row
    /// in PostgreSQL.
    #[error("the state in {location} is not valid: {source}")]
    Parse {
        location: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the state in {location} has format version {found}; this fitter reads version {STATE_VERSION}"
    )]
    Version { location: String, found: u32 },
    #[error(
        "the state in {location} belongs to deployment `{found}`, not `{expected}`; pass `--state` to choose another file"
    )]
    Deployment {
        location: String,
        found: String,
        expected: String,
    },
    #[error(
        "another fitter is working on this deployment: {location} is held{}; wait for it to finish{}",
        holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default(),
        if *waited { " (`--lock-timeout` ran out)" } else { " or give `--lock-timeout`" }
    )]
    Locked {
        location: String,
        holder: Option<Holder>,
        /// Whether `--lock-timeout` was waited out.
        waited: bool,
    },
    #[error(
        "`{path}` is a symbolic link; fitter follows no link in the state folder (a link there \
         would have the state, host keys included, written where it points): remove it"
    )]
    Link { path: PathBuf },
    #[error("cannot write the state file `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state in {location} changed under us (serial {found}, expected {expected}); nothing was \
         overwritten: was it written by another fitter without the lock, or edited by hand?"
    )]
    Conflict {
        location: String,
        found: u64,
        expected: u64,
    },
    #[error(transparent)]
    Postgres(#[from] postgres::PgError),
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    #[error(
        "the state of `{deployment}` is kept in {location}, which others read, and it holds secrets \
         (generated passwords, private keys): give a state key (FITTER_STATE_KEY or \
         --state-key-file) to encrypt them, or `--allow-plaintext-secrets`; nothing was changed"
    )]
    Plaintext {
        location: String,
        deployment: String,
    },
    #[error(
        "{source}; the state is saved in `{}` instead: nothing is lost. Once the store answers, \
         the next command pushes it (or `fitter state push {}`)",
        path.display(), path.display()
    )]
    Errored {
        path: PathBuf,
        source: Box<StateError>,
    },
    /// A repair the state refuses (`state push`, an errored-state file that does not follow).
    #[error("{0}")]
    Refused(String),
}

/// Reads a stored state's text, checking its format version and deployment; `location` names
/// where it was found, for messages.
pub fn parse(text: &str, location: &str, deployment: &str) -> Result<State, StateError> {
    let state: State = serde_json::from_str(text).map_err(|source| StateError::Parse {
        location: location.to_string(),
        source,
    })?;
    if state.version != STATE_VERSION {
        return Err(StateError::Version {
            location: location.to_string(),
            found: state.version,
        });
    }
    if state.deployment != deployment {
        return Err(StateError::Deployment {
            location: location.to_string(),
            found: state.deployment,
            expected: deployment.to_string(),
        });
    }
    Ok(state)
}

/// Where the state of a plan lives when `--state` is not given: beside the plan,
/// `fittings/web.yaml` -> `fittings/web.state.json`.
pub fn default_path(fittings: &Path) -> PathBuf {
    fittings.with_extension("state.json")
}

/// Who holds a deployment's lock, as a blocked command reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// `fitter deploy`, `fitter dispose`.
    pub command: String,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

impl Holder {
    /// This process, running `command`.
    pub fn this_process(command: &str) -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Holder {
            user: std::env::var("USER").unwrap_or_default(),
            host,
            pid: std::process::id(),
            command: command.to_string(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write!(
            f,
            "`{}` ({}@{}, pid {}, for {} s)",
            self.command,
            self.user,
            self.host,
            self.pid,
            now.saturating_sub(self.since)
        )
    }
}

/// Where a deployment's state is kept.
pub trait StateStore: Send + Sync {
    /// Where, for messages: `` `web.state.json` ``.
    fn location(&self) -> String;

    /// The stored state of `deployment`; `Ok(None)` when there is none yet. Takes no lock.
    fn read(&self, deployment: &str) -> Result<Option<State>, StateError>;

    /// Takes the deployment's lock, recording `holder`, and reads the state under it. The
    /// lock is held until the returned writer is dropped, and freed by the system if the
    /// process dies. A lock held by another process is [`StateError::Locked`], naming its
    /// holder when it can.
    fn lock(
        &self,
        deployment: &str,
        holder: &Holder,
    ) -> Result<(Option<State>, Arc<dyn StateWriter>), StateError>;

    /// Whether other operators read and write this store (PostgreSQL): it then refuses
    /// secrets in plaintext unless told otherwise.
    fn shared(&self) -> bool {
        false
    }

    /// Who holds `deployment`'s lock now, if anyone.
    fn holder(&self, deployment: &str) -> Result<Option<Holder>, StateError>;

    /// Frees a lock its holder cannot free (`fitter force-unlock`), if `expected` (whom the
    /// operator was shown) still holds it.
    fn force_unlock(&self, deployment: &str, expected: &Holder) -> Result<(), StateError>;
}

/// Writes through a held lock.
pub trait StateWriter: Send + Sync {
    /// Stores `snapshot` if the stored state is still the one it follows (lineage
    /// `snapshot.previous_lineage`, serial `snapshot.previous`): a compare-and-swap, so that a state changed behind the
    /// lock's back is never overwritten ([`StateError::Conflict`]).
    fn write(&self, snapshot: &Snapshot) -> Result<(), StateError>;
}

/// One version of the state, ready to store.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub deployment: String,
    pub lineage: String,
    pub serial: u64,
    /// The serial of the version it replaces.
    pub previous: u64,
    /// The lineage of the version it replaces: the same as `lineage` but after a forced
    /// `state push` of another history.
    pub previous_lineage: String,
    /// The state as JSON, pretty-printed, ending in a newline.
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::file::sibling;
    use super::*;

    fn open(path: &Path) -> Result<LockedState, StateError> {
        LockedState::open(
            &FileStore::new(path),
            "d",
            &Holder::this_process("fitter test"),
            StateOptions::default(),
        )
    }

    #[test]
    fn missing_file_is_no_state_and_mismatches_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.state.json");
        assert!(read(&path, "x").unwrap().is_none());
        std::fs::write(
            &path,
            r#"{"version":1,"serial":3,"lineage":"l","deployment":"other","resources":{}}"#,
        )
        .unwrap();
        assert!(matches!(
            read(&path, "x"),
            Err(StateError::Deployment { .. })
        ));
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(read(&path, "x"), Err(StateError::Parse { .. })));
        assert_eq!(
            default_path(Path::new("fittings/web.yaml")),
            Path::new("fittings/web.state.json")
        );
    }

    #[test]
    fn writes_are_atomic_locked_private_and_backed_up() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.state.json");
        let mut file = open(&path).unwrap();
        // A second writer is refused, and told who holds the lock.
        let blocked = open(&path).unwrap_err();
        assert!(matches!(
            blocked,
            StateError::Locked {
                holder: Some(_),
                ..
            }
        ));
        assert!(
            blocked.to_string().contains("is held by `fitter test` ("),
            "{blocked}"
        );
        file.update(|s| {
            s.resources.insert(
                "node.a".into(),
                ResourceState {
                    kind: ResourceKind::Node,
                    provider: fitter_providers::lxd::KIND,
                    id: Some("a".into()),
                    attributes: BTreeMap::new(),
                    outputs: Outputs::default(),
                    status: Status::Creating,
                },
            );
        })
        .unwrap();
        file.update(|s| s.resources.get_mut("node.a").unwrap().status = Status::Ready)
            .unwrap();
        // A third write of the same command, emptier: the backup keeps what the command
        // found before its first change.
        file.update(|s| s.resources.clear()).unwrap();
        let on_disk = read(&path, "d").unwrap().unwrap();
        assert_eq!(on_disk.serial, 3);
        assert_eq!(on_disk, *file.state());
        // There was no state before this command: nothing to back up.
        assert!(!sibling(&path, "backup").exists());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let lineage = on_disk.lineage.clone();
        assert_eq!(lineage.len(), 36);
        drop(file);
        // The next command's backup is the state it found, however many writes it makes.
        let mut next = open(&path).unwrap();
        next.update(|s| {
            s.secrets.insert("k".into(), "v".into());
        })
        .unwrap();
        next.update(|s| s.secrets.clear()).unwrap();
        let backup = read(&sibling(&path, "backup"), "d").unwrap().unwrap();
        assert_eq!(backup.serial, 3);
        assert!(backup.resources.is_empty() && backup.secrets.is_empty());
        let on_disk = read(&path, "d").unwrap().unwrap();
        assert_eq!(on_disk.serial, 5);
        drop(next);
        // The lock goes with the value; a second writer that reads an edited file refuses.
        let mut again = open(&path).unwrap();
        let mut edited = on_disk.clone();
        edited.serial = 9;
        std::fs::write(&path, serde_json::to_string(&edited).unwrap()).unwrap();
        assert!(matches!(again.save(), Err(StateError::Conflict { .. })));
    }

    #[test]
    fn a_link_planted_in_the_state_folder_is_never_followed() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.state.json");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "precious\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut file = open(&path).unwrap();
        file.update(|s| {
            s.secrets.insert("k".into(), "v".into());
        })
        .unwrap();
        drop(file);
        std::os::unix::fs::symlink(&target, sibling(&path, "backup")).unwrap();
        let mut file = open(&path).unwrap();
        let err = file.update(|s| s.secrets.clear()).unwrap_err();
        assert!(matches!(err, StateError::Link { .. }), "{err}");
        assert!(err.to_string().contains("d.state.json.backup"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the link's target changed mode");
        // The state as it was stays on disk.
        assert_eq!(read(&path, "d").unwrap().unwrap().secrets["k"], "v");
        drop(file);
        // The same for a link as the lock.
        let other = dir.path().join("o.state.json");
        std::os::unix::fs::symlink(&target, sibling(&other, "lock")).unwrap();
        let err = LockedState::open(
            &FileStore::new(&other),
            "d",
            &Holder::this_process("t"),
            Default::default(),
        )
        .unwrap_err();
        assert!(matches!(err, StateError::Link { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    }
}
