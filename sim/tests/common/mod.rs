//! What the simulator's integration tests (`api.rs`, `hetzner.rs`, `hetzner_prism.rs`) share:
//! an HTTP client for either personality, its answers, polling for delayed work, a request
//! the client gives up on, plain HTTP/1.1 for the synchronous tests, and test SSH keys.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::fmt;
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use fitter_sim::{Api, Fault, Matcher, Simulator};
use reqwest::header::HeaderMap;
use serde_json::Value as Json;

/// The bearer token of the tests (any non-empty token is accepted unless `Config::token`
/// names one).
pub const TOKEN: &str = "sim_test_token";
pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILw76nu6NpiHy3pAOArdGgiX5+TE2cO9yzJD313hGwgu test";
/// [`ED25519`]'s MD5 fingerprint.
pub const ED25519_MD5: &str = "9f:31:63:42:07:bb:71:e3:ca:ed:45:a4:e9:2e:54:1b";

pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub struct Client {
    pub http: reqwest::Client,
    /// What paths follow; a path that is a whole URL (`http…`) is taken as it is.
    pub base: String,
    pub token: String,
    /// How long a request may take.
    pub timeout: Duration,
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON: `null` when empty, a string when it is not JSON.
    pub body: Json,
}

impl Answer {
    /// The error code of a Hetzner error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// A header that is a number.
    pub fn header(&self, name: &str) -> u64 {
        self.headers[name].to_str().unwrap().parse().unwrap()
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl Client {
    /// A client of the API the simulator is configured with: DigitalOcean at `url()` (paths
    /// start with `/v2`), Hetzner at `hetzner_url()` (paths such as `/servers`).
    pub fn new(sim: &Simulator) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: match sim.config().api {
                Api::Hetzner => sim.hetzner_url(),
                _ => sim.url(),
            },
            token: TOKEN.to_owned(),
            timeout: Duration::from_secs(10),
        }
    }

    pub async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> reqwest::Result<Answer> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .timeout(self.timeout);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Json::String(text))
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Answer {
        self.try_send(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"))
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Json) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Json) -> Answer {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// `GET path` again until `done` holds of the answer (every 50 ms, at most 30 s).
    pub async fn until(&self, path: &str, what: &str, done: impl Fn(&Answer) -> bool) -> Answer {
        let every = Duration::from_millis(50);
        poll(
            what,
            every,
            Duration::from_secs(30),
            || self.get(path),
            done,
        )
        .await
    }

    /// Creates a Hetzner resource and returns its id: `POST /networks` must answer 201
    /// `{"network": {"id": …}}`.
    pub async fn create(&self, path: &str, body: Json) -> u64 {
        let answer = self.post(path, body).await;
        assert_eq!(answer.status, 201, "POST {path}: {}", answer.body);
        answer.body[one(path)]["id"].as_u64().unwrap()
    }
}

/// The key of one resource in the answers of a Hetzner family's `path`: `network` for
/// `/networks`.
pub fn one(path: &str) -> &str {
    let many = path.trim_start_matches('/');
    many.strip_suffix('s').unwrap_or(many)
}

/// Sends `POST path`, which a [`Fault::Slow`] of `delay` holds up, from a client that gives up
/// after 50 ms: the request fails here while the simulator goes on with it.
pub async fn give_up_on_slow_post(sim: &Simulator, path: &str, body: Json, delay: Duration) {
    let impatient = Client {
        timeout: Duration::from_millis(50),
        ..Client::new(sim)
    };
    let url = format!("{}{path}", impatient.base);
    sim.inject(Fault::Slow {
        matcher: Matcher::new(Some("POST"), &url[sim.url().len()..]),
        delay,
    });
    let gave_up = impatient
        .try_send(reqwest::Method::POST, path, Some(body))
        .await;
    assert!(gave_up.is_err(), "POST {path}: answered in time");
}

/// Asks again until `done` holds of the answer (every `every`, at most `within` of real
/// time): the simulator's delayed work is waited for by its effect, never by a sleep of the
/// delay's length, which a loaded machine can outrun.
pub async fn poll<T: fmt::Display, F: Future<Output = T>>(
    what: &str,
    every: Duration,
    within: Duration,
    mut ask: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let answer = ask().await;
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not after {within:?}; last answer {answer}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Plain HTTP/1.1 over a std socket, for the synchronous tests: the status and the body.
pub fn raw_http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
