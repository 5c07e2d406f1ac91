//! The Hetzner Cloud provider: API v1 over HTTPS with a project's bearer token.
//!
//! | plan | Hetzner Cloud |
//! |---|---|
//! | `ssh_key.operator` | the operator's public key in the project, found by its MD5 fingerprint before uploading as `fitter-<deployment>` |
//! | `tag.deployment` | the spread placement group `fitter-<deployment>`: labels mark what is owned and need no object, so the deployment's one object of its own is the group that puts its quorum nodes (ZooKeeper) on different hosts |
//! | `network.<name>` | a network `fitter-<deployment>-<name>` whose range and one `cloud` subnet are the plan's subnet, in the network zone of the location |
//! | `firewall.<name>` | a firewall `fitter-<deployment>-<name>` applied by label selector to the servers labelled with it |
//! | `node.<name>` | a server named after the node, labelled with the deployment, its roles and its firewall |
//!
//! Everything fitter makes carries the label `fitter/deployment=<deployment>`; servers also
//! `fitter/firewall=<name>` and one `fitter/role-<role>` per role. Firewall rules name
//! addresses, not labels: traffic among the deployment's nodes is allowed by their network's
//! range.
//!
//! One create per server (the API has no batch form), all bounded by the client's bucket
//! (`client.rs`). Readiness is one listing of the deployment's servers by label selector for
//! every waiter ([`crate::poller`]); the actions of a firewall's removal are read many at a
//! time (`GET /actions?id=..&id=..`).
//!
//! Names are unique per project, which makes an ambiguous create safe to resolve: before a
//! create, and after one whose answer was lost, the server is looked up by name; one that
//! carries the deployment's label is adopted, one that does not is an error naming it. A
//! create sent again after a lost answer cannot make a duplicate: the API refuses the name
//! (409 `uniqueness_error`), and that answer leads to the same look-up.
//!
//! Teardown goes servers (deleted, then waited for until the listing no longer has them),
//! the placement group, firewalls (removed from their resources first), the network
//! (retried while members detach), then the key if fitter uploaded it (it carries the
//! label); `owned` sweeps whatever carries the deployment's label.
//!
//! `mod.rs` holds the [`Provider`] implementation and the helpers; `servers` the servers'
//! calls and their readiness, `resources` the key, placement group, network and firewalls,
//! `answer` the types every answer is read into, `catalogue` the static knowledge.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::api::{Outputs, Owned, Provider, ProviderError, Request};
use crate::poller::Watch;
use crate::{ProviderKind, ResourceKind};

pub mod answer;
pub mod catalogue;
pub mod client;
mod resources;
mod servers;

pub use catalogue::KIND;

use answer::{Firewall, Network, PlacementGroup, Server, SshKey};
use client::{Call, Client, Failure, Retries};

/// The public API, its version's path included, as the official tools have it.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";
/// The label on everything fitter makes, its value the deployment's name.
pub const DEPLOYMENT_LABEL: &str = "fitter/deployment";
/// The label on a server that names its firewall.
pub const FIREWALL_LABEL: &str = "fitter/firewall";

/// What the provider needs besides the deployment's name. Its `Debug` leaves the token out.
#[derive(Clone)]
pub struct Settings {
    pub endpoint: String,
    pub token: String,
    /// How long a server may take to be running with a public address.
    pub ready_timeout: Duration,
    /// The first poll for readiness comes this long after the first create.
    pub first_poll: Duration,
    pub retries: Retries,
}

impl Settings {
    /// From the environment: `HCLOUD_TOKEN` and `HCLOUD_ENDPOINT`, as the official CLI,
    /// hcloud-go and the Terraform provider read them. A plain `http://` endpoint is refused
    /// unless it points at this machine (a simulator) or `allow_insecure_http` says so.
    pub fn from_env(allow_insecure_http: bool) -> Result<Settings, String> {
        let token = std::env::var("HCLOUD_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or("no Hetzner Cloud token: set HCLOUD_TOKEN to an API token of the project")?;
        let endpoint = std::env::var("HCLOUD_ENDPOINT")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(format!(
                "HCLOUD_ENDPOINT `{endpoint}` is not an http(s) URL"
            ));
        }
        if !allow_insecure_http && !crate::http::secure_enough(&endpoint) {
            return Err(format!(
                "HCLOUD_ENDPOINT `{endpoint}` is plain http to another machine: the token \
                 would cross the network unencrypted; use https, or pass --allow-insecure-http"
            ));
        }
        Ok(Settings {
            endpoint,
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
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("ready_timeout", &self.ready_timeout)
            .field("first_poll", &self.first_poll)
            .field("retries", &self.retries)
            .finish()
    }
}

/// A label selector for a query: `fitter/deployment=<deployment>`, percent-encoded.
pub fn selector(deployment: &str) -> String {
    query_value(&format!("{DEPLOYMENT_LABEL}={deployment}"))
}

/// `value` percent-encoded for a query string: everything but letters, digits, `-`, `.`,
/// `_` and `~`.
pub fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The name of a network or firewall in the project: `fitter-<deployment>-<name>`.
pub fn cloud_name(deployment: &str, name: &str) -> String {
    format!("fitter-{deployment}-{name}")
}

pub struct Hetzner {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    deployment: String,
    /// `fitter/deployment=<deployment>`, as a query value.
    selector: String,
    settings: Settings,
    /// The deployment's servers as last listed, by id; `None` until first needed.
    servers: Mutex<Option<HashMap<u64, Server>>>,
    /// Held while the index is first listed.
    first_listing: Mutex<()>,
    /// Servers a create of this run has taken: each is adopted once only.
    claimed: Mutex<HashSet<u64>>,
    /// The operator key's id and the placement group's, once known.
    key_id: Mutex<Option<u64>>,
    placement_group: Mutex<Option<u64>>,
    watch: Mutex<Watch>,
}

impl Hetzner {
    pub fn new(deployment: &str, settings: Settings) -> Result<Hetzner, String> {
        let client = client::client(&settings.endpoint, &settings.token, settings.retries)?;
        Ok(Hetzner {
            inner: Arc::new(Inner {
                client,
                deployment: deployment.to_string(),
                selector: selector(deployment),
                settings,
                servers: Mutex::new(None),
                first_listing: Mutex::new(()),
                claimed: Mutex::new(HashSet::new()),
                key_id: Mutex::new(None),
                placement_group: Mutex::new(None),
                watch: Mutex::new(Watch::default()),
            }),
        })
    }

    /// One cheap call that says whether the token is accepted and the API answers, so that
    /// a wrong token or endpoint is one clear line before anything, not one error per
    /// resource.
    pub async fn check_access(&self) -> Result<(), ProviderError> {
        self.inner
            .client
            .send(Method::GET, "/locations?per_page=1", None, Call::Idempotent)
            .await
            .map(|_| ())
            .map_err(|f| api_error("the project's API access", f))
    }
}

fn api_error(resource: &str, failure: Failure) -> ProviderError {
    match failure {
        Failure::Malformed { message, .. } => ProviderError::Malformed {
            provider: KIND,
            resource: resource.to_string(),
            message,
        },
        Failure::Status { status, message } => ProviderError::Api {
            provider: KIND,
            resource: resource.to_string(),
            status,
            message: if status == 401 {
                format!("{message}; check HCLOUD_TOKEN")
            } else {
                message
            },
        },
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

/// A numeric id from the state, or an error naming the resource.
fn numeric(resource: &str, id: &str) -> Result<u64, ProviderError> {
    id.parse()
        .map_err(|_| unsupported(resource, format!("`{id}` is not a Hetzner id")))
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

    /// `path?label_selector=fitter/deployment=<deployment>`.
    fn owned_path(&self, path: &str) -> String {
        format!("{path}?label_selector={}", self.selector)
    }
}

#[async_trait]
impl Provider for Hetzner {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn predicted_id(&self, _request: &Request) -> Option<String> {
        None
    }

    async fn create(&self, request: &Request) -> Result<String, ProviderError> {
        let inner = &self.inner;
        let id = match request {
            Request::SshKey(r) => inner.create_ssh_key(r).await?,
            Request::Tag(_) => inner.create_placement_group(&request.address()).await?,
            Request::Network(r) => inner.create_network(r).await?,
            Request::Firewall(r) => inner.create_firewall(r).await?,
            Request::Node(r) => inner.create_server(r).await?,
        };
        Ok(id.to_string())
    }

    async fn wait_ready(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let mut outputs = Outputs::default();
        match request {
            Request::Node(_) => return self.inner.wait_server(&request.address(), id).await,
            Request::SshKey(r) => outputs.fingerprint = crate::http::md5_fingerprint(&r.public_key),
            Request::Network(_) | Request::Firewall(_) | Request::Tag(_) => {}
        }
        Ok(outputs)
    }

    async fn read(&self, kind: ResourceKind, id: &str) -> Result<Option<Outputs>, ProviderError> {
        let inner = &self.inner;
        let resource = format!("{} {id}", kind.name());
        let number = numeric(&resource, id)?;
        // Each kind is read into its type, so that a success that is not the resource (a
        // wrong endpoint's `{}`) is an error, not a resource that exists.
        let exists = match kind {
            ResourceKind::Node => return inner.read_server(&resource, number).await,
            ResourceKind::SshKey => inner
                .get::<SshKey>(&resource, &format!("/ssh_keys/{number}"), "ssh_key")
                .await?
                .is_some(),
            ResourceKind::Tag => inner
                .get::<PlacementGroup>(
                    &resource,
                    &format!("/placement_groups/{number}"),
                    "placement_group",
                )
                .await?
                .is_some(),
            ResourceKind::Network => inner
                .get::<Network>(&resource, &format!("/networks/{number}"), "network")
                .await?
                .is_some(),
            ResourceKind::Firewall => inner
                .get::<Firewall>(&resource, &format!("/firewalls/{number}"), "firewall")
                .await?
                .is_some(),
        };
        Ok(exists.then(Outputs::default))
    }

    async fn update(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let inner = &self.inner;
        let resource = request.address();
        let number = numeric(&resource, id)?;
        match request {
            Request::Firewall(r) => {
                inner.set_rules(&resource, number, r).await?;
                Ok(Outputs::default())
            }
            Request::Node(r) => inner.update_server(r, number).await,
            Request::Network(_) | Request::SshKey(_) | Request::Tag(_) => {
                self.wait_ready(request, id).await
            }
        }
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), ProviderError> {
        let inner = &self.inner;
        let resource = format!("{} {id}", kind.name());
        let number = numeric(&resource, id)?;
        match kind {
            ResourceKind::Node => inner.delete_server(&resource, number).await,
            ResourceKind::Tag => inner.delete_placement_group(&resource, number).await,
            ResourceKind::Firewall => inner.delete_firewall(&resource, number).await,
            ResourceKind::Network => inner.delete_network(&resource, number).await,
            ResourceKind::SshKey => inner.delete_ssh_key(&resource, number).await,
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
        if kind == ResourceKind::Node {
            return self.inner.delete_servers(ids).await;
        }
        crate::api::one_by_one(self, kind, ids).await
    }

    async fn owned(&self, deployment: &str) -> Result<Vec<Owned>, ProviderError> {
        let inner = &self.inner;
        let resource = format!("deployment {deployment}");
        let selector = selector(deployment);
        let path = |p: &str| format!("{p}?label_selector={selector}");
        let prefix = format!("fitter-{deployment}-");
        let mut owned = Vec::new();
        let servers: Vec<Server> = inner.list(&resource, &path("/servers"), "servers").await?;
        owned.extend(servers.into_iter().map(|s| Owned {
            kind: ResourceKind::Node,
            name: s.name.to_string(),
            id: s.id.to_string(),
        }));
        let groups: Vec<PlacementGroup> = inner
            .list(&resource, &path("/placement_groups"), "placement_groups")
            .await?;
        owned.extend(groups.into_iter().map(|g| Owned {
            kind: ResourceKind::Tag,
            name: "deployment".into(),
            id: g.id.to_string(),
        }));
        let firewalls: Vec<Firewall> = inner
            .list(&resource, &path("/firewalls"), "firewalls")
            .await?;
        owned.extend(firewalls.into_iter().map(|f| Owned {
            kind: ResourceKind::Firewall,
            name: f.name.strip_prefix(&prefix).unwrap_or(&f.name).to_string(),
            id: f.id.to_string(),
        }));
        let networks: Vec<Network> = inner
            .list(&resource, &path("/networks"), "networks")
            .await?;
        owned.extend(networks.into_iter().map(|n| Owned {
            kind: ResourceKind::Network,
            name: n.name.strip_prefix(&prefix).unwrap_or(&n.name).to_string(),
            id: n.id.to_string(),
        }));
        let keys: Vec<SshKey> = inner
            .list(&resource, &path("/ssh_keys"), "ssh_keys")
            .await?;
        owned.extend(keys.into_iter().map(|k| Owned {
            kind: ResourceKind::SshKey,
            name: "operator".into(),
            id: k.id.to_string(),
        }));
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug() {
        let settings = Settings {
            endpoint: DEFAULT_ENDPOINT.into(),
            token: "hcloud-very-secret".into(),
            ready_timeout: Duration::from_secs(1),
            first_poll: Duration::from_secs(1),
            retries: Retries::default(),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
