//! The readiness poller: one listing of the deployment's droplets answers every droplet
//! waited for, whether to become active with a public address (after a create) or to be gone
//! (after a delete). It runs while anything waits, polling sooner while droplets change.
//! A listing that did not come is polled again; one that does not parse ends every wait
//! with its error, since polling a hostile or broken answer again only hides it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::sync::oneshot;

use super::answer::Droplet;
use super::client::{self, Call, Failure};
use super::{Inner, api_error, unsupported};
use crate::api::{Outputs, ProviderError};

/// How long a droplet waited for may be missing from the listings before it counts as
/// nonexistent (the Terraform provider tolerates 404s for about as long after a create).
const UNSEEN_GRACE: Duration = Duration::from_secs(120);

/// What a waiter is told: its answer, or why the listing could not give one.
type Told<T> = oneshot::Sender<Result<T, Failure>>;

/// Droplets waited for by the poller.
#[derive(Default)]
pub(super) struct Watch {
    ready: HashMap<u64, Vec<Told<Outputs>>>,
    /// When a droplet waited for was first missing from a listing: right after a create
    /// the API may not list it yet, so only a long absence means it does not exist.
    unseen: HashMap<u64, tokio::time::Instant>,
    gone: HashMap<u64, Vec<Told<()>>>,
    polling: bool,
}

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

impl Inner {
    /// Registers a wait and makes sure the poller runs.
    async fn start_polling(self: &Arc<Self>) {
        let mut watch = self.watch.lock().await;
        if watch.polling {
            return;
        }
        watch.polling = true;
        let inner = Arc::clone(self);
        tokio::spawn(async move { inner.poll().await });
    }

    /// One list of the deployment's droplets answers every wait; polls come sooner while
    /// droplets keep changing and back off while nothing does.
    async fn poll(self: Arc<Self>) {
        let mut wait = self.settings.first_poll;
        let mut quiet = Duration::from_secs(1);
        loop {
            tokio::time::sleep(wait).await;
            let idle = {
                let mut watch = self.watch.lock().await;
                let idle = watch.ready.is_empty() && watch.gone.is_empty();
                if idle {
                    watch.polling = false;
                }
                idle
            };
            if idle {
                return;
            }
            let listed = self.listed_droplets().await;
            let mut progress = false;
            let mut pages = 1;
            match listed {
                Ok(map) => {
                    pages = map.len().div_ceil(client::PER_PAGE).max(1);
                    let mut watch = self.watch.lock().await;
                    let ready: Vec<(u64, Outputs)> = watch
                        .ready
                        .keys()
                        .filter_map(|id| Some((*id, droplet_ready(map.get(id)?)?)))
                        .collect();
                    for (id, outputs) in ready {
                        progress = true;
                        watch.unseen.remove(&id);
                        for tx in watch.ready.remove(&id).unwrap_or_default() {
                            let _ = tx.send(Ok(outputs.clone()));
                        }
                    }
                    // Missing too long: the waiters' channels close, which they report.
                    let now = tokio::time::Instant::now();
                    let waited: Vec<u64> = watch.ready.keys().copied().collect();
                    for id in waited {
                        if map.contains_key(&id) {
                            watch.unseen.remove(&id);
                            continue;
                        }
                        let since = *watch.unseen.entry(id).or_insert(now);
                        if now.duration_since(since) > UNSEEN_GRACE {
                            watch.unseen.remove(&id);
                            watch.ready.remove(&id);
                        }
                    }
                    let gone: Vec<u64> = watch
                        .gone
                        .keys()
                        .filter(|id| !map.contains_key(id))
                        .copied()
                        .collect();
                    for id in gone {
                        progress = true;
                        for tx in watch.gone.remove(&id).unwrap_or_default() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                Err(failure @ Failure::Malformed { .. }) => {
                    let mut watch = self.watch.lock().await;
                    watch.unseen.clear();
                    for tx in watch.ready.drain().flat_map(|(_, txs)| txs) {
                        let _ = tx.send(Err(failure.clone()));
                    }
                    for tx in watch.gone.drain().flat_map(|(_, txs)| txs) {
                        let _ = tx.send(Err(failure.clone()));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing droplets failed; will poll again"),
            }
            // While nothing changes, back off to a second per page of the listing (5 s for a
            // thousand droplets, 25 requests a minute), so the creates keep most of the
            // 250-a-minute budget; while droplets keep turning active, poll every half second.
            let cap = Duration::from_secs(pages as u64).max(Duration::from_secs(2));
            if progress {
                wait = Duration::from_millis(500);
                quiet = Duration::from_secs(1);
            } else {
                wait = quiet;
                quiet = quiet.mul_f64(1.5).min(cap);
            }
        }
    }

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
        let (tx, rx) = oneshot::channel();
        self.watch
            .lock()
            .await
            .ready
            .entry(numeric)
            .or_default()
            .push(tx);
        self.start_polling().await;
        let timeout = self.settings.ready_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(outputs))) => Ok(outputs),
            Ok(Ok(Err(failure))) => Err(api_error(resource, failure)),
            Ok(Err(_)) => Err(ProviderError::Timeout {
                resource: resource.to_string(),
                seconds: UNSEEN_GRACE.as_secs(),
                what: format!("droplet {id} is not listed: it does not exist"),
            }),
            Err(_) => Err(ProviderError::Timeout {
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
        let (tx, rx) = oneshot::channel();
        self.watch
            .lock()
            .await
            .gone
            .entry(numeric)
            .or_default()
            .push(tx);
        self.start_polling().await;
        let timeout = self.settings.ready_timeout;
        let told = tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| ProviderError::Timeout {
                resource: resource.clone(),
                seconds: timeout.as_secs(),
                what: "the droplet is still listed after its delete".into(),
            })?;
        if let Ok(Err(failure)) = told {
            return Err(api_error(&resource, failure));
        }
        self.claimed.lock().await.remove(&numeric);
        if let Some(map) = self.droplets.lock().await.as_mut() {
            map.remove(&numeric);
        }
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
        use super::super::client::tests::server;
        use super::super::{DigitalOcean, Settings};
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
