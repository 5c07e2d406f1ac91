//! Pagination: the `{key: [...], links, meta}` page a list endpoint answers with, cut from
//! every item by the `page` and `per_page` query parameters; and [`Window`], where a page
//! lies, which the Hetzner personality's pages use too.

use std::ops::Range;

use serde_json::{Map, Value as Json, json};

use super::{ApiError, Call, Reply};
use crate::util::percent_decode;

/// Where a page lies in a list, as `page` (default 1) and `per_page` ask (both personalities
/// cut pages so; they differ in defaults, limits and errors).
pub(crate) struct Window {
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    pub(crate) last_page: usize,
    /// The page's items, out of all of them.
    pub(crate) range: Range<usize>,
}

/// What is wrong with `page` or `per_page`.
pub(crate) enum BadPage {
    /// The parameter named is not a positive integer.
    NotPositive(&'static str),
    /// `per_page` is over the most.
    TooLarge,
}

impl Window {
    /// The page of `total` items asked for; `per_page` is `default` when not given, and at
    /// most `max`.
    pub(crate) fn new(
        call: &Call,
        total: usize,
        default: usize,
        max: usize,
    ) -> Result<Window, BadPage> {
        let number = |name: &'static str, default: usize| match call.param(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(BadPage::NotPositive(name)),
            },
        };
        let page = number("page", 1)?;
        let per_page = number("per_page", default)?;
        if per_page > max {
            return Err(BadPage::TooLarge);
        }
        let start = (page - 1).saturating_mul(per_page).min(total);
        Ok(Window {
            page,
            per_page,
            last_page: total.div_ceil(per_page).max(1),
            range: start..start.saturating_add(per_page).min(total),
        })
    }
}

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
    let total = items.len();
    let Window {
        page,
        per_page,
        last_page,
        range,
    } = Window::new(call, total, PER_PAGE_DEFAULT, PER_PAGE_MAX).map_err(|bad| {
        ApiError::unprocessable(match bad {
            BadPage::NotPositive(name) => format!("{name} must be a positive integer."),
            BadPage::TooLarge => format!("per_page must be at most {PER_PAGE_MAX}."),
        })
    })?;
    let rendered: Vec<String> = items[range].iter().map(render).collect();

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
