//! What fitter knows of Hetzner Cloud without calling it: locations, server types, images,
//! defaults, the checks a plan gets before anything is created, and how its client is made.
//!
//! The catalogue itself is data, `catalogue.yaml` beside this file. A plan written for
//! DigitalOcean moves here unchanged: its size slugs (`s-2vcpu-4gb`) stand for the smallest
//! Hetzner type with as many CPUs and as much memory ([`server_type`]), its image slugs
//! (`debian-12-x64`) for the same release ([`image`]). The plan keeps its own words; the
//! provider translates them when it talks to the API.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::api::Provider;
use crate::catalogue::Catalogue;
use crate::cloud::{Appliance, Cloud, ConnectError, ConnectOptions, appliance_slug, unknown};
use crate::{ProviderKind, ResourceKind};

/// Hetzner Cloud, as plans and state files name it.
pub const KIND: ProviderKind = ProviderKind::new(&HetznerCloud);

/// Where a plan without a location's region goes: Falkenstein.
pub const DEFAULT_LOCATION: &str = "fsn1";

/// Hetzner Cloud API v1: networks, firewalls, servers, SSH keys, placement groups.
pub struct HetznerCloud;

/// The network zone of a location: a network spans a zone, not one location.
pub fn network_zone(location: &str) -> Option<&'static str> {
    Some(match location {
        "fsn1" | "nbg1" | "hel1" => "eu-central",
        "ash" => "us-east",
        "hil" => "us-west",
        "sin" => "ap-southeast",
        _ => return None,
    })
}

/// The Hetzner server type for a plan's size: a type of the catalogue as it is, or a
/// DigitalOcean slug as the smallest type with its CPUs and memory.
pub fn server_type(size: &str) -> Option<&'static str> {
    if let Some(s) = catalogue().size(size) {
        return Some(s.slug.as_str());
    }
    let other = crate::digitalocean::catalogue::catalogue().size(size)?;
    catalogue()
        .size_for(other.vcpus, other.memory_mb.div_ceil(1024))
        .ok()
}

/// The Hetzner image for a plan's image: an image of the catalogue as it is, a DigitalOcean
/// slug as the same release (`ubuntu-24-04-x64` is `ubuntu-24.04`), or a numeric id.
pub fn image(image: &str) -> Option<String> {
    if catalogue().images.iter().any(|i| i == image) || image.chars().all(|c| c.is_ascii_digit()) {
        return Some(image.to_string());
    }
    let release = |slug: &str| {
        appliance_slug(slug)
            .trim_end_matches("-x64")
            .replace("rockylinux", "rocky")
            .replace("almalinux", "alma")
    };
    let wanted = release(image);
    catalogue()
        .images
        .iter()
        .find(|i| release(i) == wanted)
        .cloned()
}

#[async_trait]
impl Cloud for HetznerCloud {
    fn name(&self) -> &'static str {
        "hetzner"
    }

    fn default_size(&self) -> &'static str {
        "cx22"
    }

    /// Debian 12, because the stack relies on Debian's `zookeeper` package.
    fn default_image(&self) -> &'static str {
        "debian-12"
    }

    fn size_for(&self, cpu: u32, memory_gb: u32) -> Result<&'static str, String> {
        catalogue().size_for(cpu, memory_gb)
    }

    /// The type with the most memory (then CPUs): a plumbery plan sized for another cloud
    /// still runs here, on less than it asked, which the warning says.
    fn size_stand_in(&self, cpu: u32, memory_gb: u32) -> Option<(&'static str, String)> {
        let largest = catalogue()
            .sizes
            .iter()
            .max_by_key(|s| (s.memory_mb, s.vcpus))?;
        Some((
            largest.slug.as_str(),
            format!(
                "no Hetzner server type has {cpu} CPUs and {memory_gb} GB of memory; `{}` ({} CPUs, {} GB), the largest, stands in",
                largest.slug,
                largest.vcpus,
                largest.memory_mb / 1024
            ),
        ))
    }

    fn image_for_appliance(&self, appliance: &str) -> Result<Appliance, String> {
        catalogue().image_for_appliance(self.name(), appliance)
    }

    fn has_regions(&self) -> bool {
        true
    }

    fn check_region(&self, region: &str) -> Result<(), String> {
        catalogue().check_region(region)
    }

    fn region_for_location(&self, location: &str) -> Option<(&'static str, &'static str)> {
        catalogue()
            .region_for_location(location)
            .map(|l| (l.city.as_str(), l.region.as_str()))
    }

    fn default_region(&self) -> Option<&'static str> {
        Some(DEFAULT_LOCATION)
    }

    fn check_size(&self, size: &str) -> Result<(), String> {
        if server_type(size).is_some() {
            Ok(())
        } else {
            let slugs: Vec<&str> = catalogue().sizes.iter().map(|s| s.slug.as_str()).collect();
            Err(unknown("server type", size, &slugs))
        }
    }

    fn check_image(&self, name: &str) -> Result<(), String> {
        if image(name).is_some() {
            Ok(())
        } else {
            let images: Vec<&str> = catalogue().images.iter().map(String::as_str).collect();
            Err(unknown("image", name, &images))
        }
    }

    /// The operator's key is uploaded to the project, and the deployment has a placement
    /// group of its own (`tag.deployment`, see the module documentation of `hetzner`).
    fn has_account_resources(&self) -> bool {
        true
    }

    /// Servers go first (waited for until gone), then the placement group, the firewalls,
    /// the network, and the key.
    fn teardown_rank(&self, kind: ResourceKind) -> u8 {
        match kind {
            ResourceKind::Node => 5,
            ResourceKind::Tag => 4,
            ResourceKind::Firewall => 3,
            ResourceKind::Network => 2,
            ResourceKind::SshKey => 0,
        }
    }

    /// A server's public address comes from Hetzner.
    fn computed_attributes(&self, kind: ResourceKind) -> &'static [&'static str] {
        match kind {
            ResourceKind::SshKey => &["fingerprint", "id"],
            ResourceKind::Tag | ResourceKind::Network | ResourceKind::Firewall => &["id"],
            ResourceKind::Node => &["id", "public_ip"],
        }
    }

    /// The token and the endpoint come from the environment; one call checks both, so that
    /// a wrong token or an unreachable API is one line before anything is done.
    async fn connect(
        &self,
        options: &ConnectOptions<'_>,
    ) -> Result<Arc<dyn Provider>, ConnectError> {
        let mut settings = super::Settings::from_env(options.allow_insecure_http)
            .map_err(|message| ConnectError::Setup { message })?;
        settings.ready_timeout = options.ready_timeout;
        let endpoint = settings.endpoint.clone();
        let provider = super::Hetzner::new(options.deployment, settings)
            .map_err(|message| ConnectError::Setup { message })?;
        match provider.check_access().await {
            Ok(()) => Ok(Arc::new(provider)),
            Err(error @ crate::api::ProviderError::Unreachable { .. }) => {
                Err(ConnectError::Unreachable {
                    error,
                    help: "check HCLOUD_ENDPOINT and the network; nothing was changed",
                })
            }
            Err(error) => Err(ConnectError::Setup {
                message: format!("{error} (at {endpoint}); nothing was changed"),
            }),
        }
    }
}

/// Hetzner's catalogue, read from `catalogue.yaml` on first use.
pub(crate) fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        // Checked by `the_catalogue_file_parses_and_holds_together`.
        Catalogue::parse("hetzner/catalogue.yaml", include_str!("catalogue.yaml"))
            .expect("hetzner/catalogue.yaml parses (tested)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_file_parses_and_holds_together() {
        catalogue().check().unwrap();
        for region in &catalogue().regions {
            assert!(network_zone(region).is_some(), "{region}");
        }
        assert_eq!(
            KIND.cloud().region_for_location("EU6"),
            Some(("Frankfurt", "fsn1"))
        );
    }

    #[test]
    fn cpu_and_memory_pick_the_smallest_shared_type_then_dedicated() {
        let p = KIND.cloud();
        assert_eq!(p.size_for(1, 1), Ok("cpx11"));
        assert_eq!(p.size_for(2, 4), Ok("cx22"));
        assert_eq!(p.size_for(3, 4), Ok("cpx21"));
        assert_eq!(p.size_for(16, 64), Ok("ccx43"));
        assert!(p.size_for(64, 1).is_err());
        // plumbery's 32 CPUs and 256 GB: more memory than any type; the largest stands in.
        assert!(p.size_for(32, 256).is_err());
        let (size, note) = p.size_stand_in(32, 256).unwrap();
        assert_eq!(size, "ccx63");
        assert!(
            note.contains("`ccx63` (48 CPUs, 192 GB), the largest"),
            "{note}"
        );
    }

    #[test]
    fn digitalocean_slugs_stand_for_the_nearest_hetzner_words() {
        assert_eq!(server_type("s-2vcpu-4gb"), Some("cx22"));
        assert_eq!(server_type("s-1vcpu-1gb"), Some("cpx11"));
        assert_eq!(server_type("cx32"), Some("cx32"));
        assert_eq!(server_type("s-2vcpu-4g"), None);
        assert_eq!(image("debian-12-x64").as_deref(), Some("debian-12"));
        assert_eq!(image("ubuntu-24-04-x64").as_deref(), Some("ubuntu-24.04"));
        assert_eq!(image("rockylinux-9-x64").as_deref(), Some("rocky-9"));
        assert_eq!(image("debian-12").as_deref(), Some("debian-12"));
        assert_eq!(image("windows-2022"), None);
        assert_eq!(
            KIND.cloud()
                .image_for_appliance("Ubuntu 24.04")
                .map(|a| a.image),
            Ok("ubuntu-24.04")
        );
    }

    #[test]
    fn teardown_goes_servers_group_firewalls_network_then_the_key() {
        let mut kinds = [
            ResourceKind::SshKey,
            ResourceKind::Tag,
            ResourceKind::Network,
            ResourceKind::Firewall,
            ResourceKind::Node,
        ];
        kinds.sort_by_key(|k| std::cmp::Reverse(KIND.cloud().teardown_rank(*k)));
        assert_eq!(
            kinds,
            [
                ResourceKind::Node,
                ResourceKind::Tag,
                ResourceKind::Firewall,
                ResourceKind::Network,
                ResourceKind::SshKey,
            ]
        );
    }
}
