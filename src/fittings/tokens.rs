//! plumbery's run-time tokens (`{{ node.private }}`, `{{ master1.private }}`,
//! `{{ random.secret }}`, ...). They stay in the plan as written and are expanded when a
//! node's configuration is rendered; at load time fitter only reads them to check that a
//! peer they name exists and to turn each peer reference into a graph edge.
//!
//! As in plumbery, a token fitter does not recognise is left verbatim: only a token that
//! clearly means a node (`x.private`, `x.public`, `x.ipv6`, `x.private_host`) or names a known
//! node with an unknown attribute is an error.

/// Attributes a node offers to tokens.
pub const NODE_ATTRIBUTES: &[&str] = &["name", "id", "private", "public", "ipv6", "private_host"];

/// Attributes that can only mean "the address of a node", so an unknown name before them
/// is a mistake rather than some other token.
const ADDRESS_ATTRIBUTES: &[&str] = &["private", "public", "ipv6", "private_host"];

/// Words that start a token of their own kind and so cannot be node names.
pub const RESERVED_NAMES: &[&str] = &[
    "node",
    "secret",
    "random",
    "uuid",
    "rsa_private",
    "rsa_public",
    "environment",
    "location",
    "parameter",
    "shared",
    "balancer",
];

/// A `{{ ... }}` in a string: the text between the braces, trimmed, and the byte range of the
/// whole token in the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub expr: &'a str,
    pub start: usize,
    pub end: usize,
}

/// Every token in `s`, left to right.
pub fn scan(s: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = s[at..].find("{{") {
        let open = at + found;
        let Some(len) = s[open + 2..].find("}}") else {
            break;
        };
        let inner = &s[open + 2..open + 2 + len];
        // `{{ a {{ b }}`: the inner token is the real one.
        if let Some(nested) = inner.rfind("{{") {
            at = open + 2 + nested;
            continue;
        }
        out.push(Token {
            expr: inner.trim(),
            start: open,
            end: open + 2 + len + 2,
        });
        at = open + 2 + len + 2;
    }
    out
}

/// What a token means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning<'a> {
    /// `{{ node }}` or `{{ node.attr }}`: the node being rendered.
    SelfAttribute(&'a str),
    /// `{{ peer.attr }}`, also `{{ LOC::peer.attr }}`: another node of the plan.
    Peer { node: &'a str, attribute: &'a str },
    /// `{{ node.nonsense }}`: an attribute the node does not have.
    UnknownSelfAttribute(&'a str),
    /// A generated value: secrets, uuids, RSA keys, `environment.X`, `location.id`, ...
    Generated,
    /// Anything else: left verbatim, as plumbery does.
    Verbatim,
}

/// Classifies a token; `is_node` says whether a name is a node of the plan.
pub fn classify<'a>(expr: &'a str, is_node: impl Fn(&str) -> bool) -> Meaning<'a> {
    if expr == "node" {
        return Meaning::SelfAttribute("private");
    }
    let expr_tail = expr.rsplit("::").next().unwrap_or(expr);
    let Some((head, rest)) = expr_tail.split_once('.') else {
        return Meaning::Verbatim;
    };
    let attribute = rest.split('.').next().unwrap_or(rest);
    if head == "node" {
        return if NODE_ATTRIBUTES.contains(&rest) {
            Meaning::SelfAttribute(rest)
        } else {
            Meaning::UnknownSelfAttribute(rest)
        };
    }
    if RESERVED_NAMES.contains(&head) || attribute == "secret" {
        return Meaning::Generated;
    }
    if is_node(head) || ADDRESS_ATTRIBUTES.contains(&rest) {
        return Meaning::Peer {
            node: head,
            attribute: rest,
        };
    }
    Meaning::Verbatim
}

/// Replaces every token `resolve` knows; the others stay as written (plumbery's rule).
pub fn render(text: &str, mut resolve: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for token in scan(text) {
        out.push_str(&text[last..token.start]);
        match resolve(token.expr) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&text[token.start..token.end]),
        }
        last = token.end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_tokens_with_offsets() {
        let s = "zk://{{ master1.private }}:2181,{{master2.private}}";
        let tokens = scan(s);
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].expr, "master1.private");
        assert_eq!(&s[tokens[0].start..tokens[0].end], "{{ master1.private }}");
        assert_eq!(tokens[1].expr, "master2.private");
        assert!(scan("no tokens {{ here").is_empty());
    }

    #[test]
    fn renders_known_tokens_and_keeps_the_others() {
        let out = render("a {{ x }} b {{ y }} c", |e| {
            (e == "x").then(|| "1".to_string())
        });
        assert_eq!(out, "a 1 b {{ y }} c");
    }

    #[test]
    fn classifies_like_plumbery() {
        let is_node = |n: &str| n == "master1";
        assert_eq!(classify("node", is_node), Meaning::SelfAttribute("private"));
        assert_eq!(
            classify("node.public", is_node),
            Meaning::SelfAttribute("public")
        );
        assert_eq!(
            classify("master1.private", is_node),
            Meaning::Peer {
                node: "master1",
                attribute: "private"
            }
        );
        assert_eq!(
            classify("EU7::master9.ipv6", is_node),
            Meaning::Peer {
                node: "master9",
                attribute: "ipv6"
            }
        );
        assert_eq!(classify("random.secret", is_node), Meaning::Generated);
        assert_eq!(classify("master1.secret", is_node), Meaning::Generated);
        assert_eq!(classify("environment.HOME", is_node), Meaning::Generated);
        assert_eq!(classify("something.else", is_node), Meaning::Verbatim);
        assert_eq!(
            classify("node.privat", is_node),
            Meaning::UnknownSelfAttribute("privat")
        );
    }
}
