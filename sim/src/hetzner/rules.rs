//! Firewall rules and the resources a firewall applies to, checked as the API checks them and
//! normalized as it renders them.
//!
//! A rule has a `direction` (`in` takes `source_ips`, `out` takes `destination_ips`, at least
//! one and at most 100 CIDR blocks, networks or single hosts; IPv6 ones in their canonical
//! form), a `protocol` (`tcp`, `udp`, `icmp`, `esp`, `gre`), a `port` (`"80"` or `"80-85"`) for
//! tcp and udp only, and an optional `description` of at most 255 characters. At most 50 rules.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Value as Json, json};

use super::HzError;
use super::body::{nullable_str, opt_str};
use super::labels::Selector;

const RULES_MAX: usize = 50;
const CIDRS_MAX: usize = 100;

/// A CIDR block, IPv4 or IPv6, with no host bits set (or a single host), canonicalized.
fn cidr(text: &str) -> Option<String> {
    let (addr, prefix) = text.split_once('/')?;
    let prefix: u32 = prefix.parse().ok()?;
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        let bits = u32::from(v4);
        let host = if prefix >= 32 { 0 } else { u32::MAX >> prefix };
        return (prefix <= 32 && bits & host == 0).then(|| format!("{v4}/{prefix}"));
    }
    let v6 = addr.parse::<Ipv6Addr>().ok()?;
    let bits = u128::from(v6);
    let host = if prefix >= 128 {
        0
    } else {
        u128::MAX >> prefix
    };
    (prefix <= 128 && bits & host == 0).then(|| format!("{v6}/{prefix}"))
}

/// `"80"` or `"80-85"`, ports 1 to 65535.
fn valid_port(port: &str) -> bool {
    let one = |p: &str| p.parse::<u16>().ok().filter(|p| *p >= 1);
    match port.split_once('-') {
        Some((low, high)) => matches!((one(low), one(high)), (Some(l), Some(h)) if l <= h),
        None => one(port).is_some(),
    }
}

fn cidr_list(rule: &serde_json::Map<String, Json>, key: &str) -> Result<Vec<String>, HzError> {
    let items = match rule.get(key) {
        None => return Ok(Vec::new()),
        Some(Json::Array(items)) => items,
        Some(_) => return Err(HzError::invalid("rules", format!("{key} must be an array"))),
    };
    if items.len() > CIDRS_MAX {
        return Err(HzError::invalid(
            "rules",
            format!("{key}: at most {CIDRS_MAX} CIDR blocks"),
        ));
    }
    items
        .iter()
        .map(|item| {
            item.as_str().and_then(cidr).ok_or_else(|| {
                HzError::invalid("rules", format!("{key}: {item} is not a CIDR block"))
            })
        })
        .collect()
}

/// The rules of a create or a `set_rules`, as the API will render them.
pub(crate) fn parse_rules(items: &[Json]) -> Result<Vec<Json>, HzError> {
    if items.len() > RULES_MAX {
        return Err(HzError::invalid(
            "rules",
            format!("at most {RULES_MAX} rules"),
        ));
    }
    let mut rules = Vec::new();
    for item in items {
        let bad = |why: &str| HzError::invalid("rules", why.to_owned());
        let rule = item
            .as_object()
            .ok_or_else(|| bad("each rule must be an object"))?;
        let direction = match opt_str(rule, "direction")? {
            Some(d @ ("in" | "out")) => d,
            _ => return Err(bad("direction must be in or out")),
        };
        let protocol = match opt_str(rule, "protocol")? {
            Some(p @ ("tcp" | "udp" | "icmp" | "esp" | "gre")) => p,
            _ => return Err(bad("protocol must be tcp, udp, icmp, esp or gre")),
        };
        let port = nullable_str(rule, "port")?;
        match (protocol, port) {
            ("tcp" | "udp", None) => return Err(bad("port is required for tcp and udp")),
            ("tcp" | "udp", Some(p)) if !valid_port(p) => {
                return Err(bad(
                    "port must be a port (80) or a range (80-85) of 1 to 65535",
                ));
            }
            ("icmp" | "esp" | "gre", Some(_)) => {
                return Err(bad("port is only allowed for tcp and udp"));
            }
            _ => {}
        }
        let sources = cidr_list(rule, "source_ips")?;
        let destinations = cidr_list(rule, "destination_ips")?;
        match direction {
            "in" if sources.is_empty() => return Err(bad("direction in needs source_ips")),
            "in" if !destinations.is_empty() => {
                return Err(bad("destination_ips are for direction out"));
            }
            "out" if destinations.is_empty() => {
                return Err(bad("direction out needs destination_ips"));
            }
            "out" if !sources.is_empty() => return Err(bad("source_ips are for direction in")),
            _ => {}
        }
        let description = nullable_str(rule, "description")?;
        if description.is_some_and(|d| d.chars().count() > 255) {
            return Err(bad("description must be at most 255 characters"));
        }
        rules.push(json!({
            "direction": direction,
            "protocol": protocol,
            "port": port,
            "source_ips": sources,
            "destination_ips": destinations,
            "description": description,
        }));
    }
    Ok(rules)
}

/// One entry of `apply_to` or `remove_from`, read but not yet checked against the project.
pub(crate) enum Resource {
    Server(u64),
    Selector(String, Selector),
}

pub(crate) fn parse_resources(items: &[Json], field: &str) -> Result<Vec<Resource>, HzError> {
    items
        .iter()
        .map(|item| {
            let bad = |why: &str| HzError::invalid(field, why.to_owned());
            let entry = item
                .as_object()
                .ok_or_else(|| bad("each entry must be an object"))?;
            match opt_str(entry, "type")? {
                Some("server") => entry
                    .get("server")
                    .and_then(|s| s.get("id"))
                    .and_then(Json::as_u64)
                    .map(Resource::Server)
                    .ok_or_else(|| bad("type server needs server.id")),
                Some("label_selector") => {
                    let text = entry
                        .get("label_selector")
                        .and_then(|s| s.get("selector"))
                        .and_then(Json::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .ok_or_else(|| bad("type label_selector needs label_selector.selector"))?;
                    Ok(Resource::Selector(
                        text.to_owned(),
                        Selector::parse(text, field)?,
                    ))
                }
                _ => Err(bad("type must be server or label_selector")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_checked_and_normalized() {
        let rules = parse_rules(&[
            json!({"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0", "2001:0db8::/32"]}),
            json!({"direction": "out", "protocol": "icmp", "destination_ips": ["10.0.0.1/32"], "description": "ping"}),
        ])
        .unwrap();
        assert_eq!(
            rules[0]["source_ips"],
            json!(["0.0.0.0/0", "2001:db8::/32"])
        );
        assert_eq!(rules[0]["destination_ips"], json!([]));
        assert_eq!(rules[1]["port"], Json::Null);
        assert_eq!(rules[0]["description"], Json::Null);
        for bad in [
            json!({"direction": "in", "protocol": "tcp", "source_ips": ["0.0.0.0/0"]}),
            json!({"direction": "in", "protocol": "icmp", "port": "1", "source_ips": ["0.0.0.0/0"]}),
            json!({"direction": "in", "protocol": "tcp", "port": "90-80", "source_ips": ["0.0.0.0/0"]}),
            json!({"direction": "in", "protocol": "tcp", "port": "80"}),
            json!({"direction": "out", "protocol": "udp", "port": "53", "source_ips": ["10.0.0.0/8"]}),
            json!({"direction": "in", "protocol": "tcp", "port": "80", "source_ips": ["10.0.0.1/8"]}),
            json!({"direction": "up", "protocol": "tcp", "port": "80", "source_ips": ["10.0.0.0/8"]}),
        ] {
            assert!(parse_rules(std::slice::from_ref(&bad)).is_err(), "{bad}");
        }
    }
}
