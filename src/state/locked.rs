//! A deployment's state opened for changing: locked, open in memory, saved after every
//! change, whatever the store.
//!
//! On the way to the store the secrets are sealed when a state key is given ([`seal`]); a
//! shared store gets none in plaintext unless `--allow-plaintext-secrets`. When the store
//! cannot take a version (the database went away), the version goes to the errored-state
//! file instead, with the serial of the last version the store did take (`errored_after`),
//! and the error says how to push it; the next command that opens the deployment pushes it
//! itself when nobody wrote in between, and otherwise stops and says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::seal::{self, StateKey};
use super::{Holder, Snapshot, State, StateError, StateStore, StateWriter};

/// How a deployment's state is opened besides its store.
#[derive(Clone, Default)]
pub struct StateOptions {
    /// Seals the secrets of what is written, opens those of what is read.
    pub key: Option<Arc<StateKey>>,
    /// `--allow-plaintext-secrets`: a shared store takes secrets unsealed.
    pub allow_plaintext: bool,
    /// The errored-state file, for a store that can go away (PostgreSQL).
    pub errored: Option<PathBuf>,
}

/// The state of a deployment, opened for changing: locked, and saved after every change.
pub struct LockedState {
    state: State,
    writer: Arc<dyn StateWriter>,
    location: String,
    /// The serial of the version last stored (or read): what the next write replaces.
    stored: u64,
    /// Its lineage.
    stored_lineage: String,
    options: StateOptions,
    /// Set once a write of this run went to the errored-state file; the next write that
    /// reaches the store removes the file, which is then behind it.
    errored_written: Arc<std::sync::atomic::AtomicBool>,
    /// The salt of the sealed secrets last read or written: kept, so that the key derived
    /// from it once serves every write.
    salt: Option<String>,
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
    /// Locks and reads the state of `deployment` in `store`, or starts a new one; pushes
    /// an errored-state file a failed run left, when nothing was written since.
    pub fn open(
        store: &dyn StateStore,
        deployment: &str,
        holder: &Holder,
        options: StateOptions,
    ) -> Result<LockedState, StateError> {
        // Every deploy records secrets (a new node's private host key while it is made), so
        // a shared store without a key is refused here, once, before anything is created.
        if store.shared() && options.key.is_none() && !options.allow_plaintext {
            return Err(StateError::Plaintext {
                location: store.location(),
                deployment: deployment.to_string(),
            });
        }
        let (stored, writer) = store.lock(deployment, holder)?;
        let salt = stored
            .as_ref()
            .and_then(|s| s.sealed.as_ref())
            .map(|s| s.salt.clone());
        let state = match stored {
            Some(mut s) => {
                seal::unseal(&mut s, options.key.as_deref())?;
                s
            }
            None => State::new(deployment),
        };
        let mut locked = LockedState {
            stored: state.serial,
            stored_lineage: state.lineage.clone(),
            errored_written: Arc::default(),
            state,
            writer,
            location: store.location(),
            options,
            salt,
        };
        if let Some(path) = locked.options.errored.clone()
            && path.exists()
        {
            locked.push_errored(&path)?;
        }
        Ok(locked)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The serial of the version stored when it was opened (0: none yet).
    pub fn stored_serial(&self) -> u64 {
        self.stored
    }

    /// A history not stored yet takes `lineage` (a saved plan's, made against no state), so
    /// that the plan cannot be applied to another history, or twice.
    pub fn take_lineage(&mut self, lineage: &str) {
        if self.stored == 0 {
            self.state.lineage = lineage.to_string();
            self.stored_lineage = lineage.to_string();
        }
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
        let serial = self.prepare()?.run()?;
        self.stored(serial);
        Ok(())
    }

    /// The first half of a save, done under whatever lock guards the state: the next serial
    /// and the text (secrets sealed). [`PendingWrite::run`] does the slow half (the store's
    /// I/O) without needing the state, so that changes can go on meanwhile.
    pub fn prepare(&mut self) -> Result<PendingWrite, StateError> {
        // A serial is never reused: after a failed write the next one skips it, which the
        // compare-and-swap allows because the stored version did not change.
        self.state.serial += 1;
        let text = match &self.options.key {
            None => to_text(&self.state),
            Some(key) => {
                let mut sealed = self.state.clone();
                seal::seal(&mut sealed, key, self.salt.as_deref())?;
                if let Some(s) = &sealed.sealed {
                    self.salt = Some(s.salt.clone());
                }
                to_text(&sealed)
            }
        };
        let snapshot = Snapshot {
            deployment: self.state.deployment.clone(),
            lineage: self.state.lineage.clone(),
            serial: self.state.serial,
            previous: self.stored,
            previous_lineage: self.stored_lineage.clone(),
            text,
        };
        Ok(PendingWrite {
            writer: Arc::clone(&self.writer),
            snapshot,
            errored: self.options.errored.clone(),
            errored_written: Arc::clone(&self.errored_written),
        })
    }

    /// Records that the version with `serial` is stored: the next write follows it.
    pub fn stored(&mut self, serial: u64) {
        if serial > self.stored {
            self.stored = serial;
            self.stored_lineage = self.state.lineage.clone();
        }
    }

    /// Replaces the state with `state` (`state push`): stored as the next version when it
    /// follows the stored one (same lineage, a higher serial), else refused unless `force`.
    /// Its serial is kept when it is higher than the stored one.
    pub fn replace(&mut self, mut state: State, force: bool) -> Result<(), StateError> {
        let exists = self.stored > 0 || !self.state.resources.is_empty();
        if !force && exists {
            if state.lineage != self.state.lineage {
                return Err(StateError::Refused(format!(
                    "the state given has lineage {}, {} has {}: it is another deployment's \
                     history; `--force` replaces it anyway",
                    state.lineage, self.location, self.state.lineage
                )));
            }
            if state.serial <= self.stored {
                return Err(StateError::Refused(format!(
                    "the state given has serial {}, {} is at {}: it is older; `--force` \
                     replaces it anyway",
                    state.serial, self.location, self.stored
                )));
            }
            if let Some(after) = state
                .errored_after
                .filter(|a| *a != self.stored && !in_doubt(&state, *a, &self.state, self.stored))
            {
                return Err(StateError::Refused(format!(
                    "the errored state given follows serial {after}, but {} was written \
                     since (serial {}): pushing it would undo that; `--force` replaces it anyway",
                    self.location, self.stored
                )));
            }
        }
        state.errored_after = None;
        // The serial stays what it was, unless that would not follow the stored version.
        state.serial = state.serial.max(self.stored + 1) - 1;
        self.state = state;
        self.save()
    }

    /// Pushes the errored-state file a failed run left, or explains why not.
    fn push_errored(&mut self, path: &Path) -> Result<(), StateError> {
        let text = std::fs::read_to_string(path).map_err(|source| StateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let location = format!("`{}`", path.display());
        let mut errored = super::parse(&text, &location, &self.state.deployment)?;
        seal::unseal(&mut errored, self.options.key.as_deref())?;
        let after = errored.errored_after.unwrap_or(0);
        let stored = &self.state;
        let same_content = errored.resources == stored.resources
            && errored.secrets == stored.secrets
            && errored.addresses == stored.addresses;
        if errored.lineage == stored.lineage && errored.serial == self.stored && same_content {
            // Pushed already (`state push`, or a run that died after the push).
            let _ = std::fs::remove_file(path);
            return Ok(());
        }
        let follows = if self.stored == 0 && stored.resources.is_empty() {
            after == 0 || errored.lineage == stored.lineage
        } else {
            errored.lineage == stored.lineage
                && (after == self.stored || in_doubt(&errored, after, stored, self.stored))
        };
        if !follows {
            return Err(StateError::Refused(format!(
                "{location} holds the state a run could not store (serial {}, after {after}), but \
                 {} was written since (serial {}): compare them (`fitter state pull`), then \
                 `fitter state push --force {}` or remove the file",
                errored.serial,
                self.location,
                self.stored,
                path.display()
            )));
        }
        let serial = errored.serial;
        self.replace(errored, true)?;
        let _ = std::fs::remove_file(path);
        crate::report::live::write_log(
            format!(
                "The state a run could not store (serial {serial}, {location}) is now in {}.\n",
                self.location
            )
            .as_bytes(),
        );
        Ok(())
    }
}

/// Whether the stored version (serial `stored_serial`) is one the errored run wrote itself
/// without learning it: a write whose answer was lost when the database went away may have
/// committed. It lies between the errored state's base and its serial, in its history, and
/// pushing the errored state loses nothing it records (every resource, with its id).
fn in_doubt(errored: &State, after: u64, stored: &State, stored_serial: u64) -> bool {
    errored.lineage == stored.lineage
        && after < stored_serial
        && stored_serial < errored.serial
        && stored.resources.iter().all(|(address, r)| {
            errored
                .resources
                .get(address)
                .is_some_and(|e| e.id == r.id || r.id.is_none())
        })
}

fn to_text(state: &State) -> String {
    let mut text = serde_json::to_string_pretty(state).expect("state serialises");
    text.push('\n');
    text
}

/// A prepared write of the state.
pub struct PendingWrite {
    writer: Arc<dyn StateWriter>,
    snapshot: Snapshot,
    errored: Option<PathBuf>,
    errored_written: Arc<std::sync::atomic::AtomicBool>,
}

impl PendingWrite {
    /// Stores the snapshot; returns its serial. When the store fails, the snapshot goes to
    /// the errored-state file (if there is one) and the error names it.
    pub fn run(self) -> Result<u64, StateError> {
        use std::sync::atomic::Ordering;
        let Err(source) = self.writer.write(&self.snapshot) else {
            // The store is back within the run: the errored-state file is behind it now.
            if let Some(path) = &self.errored
                && self.errored_written.swap(false, Ordering::SeqCst)
            {
                let _ = std::fs::remove_file(path);
            }
            return Ok(self.snapshot.serial);
        };
        let Some(path) = self.errored else {
            return Err(source);
        };
        match write_errored(&path, &self.snapshot) {
            Ok(()) => {
                self.errored_written.store(true, Ordering::SeqCst);
                Err(StateError::Errored {
                    path,
                    source: Box::new(source),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "the errored-state file could not be written either");
                Err(source)
            }
        }
    }
}

/// The snapshot, with the serial it follows, written privately and atomically.
fn write_errored(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut value: serde_json::Value = serde_json::from_str(&snapshot.text)?;
    value["errored_after"] = snapshot.previous.into();
    let mut text = serde_json::to_string_pretty(&value)?;
    text.push('\n');
    let tmp = super::file::sibling(path, "tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::state::MemoryStore;

    /// A memory store whose writes fail while `down` is set: a database gone away.
    #[derive(Clone, Default)]
    struct Flaky {
        inner: MemoryStore,
        down: Arc<AtomicBool>,
        /// Writes are stored, but their answer is lost.
        lost: Arc<AtomicBool>,
    }

    struct FlakyWriter {
        inner: Arc<dyn StateWriter>,
        down: Arc<AtomicBool>,
        lost: Arc<AtomicBool>,
    }

    impl StateWriter for FlakyWriter {
        fn write(&self, snapshot: &Snapshot) -> Result<(), StateError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StateError::Refused("the database is down".into()));
            }
            self.inner.write(snapshot)?;
            if self.lost.load(Ordering::SeqCst) {
                return Err(StateError::Refused("the connection closed".into()));
            }
            Ok(())
        }
    }

    impl StateStore for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn shared(&self) -> bool {
            true
        }
        fn read(&self, d: &str) -> Result<Option<State>, StateError> {
            self.inner.read(d)
        }
        fn lock(
            &self,
            d: &str,
            h: &Holder,
        ) -> Result<(Option<State>, Arc<dyn StateWriter>), StateError> {
            let (s, w) = self.inner.lock(d, h)?;
            let writer = FlakyWriter {
                inner: w,
                down: Arc::clone(&self.down),
                lost: Arc::clone(&self.lost),
            };
            Ok((s, Arc::new(writer)))
        }
        fn holder(&self, d: &str) -> Result<Option<Holder>, StateError> {
            self.inner.holder(d)
        }
        fn force_unlock(&self, d: &str, h: &Holder) -> Result<(), StateError> {
            self.inner.force_unlock(d, h)
        }
    }

    fn options(dir: &Path) -> StateOptions {
        StateOptions {
            allow_plaintext: true,
            errored: Some(dir.join("d.errored.state.json")),
            ..StateOptions::default()
        }
    }

    fn open(store: &Flaky, dir: &Path) -> Result<LockedState, StateError> {
        LockedState::open(store, "d", &Holder::this_process("t"), options(dir))
    }

    fn record(s: &mut State, address: &str) {
        let r: crate::state::ResourceState = serde_json::from_value(serde_json::json!({
            "kind": "node", "provider": "lxd", "id": address
        }))
        .unwrap();
        s.resources.insert(address.into(), r);
    }

    #[test]
    fn a_store_gone_away_loses_nothing_and_the_next_run_pushes_what_it_missed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::default();
        let mut run = open(&store, dir.path()).unwrap();
        run.update(|s| record(s, "node.a")).unwrap();
        store.down.store(true, Ordering::SeqCst);
        let err = run.update(|s| record(s, "node.b")).unwrap_err();
        assert!(matches!(err, StateError::Errored { .. }), "{err}");
        assert!(err.to_string().contains("fitter state push"), "{err}");
        let _ = run.update(|s| record(s, "node.c"));
        drop(run);
        // Every resource recorded, with the serial the store last took.
        let path = dir.path().join("d.errored.state.json");
        let errored: State =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(errored.resources.len(), 3);
        assert_eq!(errored.errored_after, Some(1));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The store is back: the next run pushes it and goes on from there.
        store.down.store(false, Ordering::SeqCst);
        let next = open(&store, dir.path()).unwrap();
        assert_eq!(next.state().resources.len(), 3);
        assert!(!path.exists(), "the errored-state file is gone once pushed");
        let stored = store.read("d").unwrap().unwrap();
        assert_eq!(stored.resources.len(), 3);
        assert_eq!(stored.errored_after, None);
        assert!(stored.serial > errored.errored_after.unwrap());
    }

    #[test]
    fn a_store_back_within_the_run_takes_the_errored_state_file_s_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::default();
        let mut run = open(&store, dir.path()).unwrap();
        store.down.store(true, Ordering::SeqCst);
        let _ = run.update(|s| record(s, "node.a"));
        let path = dir.path().join("d.errored.state.json");
        assert!(path.exists());
        store.down.store(false, Ordering::SeqCst);
        run.update(|s| record(s, "node.b")).unwrap();
        assert!(
            !path.exists(),
            "a stale errored-state file would block the next run"
        );
        drop(run);
        let next = open(&store, dir.path()).unwrap();
        assert_eq!(next.state().resources.len(), 2);
    }

    #[test]
    fn a_forced_push_replaces_another_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::default();
        let mut run = open(&store, dir.path()).unwrap();
        run.update(|s| record(s, "node.a")).unwrap();
        let mut other = State::new("d");
        other.serial = 7;
        record(&mut other, "node.z");
        let err = run.replace(other.clone(), false).unwrap_err();
        assert!(err.to_string().contains("lineage"), "{err}");
        run.replace(other.clone(), true).unwrap();
        let stored = store.read("d").unwrap().unwrap();
        assert_eq!(stored.lineage, other.lineage);
        assert_eq!(stored.serial, 7);
        assert!(stored.resources.contains_key("node.z"));
        // ...and the writes after it follow the new history.
        run.update(|s| record(s, "node.y")).unwrap();
        assert_eq!(store.read("d").unwrap().unwrap().serial, 8);
    }

    #[test]
    fn a_write_stored_but_unanswered_does_not_block_the_push() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::default();
        let mut run = open(&store, dir.path()).unwrap();
        run.update(|s| record(s, "node.a")).unwrap();
        // The database took this write, then went away before answering.
        store.lost.store(true, Ordering::SeqCst);
        let _ = run.update(|s| record(s, "node.b"));
        store.lost.store(false, Ordering::SeqCst);
        store.down.store(true, Ordering::SeqCst);
        let _ = run.update(|s| record(s, "node.c"));
        drop(run);
        store.down.store(false, Ordering::SeqCst);
        let next = open(&store, dir.path()).unwrap();
        assert_eq!(next.state().resources.len(), 3);
        assert!(!dir.path().join("d.errored.state.json").exists());
    }

    #[test]
    fn an_errored_state_written_over_since_is_not_pushed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::default();
        let mut run = open(&store, dir.path()).unwrap();
        run.update(|s| record(s, "node.a")).unwrap();
        store.down.store(true, Ordering::SeqCst);
        let _ = run.update(|s| record(s, "node.b"));
        drop(run);
        store.down.store(false, Ordering::SeqCst);
        // Another operator, without the errored file, writes meanwhile.
        let elsewhere = tempfile::tempdir().unwrap();
        let mut other = open(&store, elsewhere.path()).unwrap();
        other.update(|s| record(s, "node.z")).unwrap();
        drop(other);
        let err = open(&store, dir.path()).unwrap_err();
        assert!(err.to_string().contains("was written since"), "{err}");
        assert!(dir.path().join("d.errored.state.json").exists());
        assert!(
            store
                .read("d")
                .unwrap()
                .unwrap()
                .resources
                .contains_key("node.z")
        );
    }

    #[test]
    fn a_shared_store_refuses_plaintext_secrets_unless_allowed_or_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::default();
        let err = LockedState::open(
            &store,
            "d",
            &Holder::this_process("t"),
            StateOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, StateError::Plaintext { .. }), "{err}");
        assert!(
            store.holder("d").unwrap().is_none(),
            "not even the lock was taken"
        );
        let key = Arc::new(StateKey::new("a team passphrase, long enough".into()).unwrap());
        let mut sealed = LockedState::open(
            &store,
            "d",
            &Holder::this_process("t"),
            StateOptions {
                key: Some(key),
                ..options(dir.path())
            },
        )
        .unwrap();
        sealed
            .update(|s| {
                s.secrets
                    .insert("db.secret".into(), "hunter2-hunter2".into());
            })
            .unwrap();
        let stored = store.read("d").unwrap().unwrap();
        assert!(stored.secrets.is_empty() && stored.sealed.is_some());
        assert_eq!(sealed.state().secrets["db.secret"], "hunter2-hunter2");
    }
}
