//! `/v1/actions`: actions by id, one (`GET /actions/{id}`) or several (`GET
//! /actions?id=1&id=2`, the ones that exist, by id, paged). Listing every action without `id`
//! was removed from the API in January 2025 (the spec's `id` is required): it is 400
//! `invalid_input` here too.

use serde_json::json;

use super::body::path_id;
use super::page::paginate;
use super::render::action_json;
use super::store::Action;
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;

pub(super) fn list(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let mut ids = Vec::new();
    for text in call.params("id") {
        let id: u64 = text
            .parse()
            .map_err(|_| HzError::invalid("id", format!("`{text}` is not an action id")))?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(HzError::invalid("id", "is required: ask for actions by id"));
    }
    ids.sort_unstable();
    ids.dedup();
    let actions: Vec<&Action> = ids
        .iter()
        .filter_map(|id| state.hetzner.actions.get(id))
        .collect();
    paginate(call, "actions", &actions, |a| {
        action_json(state, a, call.now)
    })
}

pub(super) fn get(state: &mut State, call: &Call, id: &str) -> Result<Reply, HzError> {
    answer(state, call, path_id(id)?)
}

/// 200 `{action}`, or 404 when there is no action `id`.
pub(super) fn answer(state: &State, call: &Call, id: u64) -> Result<Reply, HzError> {
    let action = state
        .hetzner
        .actions
        .get(&id)
        .ok_or_else(HzError::not_found)?;
    reply(200, json!({"action": action_json(state, action, call.now)}))
}
