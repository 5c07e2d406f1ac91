//! The LXD provider: LXD's REST API on its unix socket, never the `lxc` command.
//!
//! - `ethernet` → a bridge network with the plan's subnet, the gateway on `.1`, no DHCP (the
//!   provider assigns each node its address), no NAT, no IPv6.
//! - a firewall → a network ACL on that bridge whose rules name the protected nodes'
//!   addresses as destinations; the bridge's default for anything not allowed is `reject`.
//! - a node → a system container from the local image, attached to the bridge with its
//!   assigned address; before its first boot, its SSH host key, the authorized keys, a static
//!   network configuration, a fresh machine id and its host name are pushed through the
//!   files API.
//!
//! Every object carries `user.fitter.deployment` (and `user.fitter.name`) in its config, so
//! that dispose finds it without a state file and nothing of another deployment is touched.
//! Instances are named `<deployment>-<node>` so that two deployments on one host never meet.
//!
//! What fitter knows of LXD without asking the daemon (the image, sizes as limits, the
//! plan-time checks, how the socket is found) is in `catalogue.rs`.
//!
//! `mod.rs` holds the [`Provider`] implementation, the [`Lxd`] struct and the names and
//! ownership keys every object shares; `client` speaks HTTP on the socket (and waits for
//! operations), `network` makes the bridges, `acl` the firewalls, and `container` the nodes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper::{Method, StatusCode};
use serde_json::{Value as Json, json};

use crate::api::{Outputs, Owned, Provider, ProviderError, Request};
use crate::wait::{Poll, poll_until};
use crate::{ProviderKind, ResourceKind};

mod acl;
pub mod catalogue;
mod client;
mod container;
mod network;

pub use catalogue::{KIND, Limits};

const OWNER_KEY: &str = "user.fitter.deployment";
const NAME_KEY: &str = "user.fitter.name";
/// The profile `scripts/local-cloud.sh` creates: a root disk on the `fitter` pool, no nic.
const PROFILE: &str = "fitter";

/// Where LXD's socket usually is: Debian's package, the snap, Incus.
pub const SOCKET_CANDIDATES: &[&str] = &[
    "/var/lib/lxd/unix.socket",
    "/var/snap/lxd/common/lxd/unix.socket",
    "/var/lib/incus/unix.socket",
];

/// The socket to use: the plan's, else `LXD_SOCKET`, else the first candidate that exists.
pub fn find_socket(from_plan: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = from_plan {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("LXD_SOCKET") {
        return Some(PathBuf::from(p));
    }
    SOCKET_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The instance name of a node: `<deployment>-<node>`.
pub fn instance_name(deployment: &str, node: &str) -> String {
    format!("{deployment}-{node}")
}

/// The bridge of a plan network: LXD names bridges after network interfaces, at most 15
/// characters, and one LXD serves every deployment on the machine, so the plan's name
/// (plumbery's are often longer, and `mesos` is in many plans) cannot be it. `ft-` and 12
/// hex digits of the MD5 of `<deployment>/<network>`: short, stable across runs, unique per
/// deployment; the bridge's description names both.
pub fn bridge_name(deployment: &str, network: &str) -> String {
    use md5::Digest as _;
    let digest = md5::Md5::digest(format!("{deployment}/{network}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("ft-{}", &hex[..12])
}

/// The ACL name of a firewall.
pub fn acl_name(deployment: &str, firewall: &str) -> String {
    format!("fitter-{deployment}-{firewall}")
}

pub struct Lxd {
    socket: PathBuf,
    deployment: String,
    /// `security.acls` is one value on the network: changing it is read-modify-write, so
    /// firewalls attach one at a time (concurrent writes lost one ACL and left the bridge
    /// unfiltered).
    network_config: tokio::sync::Mutex<()>,
}

impl Lxd {
    pub fn new(socket: &Path, deployment: &str) -> Lxd {
        Lxd {
            socket: socket.to_path_buf(),
            deployment: deployment.to_string(),
            network_config: tokio::sync::Mutex::new(()),
        }
    }

    fn owner_config(&self, name: &str) -> serde_json::Map<String, Json> {
        let mut config = serde_json::Map::new();
        config.insert(OWNER_KEY.into(), json!(self.deployment));
        config.insert(NAME_KEY.into(), json!(name));
        config
    }
}

impl Lxd {
    /// LXD has no account: keys are pushed as files, ownership is a config key.
    fn no_account_resources(&self, request: &Request) -> ProviderError {
        ProviderError::Unsupported {
            provider: KIND,
            resource: request.address(),
            message: "lxd has no account to hold keys or tags".into(),
        }
    }
}

#[async_trait]
impl Provider for Lxd {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn predicted_id(&self, request: &Request) -> Option<String> {
        Some(match request {
            Request::Network(r) => r.name.clone(),
            Request::Firewall(r) => acl_name(&self.deployment, &r.name),
            Request::Node(r) => instance_name(&self.deployment, &r.name),
            Request::SshKey(_) | Request::Tag(_) => return None,
        })
    }

    async fn create(&self, request: &Request) -> Result<String, ProviderError> {
        match request {
            Request::Network(r) => self.create_network(r).await,
            Request::Firewall(r) => self.create_firewall(r).await,
            Request::Node(r) => self.create_node(r).await,
            Request::SshKey(_) | Request::Tag(_) => Err(self.no_account_resources(request)),
        }
    }

    async fn wait_ready(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let mut outputs = Outputs::default();
        outputs.extra.insert("lxd_name".into(), json!(id));
        if let Request::Node(r) = request {
            let resource = request.address();
            poll_until(
                &resource,
                Duration::from_secs(120),
                Duration::from_millis(250),
                || async {
                    Ok(
                        match self.instance_status(&resource, id).await?.as_deref() {
                            Some("Running") => Poll::Ready(()),
                            _ => Poll::Pending("the container is not running".into()),
                        },
                    )
                },
            )
            .await?;
            if let Some(address) = r.address {
                outputs.private_ip = Some(address.into());
            }
        }
        Ok(outputs)
    }

    async fn read(&self, kind: ResourceKind, id: &str) -> Result<Option<Outputs>, ProviderError> {
        let (resource, path) = match kind {
            ResourceKind::Network => (format!("network.{id}"), format!("/1.0/networks/{id}")),
            ResourceKind::Firewall => (format!("firewall.{id}"), format!("/1.0/network-acls/{id}")),
            ResourceKind::Node => (format!("node.{id}"), format!("/1.0/instances/{id}")),
            ResourceKind::SshKey | ResourceKind::Tag => return Ok(Some(Outputs::default())),
        };
        Ok(self.get_owned(&resource, &path).await?.map(|meta| {
            let mut outputs = Outputs::default();
            outputs
                .extra
                .insert("lxd_name".into(), meta["name"].clone());
            outputs
        }))
    }

    async fn update(&self, request: &Request, id: &str) -> Result<Outputs, ProviderError> {
        let resource = request.address();
        match request {
            Request::Firewall(r) => {
                let answer = self
                    .json(
                        &resource,
                        Method::PUT,
                        &format!("/1.0/network-acls/{id}"),
                        Some(self.acl_body(r)),
                    )
                    .await?;
                self.expect_ok(&resource, answer).await?;
            }
            Request::Node(r) => self.update_node(&resource, r, id).await?,
            Request::Network(r) => self.set_network_acls(r).await?,
            Request::SshKey(_) | Request::Tag(_) => return Err(self.no_account_resources(request)),
        }
        self.wait_ready(request, id).await
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), ProviderError> {
        match kind {
            ResourceKind::Node => {
                let resource = format!("node.{id}");
                let path = format!("/1.0/instances/{id}");
                // First: an instance whose create is still under way may not read as one yet.
                self.settle(&resource, id).await?;
                if self.get_owned(&resource, &path).await?.is_none() {
                    return Ok(());
                }
                if self.instance_status(&resource, id).await?.as_deref() == Some("Running") {
                    let body = json!({"action": "stop", "force": true, "timeout": 30});
                    let answer = self
                        .json(&resource, Method::PUT, &format!("{path}/state"), Some(body))
                        .await?;
                    self.expect_ok(&resource, answer).await?;
                }
                let answer = self.json(&resource, Method::DELETE, &path, None).await?;
                if answer.status != StatusCode::NOT_FOUND {
                    self.expect_ok(&resource, answer).await?;
                }
            }
            ResourceKind::Firewall => {
                let resource = format!("firewall.{id}");
                let path = format!("/1.0/network-acls/{id}");
                let Some(meta) = self.get_owned(&resource, &path).await? else {
                    return Ok(());
                };
                // In a dispose the network is already gone and the ACL goes at once. Only an
                // ACL still attached to a network that stays is detached first. LXD 5.0 may
                // also refuse for a moment right after a network is deleted (it tries to
                // restart the deleted bridge's dnsmasq): that passes, so try again.
                let mut last = None;
                for _ in 0..20 {
                    let answer = {
                        let _one_at_a_time = self.network_config.lock().await;
                        self.json(&resource, Method::DELETE, &path, None).await?
                    };
                    if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
                        return Ok(());
                    }
                    if answer.error().contains("in use") {
                        for user in meta["used_by"].as_array().into_iter().flatten() {
                            if let Some(network) =
                                user.as_str().and_then(|u| u.strip_prefix("/1.0/networks/"))
                            {
                                let network = network.split('?').next().unwrap_or(network);
                                self.detach_acl(&resource, network, id).await?;
                            }
                        }
                    }
                    last = Some(answer);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if let Some(answer) = last {
                    return Err(self.refused(&resource, &answer));
                }
            }
            ResourceKind::Network => {
                let resource = format!("network.{id}");
                let path = format!("/1.0/networks/{id}");
                // Wait until no instance uses the network before asking to delete it: a
                // DELETE refused as "in use" left LXD 5.0 with a stray dnsmasq and firewall
                // chains once the network was finally deleted.
                let exists = poll_until(
                    &resource,
                    Duration::from_secs(60),
                    Duration::from_millis(250),
                    || async {
                        let Some(meta) = self.get_owned(&resource, &path).await? else {
                            return Ok(Poll::Ready(false));
                        };
                        let in_use = meta["used_by"].as_array().is_some_and(|u| !u.is_empty());
                        Ok(if in_use {
                            Poll::Pending(format!("still used by {}", meta["used_by"]))
                        } else {
                            Poll::Ready(true)
                        })
                    },
                )
                .await?;
                if !exists {
                    return Ok(());
                }
                let answer = self.json(&resource, Method::DELETE, &path, None).await?;
                if answer.status != StatusCode::NOT_FOUND {
                    self.expect_ok(&resource, answer).await?;
                }
                // LXD answers before the bridge and its dnsmasq are gone; touching the ACLs
                // meanwhile made it restart that dnsmasq and leave it behind. Done means the
                // name is unknown even as a bare interface.
                // After 30 s the bridge is left to LXD: the delete itself was accepted.
                let gone = poll_until(
                    &resource,
                    Duration::from_secs(30),
                    Duration::from_millis(100),
                    || async {
                        let answer = self.json(&resource, Method::GET, &path, None).await?;
                        Ok(if answer.status == StatusCode::NOT_FOUND {
                            Poll::Ready(())
                        } else {
                            Poll::Pending("the bridge is still there".into())
                        })
                    },
                )
                .await;
                match gone {
                    Err(ProviderError::Timeout { .. }) | Ok(()) => {}
                    Err(e) => return Err(e),
                }
            }
            ResourceKind::SshKey | ResourceKind::Tag => {}
        }
        Ok(())
    }

    async fn owned(&self, deployment: &str) -> Result<Vec<Owned>, ProviderError> {
        let mut out = Vec::new();
        for (what, kind) in [
            ("instances", ResourceKind::Node),
            ("network-acls", ResourceKind::Firewall),
            ("networks", ResourceKind::Network),
        ] {
            for item in self.list(what).await? {
                if item["config"][OWNER_KEY].as_str() == Some(deployment) {
                    out.push(Owned {
                        kind,
                        name: item["config"][NAME_KEY].as_str().unwrap_or("").to_string(),
                        id: item["name"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Whether the LXD daemon answers on `socket`.
pub async fn ping(socket: &Path) -> Result<(), ProviderError> {
    let lxd = Lxd::new(socket, "");
    let answer = lxd
        .json("the LXD daemon", Method::GET, "/1.0", None)
        .await?;
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(lxd.refused("the LXD daemon", &answer))
    }
}
