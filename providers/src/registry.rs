//! The clouds fitter knows: adding one is a folder under providers/src with a
//! `catalogue.rs` that implements [`Cloud`](crate::Cloud), and one line in `KNOWN` below.
//!
//! Plans, `--provider` and state files name a cloud by [`Cloud::name`](crate::Cloud::name);
//! this is where a name becomes a [`ProviderKind`], and the only place that says which cloud
//! is the default.

use std::fmt;

use crate::{ProviderKind, digitalocean, hetzner, lxd};

/// Every cloud, in the order messages list them.
const KNOWN: &[ProviderKind] = &[digitalocean::KIND, hetzner::KIND, lxd::KIND];

/// Every cloud fitter knows.
pub fn all() -> &'static [ProviderKind] {
    KNOWN
}

/// Their names, in the order messages list them.
pub fn names() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.name()).collect()
}

/// The cloud of that name, if fitter knows it.
pub fn parse(name: &str) -> Option<ProviderKind> {
    KNOWN.iter().copied().find(|k| k.name() == name)
}

/// The cloud of that name, or an error that lists the known ones.
pub fn lookup(name: &str) -> Result<ProviderKind, UnknownProvider> {
    parse(name).ok_or_else(|| UnknownProvider {
        name: name.to_string(),
    })
}

/// The provider used when neither the plan nor `--provider` names one: the local one, so
/// that a plan works on a machine without a cloud account.
pub fn default_kind() -> ProviderKind {
    lxd::KIND
}

/// A name no registered cloud has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProvider {
    pub name: String,
}

impl fmt::Display for UnknownProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown provider `{}`; expected one of: {}",
            self.name,
            names().join(", ")
        )
    }
}

impl std::error::Error for UnknownProvider {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_find_their_cloud() {
        let names = names();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[..i].contains(name), "`{name}` is registered twice");
            let kind = parse(name).unwrap();
            assert_eq!(kind.cloud().name(), *name);
            assert_eq!(kind.to_string(), *name);
        }
        assert!(all().contains(&default_kind()));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        assert_eq!(
            lookup("aws").unwrap_err().to_string(),
            "unknown provider `aws`; expected one of: digitalocean, hetzner, lxd"
        );
    }

    #[test]
    fn kinds_serialize_as_their_name() {
        for kind in all() {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            let back: ProviderKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *kind);
        }
        let err = serde_json::from_str::<ProviderKind>("\"aws\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown provider `aws`; expected one of: digitalocean, hetzner, lxd"),
            "{err}"
        );
    }
}
