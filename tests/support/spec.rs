//! Whether every key of a JSON body fitter sent exists in the spec's schema for that
//! request: Prism cannot tell, because the specs allow additional properties.

use serde_json::Value as Json;

/// The spec's path template a concrete path matches (`/v2/droplets/{droplet_id}`).
pub fn template_of(spec: &Json, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    spec["paths"]
        .as_object()?
        .keys()
        .find(|t| {
            let ts: Vec<&str> = t.trim_matches('/').split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        .cloned()
}

pub fn request_schema<'a>(spec: &'a Json, method: &str, path: &str) -> Option<&'a Json> {
    let template = template_of(spec, path)?;
    let op = &spec["paths"][&template][method.to_lowercase()];
    let body = resolve(spec, &op["requestBody"]);
    let schema = body.pointer("/content/application~1json/schema")?;
    Some(schema)
}

fn resolve<'a>(spec: &'a Json, mut schema: &'a Json) -> &'a Json {
    while let Some(r) = schema.get("$ref").and_then(Json::as_str) {
        schema = spec
            .pointer(r.trim_start_matches('#'))
            .unwrap_or(&Json::Null);
    }
    schema
}

/// The alternatives a schema is made of (allOf, oneOf, anyOf flattened), resolved.
fn parts<'a>(spec: &'a Json, schema: &'a Json, out: &mut Vec<&'a Json>) {
    let schema = resolve(spec, schema);
    out.push(schema);
    for key in ["allOf", "oneOf", "anyOf"] {
        for s in schema[key].as_array().into_iter().flatten() {
            parts(spec, s, out);
        }
    }
}

pub fn check_keys(spec: &Json, schema: &Json, value: &Json, at: &str, unknown: &mut Vec<String>) {
    let mut all = Vec::new();
    parts(spec, schema, &mut all);
    match value {
        Json::Object(map) => {
            if all.iter().any(|s| {
                s.get("additionalProperties")
                    .is_some_and(|a| a != &Json::Bool(false))
            }) {
                return;
            }
            for (k, v) in map {
                let subs: Vec<&Json> = all.iter().filter_map(|s| s["properties"].get(k)).collect();
                if subs.is_empty() {
                    unknown.push(format!("{at}{k}"));
                    continue;
                }
                // A key is fine if one of the schemas that declare it accepts what is below.
                unknown.extend(fewest_unknown(spec, &subs, v, &format!("{at}{k}.")));
            }
        }
        Json::Array(items) => {
            let item_schemas: Vec<&Json> = all.iter().filter_map(|s| s.get("items")).collect();
            for (i, item) in items.iter().enumerate() {
                unknown.extend(fewest_unknown(
                    spec,
                    &item_schemas,
                    item,
                    &format!("{at}{i}."),
                ));
            }
        }
        _ => {}
    }
}

/// The unknown keys of `value` under the schema, among `schemas`, that knows it best.
fn fewest_unknown(spec: &Json, schemas: &[&Json], value: &Json, at: &str) -> Vec<String> {
    schemas
        .iter()
        .map(|s| {
            let mut u = Vec::new();
            check_keys(spec, s, value, at, &mut u);
            u
        })
        .min_by_key(Vec::len)
        .unwrap_or_default()
}
