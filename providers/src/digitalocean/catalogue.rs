//! What fitter knows of DigitalOcean without calling it: regions, sizes, images, defaults,
//! the checks a plan gets before anything is created, and how its client is made.
//!
//! The catalogue itself is data, `catalogue.yaml` beside this file (see
//! [`crate::catalogue`]). Its size list is also the vocabulary of the other providers: LXD
//! reads the same slugs, so one plan moves between clouds unchanged.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::api::Provider;
use crate::catalogue::Catalogue;
use crate::cloud::{Appliance, Cloud, ConnectError, ConnectOptions, unknown};
use crate::{ProviderKind, ResourceKind};

/// DigitalOcean, as plans and state files name it.
pub const KIND: ProviderKind = ProviderKind::new(&DigitalOceanCloud);

/// DigitalOcean API v2: VPCs, cloud firewalls, droplets, SSH keys, tags.
pub struct DigitalOceanCloud;

#[async_trait]
impl Cloud for DigitalOceanCloud {
    fn name(&self) -> &'static str {
        "digitalocean"
    }

    fn default_size(&self) -> &'static str {
        "s-1vcpu-1gb"
    }

    /// Debian 12, because the stack relies on Debian's `zookeeper` package.
    fn default_image(&self) -> &'static str {
        "debian-12-x64"
    }

    fn size_for(&self, cpu: u32, memory_gb: u32) -> Result<&'static str, String> {
        catalogue().size_for(cpu, memory_gb)
    }

    /// The first catalogue image whose slug starts with the name's words; else, for a
    /// release no longer sold, the oldest image of its family (`Ubuntu 14` is
    /// `ubuntu-22-04-x64`), said as a warning.
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
        Some("nyc3")
    }

    fn check_size(&self, size: &str) -> Result<(), String> {
        if catalogue().size(size).is_some() {
            Ok(())
        } else {
            let slugs: Vec<&str> = catalogue().sizes.iter().map(|s| s.slug.as_str()).collect();
            Err(unknown("size", size, &slugs))
        }
    }

    /// A slug from the catalogue or a numeric id (a snapshot, a custom image).
    fn check_image(&self, image: &str) -> Result<(), String> {
        let images = &catalogue().images;
        if images.iter().any(|i| i == image) || image.chars().all(|c| c.is_ascii_digit()) {
            Ok(())
        } else {
            let images: Vec<&str> = images.iter().map(String::as_str).collect();
            Err(unknown("image", image, &images))
        }
    }

    /// A droplet's `monitoring` flag installs DigitalOcean's metrics agent.
    fn has_monitoring(&self) -> bool {
        true
    }

    /// The operator's key is uploaded to the account, and a tag marks what is owned.
    fn has_account_resources(&self) -> bool {
        true
    }

    /// Firewalls go first, then droplets, then VPCs (which refuse to go while they have
    /// members), then the tags and the key.
    fn teardown_rank(&self, kind: ResourceKind) -> u8 {
        match kind {
            ResourceKind::Firewall => 4,
            ResourceKind::Node => 3,
            ResourceKind::Network => 2,
            kind => kind.rank(),
        }
    }

    /// A droplet's public address comes from DigitalOcean.
    fn computed_attributes(&self, kind: ResourceKind) -> &'static [&'static str] {
        match kind {
            ResourceKind::SshKey => &["fingerprint", "id"],
            ResourceKind::Tag => &[],
            ResourceKind::Network | ResourceKind::Firewall => &["id"],
            ResourceKind::Node => &["id", "public_ip"],
        }
    }

    /// The token and the API's address come from the environment.
    /// A resize powers the droplet off, resizes CPU and memory, and powers it on again.
    fn update_disruption(&self, kind: ResourceKind, changed: &[&str]) -> Option<&'static str> {
        (kind == ResourceKind::Node && changed.contains(&"size"))
            .then_some("the droplet is powered off to resize, then powered on")
    }

    async fn connect(
        &self,
        options: &ConnectOptions<'_>,
    ) -> Result<Arc<dyn Provider>, ConnectError> {
        let mut settings = super::Settings::from_env(options.allow_insecure_http)
            .map_err(|message| ConnectError::Setup { message })?;
        settings.ready_timeout = options.ready_timeout;
        let endpoint = settings.api_url.clone();
        let provider = super::DigitalOcean::new(options.deployment, settings)
            .map_err(|message| ConnectError::Setup { message })?;
        match provider.check_access().await {
            Ok(()) => Ok(Arc::new(provider)),
            Err(error @ crate::api::ProviderError::Unreachable { .. }) => {
                Err(ConnectError::Unreachable {
                    error,
                    help: "check DIGITALOCEAN_API_URL and the network; nothing was changed",
                })
            }
            Err(error) => Err(ConnectError::Setup {
                message: format!("{error} (at {endpoint}); nothing was changed"),
            }),
        }
    }
}

/// DigitalOcean's catalogue, read from `catalogue.yaml` on first use.
pub(crate) fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        // Checked by `the_catalogue_file_parses_and_holds_together`: a broken file fails
        // the tests, never a run.
        Catalogue::parse(
            "digitalocean/catalogue.yaml",
            include_str!("catalogue.yaml"),
        )
        .expect("digitalocean/catalogue.yaml parses (tested)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_pick_the_smallest_basic_size() {
        let p = KIND.cloud();
        assert_eq!(p.size_for(1, 1), Ok("s-1vcpu-1gb"));
        assert_eq!(p.size_for(2, 3), Ok("s-2vcpu-4gb"));
        assert_eq!(p.size_for(8, 32), Ok("s-8vcpu-32gb"));
        // Past the basic sizes: the dedicated-CPU ones DigitalOcean sells too.
        assert_eq!(p.size_for(32, 256), Ok("m-32vcpu-256gb"));
        assert_eq!(p.size_for(40, 100), Ok("g-40vcpu-160gb"));
        assert_eq!(p.size_for(48, 64), Ok("c-48"));
        let too_big = p.size_for(64, 1).unwrap_err();
        assert!(
            too_big.contains(
                "the largest are `c-48` (48 CPUs, 96 GB) and `m-32vcpu-256gb` (32 CPUs, 256 GB)"
            ),
            "{too_big}"
        );
    }

    #[test]
    fn the_catalogue_file_parses_and_holds_together() {
        catalogue().check().unwrap();
        assert_eq!(
            KIND.cloud().region_for_location("eu6"),
            Some(("Frankfurt", "fra1"))
        );
        assert_eq!(KIND.cloud().region_for_location("XX1"), None);
    }

    #[test]
    fn appliance_names_map_to_slugs() {
        let p = KIND.cloud();
        assert_eq!(
            p.image_for_appliance("Ubuntu 24.04").map(|a| a.image),
            Ok("ubuntu-24-04-x64")
        );
        assert_eq!(
            p.image_for_appliance("Debian 12"),
            Ok(Appliance::exact("debian-12-x64"))
        );
        assert!(p.image_for_appliance("Windows 2012").is_err());
        // plumbery's appliances of its time: the nearest successor, with a note.
        for (old, image) in [
            ("Ubuntu 14", "ubuntu-22-04-x64"),
            ("CentOS 7", "centos-stream-9-x64"),
            ("RedHat 7", "rockylinux-9-x64"),
            ("Debian 8", "debian-12-x64"),
        ] {
            let a = p.image_for_appliance(old).unwrap();
            assert_eq!(a.image, image, "{old}");
            assert!(a.note.unwrap().contains(old));
        }
    }

    #[test]
    fn typos_get_a_suggestion() {
        let p = KIND.cloud();
        let err = p.check_size("s-2vcpu-4g").unwrap_err();
        assert_eq!(
            err,
            "unknown size `s-2vcpu-4g`; did you mean `s-2vcpu-4gb`?"
        );
        assert!(p.check_region("nyc3").is_ok());
        assert!(p.check_region("mars1").is_err());
    }

    #[test]
    fn teardown_goes_firewalls_droplets_vpcs_then_the_account() {
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
                ResourceKind::Firewall,
                ResourceKind::Node,
                ResourceKind::Network,
                ResourceKind::Tag,
                ResourceKind::SshKey,
            ]
        );
    }
}
