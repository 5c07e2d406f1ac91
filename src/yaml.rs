//! The one module that parses YAML.
//!
//! Plans are parsed into a small tree of [`Node`]s that remember where each value came from,
//! because every diagnostic fitter prints names a file position. serde cannot give positions
//! for all errors at once, so plans go through `yaml-rust2`'s event parser and the checks in
//! `fittings` walk the tree themselves. Trusted YAML that fitter ships (the component
//! manifests under `templates/`) goes through `serde_yaml_ng` with plain serde derives.
//!
//! The tree builder is iterative and bounded (nesting depth, alias expansion), so no input,
//! however hostile, can overflow the stack or blow up memory.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// A byte range in the text that was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }
}

/// A YAML value and where it stands in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; duplicates are reported by the parser and the last one kept.
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn new(value: Value, span: Span) -> Node {
        Node { value, span }
    }

    /// What kind of value this is, for messages such as "expected a list, found a string".
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A scalar as text, the way a user would have typed it (`22`, `true`, `web`).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Converts to JSON for output and hashing; mapping keys become their text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.scalar_text().unwrap_or_default(), v.to_json());
                }
                J::Object(map)
            }
        }
    }
}

/// A problem found while parsing, at a byte offset of the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    pub span: Span,
    pub message: String,
    /// Where the real mistake probably is, when the parser noticed it later.
    pub help: Option<String>,
}

/// The documents of a YAML stream, as far as they could be read.
#[derive(Debug, Default)]
pub struct Documents {
    pub docs: Vec<Node>,
    /// Duplicate keys and other problems that did not stop the parse.
    pub problems: Vec<ParseProblem>,
    /// The syntax error that stopped the parse, if any. Documents completed before it are kept.
    pub syntax_error: Option<ParseProblem>,
}

/// Deeper nesting than this is refused rather than risking the stack in later passes.
pub const MAX_DEPTH: usize = 100;
/// Aliases may copy at most this many nodes in total ("billion laughs" guard).
pub const MAX_ALIAS_NODES: usize = 100_000;

enum Frame {
    Seq {
        items: Vec<Node>,
        start: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        start: usize,
        anchor: usize,
    },
}

/// Parses every document of `text`, stopping after `max_docs` documents when given (the
/// loader reads the settings document alone before substituting parameters).
pub fn parse_documents(text: &str, max_docs: Option<usize>) -> Documents {
    let mut out = Documents::default();
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut alias_budget = MAX_ALIAS_NODES;
    let mut finished: Option<Node> = None;

    loop {
        let (event, mark) = match parser.next_token() {
            Ok(pair) => pair,
            Err(err) => {
                let at = clamp(err.marker().index(), text);
                let info = err.info().trim();
                out.syntax_error = Some(match unclosed_bracket(text, at) {
                    // The parser notices a missing `}` lines later; point at the `{`.
                    Some((open, offset)) if info.contains("flow") => ParseProblem {
                        span: Span::new(offset, offset + 1),
                        message: format!("invalid YAML: this `{open}` is never closed"),
                        help: Some(format!(
                            "the parser gave up on line {}: {info}",
                            line_of(text, at)
                        )),
                    },
                    _ => ParseProblem {
                        span: Span::new(at, at + 1),
                        message: format!("invalid YAML: {info}"),
                        help: None,
                    },
                });
                return out;
            }
        };
        let at = clamp(mark.index(), text);
        let node = match event {
            Event::StreamEnd => return out,
            Event::Nothing | Event::StreamStart => continue,
            Event::DocumentStart => {
                anchors.clear();
                continue;
            }
            Event::DocumentEnd => {
                out.docs.push(
                    finished
                        .take()
                        .unwrap_or_else(|| Node::new(Value::Null, Span::new(at, at))),
                );
                if max_docs.is_some_and(|n| out.docs.len() >= n) {
                    return out;
                }
                continue;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    out.syntax_error = Some(ParseProblem {
                        span: Span::new(at, at + 1),
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                        help: None,
                    });
                    return out;
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        start: at,
                        anchor,
                    }
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        pending_key: None,
                        start: at,
                        anchor,
                    }
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    start,
                    anchor,
                }) => remember(
                    &mut anchors,
                    anchor,
                    Node::new(Value::Seq(items), Span::new(start, start + 1)),
                ),
                _ => continue,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    entries,
                    start,
                    anchor,
                    ..
                }) => {
                    // A block mapping's event is marked after its first key; a message about
                    // the whole mapping reads better at that key.
                    let start = entries
                        .first()
                        .map_or(start, |(k, _)| start.min(k.span.start));
                    remember(
                        &mut anchors,
                        anchor,
                        Node::new(Value::Map(entries), Span::new(start, start + 1)),
                    )
                }
                _ => continue,
            },
            Event::Scalar(text_value, style, anchor, tag) => {
                let end = scalar_end(text, at, &text_value, style);
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == TScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&text_value)
                } else {
                    Value::Str(text_value)
                };
                remember(&mut anchors, anchor, Node::new(value, Span::new(at, end)))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(target) => {
                    let size = count_nodes(target);
                    if size > alias_budget {
                        out.syntax_error = Some(ParseProblem {
                            span: Span::new(at, at + 1),
                            message: format!(
                                "aliases expand to more than {MAX_ALIAS_NODES} values"
                            ),
                            help: None,
                        });
                        return out;
                    }
                    alias_budget -= size;
                    let mut copy = target.clone();
                    copy.span = Span::new(at, at + 1);
                    copy
                }
                None => Node::new(Value::Null, Span::new(at, at + 1)),
            },
        };
        attach(&mut stack, &mut finished, &mut out.problems, node, text);
    }
}

fn remember(anchors: &mut HashMap<usize, Node>, anchor: usize, node: Node) -> Node {
    if anchor > 0 {
        anchors.insert(anchor, node.clone());
    }
    node
}

/// Puts a completed node where it belongs: into the open collection, or as the document root.
fn attach(
    stack: &mut [Frame],
    finished: &mut Option<Node>,
    problems: &mut Vec<ParseProblem>,
    node: Node,
    text: &str,
) {
    match stack.last_mut() {
        None => *finished = Some(node),
        Some(Frame::Seq { items, .. }) => items.push(node),
        Some(Frame::Map {
            entries,
            pending_key,
            ..
        }) => match pending_key.take() {
            None => *pending_key = Some(node),
            Some(key) => {
                if let Some(name) = key.scalar_text()
                    && let Some(pos) = entries
                        .iter()
                        .position(|(k, _)| k.scalar_text().as_deref() == Some(&name))
                {
                    let first = line_of(text, entries[pos].0.span.start);
                    problems.push(ParseProblem {
                        span: key.span,
                        message: format!("duplicate key `{name}` (first defined on line {first})"),
                        help: None,
                    });
                    entries.remove(pos);
                }
                entries.push((key, node));
            }
        },
    }
}

fn count_nodes(node: &Node) -> usize {
    let mut count = 0;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        count += 1;
        match &n.value {
            Value::Seq(items) => todo.extend(items.iter()),
            Value::Map(entries) => {
                for (k, v) in entries {
                    todo.push(k);
                    todo.push(v);
                }
            }
            _ => {}
        }
    }
    count
}

fn clamp(index: usize, text: &str) -> usize {
    let mut at = index.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The end of a scalar's text, for underlining: the value's length on its first line, plus
/// the quotes of a quoted scalar.
fn scalar_end(text: &str, start: usize, value: &str, style: TScalarStyle) -> usize {
    let rest = &text[start..];
    let line_len = rest.find('\n').unwrap_or(rest.len());
    let width = match style {
        TScalarStyle::Plain => value.len(),
        TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => value.len() + 2,
        TScalarStyle::Literal | TScalarStyle::Folded => 1,
    };
    clamp(start + width.min(line_len).max(1), text)
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = s.parse::<i64>()
    {
        return Value::Int(i);
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let looks_numeric = digits
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_numeric && let Ok(f) = s.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(s.to_string())
}

/// The last `{` or `[` before `at` that is not closed, and its offset.
fn unclosed_bracket(text: &str, at: usize) -> Option<(char, usize)> {
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = ' ';
    for (i, c) in text[..at.min(text.len())].char_indices() {
        match (quote, c) {
            _ if comment => comment = c != '\n',
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '#') if prev.is_whitespace() => comment = true,
            (None, '"' | '\'') if matches!(prev, ' ' | '[' | '{' | ',' | ':') => quote = Some(c),
            (None, '{' | '[') => open.push((c, i)),
            (None, '}' | ']') => {
                open.pop();
            }
            _ => {}
        }
        prev = c;
    }
    open.pop()
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Trusted YAML that serde could not read into the type asked for: a bug in what fitter
/// ships, with serde's position and reason.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TrustedYamlError(#[from] serde_yaml_ng::Error);

/// Reads trusted YAML that fitter ships (component manifests) with serde.
pub fn from_trusted_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TrustedYamlError> {
    Ok(serde_yaml_ng::from_str(text)?)
}

/// Writes a value as YAML (the Ansible inventory).
pub fn to_string<T: serde::Serialize>(value: &T) -> String {
    serde_yaml_ng::to_string(value).expect("plain data serialises to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let docs = parse_documents(text, None);
        assert!(docs.syntax_error.is_none(), "{:?}", docs.syntax_error);
        docs.docs.into_iter().next().unwrap()
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let doc = one("a: 1\nb: true\nc: '1'\nd: ~\ne: 1.5\nf: web1\ng: 0x10\n");
        assert_eq!(doc.get("a").unwrap().value, Value::Int(1));
        assert_eq!(doc.get("b").unwrap().value, Value::Bool(true));
        assert_eq!(doc.get("c").unwrap().value, Value::Str("1".into()));
        assert_eq!(doc.get("d").unwrap().value, Value::Null);
        assert_eq!(doc.get("e").unwrap().value, Value::Float(1.5));
        assert_eq!(doc.get("f").unwrap().value, Value::Str("web1".into()));
        assert_eq!(doc.get("g").unwrap().value, Value::Int(16));
    }

    #[test]
    fn spans_point_at_values() {
        let text = "top:\n  key: value\n";
        let doc = one(text);
        let v = doc.get("top").unwrap().get("key").unwrap();
        assert_eq!(&text[v.span.start..v.span.end], "value");
    }

    #[test]
    fn multiple_documents_and_partial_parse() {
        let text = "a: 1\n---\nb: [\n";
        let docs = parse_documents(text, None);
        assert_eq!(docs.docs.len(), 1);
        assert!(docs.syntax_error.is_some());
        let first = parse_documents(text, Some(1));
        assert_eq!(first.docs.len(), 1);
        assert!(first.syntax_error.is_none());
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let docs = parse_documents("a: 1\nb: 2\na: 3\n", None);
        assert_eq!(docs.problems.len(), 1);
        assert!(docs.problems[0].message.contains("duplicate key `a`"));
        assert_eq!(docs.docs[0].get("a").unwrap().value, Value::Int(3));
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep = "[".repeat(10_000);
        assert!(parse_documents(&deep, None).syntax_error.is_some());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            bomb.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let docs = parse_documents(&bomb, None);
        assert!(docs.syntax_error.unwrap().message.contains("aliases"));
    }
}
