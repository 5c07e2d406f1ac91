//! The state file: what a deployment has created, as last recorded.
//!
//! One JSON file per deployment, beside the plan (`<plan>.state.json`) unless `--state` says
//! otherwise. Maps are sorted so that the file diffs well. `serial` grows with every write and
//! `lineage` names the deployment's history, so two writers cannot silently overwrite each
//! other.
//!
//! [`read`] is for commands that only look (`plan`, `information`). Commands that change
//! things open a [`StateFile`], which holds an exclusive lock for as long as it lives (a
//! second `deploy` of the same plan stops at once instead of racing the first) and writes
//! after every change: to a temporary file, fsynced, renamed over the old one, whose previous
//! version is kept as `<state>.backup`; mode 0600, as it holds addresses and key fingerprints.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

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
    /// What the provider reported: addresses, fingerprints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Json>,
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
        "another fitter is working on this deployment (`{path}` is locked); wait for it to finish"
    )]
    Locked { path: PathBuf },
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

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn read(path: &Path, deployment: &str) -> Result<Option<State>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let state: State = serde_json::from_str(&text).map_err(|source| StateError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if state.version != STATE_VERSION {
        return Err(StateError::Version {
            path: path.to_path_buf(),
            found: state.version,
        });
    }
    if state.deployment != deployment {
        return Err(StateError::Deployment {
            path: path.to_path_buf(),
            found: state.deployment,
            expected: deployment.to_string(),
        });
    }
    Ok(Some(state))
}

/// The state of a deployment, opened for changing: locked, and saved after every change.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: State,
    /// Held for the life of the value; the OS releases it if the process dies.
    _lock: File,
    /// Size, modification time and inode of the file as this value last wrote it: when the
    /// file still looks so, nobody else wrote it and re-reading it for the conflict check
    /// can be skipped (with a thousand resources that re-read dominated a deploy).
    written: Option<FileStamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode: m.ino(),
        })
    }
}

impl StateFile {
    /// Locks and reads the state at `path`, or starts a new one for `deployment`.
    pub fn open(path: &Path, deployment: &str) -> Result<StateFile, StateError> {
        let lock_path = sibling(path, "lock");
        let write_err = |source| StateError::Write {
            path: lock_path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(write_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked { path: lock_path });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StateError::Write {
                    path: lock_path,
                    source,
                });
            }
        }
        let state = read(path, deployment)?.unwrap_or_else(|| State::new(deployment));
        Ok(StateFile {
            path: path.to_path_buf(),
            state,
            _lock: lock,
            written: FileStamp::of(path),
        })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn path(&self) -> &Path {
        &self.path
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

    /// Writes the state: temporary file, fsync, backup of the previous version, rename.
    pub fn save(&mut self) -> Result<(), StateError> {
        let write = self.prepare()?;
        let stamp = write.run()?;
        self.written(stamp);
        Ok(())
    }

    /// The first half of a save, done under whatever lock guards the state: the conflict
    /// check, the next serial, the text. [`Write::run`] does the slow half (the file, the
    /// fsyncs) without needing the state, so changes can go on meanwhile.
    pub fn prepare(&mut self) -> Result<Write, StateError> {
        let unchanged = self.written.is_some() && self.written == FileStamp::of(&self.path);
        if !unchanged
            && let Some(on_disk) = read(&self.path, &self.state.deployment)?
            && (on_disk.serial != self.state.serial || on_disk.lineage != self.state.lineage)
        {
            return Err(StateError::Conflict {
                path: self.path.clone(),
                found: on_disk.serial,
                expected: self.state.serial,
            });
        }
        // A serial is never reused: after a failed write the next one skips it, which the
        // conflict check allows because the file was not touched.
        self.state.serial += 1;
        let mut text = serde_json::to_string_pretty(&self.state).expect("state serialises");
        text.push('\n');
        Ok(Write {
            path: self.path.clone(),
            text,
        })
    }

    /// Records that a [`Write`] of this state reached the disk.
    pub fn written(&mut self, stamp: FileStamp) {
        self.written = Some(stamp);
    }
}

/// A prepared write of the state file.
#[derive(Debug)]
pub struct Write {
    path: PathBuf,
    text: String,
}

impl Write {
    /// Temporary file, fsync, backup of the previous version, rename, fsync of the directory.
    pub fn run(self) -> Result<FileStamp, StateError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Write { path, source }
        };
        let tmp = sibling(&self.path, "tmp");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err(&tmp))?;
        file.write_all(self.text.as_bytes()).map_err(err(&tmp))?;
        file.sync_all().map_err(err(&tmp))?;
        if self.path.exists() {
            let backup = sibling(&self.path, "backup");
            std::fs::copy(&self.path, &backup).map_err(err(&backup))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err(&self.path))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err(dir))?;
        }
        FileStamp::of(&self.path).ok_or_else(|| StateError::Write {
            path: self.path.clone(),
            source: std::io::Error::other("the file vanished after it was written"),
        })
    }
}

/// `web.state.json` -> `web.state.json.lock`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut file = StateFile::open(&path, "d").unwrap();
        assert!(matches!(
            StateFile::open(&path, "d"),
            Err(StateError::Locked { .. })
        ));
        file.update(|s| {
            s.resources.insert(
                "node.a".into(),
                ResourceState {
                    kind: ResourceKind::Node,
                    provider: fitter_providers::lxd::KIND,
                    id: Some("a".into()),
                    attributes: BTreeMap::new(),
                    outputs: BTreeMap::new(),
                    status: Status::Creating,
                },
            );
        })
        .unwrap();
        file.update(|s| s.resources.get_mut("node.a").unwrap().status = Status::Ready)
            .unwrap();
        let on_disk = read(&path, "d").unwrap().unwrap();
        assert_eq!(on_disk.serial, 2);
        assert_eq!(on_disk, *file.state());
        let backup = read(&sibling(&path, "backup"), "d").unwrap().unwrap();
        assert_eq!(backup.serial, 1);
        assert_eq!(backup.resources["node.a"].status, Status::Creating);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let lineage = on_disk.lineage.clone();
        assert_eq!(lineage.len(), 36);
        drop(file);
        // The lock goes with the value; a second writer that reads an edited file refuses.
        let mut again = StateFile::open(&path, "d").unwrap();
        let mut edited = on_disk.clone();
        edited.serial = 9;
        std::fs::write(&path, serde_json::to_string(&edited).unwrap()).unwrap();
        assert!(matches!(again.save(), Err(StateError::Conflict { .. })));
    }
}
