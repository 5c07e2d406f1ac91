//! Load-time parameters: `{{ parameter.x }}` is replaced as text before the YAML is parsed,
//! as plumbery does, so a parameter works anywhere, keys included. Values come from
//! `-p x=value` or the parameter's `default`, and are checked against its `type`.

use std::collections::{BTreeMap, BTreeSet};

use fitter_providers::did_you_mean;
use thiserror::Error;

use crate::diagnostics::{Diagnostic, Report, SourceFile, Substitution};
use crate::yaml::{Node, Span, Value};

use super::schema::{check_keys, map, text, unknown_key, wrong_type};

/// A parameter's declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    /// Any text (`str`, and plumbery's `locations.list`, which it never enforced).
    Text,
    Integer,
    Boolean,
    /// `[4..32]`: a whole number in the range.
    Range(i64, i64),
}

/// Why a parameter's declared type does not read, or a value does not fit it. `ty` is the
/// type as written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamError {
    #[error(
        "unknown parameter type `{ty}`; expected `str`, `int`, `bool` or a range such as `[4..32]`"
    )]
    UnknownType { ty: String },
    #[error("parameter type `{ty}` must read `[first..last]`")]
    NotARange { ty: String },
    #[error("`{bound}` in parameter type `{ty}` is not a number")]
    BoundNotANumber { ty: String, bound: String },
    #[error("parameter type `{ty}` is an empty range")]
    EmptyRange { ty: String },
    #[error("`{value}` is not a whole number")]
    NotAnInteger { value: String },
    #[error("`{value}` is not `true` or `false`")]
    NotABoolean { value: String },
    #[error("{value} is outside [{first}..{last}]")]
    OutOfRange { value: i64, first: i64, last: i64 },
    #[error("`{value}` is not a whole number in [{first}..{last}]")]
    NotInRange {
        value: String,
        first: i64,
        last: i64,
    },
}

impl ParamType {
    pub fn parse(s: &str) -> Result<ParamType, ParamError> {
        match s.trim() {
            "str" | "string" | "locations.list" => Ok(ParamType::Text),
            "int" | "integer" => Ok(ParamType::Integer),
            "bool" | "boolean" => Ok(ParamType::Boolean),
            other => {
                let ty = || other.to_string();
                let inner = other
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .ok_or_else(|| ParamError::UnknownType { ty: ty() })?;
                let (lo, hi) = inner
                    .split_once("..")
                    .ok_or_else(|| ParamError::NotARange { ty: ty() })?;
                let bound = |b: &str| -> Result<i64, ParamError> {
                    b.trim().parse().map_err(|_| ParamError::BoundNotANumber {
                        ty: ty(),
                        bound: b.to_string(),
                    })
                };
                let (lo, hi) = (bound(lo)?, bound(hi)?);
                if lo > hi {
                    return Err(ParamError::EmptyRange { ty: ty() });
                }
                Ok(ParamType::Range(lo, hi))
            }
        }
    }

    pub fn check(&self, value: &str) -> Result<(), ParamError> {
        let value_text = || value.to_string();
        match self {
            ParamType::Text => Ok(()),
            ParamType::Integer => {
                value
                    .parse::<i64>()
                    .map(|_| ())
                    .map_err(|_| ParamError::NotAnInteger {
                        value: value_text(),
                    })
            }
            ParamType::Boolean => match value {
                "true" | "false" => Ok(()),
                _ => Err(ParamError::NotABoolean {
                    value: value_text(),
                }),
            },
            ParamType::Range(lo, hi) => match value.parse::<i64>() {
                Ok(n) if (*lo..=*hi).contains(&n) => Ok(()),
                Ok(n) => Err(ParamError::OutOfRange {
                    value: n,
                    first: *lo,
                    last: *hi,
                }),
                Err(_) => Err(ParamError::NotInRange {
                    value: value_text(),
                    first: *lo,
                    last: *hi,
                }),
            },
        }
    }
}

const PARAMETER_KEYS: &[&str] = &["information", "type", "default"];

/// A parameter's default as read before substitution: its text, and where it is written
/// (an offset of the original text), so that an error the value causes where it is used
/// can point back at it.
pub type Default = Option<(String, usize)>;

/// Defaults read from the settings document before substitution: name → default.
pub fn prescan_defaults(settings: Option<&Node>) -> BTreeMap<String, Default> {
    let mut out = BTreeMap::new();
    let Some(params) = settings
        .and_then(|s| s.get("parameters"))
        .and_then(Node::as_map)
    else {
        return out;
    };
    for (name, def) in params {
        if let Some(name) = name.scalar_text() {
            let default = def.get("default");
            let text = default.and_then(Node::scalar_text);
            out.insert(name, text.zip(default.map(|d| d.span.start)));
        }
    }
    out
}

/// The most substituting parameters may add to a plan's text. Parsing takes some tens of
/// bytes of memory per byte of text, so this keeps what parameters can add under a
/// gigabyte of memory whatever their values; a 200 KB default used 5,000 times once took
/// 3 GB and 15 s, and is now an error at once. It bounds the growth, not the plan: a plan
/// written out node by node (38 MB for 100,000 nodes, bench/gen_plan.py --written) is read
/// with its parameters, its size being the operator's own.
pub const MAX_EXPANDED: usize = 16 << 20;

/// The text with every `{{ parameter.x }}` replaced. Tokens naming a parameter with no value
/// are left in place and reported. `None` when the text would grow by more than
/// [`MAX_EXPANDED`]: reported at the token that would have crossed it.
pub fn substitute(
    file: &mut SourceFile,
    values: &BTreeMap<String, Default>,
    given: &BTreeMap<String, String>,
    report: &mut Report,
) -> Option<String> {
    let original = file.original.clone();
    let mut out = String::with_capacity(original.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = original[search..].find("{{") {
        let open = search + found;
        let Some((name, close)) = parameter_token(&original[open..]) else {
            search = open + 2;
            continue;
        };
        let close = open + close;
        let (value, default_at) = match given.get(name) {
            Some(v) => (Some(v.clone()), None),
            None => match values.get(name).cloned().flatten() {
                Some((v, at)) => (Some(v), Some(at)),
                None => (None, None),
            },
        };
        out.push_str(&original[copied..open]);
        let parsed_start = out.len();
        let grown = out.len() + value.as_ref().map_or(0, String::len) + (original.len() - close);
        if grown.saturating_sub(original.len()) > MAX_EXPANDED {
            out.push_str(&original[open..close]);
            report.push(
                Diagnostic::error(
                    Span::new(parsed_start, out.len()),
                    format!(
                        "substituting parameter `{name}` here grows the plan by more than {} MiB, the most parameters may add",
                        MAX_EXPANDED >> 20
                    ),
                )
                .with_help("a parameter's value is pasted in as text wherever it is used: use it less, or make it shorter"),
            );
            return None;
        }
        match value {
            Some(value) => {
                out.push_str(&value);
                file.substitutions.push(Substitution {
                    parsed_start,
                    parsed_end: out.len(),
                    original_start: open,
                    original_end: close,
                    default_at,
                });
            }
            None => {
                out.push_str(&original[open..close]);
                let span = Span::new(parsed_start, out.len());
                if values.contains_key(name) {
                    report.push(
                        Diagnostic::error(
                            span,
                            format!("parameter `{name}` has no default and no value was given"),
                        )
                        .with_help(format!("run with `-p {name}=VALUE`")),
                    );
                } else {
                    let known: Vec<&str> = values.keys().map(String::as_str).collect();
                    let mut d = Diagnostic::error(span, format!("undefined parameter `{name}`"));
                    d = match did_you_mean(name, known.iter().copied()) {
                        Some(best) => d.with_help(format!("did you mean `{best}`?")),
                        None => d.with_help("declare it under `parameters:` in the first document"),
                    };
                    report.push(d);
                }
            }
        }
        copied = close;
        search = close;
    }
    out.push_str(&original[copied..]);
    Some(out)
}

/// `{{ parameter.name }}` at the start of `s`: the name and the length of the token.
fn parameter_token(s: &str) -> Option<(&str, usize)> {
    let inner_start = 2;
    let close = s.find("}}")?;
    let inner = &s[inner_start..close];
    if inner.contains("{{") {
        return None;
    }
    let name = inner.trim().strip_prefix("parameter.")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    Some((name, close + 2))
}

/// `[4..32]` written unquoted, which YAML reads as a list of the one string `4..32`: the
/// range type `[4..32]`, as plumbery reads it.
fn range_as_list(node: &Node) -> Option<String> {
    match node.as_seq()? {
        [only] => {
            let inner = only.scalar_text()?;
            inner.contains("..").then(|| format!("[{inner}]"))
        }
        _ => None,
    }
}

/// Checks the `parameters:` section of the parsed settings document and the `-p` values;
/// returns the final value of each parameter.
pub fn check_parameters(
    settings: Option<&Node>,
    given: &BTreeMap<String, String>,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let mut resolved = BTreeMap::new();
    let mut declared = BTreeSet::new();
    if let Some(section) = settings.and_then(|s| s.get("parameters")) {
        for (key, def) in map(report, section, "parameters").unwrap_or_default() {
            let Some(name) = key.scalar_text() else {
                wrong_type(report, key, "parameter name", "a string");
                continue;
            };
            declared.insert(name.clone());
            check_keys(report, def, &format!("parameter `{name}`"), PARAMETER_KEYS);
            if def.as_map().is_none() {
                wrong_type(report, def, &name, "a mapping with `type` and `default`");
                continue;
            }
            let ty = match def.get("type") {
                None => {
                    report.error(key.span, format!("parameter `{name}` has no `type`"));
                    None
                }
                // plumbery's plans write a range as YAML's list of one, `type: [4..32]`.
                Some(t) if t.as_seq().is_some() => {
                    match range_as_list(t).map(|r| ParamType::parse(&r)) {
                        Some(Ok(ty)) => Some(ty),
                        Some(Err(message)) => {
                            report.error(t.span, message.to_string());
                            None
                        }
                        None => {
                            wrong_type(report, t, "type", "a string, or a range such as [4..32]");
                            None
                        }
                    }
                }
                Some(t) => text(report, t, "type").and_then(|t| match ParamType::parse(&t.value) {
                    Ok(ty) => Some(ty),
                    Err(message) => {
                        report.error(t.span, message.to_string());
                        None
                    }
                }),
            };
            let default = def.get("default").filter(|d| !d.is_null());
            if let Some(d) = default
                && matches!(d.value, Value::Seq(_) | Value::Map(_))
            {
                wrong_type(report, d, "default", "a single value");
                continue;
            }
            let (value, span) = match (given.get(&name), default) {
                (Some(v), _) => (Some(v.clone()), None),
                (None, Some(d)) => (d.scalar_text(), Some(d.span)),
                (None, None) => (None, None),
            };
            if let (Some(ty), Some(value)) = (ty, &value)
                && let Err(why) = ty.check(value)
            {
                match span {
                    Some(span) => {
                        report.error(span, format!("default of parameter `{name}`: {why}"))
                    }
                    None => report.error(
                        key.span,
                        format!("value given for parameter `{name}` with `-p`: {why}"),
                    ),
                }
            }
            if let Some(value) = value {
                resolved.insert(name, value);
            }
        }
    }
    for name in given.keys() {
        if !declared.contains(name) {
            let known: Vec<&str> = declared.iter().map(String::as_str).collect();
            report.push(unknown_key_for_flag(name, &known));
        }
    }
    resolved
}

fn unknown_key_for_flag(name: &str, known: &[&str]) -> Diagnostic {
    let mut d = unknown_key(Span::default(), name, "parameters", known);
    d.span = None;
    d.message = format!("`-p {name}=...` names a parameter the plan does not declare");
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_check() {
        assert_eq!(ParamType::parse("[4..32]"), Ok(ParamType::Range(4, 32)));
        assert!(ParamType::Range(4, 32).check("33").is_err());
        assert!(ParamType::Range(4, 32).check("4").is_ok());
        assert_eq!(
            ParamType::parse("[9..1]").unwrap_err().to_string(),
            "parameter type `[9..1]` is an empty range"
        );
        assert_eq!(
            ParamType::parse("[4..x ]").unwrap_err().to_string(),
            "`x ` in parameter type `[4..x ]` is not a number"
        );
        assert_eq!(
            ParamType::Range(4, 32).check("33").unwrap_err().to_string(),
            "33 is outside [4..32]"
        );
        assert!(ParamType::parse("float").is_err());
        assert!(ParamType::Integer.check("x").is_err());
    }

    #[test]
    fn substitution_keeps_positions() {
        let mut file = SourceFile::new("p", "a: {{ parameter.x }}\nb: {{parameter.y}}\n");
        let mut values = BTreeMap::new();
        values.insert("x".to_string(), Some(("long-value".to_string(), 0)));
        let mut report = Report::default();
        let text = substitute(&mut file, &values, &BTreeMap::new(), &mut report).unwrap();
        assert_eq!(text, "a: long-value\nb: {{parameter.y}}\n");
        assert_eq!(report.diagnostics.len(), 1);
        let span = report.diagnostics[0].span.unwrap();
        assert_eq!(file.line_col(file.original_offset(span.start)), (2, 4));
    }

    #[test]
    fn a_plan_that_would_grow_past_the_limit_stops_at_the_parameter() {
        let uses = "x: {{ parameter.big }}\n".repeat(100);
        let mut file = SourceFile::new("p", &uses);
        let mut values = BTreeMap::new();
        values.insert("big".to_string(), Some(("y".repeat(200 << 10), 0)));
        let mut report = Report::default();
        let text = substitute(&mut file, &values, &BTreeMap::new(), &mut report);
        assert!(text.is_none());
        let errors: Vec<String> = report
            .diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("parameter `big`"), "{errors:?}");
        assert!(errors[0].contains("16 MiB"), "{errors:?}");
    }
}
