//! `/v2/actions` and `/v2/droplets/{id}/actions`: reading actions, and the droplet actions the
//! simulator performs (power off, shutdown, power on, resize).

use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::droplets::parse_droplet_id;
use super::fields::{opt_bool, opt_string};
use super::page::paginate;
use super::{ApiError, Call, Reply};
use crate::state::{Action, ActionKind, SizeSpec, State};

pub(super) fn list_actions(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let actions: Vec<&Action> = state.actions.values().rev().collect();
    paginate(call, "actions", &actions, |a| {
        state.action_json(a, call.now).to_string()
    })
}

pub(super) fn get_action(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let action = id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.actions.get(&id))
        .ok_or_else(ApiError::not_found)?;
    Reply::json(
        200,
        json!({ "action": state.action_json(action, call.now) }),
    )
}

/// The droplet's actions (its create included), newest first; 404 once the droplet is gone.
pub(super) fn list_droplet_actions(
    state: &mut State,
    call: &Call,
    id: &str,
) -> Result<Reply, ApiError> {
    let id = parse_droplet_id(id)
        .filter(|id| state.droplets.contains_key(id))
        .ok_or_else(ApiError::not_found)?;
    let actions: Vec<&Action> = state
        .actions
        .values()
        .rev()
        .filter(|a| a.droplet_id == id)
        .collect();
    paginate(call, "actions", &actions, |a| {
        state.action_json(a, call.now).to_string()
    })
}

pub(super) fn get_droplet_action(
    state: &mut State,
    call: &Call,
    id: &str,
    action: &str,
) -> Result<Reply, ApiError> {
    let id = parse_droplet_id(id)
        .filter(|id| state.droplets.contains_key(id))
        .ok_or_else(ApiError::not_found)?;
    let action = action
        .parse::<u64>()
        .ok()
        .and_then(|a| state.actions.get(&a))
        .filter(|a| a.droplet_id == id)
        .ok_or_else(ApiError::not_found)?;
    Reply::json(
        200,
        json!({ "action": state.action_json(action, call.now) }),
    )
}

/// Every `type` the spec's `droplet_action` schema lists; the simulator does a few of them.
const SPEC_ACTION_TYPES: &[&str] = &[
    "enable_backups",
    "disable_backups",
    "change_backup_policy",
    "reboot",
    "power_cycle",
    "shutdown",
    "power_off",
    "power_on",
    "restore",
    "password_reset",
    "resize",
    "rebuild",
    "rename",
    "change_kernel",
    "enable_ipv6",
    "snapshot",
];

/// `POST /v2/droplets/{id}/actions`: `power_off`, `shutdown`, `power_on` and `resize`.
pub(super) fn post_droplet_action(
    state: &mut State,
    call: &Call,
    id: &str,
) -> Result<Reply, ApiError> {
    // A deleted droplet still shows (off) until it is gone, but takes no more actions.
    let id = parse_droplet_id(id)
        .filter(|id| state.droplets.get(id).is_some_and(|d| d.deleted.is_none()))
        .ok_or_else(ApiError::not_found)?;
    let body = call.object()?;
    let kind = match body.get("type") {
        None | Some(Json::Null) => return Err(ApiError::unprocessable("type is required.")),
        Some(Json::String(kind)) => match kind.as_str() {
            "power_off" => ActionKind::PowerOff,
            "shutdown" => ActionKind::Shutdown,
            "power_on" => ActionKind::PowerOn,
            "resize" => {
                let size = opt_string(&body, "size")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        ApiError::unprocessable("size is required to resize a Droplet.")
                    })?;
                let disk = opt_bool(&body, "disk")?;
                ActionKind::Resize { size, disk }
            }
            other if SPEC_ACTION_TYPES.contains(&other) => {
                return Err(ApiError::unprocessable(format!(
                    "The simulator does not support the droplet action `{other}`."
                )));
            }
            other => {
                return Err(ApiError::unprocessable(format!(
                    "`{other}` is not a valid droplet action type."
                )));
            }
        },
        Some(_) => return Err(ApiError::unprocessable("type must be a string.")),
    };
    state.settle(id, call.now);
    let droplet = state.droplets.get(&id).ok_or_else(ApiError::not_found)?;
    let view = state.droplet_view(droplet, call.now);
    if view.locked {
        return Err(ApiError::unprocessable(
            "Droplet already has a pending event.",
        ));
    }
    if let ActionKind::Resize { size, .. } = &kind {
        // The simulator's rule, as DigitalOcean requires for a CPU/RAM resize.
        if view.status != "off" {
            return Err(ApiError::unprocessable(
                "Droplet must be powered off to resize.",
            ));
        }
        // A disk never shrinks, so a size with a smaller disk is out of reach.
        let disk = SizeSpec::from_slug(size).disk_gb;
        if disk < view.disk_gb {
            return Err(ApiError::unprocessable(format!(
                "Size {size} has a {disk} GB disk, smaller than the Droplet's {} GB disk.",
                view.disk_gb
            )));
        }
    }
    let region = droplet.region.clone();
    let action_id = state.next_action_id();
    let action = Action {
        id: action_id,
        droplet_id: id,
        kind,
        region,
        started: call.now,
        started_wall: SystemTime::now(),
    };
    let rendered = state.action_json(&action, call.now);
    state.actions.insert(action_id, action);
    if let Some(droplet) = state.droplets.get_mut(&id) {
        droplet.pending = Some(action_id);
        *droplet.rendered.get_mut() = None;
    }
    Reply::json(201, json!({ "action": rendered }))
}
