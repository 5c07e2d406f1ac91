//! Apply: carries out a [`Plan`] with the providers, through the engine, saving the state
//! after every change.
//!
//! The order of a run:
//! 1. **refresh**: every resource in the state is read from its provider; one that is gone
//!    leaves the state, so the plan creates it again;
//! 2. **addresses**: nodes on fitter-managed networks (LXD) get their private address, kept
//!    from earlier runs, recorded before anything is created;
//! 3. **plan**, then **apply**: deletes first (nodes, then firewalls, then networks), then
//!    creates and updates in dependency order, `parallelism` at a time.
//!
//! A create records the resource as `creating`, with the id when the provider can tell it in
//! advance and the node's generated host key, *before* calling the provider; then the id;
//! then, once the node is ready and answers SSH with that host key, its outputs and `ready`.
//! A run killed at any point leaves a state from which the next run finishes the job: it
//! finds what exists and adopts it rather than creating it twice.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fitter_providers::api::{Outputs, Provider, ProviderError, Request};
use fitter_providers::{ProviderKind, ResourceKind};
use petgraph::graph::{DiGraph, NodeIndex};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, Outcome};
use crate::graph::ResourceGraph;
use crate::plan::{Action, Plan};
use crate::report::{Activity, Finish, Phase, Reporter};
use crate::ssh::{self, OperatorKey, Session};
use crate::state::{LockedState, ResourceState, StateError, Status};

mod addresses;
mod cohort;
mod refresh;
mod request;

pub use addresses::assign_addresses;
pub use refresh::{adopt_orphans, drifted, gone, orphans, refresh};

use cohort::{Cohort, joins_batch};
use request::build_request;

/// The providers a deployment uses.
#[derive(Clone, Default)]
pub struct Providers {
    map: BTreeMap<ProviderKind, Arc<dyn Provider>>,
}

impl Providers {
    pub fn insert(&mut self, provider: Arc<dyn Provider>) {
        self.map.insert(provider.kind(), provider);
    }

    pub fn get(
        &self,
        kind: ProviderKind,
        resource: &str,
    ) -> Result<&Arc<dyn Provider>, ApplyError> {
        self.map.get(&kind).ok_or_else(|| ApplyError::NoProvider {
            provider: kind,
            resource: resource.to_string(),
        })
    }
}

/// Why a change, a refresh or an adoption failed. Each names the resource it is about (the
/// provider's and the state's errors carry theirs).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("`{resource}`: the {provider} provider is not available in this build")]
    NoProvider {
        provider: ProviderKind,
        resource: String,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Ssh(#[from] ssh::SshError),
    /// The plan's description of the resource cannot be turned into a provider request.
    #[error("`{resource}`: {message}")]
    Request { resource: String, message: String },
    #[error("`{resource}` is not in the state")]
    NotRecorded { resource: String },
    #[error("`{resource}` has no id in the state")]
    NoId { resource: String },
    #[error("`{resource}` has no address to reach it over SSH")]
    NoAddress { resource: String },
    #[error("`{resource}`: the batch create gave no answer for it")]
    NoAnswer { resource: String },
    #[error(
        "every one of the {count} resources the state records reads as gone; an endpoint that is not the \
         provider's answers like that, so nothing was forgotten. If they really are gone, run again with \
         `--accept-vanished`"
    )]
    Vanished { count: usize },
    #[error(
        "`{resource}` reads as gone, but the listing of the deployment's resources still has it \
         (id {id}); the provider's answers contradict each other, so nothing was forgotten"
    )]
    Contradiction { resource: String, id: String },
    /// Ctrl-C ended a wait; what was made is recorded, and the next run resumes it.
    #[error(
        "`{resource}`: interrupted while {what}; its id is in the state, and the next deploy goes on from there"
    )]
    Interrupted {
        resource: String,
        what: &'static str,
    },
    #[error("the state write stopped: {0}")]
    Writer(#[source] tokio::task::JoinError),
}

pub struct Options {
    pub parallelism: usize,
    pub cancel: CancellationToken,
    pub operator: OperatorKey,
    /// How long a new node may take to answer SSH.
    pub ssh_patience: Duration,
    /// Whether a new node counts as ready only once it answers SSH with its host key. Off
    /// for `deploy --skip-bootstrap`, whose operator reaches the nodes otherwise (and whose
    /// simulated droplets are not hosts).
    pub probe_ssh: bool,
    /// `--limit`: only these nodes are probed (none: all), as only they are bootstrapped.
    pub limit: Vec<String>,
    /// Told of every change as it starts, waits and finishes.
    pub reporter: Arc<dyn Reporter>,
    /// The host keys the plan gives its nodes (cloud-config `ssh_keys`), by node name:
    /// installed and pinned instead of a key fitter makes.
    pub host_keys: BTreeMap<String, ssh::HostKey>,
    /// More public keys to authorise on every new node besides the operator's: the plan's
    /// `keys:` (the team's other operators).
    pub team_keys: Vec<String>,
}

/// What happened to one change.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub address: String,
    pub action: Action,
    pub result: StepResult,
}

impl StepReport {
    pub fn done(&self) -> bool {
        matches!(self.result, StepResult::Done { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    Done {
        seconds: f64,
    },
    Failed(String),
    /// The change it waits for failed.
    Skipped {
        because: String,
    },
    /// Ctrl-C came first.
    NotStarted,
}

#[derive(Debug, Default)]
pub struct Report {
    pub steps: Vec<StepReport>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.steps.iter().filter(|s| !s.done()).count()
    }

    /// One line per change, failures with their cause; skipped steps name the failure once.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let verb = match s.action {
                Action::Create => "created",
                Action::Update => "updated",
                Action::Replace => "replaced",
                Action::Delete => "destroyed",
            };
            let line = match &s.result {
                StepResult::Done { seconds } => format!("{}: {verb} ({seconds:.1} s)", s.address),
                StepResult::Failed(why) => format!("{}: failed: {why}", s.address),
                StepResult::Skipped { because } => {
                    format!("{}: skipped: `{because}` failed", s.address)
                }
                StepResult::NotStarted => format!("{}: not started (interrupted)", s.address),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// One unit of work for the engine.
enum Op {
    Delete {
        address: String,
        kind: ResourceKind,
        provider: ProviderKind,
    },
    /// Create or update of the change at this index of the plan.
    Apply(usize),
    /// A join point between groups of deletes, and between the deletes and the rest.
    Barrier,
}

struct Context<'a> {
    plan: &'a Plan,
    graph: &'a ResourceGraph,
    providers: &'a Providers,
    state: Mutex<&'a mut LockedState>,
    options: &'a Options,
    /// Provider calls in flight: `--parallelism` of them. Waiting for a resource to become
    /// ready holds no slot, so a thousand droplets booting do not stop the next creates.
    calls: tokio::sync::Semaphore,
    /// Group commit: changes made in memory, and how many of them are on disk.
    changed: AtomicU64,
    written: AtomicU64,
    writer: Mutex<()>,
}

/// Why an operation did not complete.
enum OpError {
    Failed(ApplyError),
    /// Ctrl-C came before its provider call could start.
    Interrupted,
}

impl From<ApplyError> for OpError {
    fn from(e: ApplyError) -> Self {
        OpError::Failed(e)
    }
}

impl From<ProviderError> for OpError {
    fn from(e: ProviderError) -> Self {
        OpError::Failed(e.into())
    }
}

impl From<StateError> for OpError {
    fn from(e: StateError) -> Self {
        OpError::Failed(e.into())
    }
}

impl From<ssh::SshError> for OpError {
    fn from(e: ssh::SshError) -> Self {
        OpError::Failed(e.into())
    }
}

/// Carries out the plan. Never loses a recorded resource: the state is saved after every
/// change, and a failure stops only what depends on it.
pub async fn apply(
    plan: &Plan,
    graph: &ResourceGraph,
    providers: &Providers,
    state: &mut LockedState,
    options: &Options,
) -> Report {
    let (ops, dag) = schedule(plan);
    let actions: Vec<Action> = ops
        .iter()
        .map(|op| match op {
            Op::Delete { .. } | Op::Barrier => Action::Delete,
            Op::Apply(i) => plan.changes[*i].action,
        })
        .collect();
    // Barriers run too (as no-ops): an unselected vertex would not hold back what follows.
    let selected = vec![true; ops.len()];
    let ctx = Context {
        plan,
        graph,
        providers,
        state: Mutex::new(state),
        options,
        calls: tokio::sync::Semaphore::new(options.parallelism.max(1)),
        changed: AtomicU64::new(0),
        written: AtomicU64::new(0),
        writer: Mutex::new(()),
    };
    let took: std::sync::Mutex<HashMap<usize, Duration>> = Default::default();
    // Every ready step starts; `ctx.calls` bounds the provider calls among them. The creates
    // of one round that a batching provider can take together form a cohort.
    options.reporter.phase_started(Phase::Apply);
    let outcomes = engine::walk_rounds(&dag, &selected, ops.len(), &options.cancel, |round| {
        let joins: Vec<bool> = round
            .iter()
            .map(|v| joins_batch(&ctx, &ops[v.index()]))
            .collect();
        let members = joins.iter().filter(|j| **j).count();
        let cohort = (members > 0).then(|| Arc::new(Cohort::new(members)));
        round
            .iter()
            .zip(joins)
            .map(|(&v, joins)| {
                let (ctx, ops, took) = (&ctx, &ops, &took);
                let cohort = if joins { cohort.clone() } else { None };
                async move {
                    let op = &ops[v.index()];
                    let shown = shown_as(ctx, op);
                    if let Some((address, activity)) = &shown {
                        ctx.options.reporter.started(address, *activity);
                    }
                    let start = Instant::now();
                    let result = run_op(ctx, op, cohort.as_deref()).await;
                    if let Ok(mut t) = took.lock() {
                        t.insert(v.index(), start.elapsed());
                    }
                    if let Some((address, _)) = &shown {
                        let id = match &result {
                            Ok(()) if matches!(op, Op::Apply(_)) => recorded_id(ctx, address).await,
                            _ => None,
                        };
                        let why = match &result {
                            Err(OpError::Failed(e)) => e.to_string(),
                            _ => String::new(),
                        };
                        ctx.options.reporter.finished(
                            address,
                            match &result {
                                Ok(()) => Finish::Done { id: id.as_deref() },
                                Err(OpError::Failed(_)) => Finish::Failed { error: &why },
                                Err(OpError::Interrupted) => Finish::Failed {
                                    error: "interrupted before its provider call",
                                },
                            },
                        );
                    }
                    result
                }
            })
            .collect()
    })
    .await;
    options.reporter.phase_finished(Phase::Apply);
    // Barriers never fail; a failure upstream of one is reported against the change that
    // failed.
    let name_of = |i: usize| match &ops[i] {
        Op::Delete { address, .. } => address.clone(),
        Op::Apply(c) => plan.changes[*c].address.clone(),
        Op::Barrier => "(deletes)".to_string(),
    };
    // What waited for a step that Ctrl-C stopped was not started either: "skipped because
    // it failed" would name a failure that never happened.
    let interrupted: Vec<bool> = outcomes
        .iter()
        .map(|o| {
            matches!(
                o,
                Outcome::Failed(
                    OpError::Interrupted | OpError::Failed(ApplyError::Interrupted { .. })
                )
            )
        })
        .collect();
    let mut report = Report::default();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        if matches!(ops[i], Op::Barrier) {
            continue;
        }
        let result = match outcome {
            Outcome::Succeeded => StepResult::Done {
                seconds: took
                    .lock()
                    .ok()
                    .and_then(|t| t.get(&i).map(Duration::as_secs_f64))
                    .unwrap_or(0.0),
            },
            Outcome::Failed(OpError::Failed(why)) => StepResult::Failed(why.to_string()),
            Outcome::Failed(OpError::Interrupted) => StepResult::NotStarted,
            Outcome::Skipped { failed } if interrupted[failed.index()] => StepResult::NotStarted,
            Outcome::Skipped { failed } => StepResult::Skipped {
                because: name_of(failed.index()),
            },
            Outcome::NotStarted | Outcome::NotSelected => StepResult::NotStarted,
        };
        report.steps.push(StepReport {
            address: name_of(i),
            action: actions[i],
            result,
        });
    }
    report
}

/// The operations and their order: deletes by kind (nodes first), then creates and updates
/// along the graph's edges. A replace is a delete, then a create.
fn schedule(plan: &Plan) -> (Vec<Op>, DiGraph<(), ()>) {
    let mut ops = Vec::new();
    let mut dag: DiGraph<(), ()> = DiGraph::new();
    let add = |ops: &mut Vec<Op>, dag: &mut DiGraph<(), ()>, op: Op| {
        ops.push(op);
        dag.add_node(())
    };
    // Deletes, grouped by kind from the last created to the first.
    let mut by_rank: BTreeMap<std::cmp::Reverse<u8>, Vec<NodeIndex>> = BTreeMap::new();
    for change in &plan.changes {
        if matches!(change.action, Action::Delete | Action::Replace) {
            let v = add(
                &mut ops,
                &mut dag,
                Op::Delete {
                    address: change.address.clone(),
                    kind: change.kind,
                    provider: change.provider,
                },
            );
            by_rank
                .entry(std::cmp::Reverse(
                    change.kind.teardown_rank(change.provider),
                ))
                .or_default()
                .push(v);
        }
    }
    let mut previous: Option<NodeIndex> = None;
    for group in by_rank.values() {
        if let Some(b) = previous {
            for &v in group {
                dag.add_edge(b, v, ());
            }
        }
        let barrier = add(&mut ops, &mut dag, Op::Barrier);
        for &v in group {
            dag.add_edge(v, barrier, ());
        }
        previous = Some(barrier);
    }
    let mut index: HashMap<&str, NodeIndex> = HashMap::new();
    let mut applies = Vec::new();
    for (i, change) in plan.changes.iter().enumerate() {
        if change.action != Action::Delete {
            let v = add(&mut ops, &mut dag, Op::Apply(i));
            index.insert(change.address.as_str(), v);
            applies.push((i, v));
            if let Some(b) = previous {
                dag.add_edge(b, v, ());
            }
        }
    }
    for (i, v) in applies {
        for dep in &plan.changes[i].depends_on {
            if let Some(&d) = index.get(dep.as_str()) {
                dag.add_edge(d, v, ());
            }
        }
    }
    (ops, dag)
}

/// One provider call slot, unless Ctrl-C comes first.
async fn slot<'c>(ctx: &'c Context<'_>) -> Result<tokio::sync::SemaphorePermit<'c>, OpError> {
    if ctx.options.cancel.is_cancelled() {
        return Err(OpError::Interrupted);
    }
    tokio::select! {
        permit = ctx.calls.acquire() => permit.map_err(|_| OpError::Interrupted),
        _ = ctx.options.cancel.cancelled() => Err(OpError::Interrupted),
    }
}

/// A wait that Ctrl-C ends at once: a droplet's boot or a resize can take minutes, and an
/// operator who interrupts wants the prompt back, not the end of the wait. What the wait was
/// for is already in the state with its id; the next run waits for it again.
async fn unless_interrupted<T, E>(
    ctx: &Context<'_>,
    address: &str,
    what: &'static str,
    wait: impl Future<Output = Result<T, E>>,
) -> Result<T, ApplyError>
where
    ApplyError: From<E>,
{
    tokio::select! {
        // A wait already over counts, Ctrl-C or not: what it waited for is saved as ready.
        biased;
        result = wait => Ok(result?),
        _ = ctx.options.cancel.cancelled() => Err(ApplyError::Interrupted {
            resource: address.to_string(),
            what,
        }),
    }
}

/// The provider's id of a resource, as the state records it now.
async fn recorded_id(ctx: &Context<'_>, address: &str) -> Option<String> {
    let state = ctx.state.lock().await;
    state
        .state()
        .resources
        .get(address)
        .and_then(|r| r.id.clone())
}

/// What the reporter calls an operation, and what it is doing; `None` for a barrier.
fn shown_as(ctx: &Context<'_>, op: &Op) -> Option<(String, Activity)> {
    match op {
        Op::Barrier => None,
        Op::Delete { address, .. } => Some((address.clone(), Activity::Destroying)),
        Op::Apply(i) => {
            let change = &ctx.plan.changes[*i];
            let activity = match change.action {
                Action::Update => Activity::Updating,
                _ => Activity::Creating,
            };
            Some((change.address.clone(), activity))
        }
    }
}

async fn run_op(ctx: &Context<'_>, op: &Op, cohort: Option<&Cohort>) -> Result<(), OpError> {
    match op {
        Op::Barrier => Ok(()),
        Op::Delete {
            address,
            kind,
            provider,
        } => cohort::delete(ctx, address, *kind, *provider, cohort).await,
        Op::Apply(i) => {
            let change = &ctx.plan.changes[*i];
            match change.action {
                Action::Create | Action::Replace => create(ctx, *i, cohort).await,
                Action::Update => update(ctx, *i).await,
                Action::Delete => Ok(()),
            }
        }
    }
}

/// Applies a change to the state and returns once it is on disk. Changes that arrive while
/// another write is under way share the next write (group commit): with a thousand nodes,
/// one write per change would rewrite the whole file thousands of times.
async fn save(
    ctx: &Context<'_>,
    change: impl FnOnce(&mut crate::state::State),
) -> Result<(), ApplyError> {
    let generation = {
        let mut state = ctx.state.lock().await;
        state.modify(change);
        ctx.changed.fetch_add(1, Ordering::SeqCst) + 1
    };
    let _writer = ctx.writer.lock().await;
    if ctx.written.load(Ordering::SeqCst) >= generation {
        return Ok(());
    }
    // The text is made under the state's lock; the file and its fsyncs happen outside it, so
    // that other steps keep changing the state (and making calls) meanwhile.
    let (upto, write) = {
        let mut state = ctx.state.lock().await;
        let upto = ctx.changed.load(Ordering::SeqCst);
        (upto, state.prepare()?)
    };
    let stamp = tokio::task::spawn_blocking(move || write.run())
        .await
        .map_err(ApplyError::Writer)??;
    ctx.state.lock().await.stored(stamp);
    ctx.written.store(upto, Ordering::SeqCst);
    Ok(())
}

/// A create made ready to send: its request, recorded in the state as `creating`.
struct Prepared {
    provider: Arc<dyn Provider>,
    request: Request,
    outputs: Outputs,
    predicted: Option<String>,
    /// The id of a create an interrupted run sent and the provider accepted.
    accepted: Option<String>,
}

async fn create(ctx: &Context<'_>, i: usize, cohort: Option<&Cohort>) -> Result<(), OpError> {
    let address = ctx.plan.changes[i].address.clone();
    // A member of a cohort settles on every path, or the others would wait for it forever.
    let prepared = match prepare_create(ctx, i).await {
        Ok(p) => p,
        Err(e) => {
            if let Some(c) = cohort {
                c.withdraw(ctx).await;
            }
            return Err(e);
        }
    };
    let Prepared {
        provider,
        request,
        mut outputs,
        predicted,
        accepted,
    } = prepared;
    let id = match accepted {
        Some(id) => {
            tracing::info!(%address, %id, "resuming the wait for a resource an earlier run created");
            if let Some(c) = cohort {
                c.withdraw(ctx).await;
            }
            id
        }
        None => match cohort {
            Some(c) => {
                ctx.options
                    .reporter
                    .step(&address, "sending its create with the others of its batch");
                c.submit(ctx, &provider, request.clone()).await?
            }
            None => {
                let _slot = slot(ctx).await?;
                provider.create(&request).await?
            }
        },
    };
    if predicted.as_deref() != Some(id.as_str()) {
        save(ctx, |s| {
            if let Some(r) = s.resources.get_mut(&address) {
                r.id = Some(id.clone());
            }
        })
        .await?;
    }
    ctx.options
        .reporter
        .step(&address, &format!("waiting until it is ready [id={id}]"));
    let ready = unless_interrupted(
        ctx,
        &address,
        "waiting until it is ready",
        provider.wait_ready(&request, &id),
    )
    .await?;
    outputs.merge(ready);

    if let Request::Node(r) = &request
        && ctx.options.probe_ssh
        && (ctx.options.limit.is_empty() || ctx.options.limit.contains(&r.name))
    {
        let ip = outputs.address().ok_or_else(|| ApplyError::NoAddress {
            resource: address.clone(),
        })?;
        ctx.options
            .reporter
            .step(&address, &format!("waiting for SSH on {ip}"));
        let session = unless_interrupted(
            ctx,
            &address,
            "waiting for SSH",
            Session::connect(
                &r.name,
                SocketAddr::from((ip, 22)),
                &r.host_key_public,
                &ctx.options.operator,
                ctx.options.ssh_patience,
            ),
        )
        .await?;
        session.close().await;
    }
    outputs.host_key_private = None;
    Ok(save(ctx, |s| {
        if let Some(r) = s.resources.get_mut(&address) {
            r.outputs = outputs;
            r.status = Status::Ready;
            r.id = Some(id);
        }
    })
    .await?)
}

/// Everything a create does before its provider call: the node's host key (the one an
/// interrupted run recorded, else a new one), the request, and the `creating` record.
async fn prepare_create(ctx: &Context<'_>, i: usize) -> Result<Prepared, OpError> {
    let change = &ctx.plan.changes[i];
    let address = change.address.clone();
    let provider = Arc::clone(ctx.providers.get(change.provider, &address)?);
    let previous = ctx
        .state
        .lock()
        .await
        .state()
        .resources
        .get(&address)
        .cloned();

    // The node's host key: the one recorded by an interrupted run, else a new one.
    let mut outputs = Outputs::default();
    if change.kind == ResourceKind::Node {
        let recorded = previous.as_ref().and_then(|p| {
            Some((
                p.outputs.host_key_private.clone()?,
                p.outputs.host_key.clone()?,
            ))
        });
        let name = address.strip_prefix("node.").unwrap_or(&address);
        let (private, public) = match (recorded, ctx.options.host_keys.get(name)) {
            (Some(pair), _) => pair,
            (None, Some(given)) => (given.private_openssh.clone(), given.public_openssh.clone()),
            (None, None) => {
                let key = ssh::generate_host_key()?;
                (key.private_openssh, key.public_openssh)
            }
        };
        outputs.host_key_private = Some(private);
        outputs.host_key_fingerprint = ssh::fingerprint(&public);
        outputs.host_key = Some(public);
    }
    let request = {
        let state = ctx.state.lock().await;
        build_request(ctx, i, state.state(), &outputs)?
    };
    if let Request::Node(r) = &request
        && let Some(ip) = r.address
    {
        outputs.private_ip = Some(ip.into());
    }
    let predicted = provider.predicted_id(&request);
    let attributes = change.after.clone().unwrap_or_default();
    let record = ResourceState {
        kind: change.kind,
        provider: change.provider,
        id: predicted
            .clone()
            .or_else(|| previous.as_ref().and_then(|p| p.id.clone())),
        attributes: attributes.clone(),
        outputs: outputs.clone(),
        status: Status::Creating,
    };
    save(ctx, |s| {
        s.resources.insert(address.clone(), record);
    })
    .await?;

    // A create the provider accepted in an interrupted run (its id came back, it was not
    // predicted): wait for that resource rather than create another. Right after a create a
    // cloud may not list it yet; the provider's wait tolerates that, a new create would
    // make a duplicate.
    let accepted = previous
        .as_ref()
        .filter(|p| p.status == Status::Creating && predicted.is_none())
        .and_then(|p| p.id.clone());
    Ok(Prepared {
        provider,
        request,
        outputs,
        predicted,
        accepted,
    })
}

async fn update(ctx: &Context<'_>, i: usize) -> Result<(), OpError> {
    let change = &ctx.plan.changes[i];
    let address = change.address.clone();
    let provider = ctx.providers.get(change.provider, &address)?;
    let (id, outputs) = {
        let state = ctx.state.lock().await;
        let r = state
            .state()
            .resources
            .get(&address)
            .ok_or_else(|| ApplyError::NotRecorded {
                resource: address.clone(),
            })?;
        (
            r.id.clone().ok_or_else(|| ApplyError::NoId {
                resource: address.clone(),
            })?,
            r.outputs.clone(),
        )
    };
    let request = {
        let state = ctx.state.lock().await;
        build_request(ctx, i, state.state(), &outputs)?
    };
    let fresh = {
        let _slot = slot(ctx).await?;
        unless_interrupted(ctx, &address, "updating it", provider.update(&request, &id)).await?
    };
    let attributes = change.after.clone().unwrap_or_default();
    Ok(save(ctx, |s| {
        if let Some(r) = s.resources.get_mut(&address) {
            r.attributes = attributes;
            r.outputs.merge(fresh);
        }
    })
    .await?)
}

#[cfg(test)]
mod tests;
