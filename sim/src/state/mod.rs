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
//!
//! This module owns [`State`] itself: identifier sequences, droplet timing and settling, and
//! VPC address ranges. The resource records are in `resources`, injected faults in `faults`,
//! and the JSON the API shows for each resource in `render`. The Hetzner personality's
//! resources are in [`State::hetzner`] (`crate::hetzner::Store`).

mod faults;
mod render;
mod resources;

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use tokio::time::Instant;

use crate::ratelimit::RateLimits;
use crate::types::{Config, Counts, RecordedRequest};
use crate::util::{Cidr, uuid};

pub(crate) use faults::Faults;
pub(crate) use render::SizeSpec;
pub(crate) use resources::{Action, ActionKind, Droplet, DropletView, Firewall, SshKey, Vpc};

/// Where identifiers start, so that ids of different kinds are told apart at a glance.
const FIRST_DROPLET_ID: u64 = 300_000_001;
const FIRST_ACTION_ID: u64 = 900_000_001;
const FIRST_SSH_KEY_ID: u64 = 510_001;

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
    /// The Hetzner personality's resources.
    pub(crate) hetzner: crate::hetzner::Store,
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
            hetzner: crate::hetzner::Store::new(),
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
        let hetzner_ids = self.hetzner.ids.clone();
        *self = State {
            ids,
            ..State::new(self.config.clone())
        };
        self.hetzner.ids = hetzner_ids;
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
            && !self.faults.actions_stuck()
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
    fn reset_keeps_id_sequences() {
        let mut state = State::new(Config::default());
        let first = state.next_droplet_id();
        state.reset();
        assert!(state.next_droplet_id() > first);
    }
}
