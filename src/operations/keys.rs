//! Rotating the operator key, in phases, so that no failure can leave a node that neither
//! key opens:
//!
//! 1. every node to rotate gets the new key in root's `authorized_keys`, over a session
//!    logged in with the old key (a line of the key alone is added unless one is there);
//! 2. every node is logged into with the new key: only a login proves a node has it;
//! 3. the state records the new key (the caller);
//! 4. with `--revoke-old-key`, every line holding the old key is removed, over sessions
//!    logged in with the new one.
//!
//! A failure in 1 or 2 stops before anything is recorded, and the old key still opens every
//! node. A failure in 4 leaves the old key on the nodes named; the new one is recorded and
//! opens them all. Only the key's type and base64 body reach a command ([`key_body`]).

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;

use super::OperationError;
use crate::ssh::{OperatorKey, Session, SshError, key_body};

/// A node that answers SSH: its name, address and pinned host key.
pub struct Reachable {
    pub name: String,
    pub address: SocketAddr,
    pub host_key: String,
}

const KEYS: &str = "/root/.ssh/authorized_keys";

/// Adds a line holding the key alone, unless a line is exactly that key (with any comment);
/// a file without a final line break gets one first, so the key is never glued onto the
/// last line.
fn add_command(key: &str) -> String {
    format!(
        "umask 077 && mkdir -p /root/.ssh && touch {KEYS} && \
         if ! awk -v k='{key}' '$1\" \"$2 == k {{ found = 1 }} END {{ exit !found }}' {KEYS}; then \
         [ -s {KEYS} ] && [ \"$(tail -c1 {KEYS})\" != \"\" ] && echo >> {KEYS}; \
         printf '%s\\n' '{key}' >> {KEYS}; fi"
    )
}

/// Removes every line holding the key, with options or a comment or not.
fn revoke_command(key: &str) -> String {
    // Written back into the same file (its owner and mode stay), through a copy.
    format!(
        "umask 077 && f={KEYS} && grep -vF '{key}' $f > $f.fitter; cat $f.fitter > $f && rm -f $f.fitter"
    )
}

/// Why one node did not take the new key.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("exit {status}: {stderr}")]
    Command { status: u32, stderr: String },
}

async fn run(
    node: &Reachable,
    key: &OperatorKey,
    command: &str,
    patience: Duration,
) -> Result<(), Refused> {
    let session = Session::connect(&node.name, node.address, &node.host_key, key, patience).await?;
    let out = session.run(command).await;
    session.close().await;
    match out? {
        o if o.status == 0 => Ok(()),
        o => Err(Refused::Command {
            status: o.status,
            stderr: o.stderr.trim().to_string(),
        }),
    }
}

/// Runs `command` on every node, logged in with `key`: the nodes where it failed, and why.
async fn on_every(
    nodes: &[Reachable],
    key: &OperatorKey,
    command: &str,
    patience: Duration,
    parallelism: usize,
) -> Vec<String> {
    let results: Vec<(String, Result<(), Refused>)> = futures::stream::iter(nodes)
        .map(|node| async move { (node.name.clone(), run(node, key, command, patience).await) })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    let mut failed: Vec<String> = results
        .into_iter()
        .filter_map(|(node, r)| r.err().map(|e| format!("{node}: {e}")))
        .collect();
    failed.sort();
    failed
}

/// Steps 1 and 2 (see the module): every node has the new key, proven by a login with it.
pub async fn add(
    nodes: &[Reachable],
    old: &OperatorKey,
    new: &OperatorKey,
    patience: Duration,
    parallelism: usize,
) -> Result<(), OperationError> {
    let bad = || OperationError::Usage("the new key is not an OpenSSH public key".into());
    let body = key_body(&new.public_openssh).ok_or_else(bad)?;
    let mut failed = on_every(nodes, old, &add_command(&body), patience, parallelism).await;
    if failed.is_empty() {
        failed = on_every(nodes, new, "true", patience, parallelism).await;
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(OperationError::Usage(format!(
        "the operator key rotation did not reach every node; the state still records the old key, which still opens every node, and nothing else was done:\n  {}",
        failed.join("\n  ")
    )))
}

/// Step 4: the old key taken away, logged in with the new one.
pub async fn revoke(
    nodes: &[Reachable],
    old: &OperatorKey,
    new: &OperatorKey,
    patience: Duration,
    parallelism: usize,
) -> Result<(), OperationError> {
    let bad = || OperationError::Usage("the old key is not an OpenSSH public key".into());
    let body = key_body(&old.public_openssh).ok_or_else(bad)?;
    let failed = on_every(nodes, new, &revoke_command(&body), patience, parallelism).await;
    if failed.is_empty() {
        return Ok(());
    }
    Err(OperationError::Usage(format!(
        "the new operator key is recorded and opens every node, but the old key ({}) could not be removed from:\n  {}\n  = help: remove its line from /root/.ssh/authorized_keys on those nodes (`fitter ssh PLAN NODE`)",
        crate::ssh::fingerprint(&old.public_openssh).unwrap_or_default(),
        failed.join("\n  ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_type_and_body_of_a_key_reach_a_command() {
        assert_eq!(
            key_body("ssh-ed25519 AAAAC3Nza+/= it's 'me'").as_deref(),
            Some("ssh-ed25519 AAAAC3Nza+/=")
        );
        assert_eq!(key_body("ssh-ed25519 AAAA'; rm -rf /"), None);
        assert_eq!(key_body("garbage"), None);
        assert!(crate::ssh::same_key(
            "ssh-ed25519 AAAAC3Nza bob@laptop",
            "ssh-ed25519 AAAAC3Nza"
        ));
    }
}
