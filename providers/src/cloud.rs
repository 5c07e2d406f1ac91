//! What fitter knows about one cloud, behind one interface: [`Cloud`].
//!
//! Each provider's folder has a `catalogue.rs` that implements it: the names the cloud
//! accepts (regions, sizes, images) and the defaults, the plan-time checks the loader runs,
//! and the abilities the later stages ask about (account resources, who assigns private
//! addresses, teardown order, what only the cloud can tell). Everything but
//! [`Cloud::connect`] is static knowledge, answered without credentials or network, so that
//! `fitter validate` and `fitter plan --no-refresh` work on an aeroplane.
//!
//! How calls are made (batching, rate limits, retries) is the live client's business,
//! [`Provider`], which [`Cloud::connect`] returns.
//!
//! The stages outside providers/ never name a cloud: they hold a
//! [`ProviderKind`](crate::ProviderKind) and ask its [`Cloud`] a question
//! (`kind.cloud().requires_network()`), so a new cloud changes no stage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use crate::api::{Provider, ProviderError};
use crate::{ResourceKind, did_you_mean};

/// One cloud fitter can deploy to: its catalogue, its plan-time checks, its abilities, and
/// how to connect a live client. Registered in [`crate::registry`].
///
/// The checks return the user-facing message, which the loader shows at the plan's position.
#[async_trait]
pub trait Cloud: Send + Sync {
    /// The name plans, `--provider` and state files use: `digitalocean`, `lxd`.
    fn name(&self) -> &'static str;

    // The catalogue.

    /// Size used when a node gives neither `size` nor `cpu`/`memory`.
    fn default_size(&self) -> &'static str;

    /// Image used when a node gives neither `image` nor `appliance`.
    fn default_image(&self) -> &'static str;

    /// The smallest size with at least `cpu` CPUs and `memory_gb` GB of memory, as plumbery's
    /// `cpu:`/`memory:` ask for; past the largest, an error that names it.
    fn size_for(&self, cpu: u32, memory_gb: u32) -> Result<&'static str, String>;

    /// When no size is as large as `cpu:`/`memory:` ask, the size that stands in for it and
    /// why (shown as a warning); `None` (the default): the plan is refused. Hetzner's largest
    /// type has 192 GB where plumbery's plans may ask 256: its largest stands in, said.
    fn size_stand_in(&self, _cpu: u32, _memory_gb: u32) -> Option<(&'static str, String)> {
        None
    }

    /// The image for a plumbery `appliance:` name such as `Ubuntu 24.04` or `Debian 12`;
    /// for a name of plumbery's time no cloud sells any more (`Ubuntu 14`), the image that
    /// stands in for it, with a note the loader shows as a warning.
    fn image_for_appliance(&self, appliance: &str) -> Result<Appliance, String>;

    // Plan-time checks.

    /// Whether a location, and a node that says so, is in a region of this cloud
    /// (`regionId`, else `locationId`). Without regions, a location name is informational.
    fn has_regions(&self) -> bool {
        false
    }

    /// Checks a region; asked only when [`Cloud::has_regions`].
    fn check_region(&self, _region: &str) -> Result<(), String> {
        Ok(())
    }

    /// For plumbery plans whose `locationId` is a Dimension Data data centre (`EU6`): the
    /// city it was in and this cloud's region nearest it; asked only when
    /// [`Cloud::has_regions`].
    fn region_for_location(&self, _location: &str) -> Option<(&'static str, &'static str)> {
        None
    }

    /// The region a location gets when `--provider` moved the plan to this cloud and its
    /// own `locationId` is no region here (`local`, another cloud's `nyc3`).
    fn default_region(&self) -> Option<&'static str> {
        None
    }

    /// Checks a size slug.
    fn check_size(&self, size: &str) -> Result<(), String>;

    /// Checks an image.
    fn check_image(&self, image: &str) -> Result<(), String>;

    /// Checks the name of a network.
    fn check_network_name(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    /// Whether every node needs its blueprint to have an `ethernet`.
    fn requires_network(&self) -> bool {
        false
    }

    /// The keys a location may give under this cloud's name (`lxd: {socket: ...}`); none
    /// when the cloud takes no settings from the plan.
    fn location_settings(&self) -> &'static [&'static str] {
        &[]
    }

    // Abilities.

    /// Whether nodes can have the cloud's monitoring agent (`monitoring:` in a plan).
    fn has_monitoring(&self) -> bool {
        false
    }

    /// Whether the deployment needs an uploaded SSH key and a tag as resources of their own.
    fn has_account_resources(&self) -> bool {
        false
    }

    /// Whether nodes are system containers, which need nesting to run containers of their
    /// own (Docker): LXD.
    fn nests_containers(&self) -> bool {
        false
    }

    /// What an in-place update of a `kind` whose `changed` attributes differ does to it
    /// beyond the change (`powered off to resize`), for the plan to say before it is done;
    /// `None`: nothing a running service would notice.
    fn update_disruption(&self, _kind: ResourceKind, _changed: &[&str]) -> Option<&'static str> {
        None
    }

    /// Whether fitter gives each node its private address (the cloud has no DHCP of its
    /// own), rather than the cloud.
    fn assigns_addresses(&self) -> bool {
        false
    }

    /// The order of teardown: resources of a higher rank are deleted first. By default the
    /// reverse of the creation order.
    fn teardown_rank(&self, kind: ResourceKind) -> u8 {
        kind.rank()
    }

    /// Attributes only known once the cloud has created the resource.
    fn computed_attributes(&self, kind: ResourceKind) -> &'static [&'static str] {
        match kind {
            ResourceKind::SshKey => &["fingerprint", "id"],
            ResourceKind::Tag => &[],
            ResourceKind::Network | ResourceKind::Firewall | ResourceKind::Node => &["id"],
        }
    }

    // The live client.

    /// A client for this cloud, with its settings (the plan's, the environment's) found and
    /// checked; the one method that may touch the network.
    async fn connect(
        &self,
        options: &ConnectOptions<'_>,
    ) -> Result<Arc<dyn Provider>, ConnectError>;
}

/// What [`Cloud::connect`] gets from the plan and the command line.
#[derive(Debug, Clone)]
pub struct ConnectOptions<'a> {
    /// The deployment's name, which marks everything it owns.
    pub deployment: &'a str,
    /// How long a created resource may take to become ready.
    pub ready_timeout: Duration,
    /// What the plan's locations give under the cloud's name, in the plan's order.
    pub settings: Vec<&'a BTreeMap<String, String>>,
    /// `--allow-insecure-http`: an `http://` API endpoint that is not on this machine is
    /// accepted (the token then crosses the network unencrypted).
    pub allow_insecure_http: bool,
}

impl ConnectOptions<'_> {
    /// The first value the plan gives for `key`.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find_map(|s| s.get(key))
            .map(String::as_str)
    }
}

/// Why a cloud's client could not be made. The message is whole, with what the operator
/// can do about it on a `= help:` line when the cloud knows; the CLI prints it after
/// `error: `.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// Something the client needs is missing or wrong: a token, a socket.
    #[error("{message}")]
    Setup { message: String },
    /// The cloud does not answer.
    #[error("{error}\n  = help: {help}")]
    Unreachable {
        error: ProviderError,
        /// What the operator can do about it.
        help: &'static str,
    },
}

/// "unknown size `x`; did you mean `y`?" with the closest known name, or the list.
pub(crate) fn unknown(what: &str, value: &str, known: &[&str]) -> String {
    match did_you_mean(value, known.iter().copied()) {
        Some(best) => format!("unknown {what} `{value}`; did you mean `{best}`?"),
        None if known.len() <= 10 => {
            format!(
                "unknown {what} `{value}`; expected one of: {}",
                known.join(", ")
            )
        }
        None => format!(
            "unknown {what} `{value}`; expected one such as {}, ...",
            known[..6].join(", ")
        ),
    }
}

/// A plumbery appliance name as the start of an image slug: `Ubuntu 24.04` → `ubuntu-24-04`.
/// The image an `appliance:` name stands for, and why, when it is not the name's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appliance {
    pub image: &'static str,
    /// Set when the image is a stand-in: said to the operator as a warning.
    pub note: Option<String>,
}

impl Appliance {
    pub fn exact(image: &'static str) -> Appliance {
        Appliance { image, note: None }
    }
}

pub(crate) fn appliance_slug(appliance: &str) -> String {
    appliance
        .trim()
        .to_ascii_lowercase()
        .split(|c: char| c.is_whitespace() || c == '.' || c == '-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
