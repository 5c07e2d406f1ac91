//! The state in a file: one JSON file per deployment, beside the plan (`<plan>.state.json`)
//! unless `--state` says otherwise.
//!
//! - **Lock**: `<state>.lock`, an exclusive `flock` held for the life of the writer (the OS
//!   frees it when the process dies, so a killed fitter leaves no stuck lock); the holder
//!   (user, host, pid, command, since) is written into it, so a blocked command says who.
//!   A command removes the lock file before letting go, so none is left behind (a plan or
//!   a dispose of what was never deployed leaves nothing at all); a waiter checks that the
//!   file it locked is still the one at the path.
//! - **Write**: to `<state>.tmp`, fsynced, renamed over the old file, the folder fsynced;
//!   mode 0600, as the state holds addresses, host keys and generated secrets.
//! - **Backup**: `<state>.backup` is the state as it was before the command that last
//!   changed it (Terraform's `.backup` has the same meaning): copied once, at the command's
//!   first write, never again by the same command. A command that empties the state, by
//!   dispose or by forgetting what reads as gone, so never overwrites the last good version
//!   with an emptier one of its own making; the run after it does, having said what it
//!   forgot.
//! - **Links**: no file of the state folder is opened through a symbolic link (`O_NOFOLLOW`
//!   on the lock, the temporary file and the backup): a link planted as `<state>.backup`
//!   would otherwise have the state, host keys included, written to wherever it points. A
//!   link found there is an error that names it. The flag's value differs between
//!   platforms, so it comes from the `libc` crate rather than a number written here.
//! - **Compare-and-swap**: before a write, the file must still hold the version this writer
//!   last wrote (or read). Re-reading it each time dominated a thousand-node deploy, so the
//!   writer remembers the file's size, mtime and inode after its own write and re-reads only
//!   when they changed.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Holder, Snapshot, State, StateError, StateStore, StateWriter};

/// The state file at a path.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    /// How long to wait for a lock another process holds (`--lock-timeout`).
    lock_timeout: std::time::Duration,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        FileStore {
            path: path.into(),
            lock_timeout: std::time::Duration::ZERO,
        }
    }

    /// Waits up to `timeout` for a lock another process holds, instead of refusing at once.
    pub fn with_lock_timeout(mut self, timeout: std::time::Duration) -> FileStore {
        self.lock_timeout = timeout;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StateStore for FileStore {
    fn location(&self) -> String {
        format!("`{}`", self.path.display())
    }

    fn holder(&self, _deployment: &str) -> Result<Option<Holder>, StateError> {
        let lock_path = sibling(&self.path, "lock");
        let Ok(mut lock) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
        else {
            return Ok(None);
        };
        if lock.try_lock_shared().is_ok() {
            return Ok(None);
        }
        let mut text = String::new();
        let _ = lock.read_to_string(&mut text);
        Ok(Some(serde_json::from_str(&text).unwrap_or(Holder {
            user: "?".into(),
            host: "?".into(),
            pid: 0,
            command: "an unknown command".into(),
            since: 0,
        })))
    }

    /// A file lock is an `flock`, which only a live process holds: there is nothing to
    /// force, only a process to stop.
    fn force_unlock(&self, deployment: &str, _expected: &Holder) -> Result<(), StateError> {
        match self.holder(deployment)? {
            None => Ok(()),
            Some(h) => Err(StateError::Refused(format!(
                "`{}` is held by {h}: a state file's lock is held only by a running process and \
                 freed when it ends, so there is nothing to force; stop that process (pid {} on {})",
                self.path.display(),
                h.pid,
                h.host
            ))),
        }
    }

    fn read(&self, deployment: &str) -> Result<Option<State>, StateError> {
        read(&self.path, deployment)
    }

    fn lock(
        &self,
        deployment: &str,
        holder: &Holder,
    ) -> Result<(Option<State>, Arc<dyn StateWriter>), StateError> {
        let lock_path = sibling(&self.path, "lock");
        let write_err = |source| StateError::Write {
            path: lock_path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&lock_path)
                .map_err(|e| link_error(&lock_path, e))
        };
        let mut lock = open()?;
        let deadline = std::time::Instant::now() + self.lock_timeout;
        let mut told = false;
        let taken = loop {
            // flock has no timed wait; a blocked command looks again every 100 ms until
            // `--lock-timeout` runs out (0 by default: refuse at once).
            match lock.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    if !told {
                        told = true;
                        crate::report::live::write_log(
                            format!(
                                "The state is locked (`{}`); waiting up to {} s for it (--lock-timeout).\n",
                                lock_path.display(),
                                self.lock_timeout.as_secs()
                            )
                            .as_bytes(),
                        );
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                // A holder that wrote no state removes the lock file as it lets go (see
                // `FileWriter`'s drop); the file locked here may be that removed one. Only
                // the file at the path counts: open it again and lock that.
                Ok(()) if !is_at(&lock, &lock_path) => lock = open()?,
                other => break other,
            }
        };
        match taken {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = lock
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| serde_json::from_str(&text).ok());
                return Err(StateError::Locked {
                    location: format!("`{}`", lock_path.display()),
                    holder,
                    waited: !self.lock_timeout.is_zero(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StateError::Write {
                    path: lock_path,
                    source,
                });
            }
        }
        // Who holds it, for whoever is blocked next. The lock is what counts; a failure to
        // say who holds it is no reason to stop.
        let _ = lock.set_len(0).and_then(|()| {
            let text = serde_json::to_string(holder).unwrap_or_default();
            lock.write_all(text.as_bytes())
        });
        let state = read(&self.path, deployment)?;
        let writer = FileWriter {
            path: self.path.clone(),
            _lock: lock,
            last: Mutex::new(Stamp::of(&self.path)),
            backed_up: std::sync::atomic::AtomicBool::new(false),
        };
        Ok((state, Arc::new(writer)))
    }
}

/// Whether `file` is the file now at `path` (not one removed or replaced since it was opened).
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Writes the file while holding its lock.
struct FileWriter {
    path: PathBuf,
    /// Held for the life of the writer; the OS releases it if the process dies.
    _lock: File,
    /// How the file looked after this writer's last write (or when it was read).
    last: Mutex<Option<Stamp>>,
    /// Whether this command copied the state it found to the backup already.
    backed_up: std::sync::atomic::AtomicBool,
}

/// Size, modification time and inode of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode: m.ino(),
        })
    }
}

/// No command leaves its lock file behind (the state's folder holds the state, its backup
/// and the local files, nothing stale): it is removed while still locked, and a command
/// that was waiting on it sees it gone and locks the new one (`is_at`).
impl Drop for FileWriter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(sibling(&self.path, "lock"));
    }
}

impl StateWriter for FileWriter {
    fn write(&self, snapshot: &Snapshot) -> Result<(), StateError> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let unchanged = last.is_some() && *last == Stamp::of(&self.path);
        if !unchanged
            && let Some(on_disk) = read(&self.path, &snapshot.deployment)?
            && (on_disk.serial != snapshot.previous || on_disk.lineage != snapshot.previous_lineage)
        {
            return Err(StateError::Conflict {
                location: format!("`{}`", self.path.display()),
                found: on_disk.serial,
                expected: snapshot.previous,
            });
        }
        use std::sync::atomic::Ordering;
        let backup = !self.backed_up.load(Ordering::SeqCst);
        *last = Some(write_atomically(&self.path, &snapshot.text, backup)?);
        if backup {
            self.backed_up.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
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
    super::parse(&text, &format!("`{}`", path.display()), deployment).map(Some)
}

/// Temporary file, fsync, (when `backup`) a copy of the previous version, rename, fsync of
/// the directory.
fn write_atomically(path: &Path, text: &str, backup: bool) -> Result<Stamp, StateError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Write { path, source }
    };
    let tmp = sibling(path, "tmp");
    let mut file = open_private(&tmp)?;
    file.write_all(text.as_bytes()).map_err(err(&tmp))?;
    file.sync_all().map_err(err(&tmp))?;
    if backup && path.exists() {
        let backup = sibling(path, "backup");
        let previous = std::fs::read(path).map_err(err(path))?;
        let mut copy = open_private(&backup)?;
        copy.write_all(&previous).map_err(err(&backup))?;
        copy.sync_all().map_err(err(&backup))?;
    }
    std::fs::rename(&tmp, path).map_err(err(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err(dir))?;
    }
    Stamp::of(path).ok_or_else(|| StateError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other("the file vanished after it was written"),
    })
}

/// Opens a file of the state folder for writing from scratch, mode 0600, never through a
/// symbolic link.
fn open_private(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| link_error(path, e))
}

/// The error for a failed open: a symbolic link in the way is named as such (`ELOOP` is how
/// `O_NOFOLLOW` refuses one).
fn link_error(path: &Path, source: std::io::Error) -> StateError {
    if source.raw_os_error() == Some(libc::ELOOP) {
        StateError::Link {
            path: path.to_path_buf(),
        }
    } else {
        StateError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `web.state.json` -> `web.state.json.lock`.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}
