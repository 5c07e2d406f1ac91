//! The state in PostgreSQL, for a team: one row per deployment that every operator's fitter
//! reads and writes, locked across machines.
//!
//! - **Tables** (made on first use, in the URL's database and `search_path`):
//!   `fitter_state` (deployment, lineage, serial, the state's text, when and by whom it was
//!   written), `fitter_state_history` (the version each command found before its first
//!   write, the last [`HISTORY`] per deployment: the file store's `.backup`, kept longer)
//!   and `fitter_lock_holder` (who holds each deployment's lock, for whoever is blocked).
//!   The text is stored as `text`, not `jsonb`: what `state pull` gives back is byte for
//!   byte what was written.
//! - **Lock**: a session-level advisory lock per deployment (`pg_advisory_lock` on a key
//!   hashed from the name), as Terraform's `pg` backend has it: held by the store's one
//!   connection for the whole command and freed by PostgreSQL itself when that connection
//!   ends, so a killed fitter leaves no lock behind. A blocked command waits up to
//!   `--lock-timeout` in the server (`lock_timeout`, no polling), saying who holds it.
//! - **Writes**: compare-and-swap on the serial and lineage in one `UPDATE`; a write that
//!   does not follow the stored version is refused ([`StateError::Conflict`]), never merged.
//!   The apply stage's group commit batches changes as it does for the file.
//! - **A database that goes away** mid-command fails the write; the state store's caller
//!   keeps the state in memory and writes it to the errored-state file
//!   ([`super::LockedState`]).

mod connect;

pub use connect::{Url, redact};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest as _;
use thiserror::Error;

use super::{Holder, Snapshot, State, StateError, StateStore, StateWriter};
use connect::Session;

/// Versions kept in `fitter_state_history` per deployment.
pub const HISTORY: i64 = 10;

#[derive(Debug, Error)]
pub enum PgError {
    #[error("the backend URL `{url}` is not valid: {detail}")]
    Url { url: String, detail: String },
    #[error("cannot connect to PostgreSQL at `{url}`: {detail}")]
    Connect { url: String, detail: String },
    #[error("PostgreSQL did not {what}: {detail}")]
    Query {
        what: &'static str,
        detail: String,
        /// The server's `lock_timeout` ran out.
        lock_timeout: bool,
    },
    #[error("cannot read the CA certificate `{path}` (sslrootcert): {detail}")]
    Tls { path: PathBuf, detail: String },
    #[error("the PostgreSQL session stopped: {0}")]
    Runtime(String),
}

/// A deployment's state in PostgreSQL.
pub struct PgStore {
    url: Url,
    /// Connected on first use: `plan --no-refresh` of a file-backed plan never gets here,
    /// and a plan naming a database does not fail to load while it is down.
    session: Mutex<Option<Arc<Session>>>,
    lock_timeout: Duration,
}

impl PgStore {
    pub fn new(url: Url, lock_timeout: Duration) -> PgStore {
        PgStore {
            url,
            session: Mutex::new(None),
            lock_timeout,
        }
    }

    fn session(&self) -> Result<Arc<Session>, PgError> {
        let mut slot = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        let session = Arc::new(Session::open(&self.url)?);
        create_tables(&session)?;
        *slot = Some(Arc::clone(&session));
        Ok(session)
    }

    /// A writer of `deployment` that does not take its lock. In use the lock keeps writers
    /// apart; the model test of the compare-and-swap (tests/postgres.rs) uses two of these to
    /// show that interleaved writes stay safe without it.
    #[doc(hidden)]
    pub fn writer_without_lock(
        &self,
        deployment: &str,
    ) -> Result<Arc<dyn StateWriter>, StateError> {
        Ok(Arc::new(PgWriter {
            session: self.session()?,
            location: self.location(),
            deployment: deployment.to_string(),
            written_by: "model".into(),
            kept_history: AtomicBool::new(true),
            locked: false,
        }))
    }

    /// The history of `deployment`: serial, lineage and when, newest first.
    pub fn history(&self, deployment: &str) -> Result<Vec<(u64, String, String)>, StateError> {
        let session = self.session()?;
        let d = deployment.to_string();
        let rows = session.run("list the state's history", move |c| async move {
            c.query(
                "SELECT serial, lineage, to_char(written_at, 'YYYY-MM-DD HH24:MI:SS TZ') \
                 FROM fitter_state_history WHERE deployment = $1 ORDER BY id DESC",
                &[&d],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1), r.get(2)))
            .collect())
    }
}

impl StateStore for PgStore {
    fn location(&self) -> String {
        format!("PostgreSQL `{}`", self.url.shown())
    }

    fn shared(&self) -> bool {
        true
    }

    fn holder(&self, deployment: &str) -> Result<Option<Holder>, StateError> {
        Ok(holder(self.session()?.as_ref(), deployment)?)
    }

    /// Ends the session that holds the lock, if it is still `expected`'s: PostgreSQL then
    /// frees it. Waits (up to 10 s) until that session is gone.
    fn force_unlock(&self, deployment: &str, expected: &Holder) -> Result<(), StateError> {
        let session = self.session()?;
        let Some((now, pid)) = holder_and_pid(&session, deployment)? else {
            return Ok(());
        };
        if &now != expected {
            return Err(StateError::Refused(format!(
                "the lock changed hands meanwhile: it is held by {now} now; nothing was ended"
            )));
        }
        let ended: bool = session.run("end the lock holder's session", move |c| async move {
            Ok(
                c.query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid])
                    .await?
                    .get(0),
            )
        })?;
        if ended {
            Ok(())
        } else {
            Err(StateError::Refused(format!(
                "PostgreSQL did not end the session {pid} holding the lock (is it another role's?)"
            )))
        }
    }

    fn read(&self, deployment: &str) -> Result<Option<State>, StateError> {
        let session = self.session()?;
        read(&session, &self.location(), deployment)
    }

    fn lock(
        &self,
        deployment: &str,
        holder_now: &Holder,
    ) -> Result<(Option<State>, Arc<dyn StateWriter>), StateError> {
        let session = self.session()?;
        let key = lock_key(deployment);
        let got: bool = session.run("take the deployment's lock", move |c| async move {
            Ok(c.query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await?
                .get(0))
        })?;
        if !got {
            let held_by = holder(&session, deployment)?;
            if self.lock_timeout.is_zero() {
                return Err(StateError::Locked {
                    location: self.location(),
                    holder: held_by,
                    waited: false,
                });
            }
            crate::report::live::write_log(
                format!(
                    "The state is locked{}; waiting up to {} s for it (--lock-timeout).\n",
                    held_by
                        .as_ref()
                        .map(|h| format!(" by {h}"))
                        .unwrap_or_default(),
                    self.lock_timeout.as_secs()
                )
                .as_bytes(),
            );
            let ms = self.lock_timeout.as_millis().min(i32::MAX as u128);
            let waited = session.run_within(
                "take the deployment's lock",
                self.lock_timeout + Duration::from_secs(30),
                move |c| async move {
                    c.batch_execute(&format!("SET lock_timeout = {ms}")).await?;
                    let r = c.execute("SELECT pg_advisory_lock($1)", &[&key]).await;
                    c.batch_execute("SET lock_timeout = 0").await?;
                    r.map(|_| ())
                },
            );
            match waited {
                Ok(()) => {}
                Err(PgError::Query {
                    lock_timeout: true, ..
                }) => {
                    return Err(StateError::Locked {
                        location: self.location(),
                        holder: holder(&session, deployment)?.or(held_by),
                        waited: true,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        // The lock is ours from here: a failure before the writer exists frees it, or this
        // process would hold it until it ends.
        let recorded = record_holder(&session, deployment, holder_now)
            .map_err(StateError::from)
            .and_then(|()| read(&session, &self.location(), deployment));
        let state = match recorded {
            Ok(state) => state,
            Err(e) => {
                unlock(&session, deployment);
                return Err(e);
            }
        };
        let writer = PgWriter {
            session,
            location: self.location(),
            deployment: deployment.to_string(),
            written_by: format!("{}@{}", holder_now.user, holder_now.host),
            kept_history: AtomicBool::new(false),
            locked: true,
        };
        Ok((state, Arc::new(writer)))
    }
}

/// Records who holds `deployment`'s lock, for whoever is blocked by it.
fn record_holder(session: &Session, deployment: &str, holder: &Holder) -> Result<(), PgError> {
    let d = deployment.to_string();
    let text = serde_json::to_string(holder).unwrap_or_default();
    session.run("record the lock's holder", move |c| async move {
        c.execute(
            "INSERT INTO fitter_lock_holder (deployment, holder, backend_pid) \
             VALUES ($1, $2, pg_backend_pid()) ON CONFLICT (deployment) \
             DO UPDATE SET holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid",
            &[&d, &text],
        )
        .await
        .map(|_| ())
    })
}

/// Frees `deployment`'s lock held by this session, and its holder's record. Best effort:
/// the lock goes with the session anyway.
fn unlock(session: &Session, deployment: &str) {
    let d = deployment.to_string();
    let key = lock_key(deployment);
    let _ = session.run("free the lock", move |c| async move {
        c.execute(
            "DELETE FROM fitter_lock_holder WHERE deployment = $1 AND backend_pid = pg_backend_pid()",
            &[&d],
        )
        .await?;
        c.execute("SELECT pg_advisory_unlock($1)", &[&key]).await
    });
}

/// The lock key of a deployment: the first eight bytes of a SHA-256 of its name, stable
/// across builds and machines (Rust's own hasher is neither).
fn lock_key(deployment: &str) -> i64 {
    let digest = sha2::Sha256::digest(format!("fitter/{deployment}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

fn create_tables(session: &Session) -> Result<(), PgError> {
    // A role a DBA gave only reads and writes on fitter's tables cannot `CREATE TABLE IF
    // NOT EXISTS` (the right to create is checked first): look before making them.
    let present: i64 = session.run("look for fitter's tables", |c| async move {
        Ok(c.query_one(
            "SELECT count(*) FROM unnest(ARRAY['fitter_state', 'fitter_state_history', \
             'fitter_lock_holder']) AS t(name) WHERE to_regclass(t.name) IS NOT NULL",
            &[],
        )
        .await?
        .get(0))
    })?;
    if present == 3 {
        return Ok(());
    }
    // Two fitters meeting an empty database at once would race on `CREATE TABLE IF NOT
    // EXISTS` (it is not atomic); a transaction-level advisory lock orders them.
    session.run("create fitter's tables", |c| async move {
        c.batch_execute(
            "BEGIN;
             SELECT pg_advisory_xact_lock(7236373745284474739);
             CREATE TABLE IF NOT EXISTS fitter_state (
                 deployment text PRIMARY KEY,
                 lineage text NOT NULL,
                 serial bigint NOT NULL,
                 state text NOT NULL,
                 written_at timestamptz NOT NULL DEFAULT now(),
                 written_by text NOT NULL DEFAULT ''
             );
             CREATE TABLE IF NOT EXISTS fitter_state_history (
                 id bigserial PRIMARY KEY,
                 deployment text NOT NULL,
                 lineage text NOT NULL,
                 serial bigint NOT NULL,
                 state text NOT NULL,
                 written_at timestamptz NOT NULL
             );
             CREATE INDEX IF NOT EXISTS fitter_state_history_by_deployment
                 ON fitter_state_history (deployment, id);
             CREATE TABLE IF NOT EXISTS fitter_lock_holder (
                 deployment text PRIMARY KEY,
                 holder text NOT NULL,
                 backend_pid integer NOT NULL
             );
             COMMIT;",
        )
        .await
    })
}

fn read(session: &Session, location: &str, deployment: &str) -> Result<Option<State>, StateError> {
    let d = deployment.to_string();
    let row = session.run("read the state", move |c| async move {
        c.query_opt(
            "SELECT state FROM fitter_state WHERE deployment = $1",
            &[&d],
        )
        .await
    })?;
    match row {
        None => Ok(None),
        Some(row) => super::parse(row.get(0), location, deployment).map(Some),
    }
}

/// The holder recorded for `deployment`, if its lock is held by that session now.
fn holder(session: &Session, deployment: &str) -> Result<Option<Holder>, PgError> {
    Ok(holder_and_pid(session, deployment)?.map(|(h, _)| h))
}

/// The holder and the server process of the session holding `deployment`'s lock in this
/// database (`pg_locks` covers the whole cluster: a namesake elsewhere is not ours).
fn holder_and_pid(session: &Session, deployment: &str) -> Result<Option<(Holder, i32)>, PgError> {
    let d = deployment.to_string();
    let key = lock_key(deployment);
    let row = session.run("say who holds the lock", move |c| async move {
        c.query_opt(
            "SELECT h.holder, h.backend_pid FROM fitter_lock_holder h JOIN pg_locks l \
             ON l.pid = h.backend_pid AND l.locktype = 'advisory' AND l.granted \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND ((l.classid::bigint << 32) | l.objid::bigint) = $2 AND l.objsubid = 1 \
             WHERE h.deployment = $1",
            &[&d, &key],
        )
        .await
    })?;
    Ok(row.map(|r| {
        let holder = serde_json::from_str(r.get::<_, &str>(0)).unwrap_or(Holder {
            user: "?".into(),
            host: "?".into(),
            pid: 0,
            command: "an unknown command".into(),
            since: 0,
        });
        (holder, r.get(1))
    }))
}

/// Writes a deployment's row while its session holds the lock.
struct PgWriter {
    session: Arc<Session>,
    location: String,
    deployment: String,
    written_by: String,
    /// Whether this command copied the version it found into the history yet.
    kept_history: AtomicBool,
    /// Whether the session holds the deployment's lock, to free when done.
    locked: bool,
}

impl StateWriter for PgWriter {
    fn write(&self, snapshot: &Snapshot) -> Result<(), StateError> {
        let keep = !self.kept_history.load(Ordering::SeqCst);
        let d = self.deployment.clone();
        let lineage = snapshot.lineage.clone();
        let previous_lineage = snapshot.previous_lineage.clone();
        let text = snapshot.text.clone();
        let by = self.written_by.clone();
        let (serial, previous) = (snapshot.serial as i64, snapshot.previous as i64);
        let found: Option<i64> = self.session.run("store the state", move |c| async move {
            if keep {
                c.execute(
                    "INSERT INTO fitter_state_history (deployment, lineage, serial, state, written_at) \
                     SELECT deployment, lineage, serial, state, written_at FROM fitter_state \
                     WHERE deployment = $1",
                    &[&d],
                )
                .await?;
                c.execute(
                    "DELETE FROM fitter_state_history WHERE deployment = $1 AND id NOT IN \
                     (SELECT id FROM fitter_state_history WHERE deployment = $1 \
                      ORDER BY id DESC LIMIT $2)",
                    &[&d, &HISTORY],
                )
                .await?;
            }
            // The compare-and-swap: only the version this one follows is replaced.
            let updated = c
                .execute(
                    "UPDATE fitter_state SET serial = $3, state = $4, written_at = now(), \
                     written_by = $5, lineage = $2 \
                     WHERE deployment = $1 AND lineage = $7 AND serial = $6",
                    &[&d, &lineage, &serial, &text, &by, &previous, &previous_lineage],
                )
                .await?;
            if updated == 1 {
                return Ok(None);
            }
            if previous == 0 {
                let inserted = c
                    .execute(
                        "INSERT INTO fitter_state (deployment, lineage, serial, state, written_by) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (deployment) DO NOTHING",
                        &[&d, &lineage, &serial, &text, &by],
                    )
                    .await?;
                if inserted == 1 {
                    return Ok(None);
                }
            }
            let row = c
                .query_opt(
                    "SELECT serial FROM fitter_state WHERE deployment = $1",
                    &[&d],
                )
                .await?;
            Ok(Some(row.map_or(0, |r| r.get(0))))
        })?;
        if keep {
            self.kept_history.store(true, Ordering::SeqCst);
        }
        match found {
            None => Ok(()),
            Some(found) => Err(StateError::Conflict {
                location: self.location.clone(),
                found: found as u64,
                expected: snapshot.previous,
            }),
        }
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        // The lock goes with the session anyway; unlocking now frees it for the next
        // command of this same process.
        if self.locked {
            unlock(&self.session, &self.deployment);
        }
    }
}
