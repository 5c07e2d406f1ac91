//! On-node drift, read without changing anything (`plan --refresh-only`, `plan --diff`):
//! which files fitter placed differ from what it renders now, and which services it runs are
//! not running, from one round trip per node (the checksums and states bootstrap's own
//! probe reads); with `diff`, one more round trip fetches the files that differ, and each
//! becomes a unified diff (the `similar` crate: Myers' diff, what `git diff` shows), as
//! Ansible's `--check --diff` prints them.
//!
//! A secret fitter generated is never printed: every value of the state's `secrets` is
//! replaced by `(secret)` on both sides before the diff is made.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use serde::Serialize;

use super::{BootstrapError, Target, quote, sha256};
use crate::ssh::{OperatorKey, Session};

/// What differs on one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeDrift {
    pub node: String,
    /// Files that differ from what fitter renders (missing ones too), with their unified
    /// diff when asked for.
    pub files: Vec<FileDrift>,
    /// Services fitter runs there that are not active, with the state systemd gives.
    pub stopped: Vec<(String, String)>,
    /// Why the node could not be read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileDrift {
    pub path: String,
    pub missing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl NodeDrift {
    pub fn is_clean(&self) -> bool {
        self.files.is_empty() && self.stopped.is_empty() && self.error.is_none()
    }
}

/// Reads every target, `parallelism` at a time.
pub async fn survey(
    targets: &[Target],
    operator: &OperatorKey,
    patience: Duration,
    parallelism: usize,
    diff: bool,
    secrets: &[String],
) -> Vec<NodeDrift> {
    let mut found: Vec<NodeDrift> = futures::stream::iter(targets)
        .map(|t| async move {
            match read(t, operator, patience, diff, secrets).await {
                Ok(d) => d,
                Err(e) => NodeDrift {
                    node: t.config.node.clone(),
                    error: Some(e.to_string()),
                    ..NodeDrift::default()
                },
            }
        })
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    found.sort_by(|a, b| a.node.cmp(&b.node));
    found
}

/// The probe: `F <sha256>` per file, `S <state>` per service, then the tag.
pub(super) fn probe(t: &Target, tag: &str) -> String {
    let mut probe = String::from("set +e\n");
    for f in &t.config.files {
        let _ = writeln!(
            probe,
            "printf 'F %s\\n' \"$(sha256sum {} 2>/dev/null | cut -d' ' -f1)\"",
            quote(&f.path)
        );
    }
    for s in &t.config.services {
        let _ = writeln!(
            probe,
            "printf 'S %s\\n' \"$(systemctl is-active {} 2>/dev/null)\"",
            quote(&s.name)
        );
    }
    let _ = writeln!(probe, "echo '{tag}'");
    probe
}

async fn read(
    t: &Target,
    operator: &OperatorKey,
    patience: Duration,
    diff: bool,
    secrets: &[String],
) -> Result<NodeDrift, BootstrapError> {
    let c = &t.config;
    let session = Session::connect(&c.node, t.address, &t.host_key, operator, patience)
        .await
        .map_err(BootstrapError::Connect)?;
    let result = compared(&session, t, diff, secrets).await;
    session.close().await;
    result
}

async fn compared(
    session: &Session,
    t: &Target,
    diff: bool,
    secrets: &[String],
) -> Result<NodeDrift, BootstrapError> {
    let tag = super::health::marker();
    let out = session
        .run(&probe(t, &tag))
        .await
        .map_err(BootstrapError::Session)?;
    let Some((own, _)) = out.stdout.split_once(&format!("{tag}\n")) else {
        return Err(BootstrapError::Command {
            node: t.config.node.clone(),
            what: "reading its files' checksums and its services",
            stderr: format!("no complete answer (exit status {})", out.status),
        });
    };
    let mut drift = compare(t, own);
    if diff && !drift.files.is_empty() {
        add_diffs(session, t, &mut drift, secrets).await?;
    }
    Ok(drift)
}

/// What the probe's answer says differs.
pub(super) fn compare(t: &Target, answer: &str) -> NodeDrift {
    let c = &t.config;
    let mut lines = answer.lines();
    let mut drift = NodeDrift {
        node: c.node.clone(),
        ..NodeDrift::default()
    };
    for f in &c.files {
        let remote = lines
            .next()
            .and_then(|l| l.strip_prefix("F "))
            .unwrap_or("");
        let remote = remote.trim();
        if remote != sha256(&f.content) {
            drift.files.push(FileDrift {
                path: f.path.clone(),
                missing: remote.is_empty(),
                diff: None,
            });
        }
    }
    for s in &c.services {
        let state = lines
            .next()
            .and_then(|l| l.strip_prefix("S "))
            .unwrap_or("");
        let state = state.trim();
        if state != "active" {
            let said = if state.is_empty() { "unknown" } else { state };
            drift.stopped.push((s.name.clone(), said.to_string()));
        }
    }
    drift
}

/// Fetches the differing files (base64, so that any byte comes back as it is) and makes
/// each one's diff against what fitter renders.
async fn add_diffs(
    session: &Session,
    t: &Target,
    drift: &mut NodeDrift,
    secrets: &[String],
) -> Result<(), BootstrapError> {
    let tag = super::health::marker();
    let mut script = String::from("set +e\n");
    for (i, f) in drift.files.iter().enumerate() {
        let _ = writeln!(
            script,
            "echo '{tag}-{i}'; base64 -w0 {} 2>/dev/null; echo",
            quote(&f.path)
        );
    }
    // The files' contents may hold secrets: never in the debug log (`--log-file`, `-vv`).
    let out = session
        .run_unlogged(&script)
        .await
        .map_err(BootstrapError::Session)?;
    let mut on_node: Vec<String> = vec![String::new(); drift.files.len()];
    let mut current: Option<usize> = None;
    for line in out.stdout.lines() {
        if let Some(i) = line
            .strip_prefix(&format!("{tag}-"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            current = Some(i);
        } else if let Some(i) = current.filter(|i| *i < on_node.len()) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line.trim())
                .unwrap_or_default();
            on_node[i] = String::from_utf8_lossy(&bytes).into_owned();
            current = None;
        }
    }
    for (f, old) in drift.files.iter_mut().zip(on_node) {
        let Some(wanted) = t.config.files.iter().find(|r| r.path == f.path) else {
            continue;
        };
        f.diff = Some(unified(
            &t.config.node,
            &f.path,
            &old,
            &wanted.content,
            secrets,
        ));
    }
    Ok(())
}

/// `--- node:path (on the node)` / `+++ node:path (fitter's)` and the hunks, secrets hidden.
pub fn unified(node: &str, path: &str, on_node: &str, wanted: &str, secrets: &[String]) -> String {
    let hide = |text: &str| {
        let mut text = text.to_string();
        for s in secrets.iter().filter(|s| s.len() >= 6) {
            text = text.replace(s.as_str(), "(secret)");
        }
        text
    };
    let (old, new) = (hide(on_node), hide(wanted));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{node}:{path} (on the node)"),
            &format!("{node}:{path} (fitter's)"),
        )
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_never_shows_a_secret() {
        let secret = "s3cr3t-value-42".to_string();
        let d = unified(
            "master1",
            "/etc/app.conf",
            "port=1\npassword=old-one-here\n",
            &format!("port=2\npassword={secret}\n"),
            std::slice::from_ref(&secret),
        );
        assert!(d.contains("--- master1:/etc/app.conf (on the node)"), "{d}");
        assert!(d.contains("-port=1") && d.contains("+port=2"), "{d}");
        assert!(
            d.contains("+password=(secret)") && !d.contains(&secret),
            "{d}"
        );
    }
}
