//! Rotating the operator key: every ready node gets the new key in root's
//! `authorized_keys`, over a session logged in with the old one; with `--revoke-old-key`
//! the old one is then removed, over a session logged in with the new one (so a new key
//! that does not work never locks the operator out). Nodes not made yet are made with the
//! new key. The state records the new key only once every node has it.
//!
//! Only the key's type and base64 body are written and looked for: a comment may hold any
//! character, and a line may carry options before the key.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;

use super::OperationError;
use crate::ssh::{OperatorKey, Session, SshError};

/// A node that answers SSH: its name, address and pinned host key.
pub struct Reachable {
    pub name: String,
    pub address: SocketAddr,
    pub host_key: String,
}

/// `ssh-ed25519 AAAA...`, without the comment; `None` for a line that is not a key.
fn key_body(public_openssh: &str) -> Option<String> {
    let mut words = public_openssh.split_whitespace();
    let (kind, body) = (words.next()?, words.next()?);
    let safe = |w: &str| {
        w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=-@.".contains(c))
    };
    (safe(kind) && safe(body)).then(|| format!("{kind} {body}"))
}

fn add_command(key: &str) -> String {
    format!(
        "umask 077 && mkdir -p /root/.ssh && touch /root/.ssh/authorized_keys && \
         (grep -qF '{key}' /root/.ssh/authorized_keys || printf '%s\\n' '{key}' >> /root/.ssh/authorized_keys)"
    )
}

fn revoke_command(key: &str) -> String {
    // Written back into the same file (its owner and mode stay), through a copy.
    format!(
        "umask 077 && f=/root/.ssh/authorized_keys && grep -vF '{key}' $f > $f.fitter; \
         cat $f.fitter > $f && rm -f $f.fitter"
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

/// Gives every node in `nodes` the `new` key, logging in with `old`; then, if `revoke`,
/// takes `old` away, logging in with `new`. Every failure is named in the error.
pub async fn rotate(
    nodes: &[Reachable],
    old: &OperatorKey,
    new: &OperatorKey,
    revoke: bool,
    patience: Duration,
    parallelism: usize,
) -> Result<(), OperationError> {
    let bad =
        |what: &str| OperationError::Usage(format!("the {what} key is not an OpenSSH public key"));
    let new_body = key_body(&new.public_openssh).ok_or_else(|| bad("new"))?;
    let old_body = key_body(&old.public_openssh).ok_or_else(|| bad("old"))?;
    let add = add_command(&new_body);
    let remove = revoke_command(&old_body);
    let results: Vec<(String, Result<(), Refused>)> = futures::stream::iter(nodes)
        .map(|node| {
            let (add, remove) = (&add, &remove);
            async move {
                let mut done = run(node, old, add, patience).await;
                if done.is_ok() && revoke {
                    done = run(node, new, remove, patience).await;
                }
                (node.name.clone(), done)
            }
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|(node, r)| r.err().map(|e| format!("{node}: {e}")))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(OperationError::Usage(format!(
            "the operator key rotation did not reach every node; the state still records the old key, and nothing else was done:\n  {}",
            failed.join("\n  ")
        )))
    }
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
    }
}
