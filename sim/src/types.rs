//! The simulator's public vocabulary: its configuration, the faults a test can inject, and what
//! a test can read back. All of it is serde-(de)serializable so the control API under `/_sim`
//! speaks the same language as the Rust API; durations travel as integer milliseconds
//! (`*_ms` fields).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// Which cloud's API the simulator speaks: DigitalOcean's v2 under `/v2` (the default) or
/// Hetzner Cloud's under `/v1`. The other prefix answers 404.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Api {
    #[default]
    #[serde(rename = "digitalocean")]
    DigitalOcean,
    #[serde(rename = "hetzner")]
    Hetzner,
}

impl Api {
    /// The path every request of this API starts with: `/v2` or `/v1`.
    pub fn prefix(self) -> &'static str {
        match self {
            Api::DigitalOcean => "/v2",
            Api::Hetzner => "/v1",
        }
    }
}

/// How the fake behaves. Every field has a default, so a partial JSON object is a valid config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The API served (`"digitalocean"` or `"hetzner"`).
    pub api: Api,
    /// How long a droplet stays `new` after its creation before it is `active`. Under Hetzner:
    /// a server is `initializing` for the first half of it, `starting` for the second half,
    /// then `running` (or `off` when created with `start_after_create: false`).
    #[serde(rename = "active_delay_ms", with = "millis")]
    pub active_delay: Duration,
    /// How long a deleted droplet stays visible (listed, in its VPC) after the 204. Under
    /// Hetzner: how long a deleted server shows as `deleting` (and its `delete_server` action
    /// runs) before it is gone.
    #[serde(rename = "delete_delay_ms", with = "millis")]
    pub delete_delay: Duration,
    /// How long a droplet action (`power_off`, `resize`, …) takes: the droplet is locked and
    /// the action `in-progress` until then, and its effect shows after.
    #[serde(rename = "action_delay_ms", with = "millis")]
    pub action_delay: Duration,
    /// Requests per token in any rolling 60 s window (DigitalOcean only).
    pub rate_limit_per_minute: u32,
    /// Requests per token in any rolling hour; also the `ratelimit-limit` header. Under
    /// Hetzner: the size of each token's bucket, refilled at this many per 3,600 s (Hetzner's
    /// own is 3,600: see [`Config::hetzner`]).
    pub rate_limit_per_hour: u32,
    /// `GET /v2/account/keys` (the list) per token in any rolling 60 s window (DigitalOcean
    /// only).
    pub key_list_per_minute: u32,
    /// `Some(t)`: only `Bearer t` is accepted. `None`: any non-empty bearer token.
    pub token: Option<String>,
    /// `Some(n)`: a create that would make more than `n` droplets gets a 422. Under Hetzner it
    /// is the server limit: a create past it (servers not deleted) gets 403
    /// `resource_limit_exceeded`.
    pub droplet_limit: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api: Api::DigitalOcean,
            active_delay: Duration::from_secs(2),
            delete_delay: Duration::from_secs(1),
            action_delay: Duration::from_secs(1),
            rate_limit_per_minute: 250,
            rate_limit_per_hour: 5000,
            key_list_per_minute: 10,
            token: None,
            droplet_limit: None,
        }
    }
}

impl Config {
    /// The defaults with the Hetzner personality and Hetzner's budget: 3,600 requests an hour
    /// per token, refilled at one a second.
    pub fn hetzner() -> Config {
        Config {
            api: Api::Hetzner,
            rate_limit_per_hour: 3600,
            ..Config::default()
        }
    }
}

/// Something to go wrong on purpose. Faults apply to requests that passed authentication and
/// the rate limit; several can match one request, and they combine (the first matching
/// `Status` wins, `Slow` delays add up, `LostResponse` drops whatever the answer was).
/// Serialized with a `kind` tag:
/// `{"kind":"status","matcher":{"method":"POST","path_prefix":"/v2/droplets","times":1},"status":503}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with `status` and the personality's error body (DigitalOcean's `{id, message,
    /// request_id}`, Hetzner's `{error: {code, message, details}}`); nothing changes. Under
    /// DigitalOcean a 429 also carries `retry-after: 1`.
    Status { matcher: Matcher, status: u16 },
    /// Sleep `delay` before handling; the state changes after the sleep.
    Slow {
        matcher: Matcher,
        #[serde(rename = "delay_ms", with = "millis")]
        delay: Duration,
    },
    /// Handle the request completely (a create does happen), then close the connection
    /// without sending a byte of the response: the client sees a network error.
    LostResponse { matcher: Matcher },
    /// Droplets named `name` stay `new` for as long as this fault is in place. Under Hetzner:
    /// servers named `name` stay `starting` (after `initializing`).
    StuckNew { name: String },
    /// Droplets named `name` are missing from listings, and `GET` of their id answers 404,
    /// until `delay` after their creation: the API's "couldn't find resource" right after
    /// a create.
    Unlisted {
        name: String,
        #[serde(rename = "delay_ms", with = "millis")]
        delay: Duration,
    },
    /// Answer with exactly this instead of handling the request (nothing changes): what a
    /// wrong or hostile endpoint sends. A redirect (307 and a `location` header), a web
    /// server's HTML 404, a 200 that is not JSON, JSON of the wrong shape.
    Answer {
        matcher: Matcher,
        status: u16,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: String,
    },
    /// Handle the request, then give every key `field`, at any depth of the JSON answer,
    /// the value `value`: `ip_address` = `"*"` for a hostile address, `id` = `"abc"` for a
    /// wrong type.
    Field {
        matcher: Matcher,
        field: String,
        value: Json,
    },
    /// A listing that never ends: every page of a matching list answers with the first
    /// page's items, a `next` link to the page after it and a `meta.total` far beyond.
    EndlessPages { matcher: Matcher },
    /// A 200 `application/json` answer `bytes` long (a `{` and spaces), nothing handled.
    Huge { matcher: Matcher, bytes: u64 },
    /// Droplet actions (not creates) stay `in-progress` while this fault is in place. Under
    /// Hetzner: every action but `create_server` and `start_server` stays `running`.
    StuckActions,
}

/// Which requests a fault applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Matcher {
    /// `Some("POST")`: only that method (any case). `None`: any method.
    pub method: Option<String>,
    /// The request path must start with this, e.g. `/v2/droplets`. Empty matches everything.
    pub path_prefix: String,
    /// Let this many matching requests through untouched first.
    pub skip: u32,
    /// Affect this many matching requests, then stop. 0: no end.
    pub times: u32,
}

impl Matcher {
    /// Every request with `method` (`None`: any) whose path starts with `path_prefix`.
    pub fn new(method: Option<&str>, path_prefix: &str) -> Matcher {
        Matcher {
            method: method.map(str::to_owned),
            path_prefix: path_prefix.to_owned(),
            skip: 0,
            times: 0,
        }
    }

    /// Lets the first `skip` matching requests through.
    pub fn skip(mut self, skip: u32) -> Matcher {
        self.skip = skip;
        self
    }

    /// Affects only `times` matching requests (0: all).
    pub fn times(mut self, times: u32) -> Matcher {
        self.times = times;
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

/// Every resource, rendered as the API would return it at the time of the snapshot (droplets
/// deleted but not yet gone included), plus the request counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub droplets: Vec<Json>,
    pub vpcs: Vec<Json>,
    pub firewalls: Vec<Json>,
    pub tags: Vec<Json>,
    pub ssh_keys: Vec<Json>,
    pub counts: Counts,
    /// The Hetzner personality's resources (empty under DigitalOcean).
    #[serde(default)]
    pub hetzner: HetznerSnapshot,
}

/// Hetzner's resources, each as `GET /v1/<kind>/{id}` renders it (servers deleted but not
/// yet gone included, with status `deleting`), in id order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HetznerSnapshot {
    pub servers: Vec<Json>,
    pub networks: Vec<Json>,
    pub firewalls: Vec<Json>,
    pub ssh_keys: Vec<Json>,
    pub placement_groups: Vec<Json>,
}

/// Counters over API requests (`/v2` or `/v1`) since the start or the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub get: u64,
    pub post: u64,
    pub put: u64,
    pub patch: u64,
    pub delete: u64,
    /// 429 answers sent, from the rate limiter or from a [`Fault::Status`].
    pub rate_limited: u64,
}

/// One API request (`/v2` or `/v1`) as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?` (empty when there is none).
    pub query: String,
    pub status: u16,
    /// The request body when it parsed as JSON.
    pub body: Option<Json>,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
