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

use std::sync::Arc;

use fitter_providers::ProviderKind;
use fitter_providers::api::{Provider, Request};

use super::{ApplyError, Context, Op, OpError, slot};
use crate::plan::Action;

/// Whether an operation is a create its provider can batch with others.
pub(super) fn joins_batch(ctx: &Context<'_>, op: &Op) -> bool {
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
    fn settle(&self, submitted: Option<Submitted>) -> Option<Vec<Submitted>> {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.settled += 1;
        members.submitted.extend(submitted);
        (members.settled == self.expected).then(|| std::mem::take(&mut members.submitted))
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
        if let Some(all) = self.settle(Some(member)) {
            send_cohort(ctx, all).await;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(OpError::Failed(ApplyError::NoAnswer { resource: address })))
    }

    pub(super) async fn withdraw(&self, ctx: &Context<'_>) {
        if let Some(all) = self.settle(None) {
            send_cohort(ctx, all).await;
        }
    }
}

/// Sends a cohort's creates: one provider call per batch, each holding one call slot.
async fn send_cohort(ctx: &Context<'_>, mut all: Vec<Submitted>) {
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
