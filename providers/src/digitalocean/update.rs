//! Changing a droplet in place: a new size through power-off, resize and power-on actions
//! (each step checked first, so a run stopped half-way resumes), and its fitter tags brought
//! in line with the plan.

use crate::wait::{Poll, poll_until};
use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value as Json;

use super::answer::{Action, Droplet};
use super::body;
use super::client::{self, Call, Failure};
use super::{Inner, api_error, droplet_ready, unsupported};
use crate::api::{NodeRequest, Outputs, ProviderError};

impl Inner {
    /// The droplet as the API has it now; an error when it is gone.
    async fn droplet(&self, resource: &str, id: &str) -> Result<Droplet, ProviderError> {
        self.get(resource, &format!("/v2/droplets/{id}"), "droplet")
            .await?
            .ok_or_else(|| unsupported(resource, format!("droplet {id} is gone")))
    }

    /// Runs one droplet action unless `done` already holds, and waits for it. An action is
    /// a POST: after a lost answer the droplet is read again rather than the action resent.
    async fn droplet_action(
        &self,
        resource: &str,
        id: &str,
        action: &Json,
        done: impl Fn(&Droplet) -> bool,
    ) -> Result<(), ProviderError> {
        let actions = format!("/v2/droplets/{id}/actions");
        let deadline = tokio::time::Instant::now() + self.settings.ready_timeout;
        let mut pause = Duration::from_secs(1);
        loop {
            let droplet = self.droplet(resource, id).await?;
            let locked = droplet.locked;
            if !locked && done(&droplet) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ProviderError::Timeout {
                    resource: resource.to_string(),
                    seconds: self.settings.ready_timeout.as_secs(),
                    what: format!("droplet {id}: {} did not complete", action["type"]),
                });
            }
            if !locked {
                let answer = self
                    .client
                    .send(Method::POST, &actions, Some(action), Call::Create)
                    .await
                    .and_then(|a| client::parse::<Action>(&Method::POST, &actions, &a, "action"));
                match answer {
                    Ok(started) => {
                        self.wait_action(resource, started.id).await?;
                        continue;
                    }
                    // Lost answer, or "already has a pending event": look again.
                    Err(Failure::Ambiguous(_)) | Err(Failure::Status { status: 422, .. }) => {}
                    Err(f) => return Err(api_error(resource, f)),
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Polls an action until it completes; an errored action is an error.
    /// Waits for a droplet action, at most `--ready-timeout`. An action the API does not
    /// know (404) is an error at once: polled, it would never end.
    async fn wait_action(&self, resource: &str, action_id: u64) -> Result<(), ProviderError> {
        let path = format!("/v2/actions/{action_id}");
        poll_until(
            resource,
            self.settings.ready_timeout,
            Duration::from_secs(1),
            || async {
                let action: Action =
                    self.get(resource, &path, "action").await?.ok_or_else(|| {
                        unsupported(
                            resource,
                            format!("action {action_id} is not known to the API"),
                        )
                    })?;
                match &*action.status {
                    "completed" => Ok(Poll::Ready(())),
                    "errored" => Err(unsupported(
                        resource,
                        format!("action {action_id} ({}) errored", action.kind),
                    )),
                    other => Ok(Poll::Pending(format!(
                        "action {action_id} ({}) is {other}",
                        action.kind
                    ))),
                }
            },
        )
        .await
    }

    pub(super) async fn update_node(
        &self,
        r: &NodeRequest,
        id: &str,
    ) -> Result<Outputs, ProviderError> {
        let resource = format!("node.{}", r.name);
        let mut droplet = self.droplet(&resource, id).await?;
        if droplet.size_slug != r.size.as_str() {
            // CPU and memory change with the droplet off; the disk is left alone, so the
            // resize can be undone. Each step checks the droplet first, so a run that
            // stopped half-way picks up where it was.
            let size = r.size.as_str();
            self.droplet_action(&resource, id, &body::action("power_off"), |d| {
                d.status == "off" || d.size_slug == size
            })
            .await?;
            self.droplet_action(&resource, id, &body::resize(&r.size), |d| {
                d.size_slug == size
            })
            .await?;
            self.droplet_action(&resource, id, &body::action("power_on"), |d| {
                d.status == "active"
            })
            .await?;
            droplet = self.droplet(&resource, id).await?;
        }
        let droplet = &droplet;
        let spec = self.droplet_spec(r)?;
        let have: HashSet<String> = droplet.tags.iter().map(|t| t.to_string()).collect();
        let numeric: u64 = id.parse().unwrap_or_default();
        let missing: Vec<String> = spec
            .tags
            .iter()
            .filter(|t| !have.contains(*t))
            .cloned()
            .collect();
        self.ensure_tags(&resource, &missing).await?;
        let prefix = format!("{}:", self.tag);
        let extra = have
            .iter()
            .filter(|t| t.starts_with(&prefix) && !spec.tags.contains(*t));
        let changes = missing
            .iter()
            .map(|t| (Method::POST, t))
            .chain(extra.map(|t| (Method::DELETE, t)));
        for (method, t) in changes {
            // Tagging is a set operation: safe to send again.
            let answer = self
                .client
                .send(
                    method,
                    &format!("/v2/tags/{t}/resources"),
                    Some(&body::tag_resources(&[numeric])),
                    Call::Idempotent,
                )
                .await
                .map_err(|f| api_error(&resource, f))?;
            if answer.status == 404 {
                return Err(api_error(
                    &resource,
                    Failure::Status {
                        status: 404,
                        message: format!("the tag `{t}` does not exist"),
                    },
                ));
            }
        }
        Ok(droplet_ready(droplet).unwrap_or_default())
    }
}
