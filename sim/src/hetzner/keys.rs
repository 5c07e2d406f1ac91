//! `/v1/ssh_keys`: SSH keys, listed by `name`, `fingerprint` (MD5, colon-separated hex, as
//! `ssh-keygen -E md5 -l` prints it) or `label_selector`. A name or a fingerprint already in
//! the project is 409 `uniqueness_error`; a key that is not `type base64 [comment]` is 400
//! `invalid_input`.

use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::body::{Filter, labels, object, path_id, req_str, sort};
use super::page::paginate;
use super::store::SshKey;
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;
use crate::util::{rfc3339, ssh_fingerprint};

const NAME_MAX: usize = 255;

pub(crate) fn ssh_key_json(k: &SshKey) -> Json {
    json!({
        "id": k.id,
        "name": k.name,
        "fingerprint": k.fingerprint,
        "public_key": k.public_key,
        "labels": k.labels,
        "created": rfc3339(k.created_wall),
    })
}

pub(super) fn list(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let filter = Filter::new(call)?;
    let fingerprint = call.param("fingerprint");
    let mut keys: Vec<&SshKey> = state
        .hetzner
        .ssh_keys
        .values()
        .filter(|k| filter.keeps(&k.name, &k.labels))
        .filter(|k| fingerprint.is_none_or(|f| f == k.fingerprint))
        .collect();
    sort(call, &mut keys, |k| (k.id, k.name.as_str()));
    paginate(call, "ssh_keys", &keys, |k| ssh_key_json(k))
}

fn find(state: &State, id: &str) -> Result<u64, HzError> {
    let id = path_id(id)?;
    match state.hetzner.ssh_keys.contains_key(&id) {
        true => Ok(id),
        false => Err(HzError::not_found()),
    }
}

pub(super) fn get(state: &mut State, id: &str) -> Result<Reply, HzError> {
    let id = find(state, id)?;
    reply(
        200,
        json!({"ssh_key": ssh_key_json(&state.hetzner.ssh_keys[&id])}),
    )
}

fn check_name(state: &State, name: &str, except: Option<u64>) -> Result<(), HzError> {
    if state
        .hetzner
        .ssh_keys
        .values()
        .any(|k| k.name == name && Some(k.id) != except)
    {
        return Err(HzError::uniqueness("name", "SSH key name is already used"));
    }
    Ok(())
}

pub(super) fn create(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let body = object(call)?;
    let name = super::body::name(&body, NAME_MAX)?
        .ok_or_else(|| HzError::invalid("name", "is required"))?
        .to_owned();
    let public_key = req_str(&body, "public_key")?.trim().to_owned();
    let fingerprint = ssh_fingerprint(&public_key).ok_or_else(|| {
        HzError::invalid(
            "public_key",
            "invalid public key: expected `type base64 [comment]`",
        )
    })?;
    let labels = labels(&body)?;
    check_name(state, &name, None)?;
    if state
        .hetzner
        .ssh_keys
        .values()
        .any(|k| k.fingerprint == fingerprint)
    {
        return Err(HzError::uniqueness(
            "public_key",
            "SSH key with the same fingerprint already exists",
        ));
    }
    let id = state.hetzner.next_ssh_key_id();
    let key = SshKey {
        id,
        name,
        public_key,
        fingerprint,
        labels,
        created_wall: SystemTime::now(),
    };
    let rendered = ssh_key_json(&key);
    state.hetzner.ssh_keys.insert(id, key);
    reply(201, json!({"ssh_key": rendered}))
}

/// `PUT /ssh_keys/{id}`: `name` and `labels`.
pub(super) fn update(state: &mut State, call: &Call, id: &str) -> Result<Reply, HzError> {
    let body = object(call)?;
    let id = find(state, id)?;
    let name = super::body::name(&body, NAME_MAX)?;
    if let Some(name) = name {
        check_name(state, name, Some(id))?;
    }
    let labels = body
        .contains_key("labels")
        .then(|| labels(&body))
        .transpose()?;
    let key = state
        .hetzner
        .ssh_keys
        .get_mut(&id)
        .ok_or_else(HzError::not_found)?;
    if let Some(name) = name {
        key.name = name.to_owned();
    }
    if let Some(labels) = labels {
        key.labels = labels;
    }
    reply(200, json!({"ssh_key": ssh_key_json(key)}))
}

/// `DELETE /ssh_keys/{id}`: 204 (servers created with the key keep running).
pub(super) fn delete(state: &mut State, id: &str) -> Result<Reply, HzError> {
    let id = find(state, id)?;
    state.hetzner.ssh_keys.remove(&id);
    Ok(Reply {
        status: 204,
        body: None,
    })
}
