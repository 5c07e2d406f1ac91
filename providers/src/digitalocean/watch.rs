//! Waiting for droplets: the shared poller ([`crate::poller`]) over one listing of the
//! deployment's droplets by tag, and what makes a droplet ready.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::sync::Mutex;

use super::answer::Droplet;
use super::client::{self, Call, Failure};
use super::{Inner, api_error, unsupported};
use crate::api::{Outputs, ProviderError};
use crate::poller::{self, Listing, UNSEEN_GRACE, Waited, Watch};

/// `public_ip` and `private_ip` of an active, unlocked droplet with a public address; `None`
/// while it is pending. Its addresses are `IpAddr`s already: anything else (`*`, a name, a
/// line break) failed when the answer was parsed, naming the call.
pub(super) fn droplet_ready(droplet: &Droplet) -> Option<Outputs> {
    if droplet.status != "active" || droplet.locked {
        return None;
    }
    let mut outputs = Outputs::default();
    for net in &droplet.networks.v4 {
        match &*net.kind {
            "public" => outputs.public_ip = Some(net.ip_address),
            "private" => outputs.private_ip = Some(net.ip_address),
            _ => {}
        }
    }
    outputs.public_ip?;
    outputs.extra.insert("droplet_id".into(), json!(droplet.id));
    Some(outputs)
}

impl Listing for Inner {
    type Item = Droplet;

    fn watch(&self) -> &Mutex<Watch> {
        &self.watch
    }

    fn first_poll(&self) -> Duration {
        self.settings.first_poll
    }

    fn per_page(&self) -> usize {
        client::PER_PAGE
    }

    async fn list(&self) -> Result<HashMap<u64, Droplet>, Failure> {
        self.listed_droplets().await
    }

    fn ready(droplet: &Droplet) -> Option<Outputs> {
        droplet_ready(droplet)
    }
}

impl Inner {
    pub(super) async fn wait_droplet(
        self: &Arc<Self>,
        resource: &str,
        id: &str,
    ) -> Result<Outputs, ProviderError> {
        let numeric: u64 = id
            .parse()
            .map_err(|_| unsupported(resource, format!("`{id}` is not a droplet id")))?;
        // Already active in the index (an adopted droplet): no need to wait for a poll.
        if let Some(map) = self.droplets.lock().await.as_ref()
            && let Some(outputs) = map.get(&numeric).and_then(droplet_ready)
        {
            return Ok(outputs);
        }
        let timeout = self.settings.ready_timeout;
        match poller::ready(self, numeric, timeout).await {
            Waited::Done(outputs) => Ok(outputs),
            Waited::Failed(failure) => Err(api_error(resource, failure)),
            Waited::Unseen => Err(ProviderError::Timeout {
                resource: resource.to_string(),
                seconds: UNSEEN_GRACE.as_secs(),
                what: format!("droplet {id} is not listed: it does not exist"),
            }),
            Waited::TimedOut => Err(ProviderError::Timeout {
                resource: resource.to_string(),
                seconds: timeout.as_secs(),
                what: format!("droplet {id} is not active with a public address"),
            }),
        }
    }

    pub(super) async fn delete_droplet(self: &Arc<Self>, id: &str) -> Result<(), ProviderError> {
        let resource = format!("droplet {id}");
        let numeric: u64 = id
            .parse()
            .map_err(|_| unsupported(&resource, format!("`{id}` is not a droplet id")))?;
        self.client
            .send(
                Method::DELETE,
                &format!("/v2/droplets/{id}"),
                None,
                Call::Idempotent,
            )
            .await
            .map_err(|f| api_error(&resource, f))?;
        let timeout = self.settings.ready_timeout;
        match poller::gone(self, numeric, timeout).await {
            Waited::Done(()) | Waited::Unseen => {}
            Waited::Failed(failure) => return Err(api_error(&resource, failure)),
            Waited::TimedOut => {
                return Err(ProviderError::Timeout {
                    resource: resource.clone(),
                    seconds: timeout.as_secs(),
                    what: "the droplet is still listed after its delete".into(),
                });
            }
        }
        self.claimed.lock().await.remove(&numeric);
        if let Some(map) = self.droplets.lock().await.as_mut() {
            map.remove(&numeric);
        }
        Ok(())
    }
}

/// Droplets tagged in one call when only part of the deployment goes.
const TAG_CHUNK: usize = 100;

impl Inner {
    /// Deletes droplets in a few calls: they are tagged with a tag made for the deletion (a
    /// hundred a call) and deleted by it in one, then waited for until the listing no longer
    /// has them. Never by the deployment's own tag, even when all of it goes: a droplet the
    /// API does not list yet (it lists new droplets late) would go too, kept by the plan or
    /// not. A droplet of the batch that is not listed is deleted by its id. The deletion's
    /// tag is unique to the call, so a run killed between tagging and deleting leaves a tag
    /// no later deletion reuses; the deployment's teardown sweeps it (`fitter-<deployment>:*`).
    pub(super) async fn delete_droplets(
        self: &Arc<Self>,
        ids: &[String],
    ) -> Vec<Result<(), ProviderError>> {
        let resource = format!("{} droplets of {}", ids.len(), self.tag);
        let fail = |e: &ProviderError| {
            ids.iter()
                .map(|id| {
                    Err(unsupported(
                        &format!("droplet {id}"),
                        format!("deleted with {resource}, which failed: {e}"),
                    ))
                })
                .collect()
        };
        let mut numeric = Vec::with_capacity(ids.len());
        for id in ids {
            match id.parse::<u64>() {
                Ok(n) => numeric.push(n),
                Err(_) => {
                    return fail(&unsupported(
                        &resource,
                        format!("`{id}` is not a droplet id"),
                    ));
                }
            }
        }
        let listed = match self.listed_droplets().await {
            Ok(map) => map,
            Err(f) => return fail(&api_error(&resource, f)),
        };
        let (present, unlisted): (Vec<u64>, Vec<u64>) = numeric
            .iter()
            .copied()
            .partition(|n| listed.contains_key(n));
        if !present.is_empty() {
            let tag = format!("{}:delete-{:08x}", self.tag, rand::random::<u32>());
            if let Err(e) = self.tag_for_deletion(&resource, &tag, &present).await {
                return fail(&e);
            }
        }
        for n in &unlisted {
            // A 404 is an answer here: the droplet is gone already.
            if let Err(f) = self
                .client
                .send(
                    Method::DELETE,
                    &format!("/v2/droplets/{n}"),
                    None,
                    Call::Idempotent,
                )
                .await
            {
                return fail(&api_error(&format!("droplet {n}"), f));
            }
        }
        let timeout = self.settings.ready_timeout;
        let waits = numeric.iter().map(|&n| {
            let inner = Arc::clone(self);
            async move {
                match poller::gone(&inner, n, timeout).await {
                    Waited::Done(()) | Waited::Unseen => Ok(()),
                    Waited::Failed(failure) => Err(api_error(&format!("droplet {n}"), failure)),
                    Waited::TimedOut => Err(ProviderError::Timeout {
                        resource: format!("droplet {n}"),
                        seconds: timeout.as_secs(),
                        what: "the droplet is still listed after its delete".into(),
                    }),
                }
            }
        });
        let answers = futures::future::join_all(waits).await;
        let mut claimed = self.claimed.lock().await;
        let mut index = self.droplets.lock().await;
        for n in &numeric {
            claimed.remove(n);
            if let Some(map) = index.as_mut() {
                map.remove(n);
            }
        }
        answers
    }

    async fn delete_by_tag(&self, resource: &str, tag: &str) -> Result<(), ProviderError> {
        self.client
            .send(
                Method::DELETE,
                &format!("/v2/droplets?tag_name={tag}"),
                None,
                Call::Idempotent,
            )
            .await
            .map(|_| ())
            .map_err(|f| api_error(resource, f))
    }

    /// Tags the droplets with a tag of their own, deletes by it, then removes the tag.
    async fn tag_for_deletion(
        &self,
        resource: &str,
        tag: &str,
        ids: &[u64],
    ) -> Result<(), ProviderError> {
        self.ensure_tags(resource, &[tag.to_string()]).await?;
        for chunk in ids.chunks(TAG_CHUNK) {
            self.client
                .send(
                    Method::POST,
                    &format!("/v2/tags/{tag}/resources"),
                    Some(&super::body::tag_resources(chunk)),
                    Call::Idempotent,
                )
                .await
                .map_err(|f| api_error(resource, f))?;
        }
        self.delete_by_tag(resource, tag).await?;
        self.delete_simple(resource, &format!("/v2/tags/{tag}"))
            .await?;
        self.tags.lock().await.remove(tag);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_droplet_is_ready_when_active_unlocked_and_public() {
        let mut d = json!({
            "id": 7, "name": "agent1", "status": "new", "locked": false,
            "size_slug": "s-1vcpu-1gb", "networks": {"v4": []}, "tags": ["fitter-d"]
        });
        let droplet =
            |d: &serde_json::Value| -> Droplet { serde_json::from_value(d.clone()).unwrap() };
        assert!(droplet_ready(&droplet(&d)).is_none());
        d["status"] = json!("active");
        assert!(
            droplet_ready(&droplet(&d)).is_none(),
            "no public address yet"
        );
        d["networks"]["v4"] = json!([
            {"ip_address": "10.10.0.2", "type": "private"},
            {"ip_address": "127.1.0.2", "type": "public"}
        ]);
        let o = droplet_ready(&droplet(&d)).unwrap();
        assert_eq!(o.public_ip, Some("127.1.0.2".parse().unwrap()));
        assert_eq!(o.private_ip, Some("10.10.0.2".parse().unwrap()));
        assert_eq!(o.extra["droplet_id"], json!(7));
        d["locked"] = json!(true);
        assert!(droplet_ready(&droplet(&d)).is_none());
        // An address that is not one (`*`, a line break) never gets this far: the answer
        // does not parse (answer_tests.rs: hostile_addresses_do_not_parse), and the wait
        // ends with that error (below).
    }

    #[tokio::test]
    async fn a_listing_that_does_not_parse_ends_the_wait_with_its_error_not_a_timeout() {
        use super::super::{DigitalOcean, Settings};
        use crate::http::tests::server;
        let body = json!({
            "droplets": [{"id": 7, "name": "agent1", "status": "active", "locked": false,
                          "size_slug": "s-1vcpu-1gb", "tags": ["fitter-d"],
                          "networks": {"v4": [{"ip_address": "*", "type": "public"}]}}],
            "links": {}, "meta": {"total": 1}
        })
        .to_string();
        let (api, _) = server(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let settings = Settings {
            api_url: format!("http://{api}"),
            token: "t".into(),
            ready_timeout: Duration::from_secs(30),
            first_poll: Duration::from_millis(10),
            retries: client::Retries::default(),
        };
        let provider = DigitalOcean::new("d", settings).unwrap();
        let started = tokio::time::Instant::now();
        let error = provider
            .inner
            .wait_droplet("node.agent1", "7")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("GET /v2/droplets?tag_name=fitter-d&page=1&per_page=200: the answer's `droplets[0].networks.v4[0].ip_address` does not parse"),
            "{error}"
        );
        assert!(error.contains("`node.agent1`"), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for the timeout"
        );
    }
}
