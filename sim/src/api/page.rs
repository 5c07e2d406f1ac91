//! Pagination: the `{key: [...], links, meta}` page a list endpoint answers with, cut from
//! every item by the `page` and `per_page` query parameters.

use serde_json::{Map, Value as Json, json};

use super::{ApiError, Call, Reply};
use crate::util::percent_decode;

const PER_PAGE_DEFAULT: usize = 20;
const PER_PAGE_MAX: usize = 200;

/// The `{key: [...], links, meta}` page of `items` that `page` and `per_page` ask for;
/// `render` gives an item's JSON text.
pub(super) fn paginate<T>(
    call: &Call,
    key: &str,
    items: &[T],
    render: impl Fn(&T) -> String,
) -> Result<Reply, ApiError> {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        match call.param(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(ApiError::unprocessable(format!(
                    "{name} must be a positive integer."
                ))),
            },
        }
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", PER_PAGE_DEFAULT)?;
    if per_page > PER_PAGE_MAX {
        return Err(ApiError::unprocessable(format!(
            "per_page must be at most {PER_PAGE_MAX}."
        )));
    }
    let total = items.len();
    let last_page = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = start.saturating_add(per_page).min(total);
    let rendered: Vec<String> = items[start..end].iter().map(render).collect();

    // Links keep the other query parameters (a tag filter, say) and set page and per_page.
    let kept: String = call
        .raw_query
        .split('&')
        .filter(|pair| {
            let key = percent_decode(pair.split('=').next().unwrap_or(""), true);
            !pair.is_empty() && key != "page" && key != "per_page"
        })
        .map(|pair| format!("{pair}&"))
        .collect();
    let link = |n: usize| {
        Json::String(format!(
            "{}{}?{kept}page={n}&per_page={per_page}",
            call.base, call.path
        ))
    };
    let mut pages = Map::new();
    if page > 1 {
        pages.insert("first".into(), link(1));
        pages.insert("prev".into(), link(page - 1));
    }
    if page < last_page {
        pages.insert("last".into(), link(last_page));
        pages.insert("next".into(), link(page + 1));
    }
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    };
    let body = format!(
        "{{{}:[{}],\"links\":{links},\"meta\":{}}}",
        Json::from(key),
        rendered.join(","),
        json!({ "total": total })
    );
    Ok(Reply {
        status: 200,
        body: Some(body),
    })
}
