//! `/v2/firewalls`: cloud firewalls, their rules checked as the API checks them (malformed
//! rules are 400, tags that do not exist 422).

use std::time::SystemTime;

use serde_json::{Map, Value as Json, json};

use super::fields::{id_list, required_string, string_list};
use super::page::paginate;
use super::{ApiError, Call, Reply};
use crate::state::{Firewall, State};
use crate::util::valid_firewall_name;

pub(super) fn list_firewalls(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

pub(super) fn create_firewall(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

pub(super) fn get_firewall(state: &mut State, id: &str) -> Result<Reply, ApiError> {
    let firewall = state
        .firewalls
        .iter()
        .find(|f| f.id == id)
        .ok_or_else(ApiError::not_found)?;
    Reply::json(200, json!({ "firewall": state.firewall_json(firewall) }))
}

pub(super) fn update_firewall(state: &mut State, call: &Call, id: &str) -> Result<Reply, ApiError> {
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

pub(super) fn delete_firewall(state: &mut State, id: &str) -> Result<Reply, ApiError> {
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
