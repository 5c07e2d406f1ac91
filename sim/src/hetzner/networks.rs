//! `/v1/networks`: private networks with their subnets and routes. Names are unique (409
//! `uniqueness_error`); `ip_range` is an RFC 1918 block of /8 to /24; subnets are /30 or
//! larger, inside it, apart from each other, in a known network zone (an absent `ip_range`
//! takes the first free /24). Deleting a network detaches its servers, as the spec says
//! ("Attached resources will be detached automatically").

use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::body::{Object, labels, object, opt_array, opt_bool, opt_id, opt_str};
use super::catalog::ZONES;
use super::family::{self, check_name, insert, new_name};
use super::store::{Network, Store, Subnet};
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;
use crate::util::{Cidr, rfc3339};

pub(crate) fn network_json(store: &Store, n: &Network) -> Json {
    let servers: Vec<u64> = store
        .servers
        .values()
        .filter(|s| s.private_net.iter().any(|p| p.network == n.id))
        .map(|s| s.id)
        .collect();
    let gateway = n.ip_range.host(1);
    let subnets: Vec<Json> = n
        .subnets
        .iter()
        .map(|s| {
            json!({
                "type": s.kind,
                "ip_range": s.range.to_string(),
                "network_zone": s.zone,
                "gateway": gateway,
                "vswitch_id": s.vswitch_id,
            })
        })
        .collect();
    let routes: Vec<Json> = n
        .routes
        .iter()
        .map(|(destination, gateway)| json!({"destination": destination, "gateway": gateway}))
        .collect();
    json!({
        "id": n.id,
        "name": n.name,
        "ip_range": n.ip_range.to_string(),
        "subnets": subnets,
        "routes": routes,
        "servers": servers,
        "load_balancers": [],
        "protection": {"delete": false},
        "labels": n.labels,
        "created": rfc3339(n.created_wall),
        "expose_routes_to_vswitch": n.expose_routes_to_vswitch,
    })
}

/// A CIDR block with no host bits set.
fn block(text: &str, field: &str) -> Result<Cidr, HzError> {
    Cidr::parse(text)
        .filter(|c| c.is_aligned())
        .ok_or_else(|| HzError::invalid(field, format!("`{text}` is not a valid IPv4 network")))
}

fn subnets(body: &Object, range: Cidr) -> Result<Vec<Subnet>, HzError> {
    let mut subnets: Vec<Subnet> = Vec::new();
    for item in opt_array(body, "subnets")? {
        let bad = |why: String| HzError::invalid("subnets", why);
        let subnet = item
            .as_object()
            .ok_or_else(|| bad("each subnet must be an object".into()))?;
        let kind = match opt_str(subnet, "type")? {
            Some(kind @ ("cloud" | "server" | "vswitch")) => kind,
            _ => return Err(bad("type must be cloud, server or vswitch".into())),
        };
        let zone = opt_str(subnet, "network_zone")?.unwrap_or_default();
        if !ZONES.contains(&zone) {
            return Err(bad(format!("unknown network zone `{zone}`")));
        }
        let vswitch_id = opt_id(subnet, "vswitch_id")?;
        if (kind == "vswitch") != vswitch_id.is_some() {
            return Err(bad(
                "vswitch_id is given for, and only for, vswitch subnets".into(),
            ));
        }
        let taken = |c: Cidr| subnets.iter().any(|s| s.range.overlaps(c));
        let subnet_range = match opt_str(subnet, "ip_range")? {
            Some(text) => {
                let c = block(text, "subnets")?;
                if c.prefix > 30 || !c.within(range) {
                    return Err(bad(format!("{c} must be a /30 or larger inside {range}")));
                }
                if taken(c) {
                    return Err(bad(format!("{c} overlaps another subnet")));
                }
                c
            }
            None => {
                let prefix = range.prefix.max(24);
                let step = 1u32 << (32 - prefix);
                (0..(range.size() / u64::from(step)) as u32)
                    .map(|i| Cidr {
                        network: range.network + i * step,
                        prefix,
                    })
                    .find(|c| !taken(*c))
                    .ok_or_else(|| bad(format!("no free /24 left in {range}")))?
            }
        };
        subnets.push(Subnet {
            kind: kind.to_owned(),
            zone: zone.to_owned(),
            range: subnet_range,
            vswitch_id,
            issued: 0,
        });
    }
    Ok(subnets)
}

fn routes(body: &Object, range: Cidr) -> Result<Vec<(String, String)>, HzError> {
    opt_array(body, "routes")?
        .iter()
        .map(|item| {
            let route = item
                .as_object()
                .ok_or_else(|| HzError::invalid("routes", "each route must be an object"))?;
            let destination = block(opt_str(route, "destination")?.unwrap_or_default(), "routes")?;
            let gateway = opt_str(route, "gateway")?.unwrap_or_default();
            let inside = Cidr::parse(&format!("{gateway}/32")).is_some_and(|g| g.within(range));
            if !inside {
                return Err(HzError::invalid(
                    "routes",
                    format!("gateway `{gateway}` must be an address in {range}"),
                ));
            }
            Ok((destination.to_string(), gateway.to_owned()))
        })
        .collect()
}

pub(super) fn create(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let body = object(call)?;
    let name = new_name::<Network>(&body)?;
    let text = super::body::req_str(&body, "ip_range")?;
    let range = block(text, "ip_range")?;
    if !range.is_rfc1918() || !(8..=24).contains(&range.prefix) {
        return Err(HzError::invalid(
            "ip_range",
            "must be an RFC 1918 network between /8 and /24",
        ));
    }
    let labels = labels(&body)?;
    let expose = opt_bool(&body, "expose_routes_to_vswitch", false)?;
    let subnets = subnets(&body, range)?;
    let routes = routes(&body, range)?;
    check_name::<Network>(state, &name, None)?;
    let (_, rendered) = insert(state, call, |id| Network {
        id,
        name,
        ip_range: range,
        subnets,
        routes,
        labels,
        expose_routes_to_vswitch: expose,
        created_wall: SystemTime::now(),
    });
    reply(201, json!({"network": rendered}))
}

/// `PUT /networks/{id}`: `name`, `labels`, `expose_routes_to_vswitch`.
pub(super) fn update(state: &mut State, call: &Call, id: &str) -> Result<Reply, HzError> {
    family::update::<Network, _>(state, call, id, |body| {
        let expose = body
            .contains_key("expose_routes_to_vswitch")
            .then(|| opt_bool(body, "expose_routes_to_vswitch", false))
            .transpose()?;
        Ok(move |network: &mut Network| {
            if let Some(expose) = expose {
                network.expose_routes_to_vswitch = expose;
            }
        })
    })
}

/// `DELETE /networks/{id}`: 204; servers still attached (deleted ones too) are detached.
pub(super) fn delete(state: &mut State, id: &str) -> Result<Reply, HzError> {
    family::delete::<Network>(state, id, |store, id| {
        for server in store.servers.values_mut() {
            server.private_net.retain(|p| p.network != id);
        }
        Ok(())
    })
}
