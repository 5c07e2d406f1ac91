//! Rate limits per token. DigitalOcean's are rolling windows: a minute budget, an hour budget,
//! and a tighter minute budget for listing SSH keys. Hetzner's is a token bucket: a budget of
//! `rate_limit_per_hour` requests, refilled at `rate_limit_per_hour / 3600` a second (one a
//! second at Hetzner's 3,600). Under both, a request that gets a 429 costs nothing.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::types::{Api, Config};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(crate) struct RateLimits {
    tokens: HashMap<String, Windows>,
    buckets: HashMap<String, Bucket>,
}

/// One bucket's fill, in units of 1 / [`UNIT`] request: refilling `limit` requests an hour is
/// then exactly `limit` units a nanosecond, with nothing lost to rounding.
struct Bucket {
    level: u128,
    at: Instant,
}

/// Units in one request: the nanoseconds of an hour.
const UNIT: u128 = 3_600_000_000_000;

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
    /// DigitalOcean: until the oldest request of the hour window leaves it (zero when it is
    /// empty). Hetzner: until the bucket is full again.
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
    /// Decides on one request and, when it is allowed and `commit` is true, counts it: in the
    /// windows of DigitalOcean or the bucket of Hetzner, as the configuration says.
    pub(crate) fn check(
        &mut self,
        config: &Config,
        token: &str,
        key_list: bool,
        commit: bool,
        now: Instant,
    ) -> Verdict {
        if config.api == Api::Hetzner {
            return self.bucket(config.rate_limit_per_hour, token, commit, now);
        }
        // DigitalOcean: rolling windows of a minute and an hour.
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

    /// Hetzner: a request costs one from a bucket of `limit`, refilled continuously at
    /// `limit` an hour.
    fn bucket(&mut self, limit: u32, token: &str, commit: bool, now: Instant) -> Verdict {
        let rate = u128::from(limit);
        let full = rate * UNIT;
        let bucket = self.buckets.entry(token.to_owned()).or_insert(Bucket {
            level: full,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_nanos();
        bucket.level = bucket
            .level
            .saturating_add(elapsed.saturating_mul(rate))
            .min(full);
        bucket.at = bucket.at.max(now);
        let allowed = bucket.level >= UNIT;
        if allowed && commit {
            bucket.level -= UNIT;
        }
        // Nanoseconds until `units` more have flowed in.
        let after = |units: u128| -> Duration {
            if rate == 0 {
                return Duration::ZERO;
            }
            Duration::from_nanos(u64::try_from(units.div_ceil(rate)).unwrap_or(u64::MAX))
        };
        let budget = Budget {
            limit,
            remaining: u32::try_from(bucket.level / UNIT).unwrap_or(u32::MAX),
            reset_in: after(full - bucket.level),
        };
        if allowed {
            Verdict::Allowed(budget)
        } else {
            let wait = after(UNIT - bucket.level);
            // With a limit of 0 nothing ever flows in: come back in an hour.
            Verdict::Limited(
                budget,
                if rate == 0 {
                    HOUR
                } else {
                    wait.max(Duration::from_millis(1))
                },
            )
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

    fn hetzner(per_hour: u32) -> Config {
        Config {
            rate_limit_per_hour: per_hour,
            ..Config::hetzner()
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
    fn a_hetzner_bucket_empties_and_refills() {
        let config = hetzner(3600);
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        for n in 0..3600u32 {
            match limits.check(&config, "t", false, true, t0) {
                Verdict::Allowed(budget) => assert_eq!(budget.remaining, 3599 - n),
                Verdict::Limited(..) => panic!("request {n} refused"),
            }
        }
        match limits.check(&config, "t", false, true, t0) {
            Verdict::Limited(budget, after) => {
                assert_eq!(budget.remaining, 0);
                assert_eq!(after, Duration::from_secs(1));
                assert_eq!(budget.reset_in, HOUR);
            }
            Verdict::Allowed(_) => panic!("an empty bucket let a request through"),
        }
        // One a second flows back; a refused request did not cost anything.
        let t1 = t0 + Duration::from_millis(2500);
        match limits.check(&config, "t", false, true, t1) {
            Verdict::Allowed(budget) => assert_eq!(budget.remaining, 1),
            Verdict::Limited(..) => panic!("no refill after 2.5 s"),
        }
        // Other tokens have buckets of their own; a full bucket stays full.
        assert!(matches!(
            limits.check(&config, "u", false, true, t1 + HOUR),
            Verdict::Allowed(_)
        ));
        match limits.check(&config, "t", false, false, t1 + 2 * HOUR) {
            Verdict::Allowed(budget) => {
                assert_eq!((budget.remaining, budget.reset_in), (3600, Duration::ZERO))
            }
            Verdict::Limited(..) => panic!("refused after two hours"),
        }
    }

    #[test]
    fn a_small_hetzner_bucket_refills_slowly() {
        let config = hetzner(5);
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(matches!(
                limits.check(&config, "t", false, true, t0),
                Verdict::Allowed(_)
            ));
        }
        match limits.check(&config, "t", false, true, t0) {
            Verdict::Limited(_, after) => assert_eq!(after, Duration::from_secs(720)),
            Verdict::Allowed(_) => panic!("sixth request allowed"),
        }
        assert!(matches!(
            limits.check(&config, "t", false, true, t0 + Duration::from_secs(720)),
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
