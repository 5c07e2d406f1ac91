//! fitter's provider boundary: which clouds fitter knows, what their resources are called,
//! which values they accept offline, and which attribute changes force a replacement.
//!
//! Everything here is static knowledge, usable without credentials or network: `fitter plan`
//! against an empty state must work on an aeroplane. The API clients that create resources
//! (DigitalOcean's REST API, LXD's unix socket) build on this crate and live beside it.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod api;
pub mod digitalocean;
pub mod lxd;

/// A cloud fitter can deploy to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// DigitalOcean API v2: VPCs, cloud firewalls, droplets, SSH keys, tags.
    DigitalOcean,
    /// LXD's REST API on its unix socket: a bridge network, network ACLs, system containers.
    Lxd,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 2] = [ProviderKind::DigitalOcean, ProviderKind::Lxd];

    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::DigitalOcean => "digitalocean",
            ProviderKind::Lxd => "lxd",
        }
    }

    pub fn parse(name: &str) -> Option<ProviderKind> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The provider used when neither the plan nor `--provider` names one: the local one,
    /// so that a plan works on a machine without a cloud account.
    pub fn default_kind() -> ProviderKind {
        ProviderKind::Lxd
    }

    /// Size used when a node gives neither `size` nor `cpu`/`memory`.
    pub fn default_size(self) -> &'static str {
        match self {
            ProviderKind::DigitalOcean => "s-1vcpu-1gb",
            ProviderKind::Lxd => "s-1vcpu-1gb",
        }
    }

    /// Image used when a node gives neither `image` nor `appliance`. Debian 12 everywhere,
    /// because the stack relies on Debian's `zookeeper` package.
    pub fn default_image(self) -> &'static str {
        match self {
            ProviderKind::DigitalOcean => "debian-12-x64",
            ProviderKind::Lxd => LXD_DEFAULT_IMAGE,
        }
    }

    /// Whether the deployment needs an uploaded SSH key and a tag as resources of their own.
    /// LXD gets keys pushed as files and records ownership in `user.*` config keys.
    pub fn has_account_resources(self) -> bool {
        matches!(self, ProviderKind::DigitalOcean)
    }

    /// Checks a region (DigitalOcean) or location name (LXD: any name, it is informational).
    pub fn check_region(self, region: &str) -> Result<(), String> {
        match self {
            ProviderKind::DigitalOcean => {
                if DIGITALOCEAN_REGIONS.contains(&region) {
                    Ok(())
                } else {
                    Err(unknown("region", region, DIGITALOCEAN_REGIONS))
                }
            }
            ProviderKind::Lxd => Ok(()),
        }
    }

    /// Checks the name of a network: LXD names bridges after interfaces, at most 15
    /// characters.
    pub fn check_network_name(self, name: &str) -> Result<(), String> {
        match self {
            ProviderKind::Lxd if name.len() > 15 => Err(format!(
                "network name `{name}` is too long for lxd, which names bridges after interfaces: at most 15 characters"
            )),
            _ => Ok(()),
        }
    }

    /// Checks a size slug. Both providers read DigitalOcean-style slugs, so one plan can move
    /// between them; LXD turns the slug into `limits.cpu` and `limits.memory`.
    pub fn check_size(self, size: &str) -> Result<(), String> {
        match self {
            ProviderKind::DigitalOcean => {
                if DIGITALOCEAN_SIZES.iter().any(|s| s.slug == size) {
                    Ok(())
                } else {
                    Err(unknown("size", size, &size_slugs()))
                }
            }
            ProviderKind::Lxd => match Limits::from_slug(size) {
                Some(_) => Ok(()),
                None => Err(format!(
                    "size `{size}` does not name CPUs and memory; use a slug such as `s-2vcpu-4gb`"
                )),
            },
        }
    }

    /// Checks an image. DigitalOcean images are slugs from the catalogue or numeric ids;
    /// LXD images are local aliases, which cannot be checked without asking the daemon.
    pub fn check_image(self, image: &str) -> Result<(), String> {
        match self {
            ProviderKind::DigitalOcean => {
                if DIGITALOCEAN_IMAGES.contains(&image) || image.chars().all(|c| c.is_ascii_digit())
                {
                    Ok(())
                } else {
                    Err(unknown("image", image, DIGITALOCEAN_IMAGES))
                }
            }
            ProviderKind::Lxd => {
                if image.is_empty() {
                    Err("image alias is empty".to_string())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The smallest size with at least `cpu` CPUs and `memory_gb` GB of memory, as plumbery's
    /// `cpu:`/`memory:` ask for.
    pub fn size_for(self, cpu: u32, memory_gb: u32) -> Option<&'static str> {
        DIGITALOCEAN_SIZES
            .iter()
            .filter(|s| s.basic && s.vcpus >= cpu && s.memory_mb >= memory_gb * 1024)
            .min_by_key(|s| (s.memory_mb, s.vcpus))
            .map(|s| s.slug)
    }

    /// The image for a plumbery `appliance:` name such as `Ubuntu 24.04` or `Debian 12`:
    /// the first catalogue image whose slug starts with the name's words.
    pub fn image_for_appliance(self, appliance: &str) -> Result<&'static str, String> {
        let wanted: String = appliance
            .trim()
            .to_ascii_lowercase()
            .split(|c: char| c.is_whitespace() || c == '.' || c == '-')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        match self {
            ProviderKind::DigitalOcean => DIGITALOCEAN_IMAGES
                .iter()
                .copied()
                .find(|slug| slug.starts_with(&wanted))
                .ok_or_else(|| unknown("appliance", appliance, DIGITALOCEAN_IMAGES)),
            ProviderKind::Lxd => {
                if "debian-12".starts_with(&wanted) {
                    Ok(LXD_DEFAULT_IMAGE)
                } else {
                    Err(format!(
                        "appliance `{appliance}` is not available locally: the lxd provider has \
                         one image, Debian 12 (`{LXD_DEFAULT_IMAGE}`)"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The alias under which `scripts/local-cloud.sh` imports the local node image.
pub const LXD_DEFAULT_IMAGE: &str = "fitter-debian-12";

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

    /// The order of teardown: resources of a higher rank are deleted first.
    ///
    /// On DigitalOcean firewalls go first, then droplets, then VPCs (which refuse to go while
    /// they have members), then the tags and the key. On LXD the containers go first, then the
    /// bridges, then the ACLs, which LXD refuses to delete while a bridge uses them.
    pub fn teardown_rank(self, provider: ProviderKind) -> u8 {
        match (provider, self) {
            (ProviderKind::DigitalOcean, ResourceKind::Firewall) => 4,
            (ProviderKind::DigitalOcean, ResourceKind::Node) => 3,
            (ProviderKind::DigitalOcean, ResourceKind::Network) => 2,
            (_, kind) => kind.rank(),
        }
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

    /// Attributes only known once the provider has created the resource.
    pub fn computed_attributes(self, provider: ProviderKind) -> &'static [&'static str] {
        match (self, provider) {
            (ResourceKind::SshKey, _) => &["fingerprint", "id"],
            (ResourceKind::Tag, _) => &[],
            (ResourceKind::Network, _) => &["id"],
            (ResourceKind::Firewall, _) => &["id"],
            (ResourceKind::Node, ProviderKind::DigitalOcean) => &["id", "public_ip"],
            (ResourceKind::Node, ProviderKind::Lxd) => &["id"],
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
        if let Some(size) = DIGITALOCEAN_SIZES.iter().find(|s| s.slug == slug) {
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

struct Size {
    slug: &'static str,
    vcpus: u32,
    memory_mb: u32,
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

/// DigitalOcean sizes, from `GET /v2/sizes` as documented in the bundled OpenAPI spec's
/// examples and the public pricing page. New sizes appear over time: add them here.
const DIGITALOCEAN_SIZES: &[Size] = &[
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
    size("g-2vcpu-8gb", 2, 8192, false),
    size("g-4vcpu-16gb", 4, 16384, false),
    size("g-8vcpu-32gb", 8, 32768, false),
    size("m-2vcpu-16gb", 2, 16384, false),
    size("m-4vcpu-32gb", 4, 32768, false),
    size("m-8vcpu-64gb", 8, 65536, false),
];

fn size_slugs() -> Vec<&'static str> {
    DIGITALOCEAN_SIZES.iter().map(|s| s.slug).collect()
}

/// DigitalOcean distribution image slugs.
const DIGITALOCEAN_IMAGES: &[&str] = &[
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
const DIGITALOCEAN_REGIONS: &[&str] = &[
    "ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3", "sfo2", "sfo3", "sgp1", "syd1",
    "tor1",
];

/// "unknown size `x`; did you mean `y`?" with the closest known name, or the list.
fn unknown(what: &str, value: &str, known: &[&str]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_pick_the_smallest_basic_size() {
        let p = ProviderKind::DigitalOcean;
        assert_eq!(p.size_for(1, 1), Some("s-1vcpu-1gb"));
        assert_eq!(p.size_for(2, 3), Some("s-2vcpu-4gb"));
        assert_eq!(p.size_for(8, 32), Some("s-8vcpu-32gb"));
        assert_eq!(p.size_for(64, 1), None);
    }

    #[test]
    fn appliance_names_map_to_slugs() {
        let p = ProviderKind::DigitalOcean;
        assert_eq!(
            p.image_for_appliance("Ubuntu 24.04"),
            Ok("ubuntu-24-04-x64")
        );
        assert_eq!(p.image_for_appliance("Debian 12"), Ok("debian-12-x64"));
        assert!(p.image_for_appliance("Windows 2012").is_err());
        assert_eq!(
            ProviderKind::Lxd.image_for_appliance("Debian"),
            Ok(LXD_DEFAULT_IMAGE)
        );
        assert!(ProviderKind::Lxd.image_for_appliance("CentOS 7").is_err());
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

    #[test]
    fn typos_get_a_suggestion() {
        let err = ProviderKind::DigitalOcean
            .check_size("s-2vcpu-4g")
            .unwrap_err();
        assert_eq!(
            err,
            "unknown size `s-2vcpu-4g`; did you mean `s-2vcpu-4gb`?"
        );
        assert!(ProviderKind::DigitalOcean.check_region("nyc3").is_ok());
        assert!(ProviderKind::DigitalOcean.check_region("mars1").is_err());
    }
}
