//! What fitter knows of DigitalOcean without calling it: regions, sizes, images, defaults,
//! the checks a plan gets before anything is created, and how its client is made.
//!
//! The size list is also the vocabulary of the other providers: LXD reads the same slugs, so
//! one plan moves between clouds unchanged.

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::Provider;
use crate::cloud::{
    Appliance, Cloud, ConnectError, ConnectOptions, appliance_slug, successor, unknown,
};
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

    fn size_for(&self, cpu: u32, memory_gb: u32) -> Option<&'static str> {
        smallest_basic_size(cpu, memory_gb)
    }

    /// The first catalogue image whose slug starts with the name's words; else, for a
    /// release no longer sold, the oldest image of its family (`Ubuntu 14` is
    /// `ubuntu-22-04-x64`), said as a warning. The catalogue is sorted by family, oldest
    /// release first.
    fn image_for_appliance(&self, appliance: &str) -> Result<Appliance, String> {
        let wanted = appliance_slug(appliance);
        if let Some(slug) = IMAGES
            .iter()
            .copied()
            .find(|slug| slug.starts_with(&wanted))
        {
            return Ok(Appliance::exact(slug));
        }
        match successor(appliance, IMAGES) {
            Some(image) => Ok(Appliance {
                image,
                note: Some(format!(
                    "appliance `{appliance}` is not sold on digitalocean any more; `{image}`, the oldest of its family there, stands in for it"
                )),
            }),
            None => Err(unknown("appliance", appliance, IMAGES)),
        }
    }

    fn has_regions(&self) -> bool {
        true
    }

    fn check_region(&self, region: &str) -> Result<(), String> {
        if REGIONS.contains(&region) {
            Ok(())
        } else {
            Err(unknown("region", region, REGIONS))
        }
    }

    /// DigitalOcean's region in or nearest to the city; Johannesburg, with no region in
    /// Africa, goes to Frankfurt (DigitalOcean's usual advice for African users), and
    /// Tokyo and Hong Kong to Singapore.
    fn region_near(&self, city: &str) -> Option<&'static str> {
        Some(match city {
            "Ashburn" => "nyc3",
            "Santa Clara" => "sfo3",
            "Toronto" => "tor1",
            "Frankfurt" | "Johannesburg" => "fra1",
            "Amsterdam" => "ams3",
            "London" => "lon1",
            "Sydney" | "Melbourne" | "Hamilton" => "syd1",
            "Singapore" | "Tokyo" | "Hong Kong" => "sgp1",
            _ => return None,
        })
    }

    fn check_size(&self, size: &str) -> Result<(), String> {
        if SIZES.iter().any(|s| s.slug == size) {
            Ok(())
        } else {
            let slugs: Vec<&str> = SIZES.iter().map(|s| s.slug).collect();
            Err(unknown("size", size, &slugs))
        }
    }

    /// A slug from the catalogue or a numeric id (a snapshot, a custom image).
    fn check_image(&self, image: &str) -> Result<(), String> {
        if IMAGES.contains(&image) || image.chars().all(|c| c.is_ascii_digit()) {
            Ok(())
        } else {
            Err(unknown("image", image, IMAGES))
        }
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
    async fn connect(
        &self,
        options: &ConnectOptions<'_>,
    ) -> Result<Arc<dyn Provider>, ConnectError> {
        let mut settings = super::Settings::from_env(options.allow_insecure_http)
            .map_err(|message| ConnectError::Setup { message })?;
        settings.ready_timeout = options.ready_timeout;
        let provider = super::DigitalOcean::new(options.deployment, settings)
            .map_err(|message| ConnectError::Setup { message })?;
        Ok(Arc::new(provider))
    }
}

/// A size: its slug, CPUs and memory.
pub(crate) struct Size {
    pub(crate) slug: &'static str,
    pub(crate) vcpus: u32,
    pub(crate) memory_mb: u32,
    /// Basic (shared CPU) sizes, the ones `cpu:`/`memory:` choose from.
    basic: bool,
}

const fn size(slug: &'static str, vcpus: u32, memory_mb: u32, basic: bool) -> Size {
    Size {
        slug,
        vcpus,
        memory_mb,
        basic,
    }
}

/// The smallest basic size with at least `cpu` CPUs and `memory_gb` GB of memory; past
/// the largest basic size (plumbery plans ask for 32 CPUs and 256 GB), the smallest
/// dedicated-CPU size that fits, as DigitalOcean sells those too.
pub(crate) fn smallest_basic_size(cpu: u32, memory_gb: u32) -> Option<&'static str> {
    let fits = |s: &&Size| s.vcpus >= cpu && s.memory_mb >= memory_gb.saturating_mul(1024);
    let smallest = |basic: bool| {
        SIZES
            .iter()
            .filter(|s| s.basic == basic)
            .filter(fits)
            .min_by_key(|s| (s.memory_mb, s.vcpus))
            .map(|s| s.slug)
    };
    smallest(true).or_else(|| smallest(false))
}

/// DigitalOcean sizes, from `GET /v2/sizes` as documented in the bundled OpenAPI spec's
/// examples and the public pricing page. New sizes appear over time: add them here.
pub(crate) const SIZES: &[Size] = &[
    size("s-1vcpu-512mb-10gb", 1, 512, true),
    size("s-1vcpu-1gb", 1, 1024, true),
    size("s-1vcpu-2gb", 1, 2048, true),
    size("s-2vcpu-2gb", 2, 2048, true),
    size("s-2vcpu-4gb", 2, 4096, true),
    size("s-4vcpu-8gb", 4, 8192, true),
    size("s-8vcpu-16gb", 8, 16384, true),
    size("s-8vcpu-32gb", 8, 32768, true),
    size("s-12vcpu-48gb", 12, 49152, true),
    size("s-16vcpu-64gb", 16, 65536, true),
    size("s-20vcpu-96gb", 20, 98304, true),
    size("s-24vcpu-128gb", 24, 131072, true),
    size("s-32vcpu-192gb", 32, 196608, true),
    size("c-2", 2, 4096, false),
    size("c-4", 4, 8192, false),
    size("c-8", 8, 16384, false),
    size("c-16", 16, 32768, false),
    size("c-32", 32, 65536, false),
    size("c-48", 48, 98304, false),
    size("g-2vcpu-8gb", 2, 8192, false),
    size("g-4vcpu-16gb", 4, 16384, false),
    size("g-8vcpu-32gb", 8, 32768, false),
    size("g-16vcpu-64gb", 16, 65536, false),
    size("g-32vcpu-128gb", 32, 131072, false),
    size("g-40vcpu-160gb", 40, 163840, false),
    size("m-2vcpu-16gb", 2, 16384, false),
    size("m-4vcpu-32gb", 4, 32768, false),
    size("m-8vcpu-64gb", 8, 65536, false),
    size("m-16vcpu-128gb", 16, 131072, false),
    size("m-24vcpu-192gb", 24, 196608, false),
    size("m-32vcpu-256gb", 32, 262144, false),
];

/// DigitalOcean distribution image slugs.
const IMAGES: &[&str] = &[
    "almalinux-9-x64",
    "centos-stream-9-x64",
    "debian-12-x64",
    "debian-13-x64",
    "fedora-42-x64",
    "rockylinux-9-x64",
    "ubuntu-22-04-x64",
    "ubuntu-24-04-x64",
];

/// DigitalOcean region slugs.
const REGIONS: &[&str] = &[
    "ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3", "sfo2", "sfo3", "sgp1", "syd1",
    "tor1",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_pick_the_smallest_basic_size() {
        let p = KIND.cloud();
        assert_eq!(p.size_for(1, 1), Some("s-1vcpu-1gb"));
        assert_eq!(p.size_for(2, 3), Some("s-2vcpu-4gb"));
        assert_eq!(p.size_for(8, 32), Some("s-8vcpu-32gb"));
        // Past the basic sizes: the dedicated-CPU ones DigitalOcean sells too.
        assert_eq!(p.size_for(32, 256), Some("m-32vcpu-256gb"));
        assert_eq!(p.size_for(40, 100), Some("g-40vcpu-160gb"));
        assert_eq!(p.size_for(48, 64), Some("c-48"));
        assert_eq!(p.size_for(64, 1), None);
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
