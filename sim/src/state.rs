//! The simulated account: resources, faults, counters and rate-limit windows, behind one mutex.
//!
//! Resources keep only what they were created with and when; what the API shows (droplet status,
//! networks, tag counts, VPC members) is derived when rendered, from the current time and the
//! current configuration. A deleted droplet keeps its place (listed, in its VPC, with its tags)
//! until `delete_delay` has passed, then [`State::purge`] forgets it.
//!
//! Droplet actions work the same way: a droplet keeps its settled power state and size plus the
//! last action started on it ([`Droplet::pending`]); once that action is older than
//! `action_delay` its effect shows in every rendering, and the next action folds it into the
//! settled fields ([`State::settle`]) before it starts.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde_json::{Value as Json, json};
use tokio::time::Instant;

use crate::ratelimit::RateLimits;
use crate::types::{Config, Counts, Fault, RecordedRequest, Snapshot};
use crate::util::{Cidr, rfc3339, uuid};

/// Where identifiers start, so that ids of different kinds are told apart at a glance.
const FIRST_DROPLET_ID: u64 = 300_000_001;
const FIRST_ACTION_ID: u64 = 900_000_001;
const FIRST_SSH_KEY_ID: u64 = 510_001;

/// Regions the spec lists in `image.regions` (an enum there); others are left out of it.
const IMAGE_REGIONS: &[&str] = &[
    "ams1", "ams2", "ams3", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3", "sfo1", "sfo2", "sfo3",
    "sgp1", "tor1", "syd1",
];

pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) faults: Faults,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) counts: Counts,
    pub(crate) limits: RateLimits,
    pub(crate) droplets: BTreeMap<u64, Droplet>,
    pub(crate) actions: BTreeMap<u64, Action>,
    pub(crate) ssh_keys: Vec<SshKey>,
    pub(crate) tags: BTreeSet<String>,
    pub(crate) vpcs: Vec<Vpc>,
    pub(crate) firewalls: Vec<Firewall>,
    /// Public addresses handed out so far (they come from 127.1.0.0 upwards).
    public_issued: u32,
    ids: Ids,
}

/// Identifier sequences; they survive [`State::reset`].
#[derive(Clone)]
struct Ids {
    droplet: u64,
    action: u64,
    ssh_key: u64,
    uuid: u64,
    request: u64,
    /// How many resets so far: a request that was in flight during one is not recorded.
    resets: u64,
}

pub(crate) struct Droplet {
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The size slug, as of the last settled action.
    pub(crate) size: String,
    /// The disk in GB, as of the last settled action (a resize without `disk` keeps it).
    pub(crate) disk_gb: u64,
    /// Whether the droplet is off, as of the last settled action.
    pub(crate) powered_off: bool,
    /// The last action started on the droplet (not its create), whose effect shows once it is
    /// complete and is folded into the fields above by [`State::settle`].
    pub(crate) pending: Option<u64>,
    /// The image as the create asked for it: a slug (string) or an id (integer).
    pub(crate) image: Json,
    pub(crate) region: String,
    pub(crate) vpc_uuid: String,
    pub(crate) tags: Vec<String>,
    pub(crate) created: Instant,
    pub(crate) created_wall: SystemTime,
    pub(crate) deleted: Option<Instant>,
    pub(crate) private_ip: String,
    pub(crate) private_netmask: String,
    pub(crate) private_gateway: String,
    pub(crate) public_ip: String,
    pub(crate) ipv6: bool,
    pub(crate) monitoring: bool,
    pub(crate) backups: bool,
    pub(crate) volumes: Vec<String>,
    /// The droplet's JSON text, with the status, lock and whether its pending action's effect
    /// was applied when it was rendered. Only those (and tags and new actions, which clear
    /// this) change a droplet's JSON, so lists of hundreds of droplets cost a copy each rather
    /// than a rendering.
    pub(crate) rendered: RefCell<Option<(RenderKey, String)>>,
}

/// What a droplet's cached JSON depends on: status, lock, and whether a completed pending
/// action's effect is applied.
pub(crate) type RenderKey = (&'static str, bool, bool);

pub(crate) struct Action {
    pub(crate) id: u64,
    pub(crate) droplet_id: u64,
    pub(crate) kind: ActionKind,
    pub(crate) region: String,
    pub(crate) started: Instant,
    pub(crate) started_wall: SystemTime,
}

/// What an action does to its droplet once it is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ActionKind {
    /// The droplet's creation: complete when the droplet is `active`.
    Create,
    PowerOff,
    Shutdown,
    PowerOn,
    /// To `size`; the disk grows to the size's disk only with `disk: true`.
    Resize {
        size: String,
        disk: bool,
    },
}

impl ActionKind {
    /// The action's `type`, as the API names it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::PowerOff => "power_off",
            ActionKind::Shutdown => "shutdown",
            ActionKind::PowerOn => "power_on",
            ActionKind::Resize { .. } => "resize",
        }
    }
}

/// A droplet as it shows now: its status, lock, size and disk, with a completed action's
/// effect applied.
pub(crate) struct DropletView<'d> {
    pub(crate) status: &'static str,
    pub(crate) locked: bool,
    pub(crate) size: &'d str,
    pub(crate) disk_gb: u64,
    /// Whether a completed pending action's effect is applied (not yet settled).
    pub(crate) applied: bool,
}

pub(crate) struct SshKey {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) public_key: String,
    pub(crate) fingerprint: String,
}

pub(crate) struct Vpc {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) region: String,
    pub(crate) range: Cidr,
    pub(crate) default: bool,
    pub(crate) created_wall: SystemTime,
    /// Private addresses handed out so far (they start at the network's `.2`).
    pub(crate) hosts_issued: u32,
}

pub(crate) struct Firewall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) inbound_rules: Vec<Json>,
    pub(crate) outbound_rules: Vec<Json>,
    pub(crate) droplet_ids: Vec<u64>,
    pub(crate) tags: Vec<String>,
    pub(crate) created_wall: SystemTime,
}

/// Injected faults and how often each has matched.
#[derive(Default)]
pub(crate) struct Faults {
    active: Vec<ActiveFault>,
}

struct ActiveFault {
    fault: Fault,
    seen: u32,
    affected: u32,
}

/// What the faults do to one request.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) status: Option<u16>,
    pub(crate) delay: Duration,
    pub(crate) lost: bool,
}

impl Faults {
    pub(crate) fn inject(&mut self, fault: Fault) {
        self.active.push(ActiveFault {
            fault,
            seen: 0,
            affected: 0,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.active.clear();
    }

    /// Runs one request past every fault, counting it against their `skip` and `times`.
    pub(crate) fn apply(&mut self, method: &str, path: &str) -> Effects {
        let mut effects = Effects::default();
        for active in &mut self.active {
            let matcher = match &active.fault {
                Fault::Status { matcher, .. }
                | Fault::Slow { matcher, .. }
                | Fault::LostResponse { matcher } => matcher,
                Fault::StuckNew { .. } | Fault::Unlisted { .. } => continue,
            };
            if !matcher.matches(method, path) {
                continue;
            }
            if active.seen < matcher.skip {
                active.seen += 1;
                continue;
            }
            if matcher.times != 0 && active.affected >= matcher.times {
                continue;
            }
            active.affected += 1;
            match &active.fault {
                Fault::Status { status, .. } => {
                    effects.status.get_or_insert(*status);
                }
                Fault::Slow { delay, .. } => effects.delay += *delay,
                Fault::LostResponse { .. } => effects.lost = true,
                Fault::StuckNew { .. } | Fault::Unlisted { .. } => {}
            }
        }
        effects
    }

    /// Whether a droplet created at `created` is still hidden by an [`Fault::Unlisted`].
    pub(crate) fn unlisted(&self, name: &str, created: Instant, now: Instant) -> bool {
        self.active.iter().any(|a| {
            matches!(&a.fault, Fault::Unlisted { name: n, delay }
                if n == name && now.saturating_duration_since(created) < *delay)
        })
    }

    pub(crate) fn stuck(&self, name: &str) -> bool {
        self.active
            .iter()
            .any(|a| matches!(&a.fault, Fault::StuckNew { name: n } if n == name))
    }
}

impl State {
    pub(crate) fn new(config: Config) -> State {
        State {
            config,
            faults: Faults::default(),
            requests: Vec::new(),
            counts: Counts::default(),
            limits: RateLimits::default(),
            droplets: BTreeMap::new(),
            actions: BTreeMap::new(),
            ssh_keys: Vec::new(),
            tags: BTreeSet::new(),
            vpcs: Vec::new(),
            firewalls: Vec::new(),
            public_issued: 0,
            ids: Ids {
                droplet: FIRST_DROPLET_ID,
                action: FIRST_ACTION_ID,
                ssh_key: FIRST_SSH_KEY_ID,
                uuid: 1,
                request: 1,
                resets: 0,
            },
        }
    }

    pub(crate) fn reset(&mut self) {
        let mut ids = self.ids.clone();
        ids.resets += 1;
        *self = State {
            ids,
            ..State::new(self.config.clone())
        };
    }

    /// Records a request that has arrived; returns where its status goes.
    pub(crate) fn record(&mut self, request: RecordedRequest) -> (u64, usize) {
        self.requests.push(request);
        (self.ids.resets, self.requests.len() - 1)
    }

    /// Sets the status of a recorded request, unless a reset has forgotten it since.
    pub(crate) fn record_status(&mut self, (resets, index): (u64, usize), status: u16) {
        if resets == self.ids.resets
            && let Some(request) = self.requests.get_mut(index)
        {
            request.status = status;
        }
    }

    pub(crate) fn next_droplet_id(&mut self) -> u64 {
        self.ids.droplet += 1;
        self.ids.droplet - 1
    }

    pub(crate) fn next_action_id(&mut self) -> u64 {
        self.ids.action += 1;
        self.ids.action - 1
    }

    pub(crate) fn next_ssh_key_id(&mut self) -> u64 {
        self.ids.ssh_key += 1;
        self.ids.ssh_key - 1
    }

    pub(crate) fn next_uuid(&mut self) -> String {
        self.ids.uuid += 1;
        uuid(self.ids.uuid - 1)
    }

    /// A `request_id` for an error body (from its own sequence, so resource ids do not
    /// depend on how many requests came before).
    pub(crate) fn next_request_id(&mut self) -> String {
        self.ids.request += 1;
        uuid((1 << 62) + self.ids.request - 1)
    }

    /// The next public address: 127.1.0.1, 127.1.0.2, … (never 127.0.0.1, never a .0 or .255).
    pub(crate) fn next_public_ip(&mut self) -> String {
        let n = self.public_issued;
        self.public_issued += 1;
        // 254 usable last octets per /24, 256 /24s per /16, starting at 127.1.0.0/16.
        let last = n % 254 + 1;
        let third = (n / 254) % 256;
        let second = 1 + (n / 254 / 256) % 255;
        format!("127.{second}.{third}.{last}")
    }

    /// Forgets droplets whose deletion is older than `delete_delay`.
    pub(crate) fn purge(&mut self, now: Instant) {
        let delay = self.config.delete_delay;
        self.droplets
            .retain(|_, d| d.deleted.is_none_or(|at| now.duration_since(at) < delay));
    }

    /// Droplets not deleted (the ones that count against the droplet limit).
    pub(crate) fn live_droplets(&self) -> usize {
        self.droplets
            .values()
            .filter(|d| d.deleted.is_none())
            .count()
    }

    pub(crate) fn is_active(&self, droplet: &Droplet, now: Instant) -> bool {
        now.duration_since(droplet.created) >= self.config.active_delay
            && !self.faults.stuck(&droplet.name)
    }

    /// Whether an action (not a create) is complete: `action_delay` after it started.
    pub(crate) fn action_done(&self, action: &Action, now: Instant) -> bool {
        now.duration_since(action.started) >= self.config.action_delay
    }

    /// The droplet's pending action when it is complete (its effect then shows).
    fn completed_pending(&self, droplet: &Droplet, now: Instant) -> Option<&Action> {
        droplet
            .pending
            .and_then(|id| self.actions.get(&id))
            .filter(|a| self.action_done(a, now))
    }

    /// The droplet as it shows at `now`.
    pub(crate) fn droplet_view<'d>(&'d self, d: &'d Droplet, now: Instant) -> DropletView<'d> {
        let mut view = DropletView {
            status: if d.powered_off { "off" } else { "active" },
            locked: d.pending.is_some(),
            size: &d.size,
            disk_gb: d.disk_gb,
            applied: false,
        };
        if let Some(action) = self.completed_pending(d, now) {
            view.locked = false;
            view.applied = true;
            match &action.kind {
                ActionKind::PowerOff | ActionKind::Shutdown => view.status = "off",
                ActionKind::PowerOn => view.status = "active",
                ActionKind::Resize { size, disk } => {
                    view.size = size;
                    if *disk {
                        view.disk_gb = SizeSpec::from_slug(size).disk_gb;
                    }
                }
                ActionKind::Create => {}
            }
        }
        if d.deleted.is_some() {
            // Deleted: off until it is gone, whatever it was doing.
            view.status = "off";
            view.locked = false;
        } else if !self.is_active(d, now) {
            view.status = "new";
            view.locked = true;
        }
        view
    }

    /// Folds the droplet's pending action into its settled fields once it is complete.
    pub(crate) fn settle(&mut self, droplet_id: u64, now: Instant) {
        let Some(droplet) = self.droplets.get(&droplet_id) else {
            return;
        };
        let Some(kind) = self.completed_pending(droplet, now).map(|a| a.kind.clone()) else {
            return;
        };
        let Some(droplet) = self.droplets.get_mut(&droplet_id) else {
            return;
        };
        match kind {
            ActionKind::PowerOff | ActionKind::Shutdown => droplet.powered_off = true,
            ActionKind::PowerOn => droplet.powered_off = false,
            ActionKind::Resize { size, disk } => {
                if disk {
                    droplet.disk_gb = SizeSpec::from_slug(&size).disk_gb;
                }
                droplet.size = size;
            }
            ActionKind::Create => {}
        }
        droplet.pending = None;
        *droplet.rendered.get_mut() = None;
    }

    pub(crate) fn vpc(&self, id: &str) -> Option<&Vpc> {
        self.vpcs.iter().find(|v| v.id == id)
    }

    /// Droplets (deleted ones included until they are gone) in the VPC.
    pub(crate) fn vpc_members(&self, id: &str) -> impl Iterator<Item = &Droplet> {
        self.droplets.values().filter(move |d| d.vpc_uuid == id)
    }

    /// A free /20 at 10.N.0.0 (N from 100 up), the way DigitalOcean picks ranges.
    pub(crate) fn free_range(&self) -> Option<Cidr> {
        (100..=255u32)
            .chain(1..100)
            .map(|n| Cidr {
                network: (10 << 24) | (n << 16),
                prefix: 20,
            })
            .find(|candidate| !self.vpcs.iter().any(|v| v.range.overlaps(*candidate)))
    }

    /// The region's default VPC, created on first use.
    pub(crate) fn default_vpc(&mut self, region: &str) -> Option<String> {
        if let Some(vpc) = self.vpcs.iter().find(|v| v.default && v.region == region) {
            return Some(vpc.id.clone());
        }
        let range = self.free_range()?;
        let id = self.next_uuid();
        self.vpcs.push(Vpc {
            id: id.clone(),
            name: format!("default-{region}"),
            description: String::new(),
            region: region.to_owned(),
            range,
            default: true,
            created_wall: SystemTime::now(),
            hosts_issued: 0,
        });
        Some(id)
    }

    // Rendering: the JSON objects the API returns.

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
    fn public_addresses_skip_network_and_broadcast() {
        let mut state = State::new(Config::default());
        assert_eq!(state.next_public_ip(), "127.1.0.1");
        for _ in 0..252 {
            state.next_public_ip();
        }
        assert_eq!(state.next_public_ip(), "127.1.0.254");
        assert_eq!(state.next_public_ip(), "127.1.1.1");
    }

    #[test]
    fn sizes_from_slugs() {
        let s = SizeSpec::from_slug("s-2vcpu-4gb");
        assert_eq!((s.vcpus, s.memory_mb, s.disk_gb), (2, 4096, 100));
        let s = SizeSpec::from_slug("whatever");
        assert_eq!((s.vcpus, s.memory_mb), (1, 1024));
        let s = SizeSpec::from_slug("s-1vcpu-512mb-10gb");
        assert_eq!((s.vcpus, s.memory_mb), (1, 512));
    }

    #[test]
    fn reset_keeps_id_sequences() {
        let mut state = State::new(Config::default());
        let first = state.next_droplet_id();
        state.reset();
        assert!(state.next_droplet_id() > first);
    }
}
