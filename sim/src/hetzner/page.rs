//! Pagination: `page` (default 1) and `per_page` (default 25, at most 50), answered with
//! `{key: [...], "meta": {"pagination": {page, per_page, previous_page, next_page, last_page,
//! total_entries}}}`.

use serde_json::{Value as Json, json};

use super::HzError;
use crate::api::{Call, Reply};

pub(crate) const PER_PAGE_DEFAULT: usize = 25;
pub(crate) const PER_PAGE_MAX: usize = 50;

/// The page of `items` that `page` and `per_page` ask for; `render` gives an item's JSON.
pub(crate) fn paginate<T>(
    call: &Call,
    key: &str,
    items: &[T],
    render: impl Fn(&T) -> Json,
) -> Result<Reply, HzError> {
    let number = |name: &str, default: usize| -> Result<usize, HzError> {
        match call.param(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(HzError::invalid(name, "must be a positive integer")),
            },
        }
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", PER_PAGE_DEFAULT)?;
    if per_page > PER_PAGE_MAX {
        return Err(HzError::invalid(
            "per_page",
            format!("must be at most {PER_PAGE_MAX}"),
        ));
    }
    let total = items.len();
    let last_page = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = start.saturating_add(per_page).min(total);
    let rendered: Vec<Json> = items[start..end].iter().map(render).collect();
    let body = json!({
        key: rendered,
        "meta": {"pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": if page > 1 { json!(page - 1) } else { Json::Null },
            "next_page": if page < last_page { json!(page + 1) } else { Json::Null },
            "last_page": last_page,
            "total_entries": total,
        }},
    });
    Ok(Reply {
        status: 200,
        body: Some(body.to_string()),
    })
}
