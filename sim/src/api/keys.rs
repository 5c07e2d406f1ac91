//! `/v2/account/keys`: the account's SSH keys, found by id or by fingerprint.

use serde_json::json;

use super::fields::{opt_string, required_string};
use super::page::paginate;
use super::{ApiError, Call, Reply};
use crate::state::{SshKey, State};
use crate::util::ssh_fingerprint;

pub(super) fn find_key_by_id(state: &State, id: u64) -> Option<&SshKey> {
    state.ssh_keys.iter().find(|k| k.id == id)
}

/// A key by id (all digits) or by fingerprint.
pub(super) fn find_key<'s>(state: &'s State, identifier: &str) -> Option<&'s SshKey> {
    match identifier.parse::<u64>() {
        Ok(id) => find_key_by_id(state, id),
        Err(_) => state.ssh_keys.iter().find(|k| k.fingerprint == identifier),
    }
}

/// `GET /v2/account`: the account the token belongs to. Clients ask it first to learn
/// whether the token is accepted; the limit is the simulator's droplet limit (DigitalOcean
/// gives new accounts 25 or so; unlimited here is shown as a large number).
pub(super) fn get_account(state: &mut State) -> Result<Reply, ApiError> {
    let droplet_limit = state.config.droplet_limit.unwrap_or(10_000);
    Reply::json(
        200,
        json!({ "account": {
            "droplet_limit": droplet_limit,
            "floating_ip_limit": 3,
            "email": "operator@example.com",
            "name": "fitter-sim",
            "uuid": "b6fc48dbf6d9906cace5e6ec3e4d5a3a0a5d7d2b",
            "email_verified": true,
            "status": "active",
            "status_message": "",
        }}),
    )
}

pub(super) fn list_ssh_keys(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
    let keys: Vec<&SshKey> = state.ssh_keys.iter().collect();
    paginate(call, "ssh_keys", &keys, |k| {
        state.ssh_key_json(k).to_string()
    })
}

pub(super) fn create_ssh_key(state: &mut State, call: &Call) -> Result<Reply, ApiError> {
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

pub(super) fn get_ssh_key(state: &mut State, identifier: &str) -> Result<Reply, ApiError> {
    let key = find_key(state, identifier).ok_or_else(ApiError::not_found)?;
    Reply::json(200, json!({ "ssh_key": state.ssh_key_json(key) }))
}

pub(super) fn update_ssh_key(
    state: &mut State,
    call: &Call,
    identifier: &str,
) -> Result<Reply, ApiError> {
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

pub(super) fn delete_ssh_key(state: &mut State, identifier: &str) -> Result<Reply, ApiError> {
    let id = find_key(state, identifier)
        .map(|k| k.id)
        .ok_or_else(ApiError::not_found)?;
    state.ssh_keys.retain(|k| k.id != id);
    Reply::no_content()
}
