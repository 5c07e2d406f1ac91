//! The DigitalOcean endpoints: routing and one function per operation, each taking the locked
//! [`State`] and the request, validating everything before changing anything, and returning the
//! status and body the real API would.
//!
//! Validation follows the OpenAPI spec's request schemas plus the rules the real API adds
//! (unique VPC names, tags that must exist before a firewall names them, the droplet limit…).
//! Errors are DigitalOcean's `{"id", "message", "request_id"}`; for firewalls, whose operations
//! declare a 400, malformed rules are 400 `bad_request`, everything else invalid is 422
//! `unprocessable_entity`.
//!
//! This module owns the request ([`Call`]), the answers ([`Reply`], [`ApiError`]) and the
//! routing; the operations live in one submodule per resource family (`droplets`, `actions`,
//! `keys`, `tags`, `vpcs`, `firewalls`), with the body readers in `fields` and list pages in
//! `page`.

mod actions;
mod droplets;
mod fields;
mod firewalls;
mod keys;
pub(crate) mod page;
mod tags;
mod vpcs;

use serde_json::{Map, Value as Json, json};
use tokio::time::Instant;

use crate::state::State;
use crate::util::{parse_query, percent_decode};

use actions::{
    get_action, get_droplet_action, list_actions, list_droplet_actions, post_droplet_action,
};
use droplets::{
    create_droplets, delete_droplet, delete_droplets_by_tag, get_droplet, list_droplets,
};
use firewalls::{create_firewall, delete_firewall, get_firewall, list_firewalls, update_firewall};
use keys::{
    create_ssh_key, delete_ssh_key, get_account, get_ssh_key, list_ssh_keys, update_ssh_key,
};
use tags::{create_tag, delete_tag, get_tag, list_tags, tag_resources};
use vpcs::{create_vpc, delete_vpc, get_vpc, list_vpc_members, list_vpcs, update_vpc};

/// One API request (`/v2` or `/v1`), as the handlers see it.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) raw_query: &'a str,
    pub(crate) body: &'a [u8],
    /// `http://host`, from the request's `Host` header, for links.
    pub(crate) base: &'a str,
    pub(crate) now: Instant,
    query: Vec<(String, String)>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        method: &'a str,
        path: &'a str,
        raw_query: &'a str,
        body: &'a [u8],
        base: &'a str,
        now: Instant,
    ) -> Call<'a> {
        Call {
            method,
            path,
            raw_query,
            body,
            base,
            now,
            query: parse_query(raw_query),
        }
    }

    /// The first value of the query parameter `key`, decoded.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the query parameter `key` (`id=1&id=2`), decoded, in order.
    pub(crate) fn params<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The body as a JSON object; an empty body is an empty object.
    fn object(&self) -> Result<Map<String, Json>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Json>(self.body) {
            Ok(Json::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::bad_request(
                "The request body must be a JSON object.",
            )),
            Err(error) => Err(ApiError::bad_request(format!(
                "The request body is not valid JSON: {error}."
            ))),
        }
    }
}

/// A successful answer: a status and maybe a body (JSON text).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<String>,
}

impl Reply {
    fn json(status: u16, body: Json) -> Result<Reply, ApiError> {
        Ok(Reply {
            status,
            body: Some(body.to_string()),
        })
    }

    /// `{"key": item}` where `item` is JSON text already.
    fn wrapped(status: u16, key: &str, item: &str) -> Result<Reply, ApiError> {
        Ok(Reply {
            status,
            body: Some(format!("{{{}:{item}}}", Json::from(key))),
        })
    }

    fn no_content() -> Result<Reply, ApiError> {
        Ok(Reply {
            status: 204,
            body: None,
        })
    }
}

/// A DigitalOcean error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) id: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, id: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            id,
            message: message.into(),
        }
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(
            404,
            "not_found",
            "The resource you were accessing could not be found.",
        )
    }

    pub(crate) fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "unprocessable_entity", message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "forbidden", message)
    }

    /// The error for an arbitrary status, as a [`crate::Fault::Status`] sends it.
    pub(crate) fn for_status(status: u16) -> ApiError {
        let (id, message) = match status {
            400 => ("bad_request", "The request could not be understood."),
            401 => ("unauthorized", "Unable to authenticate you"),
            403 => (
                "forbidden",
                "You do not have access for the attempted action.",
            ),
            404 => (
                "not_found",
                "The resource you were accessing could not be found.",
            ),
            409 => ("conflict", "The request conflicts with the current state."),
            422 => (
                "unprocessable_entity",
                "The request could not be processed.",
            ),
            429 => ("too_many_requests", "API Rate limit exceeded."),
            503 => ("service_unavailable", "Service is temporarily unavailable."),
            500..=599 => ("server_error", "Server was unable to give you a response."),
            _ => ("error", "Injected fault."),
        };
        ApiError::new(status, id, message)
    }

    pub(crate) fn body(&self, request_id: &str) -> Json {
        json!({"id": self.id, "message": self.message, "request_id": request_id})
    }
}

/// Dispatches a `/v2` request.
pub(crate) fn route(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    state.purge(call.now);
    let rest = call.path.strip_prefix("/v2/").unwrap_or("");
    let segments: Vec<String> = rest.split('/').map(|s| percent_decode(s, false)).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (call.method, segments.as_slice()) {
        ("GET", ["droplets"]) => list_droplets(state, call),
        ("POST", ["droplets"]) => create_droplets(state, call),
        ("DELETE", ["droplets"]) => delete_droplets_by_tag(state, call),
        ("GET", ["droplets", id]) => get_droplet(state, call, id),
        ("DELETE", ["droplets", id]) => delete_droplet(state, call, id),
        ("GET", ["droplets", id, "actions"]) => list_droplet_actions(state, call, id),
        ("POST", ["droplets", id, "actions"]) => post_droplet_action(state, call, id),
        ("GET", ["droplets", id, "actions", action]) => get_droplet_action(state, call, id, action),
        ("GET", ["actions"]) => list_actions(state, call),
        ("GET", ["actions", id]) => get_action(state, call, id),
        ("GET", ["account"]) => get_account(state),
        ("GET", ["account", "keys"]) => list_ssh_keys(state, call),
        ("POST", ["account", "keys"]) => create_ssh_key(state, call),
        ("GET", ["account", "keys", key]) => get_ssh_key(state, key),
        ("PUT", ["account", "keys", key]) => update_ssh_key(state, call, key),
        ("DELETE", ["account", "keys", key]) => delete_ssh_key(state, key),
        ("GET", ["tags"]) => list_tags(state, call),
        ("POST", ["tags"]) => create_tag(state, call),
        ("GET", ["tags", name]) => get_tag(state, call, name),
        ("DELETE", ["tags", name]) => delete_tag(state, name),
        ("POST", ["tags", name, "resources"]) => tag_resources(state, call, name, true),
        ("DELETE", ["tags", name, "resources"]) => tag_resources(state, call, name, false),
        ("GET", ["vpcs"]) => list_vpcs(state, call),
        ("POST", ["vpcs"]) => create_vpc(state, call),
        ("GET", ["vpcs", id]) => get_vpc(state, id),
        ("PUT", ["vpcs", id]) => update_vpc(state, call, id, true),
        ("PATCH", ["vpcs", id]) => update_vpc(state, call, id, false),
        ("DELETE", ["vpcs", id]) => delete_vpc(state, id),
        ("GET", ["vpcs", id, "members"]) => list_vpc_members(state, call, id),
        ("GET", ["firewalls"]) => list_firewalls(state, call),
        ("POST", ["firewalls"]) => create_firewall(state, call),
        ("GET", ["firewalls", id]) => get_firewall(state, id),
        ("PUT", ["firewalls", id]) => update_firewall(state, call, id),
        ("DELETE", ["firewalls", id]) => delete_firewall(state, id),
        (_, shape) if known_shape(shape) => Err(ApiError::new(
            405,
            "method_not_allowed",
            format!("{} is not allowed on {}.", call.method, call.path),
        )),
        _ => Err(ApiError::not_found()),
    }
}

/// Whether some method is served on this path (to tell a 405 from a 404).
fn known_shape(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["droplets" | "actions" | "tags" | "vpcs" | "firewalls"]
            | ["droplets" | "actions" | "tags" | "vpcs" | "firewalls", _]
            | ["vpcs", _, "members"]
            | ["tags", _, "resources"]
            | ["droplets", _, "actions"]
            | ["droplets", _, "actions", _]
            | ["account"]
            | ["account", "keys"]
            | ["account", "keys", _]
    ) && segments.iter().all(|s| !s.is_empty())
}
