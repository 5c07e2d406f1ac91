//! The readiness poller the clouds share: one listing of the deployment's machines (droplets
//! by tag, servers by label) answers every machine waited for, whether to become ready (after
//! a create) or to be gone (after a delete), instead of one GET per machine. It runs while
//! anything waits, polling sooner while machines change and backing off while nothing does.
//! A listing that did not come is polled again; one that does not parse ends every wait with
//! its error, since polling a hostile or broken answer again only hides it.
//!
//! A cloud whose listing can be sorted by age may also offer a probe ([`Listing::probe`]): one
//! request for the oldest machines, which turn ready (or go) first. While the probe shows no
//! change, a quiet poll costs one request instead of a page per fifty machines, so it can come
//! every second or two and see the end of a long boot within that, not within the twenty
//! seconds a full listing's back-off would have reached (Hetzner, 1,000 servers: +21% of a
//! 30 s bound before, docs/benchmarks.md). A full listing still comes at least every
//! [`FULL_EVERY`], so that a machine that is never listed is noticed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, oneshot};

use crate::api::Outputs;
use crate::http::Failure;

/// How long a machine waited for may be missing from the listings before it counts as
/// nonexistent (the Terraform providers tolerate 404s for about as long after a create).
pub const UNSEEN_GRACE: Duration = Duration::from_secs(120);

/// The longest a probing poller goes without a full listing.
pub const FULL_EVERY: Duration = Duration::from_secs(20);
/// The longest a quiet probe waits for the next.
const PROBE_CAP: Duration = Duration::from_millis(1500);

/// What a waiter is told: its answer, or why the listing could not give one.
type Told<T> = oneshot::Sender<Result<T, Failure>>;

/// Machines waited for.
#[derive(Default)]
pub struct Watch {
    ready: HashMap<u64, Vec<Told<Outputs>>>,
    /// When a machine waited for was first missing from a listing: right after a create the
    /// API may not list it yet, so only a long absence means it does not exist.
    unseen: HashMap<u64, tokio::time::Instant>,
    gone: HashMap<u64, Vec<Told<()>>>,
    polling: bool,
}

/// A cloud's listing of the deployment's machines.
pub trait Listing: Send + Sync + Sized + 'static {
    type Item: Send + Sync;
    fn watch(&self) -> &Mutex<Watch>;
    /// The first poll comes this long after the first wait.
    fn first_poll(&self) -> Duration;
    /// Items per page of the listing: the back-off is a second per page.
    fn per_page(&self) -> usize;
    /// Every machine of the deployment, by id.
    fn list(&self) -> impl Future<Output = Result<HashMap<u64, Self::Item>, Failure>> + Send;
    /// What is known of a machine once it is ready; `None` while it is pending.
    fn ready(item: &Self::Item) -> Option<Outputs>;

    /// Whether [`Listing::probe`] is offered; when not (the default) every poll is a full
    /// listing.
    const PROBES: bool = false;

    /// The oldest machines of the deployment in one request (the first [`Listing::per_page`]
    /// by id), to tell whether a wait can be answered.
    fn probe(&self) -> impl Future<Output = Result<HashMap<u64, Self::Item>, Failure>> + Send {
        async { Ok(HashMap::new()) }
    }
}

/// Whether a probe (the oldest machines, by id) shows a wait that can be answered: a machine
/// waited for that is ready, or one waited for to go that is missing where it would be listed.
fn probe_answers<L: Listing>(
    watch: &Watch,
    sample: &HashMap<u64, L::Item>,
    per_page: usize,
) -> bool {
    let ready = watch
        .ready
        .keys()
        .any(|id| sample.get(id).is_some_and(|item| L::ready(item).is_some()));
    let complete = sample.len() < per_page;
    let newest = sample.keys().max().copied().unwrap_or(0);
    let gone = watch
        .gone
        .keys()
        .any(|id| !sample.contains_key(id) && (complete || *id < newest));
    ready || gone
}

/// How a wait ended.
#[derive(Debug)]
pub enum Waited<T> {
    Done(T),
    /// The listing did not parse.
    Failed(Failure),
    /// Not listed for [`UNSEEN_GRACE`]: it does not exist.
    Unseen,
    TimedOut,
}

/// Waits until machine `id` is ready.
pub async fn ready<L: Listing>(source: &Arc<L>, id: u64, timeout: Duration) -> Waited<Outputs> {
    let (tx, rx) = oneshot::channel();
    source
        .watch()
        .lock()
        .await
        .ready
        .entry(id)
        .or_default()
        .push(tx);
    start(source).await;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(outputs))) => Waited::Done(outputs),
        Ok(Ok(Err(failure))) => Waited::Failed(failure),
        Ok(Err(_)) => Waited::Unseen,
        Err(_) => Waited::TimedOut,
    }
}

/// Waits until machine `id` is no longer listed.
pub async fn gone<L: Listing>(source: &Arc<L>, id: u64, timeout: Duration) -> Waited<()> {
    let (tx, rx) = oneshot::channel();
    source
        .watch()
        .lock()
        .await
        .gone
        .entry(id)
        .or_default()
        .push(tx);
    start(source).await;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(()))) => Waited::Done(()),
        Ok(Ok(Err(failure))) => Waited::Failed(failure),
        Ok(Err(_)) => Waited::Unseen,
        Err(_) => Waited::TimedOut,
    }
}

/// Makes sure the poller runs.
async fn start<L: Listing>(source: &Arc<L>) {
    let mut watch = source.watch().lock().await;
    if watch.polling {
        return;
    }
    watch.polling = true;
    tokio::spawn(poll(Arc::clone(source)));
}

async fn poll<L: Listing>(source: Arc<L>) {
    let mut wait = source.first_poll();
    let mut quiet = Duration::from_secs(1);
    // Whether the next poll may be a probe, what the last probe saw, when the last full
    // listing was.
    let mut may_probe = false;
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(wait).await;
        {
            let mut watch = source.watch().lock().await;
            // A wait that ended (its timeout, Ctrl-C) is no longer polled for.
            watch.ready.retain(|_, told| {
                told.retain(|tx| !tx.is_closed());
                !told.is_empty()
            });
            watch.gone.retain(|_, told| {
                told.retain(|tx| !tx.is_closed());
                !told.is_empty()
            });
            if watch.ready.is_empty() && watch.gone.is_empty() {
                watch.polling = false;
                return;
            }
        }
        if L::PROBES && may_probe && last_full.elapsed() < FULL_EVERY {
            match source.probe().await {
                Ok(sample) => {
                    let answers = {
                        let watch = source.watch().lock().await;
                        probe_answers::<L>(&watch, &sample, source.per_page())
                    };
                    if !answers {
                        wait = quiet.min(PROBE_CAP);
                        quiet = quiet.mul_f64(1.25).min(PROBE_CAP);
                        continue;
                    }
                }
                Err(Failure::Malformed { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "probing machines failed; will poll again");
                    wait = quiet.min(PROBE_CAP);
                    continue;
                }
            }
        }
        last_full = tokio::time::Instant::now();
        let mut progress = false;
        let mut pages = 1;
        match source.list().await {
            Ok(map) => {
                pages = map.len().div_ceil(source.per_page()).max(1);
                progress = answer::<L>(&mut *source.watch().lock().await, &map);
            }
            Err(failure @ Failure::Malformed { .. }) => {
                let mut watch = source.watch().lock().await;
                watch.unseen.clear();
                for tx in watch.ready.drain().flat_map(|(_, txs)| txs) {
                    let _ = tx.send(Err(failure.clone()));
                }
                for tx in watch.gone.drain().flat_map(|(_, txs)| txs) {
                    let _ = tx.send(Err(failure.clone()));
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing machines failed; will poll again"),
        }
        // While nothing changes, back off to a second per page of the listing (5 s for a
        // thousand droplets), so the creates keep most of the budget; while machines keep
        // turning ready, poll every half second.
        let cap = Duration::from_secs(pages as u64).max(Duration::from_secs(2));
        if progress {
            wait = Duration::from_millis(500);
            quiet = Duration::from_secs(1);
            may_probe = false;
        } else if L::PROBES {
            // Nothing changed: the next polls probe, a request each.
            wait = quiet.min(PROBE_CAP);
            quiet = quiet.mul_f64(1.25).min(PROBE_CAP);
            may_probe = true;
        } else {
            wait = quiet;
            quiet = quiet.mul_f64(1.5).min(cap);
        }
    }
}

/// Tells every waiter the listing answers; whether anything changed.
fn answer<L: Listing>(watch: &mut Watch, map: &HashMap<u64, L::Item>) -> bool {
    let mut progress = false;
    let ready: Vec<(u64, Outputs)> = watch
        .ready
        .keys()
        .filter_map(|id| Some((*id, L::ready(map.get(id)?)?)))
        .collect();
    for (id, outputs) in ready {
        progress = true;
        watch.unseen.remove(&id);
        for tx in watch.ready.remove(&id).unwrap_or_default() {
            let _ = tx.send(Ok(outputs.clone()));
        }
    }
    // Missing too long: the waiters' channels close, which they report.
    let now = tokio::time::Instant::now();
    let waited: Vec<u64> = watch.ready.keys().copied().collect();
    for id in waited {
        if map.contains_key(&id) {
            watch.unseen.remove(&id);
            continue;
        }
        let since = *watch.unseen.entry(id).or_insert(now);
        if now.duration_since(since) > UNSEEN_GRACE {
            watch.unseen.remove(&id);
            watch.ready.remove(&id);
        }
    }
    let gone: Vec<u64> = watch
        .gone
        .keys()
        .filter(|id| !map.contains_key(id))
        .copied()
        .collect();
    for id in gone {
        progress = true;
        for tx in watch.gone.remove(&id).unwrap_or_default() {
            let _ = tx.send(Ok(()));
        }
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing of machines that are ready or not, by id.
    struct Fake;

    impl Listing for Fake {
        type Item = bool;

        fn watch(&self) -> &Mutex<Watch> {
            unreachable!("not polled")
        }

        fn first_poll(&self) -> Duration {
            Duration::ZERO
        }

        fn per_page(&self) -> usize {
            3
        }

        async fn list(&self) -> Result<HashMap<u64, bool>, Failure> {
            Ok(HashMap::new())
        }

        fn ready(item: &bool) -> Option<Outputs> {
            item.then(Outputs::default)
        }
    }

    fn watching(ready: &[u64], gone: &[u64]) -> Watch {
        let mut watch = Watch::default();
        for id in ready {
            watch.ready.insert(*id, Vec::new());
        }
        for id in gone {
            watch.gone.insert(*id, Vec::new());
        }
        watch
    }

    #[test]
    fn a_probe_answers_only_what_its_page_of_the_oldest_can_tell() {
        let page = |items: &[(u64, bool)]| items.iter().copied().collect::<HashMap<_, _>>();
        let full = page(&[(1, false), (2, true), (3, false)]);
        // A waited machine in the page that is ready answers; one that is not does not.
        assert!(probe_answers::<Fake>(&watching(&[2], &[]), &full, 3));
        assert!(!probe_answers::<Fake>(&watching(&[1, 3], &[]), &full, 3));
        // Beyond a full page nothing is known: a machine missing there is not gone.
        assert!(!probe_answers::<Fake>(&watching(&[9], &[]), &full, 3));
        assert!(!probe_answers::<Fake>(&watching(&[], &[9]), &full, 3));
        // Missing below the newest listed, or from a page that is not full: gone.
        let holes = page(&[(1, false), (3, false), (4, false)]);
        assert!(probe_answers::<Fake>(&watching(&[], &[2]), &holes, 3));
        let short = page(&[(1, false)]);
        assert!(probe_answers::<Fake>(&watching(&[], &[7]), &short, 3));
        assert!(probe_answers::<Fake>(
            &watching(&[], &[7]),
            &HashMap::new(),
            3
        ));
    }
}
