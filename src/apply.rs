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
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fitter_providers::api::{
    FirewallRequest, FirewallRule, Ipv4Net, Member, NetworkRequest, NodeRequest, Provider, Request,
    RuleSource, SshKeyRequest, TagRequest,
};
use fitter_providers::{ProviderKind, ResourceKind};
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Value as Json, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, Outcome};
use crate::fittings::rules::{Protocol, Rule, Source};
use crate::graph::{ResourceGraph, StepKind, deployment_tag, firewall_tag, role_tag};
use crate::plan::{Action, Plan};
use crate::report::{Activity, Finish, Phase, Reporter};
use crate::ssh::{self, OperatorKey, Session};
use crate::state::{ResourceState, StateError, StateFile, Status};

/// The providers a deployment uses.
#[derive(Clone, Default)]
pub struct Providers {
    map: BTreeMap<ProviderKind, Arc<dyn Provider>>,
}

impl Providers {
    pub fn insert(&mut self, provider: Arc<dyn Provider>) {
        self.map.insert(provider.kind(), provider);
    }

    fn get(&self, kind: ProviderKind, resource: &str) -> Result<&Arc<dyn Provider>, String> {
        self.map.get(&kind).ok_or_else(|| {
            format!("`{resource}`: the {kind} provider is not available in this build")
        })
    }
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
    /// Told of every change as it starts, waits and finishes.
    pub reporter: Arc<dyn Reporter>,
}

/// What happened to one change.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub address: String,
    pub action: Action,
    pub result: StepResult,
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
        self.steps
            .iter()
            .filter(|s| !matches!(s.result, StepResult::Done { .. }))
            .count()
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

/// Reads every recorded resource from its provider and forgets those that are gone.
pub async fn refresh(state: &mut StateFile, providers: &Providers) -> Result<Vec<String>, String> {
    let gone = gone(state.state(), providers).await?;
    if !gone.is_empty() {
        state
            .update(|s| {
                for a in &gone {
                    s.resources.remove(a);
                }
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(gone)
}

/// The recorded resources their provider no longer has; reads only (`plan` uses it).
pub async fn gone(
    state: &crate::state::State,
    providers: &Providers,
) -> Result<Vec<String>, String> {
    let mut gone = Vec::new();
    let recorded: Vec<(String, ResourceState)> = state
        .resources
        .iter()
        .map(|(a, r)| (a.clone(), r.clone()))
        .collect();
    for (address, r) in recorded {
        let exists = match &r.id {
            // A resource still being created may not be visible yet (DigitalOcean lists a
            // new droplet late): kept, and the create waits for it.
            Some(_) if r.status == Status::Creating => true,
            Some(id) => {
                let provider = providers.get(r.provider, &address)?;
                provider
                    .read(r.kind, id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some()
            }
            // A create interrupted before the provider named the resource: kept, with the
            // host key it generated, for the next create, which adopts what the provider
            // finds by name and tag before creating anything.
            None => true,
        };
        if !exists {
            gone.push(address);
        }
    }
    Ok(gone)
}

/// Gives every node on a network fitter addresses itself (LXD) a private address, keeping the
/// one it had; fixed addresses (`glue: primary`) are respected. Recorded in the state.
pub fn assign_addresses(graph: &ResourceGraph, state: &mut StateFile) -> Result<(), StateError> {
    let mut subnets: HashMap<String, Ipv4Net> = HashMap::new();
    for step in graph.resources() {
        if step.kind == StepKind::Resource(ResourceKind::Network)
            && step.provider.is_some_and(|p| p.cloud().assigns_addresses())
            && let Some(net) = step
                .attributes
                .get("subnet")
                .and_then(|s| parse_net(s.as_str()?))
        {
            subnets.insert(step.name.clone(), net);
        }
    }
    let nodes: Vec<_> = graph
        .resources()
        .filter(|s| s.kind == StepKind::Resource(ResourceKind::Node))
        .collect();
    let mut taken: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    let mut assigned = state.state().addresses.clone();
    assigned.retain(|node, _| nodes.iter().any(|n| &n.name == node));
    for node in &nodes {
        let Some(network) = node.attributes.get("network").and_then(Json::as_str) else {
            continue;
        };
        if let Some(ip) = node.attributes.get("private_ip").and_then(Json::as_str) {
            assigned.remove(&node.name);
            if let Ok(ip) = ip.parse() {
                taken.entry(network.to_string()).or_default().push(ip);
            }
        }
    }
    for node in &nodes {
        let Some(network) = node.attributes.get("network").and_then(Json::as_str) else {
            continue;
        };
        let Some(subnet) = subnets.get(network) else {
            continue;
        };
        if node.attributes.contains_key("private_ip") {
            continue;
        }
        let used = taken.entry(network.to_string()).or_default();
        let kept = assigned
            .get(&node.name)
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .filter(|ip| in_subnet(*ip, subnet) && !used.contains(ip));
        let ip = match kept {
            Some(ip) => ip,
            None => {
                let Some(ip) = free_address(subnet, used, &assigned) else {
                    continue;
                };
                ip
            }
        };
        used.push(ip);
        assigned.insert(node.name.clone(), ip.to_string());
    }
    if assigned != state.state().addresses {
        state.update(|s| s.addresses = assigned)?;
    }
    Ok(())
}

fn parse_net(s: &str) -> Option<Ipv4Net> {
    let (base, prefix) = s.split_once('/')?;
    Some(Ipv4Net {
        base: base.parse().ok()?,
        prefix: prefix.parse().ok()?,
    })
}

fn in_subnet(ip: Ipv4Addr, net: &Ipv4Net) -> bool {
    let mask = u32::MAX << (32 - u32::from(net.prefix));
    u32::from(ip) & mask == u32::from(net.base)
}

/// The lowest free host address from `.10` up (the first ones are left for gateways and
/// fixed addresses).
fn free_address(
    net: &Ipv4Net,
    used: &[Ipv4Addr],
    assigned: &BTreeMap<String, String>,
) -> Option<Ipv4Addr> {
    let size = 1u32 << (32 - u32::from(net.prefix));
    let base = u32::from(net.base);
    (10..size - 1)
        .map(|h| Ipv4Addr::from(base + h))
        .find(|ip| !used.contains(ip) && !assigned.values().any(|a| a == &ip.to_string()))
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
    state: Mutex<&'a mut StateFile>,
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
    Failed(String),
    /// Ctrl-C came before its provider call could start.
    Interrupted,
}

impl From<String> for OpError {
    fn from(s: String) -> Self {
        OpError::Failed(s)
    }
}

/// Carries out the plan. Never loses a recorded resource: the state is saved after every
/// change, and a failure stops only what depends on it.
pub async fn apply(
    plan: &Plan,
    graph: &ResourceGraph,
    providers: &Providers,
    state: &mut StateFile,
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
                        ctx.options.reporter.finished(
                            address,
                            match &result {
                                Ok(()) => Finish::Done { id: id.as_deref() },
                                Err(OpError::Failed(why)) => Finish::Failed { error: why },
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
            Outcome::Failed(OpError::Failed(why)) => StepResult::Failed(why),
            Outcome::Failed(OpError::Interrupted) => StepResult::NotStarted,
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

/// Whether an operation is a create its provider can batch with others.
fn joins_batch(ctx: &Context<'_>, op: &Op) -> bool {
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
struct Cohort {
    expected: usize,
    members: std::sync::Mutex<CohortMembers>,
}

#[derive(Default)]
struct CohortMembers {
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
    fn new(expected: usize) -> Cohort {
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

    async fn submit(
        &self,
        ctx: &Context<'_>,
        provider: &Arc<dyn Provider>,
        request: Request,
    ) -> Result<String, OpError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let member = Submitted {
            address: request.address(),
            provider: Arc::clone(provider),
            request,
            reply,
        };
        if let Some(all) = self.settle(Some(member)) {
            send_cohort(ctx, all).await;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(OpError::Failed("the batch create gave no answer".into())))
    }

    async fn withdraw(&self, ctx: &Context<'_>) {
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
            let answer = answers.next().unwrap_or_else(|| {
                Err(fitter_providers::api::ProviderError::Unsupported {
                    provider: s.provider.kind(),
                    resource: s.address.clone(),
                    message: "the batch create gave no answer for it".into(),
                })
            });
            let _ = s
                .reply
                .send(answer.map_err(|e| OpError::Failed(e.to_string())));
        }
    }))
    .await;
}

async fn run_op(ctx: &Context<'_>, op: &Op, cohort: Option<&Cohort>) -> Result<(), OpError> {
    match op {
        Op::Barrier => Ok(()),
        Op::Delete {
            address,
            kind,
            provider,
        } => {
            if let Some(id) = recorded_id(ctx, address).await {
                let p = ctx.providers.get(*provider, address)?;
                let _slot = slot(ctx).await?;
                p.delete(*kind, &id).await.map_err(|e| e.to_string())?;
            }
            Ok(save(ctx, |s| {
                s.resources.remove(address);
            })
            .await?)
        }
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
) -> Result<(), String> {
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
        (upto, state.prepare().map_err(|e| e.to_string())?)
    };
    let stamp = tokio::task::spawn_blocking(move || write.run())
        .await
        .map_err(|e| format!("the state write stopped: {e}"))?
        .map_err(|e| e.to_string())?;
    ctx.state.lock().await.written(stamp);
    ctx.written.store(upto, Ordering::SeqCst);
    Ok(())
}

/// A create made ready to send: its request, recorded in the state as `creating`.
struct Prepared {
    provider: Arc<dyn Provider>,
    request: Request,
    outputs: BTreeMap<String, Json>,
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
                provider.create(&request).await.map_err(|e| e.to_string())?
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
    let ready = provider
        .wait_ready(&request, &id)
        .await
        .map_err(|e| e.to_string())?;
    outputs.extend(ready);

    if let Request::Node(r) = &request
        && ctx.options.probe_ssh
    {
        let ip = outputs
            .get("public_ip")
            .or_else(|| outputs.get("private_ip"))
            .and_then(Json::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| format!("`{address}` has no address to reach it over SSH"))?;
        ctx.options
            .reporter
            .step(&address, &format!("waiting for SSH on {ip}"));
        let session = Session::connect(
            &r.name,
            SocketAddr::from((ip, 22)),
            &r.host_key_public,
            &ctx.options.operator,
            ctx.options.ssh_patience,
        )
        .await
        .map_err(|e| e.to_string())?;
        session.close().await;
    }
    outputs.remove("host_key_private");
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
    let mut outputs: BTreeMap<String, Json> = BTreeMap::new();
    if change.kind == ResourceKind::Node {
        let recorded = previous.as_ref().and_then(|p| {
            Some((
                p.outputs.get("host_key_private")?.as_str()?.to_string(),
                p.outputs.get("host_key")?.as_str()?.to_string(),
            ))
        });
        let (private, public) = match recorded {
            Some(pair) => pair,
            None => {
                let key = ssh::generate_host_key().map_err(|e| e.to_string())?;
                (key.private_openssh, key.public_openssh)
            }
        };
        outputs.insert("host_key_private".into(), json!(private));
        outputs.insert(
            "host_key_fingerprint".into(),
            json!(ssh::fingerprint(&public)),
        );
        outputs.insert("host_key".into(), json!(public));
    }
    let request = {
        let state = ctx.state.lock().await;
        build_request(ctx, i, state.state(), &outputs)?
    };
    if let Request::Node(r) = &request
        && let Some(ip) = r.address
    {
        outputs.insert("private_ip".into(), json!(ip.to_string()));
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
            .ok_or_else(|| format!("`{address}` is not in the state"))?;
        (
            r.id.clone()
                .ok_or_else(|| format!("`{address}` has no id in the state"))?,
            r.outputs.clone(),
        )
    };
    let request = {
        let state = ctx.state.lock().await;
        build_request(ctx, i, state.state(), &outputs)?
    };
    let fresh = {
        let _slot = slot(ctx).await?;
        provider
            .update(&request, &id)
            .await
            .map_err(|e| e.to_string())?
    };
    let attributes = change.after.clone().unwrap_or_default();
    Ok(save(ctx, |s| {
        if let Some(r) = s.resources.get_mut(&address) {
            r.attributes = attributes;
            r.outputs.extend(fresh);
        }
    })
    .await?)
}

/// The provider's request for a change, with everything resolved: subnets, addresses,
/// firewall sources, keys.
fn build_request(
    ctx: &Context<'_>,
    i: usize,
    state: &crate::state::State,
    outputs: &BTreeMap<String, Json>,
) -> Result<Request, String> {
    let change = &ctx.plan.changes[i];
    let a = change.after.clone().unwrap_or_default();
    let text = |k: &str| a.get(k).and_then(Json::as_str).map(str::to_string);
    let list = |k: &str| -> Vec<String> {
        a.get(k)
            .and_then(Json::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deployment = ctx.graph.deployment.clone();
    let subnet_of = |network: &str| -> Option<Ipv4Net> {
        ctx.graph
            .step(&format!("network.{network}"))?
            .attributes
            .get("subnet")
            .and_then(Json::as_str)
            .and_then(parse_net)
    };
    let node_address = |name: &str| -> Option<Ipv4Addr> {
        let step = ctx.graph.step(&format!("node.{name}"))?;
        step.attributes
            .get("private_ip")
            .and_then(Json::as_str)
            .or_else(|| state.addresses.get(name).map(String::as_str))
            .and_then(|s| s.parse().ok())
    };
    match change.kind {
        ResourceKind::Network => Ok(Request::Network(NetworkRequest {
            deployment,
            name: change.name.clone(),
            subnet: text("subnet")
                .as_deref()
                .and_then(parse_net)
                .ok_or_else(|| format!("`{}` has no subnet", change.address))?,
            region: text("region"),
            firewalls: list("firewalls"),
        })),
        ResourceKind::Firewall => {
            let members: Vec<Member> = list("nodes")
                .into_iter()
                .map(|name| Member {
                    address: node_address(&name),
                    name,
                })
                .collect();
            let network = members.first().and_then(|m| {
                ctx.graph
                    .step(&format!("node.{}", m.name))?
                    .attributes
                    .get("network")?
                    .as_str()
                    .map(str::to_string)
            });
            let all_nodes: Vec<&crate::graph::Step> = ctx
                .graph
                .resources()
                .filter(|s| s.kind == StepKind::Resource(ResourceKind::Node))
                .collect();
            let mut rules = Vec::new();
            for line in list("inbound") {
                let rule =
                    Rule::from_str(&line).map_err(|e| format!("`{}`: {e}", change.address))?;
                let source = match &rule.source {
                    Source::Anywhere => RuleSource::Anywhere,
                    Source::Cidr(c) => RuleSource::Cidr(c.clone()),
                    Source::Nodes => RuleSource::Group {
                        tag: deployment_tag(&deployment),
                        addresses: all_nodes
                            .iter()
                            .filter_map(|n| node_address(&n.name))
                            .collect(),
                    },
                    Source::Role(role) => RuleSource::Group {
                        tag: role_tag(&deployment, &role.value),
                        addresses: all_nodes
                            .iter()
                            .filter(|n| {
                                n.attributes
                                    .get("roles")
                                    .and_then(Json::as_array)
                                    .is_some_and(|r| r.iter().any(|x| x == &json!(role.value)))
                            })
                            .filter_map(|n| node_address(&n.name))
                            .collect(),
                    },
                };
                rules.push(FirewallRule {
                    protocol: match rule.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                        Protocol::Icmp => "icmp",
                    }
                    .to_string(),
                    ports: rule.ports.filter(|p| *p != (0, 0)),
                    source,
                });
            }
            Ok(Request::Firewall(FirewallRequest {
                member_tag: firewall_tag(&deployment, &change.name),
                deployment,
                name: change.name.clone(),
                network,
                rules,
                members,
            }))
        }
        ResourceKind::Node => {
            let network = text("network").and_then(|n| Some((n.clone(), subnet_of(&n)?)));
            let network_id = text("network").and_then(|n| {
                state
                    .resources
                    .get(&format!("network.{n}"))
                    .and_then(|r| r.id.clone())
            });
            // The plan's tags, plus one per role and one per firewall, which the cloud's
            // firewalls name (DigitalOcean filters by tag).
            let mut tags = list("tags");
            tags.extend(list("roles").iter().map(|r| role_tag(&deployment, r)));
            if let Some(fw) = text("firewall") {
                tags.push(firewall_tag(&deployment, &fw));
            }
            Ok(Request::Node(NodeRequest {
                network_id,
                address: node_address(&change.name),
                deployment,
                name: change.name.clone(),
                size: text("size").unwrap_or_default(),
                image: text("image").unwrap_or_default(),
                region: text("region"),
                network,
                host_key: outputs
                    .get("host_key_private")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                host_key_public: outputs
                    .get("host_key")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                authorized_keys: vec![ctx.options.operator.public_openssh.clone()],
                tags,
            }))
        }
        ResourceKind::SshKey => Ok(Request::SshKey(SshKeyRequest {
            key_name: text("name").unwrap_or_else(|| deployment_tag(&deployment)),
            deployment,
            name: change.name.clone(),
            public_key: ctx.options.operator.public_openssh.clone(),
        })),
        ResourceKind::Tag => Ok(Request::Tag(TagRequest {
            tag: text("name").unwrap_or_else(|| deployment_tag(&deployment)),
            deployment,
            name: change.name.clone(),
        })),
    }
}

/// Takes into the state what the providers found carrying the deployment's mark but the
/// state does not know (a lost or stale state file), so that dispose deletes it too.
pub async fn adopt_orphans(
    state: &mut StateFile,
    providers: &Providers,
    kinds: &[ProviderKind],
) -> Result<Vec<String>, String> {
    let deployment = state.state().deployment.clone();
    let mut adopted = Vec::new();
    for kind in kinds {
        let provider = providers.get(*kind, "the deployment")?;
        let owned = provider
            .owned(&deployment)
            .await
            .map_err(|e| e.to_string())?;
        for o in owned {
            let known = state
                .state()
                .resources
                .values()
                .any(|r| r.provider == *kind && r.id.as_deref() == Some(o.id.as_str()));
            if known {
                continue;
            }
            let name = if o.name.is_empty() { &o.id } else { &o.name };
            let mut address = format!("{}.{name}", o.kind);
            if state.state().resources.contains_key(&address) {
                address = format!("{address}#{}", o.id);
            }
            let record = ResourceState {
                kind: o.kind,
                provider: *kind,
                id: Some(o.id.clone()),
                attributes: BTreeMap::new(),
                outputs: BTreeMap::new(),
                status: Status::Ready,
            };
            state
                .update(|s| {
                    s.resources.insert(address.clone(), record);
                })
                .map_err(|e| e.to_string())?;
            adopted.push(address);
        }
    }
    Ok(adopted)
}
