//! `/v2/vpcs`: VPCs (unique names, RFC 1918 ranges, one default per region) and their
//! members.

use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::fields::{opt_string, required_string};
use super::page::paginate;
use super::{ApiError, Call, Reply};
use crate::state::{Droplet, State, Vpc};
use crate::util::{Cidr, valid_vpc_name};

pub(super) fn list_vpcs(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let vpcs: Vec<&Vpc> = state.vpcs.iter().collect();
    paginate(call, "vpcs", &vpcs, |v| state.vpc_json(v).to_string())
}

fn check_vpc_name(state: &State, name: &str, except: Option<&str>) -> Result<(), ApiError> {
    if !valid_vpc_name(name) {
        return Err(ApiError::unprocessable(
            "VPC name may contain only letters, numbers, dashes and periods.",
        ));
    }
    if state
        .vpcs
        .iter()
        .any(|v| v.name == name && Some(v.id.as_str()) != except)
    {
        return Err(ApiError::unprocessable(format!(
            "A VPC named `{name}` already exists."
        )));
    }
    Ok(())
}

fn check_description(description: &Option<String>) -> Result<(), ApiError> {
    match description {
        Some(d) if d.len() > 255 => Err(ApiError::unprocessable(
            "description must be at most 255 characters.",
        )),
        _ => Ok(()),
    }
}

pub(super) fn create_vpc(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let body = call.object()?;
    let name = required_string(&body, "name")?;
    check_vpc_name(state, &name, None)?;
    let region = required_string(&body, "region")?;
    let description = opt_string(&body, "description")?;
    check_description(&description)?;
    let range = match opt_string(&body, "ip_range")? {
        None => state
            .free_range()
            .ok_or_else(|| ApiError::unprocessable("No private address range is left."))?,
        Some(text) => {
            let range = Cidr::parse(&text).ok_or_else(|| {
                ApiError::unprocessable(format!("ip_range `{text}` is not a CIDR block."))
            })?;
            if !range.is_rfc1918() || !(16..=28).contains(&range.prefix) || !range.is_aligned() {
                return Err(ApiError::unprocessable(format!(
                    "ip_range `{text}` must be an RFC 1918 network between /16 and /28."
                )));
            }
            range
        }
    };
    let vpc = Vpc {
        id: state.next_uuid(),
        name,
        description: description.unwrap_or_default(),
        region,
        range,
        default: false,
        created_wall: SystemTime::now(),
        hosts_issued: 0,
    };
    let rendered = state.vpc_json(&vpc);
    state.vpcs.push(vpc);
    Reply::json(201, json!({ "vpc": rendered }))
}

pub(super) fn get_vpc(state: &mut State, id: &str) -> Result<Reply, ApiError> {
    let vpc = state.vpc(id).ok_or_else(ApiError::not_found)?;
    Reply::json(200, json!({ "vpc": state.vpc_json(vpc) }))
}

/// PUT (`name` required) and PATCH (anything optional): name, description, default.
pub(super) fn update_vpc(
    state: &mut State,
    call: &Call,
    id: &str,
    put: bool,
) -> Result<Reply, ApiError> {
    let body = call.object()?;
    let Some(index) = state.vpcs.iter().position(|v| v.id == id) else {
        return Err(ApiError::not_found());
    };
    let name = if put {
        Some(required_string(&body, "name")?)
    } else {
        opt_string(&body, "name")?
    };
    if let Some(name) = &name {
        check_vpc_name(state, name, Some(id))?;
    }
    let description = opt_string(&body, "description")?;
    check_description(&description)?;
    let default = match body.get("default") {
        None | Some(Json::Null) => None,
        Some(Json::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::unprocessable("default must be a boolean.")),
    };
    if default == Some(false) && state.vpcs[index].default {
        return Err(ApiError::unprocessable(
            "A default VPC stays the default until another VPC of its region is made the default.",
        ));
    }
    if default == Some(true) {
        let region = state.vpcs[index].region.clone();
        for vpc in state.vpcs.iter_mut().filter(|v| v.region == region) {
            vpc.default = false;
        }
        state.vpcs[index].default = true;
    }
    let vpc = &mut state.vpcs[index];
    if let Some(name) = name {
        vpc.name = name;
    }
    if let Some(description) = description {
        vpc.description = description;
    }
    let vpc = &state.vpcs[index];
    Reply::json(200, json!({ "vpc": state.vpc_json(vpc) }))
}

pub(super) fn delete_vpc(state: &mut State, id: &str) -> Result<Reply, ApiError> {
    let vpc = state.vpc(id).ok_or_else(ApiError::not_found)?;
    if vpc.default {
        return Err(ApiError::forbidden(
            "A region's default VPC cannot be deleted.",
        ));
    }
    if state.vpc_members(id).next().is_some() {
        return Err(ApiError::forbidden("VPC has members"));
    }
    state.vpcs.retain(|v| v.id != id);
    Reply::no_content()
}

pub(super) fn list_vpc_members(
    state: &mut State,
    call: &Call,
    id: &str,
) -> Result<Reply, ApiError> {
    if state.vpc(id).is_none() {
        return Err(ApiError::not_found());
    }
    let droplets_wanted = call.param("resource_type").is_none_or(|t| t == "droplet");
    let members: Vec<&Droplet> = state.vpc_members(id).filter(|_| droplets_wanted).collect();
    paginate(call, "members", &members, |d| {
        state.member_json(d).to_string()
    })
}
