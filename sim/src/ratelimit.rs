//! Rolling-window rate limits per token, as DigitalOcean applies them: a minute budget, an hour
//! budget, and a tighter minute budget for listing SSH keys. A request that gets a 429 does not
//! enter any window.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::types::Config;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(crate) struct RateLimits {
    tokens: HashMap<String, Windows>,
}

#[derive(Default)]
struct Windows {
    minute: VecDeque<Instant>,
    hour: VecDeque<Instant>,
    key_list: VecDeque<Instant>,
}

/// The `ratelimit-*` header values after a decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Until the oldest request of the hour window leaves it (zero when it is empty).
    pub(crate) reset_in: Duration,
}

/// What the limiter says about one request.
pub(crate) enum Verdict {
    Allowed(Budget),
    /// Over a budget; come back after this long.
    Limited(Budget, Duration),
}

fn prune(window: &mut VecDeque<Instant>, now: Instant, span: Duration) {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= span)
    {
        window.pop_front();
    }
}

/// How long until `window` holds fewer than `limit` requests.
fn wait(window: &VecDeque<Instant>, limit: u32, now: Instant, span: Duration) -> Option<Duration> {
    let limit = limit as usize;
    if window.len() < limit {
        return None;
    }
    // The request at index len - limit has to leave before there is room for one more.
    let blocking = window
        .get(window.len() - limit)
        .or(window.back())
        .copied()
        .unwrap_or(now);
    Some((blocking + span).saturating_duration_since(now))
}

impl RateLimits {
    /// Decides on one request and, when it is allowed and `commit` is true, counts it.
    pub(crate) fn check(
        &mut self,
        config: &Config,
        token: &str,
        key_list: bool,
        commit: bool,
        now: Instant,
    ) -> Verdict {
        let windows = self.tokens.entry(token.to_owned()).or_default();
        prune(&mut windows.minute, now, MINUTE);
        prune(&mut windows.hour, now, HOUR);
        prune(&mut windows.key_list, now, MINUTE);
        let mut retry = [
            wait(&windows.minute, config.rate_limit_per_minute, now, MINUTE),
            wait(&windows.hour, config.rate_limit_per_hour, now, HOUR),
            if key_list {
                wait(&windows.key_list, config.key_list_per_minute, now, MINUTE)
            } else {
                None
            },
        ]
        .into_iter()
        .flatten()
        .max();
        if retry.is_none() && commit {
            windows.minute.push_back(now);
            windows.hour.push_back(now);
            if key_list {
                windows.key_list.push_back(now);
            }
        }
        let budget = Budget {
            limit: config.rate_limit_per_hour,
            remaining: config
                .rate_limit_per_hour
                .saturating_sub(u32::try_from(windows.hour.len()).unwrap_or(u32::MAX)),
            reset_in: windows
                .hour
                .front()
                .map(|t| (*t + HOUR).saturating_duration_since(now))
                .unwrap_or_default(),
        };
        match retry.take() {
            None => Verdict::Allowed(budget),
            Some(after) => Verdict::Limited(budget, after),
        }
    }

    /// The header values for `token` without counting anything.
    pub(crate) fn peek(&mut self, config: &Config, token: &str, now: Instant) -> Budget {
        match self.check(config, token, false, false, now) {
            Verdict::Allowed(budget) | Verdict::Limited(budget, _) => budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(per_minute: u32, per_hour: u32) -> Config {
        Config {
            rate_limit_per_minute: per_minute,
            rate_limit_per_hour: per_hour,
            ..Config::default()
        }
    }

    #[test]
    fn minute_window_rolls() {
        let config = config(2, 100);
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        assert!(matches!(
            limits.check(&config, "t", false, true, t0),
            Verdict::Allowed(_)
        ));
        let t1 = t0 + Duration::from_secs(10);
        assert!(matches!(
            limits.check(&config, "t", false, true, t1),
            Verdict::Allowed(_)
        ));
        match limits.check(&config, "t", false, true, t1) {
            Verdict::Limited(budget, after) => {
                assert_eq!(after, Duration::from_secs(50));
                assert_eq!(budget.remaining, 98);
            }
            Verdict::Allowed(_) => panic!("third request within a minute allowed"),
        }
        // Other tokens have their own windows.
        assert!(matches!(
            limits.check(&config, "u", false, true, t1),
            Verdict::Allowed(_)
        ));
        // The oldest request leaves after 60 s.
        let t2 = t0 + Duration::from_secs(60);
        assert!(matches!(
            limits.check(&config, "t", false, true, t2),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn key_list_has_its_own_budget() {
        let config = Config {
            key_list_per_minute: 1,
            ..Config::default()
        };
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        assert!(matches!(
            limits.check(&config, "t", true, true, t0),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            limits.check(&config, "t", true, true, t0),
            Verdict::Limited(..)
        ));
        assert!(matches!(
            limits.check(&config, "t", false, true, t0),
            Verdict::Allowed(_)
        ));
    }
}
