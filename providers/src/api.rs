//! The provider boundary: one small async trait, with a request type per resource kind and
//! one error type that always names the resource it is about.
//!
//! The apply stage resolves everything a provider cannot know by itself before it calls:
//! addresses are assigned, firewall sources are given both as a tag (for clouds that filter by
//! tag) and as addresses (for those that filter by address), host keys are generated. A
//! provider only translates a request into its cloud's API calls.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use serde_json::Value as Json;
use thiserror::Error;

use crate::{ProviderKind, ResourceKind};

/// What a provider reports about a resource: addresses, fingerprints, its cloud name.
pub type Outputs = BTreeMap<String, Json>;

/// A private IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// The first usable address, which fitter gives the gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    pub deployment: String,
    pub name: String,
    pub subnet: Ipv4Net,
    pub region: Option<String>,
    /// Firewalls of the nodes on this network, for clouds that attach them to networks.
    pub firewalls: Vec<String>,
}

/// Where allowed traffic may come from, resolved for every kind of cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    Anywhere,
    Cidr(String),
    /// A set of the deployment's nodes: by tag where the cloud filters by tag, by address
    /// where it filters by address.
    Group {
        tag: String,
        addresses: Vec<Ipv4Addr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// A port range; `None` for every port (or for ICMP).
    pub ports: Option<(u16, u16)>,
    pub source: RuleSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub address: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRequest {
    pub deployment: String,
    pub name: String,
    /// The network the firewall's nodes are on.
    pub network: Option<String>,
    pub rules: Vec<FirewallRule>,
    /// The nodes it protects, and the tag they carry for it.
    pub members: Vec<Member>,
    pub member_tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRequest {
    pub deployment: String,
    pub name: String,
    pub size: String,
    pub image: String,
    pub region: Option<String>,
    pub network: Option<(String, Ipv4Net)>,
    /// The provider's id of that network, once it exists (a DigitalOcean VPC's uuid).
    pub network_id: Option<String>,
    /// The private address fitter assigned (LXD) or fixed (`glue: primary`).
    pub address: Option<Ipv4Addr>,
    /// The node's SSH host key, OpenSSH private key format: installed before first boot so
    /// that the first connection can already check it.
    pub host_key: String,
    /// Its public half, OpenSSH format.
    pub host_key_public: String,
    /// Public keys allowed to log in as root.
    pub authorized_keys: Vec<String>,
    pub tags: Vec<String>,
}

/// The operator's public key, uploaded to the cloud account (DigitalOcean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyRequest {
    pub deployment: String,
    /// `operator`, the plan's name for it.
    pub name: String,
    /// The name it gets in the account.
    pub key_name: String,
    /// OpenSSH format.
    pub public_key: String,
}

/// A tag that marks what a deployment owns (DigitalOcean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRequest {
    pub deployment: String,
    /// `deployment`, the plan's name for it.
    pub name: String,
    /// The tag itself, `fitter-<deployment>`.
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    SshKey(SshKeyRequest),
    Tag(TagRequest),
    Network(NetworkRequest),
    Firewall(FirewallRequest),
    Node(NodeRequest),
}

impl Request {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Request::SshKey(_) => ResourceKind::SshKey,
            Request::Tag(_) => ResourceKind::Tag,
            Request::Network(_) => ResourceKind::Network,
            Request::Firewall(_) => ResourceKind::Firewall,
            Request::Node(_) => ResourceKind::Node,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Request::SshKey(r) => &r.name,
            Request::Tag(r) => &r.name,
            Request::Network(r) => &r.name,
            Request::Firewall(r) => &r.name,
            Request::Node(r) => &r.name,
        }
    }

    /// `node.master1`, as in plans and state.
    pub fn address(&self) -> String {
        format!("{}.{}", self.kind(), self.name())
    }
}

/// A resource found in the cloud carrying the deployment's mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub kind: ResourceKind,
    pub name: String,
    pub id: String,
}

#[derive(Debug, Error)]
pub enum ProviderError {
    /// The cloud answered with an error.
    #[error("{provider} refused `{resource}`: {message} (HTTP {status})")]
    Api {
        provider: ProviderKind,
        resource: String,
        status: u16,
        message: String,
    },
    /// The cloud could not be reached.
    #[error("{provider} cannot be reached for `{resource}`: {message}")]
    Unreachable {
        provider: ProviderKind,
        resource: String,
        message: String,
    },
    /// A resource of that name exists and belongs to something else.
    #[error(
        "`{resource}` already exists in {provider} and does not belong to deployment `{deployment}` ({owner}); rename it in the plan or remove it"
    )]
    NotOwned {
        provider: ProviderKind,
        resource: String,
        deployment: String,
        owner: String,
    },
    #[error("`{resource}` was not ready after {seconds} s: {what}")]
    Timeout {
        resource: String,
        seconds: u64,
        what: String,
    },
    /// The provider cannot do what the plan asks.
    #[error("{provider} cannot handle `{resource}`: {message}")]
    Unsupported {
        provider: ProviderKind,
        resource: String,
        message: String,
    },
}

/// One cloud. Methods take the plan's view of a resource and return the cloud's.
#[async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// The id the resource will have, when the provider knows it before creating (LXD names
    /// its objects itself), so that the id is in the state before the create call.
    fn predicted_id(&self, request: &Request) -> Option<String>;

    /// Asks the cloud to create the resource and returns its id as soon as the cloud has
    /// accepted, before it is ready, so that the id is saved before anything else can fail.
    async fn create(&self, request: &Request) -> Result<String, ProviderError>;

    /// The batch a create may share one call with: creates with the same key, handed over
    /// together, go to [`Provider::create_batch`]. `None` (the default): one call each.
    ///
    /// Batching is an ability of the boundary, not a timer in the client: the apply stage
    /// hands over every create that became ready at the same time, so the same plan makes
    /// the same calls on a fast machine and on a slow one.
    fn batch_key(&self, _request: &Request) -> Option<String> {
        None
    }

    /// How many creates one batch call takes at most.
    fn batch_limit(&self) -> usize {
        1
    }

    /// Creates resources that share a [`Provider::batch_key`] (at most
    /// [`Provider::batch_limit`] of them) and answers each, in order. The default sends one
    /// create after the other.
    async fn create_batch(&self, requests: &[Request]) -> Vec<Result<String, ProviderError>> {
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            answers.push(self.create(request).await);
        }
        answers
    }

    /// Waits until a created resource is usable and returns what is known of it.
    async fn wait_ready(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError>;

    /// What the cloud says of a resource now; `None` when it is gone.
    async fn read(&self, kind: ResourceKind, id: &str) -> Result<Option<Outputs>, ProviderError>;

    /// Brings an existing resource in line with the request.
    async fn update(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError>;

    /// Deletes and waits until it is gone; a resource already gone is not an error.
    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), ProviderError>;

    /// Everything in the cloud marked as belonging to `deployment`, whatever the state says.
    async fn owned(&self, deployment: &str) -> Result<Vec<Owned>, ProviderError>;
}
