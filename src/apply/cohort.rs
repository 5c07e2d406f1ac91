//! Batches: the creates of one engine round that a batching provider takes together.
//!
//! The engine starts, in one round, every step whose last prerequisite has just finished.
//! Of those, the creates whose provider can batch ([`Provider::batch_limit`] above one) form
//! a [`Cohort`]. Each member prepares its request (host key, `creating` record), then
//! submits it or withdraws (it failed, or an interrupted run's create is resumed); the last
//! to settle sends them all, grouped by the provider's batch key, in address order,
//! `batch_limit` a call, each call holding one of `--parallelism`'s slots. What shares a call
//! is decided by the graph alone, never by how fast the members were: the same plan makes the
//! same calls on a fast machine and a slow one.
//!
//! Deletes gather the same way: the deletes of one round whose provider takes them together
//! ([`Provider::deletes_together`], DigitalOcean's droplets by tag) are handed over in one
//! [`Provider::delete_batch`] per provider and kind, so that disposing of a thousand droplets
//! is a few calls, not a thousand.

use std::sync::Arc;

use fitter_providers::api::{Provider, Request};
use fitter_providers::{ProviderKind, ResourceKind};

use super::{ApplyError, Context, Op, OpError, recorded_id, save, slot};
use crate::plan::Action;

/// Whether an operation is a create its provider can batch with others, or a delete it
/// takes together with others.
pub(super) fn joins_batch(ctx: &Context<'_>, op: &Op) -> bool {
    if let Op::Delete {
        address,
        kind,
        provider,
    } = op
    {
        return ctx
            .providers
            .get(*provider, address)
            .is_ok_and(|p| p.deletes_together(*kind));
    }
    let Op::Apply(i) = op else { return false };
    let change = &ctx.plan.changes[*i];
    matches!(change.action, Action::Create | Action::Replace)
        && ctx
            .providers
            .get(change.provider, &change.address)
            .is_ok_and(|p| p.batch_limit() > 1)
}

/// The creates that one round of the engine started for batching providers: each member
/// prepares its request (host key, state record), then either submits it or withdraws
/// (it failed, or an earlier run's create is resumed). The member that settles last sends
/// them all, grouped by provider and batch key, in address order, `batch_limit` a call.
/// What shares a call is decided by the graph alone, never by how fast the members were.
pub(super) struct Cohort {
    expected: usize,
    members: std::sync::Mutex<CohortMembers>,
}

#[derive(Default)]
pub(super) struct CohortMembers {
    settled: usize,
    submitted: Vec<Submitted>,
    doomed: Vec<Doomed>,
}

/// A delete handed to the cohort.
struct Doomed {
    provider: Arc<dyn Provider>,
    kind: ResourceKind,
    id: String,
    reply: tokio::sync::oneshot::Sender<Result<(), OpError>>,
}

/// What a settled cohort sends.
struct Settled {
    creates: Vec<Submitted>,
    deletes: Vec<Doomed>,
}

struct Submitted {
    address: String,
    provider: Arc<dyn Provider>,
    request: Request,
    reply: tokio::sync::oneshot::Sender<Result<String, OpError>>,
}

impl Cohort {
    pub(super) fn new(expected: usize) -> Cohort {
        Cohort {
            expected,
            members: Default::default(),
        }
    }

    /// Records that one member settled (with a request or without); the whole cohort once
    /// the last one has.
    fn settle(&self, submitted: Option<Submitted>, doomed: Option<Doomed>) -> Option<Settled> {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.settled += 1;
        members.submitted.extend(submitted);
        members.doomed.extend(doomed);
        (members.settled == self.expected).then(|| Settled {
            creates: std::mem::take(&mut members.submitted),
            deletes: std::mem::take(&mut members.doomed),
        })
    }

    /// Hands over a delete; returns once the cohort's call for it has answered.
    pub(super) async fn submit_delete(
        &self,
        ctx: &Context<'_>,
        provider: &Arc<dyn Provider>,
        kind: ResourceKind,
        id: String,
    ) -> Result<(), OpError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let member = Doomed {
            provider: Arc::clone(provider),
            kind,
            id: id.clone(),
            reply,
        };
        if let Some(all) = self.settle(None, Some(member)) {
            send_cohort(ctx, all).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(OpError::Failed(ApplyError::NoAnswer {
                resource: format!("{kind} {id}"),
            }))
        })
    }

    pub(super) async fn submit(
        &self,
        ctx: &Context<'_>,
        provider: &Arc<dyn Provider>,
        request: Request,
    ) -> Result<String, OpError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let address = request.address();
        let member = Submitted {
            address: address.clone(),
            provider: Arc::clone(provider),
            request,
            reply,
        };
        if let Some(all) = self.settle(Some(member), None) {
            send_cohort(ctx, all).await;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(OpError::Failed(ApplyError::NoAnswer { resource: address })))
    }

    pub(super) async fn withdraw(&self, ctx: &Context<'_>) {
        if let Some(all) = self.settle(None, None) {
            send_cohort(ctx, all).await;
        }
    }
}

/// Sends a cohort's creates and deletes.
async fn send_cohort(ctx: &Context<'_>, settled: Settled) {
    futures::future::join(
        send_creates(ctx, settled.creates),
        send_deletes(ctx, settled.deletes),
    )
    .await;
}

/// One [`Provider::delete_batch`] per provider and kind, holding one call slot.
async fn send_deletes(ctx: &Context<'_>, doomed: Vec<Doomed>) {
    let mut groups: Vec<Vec<Doomed>> = Vec::new();
    for d in doomed {
        match groups
            .iter_mut()
            .find(|g| g[0].provider.kind() == d.provider.kind() && g[0].kind == d.kind)
        {
            Some(g) => g.push(d),
            None => groups.push(vec![d]),
        }
    }
    futures::future::join_all(groups.into_iter().map(|mut group| async move {
        group.sort_by(|a, b| a.id.cmp(&b.id));
        let slot = slot(ctx).await;
        if slot.is_err() {
            for d in group {
                let _ = d.reply.send(Err(OpError::Interrupted));
            }
            return;
        }
        let provider = Arc::clone(&group[0].provider);
        let ids: Vec<String> = group.iter().map(|d| d.id.clone()).collect();
        // Ctrl-C ends the wait at once: what was deleted is found gone by the next run's
        // refresh, the rest is deleted then; the state keeps every id until it is gone.
        let answers = tokio::select! {
            biased;
            answers = provider.delete_batch(group[0].kind, &ids) => answers,
            _ = ctx.options.cancel.cancelled() => {
                for d in group {
                    let _ = d.reply.send(Err(OpError::Interrupted));
                }
                return;
            }
        };
        let mut answers = answers.into_iter();
        for d in group {
            let answer = match answers.next() {
                Some(a) => a.map_err(|e| OpError::Failed(e.into())),
                None => Err(OpError::Failed(ApplyError::NoAnswer {
                    resource: format!("{} {}", d.kind, d.id),
                })),
            };
            let _ = d.reply.send(answer);
        }
    }))
    .await;
}

/// Sends a cohort's creates: one provider call per batch, each holding one call slot.
async fn send_creates(ctx: &Context<'_>, mut all: Vec<Submitted>) {
    all.sort_by(|a, b| a.address.cmp(&b.address));
    let mut batches: Vec<Vec<Submitted>> = Vec::new();
    let mut keys: Vec<(ProviderKind, Option<String>)> = Vec::new();
    for s in all {
        let key = (s.provider.kind(), s.provider.batch_key(&s.request));
        let limit = s.provider.batch_limit().max(1);
        let open = key.1.is_some().then(|| {
            keys.iter()
                .zip(&batches)
                .rposition(|(k, b)| *k == key && b.len() < limit)
        });
        match open.flatten() {
            Some(b) => batches[b].push(s),
            None => {
                keys.push(key);
                batches.push(vec![s]);
            }
        }
    }
    futures::future::join_all(batches.into_iter().map(|batch| async move {
        let slot = slot(ctx).await;
        if slot.is_err() {
            for s in batch {
                let _ = s.reply.send(Err(OpError::Interrupted));
            }
            return;
        }
        let provider = Arc::clone(&batch[0].provider);
        let requests: Vec<Request> = batch.iter().map(|s| s.request.clone()).collect();
        let mut answers = provider.create_batch(&requests).await.into_iter();
        for s in batch {
            let answer = match answers.next() {
                Some(a) => a.map_err(|e| OpError::Failed(e.into())),
                None => Err(OpError::Failed(ApplyError::NoAnswer {
                    resource: s.address.clone(),
                })),
            };
            let _ = s.reply.send(answer);
        }
    }))
    .await;
}

/// Deletes a resource, with the others of its round when its provider takes them together,
/// and forgets it in the state once it is gone.
pub(super) async fn delete(
    ctx: &Context<'_>,
    address: &str,
    kind: ResourceKind,
    provider: ProviderKind,
    cohort: Option<&Cohort>,
) -> Result<(), OpError> {
    let id = recorded_id(ctx, address).await;
    match (id, cohort) {
        (Some(id), Some(c)) => {
            let p = match ctx.providers.get(provider, address) {
                Ok(p) => p,
                Err(e) => {
                    c.withdraw(ctx).await;
                    return Err(e.into());
                }
            };
            c.submit_delete(ctx, p, kind, id).await?;
        }
        (Some(id), None) => {
            let p = ctx.providers.get(provider, address)?;
            let _slot = slot(ctx).await?;
            p.delete(kind, &id).await?;
        }
        (None, Some(c)) => c.withdraw(ctx).await,
        (None, None) => {}
    }
    Ok(save(ctx, |s| {
        s.resources.remove(address);
    })
    .await?)
}
