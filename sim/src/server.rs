//! HTTP: the accept loop, one hyper HTTP/1 connection task per client, and the pipeline every
//! API request goes through: record, authenticate, rate-limit, apply faults, handle, answer.
//! The pipeline is the same for both personalities ([`Api`]); what differs is the prefix
//! (`/v2` or `/v1`), the error bodies, the rate limiter (windows or a bucket) and the routing
//! (`api` or `hetzner`).
//!
//! Each API request is handled in a task of its own, so a client that gives up (a timeout)
//! does not cancel a change half-way: like a real server, the simulator finishes what it
//! accepted. [`crate::Fault::LostResponse`] works by telling the connection task to drop the
//! connection instead of writing the response the handler produced.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::api::{self, ApiError, Call};
use crate::hetzner::{self, HzError};
use crate::ratelimit::{Budget, Verdict};
use crate::types::{Api, Config, Fault, RecordedRequest};
use crate::util::unix_seconds;
use crate::{Shared, hostile};

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let lose = Arc::new(Notify::new());
    let service = {
        let lose = lose.clone();
        service_fn(move |request| handle(shared.clone(), lose.clone(), request))
    };
    let connection = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        // Dropping the connection closes the socket with nothing written.
        _ = lose.notified() => tracing::debug!("response lost on purpose: connection dropped"),
        _ = shutdown.changed() => {}
    }
}

type Reply = Response<Full<Bytes>>;

async fn handle(
    shared: Arc<Shared>,
    lose: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    if path.starts_with("/_sim/") {
        return Ok(control(&shared, parts.method.as_str(), &path, &body));
    }
    let api = shared.state().config.api;
    let prefix = api.prefix();
    if path != prefix
        && !path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
    {
        return Ok(respond(404, Some(&error_body(api, 404, "")), Vec::new()));
    }
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request = ApiRequest {
        method: parts.method.as_str().to_owned(),
        base: format!(
            "http://{}",
            header(HOST).unwrap_or_else(|| shared.addr.to_string())
        ),
        authorization: header(AUTHORIZATION),
        path,
        query: parts.uri.query().unwrap_or("").to_owned(),
        body,
    };
    // Its own task: see the module documentation.
    match tokio::spawn(serve_api(shared, request)).await {
        Ok(Outcome {
            response,
            lost: false,
        }) => Ok(response),
        Ok(Outcome { lost: true, .. }) => {
            lose.notify_one();
            std::future::pending().await
        }
        Err(error) => {
            tracing::error!(%error, "request handler failed");
            Ok(respond(500, Some(&error_body(api, 500, "")), Vec::new()))
        }
    }
}

struct ApiRequest {
    method: String,
    path: String,
    query: String,
    base: String,
    authorization: Option<String>,
    body: Bytes,
}

struct Outcome {
    response: Reply,
    lost: bool,
}

/// The token of an acceptable `Authorization` header.
fn bearer<'h>(header: Option<&'h str>, config: &Config) -> Option<&'h str> {
    let token = header?.strip_prefix("Bearer ")?.trim();
    match &config.token {
        _ if token.is_empty() => None,
        Some(expected) if expected != token => None,
        _ => Some(token),
    }
}

fn rate_headers(budget: Budget) -> Vec<(&'static str, String)> {
    let reset = SystemTime::now() + budget.reset_in + Duration::from_millis(999);
    vec![
        ("ratelimit-limit", budget.limit.to_string()),
        ("ratelimit-remaining", budget.remaining.to_string()),
        ("ratelimit-reset", unix_seconds(reset).to_string()),
    ]
}

fn seconds_ceil(duration: Duration) -> u64 {
    (duration.as_millis().div_ceil(1000) as u64).max(1)
}

/// The error body a personality sends for a bare status (401, 429, an injected fault, 500).
fn error_body(api: Api, status: u16, request_id: &str) -> Json {
    match api {
        Api::DigitalOcean => ApiError::for_status(status).body(request_id),
        Api::Hetzner => HzError::for_status(status).body(),
    }
}

async fn serve_api(shared: Arc<Shared>, request: ApiRequest) -> Outcome {
    let started = Instant::now();
    let ApiRequest {
        method,
        path,
        query,
        base,
        authorization,
        body,
    } = request;
    let finish = |slot: (u64, usize), status: u16, response: Reply, lost: bool| {
        shared.state().record_status(slot, status);
        tracing::debug!(
            %method, %path, %query, status, lost,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request"
        );
        Outcome { response, lost }
    };

    // Under the lock: record, authenticate, rate-limit, faults.
    let (api, slot, effects, budget, request_id) = {
        let mut guard = shared.state();
        let state = &mut *guard;
        let now = Instant::now();
        let api = state.config.api;
        let slot = state.record(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status: 0,
            body: serde_json::from_slice(&body).ok(),
        });
        state.counts.total += 1;
        match method.as_str() {
            "GET" => state.counts.get += 1,
            "POST" => state.counts.post += 1,
            "PUT" => state.counts.put += 1,
            "PATCH" => state.counts.patch += 1,
            "DELETE" => state.counts.delete += 1,
            _ => {}
        }
        let request_id = state.next_request_id();

        let Some(token) = bearer(authorization.as_deref(), &state.config) else {
            let budget = Budget {
                limit: state.config.rate_limit_per_hour,
                remaining: state.config.rate_limit_per_hour,
                reset_in: Duration::ZERO,
            };
            drop(guard);
            let body = error_body(api, 401, &request_id);
            let response = respond(401, Some(&body), rate_headers(budget));
            return finish(slot, 401, response, false);
        };
        let token = token.to_owned();
        let key_list = api == Api::DigitalOcean && method == "GET" && path == "/v2/account/keys";
        if let Verdict::Limited(budget, after) =
            state
                .limits
                .check(&state.config, &token, key_list, false, now)
        {
            state.counts.rate_limited += 1;
            drop(guard);
            let mut headers = rate_headers(budget);
            if api == Api::DigitalOcean {
                headers.push(("retry-after", seconds_ceil(after).to_string()));
            }
            let body = error_body(api, 429, &request_id);
            let response = respond(429, Some(&body), headers);
            return finish(slot, 429, response, false);
        }

        let effects = state.faults.apply(&method, &path);
        let budget = match effects.status {
            // An injected 429 is a rejection like the real one: it does not count.
            Some(429) => state.limits.peek(&state.config, &token, now),
            _ => match state
                .limits
                .check(&state.config, &token, key_list, true, now)
            {
                Verdict::Allowed(budget) | Verdict::Limited(budget, _) => budget,
            },
        };
        if effects.status == Some(429) {
            state.counts.rate_limited += 1;
        }
        (api, slot, effects, budget, request_id)
    };

    // Faults compose: a slow fault delays an injected status too, and a lost response loses
    // whatever the answer was.
    if !effects.delay.is_zero() {
        tokio::time::sleep(effects.delay).await;
    }
    let mut headers = rate_headers(budget);
    if let Some((status, extra, text)) = &effects.answer {
        let mut extra = hostile::headers(extra);
        extra.extend(headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
        return finish(
            slot,
            *status,
            respond_raw(*status, text.clone(), extra),
            effects.lost,
        );
    }
    if let Some(bytes) = effects.huge {
        let response = respond_text(200, Some(hostile::huge(bytes)), headers);
        return finish(slot, 200, response, effects.lost);
    }
    let default_per_page = match api {
        Api::DigitalOcean => 20,
        Api::Hetzner => 25,
    };
    let (query, page, per_page) = if effects.endless {
        hostile::first_page_query(&query, default_per_page)
    } else {
        (query.clone(), 1, default_per_page)
    };
    let (status, response) = match effects.status {
        Some(status) => {
            // Nothing is handled: the state stays as it was.
            let body = (status >= 400).then(|| error_body(api, status, &request_id));
            if status == 429 && api == Api::DigitalOcean {
                headers.push(("retry-after", "1".to_owned()));
            }
            (status, respond(status, body.as_ref(), headers))
        }
        None => {
            let result = {
                let mut state = shared.state();
                let call = Call::new(&method, &path, &query, &body, &base, Instant::now());
                match api {
                    Api::DigitalOcean => api::route(&mut state, &call)
                        .map_err(|error| (error.status, error.body(&request_id))),
                    Api::Hetzner => hetzner::route(&mut state, &call)
                        .map_err(|error| (error.status, error.body())),
                }
            };
            match result {
                Ok(mut reply) => {
                    if let Some(text) = reply.body.as_mut() {
                        if effects.endless {
                            *text = match api {
                                Api::DigitalOcean => {
                                    hostile::endless(text, &base, &path, page, per_page)
                                }
                                Api::Hetzner => hostile::endless_hetzner(text, page, per_page),
                            };
                        }
                        if !effects.fields.is_empty() {
                            *text = hostile::rewrite(text, &effects.fields);
                        }
                    }
                    (
                        reply.status,
                        respond_text(reply.status, reply.body, headers),
                    )
                }
                Err((status, body)) => (status, respond(status, Some(&body), headers)),
            }
        }
    };
    finish(slot, status, response, effects.lost)
}

/// The control API under `/_sim`: not the cloud's, no auth, no rate limit.
fn control(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Reply {
    let bad = |error: serde_json::Error| {
        respond(
            400,
            Some(&json!({"error": format!("invalid JSON body: {error}")})),
            Vec::new(),
        )
    };
    match (method, path) {
        ("GET", "/_sim/state") => {
            let snapshot = shared.state().snapshot(&format!("http://{}", shared.addr));
            respond_value(200, &snapshot)
        }
        ("GET", "/_sim/requests") => {
            let requests = shared.state().requests.clone();
            respond_value(200, &requests)
        }
        ("POST", "/_sim/faults") => match serde_json::from_slice::<Fault>(body) {
            Ok(fault) => {
                shared.state().faults.inject(fault);
                respond(204, None, Vec::new())
            }
            Err(error) => bad(error),
        },
        ("DELETE", "/_sim/faults") => {
            shared.state().faults.clear();
            respond(204, None, Vec::new())
        }
        ("POST", "/_sim/reset") => {
            shared.state().reset();
            respond(204, None, Vec::new())
        }
        ("GET", "/_sim/config") => {
            let config = shared.state().config.clone();
            respond_value(200, &config)
        }
        ("PUT", "/_sim/config") => match serde_json::from_slice::<Config>(body) {
            Ok(config) => {
                shared.state().config = config;
                respond(204, None, Vec::new())
            }
            Err(error) => bad(error),
        },
        _ => respond(
            404,
            Some(&json!({"error": format!("no control endpoint {method} {path}")})),
            Vec::new(),
        ),
    }
}

fn respond_value(status: u16, value: &impl serde::Serialize) -> Reply {
    match serde_json::to_value(value) {
        Ok(json) => respond(status, Some(&json), Vec::new()),
        Err(error) => respond(500, Some(&json!({"error": error.to_string()})), Vec::new()),
    }
}

fn respond(status: u16, body: Option<&Json>, headers: Vec<(&'static str, String)>) -> Reply {
    respond_text(status, body.map(Json::to_string), headers)
}

/// An answer exactly as a fault gave it: any status, any headers, any body.
fn respond_raw(status: u16, body: String, headers: Vec<(String, String)>) -> Reply {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn respond_text(status: u16, body: Option<String>, headers: Vec<(&'static str, String)>) -> Reply {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let bytes = match body {
        Some(text) => {
            builder = builder.header("content-type", "application/json");
            Bytes::from(text)
        }
        None => Bytes::new(),
    };
    builder
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
