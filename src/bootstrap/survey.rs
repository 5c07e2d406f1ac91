//! What a node runs, read for `information` in one round trip and changing nothing: each
//! service's state (`systemctl is-active`) and the health checks ([`super::health`]) of the
//! components whose services all run. A check of a component that is not running is not
//! run: `docker info` would start a stopped engine through its socket.

use std::fmt::Write as _;

use super::health::{self, Answer};
use super::{BootstrapError, HealthPlan, quote};
use crate::ssh::Session;

/// What a node runs, as `information` reads it.
#[derive(Debug, Clone)]
pub struct Survey {
    /// Each service asked about with what `systemctl is-active` says of it (`active`,
    /// `inactive`, `failed`, ...; `unknown` when the node said nothing of it).
    pub services: Vec<(String, String)>,
    /// The checks, in the order asked; the checks of a component whose services do not
    /// all run are not run (their answer is [`NOT_RUNNING`]).
    pub answers: Vec<Answer>,
}

/// The answer of a check that was not run because its component's services do not run.
pub const NOT_RUNNING: &str = "(not run: its service is not running)";

/// Asks the node. `services`: (component, service).
pub async fn survey(
    session: &Session,
    services: &[(String, String)],
    checks: &[HealthPlan],
) -> Result<Survey, BootstrapError> {
    let tag = health::marker();
    let out = session
        .run_with_input("sh -s", script(&tag, services, checks).as_bytes())
        .await
        .map_err(BootstrapError::Session)?;
    Ok(read(&out.stdout, &tag, services, checks))
}

fn script(tag: &str, services: &[(String, String)], checks: &[HealthPlan]) -> String {
    let mut script = String::from("set +e\n");
    for (i, (_, service)) in services.iter().enumerate() {
        let _ = writeln!(
            script,
            "echo \"{tag}-service {i} $(systemctl is-active {} 2>/dev/null)\"",
            quote(service)
        );
    }
    for (i, c) in checks.iter().enumerate() {
        let gate: Vec<String> = services
            .iter()
            .filter(|(component, _)| *component == c.component)
            .map(|(_, s)| format!("systemctl is-active -q {} 2>/dev/null", quote(s)))
            .collect();
        if gate.is_empty() {
            script.push_str(&health::check_block(tag, i, c));
        } else {
            let _ = write!(
                script,
                "if {}; then\n{}else\necho '{tag}-check {i}'\necho {}\necho '{tag}-status {i} 1'\nfi\n",
                gate.join(" && "),
                health::check_block(tag, i, c),
                quote(NOT_RUNNING)
            );
        }
    }
    script
}

fn read(stdout: &str, tag: &str, services: &[(String, String)], checks: &[HealthPlan]) -> Survey {
    let prefix = format!("{tag}-service ");
    let mut states = vec![String::from("unknown"); services.len()];
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let (i, state) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Some(slot) = i.parse::<usize>().ok().and_then(|i| states.get_mut(i))
            && !state.trim().is_empty()
        {
            *slot = state.trim().to_string();
        }
    }
    Survey {
        services: services
            .iter()
            .zip(states)
            .map(|((_, service), state)| (service.clone(), state))
            .collect(),
        answers: health::answers(stdout, tag, checks),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(component: &str, expect: &str) -> HealthPlan {
        HealthPlan {
            component: component.into(),
            name: "serving".into(),
            command: "true".into(),
            expect: expect.into(),
            timeout: 5,
            quorum: component == "zookeeper",
        }
    }

    fn services() -> Vec<(String, String)> {
        vec![
            ("zookeeper".into(), "zookeeper".into()),
            ("docker".into(), "docker".into()),
        ]
    }

    #[test]
    fn a_check_runs_only_when_its_component_s_services_all_run() {
        let checks = [
            check("zookeeper", "(?m)^Mode: (leader|follower)$"),
            check("docker", "^[0-9]+\\."),
            check("sshd", "active"),
        ];
        let text = script("@@t", &services(), &checks);
        assert!(text.contains("if systemctl is-active -q 'zookeeper' 2>/dev/null; then\n"));
        assert!(text.contains("if systemctl is-active -q 'docker' 2>/dev/null; then\n"));
        // A component without services of its own here (sshd's are not asked): ungated.
        assert!(text.ends_with("echo \"@@t-status 2 $s\"\n"), "{text}");
    }

    #[test]
    fn states_and_answers_are_read_by_their_markers_only() {
        let checks = [
            check("zookeeper", "(?m)^Mode: (leader|follower)$"),
            check("docker", "^[0-9]+\\."),
        ];
        // What a node could print: the script's own lines, and an answer that imitates
        // markers of another run (a fixed `@@fitter-` prefix would take them).
        let stdout = "@@t-service 0 active\n@@t-service 1 inactive\n\
             @@t-check 0\nMode: follower\n@@fitter-check 1\n@@fitter-service 1 active\n\n@@t-status 0 0\n\
             @@t-check 1\n(not run: its service is not running)\n@@t-status 1 1\n";
        let s = read(stdout, "@@t", &services(), &checks);
        assert_eq!(
            s.services,
            [
                ("zookeeper".to_string(), "active".to_string()),
                ("docker".to_string(), "inactive".to_string())
            ]
        );
        assert!(s.answers[0].healthy);
        assert_eq!(s.answers[0].role.as_deref(), Some("follower"));
        assert!(s.answers[0].text.contains("@@fitter-service 1 active"));
        assert!(!s.answers[1].healthy);
        assert_eq!(s.answers[1].text, NOT_RUNNING);
        // Nothing said of a service: unknown, never active.
        let s = read("@@t-service 0\n", "@@t", &services(), &checks);
        assert_eq!(s.services[0].1, "unknown");
        assert_eq!(s.services[1].1, "unknown");
    }
}
