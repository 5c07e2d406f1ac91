//! Small typed readers over the YAML tree. Each one reports what is wrong (with the value's
//! position) into the shared [`Report`] and returns `None`, so one pass finds every problem.

use fitter_providers::did_you_mean;

use crate::diagnostics::{Diagnostic, Report};
use crate::yaml::{Node, Span, Value};

/// A string from the plan and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text {
    pub value: String,
    pub span: Span,
}

impl Text {
    pub fn new(value: impl Into<String>, span: Span) -> Text {
        Text {
            value: value.into(),
            span,
        }
    }
}

/// Reports every key of `node` that is not in `allowed`, with a did-you-mean.
/// `context` completes "unknown key `x` in ...".
pub fn check_keys(report: &mut Report, node: &Node, context: &str, allowed: &[&str]) {
    let Some(entries) = node.as_map() else {
        return;
    };
    for (key, _) in entries {
        let Some(name) = key.scalar_text() else {
            report.error(key.span, format!("keys in {context} must be plain names"));
            continue;
        };
        if !allowed.contains(&name.as_str()) {
            report.push(unknown_key(key.span, &name, context, allowed));
        }
    }
}

pub fn unknown_key(span: Span, name: &str, context: &str, allowed: &[&str]) -> Diagnostic {
    let diagnostic = Diagnostic::error(span, format!("unknown key `{name}` in {context}"));
    match did_you_mean(name, allowed.iter().copied()) {
        Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
        None => diagnostic.with_help(format!("expected one of: {}", allowed.join(", "))),
    }
}

pub fn wrong_type(report: &mut Report, node: &Node, what: &str, expected: &str) {
    report.error(
        node.span,
        format!("`{what}` must be {expected}, found {}", node.kind()),
    );
}

pub fn map<'a>(report: &mut Report, node: &'a Node, what: &str) -> Option<&'a [(Node, Node)]> {
    match &node.value {
        Value::Map(entries) => Some(entries),
        Value::Null => Some(&[]),
        _ => {
            wrong_type(report, node, what, "a mapping");
            None
        }
    }
}

/// A string; numbers are accepted as their text (`image: 12345`, `locationId: 10`).
pub fn text(report: &mut Report, node: &Node, what: &str) -> Option<Text> {
    match &node.value {
        Value::Str(_) | Value::Int(_) | Value::Float(_) => {
            Some(Text::new(node.scalar_text().unwrap_or_default(), node.span))
        }
        _ => {
            wrong_type(report, node, what, "a string");
            None
        }
    }
}

/// A list of strings; a single string is read as a list of one.
pub fn text_list(report: &mut Report, node: &Node, what: &str) -> Vec<Text> {
    match &node.value {
        Value::Null => Vec::new(),
        Value::Seq(items) => items
            .iter()
            .filter_map(|item| text(report, item, what))
            .collect(),
        Value::Str(_) | Value::Int(_) => text(report, node, what).into_iter().collect(),
        _ => {
            wrong_type(report, node, what, "a list of strings");
            Vec::new()
        }
    }
}

pub fn boolean(report: &mut Report, node: &Node, what: &str) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            wrong_type(report, node, what, "`true` or `false`");
            None
        }
    }
}

/// A whole number in `min..=max`.
pub fn number(report: &mut Report, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
    let value = match &node.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match value {
        Some(i) if (min..=max).contains(&i) => Some(i),
        Some(i) => {
            report.error(
                node.span,
                format!("`{what}` must be between {min} and {max}, found {i}"),
            );
            None
        }
        None => {
            wrong_type(report, node, what, "a whole number");
            None
        }
    }
}
