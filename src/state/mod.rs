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
//! store after every change, the lock held for as long as it lives. The file beside the plan
//! ([`file::FileStore`]) is the one store today; a shared one (PostgreSQL) plugs in here
//! without apply knowing.

pub mod file;
pub mod memory;

pub use file::{FileStore, read};
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
    #[error("the state file `{path}` is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the state file `{path}` has format version {found}; this fitter reads version {STATE_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
    #[error(
        "the state file `{path}` belongs to deployment `{found}`, not `{expected}`; pass `--state` to choose another file"
    )]
    Deployment {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "another fitter is working on this deployment: `{path}` is held{}; wait for it to finish",
        holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default()
    )]
    Locked {
        path: PathBuf,
        holder: Option<Holder>,
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
        "the state file `{path}` changed under us (serial {found}, expected {expected}); was it edited during the run?"
    )]
    Conflict {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
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
}

/// Writes through a held lock.
pub trait StateWriter: Send + Sync {
    /// Stores `snapshot` if the stored state is still the one it follows (same lineage,
    /// serial `snapshot.previous`): a compare-and-swap, so that a state changed behind the
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
    /// The state as JSON, pretty-printed, ending in a newline.
    pub text: String,
}

/// The state of a deployment, opened for changing: locked, and saved after every change.
pub struct LockedState {
    state: State,
    writer: Arc<dyn StateWriter>,
    location: String,
    /// The serial of the version last stored (or read): what the next write replaces.
    stored: u64,
}

impl std::fmt::Debug for LockedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedState")
            .field("location", &self.location)
            .field("serial", &self.state.serial)
            .finish_non_exhaustive()
    }
}

impl LockedState {
    /// Locks and reads the state of `deployment` in `store`, or starts a new one.
    pub fn open(
        store: &dyn StateStore,
        deployment: &str,
        holder: &Holder,
    ) -> Result<LockedState, StateError> {
        let (stored, writer) = store.lock(deployment, holder)?;
        let state = stored.unwrap_or_else(|| State::new(deployment));
        Ok(LockedState {
            stored: state.serial,
            state,
            writer,
            location: store.location(),
        })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Where the state is kept, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Applies `change` and saves at once. The change is kept in memory even if the write
    /// fails, and the error says so; nothing already recorded is lost.
    pub fn update(&mut self, change: impl FnOnce(&mut State)) -> Result<(), StateError> {
        change(&mut self.state);
        self.save()
    }

    /// Applies `change` in memory only; the caller saves soon after (several changes made at
    /// once can share one write).
    pub fn modify(&mut self, change: impl FnOnce(&mut State)) {
        change(&mut self.state);
    }

    /// Stores the state now.
    pub fn save(&mut self) -> Result<(), StateError> {
        let serial = self.prepare().run()?;
        self.stored(serial);
        Ok(())
    }

    /// The first half of a save, done under whatever lock guards the state: the next serial
    /// and the text. [`PendingWrite::run`] does the slow half (the store's I/O) without
    /// needing the state, so that changes can go on meanwhile.
    pub fn prepare(&mut self) -> PendingWrite {
        // A serial is never reused: after a failed write the next one skips it, which the
        // compare-and-swap allows because the stored version did not change.
        self.state.serial += 1;
        let mut text = serde_json::to_string_pretty(&self.state).expect("state serialises");
        text.push('\n');
        let snapshot = Snapshot {
            deployment: self.state.deployment.clone(),
            lineage: self.state.lineage.clone(),
            serial: self.state.serial,
            previous: self.stored,
            text,
        };
        PendingWrite {
            writer: Arc::clone(&self.writer),
            snapshot,
        }
    }

    /// Records that the version with `serial` is stored: the next write follows it.
    pub fn stored(&mut self, serial: u64) {
        self.stored = self.stored.max(serial);
    }
}

/// A prepared write of the state.
pub struct PendingWrite {
    writer: Arc<dyn StateWriter>,
    snapshot: Snapshot,
}

impl PendingWrite {
    /// Stores the snapshot; returns its serial.
    pub fn run(self) -> Result<u64, StateError> {
        self.writer.write(&self.snapshot)?;
        Ok(self.snapshot.serial)
    }
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
        let err = LockedState::open(&FileStore::new(&other), "d", &Holder::this_process("t"))
            .unwrap_err();
        assert!(matches!(err, StateError::Link { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    }
}
