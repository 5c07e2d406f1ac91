//! Reading request bodies: typed fields of a JSON object, where absent and null mean "not
//! given", and the checks several resources share (tag names).

use serde_json::{Map, Value as Json};

use super::ApiError;
use crate::util::valid_tag_name;

pub(super) fn opt_string(body: &Map<String, Json>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::unprocessable(format!("{key} must be a string."))),
    }
}

pub(super) fn required_string(body: &Map<String, Json>, key: &str) -> Result<String, ApiError> {
    match opt_string(body, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::unprocessable(format!("{key} is required."))),
    }
}

pub(super) fn opt_bool(body: &Map<String, Json>, key: &str) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::unprocessable(format!("{key} must be a boolean."))),
    }
}

pub(super) fn string_list(value: Option<&Json>, key: &str) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item {
                Json::String(s) => Ok(s.clone()),
                _ => Err(ApiError::unprocessable(format!(
                    "{key} must be a list of strings."
                ))),
            })
            .collect(),
        Some(_) => Err(ApiError::unprocessable(format!(
            "{key} must be a list of strings."
        ))),
    }
}

pub(super) fn id_list(value: Option<&Json>, key: &str) -> Result<Vec<u64>, ApiError> {
    match value {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_u64().ok_or_else(|| {
                    ApiError::unprocessable(format!("{key} must be a list of integers."))
                })
            })
            .collect(),
        Some(_) => Err(ApiError::unprocessable(format!(
            "{key} must be a list of integers."
        ))),
    }
}

pub(super) fn validate_tags(tags: &[String]) -> Result<(), ApiError> {
    match tags.iter().find(|t| !valid_tag_name(t)) {
        Some(bad) => Err(ApiError::unprocessable(format!(
            "tag name `{bad}` is invalid: use letters, numbers, colons, dashes and underscores, at most 255."
        ))),
        None => Ok(()),
    }
}
