//! Reading request bodies and paths: typed fields of a JSON object checked against the spec's
//! request schemas (absent means "not given"; `null` only where the schema says `nullable`,
//! as Prism holds requests to it), labels,
//! ids in paths, and the `name` / `label_selector` / `sort` filters every list takes.

use serde_json::{Map, Value as Json};

use super::HzError;
use super::labels::{self, Labels, Selector};
use crate::api::Call;

pub(crate) type Object = Map<String, Json>;

/// The body as a JSON object; an empty body is an empty object.
pub(crate) fn object(call: &Call) -> Result<Object, HzError> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Json>(call.body) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(_) => Err(HzError::json("the request body must be a JSON object")),
        Err(error) => Err(HzError::json(format!("invalid JSON: {error}"))),
    }
}

/// A resource id in a path: an integer, or the resource does not exist.
pub(crate) fn path_id(text: &str) -> Result<u64, HzError> {
    text.parse().map_err(|_| HzError::not_found())
}

pub(crate) fn opt_str<'b>(body: &'b Object, key: &str) -> Result<Option<&'b str>, HzError> {
    match body.get(key) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(HzError::invalid(key, "must be a string")),
    }
}

/// A string the schema declares `nullable`: `null` is "not given".
pub(crate) fn nullable_str<'b>(body: &'b Object, key: &str) -> Result<Option<&'b str>, HzError> {
    match body.get(key) {
        Some(Json::Null) => Ok(None),
        _ => opt_str(body, key),
    }
}

pub(crate) fn req_str<'b>(body: &'b Object, key: &str) -> Result<&'b str, HzError> {
    match opt_str(body, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(HzError::invalid(key, "is required")),
    }
}

pub(crate) fn opt_bool(body: &Object, key: &str, default: bool) -> Result<bool, HzError> {
    match body.get(key) {
        None => Ok(default),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(HzError::invalid(key, "must be a boolean")),
    }
}

pub(crate) fn opt_id(body: &Object, key: &str) -> Result<Option<u64>, HzError> {
    match body.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| HzError::invalid(key, "must be an integer id")),
    }
}

/// An array field (absent: empty).
pub(crate) fn opt_array<'b>(body: &'b Object, key: &str) -> Result<&'b [Json], HzError> {
    match body.get(key) {
        None => Ok(&[]),
        Some(Json::Array(items)) => Ok(items),
        Some(_) => Err(HzError::invalid(key, "must be an array")),
    }
}

pub(crate) fn id_list(body: &Object, key: &str) -> Result<Vec<u64>, HzError> {
    opt_array(body, key)?
        .iter()
        .map(|item| {
            item.as_u64()
                .ok_or_else(|| HzError::invalid(key, "must be an array of integer ids"))
        })
        .collect()
}

pub(crate) fn string_list(body: &Object, key: &str) -> Result<Vec<String>, HzError> {
    opt_array(body, key)?
        .iter()
        .map(|item| match item {
            Json::String(s) => Ok(s.clone()),
            _ => Err(HzError::invalid(key, "must be an array of strings")),
        })
        .collect()
}

/// `labels` (absent: none), checked.
pub(crate) fn labels(body: &Object) -> Result<Labels, HzError> {
    let labels = match body.get("labels") {
        None => Labels::new(),
        Some(Json::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Json::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(HzError::invalid("labels", "label values must be strings")),
            })
            .collect::<Result<Labels, _>>()?,
        Some(_) => return Err(HzError::invalid("labels", "must be an object")),
    };
    labels::check(&labels)?;
    Ok(labels)
}

/// A name as a create or an update gives it: non-empty, at most `max` characters.
pub(crate) fn name(body: &Object, max: usize) -> Result<Option<&str>, HzError> {
    match opt_str(body, "name")? {
        None => Ok(None),
        Some(name) if name.trim().is_empty() => Err(HzError::invalid("name", "must not be empty")),
        Some(name) if name.chars().count() > max => Err(HzError::invalid(
            "name",
            format!("must be at most {max} characters"),
        )),
        Some(name) => Ok(Some(name)),
    }
}

/// The filters every list takes: `name` (exact) and `label_selector`.
pub(crate) struct Filter<'c> {
    name: Option<&'c str>,
    selector: Option<Selector>,
}

impl<'c> Filter<'c> {
    pub(crate) fn new(call: &'c Call) -> Result<Filter<'c>, HzError> {
        let selector = match call.param("label_selector") {
            Some(text) if !text.trim().is_empty() => Some(Selector::parse(text, "label_selector")?),
            _ => None,
        };
        Ok(Filter {
            name: call.param("name"),
            selector,
        })
    }

    pub(crate) fn keeps(&self, name: &str, labels: &Labels) -> bool {
        self.name.is_none_or(|n| n == name)
            && self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }
}

/// Sorts `items` as the `sort` parameters say (`id`, `name`, `created`, each with `:asc` or
/// `:desc`; the first one given decides first). Ids grow with creation, so `created` sorts
/// as `id` does. Without `sort`: by id.
pub(crate) fn sort<T>(call: &Call, items: &mut [T], key: impl Fn(&T) -> (u64, &str)) {
    let sorts: Vec<&str> = call.params("sort").collect();
    items.sort_by_key(|item| key(item).0);
    for spec in sorts.iter().rev() {
        let (field, descending) = match spec.split_once(':') {
            Some((field, direction)) => (field, direction == "desc"),
            None => (*spec, false),
        };
        match field {
            "name" => items.sort_by(|a, b| key(a).1.cmp(key(b).1)),
            "id" | "created" => items.sort_by_key(|item| key(item).0),
            _ => continue,
        }
        if descending {
            items.reverse();
        }
    }
}
