//! Rendering servers and actions: a server's status from its age, the configuration and the
//! faults; an action's status and progress from what it waits for; and the JSON of both in
//! the shapes of the spec (every required property, with its type).

use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::time::Instant;

use super::catalog::{datacenter_json, image_json, location_json, server_type_json};
use super::store::{Action, ActionKind, Server, Store};
use crate::state::State;
use crate::util::rfc3339;

/// 20 TB, the traffic included with every server type.
const INCLUDED_TRAFFIC: u64 = 21_990_232_555_520;

/// `initializing` for the first half of `active_delay`, `starting` for the second half (and
/// for as long as a [`crate::Fault::StuckNew`] holds it), then `running`, or `off` when it
/// was created with `start_after_create: false`; `deleting` once deleted.
pub(crate) fn server_status(state: &State, s: &Server, now: Instant) -> &'static str {
    if s.deleted.is_some() {
        return "deleting";
    }
    let age = now.saturating_duration_since(s.created);
    let delay = state.config.active_delay;
    if age < delay / 2 {
        "initializing"
    } else if age < delay || state.faults.stuck(&s.name) {
        "starting"
    } else if s.start_after_create {
        "running"
    } else {
        "off"
    }
}

/// Whether a server is hidden by a [`crate::Fault::Unlisted`] (missing from lists, 404).
pub(crate) fn hidden(state: &State, s: &Server, now: Instant) -> bool {
    state.faults.unlisted(&s.name, s.created, now)
}

pub(crate) fn server_json(state: &State, s: &Server, now: Instant) -> Json {
    let store = &state.hetzner;
    let firewalls: Vec<Json> = store
        .firewalls
        .values()
        .filter(|f| s.public() && Store::applies(f, s))
        .map(|f| json!({"id": f.id, "status": "applied"}))
        .collect();
    let ipv4 = match &s.ipv4 {
        Some(ip) => {
            let reversed: Vec<&str> = ip.split('.').rev().collect();
            json!({
                "ip": ip,
                "blocked": false,
                "dns_ptr": format!("static.{}.clients.your-server.de", reversed.join(".")),
            })
        }
        None => Json::Null,
    };
    let ipv6 = match &s.ipv6 {
        Some(net) => json!({"ip": net, "blocked": false, "dns_ptr": []}),
        None => Json::Null,
    };
    let private_net: Vec<Json> = s
        .private_net
        .iter()
        .map(|p| json!({"network": p.network, "ip": p.ip, "alias_ips": [], "mac_address": p.mac}))
        .collect();
    let placement_group = match s
        .placement_group
        .and_then(|id| store.placement_groups.get(&id))
    {
        Some(g) => group_json(store, g),
        None => Json::Null,
    };
    json!({
        "id": s.id,
        "name": s.name,
        "status": server_status(state, s, now),
        "created": rfc3339(s.created_wall),
        "public_net": {
            "ipv4": ipv4,
            "ipv6": ipv6,
            "floating_ips": [],
            "firewalls": firewalls,
        },
        "private_net": private_net,
        "server_type": server_type_json(s.server_type),
        "datacenter": datacenter_json(s.location),
        "location": location_json(s.location),
        "image": image_json(s.image.0, s.image.1),
        "iso": null,
        "rescue_enabled": false,
        "locked": false,
        "backup_window": null,
        "outgoing_traffic": 0,
        "ingoing_traffic": 0,
        "included_traffic": INCLUDED_TRAFFIC,
        "protection": {"delete": false, "rebuild": false},
        "labels": s.labels,
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": s.server_type.disk_gb,
        "placement_group": placement_group,
    })
}

/// A placement group, with the servers in it (deleted ones too, until they are gone).
pub(crate) fn group_json(store: &Store, g: &super::store::PlacementGroup) -> Json {
    let servers: Vec<u64> = store
        .servers
        .values()
        .filter(|s| s.placement_group == Some(g.id))
        .map(|s| s.id)
        .collect();
    json!({
        "id": g.id,
        "name": g.name,
        "labels": g.labels,
        "type": "spread",
        "servers": servers,
        "created": rfc3339(g.created_wall),
    })
}

/// Whether the action is complete, and how long it took when it is.
fn action_done(state: &State, a: &Action, now: Instant) -> Option<Duration> {
    let config = &state.config;
    let elapsed = now.saturating_duration_since(a.started);
    match a.kind {
        ActionKind::Create(id) => match state.hetzner.servers.get(&id) {
            Some(s) if s.deleted.is_none() => {
                matches!(server_status(state, s, now), "running" | "off")
                    .then_some(config.active_delay)
            }
            // Deleted or gone: its creation finished when it would have.
            _ => (elapsed >= config.active_delay).then_some(config.active_delay),
        },
        _ if state.faults.actions_stuck() => None,
        ActionKind::Delete(id) => {
            let gone = state.hetzner.servers.get(&id).is_none_or(|s| {
                s.deleted
                    .is_some_and(|at| now.saturating_duration_since(at) >= config.delete_delay)
            });
            gone.then_some(config.delete_delay)
        }
        ActionKind::Immediate => Some(Duration::ZERO),
    }
}

pub(crate) fn action_json(state: &State, a: &Action, now: Instant) -> Json {
    let resources: Vec<Json> = a
        .resources
        .iter()
        .map(|(id, kind)| json!({"id": id, "type": kind}))
        .collect();
    let (status, progress, finished) = match action_done(state, a, now) {
        Some(took) => ("success", 100, Json::String(rfc3339(a.started_wall + took))),
        None => {
            let total = match a.kind {
                ActionKind::Create(_) => state.config.active_delay,
                ActionKind::Delete(_) => state.config.delete_delay,
                ActionKind::Immediate => Duration::ZERO,
            };
            let elapsed = now.saturating_duration_since(a.started);
            let percent = if total.is_zero() {
                0
            } else {
                (elapsed.as_millis() * 100 / total.as_millis()).min(99)
            };
            ("running", percent as u64, Json::Null)
        }
    };
    json!({
        "id": a.id,
        "command": a.command,
        "status": status,
        "progress": progress,
        "started": rfc3339(a.started_wall),
        "finished": finished,
        "resources": resources,
        "error": null,
    })
}
