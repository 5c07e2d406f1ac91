//! `/v1/firewalls`: firewalls, their rules (in `rules`) and what they apply to: servers, and
//! label selectors (rendered with the servers they match in `applied_to_resources`). The
//! actions `set_rules`, `apply_to_resources` and `remove_from_resources` answer 201 with
//! actions that are complete at once (unless [`crate::Fault::StuckActions`] holds them).
//!
//! Refusals, as the spec lists them: a server that does not exist is 422
//! `firewall_resource_not_found` in a create and 404 in the actions; a server given twice is
//! 422 `server_already_added`, applied twice 422 `firewall_already_applied`; a server with no
//! public interface 422 `private_net_only_server`; removing a server the firewall reaches only
//! through a label selector 422 `firewall_managed_by_label_selector`; deleting a firewall that
//! still applies to anything (a server not yet gone, or a label selector) 422
//! `resource_in_use`.

use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::body::{labels, object, opt_array};
use super::family::{self, check_name, find, in_use, insert, new_name};
use super::render::action_json;
use super::rules::{Resource, parse_resources, parse_rules};
use super::store::{ActionKind, Firewall, Store, Target};
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;
use crate::util::rfc3339;

pub(crate) fn firewall_json(store: &Store, f: &Firewall) -> Json {
    let applied_to: Vec<Json> = f
        .applied_to
        .iter()
        .filter_map(|t| match t {
            Target::Server(id) => store
                .servers
                .contains_key(id)
                .then(|| json!({"type": "server", "server": {"id": id}})),
            Target::Selector(text, selector) => {
                let matched: Vec<Json> = store
                    .servers
                    .values()
                    .filter(|s| s.public() && selector.matches(&s.labels))
                    .map(|s| json!({"type": "server", "server": {"id": s.id}}))
                    .collect();
                Some(json!({
                    "type": "label_selector",
                    "label_selector": {"selector": text},
                    "applied_to_resources": matched,
                }))
            }
        })
        .collect();
    json!({
        "id": f.id,
        "name": f.name,
        "labels": f.labels,
        "rules": f.rules,
        "applied_to": applied_to,
        "created": rfc3339(f.created_wall),
    })
}

/// Checks resources to apply firewall `firewall` (None: one being created) to, and returns
/// them as targets. `missing` is the status of a server that does not exist (422 in a create,
/// 404 in the action).
fn targets(
    state: &State,
    firewall: Option<&Firewall>,
    resources: Vec<Resource>,
    missing: u16,
) -> Result<Vec<Target>, HzError> {
    let mut targets: Vec<Target> = Vec::new();
    for resource in resources {
        let present = |t: &Target| match (t, &resource) {
            (Target::Server(a), Resource::Server(b)) => a == b,
            (Target::Selector(a, _), Resource::Selector(b, _)) => a == b,
            _ => false,
        };
        if targets.iter().any(present) {
            return Err(HzError::unprocessable(
                "server_already_added",
                "a resource was given more than once",
            ));
        }
        if firewall.is_some_and(|f| f.applied_to.iter().any(present)) {
            return Err(HzError::unprocessable(
                "firewall_already_applied",
                "firewall is already applied to the resource",
            ));
        }
        match resource {
            Resource::Server(id) => {
                let server = state.hetzner.servers.get(&id).ok_or_else(|| {
                    HzError::new(
                        missing,
                        "firewall_resource_not_found",
                        format!("server {id} not found"),
                    )
                })?;
                if !server.public() {
                    return Err(HzError::unprocessable(
                        "private_net_only_server",
                        format!("server {id} has no public interface"),
                    ));
                }
                targets.push(Target::Server(id));
            }
            Resource::Selector(text, selector) => targets.push(Target::Selector(text, selector)),
        }
    }
    Ok(targets)
}

/// The servers among `targets`.
fn servers<'t>(targets: impl IntoIterator<Item = &'t Target>) -> Vec<u64> {
    targets
        .into_iter()
        .filter_map(|t| match t {
            Target::Server(id) => Some(*id),
            Target::Selector(..) => None,
        })
        .collect()
}

/// Records an action about `firewall` and `servers`, and renders it.
fn firewall_action(
    state: &mut State,
    command: &'static str,
    firewall: u64,
    servers: Vec<u64>,
    call: &Call,
) -> Json {
    let mut resources = vec![(firewall, "firewall")];
    resources.extend(servers.into_iter().map(|id| (id, "server")));
    let id = state
        .hetzner
        .add_action(command, ActionKind::Immediate, resources, call.now);
    action_json(state, &state.hetzner.actions[&id], call.now)
}

pub(super) fn create(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let body = object(call)?;
    let name = new_name::<Firewall>(&body)?;
    let labels = labels(&body)?;
    let rules = parse_rules(opt_array(&body, "rules")?)?;
    let resources = parse_resources(opt_array(&body, "apply_to")?, "apply_to")?;
    let applied_to = targets(state, None, resources, 422)?;
    check_name::<Firewall>(state, &name, None)?;
    let servers = servers(&applied_to);
    let applies = !applied_to.is_empty();
    let (id, rendered) = insert(state, call, |id| Firewall {
        id,
        name,
        labels,
        rules,
        applied_to,
        created_wall: SystemTime::now(),
    });
    let actions = if applies {
        vec![firewall_action(state, "apply_firewall", id, servers, call)]
    } else {
        Vec::new()
    };
    reply(201, json!({"firewall": rendered, "actions": actions}))
}

/// `DELETE /firewalls/{id}`: 204, or 422 `resource_in_use` while it applies to anything.
pub(super) fn delete(state: &mut State, id: &str) -> Result<Reply, HzError> {
    family::delete::<Firewall>(state, id, |store, id| {
        let used = store.firewalls[&id].applied_to.iter().any(|t| match t {
            Target::Server(server) => store.servers.contains_key(server),
            Target::Selector(..) => true,
        });
        in_use(used, "firewall is still applied to a resource")
    })
}

/// `POST /firewalls/{id}/actions/{set_rules, apply_to_resources, remove_from_resources}`.
pub(super) fn action(
    state: &mut State,
    call: &Call,
    id: &str,
    action: &str,
) -> Result<Reply, HzError> {
    let id = find::<Firewall>(state, id)?.id;
    let body = object(call)?;
    let required = |key: &str| match body.get(key) {
        Some(Json::Array(items)) => Ok(items.as_slice()),
        _ => Err(HzError::invalid(key, "is required (an array)")),
    };
    let action = match action {
        "set_rules" => {
            let rules = parse_rules(required("rules")?)?;
            if let Some(f) = state.hetzner.firewalls.get_mut(&id) {
                f.rules = rules;
            }
            firewall_action(state, "set_firewall_rules", id, Vec::new(), call)
        }
        "apply_to_resources" => {
            let resources = parse_resources(required("apply_to")?, "apply_to")?;
            let new = targets(state, state.hetzner.firewalls.get(&id), resources, 404)?;
            let servers = servers(&new);
            if let Some(f) = state.hetzner.firewalls.get_mut(&id) {
                f.applied_to.extend(new);
            }
            firewall_action(state, "apply_firewall", id, servers, call)
        }
        "remove_from_resources" => {
            let resources = parse_resources(required("remove_from")?, "remove_from")?;
            let store = &state.hetzner;
            let f = &store.firewalls[&id];
            let mut removed = Vec::new();
            for resource in &resources {
                let index = f.applied_to.iter().position(|t| match (t, resource) {
                    (Target::Server(a), Resource::Server(b)) => a == b,
                    (Target::Selector(a, _), Resource::Selector(b, _)) => a == b,
                    _ => false,
                });
                match (index, resource) {
                    (Some(index), _) => removed.push(index),
                    (None, Resource::Server(server))
                        if store
                            .servers
                            .get(server)
                            .is_some_and(|s| Store::applies(f, s)) =>
                    {
                        return Err(HzError::unprocessable(
                            "firewall_managed_by_label_selector",
                            format!("firewall reaches server {server} through a label selector"),
                        ));
                    }
                    (None, _) => {
                        return Err(HzError::new(
                            404,
                            "firewall_resource_not_found",
                            "the firewall is not applied to the resource",
                        ));
                    }
                }
            }
            let servers: Vec<u64> = resources
                .iter()
                .filter_map(|r| match r {
                    Resource::Server(s) => Some(*s),
                    Resource::Selector(..) => None,
                })
                .collect();
            if let Some(f) = state.hetzner.firewalls.get_mut(&id) {
                let mut index = 0;
                f.applied_to.retain(|_| {
                    index += 1;
                    !removed.contains(&(index - 1))
                });
            }
            firewall_action(state, "remove_firewall", id, servers, call)
        }
        _ => return Err(HzError::not_found()),
    };
    reply(201, json!({"actions": [action]}))
}
