//! Applying over SSH: one session per node (host key pinned), a handful of round trips:
//! checksums and service states, missing packages, uploads, removals, the cloud-config
//! script, restarts. Nodes are worked on `parallelism` at a time; each fails alone.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::report::{Activity, Finish, Reporter};
use crate::ssh::{OperatorKey, Session};

use super::{
    BootstrapError, MANIFEST, NodeConfig, NodeReport, RenderedFile, ServicePlan, Target, quote,
    sha256,
};

/// Brings every node in line with its config, `parallelism` nodes at a time. A node that
/// fails (unreachable, wrong host key, a command failing) fails alone.
pub async fn apply(
    targets: Vec<Target>,
    operator: &OperatorKey,
    parallelism: usize,
    patience: Duration,
    reporter: &dyn Reporter,
) -> Vec<NodeReport> {
    use futures::StreamExt as _;
    futures::stream::iter(targets)
        .map(|t| async move {
            let node = t.config.node.clone();
            let subject = format!("node.{node}");
            reporter.started(&subject, Activity::Bootstrapping);
            match apply_node(&t, operator, patience, &|detail| {
                reporter.step(&subject, detail)
            })
            .await
            {
                Ok(report) => {
                    let unchanged = report.uploaded.is_empty()
                        && report.restarted.is_empty()
                        && report.removed.is_empty();
                    reporter.finished(
                        &subject,
                        if unchanged {
                            Finish::Unchanged
                        } else {
                            Finish::Done { id: None }
                        },
                    );
                    report
                }
                Err(e) => {
                    let error = e.to_string();
                    reporter.finished(&subject, Finish::Failed { error: &error });
                    NodeReport {
                        node,
                        error: Some(error),
                        ..NodeReport::default()
                    }
                }
            }
        })
        .buffered(parallelism.max(1))
        .collect()
        .await
}

/// What a node's bootstrap is doing now, for the reporter.
type Step<'a> = &'a (dyn Fn(&str) + Send + Sync);

async fn apply_node(
    t: &Target,
    operator: &OperatorKey,
    patience: Duration,
    step: Step<'_>,
) -> Result<NodeReport, BootstrapError> {
    let c = &t.config;
    step(&format!("connecting to {}", t.address));
    let session = Session::connect(&c.node, t.address, &t.host_key, operator, patience)
        .await
        .map_err(BootstrapError::Connect)?;
    step("comparing files and services");
    let result = apply_session(&session, c, step).await;
    session.close().await;
    result
}

async fn apply_session(
    session: &Session,
    c: &NodeConfig,
    step: Step<'_>,
) -> Result<NodeReport, BootstrapError> {
    let mut report = NodeReport {
        node: c.node.clone(),
        ..NodeReport::default()
    };
    // 1. One round trip for every checksum and every service's state.
    let mut probe = String::from("set +e\n");
    for f in &c.files {
        let _ = writeln!(
            probe,
            "printf 'F %s\\n' \"$(sha256sum {} 2>/dev/null | cut -d' ' -f1)\"",
            quote(&f.path)
        );
    }
    for s in &c.services {
        let _ = writeln!(
            probe,
            "printf 'S %s\\n' \"$(systemctl is-active {} 2>/dev/null)\"",
            quote(&s.name)
        );
    }
    let _ = writeln!(
        probe,
        "sed 's/^/M /' {} 2>/dev/null || true",
        quote(MANIFEST)
    );
    let out = session.run(&probe).await.map_err(BootstrapError::Session)?;
    let mut lines = out.stdout.lines();
    let mut changed = BTreeSet::new();
    for f in &c.files {
        let remote = lines
            .next()
            .and_then(|l| l.strip_prefix("F "))
            .unwrap_or("");
        if remote.trim() != sha256(&f.content) {
            changed.insert(f.path.clone());
        }
    }
    let mut inactive = BTreeSet::new();
    for s in &c.services {
        let state = lines
            .next()
            .and_then(|l| l.strip_prefix("S "))
            .unwrap_or("");
        if state.trim() != "active" {
            inactive.insert(s.name.clone());
        }
    }
    let placed: BTreeSet<String> = lines
        .filter_map(|l| l.strip_prefix("M "))
        .map(str::to_string)
        .collect();
    let wanted: BTreeSet<String> = c.files.iter().map(|f| f.path.clone()).collect();
    // 2. Packages that are missing, from the plan's APT sources when it gives some.
    if !c.packages.is_empty() {
        let list = c
            .packages
            .iter()
            .map(|p| quote(p))
            .collect::<Vec<_>>()
            .join(" ");
        let mut sources = String::new();
        for (component, lines) in &c.apt_sources {
            let quoted: Vec<String> = lines.iter().map(|l| quote(l)).collect();
            let _ = write!(
                sources,
                "printf '%s\\n' {} > /etc/apt/sources.list.d/fitter-{component}.list; ",
                quoted.join(" ")
            );
        }
        step("installing missing packages");
        let cmd = format!(
            "missing=$(for p in {list}; do dpkg-query -W -f='${{Status}}' \"$p\" 2>/dev/null | grep -q 'ok installed' || echo \"$p\"; done); \
             [ -z \"$missing\" ] || {{ {sources}DEBIAN_FRONTEND=noninteractive apt-get update -q && \
             DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; }}"
        );
        let out = session.run(&cmd).await.map_err(BootstrapError::Session)?;
        if out.status != 0 {
            return Err(BootstrapError::Packages {
                node: c.node.clone(),
                stderr: out.stderr.lines().last().unwrap_or("").to_string(),
            });
        }
    }
    // 3. Uploads, all in one round trip: a script that writes each file beside its place
    //    (base64, so any content is safe) and renames it over the old one.
    let uploads: Vec<&RenderedFile> = c
        .files
        .iter()
        .filter(|f| changed.contains(&f.path))
        .collect();
    if !uploads.is_empty() {
        use base64::Engine as _;
        let mut script = String::from("set -e\n");
        for f in &uploads {
            let path = quote(&f.path);
            let tmp = quote(&format!("{}.fitter-new", f.path));
            let data = base64::engine::general_purpose::STANDARD.encode(f.content.as_bytes());
            let _ = writeln!(
                script,
                "mkdir -p \"$(dirname {path})\"\nbase64 -d > {tmp} <<'FITTER_EOF'\n{data}\nFITTER_EOF\nchmod {} {tmp}; chown root:root {tmp}; mv -f {tmp} {path}",
                f.mode
            );
        }
        step(&format!(
            "uploading {} file{}",
            uploads.len(),
            crate::diagnostics::plural(uploads.len())
        ));
        run_script(session, &c.node, &script, "writing files").await?;
        report
            .uploaded
            .extend(uploads.iter().map(|f| f.path.clone()));
    }
    // Files placed by an earlier run that the plan no longer asks for go, and the manifest
    // follows the plan (one round trip, only when the set of files changed).
    if placed != wanted {
        let gone: Vec<&String> = placed.difference(&wanted).collect();
        let mut script = String::from("set -e\n");
        for path in &gone {
            let _ = writeln!(script, "rm -f -- {}", quote(path));
        }
        let list: Vec<String> = wanted.iter().map(|p| quote(p)).collect();
        let _ = writeln!(
            script,
            "mkdir -p \"$(dirname {m})\"\nprintf '%s\\n' {} > {m}.fitter-new\nmv -f {m}.fitter-new {m}",
            list.join(" "),
            m = quote(MANIFEST)
        );
        run_script(session, &c.node, &script, "removing files").await?;
        report.removed.extend(gone.into_iter().cloned());
    }
    // The cloud-config script, when it changed.
    for script in c.run_on_change.iter().filter(|p| changed.contains(*p)) {
        let out = session
            .run(&format!("sh {}", quote(script)))
            .await
            .map_err(BootstrapError::Session)?;
        if out.status != 0 {
            let tail: Vec<&str> = out.stderr.lines().rev().take(3).collect();
            return Err(BootstrapError::CloudConfig {
                node: c.node.clone(),
                status: out.status,
                stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
            });
        }
    }
    // 4. Services, in one round trip: restart on change, start when down, enable always.
    let restart: Vec<&ServicePlan> = c
        .services
        .iter()
        .filter(|s| inactive.contains(&s.name) || s.files.iter().any(|p| changed.contains(p)))
        .collect();
    if !restart.is_empty() {
        let mut script = String::from("set -e\n");
        for s in &restart {
            let _ = writeln!(
                script,
                "systemctl enable {0} >/dev/null 2>&1 || true; systemctl restart {0}",
                quote(&s.name)
            );
        }
        let names: Vec<&str> = restart.iter().map(|s| s.name.as_str()).collect();
        step(&format!("restarting {}", names.join(", ")));
        run_script(session, &c.node, &script, "restarting services").await?;
        report
            .restarted
            .extend(restart.iter().map(|s| s.name.clone()));
    }
    if !c.disable.is_empty() {
        let list = c
            .disable
            .iter()
            .map(|d| quote(d))
            .collect::<Vec<_>>()
            .join(" ");
        let cmd = format!(
            "for s in {list}; do if systemctl cat \"$s\" >/dev/null 2>&1; then \
             systemctl is-enabled -q \"$s\" 2>/dev/null && systemctl disable -q \"$s\"; \
             systemctl is-active -q \"$s\" && systemctl stop \"$s\"; fi; done; true"
        );
        session.run(&cmd).await.map_err(BootstrapError::Session)?;
    }
    Ok(report)
}

/// Runs a shell script on the node in one round trip; `what` names it in the error.
async fn run_script(
    session: &Session,
    node: &str,
    script: &str,
    what: &'static str,
) -> Result<(), BootstrapError> {
    let out = session
        .run_with_input("sh -s", script.as_bytes())
        .await
        .map_err(BootstrapError::Session)?;
    if out.status != 0 {
        return Err(BootstrapError::Command {
            node: node.to_string(),
            what,
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(())
}
