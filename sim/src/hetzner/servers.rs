//! `/v1/servers` but the create (in `create`): listing (`name`, `label_selector`, `status`,
//! `sort`, pages), reading, renaming and relabelling, and deleting, which answers with a
//! `delete_server` action; the server shows as `deleting` until `delete_delay` has passed,
//! then is gone.

use serde_json::json;

use super::body::{Filter, object, path_id};
use super::family::{self, Changes, Family, list_kept};
use super::render::{hidden, server_json, server_status};
use super::store::{ActionKind, Server};
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;
use crate::util::valid_hostname;

const STATUSES: &[&str] = &[
    "running",
    "initializing",
    "starting",
    "stopping",
    "off",
    "deleting",
    "migrating",
    "rebuilding",
    "unknown",
];

pub(super) fn list(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let filter = Filter::new(call)?;
    let statuses: Vec<&str> = call.params("status").collect();
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(s)) {
        return Err(HzError::invalid(
            "status",
            format!("unknown status `{bad}`"),
        ));
    }
    list_kept::<Server>(state, call, &filter, |s| {
        !hidden(state, s, call.now)
            && (statuses.is_empty() || statuses.contains(&server_status(state, s, call.now)))
    })
}

/// The server `id` as a client may see it: not gone, not hidden by a fault.
fn visible<'s>(state: &'s State, call: &Call, id: &str) -> Result<&'s Server, HzError> {
    let id = path_id(id)?;
    state
        .hetzner
        .servers
        .get(&id)
        .filter(|s| !hidden(state, s, call.now))
        .ok_or_else(HzError::not_found)
}

pub(super) fn get(state: &mut State, call: &Call, id: &str) -> Result<Reply, HzError> {
    let server = visible(state, call, id)?;
    reply(200, json!({"server": server_json(state, server, call.now)}))
}

/// Checks a server name: a valid host name, not taken by another server.
pub(super) fn check_name(state: &State, name: &str, except: Option<u64>) -> Result<(), HzError> {
    if !valid_hostname(name) {
        return Err(HzError::invalid(
            "name",
            "must be a valid hostname (RFC 1123: letters, digits, periods and dashes)",
        ));
    }
    family::check_name::<Server>(state, name, except)
}

/// `PUT /servers/{id}`: `name` and `labels` (which replace the old ones).
pub(super) fn update(state: &mut State, call: &Call, id: &str) -> Result<Reply, HzError> {
    let body = object(call)?;
    let id = visible(state, call, id)?.id;
    let changes = Changes::read(&body, Server::NAME_MAX, |name| {
        check_name(state, name, Some(id))
    })?;
    let server = state
        .hetzner
        .servers
        .get_mut(&id)
        .ok_or_else(HzError::not_found)?;
    changes.apply(server);
    let server = visible(state, call, &id.to_string())?;
    reply(200, json!({"server": server_json(state, server, call.now)}))
}

/// `DELETE /servers/{id}`: 200 with the `delete_server` action. Deleting a server that is
/// already `deleting` answers with the same action again.
pub(super) fn delete(state: &mut State, call: &Call, id: &str) -> Result<Reply, HzError> {
    let server = family::find::<Server>(state, id)?;
    let id = server.id;
    let action = match server.delete_action {
        Some(action) => action,
        None => {
            let action = state.hetzner.add_action(
                "delete_server",
                ActionKind::Delete(id),
                vec![(id, "server")],
                call.now,
            );
            if let Some(server) = state.hetzner.servers.get_mut(&id) {
                server.deleted = Some(call.now);
                server.delete_action = Some(action);
            }
            action
        }
    };
    super::actions::answer(state, call, action)
}
