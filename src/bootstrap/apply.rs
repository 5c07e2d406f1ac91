//! Applying over SSH, one node at a time: one session per node (host key pinned), opened at
//! the node's first round and kept. The first round reads every checksum and service state
//! and does what concerns the whole node (packages, removals, services it must not run);
//! each round then uploads the changed files of the components it is given, runs the
//! cloud-config script when it changed, and restarts what must restart. `walk.rs` decides
//! which components a round gets.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::ssh::{OperatorKey, Session};

use super::{
    BootstrapError, MANIFEST, NodeReport, RenderedFile, ServicePlan, Target, quote, sha256,
};

/// How restarts are spread over the nodes: one node at a time for a running quorum member,
/// `--serial` nodes at a time for any restart.
pub(super) struct Rolling {
    /// One lock per component that forms a quorum.
    pub quorum: std::collections::HashMap<String, tokio::sync::Mutex<()>>,
    pub serial: tokio::sync::Semaphore,
    /// How long a restarted quorum member may take to serve again.
    pub patience: Duration,
    /// The order in which nodes took their turn, per component.
    pub turns: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Components whose roll stopped, with the node that did not serve again: the members
    /// after it are not restarted (that would take the quorum down).
    pub stopped: std::sync::Mutex<std::collections::HashMap<String, String>>,
    pub cancel: tokio_util::sync::CancellationToken,
}

impl Rolling {
    /// The next turn of `component`: 1 for the first node restarted, then 2...
    fn next_turn(&self, component: &str) -> usize {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        let n = turns.entry(component.to_string()).or_insert(0);
        *n += 1;
        *n
    }
}

/// How long a running service may fail its check before it is restarted: an ensemble
/// electing, a check slow on a loaded machine, do not restart anything.
const GRACE: Duration = Duration::from_secs(20);

/// What a node's bootstrap is doing now, for the reporter.
pub(super) type Step<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// One node's bootstrap, carried out a few components at a time, in the order the graph
/// walk hands them over. The session is opened once and kept between rounds; what the node
/// has (checksums, running services) is read once, in the first round.
pub(super) struct NodeRun<'t> {
    target: &'t Target,
    session: Option<Session>,
    /// Files whose content on the node differs from what the plan renders.
    changed: BTreeSet<String>,
    /// Services not running.
    inactive: BTreeSet<String>,
    /// The health checks' answers as the first round trip found them: what a node this run
    /// changes nothing on is judged by, without a round trip of its own.
    probed: Vec<super::health::Answer>,
    pub(super) report: NodeReport,
}

impl<'t> NodeRun<'t> {
    pub(super) fn new(target: &'t Target) -> NodeRun<'t> {
        NodeRun {
            target,
            session: None,
            changed: BTreeSet::new(),
            inactive: BTreeSet::new(),
            probed: Vec::new(),
            report: NodeReport {
                node: target.config.node.clone(),
                ..NodeReport::default()
            },
        }
    }

    pub(super) fn begun(&self) -> bool {
        self.session.is_some()
    }

    /// Connects and does what concerns the whole node: reads every checksum, service state
    /// and the manifest in one round trip; installs missing packages; removes the files an
    /// earlier run placed that the plan no longer asks for; stops the services the node
    /// must not run.
    pub(super) async fn begin(
        &mut self,
        operator: &OperatorKey,
        patience: Duration,
        command_timeout: Duration,
        health: bool,
        step: Step<'_>,
    ) -> Result<(), BootstrapError> {
        let t = self.target;
        let c = &t.config;
        step(&format!("connecting to {}", t.address));
        let mut session = Session::connect(&c.node, t.address, &t.host_key, operator, patience)
            .await
            .map_err(BootstrapError::Connect)?;
        session.set_command_deadline(command_timeout);
        step("comparing files and services");
        let session = self.session.insert(session);
        // One round trip for every checksum and every service's state.
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
        // The health checks too, after a marker: what they print is the node's to say, and
        // is never read as a checksum, a state or a manifest line.
        // (`health` false: `--health-timeout 0`, no check at all.)
        let tag = super::health::marker();
        let _ = writeln!(probe, "echo '{tag}-health'");
        for (i, h) in c.health.iter().enumerate().filter(|_| health) {
            probe.push_str(&super::health::check_block(&tag, i, h));
        }
        // A probe cut short (a shell that could not start on a loaded node: no output at
        // all, seen in bench/health.sh) must not read as "every file differs": its marker
        // line says it ran through. Tried once more, then the node fails with what it said.
        let marker = format!("{tag}-health\n");
        let mut out = session.run(&probe).await.map_err(BootstrapError::Session)?;
        if !out.stdout.contains(&marker) {
            out = session.run(&probe).await.map_err(BootstrapError::Session)?;
        }
        let Some((own, checks)) = out.stdout.split_once(&marker) else {
            let said = out.stderr.trim();
            return Err(BootstrapError::Command {
                node: c.node.clone(),
                what: "reading its files' checksums and its services",
                stderr: if said.is_empty() {
                    format!("no complete answer (exit status {})", out.status)
                } else {
                    said.chars().take(300).collect()
                },
            });
        };
        if health {
            self.probed = super::health::answers(checks, &tag, &c.health);
        }
        let mut lines = own.lines();
        for f in &c.files {
            let remote = lines
                .next()
                .and_then(|l| l.strip_prefix("F "))
                .unwrap_or("");
            if remote.trim() != sha256(&f.content) {
                self.changed.insert(f.path.clone());
            }
        }
        for s in &c.services {
            let state = lines
                .next()
                .and_then(|l| l.strip_prefix("S "))
                .unwrap_or("");
            if state.trim() != "active" {
                self.inactive.insert(s.name.clone());
            }
        }
        let placed: BTreeSet<String> = lines
            .filter_map(|l| l.strip_prefix("M "))
            .map(str::to_string)
            .collect();
        let wanted: BTreeSet<String> = c.files.iter().map(|f| f.path.clone()).collect();
        // Packages that are missing, from the plan's APT sources when it gives some.
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
        // Files placed by an earlier run that the plan no longer asks for go, and the
        // manifest follows the plan (one round trip, only when the set of files changed).
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
            self.report.removed.extend(gone.into_iter().cloned());
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
        Ok(())
    }

    /// Brings `components` in line: their changed files uploaded (one round trip), the
    /// cloud-config script run when it changed, their services restarted when one of
    /// their files changed or started when down (one round trip).
    pub(super) async fn apply(
        &mut self,
        components: &BTreeSet<String>,
        rolling: &Rolling,
        step: Step<'_>,
    ) -> Result<(), BootstrapError> {
        let c = &self.target.config;
        let Some(session) = self.session.as_ref() else {
            return Ok(());
        };
        // Uploads, all in one round trip: a script that writes each file beside its place
        // (base64, so any content is safe) and renames it over the old one.
        let uploads: Vec<&RenderedFile> = c
            .files
            .iter()
            .filter(|f| components.contains(&f.component) && self.changed.contains(&f.path))
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
                    quote(&f.mode)
                );
            }
            step(&format!(
                "uploading {} file{}",
                uploads.len(),
                crate::diagnostics::plural(uploads.len())
            ));
            run_script(session, &c.node, &script, "writing files").await?;
            self.report
                .uploaded
                .extend(uploads.iter().map(|f| f.path.clone()));
        }
        // The cloud-config script, when it changed.
        let scripts = c.run_on_change.iter().filter(|p| {
            self.changed.contains(*p)
                && c.files
                    .iter()
                    .any(|f| &f.path == *p && components.contains(&f.component))
        });
        for script in scripts {
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
        // Services: restart on change, start when down, enable always. A running member of
        // a quorum is restarted alone (one node of the component at a time) and waited for
        // until it serves again; the rest go in one round trip, `--serial` nodes at a time.
        let restart: Vec<&ServicePlan> = c
            .services
            .iter()
            .filter(|s| components.contains(&s.component))
            .filter(|s| {
                self.inactive.contains(&s.name) || s.files.iter().any(|p| self.changed.contains(p))
            })
            .collect();
        if restart.is_empty() {
            return Ok(());
        }
        let quorum = self.quorum_components();
        let rolled: BTreeSet<&str> = restart
            .iter()
            .filter(|s| quorum.contains(&s.component) && !self.inactive.contains(&s.name))
            .map(|s| s.component.as_str())
            .collect();
        let _serial = rolling.serial.acquire().await;
        let mut turns = Vec::new();
        for component in &rolled {
            if let Some(lock) = rolling.quorum.get(*component) {
                turns.push(lock.lock().await);
            }
            let stopped = rolling
                .stopped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(*component)
                .cloned();
            if let Some(first) = stopped {
                return Err(BootstrapError::Command {
                    node: c.node.clone(),
                    what: "rolling restart",
                    stderr: format!(
                        "not restarted: {component} on `{first}` did not serve again after its restart, \
                         and restarting another member could take the quorum down"
                    ),
                });
            }
        }
        if rolling.cancel.is_cancelled() && !rolled.is_empty() {
            return Err(BootstrapError::Command {
                node: c.node.clone(),
                what: "rolling restart",
                stderr: "interrupted (Ctrl-C) before its turn".into(),
            });
        }
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
        self.report
            .restarted
            .extend(restart.iter().map(|s| s.name.clone()));
        if !rolled.is_empty() {
            let checks: Vec<_> = c
                .health
                .iter()
                .filter(|h| rolled.contains(h.component.as_str()))
                .cloned()
                .collect();
            step(&format!(
                "waiting until {} serves again before the next node",
                rolled.iter().copied().collect::<Vec<_>>().join(", ")
            ));
            let deadline = std::time::Instant::now() + rolling.patience;
            // `--health-timeout 0`: nothing is waited for, the roll goes on at once.
            let served = if rolling.patience.is_zero() {
                Ok(Vec::new())
            } else {
                super::health::wait_healthy(session, &c.node, &checks, deadline, &rolling.cancel)
                    .await
            };
            if let Err(e) = served {
                let mut stopped = rolling.stopped.lock().unwrap_or_else(|e| e.into_inner());
                for component in &rolled {
                    stopped
                        .entry((*component).to_string())
                        .or_insert_with(|| c.node.clone());
                }
                return Err(e);
            }
            for component in &rolled {
                let turn = rolling.next_turn(component);
                self.report.rolled.push(((*component).to_string(), turn));
            }
        }
        drop(turns);
        Ok(())
    }

    /// Runs the node's health checks until they pass or `deadline` ([`super::health`]).
    /// A service that runs but keeps failing its check for [`GRACE`], and that this run
    /// did not (re)start, is restarted once (a hung process, a cause fixed since), a quorum
    /// member under its component's lock, and then waited for like the rest.
    pub(super) async fn check_health(
        &mut self,
        deadline: std::time::Instant,
        rolling: &Rolling,
        cancel: &tokio_util::sync::CancellationToken,
        step: Step<'_>,
    ) -> Result<Vec<super::health::Answer>, BootstrapError> {
        let c = &self.target.config;
        let Some(session) = self.session.as_ref() else {
            return Ok(Vec::new());
        };
        if c.health.is_empty() {
            return Ok(Vec::new());
        }
        let untouched = self.report.uploaded.is_empty()
            && self.report.removed.is_empty()
            && self.report.restarted.is_empty();
        if untouched && self.probed.len() == c.health.len() && self.probed.iter().all(|a| a.healthy)
        {
            // Nothing changed here since the first round trip found every check passing.
            return Ok(std::mem::take(&mut self.probed));
        }
        step("checking health");
        let grace = deadline.min(std::time::Instant::now() + GRACE);
        let sick: BTreeSet<String> =
            match super::health::wait_healthy(session, &c.node, &c.health, grace, cancel).await {
                Ok(answers) => return Ok(answers),
                Err(BootstrapError::Unhealthy { component, .. }) => {
                    let mut sick = BTreeSet::from([component]);
                    // The others still failing at that moment, too.
                    let again = super::health::attempt(session, &c.health).await?;
                    sick.extend(
                        again
                            .into_iter()
                            .filter(|a| !a.healthy)
                            .map(|a| a.component),
                    );
                    sick
                }
                Err(e) => return Err(e),
            };
        let restart: Vec<&ServicePlan> = c
            .services
            .iter()
            .filter(|s| sick.contains(&s.component))
            .filter(|s| !self.report.restarted.contains(&s.name))
            .collect();
        if !restart.is_empty() {
            let mut turns = Vec::new();
            for component in &sick {
                if let Some(lock) = rolling.quorum.get(component) {
                    turns.push(lock.lock().await);
                }
            }
            let names: Vec<&str> = restart.iter().map(|s| s.name.as_str()).collect();
            step(&format!(
                "restarting {}: failing its health check",
                names.join(", ")
            ));
            let mut script = String::from("set -e\n");
            for s in &restart {
                let _ = writeln!(script, "systemctl restart {}", quote(&s.name));
            }
            run_script(session, &c.node, &script, "restarting unhealthy services").await?;
            self.report
                .restarted
                .extend(restart.iter().map(|s| s.name.clone()));
            let answers =
                super::health::wait_healthy(session, &c.node, &c.health, deadline, cancel).await;
            drop(turns);
            return answers;
        }
        super::health::wait_healthy(session, &c.node, &c.health, deadline, cancel).await
    }

    /// The components of the node that form a quorum and have checks.
    pub(super) fn quorum_components(&self) -> Vec<String> {
        let mut c: Vec<String> = self
            .target
            .config
            .health
            .iter()
            .filter(|h| h.quorum)
            .map(|h| h.component.clone())
            .collect();
        c.dedup();
        c
    }

    /// One attempt of the node's quorum checks (an ensemble still electing).
    pub(super) async fn quorum_answers(
        &self,
    ) -> Result<Vec<super::health::Answer>, BootstrapError> {
        let c = &self.target.config;
        let Some(session) = self.session.as_ref() else {
            return Ok(Vec::new());
        };
        let checks: Vec<_> = c.health.iter().filter(|h| h.quorum).cloned().collect();
        super::health::attempt(session, &checks).await
    }

    /// Closes the session; what was done, or why not.
    pub(super) async fn end(mut self) -> NodeReport {
        if let Some(session) = self.session.take() {
            session.close().await;
        }
        self.report
    }
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
