//! `/v2/tags`: tags, and tagging or untagging droplets through a tag's resources.

use serde_json::{Value as Json, json};

use super::droplets::parse_droplet_id;
use super::fields::{required_string, validate_tags};
use super::page::paginate;
use super::{ApiError, Call, Reply};
use crate::state::State;

pub(super) fn list_tags(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let tags: Vec<&String> = state.tags.iter().collect();
    paginate(call, "tags", &tags, |t| {
        state.tag_json(t, call.base).to_string()
    })
}

pub(super) fn create_tag(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let body = call.object()?;
    let name = required_string(&body, "name")?;
    validate_tags(std::slice::from_ref(&name))?;
    // Creating a tag that exists answers 201 with it, as the real API does.
    state.tags.insert(name.clone());
    Reply::json(201, json!({ "tag": state.tag_json(&name, call.base) }))
}

pub(super) fn get_tag(state: &mut State, call: &Call, name: &str) -> Result<Reply, ApiError> {
    if !state.tags.contains(name) {
        return Err(ApiError::not_found());
    }
    Reply::json(200, json!({ "tag": state.tag_json(name, call.base) }))
}

pub(super) fn delete_tag(state: &mut State, name: &str) -> Result<Reply, ApiError> {
    if !state.tags.remove(name) {
        return Err(ApiError::not_found());
    }
    for droplet in state.droplets.values_mut() {
        if droplet.tags.iter().any(|t| t == name) {
            droplet.tags.retain(|t| t != name);
            *droplet.rendered.get_mut() = None;
        }
    }
    Reply::no_content()
}

/// `POST|DELETE /v2/tags/{tag}/resources {resources: [{resource_id, resource_type}]}`:
/// tags or untags droplets (the only resource type the simulator has), 204.
pub(super) fn tag_resources(
    state: &mut State,
    call: &Call,
    name: &str,
    add: bool,
) -> Result<Reply, ApiError> {
    if !state.tags.contains(name) {
        return Err(ApiError::not_found());
    }
    let body = call.object()?;
    let Some(Json::Array(resources)) = body.get("resources") else {
        return Err(ApiError::unprocessable("resources is required."));
    };
    let mut ids = Vec::new();
    for r in resources {
        if r.get("resource_type").and_then(Json::as_str) != Some("droplet") {
            return Err(ApiError::unprocessable(
                "the simulator only tags droplets (resource_type \"droplet\").",
            ));
        }
        let id = r
            .get("resource_id")
            .and_then(Json::as_str)
            .and_then(parse_droplet_id)
            .filter(|id| state.droplets.contains_key(id))
            .ok_or_else(|| ApiError::unprocessable("resource_id names no droplet."))?;
        ids.push(id);
    }
    for id in ids {
        if let Some(droplet) = state.droplets.get_mut(&id) {
            let has = droplet.tags.iter().any(|t| t == name);
            if add && !has {
                droplet.tags.push(name.to_string());
            } else if !add && has {
                droplet.tags.retain(|t| t != name);
            }
            *droplet.rendered.get_mut() = None;
        }
    }
    Reply::no_content()
}
