//! Pagination: `page` (default 1) and `per_page` (default 25, at most 50), answered with
//! `{key: [...], "meta": {"pagination": {page, per_page, previous_page, next_page, last_page,
//! total_entries}}}`.

use serde_json::{Value as Json, json};

use super::HzError;
use crate::api::page::{BadPage, Window};
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
    let Window {
        page,
        per_page,
        last_page,
        range,
    } = Window::new(call, items.len(), PER_PAGE_DEFAULT, PER_PAGE_MAX).map_err(
        |bad| match bad {
            BadPage::NotPositive(name) => HzError::invalid(name, "must be a positive integer"),
            BadPage::TooLarge => {
                HzError::invalid("per_page", format!("must be at most {PER_PAGE_MAX}"))
            }
        },
    )?;
    let rendered: Vec<Json> = items[range].iter().map(render).collect();
    let body = json!({
        key: rendered,
        "meta": {"pagination": {
            "page": page,
            "per_page": per_page,
            "previous_page": if page > 1 { json!(page - 1) } else { Json::Null },
            "next_page": if page < last_page { json!(page + 1) } else { Json::Null },
            "last_page": last_page,
            "total_entries": items.len(),
        }},
    });
    Ok(Reply {
        status: 200,
        body: Some(body.to_string()),
    })
}
