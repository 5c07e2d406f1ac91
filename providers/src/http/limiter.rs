//! The client-side rate limiter: every call of one client waits here before it is sent.
//!
//! Two shapes, as the clouds count: rolling windows (DigitalOcean: at most N requests in any
//! 60 s and M in any hour) and a token bucket (Hetzner: a budget of 3,600 refilled at one a
//! second). Both also follow the server's own count: when an answer says nothing remains,
//! nothing is sent until its reset time, and after a 429 until the wait it asked for.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How a cloud counts requests, a little under its own limits so that clock skew and another
/// client on the same token leave some room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// At most `per_minute` requests in any 60 s and `per_hour` in any hour.
    Windows { per_minute: usize, per_hour: usize },
    /// A bucket of `capacity` requests, refilled at `per_hour` an hour.
    Bucket { capacity: usize, per_hour: usize },
}

pub(super) struct Limiter {
    state: Mutex<Count>,
}

struct Count {
    shape: Shape,
    blocked_until: Option<Instant>,
}

enum Shape {
    Windows { minute: Window, hour: Window },
    Bucket(Bucket),
}

pub(super) struct Window {
    cap: usize,
    period: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    fn new(cap: usize, period: Duration) -> Window {
        Window {
            cap,
            period,
            sent: VecDeque::new(),
        }
    }

    /// How long until one more request fits; zero when it fits now.
    fn wait(&mut self, now: Instant) -> Duration {
        while let Some(&t) = self.sent.front() {
            if now.duration_since(t) >= self.period {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.cap {
            Duration::ZERO
        } else {
            (self.sent[0] + self.period).saturating_duration_since(now)
        }
    }
}

struct Bucket {
    capacity: f64,
    /// Requests gained per second.
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let gained = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + gained).min(self.capacity);
        self.at = now;
    }

    /// How long until one token is there; zero when it is.
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

impl Limiter {
    pub(super) fn new(budget: Budget) -> Limiter {
        let shape = match budget {
            Budget::Windows {
                per_minute,
                per_hour,
            } => Shape::Windows {
                minute: Window::new(per_minute, Duration::from_secs(60)),
                hour: Window::new(per_hour, Duration::from_secs(3600)),
            },
            Budget::Bucket { capacity, per_hour } => Shape::Bucket(Bucket {
                capacity: capacity as f64,
                rate: per_hour as f64 / 3600.0,
                tokens: capacity as f64,
                at: Instant::now(),
            }),
        };
        Limiter {
            state: Mutex::new(Count {
                shape,
                blocked_until: None,
            }),
        }
    }

    pub(super) async fn acquire(&self) {
        loop {
            let wait = {
                let mut c = self.state.lock().await;
                let now = Instant::now();
                let blocked = c
                    .blocked_until
                    .map(|b| b.saturating_duration_since(now))
                    .unwrap_or_default();
                let wait = match &mut c.shape {
                    Shape::Windows { minute, hour } => {
                        blocked.max(minute.wait(now)).max(hour.wait(now))
                    }
                    Shape::Bucket(bucket) => blocked.max(bucket.wait(now)),
                };
                if wait.is_zero() {
                    match &mut c.shape {
                        Shape::Windows { minute, hour } => {
                            minute.sent.push_back(now);
                            hour.sent.push_back(now);
                        }
                        Shape::Bucket(bucket) => bucket.tokens -= 1.0,
                    }
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every call back for `wait` (after a 429).
    pub(super) async fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut c = self.state.lock().await;
        if c.blocked_until.is_none_or(|b| b < until) {
            c.blocked_until = Some(until);
        }
    }

    /// Follows the server's own count. When it says nothing remains, wait for its reset
    /// (at most a minute: a bucket's reset is when it is *full*, and one request's worth
    /// comes back much sooner). A bucket never holds more than the server says remains, so
    /// that another client on the same token is counted too.
    pub(super) async fn observe(&self, headers: &HeaderMap) {
        let number = |name: &str| super::text::header_number(headers, name);
        let remaining = number("ratelimit-remaining");
        if let Some(left) = remaining {
            let mut c = self.state.lock().await;
            if let Shape::Bucket(bucket) = &mut c.shape {
                bucket.refill(Instant::now());
                bucket.tokens = bucket.tokens.min(left);
            }
        }
        if remaining == Some(0.0)
            && let Some(reset) = number("ratelimit-reset")
            && let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH)
        {
            let limit = match &self.state.lock().await.shape {
                Shape::Bucket(b) => 1.0 / b.rate,
                Shape::Windows { .. } => 60.0,
            };
            let wait = (reset - now.as_secs_f64()).clamp(0.0, limit.min(60.0));
            self.block_for(Duration::from_secs_f64(wait)).await;
        }
    }
}
