//! Hetzner's resources as the simulator keeps them: what each was created with and when. What
//! the API shows (a server's status, a network's servers, a firewall's resources, an action's
//! progress) is derived when rendered, from the current time, configuration and faults.
//!
//! Membership lives on one side only: a server holds its private networks and its placement
//! group; a firewall holds what it applies to. A deleted server keeps all of it (and shows as
//! `deleting`) until `delete_delay` has passed, then [`Store::purge`] forgets it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value as Json;
use tokio::time::Instant;

use super::catalog::{Location, ServerType};
use super::family::Family;
use super::labels::{Labels, Selector};
use crate::util::Cidr;

/// Where identifiers start, so that ids of different kinds are told apart at a glance.
const FIRST: Ids = Ids {
    server: 42_000_001,
    network: 3_100_001,
    firewall: 1_600_001,
    ssh_key: 2_900_001,
    placement_group: 410_001,
    action: 700_000_001,
};

pub(crate) struct Server {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) server_type: &'static ServerType,
    /// The image's name and the id of the image of the server's architecture.
    pub(crate) image: (&'static super::catalog::Image, u64),
    pub(crate) location: &'static Location,
    pub(crate) labels: Labels,
    pub(crate) ipv4: Option<String>,
    /// The /64 of the server, as `2001:db8:0:N::/64`.
    pub(crate) ipv6: Option<String>,
    pub(crate) private_net: Vec<PrivateNet>,
    pub(crate) placement_group: Option<u64>,
    pub(crate) start_after_create: bool,
    pub(crate) has_ssh_keys: bool,
    pub(crate) created: Instant,
    pub(crate) created_wall: SystemTime,
    pub(crate) deleted: Option<Instant>,
    /// The `delete_server` action, once deleted.
    pub(crate) delete_action: Option<u64>,
}

impl Server {
    /// Whether the server has a public interface (what a firewall applies to).
    pub(crate) fn public(&self) -> bool {
        self.ipv4.is_some() || self.ipv6.is_some()
    }
}

pub(crate) struct PrivateNet {
    pub(crate) network: u64,
    pub(crate) ip: String,
    pub(crate) mac: String,
}

pub(crate) struct Network {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) ip_range: Cidr,
    pub(crate) subnets: Vec<Subnet>,
    /// `(destination, gateway)`.
    pub(crate) routes: Vec<(String, String)>,
    pub(crate) labels: Labels,
    pub(crate) expose_routes_to_vswitch: bool,
    pub(crate) created_wall: SystemTime,
}

pub(crate) struct Subnet {
    /// `cloud`, `server` or `vswitch`.
    pub(crate) kind: String,
    pub(crate) zone: String,
    pub(crate) range: Cidr,
    pub(crate) vswitch_id: Option<u64>,
    /// Addresses handed out so far (servers get `.2`, `.3`, …).
    pub(crate) issued: u32,
}

pub(crate) struct Firewall {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) labels: Labels,
    /// Rules as the API renders them (checked and normalized when set).
    pub(crate) rules: Vec<Json>,
    pub(crate) applied_to: Vec<Target>,
    pub(crate) created_wall: SystemTime,
}

/// What a firewall applies to.
pub(crate) enum Target {
    Server(u64),
    /// The selector as written, and parsed.
    Selector(String, Selector),
}

pub(crate) struct SshKey {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) public_key: String,
    pub(crate) fingerprint: String,
    pub(crate) labels: Labels,
    pub(crate) created_wall: SystemTime,
}

pub(crate) struct PlacementGroup {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) labels: Labels,
    pub(crate) created_wall: SystemTime,
}

pub(crate) struct Action {
    pub(crate) id: u64,
    pub(crate) command: &'static str,
    pub(crate) kind: ActionKind,
    /// `(id, type)` of each resource the action is about.
    pub(crate) resources: Vec<(u64, &'static str)>,
    pub(crate) started: Instant,
    pub(crate) started_wall: SystemTime,
}

/// When an action is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActionKind {
    /// `create_server` and `start_server`: when the server is `running` (or `off`).
    Create(u64),
    /// `delete_server`: when the server is gone.
    Delete(u64),
    /// Firewall actions: at once.
    Immediate,
}

/// Identifier sequences; they survive a reset.
#[derive(Clone)]
pub(crate) struct Ids {
    pub(super) server: u64,
    pub(super) network: u64,
    pub(super) firewall: u64,
    pub(super) ssh_key: u64,
    pub(super) placement_group: u64,
    action: u64,
}

pub(crate) struct Store {
    pub(crate) servers: BTreeMap<u64, Server>,
    pub(crate) networks: BTreeMap<u64, Network>,
    pub(crate) firewalls: BTreeMap<u64, Firewall>,
    pub(crate) ssh_keys: BTreeMap<u64, SshKey>,
    pub(crate) placement_groups: BTreeMap<u64, PlacementGroup>,
    pub(crate) actions: BTreeMap<u64, Action>,
    /// Public addresses handed out so far (from 127.2.0.1 upwards).
    public_issued: u32,
    pub(crate) ids: Ids,
}

fn next(counter: &mut u64) -> u64 {
    *counter += 1;
    *counter - 1
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            servers: BTreeMap::new(),
            networks: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            ssh_keys: BTreeMap::new(),
            placement_groups: BTreeMap::new(),
            actions: BTreeMap::new(),
            public_issued: 0,
            ids: FIRST,
        }
    }

    /// The next id of family `T`.
    pub(crate) fn next_id<T: Family>(&mut self) -> u64 {
        next(T::ids(&mut self.ids))
    }

    /// Records a new action and returns its id.
    pub(crate) fn add_action(
        &mut self,
        command: &'static str,
        kind: ActionKind,
        resources: Vec<(u64, &'static str)>,
        now: Instant,
    ) -> u64 {
        let id = next(&mut self.ids.action);
        self.actions.insert(
            id,
            Action {
                id,
                command,
                kind,
                resources,
                started: now,
                started_wall: SystemTime::now(),
            },
        );
        id
    }

    /// The next public address: 127.2.0.1, 127.2.0.2, … (never 127.0.0.1, never a .0 or .255).
    pub(crate) fn next_public_ip(&mut self) -> String {
        let n = self.public_issued;
        self.public_issued += 1;
        let last = n % 254 + 1;
        let third = (n / 254) % 256;
        let second = 2 + (n / 254 / 256) % 254;
        format!("127.{second}.{third}.{last}")
    }

    /// Forgets servers whose deletion is older than `delay`.
    pub(crate) fn purge(&mut self, delay: std::time::Duration, now: Instant) {
        self.servers
            .retain(|_, s| s.deleted.is_none_or(|at| now.duration_since(at) < delay));
    }

    /// Servers not deleted (the ones that count against the server limit).
    pub(crate) fn live_servers(&self) -> usize {
        self.servers
            .values()
            .filter(|s| s.deleted.is_none())
            .count()
    }

    /// Whether firewall `f` applies to server `s`, directly or by a label selector.
    pub(crate) fn applies(f: &Firewall, s: &Server) -> bool {
        f.applied_to.iter().any(|t| match t {
            Target::Server(id) => *id == s.id,
            Target::Selector(_, selector) => selector.matches(&s.labels),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_start_at_127_2() {
        let mut store = Store::new();
        assert_eq!(store.next_public_ip(), "127.2.0.1");
        for _ in 0..253 {
            store.next_public_ip();
        }
        assert_eq!(store.next_public_ip(), "127.2.1.1");
    }
}
