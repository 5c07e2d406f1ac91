//! `/v1/placement_groups`: spread placement groups (at most 10 servers each, which the server
//! create enforces), listed by `name`, `label_selector` or `type`. Names are unique (409
//! `uniqueness_error`). Deleting a group that still holds servers (deleted ones too, until
//! they are gone) is 422 `resource_in_use`: the spec says nothing of it, and a refusal is what
//! a client must be ready for.

use std::time::SystemTime;

use serde_json::json;

use super::body::{Filter, labels, object, opt_str};
use super::family::{self, check_name, in_use, insert, list_kept, new_name};
use super::store::PlacementGroup;
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;

pub(super) fn list(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let filter = Filter::new(call)?;
    let types: Vec<&str> = call.params("type").collect();
    if let Some(bad) = types.iter().find(|t| **t != "spread") {
        return Err(HzError::invalid("type", format!("unknown type `{bad}`")));
    }
    list_kept::<PlacementGroup>(state, call, &filter, |_| true)
}

/// `POST /placement_groups`: 201 `{placement_group, action: null}`.
pub(super) fn create(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let body = object(call)?;
    let name = new_name::<PlacementGroup>(&body)?;
    if opt_str(&body, "type")? != Some("spread") {
        return Err(HzError::invalid("type", "must be spread"));
    }
    let labels = labels(&body)?;
    check_name::<PlacementGroup>(state, &name, None)?;
    let (_, rendered) = insert(state, call, |id| PlacementGroup {
        id,
        name,
        labels,
        created_wall: SystemTime::now(),
    });
    reply(201, json!({"placement_group": rendered, "action": null}))
}

pub(super) fn delete(state: &mut State, id: &str) -> Result<Reply, HzError> {
    family::delete::<PlacementGroup>(state, id, |store, id| {
        let used = store
            .servers
            .values()
            .any(|s| s.placement_group == Some(id));
        in_use(used, "placement group still contains servers")
    })
}
