//! PostgreSQL for the state-backend tests, through the `psql`, `runuser` and `pg_ctl`
//! binaries (no client library here, so the tests do not share fitter's code under test).
//!
//! Two kinds of server:
//! - [`server()`]: this machine's cluster, set up by `scripts/local-postgres.sh`, shared by
//!   every test; each test takes a database of its own with [`Server::fresh_database`], so
//!   tests running in parallel never see each other's rows.
//! - [`PrivateCluster`]: a server of one test's own, on its own port, which the test may stop
//!   and start again without disturbing the others.
//!
//! Both need root (the script installs packages; the private clusters run as `postgres`).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::root;

/// Where `scripts/local-postgres.sh` keeps the role's password and the CA.
const PASSWORD_FILE: &str = "/etc/fitter/postgres-password";
const CA_FILE: &str = "/etc/fitter/postgres-ca.crt";

/// Databases made by [`Server::fresh_database`] older than this are dropped when a test
/// process first calls [`server()`]: tests cannot drop theirs (they get a bare URL), and
/// every database costs some 8 MB on disk. Far longer than any test run.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The machine's PostgreSQL, as `scripts/local-postgres.sh` left it.
#[derive(Debug)]
pub struct Server {
    /// `postgresql://fitter@127.0.0.1:5432/fitter`, without the password.
    pub url: String,
    /// The `fitter` role's password.
    pub password: String,
    /// The CA that signed the server's certificate (for `localhost` and 127.0.0.1), for
    /// `sslmode=verify-full`.
    pub ca: PathBuf,
}

/// The shared server: runs `scripts/local-postgres.sh` once per test process (it installs,
/// starts and configures whatever is missing, and takes about 0.3 s when nothing is).
/// Panics with the script's stderr when it fails.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let script = root().join("scripts/local-postgres.sh");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{} does not run: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{} printed no URL", script.display()))
            .trim()
            .to_string();
        let password = std::fs::read_to_string(PASSWORD_FILE)
            .unwrap_or_else(|e| panic!("{PASSWORD_FILE}: {e}"))
            .trim()
            .to_string();
        let server = Server {
            url,
            password,
            ca: PathBuf::from(CA_FILE),
        };
        server.drop_stale_databases();
        server
    })
}

impl Server {
    /// A new, empty database owned by `fitter`, named `fitter_<tag>_<stamp>`, and its URL
    /// (`postgresql://fitter@127.0.0.1:5432/<name>`, without the password). The stamp is the
    /// creation time in seconds (8 hex digits, read back by the clean-up) and 8 random hex
    /// digits. `tag` is reduced to lowercase letters, digits and `_`.
    pub fn fresh_database(&self, tag: &str) -> String {
        let tag: String = tag
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '_',
            })
            .take(32) // a name is at most 63 bytes
            .collect();
        let name = format!("fitter_{tag}_{:08x}{}", unix_seconds(), random_hex(4));
        self.psql(
            &self.url,
            &format!("CREATE DATABASE \"{name}\" OWNER fitter"),
        );
        format!("{}/{name}", self.base_url())
    }

    /// `psql -X -At -v ON_ERROR_STOP=1 URL -c SQL` as `fitter`; returns its stdout (unaligned,
    /// tuples only: one row a line, `|` between columns). Panics with psql's stderr on failure.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        psql(url, &self.password, sql)
    }

    /// The environment a `fitter` process needs to log in: `PGPASSWORD`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("PGPASSWORD".to_string(), self.password.clone())]
    }

    /// `postgresql://fitter@127.0.0.1:5432`: the URL without its database.
    fn base_url(&self) -> &str {
        self.url
            .rsplit_once('/')
            .map_or(&self.url, |(base, _)| base)
    }

    /// Drops the databases of [`Self::fresh_database`] older than [`STALE_AFTER`]. Never
    /// forced: a database still in use (a test of another run) makes its DROP fail, and this
    /// ignores failures, as does a DROP racing another test process's.
    fn drop_stale_databases(&self) {
        let names = self.psql(
            &self.url,
            "SELECT datname FROM pg_database WHERE datname ~ '^fitter_.*_[0-9a-f]{16}$'",
        );
        let limit = unix_seconds().saturating_sub(STALE_AFTER.as_secs());
        let stale: Vec<&str> = names
            .lines()
            .filter(|name| {
                let stamp = &name[name.len() - 16..name.len() - 8];
                u64::from_str_radix(stamp, 16).is_ok_and(|created| created < limit)
            })
            .collect();
        for name in stale {
            let _ = Command::new("psql")
                .args(["-X", "-q", "-w", &self.url, "-c"])
                .arg(format!("DROP DATABASE IF EXISTS \"{name}\""))
                .env("PGPASSWORD", &self.password)
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// A PostgreSQL server of one test's own: `initdb` in a fresh directory under /tmp, run as
/// `postgres` on a free port of 127.0.0.1, with a superuser `fitter` (password login,
/// scram-sha-256) and a database `fitter`. The test can [`stop`](Self::stop) it (as a crash
/// would) and [`start_again`](Self::start_again) with its data intact. Dropping it stops it
/// and removes its directory; if the test process dies first, a watchdog does.
pub struct PrivateCluster {
    /// `postgresql://fitter@127.0.0.1:<port>/fitter`, without the password.
    pub url: String,
    /// The `fitter` superuser's password.
    pub password: String,
    /// The binaries of the newest installed PostgreSQL (`/usr/lib/postgresql/<ver>/bin`).
    bin: PathBuf,
    /// Holds `data/` (the cluster), `log` and the Unix socket; owned by `postgres`.
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Makes and starts a new cluster; panics with PostgreSQL's output when it cannot.
    pub fn start() -> PrivateCluster {
        // The script is the one place that installs PostgreSQL; this also checks it works.
        server();
        let bin = server_binaries();
        let dir = tempfile::Builder::new()
            .prefix("fitter-pg-")
            .tempdir_in("/tmp") // /tmp is world-traversable; the postgres user must reach it
            .unwrap();
        let password = random_hex(16);
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        // TempDir made the directory 0700; it becomes postgres's, which PostgreSQL requires
        // of its data directory's owner.
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path()));
        let data = dir.path().join("data");
        run(as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["--auth=scram-sha-256", "--username=fitter"])
            .arg(format!("--pwfile={}", pwfile.display()))
            // C locale: the same everywhere; no fsync: nothing here needs to survive a
            // machine crash, and initdb is several times faster.
            .args([
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ]));
        std::fs::remove_file(&pwfile).unwrap();
        // The settings live in a file of their own, rewritten when a port turns out taken.
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\ninclude = 'fitter.conf'\n");
        std::fs::write(&conf, text).unwrap();

        let mut cluster = PrivateCluster {
            url: String::new(),
            password,
            bin,
            dir,
        };
        cluster.spawn_watchdog();
        // The port is free when picked, but another process may take it before the server
        // binds it: then pick another.
        let mut attempts = 0;
        let port = loop {
            attempts += 1;
            let port = free_port();
            cluster.configure(port);
            let out = cluster.pg_ctl_start();
            if out.status.success() {
                break port;
            }
            let log = cluster.log();
            if attempts < 5 && log.contains("could not bind") {
                continue;
            }
            panic!(
                "the private PostgreSQL cluster does not start:\n{}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        cluster.url = format!("postgresql://fitter@127.0.0.1:{port}/fitter");
        psql(
            &format!("postgresql://fitter@127.0.0.1:{port}/postgres"),
            &cluster.password,
            "CREATE DATABASE fitter",
        );
        cluster
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`): clients see
    /// their connections drop. Its data stays for [`Self::start_again`].
    pub fn stop(&self) {
        let out = self.pg_ctl_stop();
        assert!(
            out.status.success(),
            "pg_ctl stop failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again after [`Self::stop`], on the same port, and waits until it
    /// accepts connections (after its crash recovery).
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        assert!(
            out.status.success(),
            "pg_ctl start failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// `psql` against [`Self::url`] as `fitter`; see [`Server::psql`].
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, &self.password, sql)
    }

    /// The environment a `fitter` process needs to log in: `PGPASSWORD`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("PGPASSWORD".to_string(), self.password.clone())]
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Writes the settings: TCP on 127.0.0.1:`port` only, the Unix socket in our directory
    /// (not /var/run/postgresql, the shared server's), fsync off (a stop is "immediate", not
    /// a power cut: the WAL written so far is still there for the recovery), small buffers
    /// since many clusters may run at once.
    fn configure(&self, port: u16) {
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nshared_buffers = 16MB\n",
            self.dir.path().display()
        );
        std::fs::write(self.data().join("fitter.conf"), settings).unwrap();
    }

    /// `pg_ctl start -w`: returns once the server accepts connections or has failed. With
    /// `-l`, the server writes to the log file, not to our pipes (which would otherwise stay
    /// open as long as it runs).
    fn pg_ctl_start(&self) -> Output {
        as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap()
    }

    fn pg_ctl_stop(&self) -> Output {
        as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap()
    }

    /// A shell that waits for this test process to end; if the cluster's directory is still
    /// there then (the process was killed, so no Drop ran), it stops the server and removes
    /// the directory. Otherwise a killed test would leave a server running forever.
    fn spawn_watchdog(&self) {
        let script = "while kill -0 \"$0\" 2>/dev/null && [ -d \"$1\" ]; do sleep 1; done; \
                      if [ -d \"$1\" ]; then \
                        runuser -u postgres -- \"$2\" -D \"$1/data\" -m immediate -w stop; \
                        rm -rf \"$1\"; \
                      fi";
        let mut watchdog = Command::new("sh")
            .current_dir("/")
            .arg("-c")
            .arg(script)
            .arg(std::process::id().to_string())
            .arg(self.dir.path())
            .arg(self.bin.join("pg_ctl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh starts");
        std::thread::spawn(move || watchdog.wait());
    }
}

impl Drop for PrivateCluster {
    /// Stops the server (it may be stopped already: errors are ignored); the TempDir then
    /// removes the directory, which also tells the watchdog to leave.
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop();
    }
}

/// `psql -X -At -v ON_ERROR_STOP=1 URL -c SQL` with `password` (as `PGPASSWORD`): for a
/// server that is neither [`server()`] nor a [`PrivateCluster`] at hand, or a URL whose
/// password is known apart. Returns stdout, panics with stderr on failure. `-w`: fail rather
/// than prompt when the password is refused.
pub fn psql(url: &str, password: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-At", "-w", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .env("PGPASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `runuser -u postgres -- PROGRAM`, from / (which postgres can read, unlike our working
/// directory perhaps; initdb and pg_ctl complain otherwise).
fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.current_dir("/")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`; panics with its output when it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/usr/lib/postgresql/<newest version>/bin`.
fn server_binaries() -> PathBuf {
    let base = Path::new("/usr/lib/postgresql");
    let version = std::fs::read_dir(base)
        .unwrap_or_else(|e| panic!("{}: {e}", base.display()))
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|v| base.join(v.to_string()).join("bin/initdb").exists())
        .max()
        .unwrap_or_else(|| panic!("no PostgreSQL server under {}", base.display()));
    base.join(version.to_string()).join("bin")
}

/// A port of 127.0.0.1 free right now: the kernel's pick for port 0.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bytes` random bytes from the kernel, in hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
