//! The Hetzner Cloud personality (`Config::api == Api::Hetzner`): the part of the API under
//! `/v1` a provisioner needs, in the shapes of the spec (`shared/hetzner-cloud-openapi.json`)
//! and with the rules of the real API. The request pipeline (record, authenticate, rate-limit
//! with a token bucket, faults, answer) is `server`'s, shared with DigitalOcean; this module
//! routes a request and answers it.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET/POST /servers`, `GET/PUT/DELETE /servers/{id}` | 200 / 201 `{server, action, next_actions, root_password}` / 200 `{action}` |
//! | `GET /actions?id=…`, `GET /actions/{id}` | 200 |
//! | `GET/POST /networks`, `GET/PUT/DELETE /networks/{id}` | 200 / 201 / 204 |
//! | `GET/POST /firewalls`, `GET/PUT/DELETE /firewalls/{id}` | 200 / 201 `{firewall, actions}` / 204 |
//! | `POST /firewalls/{id}/actions/{set_rules, apply_to_resources, remove_from_resources}` | 201 `{actions}` |
//! | `GET/POST /ssh_keys`, `GET/PUT/DELETE /ssh_keys/{id}` | 200 / 201 / 204 |
//! | `GET/POST /placement_groups`, `GET/PUT/DELETE /placement_groups/{id}` | 200 / 201 / 204 |
//! | `GET /locations`, `/server_types`, `/images` (and each by id) | 200 |
//!
//! Anything else under `/v1` is 404 `not_found`. Every change is checked completely before
//! anything changes; errors are `{"error": {"code", "message", "details"}}` ([`HzError`]).
//!
//! Files: `store` keeps the resources, `render` turns servers and actions into JSON, `family`
//! handles what the resource families do alike (list, get by id, rename and relabel, delete),
//! one file per family handles the rest of its endpoints (`servers` and `create`, `networks`,
//! `firewalls` with `rules`, `keys`, `groups`, `actions`, `catalog`), and `body`, `labels`,
//! `page` read requests and cut pages.

mod actions;
mod body;
mod catalog;
mod create;
mod error;
mod family;
mod firewalls;
mod groups;
mod keys;
mod labels;
mod networks;
mod page;
mod render;
mod rules;
mod servers;
mod store;

use serde_json::Value as Json;
use tokio::time::Instant;

pub(crate) use error::HzError;
pub(crate) use store::Store;

use crate::api::{Call, Reply};
use crate::state::State;
use crate::types::HetznerSnapshot;
use crate::util::percent_decode;
use family::Family;
use store::{Firewall, Network, PlacementGroup, Server, SshKey};

/// A JSON answer.
pub(crate) fn reply(status: u16, body: Json) -> Result<Reply, HzError> {
    Ok(Reply {
        status,
        body: Some(body.to_string()),
    })
}

/// Dispatches a `/v1` request.
pub(crate) fn route(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let delay = state.config.delete_delay;
    state.hetzner.purge(delay, call.now);
    let rest = call.path.strip_prefix("/v1/").unwrap_or("");
    let segments: Vec<String> = rest.split('/').map(|s| percent_decode(s, false)).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (call.method, segments.as_slice()) {
        ("GET", ["servers"]) => servers::list(state, call),
        ("POST", ["servers"]) => create::create_server(state, call),
        ("GET", ["servers", id]) => servers::get(state, call, id),
        ("PUT", ["servers", id]) => servers::update(state, call, id),
        ("DELETE", ["servers", id]) => servers::delete(state, call, id),
        ("GET", ["actions"]) => actions::list(state, call),
        ("GET", ["actions", id]) => actions::get(state, call, id),
        ("GET", ["networks"]) => family::list::<Network>(state, call),
        ("POST", ["networks"]) => networks::create(state, call),
        ("GET", ["networks", id]) => family::get::<Network>(state, call, id),
        ("PUT", ["networks", id]) => networks::update(state, call, id),
        ("DELETE", ["networks", id]) => networks::delete(state, id),
        ("GET", ["firewalls"]) => family::list::<Firewall>(state, call),
        ("POST", ["firewalls"]) => firewalls::create(state, call),
        ("GET", ["firewalls", id]) => family::get::<Firewall>(state, call, id),
        ("PUT", ["firewalls", id]) => family::rename::<Firewall>(state, call, id),
        ("DELETE", ["firewalls", id]) => firewalls::delete(state, id),
        ("POST", ["firewalls", id, "actions", action]) => {
            firewalls::action(state, call, id, action)
        }
        ("GET", ["ssh_keys"]) => keys::list(state, call),
        ("POST", ["ssh_keys"]) => keys::create(state, call),
        ("GET", ["ssh_keys", id]) => family::get::<SshKey>(state, call, id),
        ("PUT", ["ssh_keys", id]) => family::rename::<SshKey>(state, call, id),
        ("DELETE", ["ssh_keys", id]) => keys::delete(state, id),
        ("GET", ["placement_groups"]) => groups::list(state, call),
        ("POST", ["placement_groups"]) => groups::create(state, call),
        ("GET", ["placement_groups", id]) => family::get::<PlacementGroup>(state, call, id),
        ("PUT", ["placement_groups", id]) => family::rename::<PlacementGroup>(state, call, id),
        ("DELETE", ["placement_groups", id]) => groups::delete(state, id),
        ("GET", ["locations"]) => catalog::locations(call, None),
        ("GET", ["locations", id]) => catalog::locations(call, Some(id)),
        ("GET", ["server_types"]) => catalog::server_types(call, None),
        ("GET", ["server_types", id]) => catalog::server_types(call, Some(id)),
        ("GET", ["images"]) => catalog::images(call, None),
        ("GET", ["images", id]) => catalog::images(call, Some(id)),
        _ => Err(HzError::not_found()),
    }
}

/// Every Hetzner resource as the API renders it now, in id order (call after purging).
pub(crate) fn snapshot(state: &State, now: Instant) -> HetznerSnapshot {
    fn all<T: Family>(state: &State, now: Instant) -> Vec<Json> {
        T::all(&state.hetzner)
            .values()
            .map(|r| r.json(state, now))
            .collect()
    }
    HetznerSnapshot {
        servers: all::<Server>(state, now),
        networks: all::<Network>(state, now),
        firewalls: all::<Firewall>(state, now),
        ssh_keys: all::<SshKey>(state, now),
        placement_groups: all::<PlacementGroup>(state, now),
    }
}
