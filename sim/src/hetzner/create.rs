//! `POST /v1/servers`: every field checked against the request schema and the API's rules
//! before anything changes; then the server, its addresses, its firewalls and its
//! `create_server` (and `start_server`) actions.
//!
//! Refusals: 400 `invalid_input` for a malformed or unknown field (server type, image,
//! location, SSH key, network, firewall, placement group, labels, a network without a subnet
//! in the location's zone); 409 `uniqueness_error` for a name in use; 422
//! `placement_group_member_limit_reached` past 10 servers in a spread group; 422
//! `private_net_only_server` for firewalls on a server without a public address; 403
//! `resource_limit_exceeded` past the server limit.

use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::body::{
    Object, id_list, labels, object, opt_array, opt_bool, opt_id, opt_str, req_str, string_list,
};
use super::catalog::{self, LOCATIONS, Location};
use super::render::{action_json, server_json};
use super::servers::check_name;
use super::store::{ActionKind, PrivateNet, Server, Target};
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;
use crate::util::uuid;

/// Largest `user_data` the API takes: 32 KiB.
const USER_DATA_MAX: usize = 32 * 1024;
/// Most servers in one spread placement group.
const SPREAD_MAX: usize = 10;

/// `public_net` of a create: `{enable_ipv4, enable_ipv6}` (both true when absent). Primary IPs
/// (`ipv4`, `ipv6` ids) are not simulated: naming one is a 400.
fn public_net(body: &Object) -> Result<(bool, bool), HzError> {
    let net = match body.get("public_net") {
        None => return Ok((true, true)),
        Some(Json::Object(net)) => net,
        Some(_) => return Err(HzError::invalid("public_net", "must be an object")),
    };
    for key in ["ipv4", "ipv6"] {
        // Nullable in the schema.
        if !net.get(key).is_none_or(Json::is_null) && opt_id(net, key)?.is_some() {
            return Err(HzError::invalid(
                "public_net",
                format!("primary IP in {key} not found"),
            ));
        }
    }
    Ok((
        opt_bool(net, "enable_ipv4", true)?,
        opt_bool(net, "enable_ipv6", true)?,
    ))
}

/// The SSH keys of a create, by id or by name.
fn ssh_keys(state: &State, body: &Object) -> Result<Vec<u64>, HzError> {
    string_list(body, "ssh_keys")?
        .iter()
        .map(|key| {
            state
                .hetzner
                .ssh_keys
                .values()
                .find(|k| k.name == *key || k.id.to_string() == *key)
                .map(|k| k.id)
                .ok_or_else(|| HzError::invalid("ssh_keys", format!("SSH key `{key}` not found")))
        })
        .collect()
}

/// The firewalls of a create: `[{"firewall": id}]`, each existing, none twice.
fn firewalls(state: &State, body: &Object) -> Result<Vec<u64>, HzError> {
    let mut ids = Vec::new();
    for item in opt_array(body, "firewalls")? {
        let id = item
            .as_object()
            .map(|o| opt_id(o, "firewall"))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                HzError::invalid("firewalls", "each entry must be {\"firewall\": id}")
            })?;
        if !state.hetzner.firewalls.contains_key(&id) {
            return Err(HzError::invalid(
                "firewalls",
                format!("firewall {id} not found"),
            ));
        }
        if ids.contains(&id) {
            return Err(HzError::invalid(
                "firewalls",
                format!("firewall {id} given twice"),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The location a create asks for (`location` or `datacenter`, not both), if any.
fn location(body: &Object) -> Result<Option<&'static Location>, HzError> {
    match (opt_str(body, "location")?, opt_str(body, "datacenter")?) {
        (Some(_), Some(_)) => Err(HzError::invalid(
            "location",
            "location and datacenter are mutually exclusive",
        )),
        (Some(name), None) => catalog::location(name)
            .map(Some)
            .ok_or_else(|| HzError::invalid("location", format!("location `{name}` not found"))),
        (None, Some(name)) => catalog::location_of_datacenter(name)
            .map(Some)
            .ok_or_else(|| {
                HzError::invalid("datacenter", format!("datacenter `{name}` not found"))
            }),
        (None, None) => Ok(None),
    }
}

pub(super) fn create_server(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let body = object(call)?;
    let name = req_str(&body, "name")?.to_owned();
    check_name(state, &name, None).or_else(|e| {
        // A taken name is reported after the other checks, as a 409.
        if e.status == 409 { Ok(()) } else { Err(e) }
    })?;
    let type_name = req_str(&body, "server_type")?;
    let server_type = catalog::server_type(type_name).ok_or_else(|| {
        HzError::invalid(
            "server_type",
            format!("server type `{type_name}` not found"),
        )
    })?;
    let image_name = req_str(&body, "image")?;
    let image = match catalog::image_for(image_name, server_type.arm) {
        Some(Ok(image)) => image,
        Some(Err(_)) => {
            return Err(HzError::invalid(
                "image",
                format!("image `{image_name}` does not fit the architecture of {type_name}"),
            ));
        }
        None => {
            return Err(HzError::invalid(
                "image",
                format!("image `{image_name}` not found"),
            ));
        }
    };
    let asked_location = location(&body)?;
    let labels = labels(&body)?;
    if let Some(user_data) = opt_str(&body, "user_data")?
        && user_data.len() > USER_DATA_MAX
    {
        return Err(HzError::invalid("user_data", "must be at most 32 KiB"));
    }
    let start_after_create = opt_bool(&body, "start_after_create", true)?;
    opt_bool(&body, "automount", false)?;
    if let Some(volume) = id_list(&body, "volumes")?.first() {
        return Err(HzError::invalid(
            "volumes",
            format!("volume {volume} not found"),
        ));
    }
    let (enable_ipv4, enable_ipv6) = public_net(&body)?;
    let keys = ssh_keys(state, &body)?;
    let networks = id_list(&body, "networks")?;
    for (i, id) in networks.iter().enumerate() {
        if !state.hetzner.networks.contains_key(id) {
            return Err(HzError::invalid(
                "networks",
                format!("network {id} not found"),
            ));
        }
        if networks[..i].contains(id) {
            return Err(HzError::invalid(
                "networks",
                "server is only allowed to be attached to each network once",
            ));
        }
    }
    let firewalls = firewalls(state, &body)?;
    let group = opt_id(&body, "placement_group")?;
    if let Some(id) = group
        && !state.hetzner.placement_groups.contains_key(&id)
    {
        return Err(HzError::invalid(
            "placement_group",
            format!("placement group {id} not found"),
        ));
    }
    // Without a location: the first of the first network's zone, else Falkenstein.
    let location = asked_location.unwrap_or_else(|| {
        let zone = networks
            .first()
            .and_then(|id| state.hetzner.networks.get(id))
            .and_then(|n| n.subnets.first())
            .map(|s| s.zone.as_str());
        LOCATIONS
            .iter()
            .find(|l| zone.is_none_or(|z| z == l.zone))
            .unwrap_or(&LOCATIONS[0])
    });
    // Each network needs a cloud (or server) subnet in the location's zone with room left.
    let mut subnets = Vec::new();
    for id in &networks {
        let network = &state.hetzner.networks[id];
        let Some(index) = network
            .subnets
            .iter()
            .position(|s| s.zone == location.zone && s.kind != "vswitch")
        else {
            return Err(HzError::invalid(
                "networks",
                format!(
                    "network {id} has no subnet in network zone {} of location {}",
                    location.zone, location.name
                ),
            ));
        };
        let subnet = &network.subnets[index];
        // .0 is the network, .1 the gateway, the last the broadcast address.
        if u64::from(subnet.issued) + 3 >= subnet.range.size() {
            return Err(HzError::unprocessable(
                "ip_not_available",
                format!(
                    "no IP address left in subnet {} of network {id}",
                    subnet.range
                ),
            ));
        }
        subnets.push((*id, index));
    }
    if !enable_ipv4 && !enable_ipv6 && networks.is_empty() {
        return Err(HzError::invalid(
            "public_net",
            "a server without public addresses must be attached to a network",
        ));
    }
    if !firewalls.is_empty() && !enable_ipv4 && !enable_ipv6 {
        return Err(HzError::unprocessable(
            "private_net_only_server",
            "firewalls apply to public interfaces only, and this server has none",
        ));
    }
    check_name(state, &name, None)?;
    if let Some(id) = group {
        let members = state
            .hetzner
            .servers
            .values()
            .filter(|s| s.placement_group == Some(id))
            .count();
        if members >= SPREAD_MAX {
            return Err(HzError::unprocessable(
                "placement_group_member_limit_reached",
                format!("placement group with ID {id} contains already {SPREAD_MAX} servers"),
            ));
        }
    }
    if let Some(limit) = state.config.droplet_limit
        && state.hetzner.live_servers() >= limit
    {
        return Err(HzError {
            details: json!({"limits": [{"name": "server_limit"}]}),
            ..HzError::new(403, "resource_limit_exceeded", "server limit exceeded")
        });
    }

    // Everything checked; from here on the create happens.
    let store = &mut state.hetzner;
    let id = store.next_id::<Server>();
    let mut private_net = Vec::new();
    for (n, (network_id, index)) in subnets.into_iter().enumerate() {
        let Some(network) = store.networks.get_mut(&network_id) else {
            continue;
        };
        let subnet = &mut network.subnets[index];
        subnet.issued += 1;
        private_net.push(PrivateNet {
            network: network_id,
            ip: subnet.range.host(subnet.issued + 1),
            mac: format!(
                "86:00:{:02x}:{:02x}:{:02x}:{:02x}",
                n,
                (id >> 16) & 0xff,
                (id >> 8) & 0xff,
                id & 0xff
            ),
        });
    }
    let ipv4 = enable_ipv4.then(|| store.next_public_ip());
    let ipv6 = enable_ipv6.then(|| format!("2001:db8:0:{:x}::/64", id & 0xffff));
    for firewall in firewalls {
        if let Some(f) = store.firewalls.get_mut(&firewall) {
            f.applied_to.push(Target::Server(id));
        }
    }
    store.servers.insert(
        id,
        Server {
            id,
            name,
            server_type,
            image,
            location,
            labels,
            ipv4,
            ipv6,
            private_net,
            placement_group: group,
            start_after_create,
            has_ssh_keys: !keys.is_empty(),
            created: call.now,
            created_wall: SystemTime::now(),
            deleted: None,
            delete_action: None,
        },
    );
    let resources = vec![(id, "server")];
    let action = store.add_action("create_server", ActionKind::Create(id), resources, call.now);
    let next = start_after_create.then(|| {
        store.add_action(
            "start_server",
            ActionKind::Create(id),
            vec![(id, "server")],
            call.now,
        )
    });
    let store = &state.hetzner;
    let render = |action: u64| {
        store
            .actions
            .get(&action)
            .map(|a| action_json(state, a, call.now))
            .unwrap_or(Json::Null)
    };
    let next_actions: Vec<Json> = next.into_iter().map(render).collect();
    let server = &store.servers[&id];
    let root_password = if server.has_ssh_keys {
        Json::Null
    } else {
        Json::String(uuid(id).replace('-', "")[..20].to_owned())
    };
    reply(
        201,
        json!({
            "server": server_json(state, server, call.now),
            "action": render(action),
            "next_actions": next_actions,
            "root_password": root_password,
        }),
    )
}
