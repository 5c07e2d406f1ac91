//! Answers a wrong or hostile endpoint gives, for fitter's tests of what it trusts: an answer
//! sent instead of handling the request ([`crate::Fault::Answer`], [`crate::Fault::Huge`]),
//! and changes to a real answer ([`crate::Fault::Field`], [`crate::Fault::EndlessPages`]).
//! They are not the cloud's behaviour, so Prism in front of the simulator would refuse
//! them: tests of these faults talk to the simulator directly.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

/// The query with `page` taken out, so that every page of an endless listing is the first;
/// and the page and page size asked for (`default_per_page` when not given).
pub(crate) fn first_page_query(query: &str, default_per_page: u64) -> (String, u64, u64) {
    let mut page = 1;
    let mut per_page = default_per_page;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            if let Some(v) = kv.strip_prefix("page=") {
                page = v.parse().unwrap_or(1);
                false
            } else {
                if let Some(v) = kv.strip_prefix("per_page=") {
                    per_page = v.parse().unwrap_or(default_per_page);
                }
                !kv.is_empty()
            }
        })
        .collect();
    (kept.join("&"), page, per_page)
}

/// A listing's answer turned endless: a `next` link to the page after `page`, and a total
/// no walk reaches.
pub(crate) fn endless(body: &str, base: &str, path: &str, page: u64, per_page: u64) -> String {
    let Ok(mut json) = serde_json::from_str::<Json>(body) else {
        return body.to_owned();
    };
    if let Some(object) = json.as_object_mut() {
        let next = format!("{base}{path}?page={}&per_page={per_page}", page + 1);
        object.insert("links".into(), json!({"pages": {"next": next}}));
        object.insert("meta".into(), json!({"total": 1_000_000_000u64}));
    }
    json.to_string()
}

/// Hetzner's listing turned endless: `meta.pagination` says this is page `page` of a billion,
/// with a next page always.
pub(crate) fn endless_hetzner(body: &str, page: u64, per_page: u64) -> String {
    let Ok(mut json) = serde_json::from_str::<Json>(body) else {
        return body.to_owned();
    };
    if let Some(object) = json.as_object_mut() {
        let last = 1_000_000_000u64;
        object.insert(
            "meta".into(),
            json!({"pagination": {
                "page": page,
                "per_page": per_page,
                "previous_page": if page > 1 { json!(page - 1) } else { Json::Null },
                "next_page": page + 1,
                "last_page": last,
                "total_entries": last * per_page,
            }}),
        );
    }
    json.to_string()
}

/// The answer with every key in `fields` given its value, at any depth.
pub(crate) fn rewrite(body: &str, fields: &[(String, Json)]) -> String {
    let Ok(mut json) = serde_json::from_str::<Json>(body) else {
        return body.to_owned();
    };
    for (field, value) in fields {
        overwrite(&mut json, field, value);
    }
    json.to_string()
}

fn overwrite(json: &mut Json, field: &str, value: &Json) {
    match json {
        Json::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == field {
                    *inner = value.clone();
                } else {
                    overwrite(inner, field, value);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|i| overwrite(i, field, value)),
        _ => {}
    }
}

/// A body of `bytes` bytes: `{` and spaces, valid as nothing.
pub(crate) fn huge(bytes: u64) -> String {
    let mut body = String::with_capacity(bytes as usize);
    body.push('{');
    body.extend(std::iter::repeat_n(' ', (bytes as usize).saturating_sub(1)));
    body
}

/// Headers of an injected answer, as `(name, value)` pairs for the response builder.
pub(crate) fn headers(headers: &BTreeMap<String, String>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_the_first_and_the_next_one_always_exists() {
        let (query, page, per_page) = first_page_query("tag_name=x&page=7&per_page=200", 20);
        assert_eq!(
            (query.as_str(), page, per_page),
            ("tag_name=x&per_page=200", 7, 200)
        );
        let body = endless(
            r#"{"droplets":[{"id":1}],"links":{},"meta":{"total":1}}"#,
            "http://h",
            "/v2/droplets",
            7,
            200,
        );
        let json: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json["links"]["pages"]["next"],
            "http://h/v2/droplets?page=8&per_page=200"
        );
        assert_eq!(json["droplets"][0]["id"], 1);
    }

    #[test]
    fn hetzner_pages_never_end() {
        let (query, page, per_page) = first_page_query("page=3", 25);
        assert_eq!((query.as_str(), page, per_page), ("", 3, 25));
        let body = endless_hetzner(
            r#"{"servers":[{"id":1}],"meta":{"pagination":{"page":1}}}"#,
            3,
            25,
        );
        let json: Json = serde_json::from_str(&body).unwrap();
        assert_eq!(json["meta"]["pagination"]["next_page"], 4);
        assert_eq!(json["meta"]["pagination"]["previous_page"], 2);
        assert_eq!(json["servers"][0]["id"], 1);
    }

    #[test]
    fn a_field_is_overwritten_at_every_depth() {
        let body = rewrite(
            r#"{"droplet":{"networks":{"v4":[{"ip_address":"10.0.0.1"},{"ip_address":"1.2.3.4"}]}}}"#,
            &[("ip_address".into(), json!("*"))],
        );
        assert_eq!(body.matches(r#""ip_address":"*""#).count(), 2, "{body}");
    }
}
