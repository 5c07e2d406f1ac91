//! `/v1/ssh_keys`: SSH keys, listed by `name`, `fingerprint` (MD5, colon-separated hex, as
//! `ssh-keygen -E md5 -l` prints it) or `label_selector`. A name or a fingerprint already in
//! the project is 409 `uniqueness_error`; a key that is not `type base64 [comment]` is 400
//! `invalid_input`.

use std::time::SystemTime;

use serde_json::{Value as Json, json};

use super::body::{Filter, labels, object, req_str};
use super::family::{self, check_name, insert, list_kept, new_name};
use super::store::SshKey;
use super::{HzError, reply};
use crate::api::{Call, Reply};
use crate::state::State;
use crate::util::{rfc3339, ssh_fingerprint};

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
    list_kept::<SshKey>(state, call, &filter, |k| {
        fingerprint.is_none_or(|f| f == k.fingerprint)
    })
}

pub(super) fn create(state: &mut State, call: &Call) -> Result<Reply, HzError> {
    let body = object(call)?;
    let name = new_name::<SshKey>(&body)?;
    let public_key = req_str(&body, "public_key")?.trim().to_owned();
    let fingerprint = ssh_fingerprint(&public_key).ok_or_else(|| {
        HzError::invalid(
            "public_key",
            "invalid public key: expected `type base64 [comment]`",
        )
    })?;
    let labels = labels(&body)?;
    check_name::<SshKey>(state, &name, None)?;
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
    let (_, rendered) = insert(state, call, |id| SshKey {
        id,
        name,
        public_key,
        fingerprint,
        labels,
        created_wall: SystemTime::now(),
    });
    reply(201, json!({"ssh_key": rendered}))
}

/// `DELETE /ssh_keys/{id}`: 204 (servers created with the key keep running).
pub(super) fn delete(state: &mut State, id: &str) -> Result<Reply, HzError> {
    family::delete::<SshKey>(state, id, |_, _| Ok(()))
}
