//! HTTP for the clouds' JSON APIs (DigitalOcean, Hetzner): the bearer token, a client-side
//! rate limiter, 429s honoured, idempotent calls retried, lists paginated. What differs
//! between clouds (their name in messages, the variable that names the endpoint, how they
//! count requests, how lists are paged) is a [`Dialect`]; everything else is the same care.
//!
//! Retry policy, from what godo, hcloud-go and the Terraform providers got wrong (see
//! `shared/reference/digitalocean-api.md`, `hetzner-api.md`):
//! - a 429 means the request was not processed: every call waits (`retry-after`, else the
//!   `ratelimit-reset` header, else backoff) and goes again, creates included;
//! - a 5xx or a network error on GET, PUT or DELETE is retried with exponential backoff and
//!   jitter; on a create (POST) it is *ambiguous*, because the resource may exist, and is
//!   returned to the caller as [`Failure::Ambiguous`] so that it looks before it creates again.
//!
//! The limiter (`limiter.rs`) counts as the cloud does, a little under its limits; when the
//! server says `ratelimit-remaining: 0`, nothing is sent until it has room again.
//!
//! The token is never printed: it lives in a header marked sensitive and `Client`'s `Debug`
//! leaves it out; errors carry the API's message, the method and the path, never headers.
//!
//! What fitter reads from a success is read into its type ([`parse`], [`Client::get`],
//! [`Client::list_of`], the types in each provider's `answer.rs`): an answer that does not
//! parse is a [`Failure::Malformed`] naming the call and the field, e.g. "GET
//! /v2/droplets?tag_name=x&page=1&per_page=200: the answer's
//! `droplets[3].networks.v4[0].ip_address` does not parse: invalid IP address syntax". The
//! field's path comes from `serde_path_to_error`: serde alone says what was wrong but not
//! where, and "invalid type: string, expected u64" in a listing of a thousand droplets leaves
//! the operator to guess which one. What such a message quotes of the answer is cut short and
//! has its control characters replaced.

mod limiter;
mod text;

use std::time::Duration;

use base64::Engine as _;
use md5::Digest as _;
use rand::Rng as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub use limiter::Budget;
use limiter::Limiter;
use text::{describe, message_of, page_of, printable, read_capped, snippet, wait_for_429};

/// The largest answer read: a page of 200 droplets is about 1 MB. A body past this is an
/// error, not a reason to hold hundreds of megabytes.
pub const MAX_BODY: usize = 32 << 20;
/// The most pages one listing follows (20,000 droplets or 5,000 servers, several times the
/// largest deployment benchmarked), whatever `next` says; well inside the calls the limiters
/// allow in a minute, so a listing that does not end fails within seconds.
pub const MAX_PAGES: u64 = 100;

/// What differs between the clouds' APIs, as far as HTTP goes.
#[derive(Debug)]
pub struct Dialect {
    /// The cloud's name in messages and logs: `DigitalOcean`.
    pub cloud: &'static str,
    /// The variable that sets the endpoint, named when an answer looks like another server's.
    pub endpoint_var: &'static str,
    /// How the cloud counts requests.
    pub budget: Budget,
    /// Items per page when listing: the API's maximum.
    pub per_page: usize,
}

/// Whether an API URL keeps the token safe: https, or http to this machine (loopback).
pub fn secure_enough(url: &str) -> bool {
    // Parsed as reqwest will, so that `http://localhost:80@host/` is `host`, not this machine.
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => true,
        "http" => parsed.host_str().is_some_and(|host| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

/// The MD5 fingerprint DigitalOcean and Hetzner give an OpenSSH public key: colon-separated hex.
pub fn md5_fingerprint(public_openssh: &str) -> Option<String> {
    let blob = public_openssh.split_whitespace().nth(1)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = md5::Md5::digest(&raw);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// How a call may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// GET, PUT, DELETE: safe to send again.
    Idempotent,
    /// A POST that creates something: never sent twice blindly.
    Create,
}

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The API answered with an error.
    Status { status: u16, message: String },
    /// The API could not be reached (after the retries an idempotent call gets).
    Unreachable(String),
    /// A create's outcome is unknown: the resource may or may not exist.
    Ambiguous(String),
    /// A success whose body is not what the API sends: not JSON, without its list, or a
    /// field of the wrong type or shape. The message names the call and the field. Unlike
    /// a call that got no answer, trying again does not help: a wait that meets one ends.
    Malformed { status: u16, message: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { status, message } | Failure::Malformed { status, message } => {
                write!(f, "{message} (HTTP {status})")
            }
            Failure::Unreachable(m) => write!(f, "{m}"),
            Failure::Ambiguous(m) => write!(f, "no answer to a create: {m}"),
        }
    }
}

/// An answer: its status (2xx or 404) and its JSON body (`null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Json,
}

/// Retry timings; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Tries of an idempotent call that meets 5xx or network errors.
    pub attempts: u32,
    /// First backoff; doubled each time up to `cap`, with jitter.
    pub base: Duration,
    pub cap: Duration,
    /// Tries of a call that keeps getting 429.
    pub rate_limited_attempts: u32,
    /// How long one request may take, its answer included.
    pub request_timeout: Duration,
    /// Tries of a call whose requests time out. A server that took `request_timeout` once
    /// rarely answers the next time: a silent endpoint costs `request_timeout` times this
    /// (one minute), not five tries of a minute each.
    pub timeout_attempts: u32,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(10),
            rate_limited_attempts: 30,
            request_timeout: Duration::from_secs(30),
            timeout_attempts: 2,
        }
    }
}

pub struct Client {
    dialect: &'static Dialect,
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    limiter: Limiter,
    retries: Retries,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("cloud", &self.dialect.cloud)
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Client {
    pub fn new(
        dialect: &'static Dialect,
        base: &str,
        token: &str,
        retries: Retries,
    ) -> Result<Client, String> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            format!(
                "the {} token contains characters a header cannot carry",
                dialect.cloud
            )
        })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            // The API never redirects. Following one would send the request, its token
            // header aside, and its body (a batch's user_data holds every node's host
            // private key) to whatever host the answer names: a redirect is an error.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(retries.request_timeout)
            .user_agent(concat!("fitter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            dialect,
            http,
            base: base.trim_end_matches('/').to_string(),
            auth,
            limiter: Limiter::new(dialect.budget),
            retries,
        })
    }

    /// Sends one call, retrying as its kind allows. A 404 to anything but a POST is an
    /// answer, not a failure: the caller decides what "gone" means.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
        call: Call,
    ) -> Result<Answer, Failure> {
        let mut failures = 0u32;
        let mut timeouts = 0u32;
        let mut rate_limited = 0u32;
        loop {
            self.limiter.acquire().await;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header(AUTHORIZATION, self.auth.clone());
            if let Some(b) = body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            tracing::debug!(cloud = self.dialect.cloud, %method, path, "request");
            let outcome = request.send().await;
            let response = match outcome {
                Ok(r) => r,
                Err(e) => {
                    let why = describe(&e);
                    // A connection that was never made carried nothing: even a create can
                    // go again. Anything later may have reached the API.
                    if call == Call::Create && !e.is_connect() {
                        return Err(Failure::Ambiguous(why));
                    }
                    if let Some(gave_up) =
                        self.count_network_error(&mut failures, &mut timeouts, &method, path, &e)
                    {
                        return Err(gave_up);
                    }
                    tracing::debug!(%method, path, error = %why, "retrying");
                    tokio::time::sleep(self.backoff(failures)).await;
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            self.limiter.observe(&headers).await;
            let text = match read_capped(response).await {
                Ok(Some(t)) => t,
                Ok(None) => {
                    return Err(Failure::Status {
                        status: status.as_u16(),
                        message: format!(
                            "{method} {path} answered with a body over {} MiB, more than the API ever sends",
                            MAX_BODY >> 20
                        ),
                    });
                }
                Err(e) => {
                    let why = describe(&e);
                    if call == Call::Create {
                        return Err(Failure::Ambiguous(why));
                    }
                    if let Some(gave_up) =
                        self.count_network_error(&mut failures, &mut timeouts, &method, path, &e)
                    {
                        return Err(gave_up);
                    }
                    tokio::time::sleep(self.backoff(failures)).await;
                    continue;
                }
            };
            let json: Json = if text.trim().is_empty() {
                Json::Null
            } else {
                match serde_json::from_str(&text) {
                    Ok(json) => json,
                    // A success that is not JSON is no answer from the API (a proxy's page,
                    // a wrong endpoint): taking it as one made a 200 page "exist".
                    Err(_) if status.is_success() => {
                        return Err(Failure::Malformed {
                            status: status.as_u16(),
                            message: format!(
                                "{method} {path} answered {} with a body that is not JSON \
                                 (`{}`); is {} the API?",
                                status.as_u16(),
                                snippet(&text),
                                self.dialect.endpoint_var
                            ),
                        });
                    }
                    Err(_) => Json::String(text),
                }
            };
            if status.is_redirection() {
                let to = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("nowhere it names");
                return Err(Failure::Status {
                    status: status.as_u16(),
                    message: format!(
                        "`{}` answered {method} {path} with a redirect to `{to}`; the API never \
                         redirects, so fitter follows none (is {} right?)",
                        self.base, self.dialect.endpoint_var
                    ),
                });
            }
            // A 404 answers a read or a delete ("gone") only when it is the API's own error
            // (DigitalOcean's `{"id": "not_found", "message": ...}`, Hetzner's `{"error":
            // {"code": "not_found", ...}}`): a web server's page or an empty 404 from a wrong
            // endpoint would make fitter forget what it made.
            let api_error = json.get("id").is_some()
                || json.get("message").is_some()
                || json
                    .get("error")
                    .and_then(|e| e.get("code"))
                    .and_then(Json::as_str)
                    == Some("not_found");
            if status == StatusCode::NOT_FOUND && method != Method::POST && !api_error {
                return Err(Failure::Status {
                    status: 404,
                    message: format!(
                        "{method} {path} answered 404 without the API's error body (`{}`); \
                         is {} the API?",
                        snippet(&json.to_string()),
                        self.dialect.endpoint_var
                    ),
                });
            }
            // A POST to something missing is an error like any other.
            if status.is_success() || (status == StatusCode::NOT_FOUND && method != Method::POST) {
                return Ok(Answer {
                    status: status.as_u16(),
                    body: json,
                });
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                rate_limited += 1;
                if rate_limited >= self.retries.rate_limited_attempts {
                    return Err(Failure::Status {
                        status: 429,
                        message: message_of(&json),
                    });
                }
                let mut wait = wait_for_429(&headers).unwrap_or_else(|| self.backoff(rate_limited));
                // A bucket's reset is when it is full again (an hour away, on Hetzner), but a
                // request's worth comes back within a refill or two.
                if let Budget::Bucket { per_hour, .. } = self.dialect.budget {
                    let refill =
                        Duration::from_secs_f64((7200.0 / per_hour.max(1) as f64).max(1.0));
                    wait = wait.min(refill);
                }
                tracing::info!(
                    %method,
                    path,
                    seconds = wait.as_secs_f64(),
                    cloud = self.dialect.cloud,
                    "rate limited; waiting"
                );
                self.limiter.block_for(wait).await;
                continue;
            }
            if status.is_server_error() {
                let why = format!("{} (HTTP {})", message_of(&json), status.as_u16());
                if call == Call::Create {
                    return Err(Failure::Ambiguous(why));
                }
                failures += 1;
                if failures >= self.retries.attempts {
                    return Err(Failure::Status {
                        status: status.as_u16(),
                        message: message_of(&json),
                    });
                }
                tokio::time::sleep(self.backoff(failures)).await;
                continue;
            }
            return Err(Failure::Status {
                status: status.as_u16(),
                message: message_of(&json),
            });
        }
    }

    /// `key` of the answer to GET `path`, read as `T`; `None` when the API says it is gone
    /// (its own 404). An answer that does not parse is [`Failure::Malformed`].
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Option<T>, Failure> {
        let answer = self.send(Method::GET, path, None, Call::Idempotent).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        parse(&Method::GET, path, &answer, key).map(Some)
    }

    /// Every item of a list, following the pages, each read as `T`. `path` may carry a query
    /// already. The walk ends at the last page, or once it has the total the API announced,
    /// and never goes past [`MAX_PAGES`]. An answer without the list, or with an item that
    /// does not parse, is [`Failure::Malformed`] naming the page's call and the item: never
    /// skipped, which would make a listing by tag look emptier than the cloud is.
    pub async fn list_of<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Vec<T>, Failure> {
        let mut items = Vec::new();
        let mut page = 1u64;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            if page > MAX_PAGES {
                return Err(Failure::Status {
                    status: 200,
                    message: format!(
                        "GET {path} had not ended after {MAX_PAGES} pages; the API's `next` links do not end"
                    ),
                });
            }
            let call = format!("{path}{sep}page={page}&per_page={}", self.dialect.per_page);
            let answer = self
                .send(Method::GET, &call, None, Call::Idempotent)
                .await?;
            if answer.status == 404 {
                return Ok(items);
            }
            let bad = |why: String| malformed(&Method::GET, &call, answer.status, why);
            let got = answer
                .body
                .get(key)
                .and_then(Json::as_array)
                .ok_or_else(|| bad(format!("the answer has no `{key}` list")))?;
            let count = got.len();
            for (i, item) in got.iter().enumerate() {
                items.push(read_as(item, &format!("{key}[{i}]")).map_err(bad)?);
            }
            let page_info: Page = read_as(&answer.body, "").map_err(bad)?;
            let (total, next) = page_info.total_and_next();
            if total.is_some_and(|t| items.len() as u64 >= t) {
                return Ok(items);
            }
            match next {
                Some(n) if n > page && count > 0 => page = n,
                _ => return Ok(items),
            }
        }
    }

    /// Counts a network error (sending, or reading the answer) against the call's tries;
    /// the error to give up with once the tries, or the tries of a silent server, are spent.
    /// The message names the call and, for a silent server, how long each try waited.
    fn count_network_error(
        &self,
        failures: &mut u32,
        timeouts: &mut u32,
        method: &Method,
        path: &str,
        e: &reqwest::Error,
    ) -> Option<Failure> {
        *failures += 1;
        *timeouts += u32::from(e.is_timeout());
        if *failures < self.retries.attempts && *timeouts < self.retries.timeout_attempts {
            return None;
        }
        Some(Failure::Unreachable(if e.is_timeout() {
            format!(
                "{method} {path}: `{}` gave no answer within {} s, {} times; giving up",
                self.base,
                self.retries.request_timeout.as_secs_f64(),
                self.retries.timeout_attempts
            )
        } else {
            describe(e)
        }))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retries
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let d = exp.min(self.retries.cap);
        // Jitter between half and all of it, so that many waiters do not come back together.
        let f: f64 = rand::rng().random_range(0.5..=1.0);
        d.mul_f64(f)
    }
}

/// `key` of a successful `answer` to `method path`, read as `T`, or [`Failure::Malformed`]
/// naming the call and the field that did not parse. A missing `key` reads as `null`, which
/// only an `Option` takes.
pub fn parse<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    answer: &Answer,
    key: &str,
) -> Result<T, Failure> {
    let value = answer.body.get(key).unwrap_or(&Json::Null);
    read_as(value, key).map_err(|why| malformed(method, path, answer.status, why))
}

/// `value` as `T`, or which field of it did not parse and why. `at` is where `value` is in
/// the answer (`droplets[3]`; empty for the whole body), so that the field is named from
/// the top of the answer.
fn read_as<T: DeserializeOwned>(value: &Json, at: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match inner.as_str() {
            "." => at.to_string(),
            p if p.starts_with('[') || at.is_empty() => format!("{at}{p}"),
            p => format!("{at}.{p}"),
        };
        let subject = if field.is_empty() {
            "the answer".to_string()
        } else {
            format!("the answer's `{field}`")
        };
        // serde quotes what it met (`invalid type: string "..."`): cut it short.
        format!(
            "{subject} does not parse: {}",
            printable(&e.inner().to_string(), 160)
        )
    })
}

fn malformed(method: &Method, path: &str, status: u16, why: String) -> Failure {
    Failure::Malformed {
        status,
        message: printable(&format!("{method} {path}: {why}"), 400),
    }
}

/// What a listing's answer says of its pages, beside the list.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    links: Option<Links>,
}

impl Page {
    /// How many items the listing has, and the next page's number: DigitalOcean says so in
    /// `meta.total` and a `links.pages.next` URL, Hetzner in `meta.pagination`.
    fn total_and_next(self) -> (Option<u64>, Option<u64>) {
        let (total, pagination) = match self.meta {
            Some(m) => (m.total, m.pagination),
            None => (None, None),
        };
        let link = self
            .links
            .and_then(|l| l.pages)
            .and_then(|p| p.next)
            .and_then(|url| page_of(&url));
        match pagination {
            Some(p) => (p.total_entries.or(total), p.next_page.or(link)),
            None => (total, link),
        }
    }
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

/// Hetzner's `meta.pagination`.
#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next_page: Option<u64>,
    #[serde(default)]
    total_entries: Option<u64>,
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    pages: Option<Pages>,
}

#[derive(Deserialize)]
struct Pages {
    #[serde(default)]
    next: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests;
