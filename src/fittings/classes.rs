//! Node classes and plumbery's merge: a node's settings are its class's (`default: web`,
//! from the settings document's `defaults`), then its own; its cloud-config starts from
//! `defaults.cloud-config`. Maps merge, lists concatenate, scalars override.

use crate::yaml::{Node, Span, Value};

use super::Loader;
use super::not_found;
use super::schema::text;

impl Loader<'_> {
    /// A node's settings: its class, then its own keys; cloud-config starts from the
    /// defaults' (plumbery's order: defaults, class, node; lists concatenate).
    pub(super) fn merged_settings(
        &mut self,
        own: Option<&Node>,
        defaults_cloud_config: Option<&Node>,
    ) -> Node {
        let empty = Node::new(Value::Map(Vec::new()), Span::default());
        let own = own.unwrap_or(&empty);
        let class = match own.get("default") {
            Some(d) => match text(&mut self.report, d, "default") {
                Some(name) => match self.classes.get(&name.value) {
                    Some(c) => {
                        self.used_classes.insert(name.value.clone());
                        Some(c.clone())
                    }
                    None => {
                        let known: Vec<&str> = self.classes.keys().map(String::as_str).collect();
                        self.report
                            .push(not_found(&name, "node class", &known, "defaults"));
                        None
                    }
                },
                None => None,
            },
            None => None,
        };
        let mut merged = match &class {
            Some(c) => merge(c, own),
            None => own.clone(),
        };
        if let Some(base) = defaults_cloud_config {
            let node_cc = merged.get("cloud-config").cloned();
            let cc = match node_cc {
                Some(cc) => merge(base, &cc),
                None => base.clone(),
            };
            set_key(&mut merged, "cloud-config", cc);
        }
        merged
    }

    /// The span of a class's name: just before its mapping, found in the text.
    pub(super) fn classes_key_span(&self, name: &str) -> Option<Span> {
        let node = self.classes.get(name)?;
        let before = self.text.get(..node.span.start)?;
        let at = before.rfind(&format!("{name}:"))?;
        Some(Span::new(at, at + name.len()))
    }
}

/// plumbery's merge: maps merge key by key, lists concatenate (base first), scalars and
/// anything of another type are replaced; an empty value keeps the base.
pub fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (_, Value::Null) => base.clone(),
        (Value::Map(b), Value::Map(o)) => {
            let mut entries = b.clone();
            for (k, v) in o {
                let key = k.scalar_text();
                match entries.iter().position(|(ek, _)| ek.scalar_text() == key) {
                    Some(pos) => {
                        let merged = merge(&entries[pos].1, v);
                        entries[pos] = (k.clone(), merged);
                    }
                    None => entries.push((k.clone(), v.clone())),
                }
            }
            Node::new(Value::Map(entries), over.span)
        }
        (Value::Seq(b), Value::Seq(o)) => {
            let mut items = b.clone();
            items.extend(o.iter().cloned());
            Node::new(Value::Seq(items), over.span)
        }
        _ => over.clone(),
    }
}

fn set_key(map: &mut Node, key: &str, value: Node) {
    if let Value::Map(entries) = &mut map.value {
        match entries.iter().position(|(k, _)| k.as_str() == Some(key)) {
            Some(pos) => entries[pos].1 = value,
            None => entries.push((Node::new(Value::Str(key.to_string()), value.span), value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    #[test]
    fn merge_follows_plumbery() {
        let docs = yaml::parse_documents(
            "a: {x: 1, l: [1], m: {p: 1}}\nb: {x: 2, l: [2], m: {q: 2}}\n",
            None,
        );
        let root = &docs.docs[0];
        let merged = merge(root.get("a").unwrap(), root.get("b").unwrap());
        assert_eq!(
            merged.to_json(),
            serde_json::json!({"x": 2, "l": [1, 2], "m": {"p": 1, "q": 2}})
        );
    }
}
