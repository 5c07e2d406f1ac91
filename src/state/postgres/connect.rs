//! Reaching PostgreSQL: the URL, the password, TLS, and one session that lives as long as
//! the store.
//!
//! - **Crate**: `tokio-postgres`, the maintained async client the sync `postgres` crate is
//!   built on (sqlx would bring its macros and a pool fitter does not want: the advisory
//!   lock belongs to one session, so the store holds exactly one connection).
//! - **Password**, as libpq users expect it and never from the plan: the URL given by
//!   `--backend` or `FITTER_BACKEND` may carry it; otherwise `PGPASSWORD`; otherwise the
//!   password file (`PGPASSFILE`, default `~/.pgpass`), matched on host, port, database and
//!   user with libpq's rules (`*` matches anything, `\` escapes).
//! - **TLS** when the URL asks for it: `sslmode=require`, `verify-ca` or `verify-full` use
//!   rustls (already fitter's TLS, through reqwest) and always verify the server's
//!   certificate, against `sslrootcert` when given, else the webpki roots. This is stricter
//!   than libpq's `require`, which encrypts without checking who answers: a state holds the
//!   keys to the cluster. `sslmode=disable`, or none, is plain TCP; `prefer` and `allow`
//!   are taken as `disable` (libpq would try TLS and accept any certificate).
//! - **The session**: the state store's seam is synchronous (the file store is), while the
//!   client is async; the session runs the client on a runtime of its own (one worker
//!   thread), and a caller waits on a channel for the answer. That works from any thread,
//!   async tasks included, with no runtime nested in another.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};

use super::PgError;

/// How long one exchange with the database may take before the store gives up on it: a
/// database that went away behind a silent network must not hang a deploy.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The backend URL, with the password (if any) kept apart from what is shown.
#[derive(Clone)]
pub struct Url {
    config: Config,
    /// `sslrootcert`, which tokio-postgres does not read itself.
    root_cert: Option<PathBuf>,
    tls: bool,
    /// The URL with its password replaced, for messages.
    shown: String,
}

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Url {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn parse(url: &str) -> Result<Url, PgError> {
        let bad = |detail: String| PgError::Url {
            url: redact(url),
            detail,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "a PostgreSQL backend is a `postgres://` or `postgresql://` URL".into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut root_cert = None;
        let mut tls = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslrootcert" => root_cert = Some(PathBuf::from(v)),
                "sslmode" => match v {
                    "require" | "verify-ca" | "verify-full" => tls = true,
                    "disable" | "prefer" | "allow" => tls = false,
                    _ => return Err(bad(format!("`sslmode={v}` is not a mode libpq knows"))),
                },
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config = Config::from_str(&rest).map_err(|e| bad(e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(bad("the URL names no host".into()));
        }
        if config.get_user().is_none() {
            config.user(std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        }
        config.ssl_mode(if tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        config.connect_timeout(Duration::from_secs(10));
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.application_name("fitter");
        Ok(Url {
            config,
            root_cert,
            tls,
            shown: redact(url),
        })
    }

    /// Whether the URL itself carries a password (refused in a plan).
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// The URL as messages show it: no password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        }
    }

    fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// The configuration to connect with: the password found as libpq would find it.
    fn with_password(&self) -> Config {
        let mut config = self.config.clone();
        if config.get_password().is_none() {
            if let Some(p) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()) {
                config.password(p);
            } else if let Some(p) = self.password_in_file() {
                config.password(p);
            }
        }
        config
    }

    fn password_in_file(&self) -> Option<String> {
        let path = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
        let text = std::fs::read_to_string(path).ok()?;
        let user = self.config.get_user().unwrap_or_default();
        let db = self.config.get_dbname().unwrap_or(user);
        password_from(&text, &self.host(), self.port(), db, user)
    }
}

/// The password of the first line of a `.pgpass` text matching the connection.
fn password_from(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), db, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(f, w)| f == "*" || f == w || (w == "127.0.0.1" && f == "localhost"));
            matches.then(|| fields[4].clone())
        })
}

/// A `.pgpass` line's five fields: `:` separates, `\` escapes `:` and `\`.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("one field").push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// `postgres://user:secret@host/db?password=x` -> `postgres://user:***@host/db?password=***`.
/// The credentials end at the last `@` before the path: a password may hold `/` or `@`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let rest = match rest.rfind('@') {
        Some(at) => {
            let (auth, tail) = rest.split_at(at);
            match auth.split_once(':') {
                Some((user, _)) => format!("{user}:***{tail}"),
                None => rest.to_string(),
            }
        }
        None => rest.to_string(),
    };
    let query = query.map(|q| {
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => p.to_string(),
            })
            .collect();
        format!("?{}", pairs.join("&"))
    });
    format!("{scheme}://{rest}{}", query.unwrap_or_default())
}

/// One connection to the database, and the runtime that drives it.
pub struct Session {
    runtime: Option<tokio::runtime::Runtime>,
    /// `None` only while connecting.
    client: Option<Arc<Client>>,
    /// Set when a statement ran out of time: it may still be running (and commit), so the
    /// session takes no more work; what follows fails, and the state goes to the
    /// errored-state file.
    broken: std::sync::atomic::AtomicBool,
}

impl Session {
    pub fn open(url: &Url) -> Result<Session, PgError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fitter-postgres")
            .enable_all()
            .build()
            .map_err(|e| PgError::Runtime(e.to_string()))?;
        // A runtime dropped on an async thread panics: on every way out it is shut down
        // in the background, as `Drop` does.
        let mut session = Session {
            runtime: Some(runtime),
            client: None,
            broken: Default::default(),
        };
        let client = session.connect(url)?;
        session.client = Some(Arc::new(client));
        Ok(session)
    }

    fn connect(&self, url: &Url) -> Result<Client, PgError> {
        let runtime = self
            .runtime
            .as_ref()
            .expect("a new session has its runtime");
        let config = url.with_password();
        let shown = url.shown.clone();
        let tls = url.tls.then(|| tls_config(url)).transpose()?;
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let connected = match tls {
                Some(tls) => {
                    let make = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                    match config.connect(make).await {
                        Ok((client, connection)) => {
                            tokio::spawn(connection);
                            Ok(client)
                        }
                        Err(e) => Err(e),
                    }
                }
                None => match config.connect(tokio_postgres::NoTls).await {
                    Ok((client, connection)) => {
                        tokio::spawn(connection);
                        Ok(client)
                    }
                    Err(e) => Err(e),
                },
            };
            let _ = tx.send(connected);
        });
        rx.recv()
            .map_err(|_| PgError::Runtime("the connection task ended".into()))?
            .map_err(|source| PgError::Connect {
                url: shown,
                detail: describe(&source),
            })
    }

    /// Runs `work` with the client on the session's runtime and waits for its answer.
    pub fn run<T, F, Fut>(&self, what: &'static str, work: F) -> Result<T, PgError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
        T: Send + 'static,
    {
        self.run_within(what, ANSWER_TIMEOUT, work)
    }

    /// [`Session::run`] with a limit of its own (a lock wait bounded by `--lock-timeout`).
    pub fn run_within<T, F, Fut>(
        &self,
        what: &'static str,
        limit: Duration,
        work: F,
    ) -> Result<T, PgError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
        T: Send + 'static,
    {
        use std::sync::atomic::Ordering;
        let (Some(runtime), Some(client)) = (&self.runtime, &self.client) else {
            return Err(PgError::Runtime("the session is closed".into()));
        };
        if self.broken.load(Ordering::SeqCst) {
            return Err(PgError::Runtime(
                "an earlier statement got no answer in time, so the session takes no more".into(),
            ));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let future = work(Arc::clone(client));
        runtime.spawn(async move {
            let answer = tokio::time::timeout(limit, future).await;
            let _ = tx.send(answer);
        });
        match rx.recv() {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(PgError::Query {
                what,
                detail: describe(&e),
                lock_timeout: e.code()
                    == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE),
            }),
            Ok(Err(_)) => {
                // Asks the server to cancel what may still be running; over TLS-only
                // servers this plain request fails, and the session stays unused anyway.
                self.broken.store(true, Ordering::SeqCst);
                let token = client.cancel_token();
                runtime.spawn(async move {
                    let _ = token.cancel_query(tokio_postgres::NoTls).await;
                });
                Err(PgError::Query {
                    what,
                    detail: format!("no answer in {} s", limit.as_secs()),
                    lock_timeout: false,
                })
            }
            Err(_) => Err(PgError::Runtime("the session's runtime stopped".into())),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics on an async thread; the connection closes
        // when its task is dropped, and PostgreSQL frees the session's advisory lock.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The error's text with its cause: tokio-postgres's `Display` alone says "db error".
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn tls_config(url: &Url) -> Result<rustls::ClientConfig, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    match &url.root_cert {
        Some(path) => {
            let bad = |detail: String| PgError::Tls {
                path: path.clone(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let mut found = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
                found += 1;
            }
            if found == 0 {
                return Err(bad("no certificate in it".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| PgError::Runtime(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let text = "# comment\n\
                    other:5432:*:fitter:wrong\n\
                    127.0.0.1:5432:fitter:fitter:right\\:colon\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            password_from(text, "127.0.0.1", 5432, "fitter", "fitter").as_deref(),
            Some("right:colon")
        );
        assert_eq!(
            password_from(text, "db.example", 5433, "x", "y").as_deref(),
            Some("fallback")
        );
        assert_eq!(password_from("a:b:c", "a", 1, "c", "d"), None);
    }

    #[test]
    fn urls_are_shown_without_their_password_and_checked() {
        assert_eq!(
            redact("postgres://fitter:s3cret@db:5432/x"),
            "postgres://fitter:***@db:5432/x"
        );
        assert_eq!(redact("postgres://fitter@db/x"), "postgres://fitter@db/x");
        assert_eq!(
            redact("postgres://fitter:a/b@c@db/x?sslmode=require&password=p2"),
            "postgres://fitter:***@db/x?sslmode=require&password=***"
        );
        let url = Url::parse("postgres://fitter@db/x?password=s3cret").unwrap();
        assert!(url.has_password() && !url.shown().contains("s3cret"));
        let url = Url::parse("postgres://fitter:s3cret@db/x?sslmode=verify-full").unwrap();
        assert!(url.has_password() && url.tls);
        assert!(!format!("{url:?}").contains("s3cret"));
        for bad in [
            "mysql://db/x",
            "postgres://db/x?sslmode=sometimes",
            "postgres://db/x?nonsense=1",
        ] {
            let err = Url::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&redact(bad)), "{err}");
        }
        assert!(!Url::parse("postgres://u@h/d").unwrap().has_password());
    }
}
