//! The readiness poller: one listing of the deployment's droplets answers every droplet
//! waited for, whether to become active with a public address (after a create) or to be gone
//! (after a delete). It runs while anything waits, polling sooner while droplets change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value as Json, json};
use tokio::sync::oneshot;

use super::client::{self, Call};
use super::{Inner, api_error, unsupported};
use crate::api::{Outputs, ProviderError};

/// How long a droplet waited for may be missing from the listings before it counts as
/// nonexistent (the Terraform provider tolerates 404s for about as long after a create).
const UNSEEN_GRACE: Duration = Duration::from_secs(120);

/// Droplets waited for by the poller.
#[derive(Default)]
pub(super) struct Watch {
    ready: HashMap<u64, Vec<oneshot::Sender<Outputs>>>,
    /// When a droplet waited for was first missing from a listing: right after a create
    /// the API may not list it yet, so only a long absence means it does not exist.
    unseen: HashMap<u64, tokio::time::Instant>,
    gone: HashMap<u64, Vec<oneshot::Sender<()>>>,
    polling: bool,
}

/// `public_ip` and `private_ip` of an active droplet; `None` while it is pending.
pub(super) fn droplet_ready(droplet: &Json) -> Option<Outputs> {
    if droplet["status"] != "active" || droplet["locked"] == json!(true) {
        return None;
    }
    let mut outputs = Outputs::default();
    for net in droplet.pointer("/networks/v4")?.as_array()? {
        // Only an IP address is an address: anything else (`*`, a name, a line break) would
        // end up in known_hosts or an inventory, so the droplet does not count as ready.
        let ip = net["ip_address"].as_str()?.parse().ok()?;
        match net["type"].as_str()? {
            "public" => outputs.public_ip = Some(ip),
            "private" => outputs.private_ip = Some(ip),
            _ => {}
        }
    }
    outputs.public_ip?;
    if let Some(id) = droplet.get("id") {
        outputs.extra.insert("droplet_id".into(), id.clone());
    }
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
            let listed = self.list_droplets("node").await;
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
                            let _ = tx.send(outputs.clone());
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
                            let _ = tx.send(());
                        }
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
            Ok(Ok(outputs)) => Ok(outputs),
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
        tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| ProviderError::Timeout {
                resource,
                seconds: timeout.as_secs(),
                what: "the droplet is still listed after its delete".into(),
            })?
            .ok();
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
        let mut d = json!({"id": 7, "status": "new", "locked": false, "networks": {"v4": []}});
        assert!(droplet_ready(&d).is_none());
        d["status"] = json!("active");
        assert!(droplet_ready(&d).is_none(), "no public address yet");
        d["networks"]["v4"] = json!([
            {"ip_address": "10.10.0.2", "type": "private"},
            {"ip_address": "127.1.0.2", "type": "public"}
        ]);
        let o = droplet_ready(&d).unwrap();
        assert_eq!(o.public_ip, Some("127.1.0.2".parse().unwrap()));
        assert_eq!(o.private_ip, Some("10.10.0.2".parse().unwrap()));
        d["locked"] = json!(true);
        assert!(droplet_ready(&d).is_none());
        // An address that is not one (a wildcard, a line break) is never taken.
        d["locked"] = json!(false);
        for hostile in ["*", "127.1.0.2\nevil", "host.example"] {
            d["networks"]["v4"][1]["ip_address"] = json!(hostile);
            assert!(
                droplet_ready(&d).is_none(),
                "{hostile:?} taken as an address"
            );
        }
    }
}
