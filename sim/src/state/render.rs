//! Rendering: the JSON objects the API returns for each resource, derived from the resource,
//! the current time and the configuration; and sizes, regions and images as the spec spells
//! them out.

use serde_json::{Value as Json, json};
use tokio::time::Instant;

use super::{Action, ActionKind, Droplet, Firewall, SshKey, State, Vpc};
use crate::types::Snapshot;
use crate::util::rfc3339;

/// Regions the spec lists in `image.regions` (an enum there); others are left out of it.
const IMAGE_REGIONS: &[&str] = &[
    "ams1", "ams2", "ams3", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3", "sfo1", "sfo2", "sfo3",
    "sgp1", "tor1", "syd1",
];

impl State {
    /// [`State::droplet_json`] as text, from the cache when the status has not changed.
    pub(crate) fn droplet_text(&self, d: &Droplet, now: Instant) -> String {
        let view = self.droplet_view(d, now);
        let key = (view.status, view.locked, view.applied);
        if let Some((cached, text)) = &*d.rendered.borrow()
            && *cached == key
        {
            return text.clone();
        }
        let text = self.droplet_json(d, now).to_string();
        *d.rendered.borrow_mut() = Some((key, text.clone()));
        text
    }

    pub(crate) fn droplet_json(&self, d: &Droplet, now: Instant) -> Json {
        let view = self.droplet_view(d, now);
        let status = view.status;
        let size = SizeSpec::from_slug(view.size);
        let disk_gb = view.disk_gb;
        let mut features = vec!["droplet_agent", "private_networking"];
        if d.monitoring {
            features.push("monitoring");
        }
        if d.ipv6 {
            features.push("ipv6");
        }
        if d.backups {
            features.push("backups");
        }
        let (v4, v6) = if status == "new" {
            (vec![], vec![])
        } else {
            let v4 = vec![
                json!({
                    "ip_address": d.private_ip,
                    "netmask": d.private_netmask,
                    "gateway": d.private_gateway,
                    "type": "private",
                }),
                json!({
                    "ip_address": d.public_ip,
                    "netmask": "255.255.0.0",
                    "gateway": "127.1.0.254",
                    "type": "public",
                }),
            ];
            let v6 = if d.ipv6 {
                vec![json!({
                    "ip_address": format!(
                        "2001:db8:1::{:x}:{:x}",
                        (d.id >> 16) & 0xffff,
                        d.id & 0xffff
                    ),
                    "netmask": 64,
                    "gateway": "2001:db8:1::1",
                    "type": "public",
                })]
            } else {
                vec![]
            };
            (v4, v6)
        };
        json!({
            "id": d.id,
            "name": d.name,
            "memory": size.memory_mb,
            "vcpus": size.vcpus,
            "disk": disk_gb,
            "disk_info": [{"type": "local", "size": {"amount": disk_gb, "unit": "gib"}}],
            "locked": view.locked,
            "status": status,
            "kernel": null,
            "created_at": rfc3339(d.created_wall),
            "features": features,
            "backup_ids": [],
            "next_backup_window": null,
            "snapshot_ids": [],
            "image": image_json(&d.image, &d.region),
            "volume_ids": d.volumes,
            "size": size.json(view.size, &d.region),
            "size_slug": view.size,
            "networks": {"v4": v4, "v6": v6},
            "region": region_json(&d.region, view.size),
            "tags": d.tags,
            "vpc_uuid": d.vpc_uuid,
        })
    }

    pub(crate) fn action_json(&self, a: &Action, now: Instant) -> Json {
        let droplet = self.droplets.get(&a.droplet_id);
        let (done, delay) = match (&a.kind, droplet) {
            (ActionKind::Create, Some(d)) if d.deleted.is_none() => {
                (self.is_active(d, now), self.config.active_delay)
            }
            // Gone or going: its creation finished (or never will, which nobody asks about).
            (ActionKind::Create, _) => (
                now.duration_since(a.started) >= self.config.active_delay,
                self.config.active_delay,
            ),
            _ => (self.action_done(a, now), self.config.action_delay),
        };
        let size = droplet.map(|d| d.size.as_str()).unwrap_or("s-1vcpu-1gb");
        json!({
            "id": a.id,
            "status": if done { "completed" } else { "in-progress" },
            "type": a.kind.name(),
            "started_at": rfc3339(a.started_wall),
            "completed_at": if done {
                Json::String(rfc3339(a.started_wall + delay))
            } else {
                Json::Null
            },
            "resource_id": a.droplet_id,
            "resource_type": "droplet",
            "region": region_json(&a.region, size),
            "region_slug": a.region,
        })
    }

    pub(crate) fn vpc_json(&self, v: &Vpc) -> Json {
        json!({
            "id": v.id,
            "urn": format!("do:vpc:{}", v.id),
            "name": v.name,
            "description": v.description,
            "region": v.region,
            "ip_range": v.range.to_string(),
            "default": v.default,
            "created_at": rfc3339(v.created_wall),
        })
    }

    pub(crate) fn member_json(&self, d: &Droplet) -> Json {
        json!({
            "urn": format!("do:droplet:{}", d.id),
            "name": d.name,
            "created_at": rfc3339(d.created_wall),
        })
    }

    pub(crate) fn firewall_json(&self, f: &Firewall) -> Json {
        // Droplets that are gone drop out of the firewall, as they do on DigitalOcean.
        let droplet_ids: Vec<u64> = f
            .droplet_ids
            .iter()
            .copied()
            .filter(|id| self.droplets.contains_key(id))
            .collect();
        json!({
            "id": f.id,
            "name": f.name,
            "status": "succeeded",
            "created_at": rfc3339(f.created_wall),
            "pending_changes": [],
            "inbound_rules": f.inbound_rules,
            "outbound_rules": f.outbound_rules,
            "droplet_ids": droplet_ids,
            "tags": f.tags,
        })
    }

    pub(crate) fn tag_json(&self, name: &str, base: &str) -> Json {
        let tagged: Vec<&Droplet> = self
            .droplets
            .values()
            .filter(|d| d.tags.iter().any(|t| t == name))
            .collect();
        let mut droplets = json!({"count": tagged.len()});
        let mut resources = json!({"count": tagged.len()});
        if let Some(last) = tagged.last() {
            let uri = Json::String(format!("{base}/v2/droplets/{}", last.id));
            droplets["last_tagged_uri"] = uri.clone();
            resources["last_tagged_uri"] = uri;
        }
        resources["droplets"] = droplets;
        for kind in ["images", "volumes", "volume_snapshots", "databases"] {
            resources[kind] = json!({"count": 0});
        }
        json!({"name": name, "resources": resources})
    }

    pub(crate) fn ssh_key_json(&self, k: &SshKey) -> Json {
        json!({
            "id": k.id,
            "fingerprint": k.fingerprint,
            "public_key": k.public_key,
            "name": k.name,
        })
    }

    pub(crate) fn snapshot(&mut self, base: &str) -> Snapshot {
        let now = Instant::now();
        self.purge(now);
        let delay = self.config.delete_delay;
        self.hetzner.purge(delay, now);
        Snapshot {
            droplets: self
                .droplets
                .values()
                .map(|d| self.droplet_json(d, now))
                .collect(),
            vpcs: self.vpcs.iter().map(|v| self.vpc_json(v)).collect(),
            firewalls: self
                .firewalls
                .iter()
                .map(|f| self.firewall_json(f))
                .collect(),
            tags: self.tags.iter().map(|t| self.tag_json(t, base)).collect(),
            ssh_keys: self.ssh_keys.iter().map(|k| self.ssh_key_json(k)).collect(),
            counts: self.counts,
            hetzner: crate::hetzner::snapshot(self, now),
        }
    }
}

/// Resources for a size slug such as `s-2vcpu-4gb`: any slug is accepted, the numbers come
/// from the slug where it has them.
pub(crate) struct SizeSpec {
    vcpus: u64,
    memory_mb: u64,
    pub(crate) disk_gb: u64,
}

impl SizeSpec {
    pub(crate) fn from_slug(slug: &str) -> SizeSpec {
        let mut vcpus = None;
        let mut memory_mb = None;
        for part in slug.split('-') {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let Ok(n) = digits.parse::<u64>() else {
                continue;
            };
            let unit = &part[digits.len()..];
            match unit {
                "vcpu" | "vcpus" => vcpus = vcpus.or(Some(n)),
                "gb" => memory_mb = memory_mb.or(Some(n * 1024)),
                "mb" => memory_mb = memory_mb.or(Some(n)),
                _ => {}
            }
        }
        let memory_mb = memory_mb.unwrap_or(1024).clamp(8, 1 << 24) / 8 * 8;
        SizeSpec {
            vcpus: vcpus.unwrap_or(1).max(1),
            memory_mb,
            disk_gb: (memory_mb / 1024 * 25).max(10),
        }
    }

    fn json(&self, slug: &str, region: &str) -> Json {
        let gib = self.memory_mb as f64 / 1024.0;
        json!({
            "slug": slug,
            "memory": self.memory_mb,
            "vcpus": self.vcpus,
            "disk": self.disk_gb,
            "transfer": gib.max(0.5),
            "price_monthly": (gib * 6.0).max(4.0),
            "price_hourly": ((gib * 6.0).max(4.0) / 672.0 * 100_000.0).round() / 100_000.0,
            "regions": [region],
            "available": true,
            "description": "Basic",
            "disk_info": [{"type": "local", "size": {"amount": self.disk_gb, "unit": "gib"}}],
        })
    }
}

fn region_name(slug: &str) -> String {
    let city = match slug.trim_end_matches(|c: char| c.is_ascii_digit()) {
        "nyc" => "New York",
        "sfo" => "San Francisco",
        "ams" => "Amsterdam",
        "sgp" => "Singapore",
        "lon" => "London",
        "fra" => "Frankfurt",
        "tor" => "Toronto",
        "blr" => "Bangalore",
        "syd" => "Sydney",
        "atl" => "Atlanta",
        _ => return slug.to_owned(),
    };
    let number = slug.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    format!("{city} {number}")
}

pub(crate) fn region_json(slug: &str, size: &str) -> Json {
    json!({
        "name": region_name(slug),
        "slug": slug,
        "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
        "available": true,
        "sizes": [size],
    })
}

fn image_json(image: &Json, region: &str) -> Json {
    let regions: Vec<&str> = IMAGE_REGIONS
        .iter()
        .copied()
        .filter(|r| *r == region)
        .collect();
    let (id, slug, name, distribution) = match image {
        Json::Number(n) => (
            n.as_u64().unwrap_or(0),
            Json::Null,
            format!("image {n}"),
            "Unknown",
        ),
        other => {
            let slug = other.as_str().unwrap_or("unknown");
            // A stable id per slug (FNV-1a), in the range real image ids use.
            let hash = slug.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let distribution = match slug.split('-').next().unwrap_or("") {
                "ubuntu" => "Ubuntu",
                "debian" => "Debian",
                "fedora" => "Fedora",
                "centos" => "CentOS",
                "rockylinux" => "Rocky Linux",
                "freebsd" => "FreeBSD",
                _ => "Unknown",
            };
            (
                100_000_000 + hash % 100_000_000,
                Json::String(slug.to_owned()),
                slug.to_owned(),
                distribution,
            )
        }
    };
    json!({
        "id": id,
        "name": name,
        "distribution": distribution,
        "slug": slug,
        "public": true,
        "regions": regions,
        "created_at": "2024-04-25T00:00:00Z",
        "type": "base",
        "min_disk_size": 10,
        "size_gigabytes": 2.5,
        "description": name,
        "tags": [],
        "status": "available",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_slugs() {
        let s = SizeSpec::from_slug("s-2vcpu-4gb");
        assert_eq!((s.vcpus, s.memory_mb, s.disk_gb), (2, 4096, 100));
        let s = SizeSpec::from_slug("whatever");
        assert_eq!((s.vcpus, s.memory_mb), (1, 1024));
        let s = SizeSpec::from_slug("s-1vcpu-512mb-10gb");
        assert_eq!((s.vcpus, s.memory_mb), (1, 512));
    }
}
