//! The nodes asked what they run: one SSH session and one round trip per ready node, all
//! nodes at once, changing nothing (`systemctl is-active` and the components' health checks,
//! the same checks deploy waits for). A node that cannot be asked is shown with why; the
//! others are still asked. The host key is pinned as for bootstrap, so a node answering
//! with another key is reported, never trusted.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;

use super::{CheckInfo, ComponentInfo, Information};
use crate::bootstrap::{self, BootstrapError, HealthPlan, NOT_RUNNING, Survey};
use crate::components::Catalog;
use crate::ssh::{OperatorKey, Session};
use crate::state::{State, Status};

/// How long a node may take to accept the connection: one attempt, no retry (a node that
/// is down is reported, not waited for).
const CONNECT: Duration = Duration::ZERO;

/// How long the round trip may take: the checks' own timeouts are a few seconds each.
const ROUND_TRIP: Duration = Duration::from_secs(60);

/// How long one node may take in all, login included: a server that accepts the
/// connection and then says nothing must not hold `information` for the session's own
/// inactivity timeout (10 minutes).
const PER_NODE: Duration = Duration::from_secs(90);

/// Asks every ready node of `info` what it runs, and lists the endpoints again from what
/// the nodes said.
pub async fn survey(
    info: &mut Information,
    catalog: &Catalog,
    state: &State,
    operator: &OperatorKey,
) {
    let asked = info.nodes.iter().map(|n| {
        let recorded = state.resources.get(&format!("node.{}", n.name));
        let target = match recorded {
            None => Err("not asked: not created".to_string()),
            Some(r) if r.status != Status::Ready => {
                Err("not asked: its creation did not finish".to_string())
            }
            Some(r) => match (r.outputs.address(), r.outputs.host_key.clone()) {
                (Some(ip), Some(key)) => Ok((ip, key)),
                _ => Err("not asked: no address or pinned host key in the state".to_string()),
            },
        };
        let services: Vec<(String, String)> = n
            .components
            .iter()
            .flat_map(|c| {
                c.services
                    .iter()
                    .map(|s| (c.component.clone(), s.name.clone()))
            })
            .collect();
        let checks: Vec<HealthPlan> = n
            .components
            .iter()
            .filter(|c| c.installed)
            .filter_map(|c| catalog.get(&c.component))
            .flat_map(HealthPlan::of)
            .collect();
        let name = n.name.clone();
        async move {
            let (ip, host_key) = target?;
            let address = SocketAddr::new(ip, 22);
            let asked = ask(&name, address, &host_key, operator, &services, &checks);
            match tokio::time::timeout(PER_NODE, asked).await {
                Ok(Ok(survey)) => Ok(survey),
                Ok(Err(e)) => Err(format!("no answer: {e}")),
                Err(_) => Err(format!(
                    "no answer: `{name}` did not answer within {} s",
                    PER_NODE.as_secs()
                )),
            }
        }
    });
    let answers = join_all(asked).await;
    for (node, answer) in info.nodes.iter_mut().zip(answers) {
        match answer {
            Err(why) => node.not_asked = Some(why),
            Ok(survey) => {
                for c in &mut node.components {
                    fill(c, &survey);
                }
            }
        }
    }
    info.live = true;
    info.find_endpoints();
}

async fn ask(
    node: &str,
    address: SocketAddr,
    host_key: &str,
    operator: &OperatorKey,
    services: &[(String, String)],
    checks: &[HealthPlan],
) -> Result<Survey, BootstrapError> {
    let mut session = Session::connect(node, address, host_key, operator, CONNECT)
        .await
        .map_err(BootstrapError::Connect)?;
    session.set_command_deadline(ROUND_TRIP);
    let survey = bootstrap::survey(&session, services, checks).await;
    session.close().await;
    survey
}

/// What the node said of one of its components.
fn fill(c: &mut ComponentInfo, survey: &Survey) {
    for s in &mut c.services {
        s.state = survey
            .services
            .iter()
            .find(|(name, _)| *name == s.name)
            .map(|(_, state)| state.clone());
    }
    for a in survey.answers.iter().filter(|a| a.component == c.component) {
        if a.text == NOT_RUNNING {
            continue;
        }
        if a.healthy && a.role.is_some() {
            c.mode = a.role.clone();
        }
        c.checks.push(CheckInfo {
            name: a.check.clone(),
            healthy: a.healthy,
            answer: bootstrap::shown(&a.text),
        });
    }
}
