//! Injected faults ([`Fault`]): which requests each matches, how often it has matched, and
//! what it does to a request or to a droplet's listing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

use tokio::time::Instant;

use crate::types::Fault;

/// Injected faults and how often each has matched.
#[derive(Default)]
pub(crate) struct Faults {
    active: Vec<ActiveFault>,
}

struct ActiveFault {
    fault: Fault,
    seen: u32,
    affected: u32,
}

/// What the faults do to one request.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) status: Option<u16>,
    pub(crate) delay: Duration,
    pub(crate) lost: bool,
    /// An answer to send instead of handling the request: status, headers, body.
    pub(crate) answer: Option<(u16, BTreeMap<String, String>, String)>,
    /// The size of a huge answer to send instead of handling the request.
    pub(crate) huge: Option<u64>,
    /// Keys of the JSON answer to overwrite, at any depth.
    pub(crate) fields: Vec<(String, Json)>,
    /// Whether a listing's pages never end.
    pub(crate) endless: bool,
}

impl Faults {
    pub(crate) fn inject(&mut self, fault: Fault) {
        self.active.push(ActiveFault {
            fault,
            seen: 0,
            affected: 0,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.active.clear();
    }

    /// Runs one request past every fault, counting it against their `skip` and `times`.
    pub(crate) fn apply(&mut self, method: &str, path: &str) -> Effects {
        let mut effects = Effects::default();
        for active in &mut self.active {
            let matcher = match &active.fault {
                Fault::Status { matcher, .. }
                | Fault::Slow { matcher, .. }
                | Fault::LostResponse { matcher }
                | Fault::Answer { matcher, .. }
                | Fault::Field { matcher, .. }
                | Fault::EndlessPages { matcher }
                | Fault::Huge { matcher, .. } => matcher,
                Fault::StuckNew { .. } | Fault::Unlisted { .. } | Fault::StuckActions => continue,
            };
            if !matcher.matches(method, path) {
                continue;
            }
            if active.seen < matcher.skip {
                active.seen += 1;
                continue;
            }
            if matcher.times != 0 && active.affected >= matcher.times {
                continue;
            }
            active.affected += 1;
            match &active.fault {
                Fault::Status { status, .. } => {
                    effects.status.get_or_insert(*status);
                }
                Fault::Slow { delay, .. } => effects.delay += *delay,
                Fault::LostResponse { .. } => effects.lost = true,
                Fault::Answer {
                    status,
                    headers,
                    body,
                    ..
                } => {
                    effects
                        .answer
                        .get_or_insert_with(|| (*status, headers.clone(), body.clone()));
                }
                Fault::Huge { bytes, .. } => {
                    effects.huge.get_or_insert(*bytes);
                }
                Fault::Field { field, value, .. } => {
                    effects.fields.push((field.clone(), value.clone()));
                }
                Fault::EndlessPages { .. } => effects.endless = true,
                Fault::StuckNew { .. } | Fault::Unlisted { .. } | Fault::StuckActions => {}
            }
        }
        effects
    }

    /// Whether a droplet created at `created` is still hidden by an [`Fault::Unlisted`].
    pub(crate) fn unlisted(&self, name: &str, created: Instant, now: Instant) -> bool {
        self.active.iter().any(|a| {
            matches!(&a.fault, Fault::Unlisted { name: n, delay }
                if n == name && now.saturating_duration_since(created) < *delay)
        })
    }

    /// Whether droplet actions are held `in-progress` by [`Fault::StuckActions`].
    pub(crate) fn actions_stuck(&self) -> bool {
        self.active
            .iter()
            .any(|a| matches!(a.fault, Fault::StuckActions))
    }

    pub(crate) fn stuck(&self, name: &str) -> bool {
        self.active
            .iter()
            .any(|a| matches!(&a.fault, Fault::StuckNew { name: n } if n == name))
    }
}
