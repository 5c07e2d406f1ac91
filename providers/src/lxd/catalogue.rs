//! What fitter knows of LXD without calling it: one local image, sizes read as CPU and
//! memory limits, the checks a plan gets before anything is created, and how the daemon's
//! socket is found.
//!
//! LXD reads DigitalOcean's size slugs, so that one plan moves between the two unchanged.

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::Provider;
use crate::cloud::{Appliance, Cloud, ConnectError, ConnectOptions, appliance_slug};
use crate::digitalocean::catalogue::catalogue;
use crate::{ProviderKind, ResourceKind};

/// LXD, as plans and state files name it.
pub const KIND: ProviderKind = ProviderKind::new(&LxdCloud);

/// The alias under which `scripts/local-cloud.sh` imports the local node image.
pub const DEFAULT_IMAGE: &str = "fitter-debian-12";

/// LXD's REST API on its unix socket: a bridge network, network ACLs, system containers.
/// The local default: real nodes on this machine with no cloud account.
pub struct LxdCloud;

#[async_trait]
impl Cloud for LxdCloud {
    fn name(&self) -> &'static str {
        "lxd"
    }

    fn default_size(&self) -> &'static str {
        "s-1vcpu-1gb"
    }

    /// Debian 12, because the stack relies on Debian's `zookeeper` package.
    fn default_image(&self) -> &'static str {
        DEFAULT_IMAGE
    }

    /// DigitalOcean's sizes, whose slugs become container limits.
    fn size_for(&self, cpu: u32, memory_gb: u32) -> Result<&'static str, String> {
        catalogue().size_for(cpu, memory_gb)
    }

    /// One image, Debian 12: any other appliance runs as that, said as a warning (fitter's
    /// own templates target Debian; a plumbery plan's cloud-config for another
    /// distribution may need changes, which the warning says).
    fn image_for_appliance(&self, appliance: &str) -> Result<Appliance, String> {
        if "debian-12".starts_with(&appliance_slug(appliance)) {
            Ok(Appliance::exact(DEFAULT_IMAGE))
        } else {
            Ok(Appliance {
                image: DEFAULT_IMAGE,
                note: Some(format!(
                    "appliance `{appliance}` runs as Debian 12 (`{DEFAULT_IMAGE}`), the lxd provider's one image; packages and paths of its cloud-config may differ"
                )),
            })
        }
    }

    /// The slug becomes `limits.cpu` and `limits.memory`.
    fn check_size(&self, size: &str) -> Result<(), String> {
        match Limits::from_slug(size) {
            Some(_) => Ok(()),
            None => Err(format!(
                "size `{size}` does not name CPUs and memory; use a slug such as `s-2vcpu-4gb`"
            )),
        }
    }

    /// Images are local aliases, which cannot be checked without asking the daemon.
    fn check_image(&self, image: &str) -> Result<(), String> {
        if image.is_empty() {
            Err("image alias is empty".to_string())
        } else {
            Ok(())
        }
    }

    /// A container's only network is the bridge of its blueprint.
    fn requires_network(&self) -> bool {
        true
    }

    /// `lxd: {socket: /path/to/unix.socket}`.
    fn location_settings(&self) -> &'static [&'static str] {
        &["socket"]
    }

    /// The bridges have no DHCP: fitter gives each container its address.
    fn assigns_addresses(&self) -> bool {
        true
    }

    fn nests_containers(&self) -> bool {
        true
    }

    /// LXD applies `security.nesting` only at start: giving or taking it restarts the
    /// container.
    fn update_disruption(&self, kind: ResourceKind, changed: &[&str]) -> Option<&'static str> {
        (kind == ResourceKind::Node && changed.contains(&"nesting"))
            .then_some("the container restarts: LXD applies nesting only at start")
    }

    /// The containers go first, then the bridges, then the ACLs, which LXD refuses to delete
    /// while a bridge uses them: the reverse of the creation order, the default.
    fn teardown_rank(&self, kind: ResourceKind) -> u8 {
        kind.rank()
    }

    /// The plan's socket, else `LXD_SOCKET`, else where LXD usually is; the daemon must answer.
    async fn connect(
        &self,
        options: &ConnectOptions<'_>,
    ) -> Result<Arc<dyn Provider>, ConnectError> {
        let socket = super::find_socket(options.setting("socket")).ok_or_else(|| {
            ConnectError::Setup {
                message: "no LXD socket found (tried the plan's `lxd: {socket: ...}`, LXD_SOCKET, \
                          /var/lib/lxd, the snap and Incus); run scripts/local-cloud.sh to set LXD up"
                    .to_string(),
            }
        })?;
        super::ping(&socket)
            .await
            .map_err(|error| ConnectError::Unreachable {
                error,
                help: "is the LXD daemon running? scripts/local-cloud.sh starts it",
            })?;
        Ok(Arc::new(super::Lxd::new(&socket, options.deployment)))
    }
}

/// CPU and memory limits read from a size slug such as `s-2vcpu-4gb` or `s-1vcpu-512mb-10gb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub cpus: u32,
    pub memory_mb: u32,
}

impl Limits {
    pub fn from_slug(slug: &str) -> Option<Limits> {
        if let Some(size) = catalogue().size(slug) {
            return Some(Limits {
                cpus: size.vcpus,
                memory_mb: size.memory_mb,
            });
        }
        let mut cpus = None;
        let mut memory_mb = None;
        for part in slug.split('-') {
            if let Some(n) = part.strip_suffix("vcpu") {
                cpus = n.parse().ok();
            } else if memory_mb.is_none() {
                if let Some(n) = part.strip_suffix("gb") {
                    memory_mb = n.parse::<u32>().ok().and_then(|g| g.checked_mul(1024));
                } else if let Some(n) = part.strip_suffix("mb") {
                    memory_mb = n.parse().ok();
                }
            }
        }
        match (cpus, memory_mb) {
            (Some(cpus), Some(memory_mb)) if cpus > 0 && memory_mb > 0 => {
                Some(Limits { cpus, memory_mb })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_appliance_is_debian() {
        let p = KIND.cloud();
        assert_eq!(
            p.image_for_appliance("Debian"),
            Ok(Appliance::exact(DEFAULT_IMAGE))
        );
        let centos = p.image_for_appliance("CentOS 7").unwrap();
        assert_eq!(centos.image, DEFAULT_IMAGE);
        assert!(centos.note.unwrap().contains("CentOS 7"));
    }

    #[test]
    fn slugs_give_limits() {
        assert_eq!(
            Limits::from_slug("s-2vcpu-4gb"),
            Some(Limits {
                cpus: 2,
                memory_mb: 4096
            })
        );
        assert_eq!(
            Limits::from_slug("s-1vcpu-512mb-10gb"),
            Some(Limits {
                cpus: 1,
                memory_mb: 512
            })
        );
        assert_eq!(Limits::from_slug("4vcpu-3gb").map(|l| l.cpus), Some(4));
        assert_eq!(Limits::from_slug("huge"), None);
    }

    #[tokio::test]
    async fn a_socket_nobody_answers_on_says_what_to_do() {
        let plan = std::collections::BTreeMap::from([(
            "socket".to_string(),
            "/nonexistent/fitter.socket".to_string(),
        )]);
        let options = ConnectOptions {
            deployment: "test",
            ready_timeout: std::time::Duration::from_secs(1),
            settings: vec![&plan],
            allow_insecure_http: false,
        };
        let err = KIND.cloud().connect(&options).await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "lxd cannot be reached for `the LXD daemon`: /nonexistent/fitter.socket \
             (No such file or directory (os error 2))\n  \
             = help: is the LXD daemon running? scripts/local-cloud.sh starts it"
        );
    }

    #[test]
    fn bridge_names_are_short_stable_and_per_deployment() {
        let long = super::super::bridge_name("mesos-local", "a-network-name-far-over-fifteen");
        assert!(long.len() <= 15 && long.starts_with("ft-"), "{long}");
        assert_eq!(
            long,
            super::super::bridge_name("mesos-local", "a-network-name-far-over-fifteen")
        );
        assert_ne!(
            super::super::bridge_name("one", "mesos"),
            super::super::bridge_name("two", "mesos")
        );
    }

    #[test]
    fn teardown_goes_containers_bridges_then_acls() {
        let p = KIND.cloud();
        assert!(p.teardown_rank(ResourceKind::Node) > p.teardown_rank(ResourceKind::Network));
        assert!(p.teardown_rank(ResourceKind::Network) > p.teardown_rank(ResourceKind::Firewall));
    }
}
