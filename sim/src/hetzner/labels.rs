//! Labels and label selectors, as Hetzner defines them.
//!
//! A key is a name of at most 63 characters (alphanumerics at both ends, `-`, `_` and `.`
//! between) with an optional prefix: a DNS subdomain of at most 253 characters and a `/`.
//! The prefix `hetzner.cloud/` is reserved. A value is empty or at most 63 characters of the
//! same alphabet (the spec's pattern).
//!
//! A selector is requirements joined by commas, all of which must hold: `k=v` or `k==v`,
//! `k!=v` (also true when `k` is absent), `k` (present), `!k` (absent), `k in (a,b)` and
//! `k notin (a,b)` (also true when `k` is absent), as in Kubernetes.

use std::collections::BTreeMap;

use super::HzError;

pub(crate) type Labels = BTreeMap<String, String>;

/// A name or a value: alphanumerics at both ends, `-`, `_`, `.` between, 1 to 63 long.
fn valid_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 253
        && prefix.split('.').all(|part| {
            let bytes = part.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        })
}

pub(crate) fn valid_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => valid_prefix(prefix) && valid_name(name),
        None => valid_name(key),
    }
}

pub(crate) fn valid_value(value: &str) -> bool {
    value.is_empty() || valid_name(value)
}

/// Checks labels as a create or an update gives them.
pub(crate) fn check(labels: &Labels) -> Result<(), HzError> {
    for (key, value) in labels {
        if !valid_key(key) {
            return Err(HzError::invalid(
                "labels",
                format!("invalid label key `{key}`"),
            ));
        }
        if key.starts_with("hetzner.cloud/") {
            return Err(HzError::invalid(
                "labels",
                format!("label key `{key}`: the prefix hetzner.cloud/ is reserved"),
            ));
        }
        if !valid_value(value) {
            return Err(HzError::invalid(
                "labels",
                format!("invalid label value `{value}` of `{key}`"),
            ));
        }
    }
    Ok(())
}

/// A parsed label selector: every requirement must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    /// Parses `text`; the error is a 400 `invalid_input` naming `field`.
    pub(crate) fn parse(text: &str, field: &str) -> Result<Selector, HzError> {
        let bad = |why: String| HzError::invalid(field, why);
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad(format!("empty requirement in `{text}`")));
            }
            let key_ok = |key: &str| {
                if valid_key(key) {
                    Ok(key.to_owned())
                } else {
                    Err(bad(format!("invalid label key `{key}` in `{text}`")))
                }
            };
            let value_ok = |value: &str| {
                let value = value.trim();
                if valid_value(value) {
                    Ok(value.to_owned())
                } else {
                    Err(bad(format!("invalid label value `{value}` in `{text}`")))
                }
            };
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::Absent(key_ok(key.trim())?)
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key_ok(key.trim())?, value_ok(value)?)
            } else if let Some((key, value)) = part.split_once("==") {
                Requirement::Equals(key_ok(key.trim())?, value_ok(value)?)
            } else if let Some((key, value)) = part.split_once('=') {
                Requirement::Equals(key_ok(key.trim())?, value_ok(value)?)
            } else if let Some((key, rest)) = part.split_once(char::is_whitespace) {
                let rest = rest.trim_start();
                let (negated, list) = if let Some(list) = rest.strip_prefix("notin") {
                    (true, list)
                } else if let Some(list) = rest.strip_prefix("in") {
                    (false, list)
                } else {
                    return Err(bad(format!("cannot read `{part}`")));
                };
                let list = list
                    .trim()
                    .strip_prefix('(')
                    .and_then(|l| l.strip_suffix(')'))
                    .ok_or_else(|| bad(format!("`{part}`: the values go in parentheses")))?;
                let values = list
                    .split(',')
                    .map(value_ok)
                    .collect::<Result<Vec<_>, _>>()?;
                let key = key_ok(key)?;
                if negated {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                }
            } else {
                Requirement::Exists(key_ok(part)?)
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    pub(crate) fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

/// `text` split at the commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_documented() {
        let web = labels(&[("role", "web"), ("env", "prod"), ("fitter.io/plan", "a")]);
        let db = labels(&[("role", "db")]);
        let cases = [
            ("role=web", true, false),
            ("role==web", true, false),
            ("role!=web", false, true),
            ("env", true, false),
            ("!env", false, true),
            ("role in (web, cache)", true, false),
            ("role notin (web,cache)", false, true),
            ("role=web,env=prod", true, false),
            ("role in (web,db),!env", false, true),
            ("fitter.io/plan=a", true, false),
            ("env!=prod", false, true),
        ];
        for (text, on_web, on_db) in cases {
            let selector = Selector::parse(text, "label_selector").unwrap();
            assert_eq!(selector.matches(&web), on_web, "{text} on web");
            assert_eq!(selector.matches(&db), on_db, "{text} on db");
        }
    }

    #[test]
    fn bad_selectors_and_labels_are_refused() {
        for text in ["role=", "a b", "role in web", "=x", "role=a b", ",", "-x"] {
            let parsed = Selector::parse(text, "label_selector");
            if text == "role=" {
                // An empty value is a value.
                assert!(parsed.is_ok(), "{text}");
            } else {
                assert_eq!(parsed.unwrap_err().code, "invalid_input", "{text}");
            }
        }
        assert!(check(&labels(&[("k", ""), ("example.com/my", "label")])).is_ok());
        for (k, v) in [
            ("-k", "v"),
            ("k", "v-"),
            ("hetzner.cloud/x", "v"),
            ("", "v"),
        ] {
            assert!(check(&labels(&[(k, v)])).is_err(), "{k}={v}");
        }
        assert!(check(&labels(&[(&"k".repeat(64), "v")])).is_err());
    }
}
