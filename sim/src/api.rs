//! The DigitalOcean endpoints: routing and one function per operation, each taking the locked
//! [`State`] and the request, validating everything before changing anything, and returning the
//! status and body the real API would.
//!
//! Validation follows the OpenAPI spec's request schemas plus the rules the real API adds
//! (unique VPC names, tags that must exist before a firewall names them, the droplet limit…).
//! Errors are DigitalOcean's `{"id", "message", "request_id"}`; for firewalls, whose operations
//! declare a 400, malformed rules are 400 `bad_request`, everything else invalid is 422
//! `unprocessable_entity`.

use std::cell::RefCell;
use std::time::SystemTime;

use serde_json::{Map, Value as Json, json};
use tokio::time::Instant;

use crate::state::{Action, ActionKind, Droplet, Firewall, SizeSpec, SshKey, State, Vpc};
use crate::util::{
    Cidr, parse_query, percent_decode, ssh_fingerprint, valid_droplet_name, valid_firewall_name,
    valid_tag_name, valid_vpc_name,
};

/// Largest `user_data` the API takes.
const USER_DATA_MAX: usize = 64 * 1024;
/// Most names in one `names` create.
const NAMES_MAX: usize = 10;
const PER_PAGE_DEFAULT: usize = 20;
const PER_PAGE_MAX: usize = 200;
/// Where a droplet goes when the create names neither a region nor a VPC.
const DEFAULT_REGION: &str = "nyc3";

/// One `/v2` request, as the handlers see it.
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

    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
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
            | ["account", "keys"]
            | ["account", "keys", _]
    ) && segments.iter().all(|s| !s.is_empty())
}

// Pagination.

/// The `{key: [...], links, meta}` page of `items` that `page` and `per_page` ask for;
/// `render` gives an item's JSON text.
fn paginate<T>(
    call: &Call,
    key: &str,
    items: &[T],
    render: impl Fn(&T) -> String,
) -> Result<Reply, ApiError> {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        match call.param(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ApiError::unprocessable(format!(
                    "{name} must be a positive integer."
                ))),
            },
        }
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", PER_PAGE_DEFAULT)?;
    if per_page > PER_PAGE_MAX {
        return Err(ApiError::unprocessable(format!(
            "per_page must be at most {PER_PAGE_MAX}."
        )));
    }
    let total = items.len();
    let last_page = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = start.saturating_add(per_page).min(total);
    let rendered: Vec<String> = items[start..end].iter().map(render).collect();

    // Links keep the other query parameters (a tag filter, say) and set page and per_page.
    let kept: String = call
        .raw_query
        .split('&')
        .filter(|pair| {
            let key = percent_decode(pair.split('=').next().unwrap_or(""), true);
            !pair.is_empty() && key != "page" && key != "per_page"
        })
        .map(|pair| format!("{pair}&"))
        .collect();
    let link = |n: usize| {
        Json::String(format!(
            "{}{}?{kept}page={n}&per_page={per_page}",
            call.base, call.path
        ))
    };
    let mut pages = Map::new();
    if page > 1 {
        pages.insert("first".into(), link(1));
        pages.insert("prev".into(), link(page - 1));
    }
    if page < last_page {
        pages.insert("last".into(), link(last_page));
        pages.insert("next".into(), link(page + 1));
    }
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    };
    let body = format!(
        "{{{}:[{}],\"links\":{links},\"meta\":{}}}",
        Json::from(key),
        rendered.join(","),
        json!({ "total": total })
    );
    Ok(Reply {
        status: 200,
        body: Some(body),
    })
}

// Body field helpers: absent and null mean "not given".

fn opt_string(body: &Map<String, Json>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::unprocessable(format!("{key} must be a string."))),
    }
}

fn required_string(body: &Map<String, Json>, key: &str) -> Result<String, ApiError> {
    match opt_string(body, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::unprocessable(format!("{key} is required."))),
    }
}

fn opt_bool(body: &Map<String, Json>, key: &str) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::unprocessable(format!("{key} must be a boolean."))),
    }
}

fn string_list(value: Option<&Json>, key: &str) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item {
                Json::String(s) => Ok(s.clone()),
                _ => Err(ApiError::unprocessable(format!(
                    "{key} must be a list of strings."
                ))),
            })
            .collect(),
        Some(_) => Err(ApiError::unprocessable(format!(
            "{key} must be a list of strings."
        ))),
    }
}

fn id_list(value: Option<&Json>, key: &str) -> Result<Vec<u64>, ApiError> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_u64().ok_or_else(|| {
                    ApiError::unprocessable(format!("{key} must be a list of integers."))
                })
            })
            .collect(),
        Some(_) => Err(ApiError::unprocessable(format!(
            "{key} must be a list of integers."
        ))),
    }
}

fn validate_tags(tags: &[String]) -> Result<(), ApiError> {
    match tags.iter().find(|t| !valid_tag_name(t)) {
        Some(bad) => Err(ApiError::unprocessable(format!(
            "tag name `{bad}` is invalid: use letters, numbers, colons, dashes and underscores, at most 255."
        ))),
        None => Ok(()),
    }
}

// Droplets.

fn list_droplets(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

fn parse_droplet_id(text: &str) -> Option<u64> {
    text.parse().ok()
}

fn get_droplet(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let droplet = parse_droplet_id(id)
        .and_then(|id| state.droplets.get(&id))
        .filter(|d| !state.faults.unlisted(&d.name, d.created, call.now))
        .ok_or_else(ApiError::not_found)?;
    Reply::wrapped(200, "droplet", &state.droplet_text(droplet, call.now))
}

fn delete_droplet(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let droplet = parse_droplet_id(id)
        .and_then(|id| state.droplets.get_mut(&id))
        .ok_or_else(ApiError::not_found)?;
    droplet.deleted.get_or_insert(call.now);
    Reply::no_content()
}

fn delete_droplets_by_tag(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

fn create_droplets(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

// Actions.

fn list_actions(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let actions: Vec<&Action> = state.actions.values().rev().collect();
    paginate(call, "actions", &actions, |a| {
        state.action_json(a, call.now).to_string()
    })
}

fn get_action(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
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
fn list_droplet_actions(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
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

fn get_droplet_action(
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
fn post_droplet_action(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
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

// SSH keys.

fn find_key_by_id(state: &State, id: u64) -> Option<&SshKey> {
    state.ssh_keys.iter().find(|k| k.id == id)
}

/// A key by id (all digits) or by fingerprint.
fn find_key<'s>(state: &'s State, identifier: &str) -> Option<&'s SshKey> {
    match identifier.parse::<u64>() {
        Ok(id) => find_key_by_id(state, id),
        Err(_) => state.ssh_keys.iter().find(|k| k.fingerprint == identifier),
    }
}

fn list_ssh_keys(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let keys: Vec<&SshKey> = state.ssh_keys.iter().collect();
    paginate(call, "ssh_keys", &keys, |k| {
        state.ssh_key_json(k).to_string()
    })
}

fn create_ssh_key(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let body = call.object()?;
    let name = required_string(&body, "name")?;
    let public_key = required_string(&body, "public_key")?;
    let public_key = public_key.trim().to_owned();
    let fingerprint = ssh_fingerprint(&public_key).ok_or_else(|| {
        ApiError::unprocessable("Key invalid, key should be of the form `type key [comment]`")
    })?;
    if state.ssh_keys.iter().any(|k| k.fingerprint == fingerprint) {
        return Err(ApiError::unprocessable(
            "SSH Key is already in use on your account",
        ));
    }
    let key = SshKey {
        id: state.next_ssh_key_id(),
        name,
        public_key,
        fingerprint,
    };
    let rendered = state.ssh_key_json(&key);
    state.ssh_keys.push(key);
    Reply::json(201, json!({ "ssh_key": rendered }))
}

fn get_ssh_key(state: &mut State, identifier: &str) -> Result<Reply, ApiError> {
    let key = find_key(state, identifier).ok_or_else(ApiError::not_found)?;
    Reply::json(200, json!({ "ssh_key": state.ssh_key_json(key) }))
}

fn update_ssh_key(state: &mut State, call: &Call, identifier: &str) -> Result<Reply, ApiError> {
    let body = call.object()?;
    let name = opt_string(&body, "name")?;
    let id = find_key(state, identifier)
        .map(|k| k.id)
        .ok_or_else(ApiError::not_found)?;
    let key = state
        .ssh_keys
        .iter_mut()
        .find(|k| k.id == id)
        .ok_or_else(ApiError::not_found)?;
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        key.name = name;
    }
    let key = find_key_by_id(state, id).ok_or_else(ApiError::not_found)?;
    Reply::json(200, json!({ "ssh_key": state.ssh_key_json(key) }))
}

fn delete_ssh_key(state: &mut State, identifier: &str) -> Result<Reply, ApiError> {
    let id = find_key(state, identifier)
        .map(|k| k.id)
        .ok_or_else(ApiError::not_found)?;
    state.ssh_keys.retain(|k| k.id != id);
    Reply::no_content()
}

// Tags.

fn list_tags(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let tags: Vec<&String> = state.tags.iter().collect();
    paginate(call, "tags", &tags, |t| {
        state.tag_json(t, call.base).to_string()
    })
}

fn create_tag(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let body = call.object()?;
    let name = required_string(&body, "name")?;
    validate_tags(std::slice::from_ref(&name))?;
    // Creating a tag that exists answers 201 with it, as the real API does.
    state.tags.insert(name.clone());
    Reply::json(201, json!({ "tag": state.tag_json(&name, call.base) }))
}

fn get_tag(state: &mut State, call: &Call, name: &str) -> Result<Reply, ApiError> {
    if !state.tags.contains(name) {
        return Err(ApiError::not_found());
    }
    Reply::json(200, json!({ "tag": state.tag_json(name, call.base) }))
}

fn delete_tag(state: &mut State, name: &str) -> Result<Reply, ApiError> {
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
fn tag_resources(state: &mut State, call: &Call, name: &str, add: bool) -> Result<Reply, ApiError> {
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

// VPCs.

fn list_vpcs(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

fn create_vpc(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

fn get_vpc(state: &mut State, id: &str) -> Result<Reply, ApiError> {
    let vpc = state.vpc(id).ok_or_else(ApiError::not_found)?;
    Reply::json(200, json!({ "vpc": state.vpc_json(vpc) }))
}

/// PUT (`name` required) and PATCH (anything optional): name, description, default.
fn update_vpc(state: &mut State, call: &Call, id: &str, put: bool) -> Result<Reply, ApiError> {
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

fn delete_vpc(state: &mut State, id: &str) -> Result<Reply, ApiError> {
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

fn list_vpc_members(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
    if state.vpc(id).is_none() {
        return Err(ApiError::not_found());
    }
    let droplets_wanted = call.param("resource_type").is_none_or(|t| t == "droplet");
    let members: Vec<&Droplet> = state.vpc_members(id).filter(|_| droplets_wanted).collect();
    paginate(call, "members", &members, |d| {
        state.member_json(d).to_string()
    })
}

// Firewalls.

fn list_firewalls(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let firewalls: Vec<&Firewall> = state.firewalls.iter().collect();
    paginate(call, "firewalls", &firewalls, |f| {
        state.firewall_json(f).to_string()
    })
}

/// `"22"`, `"8000-9000"`, `"0"` or `"all"` (which the API gives back as `"0"`).
fn normalize_ports(ports: &str) -> Option<String> {
    let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p >= 1);
    match ports {
        "0" | "all" => Some("0".into()),
        _ => match ports.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (port(low)?, port(high)?);
                (low <= high).then(|| format!("{low}-{high}"))
            }
            None => port(ports).map(|p| p.to_string()),
        },
    }
}

/// A firewall as a create or a PUT describes it, checked.
struct FirewallSpec {
    name: String,
    inbound_rules: Vec<Json>,
    outbound_rules: Vec<Json>,
    droplet_ids: Vec<u64>,
    tags: Vec<String>,
}

fn parse_rules(
    state: &State,
    body: &Map<String, Json>,
    key: &str,
    peers: &str,
) -> Result<Vec<Json>, ApiError> {
    let rules = match body.get(key) {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(rules)) => rules,
        Some(_) => return Err(ApiError::bad_request(format!("{key} must be a list."))),
    };
    let mut out = Vec::new();
    for rule in rules {
        let Json::Object(rule) = rule else {
            return Err(ApiError::bad_request(format!(
                "{key}: each rule must be an object."
            )));
        };
        let protocol = match rule.get("protocol").and_then(Json::as_str) {
            Some(p @ ("tcp" | "udp" | "icmp")) => p,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{key}: protocol must be one of tcp, udp, icmp."
                )));
            }
        };
        let ports = match rule.get("ports").and_then(Json::as_str) {
            Some(ports) => normalize_ports(ports).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{key}: ports `{ports}` must be a port, a range like 8000-9000, 0 or all."
                ))
            })?,
            None => {
                return Err(ApiError::bad_request(format!(
                    "{key}: every rule needs ports (use \"0\" for all)."
                )));
            }
        };
        let Some(Json::Object(targets)) = rule.get(peers) else {
            return Err(ApiError::bad_request(format!(
                "{key}: every rule needs {peers}."
            )));
        };
        let mut clean = Map::new();
        for field in ["addresses", "load_balancer_uids", "kubernetes_ids", "tags"] {
            let values = string_list(targets.get(field), &format!("{peers}.{field}"))
                .map_err(|e| ApiError::bad_request(e.message))?;
            if !values.is_empty() {
                clean.insert(field.into(), json!(values));
            }
        }
        let droplet_ids = id_list(targets.get("droplet_ids"), &format!("{peers}.droplet_ids"))
            .map_err(|e| ApiError::bad_request(e.message))?;
        if !droplet_ids.is_empty() {
            clean.insert("droplet_ids".into(), json!(droplet_ids));
        }
        if let Some(Json::Array(tags)) = clean.get("tags") {
            for tag in tags.iter().filter_map(Json::as_str) {
                require_tag(state, tag)?;
            }
        }
        out.push(json!({ "protocol": protocol, "ports": ports, peers: clean }));
    }
    Ok(out)
}

fn require_tag(state: &State, tag: &str) -> Result<(), ApiError> {
    if state.tags.contains(tag) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "tag `{tag}` does not exist; create it before naming it in a firewall."
        )))
    }
}

fn parse_firewall(state: &State, call: &Call) -> Result<FirewallSpec, ApiError> {
    let body = call.object()?;
    let name = required_string(&body, "name")?;
    if !valid_firewall_name(&name) {
        return Err(ApiError::unprocessable(
            "Firewall name must start with a letter or number and contain only letters, numbers, periods and dashes.",
        ));
    }
    if !body.contains_key("inbound_rules") && !body.contains_key("outbound_rules") {
        return Err(ApiError::bad_request(
            "A firewall needs inbound_rules or outbound_rules.",
        ));
    }
    let inbound_rules = parse_rules(state, &body, "inbound_rules", "sources")?;
    let outbound_rules = parse_rules(state, &body, "outbound_rules", "destinations")?;
    let droplet_ids = id_list(body.get("droplet_ids"), "droplet_ids")?;
    let tags = string_list(body.get("tags"), "tags")?;
    for tag in &tags {
        require_tag(state, tag)?;
    }
    Ok(FirewallSpec {
        name,
        inbound_rules,
        outbound_rules,
        droplet_ids,
        tags,
    })
}

fn create_firewall(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let spec = parse_firewall(state, call)?;
    let firewall = Firewall {
        id: state.next_uuid(),
        name: spec.name,
        inbound_rules: spec.inbound_rules,
        outbound_rules: spec.outbound_rules,
        droplet_ids: spec.droplet_ids,
        tags: spec.tags,
        created_wall: SystemTime::now(),
    };
    let rendered = state.firewall_json(&firewall);
    state.firewalls.push(firewall);
    Reply::json(202, json!({ "firewall": rendered }))
}

fn get_firewall(state: &mut State, id: &str) -> Result<Reply, ApiError> {
    let firewall = state
        .firewalls
        .iter()
        .find(|f| f.id == id)
        .ok_or_else(ApiError::not_found)?;
    Reply::json(200, json!({ "firewall": state.firewall_json(firewall) }))
}

fn update_firewall(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
    let Some(index) = state.firewalls.iter().position(|f| f.id == id) else {
        return Err(ApiError::not_found());
    };
    let spec = parse_firewall(state, call)?;
    // PUT replaces the whole firewall: what the body leaves out is gone.
    let firewall = &mut state.firewalls[index];
    firewall.name = spec.name;
    firewall.inbound_rules = spec.inbound_rules;
    firewall.outbound_rules = spec.outbound_rules;
    firewall.droplet_ids = spec.droplet_ids;
    firewall.tags = spec.tags;
    let firewall = &state.firewalls[index];
    Reply::json(200, json!({ "firewall": state.firewall_json(firewall) }))
}

fn delete_firewall(state: &mut State, id: &str) -> Result<Reply, ApiError> {
    let before = state.firewalls.len();
    state.firewalls.retain(|f| f.id != id);
    if state.firewalls.len() == before {
        return Err(ApiError::not_found());
    }
    Reply::no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(normalize_ports("22").as_deref(), Some("22"));
        assert_eq!(normalize_ports("all").as_deref(), Some("0"));
        assert_eq!(normalize_ports("8000-9000").as_deref(), Some("8000-9000"));
        assert_eq!(normalize_ports("9000-8000"), None);
        assert_eq!(normalize_ports("70000"), None);
        assert_eq!(normalize_ports(""), None);
    }
}
