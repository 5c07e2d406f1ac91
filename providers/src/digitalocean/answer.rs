//! What fitter reads from DigitalOcean's answers, as types: an answer either parses whole
//! into them or is an error naming the call and the field ([`super::client::parse`]).
//!
//! Why: the endpoint is trusted with nothing (docs/security.md, issue 10). Read ad hoc from
//! JSON, a wrong or hostile endpoint could make fitter misread the cloud without a word: a
//! listing by tag whose droplets had `"id": "abc"` was skipped entry by entry, so fitter saw
//! nothing and created duplicates; a droplet whose address was `*` was "not ready" until the
//! timeout. Now nothing fitter reads is skipped or taken as absent because it did not parse.
//!
//! Only the fields fitter uses are here, and unknown fields are ignored: the API adds fields.
//! Names and types follow `shared/digitalocean-openapi.yaml`; what the spec requires is
//! required here, what it marks nullable or optional is an `Option` or defaults to empty.
//!
//! Strings fitter compares, prints, or puts back into a path are checked for shape while
//! they are deserialised (`#[serde(try_from = "String")]`), so a value of the wrong shape
//! fails at its field instead of travelling on: ids of VPCs and firewalls are UUIDs, key
//! fingerprints MD5 pairs, names DigitalOcean names. Each rule is a little wider than the
//! API's own patterns where they differ by kind (a VPC's name may not hold `_`, a droplet's
//! may), so that nothing the real API sends is refused, and narrow enough that no
//! whitespace, control character or path separator gets through. Key names and VPC descriptions are free text in the API (`My SSH Public
//! Key`): they are [`Text`], free of control characters and at most 255 characters.

use std::net::IpAddr;

use serde::Deserialize;

pub use crate::checked::Fingerprint;
use crate::checked::{MAX_LEN, checked_string, word_of};

checked_string!(
    /// A droplet's, VPC's or firewall's name: letters, digits, `.`, `-`, `_`.
    Name,
    "a DigitalOcean name (letters, digits, '.', '-', '_'; at most 255)",
    |s| word_of(s, &['.', '-', '_'])
);

checked_string!(
    /// A status, a type or a slug (`active`, `in-progress`, `power_off`, `s-1vcpu-1gb`):
    /// compared and printed, so held to the same characters as a name.
    Word,
    "a DigitalOcean word (letters, digits, '.', '-', '_'; at most 255)",
    |s| word_of(s, &['.', '-', '_'])
);

checked_string!(
    /// A tag: letters, digits, `:`, `-`, `_`, as the API's pattern says. Tags end up in
    /// request paths (`/v2/tags/<name>`), so nothing else may be in them, not even `.`.
    TagName,
    "a DigitalOcean tag (letters, digits, ':', '-', '_'; at most 255)",
    |s| word_of(s, &[':', '-', '_'])
);

checked_string!(
    /// The id of a VPC or a firewall: a UUID, `8-4-4-4-12` hex digits.
    Uuid,
    "a UUID",
    |s| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            })
    }
);

checked_string!(
    /// Free text (an SSH key's name, a VPC's description): at most 255 characters, none of
    /// them a control character, so that printing it cannot break a line or a terminal.
    Text,
    "text without control characters, at most 255 characters",
    |s| s.chars().count() <= MAX_LEN && !s.chars().any(char::is_control)
);

/// The account a token belongs to (`GET /v2/account`): only what fitter acts on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Account {
    /// `active`, `warning` or `locked`; anything else (or nothing) is not acted on, and
    /// never printed.
    #[serde(default)]
    pub status: Option<serde_json::Value>,
}

/// A droplet, as listed or read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Droplet {
    pub id: u64,
    pub name: Name,
    pub status: Word,
    pub locked: bool,
    pub size_slug: Word,
    pub networks: Networks,
    pub tags: Vec<TagName>,
    /// Read for `fitter import` only; absent or null is no answer, not an error.
    #[serde(default)]
    pub region: Option<Slugged>,
    #[serde(default)]
    pub image: Option<Slugged>,
}

/// A region or an image as a droplet names it: only its slug.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Slugged {
    #[serde(default)]
    pub slug: Option<Word>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Networks {
    #[serde(default)]
    pub v4: Vec<Address>,
}

/// An IPv4 interface. The address is an `IpAddr` from here on: `*`, a host name or a line
/// break never reaches a known_hosts file or an inventory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Address {
    pub ip_address: IpAddr,
    /// `public` or `private`.
    #[serde(rename = "type")]
    pub kind: Word,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Vpc {
    pub id: Uuid,
    pub name: Name,
    /// fitter writes `fitter deployment <name>` here and checks it before adopting a VPC.
    #[serde(default)]
    pub description: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Firewall {
    pub id: Uuid,
    pub name: Name,
    /// Nullable in the spec: no tags.
    #[serde(default)]
    pub tags: Option<Vec<TagName>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SshKey {
    pub id: u64,
    pub name: Text,
    pub fingerprint: Fingerprint,
}

/// A droplet action (power off, resize, power on).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Action {
    pub id: u64,
    /// `in-progress`, `completed` or `errored`.
    pub status: Word,
    #[serde(rename = "type")]
    pub kind: Word,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tag {
    pub name: TagName,
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
