//! `/v2/droplets`: listing (by tag or name), reading, creating (one or a `names` batch, each
//! with its create action, address and VPC) and deleting droplets, alone or by tag.

use std::cell::RefCell;
use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::fields::{opt_bool, opt_string, required_string, string_list, validate_tags};
use super::keys::{find_key, find_key_by_id};
use super::page::paginate;
use super::{ApiError, Call, Reply};
use crate::state::{Action, ActionKind, Droplet, SizeSpec, State};
use crate::util::valid_droplet_name;

/// Largest `user_data` the API takes.
const USER_DATA_MAX: usize = 64 * 1024;
/// Most names in one `names` create.
const NAMES_MAX: usize = 10;
/// Where a droplet goes when the create names neither a region nor a VPC.
const DEFAULT_REGION: &str = "nyc3";

pub(super) fn list_droplets(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let tag = call.param("tag_name");
    let name = call.param("name");
    if tag.is_some() && name.is_some() {
        return Err(ApiError::unprocessable(
            "You can filter droplets by tag_name or by name, not both.",
        ));
    }
    let gpus_only = call.param("type") == Some("gpus");
    let droplets: Vec<&Droplet> = state
        .droplets
        .values()
        .filter(|_| !gpus_only)
        .filter(|d| tag.is_none_or(|t| d.tags.iter().any(|dt| dt == t)))
        .filter(|d| name.is_none_or(|n| d.name == n))
        .filter(|d| !state.faults.unlisted(&d.name, d.created, call.now))
        .collect();
    paginate(call, "droplets", &droplets, |d| {
        state.droplet_text(d, call.now)
    })
}

pub(super) fn parse_droplet_id(text: &str) -> Option<u64> {
    text.parse().ok()
}

pub(super) fn get_droplet(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let droplet = parse_droplet_id(id)
        .and_then(|id| state.droplets.get(&id))
        .filter(|d| !state.faults.unlisted(&d.name, d.created, call.now))
        .ok_or_else(ApiError::not_found)?;
    Reply::wrapped(200, "droplet", &state.droplet_text(droplet, call.now))
}

pub(super) fn delete_droplet(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let droplet = parse_droplet_id(id)
        .and_then(|id| state.droplets.get_mut(&id))
        .ok_or_else(ApiError::not_found)?;
    droplet.deleted.get_or_insert(call.now);
    Reply::no_content()
}

pub(super) fn delete_droplets_by_tag(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let Some(tag) = call.param("tag_name").filter(|t| !t.is_empty()) else {
        return Err(ApiError::unprocessable(
            "tag_name is required to delete droplets by tag.",
        ));
    };
    for droplet in state.droplets.values_mut() {
        if droplet.tags.iter().any(|t| t == tag) {
            droplet.deleted.get_or_insert(call.now);
        }
    }
    Reply::no_content()
}

pub(super) fn create_droplets(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let body = call.object()?;
    let (names, multiple) = match (body.get("name"), body.get("names")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "Specify either name or names, not both.",
            ));
        }
        (Some(_), None) => (vec![required_string(&body, "name")?], false),
        (None, Some(names)) => (string_list(Some(names), "names")?, true),
        (None, None) => return Err(ApiError::unprocessable("name is required.")),
    };
    if names.is_empty() {
        return Err(ApiError::unprocessable("names must not be empty."));
    }
    if names.len() > NAMES_MAX {
        return Err(ApiError::unprocessable(format!(
            "You can create at most {NAMES_MAX} droplets at once."
        )));
    }
    if let Some(bad) = names.iter().find(|n| !valid_droplet_name(n)) {
        return Err(ApiError::unprocessable(format!(
            "Name `{bad}`: only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)"
        )));
    }
    let size = required_string(&body, "size").map_err(|_| {
        ApiError::unprocessable("You specified an invalid size for Droplet creation.")
    })?;
    let image = match body.get("image") {
        Some(Json::String(s)) if !s.is_empty() => Json::String(s.clone()),
        Some(Json::Number(n)) if n.is_u64() => Json::Number(n.clone()),
        _ => {
            return Err(ApiError::unprocessable(
                "You specified an invalid image for Droplet creation.",
            ));
        }
    };
    let vpc_uuid = opt_string(&body, "vpc_uuid")?.filter(|v| !v.is_empty());
    let vpc_region = match &vpc_uuid {
        Some(id) => Some(
            state
                .vpc(id)
                .map(|v| v.region.clone())
                .ok_or_else(|| ApiError::unprocessable(format!("VPC `{id}` does not exist.")))?,
        ),
        None => None,
    };
    let region = match opt_string(&body, "region")?.filter(|r| !r.is_empty()) {
        Some(region) => region,
        None => vpc_region
            .clone()
            .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
    };
    if let Some(vpc_region) = &vpc_region
        && *vpc_region != region
    {
        return Err(ApiError::unprocessable(format!(
            "VPC is in region {vpc_region}, not in {region}."
        )));
    }
    // SSH keys: ids or fingerprints of keys on the account.
    let mut ssh_keys = Vec::new();
    match body.get("ssh_keys") {
        None | Some(Json::Null) => {}
        Some(Json::Array(keys)) => {
            for key in keys {
                let found = match key {
                    Json::Number(n) => n.as_u64().and_then(|id| find_key_by_id(state, id)),
                    Json::String(s) => find_key(state, s),
                    _ => None,
                };
                match found {
                    Some(k) => ssh_keys.push(k.id),
                    None => {
                        return Err(ApiError::unprocessable(format!(
                            "ssh_keys: key {key} is not on your account."
                        )));
                    }
                }
            }
        }
        Some(_) => return Err(ApiError::unprocessable("ssh_keys must be a list.")),
    }
    if let Some(user_data) = opt_string(&body, "user_data")?
        && user_data.len() > USER_DATA_MAX
    {
        return Err(ApiError::unprocessable(format!(
            "user_data must be at most {USER_DATA_MAX} bytes."
        )));
    }
    let tags = string_list(body.get("tags"), "tags")?;
    validate_tags(&tags)?;
    let monitoring = opt_bool(&body, "monitoring")?;
    let ipv6 = opt_bool(&body, "ipv6")?;
    let backups = opt_bool(&body, "backups")?;
    let volumes = string_list(body.get("volumes"), "volumes")?;
    if let Some(limit) = state.config.droplet_limit
        && state.live_droplets() + names.len() > limit
    {
        return Err(ApiError::unprocessable(
            "creating this/these droplet(s) will exceed your droplet limit",
        ));
    }

    // Everything checked; from here on the create happens.
    let vpc_id = match vpc_uuid {
        Some(id) => id,
        None => state.default_vpc(&region).ok_or_else(|| {
            ApiError::unprocessable("No private address range is left for a default VPC.")
        })?,
    };
    let vpc = state
        .vpcs
        .iter()
        .find(|v| v.id == vpc_id)
        .ok_or_else(ApiError::not_found)?;
    let usable = u64::from(vpc.hosts_issued) + names.len() as u64 + 3;
    if usable > vpc.range.size() {
        return Err(ApiError::unprocessable(format!(
            "VPC {} has no private addresses left.",
            vpc.range
        )));
    }
    for tag in &tags {
        state.tags.insert(tag.clone());
    }
    let wall = SystemTime::now();
    let mut droplets = Vec::new();
    let mut actions = Vec::new();
    for name in names {
        let vpc = state
            .vpcs
            .iter_mut()
            .find(|v| v.id == vpc_id)
            .ok_or_else(ApiError::not_found)?;
        vpc.hosts_issued += 1;
        let private_ip = vpc.range.host(vpc.hosts_issued + 1);
        let private_netmask = vpc.range.netmask();
        let private_gateway = vpc.range.host(1);
        let id = state.next_droplet_id();
        let action_id = state.next_action_id();
        let public_ip = state.next_public_ip();
        state.droplets.insert(
            id,
            Droplet {
                id,
                name,
                size: size.clone(),
                disk_gb: SizeSpec::from_slug(&size).disk_gb,
                powered_off: false,
                pending: None,
                image: image.clone(),
                region: region.clone(),
                vpc_uuid: vpc_id.clone(),
                tags: tags.clone(),
                created: call.now,
                created_wall: wall,
                deleted: None,
                private_ip,
                private_netmask,
                private_gateway,
                public_ip,
                ipv6,
                monitoring,
                backups,
                volumes: volumes.clone(),
                rendered: RefCell::new(None),
            },
        );
        state.actions.insert(
            action_id,
            Action {
                id: action_id,
                droplet_id: id,
                kind: ActionKind::Create,
                region: region.clone(),
                started: call.now,
                started_wall: wall,
            },
        );
        droplets.push(id);
        actions.push(json!({
            "id": action_id,
            "rel": "create",
            "href": format!("{}/v2/actions/{action_id}", call.base),
        }));
    }
    let rendered: Vec<Json> = droplets
        .iter()
        .filter_map(|id| state.droplets.get(id))
        .map(|d| state.droplet_json(d, call.now))
        .collect();
    let links = json!({ "actions": actions });
    if multiple {
        Reply::json(202, json!({ "droplets": rendered, "links": links }))
    } else {
        let droplet = rendered.into_iter().next().unwrap_or(Json::Null);
        Reply::json(202, json!({ "droplet": droplet, "links": links }))
    }
}
