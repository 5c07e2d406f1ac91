//! The DigitalOcean provider: API v2 over HTTPS with a bearer token.
//!
//! | plan | DigitalOcean |
//! |---|---|
//! | `ssh_key.operator` | the operator's public key in the account, found by its MD5 fingerprint before uploading |
//! | `tag.deployment` | the tag `fitter-<deployment>`, carried by every droplet |
//! | `network.<name>` | a VPC `fitter-<deployment>-<name>` with the plan's subnet as `ip_range` |
//! | `firewall.<name>` | a cloud firewall applied to the tag `fitter-<deployment>:fw:<name>` |
//! | `node.<name>` | a droplet named after the node, tagged with the deployment, its roles and its firewall |
//!
//! Droplets are created in batches of up to ten (`names`): the apply stage hands over every
//! create that became ready at the same time ([`Provider::create_batch`]), grouped by
//! [`Provider::batch_key`] (the same size, image, region, VPC and tags), and each group is
//! one call. No timer decides what shares a call, so one plan makes the same calls anywhere. Readiness is one list of
//! the deployment's droplets by tag for every waiting droplet, not one GET each: the first
//! poll a few seconds after the first create, then backing off, and sooner again while
//! droplets keep turning `active`. A droplet not yet listed, or `locked`, is pending.
//!
//! A create is never sent twice blindly. When a create's answer is lost (a 5xx, a timeout, a
//! cut connection), the provider lists what carries the deployment's tag (or, for VPCs and
//! firewalls, the names) and adopts what it finds; only what is not there is created again.
//! The same look-up runs before every droplet create, so a run that was killed after its
//! create call and before it saved the id adopts the droplet instead of making a second one.
//!
//! Teardown goes firewalls, droplets (deleted, then waited for until the listing no longer
//! has them), VPCs (403 and 409 retried while members detach), then the tags and the key.
//!
//! Every answer fitter reads is parsed into its type (`answer`) before anything is decided
//! from it: one that does not parse is an error naming the call and the field, never an
//! entry skipped or a resource taken as absent (docs/security.md).
//!
//! `mod.rs` holds the [`Provider`] implementation, the provider's state and the helpers every
//! resource uses; each resource's calls are in a module of its own: `droplets` (creates in
//! batches, adoption, the index of listed droplets), `watch` (the poller that answers every
//! wait for a droplet to be ready or gone), `update` (resizing and retagging a droplet),
//! `network` (VPCs), `firewalls`, and `keys` (the SSH key and the tags).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::Mutex;

use crate::api::{
    Described, NodeRequest, Outputs, Owned, Provider, ProviderError, Request, TagRequest,
};
use crate::{ProviderKind, ResourceKind};

pub mod answer;
pub mod body;
pub mod catalogue;
pub mod client;
mod droplets;
mod firewalls;
mod keys;
mod network;
mod update;
mod watch;

pub use catalogue::KIND;

use crate::poller::Watch;
use answer::{Droplet, Firewall, SshKey, Tag, Vpc};
use client::{Call, Client, Failure, Retries};
use watch::droplet_ready;

/// The public API.
pub const DEFAULT_API_URL: &str = "https://api.digitalocean.com";
/// Droplets per create call: the API's limit for `names`.
pub const BATCH: usize = 10;

/// What the provider needs besides the deployment's name. Its `Debug` leaves the token out.
#[derive(Clone)]
pub struct Settings {
    pub api_url: String,
    pub token: String,
    /// How long a droplet may take to become active with a public address.
    pub ready_timeout: Duration,
    /// The first poll for readiness comes this long after the first create.
    pub first_poll: Duration,
    pub retries: Retries,
}

impl Settings {
    /// From the environment: `DIGITALOCEAN_TOKEN` (or `DIGITALOCEAN_ACCESS_TOKEN`) and
    /// `DIGITALOCEAN_API_URL`. A plain `http://` URL is refused unless it points at this
    /// machine (a simulator) or `allow_insecure_http` says so: the token would cross the
    /// network unencrypted.
    pub fn from_env(allow_insecure_http: bool) -> Result<Settings, String> {
        let token = ["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.trim().is_empty()))
            .ok_or(
                "no DigitalOcean token: set DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN)",
            )?;
        let api_url = std::env::var("DIGITALOCEAN_API_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "DIGITALOCEAN_API_URL `{api_url}` is not an http(s) URL"
            ));
        }
        if !allow_insecure_http && !secure_enough(&api_url) {
            return Err(format!(
                "DIGITALOCEAN_API_URL `{api_url}` is plain http to another machine: the token \
                 would cross the network unencrypted; use https, or pass --allow-insecure-http"
            ));
        }
        Ok(Settings {
            api_url,
            token: token.trim().to_string(),
            ready_timeout: Duration::from_secs(600),
            first_poll: Duration::from_secs(3),
            retries: Retries::default(),
        })
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url)
            .field("token", &"<redacted>")
            .field("ready_timeout", &self.ready_timeout)
            .field("first_poll", &self.first_poll)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The name of a VPC or firewall in the account: `fitter-<deployment>-<name>`.
pub fn cloud_name(deployment: &str, name: &str) -> String {
    format!("fitter-{deployment}-{name}")
}

pub use crate::http::{md5_fingerprint, secure_enough};

pub struct DigitalOcean {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    deployment: String,
    /// `fitter-<deployment>`.
    tag: String,
    settings: Settings,
    /// The deployment's droplets as last listed, by id; `None` until first needed.
    droplets: Mutex<Option<HashMap<u64, Droplet>>>,
    /// Droplets a create of this run has taken: each is adopted once only.
    claimed: Mutex<HashSet<u64>>,
    /// Tags known to exist.
    tags: Mutex<HashSet<String>>,
    tag_creation: Mutex<()>,
    watch: Mutex<Watch>,
}

impl DigitalOcean {
    /// One cheap call that says whether the token is accepted, the API answers and the
    /// account may create anything, so that a wrong token or endpoint is one clear line
    /// before anything, not one 401 per resource.
    pub async fn check_access(&self) -> Result<(), ProviderError> {
        const WHAT: &str = "the account";
        let account = match self
            .inner
            .get::<answer::Account>(WHAT, "/v2/account", "account")
            .await
        {
            Ok(Some(account)) => account,
            Ok(None) => {
                return Err(ProviderError::Malformed {
                    provider: KIND,
                    resource: WHAT.to_string(),
                    message: "GET /v2/account answered 404: not a DigitalOcean API".into(),
                });
            }
            // A token scoped without `account:read` may not read the account: it is still
            // a token the API accepted (a wrong one is 401), so the run goes on.
            Err(ProviderError::Api { status: 403, .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if account.status.as_ref().and_then(|s| s.as_str()) == Some("locked") {
            return Err(ProviderError::Api {
                provider: KIND,
                resource: WHAT.to_string(),
                status: 403,
                message: "the account is locked (its reason is in the DigitalOcean console)".into(),
            });
        }
        Ok(())
    }

    pub fn new(deployment: &str, settings: Settings) -> Result<DigitalOcean, String> {
        let client = client::client(&settings.api_url, &settings.token, settings.retries)?;
        Ok(DigitalOcean {
            inner: Arc::new(Inner {
                client,
                deployment: deployment.to_string(),
                tag: format!("fitter-{deployment}"),
                settings,
                droplets: Mutex::new(None),
                claimed: Mutex::new(HashSet::new()),
                tags: Mutex::new(HashSet::new()),
                tag_creation: Mutex::new(()),
                watch: Mutex::new(Watch::default()),
            }),
        })
    }
}

fn api_error(resource: &str, failure: Failure) -> ProviderError {
    match failure {
        Failure::Malformed { message, .. } => ProviderError::Malformed {
            provider: KIND,
            resource: resource.to_string(),
            message,
        },
        Failure::Status { status, message } => {
            let message = if status == 401 {
                format!("{message}; check DIGITALOCEAN_TOKEN")
            } else {
                message
            };
            ProviderError::Api {
                provider: KIND,
                resource: resource.to_string(),
                status,
                message,
            }
        }
        Failure::Unreachable(message) | Failure::Ambiguous(message) => ProviderError::Unreachable {
            provider: KIND,
            resource: resource.to_string(),
            message,
        },
    }
}

fn unsupported(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Unsupported {
        provider: KIND,
        resource: resource.to_string(),
        message: message.into(),
    }
}

impl Inner {
    /// `key` of the answer to GET `path`, read as `T`; `None` when it is gone.
    async fn get<T: DeserializeOwned>(
        &self,
        resource: &str,
        path: &str,
        key: &str,
    ) -> Result<Option<T>, ProviderError> {
        self.client
            .get(path, key)
            .await
            .map_err(|f| api_error(resource, f))
    }

    /// Every item of a listing, read as `T`.
    async fn list<T: DeserializeOwned>(
        &self,
        resource: &str,
        path: &str,
        key: &str,
    ) -> Result<Vec<T>, ProviderError> {
        self.client
            .list_of(path, key)
            .await
            .map_err(|f| api_error(resource, f))
    }

    async fn delete_simple(&self, resource: &str, path: &str) -> Result<(), ProviderError> {
        self.client
            .send(Method::DELETE, path, None, Call::Idempotent)
            .await
            .map(|_| ())
            .map_err(|f| api_error(resource, f))
    }
}

#[async_trait]
impl Provider for DigitalOcean {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn predicted_id(&self, request: &Request) -> Option<String> {
        // A tag's id is its name; everything else gets its id from the API.
        match request {
            Request::Tag(r) => Some(r.tag.clone()),
            _ => None,
        }
    }

    async fn create(&self, request: &Request) -> Result<String, ProviderError> {
        let inner = &self.inner;
        match request {
            Request::SshKey(r) => inner.create_ssh_key(r).await,
            Request::Tag(TagRequest { tag, .. }) => {
                inner
                    .ensure_tags(&request.address(), std::slice::from_ref(tag))
                    .await?;
                Ok(tag.clone())
            }
            Request::Network(r) => inner.create_network(r).await,
            Request::Firewall(r) => inner.create_firewall(r).await,
            Request::Node(r) => inner
                .create_nodes(&[r])
                .await
                .pop()
                .unwrap_or_else(|| Err(unsupported(&request.address(), "no create answer"))),
        }
    }

    fn batch_key(&self, request: &Request) -> Option<String> {
        match request {
            Request::Node(r) => self
                .inner
                .droplet_spec(r)
                .ok()
                .map(|spec| format!("{spec:?}")),
            _ => None,
        }
    }

    fn batch_limit(&self) -> usize {
        BATCH
    }

    async fn create_batch(&self, requests: &[Request]) -> Vec<Result<String, ProviderError>> {
        let nodes: Vec<&NodeRequest> = requests
            .iter()
            .filter_map(|r| match r {
                Request::Node(n) => Some(n),
                _ => None,
            })
            .collect();
        if nodes.len() != requests.len() {
            // Only droplets batch; anything else is created one at a time.
            let mut answers = Vec::with_capacity(requests.len());
            for r in requests {
                answers.push(self.create(r).await);
            }
            return answers;
        }
        self.inner.create_nodes(&nodes).await
    }

    async fn wait_ready(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let mut outputs = Outputs::default();
        match request {
            Request::Node(_) => return self.inner.wait_droplet(&request.address(), id).await,
            Request::SshKey(r) => {
                outputs.fingerprint = md5_fingerprint(&r.public_key);
            }
            Request::Firewall(_) => {
                if let Some(digest) = self.inner.live_rules_digest(id).await? {
                    outputs
                        .extra
                        .insert(firewalls::RULES_DIGEST.into(), digest.into());
                }
            }
            Request::Network(_) | Request::Tag(_) => {}
        }
        Ok(outputs)
    }

    async fn describe(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<Described>, ProviderError> {
        if kind != ResourceKind::Node {
            return Ok(self.read(kind, id).await?.map(|outputs| Described {
                outputs,
                ..Described::default()
            }));
        }
        let resource = format!("droplet {id}");
        if id.parse::<u64>().is_err() {
            return Err(unsupported(
                &resource,
                format!("`{id}` is not a droplet id"),
            ));
        }
        let path = format!("/v2/droplets/{id}");
        let Some(d) = self
            .inner
            .get::<Droplet>(&resource, &path, "droplet")
            .await?
        else {
            return Ok(None);
        };
        let mut attributes = BTreeMap::new();
        attributes.insert("size".to_string(), json!(d.size_slug.to_string()));
        let slug = |s: &Option<answer::Slugged>| {
            s.as_ref()
                .and_then(|s| s.slug.as_ref())
                .map(|w| w.to_string())
        };
        if let Some(region) = slug(&d.region) {
            attributes.insert("region".to_string(), json!(region));
        }
        if let Some(image) = slug(&d.image) {
            attributes.insert("image".to_string(), json!(image));
        }
        Ok(Some(Described {
            name: Some(d.name.to_string()),
            attributes,
            outputs: droplet_ready(&d).unwrap_or_default(),
        }))
    }

    async fn drift(
        &self,
        kind: ResourceKind,
        id: &str,
        recorded: &Outputs,
    ) -> Result<Vec<String>, ProviderError> {
        match kind {
            ResourceKind::Firewall => self.inner.firewall_drift(id, recorded).await,
            _ => Ok(Vec::new()),
        }
    }

    async fn read(&self, kind: ResourceKind, id: &str) -> Result<Option<Outputs>, ProviderError> {
        let inner = &self.inner;
        // Each kind is read into its type, so that a success that is not the resource (a
        // wrong endpoint's `{}`) is an error, not a resource that exists.
        let exists = match kind {
            ResourceKind::Node => {
                let resource = format!("droplet {id}");
                if let Ok(numeric) = id.parse::<u64>()
                    && let Some(d) = inner.indexed(&resource, numeric).await?
                {
                    return Ok(Some(droplet_ready(&d).unwrap_or_default()));
                }
                let path = format!("/v2/droplets/{id}");
                let droplet: Option<Droplet> = inner.get(&resource, &path, "droplet").await?;
                return Ok(droplet.map(|d| droplet_ready(&d).unwrap_or_default()));
            }
            ResourceKind::SshKey => {
                let path = format!("/v2/account/keys/{id}");
                let key: Option<SshKey> = inner
                    .get(&format!("ssh key {id}"), &path, "ssh_key")
                    .await?;
                key.is_some()
            }
            ResourceKind::Tag => {
                let path = format!("/v2/tags/{id}");
                let tag: Option<Tag> = inner.get(&format!("tag {id}"), &path, "tag").await?;
                tag.is_some()
            }
            ResourceKind::Network => {
                let path = format!("/v2/vpcs/{id}");
                let vpc: Option<Vpc> = inner.get(&format!("VPC {id}"), &path, "vpc").await?;
                vpc.is_some()
            }
            ResourceKind::Firewall => {
                let path = format!("/v2/firewalls/{id}");
                let firewall: Option<Firewall> = inner
                    .get(&format!("firewall {id}"), &path, "firewall")
                    .await?;
                firewall.is_some()
            }
        };
        Ok(exists.then(Outputs::default))
    }

    async fn update(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let inner = &self.inner;
        let resource = request.address();
        match request {
            Request::Firewall(r) => {
                let (body, tags) = inner.firewall_body(r);
                inner.ensure_tags(&resource, &tags).await?;
                inner.put_firewall(&resource, id, &body).await?;
                let mut outputs = Outputs::default();
                if let Some(digest) = inner.live_rules_digest(id).await? {
                    outputs
                        .extra
                        .insert(firewalls::RULES_DIGEST.into(), digest.into());
                }
                Ok(outputs)
            }
            Request::Node(r) => inner.update_node(r, id).await,
            Request::Network(r) => {
                let body = body::vpc_update(
                    &cloud_name(&inner.deployment, &r.name),
                    &inner.description(),
                );
                inner
                    .client
                    .send(
                        Method::PUT,
                        &format!("/v2/vpcs/{id}"),
                        Some(&body),
                        Call::Idempotent,
                    )
                    .await
                    .map_err(|f| api_error(&resource, f))?;
                Ok(Outputs::default())
            }
            Request::SshKey(_) | Request::Tag(_) => self.wait_ready(request, id).await,
        }
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), ProviderError> {
        let inner = &self.inner;
        match kind {
            ResourceKind::Node => inner.delete_droplet(id).await,
            ResourceKind::Network => inner.delete_vpc(id).await,
            ResourceKind::Firewall => {
                inner
                    .delete_simple(&format!("firewall {id}"), &format!("/v2/firewalls/{id}"))
                    .await
            }
            ResourceKind::Tag => inner.delete_tags(id).await,
            ResourceKind::SshKey => inner.delete_ssh_key(id).await,
        }
    }

    fn deletes_together(&self, kind: ResourceKind) -> bool {
        kind == ResourceKind::Node
    }

    async fn delete_batch(
        &self,
        kind: ResourceKind,
        ids: &[String],
    ) -> Vec<Result<(), ProviderError>> {
        if kind != ResourceKind::Node {
            return crate::api::one_by_one(self, kind, ids).await;
        }
        self.inner.delete_droplets(ids).await
    }

    async fn owned(&self, deployment: &str) -> Result<Vec<Owned>, ProviderError> {
        let inner = &self.inner;
        let resource = format!("deployment {deployment}");
        let tag = format!("fitter-{deployment}");
        let prefix = format!("{}-", tag);
        let mut owned = Vec::new();
        let droplets: Vec<Droplet> = inner
            .list(
                &resource,
                &format!("/v2/droplets?tag_name={tag}"),
                "droplets",
            )
            .await?;
        for d in droplets {
            owned.push(Owned {
                kind: ResourceKind::Node,
                name: d.name.to_string(),
                id: d.id.to_string(),
            });
        }
        let member_prefix = format!("{tag}:");
        let firewalls: Vec<Firewall> = inner.list(&resource, "/v2/firewalls", "firewalls").await?;
        for fw in firewalls {
            let ours = fw
                .tags
                .iter()
                .flatten()
                .any(|t| t.starts_with(&member_prefix));
            if ours {
                let name = fw.name.strip_prefix(&prefix).unwrap_or(&fw.name);
                owned.push(Owned {
                    kind: ResourceKind::Firewall,
                    name: name.to_string(),
                    id: fw.id.to_string(),
                });
            }
        }
        let description = format!("fitter deployment {deployment}");
        let vpcs: Vec<Vpc> = inner.list(&resource, "/v2/vpcs", "vpcs").await?;
        for vpc in vpcs {
            if vpc.description.as_deref() == Some(description.as_str()) {
                let name = vpc.name.strip_prefix(&prefix).unwrap_or(&vpc.name);
                owned.push(Owned {
                    kind: ResourceKind::Network,
                    name: name.to_string(),
                    id: vpc.id.to_string(),
                });
            }
        }
        let deployment_tag: Option<Tag> = inner
            .get(&resource, &format!("/v2/tags/{tag}"), "tag")
            .await?;
        if deployment_tag.is_some() {
            owned.push(Owned {
                kind: ResourceKind::Tag,
                name: "deployment".into(),
                id: tag.clone(),
            });
        }
        // One call of the ten a minute that listing keys allows.
        let keys: Vec<SshKey> = inner
            .list(&resource, "/v2/account/keys", "ssh_keys")
            .await?;
        for key in keys {
            if key.name == tag.as_str() {
                owned.push(Owned {
                    kind: ResourceKind::SshKey,
                    name: "operator".into(),
                    id: key.id.to_string(),
                });
            }
        }
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine_and_the_token_never_in_debug() {
        for ok in [
            "https://api.digitalocean.com",
            "http://127.0.0.1:4010",
            "http://127.1.2.3/v2",
            "http://localhost:4010",
            "http://[::1]:4010",
        ] {
            assert!(secure_enough(ok), "{ok}");
        }
        for bad in [
            "http://api.digitalocean.com",
            "http://10.0.0.5:4010",
            "http://127.0.0.1.evil.example",
            // userinfo before the host: reqwest sends to `evil.example`.
            "http://localhost:80@evil.example/v2",
            "http://[::1]@evil.example/",
            "not a url",
            "http://[2001:db8::1]:80",
        ] {
            assert!(!secure_enough(bad), "{bad}");
        }
        let settings = Settings {
            api_url: "https://api.digitalocean.com".into(),
            token: "dop_v1_very_secret".into(),
            ready_timeout: Duration::from_secs(1),
            first_poll: Duration::from_secs(1),
            retries: Retries::default(),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("very_secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn fingerprints_are_md5_of_the_key_blob() {
        // What `ssh-keygen -l -E md5` printed for this key.
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICx73qsoahGpr3PKmDxdnFg3Alkxms8z4aoVJI0U0TEE test";
        assert_eq!(
            md5_fingerprint(key).unwrap(),
            "56:a0:fe:79:7b:ea:46:33:1a:ad:d9:ad:e2:90:fd:9e"
        );
        assert!(md5_fingerprint("not a key").is_none());
    }
}
