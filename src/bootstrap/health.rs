//! Health checks: after a node's bootstrap, each check of each component whose services it
//! runs (`health:` in the component's `component.yaml`) is run over the node's session until
//! its answer matches, or `--health-timeout` runs out and the node fails with the last
//! answer. All of a node's checks go in one round trip per attempt.
//!
//! A component that forms a quorum (ZooKeeper) is checked across its members too
//! ([`ensemble_verdict`]): the first group of each member's answer is its role, and the
//! members need exactly one `leader` (or to be a single `standalone`). Deploy returns only
//! once that holds, so "done" means the ensemble serves.
//!
//! `information` runs the same checks, read-only, through [`super::survey`].
//!
//! Attempts are a second apart: a service that has just been (re)started takes seconds to
//! answer, and a check costs a round trip.

use std::time::{Duration, Instant};

use regex::Regex;
use tokio_util::sync::CancellationToken;

use super::{BootstrapError, HealthPlan, quote};
use crate::ssh::Session;

/// Between two attempts of a node's checks.
const RETRY: Duration = Duration::from_secs(1);

/// The longest answer kept for a message.
const ANSWER_CAP: usize = 300;

/// One check's answer, as last seen.
#[derive(Debug, Clone)]
pub struct Answer {
    pub component: String,
    pub check: String,
    /// The answer matched `expect`.
    pub healthy: bool,
    /// For a quorum component: the first group of the match (`leader`, `follower`, ...).
    pub role: Option<String>,
    pub text: String,
}

/// Runs `checks` on the node until all pass or `deadline`; the answers of the last attempt.
/// A check still failing at the deadline is an error naming it, with its answer.
pub(super) async fn wait_healthy(
    session: &Session,
    node: &str,
    checks: &[HealthPlan],
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Vec<Answer>, BootstrapError> {
    loop {
        if cancel.is_cancelled() {
            return Err(BootstrapError::Command {
                node: node.to_string(),
                what: "waiting for its health checks",
                stderr: "interrupted (Ctrl-C)".into(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now()) + RETRY;
        let answers = tokio::time::timeout(left, attempt(session, checks))
            .await
            .map_err(|_| BootstrapError::Unhealthy {
                node: node.to_string(),
                component: checks
                    .first()
                    .map(|c| c.component.clone())
                    .unwrap_or_default(),
                check: checks.first().map(|c| c.name.clone()).unwrap_or_default(),
                answer: "(no answer before the deadline)".into(),
            })??;
        match answers.iter().find(|a| !a.healthy) {
            None => return Ok(answers),
            Some(bad) if Instant::now() >= deadline => {
                return Err(BootstrapError::Unhealthy {
                    node: node.to_string(),
                    component: bad.component.clone(),
                    check: bad.check.clone(),
                    answer: shown(&bad.text),
                });
            }
            Some(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = cancel.cancelled() => {}
                }
            }
        }
    }
}

/// Every check once, in one round trip: each answer between markers, with its exit code.
pub(super) async fn attempt(
    session: &Session,
    checks: &[HealthPlan],
) -> Result<Vec<Answer>, BootstrapError> {
    let tag = marker();
    let mut script = String::from("set +e\n");
    for (i, c) in checks.iter().enumerate() {
        script.push_str(&check_block(&tag, i, c));
    }
    let out = session
        .run_with_input("sh -s", script.as_bytes())
        .await
        .map_err(BootstrapError::Session)?;
    Ok(answers(&out.stdout, &tag, checks))
}

/// A marker for one script's output, unguessable by what runs on the node: a check's
/// answer is the node's to write, and a line of it that looked like a marker would move
/// answers between checks.
pub(super) fn marker() -> String {
    let mut b = [0u8; 8];
    // No randomness at all is not worth failing a check for: a fixed tag still parses.
    let _ = getrandom::fill(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("@@fitter-{hex}")
}

/// One check in a script: its answer between markers, then its exit code.
pub(super) fn check_block(tag: &str, i: usize, c: &HealthPlan) -> String {
    format!(
        "echo '{tag}-check {i}'\ntimeout {} sh -c {} 2>&1 </dev/null; s=$?\necho\necho \"{tag}-status {i} $s\"\n",
        c.timeout.max(1),
        quote(&c.command)
    )
}

/// The checks' answers in a script's output, judged.
pub(super) fn answers(stdout: &str, tag: &str, checks: &[HealthPlan]) -> Vec<Answer> {
    let (check, status) = (format!("{tag}-check "), format!("{tag}-status "));
    let mut texts = vec![String::new(); checks.len()];
    let mut current = None;
    for line in stdout.lines() {
        if let Some(i) = line.strip_prefix(&check) {
            current = i.trim().parse::<usize>().ok().filter(|i| *i < checks.len());
        } else if line.starts_with(&status) {
            current = None;
        } else if let Some(i) = current {
            texts[i].push_str(line);
            texts[i].push('\n');
        }
    }
    checks
        .iter()
        .zip(texts)
        .map(|(c, text)| judge(c, text.trim_end().to_string()))
        .collect()
}

pub(super) fn judge(check: &HealthPlan, text: String) -> Answer {
    // The catalogue's patterns are checked when it loads; a bad one reads as unhealthy.
    let found = Regex::new(&check.expect).ok().and_then(|re| {
        re.captures(&text)
            .map(|c| c.get(1).map(|m| m.as_str().to_string()))
    });
    Answer {
        component: check.component.clone(),
        check: check.name.clone(),
        healthy: found.is_some(),
        role: found.flatten().filter(|_| check.quorum),
        text,
    }
}

/// An answer as a message shows it: one line, capped.
pub fn shown(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.is_empty() {
        return "(no answer)".to_string();
    }
    match one.char_indices().nth(ANSWER_CAP) {
        Some((i, _)) => format!("{}...", &one[..i]),
        None => one,
    }
}

/// Whether the members' roles make one working ensemble: exactly one leader, or a single
/// standalone member. When some members could not be checked (`complete` false: a node
/// that failed, or one left out), the leader may be among them: at most one is asked of
/// those answering. `Some` says what is wrong, for the message.
pub(super) fn ensemble_problem(roles: &[(String, String)], complete: bool) -> Option<String> {
    let leaders = roles.iter().filter(|(_, r)| r == "leader").count();
    let alone = roles.len() == 1 && roles[0].1 == "standalone";
    if leaders == 1 || alone || (!complete && leaders == 0) {
        return None;
    }
    let list: Vec<String> = roles.iter().map(|(n, r)| format!("{n}: {r}")).collect();
    Some(format!(
        "{leaders} leaders among its members ({})",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zk() -> HealthPlan {
        HealthPlan {
            component: "zookeeper".into(),
            name: "serving".into(),
            command: "true".into(),
            expect: "(?m)^Mode: (leader|follower|standalone)$".into(),
            timeout: 5,
            quorum: true,
        }
    }

    #[test]
    fn an_answer_is_judged_by_its_pattern_and_gives_the_member_s_role() {
        let ok = judge(
            &zk(),
            "Zookeeper version: 3.8\nMode: follower\nNode count: 4".into(),
        );
        assert!(ok.healthy);
        assert_eq!(ok.role.as_deref(), Some("follower"));
        let bad = judge(
            &zk(),
            "This ZooKeeper instance is not currently serving requests".into(),
        );
        assert!(!bad.healthy && bad.role.is_none());
        assert_eq!(shown(""), "(no answer)");
        assert!(shown(&"x".repeat(1000)).ends_with("..."));
    }

    #[test]
    fn an_ensemble_needs_exactly_one_leader() {
        let r = |v: &[&str]| -> Vec<(String, String)> {
            v.iter()
                .enumerate()
                .map(|(i, r)| (format!("m{i}"), r.to_string()))
                .collect()
        };
        assert!(ensemble_problem(&r(&["follower", "leader", "follower"]), true).is_none());
        assert!(ensemble_problem(&r(&["standalone"]), true).is_none());
        let two = ensemble_problem(&r(&["leader", "leader", "follower"]), true).unwrap();
        assert!(two.contains("2 leaders"), "{two}");
        assert!(ensemble_problem(&r(&["follower", "follower"]), true).is_some());
        assert!(ensemble_problem(&r(&["standalone", "standalone"]), true).is_some());
        // A member that could not be checked may be the leader; two leaders never do.
        assert!(ensemble_problem(&r(&["follower", "follower"]), false).is_none());
        assert!(ensemble_problem(&r(&["leader", "leader"]), false).is_some());
    }
}
