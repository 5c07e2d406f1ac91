//! SSH to the nodes (russh): keys, and sessions whose host key is pinned.
//!
//! fitter generates every node's host key itself and installs it before the node's first
//! boot, so it knows the key before the first connection: a node that shows any other key
//! is refused, never trusted on first use. The operator logs in with a key file (`--ssh-key`,
//! `FITTER_SSH_KEY`, `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`); when there is none, fitter makes a
//! key for the deployment beside its state file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{self, AuthResult, Handle};
use russh::keys::ssh_key::{self, HashAlg, LineEnding, PrivateKey, PublicKey};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SshError {
    #[error(
        "`{node}` ({address}) showed host key {found}, not the {expected} fitter installed; refusing to connect"
    )]
    HostKeyMismatch {
        node: String,
        address: SocketAddr,
        expected: String,
        found: String,
    },
    #[error("`{node}` ({address}) refused the operator key `{key}` for root")]
    AuthRejected {
        node: String,
        address: SocketAddr,
        key: String,
    },
    #[error(
        "`{node}` ({address}) did not answer over SSH ({}): {last}", tries(*attempts, *seconds)
    )]
    Unreachable {
        node: String,
        address: SocketAddr,
        attempts: u32,
        seconds: u64,
        last: String,
    },
    #[error(
        "`{node}`: `{command}` did not finish within {seconds} s; raise --command-timeout if it needs longer"
    )]
    Deadline {
        node: String,
        seconds: u64,
        command: String,
    },
    #[error("SSH session with `{node}` failed: {message}")]
    Session { node: String, message: String },
    #[error("cannot use the SSH key `{path}`: {message}")]
    Key { path: PathBuf, message: String },
}

/// A node's host key pair, made by fitter.
pub struct HostKey {
    pub private_openssh: String,
    pub public_openssh: String,
    pub fingerprint: String,
}

/// Shows the fingerprint only: the private half never goes into a log or a panic message.
impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// A new Ed25519 host key.
pub fn generate_host_key() -> Result<HostKey, SshError> {
    let key = new_ed25519(Path::new(GENERATED_HOST_KEY))?;
    host_key_parts(&key)
}

fn host_key_parts(key: &PrivateKey) -> Result<HostKey, SshError> {
    let err = |e: ssh_key::Error| SshError::Key {
        path: PathBuf::from(GENERATED_HOST_KEY),
        message: e.to_string(),
    };
    Ok(HostKey {
        private_openssh: key.to_openssh(LineEnding::LF).map_err(err)?.to_string(),
        public_openssh: key.public_key().to_openssh().map_err(err)?,
        fingerprint: key.public_key().fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// A host key the plan gives (cloud-config `ssh_keys`): its private half in OpenSSH form,
/// checked to parse, to be unencrypted (sshd cannot ask for a passphrase) and, when the plan
/// gives the public half too, to be that half. `what` names it in errors
/// (`node.x cloud-config ssh_keys.rsa_private`); the key itself is never in a message.
pub fn given_host_key(
    what: &str,
    private: &str,
    public: Option<&str>,
) -> Result<HostKey, SshError> {
    let err = |message: String| SshError::Key {
        path: PathBuf::from(what),
        message,
    };
    let key = PrivateKey::from_openssh(private.trim())
        .map_err(|e| err(format!("not an OpenSSH private key ({e})")))?;
    if key.is_encrypted() {
        return Err(err(
            "the key is encrypted; a host key must have no passphrase".into(),
        ));
    }
    if let Some(public) = public.map(str::trim).filter(|p| !p.is_empty()) {
        let given = PublicKey::from_openssh(public)
            .map_err(|e| err(format!("its public half does not parse ({e})")))?;
        if given.key_data() != key.public_key().key_data() {
            return Err(err("the public half given is not the private key's".into()));
        }
    }
    let parts = host_key_parts(&key)?;
    // The plan's own text is what goes on the node, as plumbery wrote it.
    Ok(HostKey {
        private_openssh: format!("{}\n", private.trim()),
        ..parts
    })
}

/// A new RSA key pair (3072 bits, OpenSSH's default), for plumbery's `{{ rsa_private.x }}`
/// and `{{ rsa_public.x }}` tokens: the private half in OpenSSH form, the public half as an
/// `authorized_keys` line. RSA because plans name it so and put it where RSA is expected.
pub fn generate_rsa_pair() -> Result<(String, String), SshError> {
    let err = |e: ssh_key::Error| SshError::Key {
        path: PathBuf::from("(generated RSA key)"),
        message: e.to_string(),
    };
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    let pair = ssh_key::private::RsaKeypair::random(&mut rng, 3072).map_err(err)?;
    let key = PrivateKey::from(pair);
    Ok((
        key.to_openssh(LineEnding::LF).map_err(err)?.to_string(),
        key.public_key().to_openssh().map_err(err)?,
    ))
}

/// What a key fitter makes for a node is called in an error, having no file.
const GENERATED_HOST_KEY: &str = "(generated host key)";

/// A new Ed25519 key; `path` is where it is going, for the error.
fn new_ed25519(path: &Path) -> Result<PrivateKey, SshError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SshError::Key {
        path: path.to_path_buf(),
        message: format!("no randomness from the OS: {e}"),
    })?;
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    Ok(PrivateKey::from(pair))
}

/// `ssh-ed25519 AAAA...`: an OpenSSH public key line's type and body, without its comment
/// (which differs between a key file and the agent's copy of the same key); `None` for a
/// line that is not a key. Only the characters of a key's type and base64 pass, so it is
/// safe inside a single-quoted shell word.
pub fn key_body(public_openssh: &str) -> Option<String> {
    let mut words = public_openssh.split_whitespace();
    let (kind, body) = (words.next()?, words.next()?);
    let safe = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=-@.".contains(c))
    };
    (safe(kind) && safe(body)).then(|| format!("{kind} {body}"))
}

/// Whether two public key lines are the same key, whatever their comments.
pub fn same_key(a: &str, b: &str) -> bool {
    matches!((key_body(a), key_body(b)), (Some(x), Some(y)) if x == y)
}

/// `SHA256:...` of an OpenSSH public key line.
pub fn fingerprint(public_openssh: &str) -> Option<String> {
    PublicKey::from_openssh(public_openssh.trim())
        .ok()
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
}

/// The key the operator logs in with.
#[derive(Clone)]
pub struct OperatorKey {
    /// The key file, or `ssh-agent` for a key the agent holds.
    pub path: PathBuf,
    signer: Signer,
    pub public_openssh: String,
}

#[derive(Clone)]
enum Signer {
    File(Arc<PrivateKey>),
    /// A key held by the ssh-agent at `SSH_AUTH_SOCK`: it signs, fitter never sees it.
    Agent(PublicKey),
}

impl OperatorKey {
    /// The first key that can be used: `explicit`, `FITTER_SSH_KEY`, `~/.ssh/id_ed25519`,
    /// `~/.ssh/id_rsa` (unless passphrase-protected), the deployment's own key at
    /// `fallback` if an earlier run made it, the first key of the ssh-agent at
    /// `SSH_AUTH_SOCK`; else a key made for the deployment at `fallback` (and `.pub`).
    pub async fn find_or_create(
        explicit: Option<&Path>,
        fallback: &Path,
    ) -> Result<OperatorKey, SshError> {
        if let Some(p) = explicit {
            return OperatorKey::load(p);
        }
        if let Some(p) = std::env::var_os("FITTER_SSH_KEY") {
            return OperatorKey::load(Path::new(&p));
        }
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(home) = std::env::var_os("HOME") {
            let home = PathBuf::from(home);
            candidates.push(home.join(".ssh/id_ed25519"));
            candidates.push(home.join(".ssh/id_rsa"));
        }
        candidates.push(fallback.to_path_buf());
        for c in candidates.iter().filter(|c| c.exists()) {
            match OperatorKey::load(c) {
                Ok(key) => return Ok(key),
                // An encrypted key: the agent may hold it.
                Err(e) if c != fallback => tracing::info!("{e}"),
                Err(e) => return Err(e),
            }
        }
        if let Some(key) = OperatorKey::from_agent().await {
            return Ok(key);
        }
        OperatorKey::create(fallback)
    }

    /// The first identity of the ssh-agent at `SSH_AUTH_SOCK`, if there is one.
    pub async fn from_agent() -> Option<OperatorKey> {
        OperatorKey::from_agent_matching(None).await
    }

    /// The agent's identity that is `wanted` (a public key line), or its first one.
    pub async fn from_agent_matching(wanted: Option<&str>) -> Option<OperatorKey> {
        std::env::var_os("SSH_AUTH_SOCK")?;
        let mut agent = russh::keys::agent::client::AgentClient::connect_env()
            .await
            .ok()?;
        let identities = agent.request_identities().await.ok()?;
        let key = identities.into_iter().find_map(|i| match i {
            russh::keys::agent::AgentIdentity::PublicKey { key, .. } => {
                let line = key.to_openssh().ok()?;
                wanted.is_none_or(|w| same_key(w, &line)).then_some(key)
            }
            _ => None,
        })?;
        Some(OperatorKey {
            path: PathBuf::from("ssh-agent"),
            public_openssh: key.to_openssh().ok()?,
            signer: Signer::Agent(key),
        })
    }

    /// The key `find_or_create` would use, without making one.
    pub fn find_existing(explicit: Option<&Path>, fallback: &Path) -> Option<OperatorKey> {
        if explicit.is_none() && std::env::var_os("FITTER_SSH_KEY").is_none() {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let candidates = home
                .iter()
                .flat_map(|h| [h.join(".ssh/id_ed25519"), h.join(".ssh/id_rsa")])
                .chain([fallback.to_path_buf()]);
            return candidates
                .into_iter()
                .find(|c| c.exists())
                .and_then(|c| OperatorKey::load(&c).ok());
        }
        match explicit
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("FITTER_SSH_KEY").map(PathBuf::from))
        {
            Some(p) => OperatorKey::load(&p).ok(),
            None => None,
        }
    }

    pub fn load(path: &Path) -> Result<OperatorKey, SshError> {
        let err = |message: String| SshError::Key {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let key = PrivateKey::from_openssh(&text).map_err(|e| err(e.to_string()))?;
        if key.is_encrypted() {
            return Err(err(
                "it is protected by a passphrase; give fitter an unencrypted key with `--ssh-key`"
                    .into(),
            ));
        }
        let public_openssh = key
            .public_key()
            .to_openssh()
            .map_err(|e| err(e.to_string()))?;
        Ok(OperatorKey {
            path: path.to_path_buf(),
            signer: Signer::File(Arc::new(key)),
            public_openssh,
        })
    }

    /// Makes a new Ed25519 key at `path` (mode 0600) and `path.pub`.
    /// A key made in memory and never written: for a command that must hold a key but
    /// logs into no node (`dispose`, when the deployment's key is not at hand).
    pub fn ephemeral() -> Result<OperatorKey, SshError> {
        let path = PathBuf::from("(a key of this run only)");
        let key = new_ed25519(&path)?;
        let public_openssh = key.public_key().to_openssh().map_err(|e| SshError::Key {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(OperatorKey {
            path,
            signer: Signer::File(Arc::new(key)),
            public_openssh,
        })
    }

    pub fn create(path: &Path) -> Result<OperatorKey, SshError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let err = |message: String| SshError::Key {
            path: path.to_path_buf(),
            message,
        };
        let key = new_ed25519(path)?;
        let private = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| err(e.to_string()))?;
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        file.write_all(private.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        std::fs::write(&pub_path, format!("{public}\n")).map_err(|e| err(e.to_string()))?;
        tracing::info!("made an SSH key for the deployment: {}", path.display());
        Ok(OperatorKey {
            path: path.to_path_buf(),
            signer: Signer::File(Arc::new(key)),
            public_openssh: public,
        })
    }
}

/// Accepts exactly one host key.
struct Pinned {
    expected: PublicKey,
    found: Option<String>,
    found_tx: Option<tokio::sync::oneshot::Sender<String>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let matches = key.key_data() == self.expected.key_data();
        if !matches {
            let fp = key.fingerprint(HashAlg::Sha256).to_string();
            self.found = Some(fp.clone());
            if let Some(tx) = self.found_tx.take() {
                let _ = tx.send(fp);
            }
        }
        Ok(matches)
    }
}

/// How often and for how long a node was tried, for a message.
fn tries(attempts: u32, seconds: u64) -> String {
    match attempts {
        1 => "one attempt".to_string(),
        n => format!("{n} attempts in {seconds} s"),
    }
}

/// An open, authenticated session with one node.
pub struct Session {
    node: String,
    handle: Handle<Pinned>,
    /// How long one command may take, start to end: the connection's inactivity timeout
    /// alone is reset by any output, so a command printing a byte now and then would run
    /// for ever.
    deadline: Duration,
}

/// How long a remote command may take unless the operator says otherwise
/// (`--command-timeout`): long enough for a cloud-config that installs packages.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(1800);

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Session {
    /// Connects as root, checking the host key against `host_key` (OpenSSH public line).
    /// Retries refused and timed-out connections with backoff until `patience` is spent
    /// (sshd may not be up yet); a wrong host key or a refused login fails at once.
    pub async fn connect(
        node: &str,
        address: SocketAddr,
        host_key: &str,
        operator: &OperatorKey,
        patience: Duration,
    ) -> Result<Session, SshError> {
        let expected = PublicKey::from_openssh(host_key.trim()).map_err(|e| SshError::Key {
            path: PathBuf::from(format!("(host key of {node})")),
            message: e.to_string(),
        })?;
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        });
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (tx, mut rx) = tokio::sync::oneshot::channel();
            let handler = Pinned {
                expected: expected.clone(),
                found: None,
                found_tx: Some(tx),
            };
            let attempt = tokio::time::timeout(
                Duration::from_secs(10),
                client::connect(config.clone(), address, handler),
            )
            .await;
            let last = match attempt {
                Ok(Ok(mut handle)) => {
                    let auth = match &operator.signer {
                        Signer::File(key) => handle
                            .authenticate_publickey(
                                "root",
                                PrivateKeyWithHashAlg::new(key.clone(), Some(HashAlg::Sha512)),
                            )
                            .await
                            .map_err(|e| e.to_string()),
                        Signer::Agent(public) => {
                            match russh::keys::agent::client::AgentClient::connect_env().await {
                                Ok(mut agent) => handle
                                    .authenticate_publickey_with(
                                        "root",
                                        public.clone(),
                                        Some(HashAlg::Sha512),
                                        &mut agent,
                                    )
                                    .await
                                    .map_err(|e| e.to_string()),
                                Err(e) => Err(format!("cannot reach the ssh-agent: {e}")),
                            }
                        }
                    }
                    .map_err(|message| SshError::Session {
                        node: node.to_string(),
                        message,
                    })?;
                    return match auth {
                        AuthResult::Success => Ok(Session {
                            node: node.to_string(),
                            handle,
                            deadline: COMMAND_DEADLINE,
                        }),
                        AuthResult::Failure { .. } => Err(SshError::AuthRejected {
                            node: node.to_string(),
                            address,
                            key: operator.path.display().to_string(),
                        }),
                    };
                }
                Ok(Err(e)) => {
                    if let Ok(found) = rx.try_recv() {
                        return Err(SshError::HostKeyMismatch {
                            node: node.to_string(),
                            address,
                            expected: expected.fingerprint(HashAlg::Sha256).to_string(),
                            found,
                        });
                    }
                    e.to_string()
                }
                Err(_) => "no answer within 10 s".to_string(),
            };
            if start.elapsed() + delay > patience {
                return Err(SshError::Unreachable {
                    node: node.to_string(),
                    address,
                    attempts,
                    seconds: start.elapsed().as_secs(),
                    last,
                });
            }
            tracing::debug!("{node}: SSH not ready ({last}); retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Runs a command and collects its output and exit status.
    pub async fn run(&self, command: &str) -> Result<CommandOutput, SshError> {
        self.run_with_input(command, &[]).await
    }

    /// Sets how long each command may take from now on.
    pub fn set_command_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    /// Runs a command whose output is the content of files (which may hold secrets): as
    /// [`Session::run`], but its output is never written to the debug log.
    pub async fn run_unlogged(&self, command: &str) -> Result<CommandOutput, SshError> {
        self.run_within(command, &[], false).await
    }

    /// Runs a command with `input` on its standard input, within the session's deadline.
    pub async fn run_with_input(
        &self,
        command: &str,
        input: &[u8],
    ) -> Result<CommandOutput, SshError> {
        self.run_within(command, input, true).await
    }

    async fn run_within(
        &self,
        command: &str,
        input: &[u8],
        log: bool,
    ) -> Result<CommandOutput, SshError> {
        match tokio::time::timeout(self.deadline, self.exec(command, input, log)).await {
            Ok(result) => result,
            Err(_) => Err(SshError::Deadline {
                node: self.node.clone(),
                seconds: self.deadline.as_secs(),
                command: command.chars().take(40).collect(),
            }),
        }
    }

    async fn exec(
        &self,
        command: &str,
        input: &[u8],
        log: bool,
    ) -> Result<CommandOutput, SshError> {
        let err = |e: russh::Error| SshError::Session {
            node: self.node.clone(),
            message: e.to_string(),
        };
        let mut channel = self.handle.channel_open_session().await.map_err(err)?;
        channel.exec(true, command).await.map_err(err)?;
        if !input.is_empty() {
            channel.data(input).await.map_err(err)?;
        }
        channel.eof().await.map_err(err)?;
        let mut out = CommandOutput {
            status: 255,
            stdout: String::new(),
            stderr: String::new(),
        };
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let text = String::from_utf8_lossy(&data);
                    for line in text.lines().filter(|_| log) {
                        tracing::debug!(target: "fitter::ssh", "{}: {line}", self.node);
                    }
                    out.stdout.push_str(&text)
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    let text = String::from_utf8_lossy(&data);
                    for line in text.lines() {
                        tracing::debug!(target: "fitter::ssh", "{} (stderr): {line}", self.node);
                    }
                    out.stderr.push_str(&text)
                }
                ChannelMsg::ExitStatus { exit_status } => out.status = exit_status,
                _ => {}
            }
        }
        Ok(out)
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod rsa_tests {
    #[test]
    fn an_rsa_pair_is_made_in_openssh_form() {
        let (private, public) = super::generate_rsa_pair().unwrap();
        assert!(
            private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
            "{private}"
        );
        assert!(public.starts_with("ssh-rsa "), "{public}");
    }

    #[test]
    fn a_given_host_key_is_checked_against_its_public_half() {
        let (private, public) = super::generate_rsa_pair().unwrap();
        let key =
            super::given_host_key("node.a ssh_keys.rsa_private", &private, Some(&public)).unwrap();
        assert_eq!(key.public_openssh.trim(), public.trim());
        assert!(key.fingerprint.starts_with("SHA256:"));

        let (_, other) = super::generate_rsa_pair().unwrap();
        let wrong = super::given_host_key("node.a ssh_keys.rsa_private", &private, Some(&other))
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("node.a ssh_keys.rsa_private"), "{wrong}");
        assert!(wrong.contains("not the private key's"), "{wrong}");
        assert!(
            !wrong.contains("PRIVATE KEY"),
            "never the key itself: {wrong}"
        );

        let garbage =
            super::given_host_key("node.a ssh_keys.rsa_private", "{{ rsa_private.x }}", None)
                .unwrap_err()
                .to_string();
        assert!(garbage.contains("not an OpenSSH private key"), "{garbage}");
    }
}
