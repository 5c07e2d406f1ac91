//! Reading answers and wording what went wrong: bodies read under a cap, the page a `next`
//! link names, the wait a 429 asks for, and messages cut to one printable line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::Value as Json;

use super::MAX_BODY;

/// The body, read chunk by chunk, or `None` once it passes [`MAX_BODY`].
pub(super) async fn read_capped(
    mut response: reqwest::Response,
) -> Result<Option<String>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// The page number in a `links.pages.next` URL. The URL's host is the server's view of
/// itself (a proxy in front of it changes nothing here): only the page number is used.
pub(super) fn page_of(url: &str) -> Option<u64> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|v| v.parse().ok())
}

/// What to wait after a 429: `retry-after`, else until `ratelimit-reset`.
/// A header's value as a finite number (`nan` and `inf` parse as `f64` but are no wait).
pub(super) fn header_number(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

pub(super) fn wait_for_429(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| header_number(headers, name);
    if let Some(s) = number("retry-after") {
        return Some(Duration::from_secs_f64(s.clamp(0.1, 120.0)));
    }
    let reset = number("ratelimit-reset")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some(Duration::from_secs_f64((reset - now).clamp(0.1, 120.0)))
}

/// The start of a body, on one line, for a message.
pub(super) fn snippet(text: &str) -> String {
    printable(text, 60).trim().to_string()
}

/// At most `max` characters of `text`, control characters (line breaks, escapes) replaced by
/// spaces, and `...` when it was cut: fit for a one-line message whatever the answer held.
pub(super) fn printable(text: &str, max: usize) -> String {
    let mut shown: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().nth(max).is_some() {
        shown.push_str("...");
    }
    shown
}

/// The API's error message: DigitalOcean's `{id, message}`, Hetzner's `{error: {code,
/// message}}`, or a proxy's problem+json.
pub(super) fn message_of(body: &Json) -> String {
    if let Some(m) = body.get("message").and_then(Json::as_str) {
        return m.to_string();
    }
    if let Some(error) = body.get("error")
        && let Some(m) = error.get("message").and_then(Json::as_str)
    {
        return match error.get("code").and_then(Json::as_str) {
            Some(code) => format!("{m} ({code})"),
            None => m.to_string(),
        };
    }
    if let Some(title) = body.get("title").and_then(Json::as_str) {
        let mut m = title.to_string();
        if let Some(d) = body.get("detail").and_then(Json::as_str) {
            m = format!("{m}: {d}");
        }
        if let Some(v) = body.get("validation").and_then(Json::as_array) {
            let parts: Vec<String> = v
                .iter()
                .filter_map(|x| {
                    Some(format!(
                        "{} {}",
                        x.get("location")?
                            .as_array()?
                            .iter()
                            .filter_map(Json::as_str)
                            .collect::<Vec<_>>()
                            .join("."),
                        x.get("message")?.as_str()?
                    ))
                })
                .collect();
            if !parts.is_empty() {
                m = format!("{m} [{}]", parts.join("; "));
            }
        }
        return m;
    }
    match body {
        Json::String(s) if !s.is_empty() => s.chars().take(200).collect(),
        _ => "no message".to_string(),
    }
}

/// A reqwest error in a few words, without the URL's query (which never holds the token, but
/// says nothing useful either).
pub(super) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    match e.url() {
        Some(u) if cause.is_empty() => format!("{kind}: {}", u.path()),
        Some(u) => format!("{kind}: {} ({cause})", u.path()),
        None => kind.to_string(),
    }
}
