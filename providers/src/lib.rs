//! fitter's provider boundary: which clouds fitter knows, what their resources are called,
//! which values they accept offline, and which attribute changes force a replacement.
//!
//! Each cloud has one home, its folder (`digitalocean/`, `lxd/`): the API client, and a
//! `catalogue.rs` that implements [`Cloud`], the one interface through which the rest of
//! fitter asks about a cloud (its regions, sizes and images, the plan-time checks, its
//! abilities, how to connect). [`registry`] lists them; adding a cloud is a new folder and
//! one line there.
//!
//! A cloud is identified by a [`ProviderKind`]: a small `Copy` handle on its [`Cloud`],
//! compared, ordered and hashed by name, written in plans and state files as that name
//! (`"lxd"`, `"digitalocean"`). It is not an enum, so that a new cloud needs no new variant
//! and no `match` to extend; and it holds its cloud rather than looking the name up, so that
//! [`ProviderKind::cloud`] cannot fail. Only the registry turns a name into one, and it
//! rejects names it does not know, in plans and in state files alike.
//!
//! Everything but [`Cloud::connect`] is static knowledge, usable without credentials or
//! network: `fitter plan` against an empty state must work on an aeroplane.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod api;
pub mod catalogue;
pub(crate) mod checked;
pub mod cloud;
pub mod digitalocean;
pub mod hetzner;
pub mod http;
pub mod lxd;
pub mod poller;
pub mod registry;
pub mod wait;

pub use cloud::{Cloud, ConnectError, ConnectOptions};

/// A cloud fitter can deploy to, as plans and state files name it.
#[derive(Clone, Copy)]
pub struct ProviderKind(&'static dyn Cloud);

impl ProviderKind {
    /// The handle of a cloud; each cloud's catalogue makes its own, the registry lists them.
    pub(crate) const fn new(cloud: &'static dyn Cloud) -> ProviderKind {
        ProviderKind(cloud)
    }

    /// What fitter knows about this cloud, and how to connect to it.
    pub fn cloud(self) -> &'static dyn Cloud {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl PartialEq for ProviderKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ProviderKind {}

impl PartialOrd for ProviderKind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ProviderKind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name().cmp(other.name())
    }
}

impl Hash for ProviderKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProviderKind").field(&self.name()).finish()
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for ProviderKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than a `String` first, so that an unknown name is reported where
        // it stands in the file.
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = ProviderKind;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a provider name ({})", registry::names().join(", "))
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ProviderKind, E> {
                registry::lookup(name).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// The kinds of resource a deployment owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// The operator's public key, uploaded to the account (DigitalOcean).
    SshKey,
    /// The deployment tag every owned resource carries (DigitalOcean).
    Tag,
    /// A VPC (DigitalOcean) or a bridge network (LXD).
    Network,
    /// A cloud firewall (DigitalOcean) or a network ACL (LXD).
    Firewall,
    /// A droplet (DigitalOcean) or a system container (LXD).
    Node,
}

impl ResourceKind {
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::SshKey => "ssh_key",
            ResourceKind::Tag => "tag",
            ResourceKind::Network => "network",
            ResourceKind::Firewall => "firewall",
            ResourceKind::Node => "node",
        }
    }

    /// Creation rank: a kind is created after every kind of lower rank and destroyed before.
    pub fn rank(self) -> u8 {
        match self {
            ResourceKind::SshKey => 0,
            ResourceKind::Tag => 1,
            ResourceKind::Firewall => 2,
            ResourceKind::Network => 3,
            ResourceKind::Node => 4,
        }
    }

    /// The order of teardown on `provider`: resources of a higher rank are deleted first.
    pub fn teardown_rank(self, provider: ProviderKind) -> u8 {
        provider.cloud().teardown_rank(self)
    }

    /// Whether a change of `attribute` can only be made by destroying and creating again.
    /// Everything not listed is updated in place (a droplet resize, a firewall's rules, a
    /// node's roles, which only change what bootstrap renders).
    pub fn replaces_on_change(self, attribute: &str) -> bool {
        match self {
            ResourceKind::SshKey => matches!(attribute, "public_key"),
            ResourceKind::Tag => matches!(attribute, "name"),
            ResourceKind::Network => matches!(attribute, "provider" | "region" | "subnet"),
            ResourceKind::Firewall => matches!(attribute, "provider"),
            ResourceKind::Node => matches!(
                attribute,
                "provider" | "region" | "image" | "network" | "private_ip" | "name"
            ),
        }
    }

    /// Attributes only known once `provider` has created the resource.
    pub fn computed_attributes(self, provider: ProviderKind) -> &'static [&'static str] {
        provider.cloud().computed_attributes(self)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The candidate closest to `value`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    value: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(value, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
