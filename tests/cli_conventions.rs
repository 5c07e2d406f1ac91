//! What an operator who knows Terraform types: `apply` and `destroy` are deploy and dispose,
//! and disposing of what was never deployed says so, not "matches the plan" (issue 13).

use std::process::Command;

mod support;
use support::*;

#[test]
fn apply_and_destroy_are_deploy_and_dispose() {
    for (alias, command) in [("apply", "deploy"), ("destroy", "dispose")] {
        let out = Command::new(env!("CARGO_BIN_EXE_fitter"))
            .args([alias, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let own = Command::new(env!("CARGO_BIN_EXE_fitter"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.stdout, own.stdout, "`{alias}` is `{command}`");
    }
}

#[test]
fn destroying_what_was_never_deployed_says_there_is_nothing() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws.run(&sim.url(), &["destroy", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Nothing to dispose of: no resource of `mesos-digitalocean`"),
        "{stdout}"
    );
    assert!(!stdout.contains("matches the plan"), "{stdout}");
    assert_eq!(
        writes(&sim.snapshot()),
        0,
        "nothing was written to the cloud"
    );
}

fn fitter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fitter"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bash_completion_parses_and_completes_a_subcommand_name() {
    let out = fitter(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fitter.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax));
    // What bash does on `fitter dep<TAB>`: the completion function with the words so far.
    let complete = format!(
        "source {}; COMP_WORDS=(fitter dep); COMP_CWORD=1; COMP_LINE='fitter dep'; COMP_POINT=10; \
         _fitter fitter dep fitter; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&complete)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let words: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(words, ["deploy"], "{}", text(&out));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = fitter(&["completions", shell]);
        assert!(
            out.status.success() && stdout(&out).contains("deploy"),
            "{shell}: {}",
            text(&out)
        );
    }
}

#[test]
fn the_manual_page_renders_with_man() {
    for page in [&["man"][..], &["man", "deploy"]] {
        let out = fitter(page);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let dir = tempfile::tempdir().unwrap();
        let roff = dir.path().join("fitter.1");
        std::fs::write(&roff, &out.stdout).unwrap();
        let man = Command::new("man")
            .arg("-l")
            .arg(&roff)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man (man-db) is installed: .ci/run installs it");
        assert!(man.status.success(), "man -l: {}", text(&man));
        let shown = stdout(&man);
        let title = if page.len() == 1 {
            "fitter"
        } else {
            "fitter-deploy"
        };
        assert!(shown.contains(&format!("{title}(1)")), "{shown}");
        let flag = if page.len() == 1 {
            "--log-file"
        } else {
            "--parameters"
        };
        assert!(
            shown.contains("SYNOPSIS") && shown.contains(flag),
            "{shown}"
        );
    }
    let unknown = fitter(&["man", "deploi"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no command `deploi`"));
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = fitter(&["--version"]);
    let version = stdout(&out);
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .unwrap();
    let commit = String::from_utf8_lossy(&commit.stdout).trim().to_string();
    assert_eq!(
        version.trim(),
        format!("fitter {} ({commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_command_lists_the_environment_it_reads_and_dispose_only_its_own_flags() {
    let help = |command: &str| stdout(&fitter(&[command, "--help"]));
    for (command, reads) in [
        (
            "deploy",
            &[
                "DIGITALOCEAN_TOKEN",
                "HCLOUD_TOKEN",
                "LXD_SOCKET",
                "FITTER_BACKEND",
                "FITTER_STATE_KEY",
                "PGPASSFILE",
                "FITTER_SSH_KEY",
                "SSH_AUTH_SOCK",
                "FITTER_LOG",
                "NO_COLOR",
            ][..],
        ),
        (
            "dispose",
            &[
                "DIGITALOCEAN_TOKEN",
                "HCLOUD_TOKEN",
                "FITTER_BACKEND",
                "FITTER_SSH_KEY",
            ],
        ),
        (
            "plan",
            &[
                "DIGITALOCEAN_API_URL",
                "HCLOUD_ENDPOINT",
                "FITTER_BACKEND",
                "PGPASSWORD",
            ],
        ),
        (
            "information",
            &["FITTER_BACKEND", "FITTER_SSH_KEY", "SSH_AUTH_SOCK"],
        ),
        ("inventory", &["FITTER_BACKEND", "FITTER_SSH_KEY"]),
        ("ssh", &["FITTER_SSH_KEY"]),
        ("force-unlock", &["FITTER_BACKEND", "PGPASSWORD"]),
        ("validate", &["FITTER_LOG"]),
    ] {
        let text = help(command);
        let environment = text
            .split_once("Environment:")
            .unwrap_or_else(|| panic!("`{command} --help` has no Environment section:\n{text}"))
            .1;
        for variable in reads {
            assert!(
                environment.contains(variable),
                "`{command} --help` lacks {variable}:\n{text}"
            );
        }
    }
    // A dispose boots nothing: the flags about new nodes, SSH and bootstrap are deploy's.
    let dispose = help("dispose");
    for flag in [
        "--ssh-timeout",
        "--skip-bootstrap",
        "--health-timeout",
        "--serial",
        "--command-timeout",
        "--ready-timeout",
        "--ssh-parallelism",
    ] {
        assert!(!dispose.contains(flag), "dispose --help lists {flag}");
        assert!(help("deploy").contains(flag), "deploy --help lacks {flag}");
    }
    assert!(dispose.contains("--dry-run") && dispose.contains("--force-protected"));
}

#[test]
fn a_deploy_ends_with_a_summary_and_writes_its_debug_log_to_a_file() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let log = ws.dir.path().join("fitter.log");
    let out = ws.run(
        &sim.url(),
        &[
            "deploy",
            "--yes",
            "--skip-bootstrap",
            "--log-file",
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let last = stdout(&out).lines().last().unwrap_or("").to_string();
    assert_eq!(last, "Deploy complete: 17 added, 0 changed, 0 destroyed.");
    let written = std::fs::read_to_string(&log).unwrap();
    let first = written.lines().next().unwrap_or("");
    // `2026-12-01T18:39:16.123456Z DEBUG ...`: a timestamp, a level, no colour.
    let stamp = regex_lite(first);
    assert!(stamp, "no timestamp: {first}");
    assert!(written.contains(" DEBUG "), "{written}");
    assert!(!written.contains('\u{1b}'), "colour codes in the log file");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(" DEBUG "),
        "the debug log went to the file only"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A re-run changes nothing and says so.
    let again = ws.run(&sim.url(), &["deploy", "--yes", "--skip-bootstrap"]);
    let last = stdout(&again).lines().last().unwrap_or("").to_string();
    assert_eq!(last, "Deploy complete: 0 added, 0 changed, 0 destroyed.");
}

/// `YYYY-MM-DDTHH:MM:SS` at the start of a line.
fn regex_lite(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 19
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
}

#[test]
fn bootstrapping_nodes_nobody_can_reach_is_not_reported_as_no_failure() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    // The simulated droplets run no sshd: no node can be bootstrapped.
    let out = ws.run(&sim.url(), &["deploy", "--yes", "--ssh-timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = stdout(&out);
    assert!(!said.contains("0 nodes failed."), "{said}");
    assert!(said.contains("12 not ready (not bootstrapped)"), "{said}");
    let last = said.lines().last().unwrap_or("");
    assert!(
        last.starts_with("Deploy incomplete: ")
            && last.contains("0 nodes configured, 12 not ready"),
        "{last}"
    );
}

#[test]
fn a_wrong_token_is_one_line_before_anything() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws
        .command(&sim.url(), &["deploy", "--yes"])
        .env("DIGITALOCEAN_TOKEN", "dop_v1_not_the_right_one")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(stdout(&out), "", "no plan, no table: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("check DIGITALOCEAN_TOKEN") && errors[0].contains("401"),
        "{stderr}"
    );
    assert_eq!(writes(&sim.snapshot()), 0);
    assert!(!ws.state().exists(), "no state was written");
}

#[test]
fn a_command_that_wrote_no_state_leaves_no_lock_file() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    for args in [
        &["destroy", "--yes"][..],
        &["plan"],
        &["dispose", "--dry-run"],
    ] {
        let out = ws.run(&sim.url(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let left: Vec<String> = std::fs::read_dir(ws.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    // A deploy's lock goes with it too, and its state stays.
    let out = ws.run(&sim.url(), &["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(ws.state().exists());
    let locks: Vec<String> = std::fs::read_dir(ws.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lock"))
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
}

/// The operator key is recorded at the first deploy and kept: a key that appears later in
/// `~/.ssh` changes nothing, `information` names the recorded key, and another key is a
/// change the plan shows (a rotation), never a silent switch (issue 13).
#[test]
fn the_operator_key_is_recorded_and_kept_until_a_rotation_the_plan_shows() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    // HOME has no key: fitter makes the deployment's own, beside the state.
    let out = ws.run(&sim.url(), &["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let recorded = ws.state_json()["operator"].clone();
    let own = format!("{}.id_ed25519", ws.state().display());
    assert_eq!(recorded["path"], own.as_str(), "{recorded}");

    // A key appears where fitter would have looked first.
    let ssh = ws.dir.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let newer = ssh.join("id_ed25519");
    fitter::ssh::OperatorKey::create(&newer).unwrap();
    let plan = ws.run(&sim.url(), &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "no change: {}", text(&plan));
    let info = ws.run(&sim.url(), &["information", "--offline"]);
    let said = stdout(&info);
    assert!(said.contains(&format!("ssh -i {own} ")), "{said}");
    assert!(!said.contains(newer.to_str().unwrap()), "{said}");
    let out = ws.run(&sim.url(), &["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ws.state_json()["operator"], recorded, "the record is kept");

    // Naming another key is a rotation, shown before it is done.
    let plan = ws.run(
        &sim.url(),
        &[
            "plan",
            "--detailed-exitcode",
            "--ssh-key",
            newer.to_str().unwrap(),
        ],
    );
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let said = stdout(&plan);
    assert!(
        said.contains("# the operator key changes (a rotation)"),
        "{said}"
    );
    assert!(said.contains("The operator key changes."), "{said}");
    let old_fp = fitter::ssh::fingerprint(recorded["public_key"].as_str().unwrap()).unwrap();
    assert!(said.contains(&old_fp), "{said}");
    // The key in the account is replaced with it, so that the droplets made next get it.
    assert!(
        said.contains("# ssh_key.operator must be replaced: the operator key changes"),
        "{said}"
    );

    // The same key under another comment (the agent's copy of a key file has none) is no
    // rotation.
    let recommented = ws.dir.path().join("same-key");
    let private = std::fs::read_to_string(&own).unwrap();
    std::fs::write(&recommented, private).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&recommented, std::fs::Permissions::from_mode(0o600)).unwrap();
    let renamed = Command::new("ssh-keygen")
        .args(["-q", "-c", "-C", "another comment", "-P", "", "-f"])
        .arg(&recommented)
        .output()
        .unwrap();
    assert!(renamed.status.success(), "{}", text(&renamed));
    let comment = fitter::ssh::OperatorKey::load(&recommented)
        .unwrap()
        .public_openssh;
    assert!(comment.ends_with("another comment"), "{comment}");
    let plan = ws.run(
        &sim.url(),
        &[
            "plan",
            "--detailed-exitcode",
            "--ssh-key",
            recommented.to_str().unwrap(),
        ],
    );
    assert_eq!(plan.status.code(), Some(0), "the same key: {}", text(&plan));

    // A teammate's key that the plan's `keys:` authorises is an operator key, not a rotation.
    let with_team = ws.dir.path().join("team/mesos-digitalocean.yaml");
    std::fs::create_dir_all(with_team.parent().unwrap()).unwrap();
    let written = std::fs::read_to_string(root().join(PLAN)).unwrap();
    let public = format!("{}.pub", newer.display());
    let team = written.replacen(
        "\nparameters:",
        &format!("\nkeys:\n  - {public}\nparameters:"),
        1,
    );
    assert_ne!(
        team, written,
        "the example has a `parameters:` section to put `keys:` before"
    );
    std::fs::write(&with_team, team).unwrap();
    let plan = ws
        .command_for(
            &sim.url(),
            &with_team,
            &[
                "plan",
                "--detailed-exitcode",
                "--ssh-key",
                newer.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "a teammate: {}", text(&plan));

    // A rotation that cannot log into the nodes (the simulated droplets run no sshd) stops
    // before anything is recorded or written: the old key stays the deployment's.
    let writes_before = writes(&sim.snapshot());
    let out = ws.run(
        &sim.url(),
        &[
            "deploy",
            "--yes",
            "--skip-bootstrap",
            "--ssh-key",
            newer.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "the operator key rotation did not reach every node; the state still records the old key"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(ws.state_json()["operator"], recorded);
    assert_eq!(writes(&sim.snapshot()), writes_before);

    // The recorded key gone: a clear refusal, not another key taken in its place.
    std::fs::remove_file(&own).unwrap();
    let out = ws.run(
        &sim.url(),
        &[
            "deploy",
            "--yes",
            "--skip-bootstrap",
            "--replace",
            "node.agent1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the deployment's operator key") && said.contains("--ssh-key"),
        "{said}"
    );
    assert_eq!(ws.state_json()["operator"], recorded);
}

#[test]
fn a_resource_gone_and_dropped_from_the_plan_is_forgotten_not_created_again() {
    let sim = fast_simulator();
    let ws = Workspace::new();
    let out = ws.run(&sim.url(), &["deploy", "--yes", "--skip-bootstrap"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = ws.state_json()["resources"]["node.agent9"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    delete_droplet(&sim, &id);
    // The plan without agent9: eight agents.
    let plan = ws.dir.path().join("mesos-digitalocean.yaml");
    let written = std::fs::read_to_string(root().join(PLAN)).unwrap();
    assert!(
        written.contains("agent[1..9]"),
        "the example names its agents agent[1..9]"
    );
    std::fs::write(&plan, written.replace("agent[1..9]", "agent[1..8]")).unwrap();
    let out = ws
        .command_for(&sim.url(), &plan, &["plan"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "`node.agent9` is gone from its provider and no longer in the plan: it is forgotten."
        ),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("will create it again"), "{stderr}");
    // With the full plan, it would be created again.
    let out = ws.run(&sim.url(), &["plan"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`node.agent9` is gone from its provider; deploy will create it again."),
        "{}",
        text(&out)
    );
}
