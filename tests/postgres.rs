//! The team's state in a real PostgreSQL (scripts/local-postgres.sh), the cloud side on
//! fitter-sim: two operators sharing one deployment, a killed holder, a database that goes
//! away mid-deploy, sealed secrets, and moving a state between the file and the database.
//! Each test has a database of its own, so they run in parallel.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fitter_sim::{Fault, Simulator};
use serde_json::Value as Json;
use support::postgres::{self, PrivateCluster};
use support::{TOKEN, assert_exactly_the_plan, droplets_of, fast_simulator, killed_when, text};

/// The team's passphrase for the state's secrets.
const KEY: &str = "correct horse battery staple, team edition";

/// One operator: a working folder of their own (HOME, SSH key, plan copy) and a name.
struct Operator {
    dir: tempfile::TempDir,
    user: &'static str,
    /// The plan's file name in `dir`, without `.yaml`.
    name: &'static str,
}

impl Operator {
    /// With a copy of fittings/mesos-digitalocean.yaml.
    fn new(user: &'static str) -> Operator {
        Operator::with_plan(user, support::PLAN, "mesos-digitalocean")
    }

    fn with_plan(user: &'static str, plan: &str, name: &'static str) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(support::root().join(plan)).unwrap();
        std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap();
        Operator { dir, user, name }
    }

    fn plan(&self) -> PathBuf {
        self.dir.path().join(format!("{}.yaml", self.name))
    }

    fn errored(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.errored.state.json", self.name))
    }

    /// `fitter` against `sim`, its state in `backend`, with the team's key and the
    /// database password in the environment (PGPASSWORD), and no argument yet.
    fn fitter(&self, sim: &Simulator, backend: &Backend) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fitter"));
        cmd.current_dir(self.dir.path())
            .env("DIGITALOCEAN_TOKEN", TOKEN)
            .env("DIGITALOCEAN_API_URL", sim.url())
            .env("HOME", self.dir.path())
            .env("USER", self.user)
            .env("FITTER_BACKEND", &backend.url)
            .env("FITTER_STATE_KEY", KEY)
            .env("PGPASSWORD", &backend.password)
            .env_remove("PGPASSFILE")
            .env_remove("DIGITALOCEAN_ACCESS_TOKEN")
            .env_remove("FITTER_SSH_KEY")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        cmd
    }

    /// `fitter ARGS PLAN`.
    fn command(&self, sim: &Simulator, backend: &Backend, args: &[&str]) -> Command {
        let mut cmd = self.fitter(sim, backend);
        cmd.args(args).arg(self.plan());
        cmd
    }

    fn run(&self, sim: &Simulator, backend: &Backend, args: &[&str]) -> Output {
        self.command(sim, backend, args).output().unwrap()
    }

    /// A deploy that goes on until the test clears the simulator's faults: agent9 stays
    /// `new` until then, so the deploy holds the lock, its other droplets made.
    fn deploy_held(&self, sim: &Simulator, backend: &Backend) -> std::process::Child {
        sim.inject(Fault::StuckNew {
            name: "agent9".into(),
        });
        self.command(sim, backend, &["deploy", "--yes", "--skip-bootstrap"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `fitter state SUB PLAN REST...`: the plan before the subcommand's own arguments.
    fn state(&self, sim: &Simulator, backend: &Backend, sub: &str, rest: &[&str]) -> Output {
        let mut cmd = self.fitter(sim, backend);
        cmd.args(["state", sub]).arg(self.plan()).args(rest);
        cmd.output().unwrap()
    }
}

/// A database for one test.
struct Backend {
    url: String,
    password: String,
    /// A database of the shared server made for this test, dropped after it.
    owned: bool,
}

impl Backend {
    fn fresh(tag: &str) -> Backend {
        let server = postgres::server();
        Backend {
            url: server.fresh_database(tag),
            password: server.password.clone(),
            owned: true,
        }
    }

    /// The `fitter` database of a private cluster (which goes with the cluster).
    fn of(cluster: &PrivateCluster) -> Backend {
        Backend {
            url: cluster.url.clone(),
            password: cluster.password.clone(),
            owned: false,
        }
    }

    fn psql(&self, sql: &str) -> String {
        postgres::psql(&self.url, &self.password, sql)
    }

    /// Advisory locks granted in this database now.
    fn locks_held(&self) -> usize {
        self.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
        )
        .trim()
        .parse()
        .unwrap()
    }

    /// The stored state (one deployment per test database).
    fn state(&self) -> Json {
        serde_json::from_str(&self.psql("SELECT state FROM fitter_state")).unwrap()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let server = postgres::server();
        let name = self.url.rsplit('/').next().unwrap_or_default().to_string();
        // Every fitter of the test has ended; WITH (FORCE) covers one that was killed and
        // whose session the server has not reaped yet.
        let _ = std::panic::catch_unwind(|| {
            server.psql(
                &server.url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
        });
    }
}

/// Waits until `what` holds, up to a minute: a condition, never a duration.
fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "`{what}` never came");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", text(out));
}

#[test]
fn two_operators_share_one_deployment_and_its_lock() {
    let sim = fast_simulator();
    let db = Backend::fresh("team");
    let (alice, bob) = (Operator::new("alice"), Operator::new("bob"));
    // The team's plan authorises bob's key on every node beside the deployer's own.
    let bob_key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBob bob@team";
    for op in [&alice, &bob] {
        let plan = std::fs::read_to_string(op.plan()).unwrap().replacen(
            "\nparameters:\n",
            &format!("\nkeys:\n  - {bob_key}\nparameters:\n"),
            1,
        );
        std::fs::write(op.plan(), plan).unwrap();
    }
    // Alice's deploy holds the lock while agent9 takes its time to boot.
    let deploy = alice.deploy_held(&sim, &db);
    until("alice holds the lock", || {
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'fitter_lock_holder'")
            .trim()
            == "1"
            && db.locks_held() == 1
            && db.psql("SELECT count(*) FROM fitter_lock_holder").trim() == "1"
    });
    let refused = bob.run(&sim, &db, &["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("is held by `fitter deploy` (alice@") && said.contains("--lock-timeout"),
        "bob is told who holds it: {said}"
    );
    // With a timeout, bob waits for alice instead, and finds nothing left to do.
    let waiting = bob
        .command(
            &sim,
            &db,
            &[
                "deploy",
                "--yes",
                "--skip-bootstrap",
                "--lock-timeout",
                "5m",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until("bob waits for the lock in the server", || {
        db.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
        )
        .trim()
            == "1"
    });
    sim.clear_faults();
    let alice_out = deploy.wait_with_output().unwrap();
    ok(&alice_out, "alice's deploy");
    let bob_out = waiting.wait_with_output().unwrap();
    ok(&bob_out, "bob's deploy, after waiting");
    assert!(
        text(&bob_out).contains("waiting up to 300 s"),
        "{}",
        text(&bob_out)
    );
    assert_exactly_the_plan(&sim.snapshot());
    // Bob, from his own folder and key, sees the deployment as alice left it.
    let plan = bob.run(&sim, &db, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "bob's plan: {}", text(&plan));
    let info = bob.run(&sim, &db, &["information", "--json", "--offline"]);
    ok(&info, "bob's information");
    let info: Json = serde_json::from_slice(&info.stdout).unwrap();
    let nodes = info["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 12);
    assert!(nodes.iter().all(|n| n["public_ip"].is_string()), "{info}");
    // Nobody holds the lock once the commands are done.
    assert_eq!(db.locks_held(), 0);
    // Every droplet was made with alice's key and bob's.
    let alice_key = std::fs::read_to_string(
        alice
            .dir
            .path()
            .join("mesos-digitalocean.state.json.id_ed25519.pub"),
    )
    .unwrap();
    let creates: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets")
        .filter_map(|r| r.body.as_ref()?["user_data"].as_str().map(str::to_string))
        .collect();
    assert!(!creates.is_empty());
    for u in &creates {
        assert!(u.contains(bob_key) && u.contains(alice_key.trim()), "{u}");
    }
}

#[test]
fn a_killed_deploy_frees_its_lock_and_the_next_one_converges() {
    let sim = fast_simulator();
    let db = Backend::fresh("killed");
    let (alice, bob) = (Operator::new("alice"), Operator::new("bob"));
    sim.inject(Fault::StuckNew {
        name: "agent9".into(),
    });
    killed_when(
        alice.command(&sim, &db, &["deploy", "--yes", "--skip-bootstrap"]),
        "twelve droplets created",
        || droplets_of(&sim.snapshot()).len() == 12,
    );
    sim.clear_faults();
    // PostgreSQL frees the lock when it sees the connection close: no one has to.
    until("the killed deploy's lock is freed", || db.locks_held() == 0);
    let out = bob.run(&sim, &db, &["deploy", "--yes", "--skip-bootstrap"]);
    ok(&out, "bob's deploy after the kill");
    assert_exactly_the_plan(&sim.snapshot());
    let again = bob.run(&sim, &db, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

#[test]
fn a_database_gone_mid_deploy_loses_nothing() {
    let sim = fast_simulator();
    let cluster = PrivateCluster::start();
    let db = Backend::of(&cluster);
    let alice = Operator::new("alice");
    let deploy = alice.deploy_held(&sim, &db);
    until("twelve droplets created", || {
        droplets_of(&sim.snapshot()).len() == 12
    });
    cluster.stop();
    sim.clear_faults();
    let out = deploy.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("fitter state push"), "{said}");
    // Every droplet made is in the errored-state file, by its id.
    let errored: Json =
        serde_json::from_str(&std::fs::read_to_string(alice.errored()).unwrap()).unwrap();
    let recorded: Vec<&str> = errored["resources"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|r| r["id"].as_str())
        .collect();
    for d in droplets_of(&sim.snapshot()) {
        let id = d["id"].to_string();
        assert!(
            recorded.contains(&id.as_str()),
            "droplet {id} not in {errored}"
        );
    }
    // The database is back: a push, then a deploy, converge with no duplicate.
    cluster.start_again();
    let errored_path = alice.errored();
    let push = alice.state(&sim, &db, "push", &[errored_path.to_str().unwrap()]);
    ok(&push, "state push of the errored state");
    let out = alice.run(&sim, &db, &["deploy", "--yes", "--skip-bootstrap"]);
    ok(&out, "deploy after the push");
    assert_exactly_the_plan(&sim.snapshot());
    let state = db.state();
    let ids: Vec<String> = droplets_of(&sim.snapshot())
        .iter()
        .map(|d| d["id"].to_string())
        .collect();
    for id in &ids {
        assert!(
            state["resources"]
                .as_object()
                .unwrap()
                .values()
                .any(|r| r["id"].as_str() == Some(id)),
            "droplet {id} is an orphan"
        );
    }
}

#[test]
fn sealed_secrets_never_reach_the_database_or_the_file_and_a_wrong_key_changes_nothing() {
    let sim = fast_simulator();
    let db = Backend::fresh("sealed");
    // plumbery's Docker host: its host key is a generated RSA key, kept in the state's
    // secrets, and so are its generated password and uuid once rendered.
    let alice = Operator::with_plan(
        "alice",
        "tests/cases/plumbery-docker-host/fittings.yaml",
        "docker",
    );
    let deploy = [
        "deploy",
        "--yes",
        "--skip-bootstrap",
        "--provider",
        "digitalocean",
    ];
    let out = alice.run(&sim, &db, &deploy);
    ok(&out, "deploy with a state key");
    let row = db.psql("SELECT state FROM fitter_state")
        + &db.psql("SELECT state FROM fitter_state_history");
    let stored: fitter::state::State =
        serde_json::from_str(&db.psql("SELECT state FROM fitter_state")).unwrap();
    assert!(stored.secrets.is_empty() && stored.sealed.is_some());
    let mut open = stored.clone();
    let key = fitter::state::seal::StateKey::new(KEY.into()).unwrap();
    fitter::state::seal::unseal(&mut open, Some(&key)).unwrap();
    assert!(!open.secrets.is_empty(), "the plan made secrets");
    // Public halves (`rsa_public.x`) are kept with the secrets but are no secret.
    let secret = |name: &str| !name.starts_with("rsa_public");
    for (name, value) in open.secrets.iter().filter(|(n, _)| secret(n)) {
        for line in value
            .lines()
            .filter(|l| l.len() > 8 && !l.starts_with("-----"))
        {
            assert!(
                !row.contains(line),
                "secret `{name}` is in the database in plaintext"
            );
        }
    }
    // A wrong key is one clear line, and the stored state is as it was.
    let before = db.psql("SELECT serial, state FROM fitter_state");
    let wrong = alice
        .command(&sim, &db, &deploy)
        .env("FITTER_STATE_KEY", "not the team's key at all")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        text(&wrong).contains("does not open the secrets"),
        "{}",
        text(&wrong)
    );
    assert_eq!(db.psql("SELECT serial, state FROM fitter_state"), before);
    // The file store seals them too.
    let file = alice.dir.path().join("pulled.json");
    let pull = alice.state(&sim, &db, "pull", &["--provider", "digitalocean"]);
    ok(&pull, "state pull");
    std::fs::write(&file, &pull.stdout).unwrap();
    let state_file = alice.dir.path().join("local.state.json");
    let push = alice.state(
        &sim,
        &db,
        "push",
        &[
            file.to_str().unwrap(),
            "--backend",
            "file",
            "--state",
            state_file.to_str().unwrap(),
            "--provider",
            "digitalocean",
        ],
    );
    ok(&push, "push to a file");
    let text_on_disk = std::fs::read_to_string(&state_file).unwrap();
    for (_, value) in open.secrets.iter().filter(|(n, _)| secret(n)) {
        for line in value
            .lines()
            .filter(|l| l.len() > 8 && !l.starts_with("-----"))
        {
            assert!(
                !text_on_disk.contains(line),
                "a secret is in the state file"
            );
        }
    }
}

fn pull(op: &Operator, sim: &Simulator, db: &Backend, extra: &[&str]) -> Json {
    let out = op.state(sim, db, "pull", extra);
    ok(&out, "state pull");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn state_moves_between_the_file_and_the_database_with_its_serial_and_lineage() {
    let sim = fast_simulator();
    let db = Backend::fresh("moves");
    let alice = Operator::new("alice");
    let file = alice.dir.path().join("mesos.state.json");
    let on_file = ["--backend", "file", "--state", file.to_str().unwrap()];
    let mut deploy = vec!["deploy", "--yes", "--skip-bootstrap"];
    deploy.extend(on_file);
    ok(&alice.run(&sim, &db, &deploy), "deploy to the file");
    // file -> PostgreSQL
    let from_file = pull(&alice, &sim, &db, &on_file);
    let pulled = alice.dir.path().join("pulled.json");
    std::fs::write(&pulled, from_file.to_string()).unwrap();
    ok(
        &alice.state(&sim, &db, "push", &[pulled.to_str().unwrap()]),
        "push to PostgreSQL",
    );
    let in_db = pull(&alice, &sim, &db, &[]);
    assert_eq!(in_db["serial"], from_file["serial"]);
    assert_eq!(in_db["lineage"], from_file["lineage"]);
    assert_eq!(in_db["resources"], from_file["resources"]);
    let plan = alice.run(&sim, &db, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    // An older state, or another deployment's history, is refused without --force.
    let refused = alice.state(&sim, &db, "push", &[pulled.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("older"), "{}", text(&refused));
    // mv and rm in PostgreSQL: each a new version of the same history.
    ok(
        &alice.state(&sim, &db, "mv", &["node.agent9", "node.agent10"]),
        "state mv",
    );
    let list = alice.state(&sim, &db, "list", &[]);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(listed.contains("node.agent10\n") && !listed.contains("node.agent9\n"));
    ok(
        &alice.state(&sim, &db, "mv", &["node.agent10", "node.agent9"]),
        "state mv back",
    );
    let moved = pull(&alice, &sim, &db, &[]);
    assert_eq!(moved["lineage"], from_file["lineage"]);
    assert_eq!(moved["serial"], from_file["serial"].as_u64().unwrap() + 2);
    assert_eq!(moved["resources"], from_file["resources"]);
    ok(&alice.state(&sim, &db, "rm", &["node.agent9"]), "state rm");
    let removed = pull(&alice, &sim, &db, &[]);
    assert!(removed["resources"].get("node.agent9").is_none());
    // ...and back to a file of its own, as it is in the database.
    let back = alice.dir.path().join("back.json");
    std::fs::write(&back, removed.to_string()).unwrap();
    let other = alice.dir.path().join("other.state.json");
    ok(
        &alice.state(
            &sim,
            &db,
            "push",
            &[
                back.to_str().unwrap(),
                "--backend",
                "file",
                "--state",
                other.to_str().unwrap(),
            ],
        ),
        "push back to a file",
    );
    let on_disk: Json = serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    assert_eq!(on_disk["serial"], removed["serial"]);
    assert_eq!(on_disk["lineage"], removed["lineage"]);
    assert_eq!(on_disk["resources"], removed["resources"]);
}

mod compare_and_swap {
    use std::sync::Arc;

    use fitter::state::postgres::{PgStore, Url};
    use fitter::state::{Snapshot, StateError, StateStore as _, StateWriter};
    use proptest::prelude::*;

    use super::Backend;

    /// Two writers of one deployment, each with its own session and its own idea of the
    /// stored serial, interleaved at random: a write is taken exactly when it follows the
    /// stored version, and refused (never merged) otherwise.
    #[test]
    fn interleaved_writers_never_overwrite_each_other() {
        let db = Backend::fresh("cas");
        let url = db
            .url
            .replacen("fitter@", &format!("fitter:{}@", db.password), 1);
        let stores = [
            PgStore::new(Url::parse(&url).unwrap(), std::time::Duration::ZERO),
            PgStore::new(Url::parse(&url).unwrap(), std::time::Duration::ZERO),
        ];
        let case = std::sync::atomic::AtomicUsize::new(0);
        let config = ProptestConfig {
            cases: 48,
            ..ProptestConfig::default()
        };
        proptest!(config, |(ops in proptest::collection::vec((0..2usize, any::<bool>()), 1..16))| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let deployment = format!("model-{n}");
            let writers: Vec<Arc<dyn StateWriter>> = stores
                .iter()
                .map(|s| s.writer_without_lock(&deployment).unwrap())
                .collect();
            let mut stored: u64 = 0;
            let mut views = [0u64; 2];
            let mut last_text = None;
            for (w, refresh) in ops {
                if refresh {
                    views[w] = stores[w].read(&deployment).unwrap().map_or(0, |s| s.serial);
                }
                let serial = views[w] + 1;
                let mut state = fitter::state::State::new(&deployment);
                state.lineage = "l".into();
                state.serial = serial;
                state.secrets.insert("writer".into(), format!("{w}-{serial}"));
                let text = serde_json::to_string(&state).unwrap();
                let snapshot = Snapshot {
                    deployment: deployment.clone(),
                    lineage: "l".into(),
                    serial,
                    previous: views[w],
                    previous_lineage: "l".into(),
                    text: text.clone(),
                };
                match writers[w].write(&snapshot) {
                    Ok(()) => {
                        prop_assert_eq!(views[w], stored, "a write not following the stored version was taken");
                        stored = serial;
                        views[w] = serial;
                        last_text = Some(text);
                    }
                    Err(StateError::Conflict { found, expected, .. }) => {
                        prop_assert_ne!(views[w], stored, "a write following the stored version was refused");
                        prop_assert_eq!(found, stored);
                        prop_assert_eq!(expected, views[w]);
                    }
                    Err(e) => prop_assert!(false, "unexpected error: {e}"),
                }
            }
            let row = stores[0].read(&deployment).unwrap();
            prop_assert_eq!(row.as_ref().map_or(0, |s| s.serial), stored);
            if let (Some(row), Some(text)) = (row, last_text) {
                prop_assert_eq!(serde_json::to_string(&row).unwrap(), text);
            }
        });
    }
}

#[test]
fn tls_is_used_when_the_url_asks_and_the_server_is_verified() {
    let sim = fast_simulator();
    let server = postgres::server();
    let plain = Backend::fresh("tls");
    let host = plain.url.replacen("@127.0.0.1:", "@localhost:", 1);
    let alice = Operator::new("alice");
    let with = |url: String| Backend {
        url,
        password: plain.password.clone(),
        owned: false,
    };
    // Verified against the local CA: the state is reached (a first plan of everything).
    let verified = with(format!(
        "{host}?sslmode=verify-full&sslrootcert={}",
        server.ca.display()
    ));
    let out = alice.run(&sim, &verified, &["plan", "--no-refresh"]);
    ok(&out, "plan over TLS");
    assert!(text(&out).contains("17 to add"), "{}", text(&out));
    // Without the CA the same server is refused: its certificate is checked, not trusted.
    let unverified = with(format!("{host}?sslmode=require"));
    let out = alice.run(&sim, &unverified, &["plan", "--no-refresh"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("certificate"), "{}", text(&out));
}

#[test]
fn force_unlock_ends_a_stuck_holder_and_its_run_loses_nothing() {
    let sim = fast_simulator();
    let db = Backend::fresh("unlock");
    let (alice, bob) = (Operator::new("alice"), Operator::new("bob"));
    let deploy = alice.deploy_held(&sim, &db);
    until("alice holds the lock, her droplets made", || {
        droplets_of(&sim.snapshot()).len() == 12 && db.locks_held() == 1
    });
    let out = bob
        .fitter(&sim, &db)
        .args(["force-unlock", "--yes"])
        .arg(bob.plan())
        .output()
        .unwrap();
    ok(&out, "force-unlock");
    assert!(
        text(&out).contains("locked by `fitter deploy` (alice@"),
        "{}",
        text(&out)
    );
    until("the lock is free", || db.locks_held() == 0);
    // Alice's run finds its session gone at its next write: it keeps its state aside.
    sim.clear_faults();
    let out = deploy.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(alice.errored().exists(), "{}", text(&out));
    // Her next run pushes it (nobody wrote since) and has nothing left to do.
    let again = alice.run(&sim, &db, &["deploy", "--yes", "--skip-bootstrap"]);
    ok(&again, "alice's next deploy");
    assert!(!alice.errored().exists());
    assert_exactly_the_plan(&sim.snapshot());
    let plan = bob.run(&sim, &db, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
}

#[test]
fn the_password_comes_from_the_password_file_as_for_psql() {
    let sim = fast_simulator();
    let db = Backend::fresh("pgpass");
    let alice = Operator::new("alice");
    let pgpass = alice.dir.path().join("pgpass");
    let port = db.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    std::fs::write(
        &pgpass,
        format!("# the team's\n127.0.0.1:{port}:*:fitter:{}\n", db.password),
    )
    .unwrap();
    let out = alice
        .command(&sim, &db, &["plan", "--no-refresh"])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", &pgpass)
        .output()
        .unwrap();
    ok(&out, "plan with the password from PGPASSFILE");
    std::fs::write(&pgpass, format!("127.0.0.1:{port}:*:fitter:wrong\n")).unwrap();
    let out = alice
        .command(&sim, &db, &["plan", "--no-refresh"])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", &pgpass)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("password authentication failed"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("wrong"), "{}", text(&out));
}

#[test]
fn a_shared_state_without_a_key_is_refused_before_anything_is_made() {
    let sim = fast_simulator();
    let db = Backend::fresh("nokey");
    let alice = Operator::new("alice");
    let out = alice
        .command(&sim, &db, &["deploy", "--yes", "--skip-bootstrap"])
        .env_remove("FITTER_STATE_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("`--allow-plaintext-secrets`; nothing was changed"),
        "{}",
        text(&out)
    );
    let snap = sim.snapshot();
    assert_eq!(support::writes(&snap), 0, "the cloud was changed");
    // Told so, it deploys with the secrets in plaintext.
    let out = alice
        .command(
            &sim,
            &db,
            &[
                "deploy",
                "--yes",
                "--skip-bootstrap",
                "--allow-plaintext-secrets",
            ],
        )
        .env_remove("FITTER_STATE_KEY")
        .output()
        .unwrap();
    ok(&out, "deploy with --allow-plaintext-secrets");
    assert_exactly_the_plan(&sim.snapshot());
}
