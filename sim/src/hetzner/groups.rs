//! `/v1/placement_groups`: spread placement groups (at most 10 servers each, which the server
//! create enforces), listed by `name`, `label_selector` or `type`. Names are unique (409
//! `uniqueness_error`). Deleting a group that still holds servers (deleted ones too, until
//! they are gone) is 422 `resource_in_use`: the spec says nothing of it, and a refusal is what
//! a client must be ready for.

use std::time::SystemTime;

use serde_json::json;

use super::body::{Filter, labels, object, opt_str, path_id, sort};
use super::page::paginate;
use super::render::group_json;
use super::store::PlacementGroup;
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;

const NAME_MAX: usize = 255;

pub(super) fn list(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let filter = Filter::new(call)?;
    let types: Vec<&str> = call.params("type").collect();
    if let Some(bad) = types.iter().find(|t| **t != "spread") {
        return Err(HzError::invalid("type", format!("unknown type `{bad}`")));
    }
    let mut groups: Vec<&PlacementGroup> = state
        .hetzner
        .placement_groups
        .values()
        .filter(|g| filter.keeps(&g.name, &g.labels))
        .collect();
    sort(call, &mut groups, |g| (g.id, g.name.as_str()));
    paginate(call, "placement_groups", &groups, |g| {
        group_json(&state.hetzner, g)
    })
}

fn find(state: &State, id: &str) -> Result<u64, HzError> {
    let id = path_id(id)?;
    match state.hetzner.placement_groups.contains_key(&id) {
        true => Ok(id),
        false => Err(HzError::not_found()),
    }
}

pub(super) fn get(state: &mut State, id: &str) -> Result<Reply, HzError> {
    let id = find(state, id)?;
    let g = &state.hetzner.placement_groups[&id];
    reply(
        200,
        json!({"placement_group": group_json(&state.hetzner, g)}),
    )
}

fn check_name(state: &State, name: &str, except: Option<u64>) -> Result<(), HzError> {
    if state
        .hetzner
        .placement_groups
        .values()
        .any(|g| g.name == name && Some(g.id) != except)
    {
        return Err(HzError::uniqueness(
            "name",
            "placement group name is already used",
        ));
    }
    Ok(())
}

/// `POST /placement_groups`: 201 `{placement_group, action: null}`.
pub(super) fn create(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let body = object(call)?;
    let name = super::body::name(&body, NAME_MAX)?
        .ok_or_else(|| HzError::invalid("name", "is required"))?
        .to_owned();
    if opt_str(&body, "type")? != Some("spread") {
        return Err(HzError::invalid("type", "must be spread"));
    }
    let labels = labels(&body)?;
    check_name(state, &name, None)?;
    let id = state.hetzner.next_placement_group_id();
    state.hetzner.placement_groups.insert(
        id,
        PlacementGroup {
            id,
            name,
            labels,
            created_wall: SystemTime::now(),
        },
    );
    let g = &state.hetzner.placement_groups[&id];
    reply(
        201,
        json!({"placement_group": group_json(&state.hetzner, g), "action": null}),
    )
}

/// `PUT /placement_groups/{id}`: `name` and `labels`.
pub(super) fn update(state: &mut State, call: &Call, id: &str) -> Result<Reply, HzError> {
    let body = object(call)?;
    let id = find(state, id)?;
    let name = super::body::name(&body, NAME_MAX)?;
    if let Some(name) = name {
        check_name(state, name, Some(id))?;
    }
    let labels = body
        .contains_key("labels")
        .then(|| labels(&body))
        .transpose()?;
    let g = state
        .hetzner
        .placement_groups
        .get_mut(&id)
        .ok_or_else(HzError::not_found)?;
    if let Some(name) = name {
        g.name = name.to_owned();
    }
    if let Some(labels) = labels {
        g.labels = labels;
    }
    let g = &state.hetzner.placement_groups[&id];
    reply(
        200,
        json!({"placement_group": group_json(&state.hetzner, g)}),
    )
}

pub(super) fn delete(state: &mut State, id: &str) -> Result<Reply, HzError> {
    let id = find(state, id)?;
    if state
        .hetzner
        .servers
        .values()
        .any(|s| s.placement_group == Some(id))
    {
        return Err(HzError::unprocessable(
            "resource_in_use",
            "placement group still contains servers",
        ));
    }
    state.hetzner.placement_groups.remove(&id);
    Ok(Reply {
        status: 204,
        body: None,
    })
}
