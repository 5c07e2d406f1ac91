//! apply driven by an in-memory fake provider and an in-memory state store: the order of
//! calls, what a failure stops, what Ctrl-C leaves, and when ids are recorded, without a
//! cloud, a daemon or a file.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fitter_providers::api::{Outputs, Owned, Provider, ProviderError, Request};
use fitter_providers::{ProviderKind, ResourceKind, registry};
use tokio_util::sync::CancellationToken;

use super::{ApplyError, Options, Providers, Report, StepResult, apply, refresh};
use crate::operations::{CheckOptions, Checked, check};
use crate::plan::{self, Plan};
use crate::report::Silent;
use crate::ssh::OperatorKey;
use crate::state::{Holder, LockedState, MemoryStore, State, StateStore as _, Status};

/// A provider that keeps what it "creates" in memory and says what it was asked.
struct Fake {
    kind: ProviderKind,
    store: MemoryStore,
    deployment: String,
    /// Calls as they were made: `create node.master1`, `wait node.master1`, ...
    calls: Mutex<Vec<String>>,
    /// Creates that fail.
    failing: HashSet<String>,
    /// Fired during the first create: Ctrl-C while that call runs.
    cancel_during_first_create: Option<CancellationToken>,
    /// What the stored state said of a resource when its wait began.
    recorded_at_wait: Mutex<BTreeMap<String, (Option<String>, Status)>>,
    /// Ids that read as gone, and ids the listing of the deployment still has.
    unreadable: HashSet<String>,
    listed: Vec<Owned>,
}

impl Fake {
    fn new(store: &MemoryStore, deployment: &str) -> Fake {
        Fake {
            kind: registry::default_kind(),
            store: store.clone(),
            deployment: deployment.to_string(),
            calls: Mutex::new(Vec::new()),
            failing: HashSet::new(),
            cancel_during_first_create: None,
            recorded_at_wait: Mutex::new(BTreeMap::new()),
            unreadable: HashSet::new(),
            listed: Vec::new(),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The position of a call, which must have been made.
    fn at(&self, call: &str) -> usize {
        let calls = self.calls();
        calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no `{call}` in {calls:?}"))
    }
}

#[async_trait]
impl Provider for Fake {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn predicted_id(&self, _request: &Request) -> Option<String> {
        None
    }

    async fn create(&self, request: &Request) -> Result<String, ProviderError> {
        let address = request.address();
        let first = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(format!("create {address}"));
            calls.len() == 1
        };
        if first && let Some(cancel) = &self.cancel_during_first_create {
            cancel.cancel();
        }
        // Let the other ready steps run meanwhile, as a real call would.
        tokio::task::yield_now().await;
        if self.failing.contains(&address) {
            return Err(ProviderError::Api {
                provider: self.kind,
                resource: address,
                status: 500,
                message: "the fake says no".into(),
            });
        }
        Ok(format!("id-{}", request.name()))
    }

    async fn wait_ready(&self, request: &Request, _id: &str) -> Result<Outputs, ProviderError> {
        let address = request.address();
        self.calls.lock().unwrap().push(format!("wait {address}"));
        let stored = self.store.read(&self.deployment).ok().flatten();
        let seen = stored
            .and_then(|s| s.resources.get(&address).map(|r| (r.id.clone(), r.status)))
            .unwrap_or((None, Status::Ready));
        self.recorded_at_wait.lock().unwrap().insert(address, seen);
        Ok(Outputs::default())
    }

    async fn read(&self, _kind: ResourceKind, id: &str) -> Result<Option<Outputs>, ProviderError> {
        Ok((!self.unreadable.contains(id)).then(Outputs::default))
    }

    async fn update(&self, request: &Request, _id: &str) -> Result<Outputs, ProviderError> {
        let address = request.address();
        self.calls.lock().unwrap().push(format!("update {address}"));
        Ok(Outputs::default())
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<(), ProviderError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {kind} {id}"));
        Ok(())
    }

    async fn owned(&self, _deployment: &str) -> Result<Vec<Owned>, ProviderError> {
        Ok(self
            .listed
            .iter()
            .map(|o| Owned {
                kind: o.kind,
                name: o.name.clone(),
                id: o.id.clone(),
            })
            .collect())
    }
}

/// The local example plan, checked: 2 firewalls, a network, 3 masters and 2 agents.
fn example() -> Checked {
    check(&CheckOptions {
        path: concat!(env!("CARGO_MANIFEST_DIR"), "/fittings/mesos-local.yaml").into(),
        targets: Vec::new(),
        replace: Vec::new(),
        parameter_files: Vec::new(),
        parameters: BTreeMap::new(),
        provider: None,
        blueprints: Vec::new(),
        region: None,
    })
    .expect("the example plan checks")
}

struct Run {
    report: Report,
    fake: Arc<Fake>,
    state: State,
}

/// Applies `the_plan` (against `recorded`, if any) with the fake, `parallelism` calls at once.
async fn run(
    checked: &Checked,
    the_plan: &Plan,
    recorded: Option<State>,
    parallelism: usize,
    fake: impl FnOnce(Fake) -> Fake,
    cancel: CancellationToken,
) -> Run {
    let deployment = &checked.fittings.deployment;
    let store = MemoryStore::default();
    if let Some(state) = recorded {
        let mut locked = LockedState::open(
            &store,
            deployment,
            &Holder::this_process("t"),
            Default::default(),
        )
        .unwrap();
        locked.update(|s| *s = state).unwrap();
    }
    let fake = Arc::new(fake(Fake::new(&store, deployment)));
    let mut providers = Providers::default();
    providers.insert(fake.clone());
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        parallelism,
        cancel,
        operator: OperatorKey::create(&dir.path().join("id")).unwrap(),
        ssh_patience: Duration::from_secs(1),
        probe_ssh: false,
        limit: Vec::new(),
        reporter: Arc::new(Silent),
        host_keys: Default::default(),
        team_keys: Vec::new(),
    };
    let mut locked = LockedState::open(
        &store,
        deployment,
        &Holder::this_process("t"),
        Default::default(),
    )
    .unwrap();
    let report = apply(the_plan, &checked.graph, &providers, &mut locked, &options).await;
    let state = locked.state().clone();
    Run {
        report,
        fake,
        state,
    }
}

/// The whole example plan applied with the fake from no state, four calls at once.
async fn run_from_nothing(checked: &Checked) -> Run {
    let the_plan = plan::diff(&checked.graph, None);
    run(checked, &the_plan, None, 4, |f| f, CancellationToken::new()).await
}

fn result<'r>(report: &'r Report, address: &str) -> &'r StepResult {
    &report
        .steps
        .iter()
        .find(|s| s.address == address)
        .unwrap_or_else(|| panic!("no step for `{address}`"))
        .result
}

#[tokio::test]
async fn every_change_runs_once_after_what_it_needs() {
    let checked = example();
    let the_plan = plan::diff(&checked.graph, None);
    let r = run(
        &checked,
        &the_plan,
        None,
        4,
        |f| f,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(r.report.failed(), 0, "{}", r.report.render());
    let creates: Vec<String> = r
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("create "))
        .collect();
    assert_eq!(creates.len(), the_plan.changes.len(), "{creates:?}");
    // Every change after everything it depends on was ready.
    for change in &the_plan.changes {
        for dep in &change.depends_on {
            assert!(
                r.fake.at(&format!("wait {dep}"))
                    < r.fake.at(&format!("create {}", change.address)),
                "`{}` was created before `{dep}` was ready: {:?}",
                change.address,
                r.fake.calls()
            );
        }
    }
    assert!(
        the_plan.changes.iter().any(|c| !c.depends_on.is_empty()),
        "the example has dependencies to check"
    );
    for change in &the_plan.changes {
        let recorded = &r.state.resources[&change.address];
        assert_eq!(recorded.status, Status::Ready);
        assert_eq!(
            recorded.id.as_deref(),
            Some(format!("id-{}", change.name).as_str())
        );
    }
}

#[tokio::test]
async fn the_id_is_recorded_before_the_wait() {
    let checked = example();
    let the_plan = plan::diff(&checked.graph, None);
    let r = run(
        &checked,
        &the_plan,
        None,
        4,
        |f| f,
        CancellationToken::new(),
    )
    .await;
    let seen = r.fake.recorded_at_wait.lock().unwrap().clone();
    assert_eq!(seen.len(), the_plan.changes.len());
    for (address, (id, status)) in seen {
        assert_eq!(status, Status::Creating, "`{address}` when its wait began");
        assert!(
            id.is_some(),
            "`{address}` had no id in the stored state when its wait began"
        );
    }
}

#[tokio::test]
async fn a_failure_skips_only_what_depends_on_it() {
    let checked = example();
    let the_plan = plan::diff(&checked.graph, None);
    let failing = "node.master2";
    let r = run(
        &checked,
        &the_plan,
        None,
        4,
        |mut f| {
            f.failing.insert(failing.to_string());
            f
        },
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(result(&r.report, failing), StepResult::Failed(why) if why.contains("the fake says no"))
    );
    // Nothing depends on a node: every other change completed.
    for change in the_plan.changes.iter().filter(|c| c.address != failing) {
        assert!(
            matches!(result(&r.report, &change.address), StepResult::Done { .. }),
            "{}",
            r.report.render()
        );
    }
    // The failed create is kept as `creating`, for the next run to look for.
    assert_eq!(r.state.resources[failing].status, Status::Creating);

    // A failed network: the nodes on it are skipped and name it; the firewalls are not.
    let network = the_plan
        .changes
        .iter()
        .find(|c| c.kind == ResourceKind::Network)
        .unwrap()
        .address
        .clone();
    let r = run(
        &checked,
        &the_plan,
        None,
        4,
        |mut f| {
            f.failing.insert(network.clone());
            f
        },
        CancellationToken::new(),
    )
    .await;
    for change in &the_plan.changes {
        let got = result(&r.report, &change.address);
        match change.kind {
            ResourceKind::Node => assert_eq!(
                got,
                &StepResult::Skipped {
                    because: network.clone()
                }
            ),
            ResourceKind::Firewall => assert!(matches!(got, StepResult::Done { .. })),
            _ => {}
        }
    }
    assert!(!r.fake.calls().iter().any(|c| c.starts_with("create node.")));
}

#[tokio::test]
async fn ctrl_c_lets_the_running_call_finish_saves_it_and_starts_nothing_new() {
    let checked = example();
    let the_plan = plan::diff(&checked.graph, None);
    let cancel = CancellationToken::new();
    let r = run(
        &checked,
        &the_plan,
        None,
        1,
        |mut f| {
            f.cancel_during_first_create = Some(cancel.clone());
            f
        },
        cancel.clone(),
    )
    .await;
    let creates: Vec<String> = r
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("create "))
        .collect();
    let first = creates[0].trim_start_matches("create ").to_string();
    // The call running at Ctrl-C finished, waited and was saved; only what had already
    // started (the ready steps of that round, all waiting for their one call slot) ran on.
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(matches!(result(&r.report, &first), StepResult::Done { .. }));
    assert_eq!(r.state.resources[&first].status, Status::Ready);
    assert_eq!(
        r.report.failed(),
        the_plan.changes.len() - 1,
        "{}",
        r.report.render()
    );
    for step in r.report.steps.iter().filter(|s| s.address != first) {
        assert_eq!(step.result, StepResult::NotStarted, "{}", step.address);
        let recorded = r.state.resources.get(&step.address);
        assert!(
            recorded.is_none_or(|r| r.id.is_none()),
            "`{}` was not created, yet has an id",
            step.address
        );
    }
}

#[tokio::test]
async fn what_needs_no_change_is_never_called() {
    let checked = example();
    let first = plan::diff(&checked.graph, None);
    let done = run(&checked, &first, None, 4, |f| f, CancellationToken::new()).await;
    // Everything exists: the plan against that state has nothing, and nothing is called.
    let again = plan::diff(&checked.graph, Some(&done.state));
    assert!(!again.has_changes(), "{}", again.render());
    let r = run(
        &checked,
        &again,
        Some(done.state.clone()),
        4,
        |f| f,
        CancellationToken::new(),
    )
    .await;
    assert!(r.fake.calls().is_empty(), "{:?}", r.fake.calls());
    assert_eq!(r.state.resources, done.state.resources);

    // One node gone from the state: only it is created.
    let mut lost = done.state.clone();
    lost.resources.remove("node.agent2");
    let partial = plan::diff(&checked.graph, Some(&lost));
    let r = run(
        &checked,
        &partial,
        Some(lost),
        4,
        |f| f,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        r.fake.calls(),
        vec![
            "create node.agent2".to_string(),
            "wait node.agent2".to_string()
        ]
    );
}

#[tokio::test]
async fn gone_is_believed_only_when_the_listing_agrees() {
    let checked = example();
    let done = run_from_nothing(&checked).await;
    let deployment = &checked.fittings.deployment;
    let refreshed = |listed: bool| {
        let recorded = done.state.clone();
        async move {
            let store = MemoryStore::default();
            let mut locked = LockedState::open(
                &store,
                deployment,
                &Holder::this_process("t"),
                Default::default(),
            )
            .unwrap();
            locked.update(|s| *s = recorded).unwrap();
            let mut fake = Fake::new(&store, deployment);
            fake.unreadable.insert("id-agent2".into());
            if listed {
                fake.listed.push(Owned {
                    kind: ResourceKind::Node,
                    name: "agent2".into(),
                    id: "id-agent2".into(),
                });
            }
            let mut providers = Providers::default();
            providers.insert(Arc::new(fake));
            let out = refresh::refresh(&mut locked, &providers, false).await;
            (out, locked.state().clone())
        }
    };
    // Read as gone and not listed: gone, and forgotten.
    let (out, state) = refreshed(false).await;
    assert_eq!(out.unwrap(), vec!["node.agent2".to_string()]);
    assert!(!state.resources.contains_key("node.agent2"));
    // Read as gone but still listed: the answers contradict each other; nothing forgotten.
    let (out, state) = refreshed(true).await;
    let err = out.unwrap_err();
    assert!(matches!(err, ApplyError::Contradiction { .. }), "{err}");
    assert!(err.to_string().contains("`node.agent2`"), "{err}");
    assert_eq!(state.resources, done.state.resources);
}
