//! What fitter reads from Hetzner Cloud's answers, as types: an answer either parses whole
//! into them or is an error naming the call and the field ([`crate::http::parse`]), as for
//! DigitalOcean (see `digitalocean/answer.rs` for why nothing is read ad hoc).
//!
//! Only the fields fitter uses are here; unknown fields are ignored (the API adds fields).
//! Names and types follow `shared/hetzner-cloud-openapi.json`. Ids are integers; names,
//! label keys and values, statuses are checked for shape (letters, digits, `.`, `-`, `_`,
//! and `/` in label keys), so no whitespace, control character or path separator gets into
//! a path, a message or the state. SSH key names are free text in the API: they are
//! [`Text`], free of control characters.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;

pub use crate::checked::Fingerprint;
use crate::checked::{MAX_LEN, checked_string, word_of};

checked_string!(
    /// A server's, network's, firewall's or placement group's name; a status; a command.
    Name,
    "a Hetzner name (letters, digits, '.', '-', '_'; at most 255)",
    |s| word_of(s, &['.', '-', '_'])
);

checked_string!(
    /// A label key (`fitter/deployment`) or value; values may be empty.
    Label,
    "a Hetzner label (letters, digits, '.', '-', '_', '/'; at most 255)",
    |s| s.is_empty() || word_of(s, &['.', '-', '_', '/'])
);

checked_string!(
    /// Free text: no control character, at most 255 characters.
    Text,
    "text without control characters (at most 255)",
    |s| s.chars().count() <= MAX_LEN && !s.chars().any(char::is_control)
);

pub type Labels = BTreeMap<Label, Label>;

/// Whether `labels` has `key` with `value`.
pub fn has_label(labels: &Labels, key: &str, value: &str) -> bool {
    labels.iter().any(|(k, v)| *k == key && *v == value)
}

// `Label` is a map key: order it by its text.
impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub id: u64,
    pub name: Name,
    /// `initializing`, `starting`, `running`, `off`, `deleting`, ...
    pub status: Name,
    pub labels: Labels,
    pub public_net: PublicNet,
    pub private_net: Vec<PrivateNet>,
    pub server_type: ServerType,
    #[serde(default)]
    pub placement_group: Option<Reference>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PublicNet {
    #[serde(default)]
    pub ipv4: Option<Ipv4>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ipv4 {
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PrivateNet {
    pub network: u64,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerType {
    pub name: Name,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Network {
    pub id: u64,
    pub name: Name,
    pub labels: Labels,
    pub servers: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Firewall {
    pub id: u64,
    pub name: Name,
    #[serde(default)]
    pub labels: Labels,
    pub applied_to: Vec<Applied>,
}

/// What a firewall applies to: a server, or the servers a label selector matches.
#[derive(Debug, Clone, Deserialize)]
pub struct Applied {
    #[serde(rename = "type")]
    pub kind: Name,
    #[serde(default)]
    pub server: Option<Reference>,
    #[serde(default)]
    pub label_selector: Option<Selector>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Selector {
    pub selector: Text,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SshKey {
    pub id: u64,
    pub name: Text,
    pub fingerprint: Fingerprint,
    pub labels: Labels,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlacementGroup {
    pub id: u64,
    pub name: Name,
    pub labels: Labels,
    pub servers: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    pub id: u64,
    /// `running`, `success` or `error`.
    pub status: Name,
    pub command: Name,
    #[serde(default)]
    pub error: Option<ActionError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActionError {
    pub code: Text,
    pub message: Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_fail_at_their_field() {
        let server = |patch: serde_json::Value| {
            let mut s = serde_json::json!({
                "id": 7, "name": "master1", "status": "running",
                "labels": {"fitter/deployment": "d", "fitter-role-zookeeper": ""},
                "public_net": {"ipv4": {"ip": "127.2.0.1"}},
                "private_net": [{"network": 3, "ip": "10.10.0.2"}],
                "server_type": {"name": "cx22"}, "placement_group": null
            });
            for (k, v) in patch.as_object().unwrap() {
                s[k] = v.clone();
            }
            serde_json::from_value::<Server>(s)
        };
        let good = server(serde_json::json!({})).unwrap();
        assert!(has_label(&good.labels, "fitter/deployment", "d"));
        assert!(server(serde_json::json!({"name": "a b"})).is_err());
        assert!(server(serde_json::json!({"id": "abc"})).is_err());
        assert!(server(serde_json::json!({"public_net": {"ipv4": {"ip": "*"}}})).is_err());
        assert!(server(serde_json::json!({"labels": {"k": "v\nw"}})).is_err());
        assert!(server(serde_json::json!({"status": "run\u{1b}[2J"})).is_err());
    }
}
